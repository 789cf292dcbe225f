"""The embedded simulator's own dialect: trades, tickers and a mostly silent order stream.

Messages are JSON objects with a ``type`` field::

    {"type": "trade", "symbol": "BTC-USD", "seq": 17, "trade_id": 1042,
     "price": "30012.5", "size": "0.015", "side": "buy", "ts": 1700000000123456789}
    {"type": "ticker", "symbol": "BTC-USD", "seq": 9, "bid": "30012.0", "ask": "30013.0",
     "bid_size": "1.2", "ask_size": "0.8", "ts": 1700000000123456789}
    {"type": "order", "order_id": "o-3", "symbol": "ETH-USD", "status": "filled",
     "price": "2000.1", "size": "0.5", "ts": 1700000000123456789}

Prices and sizes arrive as strings, as on most exchanges, and become
``float64`` columns. ``ts`` is the exchange time in ns; ``seq`` counts per
symbol and stream. The client subscribes with
``{"op": "subscribe", "channels": [...], "symbols": [...]}``, may authenticate
with ``{"op": "auth", "key": ...}`` first, and may ping with ``{"op": "ping"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel

from ..config import ConnectionConfig, StreamConfig
from ..layout import Layout
from ..parser import by_field
from ..spec import Channel, FeedSpec
from ._common import app_ping as with_app_ping
from ._common import assemble, check_channels, check_symbols

__all__ = ["CHANNELS", "SYMBOLS", "Order", "Ticker", "Trade", "spec", "type_of"]

SYMBOLS: tuple[str, ...] = ("BTC-USD", "ETH-USD", "SOL-USD")
CHANNELS: tuple[str, ...] = ("trade", "ticker", "order")


class Trade(BaseModel):
    """One trade print."""

    symbol: str
    seq: int
    trade_id: int
    price: float
    size: float
    side: Literal["buy", "sell"]
    ts: int


class Ticker(BaseModel):
    """Best bid and offer."""

    symbol: str
    seq: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    ts: int


class Order(BaseModel):
    """An update to one of the account's orders (rare: silence is normal)."""

    order_id: str
    symbol: str
    status: str
    price: float
    size: float
    ts: int


type_of = by_field("type")
"""Route by the ``type`` field; anything but an object has no type."""


def _trades(native: pl.LazyFrame) -> pl.LazyFrame:
    # The simulator's side is the taker's, as the normalized tables want it.
    return native.with_columns(pl.col("trade_id").cast(pl.String), amount=pl.col("size"))


def _quotes(native: pl.LazyFrame) -> pl.LazyFrame:
    return native.with_columns(bid_price="bid", bid_amount="bid_size", ask_price="ask",
                               ask_amount="ask_size")


_CHANNELS = {
    "trade": Channel(
        name="trade",
        model=Trade,
        dedupe_key=("symbol", "trade_id"),
        sequence="seq",
        sequence_key="symbol",
        exchange_time="ts",
        normalized={"trades": _trades},
        layout=Layout('{"type":"trade","symbol":<symbol:str>,"seq":<seq:int>,'
                      '"trade_id":<trade_id:int>,"price":<price:decimal>,"size":<size:decimal>,'
                      '"side":<side:str(buy|sell)>,"ts":<ts:int>}'),
    ),
    "ticker": Channel(
        name="ticker",
        model=Ticker,
        dedupe_key=("symbol", "seq"),
        sequence="seq",
        sequence_key="symbol",
        exchange_time="ts",
        normalized={"quotes": _quotes},
        layout=Layout('{"type":"ticker","symbol":<symbol:str>,"seq":<seq:int>,'
                      '"bid":<bid:decimal>,"ask":<ask:decimal>,"bid_size":<bid_size:decimal>,'
                      '"ask_size":<ask_size:decimal>,"ts":<ts:int>}'),
    ),
    "order": Channel(
        name="order",
        model=Order,
        dedupe_key=("order_id", "status"),
        exchange_time="ts",
    ),
}

_HEALTH = {
    "trade": StreamConfig(expected_interval=0.05, stale_threshold=2.0),
    "ticker": StreamConfig(expected_interval=0.1, stale_threshold=2.0),
    "order": StreamConfig(expected_interval=30.0, stale_threshold=60.0, allow_silence=True),
}


def _error_text(report: dict[str, Any]) -> str:
    return str(report.get("message", report))


def spec(
    symbols: Sequence[str] = SYMBOLS,
    channels: Sequence[str] = CHANNELS,
    url: str | None = None,
    *,
    api_key: str | None = None,
    app_ping: bool = False,
    connection: ConnectionConfig | None = None,
    **overrides: Any,
) -> FeedSpec:
    """Build the spec for the simulator's generic dialect.

    Parameters
    ----------
    symbols
        Symbols to subscribe to.
    channels
        Any of ``"trade"``, ``"ticker"``, ``"order"``.
    url
        The simulator's URL (``Simulator.url``); required, as there is no public server.
    api_key
        Sent as ``{"op": "auth", "key": ...}`` on every connect (redacted in records).
    app_ping
        Also send ``{"op": "ping"}`` with every WebSocket ping.
    connection
        Connection settings (reconnect, heartbeat...).
    **overrides
        Any other :class:`~wsresearch.spec.FeedSpec` field (``queue=``, ``health=``...).

    Raises
    ------
    ValueError
        For an unknown channel, no symbols, or no URL.
    TypeError
        For a string where a list of symbols or channels belongs.
    """
    chosen = check_channels(channels, CHANNELS, "generic")
    names = check_symbols(symbols, r"\S+", "BTC-USD", "generic")
    if url is None:
        raise ValueError("the generic dialect has no public server: pass url=sim.url")
    if connection is None:
        connection = ConnectionConfig()
    if app_ping:  # with every WebSocket ping, at the heartbeat's own interval
        connection = with_app_ping(connection, {"op": "ping"}, connection.heartbeat.interval)
    arguments: dict[str, Any] = {"symbols": names, "channels": chosen}
    return assemble(
        "generic", arguments, overrides,
        url=url,
        channels=[_CHANNELS[name] for name in chosen],
        type_of=type_of,
        subscribe=[{"op": "subscribe", "channels": list(chosen), "symbols": list(names)}],
        auth=None if api_key is None else {"op": "auth", "key": api_key},
        health={name: _HEALTH[name] for name in chosen},
        connection=connection,
        control=frozenset({"subscribed", "authenticated", "pong"}),
        error_types=frozenset({"error"}),
        error_text=_error_text,
        description=f"simulator generic: {', '.join(chosen)} on {', '.join(names)}",
    )
