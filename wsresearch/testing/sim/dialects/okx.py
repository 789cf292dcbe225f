"""The simulator speaking OKX v5 public: trades, tickers, books, and swaps' public data.

Books start with a snapshot and link each update to the previous one
(``prevSeqId``); the text ``ping`` is answered with the text ``pong``. Perpetual
swaps (instruments ``<BASE>-<QUOTE>-SWAP``, traded when the simulator's symbols
name them) also have ``mark-price``, ``funding-rate``, ``open-interest``,
``index-tickers`` (of their index, ``<BASE>-<QUOTE>``) and ``liquidation-orders``
(subscribed by ``instType`` ``SWAP``). See :mod:`wsresearch.exchanges.okx` for the
client side.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, ClassVar

from ....exchanges import okx
from ..market import DERIVATIVE_STREAMS, FUNDING_INTERVAL_NS, MAX_FUNDING_RATE, Market
from ._base import (
    RATES_WITH_DERIVATIVES,
    Dialect,
    Subscriber,
    to_json,
    to_ms,
    to_num,
)

__all__ = ["CONTRACT_SIZE", "OkxDialect"]

CONTRACT_SIZE = 0.01
"""Base currency per contract of every simulated swap (BTC-USDT-SWAP's size): the unit of
open interest and liquidation sizes."""
_SWAP = "-SWAP"
_BY_TYPE = "liquidation-orders"  # subscribed by instType: every swap of the market


class OkxDialect(Dialect):
    """OKX v5 public: ``trades``, ``tickers``, ``books``; the text ``ping`` gets ``pong``.

    And, for swaps, ``mark-price``, ``funding-rate``, ``open-interest``, ``index-tickers``
    and ``liquidation-orders``.
    """

    name = "okx"
    adapter = okx.spec
    defaults: ClassVar[dict[str, Any]] = {"channels": ("trades", "tickers", "books")}
    symbols = ("BTC-USDT", "ETH-USDT")
    rates = RATES_WITH_DERIVATIVES
    _STREAMS: ClassVar[dict[str, str]] = {
        "trades": "trade", "tickers": "ticker", "books": "book", "mark-price": "mark",
        "funding-rate": "mark", "open-interest": "mark", "index-tickers": "mark",
        _BY_TYPE: "liquidation"}
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
            **_levels(symbol, book), "ts": str(to_ms(book["ts"])),
            "seqId": book["seq"] - stale}]}

    def on_request(self, client: Subscriber, text: str, market: Market) -> list[str]:
        """``subscribe`` with args (books answer with a snapshot); ``ping`` as text.

        An unknown channel or instrument is error 60018, as OKX answers it.
        """
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
                channel = str(arg.get("channel"))
                for symbol in self._instruments(arg, market.symbols):
                    client.remove(self._STREAMS.get(channel), symbol, channel)
            return [to_json({"event": "unsubscribe", "arg": arg, "connId": conn})
                    for arg in args]
        frames = []
        for arg in args:
            channel, symbols = str(arg.get("channel")), self._instruments(arg, market.symbols)
            if not symbols:
                key = "instType" if channel == _BY_TYPE else "instId"
                frames.append(to_json({"event": "error", "code": "60018",
                                     "msg": f"Wrong URL or channel:{channel},{key}:"
                                            f"{arg.get(key)} doesn't exist.", "connId": conn}))
                continue
            for symbol in symbols:
                client.add(self._STREAMS[channel], symbol, channel)
            frames.append(to_json({"event": "subscribe", "arg": arg, "connId": conn}))
            if channel == "books" and not market.withhold_snapshots:
                book = market.snapshot(symbols[0])
                frames.append(self._book(symbols[0], "snapshot", book, -1))
        return frames

    def _instruments(self, arg: dict[str, Any], traded: list[str]) -> list[str]:
        """The market's instruments ``arg`` subscribes to; none for an unknown one.

        Swaps' channels take a swap (``index-tickers``: its index, ``BTC-USDT``), and
        ``liquidation-orders`` the ``instType`` ``SWAP``: every swap traded.
        """
        channel, symbol = str(arg.get("channel")), str(arg.get("instId"))
        if channel == _BY_TYPE:
            swaps = [s for s in traded if s.endswith(_SWAP)]
            return swaps if arg.get("instType") == "SWAP" else []
        if channel == "index-tickers":
            symbol += _SWAP
        elif self._STREAMS.get(channel) in DERIVATIVE_STREAMS and not symbol.endswith(_SWAP):
            return []
        return [symbol] if channel in self._STREAMS and symbol in traded else []

    @staticmethod
    def _book(symbol: str, action: str, body: dict[str, Any], prev: int) -> str:
        # A snapshot is its own top; an update carries the book's top after it.
        top = body.get("top", body)
        return to_json({"arg": {"channel": "books", "instId": symbol}, "action": action, "data": [{
            **_levels(symbol, body), "ts": str(to_ms(body["ts"])),
            "checksum": _checksum(_levels(symbol, top)) + bool(body.get("bad_checksum")),
            "seqId": body["seq"], "prevSeqId": prev}]})

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """``data`` frames per subscribed channel."""
        channels = self.channels_of(client, stream, symbol)
        if not channels:
            return []
        if stream in ("mark", "liquidation"):
            return [_swap_data(channel, symbol, body,
                               str(client.distinct_ms(channel, symbol, body["ts"])))
                    for channel in sorted(channels)]
        ts = str(to_ms(body["ts"]))
        if stream == "trade":
            return [to_json({"arg": {"channel": "trades", "instId": symbol}, "data": [
                {"instId": symbol, "tradeId": str(body["trade_id"]), "px": body["price"],
                 "sz": _contracts(float(body["size"])) if symbol.endswith(_SWAP)
                 else body["size"], "side": body["side"], "ts": ts}]})]
        if stream == "ticker":
            ts = str(client.distinct_ms("tickers", symbol, body["ts"]))
            swap = symbol.endswith(_SWAP)
            ask, bid = (_contracts(float(body[key])) if swap else body[key]
                        for key in ("ask_size", "bid_size"))
            return [to_json({"arg": {"channel": "tickers", "instId": symbol}, "data": [
                {"instType": "SWAP" if swap else "SPOT", "instId": symbol, "last": body["bid"],
                 "lastSz": "1", "askPx": body["ask"], "askSz": ask, "bidPx": body["bid"],
                 "bidSz": bid, "open24h": body["bid"], "high24h": body["ask"],
                 "low24h": body["bid"], "volCcy24h": "1000", "vol24h": "10", "ts": ts}]})]
        return [self._book(symbol, "update", body, body["seq"] - 1)]


def _swap_data(channel: str, symbol: str, body: dict[str, Any], ts: str) -> str:
    """The ``channel`` message of a swap for one mark or liquidation event, sent at ``ts``."""
    if channel == _BY_TYPE:
        family = symbol.removesuffix(_SWAP)
        return to_json({"arg": {"channel": channel, "instType": "SWAP"}, "data": [{
            "details": [_liquidation(body, ts)], "instFamily": family, "instId": symbol,
            "instType": "SWAP", "uly": family}]})
    if channel == "index-tickers":
        index = symbol.removesuffix(_SWAP)
        price = to_num(round(body["index"], 2))
        return to_json({"arg": {"channel": channel, "instId": index}, "data": [
            {"instId": index, "idxPx": price, "high24h": price, "low24h": price,
             "open24h": price, "sodUtc0": price, "sodUtc8": price, "ts": ts}]})
    item = {"mark-price": _mark_price, "funding-rate": _funding_rate,
            "open-interest": _open_interest}[channel](symbol, body, ts)
    return to_json({"arg": {"channel": channel, "instId": symbol}, "data": [item]})


def _mark_price(symbol: str, body: dict[str, Any], ts: str) -> dict[str, Any]:
    return {"instType": "SWAP", "instId": symbol, "markPx": to_num(body["mark"]), "ts": ts}


def _funding_rate(symbol: str, body: dict[str, Any], ts: str) -> dict[str, Any]:
    """The current period's rate, settled at ``fundingTime`` (the next 8-hour mark).

    The premium is the mark's over the index; the last settled rate is not kept, so
    ``settFundingRate`` repeats the current one.
    """
    rate = f"{body['funding_rate']:.16f}"
    funding_time = body["funding_time"]
    return {
        "formulaType": "noRate", "fundingRate": rate, "fundingTime": str(to_ms(funding_time)),
        "impactValue": "", "instId": symbol, "instType": "SWAP", "interestRate": "",
        "method": "current_period", "maxFundingRate": to_num(MAX_FUNDING_RATE),
        "minFundingRate": to_num(-MAX_FUNDING_RATE), "nextFundingRate": "",
        "nextFundingTime": str(to_ms(funding_time + FUNDING_INTERVAL_NS)),
        "premium": f"{body['mark'] / body['index'] - 1:.16f}", "settFundingRate": rate,
        "settState": "settled", "ts": ts}


def _open_interest(symbol: str, body: dict[str, Any], ts: str) -> dict[str, Any]:
    coins = body["open_interest"]
    return {"instId": symbol, "instType": "SWAP", "oi": to_num(round(coins / CONTRACT_SIZE, 2)),
            "oiCcy": to_num(coins), "oiUsd": to_num(coins * body["mark"]), "ts": ts}


def _liquidation(body: dict[str, Any], ts: str) -> dict[str, Any]:
    """One ``details`` item: a ``buy`` closes a short position, a ``sell`` a long one."""
    return {"bkLoss": "0", "bkPx": to_num(body["bankruptcy_price"]), "ccy": "",
            "posSide": "short" if body["side"] == "buy" else "long", "side": body["side"],
            "sz": _contracts(body["size"]), "ts": ts}


def _contracts(base: float) -> str:
    """A size in the base currency as OKX sends a swap's: whole contracts, one at least."""
    return str(max(1, round(base / CONTRACT_SIZE)))


def _size(symbol: str, base: float) -> str:
    """A level's or a quote's size as OKX sends it: a swap's in whole contracts (0: gone)."""
    if not symbol.endswith(_SWAP):
        return to_num(base)
    return "0" if base == 0 else _contracts(base)


def _levels(symbol: str, book: dict[str, Any]) -> dict[str, list[list[str]]]:
    """A book's ``asks`` and ``bids`` as OKX sends them: price, size, ``"0"``, orders."""
    return {side: [[to_num(p), _size(symbol, q), "0", "1"] for p, q in book[side]]
            for side in ("asks", "bids")}


def _checksum(levels: dict[str, list[list[str]]]) -> int:
    """OKX's CRC32 of a book: the best 25 levels, bid then ask at each depth, as sent."""
    bids, asks = levels["bids"][:25], levels["asks"][:25]
    parts: list[str] = []
    for depth in range(max(len(bids), len(asks))):
        for side in (bids, asks):
            if depth < len(side):
                parts.extend(side[depth][:2])
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc
