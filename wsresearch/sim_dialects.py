"""How the simulator speaks each exchange: requests it accepts, replies, and message shapes.

A :class:`Dialect` turns the simulator's market events (trades, tickers, book
updates, heartbeats, in one generic shape) into one exchange's frames, for
the subscriptions each connection made in that exchange's own request format.
It acknowledges subscriptions as the exchange does, rejects unknown channels
and symbols with the exchange's error frame, answers its app-level ping, and
sends a book snapshot before the first update where the exchange does.
Sequence fields count per symbol (per connection for Coinbase's
``sequence_num``), so a ``sequence_gap`` fault shows up exactly as a real gap.

Only what the simulator needs is modelled: no auth, no unsubscribe, and book
checksums are not computed (they are sent as 0).
"""

from __future__ import annotations

import abc
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .exchanges import binance, bybit, coinbase, kraken, okx
from .spec import FeedSpec

__all__ = ["DIALECTS", "Dialect", "Subscriber"]


_RATES: dict[str, float] = {"trade": 20.0, "ticker": 10.0, "book": 20.0}
_RATES_WITH_HEARTBEAT: dict[str, float] = _RATES | {"heartbeat": 1.0}


def _text(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def _ms(ns: int) -> int:
    return ns // 1_000_000


def _iso(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:09d}Z"


def _seconds(ns: int) -> str:
    """Ns as Kraken v1's decimal seconds, e.g. ``"1618678142.557535"``."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return f"{seconds}.{rest // 1000:06d}"


def _num(value: Any) -> str:
    """A number as exchanges send it: text, without float noise."""
    return f"{float(value):.8f}".rstrip("0").rstrip(".")


@dataclass(eq=False)
class Subscriber:
    """One connection's subscriptions: (market stream, symbol) to the exchange channels."""

    index: int
    subs: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    heartbeats: bool = False
    seq: int = 0
    skip: int = 0
    last_ms: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, stream: str, symbol: str, channel: str) -> None:
        """Subscribe to ``stream`` events of ``symbol``, rendered as ``channel``."""
        self.subs.setdefault((stream, symbol), set()).add(channel)

    def distinct_ms(self, channel: str, symbol: str, ns: int) -> int:
        """``ns`` in ms, bumped past the last one sent on ``channel`` for ``symbol``.

        Exchanges that push a channel at most every few ms stamp each push with its
        own ms (OKX's tickers); a fast simulated market must not send two in one ms.
        """
        ms = max(_ms(ns), self.last_ms.get((channel, symbol), -1) + 1)
        self.last_ms[(channel, symbol)] = ms
        return ms

    def next_seq(self) -> int:
        """The next per-connection sequence number (a pending gap skips some)."""
        self.seq += 1 + self.skip
        self.skip = 0
        return self.seq


class Dialect(abc.ABC):
    """One exchange's wire format, as the simulator speaks it (subclass per exchange).

    Attributes
    ----------
    name
        The profile name.
    symbols
        Symbols traded by default, in the exchange's spelling.
    rates
        Default events per second per market stream.
    connection_sequence
        Sequence numbers count per connection (gaps go to connections, not symbols).
    gap_stream
        The market stream whose sequence numbers the adapter tracks, where a
        ``sequence_gap`` fault goes by default.
    """

    name: ClassVar[str]
    symbols: ClassVar[tuple[str, ...]]
    rates: ClassVar[dict[str, float]] = _RATES
    connection_sequence: ClassVar[bool] = False
    gap_stream: ClassVar[str] = "book"
    adapter: ClassVar[Callable[..., FeedSpec]]
    """The adapter module's ``spec`` function."""
    fixed: ClassVar[dict[str, Any]] = {}
    """Adapter options that pick the API this dialect speaks (``api="v1"``...)."""
    defaults: ClassVar[dict[str, Any]]
    """Adapter options used unless given: every channel the dialect serves."""

    def spec(self, url: str, symbols: Sequence[str], **options: Any) -> FeedSpec:
        """The adapter's spec for this dialect, pointed at ``url``, subscribing to ``symbols``."""
        return type(self).adapter(symbols, url=url, **(self.defaults | options | self.fixed))

    @abc.abstractmethod
    def on_request(self, client: Subscriber, text: str, market: Any) -> list[str]:
        """Handle one text request; return the frames to answer with."""

    @abc.abstractmethod
    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """The frames ``client`` gets for one market event (none if not subscribed)."""

    @staticmethod
    def channels_of(client: Subscriber, stream: str, symbol: str) -> set[str]:
        """The exchange channels ``client`` wants ``stream`` events of ``symbol`` as."""
        return client.subs.get((stream, symbol), set())


# -- Binance ---------------------------------------------------------------------------


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

    def on_request(self, client: Subscriber, text: str, market: Any) -> list[str]:
        """``SUBSCRIBE`` with stream names; an unknown stream is error code 2."""
        try:
            request = json.loads(text)
            method, params, ident = request["method"], request["params"], request.get("id")
        except (ValueError, KeyError, TypeError):
            return [_text({"error": {"code": 3, "msg": "Invalid JSON: expected a request"}})]
        if method != "SUBSCRIBE":
            return [_text({"result": None, "id": ident})]
        for name in params:
            symbol, _, rest = str(name).partition("@")
            channel = rest.partition("@")[0]
            if channel not in self._STREAMS or symbol not in market.symbols:
                return [_text({"error": {"code": 2, "msg": f"Invalid request: unknown stream "
                                                           f"'{name}'"}, "id": ident})]
            client.add(self._STREAMS[channel], symbol, f"{symbol}@{rest}")
        return [_text({"result": None, "id": ident})]

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """Combined-stream frames for each subscribed stream name."""
        frames = []
        ms = _ms(body["ts"])
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
            elif kind == "bookTicker":
                data = {"u": body["seq"], "s": upper, "b": body["bid"], "B": body["bid_size"],
                        "a": body["ask"], "A": body["ask_size"]}
            else:
                data = {"e": "depthUpdate", "E": ms, "s": upper, "U": body["seq"],
                        "u": body["seq"],
                        "b": [[_num(p), _num(q)] for p, q in body["bids"]],
                        "a": [[_num(p), _num(q)] for p, q in body["asks"]]}
            if self.fixed["market"] == "usdm":  # futures add transaction times and links
                data = self._usdm(kind, data, ms, body)
            frames.append(_text({"stream": name, "data": data}))
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
    """Binance USD-M futures: as spot, plus ``pu`` links on depth and transaction times."""

    name = "binance-usdm"
    fixed: ClassVar[dict[str, Any]] = {"market": "usdm"}
    defaults: ClassVar[dict[str, Any]] = BinanceDialect.defaults | {"depth_speed": "0ms"}


# -- Coinbase Advanced Trade -----------------------------------------------------------


class CoinbaseDialect(Dialect):
    """Coinbase Advanced Trade: ``ticker``, ``market_trades``, ``level2``, ``heartbeats``."""

    name = "coinbase"
    adapter = coinbase.spec
    fixed: ClassVar[dict[str, Any]] = {"api": "advanced"}
    defaults: ClassVar[dict[str, Any]] = {
        "channels": ("ticker", "market_trades", "level2", "heartbeats")}
    symbols = ("BTC-USD", "ETH-USD")
    rates = _RATES_WITH_HEARTBEAT
    connection_sequence = True
    _STREAMS: ClassVar[dict[str, str]] = {
        "ticker": "ticker", "market_trades": "trade", "level2": "book"}

    def _frame(self, client: Subscriber, channel: str, ts: int, events: list[Any]) -> str:
        return _text({"channel": channel, "client_id": "", "timestamp": _iso(ts),
                      "sequence_num": client.next_seq(), "events": events})

    def on_request(self, client: Subscriber, text: str, market: Any) -> list[str]:
        """One ``subscribe`` per channel; level2 starts with a snapshot."""
        try:
            request = json.loads(text)
            channel, products = request["channel"], list(request.get("product_ids", []))
        except (ValueError, KeyError, TypeError):
            return [_text({"type": "error", "message": "Failed to parse the request"})]
        unknown = [p for p in products if p not in market.symbols]
        if channel != "heartbeats" and channel not in self._STREAMS:
            return [_text({"type": "error", "message": "Failed to subscribe",
                           "reason": f"channel {channel!r} is not supported"})]
        if unknown:
            return [_text({"type": "error", "message": "Failed to subscribe",
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
        return {"side": side, "event_time": _iso(ts), "price_level": _num(price),
                "new_quantity": _num(size)}

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """One Advanced Trade frame per subscribed channel."""
        ts = body["ts"]
        if stream == "heartbeat":
            if not client.heartbeats:
                return []
            return [self._frame(client, "heartbeats", ts, [
                {"current_time": _iso(ts), "heartbeat_counter": client.seq + 1}])]
        if not self.channels_of(client, stream, symbol):
            return []
        if stream == "trade":
            trade = {"trade_id": str(body["trade_id"]), "product_id": symbol,
                     "price": body["price"], "size": body["size"],
                     "side": body["side"].upper(), "time": _iso(ts)}
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


# -- Coinbase Exchange -----------------------------------------------------------------


class CoinbaseExchangeDialect(Dialect):
    """The Coinbase Exchange feed: ``ticker``, ``matches``, ``level2``, ``heartbeat``.

    Matches start with a ``last_match``, level2 with a snapshot.
    """

    name = "coinbase-exchange"
    adapter = coinbase.spec
    fixed: ClassVar[dict[str, Any]] = {"api": "exchange"}
    defaults: ClassVar[dict[str, Any]] = {"channels": ("ticker", "matches", "level2", "heartbeat")}
    symbols = ("BTC-USD", "ETH-USD")
    rates = _RATES_WITH_HEARTBEAT
    gap_stream = "trade"
    _STREAMS: ClassVar[dict[str, str]] = {
        "ticker": "ticker", "matches": "trade", "level2": "book", "heartbeat": "heartbeat"}

    def on_request(self, client: Subscriber, text: str, market: Any) -> list[str]:
        """One ``subscribe`` for every channel; matches and level2 start with their state."""
        try:
            request = json.loads(text)
            products = [str(p) for p in request.get("product_ids", [])]
            channels = [c if isinstance(c, str) else c["name"] for c in request["channels"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            return [_text({"type": "error", "message": "Failed to parse the request"})]
        unknown = [p for p in products if p not in market.symbols]
        bad = [c for c in channels if c not in self._STREAMS]
        if unknown or bad:
            reason = (f"{unknown[0]} is not a valid product" if unknown
                      else f"{bad[0]} is not a valid channel")
            return [_text({"type": "error", "message": "Failed to subscribe", "reason": reason})]
        frames = [_text({"type": "subscriptions", "channels": [
            {"name": channel, "product_ids": products} for channel in channels]})]
        ts = _iso(market.time_ns())
        for channel in channels:
            for product in products:
                client.add(self._STREAMS[channel], product, channel)
                if channel == "matches":  # the last trade before subscribing
                    last = market.seq.get(("trade", product), 0)
                    frames.append(_text({
                        "type": "last_match", "trade_id": last, "maker_order_id": "m-0",
                        "taker_order_id": "t-0", "side": "buy", "size": "1",
                        "price": _num(market.price[product]), "product_id": product,
                        "sequence": last, "time": ts}))
                elif channel == "level2":
                    book = market.snapshot(product)
                    frames.append(_text({
                        "type": "snapshot", "product_id": product,
                        "bids": [[_num(p), _num(q)] for p, q in book["bids"]],
                        "asks": [[_num(p), _num(q)] for p, q in book["asks"]]}))
        return frames

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """Flat ``type`` messages per subscribed channel."""
        ts = _iso(body["ts"])
        if stream == "heartbeat":
            return [_text({"type": "heartbeat", "sequence": body["ts"] // 1_000_000,
                           "last_trade_id": 0, "product_id": product, "time": ts})
                    for (kind, product) in sorted(client.subs) if kind == "heartbeat"]
        if not self.channels_of(client, stream, symbol):
            return []
        if stream == "trade":
            side = "sell" if body["side"] == "buy" else "buy"  # the maker's side
            return [_text({"type": "match", "trade_id": body["seq"], "maker_order_id": "m-1",
                           "taker_order_id": "t-1", "side": side, "size": body["size"],
                           "price": body["price"], "product_id": symbol,
                           "sequence": body["trade_id"], "time": ts})]
        if stream == "ticker":
            return [_text({"type": "ticker", "sequence": body["seq"], "product_id": symbol,
                           "price": body["bid"], "best_bid": body["bid"],
                           "best_ask": body["ask"], "time": ts})]
        changes = ([["buy", _num(p), _num(q)] for p, q in body["bids"]]
                   + [["sell", _num(p), _num(q)] for p, q in body["asks"]])
        return [_text({"type": "l2update", "product_id": symbol, "changes": changes,
                       "time": ts})]


# -- Kraken v2 -------------------------------------------------------------------------


class KrakenDialect(Dialect):
    """Kraken spot v2: ``trade``, ``ticker``, ``book``, heartbeats and ``{"method": "ping"}``."""

    name = "kraken"
    adapter = kraken.spec
    fixed: ClassVar[dict[str, Any]] = {"api": "v2"}
    defaults: ClassVar[dict[str, Any]] = {"channels": ("trade", "ticker", "book")}
    symbols = ("BTC/USD", "ETH/USD")
    gap_stream = "trade"
    rates = _RATES_WITH_HEARTBEAT
    _STREAMS: ClassVar[dict[str, str]] = {"trade": "trade", "ticker": "ticker", "book": "book"}

    def on_request(self, client: Subscriber, text: str, market: Any) -> list[str]:
        """``subscribe`` per channel (book answers with a snapshot) and ``ping``."""
        ts = _iso(market.time_ns())
        try:
            request = json.loads(text)
            method = request["method"]
        except (ValueError, KeyError, TypeError):
            return [_text({"error": "Malformed request", "success": False})]
        if method == "ping":
            return [_text({"method": "pong", "time_in": ts, "time_out": ts})]
        params = request.get("params") or {}
        channel, symbols = params.get("channel"), list(params.get("symbol") or [])
        frames = []
        for symbol in symbols:
            if channel not in self._STREAMS or symbol not in market.symbols:
                frames.append(_text({"error": f"Currency pair not supported {symbol}"
                                     if channel in self._STREAMS else
                                     f"Channel {channel} not supported",
                                     "method": "subscribe", "success": False,
                                     "symbol": symbol, "time_in": ts, "time_out": ts}))
                continue
            client.add(self._STREAMS[channel], symbol, channel)
            client.heartbeats = True
            frames.append(_text({"method": "subscribe", "result": {"channel": channel,
                                                                   "symbol": symbol},
                                 "success": True, "time_in": ts, "time_out": ts}))
            if channel == "book":
                book = market.snapshot(symbol)
                frames.append(_text({"channel": "book", "type": "snapshot", "data": [
                    {"symbol": symbol, "checksum": 0,
                     "bids": [{"price": p, "qty": q} for p, q in book["bids"]],
                     "asks": [{"price": p, "qty": q} for p, q in book["asks"]]}]}))
        return frames

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """v2 ``update`` frames (numbers as JSON numbers, times ISO)."""
        if stream == "heartbeat":
            return [_text({"channel": "heartbeat"})] if client.heartbeats else []
        if not self.channels_of(client, stream, symbol):
            return []
        ts = body["ts"]
        if stream == "trade":
            item: dict[str, Any] = {
                "symbol": symbol, "side": body["side"], "price": float(body["price"]),
                "qty": float(body["size"]), "ord_type": "market", "trade_id": body["seq"],
                "timestamp": _iso(ts)}
            return [_text({"channel": "trade", "type": "update", "data": [item]})]
        if stream == "ticker":
            bid, ask = float(body["bid"]), float(body["ask"])
            item = {"symbol": symbol, "bid": bid, "bid_qty": float(body["bid_size"]),
                    "ask": ask, "ask_qty": float(body["ask_size"]), "last": bid,
                    "volume": 1000.0, "vwap": bid, "low": bid, "high": ask, "change": 0.0,
                    "change_pct": 0.0}
            return [_text({"channel": "ticker", "type": "update", "data": [item]})]
        item = {"symbol": symbol, "checksum": 0, "timestamp": _iso(ts),
                "bids": [{"price": p, "qty": q} for p, q in body["bids"]],
                "asks": [{"price": p, "qty": q} for p, q in body["asks"]]}
        return [_text({"channel": "book", "type": "update", "data": [item]})]


# -- Kraken v1 and Futures -------------------------------------------------------------


class KrakenV1Dialect(Dialect):
    """Kraken spot v1: arrays ``[channelID, payload, channelName, pair]``, ``event`` replies."""

    name = "kraken-v1"
    adapter = kraken.spec
    fixed: ClassVar[dict[str, Any]] = {"api": "v1"}
    defaults: ClassVar[dict[str, Any]] = {"channels": ("trade", "ticker", "book")}
    symbols = ("XBT/USD", "ETH/USD")
    rates = _RATES_WITH_HEARTBEAT
    _STREAMS: ClassVar[dict[str, str]] = {"trade": "trade", "ticker": "ticker", "book": "book"}

    def on_request(self, client: Subscriber, text: str, market: Any) -> list[str]:
        """``subscribe`` per pair (book answers with a snapshot), and ``ping``."""
        try:
            request = json.loads(text)
            event = request["event"]
        except (ValueError, KeyError, TypeError):
            return [_text({"event": "error", "errorMessage": "Malformed request"})]
        if event == "ping":
            return [_text({"event": "pong", "reqid": request.get("reqid")})]
        subscription = request.get("subscription") or {}
        name, depth = subscription.get("name"), subscription.get("depth", 10)
        frames = []
        for pair in request.get("pair") or []:
            if name not in self._STREAMS or pair not in market.symbols:
                frames.append(_text({
                    "errorMessage": f"Currency pair not supported {pair}"
                    if name in self._STREAMS else f"Subscription name invalid {name}",
                    "event": "subscriptionStatus", "pair": pair, "status": "error",
                    "subscription": subscription}))
                continue
            channel = f"book-{depth}" if name == "book" else str(name)
            client.add(self._STREAMS[str(name)], pair, channel)
            client.heartbeats = True
            frames.append(_text({"channelID": 100 + client.index, "channelName": channel,
                                 "event": "subscriptionStatus", "pair": pair,
                                 "status": "subscribed", "subscription": subscription}))
            if name == "book":
                book = market.snapshot(pair)
                seconds = _seconds(book["ts"])
                frames.append(_text([100 + client.index, {
                    "as": [[_num(p), _num(q), seconds] for p, q in book["asks"]],
                    "bs": [[_num(p), _num(q), seconds] for p, q in book["bids"]]},
                    channel, pair]))
        return frames

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """v1 arrays per subscribed channel; ``{"event": "heartbeat"}`` each second."""
        if stream == "heartbeat":
            return [_text({"event": "heartbeat"})] if client.heartbeats else []
        channel_id, seconds = 100 + client.index, _seconds(body["ts"])
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
                payload = {"b" if body["bids"] else "a": [
                    [_num(p), _num(q), seconds] for p, q in body["bids"] or body["asks"]],
                    "c": "0"}
            frames.append(_text([channel_id, payload, channel, symbol]))
        return frames


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

    def on_request(self, client: Subscriber, text: str, market: Any) -> list[str]:
        """``subscribe`` per feed; book and trade start with their snapshots."""
        try:
            request = json.loads(text)
            feed, products = request["feed"], [str(p) for p in request["product_ids"]]
        except (ValueError, KeyError, TypeError):
            return [_text({"event": "error", "message": "Json Error"})]
        if feed not in self._STREAMS:
            return [_text({"event": "error", "message": f"Invalid feed {feed}"})]
        unknown = [p for p in products if p not in market.symbols]
        if unknown:
            return [_text({"event": "error", "message": "Invalid product id"})]
        frames = [_text({"event": "subscribed", "feed": feed, "product_ids": products})]
        for product in products:
            client.add(self._STREAMS[feed], product, feed)
            if feed == "book":
                book = market.snapshot(product)
                frames.append(_text({
                    "feed": "book_snapshot", "product_id": product,
                    "timestamp": _ms(book["ts"]), "seq": book["seq"], "tickSize": None,
                    "bids": [{"price": p, "qty": q} for p, q in book["bids"]],
                    "asks": [{"price": p, "qty": q} for p, q in book["asks"]]}))
            elif feed == "trade":
                frames.append(_text({"feed": "trade_snapshot", "product_id": product,
                                     "trades": []}))
        return frames

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """One object per event and subscribed feed."""
        if not self.channels_of(client, stream, symbol):
            return []
        ms = _ms(body["ts"])
        if stream == "trade":
            return [_text({"feed": "trade", "product_id": symbol,
                           "uid": f"u-{body['trade_id']}", "side": body["side"],
                           "type": "fill", "seq": body["seq"], "time": ms,
                           "qty": float(body["size"]), "price": float(body["price"])})]
        if stream == "ticker":
            return [_text({"feed": "ticker_lite", "product_id": symbol,
                           "bid": float(body["bid"]), "ask": float(body["ask"]),
                           "change": 0.0, "premium": 0.0, "volume": 1000.0,
                           "tag": "perpetual", "pair": symbol[3:6] + ":USD", "dtm": 0,
                           "maturityTime": 0})]
        side, (price, qty) = (("buy", body["bids"][0]) if body["bids"]
                              else ("sell", body["asks"][0]))
        return [_text({"feed": "book", "product_id": symbol, "side": side,
                       "seq": body["seq"], "price": price, "qty": qty, "timestamp": ms})]


# -- Bybit v5 --------------------------------------------------------------------------


class BybitDialect(Dialect):
    """Bybit v5 public (linear): ``publicTrade``, ``tickers``, ``orderbook.N``; ``op`` ping."""

    name = "bybit"
    adapter = bybit.spec
    defaults: ClassVar[dict[str, Any]] = {"channels": ("publicTrade", "tickers", "orderbook")}
    symbols = ("BTCUSDT", "ETHUSDT")
    _STREAMS: ClassVar[dict[str, str]] = {
        "publicTrade": "trade", "tickers": "ticker", "orderbook": "book"}

    def on_request(self, client: Subscriber, text: str, market: Any) -> list[str]:
        """``subscribe`` with topics (books answer with a snapshot) and ``ping``."""
        conn = f"sim-{client.index}"
        try:
            request = json.loads(text)
            op = request["op"]
        except (ValueError, KeyError, TypeError):
            return [_text({"success": False, "ret_msg": "error:invalid request",
                           "conn_id": conn})]
        if op == "ping":
            return [_text({"success": True, "ret_msg": "pong", "conn_id": conn, "op": "ping"})]
        topics = [str(t) for t in request.get("args") or []]
        for topic in topics:
            parts = topic.split(".")
            if parts[0] not in self._STREAMS or parts[-1] not in market.symbols:
                return [_text({"success": False, "ret_msg": f"error:handler not found,"
                                                            f"topic:{topic}",
                               "conn_id": conn, "req_id": "", "op": op})]
        frames = [_text({"success": True, "ret_msg": "", "conn_id": conn, "req_id": "",
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
        ms = _ms(body["ts"])
        return _text({"topic": topic, "type": kind, "ts": ms, "data": {
            "s": body["symbol"], "b": [[_num(p), _num(q)] for p, q in body["bids"]],
            "a": [[_num(p), _num(q)] for p, q in body["asks"]], "u": body["seq"],
            "seq": body["seq"]}, "cts": ms})

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """Frames per subscribed topic."""
        frames = []
        ms = _ms(body["ts"])
        for topic in sorted(self.channels_of(client, stream, symbol)):
            if stream == "trade":
                frames.append(_text({"topic": topic, "type": "snapshot", "ts": ms, "data": [
                    {"T": ms, "s": symbol, "S": "Buy" if body["side"] == "buy" else "Sell",
                     "v": body["size"], "p": body["price"], "L": "PlusTick",
                     "i": f"t-{body['trade_id']}", "BT": False}]}))
            elif stream == "ticker":
                frames.append(_text({"topic": topic, "type": "snapshot", "cs": body["seq"],
                                     "ts": ms, "data": {
                                         "symbol": symbol, "lastPrice": body["bid"],
                                         "bid1Price": body["bid"],
                                         "bid1Size": body["bid_size"],
                                         "ask1Price": body["ask"],
                                         "ask1Size": body["ask_size"]}}))
            else:
                frames.append(self._book(topic, "delta", body))
        return frames


# -- OKX v5 ----------------------------------------------------------------------------


class OkxDialect(Dialect):
    """OKX v5 public: ``trades``, ``tickers``, ``books``; the text ``ping`` gets ``pong``."""

    name = "okx"
    adapter = okx.spec
    defaults: ClassVar[dict[str, Any]] = {"channels": ("trades", "tickers", "books")}
    symbols = ("BTC-USDT", "ETH-USDT")
    _STREAMS: ClassVar[dict[str, str]] = {"trades": "trade", "tickers": "ticker", "books": "book"}

    def on_request(self, client: Subscriber, text: str, market: Any) -> list[str]:
        """``subscribe`` with args (books answer with a snapshot); ``ping`` as text."""
        conn = f"sim-{client.index}"
        if text == "ping":
            return ["pong"]
        try:
            request = json.loads(text)
            args = [dict(a) for a in request["args"]]
        except (ValueError, KeyError, TypeError):
            return [_text({"event": "error", "code": "60012",
                           "msg": f"Invalid request: {text[:100]}", "connId": conn})]
        frames = []
        for arg in args:
            channel, symbol = str(arg.get("channel")), str(arg.get("instId"))
            if channel not in self._STREAMS or symbol not in market.symbols:
                frames.append(_text({"event": "error", "code": "60018",
                                     "msg": f"Wrong URL or channel:{channel},instId:{symbol} "
                                            "doesn't exist.", "connId": conn}))
                continue
            client.add(self._STREAMS[channel], symbol, channel)
            frames.append(_text({"event": "subscribe", "arg": arg, "connId": conn}))
            if channel == "books":
                book = market.snapshot(symbol)
                frames.append(self._book(symbol, "snapshot", book, -1))
        return frames

    @staticmethod
    def _book(symbol: str, action: str, body: dict[str, Any], prev: int) -> str:
        return _text({"arg": {"channel": "books", "instId": symbol}, "action": action, "data": [{
            "asks": [[_num(p), _num(q), "0", "1"] for p, q in body["asks"]],
            "bids": [[_num(p), _num(q), "0", "1"] for p, q in body["bids"]],
            "ts": str(_ms(body["ts"])), "checksum": 0, "seqId": body["seq"],
            "prevSeqId": prev}]})

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """``data`` frames per subscribed channel."""
        if not self.channels_of(client, stream, symbol):
            return []
        ts = str(_ms(body["ts"]))
        if stream == "trade":
            return [_text({"arg": {"channel": "trades", "instId": symbol}, "data": [
                {"instId": symbol, "tradeId": str(body["trade_id"]), "px": body["price"],
                 "sz": body["size"], "side": body["side"], "ts": ts}]})]
        if stream == "ticker":
            ts = str(client.distinct_ms("tickers", symbol, body["ts"]))
            return [_text({"arg": {"channel": "tickers", "instId": symbol}, "data": [
                {"instType": "SPOT", "instId": symbol, "last": body["bid"], "lastSz": "1",
                 "askPx": body["ask"], "askSz": body["ask_size"], "bidPx": body["bid"],
                 "bidSz": body["bid_size"], "open24h": body["bid"], "high24h": body["ask"],
                 "low24h": body["bid"], "volCcy24h": "1000", "vol24h": "10", "ts": ts}]})]
        return [self._book(symbol, "update", body, body["seq"] - 1)]


DIALECTS: dict[str, Dialect] = {
    dialect.name: dialect
    for dialect in (BinanceDialect(), BinanceUsdmDialect(), CoinbaseDialect(),
                    CoinbaseExchangeDialect(), KrakenDialect(), KrakenV1Dialect(),
                    KrakenFuturesDialect(), BybitDialect(), OkxDialect())
}
"""Exchange profiles of the simulator, by name."""
