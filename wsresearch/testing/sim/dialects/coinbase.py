"""The simulator speaking Coinbase: Advanced Trade and the Exchange feed.

Advanced Trade numbers every frame per connection (``sequence_num``), so a
``sequence_gap`` fault goes to connections; the Exchange feed starts matches
with a ``last_match`` and level2 with a snapshot. See
:mod:`wsresearch.exchanges.coinbase` for the client side.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from ....exchanges import coinbase
from ..market import Market
from ._base import (
    RATES_WITH_HEARTBEAT,
    Dialect,
    Subscriber,
    to_iso,
    to_json,
    to_num,
)

__all__ = ["CoinbaseDialect", "CoinbaseExchangeDialect"]


class CoinbaseDialect(Dialect):
    """Coinbase Advanced Trade: ``ticker``, ``market_trades``, ``level2``, ``heartbeats``."""

    name = "coinbase"
    adapter = coinbase.spec
    fixed: ClassVar[dict[str, Any]] = {"api": "advanced"}
    defaults: ClassVar[dict[str, Any]] = {
        "channels": ("ticker", "market_trades", "level2", "heartbeats")}
    symbols = ("BTC-USD", "ETH-USD")
    rates = RATES_WITH_HEARTBEAT
    connection_sequence = True
    _STREAMS: ClassVar[dict[str, str]] = {
        "ticker": "ticker", "market_trades": "trade", "level2": "book"}

    def _frame(self, client: Subscriber, channel: str, ts: int, events: list[Any]) -> str:
        return to_json({"channel": channel, "client_id": "", "timestamp": to_iso(ts),
                      "sequence_num": client.next_seq(), "events": events})

    def on_request(self, client: Subscriber, text: str, market: Market) -> list[str]:
        """One ``subscribe`` per channel; level2 starts with a snapshot."""
        try:
            request = json.loads(text)
            channel, products = request["channel"], list(request.get("product_ids", []))
        except (ValueError, KeyError, TypeError):
            return [to_json({"type": "error", "message": "Failed to parse the request"})]
        if request.get("type") == "unsubscribe":
            for product in products:
                client.remove(self._STREAMS.get(channel), product, channel)
            return [self._frame(client, "subscriptions", market.time_ns(),
                                [{"subscriptions": {}}])]
        unknown = [p for p in products if p not in market.symbols]
        if channel != "heartbeats" and channel not in self._STREAMS:
            return [to_json({"type": "error", "message": "Failed to subscribe",
                           "reason": f"channel {channel!r} is not supported"})]
        if unknown:
            return [to_json({"type": "error", "message": "Failed to subscribe",
                           "reason": f"{unknown[0]} is not a valid product"})]
        ts = market.time_ns()
        frames = [self._frame(client, "subscriptions", ts,
                              [{"subscriptions": {channel: products}}])]
        if channel == "heartbeats":
            client.heartbeats = True
            return frames
        for product in products:
            client.add(self._STREAMS[channel], product, channel)
            if channel == "level2":
                book = market.snapshot(product)
                updates = ([self._level("bid", p, q, ts) for p, q in book["bids"]]
                           + [self._level("offer", p, q, ts) for p, q in book["asks"]])
                frames.append(self._frame(client, "l2_data", ts, [
                    {"type": "snapshot", "product_id": product, "updates": updates}]))
        return frames

    @staticmethod
    def _level(side: str, price: float, size: float, ts: int) -> dict[str, str]:
        return {"side": side, "event_time": to_iso(ts), "price_level": to_num(price),
                "new_quantity": to_num(size)}

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """One Advanced Trade frame per subscribed channel."""
        ts = body["ts"]
        if stream == "heartbeat":
            if not client.heartbeats:
                return []
            return [self._frame(client, "heartbeats", ts, [
                {"current_time": to_iso(ts), "heartbeat_counter": client.seq + 1}])]
        if not self.channels_of(client, stream, symbol):
            return []
        if stream == "trade":
            trade = {"trade_id": str(body["trade_id"]), "product_id": symbol,
                     "price": body["price"], "size": body["size"],
                     "side": body["side"].upper(), "time": to_iso(ts)}
            return [self._frame(client, "market_trades", ts,
                                [{"type": "update", "trades": [trade]}])]
        if stream == "ticker":
            ticker = {"type": "ticker", "product_id": symbol, "price": body["bid"],
                      "best_bid": body["bid"], "best_bid_quantity": body["bid_size"],
                      "best_ask": body["ask"], "best_ask_quantity": body["ask_size"]}
            return [self._frame(client, "ticker", ts, [{"type": "update", "tickers": [ticker]}])]
        updates = ([self._level("bid", p, q, ts) for p, q in body["bids"]]
                   + [self._level("offer", p, q, ts) for p, q in body["asks"]])
        return [self._frame(client, "l2_data", ts, [
            {"type": "update", "product_id": symbol, "updates": updates}])]




class CoinbaseExchangeDialect(Dialect):
    """The Coinbase Exchange feed: ``ticker``, ``matches``, ``level2``, ``heartbeat``.

    Matches start with a ``last_match``, level2 with a snapshot.
    """

    name = "coinbase-exchange"
    adapter = coinbase.spec
    fixed: ClassVar[dict[str, Any]] = {"api": "exchange"}
    defaults: ClassVar[dict[str, Any]] = {"channels": ("ticker", "matches", "level2", "heartbeat")}
    symbols = ("BTC-USD", "ETH-USD")
    rates = RATES_WITH_HEARTBEAT
    gap_stream = "trade"
    _STREAMS: ClassVar[dict[str, str]] = {
        "ticker": "ticker", "matches": "trade", "level2": "book", "heartbeat": "heartbeat"}

    def on_request(self, client: Subscriber, text: str, market: Market) -> list[str]:
        """One ``subscribe`` for every channel; matches and level2 start with their state."""
        try:
            request = json.loads(text)
            products = [str(p) for p in request.get("product_ids", [])]
            channels = [c if isinstance(c, str) else c["name"] for c in request["channels"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            return [to_json({"type": "error", "message": "Failed to parse the request"})]
        unknown = [p for p in products if p not in market.symbols]
        bad = [c for c in channels if c not in self._STREAMS]
        if unknown or bad:
            reason = (f"{unknown[0]} is not a valid product" if unknown
                      else f"{bad[0]} is not a valid channel")
            return [to_json({"type": "error", "message": "Failed to subscribe", "reason": reason})]
        frames = [to_json({"type": "subscriptions", "channels": [
            {"name": channel, "product_ids": products} for channel in channels]})]
        ts = to_iso(market.time_ns())
        for channel in channels:
            for product in products:
                client.add(self._STREAMS[channel], product, channel)
                if channel == "matches":  # the last trade before subscribing
                    last = market.seq.get(("trade", product), 0)
                    frames.append(to_json({
                        "type": "last_match", "trade_id": last, "maker_order_id": "m-0",
                        "taker_order_id": "t-0", "side": "buy", "size": "1",
                        "price": to_num(market.price[product]), "product_id": product,
                        "sequence": last, "time": ts}))
                elif channel == "level2":
                    book = market.snapshot(product)
                    frames.append(to_json({
                        "type": "snapshot", "product_id": product,
                        "bids": [[to_num(p), to_num(q)] for p, q in book["bids"]],
                        "asks": [[to_num(p), to_num(q)] for p, q in book["asks"]]}))
        return frames

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """Flat ``type`` messages per subscribed channel."""
        ts = to_iso(body["ts"])
        if stream == "heartbeat":
            return [to_json({"type": "heartbeat", "sequence": body["ts"] // 1_000_000,
                           "last_trade_id": 0, "product_id": product, "time": ts})
                    for (kind, product) in sorted(client.subs) if kind == "heartbeat"]
        if not self.channels_of(client, stream, symbol):
            return []
        if stream == "trade":
            side = "sell" if body["side"] == "buy" else "buy"  # the maker's side
            return [to_json({"type": "match", "trade_id": body["seq"], "maker_order_id": "m-1",
                           "taker_order_id": "t-1", "side": side, "size": body["size"],
                           "price": body["price"], "product_id": symbol,
                           "sequence": body["trade_id"], "time": ts})]
        if stream == "ticker":
            return [to_json({"type": "ticker", "sequence": body["seq"], "product_id": symbol,
                           "price": body["bid"], "best_bid": body["bid"],
                           "best_ask": body["ask"], "time": ts})]
        changes = ([["buy", to_num(p), to_num(q)] for p, q in body["bids"]]
                   + [["sell", to_num(p), to_num(q)] for p, q in body["asks"]])
        return [to_json({"type": "l2update", "product_id": symbol, "changes": changes,
                       "time": ts})]
