"""OKX v5 public channels: market data, derivatives data, liquidations and candles.

At ``/ws/v5/public``: ``trades``, ``tickers``, ``books`` (400 levels), ``books5``,
``funding-rate``, ``mark-price``, ``index-tickers``, ``open-interest`` and
``liquidation-orders``. At ``/ws/v5/business``: the candles, ``candle<bar>``
(``candle1m``, ``candle1H``, ``candle1Dutc``...); one feed speaks to one of the two,
so candles and the other channels cannot share a spec.

The client subscribes with ``{"op": "subscribe", "args": [{"channel":
"trades", "instId": "BTC-USDT"}, ...]}`` (``liquidation-orders`` by ``instType``,
which the spec derives from the symbols); messages carry the ``arg`` they answer
and a ``data`` list. OKX closes a connection that hears nothing for 30
seconds, so the spec sends the text ``ping`` every 20 seconds; the answer is
the text ``pong`` (not JSON), counted as control. Book messages are a
``snapshot`` then ``update``s linked by ``prevSeqId`` = the previous
``seqId``, with a CRC32 ``checksum`` of the top 25 levels.

Every channel declares its normalized tables (:mod:`wsresearch.normalize`): trades,
quotes (``tickers``), book changes (``books``, ``books5``), derivative ticker
(``funding-rate``, ``mark-price``, ``index-tickers``, ``open-interest``), liquidations
and candles. See ``docs/exchanges/okx.md``.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

import polars as pl
from pydantic import BeforeValidator, Field, model_validator

from ..book import Book, BookRule
from ..book import Books as OrderBooks
from ..config import ConnectionConfig, StreamConfig
from ..normalize import Normalizer
from ..sequence import Seq
from ..spec import Channel, FeedSpec
from ._common import (
    Flat,
    NsFromMs,
    app_ping,
    assemble,
    check_channels,
    check_choice,
    check_symbols,
)

__all__ = [
    "APIS",
    "BUSINESS_URL",
    "CANDLE_BARS",
    "CANDLE_CHANNELS",
    "CHANNELS",
    "URL",
    "Books",
    "Candle",
    "Candles",
    "FundingRate",
    "IndexTicker",
    "Liquidation",
    "Liquidations",
    "MarkPrice",
    "OpenInterest",
    "Tickers",
    "Trades",
    "spec",
    "type_of",
]

URL = "wss://ws.okx.com:8443/ws/v5/public"
BUSINESS_URL = "wss://ws.okx.com:8443/ws/v5/business"
"""Where OKX serves the candle channels."""

_MARKET_DATA: tuple[str, ...] = ("trades", "tickers", "books", "books5")
_PUBLIC_DATA: tuple[str, ...] = ("funding-rate", "mark-price", "index-tickers",
                                 "open-interest", "liquidation-orders")
CHANNELS: tuple[str, ...] = (*_MARKET_DATA, *_PUBLIC_DATA)
"""The channels at :data:`URL`."""

CANDLE_BARS: tuple[str, ...] = (
    "1s", "1m", "3m", "5m", "15m", "30m", "1H", "2H", "4H", "6H", "12H", "1D", "2D", "3D",
    "5D", "1W", "1M", "3M", "6Hutc", "12Hutc", "1Dutc", "2Dutc", "3Dutc", "5Dutc", "1Wutc",
    "1Mutc", "3Mutc",
)
"""The bars OKX documents for ``candle<bar>``: UTC+8 opens, and UTC opens with ``utc``."""
CANDLE_CHANNELS: tuple[str, ...] = tuple(f"candle{bar}" for bar in CANDLE_BARS)
"""The channels at :data:`BUSINESS_URL`."""


def _blank_is_none(value: Any) -> Any:
    """OKX sends ``""`` for a value that does not apply."""
    return None if value == "" else value


_Number = Annotated[float | None, BeforeValidator(_blank_is_none)]
_Ns = Annotated[NsFromMs | None, BeforeValidator(_blank_is_none)]
_Text = Annotated[str | None, BeforeValidator(_blank_is_none)]


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


class _One(Flat):
    """A message whose ``data`` holds one item: the item's fields are the row."""

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        return _first(value)


class Trade(Flat):
    """One trade."""

    inst_id: str = Field(alias="instId")
    trade_id: int = Field(alias="tradeId")
    price: float = Field(alias="px")
    size: float = Field(alias="sz")
    side: Literal["buy", "sell"]
    """The taker's side, as OKX documents it ("Trade side of taker")."""
    ts_ns: NsFromMs = Field(alias="ts")
    count: int | None = None
    """Trades aggregated into this one (newer API versions)."""


class Trades(Flat):
    """A ``trades`` message: one row per trade."""

    data: list[Trade]


class Tickers(_One):
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


def _level(value: Any) -> Any:
    # [price, size, deprecated liquidated orders, number of orders]
    if isinstance(value, list) and len(value) == 4:
        return [value[0], value[1], value[3]]
    return value


class Books(Flat):
    """A ``books``/``books5`` message: levels as ``[price, size, orders]``, size 0 = gone.

    ``asks_text`` and ``bids_text`` keep each level's price and size as sent: OKX's
    checksum is computed on the text.
    """

    inst_id: str = Field(alias="instId")
    action: Literal["snapshot", "update"] | None = None
    """``books``: ``snapshot`` then ``update``; ``books5`` sends whole books (``None``)."""
    asks: list[tuple[float, float, float]]
    bids: list[tuple[float, float, float]]
    ts_ns: NsFromMs = Field(alias="ts")
    checksum: int | None = None
    seq_id: int | None = Field(None, alias="seqId")
    prev_seq_id: int | None = Field(None, alias="prevSeqId")
    asks_text: list[tuple[str, str]] = Field(default_factory=list)
    bids_text: list[tuple[str, str]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        value = _first(value)
        if isinstance(value, dict):
            for side in ("asks", "bids"):
                if isinstance(value.get(side), list):
                    value[side + "_text"] = [_level_text(level) for level in value[side]]
                    value[side] = [_level(level) for level in value[side]]
        return value


def _level_text(value: Any) -> Any:
    """A level's price and size as sent (text), for the checksum."""
    if isinstance(value, list) and len(value) >= 2:
        return [v if isinstance(v, str) else repr(v) for v in value[:2]]
    return value


class BookSync(BookRule):
    """OKX books: a snapshot (in-band, or the REST one), then updates linked by ``seqId``.

    ``books`` sends a ``snapshot`` then ``update`` messages; each update's
    ``prevSeqId`` must be the last ``seqId`` (equal ids: nothing changed), else the book
    is invalid until the next snapshot. Where OKX no longer sends the in-band snapshot,
    updates are held until a REST snapshot (``GET /api/v5/market/books?source=0``):
    those it holds (``seqId`` ≤ its ``seqId``) are dropped, and the first applied has
    ``prevSeqId`` ≤ its ``seqId`` < ``seqId``. The CRC32 checksum (the best 25 levels,
    bid and ask interleaved, as text) is verified where it is not 0: OKX is retiring it.
    ``books5`` sends whole books: each replaces the last.
    """

    channels = frozenset({"books", "books5"})

    def __init__(self, channel: str = "books") -> None:
        self.channel = channel
        """The book channel subscribed: the one a resync subscribes again."""

    def resubscribe(self, symbol: str) -> list[Any]:
        arg = {"channel": self.channel, "instId": symbol}
        return [{"op": op, "args": [arg]} for op in ("unsubscribe", "subscribe")]

    def snapshot_url(self, symbol: str, rest_url: str | None) -> str:
        base = (rest_url or REST_API).rstrip("/")
        return f"{base}/api/v5/market/books?instId={symbol}&sz={SNAPSHOT_LEVELS}&source=0"

    def wants_snapshot(self, book: Book) -> bool:
        # Updates keep coming and no in-band snapshot came before them: OKX no longer
        # sends it (its new procedure), so the book needs the REST one.
        return not book.valid and len(book.pending) >= HELD_BEFORE_REST

    def apply(self, books: OrderBooks, channel: str, message: Books, mono_ns: int,
              wall_ns: int) -> None:
        book = books.book(message.inst_id)
        if message.action != "update":  # a snapshot, or a books5 whole book
            book.pending.clear()
            self._replace(book, message.bids_text, message.asks_text, message.seq_id, mono_ns)
            book.bridged = True
            self._check(book, message, mono_ns)
        elif book.valid:
            self._follow(book, message, mono_ns)
        else:
            book.pending.append(message)  # until a snapshot
        book.touched(mono_ns, wall_ns, message.ts_ns)

    def on_rest(self, books: OrderBooks, url: str | None, body: str, mono_ns: int,
                wall_ns: int) -> None:
        reply = json.loads(body)
        data = reply.get("data") if isinstance(reply, dict) else None
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            raise ValueError(f"an OKX book snapshot has data: {body[:80]!r}")
        snapshot = data[0]
        symbol = _inst_id(url)
        book = books.book(symbol)
        seq_id = int(snapshot["seqId"]) if snapshot.get("seqId") is not None else None
        self._replace(book, [_level_text(x) for x in snapshot.get("bids", [])],
                      [_level_text(x) for x in snapshot.get("asks", [])], seq_id, mono_ns)
        book.bridged = False  # the stream joins it with its next update
        held = list(book.pending)
        book.pending.clear()
        for message in held:
            if book.valid:
                self._follow(book, message, mono_ns)
            else:
                book.pending.append(message)

    @staticmethod
    def _replace(book: Book, bids: list[Any], asks: list[Any], seq_id: int | None,
                 mono_ns: int) -> None:
        book.clear()
        for side, levels in (("bid", bids), ("ask", asks)):
            for price, size in levels:
                book.set(side, float(price), float(size), (price, size))  # type: ignore[arg-type]
        book.last_id = seq_id
        book.snapshot_done(mono_ns)

    def _follow(self, book: Book, message: Books, mono_ns: int) -> None:
        """Apply an update to a valid book, or mark the book invalid if one was missed."""
        last, prev, seq = book.last_id, message.prev_seq_id, message.seq_id
        if prev is not None and seq is not None and last is not None:
            if not book.bridged:  # the first update after a REST snapshot
                if seq <= last:
                    return  # in the snapshot already
                fits = prev <= last < seq
            else:
                fits = prev == last  # equal ids: a keep-alive, nothing changed
            if not fits:
                book.stats.gaps += 1
                book.bridged = False
                book.mark_invalid(f"prevSeqId {prev} after seqId {last}", mono_ns)
                return
        book.bridged = True
        for side, levels in (("bid", message.bids_text), ("ask", message.asks_text)):
            for price, size in levels:
                book.set(side, float(price), float(size), (price, size))  # type: ignore[arg-type]
        book.last_id = message.seq_id
        self._check(book, message, mono_ns)

    @staticmethod
    def _check(book: Book, message: Books, mono_ns: int) -> None:
        if not message.checksum:  # 0 or absent: OKX sends none
            return
        if okx_checksum(book) == message.checksum:
            book.stats.checksums_ok += 1
        else:
            book.stats.checksums_failed += 1
            book.bridged = False
            book.mark_invalid("checksum mismatch", mono_ns)


def _inst_id(url: str | None) -> str:
    """The instrument of a REST book snapshot: the URL's ``instId=``."""
    query = parse_qs(urlsplit(url or "").query)
    if "instId" not in query:
        raise ValueError(f"an OKX book snapshot's URL names its instId: {url!r}")
    return query["instId"][0].upper()


def okx_checksum(book: Book) -> int:
    """OKX's CRC32 of a book (signed 32 bits).

    Over the best 25 levels, bid then ask at each depth, each price and size as sent,
    joined by ``:``.
    """
    bids, asks = book.texts("bid", 25), book.texts("ask", 25)
    parts: list[str] = []
    for depth in range(max(len(bids), len(asks))):
        if depth < len(bids):
            parts.extend(bids[depth])
        if depth < len(asks):
            parts.extend(asks[depth])
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


class FundingRate(_One):
    """A ``funding-rate`` message (every 30 to 90 s): the current rate and when it settles."""

    inst_type: str | None = Field(None, alias="instType")
    inst_id: str = Field(alias="instId")
    funding_rate: float = Field(alias="fundingRate")
    funding_time_ns: NsFromMs = Field(alias="fundingTime")
    """When the current ``funding_rate`` is settled."""
    next_funding_rate: _Number = Field(None, alias="nextFundingRate")
    """The forecast for the next period; ``""`` (null) since OKX settles per current period."""
    next_funding_time_ns: _Ns = Field(None, alias="nextFundingTime")
    min_funding_rate: _Number = Field(None, alias="minFundingRate")
    max_funding_rate: _Number = Field(None, alias="maxFundingRate")
    premium: _Number = None
    sett_state: _Text = Field(None, alias="settState")
    sett_funding_rate: _Number = Field(None, alias="settFundingRate")
    method: _Text = None
    ts_ns: _Ns = Field(None, alias="ts")
    """When OKX sent the data (absent in older messages)."""


class MarkPrice(_One):
    """A ``mark-price`` message: every 200 ms while it changes, every 10 s otherwise."""

    inst_type: str | None = Field(None, alias="instType")
    inst_id: str = Field(alias="instId")
    mark_price: float = Field(alias="markPx")
    ts_ns: NsFromMs = Field(alias="ts")


class IndexTicker(_One):
    """An ``index-tickers`` message: an index (``BTC-USDT``, not an instrument) and its day."""

    inst_id: str = Field(alias="instId")
    index_price: float = Field(alias="idxPx")
    open_24h: _Number = Field(None, alias="open24h")
    high_24h: _Number = Field(None, alias="high24h")
    low_24h: _Number = Field(None, alias="low24h")
    sod_utc0: _Number = Field(None, alias="sodUtc0")
    sod_utc8: _Number = Field(None, alias="sodUtc8")
    ts_ns: NsFromMs = Field(alias="ts")


class OpenInterest(_One):
    """An ``open-interest`` message (every 3 s when it changes)."""

    inst_type: str | None = Field(None, alias="instType")
    inst_id: str = Field(alias="instId")
    oi: float
    """In contracts."""
    oi_ccy: _Number = Field(None, alias="oiCcy")
    """In the base currency (BTC)."""
    oi_usd: _Number = Field(None, alias="oiUsd")
    ts_ns: NsFromMs = Field(alias="ts")


class Liquidation(Flat):
    """One liquidation order."""

    inst_type: str | None = Field(None, alias="instType")
    inst_id: str = Field(alias="instId")
    side: Annotated[Literal["buy", "sell"] | None, BeforeValidator(_blank_is_none)] = None
    """The liquidation order's side: ``buy`` closes a short (FUTURES/SWAP only)."""
    pos_side: _Text = Field(None, alias="posSide")
    """The liquidated position: ``long``, ``short`` (hedge mode) or ``net``."""
    bankruptcy_price: _Number = Field(None, alias="bkPx")
    size: _Number = Field(None, alias="sz")
    """In contracts (FUTURES/SWAP) or the base currency (MARGIN)."""
    bankruptcy_loss: _Number = Field(None, alias="bkLoss")
    ccy: _Text = None
    ts_ns: NsFromMs = Field(alias="ts")


class Liquidations(Flat):
    """A ``liquidation-orders`` message: one row per liquidation (``data[].details[]``)."""

    data: list[Liquidation]

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        if not (isinstance(value, dict) and isinstance(value.get("data"), list)):
            return value
        rows = []
        for item in value["data"]:
            if not (isinstance(item, dict) and isinstance(item.get("details"), list)):
                raise ValueError("a data item without a details list")
            about = {k: item.get(k) for k in ("instId", "instType")}
            rows += [about | d if isinstance(d, dict) else d for d in item["details"]]
        return {"data": rows}


_CANDLE_FIELDS = ("ts", "o", "h", "l", "c", "vol", "volCcy", "volCcyQuote", "confirm")


class Candle(Flat):
    """One candle: ``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]``.

    Older messages end at ``volCcy`` (no ``volCcyQuote``, no ``confirm``).
    """

    open_time_ns: NsFromMs = Field(alias="ts")
    open: float = Field(alias="o")
    high: float = Field(alias="h")
    low: float = Field(alias="l")
    close: float = Field(alias="c")
    vol: float
    """In contracts for derivatives, in the base currency for spot."""
    vol_ccy: _Number = Field(None, alias="volCcy")
    vol_ccy_quote: _Number = Field(None, alias="volCcyQuote")
    confirm: bool | None = None
    """``"1"``: the candle is complete; ``"0"``: it is still forming."""

    @model_validator(mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not 5 <= len(value) <= len(_CANDLE_FIELDS):
                raise ValueError(f"a candle has 5 to 9 values, got {len(value)}")
            return dict(zip(_CANDLE_FIELDS, value, strict=False))
        return value


class Candles(Flat):
    """A ``candle<bar>`` message: one row per candle, with the bar its channel names."""

    inst_id: str = Field(alias="instId")
    bar: str
    """``1m``, ``1H``, ``1Dutc``...: the channel's name without ``candle``."""
    data: list[Candle]

    @model_validator(mode="before")
    @classmethod
    def _arg(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        arg = value.get("arg")
        arg = arg if isinstance(arg, dict) else {}
        channel = arg.get("channel")
        bar = channel[len("candle"):] if isinstance(channel, str) else None
        return {"instId": arg.get("instId"), "bar": bar, "data": value.get("data")}


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


# Normalized tables (wsresearch.normalize): each native frame as a kind's columns.

def _trades(native: pl.LazyFrame) -> pl.LazyFrame:
    # OKX's side is the taker's ("Trade side of taker"), which the table wants.
    return native.with_columns(symbol="inst_id", trade_id=pl.col("trade_id").cast(pl.String),
                               amount="size", exchange_time="ts_ns")


def _quotes(native: pl.LazyFrame) -> pl.LazyFrame:
    return native.with_columns(symbol="inst_id", bid_price="bid", bid_amount="bid_size",
                               ask_price="ask", ask_amount="ask_size")


def _levels(column: str, side: str) -> pl.Expr:
    """A book side's ``[price, size, orders]`` levels as structs tagged with ``side``."""
    return pl.col(column).list.eval(pl.struct(
        pl.lit(side).alias("side"), pl.element().arr.get(0).alias("price"),
        pl.element().arr.get(1).alias("amount")))


def _book_changes(whole_books: bool) -> Normalizer:
    """One row per level of each message, bids then asks, in the message's order.

    ``whole_books``: every message is a whole book (``books5``), so every row belongs
    to a snapshot; otherwise (``books``) the rows of ``action`` ``snapshot`` do.
    """
    def build(native: pl.LazyFrame) -> pl.LazyFrame:
        snapshot = pl.lit(True) if whole_books else pl.col("action") == "snapshot"
        return (native
                .select("inst_id", "ts_ns", "recv_wall_ns", "generation", "frame_seq",
                        is_snapshot=snapshot,
                        level=pl.concat_list(_levels("bids", "bid"), _levels("asks", "ask")))
                .explode("level")
                .filter(pl.col("level").is_not_null())  # a keep-alive has no levels
                .unnest("level")
                .rename({"inst_id": "symbol", "ts_ns": "exchange_time"}))
    return build


def _funding(native: pl.LazyFrame) -> pl.LazyFrame:
    return native.with_columns(symbol="inst_id", predicted_funding_rate="next_funding_rate",
                               funding_time="funding_time_ns")


def _named_alike(native: pl.LazyFrame) -> pl.LazyFrame:
    """For a frame whose columns already have the kind's names (``mark_price``...)."""
    return native.with_columns(symbol="inst_id")


def _open_interest(native: pl.LazyFrame) -> pl.LazyFrame:
    return native.with_columns(symbol="inst_id", open_interest="oi")


def _liquidations(native: pl.LazyFrame) -> pl.LazyFrame:
    # OKX gives no id for a liquidation: liquidation_id stays null.
    return native.with_columns(symbol="inst_id", price="bankruptcy_price", amount="size",
                               exchange_time="ts_ns")


def _candles(native: pl.LazyFrame) -> pl.LazyFrame:
    # A candle message carries no time of its own: exchange_time stays null.
    return native.with_columns(symbol="inst_id", interval="bar", open_time="open_time_ns",
                               volume="vol", closed="confirm",
                               exchange_time=pl.lit(None, pl.Int64))


def _books(name: str) -> Channel:
    return Channel(
        name=name, model=Books,
        dedupe_key=("inst_id", "ts_ns", "seq_id", "checksum"),
        sequence=_book_seq if name == "books" else None,
        sequence_key="inst_id", exchange_time="ts_ns",
        normalized={"book_changes": _book_changes(whole_books=name == "books5")},
    )


def _one(name: str, model: type[Flat], kind: str, normalizer: Normalizer,
         key: tuple[str, ...]) -> Channel:
    """A channel of one item per message, sending its time as ``ts``."""
    return Channel(name=name, model=model, dedupe_key=key, exchange_time="ts_ns",
                   normalized={kind: normalizer})


def _candle_channel(name: str) -> Channel:
    return Channel(
        name=name, model=Candles, explode="data",
        # A forming candle is sent again and again with new figures: all of them count.
        dedupe_key=lambda m: (m.inst_id, m.bar, tuple(
            (c.open_time_ns, c.open, c.high, c.low, c.close, c.vol, c.confirm)
            for c in m.data)),
        normalized={"candles": _candles},
    )


_CHANNELS = {
    "trades": Channel(
        name="trades", model=Trades, explode="data",
        dedupe_key=lambda f: tuple((t.inst_id, t.trade_id) for t in f.data),
        exchange_time=lambda f: f.data[0].ts_ns if f.data else None,
        normalized={"trades": _trades},
    ),
    "tickers": Channel(
        name="tickers", model=Tickers, dedupe_key=("inst_id", "ts_ns"),
        exchange_time="ts_ns", normalized={"quotes": _quotes},
    ),
    "books": _books("books"),
    "books5": _books("books5"),
    "funding-rate": _one(
        "funding-rate", FundingRate, "derivative_ticker", _funding,
        ("inst_id", "ts_ns", "funding_time_ns", "funding_rate")),
    "mark-price": _one("mark-price", MarkPrice, "derivative_ticker", _named_alike,
                       ("inst_id", "ts_ns")),
    "index-tickers": _one("index-tickers", IndexTicker, "derivative_ticker", _named_alike,
                          ("inst_id", "ts_ns")),
    "open-interest": _one("open-interest", OpenInterest, "derivative_ticker",
                          _open_interest, ("inst_id", "ts_ns")),
    "liquidation-orders": Channel(
        name="liquidation-orders", model=Liquidations, explode="data",
        dedupe_key=lambda m: tuple((r.inst_id, r.ts_ns, r.side, r.size, r.bankruptcy_price)
                                   for r in m.data),
        exchange_time=lambda m: m.data[0].ts_ns if m.data else None,
        normalized={"liquidations": _liquidations},
    ),
} | {name: _candle_channel(name) for name in CANDLE_CHANNELS}

_HEALTH = {
    "trades": StreamConfig(expected_interval=1.0, stale_threshold=60.0, allow_silence=True),
    "tickers": StreamConfig(expected_interval=1.0, stale_threshold=60.0),
    "books": StreamConfig(expected_interval=0.5, stale_threshold=30.0),
    "books5": StreamConfig(expected_interval=0.5, stale_threshold=30.0),
    "funding-rate": StreamConfig(expected_interval=60.0, stale_threshold=180.0),
    "mark-price": StreamConfig(expected_interval=1.0, stale_threshold=30.0),
    "index-tickers": StreamConfig(expected_interval=1.0, stale_threshold=120.0),
    "open-interest": StreamConfig(expected_interval=3.0, stale_threshold=120.0,
                                  allow_silence=True),
    "liquidation-orders": StreamConfig(expected_interval=10.0, stale_threshold=600.0,
                                       allow_silence=True),
} | {name: StreamConfig(expected_interval=1.0, stale_threshold=60.0, allow_silence=True)
     for name in CANDLE_CHANNELS}

_FUTURES = re.compile(r".+-\d{6}")


def _inst_type(symbol: str) -> str:
    """The ``instType`` whose liquidations include ``symbol``'s."""
    if symbol.endswith("-SWAP"):
        return "SWAP"
    if _FUTURES.fullmatch(symbol):
        return "FUTURES"
    return "MARGIN"


def _args(channel: str, symbols: list[str]) -> list[dict[str, str]]:
    if channel == "liquidation-orders":  # by instrument type: every instrument of it
        types = dict.fromkeys(_inst_type(symbol) for symbol in symbols)
        return [{"channel": channel, "instType": t} for t in types]
    return [{"channel": channel, "instId": symbol} for symbol in symbols]


def _error_text(report: dict[str, Any]) -> str:
    return f"{report.get('msg', report)} (code {report.get('code')})"


REST_API = "https://www.okx.com"
"""OKX's REST API, for book snapshots where the stream sends none."""
SNAPSHOT_LEVELS = 400
"""Levels a side asked of a REST book snapshot (as many as ``books`` keeps)."""
HELD_BEFORE_REST = 5
"""Updates held without an in-band snapshot before the REST one is fetched."""

APIS: dict[str, str] = {"public": URL, "business": BUSINESS_URL}
"""OKX's two endpoints by name: ``public`` (:data:`CHANNELS`), ``business`` (the candles)."""

_DEFAULT_CHANNELS = {"public": ("trades", "books"), "business": ("candle1m",)}


def spec(
    symbols: Sequence[str] = ("BTC-USDT",),
    channels: Sequence[str] | None = None,
    url: str | None = None,
    *,
    api: str | None = None,
    connection: ConnectionConfig | None = None,
    **overrides: Any,
) -> FeedSpec:
    """The spec for OKX v5 public channels.

    Parameters
    ----------
    symbols
        Instrument ids such as ``"BTC-USDT"``, ``"BTC-USDT-SWAP"`` or
        ``"BTC-USD-220527"`` (any case); for ``index-tickers``, indexes such as
        ``"BTC-USDT"``. ``liquidation-orders`` is subscribed per instrument type
        (``SWAP``, ``FUTURES``, or ``MARGIN`` for a spot pair) and
        brings every instrument of those types.
    channels
        Any of :data:`CHANNELS` (served at :data:`URL`), or any of
        :data:`CANDLE_CHANNELS` (served at :data:`BUSINESS_URL`), not both. Default:
        ``trades`` and ``books``, or ``candle1m`` for the ``business`` API.
    url
        Where to connect instead of OKX.
    api
        ``"public"`` or ``"business"`` (:data:`APIS`); by default, the one that serves
        ``channels``.
    connection
        Connection settings.
    **overrides
        Any other :class:`~wsresearch.spec.FeedSpec` field.

    Raises
    ------
    ValueError
        For an unknown channel or API, candles together with other channels, channels
        the API does not serve, or an instrument id not spelled like OKX's.

    Examples
    --------
    >>> spec(["btc-usdt"], ["trades"]).subscribe[0]
    {'op': 'subscribe', 'args': [{'channel': 'trades', 'instId': 'BTC-USDT'}]}
    >>> spec(["BTC-USDT"], ["candle1m"]).url
    'wss://ws.okx.com:8443/ws/v5/business'
    """
    if api is not None:
        check_choice("API", api, APIS, "OKX")
    if channels is None:
        channels = _DEFAULT_CHANNELS[api or "public"]
    if not isinstance(channels, str):  # check_channels says what a string is
        unknown = [c for c in channels if c not in _CHANNELS]
        if unknown:
            raise ValueError(
                f"unknown OKX channel(s) {unknown}; choose from {list(_MARKET_DATA)} (market "
                f"data), {list(_PUBLIC_DATA)} (public data), or candle<bar> for a bar in "
                f"{list(CANDLE_BARS)} (candles)")
    chosen = check_channels(channels, _CHANNELS, "OKX")
    candles = [c for c in chosen if c in CANDLE_CHANNELS]
    if candles and len(candles) < len(chosen):
        raise ValueError(f"OKX serves candles at {BUSINESS_URL} and the other channels at "
                         f"{URL}: make one feed for {candles} and one for the others")
    serving = "business" if candles else "public"
    if api is not None and api != serving:
        raise ValueError(f"OKX's {api} API does not serve {chosen}; they are on its {serving} "
                         f"API ({APIS[serving]})")
    names = check_symbols(symbols, r"[A-Z0-9]{1,12}-[A-Z0-9]{1,12}(-[A-Z0-9]+){0,2}",
                          "BTC-USDT", "OKX", upper=True)
    url = url or APIS[serving]
    connection = app_ping(connection or ConnectionConfig(), "ping", 20.0)
    args = [arg for channel in chosen for arg in _args(channel, names)]
    arguments: dict[str, Any] = {"symbols": names, "channels": chosen, "api": serving}
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
        book_sync=(BookSync("books" if "books" in chosen else "books5")
                   if {"books", "books5"} & set(chosen) else None),
        error_types=frozenset({"error"}),
        error_text=_error_text,
        description=f"OKX: {', '.join(chosen)} on {', '.join(names)}",
    )
