"""The simulator speaking Binance's combined streams, spot and USD-M futures.

Requests are ``SUBSCRIBE`` with stream names (``btcusdt@trade``); every frame
names its stream (``{"stream": ..., "data": ...}``), as the combined-stream
endpoint does. USD-M frames add transaction times and the ``pu`` link of depth
updates, and serve perpetuals' ``markPrice`` (mark, index, funding) and ``forceOrder``
(liquidations). See :mod:`wsresearch.exchanges.binance` for the client side.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from ....exchanges import binance
from ..market import Market
from ._base import (
    RATES_WITH_DERIVATIVES,
    Dialect,
    Subscriber,
    to_json,
    to_ms,
    to_num,
)

__all__ = ["BinanceDialect", "BinanceUsdmDialect"]


class BinanceDialect(Dialect):
    """Binance spot combined streams: ``trade``, ``aggTrade``, ``bookTicker``, ``depth``."""

    name = "binance"
    symbols = ("btcusdt", "ethusdt")
    adapter = binance.spec
    fixed: ClassVar[dict[str, Any]] = {"market": "spot"}
    defaults: ClassVar[dict[str, Any]] = {"channels": ("trade", "bookTicker", "depth"),
                                          "depth_speed": "100ms"}
    _STREAMS: ClassVar[dict[str, str]] = {
        "trade": "trade", "aggTrade": "trade", "bookTicker": "ticker", "depth": "book"}
    serves_rest = True
    snapshots_in_band = False
    rest_path: ClassVar[str] = "/api/v3/depth"

    def rest(self, path: str, query: dict[str, str], market: Market, stale: int = 0,
             ) -> Any | None:
        """``GET /api/v3/depth?symbol=BTCUSDT`` (USD-M: ``/fapi/v1/depth``): the book now."""
        symbol = query.get("symbol", "").lower()
        if path != self.rest_path or symbol not in market.symbols:
            return None
        book = market.snapshot(symbol)
        body: dict[str, Any] = {"lastUpdateId": book["seq"] - stale}
        if self.fixed["market"] == "usdm":
            ms = to_ms(book["ts"])
            body |= {"E": ms, "T": ms}
        return body | {side: [[to_num(p), to_num(q)] for p, q in book[side]]
                       for side in ("bids", "asks")}

    def on_request(self, client: Subscriber, text: str, market: Market) -> list[str]:
        """``SUBSCRIBE`` with stream names; an unknown stream is error code 2."""
        try:
            request = json.loads(text)
            method, params, ident = request["method"], request["params"], request.get("id")
        except (ValueError, KeyError, TypeError):
            return [to_json({"error": {"code": 3, "msg": "Invalid JSON: expected a request"}})]
        if method != "SUBSCRIBE":
            return [to_json({"result": None, "id": ident})]
        for name in params:
            symbol, _, tail = str(name).partition("@")
            channel = tail.partition("@")[0]
            if channel not in self._STREAMS or symbol not in market.symbols:
                return [to_json({"error": {"code": 2, "msg": f"Invalid request: unknown stream "
                                                           f"'{name}'"}, "id": ident})]
            client.add(self._STREAMS[channel], symbol, f"{symbol}@{tail}")
            if channel == "bookTicker":  # a new subscriber's first top is the next change
                client.last_id[(f"{symbol}@{tail}", symbol)] = market.book_seq(symbol)
        return [to_json({"result": None, "id": ident})]

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """Combined-stream frames for each subscribed stream name."""
        frames = []
        ms = to_ms(body["ts"])
        for name in sorted(self.channels_of(client, stream, symbol)):
            kind = name.partition("@")[2].partition("@")[0]
            upper = symbol.upper()
            if kind == "trade":
                data = {"e": "trade", "E": ms, "s": upper, "t": body["seq"], "p": body["price"],
                        "q": body["size"], "T": ms, "m": body["side"] == "sell", "M": True}
            elif kind == "aggTrade":
                data = {"e": "aggTrade", "E": ms, "s": upper, "a": body["seq"],
                        "p": body["price"], "q": body["size"], "f": body["trade_id"],
                        "l": body["trade_id"], "T": ms, "m": body["side"] == "sell", "M": True}
            elif kind == "bookTicker":  # u: the book's last update id, as Binance sends
                update_id = body.get("book_seq", body["seq"])
                if client.last_id.get((name, symbol)) == update_id:
                    continue  # Binance pushes the top only when the book changed
                client.last_id[(name, symbol)] = update_id
                data = {"u": update_id, "s": upper, "b": body["bid"],
                        "B": body["bid_size"],
                        "a": body["ask"], "A": body["ask_size"]}
            else:
                data = {"e": "depthUpdate", "E": ms, "s": upper, "U": body["seq"],
                        "u": body["seq"],
                        "b": [[to_num(p), to_num(q)] for p, q in body["bids"]],
                        "a": [[to_num(p), to_num(q)] for p, q in body["asks"]]}
            if self.fixed["market"] == "usdm":  # futures add transaction times and links
                data = self._usdm(kind, data, ms, body)
            frames.append(to_json({"stream": name, "data": data}))
        return frames

    @staticmethod
    def _usdm(kind: str, data: dict[str, Any], ms: int, body: dict[str, Any]) -> dict[str, Any]:
        if kind == "trade":
            data.pop("M")
            return data | {"X": "MARKET"}
        if kind == "bookTicker":
            return {"e": "bookTicker"} | data | {"T": ms, "E": ms}
        if kind == "depth":
            return data | {"T": ms, "pu": body["seq"] - 1}
        return data


class BinanceUsdmDialect(BinanceDialect):
    """Binance USD-M futures: as spot, plus ``pu`` links on depth and transaction times.

    And the perpetuals' streams: ``<symbol>@markPrice`` (or ``@markPrice@1s``), mark and
    index price with the funding rate and next funding time, and ``<symbol>@forceOrder``,
    liquidation orders.
    """

    name = "binance-usdm"
    fixed: ClassVar[dict[str, Any]] = {"market": "usdm"}
    rest_path: ClassVar[str] = "/fapi/v1/depth"
    defaults: ClassVar[dict[str, Any]] = BinanceDialect.defaults | {"depth_speed": "0ms"}
    rates = RATES_WITH_DERIVATIVES
    _STREAMS: ClassVar[dict[str, str]] = BinanceDialect._STREAMS | {
        "markPrice": "mark", "forceOrder": "liquidation"}

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """Combined-stream frames for each subscribed stream name, derivatives' too."""
        if stream not in ("mark", "liquidation"):
            return super().render(client, stream, symbol, body)
        payload = _mark_price if stream == "mark" else _force_order
        # Each push its own ms: a stream's messages are told apart by their event time.
        return [to_json({"stream": name, "data": payload(
                    symbol.upper(), body, client.distinct_ms(name, symbol, body["ts"]))})
                for name in sorted(self.channels_of(client, stream, symbol))]


def _mark_price(symbol: str, body: dict[str, Any], ms: int) -> dict[str, Any]:
    """A ``markPriceUpdate``: the estimated settle price of a perpetual is its index."""
    index = f"{body['index']:.8f}"
    return {"e": "markPriceUpdate", "E": ms, "s": symbol, "p": f"{body['mark']:.8f}",
            "i": index, "P": index, "r": f"{body['funding_rate']:.8f}",
            "T": to_ms(body["funding_time"])}


def _force_order(symbol: str, body: dict[str, Any], ms: int) -> dict[str, Any]:
    """A ``forceOrder``: an IOC limit order at the bankruptcy price, filled whole."""
    size = to_num(body["size"])
    return {"e": "forceOrder", "E": ms, "o": {
        "s": symbol, "S": body["side"].upper(), "o": "LIMIT", "f": "IOC", "q": size,
        "p": to_num(body["bankruptcy_price"]), "ap": to_num(body["price"]), "X": "FILLED",
        "l": size, "z": size, "T": ms}}
