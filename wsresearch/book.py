"""Order books: one L2 book per symbol, kept in sync by the exchange's own rules.

An adapter that subscribes a book channel gives its spec a :class:`BookRule`: the
exchange's rule for turning that channel's messages into book changes (snapshot or
delta, sequence continuity, checksums). The pipeline hands it every valid message of
those channels, in order, live and in replay, so a replay rebuilds the same books.

A book is *valid* from its first snapshot until its rule finds it wrong (a sequence gap,
a failed checksum): then it says so (``valid`` false, and why) until the next snapshot
makes it whole again. Every book's integrity is counted (:class:`BookStats`): updates,
checksums verified and failed, messages that left it crossed, resyncs, and the time it
spent without a valid book.

Each side's levels are a :class:`Levels` (price → amount, in price order), chosen on
measurement (``docs/books.md``): a researcher's book is read at the top after every
message (best bid and ask, crossed check, checksums), which a sorted side answers at
once, where the ``order-book`` library's C dict re-sorts on every ordered read.
"""

from __future__ import annotations

import bisect
import math
import zlib
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal
from itertools import chain
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from ._levels import Levels
from ._sweep import Changes, Stretch, ends, exact, side_arrays

__all__ = ["AT_ONCE_ROWS", "BOOK_CHANGE_COLUMNS", "BOOK_COLUMNS", "DISCONNECTED", "LEVELS",
           "NEW_CONNECTION", "Book", "BookRule", "BookStats", "Books", "Changes", "Levels",
           "Readings", "apply_levels", "apply_pairs", "change_lists", "kraken_checksum",
           "level_changes", "level_lists", "side_changes"]

Side = Literal["bid", "ask"]

NEW_CONNECTION = "new connection: waiting for a snapshot"
"""Why every book is invalid after a reconnect: the updates missed while away."""

DISCONNECTED = "disconnected: waiting for a new connection"
"""Why every book is invalid from a connection's close to the next connection: what it
holds is the market when the connection closed, and nothing tells how it has moved since."""

_QUOTES_CHUNK = 65_536
"""Quote rows kept as tuples before they become a polars chunk."""

AT_ONCE_ROWS = 1_024
"""Rows a book (a level counting as an eighth of a row) for :meth:`Books.apply_changes` to
apply a stretch at once: a book's stretch costs about 2 ms whatever its size, a row one at
a time about 4 µs and a level 0.4 µs (measured on the Coinbase and Kraken Futures captures
in chunks of 100 to 20,000 events)."""

LEVELS = pl.List(pl.Struct({"price": pl.Float64, "amount": pl.Float64}))
"""The type of a side's levels in the books' tables: ``{price, amount}`` a level, best first."""

_READ_LEVELS = 1_000_000
"""Levels the readings hold as Python objects before they become a polars chunk (16 MB
as columns, several times that as tuples of floats)."""

MAX_PENDING = 10_000
"""Messages a book holds while it waits for a snapshot (the oldest go first)."""

BOOK_COLUMNS: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "valid": pl.Boolean(),
    "reason": pl.String(),
    "best_bid": pl.Float64(),
    "best_ask": pl.Float64(),
    "bid_levels": pl.Int64(),
    "ask_levels": pl.Int64(),
    "updates": pl.Int64(),
    "snapshots": pl.Int64(),
    "checksums_ok": pl.Int64(),
    "checksums_failed": pl.Int64(),
    "gaps": pl.Int64(),
    "crossed": pl.Int64(),
    "resyncs": pl.Int64(),
    "invalid_s": pl.Float64(),
}
"""The columns of :meth:`Books.frame`: a row per book."""

BOOK_CHANGE_COLUMNS: dict[str, pl.DataType] = {
    "mono_ns": pl.Int64(), "symbol": pl.String(), "valid": pl.Boolean(), "reason": pl.String()}
"""The columns of :meth:`Books.transition_frame`: a row per change of a book's validity."""


_EXACT = Context(prec=60)
"""Decimal arithmetic of the book's own, whatever a caller set their thread's context to:
60 digits keep the sum of two prices exact unless they are 40 orders of magnitude apart."""


def _in_decimals(bid: float, ask: float, mean: bool) -> float:
    """``ask - bid``, or their mean, worked on the decimals the prices print as.

    A price parsed from an exchange's text (up to 15 significant digits, as nearly all
    are) prints back as that text, so this is the exchange's arithmetic, not the
    float's: 61832.0 - 61831.99 is 0.01, not 0.010000000002037268. An infinite price
    has no decimal form, and keeps the float's answer.
    """
    if not (math.isfinite(bid) and math.isfinite(ask)):
        return (bid + ask) / 2 if mean else ask - bid
    low, high = Decimal(repr(bid)), Decimal(repr(ask))
    if mean:
        return float(_EXACT.divide(_EXACT.add(low, high), 2))
    return float(_EXACT.subtract(high, low))


@dataclass(slots=True)
class BookStats:
    """One book's integrity counts.

    Attributes
    ----------
    updates
        Messages applied (snapshots included).
    snapshots
        Snapshots applied: the first, and each that made the book whole again.
    checksums_ok, checksums_failed
        Checksums verified against the book, and those that did not match.
    gaps
        Sequence breaks that made the book invalid.
    crossed
        Messages after which the best bid was at or above the best ask.
    resyncs
        Times the book went invalid after having been valid (each needs a new snapshot).
    invalid_ns
        Receive time spent without a valid book, from the first message of the symbol
        (ns, on the pipeline's monotonic clock; the time since the last change not included).
    """

    updates: int = 0
    snapshots: int = 0
    checksums_ok: int = 0
    checksums_failed: int = 0
    gaps: int = 0
    crossed: int = 0
    resyncs: int = 0
    invalid_ns: int = 0


class Book:
    """One symbol's L2 book: bids and asks by price, with the text each level was sent as.

    Parameters
    ----------
    symbol
        The symbol, as the exchange spells it.
    max_depth
        Levels kept per side (the subscribed depth); ``None`` keeps all.
    """

    __slots__ = ("_since", "_texts", "asks", "bids", "bridged", "exchange_ns", "last_id",
                 "max_depth", "owner", "pending", "reason", "recv_mono_ns", "recv_wall_ns",
                 "stats", "symbol", "valid")

    def __init__(self, symbol: str, max_depth: int | None = None,
                 owner: Books | None = None) -> None:
        self.symbol = symbol
        self.owner = owner
        """The :class:`Books` it belongs to: told when it turns valid or invalid, and of
        each message applied (quotes)."""
        self.max_depth = max_depth
        self.bids = Levels("bid")  # price → amount, ascending; the best is the last
        self.asks = Levels("ask")  # price → amount, ascending; the best is the first
        self._texts: dict[Side, dict[float, tuple[str, str]]] = {"bid": {}, "ask": {}}
        self.valid = False
        self.reason = "no snapshot yet"
        self.stats = BookStats()
        self.exchange_ns: int | None = None
        self.recv_mono_ns: int | None = None
        self.recv_wall_ns: int | None = None
        self.last_id: int | None = None  # the exchange's last update id, for its rule
        # For rules that sync from a snapshot taken beside the stream (Binance): whether
        # the stream has joined the snapshot yet, and the messages held until it can.
        self.bridged = False
        self.pending: deque[Any] = deque(maxlen=MAX_PENDING)
        self._since: int | None = None  # when it last went invalid (mono ns), while invalid

    # -- changes -----------------------------------------------------------------------

    def clear(self) -> None:
        """Remove every level (before a snapshot)."""
        self.bids.clear()
        self.asks.clear()
        self._texts["bid"].clear()
        self._texts["ask"].clear()

    def set(self, side: Side, price: float, amount: float,
            text: tuple[str, str] | None = None) -> None:
        """Set one level; an ``amount`` of 0 removes it. ``text``: price and amount as sent."""
        levels = self.bids if side == "bid" else self.asks
        if amount == 0:
            levels.pop(price)
            if text is not None:
                self._texts[side].pop(price, None)
            return
        levels[price] = amount
        if text is not None:
            self._texts[side][price] = text

    def truncate(self) -> None:
        """Keep ``max_depth`` levels per side: levels pushed out are not sent as deletions."""
        depth = self.max_depth
        if depth is None:
            return
        sides: tuple[tuple[Side, Levels], ...] = (("bid", self.bids), ("ask", self.asks))
        for side, levels in sides:
            texts = self._texts[side]
            for price in levels.trim(depth):
                texts.pop(price, None)

    # -- state -------------------------------------------------------------------------

    def snapshot_done(self, mono_ns: int) -> None:
        """A snapshot's levels are all set (after :meth:`clear`): the book is whole.

        Keeps the subscribed depth, counts the snapshot and marks the book valid.
        """
        self.truncate()
        self.stats.snapshots += 1
        self.mark_valid(mono_ns)

    def mark_valid(self, mono_ns: int) -> None:
        """The book is whole (a snapshot was applied)."""
        was = self.valid
        if not self.valid and self._since is not None:
            self.stats.invalid_ns += mono_ns - self._since
        self.valid, self.reason, self._since = True, "", None
        if not was and self.owner is not None:
            self.owner.changed(self, mono_ns)

    def mark_invalid(self, reason: str, mono_ns: int) -> None:
        """The book is wrong or incomplete until the next snapshot; ``reason`` says why."""
        was = self.valid
        if self.valid:
            self.stats.resyncs += 1
            self._since = mono_ns
        self.valid, self.reason = False, reason
        if was and self.owner is not None:
            self.owner.changed(self, mono_ns)

    def touched(self, mono_ns: int, wall_ns: int, exchange_ns: int | None) -> None:
        """One message was applied at these times: counted, and checked for a crossed book."""
        if self._since is None and not self.valid:
            self._since = mono_ns  # the first message of a symbol starts its invalid time
        stats = self.stats
        stats.updates += 1
        self.recv_mono_ns, self.recv_wall_ns = mono_ns, wall_ns
        if exchange_ns is not None:
            self.exchange_ns = exchange_ns
        owner = self.owner
        if not self.valid:
            if owner is not None:
                owner.record_quote(self)
            return
        # The top, read once for the crossed check and the quote (this runs per message).
        bid, ask = self.bids.best(), self.asks.best()
        if bid is not None and ask is not None and bid[0] >= ask[0]:
            stats.crossed += 1
        if owner is not None:
            owner.record_quote(self, (bid, ask))

    def invalid_ns(self, now_mono_ns: int | None = None) -> int:
        """Time without a valid book so far (up to ``now_mono_ns``, or the last message)."""
        now = now_mono_ns if now_mono_ns is not None else self.recv_mono_ns
        open_ = 0 if self._since is None or now is None else max(0, now - self._since)
        return self.stats.invalid_ns + open_

    # -- reading -----------------------------------------------------------------------

    @property
    def best_bid(self) -> tuple[float, float] | None:
        """The highest bid: ``(price, amount)``, or ``None`` on an empty side."""
        return self.bids.best()

    @property
    def best_ask(self) -> tuple[float, float] | None:
        """The lowest ask: ``(price, amount)``, or ``None`` on an empty side."""
        return self.asks.best()

    @property
    def mid(self) -> float | None:
        """The mean of the best bid and ask prices; ``None`` if a side is empty.

        Worked in decimals, as :attr:`spread` is: ``(0.1 + 0.2) / 2`` is 0.15, not
        0.15000000000000002.
        """
        bid, ask = self.best_bid, self.best_ask
        return None if bid is None or ask is None else _in_decimals(bid[0], ask[0], mean=True)

    @property
    def spread(self) -> float | None:
        """Best ask minus best bid; ``None`` if a side is empty.

        Worked in the decimals the prices were sent as: a float difference of 61832.0
        and 61831.99 is 0.010000000002037268, one tick plus noise; this is 0.01.
        """
        bid, ask = self.best_bid, self.best_ask
        return None if bid is None or ask is None else _in_decimals(bid[0], ask[0], mean=False)

    @property
    def crossed(self) -> bool:
        """Whether the best bid is at or above the best ask."""
        bid, ask = self.bids.best_price(), self.asks.best_price()
        return bid is not None and ask is not None and bid >= ask

    def prices(self, side: Side, n: int | None = None) -> list[float]:
        """The best ``n`` prices of one side (all by default), best first."""
        return (self.bids if side == "bid" else self.asks).best_prices(n)

    def side(self, side: Side, n: int | None = None) -> list[tuple[float, float]]:
        """The best ``n`` levels of one side (all by default), best first."""
        return (self.bids if side == "bid" else self.asks).best_levels(n)

    def texts(self, side: Side, n: int) -> list[tuple[str, str]]:
        """The best ``n`` levels of one side as the exchange wrote them, best first."""
        texts = self._texts[side]
        return [texts[price] for price in self.prices(side, n)]

    def top(self, n: int = 10) -> pl.DataFrame:
        """The best ``n`` levels of each side, as a frame.

        Columns ``side``, ``level`` (0 is the best), ``price``, ``amount``.
        """
        rows = [(side, level, price, amount)
                for side in ("bid", "ask")
                for level, (price, amount) in enumerate(self.side(side, n))]
        return pl.DataFrame(rows, orient="row", schema={
            "side": pl.String, "level": pl.Int64, "price": pl.Float64, "amount": pl.Float64})

    def __repr__(self) -> str:
        state = "valid" if self.valid else f"invalid: {self.reason}"
        return (f"Book({self.symbol!r}, bid={self.best_bid}, ask={self.best_ask}, "
                f"levels={len(self.bids)}/{len(self.asks)}, {state})")


@dataclass
class Readings:
    """Times to read every book at, and what was read: :func:`~wsresearch.book_times.books_at`.

    A book is read at time ``t`` once the first event that changes a book (a diff, a
    snapshot, a reconnect, a gap where the rule acts on one) with a receive time past ``t``
    comes, before it is applied: so a reading holds every such event received at or
    before ``t``, as the snapshot grid's snapshots do at their boundaries. Times after the
    last are read as the books end (:meth:`Books.read_rest`).

    Parameters
    ----------
    times
        ns since the epoch, ascending, each once.
    depth
        Levels per side, best first; ``None``: all.
    symbols
        The books to read; ``None``: all.
    """

    times: list[int]
    depth: int | None
    symbols: frozenset[str] | None = None
    done: int = 0
    """How many of ``times`` are read."""
    _rows: list[tuple[Any, ...]] = field(default_factory=list, init=False, repr=False,
                                         compare=False)
    _levels: int = field(default=0, init=False, repr=False, compare=False)  # in _rows, + rows
    _chunks: list[pl.DataFrame] = field(default_factory=list, init=False, repr=False,
                                        compare=False)

    def due(self, wall_ns: int) -> int:
        """How many of ``times`` are read once a message received at ``wall_ns`` comes."""
        return bisect.bisect_left(self.times, wall_ns, lo=self.done)

    def wanted(self, book: Book) -> bool:
        """Whether ``book`` is one of those read."""
        return self.symbols is None or book.symbol in self.symbols

    def next_time(self) -> int | None:
        """The first time not read yet; ``None`` once all are."""
        return self.times[self.done] if self.done < len(self.times) else None

    def add(self, end: int, states: list[tuple[Any, ...]]) -> None:
        """Read times ``done`` to ``end``, each finding ``states`` (a row per book, no time).

        A state is ``(symbol, valid, exchange_ns, recv_wall_ns, bids, asks)``, the levels
        as ``(price, amount)`` best first (:meth:`state`). What was read becomes a polars
        chunk every :data:`_READ_LEVELS` levels (a row counting as one), so a deep book
        read at many times is held as columns, not as a Python object a level.
        """
        rows = self._rows
        times = self.times[self.done:end]
        for time in times:
            rows.extend((time, *state) for state in states)
        self._levels += len(times) * sum(1 + len(state[4]) + len(state[5]) for state in states)
        self.done = end
        if self._levels >= _READ_LEVELS:
            self._chunks.append(self._chunk())

    def state(self, book: Book) -> tuple[Any, ...]:
        """``book`` as a row without its time, as it is now."""
        depth = self.depth
        return (book.symbol, book.valid, book.exchange_ns, book.recv_wall_ns,
                book.side("bid", depth), book.side("ask", depth))

    def frame(self) -> pl.DataFrame:
        """What was read, a row a time and a book read.

        ``time``, ``symbol``, ``valid``, ``exchange_ns``, ``recv_wall_ns``, ``bids``,
        ``asks`` (:data:`LEVELS`), in the order of the times, then of the symbols.
        """
        if self._rows or not self._chunks:
            self._chunks.append(self._chunk())
        return pl.concat(self._chunks, rechunk=False)

    def _chunk(self) -> pl.DataFrame:
        """The rows held as tuples, as a frame, and let go."""
        rows, self._rows, self._levels = self._rows, [], 0
        return _level_frame(rows, {
            "time": pl.Int64(), "symbol": pl.String(), "valid": pl.Boolean(),
            "exchange_ns": pl.Int64(), "recv_wall_ns": pl.Int64(), "bids": LEVELS,
            "asks": LEVELS})


class BookRule(ABC):
    """An exchange's rule for keeping books: what its book messages do to them.

    A rule keeps no state of its own (a spec, and its rule, may drive many pipelines):
    what it must remember per symbol lives on the :class:`Book` (``last_id``,
    ``bridged``, ``pending``).
    """

    channels: frozenset[str]
    """The channels whose messages change books."""
    max_depth: int | None = None
    """Levels kept per side (the subscribed depth); ``None`` keeps all."""

    @abstractmethod
    def apply(self, books: Books, channel: str, message: Any, mono_ns: int,
              wall_ns: int) -> None:
        """Apply one valid message of ``channel`` (in receive order) to ``books``."""

    def takes_rows(self, books: Books, channel: str, rows: pl.DataFrame) -> bool:
        """Whether :meth:`apply_rows` can apply ``rows`` as :meth:`apply` would each message.

        ``rows`` are one channel's messages of a stretch of a replay, in receive order, as
        the columnar replay decodes them (the model's columns and the frame's meta
        columns), each a valid message. It is asked before any of them is applied, with
        the books as they are then; the rows are applied later, when they are committed.
        The replay guarantees that nothing else changes the books in between: it asks
        only a rule with no :meth:`on_gap` of its own, and only for a stretch with no
        REST response, no new connection and no message of the rule's other channels (a
        snapshot channel) in it. A rule says yes
        only where it can prove that applying them changes no book's validity (no gap,
        no checksum to fail, no snapshot to wait for); rules without a columnar path
        say no, and their messages go through :meth:`apply` one by one.
        """
        return False

    def apply_rows(self, books: Books, channel: str, rows: pl.DataFrame,
                   report: Callable[[Exception], None]) -> None:
        """Apply ``rows``, which :meth:`takes_rows` accepted, as :meth:`apply` would each.

        Before each row the rule calls :meth:`Books.due` with the row's ``recv_wall_ns``
        (the snapshots due before it, as :meth:`Books.apply` takes them). A row that
        raises is given to ``report`` and the next row is applied, as the per-message path
        reports a message's error and goes on. :meth:`Books.apply_each` does all of it,
        given the change a row makes to its book. The rows are applied when they are
        committed, at the end of their stretch of the replay: such an error is reported
        after those of the stretch's other messages, where the per-message path reports it
        among them. A rule whose rows cannot raise (the adapters': a layout reads no NaN
        and ``takes_rows`` checks every book) keeps the errors in the same order.

        The rows accepted together may be applied in parts, in order: where a channel's
        stream is stale, the replay applies the rows up to there, sends the stale stretch's
        messages through :meth:`apply`, then applies the rest. Each part must do what
        :meth:`apply` does from the state the one before left (the Binance rule: a part
        holding only diffs a snapshot already holds joins nothing).

        Raises
        ------
        TypeError
            For a rule without a columnar path (its :meth:`takes_rows` never says yes).
        """
        raise TypeError(f"{type(self).__name__} applies messages one by one: its "
                        "takes_rows() never accepts rows")

    def on_rest(self, books: Books, url: str | None, body: str, mono_ns: int,  # noqa: B027
                wall_ns: int) -> None:
        """A REST response taken beside the stream (a book snapshot), in receive order.

        Exchanges whose books need none ignore it.
        """

    def on_gap(self, books: Books, channel: str, mono_ns: int) -> None:  # noqa: B027
        """The pipeline found a sequence gap on ``channel`` (any channel of the feed).

        For exchanges whose numbers count more than one book's messages (Coinbase
        Advanced Trade numbers every message of a connection): a lost message may have
        been any book's. Exchanges whose books check their own numbers ignore it.
        """

    @classmethod
    def acts_on_gaps(cls) -> bool:
        """Whether the rule has an :meth:`on_gap` of its own: a gap may change its books."""
        return cls.on_gap is not BookRule.on_gap

    def snapshot_url(self, symbol: str, rest_url: str | None) -> str | None:
        """Where to fetch a REST snapshot of ``symbol``; ``None`` where books need none.

        ``rest_url`` is the REST API's base (a simulator's); ``None`` means the exchange's.
        """
        return None

    def wants_snapshot(self, book: Book) -> bool:
        """Whether ``book`` waits for a REST snapshot (the feed then fetches one)."""
        return False

    def resubscribe(self, symbol: str) -> list[Any]:
        """The messages that make the exchange send ``symbol``'s book afresh.

        For a book gone invalid: unsubscribe, then subscribe, that symbol alone. Empty
        where the exchange has no such way (its feed then waits for a snapshot).
        """
        return []


@dataclass
class Books:
    """Every book of one feed or replay, the rule that keeps them, and what they make.

    Besides the books, it keeps two tables, both by receive time:

    - *snapshots*: the best ``snapshot_depth`` levels of every valid book at each
      multiple of ``snapshot_interval`` seconds of receive (wall) time. One is taken when
      the first message past the boundary arrives, before it is applied, so it holds
      exactly the messages received up to the boundary; a quiet stretch with no message
      gives one snapshot at its last boundary, not one per boundary;
    - *quotes*: the best bid and ask of a valid book after each message that changed them.

    Parameters
    ----------
    sync
        The exchange's rule (the spec's ``book_sync``); its ``max_depth`` is each
        book's.
    on_change
        Called with a book and the time (mono ns) when it turns valid or invalid.
    snapshot_interval
        Seconds of receive time between snapshots; ``None`` takes none.
    snapshot_depth
        Levels per side in a snapshot.
    """

    sync: BookRule
    on_change: Callable[[Book, int], None] | None = None
    snapshot_interval: float | None = 1.0
    snapshot_depth: int = 10
    books: dict[str, Book] = field(default_factory=dict)
    generation: int = 0
    """The connection generation of the messages being applied (set by the pipeline)."""
    transitions: list[tuple[int, str, bool, str]] = field(default_factory=list)
    """``(mono_ns, symbol, valid, reason)`` of every change of a book's validity."""
    meta: dict[str, Any] = field(default_factory=dict)
    """What a rule learns of the market beside the books (Kraken v2: each pair's precision)."""
    readings: Readings | None = None
    """The times to read every book at, and what was read (:meth:`read_at`)."""
    connected: bool = True
    """False from a connection's close (:meth:`closed`) to the next one (:meth:`reset`)."""
    _next_snapshot_ns: int | None = None
    # readings.next_time(), kept here for the check before every book message; None: none
    _next_read_ns: int | None = None
    _snapshots: list[tuple[Any, ...]] = field(default_factory=list)
    _quotes: list[tuple[Any, ...]] = field(default_factory=list)
    _quote_chunks: list[pl.DataFrame] = field(default_factory=list)  # columnar, in order
    _tops: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def book(self, symbol: str) -> Book:
        """The book of ``symbol``, made empty (and invalid) on first use."""
        found = self.books.get(symbol)
        if found is None:
            found = self.books[symbol] = Book(symbol, self.sync.max_depth, self)
        return found

    def reset(self, mono_ns: int, wall_ns: int) -> None:
        """A new connection: every book is invalid until the snapshot it brings.

        Each missed the updates sent while away (:data:`NEW_CONNECTION`), so it keeps
        nothing of the old connection but its counts: no level, no update id, no times.
        What it shows from then on depends on the new connection alone, which is also
        what lets an export split a recording where connections begin. ``wall_ns`` is
        when the connection opened: the readings due before it are taken first
        (:meth:`read_at`).
        """
        self._read_before(wall_ns)
        self.connected = True
        for book in self.books.values():
            book.bridged = False
            book.pending.clear()
            book.clear()
            book.last_id = None
            book.exchange_ns = book.recv_mono_ns = book.recv_wall_ns = None
            book.mark_invalid(NEW_CONNECTION, mono_ns)

    def closed(self, mono_ns: int, wall_ns: int) -> None:
        """The connection closed, the session going on: every book is invalid until the next.

        Each keeps its levels (what :meth:`read_at` and ``book_at`` show of it, with
        ``valid`` false, :data:`DISCONNECTED`) until the next connection starts it afresh
        (:meth:`reset`). Until then nothing makes a book valid: a REST snapshot that comes
        in between is left, since the next connection's messages would not follow on from
        it. ``wall_ns`` is when the connection closed: the readings due before it are taken
        first.
        """
        self._read_before(wall_ns)
        self.connected = False
        for book in self.books.values():
            if book.valid:
                book.mark_invalid(DISCONNECTED, mono_ns)

    def changed(self, book: Book, mono_ns: int) -> None:
        """``book`` turned valid or invalid at ``mono_ns``: kept, and told to ``on_change``.

        A book that turns invalid forgets its last quote: the top it shows once valid again
        is a new quote row even where it equals the old one, since in between it was unknown.
        """
        if not book.valid:
            self._tops.pop(book.symbol, None)
        self.transitions.append((mono_ns, book.symbol, book.valid, book.reason))
        if self.on_change is not None:
            self.on_change(book, mono_ns)

    def transition_frame(self) -> pl.DataFrame:
        """Every change of a book's validity (:data:`BOOK_CHANGE_COLUMNS`)."""
        return pl.DataFrame(self.transitions, orient="row", schema=BOOK_CHANGE_COLUMNS)

    def record_quote(self, book: Book,
                     top: tuple[tuple[float, float] | None,
                                tuple[float, float] | None] | None = None) -> None:
        """A message was applied to ``book``: a quote row if its top changed.

        ``top``: its best bid and ask, where the caller has read them already.
        """
        if not book.valid:
            self._tops.pop(book.symbol, None)
            return
        if top is None:
            top = (book.best_bid, book.best_ask)
        tops = self._tops
        if tops.get(book.symbol) == top:
            return
        tops[book.symbol] = top
        bid, ask = top
        quotes = self._quotes
        quotes.append((book.symbol, book.exchange_ns, book.recv_wall_ns, self.generation,
                       *(bid or (None, None)), *(ask or (None, None))))
        if len(quotes) >= _QUOTES_CHUNK:  # kept as columns: a tenth of the memory of tuples
            self._quote_chunks.append(self._quote_frame(quotes))
            quotes.clear()

    def _snapshot_due(self, wall_ns: int) -> None:
        """Take the snapshots whose boundary ``wall_ns`` has passed (before applying it)."""
        assert self.snapshot_interval is not None  # checked by the caller
        step = max(1, round(self.snapshot_interval * 1e9))
        boundary = self._next_snapshot_ns
        if boundary is not None and wall_ns >= boundary:
            last = wall_ns - (wall_ns - boundary) % step  # the last boundary passed
            depth = self.snapshot_depth
            # By symbol: the same order however the session began (a part of a split
            # export meets its symbols in another order).
            for book in sorted(self.books.values(), key=_symbol):
                if book.valid:
                    self._snapshots.append((
                        book.symbol, book.exchange_ns, last, self.generation,
                        book.side("bid", depth), book.side("ask", depth)))
        if boundary is None or wall_ns >= boundary:
            self._next_snapshot_ns = (wall_ns // step + 1) * step

    def wanting(self, rest_url: str | None) -> list[tuple[str, str]]:
        """``(symbol, URL)`` of each book waiting for a REST snapshot it should fetch.

        None while disconnected: the next connection starts every book afresh.
        """
        if not self.connected:
            return []
        found = []
        for book in self.books.values():
            if self.sync.wants_snapshot(book):
                url = self.sync.snapshot_url(book.symbol, rest_url)
                if url is not None:
                    found.append((book.symbol, url))
        return found

    def apply(self, channel: str, message: Any, mono_ns: int, wall_ns: int) -> None:
        """Hand one valid message of a book channel to the rule (snapshots first, if due)."""
        self.due(wall_ns)
        self.sync.apply(self, channel, message, mono_ns, wall_ns)

    def apply_rows(self, channel: str, rows: pl.DataFrame,
                   report: Callable[[Exception], None]) -> None:
        """Hand a book channel's messages, as rows the rule accepted, to the rule.

        See :meth:`BookRule.takes_rows`: the columnar replay's path for book channels.
        Each row's error goes to ``report``.
        """
        self.sync.apply_rows(self, channel, rows, report)

    def apply_each(self, rows: pl.DataFrame, symbol: str, exchange_time: str,
                   change: Callable[[Book, int], None],
                   report: Callable[[Exception], None]) -> None:
        """Apply a rule's accepted rows one by one, as :meth:`apply` applies each message.

        For row ``i``, in order: the snapshots due before it (:meth:`due`), ``change(book,
        i)`` on the book of its ``symbol`` column, then :meth:`Book.touched` with its
        receive times and its ``exchange_time`` column. A row that raises is given to
        ``report`` and the next is applied. The body of :meth:`BookRule.apply_rows`.
        """
        due, found = self.due, self.books
        for index, (name, mono, wall, exchange_ns) in enumerate(zip(*(
                rows[column].to_list() for column in (
                    symbol, "recv_mono_ns", "recv_wall_ns", exchange_time)), strict=True)):
            try:
                due(wall)
                book = found[name]
                change(book, index)
                book.touched(mono, wall, exchange_ns)
            except Exception as exc:  # as the per-message path: reported, the next applied
                report(exc)

    def apply_changes(self, rows: pl.DataFrame, symbol: str, exchange_time: str,
                      bids: Changes, asks: Changes,
                      finish: Callable[[Book, int], None] | None = None) -> bool:
        """Apply a rule's accepted rows whose changes are levels, the levels all at once.

        What :meth:`apply_each` does row by row, in arrays (:mod:`wsresearch._sweep`): the
        same levels, quotes, snapshots, counts and times, without a Python step per level.
        For rows that follow on from valid books and leave them valid
        (:meth:`BookRule.takes_rows`).

        Parameters
        ----------
        rows
            The rows, with their ``symbol`` and ``exchange_time`` columns and their receive
            times.
        bids, asks
            Each side's level changes, row by row in the order applied.
        finish
            What else a row sets on its book (an update id), called with each book and its
            last row once its levels are set.

        Returns
        -------
        bool
            False, having changed nothing, where at once would not be exact (a NaN, a
            price of 0, a receive time that steps back) or would not pay (fewer than
            :data:`AT_ONCE_ROWS` rows a book, a level counting as an eighth of a row):
            then :meth:`apply_each` applies the rows.
        """
        names = rows[symbol]
        every = names.unique(maintain_order=True).to_list()
        if rows.height + (bids.rows.size + asks.rows.size) / 8 < AT_ONCE_ROWS * len(every):
            return False
        walls = rows["recv_wall_ns"].to_numpy()
        reading = self._next_read_ns is not None and int(walls.max()) > self._next_read_ns
        if reading and self.readings is not None and self.readings.depth is None:
            return False  # every level of a book at many rows: one row at a time
        found = self.books
        firsts = {name: (side_arrays(found[name].bids), side_arrays(found[name].asks))
                  for name in every}
        if not (exact(bids) and exact(asks)
                and (walls.size < 2 or bool((walls[1:] >= walls[:-1]).all()))
                and all(exact(side) for sides in firsts.values() for side in sides)):
            return False
        exchange = rows[exchange_time].cast(pl.Int64)
        stretches = {name: Stretch(
            found[name], firsts[name],
            (names == name).arg_true().to_numpy() if len(every) > 1 else None,
            bids, asks, exchange, walls, self._tops.get(name)) for name in every}
        due = self._due_rows(walls)
        if due:
            self._snapshots_at(due, stretches)
        if reading:
            self._readings_at(walls, stretches)
        if self._quotes:
            self._quote_chunks.append(self._quote_frame(self._quotes))
            self._quotes.clear()
        quotes = pl.concat([stretch.quotes(self.generation) for stretch in stretches.values()])
        self._quote_chunks.append(quotes.sort("_row").drop("_row"))
        monos = rows["recv_mono_ns"]
        for stretch in stretches.values():
            book, last = stretch.book, stretch.last_row
            stretch.settle()
            book.stats.updates += stretch.count
            book.recv_mono_ns, book.recv_wall_ns = monos[last], int(walls[last])
            book.exchange_ns = stretch.last_exchange
            self._tops[book.symbol] = stretch.last_top
            if finish is not None:
                finish(book, last)
        return True

    def _due_rows(self, walls: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
        """``(row, boundary)`` of each snapshot due before a row of non-decreasing ``walls``.

        As :meth:`due` before each row, which it leaves where the last row leaves it.
        """
        if self.snapshot_interval is None or not walls.size:
            return []
        step = max(1, round(self.snapshot_interval * 1e9))
        boundary = self._next_snapshot_ns
        if boundary is None:  # the first row sets the first boundary
            boundary = (int(walls[0]) // step + 1) * step
        first = int(np.searchsorted(walls, boundary, side="left"))
        if first >= walls.size:
            self._next_snapshot_ns = boundary
            return []
        # From the first, each row in a later step than the row before (boundaries being
        # multiples of the step): the last boundary passed is the start of its step.
        steps = walls[first:] // step
        rows = first + np.flatnonzero(np.concatenate([[True], steps[1:] != steps[:-1]]))
        wall = int(walls[first])
        found = [(first, wall - (wall - boundary) % step)]
        found += zip(rows[1:].tolist(), (steps[rows[1:] - first] * step).tolist(), strict=True)
        self._next_snapshot_ns = (int(walls[rows[-1]]) // step + 1) * step
        return found

    def _snapshots_at(self, due: list[tuple[int, int]], stretches: dict[str, Stretch]) -> None:
        """The snapshots ``due`` (:meth:`_due_rows`), books in a stretch as each row found them."""
        books = [book for book in sorted(self.books.values(), key=_symbol) if book.valid]
        rows = np.array([row for row, _ in due], np.int64)
        found = _before_rows(rows, self.snapshot_depth, books, stretches)
        for (_, boundary), states in zip(due, found, strict=True):
            for book, (exchange_ns, _, bids, asks) in zip(books, states, strict=True):
                self._snapshots.append((
                    book.symbol, exchange_ns, boundary, self.generation, bids, asks))

    def _readings_at(self, walls: npt.NDArray[np.int64], stretches: dict[str, Stretch]) -> None:
        """The readings due before the last of a stretch's rows (non-decreasing ``walls``).

        Each time is read as the first row received past it found the books
        (:func:`_before_rows`).
        """
        readings = self.readings
        assert readings is not None  # the caller found a time to read at
        assert readings.depth is not None  # checked by the caller
        start, end = readings.done, readings.due(int(walls[-1]))
        at = np.searchsorted(walls, np.array(readings.times[start:end], np.int64), side="right")
        rows, firsts = np.unique(at, return_index=True)
        counts = np.diff(np.append(firsts, end - start)).tolist()
        books = self._read_books(readings)
        found = _before_rows(rows, readings.depth, books, stretches)
        for count, states in zip(counts, found, strict=True):
            readings.add(readings.done + count, [
                (book.symbol, book.valid, exchange_ns, received, bids, asks)
                for book, (exchange_ns, received, bids, asks) in zip(books, states, strict=True)])
        self._next_read_ns = readings.next_time()

    def read_at(self, readings: Readings) -> None:
        """Read every book at ``readings.times`` from now on (``readings.frame()`` then).

        Each time is read before the first message that changes a book with a receive
        time past it is applied (:class:`Readings`); :meth:`read_rest` reads the rest at
        the end.
        """
        self.readings = readings
        self._next_read_ns = readings.next_time()

    def read_rest(self) -> None:
        """Read every time not read yet as the books are now: past every message applied."""
        readings = self.readings
        if readings is not None and readings.done < len(readings.times):
            self._read_due(readings.times[-1] + 1)

    def _read_before(self, wall_ns: int) -> None:
        """Take the readings due before what came at ``wall_ns`` changes a book."""
        if self._next_read_ns is not None and wall_ns > self._next_read_ns:
            self._read_due(wall_ns)

    def _read_due(self, wall_ns: int) -> None:
        """Read the books as they are now for every time not read yet before ``wall_ns``."""
        readings = self.readings
        assert readings is not None  # a time to read at comes from readings
        readings.add(readings.due(wall_ns), [readings.state(book)
                                             for book in self._read_books(readings)])
        self._next_read_ns = readings.next_time()

    def _read_books(self, readings: Readings) -> list[Book]:
        """The books ``readings`` reads, in symbol order."""
        return [book for book in sorted(self.books.values(), key=_symbol)
                if readings.wanted(book)]

    def due(self, wall_ns: int) -> None:
        """Take the snapshots and readings due before a book message received at ``wall_ns``."""
        if self.snapshot_interval is not None and (
                self._next_snapshot_ns is None or wall_ns >= self._next_snapshot_ns):
            self._snapshot_due(wall_ns)
        if self._next_read_ns is not None and wall_ns > self._next_read_ns:  # _read_before,
            self._read_due(wall_ns)  # inline: this runs before every book message

    def snapshots(self) -> pl.DataFrame:
        """The snapshots so far, in native columns.

        ``symbol``, ``exchange_ns``, ``recv_wall_ns`` (the boundary), ``generation``,
        ``bids``, ``asks``, ``frame_seq``; ``normalized("book_snapshots")`` gives them in the
        normalized columns.
        """
        return _level_frame(self._snapshots, {
            "symbol": pl.String(), "exchange_ns": pl.Int64(), "recv_wall_ns": pl.Int64(),
            "generation": pl.Int64(), "bids": LEVELS, "asks": LEVELS,
        }).with_columns(frame_seq=pl.lit(None, pl.Int64))

    def quotes(self) -> pl.DataFrame:
        """The books' quotes so far, in native columns.

        ``symbol``, ``exchange_ns``, ``recv_wall_ns``, ``generation``, ``bid_price``,
        ``bid_amount``, ``ask_price``, ``ask_amount``, ``frame_seq``;
        ``normalized("quotes")`` of a spec with no quote channel gives them.
        """
        return pl.concat([*self._quote_chunks, self._quote_frame(self._quotes)]).with_columns(
            frame_seq=pl.lit(None, pl.Int64))

    def take(self) -> dict[str, pl.DataFrame]:
        """The snapshots and quotes so far (``book_snapshots``, ``quotes``), handed over and let go.

        For a consumer that writes them out as they come (an export), so a long session's
        tables are not held to its end.
        """
        tables = {"book_snapshots": self.snapshots(), "quotes": self.quotes()}
        self._snapshots.clear()
        self._quotes.clear()
        self._quote_chunks.clear()
        return tables

    @staticmethod
    def _quote_frame(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
        return pl.DataFrame(rows, orient="row", schema={
            "symbol": pl.String, "exchange_ns": pl.Int64, "recv_wall_ns": pl.Int64,
            "generation": pl.Int64, "bid_price": pl.Float64, "bid_amount": pl.Float64,
            "ask_price": pl.Float64, "ask_amount": pl.Float64})

    def gap(self, channel: str, mono_ns: int, wall_ns: int) -> None:
        """Tell the rule of a sequence gap the pipeline found on ``channel``.

        ``wall_ns`` is the receive time of the message that showed it. A rule with an
        ``on_gap`` of its own may change the books there: the readings due before it are
        taken first (:meth:`read_at`). One without changes nothing, and its books may be
        behind the message (the columnar replay applies a chunk's book rows at the end
        of their stretch), so nothing is read there.
        """
        if self.sync.acts_on_gaps():
            self._read_before(wall_ns)
        self.sync.on_gap(self, channel, mono_ns)

    def rest(self, url: str | None, body: str, mono_ns: int, wall_ns: int) -> None:
        """Hand a REST response (a book snapshot) to the rule, the readings due before it taken.

        One that comes while disconnected is left (:meth:`closed`).
        """
        if not self.connected:
            return
        self._read_before(wall_ns)
        self.sync.on_rest(self, url, body, mono_ns, wall_ns)

    def __iter__(self) -> Iterator[Book]:
        return iter(self.books.values())

    def __len__(self) -> int:
        return len(self.books)

    def frame(self, now_mono_ns: int | None = None) -> pl.DataFrame:
        """A row per book: its state, top of book and integrity counts (:data:`BOOK_COLUMNS`)."""
        rows = []
        for book in self.books.values():
            s = book.stats
            bid, ask = book.best_bid, book.best_ask
            rows.append((book.symbol, book.valid, book.reason or None,
                         None if bid is None else bid[0], None if ask is None else ask[0],
                         len(book.bids), len(book.asks), s.updates, s.snapshots,
                         s.checksums_ok, s.checksums_failed, s.gaps, s.crossed, s.resyncs,
                         book.invalid_ns(now_mono_ns) / 1e9))
        return pl.DataFrame(rows, orient="row", schema=BOOK_COLUMNS)


def _symbol(book: Book) -> str:
    return book.symbol


def _before_rows(rows: npt.NDArray[np.int64], depth: int, books: list[Book],
                 stretches: dict[str, Stretch]) -> list[list[tuple[Any, ...]]]:
    """Each of ``books`` before each of a stretch's ``rows``, a list a row.

    ``(exchange_ns, recv_wall_ns, bids, asks)``, ``depth`` levels a side: a book of the
    stretch from its arrays (:meth:`Stretch.before`), the others as they are, the stretch
    not changing them.
    """
    found = {book.symbol: stretches[book.symbol].before(rows, depth) for book in books
             if book.symbol in stretches}
    now = {book.symbol: (book.exchange_ns, book.recv_wall_ns, book.side("bid", depth),
                         book.side("ask", depth)) for book in books if book.symbol not in found}
    return [[now[book.symbol] if book.symbol in now
             else tuple(part[index] for part in found[book.symbol]) for book in books]
            for index in range(rows.size)]


def _level_frame(rows: list[tuple[Any, ...]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Rows of tuples as a frame of ``schema``, its :data:`LEVELS` columns made flat first."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    return pl.DataFrame([
        _level_column(name, values) if dtype == LEVELS else pl.Series(name, values, dtype)
        for (name, dtype), values in zip(schema.items(), columns, strict=True)])


def _level_column(name: str, rows: Sequence[Sequence[tuple[float, float]]]) -> pl.Series:
    """Each row's levels (``(price, amount)``, best first) as a :data:`LEVELS` column.

    Built from flat arrays, each row a slice of them: a level costs a few ns here, where a
    ``{"price", "amount"}`` dict a level costs both its making and polars' reading of it.
    """
    if not rows:
        return pl.Series(name, [], LEVELS)
    lengths = np.fromiter(map(len, rows), np.int64, len(rows))
    total = int(lengths.sum())
    pairs = np.fromiter(chain.from_iterable(chain.from_iterable(rows)), np.float64,
                        2 * total).reshape(total, 2)
    flat = pl.DataFrame({"price": pairs[:, 0], "amount": pairs[:, 1]}).to_struct(name)
    starts = np.cumsum(lengths) - lengths
    return pl.select(pl.lit(flat.implode()).list.slice(
        pl.lit(pl.Series(starts)), pl.lit(pl.Series(lengths)))).to_series().rename(name)


def apply_pairs(book: Book, side: Side, levels: Iterable[tuple[float, float]]) -> None:
    """Set each ``(price, amount)`` level on one side; an amount of 0 removes it."""
    (book.bids if side == "bid" else book.asks).apply(levels)


def level_lists(column: pl.Series) -> tuple[list[float], list[float], list[int]]:
    """A column of levels (``List(Array(Float64, 2))``) as flat prices and amounts.

    With where each row's levels end: row ``i``'s are ``prices[ends[i-1]:ends[i]]`` and the
    same of ``amounts`` (from 0 for the first). Two float lists, not a Python list per level.
    """
    return level_changes(column).per_row(column.len())


def level_changes(column: pl.Series) -> Changes:
    """A column of levels (``List(Array(Float64, 2))``) as one side's :class:`Changes`."""
    rows, flat = _flat_rows(column)
    levels = flat.to_numpy().reshape(-1, 2)
    return Changes(rows, levels[:, 0], levels[:, 1])


def side_changes(column: pl.Series, bid: str) -> tuple[Changes, Changes]:
    """A column of level changes (``List(Struct(side, price, size))``) as bids' and asks'.

    ``bid``: the ``side`` of a bid (``"buy"``); any other side is an ask's.
    """
    rows, flat = _flat_rows(column)
    items = flat.struct
    is_bid = (items.field("side") == bid).fill_null(False).to_numpy()
    prices, sizes = items.field("price").to_numpy(), items.field("size").to_numpy()
    return (Changes(rows[is_bid], prices[is_bid], sizes[is_bid]),
            Changes(rows[~is_bid], prices[~is_bid], sizes[~is_bid]))


def _flat_rows(column: pl.Series) -> tuple[npt.NDArray[np.int64], pl.Series]:
    """A list column's items, every row's in one series, and the row of each."""
    lengths = column.to_frame().select(pl.first().list.len().fill_null(0)).to_series().to_numpy()
    # An empty list gives a null, or nothing.
    items = column.to_frame().select(pl.first().explode().drop_nulls()).to_series()
    if items.len() == lengths.sum():  # no null among a list's items: each row's in order
        return np.repeat(np.arange(column.len(), dtype=np.int64), lengths), items
    flat = pl.DataFrame({"row": np.arange(column.len(), dtype=np.int64), "item": column}
                        ).explode("item").drop_nulls("item")
    return flat["row"].to_numpy(), flat["item"]


def change_lists(column: pl.Series) -> tuple[list[str], list[float], list[float], list[int]]:
    """A column of level changes (``List(Struct(side, price, size))``) as flat lists.

    Sides, prices and sizes, with where each row's changes end, as :func:`level_lists`.
    """
    rows, flat = _flat_rows(column)
    items = flat.struct
    return (items.field("side").to_list(), items.field("price").to_list(),
            items.field("size").to_list(), ends(rows, column.len()))


def apply_levels(book: Book, side: Side, levels: Iterable[Any], amount: str = "amount",
                 text: bool = False) -> None:
    """Set each level of ``levels`` (objects with ``price`` and ``amount``) on one side."""
    for level in levels:
        size = getattr(level, amount)
        book.set(side, level.price, size,
                 (level.price_text, getattr(level, amount + "_text")) if text else None)


def kraken_checksum(book: Book, precision: tuple[int, int] | None = None) -> int:
    """Kraken's CRC32 of a book (unsigned 32 bits).

    Over the best 10 asks then the best 10 bids: each price and amount as sent, with its
    point and leading zeros removed, concatenated. With ``precision`` (the pair's price
    and quantity decimals, Kraken v2, which sends numbers rather than text), each value is
    written with that many decimals first.
    """
    if precision is not None:
        prices, amounts = precision
        text = "".join(
            f"{value:.{places}f}".replace(".", "").lstrip("0")
            for side in ("ask", "bid") for level in book.side(side, 10)
            for value, places in zip(level, (prices, amounts), strict=True))
        return zlib.crc32(text.encode())
    digits = _KRAKEN_DIGITS
    if len(digits) > _MAX_DIGITS_CACHED:
        digits.clear()
    parts = []
    for side in ("ask", "bid"):
        for level in book.texts(side, 10):
            for text in level:
                found = digits.get(text)
                if found is None:
                    found = digits[text] = text.replace(".", "").lstrip("0")
                parts.append(found)
    return zlib.crc32("".join(parts).encode())


# Each number's checksum form, by its text: the same prices and sizes come back again and
# again, and the form costs more to make than to look up.
_KRAKEN_DIGITS: dict[str, str] = {}
_MAX_DIGITS_CACHED = 100_000
