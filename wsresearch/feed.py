"""A live feed: the socket, the queue, the pipeline, the health timer and the recorder, wired.

:class:`Feed` is composition only. The work of turning received messages into rows,
counts, gaps and health is the sans-I/O :class:`~wsresearch.pipeline.Pipeline`
(which a replay runs too); the feed connects it to the world::

    WebSocketManager ──(runs, generation)──► stamp recv times ──► Recorder (every message)
                                                    │
                                                    ▼
                                              MessageQueue ──(batches)──► Pipeline
                                          overflow, BLOCK pauses reading      │
                                                                              ▼
    Recorder, connection timeline, listeners ◄──────── session events (wsresearch.events)

Receive times are taken when a message leaves the socket, before the queue, so
queueing delay never shows up as exchange latency, and the recorder writes the
message right there, before the queue can drop it. The messages one read of the
socket brought come as one run (:meth:`WebSocketManager.on_messages`), so they share
one receive time, the time of that read; a run takes no more than the queue has room
for, so a queue of 64 messages or more drops nothing only because a burst came in one
read. The health timer runs :meth:`Pipeline.check_health` every ``check_interval``.

Everything runs on the event loop that calls :meth:`Feed.start`, the notebook
kernel's included: ``start()`` returns once connected and the feed keeps
running in background tasks until :meth:`Feed.stop`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Any

import polars as pl

from ._catalog import RECORDED_SEGMENT_EVENTS
from ._collector import paused
from .backoff import backoff_delay
from .book import BOOK_COLUMNS, DISCONNECTED, NEW_CONNECTION, Book
from .clock import NS_PER_S, Clock, SystemClock
from .connection import CloseInfo, ConnectionState, WebSocketManager
from .errors import QueueClosedError, RecordingError, WebSocketError
from .events import (
    BookChanged,
    Closed,
    Dropped,
    ErrorRaised,
    Event,
    GapFound,
    HealthChanged,
    Mark,
    Opened,
    Pong,
    RestReceived,
    Sent,
    Stopped,
    record_fields,
)
from .frames import FrameStore
from .health import HealthMonitor
from .parser import MessageParser, Reject
from .pipeline import Pipeline, QuoteSource, Received
from .queue import MessageQueue, OverflowPolicy
from .recording import Recorder
from .recording.format import TIMELINE_SCHEMA
from .redaction import auth_secret_values, redact_request_url, redact_url, secret_values
from .sequence import SequenceGap, SequenceTracker
from .snapshots import SnapshotFetcher
from .spec import FeedSpec, OutboundMessage

if TYPE_CHECKING:
    from .widgets import Dashboard

__all__ = ["Feed", "FeedStats"]

log = logging.getLogger(__name__)

_MESSAGE_TOO_BIG = 1009
_MAX_TIMELINE = 100_000  # opens, closes and stops kept for ``connections``


@dataclass(frozen=True, slots=True)
class _RestResponse:
    """A REST response on its way through the queue, to be applied in receive order."""

    url: str
    status: int
    body: str


@dataclass(frozen=True, slots=True)
class _Closed:
    """A connection's close on its way through the queue: after the messages before it."""

    reason: str


_MARKS = (_RestResponse, _Closed)
"""What the feed queues beside messages, to reach the books in receive order."""


@dataclass(frozen=True)
class FeedStats:
    """A snapshot of every stage's counters.

    Attributes
    ----------
    state
        Connection state name.
    generation
        Current connection generation.
    reconnects
        Successful opens after the first.
    received
        Frames read from the socket.
    processed
        Frames that went through the parser (old-generation ones excluded).
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
    dropped
        Frames discarded by the queue's overflow policy.
    old_generation
        Frames of a replaced connection, still queued when the new one opened:
        discarded unparsed (a fresh snapshot follows every reconnect). Not to be
        confused with a *stale stream*, one silent beyond its threshold.
    queue_size
        Frames waiting now, with the feed's own marks among them (a REST response, a
        close), which may take it past ``queue_max`` while they wait.
    queue_max
        Queue capacity.
    handler_errors
        Exceptions raised by the pipeline's or the user's handlers.
    pongs
        Pongs received.
    last_rtt
        Round-trip time of the last pong, in seconds.
    last_close
        The last close (code, reason, category), if any.
    recorded
        Events recorded (0 when not recording).
    recording_errors
        Recording writes that failed. The live feed went on, and the events were held
        and retried with the next write (see ``Recorder(max_backlog=)``).
    recording_held
        Events the recorder holds in memory, not yet on disk: at most a flush
        interval's worth normally, growing while writes fail.
    exchange_errors
        Error reports the exchange sent (see ``FeedSpec.error_types``).
    sequence_gaps
        Sequence gaps found (see :mod:`wsresearch.sequence`).
    sequence_missing
        Sequence numbers those gaps skipped.
    sequence_repeats
        Messages whose numbers had already been seen.
    sequence_out_of_order
        Messages that arrived late, inside a gap found earlier.
    inexact
        Valid messages holding a decimal number their float columns keep only
        approximately (see :mod:`wsresearch.exactness`).
    oversized
        Connections closed with 1009 (message too big), by either side: a message
        over ``ConnectionConfig.max_message_size``, or a compressed one that would
        inflate past it, fails the connection before it is held in memory.
    snapshot_failures
        REST book snapshot requests that failed (an error, a status other than 200);
        each is retried after a backoff (:mod:`wsresearch.snapshots`).
    last_snapshot_failure
        The last of them, for people: what went wrong, the symbol and the URL (secrets
        masked). A book that never turns valid often has its reason here.
    """

    state: str
    generation: int
    reconnects: int
    received: int
    processed: int
    ok: int
    duplicates: int
    control: int
    invalid: int
    rejects: dict[str, int]
    dropped: int
    old_generation: int
    queue_size: int
    queue_max: int
    handler_errors: int
    pongs: int
    last_rtt: float | None
    last_close: CloseInfo | None = field(default=None)
    recorded: int = 0
    recording_errors: int = 0
    recording_held: int = 0
    exchange_errors: int = 0
    sequence_gaps: int = 0
    sequence_missing: int = 0
    sequence_repeats: int = 0
    sequence_out_of_order: int = 0
    inexact: int = 0
    oversized: int = 0
    snapshot_failures: int = 0
    last_snapshot_failure: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict."""
        return asdict(self)

    @property
    def stale(self) -> int:
        """Deprecated name of :attr:`old_generation`."""
        warnings.warn("FeedStats.stale is now FeedStats.old_generation (messages of a replaced "
                      "connection; a stale stream is another thing)", DeprecationWarning,
                      stacklevel=2)
        return self.old_generation


class Feed:
    """A live feed: connect, validate, de-duplicate, track health, keep rows as DataFrames.

    Parameters
    ----------
    spec
        What to connect to and how to turn messages into rows.
    record_to
        A new directory to record the session into (see :mod:`wsresearch.recording`):
        every message as received, before the queue, and every other event.
    clock
        Time source (a :class:`~wsresearch.clock.VirtualClock` in tests).
    rng
        Backoff jitter source; seed it for a reproducible reconnect schedule.
    flush_interval
        Seconds between recording writes (what a crash can lose at most).
    segment_events
        Events a recording's segment file grows to, flush by flush (``1``: a file a
        flush); see :class:`~wsresearch.recording.Recorder`.
    max_rows
        Rows kept in memory per channel: ``None`` keeps every row (a session in a
        notebook); ``n`` keeps the newest ``n`` (a ring, for a feed that runs for
        days); ``0`` keeps none, for a recorder whose rows live on disk only
        (``wsresearch record``). Counters, health and the recording are the same
        either way; ``feed.store.added(channel)`` counts every row. A row costs
        about 80-140 bytes in memory (``docs/pipeline.md``).

    Notes
    -----
    The queue's messages are taken in batches with Python's cyclic garbage collector
    paused: a batch's objects die with it, and the collector runs after it, on what it
    kept (``docs/pipeline.md``). Handlers run inside the batch, so cycles they make wait
    for its end, a few milliseconds. A collector turned off before the feed starts stays
    off; one a handler turns off is turned back on at the batch's end.

    Examples
    --------
    >>> from wsresearch import Simulator
    >>> async def main():
    ...     async with Simulator(rates={"trade": 200.0, "ticker": 10.0, "order": 0.1}) as sim:
    ...         async with Feed(sim.spec()) as feed:
    ...             while feed.store.rows("trade") < 5:
    ...                 await asyncio.sleep(0.01)
    ...     return feed.frame("trade").columns[-5:]
    >>> asyncio.run(main())
    ['recv_wall_ns', 'recv_mono_ns', 'generation', 'exchange_ns', 'frame_seq']
    """

    def __init__(
        self,
        spec: FeedSpec,
        record_to: str | os.PathLike[str] | None = None,
        clock: Clock | None = None,
        *,
        rng: random.Random | None = None,
        flush_interval: float = 1.0,
        segment_events: int = RECORDED_SEGMENT_EVENTS,
        max_rows: int | None = None,
    ) -> None:
        if not isinstance(spec, FeedSpec):
            raise TypeError(f"Feed needs a FeedSpec, got {type(spec).__name__}")
        self.spec = spec
        self._clock = clock or SystemClock()
        self.pipeline = Pipeline(spec, self._clock, max_rows=max_rows)
        """The processing: rows, counts, gaps, health (:class:`~wsresearch.pipeline.Pipeline`)."""
        self.manager = WebSocketManager(spec.url, spec.connection, self._clock, rng=rng)
        """The connection (:class:`~wsresearch.connection.WebSocketManager`)."""
        self.errors: deque[BaseException] = self.pipeline.errors
        """The most recent errors from every stage (handlers, opens, the halting one)."""
        self.recorder: Recorder | None = None
        """The session's recorder, when ``record_to`` was given."""
        if record_to is not None:
            self.recorder = Recorder(
                record_to,
                source_url=spec.url,
                description=spec.description,
                channels=spec.channel_names,
                redact=spec.redact,
                origin=spec.origin,
                flush_interval=flush_interval,
                segment_events=segment_events,
                clock=self._clock,
                on_error=self.pipeline.report,
            )
        # Books that start from a REST snapshot: fetched on demand, applied in receive
        # order (a response goes through the queue, between the messages around it).
        self._fetcher: SnapshotFetcher | None = None
        self._marks_queued = 0  # REST responses and closes in the queue
        self._marks_dropped = 0  # of them, dropped by the queue as its oldest (and applied)
        # The last close while its marker waits in the queue: a new connection that opens
        # first applies it (the messages before it are old by then, never applied).
        self._closing: tuple[int, str, int, int] | None = None
        self._rng = rng or random.Random()
        self._resyncs: dict[str, int] = {}  # symbol: resubscriptions since it was last valid
        self._resyncing: dict[str, asyncio.Task[None]] = {}
        if spec.book_sync is not None:
            reconnect = spec.connection.reconnect
            self._fetcher = SnapshotFetcher(
                self._on_rest_response, timeout=spec.connection.open_timeout,
                backoff=reconnect.backoff, rate_limit_backoff=reconnect.rate_limit_backoff,
                rng=rng)
        self.queue = self._new_queue()
        self._dropped_before = 0  # drops counted by queues of earlier runs
        # Bound once: these run for every message.
        self._mono_ns = self._clock.monotonic_ns
        self._wall_ns = self._clock.time_ns
        self._pongs = 0
        self._last_rtt: float | None = None
        self._warned_auth = False
        self._started = False
        self._starting: asyncio.Future[None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started_ns: int | None = None
        self.stopped_while: ConnectionState | None = None
        """The connection's state when the feed was last stopped: ``CONNECTED`` when the
        session ended on a live connection, ``RECONNECTING`` when it ended between
        connections (rate-limited, say). ``None`` before the first stop."""
        self._connected_ns: int | None = None
        # Every open, close and stop: the rows of ``connections``.
        self._timeline: deque[tuple[Any, ...]] = deque(maxlen=_MAX_TIMELINE)
        # Each connection's first frame (generation → mono, wall ns), whatever became of
        # it, as a recording of the session has it: a quality report's first message.
        self._first_frames: dict[int, tuple[int, int]] = {}
        self._heard = 0  # the generation whose first frame is in _first_frames
        # The feed's own subscriber comes first: the recording and the timeline see
        # every event before any user listener can raise.
        self.pipeline.on_event(self._on_event)
        self.manager.on_messages(self._on_messages, room=self._room)
        self.manager.on_connected(self._on_connected)
        self.manager.on_error(self.pipeline.report)
        self.manager.on_pong(self._on_pong)
        self.manager.on_close(self._on_close)
        self.manager.on_sent(self._on_sent)

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Connect and keep the feed running in the background; return once connected.

        Calls made while a start is under way wait for it and share its outcome, so
        every caller returns connected (or with the same error). The feed then
        belongs to the running event loop: stop it there.

        Raises
        ------
        WebSocketError
            If no connection could be opened under the reconnect policy.
        RuntimeError
            If the feed is running on another event loop.
        """
        self._check_loop("start")
        if self._stopping is not None:  # a stop under way finishes first
            await asyncio.shield(self._stopping)
        if self._starting is not None:
            await asyncio.shield(self._starting)
            return
        if self._started:
            return
        starting = self._starting = asyncio.get_running_loop().create_future()
        try:
            await self._start()
        except BaseException as exc:
            starting.set_exception(exc if isinstance(exc, Exception) else WebSocketError(
                "the feed's start was cancelled"))
            starting.exception()  # retrieved: only the waiting callers re-raise it
            raise
        else:
            starting.set_result(None)
        finally:
            self._starting = None

    async def _start(self) -> None:
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._started_ns = self._mono_ns()
        if self.queue.closed:  # started again after stop(): rows and counters carry on
            self._dropped_before += self.queue.dropped - self._marks_dropped
            self._marks_queued = self._marks_dropped = 0  # the old queue's went with it
            self._closing = None
            self.queue = self._new_queue()
        self.health.reset()
        self.health.start()
        try:
            if self.recorder is not None:
                await self.recorder.start()
            await self.manager.connect()
        except BaseException:
            await self.stop()
            raise

    def _check_loop(self, what: str) -> None:
        """Refuse a call from another event loop than the one the feed runs on."""
        loop = self._loop
        if loop is None or not self._started or loop.is_closed():
            return
        if asyncio.get_running_loop() is not loop:
            raise RuntimeError(
                f"Feed.{what}() was called from another event loop than the one this feed "
                f"runs on ({loop!r}); call it on that loop, e.g. from another thread: "
                f"asyncio.run_coroutine_threadsafe(feed.{what}(), loop).result()")

    async def stop(self) -> None:
        """Disconnect, handle what was already received, and end every task.

        Raises
        ------
        RuntimeError
            If called from another event loop than the one the feed runs on.
        """
        self._check_loop("stop")
        if self._stopping is not None:  # one stop at a time: join the one under way
            await asyncio.shield(self._stopping)
            return
        stopping = self._stopping = asyncio.get_running_loop().create_future()
        try:
            await self._stop()
        finally:
            stopping.set_result(None)
            self._stopping = None

    async def _stop(self) -> None:
        if self._started:
            self.stopped_while = self.manager.state
        await self.manager.disconnect()
        if self._started:  # the end of the session, after its last close
            self.pipeline.emit(Stopped(self.manager.generation, self._mono_ns(),
                                       self._wall_ns()))
        if not self.queue.closed:
            await self.queue.join()
            self.queue.close()
        await self.queue.wait_closed()
        resyncing = list(self._resyncing.values())
        for task in resyncing:
            task.cancel()
        await asyncio.gather(*resyncing, return_exceptions=True)
        if self._fetcher is not None:
            await self._fetcher.aclose()
        await self.health.stop()
        if self.recorder is not None:
            await self.recorder.stop()
        self._started = False
        self._loop = None
        self._started_ns = self._connected_ns = None

    async def run_for(self, seconds: float) -> Feed:
        """Run for ``seconds`` (on the feed's clock), then stop; return the feed.

        The time counts from the call, connecting included: a server that cannot
        be reached does not make the run last longer. On a feed already started,
        it runs it ``seconds`` more and then stops it.

        Raises
        ------
        ValueError
            If ``seconds`` is not > 0.
        WebSocketError
            If the connection halted (auth rejected, reconnects exhausted), or no
            connection opened within ``seconds`` (the message gives the last reason).
        """
        if not seconds > 0:  # NaN included
            raise ValueError(f"seconds must be > 0, got {seconds}")
        timer = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            starting = asyncio.ensure_future(self.start())
            await asyncio.wait({starting, timer}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                last = f" (last: {self.errors[-1]})" if self.errors else ""
                raise WebSocketError(
                    f"no connection to {redact_url(self.spec.url)} opened within "
                    f"{seconds:g} s{last}"
                )
            starting.result()  # the connection halted before it opened
            halted = asyncio.ensure_future(self.manager.wait_stopped())
            try:
                await asyncio.wait({halted, timer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                halted.cancel()
                await asyncio.gather(halted, return_exceptions=True)
        finally:
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)
            await self.stop()
        if self.manager.last_error is not None:
            raise self.manager.last_error
        return self

    def collect(self, seconds: float) -> dict[str, pl.DataFrame]:
        """Run for ``seconds``, stop, and return every channel's frame: for synchronous code.

        Works in a plain script (no event loop) and in a notebook cell (the
        kernel's loop is running), through :func:`wsresearch.notebook.run`. In a
        coroutine, ``await feed.run_for(seconds)`` instead.

        Raises
        ------
        RuntimeError
            When called from inside a coroutine.
        ValueError
            If ``seconds`` is not > 0.
        WebSocketError
            If the connection halted, or none opened within ``seconds``.
        """
        from .notebook import run

        run(self.run_for(seconds))
        return self.frames

    def dashboard(self, **options: Any) -> Dashboard:
        """A live :class:`~wsresearch.widgets.Dashboard` of this feed (``wsresearch[notebook]``)."""
        from .widgets import Dashboard

        return Dashboard(self, **options)

    async def __aenter__(self) -> Feed:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def send(self, message: OutboundMessage) -> None:
        """Send a message on the connection (queued while disconnected)."""
        self.manager.send(message)

    def on_event(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``fn(event)`` for every session event (:mod:`wsresearch.events`).

        Opens and closes (with who closed), pongs, drops, gaps, health changes,
        errors, sent messages and marks, in the order they happen. Returns an
        unsubscriber. A listener that raises is reported through :meth:`on_error`.
        """
        return self.pipeline.on_event(fn)

    def on_health(self, fn: Callable[[str, bool], None]) -> Callable[[], None]:
        """Call ``fn(stream, healthy)`` on every health transition; returns an unsubscriber."""
        def listener(event: Event) -> None:
            if isinstance(event, HealthChanged):
                fn(event.stream, event.healthy)
        return self.pipeline.on_event(listener)

    def on_gap(self, fn: Callable[[SequenceGap], None]) -> Callable[[], None]:
        """Call ``fn(gap)`` for every sequence gap found; returns an unsubscriber."""
        def listener(event: Event) -> None:
            if isinstance(event, GapFound):
                fn(event.gap)
        return self.pipeline.on_event(listener)

    def on_error(self, fn: Callable[[BaseException], None]) -> Callable[[], None]:
        """Call ``fn(exc)`` for every error of any stage; returns an unsubscriber.

        Exchange error reports arrive as :class:`~wsresearch.errors.ExchangeError`
        with the exchange's own message; failed opens as
        :class:`~wsresearch.errors.WebSocketError`; failing handlers as what they raised.
        """
        def listener(event: Event) -> None:
            if isinstance(event, ErrorRaised):
                fn(event.error)
        return self.pipeline.on_event(listener)

    def _new_queue(self) -> MessageQueue[Received]:
        # A batch's objects die with it: the collector waits for its end (_collector).
        queue: MessageQueue[Received] = MessageQueue(
            paused(self.pipeline.process if self.pipeline.books is None
                   else self._process_with_books),
            max_size=self.spec.queue.max_size,
            overflow=self.spec.queue.overflow,
            on_error=self.pipeline.report,
            on_pressure=self._on_pressure,
            on_dropped=self._on_dropped,
        )
        self._put, self._put_many = queue.put, queue.put_many
        return queue

    # -- views -------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The feed's time source."""
        return self._clock

    @property
    def running(self) -> bool:
        """Whether the feed was started and not yet stopped (connected or reconnecting)."""
        return self._started

    @property
    def uptime(self) -> float | None:
        """Seconds since :meth:`start`, on the feed's clock; ``None`` when not running."""
        if self._started_ns is None:
            return None
        return (self._mono_ns() - self._started_ns) / NS_PER_S

    @property
    def connected_for(self) -> float | None:
        """Seconds the current connection has been open; ``None`` when not connected."""
        if self._connected_ns is None or self.manager.state is not ConnectionState.CONNECTED:
            return None
        return (self._mono_ns() - self._connected_ns) / NS_PER_S

    @property
    def state(self) -> ConnectionState:
        """Connection state."""
        return self.manager.state

    @property
    def generation(self) -> int:
        """Connection generation (+1 per successful open)."""
        return self.manager.generation

    @property
    def parser(self) -> MessageParser:
        """The pipeline's parser (outcome counts, rejects)."""
        return self.pipeline.parser

    @property
    def sequences(self) -> SequenceTracker:
        """Sequence expectations and counts (see :mod:`wsresearch.sequence`)."""
        return self.pipeline.sequences

    @property
    def health(self) -> HealthMonitor:
        """Per-stream health (see :mod:`wsresearch.health`)."""
        return self.pipeline.health

    @property
    def store(self) -> FrameStore:
        """The rows, one polars frame per channel (``store.rows(channel)`` counts them)."""
        return self.pipeline.store

    def frame(self, channel: str) -> pl.DataFrame:
        """The valid, new messages of ``channel`` so far, one row each.

        Every one of them, or the newest ``max_rows`` (none with ``max_rows=0``).

        Columns are the model's fields plus ``recv_wall_ns``, ``recv_mono_ns``,
        ``generation``, ``exchange_ns`` (the channel's ``exchange_time``, null
        where it has none) and ``frame_seq`` (the message's ``seq`` in the
        recording; null when not recording).

        Raises
        ------
        UnknownChannelError
            If the spec has no such channel.
        """
        return self.pipeline.frame(channel)

    @property
    def frames(self) -> dict[str, pl.DataFrame]:
        """Every channel's frame."""
        return self.pipeline.frames

    def normalized(self, kind: str, *, source: QuoteSource | None = None) -> pl.DataFrame:
        """The ``kind`` table of market data so far, the same columns on every exchange.

        Kinds: ``trades``, ``quotes``, ``book_changes``, ``derivative_ticker``,
        ``liquidations``, ``candles``, ``book_snapshots`` (:mod:`wsresearch.normalize`).
        Built from the native frames when asked; they are not changed.

        Parameters
        ----------
        kind
            The table.
        source
            For ``quotes``: ``"book"``, a row each time a valid order book's best bid or
            ask changes; ``"channel"``, the rows of the channels that give quotes (a
            ticker). Default: the spec's choice (:attr:`FeedSpec.quotes
            <wsresearch.spec.FeedSpec>`: the adapters take the books' where they keep
            them, but on Binance); with none, the channels' where the spec has one, else
            the books'.

        Raises
        ------
        ValueError
            For a kind that is not one of :data:`~wsresearch.normalize.KINDS`, a bad
            ``source``, one given for another kind, or ``"book"`` without books.
        """
        return self.pipeline.normalized(kind, source=source)

    def book(self, symbol: str) -> Book:
        """The order book of ``symbol`` as of now (see :mod:`wsresearch.book`).

        ``book.best_bid``, ``best_ask``, ``mid``, ``spread``, ``top(n)`` (a frame),
        ``valid`` (and ``reason`` when not), ``stats`` (integrity counts) and the last
        update's times.

        Raises
        ------
        ValueError
            If the spec keeps no books, or none of ``symbol`` yet.
        """
        return self.pipeline.book(symbol)

    @property
    def books(self) -> pl.DataFrame:
        """A row per order book: its state, top of book and integrity counts.

        Empty when the spec keeps no books; columns :data:`~wsresearch.book.BOOK_COLUMNS`.
        """
        books = self.pipeline.books
        if books is None:
            return pl.DataFrame(schema=BOOK_COLUMNS)
        return books.frame(self.clock.monotonic_ns())

    @property
    def connections(self) -> pl.DataFrame:
        """Every open and close so far, one row each, as the recording's events.

        Columns: ``kind`` (``open``, ``close``, or ``stop`` where the feed was
        stopped), ``generation``, ``mono_ns``, ``wall_ns``, ``code``, ``reason``,
        ``category``, ``closed_by`` (``client``, ``server`` or ``network``).
        """
        return pl.DataFrame(list(self._timeline), orient="row", schema=TIMELINE_SCHEMA)

    @property
    def gaps(self) -> pl.DataFrame:
        """The most recent sequence gaps, one row each (:data:`~wsresearch.sequence.GAP_SCHEMA`)."""
        return self.pipeline.gaps

    @property
    def rejects(self) -> list[Reject]:
        """The most recent rejected messages, with raw text, reason and detail."""
        return self.pipeline.rejects

    @property
    def stats(self) -> FeedStats:
        """Counters of every stage, as of now."""
        counts = self.pipeline.counts
        generation = self.manager.generation
        recorder, fetcher = self.recorder, self._fetcher
        return FeedStats(
            state=self.manager.state.name,
            generation=generation,
            reconnects=max(0, generation - 1),
            received=self.manager.received,
            processed=counts.processed,
            ok=counts.ok,
            duplicates=counts.duplicates,
            control=counts.control,
            invalid=counts.invalid,
            rejects=counts.rejects,
            dropped=self._dropped_before + self.queue.dropped - self._marks_dropped,
            old_generation=counts.old_generation,
            queue_size=self.queue.size,
            queue_max=self.queue.max_size,
            handler_errors=counts.handler_errors,
            recorded=0 if recorder is None else recorder.events,
            recording_errors=0 if recorder is None else recorder.failed_writes,
            recording_held=0 if recorder is None else recorder.held,
            pongs=self._pongs,
            last_rtt=self._last_rtt,
            last_close=self.manager.last_close,
            exchange_errors=counts.exchange_errors,
            sequence_gaps=counts.sequence_gaps,
            sequence_missing=counts.sequence_missing,
            sequence_repeats=counts.sequence_repeats,
            sequence_out_of_order=counts.sequence_out_of_order,
            inexact=counts.inexact,
            oversized=self.manager.closes[_MESSAGE_TOO_BIG],
            snapshot_failures=0 if fetcher is None else fetcher.failed,
            last_snapshot_failure=None if fetcher is None else fetcher.last_failure,
        )

    # -- wiring ------------------------------------------------------------------------

    def _on_messages(self, run: list[str | bytes], generation: int) -> None:
        mono, wall = self._mono_ns(), self._wall_ns()
        if generation != self._heard:
            self._first_heard(generation, mono, wall)
        # Recorded first, before the queue can drop any of them.
        recorder = self.recorder
        seqs = (repeat(-1) if recorder is None
                else recorder.record_messages(run, generation, mono, wall))
        try:  # noqa: SIM105  (a try costs nothing here; contextlib.suppress would)
            self._put_many(list(zip(run, repeat(generation), repeat(mono), repeat(wall), seqs)))
        except QueueClosedError:
            pass  # stopping: the socket is being closed too

    def _first_heard(self, generation: int, mono: int, wall: int) -> None:
        """Note a connection's first frame, keeping at most as many as the timeline's events."""
        self._heard = generation
        first = self._first_frames
        first.setdefault(generation, (mono, wall))
        if len(first) > _MAX_TIMELINE:
            del first[next(iter(first))]

    def _room(self) -> int:
        """Messages the queue can take now: a run is never larger, so it drops none."""
        queue = self.queue
        return queue.max_size - queue.size

    def _process_with_books(self, batch: list[Received]) -> None:
        """Process a batch with REST responses and closes in their place; then ask for snapshots."""
        process = self.pipeline.process
        if not self._marks_queued:
            process(batch)
        else:
            start = 0
            for index, item in enumerate(batch):
                if isinstance(item[0], _MARKS):
                    if start < index:
                        process(batch[start:index])
                    start = index + 1
                    self._apply_mark(item)
            if start < len(batch):
                process(batch[start:])
        books, fetcher = self.pipeline.books, self._fetcher
        if books is not None and fetcher is not None and self._started:
            for symbol, url in books.wanting(self.spec.rest_url):
                fetcher.want(symbol, url)

    def _book_changed(self, event: BookChanged) -> None:
        """A book turned valid (its resync is over), or invalid: resync it.

        Only that symbol, and only where the exchange sends a book afresh on subscribing
        (unsubscribe and subscribe it); REST snapshots are fetched after each batch, for
        the books that wait for one (:meth:`~wsresearch.book.Books.wanting`).
        """
        symbol = event.symbol
        if event.valid:
            self._resyncs.pop(symbol, None)
            if self._fetcher is not None:
                self._fetcher.settled(symbol)
            return
        rule = self.spec.book_sync
        if (rule is None or not self._started or symbol in self._resyncing
                or event.reason in (NEW_CONNECTION, DISCONNECTED)  # the next subscription
                # brings the snapshot
                or not rule.resubscribe(symbol)):  # REST snapshots are fetched elsewhere
            return
        task = asyncio.get_running_loop().create_task(self._resubscribe(symbol))
        self._resyncing[symbol] = task
        task.add_done_callback(lambda _: self._resyncing.pop(symbol, None))

    async def _resubscribe(self, symbol: str) -> None:
        """Ask again for ``symbol``'s book until it is valid, each try after a longer wait."""
        books, rule = self.pipeline.books, self.spec.book_sync
        assert books is not None  # only book feeds come here
        assert rule is not None
        backoff = self.spec.connection.reconnect.backoff
        while self._started:
            attempt = self._resyncs[symbol] = self._resyncs.get(symbol, 0) + 1
            if attempt > 1:  # the first right away; then on the backoff: no storm
                await asyncio.sleep(backoff_delay(attempt - 1, backoff, self._rng))
            book = books.books.get(symbol)
            if book is None or book.valid:
                return
            if self.manager.state is ConnectionState.CONNECTED:
                log.info("resubscribing to the book of %s (%s)", symbol, book.reason)
                for message in rule.resubscribe(symbol):
                    self.manager.send(message)
            # Give the snapshot the time a connection has to open before asking again.
            await asyncio.sleep(self.spec.connection.open_timeout)
            if book.valid:
                return

    def _on_rest_response(self, symbol: str, url: str, status: int, body: str) -> None:
        mono, wall = self._mono_ns(), self._wall_ns()
        generation = self.manager.generation
        self.pipeline.emit(RestReceived(generation, redact_request_url(url, self.spec.redact),
                                        status, body, mono, wall))
        self._put_mark(_RestResponse(url, status, body), generation, mono, wall)

    def _on_event(self, event: Event) -> None:
        """The feed's own subscriber: the recording, the connection timeline, resyncs."""
        recorder = self.recorder
        # The recorder ends its session with its own stop event; a failed write is
        # counted by the recorder, and recording it would only fail again.
        recorded = recorder is not None and not isinstance(event, Stopped) and not (
            isinstance(event, ErrorRaised) and isinstance(event.error, RecordingError))
        on_timeline = isinstance(event, Opened | Closed | Stopped)
        if recorded or on_timeline:
            kind, generation, columns = record_fields(event)
            if recorded:
                assert recorder is not None
                recorder.record(kind, generation, **columns)
            if on_timeline:
                row = {"kind": kind, "generation": generation, **columns}
                self._timeline.append(tuple(row.get(name) for name in TIMELINE_SCHEMA))
        if isinstance(event, BookChanged):
            self._book_changed(event)
        if isinstance(event, GapFound) and event.resync and (
                event.generation == self.manager.generation):
            self.manager.reconnect(f"resync: sequence gap on {event.channel} {event.gap.key!r}")

    def _on_connected(self) -> None:
        # Registered first, and a plain function, so this runs before the new
        # socket's reader has delivered anything: no new message is judged old.
        generation = self.manager.generation
        closing, self._closing = self._closing, None
        if closing is not None:  # its close still queued behind old messages: they are
            self.pipeline.closed(*closing)  # old now, so the books close before they open
        self.pipeline.open_generation(generation)
        self._connected_ns = self._mono_ns()
        # Where it connected: after a redirect, not the spec's URL.
        self.pipeline.emit(Opened(generation, self.manager.connected_url, self._connected_ns,
                                  self._wall_ns()))
        spec = self.spec
        if spec.auth is not None:
            auth = spec.auth() if callable(spec.auth) else spec.auth
            self._hide(auth_secret_values(auth, spec.redact), auth)
            self.manager.send(auth)
        for message in spec.subscribe:
            self._hide(secret_values(message, spec.redact))
            self.manager.send(message)

    def _hide(self, secrets: list[str], auth: object = None) -> None:
        """Keep ``secrets`` out of websockets' log of frames and out of recorded ``sent`` events.

        An auth message with nothing to mask is warned about once: its secret may
        sit under a key the spec's ``redact`` does not name.
        """
        self.manager.hide(*secrets)
        if self.recorder is not None:
            self.recorder.hide(*secrets)
        if auth is not None and not secrets and not self._warned_auth:
            self._warned_auth = True
            message = ("the auth message has no value under the spec's redact keys and no "
                       "positional strings, so nothing in it is masked in logs and "
                       "recordings; if it carries a secret, add its key to FeedSpec.redact")
            warnings.warn(message, stacklevel=2)
            log.warning("%s", message)

    def _on_pressure(self, full: bool) -> None:
        if self.queue.overflow is not OverflowPolicy.BLOCK:
            return
        if full:
            self.manager.pause_reading()
        else:
            self.manager.resume_reading()

    def _on_pong(self, rtt: float) -> None:
        self._pongs += 1
        self._last_rtt = rtt
        self.pipeline.emit(Pong(self.manager.generation, rtt))

    def _on_close(self, close: CloseInfo) -> None:
        mono, wall = self._mono_ns(), self._wall_ns()
        self.pipeline.emit(Closed(close.generation, close.code, close.reason,
                                  close.category.name, close.initiator, mono, wall))
        if self.pipeline.books is not None:  # the books go invalid after what came before
            self._closing = (close.generation, close.reason, mono, wall)
            self._put_mark(_Closed(close.reason), close.generation, mono, wall)

    def _put_mark(self, mark: _RestResponse | _Closed, generation: int, mono: int,
                  wall: int) -> None:
        """Queue a REST response or a close, to reach the books after the messages before it."""
        try:
            self.queue.put_control((mark, generation, mono, wall, -1))  # type: ignore[arg-type]
        except QueueClosedError:
            return  # stopping
        self._marks_queued += 1

    def _apply_mark(self, item: Received) -> None:
        """Hand a queued REST response or close to the pipeline."""
        self._marks_queued -= 1
        mark: object = item[0]
        pipeline = self.pipeline
        if isinstance(mark, _Closed):
            self._closing = None
            pipeline.closed(item[1], mark.reason, item[2], item[3])
        elif (isinstance(mark, _RestResponse) and mark.status == 200
              and item[1] == pipeline.generation):  # not one of a connection gone since
            pipeline.rest(mark.url, mark.body, item[2], item[3])

    def _on_sent(self, text: str, generation: int) -> None:
        self.pipeline.emit(Sent(generation, text))

    def _on_dropped(self, item: Received) -> None:
        if isinstance(item[0], _MARKS):  # the oldest: all before it are gone
            self._marks_dropped += 1
            self._apply_mark(item)
            return
        self.pipeline.emit(Dropped(item[1], "overflow", None if item[4] < 0 else item[4]))

    def mark(self, note: str) -> None:
        """Add a note to the session's events (recorded, when recording; seen by listeners)."""
        self.pipeline.emit(Mark(self.manager.generation, str(note)))

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"Feed(url={redact_url(self.spec.url)!r}, state={s.state}, generation={s.generation}, "
            f"ok={s.ok}, duplicates={s.duplicates}, invalid={s.invalid}, dropped={s.dropped})"
        )
