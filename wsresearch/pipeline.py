"""Received messages become rows, counts, gaps and health: the feed's core, without I/O.

:class:`Pipeline` is what a live :class:`~wsresearch.feed.Feed` and an offline
:func:`~wsresearch.replay.replay` both run, so a replay is the live session's
logic by construction, not a copy of it. It owns the parts and composes them::

    batch of received messages ──► old generation? ──► MessageParser ──► outcome counts
                                       │ (counted,         │ decode, route,      rejects
                                       │  never parsed)    │ validate, de-dup
                                       ▼                   ▼
                                    Dropped     exchange time, SequenceTracker ──► GapFound
                                                           │
                                         FrameStore ◄──────┴──► HealthMonitor ──► HealthChanged

It takes data and a clock and returns results: no event loop, socket or file. The
wiring around it (the feed's socket, queue, health timer and recorder; a replay's
recorded timeline) decides *when* to call :meth:`~Pipeline.open_generation`,
:meth:`~Pipeline.process` and :meth:`~Pipeline.check_health`. What happens is told
on one stream of :mod:`~wsresearch.events`, which the recorder, the feed's
connection timeline and user listeners subscribe to (:meth:`~Pipeline.on_event`).

A batch is a sequence of :data:`Received` tuples, in the order received: the
unit the feed's queue hands over (up to a few hundred messages) and a replay
builds from a recording's columns. Every per-message step runs inline in one loop,
its callables bound once; per-batch steps (storing rows, health bookkeeping) run
once per channel or stream. Later stages that need every accepted row (order books,
normalized tables) plug in per batch, not per message.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from operator import attrgetter, itemgetter
from typing import Any

import polars as pl

from ._callbacks import notify, register
from ._limits import INT64_MAX, INT64_MIN
from .book import Book, Books
from .clock import Clock, SystemClock
from .errors import ExchangeError, RecordingError, WebSocketError
from .events import BookChanged, Dropped, ErrorRaised, Event, GapFound, HealthChanged
from .exactness import inexact_numbers, may_be_inexact, may_be_inexact_batch
from .frames import ColumnCheck, FrameStore, polars_schema
from .health import HealthMonitor, HealthTransition, Log
from .normalize import KINDS, normalize
from .parser import (
    CONTROL,
    DUPLICATE,
    EXCHANGE_ERROR,
    OK,
    REJECT_REASONS,
    Grouped,
    MessageParser,
    ParseOutcome,
    Reject,
)
from .policy import ends_session
from .sequence import GAP, OUT_OF_ORDER, REPEAT, Seq, SequenceGap, SequenceTracker
from .spec import CONNECTION_GROUP, QUOTE_SOURCES, Channel, FeedSpec, QuoteSource

__all__ = ["QUOTE_SOURCES", "Counts", "Pipeline", "QuoteSource", "Received", "normalized_books",
           "normalized_table", "quote_source"]

log = logging.getLogger(__name__)
_first = itemgetter(0)
_mono = itemgetter(2)
_wall = itemgetter(3)
_seq = itemgetter(4)
_fields = attrgetter("__dict__")

Received = tuple[str | bytes, int, int, int, int]
"""One received message: ``(data, generation, recv_mono_ns, recv_wall_ns, seq)``.

``data`` is the message as it came off the socket (text or bytes), ``generation``
the connection it arrived on, the two times when it left the socket (before any
queue), and ``seq`` its number in the recording (``-1`` when not recording)."""

# A sequenced channel's extractor, key extractor, group, and the channel itself.
_Sequenced = tuple[
    Callable[[Any], "int | Seq | None"], Callable[[Any], Hashable] | None, str, Channel
]


@dataclass(frozen=True)
class Counts:
    """Every outcome counter of a pipeline.

    The one source of the feed's stats, a replay's stats and the quality report.

    Attributes
    ----------
    processed
        Messages that went through the parser (old-generation ones excluded).
    ok
        Valid, new messages stored as rows.
    duplicates
        Valid messages dropped by de-dup.
    control
        Protocol chatter (acks, pongs, heartbeats).
    invalid
        Rejected messages, all reasons.
    rejects
        Rejected messages by reason.
    old_generation
        Messages of a replaced connection, discarded unparsed.
    exchange_errors
        Error reports the exchange sent.
    handler_errors
        Exceptions raised by extractors, checks and listeners (not connection or
        recording reports, not the exchange's error reports).
    sequence_gaps, sequence_missing, sequence_repeats, sequence_out_of_order
        Sequence outcomes (see :mod:`wsresearch.sequence`).
    inexact
        Valid messages holding a decimal number that their float columns keep only
        approximately (more than 15 significant digits, see
        :mod:`wsresearch.exactness`): stored with the nearest float, and counted so the
        loss is never silent.
    """

    processed: int
    ok: int
    duplicates: int
    control: int
    invalid: int
    rejects: dict[str, int]
    old_generation: int
    exchange_errors: int
    handler_errors: int
    sequence_gaps: int
    sequence_missing: int
    sequence_repeats: int
    sequence_out_of_order: int
    inexact: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict."""
        return asdict(self)


class Pipeline:
    r"""One feed's processing, sans I/O.

    Batches of received messages in; frames, counts, gaps, health and events out.

    Parameters
    ----------
    spec
        How messages become rows: channels, routing, de-dup, sequences, health.
    clock
        Time source for de-dup ages and health checks (a
        :class:`~wsresearch.clock.VirtualClock` in replays and tests).
    max_rows
        Rows kept in memory per channel: ``None`` every row, ``n`` the newest ``n``,
        ``0`` none (counters, health and events are the same either way).

    Attributes
    ----------
    spec
        The spec it was built from.
    parser
        Decodes, routes, validates and de-duplicates (:class:`~wsresearch.parser.MessageParser`).
    sequences
        Sequence expectations and counts (:class:`~wsresearch.sequence.SequenceTracker`).
    health
        Per-stream staleness (:class:`~wsresearch.health.HealthMonitor`); its timer is
        the wiring's business, :meth:`check_health` runs one check.
    store
        The rows, one polars frame per channel (:class:`~wsresearch.frames.FrameStore`).
    errors
        The most recent 100 errors of every stage.

    Examples
    --------
    >>> from wsresearch import VirtualClock
    >>> from wsresearch.exchanges import generic
    >>> pipeline = Pipeline(generic.spec(url="ws://127.0.0.1:1"), VirtualClock())
    >>> pipeline.open_generation(1)
    >>> trade = ('{"type": "trade", "symbol": "BTC-USD", "seq": 1, "trade_id": 7, '
    ...          '"price": 1.5, "size": 2.0, "side": "buy", "ts": 1}')
    >>> pipeline.process([(trade, 1, 10, 20, -1), (trade, 1, 11, 21, -1), ("{", 1, 12, 22, -1)])
    >>> c = pipeline.counts
    >>> c.ok, c.duplicates, c.invalid
    (1, 1, 1)
    >>> pipeline.frame("trade")["trade_id"].to_list()
    [7]
    """

    def __init__(
        self, spec: FeedSpec, clock: Clock | None = None, *, max_rows: int | None = None
    ) -> None:
        if not isinstance(spec, FeedSpec):
            raise TypeError(f"Pipeline needs a FeedSpec, got {type(spec).__name__}")
        self.spec = spec
        self.clock: Clock = clock or SystemClock()
        self.parser = MessageParser.from_spec(spec, self.clock)
        self.sequences = SequenceTracker()
        self.health = HealthMonitor(
            spec.health,
            on_unhealthy=self._on_unhealthy,
            on_recovered=self._on_recovered,
            check_interval=spec.check_interval,
            clock=self.clock,
            on_error=self.report,
        )
        self.store = FrameStore(
            {channel.name: channel.model for channel in spec.channels},
            explode={c.name: c.explode for c in spec.channels if c.explode is not None},
            max_rows=max_rows,
        )
        self.errors: deque[BaseException] = deque(maxlen=100)
        self.log: Log = log
        """Where its warnings go (a replay's say where in the recording they are from)."""
        # Per channel, everything the hot path needs after parsing, in one lookup:
        # its health stream, its exchange-time extractor, its sequence check.
        self._per_channel: dict[str, tuple[str, Callable[[Any], int | None] | None,
                                           _Sequenced | None]] = {
            c.name: (c.stream_name, c.exchange_time,
                     None if c.sequence is None else (
                         c.sequence, c.sequence_key, c.sequence_group_name, c))
            for c in spec.channels
        }
        # Per channel whose columns can be out of range (ints, decimals): the check
        # that turns a value they cannot hold into a counted reject, not a null.
        self._column_checks = {
            c.name: check for c in spec.channels
            if (check := ColumnCheck(polars_schema(c.model)))}
        self._listeners: list[Callable[..., object]] = []
        self._generation = 0
        self._old_generation = 0
        self._handler_errors = 0
        self._inexact = 0
        self._inexact_channels: set[str] = set()  # warned about once each
        sync = spec.book_sync
        self.books: Books | None = None if sync is None else Books(
            sync, self._book_changed, spec.snapshot_interval, spec.snapshot_depth)
        self._book_channels: frozenset[str] = frozenset() if sync is None else frozenset(
            sync.channels)
        # Bound once: these run for every batch.
        self._parse_grouped = self.parser._parse_grouped
        self._observe = self.sequences.observe
        self._extend = self.store.extend
        self._record_batch = self.health.record_batch

    # -- events ------------------------------------------------------------------------

    def on_event(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``fn(event)`` for every session event; returns an unsubscriber.

        A listener that raises is reported as an :class:`~wsresearch.events.ErrorRaised`
        (counted in ``handler_errors``); one that raises on an error event is only
        counted and logged, so a failing error listener cannot loop.
        """
        return register(self._listeners, fn)

    def emit(self, event: Event) -> None:
        """Tell every listener about ``event`` (the wiring emits connection events here)."""
        if isinstance(event, ErrorRaised):
            notify(self._listeners, event, on_error=self._error_listener_failed)
        else:
            notify(self._listeners, event, on_error=self.report)

    def report(self, exc: BaseException) -> None:
        """Record an error of any stage: kept in :attr:`errors`, counted, and emitted.

        Connection reports (:class:`~wsresearch.errors.WebSocketError`), recording
        write failures (:class:`~wsresearch.errors.RecordingError`) and the exchange's
        error reports (:class:`~wsresearch.errors.ExchangeError`) are not handler errors.
        """
        self._handler_errors += not isinstance(
            exc, WebSocketError | RecordingError | ExchangeError)
        self.errors.append(exc)
        self.emit(ErrorRaised(self._generation, exc))

    def _error_listener_failed(self, exc: BaseException) -> None:
        self._handler_errors += 1
        self.log.error("a listener of error events raised %s: %s", type(exc).__name__, exc)

    # -- driving -----------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """The current connection generation: messages of any other are old."""
        return self._generation

    def open_generation(self, generation: int) -> None:
        """A new connection opened: from now on, messages of earlier ones are old.

        Messages received on a replaced connection but processed after this are
        counted (``old_generation``) and never parsed: a fresh snapshot follows every
        reconnect, and applying old deltas after it would corrupt state.
        """
        previous, self._generation = self._generation, generation
        if self.books is not None:
            self.books.generation = generation
            if previous:  # a reconnect: what was missed while away is not in the books
                self.books.reset(self.clock.monotonic_ns(), self.clock.time_ns())

    def closed(self, generation: int, reason: str, mono_ns: int, wall_ns: int) -> None:
        """Connection ``generation`` closed (``reason``): its order books are invalid.

        From here to the next connection's snapshots they show the market as it was at
        the close (:meth:`~wsresearch.book.Books.closed`). The close that ends the session
        (:func:`~wsresearch.policy.ends_session`) leaves them as they are, as does the
        close of a connection already replaced. The live feed calls it in receive order,
        after the messages received before the close; a replay, at the recorded close.
        """
        if (self.books is None or generation != self._generation
                or ends_session(reason)):
            return
        self.books.closed(mono_ns, wall_ns)

    def check_health(self) -> None:
        """Judge every stream once, now on the pipeline's clock (emits :class:`HealthChanged`)."""
        self.health.check()

    def process(self, batch: Sequence[Received]) -> None:
        """Turn a batch of received messages, in order, into rows, counts, gaps and health.

        Nothing a peer sends raises: every message gets one outcome (ok, duplicate,
        control, exchange error, or a reject with its reason), and an extractor that
        raises is reported and costs only its own value.
        """
        current = self._generation
        fresh = [item for item in batch if item[1] == current]
        if len(fresh) != len(batch):
            self._drop_old_generation([item for item in batch if item[1] != current])
        texts = [item[0] for item in fresh]
        grouped = self._parse_grouped(texts, [item[2] for item in fresh])
        # One scan of the whole batch first: most batches hold no long number at all.
        check_exactness = may_be_inexact_batch(texts)
        if (check_exactness or grouped.errors
                or (grouped.controls and self.spec.control_sequence is not None)
                or not self._take_grouped(fresh, grouped)):
            self._take_each(fresh, grouped.outcomes, check_exactness)

    def _take_grouped(self, fresh: list[Received], grouped: Grouped) -> bool:
        """Take a parsed batch a channel at a time, if nothing in it needs the message order.

        The common batch: valid messages of channels without a book, their exchange
        times ints that fit 64 bits, each sequence key's numbers running on from where it stopped
        (or starting it). Each channel's extractors then run as one ``map`` over its
        messages, its rows are made in one ``zip``, its numbers are judged as runs
        (:meth:`SequenceTracker.observe_runs`), and the health streams get their first
        and last times: what :meth:`_take_each` does message by message, with the same
        rows, counts and state, and no event to order. Anything else (a gap, an
        extractor that raises or gives ``None``, a shared sequence group, a book
        channel) is found before anything changes, and returns ``False``: the batch is
        then taken message by message, which reports it in its place.
        """
        outcomes, valid, irregular = grouped.outcomes, grouped.valid, grouped.irregular
        per_channel, generation = self._per_channel, self._generation
        if not self._book_channels.isdisjoint(valid):
            return False
        taken = []
        groups: set[str] = set()
        for channel, positions in valid.items():
            seen, oks = positions, positions
            if irregular:  # duplicates count for health, not as rows; failed keys for neither
                seen = [i for i in positions if outcomes[i][2] is not None]
                oks = [i for i in seen if outcomes[i][0] == OK]
            stream, exchange_time, sequenced = per_channel[channel]
            messages = [outcomes[i][2] for i in oks]
            try:
                times = None if exchange_time is None else list(map(exchange_time, messages))
                if times is not None and not _fits_int64(times):
                    return False
                runs = group = None
                if sequenced is not None and messages:
                    group = sequenced[2]
                    if group in groups:  # two channels' numbers interleave: in turn
                        return False
                    groups.add(group)
                    runs = self._runs(sequenced, messages, generation)
                    if runs is None:
                        return False
            except Exception:  # reported in its place, message by message
                return False
            taken.append((channel, stream, seen, oks, messages, times, group, runs))
        extend, checks = self.store.extend_columns, self._column_checks
        if irregular:  # rows are added in the order of each channel's first ok message
            taken.sort(key=lambda plan: plan[3][0] if plan[3] else len(outcomes))
        for channel, _, _, oks, messages, times, group, runs in taken:
            if runs:
                assert group is not None  # runs come with their group
                self.sequences.observe_runs(group, runs, generation)
            if not oks:
                continue
            fields = list(map(_fields, messages))
            bad = self._misfits(channel, fields) if channel in checks else None
            if bad:  # the rare path: those rows go, their messages become rejects
                self._refuse(channel, bad, oks.__getitem__, fresh, outcomes)
                keep = [p for p in range(len(oks)) if p not in bad]
                oks, fields = [oks[p] for p in keep], [fields[p] for p in keep]
                times = None if times is None else [times[p] for p in keep]
            items = [fresh[i] for i in oks]
            numbers: list[int] = list(map(_seq, items))
            seqs: list[int] | list[int | None] | None = numbers
            if numbers and min(numbers) < 0:  # not recorded: no number in the row
                seqs = None if max(numbers) < 0 else [None if n < 0 else n for n in numbers]
            extend(channel, fields, generation=generation, recv_mono_ns=list(map(_mono, items)),
                   recv_wall_ns=list(map(_wall, items)), exchange_ns=times, frame_seq=seqs)
        # Each stream's first and last valid message, ok or duplicate: its health.
        spans: dict[str, list[int]] = {}
        for _, stream, seen, *_ in sorted(taken, key=lambda plan: plan[2][0] if plan[2] else -1):
            if seen:
                span = spans.get(stream)
                if span is None:
                    spans[stream] = [seen[0], seen[-1]]
                elif seen[-1] > span[1]:
                    span[1] = seen[-1]
        if spans:
            self._record_batch({stream: fresh[start][2] for stream, (start, _) in spans.items()},
                               {stream: fresh[end][2] for stream, (_, end) in spans.items()})
        return True

    def _runs(self, sequenced: _Sequenced, messages: list[Any], generation: int
              ) -> dict[Hashable, tuple[int, int]] | None:
        """Each sequence key's numbers in ``messages`` as one run, if each runs on unbroken.

        ``None`` where :meth:`SequenceTracker.observe` would find anything but the next
        number (or a key's first): a gap, a repeat, a :class:`Seq`, no number.
        """
        sequence, sequence_key, group, _ = sequenced
        values: list[Any] = list(map(sequence, messages))
        if set(map(type, values)) != {int}:
            return None
        if sequence_key is None:
            by_key: dict[Hashable, list[int]] = {None: values}
        else:
            by_key = {}
            for key, value in zip(map(sequence_key, messages), values, strict=True):
                numbers = by_key.get(key)
                if numbers is None:
                    by_key[key] = [value]
                else:
                    numbers.append(value)
        tracker = self.sequences
        afresh = generation != tracker.generation
        runs: dict[Hashable, tuple[int, int]] = {}
        for key, numbers in by_key.items():
            start = numbers[0]
            end = start + len(numbers) - 1
            if (numbers[-1] != end or start < INT64_MIN or end > INT64_MAX
                    or numbers != list(range(start, end + 1))):
                return None
            if not afresh and tracker.expected(group, key) not in (None, start):
                return None
            runs[key] = (start, end)
        return runs

    def _take_each(self, fresh: list[Received], outcomes: list[ParseOutcome],
                   check_exactness: bool) -> None:
        """Take a parsed batch message by message: every case, each event in its place.

        A stale stream's recovery too: at its first message, as if the batch were taken
        one message at a time (health hears of the rest at the batch's end).
        """
        per_channel, observe = self._per_channel, self._observe
        control_sequence = self.spec.control_sequence
        book_channels = self._book_channels
        # A stale stream recovers at its first message, after that message's own events and
        # before the next one's: where one message at a time puts it, however it is batched.
        recovering = not self.health.is_healthy()
        record_message = self.health.record_message
        rows: dict[str, list[Any]] = {}
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        for (data, generation, mono, wall, seq), (status, channel, message) in zip(
            fresh, outcomes, strict=True
        ):
            if message is None or channel is None:
                continue
            if status == EXCHANGE_ERROR:
                self._exchange_error(channel, message, data)
                continue
            if status == CONTROL:
                if control_sequence is not None:
                    self._control_sequence(channel, message, generation, mono, wall, seq)
                continue
            stream, exchange_time, sequenced = per_channel[channel]
            if status == OK:
                exchange_ns = None
                if exchange_time is not None:
                    try:
                        exchange_ns = exchange_time(message)
                        if exchange_ns is not None and not (
                                INT64_MIN <= exchange_ns <= INT64_MAX):
                            raise ValueError(f"{channel}: exchange time {exchange_ns} ns does "
                                             "not fit 64 bits; the row is kept without it")
                    except Exception as exc:  # the row is kept, without its exchange time
                        exchange_ns = None
                        self.report(exc)
                bucket = rows.get(channel)
                if bucket is None:
                    bucket = rows[channel] = []
                bucket.append((message.__dict__, generation, mono, wall, exchange_ns,
                               None if seq < 0 else seq))
                if check_exactness and may_be_inexact(data):
                    self._check_exactness(channel, data, seq)
                if channel in book_channels:
                    self._apply_book(channel, message, mono, wall)
                if sequenced is not None:
                    sequence, sequence_key, group, spec_channel = sequenced
                    try:
                        value = sequence(message)
                        gap = None if value is None else observe(
                            group, channel,
                            None if sequence_key is None else sequence_key(message),
                            value, generation, mono)[1]
                    except Exception as exc:
                        self.report(exc)
                        gap = None
                    if gap is not None:
                        self._gap(gap, spec_channel.name, spec_channel.resync_on_gap, seq,
                                  wall)
            if stream not in last:
                first[stream] = mono
                if recovering:
                    record_message(stream, mono)
            last[stream] = mono
        extend, checks = self._extend, self._column_checks
        for channel, bucket in rows.items():
            if channel in checks:
                bucket = self._refuse_misfits(channel, bucket, fresh, outcomes)
            extend(channel, bucket)
        if last:
            self._record_batch(first, last)

    def _refuse_misfits(self, channel: str, bucket: list[Any], items: Sequence[Received],
                        outcomes: list[ParseOutcome]) -> list[Any]:
        """``bucket`` without the rows whose values their columns cannot hold exactly.

        One pass per column over the batch, in C on the common path (a ``min`` and a
        ``max`` per int column). A row that does not fit becomes a counted
        ``schema_error`` naming the field and value, where it would otherwise be a null
        in the frame. Its message was judged for health and sequence like any other: it
        arrived, and it is valid JSON of its type.
        """
        bad = self._misfits(channel, list(map(_first, bucket)))
        if not bad:
            return bucket
        # The rare path: find each refused row's message (its outcome holds the same dict).
        message_of = {id(outcome[2].__dict__): index for index, outcome in enumerate(outcomes)
                      if outcome[0] == OK and outcome[1] == channel}
        self._refuse(channel, bad, lambda position: message_of[id(bucket[position][0])],
                     items, outcomes)
        return [row for position, row in enumerate(bucket) if position not in bad]

    def _misfits(self, channel: str, fields: list[dict[str, Any]]) -> dict[int, str]:
        """The rows (by position in ``fields``) whose values their columns cannot hold."""
        try:
            return self._column_checks[channel].bad_rows(fields)
        except Exception as exc:  # a check must never cost the batch: keep the rows
            self.report(exc)
            return {}

    def _refuse(self, channel: str, bad: dict[int, str], index_of: Callable[[int], int],
                items: Sequence[Received], outcomes: list[ParseOutcome]) -> None:
        """Turn the ``bad`` rows' messages (``index_of`` a row: its message) into rejects."""
        for position, detail in sorted(bad.items()):  # in the order received
            index = index_of(position)
            outcomes[index] = self.parser.refuse(items[index][0], channel, detail,
                                                 items[index][2])

    def _book_changed(self, book: Book, mono_ns: int) -> None:
        self.emit(BookChanged(self._generation, book.symbol, book.valid, book.reason, mono_ns))

    def _apply_book(self, channel: str, message: Any, mono: int, wall: int) -> None:
        """Hand a book channel's message to the order books; a rule that raises is reported."""
        assert self.books is not None  # only book channels come here
        try:
            self.books.apply(channel, message, mono, wall)
        except Exception as exc:  # the message stays a row; the books say nothing of it
            self.report(exc)

    def rest(self, url: str | None, body: str, mono_ns: int, wall_ns: int) -> None:
        """A REST response taken beside the stream (a book snapshot), in receive order.

        The order books' rule takes it (Binance syncs its books from one); without books
        it is ignored. A response the rule cannot read is reported, never raised.
        """
        if self.books is None:
            return
        try:
            self.books.rest(url, body, mono_ns, wall_ns)
        except Exception as exc:
            self.report(exc)

    def book(self, symbol: str) -> Book:
        """The order book of ``symbol`` (see :mod:`wsresearch.book`).

        Raises
        ------
        ValueError
            If the spec keeps no books (no book channel, or an exchange without a rule),
            or no message of ``symbol`` has reached them.
        """
        if self.books is None:
            raise ValueError(f"this feed keeps no order books: subscribe a book channel of "
                             f"an exchange adapter (channels: {self.spec.channel_names})")
        found = self.books.books.get(symbol)
        if found is None:
            raise ValueError(f"no book of {symbol!r} yet; books: {sorted(self.books.books)}")
        return found

    def _check_exactness(self, channel: str, data: str | bytes, seq: int) -> None:
        """Count a message holding a number its float columns keep only approximately."""
        numbers = inexact_numbers(data)
        if not numbers:
            return
        self._inexact += 1
        if channel not in self._inexact_channels:
            self._inexact_channels.add(channel)
            self.log.warning(
                "%s: %s has more digits than a float64 keeps; the row holds the nearest "
                "float, the recording the exact text (message seq %s; counted in "
                "counts.inexact, warned once per channel)", channel, numbers[0],
                None if seq < 0 else seq)

    def _drop_old_generation(self, items: list[Received]) -> None:
        self._old_generation += len(items)
        if self._listeners:  # so a recording says which ones: a faithful replay skips them
            for item in items:
                self.emit(Dropped(item[1], "old_generation", None if item[4] < 0 else item[4]))

    def _control_sequence(self, type_name: str, decoded: Any, generation: int, mono: int,
                          wall: int, seq: int) -> None:
        """Count a control message's number in the connection's sequence group."""
        assert self.spec.control_sequence is not None  # checked by the caller
        try:
            value = self.spec.control_sequence(decoded)
            if value is None:
                return
            gap = self._observe(CONNECTION_GROUP, type_name, None, value, generation, mono)[1]
        except Exception as exc:  # the message stays counted as control, its number unchecked
            self.report(exc)
            return
        if gap is not None:
            self._gap(gap, type_name, False, seq, wall)

    def _gap(self, gap: SequenceGap, channel: str, resync: bool, seq: int, wall: int) -> None:
        self.log.warning("sequence gap on %s %r: expected %d, got %d (%d missing)",
                         channel, gap.key, gap.expected, gap.first, gap.missing)
        self.emit(GapFound(gap, resync, None if seq < 0 else seq))
        if self.books is not None:
            try:
                self.books.gap(channel, gap.recv_mono_ns, wall)
            except Exception as exc:  # the gap stays counted; the books say nothing of it
                self.report(exc)

    def _exchange_error(self, channel: str, decoded: Any, data: str | bytes) -> None:
        text = data if isinstance(data, str) else repr(data)
        if self.spec.error_text is not None:
            try:
                text = self.spec.error_text(decoded)
            except Exception as exc:  # keep the raw text; say why
                self.report(exc)
        self.log.warning("exchange error (%s): %s", channel, text)
        self.report(ExchangeError(text, channel))

    def _on_unhealthy(self, stream: str, last_ns: int | None) -> None:
        self._health_changed(stream, False)

    def _on_recovered(self, stream: str) -> None:
        self.log.info("stream %r recovered", stream)
        self._health_changed(stream, True)

    def _health_changed(self, stream: str, healthy: bool) -> None:
        transitions = self.health.transitions
        when = transitions[-1].mono_ns if transitions else None
        self.emit(HealthChanged(self._generation, stream, healthy, when))

    # -- results -----------------------------------------------------------------------

    @property
    def counts(self) -> Counts:
        """Every outcome counter, as of now."""
        counts = self.parser.counts
        rejects = {reason: counts[reason] for reason in REJECT_REASONS}
        sequences = self.sequences.counts
        return Counts(
            processed=sum(counts.values()),
            ok=counts[OK],
            duplicates=counts[DUPLICATE],
            control=counts[CONTROL],
            invalid=sum(rejects.values()),
            rejects=rejects,
            old_generation=self._old_generation,
            exchange_errors=counts[EXCHANGE_ERROR],
            handler_errors=self._handler_errors,
            sequence_gaps=sequences[GAP],
            sequence_missing=sequences["missing"],
            sequence_repeats=sequences[REPEAT],
            sequence_out_of_order=sequences[OUT_OF_ORDER],
            inexact=self._inexact,
        )

    def take(self, keep: Collection[str] = ()
             ) -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame]]:
        """The rows made so far by channel (but those of ``keep``), and the books' tables.

        Handed over and let go (:meth:`FrameStore.take`, :meth:`Books.take`): for a consumer
        that writes them or keeps a few columns of them as a long replay goes.
        """
        store = self.store
        frames = {name: store.take(name) for name in store.channels if name not in keep}
        return frames, ({} if self.books is None else self.books.take())

    def frame(self, channel: str) -> pl.DataFrame:
        """The valid, new messages of ``channel`` so far, one row each.

        Columns are the model's fields plus ``recv_wall_ns``, ``recv_mono_ns``,
        ``generation``, ``exchange_ns`` and ``frame_seq`` (see ``docs/pipeline.md``).

        Raises
        ------
        UnknownChannelError
            If the spec has no such channel.
        """
        return self.store.frame(channel)

    @property
    def frames(self) -> dict[str, pl.DataFrame]:
        """Every channel's frame."""
        return self.store.frames()

    def normalized(self, kind: str, *, source: QuoteSource | None = None) -> pl.DataFrame:
        """The ``kind`` table of market data (``trades``, ``quotes``...) so far.

        Built from the native frames when asked (see :mod:`wsresearch.normalize`): the
        same columns on every exchange, the native rows unchanged.

        Parameters
        ----------
        kind
            The table.
        source
            For ``quotes``: where from, as :func:`normalized_table` says.

        Raises
        ------
        ValueError
            As :func:`normalized_table` says.
        """
        return normalized_table(kind, self.spec, self.store.frames(), self.books, source)

    @property
    def gaps(self) -> pl.DataFrame:
        """The most recent sequence gaps, one row each (:data:`~wsresearch.sequence.GAP_SCHEMA`)."""
        return self.sequences.frame()

    @property
    def rejects(self) -> list[Reject]:
        """The most recent rejected messages, with raw text, reason and detail."""
        return list(self.parser.rejects)

    @property
    def transitions(self) -> list[HealthTransition]:
        """Every health change so far (the newest 100,000)."""
        return list(self.health.transitions)

    def __repr__(self) -> str:
        c = self.counts
        return (f"Pipeline(channels={self.spec.channel_names}, generation={self._generation}, "
                f"ok={c.ok}, duplicates={c.duplicates}, invalid={c.invalid})")


def quote_source(spec: FeedSpec | None, source: QuoteSource | None, has_books: bool,
                 name: str = "source") -> QuoteSource:
    """Where a session's ``quotes`` come from.

    ``source`` where given; else the spec's choice (:attr:`FeedSpec.quotes
    <wsresearch.spec.FeedSpec>`), where the session can follow it (a spec copied with
    ``model_copy``, which skips validation, may choose the books and keep none); else the
    channels', where one of the spec's gives quotes, else the order books'.

    Parameters
    ----------
    spec
        The session's spec (``None``: no channel gives quotes).
    source
        The source asked for, or ``None``.
    has_books
        Whether the session keeps order books.
    name
        The argument ``source`` was given as, for the error.

    Raises
    ------
    ValueError
        For a ``source`` other than those of :data:`QUOTE_SOURCES`, or ``"book"``
        without order books.
    """
    if source is None:
        if spec is not None and spec.quotes is not None and (spec.quotes == "channel"
                                                             or has_books):
            return spec.quotes
        return "channel" if spec is not None and any(
            "quotes" in c.normalized for c in spec.channels) else "book"
    if source not in QUOTE_SOURCES:
        raise ValueError(f"{name} must be one of {list(QUOTE_SOURCES)}, not {source!r}")
    if source == "book" and not has_books:
        raise ValueError("no order books to take quotes from: the spec subscribes no book "
                         "channel of an exchange with a book rule")
    return source


def normalized_table(kind: str, spec: FeedSpec, frames: Mapping[str, pl.DataFrame],
                     books: Books | None, source: QuoteSource | None = None) -> pl.DataFrame:
    """The ``kind`` table of a session: from its native frames, and from its order books.

    ``book_snapshots`` come from the books; so do ``quotes`` where ``source`` is
    ``"book"``, or where it is not given and the spec chooses the books
    (:attr:`FeedSpec.quotes <wsresearch.spec.FeedSpec>`, set by the adapters that keep
    a book: a ticker may be pushed far less often than the book changes, OKX's 28 rows
    beside 290 book updates on the shipped capture, and lag it) or no channel of the
    spec gives them. ``source="channel"`` takes them from the channels alone (no rows
    where none gives them).

    Raises
    ------
    ValueError
        For a kind that is not one of :data:`~wsresearch.normalize.KINDS`, a ``source``
        other than those of :data:`QUOTE_SOURCES`, one given for another kind than
        ``quotes``, or ``"book"`` where the spec keeps no books.
    """
    if source is not None and kind in KINDS and kind != "quotes":  # unknown kinds: below
        quote_source(spec, source, has_books=True)  # a bad value is refused first
        raise ValueError(f"source= chooses where quotes come from; {kind!r} has one "
                         "source only")
    if kind == "quotes":
        source = quote_source(spec, source, books is not None)
    by_books = kind == "book_snapshots" or (kind == "quotes" and source == "book")
    if books is not None and by_books:
        table = books.snapshots() if kind == "book_snapshots" else books.quotes()
        return normalized_books(kind, table, spec.exchange_name)
    return spec.normalized(kind, frames)


def normalized_books(kind: str, table: pl.DataFrame, exchange: str) -> pl.DataFrame:
    """The books' ``book_snapshots`` or ``quotes`` (:meth:`Books.take`) as the ``kind`` table."""
    return normalize(kind, {"books": table}, {"books": {kind: _as_is}}, exchange)


def _as_is(native: pl.LazyFrame) -> pl.LazyFrame:
    """The books' tables are made in the normalized columns already."""
    return native


def _fits_int64(times: list[Any]) -> bool:
    """Whether every exchange time given (``None``: none) is an int that fits 64 bits.

    Anything else (a float, which may be NaN and compare false either way) is left to
    the message-by-message path, which judges each value.
    """
    given = [t for t in times if t is not None] if None in times else times
    return not given or (set(map(type, given)) == {int}
                         and min(given) >= INT64_MIN and max(given) <= INT64_MAX)
