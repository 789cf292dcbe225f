"""The simulator speaking Bybit v5 public (linear): trades, tickers, order books, liquidations.

Topics are ``<channel>.[<depth>.]<symbol>``; books start with a snapshot, and
``{"op": "ping"}`` is answered. Tickers carry the best bid and offer, and, in
``delta`` messages of their own, the perpetual's mark and index price, funding
rate, next funding time and open interest; ``allLiquidation`` sends liquidations.
See :mod:`wsresearch.exchanges.bybit` for the client side.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from ....exchanges import bybit
from ..market import Market
from ._base import (
    RATES_WITH_DERIVATIVES,
    Dialect,
    Subscriber,
    to_json,
    to_ms,
    to_num,
)

__all__ = ["BybitDialect"]


class BybitDialect(Dialect):
    """Bybit v5 public (linear): ``publicTrade``, ``tickers``, ``orderbook.N``, ``allLiquidation``.

    ``{"op": "ping"}`` is answered.
    """

    name = "bybit"
    adapter = bybit.spec
    defaults: ClassVar[dict[str, Any]] = {"channels": ("publicTrade", "tickers", "orderbook")}
    symbols = ("BTCUSDT", "ETHUSDT")
    rates = RATES_WITH_DERIVATIVES
    _STREAMS: ClassVar[dict[str, tuple[str, ...]]] = {
        "publicTrade": ("trade",), "tickers": ("ticker", "mark"), "orderbook": ("book",),
        "allLiquidation": ("liquidation",)}
    """Each channel's market streams: a linear ticker tells the quotes and the marks."""
    sent_with: ClassVar[dict[str, tuple[str, ...]]] = {"ticker": ("mark",)}

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
                for stream in self._STREAMS.get(parts[0], ()):
                    client.remove(stream, parts[-1], topic)
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
            for stream in self._STREAMS[parts[0]]:
                client.add(stream, parts[-1], topic)
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
                # Kept, so that a mark's delta is sent in a later ms (see _marks).
                client.sent_at(topic, symbol, ms)
                frames.append(to_json({"topic": topic, "type": "snapshot", "cs": body["seq"],
                                     "ts": ms, "data": {
                                         "symbol": symbol, "lastPrice": body["bid"],
                                         "bid1Price": body["bid"],
                                         "bid1Size": body["bid_size"],
                                         "ask1Price": body["ask"],
                                         "ask1Size": body["ask_size"]}}))
            elif stream in ("mark", "liquidation"):
                build = _marks if stream == "mark" else _liquidation
                frames.append(build(topic, body, client.distinct_ms(topic, symbol, body["ts"])))
            else:
                frames.append(self._book(topic, "delta", body))
        return frames


def _marks(topic: str, body: dict[str, Any], ms: int) -> str:
    """A ticker ``delta`` with the perpetual's fields that a mark event changes.

    Tickers are told apart by symbol, time and ``cs``: the delta carries the last ticker's
    ``cs`` and, so that it is never taken for that ticker's repeat, a later ms.
    """
    mark = body["mark"]
    return to_json({"topic": topic, "type": "delta", "data": {
        "symbol": body["symbol"], "markPrice": f"{mark:.2f}", "indexPrice": f"{body['index']:.2f}",
        "openInterest": f"{body['open_interest']:.3f}",
        "openInterestValue": f"{body['open_interest'] * mark:.2f}",
        "nextFundingTime": str(to_ms(body["funding_time"])),
        "fundingRate": f"{body['funding_rate']:.6f}"}, "cs": body["ticker_seq"], "ts": ms})


def _liquidation(topic: str, body: dict[str, Any], ms: int) -> str:
    """An ``allLiquidation`` message of one liquidation.

    ``S`` is the liquidated position's side (a long is closed by a sell order), ``p`` its
    bankruptcy price.
    """
    position = "Buy" if body["side"] == "sell" else "Sell"
    return to_json({"topic": topic, "type": "snapshot", "ts": ms, "data": [{
        "T": to_ms(body["ts"]), "s": body["symbol"], "S": position,
        "v": to_num(body["size"]), "p": to_num(body["bankruptcy_price"])}]})
