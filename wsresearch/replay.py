"""Deterministic replay of a recording through the live pipeline's own parts.

:func:`replay` feeds a recording's messages, in ``seq`` order, through the same
:class:`~wsresearch.pipeline.Pipeline` a live :class:`~wsresearch.feed.Feed`
runs, on a :class:`~wsresearch.clock.VirtualClock` set from the recorded
timestamps. Nothing reads the wall clock or draws unseeded randomness, and
nothing depends on machine speed, so two replays of one recording with one spec
give byte-identical frames (DataFrames), the same health transitions and the same counters.

Health is checked at the recorded timeline's check points: every
``spec.check_interval`` seconds from the session's first event, just as the live
monitor's timer did, each check run before the first message received after it.

``mode="complete"`` processes every recorded message. ``mode="faithful"`` skips the
messages the live session discarded (queue overflow, old generation), recorded
as ``drop`` events, so its frames equal the live feed's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import collections
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ._collector import Collector
from ._columnar import Columnar, Decoded, Taken
from ._ports import check_port, listening_url
from ._replay_rest import RecordedRest
from ._warn import held, warn
from .book import Book, Books
from .clock import NS_PER_S, VirtualClock, utc_text
from .errors import NothingKeptWarning, UnknownChannelError
from .health import HealthMonitor, HealthTransition, Log
from .normalize import normalize
from .parser import Reject
from .pipeline import Counts, Pipeline, QuoteSource, Received, normalized_table
from .policy import PEER_GONE_REASONS, ends_session
from .recording import Recording
from .recording.reader import CHUNK_EVENTS, check_chunk_events
from .spec import FeedSpec

__all__ = ["ReplayResult", "ReplayServer", "replay", "replay_in_chunks"]

_T = TypeVar("_T")
_BATCH = 256  # messages per call into the pipeline: short-lived, so the GC has little to walk
_SEQUENCE_STATS = ("exchange_errors", "sequence_gaps", "sequence_missing", "sequence_repeats",
                   "sequence_out_of_order")


@dataclass(frozen=True)
class ReplayResult:
    """What a replay produced.

    Attributes
    ----------
    frames
        One DataFrame per channel, as ``Feed.frame`` gives them.
    health_transitions
        Every health change, on the recorded timeline.
    stats
        Counters: ``frames`` (messages recorded; the format's word), ``replayed``,
        ``skipped`` (faithful drops), ``ok``,
        ``duplicates``, ``control``, ``invalid``, ``rejects`` (by reason),
        ``old_generation`` (messages of a replaced connection), ``generations``,
        ``exchange_errors``, ``sequence_gaps``, ``sequence_missing``,
        ``sequence_repeats``, ``sequence_out_of_order``.
    rejects
        The rejected messages, with raw text and reason.
    gaps
        Every sequence gap found, as ``Feed.gaps`` gives them.
    errors
        The most recent 100 errors as text: exchange error reports (with the
        exchange's own message) and failing extractors or handlers.
    sequence_by_channel
        Per sequenced channel that saw any: ``gap``, ``missing``, ``repeat`` and
        ``out_of_order`` counts.
    counts
        The pipeline's outcome counters (:class:`~wsresearch.pipeline.Counts`), which
        ``stats`` is made from.
    spec
        The spec the recording was replayed with.
    books
        The order books at the end of the replay (:class:`~wsresearch.book.Books`), where
        the spec keeps them; ``books.frame()`` is a row per book with its integrity counts.
    read_in_columns
        How many of the messages were read straight into columns by their channel's
        :class:`~wsresearch.layout.Layout` (the rest went through their model): a
        measure of speed only, since both ways give the same outcome.
    """

    frames: dict[str, pl.DataFrame]
    health_transitions: list[HealthTransition]
    stats: dict[str, Any] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    gaps: pl.DataFrame = field(default_factory=pl.DataFrame)
    errors: list[str] = field(default_factory=list)
    sequence_by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    counts: Counts | None = None
    spec: FeedSpec | None = None
    books: Books | None = None
    read_in_columns: int = 0

    def __repr__(self) -> str:
        """A few lines a notebook cell can show: rows per channel, what was left, books.

        The frames themselves are :attr:`frames` (or :meth:`frame`); the dataclass's own
        repr printed every one of them and the whole spec.
        """
        stats = self.stats
        rows = ", ".join(f"{name} {frame.height:,}" for name, frame in self.frames.items())
        lines = [f"ReplayResult({stats.get('replayed', 0):,} messages replayed over "
                 f"{stats.get('generations', 0)} connection(s)",
                 f"  rows: {rows or 'none'}",
                 f"  duplicates {stats.get('duplicates', 0):,}, rejected "
                 f"{stats.get('invalid', 0):,}, sequence gaps {stats.get('sequence_gaps', 0):,}"
                 f", exchange errors {stats.get('exchange_errors', 0):,}"]
        if self.books is not None:
            books = self.books.books.values()
            lines.append(f"  books: {len(books)} ({sum(book.valid for book in books)} valid "
                         "at the end)")
        return "\n".join(lines) + ")"

    def frame(self, channel: str) -> pl.DataFrame:
        """The rows of ``channel``, as :meth:`Feed.frame <wsresearch.feed.Feed.frame>` gives.

        Raises
        ------
        UnknownChannelError
            If the replay has no such channel.
        """
        found = self.frames.get(channel)
        if found is None:
            raise UnknownChannelError(f"unknown channel {channel!r}; this replay has "
                                      f"{list(self.frames)}")
        return found

    def book(self, symbol: str) -> Book:
        """The order book of ``symbol`` at the end of the replay (see :mod:`wsresearch.book`).

        Raises
        ------
        ValueError
            If the spec keeps no books, or none of ``symbol``.
        """
        if self.books is None:
            raise ValueError("this replay kept no order books: its spec subscribes no book "
                             "channel of an exchange with a book rule")
        found = self.books.books.get(symbol)
        if found is None:
            raise ValueError(f"no book of {symbol!r}; books: {sorted(self.books.books)}")
        return found

    def normalized(self, kind: str, *, source: QuoteSource | None = None) -> pl.DataFrame:
        """The ``kind`` table of market data (``trades``, ``quotes``...) of this replay.

        Built from :attr:`frames` with the spec replayed (see :mod:`wsresearch.normalize`).

        ``source``: for ``quotes``, the books' or the channels', as for
        :meth:`Feed.normalized <wsresearch.feed.Feed.normalized>`.

        Raises
        ------
        ValueError
            As :meth:`Feed.normalized <wsresearch.feed.Feed.normalized>` says, and for a
            ``source`` given to a result made by hand (no spec).
        """
        if self.spec is None:  # a result made by hand: no channel says what it holds
            if source is not None:
                raise ValueError("source= needs the spec this result was replayed with")
            return normalize(kind, self.frames, {}, "")
        return normalized_table(kind, self.spec, self.frames, self.books, source)


def replay(
    recording: Recording | str | os.PathLike[str],
    spec: FeedSpec | None = None,
    mode: Literal["complete", "faithful"] = "complete",
    *,
    progress: Callable[[int, int], None] | None = None,
    chunk_events: int = CHUNK_EVENTS,
    columnar: bool = True,
) -> ReplayResult:
    """Replay ``recording`` through ``spec``'s pipeline; a pure function of both.

    The recording is read ``chunk_events`` events at a time (:meth:`Recording.chunks`):
    the memory a replay needs is its output frames and one chunk, whatever the
    recording's length, and the result is the same for every chunk size.

    Parameters
    ----------
    recording
        A :class:`~wsresearch.recording.Recording` or its directory.
    spec
        The spec that decides how messages become rows (usually the one recorded with).
        ``None``: the recording's own (:attr:`Recording.spec`), for sessions
        recorded with an adapter's spec.
    mode
        ``"complete"``: every message; ``"faithful"``: skip what the live session dropped.
    progress
        Called with ``(events done, events in all)`` every 10,000 events and at the end.
    chunk_events
        Events read and processed at a time: the working set's bound.
    columnar
        Read the messages of channels with a :class:`~wsresearch.layout.Layout` straight
        into columns where that gives the same outcome (see :mod:`wsresearch.layout`).
        ``False`` puts every message through its model: the result is the same, slower;
        for checking.

    Returns
    -------
    ReplayResult

    Raises
    ------
    ValueError
        For an unknown ``mode``, a ``chunk_events`` that is not a positive int, or no
        ``spec`` for a recording that cannot rebuild its own.
    TypeError
        For a ``spec`` that is not a :class:`~wsresearch.spec.FeedSpec`.
    RecordingFormatError
        If ``recording`` is not a readable recording.

    Examples
    --------
    >>> from wsresearch.exchanges import generic
    >>> result = replay("data/sessions/sim-faults", generic.spec(url="ws://127.0.0.1:1"))
    >>> result.stats["generations"], result.stats["duplicates"]
    (6, 5)
    """
    if mode not in ("complete", "faithful"):
        raise ValueError(f"mode must be 'complete' or 'faithful', got {mode!r}")
    check_spec(spec)
    if not isinstance(recording, Recording):
        recording = Recording.open(recording)
    return replay_in_chunks(recording, spec_for(recording, spec), mode, progress,
                            chunk_events, None, columnar=columnar)


def check_spec(spec: object) -> None:
    """Refuse a ``spec`` that is neither a FeedSpec nor ``None``, with a TypeError."""
    if spec is not None and not isinstance(spec, FeedSpec):
        raise TypeError(f"spec must be a FeedSpec (or None: the recording's own), "
                        f"got {type(spec).__name__}")


def spec_for(recording: Recording, spec: FeedSpec | None) -> FeedSpec:
    """``spec``, or else the one ``recording`` rebuilds; an error before any work.

    Raises
    ------
    TypeError
        For a ``spec`` that is not a :class:`~wsresearch.spec.FeedSpec`.
    ValueError
        If there is no ``spec`` and the recording was made with one built by hand.
    """
    check_spec(spec)
    found = spec if spec is not None else recording.spec
    if found is None:
        raise ValueError(
            f"{recording.path} was recorded with a spec built by hand; pass it as spec=")
    return found


@dataclass(frozen=True)
class Kept:
    """What a replay kept and rejected: enough to tell that it kept nothing (:meth:`tell`)."""

    ok: int = 0
    duplicates: int = 0
    invalid: int = 0
    rejects: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, counts: Counts) -> Kept:
        """A pipeline's counts so far."""
        return cls(counts.ok, counts.duplicates, counts.invalid, dict(counts.rejects))

    def since(self, before: Kept) -> Kept:
        """What was counted after ``before`` (the part of a replay after its warm-up)."""
        return Kept(self.ok - before.ok, self.duplicates - before.duplicates,
                    self.invalid - before.invalid,
                    {reason: count - before.rejects.get(reason, 0)
                     for reason, count in self.rejects.items()})

    def __add__(self, other: Kept) -> Kept:
        rejects = dict(self.rejects)
        for reason, count in other.rejects.items():
            rejects[reason] = rejects.get(reason, 0) + count
        return Kept(self.ok + other.ok, self.duplicates + other.duplicates,
                    self.invalid + other.invalid, rejects)

    def tell(self, recording: Recording, spec: FeedSpec) -> None:
        """Warn when every message the spec judged was rejected: the wrong spec, most likely.

        Each reject is counted, but a replay that keeps no row at all is a mistake to be
        told of where it is made (a spec of another exchange, another market), not found
        later in the counts. The recording's own adapter is named where it is not the
        spec's.
        """
        if self.ok or self.duplicates or not self.invalid:
            return
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in
                            sorted(self.rejects.items(), key=lambda item: -item[1])[:3]
                            if count)
        recorded = recording.manifest.spec_origin
        given = spec.origin
        made = ("" if recorded is None or (given is not None
                                           and given.adapter == recorded.adapter)
                else f" (it was recorded with the {recorded.adapter} adapter's)")
        every = (f"all {self.invalid:,} messages were" if self.invalid > 1
                 else "its one message was")
        warn(NothingKeptWarning(
            recording.path, self.invalid,
            f"{recording.path}: {every} rejected ({reasons}) and no row was kept: is the "
            f"{spec.exchange or 'given'} spec the recording's{made}?"))


class _ReplayLog(logging.LoggerAdapter[logging.Logger]):
    """A replay's pipeline's logger: its messages say which recording, and when in it.

    A replayed session's warnings (a stream gone stale, a sequence gap) come with the
    time the log is written, today's; this names the recording and the replayed receive
    time they happened at, so that ``-v`` output reads as the session's.
    """

    def __init__(self, logger: Log, path: os.PathLike[str], clock: VirtualClock) -> None:
        base = logger.logger if isinstance(logger, logging.LoggerAdapter) else logger
        super().__init__(base, {})
        self._where = str(path).replace("%", "%%")
        self._clock = clock

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        at = utc_text(self._clock.time_ns(), 6)
        return f"replay of {self._where}, at {at}: {msg}", kwargs


def replay_in_chunks(
    recording: Recording,
    spec: FeedSpec,
    mode: Literal["complete", "faithful"],
    progress: Callable[[int, int], None] | None,
    chunk_events: int,
    after_chunk: Callable[[Pipeline, pl.DataFrame], object] | None,
    *,
    chunks: Iterable[pl.DataFrame] | None = None,
    before: Callable[[Pipeline], None] | None = None,
    columnar: bool = True,
    garbled: Garbled | None = None,
    tell_kept: bool = True,
) -> ReplayResult:
    """:func:`replay`, calling ``after_chunk(pipeline, events)`` after each chunk of events.

    For consumers that take the rows out as they come, so that what is held stays one
    chunk's worth: the export writes them (:func:`~wsresearch.export.export_parquet`), the
    report keeps their receive times (:class:`~wsresearch.quality.ReportInputs`). Rows
    taken with :meth:`FrameStore.take <wsresearch.frames.FrameStore.take>` are not in the
    result's frames; everything else in it (counts, gaps, health, books) is the replay's.

    Parameters
    ----------
    recording, spec, mode, progress, chunk_events
        As for :func:`replay` (``spec`` is required here).
    after_chunk
        Called after each chunk with the pipeline and the chunk's events (the recording's
        rows, ``seq`` order); ``None``: :func:`replay` itself.
    chunks
        The events to replay, in ``seq`` order (default: the whole recording, in chunks
        of ``chunk_events``): a part of a recording exported in parts.
    before
        Called with the pipeline before the first event (to hand it state).
    columnar
        As for :func:`replay`.
    garbled
        Where to count the messages a damaged segment garbled, which the replay then
        does not warn of (the caller does); ``None``: warned of at the end.
    tell_kept
        Warn at the end if every message was rejected (:meth:`Kept.tell`); ``False``
        where the caller tells of the whole (a part of a split export).

    Raises
    ------
    ValueError
        For a ``chunk_events`` that is not a positive int.
    """
    check_chunk_events(chunk_events)  # before any work
    if chunks is None:
        chunks = recording.chunks(chunk_events)
    skip = recording.dropped() if mode == "faithful" else set()
    clock = VirtualClock(mono_ns=0, wall_ns=0)
    pipeline = Pipeline(spec, clock)
    pipeline.log = _ReplayLog(pipeline.log, recording.path, clock)
    pipeline.health.log = _ReplayLog(pipeline.health.log, recording.path, clock)
    if before is not None:
        before(pipeline)
    counted = Garbled() if garbled is None else garbled
    driver = _Driver(pipeline, clock, round(spec.check_interval * NS_PER_S), skip, progress,
                     recording.event_count, counted, columnar=columnar)
    with Collector() as collector, _read_ahead(chunks, driver.prepare) as prepared:
        for chunk in prepared:
            driver.feed(chunk)
            if after_chunk is not None:
                after_chunk(pipeline, chunk.events)
            collector.between_chunks()
    messages, skipped, generations = driver.finish()
    if garbled is None:
        counted.tell(recording.path)
    counts = pipeline.counts
    if tell_kept:
        Kept.of(counts).tell(recording, spec)
    stats: dict[str, Any] = {
        "frames": messages,
        "replayed": messages - skipped,
        "skipped": skipped,
        "ok": counts.ok,
        "duplicates": counts.duplicates,
        "control": counts.control,
        "invalid": counts.invalid,
        "rejects": counts.rejects,
        "old_generation": counts.old_generation,
        "generations": generations,
    }
    stats.update({name: getattr(counts, name) for name in _SEQUENCE_STATS})
    return ReplayResult(
        frames=pipeline.frames,
        health_transitions=pipeline.transitions,
        stats=stats,
        rejects=pipeline.rejects,
        gaps=pipeline.gaps,
        errors=[f"{type(exc).__name__}: {exc}" for exc in pipeline.errors],
        sequence_by_channel={k: dict(v) for k, v in pipeline.sequences.by_channel.items()},
        counts=counts,
        spec=spec,
        books=pipeline.books,
        read_in_columns=driver.read_in_columns,
    )


_FEW = 16
"""Messages made one row at a time, below which a query of the columns costs more."""


class _Items:
    """A chunk's messages as the pipeline takes them (:data:`Received`), made as needed.

    Only the messages the pipeline takes one by one are made into Python objects: those
    read in columns never are. A payload is its text, or the bytes its base64 text holds.

    A damaged segment can garble a message's data (a lost value, a binary message whose
    text is no longer base64). Such a message is still replayed, as its text's bytes
    (empty when lost), so it gets an outcome like every other message, almost surely
    a reject. One whose binary flag was lost is replayed as its text, as a message
    without the flag is. The ``seq`` of both are kept (:class:`Garbled` tells of them).
    """

    def __init__(self, kept: pl.DataFrame) -> None:
        texts = kept["data"]
        seqs = kept["seq"]
        self.garbled: list[int] = seqs.filter(texts.is_null()).to_list()
        self._texts = texts = texts.fill_null("")
        self._bytes: dict[int, bytes] = {}  # the binary messages' payloads, by position
        flags = kept["binary"]
        self.flags_lost: list[int] = seqs.filter(flags.is_null()).to_list()
        for j in flags.fill_null(False).arg_true().to_list():
            text = texts[j]
            try:
                self._bytes[j] = base64.b64decode(text, validate=True)
            except binascii.Error:
                self._bytes[j] = text.encode()
                self.garbled.append(seqs[j])
        self._columns = kept.select("generation", "mono_ns", "wall_ns", "seq")
        self._made: list[Received | None] = [None] * kept.height

    def __len__(self) -> int:
        return len(self._made)

    def payload(self, position: int) -> str | bytes:
        """The payload of the message at ``position``."""
        found = self._bytes.get(position)
        return found if found is not None else self._texts[position]

    def payloads(self) -> list[str | bytes]:
        """Every message's payload, in order."""
        data: list[str | bytes] = self._texts.to_list()
        for position, found in self._bytes.items():
            data[position] = found
        return data

    def make(self, positions: Sequence[int]) -> None:
        """Make the messages at ``positions`` (ascending) that are not made yet, in one go."""
        made = self._made
        missing = [p for p in positions if made[p] is None]
        if missing:
            self._make(missing)

    def _make(self, missing: list[int]) -> None:
        made = self._made
        if len(missing) <= _FEW:  # a fault's message: a row each, not a query of columns
            columns, text = self._columns, self._texts
            for position in missing:
                found = self._bytes.get(position)
                made[position] = (text[position] if found is None else found,
                                  *columns.row(position))
            return
        whole = len(missing) == len(made)
        rows = self._columns if whole else self._columns[missing]
        texts: list[Any] = (self._texts if whole else self._texts.gather(missing)).to_list()
        for j, position in enumerate(missing):
            found = self._bytes.get(position)
            if found is not None:
                texts[j] = found
        for position, item in zip(missing, zip(texts, *(rows[c].to_list() for c in (
                "generation", "mono_ns", "wall_ns", "seq")), strict=True), strict=True):
            made[position] = item

    def made(self, positions: Sequence[int]) -> list[Received]:
        """The messages at ``positions`` (ascending), made first where they are not yet."""
        made = self._made
        found = [made[p] for p in positions]
        if None in found:  # only where a stale stream's messages go one by one after all
            self.make(positions)
            found = [made[p] for p in positions]
        return found  # type: ignore[return-value]  # all made now


@dataclass
class Garbled:
    """Messages a damaged segment garbled (see :class:`_Items`), told of once per replay.

    A warning a chunk would repeat itself for every chunk of a badly damaged file: one
    of each kind, with the counts of the whole replay, says it once. Only the messages
    from ``seq`` ``since`` on count: a part of a split export replays the events before
    its own for their state alone, and the part before tells of those.
    """

    since: int = 0
    flags_lost: int = 0
    garbled: int = 0

    def add(self, items: _Items) -> None:
        """Count the garbled messages of a chunk's ``items``."""
        since = self.since
        self.flags_lost += sum(1 for seq in items.flags_lost if seq >= since)
        self.garbled += sum(1 for seq in items.garbled if seq >= since)

    def tell(self, source: object) -> None:
        """A warning for each kind counted, naming the recording ``source``."""
        if self.flags_lost:
            warn(f"{source}: {self.flags_lost} message(s) whose binary flag a damaged "
                 "segment lost; replayed as text")
        if self.garbled:
            warn(f"{source}: {self.garbled} message(s) whose recorded data a damaged "
                 "segment garbled; replayed as the bytes left")


@dataclass(frozen=True)
class _Chunk:
    """A chunk of events, and what of it reads no replay state (:meth:`_Driver.prepare`)."""

    events: pl.DataFrame
    frames: int
    """Its messages, those a faithful replay skips included."""
    others: pl.DataFrame
    """The events that are not messages, with their ``index``."""
    messages: pl.DataFrame
    """The replayed messages' columns :meth:`Columnar.take` reads."""
    decoded: dict[str, Decoded] | None
    """:meth:`Columnar.decode` of ``messages`` (``None``: nothing is read in columns)."""
    items: _Items
    """The replayed messages as the pipeline takes them, made as needed."""
    at: list[int]
    """Each replayed message's index among the events."""


class _Step(Generic[_T]):
    """``work()`` in a daemon thread of its own, its result (or what it raised) kept.

    Where no thread can start (the interpreter is shutting down: a replay in an
    ``atexit`` handler), the work runs at once, here. The package's warnings the work
    gives (a damaged segment read) are held, and given where the result is taken, so
    that they name the caller's line, not the thread's.
    """

    def __init__(self, work: Callable[[], _T]) -> None:
        self._work = work
        self._result: _T | None = None
        self._error: BaseException | None = None
        self._warnings: list[Warning] = []
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name="wsresearch-read-ahead", daemon=True)
        try:
            self._thread.start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown"
            self._thread = None
            self._run()

    def _run(self) -> None:
        with held() as self._warnings:
            try:
                self._result = self._work()
            except BaseException as exc:  # handed to result(), in the thread that asks
                self._error = exc

    def wait(self) -> None:
        """Until the work is done."""
        if self._thread is not None:
            self._thread.join()

    def tell(self) -> None:
        """Give the warnings the work gave, here, once it is done (and not again)."""
        self.wait()
        found, self._warnings = self._warnings, []
        for message in found:
            warn(message)

    def result(self) -> _T:
        """What the work gave; what it raised is raised here, after its warnings."""
        self.tell()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._result  # type: ignore[return-value]  # set, as nothing was raised


_AHEAD = 2
"""Chunks read and prepared ahead of the one in use, each in a thread of its own: while
one step is in work that keeps a single core busy (a read, its Python glue), the other's
decode uses the second."""


@contextlib.contextmanager
def _read_ahead(chunks: Iterable[pl.DataFrame],
                prepare: Callable[[pl.DataFrame], _T]) -> Iterator[Iterator[_T]]:
    """``prepare(chunk)`` for each of ``chunks``, the next ones read and prepared meanwhile.

    Reading a chunk and ``prepare`` (native work on the chunk alone that reads no
    state: polars releases the GIL) run in other threads, up to :data:`_AHEAD` chunks
    ahead of the one in use, so the second core reads and decodes while this one feeds
    the pipeline. The chunks are read one after another, in order, as in a loop here,
    only earlier: what either raises is raised here when that chunk is asked for, and
    ``_AHEAD + 1`` chunks are held at most. Leaving, for whatever reason, waits for the
    steps under way, so no thread is left working (one still in polars when the
    interpreter exits could take the process down with it); after Ctrl-C that is at most
    ``_AHEAD`` chunks' read and decode. A second Ctrl-C does not cut the wait short (with
    polars imported, a signal does not wake a thread's join), so a ``chunks`` source that
    blocks holds the replay until it gives its chunk.
    """
    iterator = iter(chunks)
    under_way: collections.deque[_Step[tuple[_T] | None]] = collections.deque()
    read = threading.Event()  # the last step started has read its chunk
    read.set()

    def start() -> None:
        nonlocal read
        before, mine = read, threading.Event()
        read = mine

        def step() -> tuple[_T] | None:
            try:
                before.wait()  # the step before has read its chunk: this one reads the next
                chunk = next(iterator, None)
            finally:
                # The next step reads once the one before has, even where this one stopped
                # waiting: Ctrl-C, where no thread could start and this step runs here.
                while not before.is_set():  # at most the step before's read
                    with contextlib.suppress(KeyboardInterrupt):
                        before.wait()
                mine.set()
            return None if chunk is None else (prepare(chunk),)

        under_way.append(_Step(step))

    def results() -> Iterator[_T]:
        for _ in range(_AHEAD):
            start()
        while (done := under_way.popleft().result()) is not None:
            start()
            yield done[0]

    try:
        yield results()
    finally:
        for waiting in under_way:
            # A chunk read ahead but never taken: what its read found (the damage of a
            # segment whose events were taken, told once the reader read past it) is still
            # the caller's to know.
            waiting.tell()


class _Driver:
    """Puts a recording's events, chunk by chunk, through ``pipeline`` on ``clock``.

    Messages go through the pipeline in batches, as the live queue hands them over. A
    batch ends before any other event and before each health check point, so every check sees
    exactly the messages received before it: the checks the live timer made every
    ``interval`` from the first event, each run before the first event whose receive time
    reaches it (recorded times can step back a little between events stamped in different
    places, so "reaches" is judged on the running maximum). Processing reads no clock:
    de-dup, health and sequence times are the messages' recorded receive times. They
    are gathered in columns, not one event at a time: a replay's cost is the pipeline's.

    What carries from one chunk to the next (the first times, the running maximum, the
    last check point reached) is all the state there is, so any split of the events into
    chunks gives the same outcomes as one table of them all: batches only end earlier, and
    the pipeline's outcomes do not depend on where batches end.
    """

    def __init__(self, pipeline: Pipeline, clock: VirtualClock, interval: int, skip: set[int],
                 progress: Callable[[int, int], None] | None, total: int,
                 garbled: Garbled, *, columnar: bool = True) -> None:
        self.pipeline, self.clock, self.interval = pipeline, clock, interval
        self.skip = pl.Series(sorted(skip), dtype=pl.Int64).implode()
        self.progress, self.total = progress, total
        self.first_mono: int | None = None
        self.reach = 0  # the running maximum of receive times so far
        self.slot = 0  # the last check point reached
        self.offset = 0  # events handed over before this chunk
        self.next_report = 10_000
        self.messages = self.kept = self.generations = 0
        self.columnar = Columnar(pipeline) if columnar else None
        self.read_in_columns = 0
        self.garbled = garbled  # what a damaged segment garbled, counted

    def prepare(self, events: pl.DataFrame) -> _Chunk:
        """The next chunk of events (in ``seq`` order), with what of it reads no state.

        The messages to replay (:class:`_Items`: payloads made as the pipeline asks for
        them) and, where the replay reads columns, each layout's decoded messages: work on
        the chunk alone, most of it native, which :func:`_read_ahead` does in another
        thread while the chunk before is fed.
        """
        is_frame = pl.col("kind") == "frame"
        indexed = events.with_row_index("index")
        kept = indexed.filter(is_frame & ~pl.col("seq").is_in(self.skip))
        messages = kept.select("generation", "mono_ns", "wall_ns", "seq", "data", "binary")
        decoded = (self.columnar.decode(messages) if self.columnar and messages.height
                   else None)
        return _Chunk(
            events=events, frames=int(events.select(is_frame.sum()).item()),
            others=indexed.filter(~is_frame).select("index", "generation", "mono_ns",
                                                    "wall_ns", "kind", "stream", "data",
                                                    "code", "reason"),
            messages=messages, decoded=decoded,
            items=_Items(kept), at=kept["index"].to_list())

    def feed(self, chunk: _Chunk) -> None:
        """Put the next chunk of events through the pipeline."""
        events = chunk.events
        if events.height == 0:
            return
        clock, interval, pipeline = self.clock, self.interval, self.pipeline
        process, health = pipeline.process, pipeline.health
        if self.first_mono is None:
            self.first_mono = self.reach = events["mono_ns"][0]
            clock.set(self.first_mono, events["wall_ns"][0])
            health.reset()
        first_mono = self.first_mono
        self.messages += chunk.frames
        items, at = chunk.items, chunk.at
        self.kept += len(items)
        self.garbled.add(items)

        # Stops, in event order: the health check points that fall before each event
        # (check k, at first_mono + k * interval, runs before the first event whose
        # receive time reaches it), then each event that is not a message. Only the check
        # points that can change something run (see _run_checks), so a tiny interval
        # over a long recording costs nothing per check point it skips.
        # (position, order, (first and last check point) or event row); the columnar path
        # adds (position, -2, channel) and (position, -1, channels) below
        # An event without a time (in chunks handed to replay_in_chunks) moves no check
        # point: the reach so far stands in for it (the message goes through its model).
        monos = events["mono_ns"].fill_null(self.reach)
        # In arrays, not a polars query: on this thread, that waits for a polars worker the
        # read-ahead keeps busy.
        reach = np.maximum.accumulate(np.maximum(monos.to_numpy(), self.reach))
        high = (reach - first_mono) // interval
        low = np.concatenate(([self.slot], high[:-1]))
        passed = np.flatnonzero(high > low)
        self.reach, self.slot = int(reach[-1]), int(high[-1])
        stops: list[tuple[int, int, Any]] = [
            (position, 0, (low, high)) for position, low, high in zip(
                passed.tolist(), low[passed].tolist(), high[passed].tolist(), strict=True)]
        other_rows = chunk.others.rows()  # index, generation, mono_ns, wall_ns, kind, ...
        stops.extend((row[0], 1, row) for row in other_rows)
        stops.sort(key=_stop_order)
        stops.append((events.height, 2, None))

        # The columnar path takes the chunk's messages up to the first connection that
        # opens in it, then those of each connection from its opening to the next, once
        # the replay is there (what was taken of the one before committed first); a
        # channel kept out by a message (a sibling's), those after it, once the replay has
        # processed it.
        messages, decoded = chunk.messages, chunk.decoded
        # A close that makes the books invalid ends a take as an opening does: what was
        # taken is committed before it, and the books close after every message before it.
        closes_books = pipeline.books is not None

        def cuts(kind: str, reason: str | None) -> bool:
            """Whether an event of this kind (and close reason) ends the takes before it."""
            return kind == "open" or (closes_books and kind == "close"
                                      and not ends_session(reason))

        opens = sorted(row[0] for row in other_rows if cuts(row[4], row[8]))
        # A REST snapshot changes the books among the messages: book channels, whose rows
        # reach the books only as they are committed, are not taken where one comes.
        rests = sorted(row[0] for row in other_rows if row[4] == "rest")
        taken: dict[str, Taken] = {}
        singles = list(range(len(items)))  # the messages taken one by one, ascending
        # The first message of each take to come, ascending: the messages taken one by one
        # are made up to the next (made_to), since a take may leave fewer of them.
        coming = (sorted(bisect.bisect_left(at, o) for o in (*opens, *rests))
                  if self.columnar else [])
        made_to = 0

        def take_from(start: int, position: int, only: set[str] | None = None) -> None:
            """Take what can be from message ``start`` on, the replay being at event ``position``.

            Up to the next connection's opening (or a close that makes the books
            invalid); book channels only where no REST response comes before it, at or
            after event ``position``.
            """
            nonlocal taken, singles
            assert self.columnar is not None  # only a columnar replay takes
            following = bisect.bisect_left(opens, position)
            next_open = opens[following] if following < len(opens) else events.height
            next_rest = bisect.bisect_left(rests, position)
            found, later, until = self.columnar.take(
                messages, items.payload, start=start, end=bisect.bisect_left(at, next_open),
                books=next_rest == len(rests) or rests[next_rest] >= next_open,
                decoded=decoded, only=only)
            for after, names in later.items():  # a stop just after the message
                bisect.insort(stops, (at[after] + 1, -1, names), key=_stop_order)
                bisect.insort(coming, after + 1)
            for name, fault in until.items():  # a stop just before the message
                bisect.insort(stops, (at[fault], -2, name), key=_stop_order)
            if found:
                taken = {**taken, **found}
                singles = _not_taken(len(items), taken)
                self.read_in_columns += sum(len(t.positions) for t in found.values())

        if self.columnar:
            take_from(0, 0)

        done = 0
        progress, offset = self.progress, self.offset
        index = 0
        places = np.asarray(at, dtype=np.int64)
        while index < len(stops):
            if stops[index][1] == 0 and taken:  # check points: those that change nothing go
                index += self._quiet(stops, index, places, done, taken, singles)
            position, order, what = stops[index]
            index += 1
            end = bisect.bisect_left(at, position, lo=done)
            if end > made_to:  # in one go, up to the next take (no interval goes past it)
                next_take = bisect.bisect_right(coming, done)
                upto = coming[next_take] if next_take < len(coming) else len(items)
                items.make(singles[bisect.bisect_left(singles, made_to):
                                   bisect.bisect_left(singles, upto)])
                made_to = upto
            chosen = self._interval(taken, singles, done, end) if taken else range(done, end)
            for start in range(0, len(chosen), _BATCH):
                process(items.made(chosen[start:start + _BATCH]))
            done = end
            while progress is not None and self.next_report <= offset + position:
                progress(self.next_report, max(self.total, self.next_report))
                self.next_report += 10_000
            if order == -2:  # a channel's message that is not ok comes next, one by one
                taken[what].commit()  # its rows before it first, as one by one
            elif order == -1:  # the messages kept some channels out until here
                take_from(end, position, what)
            elif order == 0:  # check points (low, high]
                _run_checks(health, clock, first_mono, interval, *what)
            elif order == 1:  # another event: the clock follows it, never back
                _, generation, mono, wall, kind, url, body, status, reason = what
                now = clock.monotonic_ns()
                clock.set(mono if mono > now else now, wall)
                if cuts(kind, reason):  # an opening, or a close that breaks the books
                    for channel in taken.values():  # all of them due: none is past here
                        channel.commit()
                    taken, singles = {}, list(range(len(items)))
                    if kind == "open":
                        self.generations += 1
                        pipeline.open_generation(generation)
                    else:
                        pipeline.closed(generation, reason or "", mono, wall)
                    if self.columnar:
                        take_from(end, what[0] + 1)
                elif kind == "rest" and status in (None, 200):  # a book snapshot
                    pipeline.rest(url, body or "", mono, wall)
                    if self.columnar:  # the book channels, from the books it left
                        take_from(end, what[0] + 1, set(self.columnar.book_channels))
        for channel in taken.values():
            channel.commit()
        self.offset += events.height

    def _quiet(self, stops: list[tuple[int, int, Any]], index: int,
               places: npt.NDArray[np.int64], done: int, taken: dict[str, Taken],
               singles: list[int]) -> int:
        """How many check-point stops from ``index`` on may be passed over, being quiet.

        A stop is quiet where its check points make no stream stale: every stream that
        can go stale has had a message within its threshold at the stop's last check
        point (a stream stale already stays so, without a message). Such checks change
        nothing but which streams allowed to fall silent are silent, and the next check
        decides that afresh. So the stops passed over run no check, and the first stop
        after them tells health of their messages with its own (the last message of each
        stream, as stop by stop) and runs its checks, with the same outcome. Judged in
        arrays over a run of check-point stops that only taken channels' messages come
        between (each of its own stream, none stale): for a quiet feed, a check point a
        second is most of a replay's Python steps.
        """
        health, first_mono, columnar = self.pipeline.health, self.first_mono, self.columnar
        assert first_mono is not None  # set by the first chunk
        assert columnar is not None  # only a columnar replay takes channels
        streams = {channel.stream for channel in taken.values()}
        if len(streams) < len(taken) or any(columnar.stale(stream) for stream in streams):
            return 0  # one stream's messages told at once; a stale one's taken one by one
        # The run: check-point stops, up to the next message taken one by one (exclusive).
        following = bisect.bisect_left(singles, done)
        bound = int(places[singles[following]]) if following < len(singles) else None
        end = index
        while (end < len(stops) and end - index < _QUIET_RUN and stops[end][1] == 0
               and (bound is None or stops[end][0] <= bound)):
            end += 1
        if end - index < 2:  # the last stop of a run is not passed over: it tells health
            return 0
        run = stops[index:end]
        messages = np.searchsorted(places, [stop[0] for stop in run], side="left")
        latest = np.maximum(self.clock.monotonic_ns(), first_mono + np.array(
            [stop[2][1] for stop in run], dtype=np.int64) * self.interval)
        quiet = np.ones(len(run), dtype=np.bool_)
        by_stream = {channel.stream: channel for channel in taken.values()}
        for stream, (since, threshold) in health.limits().items():
            channel = by_stream.get(stream)
            if channel is None:  # no message of its in the run
                last: Any = since
            else:
                told = np.searchsorted(channel.position_array, messages, side="left")
                last = np.where(told > channel.due,
                                channel.mono_array[np.maximum(told - 1, 0)], since)
            quiet &= latest - last <= threshold
        return int(np.argmin(quiet[:-1])) if not quiet[:-1].all() else len(run) - 1

    def _interval(self, taken: dict[str, Taken], singles: list[int], low: int,
                  high: int) -> list[int]:
        """The messages ``low..high-1`` of an interval between stops the per-message path takes.

        The taken channels' messages in it are left to their commit, and health hears of
        them now, before the stop: each stream's first and last message of the interval,
        as :meth:`Pipeline.process` would tell it (streams not judged included). A channel
        whose stream is stale takes the per-message path for the interval instead, so that
        the stream recovers at the point in the event order it always has (its earlier
        rows are committed first).
        """
        chosen = singles[bisect.bisect_left(singles, low):bisect.bisect_left(singles, high)]
        health = self.pipeline.health
        assert self.columnar is not None  # only a columnar replay takes channels
        stale = self.columnar.stale
        merged = False
        for channel in taken.values():
            positions = channel.positions
            first = bisect.bisect_left(positions, low, lo=channel.due)
            last = bisect.bisect_left(positions, high, lo=first)
            if first == last:
                continue
            if not stale(channel.stream):
                times = channel.recv_mono
                health.record_batch({channel.stream: times[first]},
                                    {channel.stream: times[last - 1]})
                channel.due = last
            else:
                channel.due = first
                channel.commit()
                channel.skip_to(last)
                self.read_in_columns -= last - first
                chosen = chosen + positions[first:last]
                merged = True
        return sorted(chosen) if merged else chosen

    def finish(self) -> tuple[int, int, int]:
        """Report the end; return messages, skipped and generations."""
        if self.progress is not None:
            self.progress(self.offset, self.offset)
        return self.messages, self.messages - self.kept, self.generations


def _stop_order(stop: tuple[int, int, Any]) -> tuple[int, int]:
    """A stop's place: its event position, then its order among the stops there."""
    return stop[0], stop[1]


def _not_taken(count: int, taken: dict[str, Taken]) -> list[int]:
    """The positions among ``count`` messages that no channel has taken, ascending."""
    if not taken:
        return list(range(count))
    out = np.ones(count, dtype=bool)
    for channel in taken.values():
        out[channel.positions] = False
    return np.flatnonzero(out).tolist()


_QUIET_RUN = 4_096
"""Check-point stops judged at once, at most (:meth:`_Driver._quiet`)."""

def _run_checks(
    health: HealthMonitor, clock: VirtualClock, first: int, interval: int, low: int, high: int
) -> None:
    """Run the health checks ``low + 1 .. high`` that can change something, in order.

    With no message between them, a check changes nothing until some stream's silence
    passes its threshold (:meth:`HealthMonitor.due`): the first check runs (a message
    since the last one may end a silence), then only the check points at or after
    each such moment. The transitions are those of running every check, at the same
    times; at most one check per stream runs between two events.
    """
    def check(k: int) -> None:
        clock.set(max(clock.monotonic_ns(), first + k * interval))
        health.check()

    k = low + 1
    check(k)
    while (due := health.due()) is not None:
        k = max(k + 1, -((first - due) // interval))  # the first check point at or after due
        if k > high:
            return
        check(k)


@dataclass(frozen=True)
class _Session:
    generation: int
    waits_for_client: bool
    first_seq: int  # of the connection's events: where its messages are read from
    last_seq: int
    close_code: int | None
    close_reason: str
    server_closed: bool
    close_mono_ns: int | None  # when the close was recorded, to pace it as the messages are
    begun_mono_ns: int  # its first event's time: what a close is paced from without messages


def _sessions(recording: Recording) -> list[_Session]:
    """Each recorded connection, from a few narrow columns: its messages are read when served."""
    seen: dict[int, dict[str, Any]] = {}
    kind, seq = pl.col("kind"), pl.col("seq")
    for part in recording.columns(["generation", "kind", "mono_ns", "code", "reason",
                                   "closed_by"]):
        closes = part.filter(kind == "close")
        found = part.filter(pl.col("generation") > 0).group_by(
            "generation", maintain_order=True).agg(
            seq.min().alias("first"), seq.max().alias("last"),
            seq.filter(kind == "frame").min().alias("frame"),
            seq.filter(kind == "sent").min().alias("sent"),
            pl.col("mono_ns").min().alias("begun"))
        for generation, first, last, frame, sent, begun in found.iter_rows():
            now = seen.setdefault(generation, {"first": first, "last": last, "frame": None,
                                               "sent": None, "close": None, "begun": begun})
            now["first"], now["last"] = min(now["first"], first), max(now["last"], last)
            now["begun"] = min(now["begun"], begun)
            for key, value in (("frame", frame), ("sent", sent)):
                if value is not None and (now[key] is None or value < now[key]):
                    now[key] = value
        for generation, at, code, reason, closed_by, mono in closes.select(
                "generation", "seq", "code", "reason", "closed_by", "mono_ns").iter_rows():
            known = seen.get(generation)
            if known is not None and (known["close"] is None or at < known["close"][0]):
                known["close"] = (at, code, reason, closed_by, mono)
    sessions = []
    for generation, now in seen.items():
        close = now["close"]
        # Closes this side caused are not the server's to reproduce: the end of the
        # session, a resync. The server then just waits. A peer this side dropped for not
        # answering is dropped by the server, which does answer (its pongs, its reads).
        client_side = close is None or (close[3] == "client"
                                        and not (close[2] or "").startswith(PEER_GONE_REASONS))
        sessions.append(_Session(
            generation=int(generation),
            waits_for_client=now["sent"] is not None and (
                now["frame"] is None or now["sent"] < now["frame"]),
            first_seq=now["first"],
            last_seq=now["last"],
            close_code=None if close is None else close[1],
            close_reason=(None if close is None else close[2]) or "",
            server_closed=not client_side,
            close_mono_ns=None if close is None else close[4],
            begun_mono_ns=now["begun"],
        ))
    return sessions


def _messages(recording: Recording, session: _Session) -> Iterator[
        list[tuple[int, str | bytes]]]:
    """The connection's messages, ``(mono_ns, payload)``, a chunk at a time, as recorded."""
    garbled = Garbled()
    try:
        for chunk in recording.chunks(start=session.first_seq):
            if int(chunk["seq"][0]) > session.last_seq:
                return
            frames = chunk.filter((pl.col("generation") == session.generation)
                                  & (pl.col("kind") == "frame"))
            if frames.height:
                items = _Items(frames)
                garbled.add(items)
                yield list(zip(frames["mono_ns"].to_list(), items.payloads(), strict=True))
    finally:
        garbled.tell(recording.path)


class ReplayServer:
    """Serve a recording over a local WebSocket, one recorded connection per client connection.

    The n-th connection a client opens receives generation n's messages, paced as
    recorded (divided by ``speed``; ``None`` sends as fast as the client reads),
    then is closed the way the server closed it, at the close's recorded time (paced
    as the messages are): with the recorded code and reason, or abruptly for 1006.
    Closes the client made (the end of the session, a resync) are left to the client
    again, except where it dropped a peer that had stopped answering (``no pong``,
    ``peer stopped reading``): this server answers, so it drops the connection itself
    when the client did, after the recorded silence. So the whole
    live stack, reconnects and ``on_connected`` hooks included, can run against a
    recording.

    The recorded REST responses (the book snapshots a Binance or OKX feed fetches) are
    served too, on a port of their own (:attr:`rest_url`): each request gets the next
    recorded response to the same request, so a feed made by :meth:`spec` syncs its books
    from the snapshots recorded with the stream and never asks the exchange.

    Parameters
    ----------
    recording
        A :class:`~wsresearch.recording.Recording` or its directory.
    speed
        Time factor: 2.0 plays twice as fast; ``None`` as fast as possible.
    host, port
        Where to listen: loopback and a free port by default.

    Examples
    --------
    >>> from wsresearch import Feed
    >>> from wsresearch.exchanges import generic
    >>> async def main():
    ...     async with ReplayServer("data/sessions/sim-faults", speed=None) as server:
    ...         spec = generic.spec(url=server.url)
    ...         async with Feed(spec) as feed:
    ...             while feed.store.rows("trade") < 100:
    ...                 await asyncio.sleep(0.01)
    ...         return server.generations, feed.frame("trade")["generation"][0]
    >>> asyncio.run(main())
    (6, 1)
    """

    def __init__(
        self,
        recording: Recording | str | os.PathLike[str],
        speed: float | None = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be > 0 (or None for as fast as possible), got {speed}")
        if not isinstance(recording, Recording):
            recording = Recording.open(recording)
        self.recording = recording
        self.speed = speed
        self.host = host
        self.port = check_port(port)
        self._sessions = _sessions(recording)
        self._server: Server | None = None
        self._rest = RecordedRest(recording, host)
        self.connections = 0
        """Client connections accepted so far."""

    @property
    def url(self) -> str:
        """``ws://host:port`` of the running server."""
        return listening_url(
            self._server, self.host,
            "the replay server is not running: use 'async with' or 'await server.start()'",
        )

    @property
    def rest_url(self) -> str:
        """``http://host:port`` of the recorded REST responses (see the class docs)."""
        return self._rest.url

    @property
    def rest_requests(self) -> list[str]:
        """Every REST request received (path and query), in order."""
        return list(self._rest.requests)

    @property
    def rest_responses(self) -> int:
        """Recorded REST responses not served yet (read when the server starts)."""
        return self._rest.left

    @property
    def generations(self) -> int:
        """Recorded connections this server will play."""
        return len(self._sessions)

    def spec(self, spec: FeedSpec | None = None) -> FeedSpec:
        """A spec pointed at this server: its WebSocket and its REST responses.

        ``spec``: the spec to point (default: the recording's own,
        :attr:`Recording.spec <wsresearch.recording.Recording.spec>`).

        Raises
        ------
        RuntimeError
            If the server is not running.
        ValueError
            Where the recording has no spec of its own and none is given.
        """
        return spec_for(self.recording, spec).replace(url=self.url, rest_url=self.rest_url)

    async def start(self) -> None:
        """Listen on ``host:port`` (for notebooks; ``async with`` does the same)."""
        if self._server is None:
            await self._rest.start()
            try:
                self._server = await serve(
                    self._serve, self.host, self.port, ping_interval=None, close_timeout=1,
                    max_size=None, compression=None,
                )
            except BaseException:  # a port taken, say: the REST port is not left open
                await self._rest.stop()
                raise

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        await self._rest.stop()

    async def __aenter__(self) -> ReplayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _serve(self, ws: ServerConnection) -> None:
        index = self.connections
        self.connections += 1
        if index >= len(self._sessions):
            await ws.close(1001, "the recording has ended")
            return
        session = self._sessions[index]
        loop = asyncio.get_running_loop()
        try:
            if session.waits_for_client:
                # A client that does not subscribe still gets the data, after a wait.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ws.recv(), 5)
            start = loop.time()
            first: int | None = None

            async def until(mono: int) -> None:
                """Wait for ``mono``'s time as recorded, from the first message's, paced.

                A connection without messages is paced from its first event (its opening).
                """
                if self.speed is not None:
                    zero = session.begun_mono_ns if first is None else first
                    delay = start + (mono - zero) / NS_PER_S / self.speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)

            reading = _messages(self.recording, session)
            # Read a chunk at a time, off the event loop: a long connection is never held.
            while (batch := await asyncio.to_thread(next, reading, None)) is not None:
                for mono, payload in batch:
                    if first is None:
                        first = mono
                    await until(mono)
                    await ws.send(payload)
            if session.server_closed:
                if session.close_mono_ns is not None:
                    # As recorded: a silence before a peer was dropped, say, is kept.
                    await until(session.close_mono_ns)
                if session.close_code in (None, 1005, 1006, 1015):
                    ws.transport.abort()
                else:
                    await ws.close(session.close_code, session.close_reason)
                return
            await ws.wait_closed()
        except ConnectionClosed:
            return
