"""Binance spot and USD-M futures market streams, over the combined-stream endpoint.

The client connects to ``/stream`` and subscribes with ``{"method":
"SUBSCRIBE", "params": ["btcusdt@trade", ...], "id": 1}`` on every connect;
each message then names its stream: ``{"stream": "btcusdt@trade", "data":
{...}}``. Routing reads the stream name (spot ``bookTicker`` messages carry no
event type). Columns get readable names (``s`` → ``symbol``, ``T`` →
``trade_time_ns``...), times become ns, prices and sizes ``float64``. See
``docs/exchanges/binance.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..config import ConnectionConfig, StreamConfig
from ..sequence import Seq
from ..spec import Channel, FeedSpec
from ._common import NsFromMs, assemble, check_channels, check_choice, check_symbols

__all__ = [
    "CHANNELS", "MARKETS", "AggTrade", "BookTicker", "Depth", "Kline", "Trade", "spec",
    "stream_names", "type_of",
]

CHANNELS: tuple[str, ...] = ("trade", "aggTrade", "bookTicker", "depth", "kline")
MARKETS: dict[str, str] = {
    "spot": "wss://stream.binance.com:9443/stream",
    "usdm": "wss://fstream.binance.com/stream",
}
"""Market name to its combined-stream URL."""

_DEPTH_SPEEDS = {"spot": ("100ms", "1000ms"), "usdm": ("0ms", "100ms", "250ms", "500ms")}
_DEFAULT_SPEED = {"spot": "1000ms", "usdm": "250ms"}  # the ones without a suffix
_KLINE_INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
                    "1d", "3d", "1w", "1M")
_MAX_STREAMS = {"spot": 1024, "usdm": 200}


def _unwrap(value: Any) -> Any:
    """The ``data`` of a combined-stream envelope; anything else as it is."""
    if isinstance(value, dict) and "stream" in value and "data" in value:
        return value["data"]
    return value


class _Stream(BaseModel):
    """A combined-stream payload: the envelope is unwrapped, only ``data`` is kept."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _unwrap_envelope(cls, value: Any) -> Any:
        return _unwrap(value)


class Trade(_Stream):
    """One trade (``<symbol>@trade``)."""

    symbol: str = Field(alias="s")
    trade_id: int = Field(alias="t")
    price: float = Field(alias="p")
    qty: float = Field(alias="q")
    buyer_is_maker: bool = Field(alias="m")
    trade_time_ns: NsFromMs = Field(alias="T")
    event_time_ns: NsFromMs = Field(alias="E")
    order_type: str | None = Field(None, alias="X")
    """USD-M only: ``MARKET``, ``LIQUIDATION``, ``INSURANCE_FUND``..."""


class AggTrade(_Stream):
    """Trades of one taker order at one price (``<symbol>@aggTrade``)."""

    symbol: str = Field(alias="s")
    agg_id: int = Field(alias="a")
    price: float = Field(alias="p")
    qty: float = Field(alias="q")
    first_trade_id: int = Field(alias="f")
    last_trade_id: int = Field(alias="l")
    buyer_is_maker: bool = Field(alias="m")
    trade_time_ns: NsFromMs = Field(alias="T")
    event_time_ns: NsFromMs = Field(alias="E")


class BookTicker(_Stream):
    """Best bid and offer (``<symbol>@bookTicker``)."""

    symbol: str = Field(alias="s")
    update_id: int = Field(alias="u")
    bid: float = Field(alias="b")
    bid_qty: float = Field(alias="B")
    ask: float = Field(alias="a")
    ask_qty: float = Field(alias="A")
    event_time_ns: NsFromMs | None = Field(None, alias="E")
    """USD-M only (spot book tickers carry no time)."""
    transaction_time_ns: NsFromMs | None = Field(None, alias="T")


class Depth(_Stream):
    """A diff of the order book (``<symbol>@depth``): levels as ``[price, qty]``, qty 0 = gone."""

    symbol: str = Field(alias="s")
    first_update_id: int = Field(alias="U")
    final_update_id: int = Field(alias="u")
    prev_final_update_id: int | None = Field(None, alias="pu")
    """USD-M only: ``final_update_id`` of the previous diff."""
    bids: list[tuple[float, float]] = Field(alias="b")
    asks: list[tuple[float, float]] = Field(alias="a")
    event_time_ns: NsFromMs = Field(alias="E")
    transaction_time_ns: NsFromMs | None = Field(None, alias="T")


class Kline(_Stream):
    """The current candle (``<symbol>@kline_<interval>``), pushed as it forms."""

    symbol: str
    interval: str
    open_time_ns: NsFromMs
    close_time_ns: NsFromMs
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int
    closed: bool
    first_trade_id: int
    last_trade_id: int
    event_time_ns: NsFromMs

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        # Runs before the envelope is unwrapped (subclass validators run first).
        value = _unwrap(value)
        if not (isinstance(value, dict) and isinstance(value.get("k"), dict)):
            return value
        k = value["k"]
        return {
            "symbol": value.get("s"), "interval": k.get("i"), "open_time_ns": k.get("t"),
            "close_time_ns": k.get("T"), "open": k.get("o"), "high": k.get("h"),
            "low": k.get("l"), "close": k.get("c"), "volume": k.get("v"),
            "quote_volume": k.get("q"), "trades": k.get("n"), "closed": k.get("x"),
            "first_trade_id": k.get("f"), "last_trade_id": k.get("L"),
            "event_time_ns": value.get("E"),
        }


def type_of(message: Any) -> str | None:
    """The channel of a message, from its stream name; ``ack`` and ``error`` for replies."""
    if not isinstance(message, dict):
        return None
    stream = message.get("stream")
    if isinstance(stream, str):
        name = stream.partition("@")[2].partition("@")[0]
        return "kline" if name.startswith("kline_") else name
    if "error" in message or ("code" in message and "msg" in message):
        return "error"
    if "result" in message and "id" in message:
        return "ack"
    return None


def _error_text(report: dict[str, Any]) -> str:
    error = report.get("error", report)
    if isinstance(error, dict):
        return f"{error.get('msg', error)} (code {error.get('code')})"
    return str(error)


def _depth_seq(d: Depth) -> Seq:
    # Spot: U..u, U = previous u + 1. USD-M: pu = previous u.
    first = d.first_update_id if d.prev_final_update_id is None else d.prev_final_update_id + 1
    return Seq(first, max(first, d.final_update_id))


_CHANNELS = {
    "trade": Channel(
        name="trade", model=Trade, dedupe_key=attrgetter("symbol", "trade_id"),
        sequence=attrgetter("trade_id"), sequence_key=attrgetter("symbol"),
        exchange_time=attrgetter("trade_time_ns"),
    ),
    "aggTrade": Channel(
        name="aggTrade", model=AggTrade, dedupe_key=attrgetter("symbol", "agg_id"),
        sequence=attrgetter("agg_id"), sequence_key=attrgetter("symbol"),
        exchange_time=attrgetter("trade_time_ns"),
    ),
    "bookTicker": Channel(
        name="bookTicker", model=BookTicker, dedupe_key=attrgetter("symbol", "update_id"),
        exchange_time=attrgetter("event_time_ns"),
    ),
    "depth": Channel(
        name="depth", model=Depth, dedupe_key=attrgetter("symbol", "final_update_id"),
        sequence=_depth_seq, sequence_key=attrgetter("symbol"),
        exchange_time=attrgetter("event_time_ns"),
    ),
    "kline": Channel(
        name="kline", model=Kline,
        dedupe_key=attrgetter("symbol", "interval", "open_time_ns", "event_time_ns"),
        exchange_time=attrgetter("event_time_ns"),
    ),
}

_HEALTH = {
    "trade": StreamConfig(expected_interval=1.0, stale_threshold=60.0, allow_silence=True),
    "aggTrade": StreamConfig(expected_interval=1.0, stale_threshold=60.0, allow_silence=True),
    "bookTicker": StreamConfig(expected_interval=0.5, stale_threshold=30.0),
    "depth": StreamConfig(expected_interval=1.0, stale_threshold=30.0),
    "kline": StreamConfig(expected_interval=2.0, stale_threshold=30.0),
}


def stream_names(
    symbols: Sequence[str], channels: Sequence[str], market: str = "spot",
    depth_speed: str | None = None, kline_interval: str = "1m",
) -> list[str]:
    """The Binance stream names to subscribe to, e.g. ``["btcusdt@trade"]``."""
    speed = depth_speed or _DEFAULT_SPEED[market]
    suffix = {
        "trade": "@trade", "aggTrade": "@aggTrade", "bookTicker": "@bookTicker",
        "depth": "@depth" if speed == _DEFAULT_SPEED[market] else f"@depth@{speed}",
        "kline": f"@kline_{kline_interval}",
    }
    return [f"{symbol}{suffix[channel]}" for channel in channels for symbol in symbols]


def spec(
    symbols: Sequence[str] = ("btcusdt",),
    channels: Sequence[str] = ("trade", "bookTicker"),
    url: str | None = None,
    *,
    market: str = "spot",
    depth_speed: str | None = None,
    kline_interval: str = "1m",
    connection: ConnectionConfig | None = None,
    **overrides: Any,
) -> FeedSpec:
    """The spec for Binance combined streams.

    Parameters
    ----------
    symbols
        Symbols such as ``"btcusdt"`` (any case).
    channels
        Any of :data:`CHANNELS`.
    url
        Where to connect instead of Binance (a simulator, a replay server, a proxy).
    market
        ``"spot"`` or ``"usdm"`` (USD-M futures).
    depth_speed
        Diff-depth update speed: spot ``"100ms"`` or ``"1000ms"`` (default);
        USD-M ``"0ms"``, ``"100ms"``, ``"250ms"`` (default) or ``"500ms"``.
    kline_interval
        Candle interval, e.g. ``"1m"``.
    connection
        Connection settings (reconnect, heartbeat...).
    **overrides
        Any other :class:`~wsresearch.spec.FeedSpec` field.

    Raises
    ------
    ValueError
        For an unknown channel, market, speed or interval, a symbol not spelled
        like Binance's, or more streams than one connection takes.

    Examples
    --------
    >>> s = spec(["BTCUSDT", "ethusdt"], ["trade", "depth"], depth_speed="100ms")
    >>> s.subscribe[0]["params"]
    ['btcusdt@trade', 'ethusdt@trade', 'btcusdt@depth@100ms', 'ethusdt@depth@100ms']
    """
    check_choice("market", market, MARKETS, "Binance")
    chosen = check_channels(channels, CHANNELS, "Binance")
    names = check_symbols(symbols, r"[a-z0-9]{2,30}", "btcusdt", "Binance", lower=True)
    if depth_speed is not None:
        check_choice(f"{market} depth speed", depth_speed, _DEPTH_SPEEDS[market], "Binance")
    check_choice("kline interval", kline_interval, _KLINE_INTERVALS, "Binance")
    streams = stream_names(names, chosen, market, depth_speed, kline_interval)
    if len(streams) > _MAX_STREAMS[market]:
        raise ValueError(f"{len(streams)} streams: Binance {market} takes at most "
                         f"{_MAX_STREAMS[market]} per connection; split the symbols over feeds")
    url = url or MARKETS[market]
    arguments: dict[str, Any] = {"symbols": names, "channels": chosen, "market": market,
                                 "depth_speed": depth_speed, "kline_interval": kline_interval}
    return assemble(
        "binance", arguments, overrides,
        url=url,
        channels=[_CHANNELS[name] for name in chosen],
        type_of=type_of,
        subscribe=[{"method": "SUBSCRIBE", "params": streams, "id": 1}],
        health={name: _HEALTH[name] for name in chosen},
        connection=connection,
        control=frozenset({"ack"}),
        error_types=frozenset({"error"}),
        error_text=_error_text,
        description=f"Binance {market}: {', '.join(chosen)} on {', '.join(names)}",
    )
