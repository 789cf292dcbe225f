"""Coinbase market data: Advanced Trade (``api="advanced"``) and the Exchange feed (``"exchange"``).

**Advanced Trade** (``wss://advanced-trade-ws.coinbase.com``) subscribes one
channel per message (``{"type": "subscribe", "channel": "ticker",
"product_ids": [...]}``). Every message carries ``sequence_num``, counted per
*connection* over every channel, so all channels (the ``subscriptions`` acks
included) share one sequence group. A message batches ``events``, each a
snapshot or an update of several items; the channels explode them into one
row per item (trade, ticker, book level, candle, product).
Messages of a channel the spec does not subscribe (or that this module does
not know) still take a ``sequence_num``: they are counted as ``control``
(type ``unsubscribed``), and their number counts in the connection's sequence
(``FeedSpec.control_sequence``), so the count goes on without a false gap.

**Exchange** (``wss://ws-feed.exchange.coinbase.com``) subscribes all
channels in one message; messages are flat objects routed by ``type``. Matches
carry a ``trade_id`` that counts up by one per product, which is what the
``matches`` channel tracks.

Every channel that holds market data also gives its normalized table
(:mod:`wsresearch.normalize`): trades with the *taker's* side (both APIs send
the maker's), quotes from the tickers (from the book where level2 is kept), book
changes one row per level, and candles. Prices and sizes are ``float64`` in the native rows too (see
:mod:`wsresearch.exchanges._common`); only the ``status`` channel's increments
are kept as text.

See ``docs/exchanges/coinbase.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, ClassVar, Literal

import polars as pl
from pydantic import BaseModel, Field, model_validator

from ..book import Book, BookRule, Books, apply_pairs, change_lists, side_changes
from ..config import ConnectionConfig, StreamConfig
from ..layout import Layout
from ..normalize import Normalizer
from ..spec import CONNECTION_GROUP, Channel, FeedSpec
from ._common import (
    Flat,
    NsFromIso,
    NsFromSeconds,
    assemble,
    check_channels,
    check_choice,
    check_symbols,
)

__all__ = [
    "ADVANCED_CHANNELS", "APIS", "CANDLE_INTERVAL", "CHANNELS", "EXCHANGE_CHANNELS",
    "EXCHANGE_L2UPDATE_LAYOUT", "EXCHANGE_MATCH_LAYOUT", "EXCHANGE_TICKER_LAYOUT",
    "AdvancedCandles", "AdvancedHeartbeat", "AdvancedLevel2", "AdvancedStatus", "AdvancedTicker",
    "AdvancedTrades", "ExchangeHeartbeat", "ExchangeL2Update", "ExchangeMatch",
    "ExchangeSnapshot", "ExchangeTicker", "L2Change", "spec",
]

APIS: dict[str, str] = {
    "advanced": "wss://advanced-trade-ws.coinbase.com",
    "exchange": "wss://ws-feed.exchange.coinbase.com",
}
"""API name to its URL."""

ADVANCED_CHANNELS: tuple[str, ...] = ("ticker", "market_trades", "level2", "heartbeats",
                                      "candles", "status")
EXCHANGE_CHANNELS: tuple[str, ...] = ("ticker", "matches", "level2", "heartbeat")
CHANNELS: dict[str, tuple[str, ...]] = {"advanced": ADVANCED_CHANNELS,
                                        "exchange": EXCHANGE_CHANNELS}
"""Channels each API offers."""

CANDLE_INTERVAL = "FIVE_MINUTE"
"""The Advanced Trade ``candles`` channel's one bucket size, by Coinbase's granularity name."""

_SYMBOL = r"[A-Z0-9]{1,12}-[A-Z0-9]{1,12}"


# -- Advanced Trade ------------------------------------------------------------------


class _Envelope(Flat):
    """Fields every Advanced Trade message has."""

    sequence_num: int
    timestamp_ns: NsFromIso = Field(alias="timestamp")


class _Items(_Envelope):
    """An envelope whose ``events[*][<items_key>][*]`` are its rows (``items``)."""

    items_key: ClassVar[str]
    """Where each event keeps its items (``trades``, ``tickers``...)."""

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        """Flatten the items into one ``items`` list, each with its event's type."""
        key = cls.items_key
        if not isinstance(value, dict) or not isinstance(value.get("events"), list):
            return value
        items = []
        for event in value["events"]:
            if not isinstance(event, dict):
                raise ValueError("an event is not an object")
            for item in event.get(key) or ():
                if not isinstance(item, dict):
                    raise ValueError(f"an item of {key!r} is not an object")
                extra = {"event": event.get("type")}
                if "product_id" in event:  # level2 names the product on the event
                    extra["product_id"] = event["product_id"]
                items.append(item | extra)
        return value | {"items": items}


class AdvancedTrade(Flat):
    """One trade of a ``market_trades`` message."""

    event: str
    trade_id: str
    product_id: str
    price: float
    size: float
    side: str
    time_ns: NsFromIso = Field(alias="time")


class AdvancedTrades(_Items):
    """A ``market_trades`` message: one row per trade."""

    items_key = "trades"
    items: list[AdvancedTrade]


class AdvancedTickerItem(Flat):
    """One product's ticker."""

    event: str
    product_id: str
    price: float
    volume_24_h: float | None = None
    low_24_h: float | None = None
    high_24_h: float | None = None
    price_percent_chg_24_h: float | None = None
    best_bid: float | None = None
    best_bid_quantity: float | None = None
    best_ask: float | None = None
    best_ask_quantity: float | None = None


class AdvancedTicker(_Items):
    """A ``ticker`` message: one row per product."""

    items_key = "tickers"
    items: list[AdvancedTickerItem]


class AdvancedLevel(Flat):
    """One book level change: ``new_quantity`` 0 removes the level."""

    event: str
    product_id: str
    side: Literal["bid", "offer"]
    price_level: float
    new_quantity: float
    event_time_ns: NsFromIso = Field(alias="event_time")


class AdvancedLevel2(_Items):
    """A ``level2`` message (``l2_data`` on the wire): one row per level change."""

    items_key = "updates"
    items: list[AdvancedLevel]


class AdvancedHeartbeat(_Envelope):
    """A ``heartbeats`` message: a counter the exchange bumps every second."""

    heartbeat_counter: int

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("events"), list) and value["events"]:
            event = value["events"][0]
            if isinstance(event, dict):
                return value | {"heartbeat_counter": event.get("heartbeat_counter")}
        return value


class AdvancedCandle(Flat):
    """One product's five-minute candle, as it stands (updated every second)."""

    event: str
    product_id: str
    start_ns: NsFromSeconds = Field(alias="start")
    open: float
    high: float
    low: float
    close: float
    volume: float


class AdvancedCandles(_Items):
    """A ``candles`` message: one row per candle."""

    items_key = "candles"
    items: list[AdvancedCandle]


class AdvancedStatusProduct(Flat):
    """One product's trading status; increments as text, exactly as sent."""

    event: str
    id: str
    product_type: str | None = None
    base_currency: str | None = None
    quote_currency: str | None = None
    base_increment: str | None = None
    quote_increment: str | None = None
    display_name: str | None = None
    status: str | None = None
    status_message: str | None = None
    min_market_funds: str | None = None


class AdvancedStatus(_Items):
    """A ``status`` message: one row per product."""

    items_key = "products"
    items: list[AdvancedStatusProduct]


class AdvancedSubscriptions(_Envelope):
    """A ``subscriptions`` ack: what the connection is subscribed to, with its ``sequence_num``."""

    channel: str


_ADVANCED_WIRE = {"l2_data": "level2", "market_trades": "market_trades", "ticker": "ticker",
                  "ticker_batch": "ticker", "heartbeats": "heartbeats", "candles": "candles",
                  "status": "status", "subscriptions": "subscriptions"}


def advanced_type_of(message: Any) -> str | None:
    """Advanced Trade routing: the ``channel`` field (``l2_data`` is ``level2``)."""
    if not isinstance(message, dict):
        return None
    if message.get("type") == "error":
        return "error"
    channel = message.get("channel")
    return _ADVANCED_WIRE.get(channel) if isinstance(channel, str) else None


UNSUBSCRIBED = "unsubscribed"
"""The control type of a message of a channel the spec does not subscribe."""


def _advanced_route(chosen: frozenset[str], message: Any) -> str | None:
    """:func:`advanced_type_of` within a spec: other channels' messages are :data:`UNSUBSCRIBED`.

    Only a message that carries ``sequence_num`` is taken for one: it was counted by
    the exchange, so its number must be counted here. Anything else keeps its type.
    """
    name = advanced_type_of(message)
    if name in chosen or name == "error" or not isinstance(message, dict):
        return name
    if isinstance(message.get("channel"), str) and "sequence_num" in message:
        return UNSUBSCRIBED
    return name


def _connection_seq(message: _Envelope) -> int:
    return message.sequence_num


def _control_seq(message: Any) -> int | None:
    """The ``sequence_num`` of a decoded control message, where it is a number."""
    value = message.get("sequence_num") if isinstance(message, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _advanced(name: str, model: type[BaseModel], explode: bool = True,
              dedupe: bool = True, normalized: dict[str, Normalizer] | None = None) -> Channel:
    return Channel(
        name=name, model=model, explode="items" if explode else None,
        normalized=normalized or {},
        # sequence_num restarts on every connection: with the exchange's timestamp it
        # names one message, so a new connection's messages are never taken for repeats.
        dedupe_key=("sequence_num", "timestamp_ns") if dedupe else None,
        sequence=_connection_seq, sequence_group=CONNECTION_GROUP,
        exchange_time="timestamp_ns",
    )


# -- normalized tables ---------------------------------------------------------------
#
# Both APIs name the maker's side on a trade (Exchange ``match``: "the side field
# indicates the maker order side"; Advanced Trade ``market_trades``: BUY/SELL from
# the maker's perspective), so the taker's side is the other one.

_TAKER = {"BUY": "sell", "SELL": "buy", "buy": "sell", "sell": "buy"}
_BOOK_SIDE = {"bid": "bid", "offer": "ask", "buy": "bid", "sell": "ask"}


def _taker_side(maker: pl.Expr) -> pl.Expr:
    # A side that is neither buy nor sell becomes null, never a wrong side.
    return maker.replace_strict(_TAKER, default=None, return_dtype=pl.String)


def _book_side(side: pl.Expr) -> pl.Expr:
    return side.replace_strict(_BOOK_SIDE, default=None, return_dtype=pl.String)


def _advanced_trades(native: pl.LazyFrame) -> pl.LazyFrame:
    # A snapshot re-sends recent trades, made before subscribing, on every (re)subscribe:
    # they stay native rows, but as trades they would be counted again (as Kraken's).
    return native.filter(pl.col("event") != "snapshot").with_columns(
        symbol="product_id", amount="size", side=_taker_side(pl.col("side")),
        exchange_time="time_ns")


def _advanced_quotes(native: pl.LazyFrame) -> pl.LazyFrame:
    # ticker_batch rows (routed here too) carry no best bid or ask: not a quote.
    return native.filter(
        pl.col("best_bid").is_not_null() | pl.col("best_ask").is_not_null()
    ).with_columns(
        symbol="product_id", bid_price="best_bid", bid_amount="best_bid_quantity",
        ask_price="best_ask", ask_amount="best_ask_quantity")


def _advanced_book(native: pl.LazyFrame) -> pl.LazyFrame:
    # A snapshot's levels carry event_time 1970-01-01T00:00:00Z: the message's
    # timestamp is then the only exchange time there is.
    return native.with_columns(
        symbol="product_id", is_snapshot=pl.col("event") == "snapshot",
        side=_book_side(pl.col("side")), price="price_level", amount="new_quantity",
        exchange_time=pl.when(pl.col("event_time_ns") > 0).then("event_time_ns")
        .otherwise("timestamp_ns"))


def _advanced_candles(native: pl.LazyFrame) -> pl.LazyFrame:
    # Coinbase updates the running candle every second and never says which update
    # is a bucket's last: ``closed`` is left null.
    return native.with_columns(
        symbol="product_id", interval=pl.lit(CANDLE_INTERVAL), open_time="start_ns")


_ADVANCED = {
    "ticker": _advanced("ticker", AdvancedTicker, normalized={"quotes": _advanced_quotes}),
    "market_trades": _advanced("market_trades", AdvancedTrades,
                               normalized={"trades": _advanced_trades}),
    "level2": _advanced("level2", AdvancedLevel2, normalized={"book_changes": _advanced_book}),
    "heartbeats": _advanced("heartbeats", AdvancedHeartbeat, explode=False),
    "candles": _advanced("candles", AdvancedCandles, normalized={"candles": _advanced_candles}),
    "status": _advanced("status", AdvancedStatus),
    "subscriptions": _advanced("subscriptions", AdvancedSubscriptions, explode=False),
}


class AdvancedBookSync(BookRule):
    """Advanced Trade books from ``level2``: snapshot events replace, updates change.

    An event of type ``snapshot`` replaces a product's book, ``update`` events change it;
    ``new_quantity`` 0 removes a level. Coinbase "guarantees delivery of all updates" on
    ``level2`` and sends no checksum; the connection's ``sequence_num`` is checked by the
    pipeline. Updates before a product's snapshot are ignored.
    """

    channels = frozenset({"level2"})

    def on_gap(self, books: Books, channel: str, mono_ns: int) -> None:
        # sequence_num counts every message of the connection: the one lost may have been
        # any product's level2 update, so no book can be trusted until resubscribed.
        for book in books:
            book.stats.gaps += book.valid
            book.mark_invalid("connection sequence gap", mono_ns)

    def resubscribe(self, symbol: str) -> list[Any]:
        return [{"type": kind, "product_ids": [symbol], "channel": "level2"}
                for kind in ("unsubscribe", "subscribe")]

    def apply(self, books: Books, channel: str, message: AdvancedLevel2, mono_ns: int,
              wall_ns: int) -> None:
        touched: dict[str, Book] = {}
        for item in message.items:
            book = touched.get(item.product_id)
            if book is None:
                book = touched[item.product_id] = books.book(item.product_id)
                if item.event == "snapshot":
                    book.clear()
                    book.snapshot_done(mono_ns)
            if book.valid:
                book.set("bid" if item.side == "bid" else "ask", item.price_level,
                         item.new_quantity)
        for book in touched.values():
            book.touched(mono_ns, wall_ns, message.timestamp_ns)


class ExchangeBookSync(BookRule):
    """Exchange ``level2`` books: a ``snapshot`` on subscribing, then ``l2update`` changes.

    ``buy`` is a bid, ``sell`` an ask; size 0 removes a level. No sequence, no checksum.
    """

    channels = frozenset({"snapshot", "l2update"})

    def apply(self, books: Books, channel: str, message: Any, mono_ns: int,
              wall_ns: int) -> None:
        book = books.book(message.product_id)
        if channel == "snapshot":
            book.clear()
            apply_pairs(book, "bid", message.bids)
            apply_pairs(book, "ask", message.asks)
            book.snapshot_done(mono_ns)
            exchange_ns = None
        else:
            if book.valid:
                for change in message.changes:
                    book.set("bid" if change.side == "buy" else "ask", change.price,
                             change.size)
            exchange_ns = message.time_ns
        book.touched(mono_ns, wall_ns, exchange_ns)

    def takes_rows(self, books: Books, channel: str, rows: pl.DataFrame) -> bool:
        """Whether every product of these ``l2update`` rows has a valid book.

        Then :meth:`apply` would set every change, and no book would change validity.
        """
        if channel != "l2update" or not rows.height:
            return False
        found = books.books
        return all(symbol in found and found[symbol].valid
                   for symbol in rows["product_id"].unique().to_list())

    def apply_rows(self, books: Books, channel: str, rows: pl.DataFrame,
                   report: Callable[[Exception], None]) -> None:
        bids, asks = side_changes(rows["changes"], "buy")
        if books.apply_changes(rows, "product_id", "time_ns", bids, asks):
            return
        sides, prices, sizes, ends = change_lists(rows["changes"])

        def change(book: Book, i: int) -> None:  # apply() of an update to a valid book
            start = ends[i - 1] if i else 0
            for side, price, size in zip(sides[start:ends[i]], prices[start:ends[i]],
                                         sizes[start:ends[i]], strict=True):
                book.set("bid" if side == "buy" else "ask", price, size)

        books.apply_each(rows, "product_id", "time_ns", change, report)


# -- Exchange ------------------------------------------------------------------------


class ExchangeTicker(Flat):
    """A ``ticker`` message: the last trade and the best bid and ask."""

    product_id: str
    sequence: int
    price: float
    best_bid: float | None = None
    best_bid_size: float | None = None
    best_ask: float | None = None
    best_ask_size: float | None = None
    side: str | None = None
    last_size: float | None = None
    trade_id: int | None = None
    volume_24h: float | None = None
    time_ns: NsFromIso | None = Field(None, alias="time")


class ExchangeMatch(Flat):
    """A trade (``match``), or the last one before subscribing (``last_match``)."""

    type: Literal["match", "last_match"]
    product_id: str
    trade_id: int
    sequence: int
    price: float
    size: float
    side: Literal["buy", "sell"]
    maker_order_id: str
    taker_order_id: str
    time_ns: NsFromIso = Field(alias="time")


class ExchangeSnapshot(Flat):
    """The full level-2 book on subscribing: levels as ``[price, size]``."""

    product_id: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


class L2Change(Flat):
    """One level change of an ``l2update``: ``size`` 0 removes the level."""

    side: Literal["buy", "sell"]
    price: float
    size: float

    @model_validator(mode="before")
    @classmethod
    def _from_triple(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) == 3:
            return {"side": value[0], "price": value[1], "size": value[2]}
        return value


class ExchangeL2Update(Flat):
    """Level changes (``[side, price, size]`` on the wire), as structs."""

    product_id: str
    changes: list[L2Change]
    time_ns: NsFromIso = Field(alias="time")


class ExchangeHeartbeat(Flat):
    """Once a second per product: the last trade id and the channel sequence."""

    product_id: str
    sequence: int
    last_trade_id: int
    time_ns: NsFromIso = Field(alias="time")


def exchange_type_of(message: Any) -> str | None:
    """Exchange routing: the ``type`` field; ``last_match`` counts as a ``match``."""
    if not isinstance(message, dict):
        return None
    kind = message.get("type")
    return "match" if kind == "last_match" else kind if isinstance(kind, str) else None


def _exchange_trades(native: pl.LazyFrame) -> pl.LazyFrame:
    # A last_match is the last trade before subscribing, sent on every (re)subscribe: it
    # stays a native row, but as a trade it is of the past (as Kraken's snapshot trades).
    return native.filter(pl.col("type") == "match").with_columns(
        pl.col("trade_id").cast(pl.String), symbol="product_id", amount="size",
        side=_taker_side(pl.col("side")))


def _exchange_quotes(native: pl.LazyFrame) -> pl.LazyFrame:
    return native.filter(
        pl.col("best_bid").is_not_null() | pl.col("best_ask").is_not_null()
    ).with_columns(
        symbol="product_id", bid_price="best_bid", bid_amount="best_bid_size",
        ask_price="best_ask", ask_amount="best_ask_size")


def _exchange_snapshot(native: pl.LazyFrame) -> pl.LazyFrame:
    # One row per level, the bids then the asks of each message, in the order sent.
    # The snapshot carries no time: exchange_time stays null.
    native = native.with_row_index("_message")

    def levels(column: str, side: str) -> pl.LazyFrame:
        return native.drop("bids" if column == "asks" else "asks").explode(column).filter(
            pl.col(column).is_not_null()).with_columns(
            symbol="product_id", side=pl.lit(side), is_snapshot=pl.lit(True),
            price=pl.col(column).arr.get(0), amount=pl.col(column).arr.get(1),
            _order=pl.lit(0 if side == "bid" else 1))

    return pl.concat([levels("bids", "bid"), levels("asks", "ask")]).sort(
        "_message", "_order", maintain_order=True)


def _exchange_l2update(native: pl.LazyFrame) -> pl.LazyFrame:
    change = pl.col("changes").struct.field
    return native.explode("changes").filter(pl.col("changes").is_not_null()).with_columns(
        symbol="product_id", is_snapshot=pl.lit(False), side=_book_side(change("side")),
        price=change("price"), amount=change("size"))


EXCHANGE_TICKER_LAYOUT = Layout(
    '{"type":"ticker","sequence":<sequence:int>,"product_id":<product_id:str>,'
    '"price":<price:decimal>,"open_24h":<_:decimal>,"volume_24h":<volume_24h:decimal>,'
    '"low_24h":<_:decimal>,"high_24h":<_:decimal>,"volume_30d":<_:decimal>,'
    '"best_bid":<best_bid:decimal>,"best_ask":<best_ask:decimal>,"side":<side:str>,'
    '"time":<time_ns:iso>,"trade_id":<trade_id:int>,"last_size":<last_size:decimal>}')
"""An Exchange ``ticker`` as the recording in ``data/`` has it (no best sizes: those are
``None``); a ticker with them goes through the model."""
EXCHANGE_MATCH_LAYOUT = Layout(
    '{"type":<type:str(match|last_match)>,"trade_id":<trade_id:int>,'
    '"maker_order_id":<maker_order_id:str>,"taker_order_id":<taker_order_id:str>,'
    '"side":<side:str(buy|sell)>,"size":<size:decimal>,"price":<price:decimal>,'
    '"product_id":<product_id:str>,"sequence":<sequence:int>,"time":<time_ns:iso>}')
"""An Exchange ``match`` (or ``last_match``) as Coinbase writes it."""
EXCHANGE_L2UPDATE_LAYOUT = Layout(
    '{"type":"l2update","product_id":<product_id:str>,"changes":<changes:changes>,'
    '"time":<time_ns:iso>}')
"""An Exchange ``l2update`` as Coinbase writes it (:mod:`wsresearch.layout`), key order and
all, as seen in the recording in ``data/``: a replay reads the messages that match straight
into columns, and applies them to the books from there."""

_EXCHANGE = {
    "ticker": [Channel(name="ticker", model=ExchangeTicker, layout=EXCHANGE_TICKER_LAYOUT,
                       dedupe_key=("product_id", "sequence"),
                       exchange_time="time_ns",
                       normalized={"quotes": _exchange_quotes})],
    "matches": [Channel(name="match", model=ExchangeMatch, stream="matches",
                        layout=EXCHANGE_MATCH_LAYOUT,
                        dedupe_key=("product_id", "trade_id"),
                        sequence="trade_id", sequence_key="product_id",
                        exchange_time="time_ns",
                        normalized={"trades": _exchange_trades})],
    "level2": [Channel(name="snapshot", model=ExchangeSnapshot, stream="level2",
                       normalized={"book_changes": _exchange_snapshot}),
               Channel(name="l2update", model=ExchangeL2Update, stream="level2",
                       exchange_time="time_ns", layout=EXCHANGE_L2UPDATE_LAYOUT,
                       normalized={"book_changes": _exchange_l2update})],
    "heartbeat": [Channel(name="heartbeat", model=ExchangeHeartbeat,
                          dedupe_key=("product_id", "sequence"),
                          exchange_time="time_ns")],
}

_HEALTH = {
    "ticker": StreamConfig(expected_interval=1.0, stale_threshold=60.0, allow_silence=True),
    "market_trades": StreamConfig(expected_interval=1.0, stale_threshold=60.0,
                                  allow_silence=True),
    "matches": StreamConfig(expected_interval=1.0, stale_threshold=60.0, allow_silence=True),
    "level2": StreamConfig(expected_interval=0.5, stale_threshold=30.0),
    "heartbeats": StreamConfig(expected_interval=1.0, stale_threshold=5.0),
    "heartbeat": StreamConfig(expected_interval=1.0, stale_threshold=5.0),
    "candles": StreamConfig(expected_interval=1.0, stale_threshold=60.0, allow_silence=True),
    "status": StreamConfig(expected_interval=60.0, stale_threshold=300.0, allow_silence=True),
    "subscriptions": StreamConfig(expected_interval=60.0, stale_threshold=60.0,
                                  allow_silence=True),
}


def _error_text(report: dict[str, Any]) -> str:
    message = str(report.get("message", report))
    reason = report.get("reason")
    return f"{message}: {reason}" if reason else message


def spec(
    symbols: Sequence[str] = ("BTC-USD",),
    channels: Sequence[str] | None = None,
    url: str | None = None,
    *,
    api: str = "advanced",
    connection: ConnectionConfig | None = None,
    **overrides: Any,
) -> FeedSpec:
    """The spec for Coinbase market data.

    Parameters
    ----------
    symbols
        Product ids such as ``"BTC-USD"`` (any case).
    channels
        Advanced Trade: any of :data:`ADVANCED_CHANNELS` (default ``ticker``,
        ``market_trades``, ``heartbeats``); ``subscriptions`` is always added. Exchange: any of
        :data:`EXCHANGE_CHANNELS` (default ``ticker``, ``matches``, ``heartbeat``).
    url
        Where to connect instead of Coinbase.
    api
        ``"advanced"`` or ``"exchange"``.
    connection
        Connection settings.
    **overrides
        Any other :class:`~wsresearch.spec.FeedSpec` field.

    Raises
    ------
    ValueError
        For an unknown API or channel, or a product id not spelled like Coinbase's.

    Examples
    --------
    >>> s = spec(["btc-usd"], ["market_trades"])
    >>> s.subscribe[0], s.channel_names
    ({'type': 'subscribe', 'product_ids': ['BTC-USD'], 'channel': 'market_trades'}, \
['market_trades', 'subscriptions'])
    """
    check_choice("API", api, APIS, "Coinbase")
    names = check_symbols(symbols, _SYMBOL, "BTC-USD", "Coinbase", upper=True)
    url = url or APIS[api]
    if api == "advanced":
        chosen = check_channels(channels or ("ticker", "market_trades", "heartbeats"),
                                ADVANCED_CHANNELS, "Coinbase Advanced Trade")
        spec_channels = [_ADVANCED[name] for name in (*chosen, "subscriptions")]
        subscribe: list[dict[str, Any]] = [
            {"type": "subscribe", "product_ids": names, "channel": name} for name in chosen
        ]
        type_of: Any = partial(_advanced_route, frozenset((*chosen, "subscriptions")))
        control = frozenset({UNSUBSCRIBED})
        control_sequence: Callable[[Any], int | None] | None = _control_seq
        book_sync: Any = AdvancedBookSync() if "level2" in chosen else None
    else:
        chosen = check_channels(channels or ("ticker", "matches", "heartbeat"),
                                EXCHANGE_CHANNELS, "Coinbase Exchange")
        spec_channels = [channel for name in chosen for channel in _EXCHANGE[name]]
        subscribe = [{"type": "subscribe", "product_ids": names, "channels": chosen}]
        type_of, control = exchange_type_of, frozenset({"subscriptions"})
        control_sequence = None
        book_sync = ExchangeBookSync() if "level2" in chosen else None
    streams = {channel.stream_name for channel in spec_channels}
    arguments: dict[str, Any] = {"symbols": names, "channels": chosen, "api": api}
    return assemble(
        "coinbase", arguments, overrides,
        url=url,
        exchange="coinbase",
        channels=spec_channels,
        type_of=type_of,
        subscribe=subscribe,
        health={name: _HEALTH[name] for name in streams},
        connection=connection,
        control=control,
        control_sequence=control_sequence,
        book_sync=book_sync,
        error_types=frozenset({"error"}),
        error_text=_error_text,
        description=f"Coinbase {api}: {', '.join(chosen)} on {', '.join(names)}",
    )
