"""Bybit v5 public streams: ``publicTrade``, ``tickers``, ``orderbook.<depth>``.

One URL per product category (``wss://stream.bybit.com/v5/public/<category>``).
The client subscribes with ``{"op": "subscribe", "args": ["publicTrade.BTCUSDT",
...]}`` (at most 10 topics per request on spot, so longer lists are split) and
pings with ``{"op": "ping"}`` every 20 seconds, as Bybit asks. Messages name
their ``topic``; book messages are a ``snapshot`` then ``delta``s whose update id
``u`` counts up by one per symbol and depth (a snapshot with ``u`` = 1 means
the service restarted: the count starts again). See ``docs/exchanges/bybit.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any, Literal

from pydantic import Field, model_validator

from ..config import ConnectionConfig, StreamConfig
from ..sequence import Seq
from ..spec import Channel, FeedSpec
from ._common import Flat, NsFromMs, app_ping, assemble, check_channels, check_choice, check_symbols

__all__ = ["CATEGORIES", "CHANNELS", "OrderBook", "PublicTrades", "Tickers", "spec", "type_of"]

CATEGORIES: dict[str, str] = {
    name: f"wss://stream.bybit.com/v5/public/{name}"
    for name in ("spot", "linear", "inverse", "option")
}
"""Product category to its URL."""

CHANNELS: tuple[str, ...] = ("publicTrade", "tickers", "orderbook")
_DEPTHS = {"spot": (1, 50, 200, 1000), "linear": (1, 50, 200, 500, 1000),
           "inverse": (1, 50, 200, 500, 1000), "option": (25, 100)}
_MAX_ARGS = 10


class Trade(Flat):
    """One trade of a ``publicTrade`` message."""

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
    """A ``tickers.<symbol>`` message; derivatives send deltas, so absent fields are null."""

    type: Literal["snapshot", "delta"] = "snapshot"
    ts_ns: NsFromMs = Field(alias="ts")
    cross_seq: int | None = Field(None, alias="cs")
    symbol: str
    last_price: float | None = Field(None, alias="lastPrice")
    bid1_price: float | None = Field(None, alias="bid1Price")
    bid1_size: float | None = Field(None, alias="bid1Size")
    ask1_price: float | None = Field(None, alias="ask1Price")
    ask1_size: float | None = Field(None, alias="ask1Size")
    mark_price: float | None = Field(None, alias="markPrice")
    index_price: float | None = Field(None, alias="indexPrice")
    open_interest: float | None = Field(None, alias="openInterest")
    funding_rate: float | None = Field(None, alias="fundingRate")
    volume_24h: float | None = Field(None, alias="volume24h")
    turnover_24h: float | None = Field(None, alias="turnover24h")
    price_24h_pcnt: float | None = Field(None, alias="price24hPcnt")
    high_price_24h: float | None = Field(None, alias="highPrice24h")
    low_price_24h: float | None = Field(None, alias="lowPrice24h")

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


_CHANNELS = {
    "publicTrade": Channel(
        name="publicTrade", model=PublicTrades, explode="data",
        dedupe_key=lambda f: tuple(t.trade_id for t in f.data),
        exchange_time=attrgetter("ts_ns"),
    ),
    "tickers": Channel(
        name="tickers", model=Tickers, dedupe_key=attrgetter("symbol", "ts_ns", "cross_seq"),
        exchange_time=attrgetter("ts_ns"),
    ),
    "orderbook": Channel(
        name="orderbook", model=OrderBook,
        # With the time: a snapshot re-sent after a reconnect is new, a repeated message is not.
        dedupe_key=attrgetter("symbol", "depth", "type", "update_id", "ts_ns"),
        sequence=_book_seq, sequence_key=attrgetter("symbol", "depth"),
        exchange_time=attrgetter("ts_ns"),
    ),
}

_HEALTH = {
    "publicTrade": StreamConfig(expected_interval=1.0, stale_threshold=60.0, allow_silence=True),
    "tickers": StreamConfig(expected_interval=1.0, stale_threshold=60.0),
    "orderbook": StreamConfig(expected_interval=0.5, stale_threshold=30.0),
}


def _error_text(report: dict[str, Any]) -> str:
    return str(report.get("ret_msg") or report)


def spec(
    symbols: Sequence[str] = ("BTCUSDT",),
    channels: Sequence[str] = ("publicTrade", "orderbook"),
    url: str | None = None,
    *,
    category: str = "linear",
    book_depth: int = 50,
    connection: ConnectionConfig | None = None,
    **overrides: Any,
) -> FeedSpec:
    """The spec for Bybit v5 public streams.

    Parameters
    ----------
    symbols
        Symbols such as ``"BTCUSDT"`` (any case).
    channels
        Any of :data:`CHANNELS`.
    url
        Where to connect instead of Bybit.
    category
        ``"spot"``, ``"linear"``, ``"inverse"`` or ``"option"``.
    book_depth
        Order book depth (1, 50, 200, 1000; 500 on linear and inverse; options 25, 100).
    connection
        Connection settings.
    **overrides
        Any other :class:`~wsresearch.spec.FeedSpec` field.

    Raises
    ------
    ValueError
        For an unknown category, channel or depth, or a symbol not spelled like Bybit's.

    Examples
    --------
    >>> spec(["btcusdt"], ["orderbook"], book_depth=200).subscribe[0]
    {'op': 'subscribe', 'args': ['orderbook.200.BTCUSDT']}
    """
    check_choice("category", category, CATEGORIES, "Bybit")
    chosen = check_channels(channels, CHANNELS, "Bybit")
    names = check_symbols(symbols, r"[A-Z0-9]{2,30}(-[A-Z0-9-]+)?", "BTCUSDT", "Bybit",
                          upper=True)
    if book_depth not in _DEPTHS[category]:
        raise ValueError(f"unknown Bybit {category} book depth {book_depth}; "
                         f"choose from {_DEPTHS[category]}")
    topic = {"publicTrade": "publicTrade.{}", "tickers": "tickers.{}",
             "orderbook": f"orderbook.{book_depth}.{{}}"}
    topics = [topic[channel].format(symbol) for channel in chosen for symbol in names]
    url = url or CATEGORIES[category]
    connection = app_ping(connection or ConnectionConfig(), {"op": "ping"}, 20.0)
    arguments: dict[str, Any] = {"symbols": names, "channels": chosen, "category": category,
                                 "book_depth": book_depth}
    return assemble(
        "bybit", arguments, overrides,
        url=url,
        channels=[_CHANNELS[name] for name in chosen],
        type_of=type_of,
        subscribe=[{"op": "subscribe", "args": topics[i:i + _MAX_ARGS]}
                   for i in range(0, len(topics), _MAX_ARGS)],
        health={name: _HEALTH[name] for name in chosen},
        connection=connection,
        control=frozenset({"ack", "pong"}),
        error_types=frozenset({"error"}),
        error_text=_error_text,
        description=f"Bybit {category}: {', '.join(chosen)} on {', '.join(names)}",
    )
