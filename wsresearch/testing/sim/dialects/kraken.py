"""The simulator speaking Kraken: spot v2, spot v1 and Futures v1.

Each API has its own request and frame shapes (v2 objects, v1 arrays, Futures
``feed`` objects); books start with a snapshot, and v1 and v2 send heartbeats
once subscribed. See :mod:`wsresearch.exchanges.kraken` for the client side.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, ClassVar

from ....exchanges import kraken
from ..market import Market
from ._base import (
    RATES_WITH_HEARTBEAT,
    Dialect,
    Subscriber,
    to_iso,
    to_json,
    to_ms,
    to_num,
    to_seconds,
)

__all__ = ["KrakenDialect", "KrakenFuturesDialect", "KrakenV1Dialect"]


class KrakenDialect(Dialect):
    """Kraken spot v2: ``trade``, ``ticker``, ``book``, heartbeats and ``{"method": "ping"}``."""

    name = "kraken"
    adapter = kraken.spec
    fixed: ClassVar[dict[str, Any]] = {"api": "v2"}
    defaults: ClassVar[dict[str, Any]] = {"channels": ("trade", "ticker", "book")}
    symbols = ("BTC/USD", "ETH/USD")
    gap_stream = "trade"
    rates = RATES_WITH_HEARTBEAT
    _STREAMS: ClassVar[dict[str, str]] = {"trade": "trade", "ticker": "ticker", "book": "book"}
    PRECISION: ClassVar[tuple[int, int]] = (2, 8)
    """Every pair's price and quantity decimals, as the ``instrument`` channel says."""

    def on_request(self, client: Subscriber, text: str, market: Market) -> list[str]:
        """``subscribe`` per channel (book answers with a snapshot), ``unsubscribe``, ``ping``."""
        ts = to_iso(market.time_ns())
        try:
            request = json.loads(text)
            method = request["method"]
        except (ValueError, KeyError, TypeError):
            return [to_json({"error": "Malformed request", "success": False})]
        if method == "ping":
            return [to_json({"method": "pong", "time_in": ts, "time_out": ts})]
        params = request.get("params") or {}
        channel, symbols = params.get("channel"), list(params.get("symbol") or [])
        if method == "unsubscribe":
            for symbol in symbols:
                client.remove(self._STREAMS.get(str(channel)), symbol)
            return [to_json({"method": "unsubscribe", "result": {"channel": channel,
                                                                 "symbol": symbol},
                             "success": True, "time_in": ts, "time_out": ts})
                    for symbol in symbols]
        if channel == "instrument":
            price, qty = self.PRECISION
            return [to_json({"method": "subscribe", "result": {"channel": "instrument"},
                             "success": True, "time_in": ts, "time_out": ts}),
                    to_json({"channel": "instrument", "type": "snapshot", "data": {
                        "assets": [], "pairs": [
                            {"symbol": s, "price_precision": price, "qty_precision": qty,
                             "status": "online"} for s in market.symbols]}})]
        depth = int(params.get("depth", 10))
        frames = []
        for symbol in symbols:
            if channel not in self._STREAMS or symbol not in market.symbols:
                frames.append(to_json({"error": f"Currency pair not supported {symbol}"
                                     if channel in self._STREAMS else
                                     f"Channel {channel} not supported",
                                     "method": "subscribe", "success": False,
                                     "symbol": symbol, "time_in": ts, "time_out": ts}))
                continue
            client.add(self._STREAMS[channel], symbol,
                       f"book-{depth}" if channel == "book" else channel)
            client.heartbeats = True
            frames.append(to_json({"method": "subscribe", "result": {"channel": channel,
                                                                   "symbol": symbol},
                                 "success": True, "time_in": ts, "time_out": ts}))
            if channel == "book":
                book = market.snapshot(symbol)
                frames.append(to_json({"channel": "book", "type": "snapshot", "data": [
                    {"symbol": symbol, "checksum": self._checksum(book),
                     "bids": [{"price": p, "qty": q} for p, q in book["bids"]],
                     "asks": [{"price": p, "qty": q} for p, q in book["asks"]]}]}))
        return frames

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """v2 ``update`` frames (numbers as JSON numbers, times ISO)."""
        if stream == "heartbeat":
            return [to_json({"channel": "heartbeat"})] if client.heartbeats else []
        if not self.channels_of(client, stream, symbol):
            return []
        ts = body["ts"]
        if stream == "trade":
            item: dict[str, Any] = {
                "symbol": symbol, "side": body["side"], "price": float(body["price"]),
                "qty": float(body["size"]), "ord_type": "market", "trade_id": body["seq"],
                "timestamp": to_iso(ts)}
            return [to_json({"channel": "trade", "type": "update", "data": [item]})]
        if stream == "ticker":
            bid, ask = float(body["bid"]), float(body["ask"])
            item = {"symbol": symbol, "bid": bid, "bid_qty": float(body["bid_size"]),
                    "ask": ask, "ask_qty": float(body["ask_size"]), "last": bid,
                    "volume": 1000.0, "vwap": bid, "low": bid, "high": ask, "change": 0.0,
                    "change_pct": 0.0}
            return [to_json({"channel": "ticker", "type": "update", "data": [item]})]
        depth = int(next(iter(self.channels_of(client, stream, symbol))).partition("-")[2])
        side = "bids" if body["bids"] else "asks"
        levels = [{"price": p, "qty": q} for p, q in body[side]]
        top = body.get("top")
        checksum = 0
        if top is not None:  # the level now at the depth comes into scope, as Kraken sends
            if len(top[side]) >= depth:
                price, size = top[side][depth - 1]
                levels.append({"price": price, "qty": size})
            checksum = (self._checksum(top) + bool(body.get("bad_checksum"))) % 2**32
        item = {"symbol": symbol, "checksum": checksum, "timestamp": to_iso(ts),
                "bids": levels if side == "bids" else [], "asks": levels if side == "asks" else []}
        return [to_json({"channel": "book", "type": "update", "data": [item]})]

    @classmethod
    def _checksum(cls, top: dict[str, Any]) -> int:
        """CRC32 of the best 10 levels a side, each value with the pair's precision."""
        places = cls.PRECISION
        text = "".join(f"{value:.{n}f}".replace(".", "").lstrip("0")
                       for side in ("asks", "bids") for level in top[side][:10]
                       for value, n in zip(level, places, strict=True))
        return zlib.crc32(text.encode())




class KrakenV1Dialect(Dialect):
    """Kraken spot v1: arrays ``[channelID, payload, channelName, pair]``, ``event`` replies."""

    name = "kraken-v1"
    adapter = kraken.spec
    fixed: ClassVar[dict[str, Any]] = {"api": "v1"}
    defaults: ClassVar[dict[str, Any]] = {"channels": ("trade", "ticker", "book")}
    symbols = ("XBT/USD", "ETH/USD")
    rates = RATES_WITH_HEARTBEAT
    _STREAMS: ClassVar[dict[str, str]] = {"trade": "trade", "ticker": "ticker", "book": "book"}

    def on_request(self, client: Subscriber, text: str, market: Market) -> list[str]:
        """``subscribe`` per pair (book answers with a snapshot), and ``ping``."""
        try:
            request = json.loads(text)
            event = request["event"]
        except (ValueError, KeyError, TypeError):
            return [to_json({"event": "error", "errorMessage": "Malformed request"})]
        if event == "ping":
            return [to_json({"event": "pong", "reqid": request.get("reqid")})]
        subscription = request.get("subscription") or {}
        name, depth = subscription.get("name"), subscription.get("depth", 10)
        if event == "unsubscribe":
            return self._unsubscribe(client, request.get("pair") or [], subscription)
        frames = []
        for pair in request.get("pair") or []:
            if name not in self._STREAMS or pair not in market.symbols:
                frames.append(to_json({
                    "errorMessage": f"Currency pair not supported {pair}"
                    if name in self._STREAMS else f"Subscription name invalid {name}",
                    "event": "subscriptionStatus", "pair": pair, "status": "error",
                    "subscription": subscription}))
                continue
            channel = f"book-{depth}" if name == "book" else str(name)
            client.add(self._STREAMS[str(name)], pair, channel)
            client.heartbeats = True
            frames.append(to_json({"channelID": 100 + client.index, "channelName": channel,
                                 "event": "subscriptionStatus", "pair": pair,
                                 "status": "subscribed", "subscription": subscription}))
            if name == "book":
                book = market.snapshot(pair)
                seconds = to_seconds(book["ts"])
                frames.append(to_json([100 + client.index, {
                    "as": [[to_num(p), to_num(q), seconds] for p, q in book["asks"]],
                    "bs": [[to_num(p), to_num(q), seconds] for p, q in book["bids"]]},
                    channel, pair]))
        return frames

    def _unsubscribe(self, client: Subscriber, pairs: list[Any],
                     subscription: dict[str, Any]) -> list[str]:
        """``unsubscribe`` per pair: no more messages of it on this connection."""
        name, frames = subscription.get("name"), []
        for pair in pairs:
            client.remove(self._STREAMS.get(str(name)), pair)
            frames.append(to_json({"channelID": 100 + client.index, "event": "subscriptionStatus",
                                   "pair": pair, "status": "unsubscribed",
                                   "subscription": subscription}))
        return frames

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """v1 arrays per subscribed channel; ``{"event": "heartbeat"}`` each second."""
        if stream == "heartbeat":
            return [to_json({"event": "heartbeat"})] if client.heartbeats else []
        channel_id, seconds = 100 + client.index, to_seconds(body["ts"])
        frames = []
        for channel in sorted(self.channels_of(client, stream, symbol)):
            if stream == "trade":
                payload: Any = [[body["price"], body["size"], seconds,
                                 "b" if body["side"] == "buy" else "s", "m", ""]]
            elif stream == "ticker":
                bid, ask = body["bid"], body["ask"]
                payload = {"a": [ask, 1, body["ask_size"]], "b": [bid, 1, body["bid_size"]],
                           "c": [bid, "1"], "v": ["10", "20"], "p": [bid, bid], "t": [5, 9],
                           "l": [bid, bid], "h": [ask, ask], "o": [bid, bid]}
            else:
                payload = self._book_update(body, int(channel.partition("-")[2]), seconds)
            frames.append(to_json([channel_id, payload, channel, symbol]))
        return frames

    @staticmethod
    def _book_update(body: dict[str, Any], depth: int, seconds: str) -> dict[str, Any]:
        """A book update: the changed level, the level now at the subscribed depth, the CRC32.

        The level at the depth is republished (``"r"``), as Kraken sends a level coming
        into scope; the checksum covers the best 10 levels a side.
        """
        side = "bids" if body["bids"] else "asks"
        levels = [[to_num(p), to_num(q), seconds] for p, q in body[side]]
        top = body.get("top")
        checksum = 0
        if top is not None:
            if len(top[side]) >= depth:
                price, size = top[side][depth - 1]
                levels.append([to_num(price), to_num(size), seconds, "r"])
            text = "".join(to_num(v).replace(".", "").lstrip("0")
                           for s in ("asks", "bids") for level in top[s][:10] for v in level)
            checksum = zlib.crc32(text.encode()) + bool(body.get("bad_checksum"))
        return {side[0]: levels, "c": str(checksum % 2**32)}


class KrakenFuturesDialect(Dialect):
    """Kraken Futures v1: ``book`` and ``trade`` (snapshot, then ``seq``), ``ticker_lite``.

    A book update is one level; its ``seq`` follows the snapshot's.
    """

    name = "kraken-futures"
    adapter = kraken.spec
    fixed: ClassVar[dict[str, Any]] = {"api": "futures"}
    defaults: ClassVar[dict[str, Any]] = {"channels": ("trade", "book", "ticker_lite")}
    symbols = ("PI_XBTUSD", "PI_ETHUSD")
    _STREAMS: ClassVar[dict[str, str]] = {"trade": "trade", "book": "book",
                                          "ticker_lite": "ticker"}

    def on_request(self, client: Subscriber, text: str, market: Market) -> list[str]:
        """``subscribe`` per feed; book and trade start with their snapshots."""
        try:
            request = json.loads(text)
            feed, products = request["feed"], [str(p) for p in request["product_ids"]]
        except (ValueError, KeyError, TypeError):
            return [to_json({"event": "error", "message": "Json Error"})]
        if feed not in self._STREAMS:
            return [to_json({"event": "error", "message": f"Invalid feed {feed}"})]
        unknown = [p for p in products if p not in market.symbols]
        if unknown:
            return [to_json({"event": "error", "message": "Invalid product id"})]
        if request.get("event") == "unsubscribe":
            for product in products:
                client.remove(self._STREAMS[feed], product, feed)
            return [to_json({"event": "unsubscribed", "feed": feed, "product_ids": products})]
        frames = [to_json({"event": "subscribed", "feed": feed, "product_ids": products})]
        for product in products:
            client.add(self._STREAMS[feed], product, feed)
            if feed == "book":
                book = market.snapshot(product)
                frames.append(to_json({
                    "feed": "book_snapshot", "product_id": product,
                    "timestamp": to_ms(book["ts"]), "seq": book["seq"], "tickSize": None,
                    "bids": [{"price": p, "qty": q} for p, q in book["bids"]],
                    "asks": [{"price": p, "qty": q} for p, q in book["asks"]]}))
            elif feed == "trade":
                frames.append(to_json({"feed": "trade_snapshot", "product_id": product,
                                     "trades": []}))
        return frames

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """One object per event and subscribed feed."""
        if not self.channels_of(client, stream, symbol):
            return []
        ms = to_ms(body["ts"])
        if stream == "trade":
            return [to_json({"feed": "trade", "product_id": symbol,
                           "uid": f"u-{body['trade_id']}", "side": body["side"],
                           "type": "fill", "seq": body["seq"], "time": ms,
                           "qty": float(body["size"]), "price": float(body["price"])})]
        if stream == "ticker":
            return [to_json({"feed": "ticker_lite", "product_id": symbol,
                           "bid": float(body["bid"]), "ask": float(body["ask"]),
                           "change": 0.0, "premium": 0.0, "volume": 1000.0,
                           "tag": "perpetual", "pair": symbol[3:6] + ":USD", "dtm": 0,
                           "maturityTime": 0})]
        side, (price, qty) = (("buy", body["bids"][0]) if body["bids"]
                              else ("sell", body["asks"][0]))
        return [to_json({"feed": "book", "product_id": symbol, "side": side,
                       "seq": body["seq"], "price": price, "qty": qty, "timestamp": ms})]
