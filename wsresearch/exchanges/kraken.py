"""Kraken: spot WebSocket v2 (``api="v2"``), spot v1 (``"v1"``) and Futures v1 (``"futures"``).

* **v2** (``wss://ws.kraken.com/v2``): JSON objects with ``channel``,
  ``type`` (``snapshot``/``update``) and a ``data`` list, one row per item;
  acks and pongs answer ``{"method": ...}`` requests; a ``heartbeat`` comes
  every second once subscribed; clients ping with ``{"method": "ping"}``.
* **v1** (``wss://ws.kraken.com``): data messages are JSON *arrays*
  ``[channelID, payload..., channelName, pair]``; events are objects with
  ``event``. Times are decimal seconds (converted exactly to ns).
* **Futures v1** (``wss://futures.kraken.com/ws/v1``): objects with ``feed``;
  book updates carry ``seq`` per product, contiguous from the snapshot's.

Prices and sizes become ``float64`` (v1 sends them as decimal text, v2 and Futures as JSON
numbers); times are exact ns. Every channel declares its normalized tables
(:mod:`wsresearch.normalize`): ``trades`` with the taker's side (each API documents its
``side`` as the taker's), ``quotes``, ``book_changes``, ``candles`` (v2 ``ohlc``) and
``derivative_ticker`` (Futures ``ticker``); the tables name the exchange ``kraken`` (spot)
or ``kraken-futures``. See ``docs/exchanges/kraken.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from ..book import Book, BookRule, Books, Changes, apply_levels, kraken_checksum
from ..config import ConnectionConfig, StreamConfig
from ..layout import Layout
from ..sequence import Seq, runs
from ..spec import Channel, FeedSpec
from ._common import (
    Flat,
    NsFromIso,
    NsFromMs,
    NsFromSeconds,
    app_ping,
    assemble,
    check_channels,
    check_choice,
    check_symbols,
)

__all__ = [
    "APIS", "CHANNELS", "FUTURES_BOOK_LAYOUT", "OHLC_INTERVALS", "FuturesBook",
    "FuturesBookSnapshot", "FuturesTicker", "FuturesTickerLite", "FuturesTrade",
    "FuturesTradeSnapshot", "V1Book", "V1Ticker", "V1Trades", "V2Book", "V2Ohlc", "V2Ticker",
    "V2Trades", "spec",
]

APIS: dict[str, str] = {
    "v2": "wss://ws.kraken.com/v2",
    "v1": "wss://ws.kraken.com",
    "futures": "wss://futures.kraken.com/ws/v1",
}
"""API name to its URL."""

CHANNELS: dict[str, tuple[str, ...]] = {
    "v2": ("trade", "ticker", "book", "ohlc", "instrument"),
    "v1": ("trade", "ticker", "book"),
    "futures": ("trade", "book", "ticker_lite", "ticker"),
}
"""Channels each API offers."""

OHLC_INTERVALS: tuple[int, ...] = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
"""The v2 ``ohlc`` candle lengths Kraken offers, in minutes."""

_SYMBOL = {"v2": (r"[A-Z0-9]{1,10}/[A-Z0-9]{1,10}", "BTC/USD"),
           "v1": (r"[A-Z0-9]{1,10}/[A-Z0-9]{1,10}", "XBT/USD"),
           "futures": (r"(PI|PF|FI|FF|IN|RR)_[A-Z0-9]{4,16}(_\d{6})?", "PI_XBTUSD")}
_BOOK_DEPTHS = (10, 25, 100, 500, 1000)


# -- normalized tables (shared) ----------------------------------------------------

_KEEP = ("recv_wall_ns", "generation", "frame_seq")


def _levels(native: pl.LazyFrame, amount: str, level_time: str | None = None) -> pl.LazyFrame:
    """One row per level of the ``bids`` and ``asks`` lists: ``side``, ``price``, ``amount``.

    ``amount`` names the level's size field; ``level_time`` its own time field (v1), which
    becomes ``exchange_time``. A message's bids come first, then its asks, each in its order.
    """
    fields = [pl.element().struct.field("price"), pl.element().struct.field(amount).alias("amount")]
    if level_time is not None:
        fields.append(pl.element().struct.field(level_time).alias("exchange_time"))

    def side(column: str, name: str) -> pl.Expr:
        return pl.col(column).list.eval(pl.struct(*fields, pl.lit(name).alias("side")))

    return (native.with_columns(level=pl.concat_list(side("bids", "bid"), side("asks", "ask")))
            .explode("level").filter(pl.col("level").is_not_null()).unnest("level"))


def _taker_side(side: pl.Expr) -> pl.Expr:
    """``buy``/``sell`` from Kraken's ``buy``/``sell`` or v1's ``b``/``s`` (both the taker's)."""
    return side.replace_strict({"b": "buy", "s": "sell", "buy": "buy", "sell": "sell"},
                               return_dtype=pl.String)


# -- v2 ----------------------------------------------------------------------------


class _V2(Flat):
    """Message-level fields of a v2 data message."""

    type: Literal["snapshot", "update"]


class V2Trade(Flat):
    """One v2 trade."""

    symbol: str
    side: Literal["buy", "sell"]
    price: float
    qty: float
    ord_type: str
    trade_id: int
    timestamp_ns: NsFromIso = Field(alias="timestamp")


class V2Trades(_V2):
    """A v2 ``trade`` message: one row per trade."""

    data: list[V2Trade]


class V2TickerItem(Flat):
    """One v2 ticker."""

    symbol: str
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    last: float
    volume: float
    vwap: float
    low: float
    high: float
    change: float
    change_pct: float


class V2Ticker(_V2):
    """A v2 ``ticker`` message: one row per symbol."""

    data: list[V2TickerItem]


class V2Level(Flat):
    """One v2 book level; ``qty`` 0 removes it."""

    price: float
    qty: float


class V2BookItem(Flat):
    """One symbol's v2 book snapshot or update, with Kraken's CRC32 ``checksum``."""

    symbol: str
    bids: list[V2Level]
    asks: list[V2Level]
    checksum: int
    timestamp_ns: NsFromIso | None = Field(None, alias="timestamp")


class V2Book(_V2):
    """A v2 ``book`` message: one row per symbol."""

    data: list[V2BookItem]


class V2Pair(Flat):
    """One pair of the ``instrument`` channel: its price and quantity precision (decimals)."""

    symbol: str
    price_precision: int
    qty_precision: int
    status: str | None = None


class V2Instrument(_V2):
    """An ``instrument`` message: one row per pair (the book checksum needs its precisions)."""

    pairs: list[V2Pair]

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("data"), dict):
            return value | {"pairs": value["data"].get("pairs", [])}
        return value


class V2Candle(Flat):
    """One v2 candle: the running (or a recent) interval of one symbol."""

    symbol: str
    open: float
    high: float
    low: float
    close: float
    vwap: float
    trades: int
    volume: float
    interval_begin_ns: NsFromIso = Field(alias="interval_begin")
    interval: int


class V2Ohlc(_V2):
    """A v2 ``ohlc`` message: one row per candle; updates come on trades."""

    timestamp_ns: NsFromIso | None = Field(None, alias="timestamp")
    data: list[V2Candle]


def v2_type_of(message: Any) -> str | None:
    """v2 routing: ``channel`` for data; ``ack``/``pong``/``error`` for method replies."""
    if not isinstance(message, dict):
        return None
    channel = message.get("channel")
    if isinstance(channel, str):
        return channel
    if "method" in message:
        if message.get("success") is False or "error" in message:
            return "error"
        return "pong" if message["method"] == "pong" else "ack"
    return "error" if "error" in message else None


def _v2_trade_seq(message: V2Trades) -> Seq | None:
    if not message.data:
        return None
    ids = [t.trade_id for t in message.data]
    return Seq(min(ids), max(ids), reset=message.type == "snapshot")


def _v2_trades(native: pl.LazyFrame) -> pl.LazyFrame:
    # A snapshot re-sends the 50 trades before subscribing, again on every reconnect: they
    # stay native rows, but counted as trades they would repeat. ``side`` is the taker's.
    return native.filter(pl.col("type") == "update").with_columns(
        pl.col("trade_id").cast(pl.String), amount="qty", side=_taker_side(pl.col("side")),
        exchange_time="timestamp_ns")


def _v2_quotes(native: pl.LazyFrame) -> pl.LazyFrame:
    return native.with_columns(bid_price="bid", bid_amount="bid_qty", ask_price="ask",
                               ask_amount="ask_qty")


def _v2_book_changes(native: pl.LazyFrame) -> pl.LazyFrame:
    return _levels(native.select("symbol", "bids", "asks", *_KEEP,
                                 is_snapshot=pl.col("type") == "snapshot",
                                 exchange_time="timestamp_ns"), "qty")


def _v2_candles(native: pl.LazyFrame) -> pl.LazyFrame:
    # Kraken sends no "closed" flag: a candle is closed once its interval has ended by the
    # message's own time (the snapshot's earlier candles); the running one is not.
    end = pl.col("interval_begin_ns") + pl.col("interval") * 60_000_000_000
    return native.with_columns(
        pl.col("interval").cast(pl.String), open_time="interval_begin_ns",
        closed=end <= pl.col("timestamp_ns"), exchange_time="timestamp_ns")


_V2_CHANNELS = {
    "trade": Channel(name="trade", model=V2Trades, explode="data",
                     # trade ids count per symbol: the symbol is part of the key.
                     dedupe_key=lambda f: tuple((t.symbol, t.trade_id) for t in f.data),
                     # trade ids count per symbol; a message holds one symbol's trades.
                     sequence=_v2_trade_seq,
                     sequence_key=lambda f: f.data[0].symbol if f.data else None,
                     exchange_time=lambda f: f.data[0].timestamp_ns if f.data else None,
                     normalized={"trades": _v2_trades}),
    "ticker": Channel(name="ticker", model=V2Ticker, explode="data",
                      normalized={"quotes": _v2_quotes}),
    "book": Channel(name="book", model=V2Book, explode="data",
                    normalized={"book_changes": _v2_book_changes}),
    "ohlc": Channel(name="ohlc", model=V2Ohlc, explode="data",
                    exchange_time="timestamp_ns",
                    normalized={"candles": _v2_candles}),
    "instrument": Channel(name="instrument", model=V2Instrument, explode="pairs"),
}


class V2BookSync(BookRule):
    """Kraken v2 books: a snapshot, then updates checked against their CRC32 checksum.

    As v1 (levels beyond the subscribed depth are dropped), but v2 sends prices and
    quantities as JSON numbers: the checksum formats each with its pair's precision, from
    the ``instrument`` channel (subscribed with ``book``). Until those precisions arrive,
    checksums are not checked (and not counted). v2 checks the snapshot's checksum too.
    """

    channels = frozenset({"book", "instrument"})

    def __init__(self, depth: int) -> None:
        self.max_depth = depth

    def resubscribe(self, symbol: str) -> list[Any]:
        return [{"method": method, "params": {"channel": "book", "symbol": [symbol],
                                              "depth": self.max_depth}}
                for method in ("unsubscribe", "subscribe")]

    def apply(self, books: Books, channel: str, message: Any, mono_ns: int,
              wall_ns: int) -> None:
        precisions: dict[str, tuple[int, int]] = books.meta.setdefault("precision", {})
        if channel == "instrument":
            for pair in message.pairs:
                precisions[pair.symbol] = (pair.price_precision, pair.qty_precision)
            return
        snapshot = message.type == "snapshot"
        for item in message.data:
            book = books.book(item.symbol)
            if snapshot:
                book.clear()
            elif not book.valid:
                book.touched(mono_ns, wall_ns, item.timestamp_ns)
                continue
            apply_levels(book, "bid", item.bids, "qty")
            apply_levels(book, "ask", item.asks, "qty")
            if snapshot:
                book.snapshot_done(mono_ns)
            else:
                book.truncate()
            precision = precisions.get(item.symbol)
            if precision is not None:
                if kraken_checksum(book, precision) == item.checksum:
                    book.stats.checksums_ok += 1
                else:
                    book.stats.checksums_failed += 1
                    book.mark_invalid("checksum mismatch", mono_ns)
            book.touched(mono_ns, wall_ns, item.timestamp_ns)


# -- v1 ----------------------------------------------------------------------------


def _v1_parts(value: Any) -> tuple[int, list[Any], str, str] | None:
    """``[channelID, payload..., channelName, pair]`` split, or ``None`` for other shapes."""
    if (isinstance(value, list) and len(value) >= 4 and isinstance(value[-1], str)
            and isinstance(value[-2], str)):
        return value[0], value[1:-2], value[-2], value[-1]
    return None


class V1Trade(Flat):
    """One v1 trade: side ``b``/``s``, order type ``m``/``l``."""

    price: float
    volume: float
    time_ns: NsFromSeconds
    side: Literal["b", "s"]
    order_type: Literal["m", "l"]
    misc: str


class _V1Frame(Flat):
    """A v1 data message: ``[channelID, payload..., channelName, pair]`` on the wire."""

    channel_id: int
    pair: str

    @model_validator(mode="before")
    @classmethod
    def _from_array(cls, value: Any) -> Any:
        parts = _v1_parts(value)
        if parts is None:
            return value
        channel_id, payload, name, pair = parts
        fields = cls._fields(payload, name)
        if fields is None:
            return value
        return {"channel_id": channel_id, "pair": pair} | fields

    @classmethod
    def _fields(cls, payload: list[Any], name: str) -> dict[str, Any] | None:
        """The message's own fields from its payload (``None``: not this message's shape)."""
        raise ValueError(f"{cls.__name__} does not read v1 arrays")


class V1Trades(_V1Frame):
    """A v1 ``trade`` message: one row per trade."""

    trades: list[V1Trade]

    @classmethod
    def _fields(cls, payload: list[Any], name: str) -> dict[str, Any] | None:
        if len(payload) != 1 or not isinstance(payload[0], list) or not all(
                isinstance(t, list) for t in payload[0]):
            raise ValueError("a trade payload is a list of [price, volume, time, ...] lists")
        return {"trades": [dict(zip(("price", "volume", "time_ns", "side", "order_type", "misc"),
                                    t, strict=False)) for t in payload[0]]}


class V1Ticker(_V1Frame):
    """A v1 ``ticker`` message: best bid and ask, last trade, today's and 24 h figures."""

    ask: float
    ask_volume: float
    bid: float
    bid_volume: float
    last: float
    last_volume: float
    volume_today: float
    volume_24h: float
    vwap_today: float
    vwap_24h: float
    trades_today: int
    trades_24h: int
    low_today: float
    low_24h: float
    high_today: float
    high_24h: float
    open_today: float
    open_24h: float

    @classmethod
    def _fields(cls, payload: list[Any], name: str) -> dict[str, Any] | None:
        if not payload or not isinstance(payload[0], dict):
            return None
        t = payload[0]

        def pick(key: str, index: int) -> Any:
            entry = t.get(key)
            return entry[index] if isinstance(entry, list) and len(entry) > index else None

        return {
            "ask": pick("a", 0), "ask_volume": pick("a", 2),
            "bid": pick("b", 0), "bid_volume": pick("b", 2),
            "last": pick("c", 0), "last_volume": pick("c", 1),
            "volume_today": pick("v", 0), "volume_24h": pick("v", 1),
            "vwap_today": pick("p", 0), "vwap_24h": pick("p", 1),
            "trades_today": pick("t", 0), "trades_24h": pick("t", 1),
            "low_today": pick("l", 0), "low_24h": pick("l", 1),
            "high_today": pick("h", 0), "high_24h": pick("h", 1),
            "open_today": pick("o", 0), "open_24h": pick("o", 1),
        }


class V1Level(Flat):
    """One v1 book level; ``volume`` 0 removes it; ``republish`` marks a re-sent level.

    ``price_text`` and ``volume_text`` keep the decimal text as sent, trailing zeros
    included: Kraken's book checksum is computed on it.
    """

    price: float
    volume: float
    timestamp_ns: NsFromSeconds
    republish: bool = False
    price_text: str
    volume_text: str

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) >= 3:
            return {"price": value[0], "volume": value[1], "timestamp_ns": value[2],
                    "republish": len(value) > 3 and value[3] == "r",
                    "price_text": _text(value[0]), "volume_text": _text(value[1])}
        return value


def _text(value: Any) -> Any:
    """A number's text as sent (a JSON number's shortest form); anything else as it is."""
    return value if isinstance(value, str) else repr(value) if isinstance(value, float) \
        else str(value) if isinstance(value, int) else value


class V1Book(_V1Frame):
    """A v1 ``book-<depth>`` message: a snapshot (``snapshot``) or an update, with its checksum."""

    depth: int
    snapshot: bool
    asks: list[V1Level]
    bids: list[V1Level]
    checksum: int | None = None

    @classmethod
    def _fields(cls, payload: list[Any], name: str) -> dict[str, Any] | None:
        merged: dict[str, Any] = {}
        for part in payload:
            if not isinstance(part, dict):
                raise ValueError("a book payload is not an object")
            merged |= part
        snapshot = "as" in merged or "bs" in merged
        return {
            "depth": name.partition("-")[2] or None, "snapshot": snapshot,
            "asks": merged.get("as" if snapshot else "a", []),
            "bids": merged.get("bs" if snapshot else "b", []),
            "checksum": merged.get("c"),
        }


class V1BookSync(BookRule):
    """Kraken v1 books: a snapshot, then updates checked against their CRC32 checksum.

    An update applies its asks and bids, drops levels beyond the subscribed depth (Kraken
    sends no deletion for them), then its checksum (the best 10 levels of each side, as
    text) must match the book's; a mismatch makes the book invalid until a snapshot.
    Updates before the first snapshot are ignored.
    """

    channels = frozenset({"book"})

    def __init__(self, depth: int) -> None:
        self.max_depth = depth

    def resubscribe(self, symbol: str) -> list[Any]:
        subscription = {"name": "book", "depth": self.max_depth}
        return [{"event": event, "pair": [symbol], "subscription": subscription}
                for event in ("unsubscribe", "subscribe")]

    def apply(self, books: Books, channel: str, message: V1Book, mono_ns: int,
              wall_ns: int) -> None:
        book = books.book(message.pair)
        times = [level.timestamp_ns for level in (*message.asks, *message.bids)]
        if message.snapshot:
            book.clear()
            apply_levels(book, "ask", message.asks, "volume", text=True)
            apply_levels(book, "bid", message.bids, "volume", text=True)
            book.snapshot_done(mono_ns)
        elif book.valid:
            apply_levels(book, "ask", message.asks, "volume", text=True)
            apply_levels(book, "bid", message.bids, "volume", text=True)
            book.truncate()
            if message.checksum is not None:
                if kraken_checksum(book) == message.checksum:
                    book.stats.checksums_ok += 1
                else:
                    book.stats.checksums_failed += 1
                    book.mark_invalid("checksum mismatch", mono_ns)
        book.touched(mono_ns, wall_ns, max(times) if times else None)


def v1_type_of(message: Any) -> str | None:
    """v1 routing: the channel name of arrays (``book-10`` is ``book``); events by ``event``."""
    if isinstance(message, list):
        if len(message) < 4 or not isinstance(message[-2], str):
            return None
        return message[-2].partition("-")[0]
    if not isinstance(message, dict):
        return None
    event = message.get("event")
    if event == "subscriptionStatus":
        return "error" if message.get("status") == "error" else "subscriptionStatus"
    return event if isinstance(event, str) else None


def _v1_trades(native: pl.LazyFrame) -> pl.LazyFrame:
    # v1 gives trades no id; ``b``/``s`` is the taker's side.
    return native.with_columns(symbol="pair", amount="volume", side=_taker_side(pl.col("side")),
                               exchange_time="time_ns")


def _v1_quotes(native: pl.LazyFrame) -> pl.LazyFrame:
    return native.with_columns(symbol="pair", bid_price="bid", bid_amount="bid_volume",
                               ask_price="ask", ask_amount="ask_volume")


def _v1_book_changes(native: pl.LazyFrame) -> pl.LazyFrame:
    # Each v1 level carries its own update time: that is the row's exchange time.
    return _levels(native.select("bids", "asks", *_KEEP, symbol="pair",
                                 is_snapshot="snapshot"), "volume", level_time="timestamp_ns")


_V1_CHANNELS = {
    "trade": Channel(name="trade", model=V1Trades, explode="trades",
                     dedupe_key=lambda f: (f.pair, tuple((t.time_ns, t.price, t.volume)
                                                         for t in f.trades)),
                     exchange_time=lambda f: f.trades[0].time_ns if f.trades else None,
                     normalized={"trades": _v1_trades}),
    "ticker": Channel(name="ticker", model=V1Ticker, normalized={"quotes": _v1_quotes}),
    "book": Channel(name="book", model=V1Book, normalized={"book_changes": _v1_book_changes}),
}


# -- Futures -------------------------------------------------------------------------


class FuturesLevel(Flat):
    """One futures book level."""

    price: float
    qty: float


class FuturesBookSnapshot(Flat):
    """The full book of a product on subscribing; ``seq`` starts the count."""

    product_id: str
    seq: int
    timestamp_ns: NsFromMs = Field(alias="timestamp")
    bids: list[FuturesLevel]
    asks: list[FuturesLevel]


class FuturesBook(Flat):
    """One level change; ``qty`` 0 removes it; ``seq`` is the previous one's + 1."""

    product_id: str
    seq: int
    side: Literal["buy", "sell"]
    price: float
    qty: float
    timestamp_ns: NsFromMs = Field(alias="timestamp")


class FuturesTrade(Flat):
    """One futures trade (``type``: ``fill``, ``liquidation``, ``termination``, ``block``)."""

    product_id: str
    uid: str
    side: Literal["buy", "sell"]
    type: str
    seq: int
    time_ns: NsFromMs = Field(alias="time")
    qty: float
    price: float


class FuturesSnapshotTrade(Flat):
    """One trade of a ``trade_snapshot`` (the product is on the message)."""

    uid: str
    side: Literal["buy", "sell"]
    type: str
    seq: int
    time_ns: NsFromMs = Field(alias="time")
    qty: float
    price: float


class FuturesTradeSnapshot(Flat):
    """The last trades of a product on subscribing: one row per trade."""

    product_id: str
    trades: list[FuturesSnapshotTrade]


class FuturesTickerLite(Flat):
    """The light ticker: best bid and ask, 24 h change and volume."""

    product_id: str
    bid: float | None = None
    ask: float | None = None
    change: float | None = None
    premium: float | None = None
    volume: float | None = None
    tag: str | None = None
    pair: str | None = None
    dtm: int | None = None
    maturity_time_ns: NsFromMs | None = Field(None, alias="maturityTime")


class FuturesTicker(Flat):
    """The full ticker (every second): best prices with sizes, mark and index, funding, OI.

    For perpetuals, ``funding_rate`` is an absolute amount per contract and
    ``relative_funding_rate`` the rate as a fraction of the price; Kraken leaves out a
    funding field whose value is zero. ``next_funding_rate_time_ns`` is when the next
    funding is due (Kraken's text says "time until", but the value is an epoch time).
    """

    product_id: str
    time_ns: NsFromMs = Field(alias="time")
    bid: float | None = None
    ask: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    last: float | None = None
    index: float | None = None
    mark_price: float | None = Field(None, alias="markPrice")
    open_interest: float | None = Field(None, alias="openInterest")
    volume: float | None = None
    volume_quote: float | None = Field(None, alias="volumeQuote")
    change: float | None = None
    premium: float | None = None
    funding_rate: float | None = None
    funding_rate_prediction: float | None = None
    relative_funding_rate: float | None = None
    relative_funding_rate_prediction: float | None = None
    next_funding_rate_time_ns: NsFromMs | None = Field(None, alias="next_funding_rate_time")
    leverage: str | None = None
    suspended: bool | None = None
    post_only: bool | None = None
    tag: str | None = None
    pair: str | None = None
    dtm: int | None = None
    maturity_time_ns: NsFromMs | None = Field(None, alias="maturityTime")


_FUTURES_EVENTS_OK = frozenset({"info", "subscribed", "unsubscribed", "heartbeat", "pong"})


def futures_type_of(message: Any) -> str | None:
    """Futures routing: ``feed`` for data, ``event`` for replies (``error``/``alert``)."""
    if not isinstance(message, dict):
        return None
    feed = message.get("feed")
    if isinstance(feed, str) and "event" not in message:
        return feed
    event = message.get("event")
    if event in ("error", "alert", "subscribed_failed"):
        return "error"
    return event if isinstance(event, str) else None


class FuturesBookSync(BookRule):
    """Kraken Futures books: a ``book_snapshot``, then one level per ``book`` message.

    Each ``seq`` is the previous one's + 1; a break makes the book invalid until a
    snapshot. No checksum. A resync unsubscribes and subscribes the product's ``book`` feed.
    """

    channels = frozenset({"book_snapshot", "book"})

    def resubscribe(self, symbol: str) -> list[Any]:
        return [{"event": event, "feed": "book", "product_ids": [symbol]}
                for event in ("unsubscribe", "subscribe")]

    def apply(self, books: Books, channel: str, message: Any, mono_ns: int,
              wall_ns: int) -> None:
        book = books.book(message.product_id)
        if channel == "book_snapshot":
            book.clear()
            apply_levels(book, "bid", message.bids, "qty")
            apply_levels(book, "ask", message.asks, "qty")
            book.last_id = message.seq
            book.snapshot_done(mono_ns)
        elif book.valid:
            last = book.last_id
            if last is not None and message.seq != last + 1:
                book.stats.gaps += 1
                book.mark_invalid(f"seq {message.seq} after {last}", mono_ns)
            else:
                book.set("bid" if message.side == "buy" else "ask", message.price,
                         message.qty)
                book.last_id = message.seq
        book.touched(mono_ns, wall_ns, message.timestamp_ns)

    def takes_rows(self, books: Books, channel: str, rows: pl.DataFrame) -> bool:
        """Whether each product's ``book`` rows follow on by one from its valid book's last.

        Then :meth:`apply` would set every level and mark no book invalid.
        """
        if channel != "book" or not rows.height:
            return False
        for symbol, first, _, _, steady in runs(rows, pl.col("product_id"), "seq",
                                                 "seq").iter_rows():
            book = books.books.get(symbol)
            if (not steady or book is None or not book.valid or book.last_id is None
                    or first != book.last_id + 1):
                return False
        return True

    def apply_rows(self, books: Books, channel: str, rows: pl.DataFrame,
                   report: Callable[[Exception], None]) -> None:
        seqs = rows["seq"].to_list()

        def finish(book: Book, i: int) -> None:  # the last level's number
            book.last_id = seqs[i]

        is_bid = (rows["side"] == "buy").fill_null(False).to_numpy()
        every = np.arange(rows.height, dtype=np.int64)
        price, qty = rows["price"].to_numpy(), rows["qty"].to_numpy()
        if books.apply_changes(rows, "product_id", "timestamp_ns",
                               Changes(every[is_bid], price[is_bid], qty[is_bid]),
                               Changes(every[~is_bid], price[~is_bid], qty[~is_bid]), finish):
            return
        sides, prices, quantities = (rows[name].to_list() for name in ("side", "price", "qty"))

        def change(book: Book, i: int) -> None:  # apply() of a level that follows the last
            book.set("bid" if sides[i] == "buy" else "ask", prices[i], quantities[i])
            book.last_id = seqs[i]

        books.apply_each(rows, "product_id", "timestamp_ns", change, report)


def _snapshot_seq(message: FuturesTradeSnapshot) -> Seq | None:
    if not message.trades:
        return None
    last = max(t.seq for t in message.trades)
    return Seq(last, last, reset=True)


def _futures_trades(native: pl.LazyFrame) -> pl.LazyFrame:
    # ``side`` is the taker's ("buy if the taker is a buyer"); liquidations are trades too.
    return native.with_columns(symbol="product_id", trade_id="uid", amount="qty",
                               side=_taker_side(pl.col("side")), exchange_time="time_ns")


def _futures_liquidations(native: pl.LazyFrame) -> pl.LazyFrame:
    # Kraken has no liquidation feed: a trade of ``type`` "liquidation" is "the result of a
    # user being liquidated from their position". Which side was liquidated it does not
    # say (``side`` is the taker's, in the trades table), so ``side`` is null.
    return native.filter(pl.col("type") == "liquidation").with_columns(
        symbol="product_id", liquidation_id="uid", amount="qty",
        side=pl.lit(None, pl.String), exchange_time="time_ns")


def _futures_book_snapshot(native: pl.LazyFrame) -> pl.LazyFrame:
    return _levels(native.select("bids", "asks", *_KEEP, symbol="product_id",
                                 is_snapshot=pl.lit(True), exchange_time="timestamp_ns"), "qty")


def _futures_book(native: pl.LazyFrame) -> pl.LazyFrame:
    return native.with_columns(
        symbol="product_id", is_snapshot=pl.lit(False), amount="qty",
        side=pl.col("side").replace_strict({"buy": "bid", "sell": "ask"}, return_dtype=pl.String),
        exchange_time="timestamp_ns")


def _futures_lite_quotes(native: pl.LazyFrame) -> pl.LazyFrame:
    # The light ticker gives the best prices but not their sizes: the amounts are null.
    return native.with_columns(symbol="product_id", bid_price="bid", ask_price="ask")


def _futures_quotes(native: pl.LazyFrame) -> pl.LazyFrame:
    return native.with_columns(symbol="product_id", bid_price="bid", bid_amount="bid_size",
                               ask_price="ask", ask_amount="ask_size", exchange_time="time_ns")


def _futures_derivative_ticker(native: pl.LazyFrame) -> pl.LazyFrame:
    # The rate comparable with other exchanges is the relative one (a fraction of the
    # price); a zero rate is left out by Kraken, so a perpetual's missing rate is 0.
    perpetual = pl.col("next_funding_rate_time_ns").is_not_null()
    return native.with_columns(
        symbol="product_id", last_price="last", mark_price="mark_price", index_price="index",
        funding_rate=pl.when(perpetual).then(pl.col("relative_funding_rate").fill_null(0.0)),
        predicted_funding_rate=pl.when(perpetual).then(
            pl.col("relative_funding_rate_prediction").fill_null(0.0)),
        funding_time="next_funding_rate_time_ns", open_interest="open_interest",
        exchange_time="time_ns")


FUTURES_BOOK_LAYOUT = Layout(
    '{"feed":"book","product_id":<product_id:str>,"side":<side:str(buy|sell)>,'
    '"seq":<seq:int>,"price":<price:float>,"qty":<qty:float>,"timestamp":<timestamp_ns:ms>}')
"""A futures ``book`` message as Kraken writes it (:mod:`wsresearch.layout`), key order and
all, as seen in the recording in ``data/``: a replay reads the messages that match straight
into columns, and applies them to the books from there."""

_FUTURES_CHANNELS = {
    "book": [
        Channel(name="book_snapshot", model=FuturesBookSnapshot, stream="book",
                sequence=lambda b: Seq(b.seq, b.seq, reset=True),
                sequence_key="product_id", sequence_group="book",
                exchange_time="timestamp_ns",
                normalized={"book_changes": _futures_book_snapshot}),
        Channel(name="book", model=FuturesBook, layout=FUTURES_BOOK_LAYOUT,
                dedupe_key=("product_id", "seq"),
                sequence="seq", sequence_key="product_id",
                sequence_group="book", exchange_time="timestamp_ns",
                normalized={"book_changes": _futures_book}),
    ],
    "trade": [
        Channel(name="trade_snapshot", model=FuturesTradeSnapshot, stream="trade",
                explode="trades", sequence=_snapshot_seq,
                sequence_key="product_id", sequence_group="trade"),
        # The snapshot's trades (before subscribing, re-sent on every reconnect) stay
        # native rows and are not counted in the trades table.
        Channel(name="trade", model=FuturesTrade, dedupe_key="uid",
                sequence="seq", sequence_key="product_id",
                sequence_group="trade", exchange_time="time_ns",
                normalized={"trades": _futures_trades,
                            "liquidations": _futures_liquidations}),
    ],
    "ticker_lite": [Channel(name="ticker_lite", model=FuturesTickerLite,
                            normalized={"quotes": _futures_lite_quotes})],
    "ticker": [Channel(name="ticker", model=FuturesTicker, exchange_time="time_ns",
                       normalized={"quotes": _futures_quotes,
                                   "derivative_ticker": _futures_derivative_ticker})],
}

_HEALTH = {
    "trade": StreamConfig(expected_interval=1.0, stale_threshold=60.0, allow_silence=True),
    "ticker": StreamConfig(expected_interval=1.0, stale_threshold=60.0, allow_silence=True),
    "ticker_lite": StreamConfig(expected_interval=1.0, stale_threshold=60.0,
                                allow_silence=True),
    "book": StreamConfig(expected_interval=1.0, stale_threshold=60.0),
    # Candles update on trades only: a quiet market sends none.
    "ohlc": StreamConfig(expected_interval=60.0, stale_threshold=600.0, allow_silence=True),
    # A snapshot on subscribing, then an update only when a pair changes.
    "instrument": StreamConfig(expected_interval=3600.0, stale_threshold=86_400.0,
                               allow_silence=True),
}


def _error_text(report: Any) -> str:
    if isinstance(report, dict):
        for key in ("errorMessage", "error", "message"):
            if report.get(key):
                return str(report[key])
    return str(report)


def spec(
    symbols: Sequence[str] | None = None,
    channels: Sequence[str] = ("trade", "ticker"),
    url: str | None = None,
    *,
    api: str = "v2",
    book_depth: int = 10,
    ohlc_interval: int = 1,
    connection: ConnectionConfig | None = None,
    **overrides: Any,
) -> FeedSpec:
    """The spec for Kraken spot (v2 or v1) or Kraken Futures.

    Parameters
    ----------
    symbols
        Spot pairs such as ``"BTC/USD"`` (v1 spells bitcoin ``XBT``), or futures
        products such as ``"PI_XBTUSD"``. Default: ``BTC/USD`` on v2, ``XBT/USD`` on
        v1, ``PI_XBTUSD`` on futures.
    channels
        Any of ``CHANNELS[api]``.
    url
        Where to connect instead of Kraken.
    api
        ``"v2"``, ``"v1"`` or ``"futures"``.
    book_depth
        Spot book depth: 10, 25, 100, 500 or 1000.
    ohlc_interval
        The v2 ``ohlc`` candle length in minutes, one of :data:`OHLC_INTERVALS`.
    connection
        Connection settings.
    **overrides
        Any other :class:`~wsresearch.spec.FeedSpec` field.

    Raises
    ------
    ValueError
        For an unknown API, channel, depth or candle interval, or a symbol not spelled like
        Kraken's.

    Examples
    --------
    >>> spec(["xbt/usd"], ["book"], api="v1").subscribe[0]
    {'event': 'subscribe', 'pair': ['XBT/USD'], 'subscription': {'name': 'book', 'depth': 10}}
    >>> spec(["BTC/USD"], ["ohlc"], ohlc_interval=5).subscribe[0]["params"]
    {'channel': 'ohlc', 'symbol': ['BTC/USD'], 'interval': 5}
    >>> spec(["PI_XBTUSD"], ["ticker"], api="futures").exchange
    'kraken-futures'
    """
    check_choice("API", api, APIS, "Kraken")
    pattern, example = _SYMBOL[api]
    if symbols is None:  # the API's own spelling of bitcoin against the dollar
        symbols = [example]
    names = check_symbols(symbols, pattern, example, f"Kraken {api}", upper=True)
    chosen = check_channels(channels, CHANNELS[api], f"Kraken {api}")
    if book_depth not in _BOOK_DEPTHS:
        raise ValueError(f"unknown Kraken book depth {book_depth}; choose from {_BOOK_DEPTHS}")
    if ohlc_interval not in OHLC_INTERVALS:
        raise ValueError(f"unknown Kraken ohlc interval {ohlc_interval}; choose from "
                         f"{OHLC_INTERVALS} (minutes)")
    url = url or APIS[api]
    connection = connection or ConnectionConfig()
    subscribe: list[dict[str, Any]]
    if api == "v2":
        book_sync: Any = None
        if "book" in chosen:  # its checksum needs the pairs' precisions: asked for first
            book_sync = V2BookSync(book_depth)
            chosen = list(dict.fromkeys(["instrument", *chosen]))
        spec_channels = [_V2_CHANNELS[name] for name in chosen]
        options = {"book": {"depth": book_depth}, "ohlc": {"interval": ohlc_interval}}
        subscribe = [{"method": "subscribe", "params": {"channel": name}
                      | ({} if name == "instrument" else {"symbol": names})
                      | options.get(name, {})} for name in chosen]
        type_of, control = v2_type_of, frozenset({"ack", "pong", "heartbeat", "status"})
        connection = app_ping(connection, {"method": "ping"}, 30.0)
    elif api == "v1":
        spec_channels = [_V1_CHANNELS[name] for name in chosen]
        book_sync = V1BookSync(book_depth) if "book" in chosen else None
        subscribe = [{"event": "subscribe", "pair": names, "subscription": {"name": name}
                      | ({"depth": book_depth} if name == "book" else {})} for name in chosen]
        type_of = v1_type_of
        control = frozenset({"heartbeat", "systemStatus", "subscriptionStatus", "pong"})
    else:
        spec_channels = [c for name in chosen for c in _FUTURES_CHANNELS[name]]
        book_sync = FuturesBookSync() if "book" in chosen else None
        subscribe = [{"event": "subscribe", "feed": name, "product_ids": names}
                     for name in chosen]
        type_of, control = futures_type_of, _FUTURES_EVENTS_OK
    streams = list(dict.fromkeys(channel.stream_name for channel in spec_channels))
    arguments: dict[str, Any] = {"symbols": names, "channels": chosen, "api": api,
                                 "book_depth": book_depth, "ohlc_interval": ohlc_interval}
    return assemble(
        "kraken", arguments, overrides,
        url=url,
        exchange="kraken-futures" if api == "futures" else "kraken",
        channels=spec_channels,
        type_of=type_of,
        subscribe=subscribe,
        health={name: _HEALTH[name] for name in streams},
        connection=connection,
        control=control,
        book_sync=book_sync,
        error_types=frozenset({"error"}),
        error_text=_error_text,
        description=f"Kraken {api}: {', '.join(chosen)} on {', '.join(names)}",
    )
