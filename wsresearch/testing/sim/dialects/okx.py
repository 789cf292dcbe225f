"""The simulator speaking OKX v5 public: trades, tickers, books.

Books start with a snapshot and link each update to the previous one
(``prevSeqId``); the text ``ping`` is answered with the text ``pong``. See
:mod:`wsresearch.exchanges.okx` for the client side.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, ClassVar

from ....exchanges import okx
from ..market import Market
from ._base import (
    Dialect,
    Subscriber,
    to_json,
    to_ms,
    to_num,
)

__all__ = ["OkxDialect"]


class OkxDialect(Dialect):
    """OKX v5 public: ``trades``, ``tickers``, ``books``; the text ``ping`` gets ``pong``."""

    name = "okx"
    adapter = okx.spec
    defaults: ClassVar[dict[str, Any]] = {"channels": ("trades", "tickers", "books")}
    symbols = ("BTC-USDT", "ETH-USDT")
    _STREAMS: ClassVar[dict[str, str]] = {"trades": "trade", "tickers": "ticker", "books": "book"}
    serves_rest = True
    can_withhold_snapshots = True

    def rest(self, path: str, query: dict[str, str], market: Market, stale: int = 0,
             ) -> Any | None:
        """``GET /api/v5/market/books?instId=BTC-USDT``: the book now, with its ``seqId``."""
        symbol = query.get("instId", "")
        if path != "/api/v5/market/books" or symbol not in market.symbols:
            return None
        book = market.snapshot(symbol)
        return {"code": "0", "msg": "", "data": [{
            "asks": [[to_num(p), to_num(q), "0", "1"] for p, q in book["asks"]],
            "bids": [[to_num(p), to_num(q), "0", "1"] for p, q in book["bids"]],
            "ts": str(to_ms(book["ts"])), "seqId": book["seq"] - stale}]}

    def on_request(self, client: Subscriber, text: str, market: Market) -> list[str]:
        """``subscribe`` with args (books answer with a snapshot); ``ping`` as text."""
        conn = f"sim-{client.index}"
        if text == "ping":
            return ["pong"]
        try:
            request = json.loads(text)
            args = [dict(a) for a in request["args"]]
        except (ValueError, KeyError, TypeError):
            return [to_json({"event": "error", "code": "60012",
                           "msg": f"Invalid request: {text[:100]}", "connId": conn})]
        if request.get("op") == "unsubscribe":
            for arg in args:
                channel, symbol = str(arg.get("channel")), str(arg.get("instId"))
                client.remove(self._STREAMS.get(channel), symbol, channel)
            return [to_json({"event": "unsubscribe", "arg": arg, "connId": conn})
                    for arg in args]
        frames = []
        for arg in args:
            channel, symbol = str(arg.get("channel")), str(arg.get("instId"))
            if channel not in self._STREAMS or symbol not in market.symbols:
                frames.append(to_json({"event": "error", "code": "60018",
                                     "msg": f"Wrong URL or channel:{channel},instId:{symbol} "
                                            "doesn't exist.", "connId": conn}))
                continue
            client.add(self._STREAMS[channel], symbol, channel)
            frames.append(to_json({"event": "subscribe", "arg": arg, "connId": conn}))
            if channel == "books" and not market.withhold_snapshots:
                book = market.snapshot(symbol)
                frames.append(self._book(symbol, "snapshot", book, -1))
        return frames

    @staticmethod
    def _book(symbol: str, action: str, body: dict[str, Any], prev: int) -> str:
        # A snapshot is its own top; an update carries the book's top after it.
        top = body.get("top", body)
        return to_json({"arg": {"channel": "books", "instId": symbol}, "action": action, "data": [{
            "asks": [[to_num(p), to_num(q), "0", "1"] for p, q in body["asks"]],
            "bids": [[to_num(p), to_num(q), "0", "1"] for p, q in body["bids"]],
            "ts": str(to_ms(body["ts"])),
            "checksum": _checksum(top) + bool(body.get("bad_checksum")),
            "seqId": body["seq"], "prevSeqId": prev}]})

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """``data`` frames per subscribed channel."""
        if not self.channels_of(client, stream, symbol):
            return []
        ts = str(to_ms(body["ts"]))
        if stream == "trade":
            return [to_json({"arg": {"channel": "trades", "instId": symbol}, "data": [
                {"instId": symbol, "tradeId": str(body["trade_id"]), "px": body["price"],
                 "sz": body["size"], "side": body["side"], "ts": ts}]})]
        if stream == "ticker":
            ts = str(client.distinct_ms("tickers", symbol, body["ts"]))
            return [to_json({"arg": {"channel": "tickers", "instId": symbol}, "data": [
                {"instType": "SPOT", "instId": symbol, "last": body["bid"], "lastSz": "1",
                 "askPx": body["ask"], "askSz": body["ask_size"], "bidPx": body["bid"],
                 "bidSz": body["bid_size"], "open24h": body["bid"], "high24h": body["ask"],
                 "low24h": body["bid"], "volCcy24h": "1000", "vol24h": "10", "ts": ts}]})]
        return [self._book(symbol, "update", body, body["seq"] - 1)]


def _checksum(top: dict[str, Any]) -> int:
    """OKX's CRC32 of a book: the best 25 levels, bid then ask at each depth, as text."""
    bids, asks = top["bids"][:25], top["asks"][:25]
    parts: list[str] = []
    for depth in range(max(len(bids), len(asks))):
        for side in (bids, asks):
            if depth < len(side):
                parts.extend(to_num(v) for v in side[depth])
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc
