"""OKX v5 public channels: ``trades``, ``tickers``, ``books`` (400 levels) and ``books5``.

The client subscribes with ``{"op": "subscribe", "args": [{"channel":
"trades", "instId": "BTC-USDT"}, ...]}``; messages carry the ``arg`` they answer
and a ``data`` list. OKX closes a connection that hears nothing for 30
seconds, so the spec sends the text ``ping`` every 20 seconds; the answer is
the text ``pong`` (not JSON), counted as control. Book messages are a
``snapshot`` then ``update``s linked by ``prevSeqId`` = the previous
``seqId``, with a CRC32 ``checksum`` of the top 25 levels. See
``docs/exchanges/okx.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any, Literal

from pydantic import Field, model_validator

from ..config import ConnectionConfig, StreamConfig
from ..sequence import Seq
from ..spec import Channel, FeedSpec
from ._common import Flat, NsFromMs, app_ping, assemble, check_channels, check_symbols

__all__ = ["CHANNELS", "URL", "Books", "Tickers", "Trades", "spec", "type_of"]

URL = "wss://ws.okx.com:8443/ws/v5/public"
CHANNELS: tuple[str, ...] = ("trades", "tickers", "books", "books5")


def _first(value: Any) -> Any:
    """The message's one ``data`` item, with the message's ``action`` and ``instId``."""
    if not (isinstance(value, dict) and isinstance(value.get("data"), list)):
        return value
    if len(value["data"]) != 1:
        raise ValueError(f"expected one data item, got {len(value['data'])}")
    arg = value.get("arg")
    arg = arg if isinstance(arg, dict) else {}
    item = value["data"][0]
    if not isinstance(item, dict):
        raise ValueError("the data item is not an object")
    return {"instId": arg.get("instId"), "action": value.get("action")} | item


class Trade(Flat):
    """One trade."""

    inst_id: str = Field(alias="instId")
    trade_id: int = Field(alias="tradeId")
    price: float = Field(alias="px")
    size: float = Field(alias="sz")
    side: Literal["buy", "sell"]
    ts_ns: NsFromMs = Field(alias="ts")
    count: int | None = None
    """Trades aggregated into this one (newer API versions)."""


class Trades(Flat):
    """A ``trades`` message: one row per trade."""

    data: list[Trade]


class Tickers(Flat):
    """A ``tickers`` message: last trade, best bid and ask, 24 h figures."""

    inst_type: str | None = Field(None, alias="instType")
    inst_id: str = Field(alias="instId")
    last: float
    last_size: float = Field(alias="lastSz")
    ask: float | None = Field(None, alias="askPx")
    ask_size: float | None = Field(None, alias="askSz")
    bid: float | None = Field(None, alias="bidPx")
    bid_size: float | None = Field(None, alias="bidSz")
    open_24h: float = Field(alias="open24h")
    high_24h: float = Field(alias="high24h")
    low_24h: float = Field(alias="low24h")
    vol_ccy_24h: float = Field(alias="volCcy24h")
    vol_24h: float = Field(alias="vol24h")
    ts_ns: NsFromMs = Field(alias="ts")

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        return _first(value)


def _level(value: Any) -> Any:
    # [price, size, deprecated liquidated orders, number of orders]
    if isinstance(value, list) and len(value) == 4:
        return [value[0], value[1], value[3]]
    return value


class Books(Flat):
    """A ``books``/``books5`` message: levels as ``[price, size, orders]``, size 0 = gone."""

    inst_id: str = Field(alias="instId")
    action: Literal["snapshot", "update"] | None = None
    """``books``: ``snapshot`` then ``update``; ``books5`` sends whole books (``None``)."""
    asks: list[tuple[float, float, float]]
    bids: list[tuple[float, float, float]]
    ts_ns: NsFromMs = Field(alias="ts")
    checksum: int | None = None
    seq_id: int | None = Field(None, alias="seqId")
    prev_seq_id: int | None = Field(None, alias="prevSeqId")

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        value = _first(value)
        if isinstance(value, dict):
            for side in ("asks", "bids"):
                if isinstance(value.get(side), list):
                    value[side] = [_level(level) for level in value[side]]
        return value


def type_of(message: Any) -> str | None:
    """The ``arg.channel`` of data messages; ``error`` for ``error`` events, else ``ack``."""
    if not isinstance(message, dict):
        return None
    event = message.get("event")
    if event is not None:  # subscribe, notice, channel-conn-count...: acks and notices
        return "error" if str(event).endswith("error") else "ack"
    arg = message.get("arg")
    if isinstance(arg, dict) and "data" in message:
        channel = arg.get("channel")
        return channel if isinstance(channel, str) else None
    return None


def _book_seq(book: Books) -> Seq | None:
    """``Seq(prevSeqId + 1, seqId)``; a snapshot restarts; ``None`` before OKX sent seqIds."""
    if book.seq_id is None:
        return None
    if book.action == "snapshot" or book.prev_seq_id is None or book.prev_seq_id < 0:
        return Seq(book.seq_id, book.seq_id, reset=True)
    if book.prev_seq_id == book.seq_id:  # nothing changed: a keep-alive update
        return None
    return Seq(book.prev_seq_id + 1, max(book.prev_seq_id + 1, book.seq_id))


def _books(name: str) -> Channel:
    return Channel(
        name=name, model=Books,
        dedupe_key=attrgetter("inst_id", "ts_ns", "seq_id", "checksum"),
        sequence=_book_seq if name == "books" else None,
        sequence_key=attrgetter("inst_id"), exchange_time=attrgetter("ts_ns"),
    )


_CHANNELS = {
    "trades": Channel(
        name="trades", model=Trades, explode="data",
        dedupe_key=lambda f: tuple((t.inst_id, t.trade_id) for t in f.data),
        exchange_time=lambda f: f.data[0].ts_ns if f.data else None,
    ),
    "tickers": Channel(
        name="tickers", model=Tickers, dedupe_key=attrgetter("inst_id", "ts_ns"),
        exchange_time=attrgetter("ts_ns"),
    ),
    "books": _books("books"),
    "books5": _books("books5"),
}

_HEALTH = {
    "trades": StreamConfig(expected_interval=1.0, stale_threshold=60.0, allow_silence=True),
    "tickers": StreamConfig(expected_interval=1.0, stale_threshold=60.0),
    "books": StreamConfig(expected_interval=0.5, stale_threshold=30.0),
    "books5": StreamConfig(expected_interval=0.5, stale_threshold=30.0),
}


def _error_text(report: dict[str, Any]) -> str:
    return f"{report.get('msg', report)} (code {report.get('code')})"


def spec(
    symbols: Sequence[str] = ("BTC-USDT",),
    channels: Sequence[str] = ("trades", "books"),
    url: str | None = None,
    *,
    connection: ConnectionConfig | None = None,
    **overrides: Any,
) -> FeedSpec:
    """The spec for OKX v5 public channels.

    Parameters
    ----------
    symbols
        Instrument ids such as ``"BTC-USDT"``, ``"BTC-USDT-SWAP"`` or
        ``"BTC-USD-220527"`` (any case).
    channels
        Any of :data:`CHANNELS`.
    url
        Where to connect instead of OKX.
    connection
        Connection settings.
    **overrides
        Any other :class:`~wsresearch.spec.FeedSpec` field.

    Raises
    ------
    ValueError
        For an unknown channel or an instrument id not spelled like OKX's.

    Examples
    --------
    >>> spec(["btc-usdt"], ["trades"]).subscribe[0]
    {'op': 'subscribe', 'args': [{'channel': 'trades', 'instId': 'BTC-USDT'}]}
    """
    chosen = check_channels(channels, CHANNELS, "OKX")
    names = check_symbols(symbols, r"[A-Z0-9]{1,12}-[A-Z0-9]{1,12}(-[A-Z0-9]+){0,2}",
                          "BTC-USDT", "OKX", upper=True)
    url = url or URL
    connection = app_ping(connection or ConnectionConfig(), "ping", 20.0)
    args = [{"channel": channel, "instId": symbol} for channel in chosen for symbol in names]
    arguments: dict[str, Any] = {"symbols": names, "channels": chosen}
    return assemble(
        "okx", arguments, overrides,
        url=url,
        channels=[_CHANNELS[name] for name in chosen],
        type_of=type_of,
        subscribe=[{"op": "subscribe", "args": args}],
        health={name: _HEALTH[name] for name in chosen},
        connection=connection,
        control=frozenset({"ack"}),
        control_texts=frozenset({"pong"}),
        error_types=frozenset({"error"}),
        error_text=_error_text,
        description=f"OKX: {', '.join(chosen)} on {', '.join(names)}",
    )
