"""Bybit v5 public streams: trades, tickers, order books, klines and liquidations.

One URL per product category (``wss://stream.bybit.com/v5/public/<category>``).
The client subscribes with ``{"op": "subscribe", "args": ["publicTrade.BTCUSDT",
...]}`` (at most 10 topics per request on spot, so longer lists are split) and
pings with ``{"op": "ping"}`` every 20 seconds, as Bybit asks. Messages name
their ``topic``; book messages are a ``snapshot`` then ``delta``s whose update id
``u`` counts up by one per symbol and depth (a snapshot with ``u`` = 1 means
the service restarted: the count starts again). Derivative tickers are a
``snapshot`` then ``delta``s that carry only the fields that changed.

Every channel declares the normalized tables it holds (:mod:`wsresearch.normalize`):
``publicTrade`` → ``trades``; ``tickers`` → ``quotes`` (not on spot, whose tickers carry
no best bid and offer) and, on linear and inverse, ``derivative_ticker``; ``orderbook`` →
``book_changes``; ``kline`` → ``candles``; ``allLiquidation`` → ``liquidations``.
See ``docs/exchanges/bybit.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import AliasChoices, BeforeValidator, Field, model_validator

from ..book import BookRule, Books, apply_pairs
from ..config import ConnectionConfig, StreamConfig
from ..normalize import Normalizer, stateful
from ..sequence import Seq
from ..spec import Channel, FeedSpec
from ._common import Flat, NsFromMs, app_ping, assemble, check_channels, check_choice, check_symbols

__all__ = [
    "CATEGORIES", "CATEGORY_CHANNELS", "CHANNELS", "KLINE_INTERVALS", "AllLiquidation",
    "Kline", "OrderBook", "PublicTrades", "Tickers", "spec", "type_of",
]

CATEGORIES: dict[str, str] = {
    name: f"wss://stream.bybit.com/v5/public/{name}"
    for name in ("spot", "linear", "inverse", "option")
}
"""Product category to its URL."""

CHANNELS: tuple[str, ...] = ("publicTrade", "tickers", "orderbook", "kline", "allLiquidation")
"""Every channel of the adapter; :data:`CATEGORY_CHANNELS` says which category has which."""
CATEGORY_CHANNELS: dict[str, tuple[str, ...]] = {
    "spot": ("publicTrade", "tickers", "orderbook", "kline"),
    "linear": CHANNELS,
    "inverse": CHANNELS,
    "option": ("publicTrade", "tickers", "orderbook"),
}
"""The channels Bybit serves per category: klines on spot and derivatives, liquidations on
linear and inverse contracts only."""
KLINE_INTERVALS: tuple[str, ...] = ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720",
                                    "D", "W", "M")
"""Kline intervals as Bybit names them: minutes, then day, week, month."""
_DEPTHS = {"spot": (1, 50, 200, 1000), "linear": (1, 50, 200, 500, 1000),
           "inverse": (1, 50, 200, 500, 1000), "option": (25, 100)}
_MAX_ARGS = 10


def _blank_as_none(value: Any) -> Any:
    """``""`` (a value Bybit does not have, e.g. no funding on dated futures) as ``None``."""
    return None if value == "" else value


def _no_time(value: Any) -> Any:
    """A timestamp of ``""`` or ``0`` (none scheduled) as ``None``."""
    return None if value in ("", 0, "0") else value


OptionalFloat = Annotated[float | None, BeforeValidator(_blank_as_none)]
OptionalNsFromMs = Annotated[NsFromMs | None, BeforeValidator(_no_time)]


class Trade(Flat):
    """One trade of a ``publicTrade`` message; ``side`` is the taker's."""

    trade_time_ns: NsFromMs = Field(alias="T")
    symbol: str = Field(alias="s")
    side: Literal["Buy", "Sell"] = Field(alias="S")
    size: float = Field(alias="v")
    price: float = Field(alias="p")
    tick_direction: str | None = Field(None, alias="L")
    trade_id: str = Field(alias="i")
    block_trade: bool = Field(False, alias="BT")


class PublicTrades(Flat):
    """A ``publicTrade.<symbol>`` message: one row per trade."""

    ts_ns: NsFromMs = Field(alias="ts")
    data: list[Trade]


class Tickers(Flat):
    """A ``tickers.<symbol>`` message; derivatives send deltas, so absent fields are null.

    Options name their best bid and offer ``bidPrice``/``bidSize``/``askPrice``/``askSize``;
    they fill the same ``bid1_*``/``ask1_*`` columns.
    """

    type: Literal["snapshot", "delta"] = "snapshot"
    ts_ns: NsFromMs = Field(alias="ts")
    cross_seq: int | None = Field(None, alias="cs")
    symbol: str
    last_price: OptionalFloat = Field(None, alias="lastPrice")
    bid1_price: OptionalFloat = Field(None, validation_alias=AliasChoices("bid1Price", "bidPrice"))
    bid1_size: OptionalFloat = Field(None, validation_alias=AliasChoices("bid1Size", "bidSize"))
    ask1_price: OptionalFloat = Field(None, validation_alias=AliasChoices("ask1Price", "askPrice"))
    ask1_size: OptionalFloat = Field(None, validation_alias=AliasChoices("ask1Size", "askSize"))
    mark_price: OptionalFloat = Field(None, alias="markPrice")
    index_price: OptionalFloat = Field(None, alias="indexPrice")
    open_interest: OptionalFloat = Field(None, alias="openInterest")
    funding_rate: OptionalFloat = Field(None, alias="fundingRate")
    volume_24h: OptionalFloat = Field(None, alias="volume24h")
    turnover_24h: OptionalFloat = Field(None, alias="turnover24h")
    price_24h_pcnt: OptionalFloat = Field(None, alias="price24hPcnt")
    high_price_24h: OptionalFloat = Field(None, alias="highPrice24h")
    low_price_24h: OptionalFloat = Field(None, alias="lowPrice24h")
    open_interest_value: OptionalFloat = Field(None, alias="openInterestValue")
    next_funding_time_ns: OptionalNsFromMs = Field(None, alias="nextFundingTime")

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("data"), dict):
            return value["data"] | {k: v for k, v in value.items() if k != "data"}
        return value


class OrderBook(Flat):
    """An ``orderbook.<depth>.<symbol>`` message: levels as ``[price, size]``, size 0 = gone."""

    type: Literal["snapshot", "delta"]
    depth: int
    symbol: str
    update_id: int
    cross_seq: int | None = None
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    ts_ns: NsFromMs
    matching_time_ns: NsFromMs | None = None

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        if not (isinstance(value, dict) and isinstance(value.get("data"), dict)):
            return value
        data, topic = value["data"], str(value.get("topic", ""))
        return {
            "type": value.get("type"), "depth": topic.split(".")[1] if "." in topic else None,
            "symbol": data.get("s"), "update_id": data.get("u"), "cross_seq": data.get("seq"),
            "bids": data.get("b"), "asks": data.get("a"), "ts_ns": value.get("ts"),
            "matching_time_ns": value.get("cts"),
        }


class Candle(Flat):
    """One candle of a ``kline`` message."""

    start_ns: NsFromMs = Field(alias="start")
    end_ns: NsFromMs = Field(alias="end")
    interval: str
    open: float
    close: float
    high: float
    low: float
    volume: float
    turnover: float
    confirm: bool
    last_trade_time_ns: NsFromMs | None = Field(None, alias="timestamp")


class Kline(Flat):
    """A ``kline.<interval>.<symbol>`` message: one row per candle (the symbol from the topic).

    ``confirm`` is true once the candle has closed; until then each message repeats the
    open candle with its values so far.
    """

    ts_ns: NsFromMs = Field(alias="ts")
    symbol: str
    data: list[Candle]

    @model_validator(mode="before")
    @classmethod
    def _symbol_from_topic(cls, value: Any) -> Any:
        if isinstance(value, dict) and "symbol" not in value:
            topic = value.get("topic")
            if isinstance(topic, str) and topic.count(".") >= 2:
                return value | {"symbol": topic.split(".", 2)[2]}
        return value


class Liquidation(Flat):
    """One liquidation of an ``allLiquidation`` message.

    ``position_side`` is Bybit's ``S``, the side of the liquidated *position*: ``Buy`` means
    a long position was liquidated (closed by a sell order).
    """

    time_ns: NsFromMs = Field(alias="T")
    symbol: str = Field(alias="s")
    position_side: Literal["Buy", "Sell"] = Field(alias="S")
    size: float = Field(alias="v")
    bankruptcy_price: float = Field(alias="p")


class AllLiquidation(Flat):
    """An ``allLiquidation.<symbol>`` message: one row per liquidation."""

    ts_ns: NsFromMs = Field(alias="ts")
    data: list[Liquidation]


def type_of(message: Any) -> str | None:
    """The channel from the topic's first part; ``ack``, ``pong`` or ``error`` for op replies."""
    if not isinstance(message, dict):
        return None
    topic = message.get("topic")
    if isinstance(topic, str):
        return topic.partition(".")[0]
    if message.get("success") is False:
        return "error"
    op = message.get("op")
    if op in ("ping", "pong"):
        return "pong"
    return "ack" if op is not None else None


def _book_seq(book: OrderBook) -> Seq:
    return Seq(book.update_id, book.update_id, reset=book.type == "snapshot")


class BookSync(BookRule):
    """Bybit v5 books: a snapshot, then deltas whose ``u`` is the previous one's + 1.

    A snapshot (the first message, one re-sent "if there is a problem on Bybit's end", and
    ``u`` = 1 after a service restart) replaces the book; a delta with any other ``u``
    than the next makes the book invalid until the next snapshot. Size 0 removes a level.
    No checksum.
    """

    channels = frozenset({"orderbook"})

    def __init__(self, depth: int) -> None:
        self.max_depth = depth

    def resubscribe(self, symbol: str) -> list[Any]:
        topic = f"orderbook.{self.max_depth}.{symbol}"
        return [{"op": op, "args": [topic]} for op in ("unsubscribe", "subscribe")]

    def apply(self, books: Books, channel: str, message: OrderBook, mono_ns: int,
              wall_ns: int) -> None:
        book = books.book(message.symbol)
        if message.type == "snapshot":
            book.clear()
            apply_pairs(book, "bid", message.bids)
            apply_pairs(book, "ask", message.asks)
            book.snapshot_done(mono_ns)
        elif book.valid:
            expected = (book.last_id or 0) + 1
            if message.update_id != expected:
                book.stats.gaps += 1
                book.mark_invalid(f"update id {message.update_id} after {expected - 1}",
                                  mono_ns)
            else:
                apply_pairs(book, "bid", message.bids)
                apply_pairs(book, "ask", message.asks)
                book.truncate()
        book.last_id = message.update_id
        book.touched(mono_ns, wall_ns, message.ts_ns)


# Normalizers: native frame → one kind's columns (wsresearch.normalize).

def _trades(native: pl.LazyFrame) -> pl.LazyFrame:
    # Bybit's S is the taker's side ("Side of taker"), already the tables' convention.
    return native.with_columns(
        pl.col("side").str.to_lowercase(), amount=pl.col("size"),
        exchange_time=pl.col("trade_time_ns"))


def _state(native: pl.LazyFrame, columns: dict[str, str]) -> pl.LazyFrame:
    """The rows whose message sent any of ``columns``, with each column's latest value.

    ``columns`` maps a kind's column to its native one; the latest value is taken per
    connection (``generation``) and symbol. Derivative tickers send a snapshot then deltas
    of the fields that changed: an absent field still has its last value. Each connection
    starts again from its own snapshot.
    """
    sent = pl.any_horizontal(pl.col(c).is_not_null() for c in columns.values())
    return (native.with_columns(_sent=sent)
            .with_columns(**{kind: pl.col(column).forward_fill().over("generation", "symbol")
                             for kind, column in columns.items()})
            .filter(pl.col("_sent")))


_QUOTE = {"bid_price": "bid1_price", "bid_amount": "bid1_size", "ask_price": "ask1_price",
          "ask_amount": "ask1_size"}


@stateful
def _quotes(native: pl.LazyFrame) -> pl.LazyFrame:
    out = _state(native, _QUOTE)
    # Options send 0 and 0 for an empty side: no quote there.
    return out.with_columns(
        *(pl.when(pl.col(f"{side}_amount") == 0).then(None).otherwise(pl.col(f"{side}_{c}"))
          .alias(f"{side}_{c}") for side in ("bid", "ask") for c in ("price", "amount")))


_DERIVATIVE = {"last_price": "last_price", "mark_price": "mark_price",
               "index_price": "index_price", "funding_rate": "funding_rate",
               "funding_time": "next_funding_time_ns", "open_interest": "open_interest"}


@stateful
def _derivative_ticker(native: pl.LazyFrame) -> pl.LazyFrame:
    return _state(native, _DERIVATIVE)


def _book_changes(native: pl.LazyFrame) -> pl.LazyFrame:
    native = native.with_row_index("_row").with_columns(
        is_snapshot=pl.col("type") == "snapshot")
    sides = []
    for side, column in (("bid", "bids"), ("ask", "asks")):
        # An empty list explodes to one null level: dropped.
        levels = native.explode(column).filter(pl.col(column).is_not_null())
        sides.append(levels.with_columns(
            side=pl.lit(side), price=pl.col(column).arr.get(0),
            amount=pl.col(column).arr.get(1)).drop("bids", "asks"))
    return pl.concat(sides).sort("_row", maintain_order=True)


def _candles(native: pl.LazyFrame) -> pl.LazyFrame:
    return native.with_columns(open_time="start_ns", closed="confirm")


def _liquidations(native: pl.LazyFrame) -> pl.LazyFrame:
    # S is the liquidated position's side ("a Buy update means a long position has been
    # liquidated"): the liquidated order is the opposite one.
    order_side = (pl.when(pl.col("position_side") == "Buy").then(pl.lit("sell"))
                  .otherwise(pl.lit("buy")))
    return native.with_columns(side=order_side, price="bankruptcy_price", amount="size",
                               exchange_time="time_ns")


def _channels(category: str) -> dict[str, Channel]:
    """The channels of ``category``, each with the normalized kinds it holds there."""
    tickers: dict[str, Normalizer] = {}
    if category != "spot":  # spot tickers carry no best bid and offer
        tickers["quotes"] = _quotes
    if category in ("linear", "inverse"):
        tickers["derivative_ticker"] = _derivative_ticker
    channels = {
        "publicTrade": Channel(
            name="publicTrade", model=PublicTrades, explode="data",
            dedupe_key=lambda f: tuple(t.trade_id for t in f.data),
            exchange_time="ts_ns", normalized={"trades": _trades},
        ),
        "tickers": Channel(
            name="tickers", model=Tickers, dedupe_key=("symbol", "ts_ns", "cross_seq"),
            exchange_time="ts_ns", normalized=tickers,
        ),
        "orderbook": Channel(
            name="orderbook", model=OrderBook,
            # With the time: a snapshot re-sent after a reconnect is new, a repeated message
            # is not.
            dedupe_key=("symbol", "depth", "type", "update_id", "ts_ns"),
            sequence=_book_seq, sequence_key=("symbol", "depth"),
            exchange_time="ts_ns", normalized={"book_changes": _book_changes},
        ),
        "kline": Channel(
            name="kline", model=Kline, explode="data",
            # An open candle is pushed again and again: the same push time is a repeat.
            dedupe_key=lambda f: (f.symbol, f.ts_ns,
                                  tuple((c.interval, c.start_ns, c.confirm) for c in f.data)),
            exchange_time="ts_ns", normalized={"candles": _candles},
        ),
        "allLiquidation": Channel(
            name="allLiquidation", model=AllLiquidation, explode="data",
            dedupe_key=lambda f: (f.ts_ns, tuple(
                (x.symbol, x.time_ns, x.position_side, x.size, x.bankruptcy_price)
                for x in f.data)),
            exchange_time="ts_ns", normalized={"liquidations": _liquidations},
        ),
    }
    return {name: channels[name] for name in CATEGORY_CHANNELS[category]}


_HEALTH = {
    "publicTrade": StreamConfig(expected_interval=1.0, stale_threshold=60.0, allow_silence=True),
    "tickers": StreamConfig(expected_interval=1.0, stale_threshold=60.0),
    "orderbook": StreamConfig(expected_interval=0.5, stale_threshold=30.0),
    "kline": StreamConfig(expected_interval=5.0, stale_threshold=120.0),
    # Liquidations are rare: hours of silence are normal.
    "allLiquidation": StreamConfig(expected_interval=60.0, stale_threshold=3600.0,
                                   allow_silence=True),
}


def _error_text(report: dict[str, Any]) -> str:
    return str(report.get("ret_msg") or report)


def spec(
    symbols: Sequence[str] = ("BTCUSDT",),
    channels: Sequence[str] = ("publicTrade", "orderbook"),
    url: str | None = None,
    *,
    category: str = "linear",
    book_depth: int | None = None,
    kline_interval: str = "1",
    connection: ConnectionConfig | None = None,
    **overrides: Any,
) -> FeedSpec:
    """The spec for Bybit v5 public streams.

    Parameters
    ----------
    symbols
        Symbols such as ``"BTCUSDT"`` (any case).
    channels
        Any of the category's channels (:data:`CATEGORY_CHANNELS`).
    url
        Where to connect instead of Bybit.
    category
        ``"spot"``, ``"linear"``, ``"inverse"`` or ``"option"``.
    book_depth
        Order book depth (1, 50, 200, 1000; 500 on linear and inverse; options 25, 100);
        checked only when ``orderbook`` is one of the channels. Default: 50; options 25.
    kline_interval
        The ``kline`` channel's interval, as Bybit names it (:data:`KLINE_INTERVALS`:
        ``"1"`` minute ... ``"720"``, ``"D"``, ``"W"``, ``"M"``).
    connection
        Connection settings.
    **overrides
        Any other :class:`~wsresearch.spec.FeedSpec` field.

    Raises
    ------
    ValueError
        For an unknown category, channel, depth or interval, a channel the category does
        not have, or a symbol not spelled like Bybit's.

    Examples
    --------
    >>> spec(["btcusdt"], ["orderbook"], book_depth=200).subscribe[0]
    {'op': 'subscribe', 'args': ['orderbook.200.BTCUSDT']}
    >>> spec(["BTCUSDT"], ["kline", "allLiquidation"], kline_interval="5").subscribe[0]
    {'op': 'subscribe', 'args': ['kline.5.BTCUSDT', 'allLiquidation.BTCUSDT']}
    """
    check_choice("category", category, CATEGORIES, "Bybit")
    chosen = check_channels(channels, CHANNELS, "Bybit")
    missing = [c for c in chosen if c not in CATEGORY_CHANNELS[category]]
    if missing:
        raise ValueError(f"Bybit {category} has no channel(s) {missing}; choose from "
                         f"{list(CATEGORY_CHANNELS[category])}")
    names = check_symbols(symbols, r"[A-Z0-9]{2,30}(-[A-Z0-9-]+)?", "BTCUSDT", "Bybit",
                          upper=True)
    if book_depth is None:
        book_depth = 25 if category == "option" else 50
    if "orderbook" in chosen and book_depth not in _DEPTHS[category]:
        raise ValueError(f"unknown Bybit {category} book depth {book_depth}; "
                         f"choose from {_DEPTHS[category]}")
    check_choice("kline interval", kline_interval, KLINE_INTERVALS, "Bybit")
    topic = {"publicTrade": "publicTrade.{}", "tickers": "tickers.{}",
             "orderbook": f"orderbook.{book_depth}.{{}}", "kline": f"kline.{kline_interval}.{{}}",
             "allLiquidation": "allLiquidation.{}"}
    topics = [topic[channel].format(symbol) for channel in chosen for symbol in names]
    url = url or CATEGORIES[category]
    connection = app_ping(connection or ConnectionConfig(), {"op": "ping"}, 20.0)
    arguments: dict[str, Any] = {"symbols": names, "channels": chosen, "category": category,
                                 "book_depth": book_depth, "kline_interval": kline_interval}
    available = _channels(category)
    return assemble(
        "bybit", arguments, overrides,
        url=url,
        channels=[available[name] for name in chosen],
        type_of=type_of,
        subscribe=[{"op": "subscribe", "args": topics[i:i + _MAX_ARGS]}
                   for i in range(0, len(topics), _MAX_ARGS)],
        health={name: _HEALTH[name] for name in chosen},
        connection=connection,
        control=frozenset({"ack", "pong"}),
        book_sync=BookSync(book_depth) if "orderbook" in chosen else None,
        error_types=frozenset({"error"}),
        error_text=_error_text,
        description=f"Bybit {category}: {', '.join(chosen)} on {', '.join(names)}",
    )
