"""Binance spot and USD-M futures market streams, over the combined-stream endpoint.

The client connects to ``/stream`` and subscribes with ``{"method":
"SUBSCRIBE", "params": ["btcusdt@trade", ...], "id": 1}`` on every connect;
each message then names its stream: ``{"stream": "btcusdt@trade", "data":
{...}}``. Routing reads the stream name (spot ``bookTicker`` messages carry no
event type). Columns get readable names (``s`` → ``symbol``, ``T`` →
``trade_time_ns``...), times become ns, prices and sizes ``float64``.

USD-M futures serve market data from two endpoints since 2026-04-23 (:data:`USDM_ENDPOINTS`):
``/public`` carries ``trade``, ``depth`` and ``bookTicker``, ``/market`` everything else
(``aggTrade``, ``kline``, ``markPrice``, ``forceOrder``). One connection reaches one of them,
so a USD-M spec connects to the endpoint of its channels; a spec mixing both gets a warning
(the other endpoint's channels stay silent: make one feed per endpoint).

Every channel says which normalized tables it holds (``trade`` and ``aggTrade`` →
``trades``, ``bookTicker`` → ``quotes``, ``depth`` → ``book_changes``, ``kline`` →
``candles``, ``markPrice`` → ``derivative_ticker``, ``forceOrder`` → ``liquidations``); the
tables name the exchange ``binance`` (spot) or ``binance-usdm``. See
``docs/exchanges/binance.md``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import numpy.typing as npt
import polars as pl
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ..book import Book, BookRule, Books, apply_pairs, level_changes
from ..config import ConnectionConfig, StreamConfig
from ..layout import Layout
from ..sequence import Chain, runs
from ..spec import Channel, FeedSpec
from ._common import NsFromMs, assemble, check_channels, check_choice, check_symbols

__all__ = [
    "CHANNELS", "EXCHANGE_NAMES", "LAYOUTS", "MARKETS", "MARKET_CHANNELS", "USDM_ENDPOINTS",
    "AggTrade", "BookTicker", "Depth", "ForceOrder", "Kline", "MarkPrice", "Trade",
    "depth_layout", "spec", "stream_names", "type_of",
]

CHANNELS: tuple[str, ...] = ("trade", "aggTrade", "bookTicker", "depth", "kline")
"""The channels both markets have (all of spot's)."""
MARKET_CHANNELS: dict[str, tuple[str, ...]] = {
    "spot": CHANNELS,
    "usdm": (*CHANNELS, "markPrice", "forceOrder"),
}
"""Each market's channels: USD-M adds mark price and funding, and liquidations."""
USDM_ENDPOINTS: dict[str, str] = {
    "public": "wss://fstream.binance.com/public/stream",
    "market": "wss://fstream.binance.com/market/stream",
}
"""USD-M's two market-data endpoints (the unrouted ``/stream`` was retired on 2026-04-23)."""
_USDM_ENDPOINT_OF = {"trade": "public", "bookTicker": "public", "depth": "public",
                     "aggTrade": "market", "kline": "market", "markPrice": "market",
                     "forceOrder": "market"}
MARKETS: dict[str, str] = {
    "spot": "wss://stream.binance.com:9443/stream",
    "usdm": USDM_ENDPOINTS["public"],
}
"""Market name to its combined-stream URL (USD-M: the endpoint of the default channels; a
spec of ``/market`` channels connects to :data:`USDM_ENDPOINTS` ``["market"]``)."""
EXCHANGE_NAMES: dict[str, str] = {"spot": "binance", "usdm": "binance-usdm"}
"""The ``exchange`` of each market's normalized tables."""

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
        return _from_inner(value, "k", _KLINE_FIELDS, _SYMBOL_AND_TIME)


_KLINE_FIELDS = {
    "interval": "i", "open_time_ns": "t", "close_time_ns": "T", "open": "o", "high": "h",
    "low": "l", "close": "c", "volume": "v", "quote_volume": "q", "trades": "n", "closed": "x",
    "first_trade_id": "f", "last_trade_id": "L",
}
_FORCE_ORDER_FIELDS = {
    "symbol": "s", "side": "S", "order_type": "o", "time_in_force": "f", "qty": "q",
    "price": "p", "avg_price": "ap", "status": "X", "last_filled_qty": "l", "filled_qty": "z",
    "trade_time_ns": "T",
}
_TIME = {"event_time_ns": "E"}
_SYMBOL_AND_TIME = {"symbol": "s"} | _TIME


def _from_inner(value: Any, inner: str, fields: dict[str, str],
                outer: dict[str, str]) -> Any:
    """An event whose data is one object inside it, as the model's fields.

    The object is ``k`` of a kline, ``o`` of a liquidation: ``fields`` come from its keys,
    ``outer`` from the event's own.
    """
    value = _unwrap(value)
    if not (isinstance(value, dict) and isinstance(value.get(inner), dict)):
        return value
    data = value[inner]
    return ({name: data.get(key) for name, key in fields.items()}
            | {name: value.get(key) for name, key in outer.items()})


def _blank_is_none(value: Any) -> Any:
    # Delivery contracts send "" for the funding rate and 0 for the next funding time.
    return None if value in ("", 0) else value


class MarkPrice(_Stream):
    """Mark price, index price and funding (``<symbol>@markPrice@1s``, USD-M)."""

    symbol: str = Field(alias="s")
    mark_price: float = Field(alias="p")
    index_price: float | None = Field(None, alias="i")
    estimated_settle_price: float | None = Field(None, alias="P")
    """Only meaningful in the last hour before a delivery contract settles."""
    funding_rate: Annotated[float | None, BeforeValidator(_blank_is_none)] = Field(
        None, alias="r")
    """The rate of the funding interval under way (``""``, so null, for delivery contracts)."""
    next_funding_time_ns: Annotated[NsFromMs | None, BeforeValidator(_blank_is_none)] = Field(
        None, alias="T")
    """When that rate is paid (``0``, so null, for delivery contracts)."""
    event_time_ns: NsFromMs = Field(alias="E")


class ForceOrder(_Stream):
    """A liquidation order (``<symbol>@forceOrder``, USD-M).

    Binance pushes at most one per symbol per second, the latest: a sample of the
    liquidations, not all of them.
    """

    symbol: str
    side: str
    """The liquidation order's side: ``SELL`` closes a long, ``BUY`` a short."""
    order_type: str
    time_in_force: str
    qty: float
    price: float
    avg_price: float
    status: str
    last_filled_qty: float
    filled_qty: float
    trade_time_ns: NsFromMs
    event_time_ns: NsFromMs

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        return _from_inner(value, "o", _FORCE_ORDER_FIELDS, _TIME)


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


_OFF_BOOK = ("INSURANCE_FUND", "ADL")  # USD-M trades not matched on the book: no taker


def _taker_side() -> pl.Expr:
    # ``m``: "is the buyer the market maker?" True: the seller took liquidity.
    return pl.when(pl.col("buyer_is_maker")).then(pl.lit("sell")).otherwise(pl.lit("buy"))


def _trades(native: pl.LazyFrame) -> pl.LazyFrame:
    on_book = ~pl.col("order_type").is_in(_OFF_BOOK).fill_null(False)
    return native.filter(on_book).with_columns(
        pl.col("trade_id").cast(pl.String), amount="qty", side=_taker_side())


def _agg_trades(native: pl.LazyFrame) -> pl.LazyFrame:
    return native.with_columns(trade_id=pl.col("agg_id").cast(pl.String), amount="qty",
                               side=_taker_side())


def _quotes(native: pl.LazyFrame) -> pl.LazyFrame:
    return native.with_columns(bid_price="bid", bid_amount="bid_qty", ask_price="ask",
                               ask_amount="ask_qty")


def _book_changes(native: pl.LazyFrame) -> pl.LazyFrame:
    # One row per level, in message order, a message's bids before its asks.
    numbered = native.with_row_index("_message")
    keep = ("_message", "symbol", "recv_wall_ns", "generation", "frame_seq", "exchange_ns")
    sides = [
        numbered.select(*keep, pl.col(column).alias("_level")).explode("_level")
        .drop_nulls("_level")
        .with_columns(side=pl.lit(side), price=pl.col("_level").arr.get(0),
                      amount=pl.col("_level").arr.get(1))
        for column, side in (("bids", "bid"), ("asks", "ask"))
    ]
    return (pl.concat(sides).sort("_message", maintain_order=True)
            .with_columns(is_snapshot=pl.lit(False)).drop("_message", "_level"))


def _candles(native: pl.LazyFrame) -> pl.LazyFrame:
    return native.with_columns(open_time="open_time_ns")


def _derivative_ticker(native: pl.LazyFrame) -> pl.LazyFrame:
    return native.with_columns(funding_time="next_funding_time_ns")


def _liquidations(native: pl.LazyFrame) -> pl.LazyFrame:
    # The average fill price and the filled quantity: what traded (as Tardis does).
    return native.with_columns(price="avg_price", amount="filled_qty",
                               side=pl.col("side").str.to_lowercase())


def _depth(sequence: Any) -> Channel:
    return Channel(name="depth", model=Depth, dedupe_key=("symbol", "final_update_id"),
                   sequence=sequence, sequence_key="symbol", exchange_time="event_time_ns",
                   normalized={"book_changes": _book_changes})


_CHANNELS = {
    "trade": Channel(
        name="trade", model=Trade, dedupe_key=("symbol", "trade_id"),
        sequence="trade_id", sequence_key="symbol",
        exchange_time="trade_time_ns", normalized={"trades": _trades},
    ),
    "aggTrade": Channel(
        name="aggTrade", model=AggTrade, dedupe_key=("symbol", "agg_id"),
        sequence="agg_id", sequence_key="symbol",
        exchange_time="trade_time_ns", normalized={"trades": _agg_trades},
    ),
    "bookTicker": Channel(
        name="bookTicker", model=BookTicker, dedupe_key=("symbol", "update_id"),
        exchange_time="event_time_ns", normalized={"quotes": _quotes},
    ),
    "depth": _depth(Chain("prev_final_update_id", "final_update_id")),
    "kline": Channel(
        name="kline", model=Kline,
        dedupe_key=("symbol", "interval", "open_time_ns", "event_time_ns"),
        exchange_time="event_time_ns", normalized={"candles": _candles},
    ),
    "markPrice": Channel(
        name="markPrice", model=MarkPrice, dedupe_key=("symbol", "event_time_ns"),
        exchange_time="event_time_ns",
        normalized={"derivative_ticker": _derivative_ticker},
    ),
    "forceOrder": Channel(
        name="forceOrder", model=ForceOrder, dedupe_key=("symbol", "event_time_ns"),
        exchange_time="trade_time_ns", normalized={"liquidations": _liquidations},
    ),
}

_SPOT_DEPTH = _depth(("first_update_id", "final_update_id"))
"""Spot's ``depth``: ``U..u``, a range of two fields (USD-M's is a chain: ``pu`` is the
last diff's ``u``). Either is checked on columns by a replay."""

_HEALTH = {
    "trade": StreamConfig(expected_interval=1.0, stale_threshold=60.0, allow_silence=True),
    "aggTrade": StreamConfig(expected_interval=1.0, stale_threshold=60.0, allow_silence=True),
    "bookTicker": StreamConfig(expected_interval=0.5, stale_threshold=30.0),
    "depth": StreamConfig(expected_interval=1.0, stale_threshold=30.0),
    "kline": StreamConfig(expected_interval=2.0, stale_threshold=30.0),
    "markPrice": StreamConfig(expected_interval=1.0, stale_threshold=30.0),
    "forceOrder": StreamConfig(expected_interval=60.0, stale_threshold=3600.0,
                               allow_silence=True),
}


def _depth_suffix(market: str, depth_speed: str | None) -> str:
    """The depth stream's name after the symbol: ``@depth``, or with its speed."""
    speed = depth_speed or _DEFAULT_SPEED[market]
    return "@depth" if speed == _DEFAULT_SPEED[market] else f"@depth@{speed}"


def stream_names(
    symbols: Sequence[str], channels: Sequence[str], market: str = "spot",
    depth_speed: str | None = None, kline_interval: str = "1m",
) -> list[str]:
    """The Binance stream names to subscribe to, e.g. ``["btcusdt@trade"]``."""
    suffix = {
        "trade": "@trade", "aggTrade": "@aggTrade", "bookTicker": "@bookTicker",
        "depth": _depth_suffix(market, depth_speed),
        "kline": f"@kline_{kline_interval}", "markPrice": "@markPrice@1s",
        "forceOrder": "@forceOrder",
    }
    return [f"{symbol}{suffix[channel]}" for channel in channels for symbol in symbols]


def _usdm_url(channels: Sequence[str]) -> str:
    """The USD-M endpoint that serves ``channels``: ``/public`` when they need both."""
    endpoints = sorted({_USDM_ENDPOINT_OF[name] for name in channels})
    if len(endpoints) == 1:
        return USDM_ENDPOINTS[endpoints[0]]
    silent = [name for name in channels if _USDM_ENDPOINT_OF[name] == "market"]
    warnings.warn(
        f"Binance USD-M serves {silent} on {USDM_ENDPOINTS['market']} and the other channels "
        f"on {USDM_ENDPOINTS['public']}; one connection reaches one of them, so this feed "
        f"connects to /public and {silent} stay silent: make one feed per endpoint",
        stacklevel=3)
    return USDM_ENDPOINTS["public"]


REST_API: dict[str, str] = {"spot": "https://api.binance.com",
                            "usdm": "https://fapi.binance.com"}
"""Each market's REST API."""
REST_DEPTH: dict[str, str] = {"spot": "/api/v3/depth", "usdm": "/fapi/v1/depth"}
"""Where each market serves its book snapshot (``?symbol=BTCUSDT&limit=1000``)."""
SNAPSHOT_LIMIT = 1000
"""Levels a side asked of a REST snapshot."""


class BookSync(BookRule):
    """Binance books: a REST snapshot, joined by the ``depth`` diffs that follow it.

    As Binance specifies ("How to manage a local order book correctly"): diffs are held
    until a snapshot arrives; those it already holds (``u`` ≤ its ``lastUpdateId``) are
    dropped; the first one applied must straddle it (spot: ``U`` ≤ lastUpdateId + 1 ≤
    ``u``; USD-M: ``U`` ≤ lastUpdateId ≤ ``u``); each after that must follow the last
    (spot: ``U`` = previous ``u`` + 1; USD-M: ``pu`` = previous ``u``). A diff that does
    not makes the book invalid until the next snapshot. A snapshot older than the first
    diff held (spot: lastUpdateId + 1 < ``U``) cannot be joined: the book waits for another.
    """

    channels = frozenset({"depth"})

    def __init__(self, symbols: Sequence[str], futures: bool) -> None:
        self.symbols = [s.upper() for s in symbols]
        self.futures = futures

    def apply(self, books: Books, channel: str, message: Depth, mono_ns: int,
              wall_ns: int) -> None:
        book = books.book(message.symbol)
        if book.valid:  # a snapshot is in place: join it, or follow the last diff
            self._follow(book, message, mono_ns)
        else:
            book.pending.append(message)  # until a snapshot it can join
        book.touched(mono_ns, wall_ns, message.event_time_ns)

    def takes_rows(self, books: Books, channel: str, rows: pl.DataFrame) -> bool:
        """Diffs that each follow the last of their symbol's synced book.

        Each symbol's book is valid, its first diff follows the book's last update id, and
        each diff after follows the one before (spot: ``U`` is one past the last ``u``, and
        ``u`` is at or after ``U``; USD-M: ``pu`` is the last ``u``, and ``u`` is past
        ``pu``): :meth:`apply` would apply every one, and no book would change validity. A
        book not yet joined to its snapshot is joined by its first diff that the snapshot
        does not already hold (those before it, :meth:`apply` passes over).
        """
        if not rows.height:
            return False
        held = self._held(books, rows)
        judged = rows.filter(pl.Series(~held)) if held.any() else rows
        if judged["symbol"].n_unique() != rows["symbol"].n_unique():
            return False  # a symbol's diffs all held by its snapshot: left to apply()
        # Each diff's numbers as its channel declares them (spot U..u; USD-M pu + 1..u).
        bounds = (_CHANNELS["depth"] if self.futures else _SPOT_DEPTH).sequence_bounds()
        for symbol, first, _, _, steady in runs(judged, pl.col("symbol"), *bounds).iter_rows():
            book = books.books.get(symbol)
            if (not steady or book is None or not book.valid or book.pending
                    or book.last_id is None):
                return False
            if book.bridged:
                if first != book.last_id + 1:
                    return False
                continue
            mine = (rows["symbol"] == symbol).to_numpy()
            if np.flatnonzero(mine & held).max(initial=-1) > np.flatnonzero(mine & ~held)[0]:
                return False  # a diff held by the snapshot after the one that joins it
            head = judged.filter(pl.col("symbol") == symbol).row(0, named=True)
            if not self._straddles(head["first_update_id"], head["final_update_id"],
                                   book.last_id):
                return False
        return True

    def apply_rows(self, books: Books, channel: str, rows: pl.DataFrame,
                   report: Callable[[Exception], None]) -> None:
        finals = rows["final_update_id"].to_list()
        held = self._held(books, rows)

        def finish(book: Book, i: int) -> None:  # what the last diff leaves beside its levels
            if not held[i]:  # a commit of a take's first rows may hold only diffs passed over
                book.last_id, book.bridged = finals[i], True

        bids, asks = level_changes(rows["bids"]), level_changes(rows["asks"])
        if held.any():  # passed over: no levels of theirs
            bids, asks = bids.of_rows(~held), asks.of_rows(~held)
        if books.apply_changes(rows, "symbol", "event_time_ns", bids, asks, finish):
            return
        bid_prices, bid_amounts, bid_ends = bids.per_row(rows.height)
        ask_prices, ask_amounts, ask_ends = asks.per_row(rows.height)

        def change(book: Book, i: int) -> None:  # apply() of a diff that follows the last
            if held[i]:
                return
            bid, ask = (bid_ends[i - 1], ask_ends[i - 1]) if i else (0, 0)
            _step(book, zip(bid_prices[bid:bid_ends[i]], bid_amounts[bid:bid_ends[i]],
                            strict=True),
                  zip(ask_prices[ask:ask_ends[i]], ask_amounts[ask:ask_ends[i]], strict=True),
                  finals[i])

        books.apply_each(rows, "symbol", "event_time_ns", change, report)

    def _held(self, books: Books, rows: pl.DataFrame) -> npt.NDArray[np.bool_]:
        """The diffs a valid book's snapshot, not yet joined, already holds.

        :meth:`apply` passes over them (spot: ``u`` ≤ lastUpdateId; USD-M: ``u`` <
        lastUpdateId).
        """
        held = np.zeros(rows.height, np.bool_)
        waiting = {symbol: book.last_id for symbol, book in books.books.items()
                   if book.valid and not book.bridged and book.last_id is not None}
        if waiting:
            names, finals = rows["symbol"], rows["final_update_id"].to_numpy()
            for symbol, last in waiting.items():
                held |= (names == symbol).to_numpy() & (finals < last + (not self.futures))
        return held

    def on_rest(self, books: Books, url: str | None, body: str, mono_ns: int,
                wall_ns: int) -> None:
        snapshot = json.loads(body)
        if not isinstance(snapshot, dict) or "lastUpdateId" not in snapshot:
            raise ValueError(f"a Binance depth snapshot has a lastUpdateId: {body[:80]!r}")
        book = books.book(self._symbol_of(url))
        book.clear()
        for side, key in (("bid", "bids"), ("ask", "asks")):
            apply_pairs(book, side, ((float(p), float(q)) for p, q in snapshot[key]))  # type: ignore[arg-type]
        last = int(snapshot["lastUpdateId"])
        book.last_id, book.bridged = last, False
        held = [m for m in book.pending if m.final_update_id >= last + (not self.futures)]
        book.pending.clear()
        if held and not self._joins(held[0], last):
            book.mark_invalid(f"snapshot {last} older than the diffs held (U="
                              f"{held[0].first_update_id})", mono_ns)
            book.pending.extend(held)
            return
        book.snapshot_done(mono_ns)
        for message in held:
            if not book.valid:
                book.pending.append(message)
                continue
            self._follow(book, message, mono_ns)

    def snapshot_url(self, symbol: str, rest_url: str | None) -> str:
        market = "usdm" if self.futures else "spot"
        base = (rest_url or REST_API[market]).rstrip("/")
        return f"{base}{REST_DEPTH[market]}?symbol={symbol}&limit={SNAPSHOT_LIMIT}"

    def wants_snapshot(self, book: Book) -> bool:
        # Diffs are held for want of a snapshot: the first, or after a break.
        return not book.valid and bool(book.pending)

    def _joins(self, message: Depth, last: int) -> bool:
        """Whether ``message`` is the first diff after a snapshot at ``last``."""
        return self._straddles(message.first_update_id, message.final_update_id, last)

    def _straddles(self, first: int, final: int, last: int) -> bool:
        """Whether a diff of ``first..final`` joins a snapshot at ``last``."""
        if self.futures:
            return first <= last <= final
        return first <= last + 1 <= final

    def _follow(self, book: Book, message: Depth, mono_ns: int) -> None:
        """Apply a diff to a synced book, or mark the book invalid if one was missed."""
        last = book.last_id
        assert last is not None  # a synced book has one
        if not book.bridged:
            if message.final_update_id < last + (not self.futures):
                return  # already in the snapshot
            fits = self._joins(message, last)
        elif message.final_update_id <= last:
            return  # a repeat of one applied
        elif self.futures and message.prev_final_update_id is not None:
            fits = message.prev_final_update_id == last
        else:
            fits = message.first_update_id == last + 1
        if not fits:
            book.stats.gaps += 1
            book.bridged = False
            book.mark_invalid(f"update ids {message.first_update_id}..{message.final_update_id}"
                              f" after {last}", mono_ns)
            return
        _step(book, message.bids, message.asks, message.final_update_id)

    def _symbol_of(self, url: str | None) -> str:
        """The snapshot's symbol: the URL's ``symbol=``, or the spec's only symbol."""
        if url:
            query = parse_qs(urlsplit(url).query)
            if "symbol" in query:
                return query["symbol"][0].upper()
        if len(self.symbols) == 1:
            return self.symbols[0]
        raise ValueError(f"a depth snapshot without its URL's symbol= cannot be placed among "
                         f"{self.symbols}")


_PRICES = '"b":<bid:decimal>,"B":<bid_qty:decimal>,"a":<ask:decimal>,"A":<ask_qty:decimal>'
LAYOUTS: dict[str, dict[str, Layout]] = {
    "spot": {
        "bookTicker": Layout(
            '{"stream":"<_:name>@bookTicker","data":{"u":<update_id:int>,"s":<symbol:str>,'
            f'{_PRICES}}}}}'),
        "trade": Layout(
            '{"stream":"<_:name>@trade","data":{"e":"trade","E":<event_time_ns:ms>,'
            '"s":<symbol:str>,"t":<trade_id:int>,"p":<price:decimal>,"q":<qty:decimal>,'
            '"T":<trade_time_ns:ms>,"m":<buyer_is_maker:bool>,"M":<_:bool>}}'),
        "aggTrade": Layout(
            '{"stream":"<_:name>@aggTrade","data":{"e":"aggTrade","E":<event_time_ns:ms>,'
            '"s":<symbol:str>,"a":<agg_id:int>,"p":<price:decimal>,"q":<qty:decimal>,'
            '"f":<first_trade_id:int>,"l":<last_trade_id:int>,"T":<trade_time_ns:ms>,'
            '"m":<buyer_is_maker:bool>,"M":<_:bool>}}'),
    },
    "usdm": {
        "bookTicker": Layout(
            '{"stream":"<_:name>@bookTicker","data":{"e":"bookTicker","u":<update_id:int>,'
            f'"s":<symbol:str>,{_PRICES},"T":<transaction_time_ns:ms>,'
            '"E":<event_time_ns:ms>}}'),
        "trade": Layout(
            '{"stream":"<_:name>@trade","data":{"e":"trade","E":<event_time_ns:ms>,'
            '"T":<trade_time_ns:ms>,"s":<symbol:str>,"t":<trade_id:int>,'
            '"p":<price:decimal>,"q":<qty:decimal>,"X":<order_type:str>,'
            '"m":<buyer_is_maker:bool>}}'),
        "aggTrade": Layout(
            '{"stream":"<_:name>@aggTrade","data":{"e":"aggTrade","E":<event_time_ns:ms>,'
            '"a":<agg_id:int>,"s":<symbol:str>,"p":<price:decimal>,"q":<qty:decimal>,'
            '"f":<first_trade_id:int>,"l":<last_trade_id:int>,"T":<trade_time_ns:ms>,'
            '"m":<buyer_is_maker:bool>}}'),
    },
}
"""Each market's channels as Binance writes them (:mod:`wsresearch.layout`), key order
and all, as seen in the recordings in ``data/``: a replay reads the messages that match
straight into columns."""


def _step(book: Book, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]],
          final: int) -> None:
    """Apply a diff that follows the book's last: its levels, then its last update id."""
    book.bids.apply(bids)
    book.asks.apply(asks)
    book.last_id, book.bridged = final, True


def depth_layout(stream_suffix: str, market: str = "spot") -> Layout:
    """``depth`` diffs as Binance writes them, on the stream ``<symbol><stream_suffix>``.

    ``stream_suffix`` is ``"@depth"`` or ``"@depth@<speed>"`` (``100ms``...): the
    stream name is part of the text, so each update speed has its layout. USD-M diffs
    also carry the transaction time ``T`` and ``pu``, the last diff's ``u``.

    Raises
    ------
    ValueError
        For a market other than ``"spot"`` and ``"usdm"``.
    """
    if market not in LAYOUTS:
        raise ValueError(f"market must be one of {sorted(LAYOUTS)}, not {market!r}")
    ids = '"U":<first_update_id:int>,"u":<final_update_id:int>'
    fields = (f'"E":<event_time_ns:ms>,"s":<symbol:str>,{ids}' if market == "spot" else
              f'"E":<event_time_ns:ms>,"T":<transaction_time_ns:ms>,"s":<symbol:str>,{ids},'
              '"pu":<prev_final_update_id:int>')
    return Layout('{"stream":"<_:name>' + stream_suffix + '","data":{"e":"depthUpdate",'
                  + fields + ',"b":<bids:levels>,"a":<asks:levels>}}')


def _channels(chosen: Sequence[str], market: str, depth_suffix: str) -> list[Channel]:
    """The chosen channels, with the market's layouts.

    With ``trade`` too, ``aggTrade`` gives no ``trades`` rows: an aggregate repeats the
    fills ``trade`` already gives one by one, so with both the trades table keeps the
    fills, and no trade is counted twice.
    """
    layouts = dict(LAYOUTS[market])
    defined = dict(_CHANNELS)
    if market == "spot":  # the depth diffs' range
        defined["depth"] = _SPOT_DEPTH
    layouts["depth"] = depth_layout(depth_suffix, market)
    channels = [defined[name].with_layout(layouts.get(name)) for name in chosen]
    if "trade" in chosen and "aggTrade" in chosen:
        channels = [c.model_copy(update={"normalized": {}}) if c.name == "aggTrade" else c
                    for c in channels]
    return channels


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
        Any of the market's :data:`MARKET_CHANNELS` (USD-M adds ``markPrice`` and
        ``forceOrder``).
    url
        Where to connect instead of Binance (a simulator, a replay server, a proxy).
        Default: the market's URL; for USD-M, the endpoint that serves the channels
        (:data:`USDM_ENDPOINTS`).
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
        For an unknown channel, market, speed or interval, a USD-M channel on spot, a
        symbol not spelled like Binance's, or more streams than one connection takes.

    Warns
    -----
    UserWarning
        For USD-M channels of both endpoints and no ``url``: one connection reaches one
        endpoint (``/public``, where ``aggTrade``, ``kline``, ``markPrice`` and
        ``forceOrder`` stay silent).

    Examples
    --------
    >>> s = spec(["BTCUSDT", "ethusdt"], ["trade", "depth"], depth_speed="100ms")
    >>> s.subscribe[0]["params"]
    ['btcusdt@trade', 'ethusdt@trade', 'btcusdt@depth@100ms', 'ethusdt@depth@100ms']
    """
    check_choice("market", market, MARKETS, "Binance")
    if market == "spot" and not isinstance(channels, str):
        usdm_only = [name for name in channels if name not in CHANNELS
                     and name in MARKET_CHANNELS["usdm"]]
        if usdm_only:
            raise ValueError(f"{usdm_only} are USD-M futures streams, not spot ones; pass "
                             "market='usdm'")
    chosen = check_channels(channels, MARKET_CHANNELS[market], "Binance")
    names = check_symbols(symbols, r"[a-z0-9]{2,30}", "btcusdt", "Binance", lower=True)
    if depth_speed is not None:
        check_choice(f"{market} depth speed", depth_speed, _DEPTH_SPEEDS[market], "Binance")
    check_choice("kline interval", kline_interval, _KLINE_INTERVALS, "Binance")
    streams = stream_names(names, chosen, market, depth_speed, kline_interval)
    if len(streams) > _MAX_STREAMS[market]:
        raise ValueError(f"{len(streams)} streams: Binance {market} takes at most "
                         f"{_MAX_STREAMS[market]} per connection; split the symbols over feeds")
    if url is None:
        url = MARKETS[market] if market == "spot" else _usdm_url(chosen)
    arguments: dict[str, Any] = {"symbols": names, "channels": chosen, "market": market,
                                 "depth_speed": depth_speed, "kline_interval": kline_interval}
    return assemble(
        "binance", arguments, overrides,
        url=url,
        exchange=EXCHANGE_NAMES[market],
        channels=_channels(chosen, market, _depth_suffix(market, depth_speed)),
        type_of=type_of,
        subscribe=[{"method": "SUBSCRIBE", "params": streams, "id": 1}],
        health={name: _HEALTH[name] for name in chosen},
        connection=connection,
        control=frozenset({"ack"}),
        book_sync=BookSync(names, market == "usdm") if "depth" in chosen else None,
        # bookTicker tells each change of the top as it happens, ahead of the depth diffs
        # (every 100 ms to 1 s): the quotes are its own, where it is subscribed.
        quotes=None,
        error_types=frozenset({"error"}),
        error_text=_error_text,
        description=f"Binance {market}: {', '.join(chosen)} on {', '.join(names)}",
    )
