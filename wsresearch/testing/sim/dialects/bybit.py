"""The simulator speaking Bybit v5 public (linear): trades, tickers, order books.

Topics are ``<channel>.[<depth>.]<symbol>``; books start with a snapshot, and
``{"op": "ping"}`` is answered. See :mod:`wsresearch.exchanges.bybit` for the
client side.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from ....exchanges import bybit
from ..market import Market
from ._base import (
    Dialect,
    Subscriber,
    to_json,
    to_ms,
    to_num,
)

__all__ = ["BybitDialect"]


class BybitDialect(Dialect):
    """Bybit v5 public (linear): ``publicTrade``, ``tickers``, ``orderbook.N``; ``op`` ping."""

    name = "bybit"
    adapter = bybit.spec
    defaults: ClassVar[dict[str, Any]] = {"channels": ("publicTrade", "tickers", "orderbook")}
    symbols = ("BTCUSDT", "ETHUSDT")
    _STREAMS: ClassVar[dict[str, str]] = {
        "publicTrade": "trade", "tickers": "ticker", "orderbook": "book"}

    def on_request(self, client: Subscriber, text: str, market: Market) -> list[str]:
        """``subscribe`` with topics (books answer with a snapshot) and ``ping``."""
        conn = f"sim-{client.index}"
        try:
            request = json.loads(text)
            op = request["op"]
        except (ValueError, KeyError, TypeError):
            return [to_json({"success": False, "ret_msg": "error:invalid request",
                           "conn_id": conn})]
        if op == "ping":
            return [to_json({"success": True, "ret_msg": "pong", "conn_id": conn, "op": "ping"})]
        topics = [str(t) for t in request.get("args") or []]
        if op == "unsubscribe":
            for topic in topics:
                parts = topic.split(".")
                client.remove(self._STREAMS.get(parts[0]), parts[-1], topic)
            return [to_json({"success": True, "ret_msg": "", "conn_id": conn, "req_id": "",
                             "op": op})]
        for topic in topics:
            parts = topic.split(".")
            if parts[0] not in self._STREAMS or parts[-1] not in market.symbols:
                return [to_json({"success": False, "ret_msg": f"error:handler not found,"
                                                            f"topic:{topic}",
                               "conn_id": conn, "req_id": "", "op": op})]
        frames = [to_json({"success": True, "ret_msg": "", "conn_id": conn, "req_id": "",
                         "op": op})]
        for topic in topics:
            parts = topic.split(".")
            client.add(self._STREAMS[parts[0]], parts[-1], topic)
            if parts[0] == "orderbook":
                book = market.snapshot(parts[-1])
                frames.append(self._book(topic, "snapshot", book))
        return frames

    @staticmethod
    def _book(topic: str, kind: str, body: dict[str, Any]) -> str:
        ms = to_ms(body["ts"])
        return to_json({"topic": topic, "type": kind, "ts": ms, "data": {
            "s": body["symbol"], "b": [[to_num(p), to_num(q)] for p, q in body["bids"]],
            "a": [[to_num(p), to_num(q)] for p, q in body["asks"]], "u": body["seq"],
            "seq": body["seq"]}, "cts": ms})

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """Frames per subscribed topic."""
        frames = []
        ms = to_ms(body["ts"])
        for topic in sorted(self.channels_of(client, stream, symbol)):
            if stream == "trade":
                frames.append(to_json({"topic": topic, "type": "snapshot", "ts": ms, "data": [
                    {"T": ms, "s": symbol, "S": "Buy" if body["side"] == "buy" else "Sell",
                     "v": body["size"], "p": body["price"], "L": "PlusTick",
                     "i": f"t-{body['trade_id']}", "BT": False}]}))
            elif stream == "ticker":
                frames.append(to_json({"topic": topic, "type": "snapshot", "cs": body["seq"],
                                     "ts": ms, "data": {
                                         "symbol": symbol, "lastPrice": body["bid"],
                                         "bid1Price": body["bid"],
                                         "bid1Size": body["bid_size"],
                                         "ask1Price": body["ask"],
                                         "ask1Size": body["ask_size"]}}))
            else:
                frames.append(self._book(topic, "delta", body))
        return frames
