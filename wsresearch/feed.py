"""The composed pipeline: connection → queue → parser → health and frames.

:class:`Feed` wires the parts of DESIGN's data flow together for one
:class:`~wsresearch.spec.FeedSpec`::

    WebSocketManager ──(data, generation, recv times)──► MessageQueue
                                                          │
                               MessageParser ◄────────────┘
                                 │          │
                         HealthMonitor   FrameStore

Receive times are taken when the frame leaves the socket, before the queue,
so queueing delay never shows up as exchange latency. Frames that were
received on a previous generation but are still queued when a new connection
opens are *old-generation* frames: counted, never parsed (a fresh snapshot follows every
reconnect, and applying old deltas after it would corrupt state).

Everything runs on the event loop that calls :meth:`Feed.start`, the notebook
kernel's included: ``start()`` returns once connected and the feed keeps
running in background tasks until :meth:`Feed.stop`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import warnings
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import polars as pl

from ._callbacks import register
from ._limits import INT64_MAX, INT64_MIN
from .clock import Clock, SystemClock
from .config import CloseCategory
from .connection import CloseInfo, ConnectionState, WebSocketManager
from .errors import ExchangeError, QueueClosedError, RecordingError, WebSocketError
from .frames import ColumnCheck, FrameStore, polars_schema
from .health import HealthMonitor
from .parser import (
    CONTROL,
    DUPLICATE,
    EXCHANGE_ERROR,
    OK,
    REJECT_REASONS,
    MessageParser,
    ParseOutcome,
    Reject,
)
from .queue import MessageQueue, OverflowPolicy
from .recording import Recorder
from .redaction import auth_secret_values, redact_url, secret_values
from .sequence import GAP, OUT_OF_ORDER, REPEAT, Seq, SequenceGap, SequenceTracker
from .spec import Channel, FeedSpec, OutboundMessage

if TYPE_CHECKING:
    from .widgets import Dashboard

__all__ = ["Feed", "FeedStats"]

log = logging.getLogger(__name__)

_MESSAGE_TOO_BIG = 1009
_first = itemgetter(0)

# data, generation, recv_mono_ns, recv_wall_ns, seq in the recording (-1 when not recording)
_Item = tuple[str | bytes, int, int, int, int]
# A sequenced channel's extractor, key extractor, group, and the channel itself.
_Sequenced = tuple[
    Callable[[Any], "int | Seq | None"], Callable[[Any], Hashable] | None, str, Channel
]


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
        Rejected frames, all reasons.
    rejects
        Rejected frames by reason.
    dropped
        Frames discarded by the queue's overflow policy.
    old_generation
        Frames of a replaced connection, still queued when the new one opened:
        discarded unparsed (a fresh snapshot follows every reconnect). Not to be
        confused with a *stale stream*, one silent beyond its threshold.
    queue_size
        Frames waiting now.
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
        Error reports the exchange sent (see ``FeedSpec.errors``).
    sequence_gaps
        Sequence gaps found (see :mod:`wsresearch.sequence`).
    sequence_missing
        Sequence numbers those gaps skipped.
    sequence_repeats
        Messages whose numbers had already been seen.
    sequence_out_of_order
        Messages that arrived late, inside a gap found earlier.
    oversized
        Connections closed with 1009 (message too big), by either side: a message
        over ``ConnectionConfig.max_message_size``, or a compressed one that would
        inflate past it, fails the connection before it is held in memory.
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
    oversized: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict."""
        return asdict(self)

    @property
    def stale(self) -> int:
        """Deprecated name of :attr:`old_generation`."""
        warnings.warn("FeedStats.stale is now FeedStats.old_generation (frames of a replaced "
                      "connection; a stale stream is another thing)", DeprecationWarning,
                      stacklevel=2)
        return self.old_generation


class Feed:
    """A live feed: connect, validate, de-duplicate, track health, keep frames.

    Parameters
    ----------
    spec
        What to connect to and how to turn frames into rows.
    record_to
        A new directory to record the session into (see :mod:`wsresearch.recording`):
        every frame as received, before the queue, and every other event.
    clock
        Time source (a :class:`~wsresearch.clock.VirtualClock` in tests).
    rng
        Backoff jitter source; seed it for a reproducible reconnect schedule.
    flush_interval
        Seconds between recording writes (what a crash can lose at most).
    max_rows
        Rows kept in memory per channel: ``None`` keeps every row (a session in a
        notebook); ``n`` keeps the newest ``n`` (a ring, for a feed that runs for
        days); ``0`` keeps none, for a recorder whose rows live on disk only
        (``wsresearch record``). Counters, health and the recording are the same
        either way; ``feed.store.added(channel)`` counts every row. A row costs
        about 80-140 bytes in memory (``docs/pipeline.md``).

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
        max_rows: int | None = None,
    ) -> None:
        if not isinstance(spec, FeedSpec):
            raise TypeError(f"Feed needs a FeedSpec, got {type(spec).__name__}")
        self.spec = spec
        self._clock = clock or SystemClock()
        self.manager = WebSocketManager(spec.url, spec.connection, self._clock, rng=rng)
        self.parser = MessageParser(
            spec.type_of,
            max_dedupe_size=spec.max_dedupe_size,
            dedupe_ttl=spec.dedupe_ttl,
            clock=self._clock,
        )
        for channel in spec.channels:
            self.parser.register(channel.name, channel.model, dedupe_key=channel.dedupe_key)
        self.parser.ignore(spec.control)
        self.parser.report_errors(spec.errors)
        self.parser.ignore_texts(spec.control_texts)
        self.sequences = SequenceTracker()
        """Sequence expectations and counts (see :mod:`wsresearch.sequence`)."""
        # Per sequenced channel, what its check needs, looked up once.
        self._sequenced = {
            c.name: (c.sequence, c.sequence_key, c.sequence_group_name, c)
            for c in spec.channels if c.sequence is not None
        }
        # Per channel, everything the hot path needs after parsing, in one lookup:
        # its health stream, its exchange-time extractor, its sequence check.
        self._per_type: dict[str, tuple[str, Callable[[Any], int | None] | None,
                                        _Sequenced | None]] = {
            c.name: (c.stream_name, c.exchange_time, self._sequenced.get(c.name))
            for c in spec.channels
        }
        self._observe = self.sequences.observe
        self.health = HealthMonitor(
            spec.health,
            on_unhealthy=self._on_unhealthy,
            on_recovered=self._on_recovered,
            check_interval=spec.check_interval,
            clock=self._clock,
            on_error=self._on_error,
        )
        self.store = FrameStore(
            {channel.name: channel.model for channel in spec.channels},
            explode={c.name: c.explode for c in spec.channels if c.explode is not None},
            max_rows=max_rows,
        )
        # Per channel whose columns can be out of range (ints, decimals): the check
        # that turns a value they cannot hold into a counted reject, not a null.
        self._column_checks = {
            c.name: check for c in spec.channels
            if (check := ColumnCheck(polars_schema(c.model)))}
        self.queue = self._new_queue()
        self._dropped_before = 0  # drops counted by queues of earlier runs
        self.errors: deque[BaseException] = deque(maxlen=100)
        """The most recent errors from every stage (handlers, opens, the halting one)."""
        # Bound once: these run for every message.
        self._mono_ns = self._clock.monotonic_ns
        self._wall_ns = self._clock.time_ns
        self._parse_batch = self.parser.parse_batch
        self._extend = self.store.extend
        self._record_batch = self.health.record_batch
        self._current_generation = 0
        self._old_generation = 0
        self._handler_errors = 0
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
        self._health_listeners: list[Callable[[str, bool], None]] = []
        # Every open and close: (kind, generation, mono_ns, wall_ns, code, reason, category).
        self._timeline: deque[tuple[str, int, int, int, int | None, str | None, str | None]] = (
            deque(maxlen=100_000))
        self._gap_listeners: list[Callable[[SequenceGap], None]] = []
        self._error_listeners: list[Callable[[BaseException], None]] = []
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
                clock=self._clock,
                on_error=self._on_error,
            )
            self._record_frame = self.recorder.record_frame
        self.manager.on_message(self._on_frame)
        self.manager.on_connected(self._on_connected)
        self.manager.on_error(self._on_error)
        self.manager.on_pong(self._on_pong)
        self.manager.on_disconnected(self._on_closed)
        if self.recorder is not None:
            self.manager.on_sent(self._record_sent)

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
            self._dropped_before += self.queue.dropped
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
            self._timeline.append(("stop", self.manager.generation, self._mono_ns(),
                                   self._wall_ns(), None, None, None))
        if not self.queue.closed:
            await self.queue.join()
            self.queue.close()
        await self.queue.wait_closed()
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

    def on_health(self, fn: Callable[[str, bool], None]) -> Callable[[], None]:
        """Call ``fn(stream, healthy)`` on every health transition; returns an unsubscriber."""
        return register(self._health_listeners, fn)

    def on_gap(self, fn: Callable[[SequenceGap], None]) -> Callable[[], None]:
        """Call ``fn(gap)`` for every sequence gap found; returns an unsubscriber."""
        return register(self._gap_listeners, fn)

    def on_error(self, fn: Callable[[BaseException], None]) -> Callable[[], None]:
        """Call ``fn(exc)`` for every error of any stage; returns an unsubscriber.

        Exchange error reports arrive as :class:`~wsresearch.errors.ExchangeError`
        with the exchange's own message; failed opens as
        :class:`~wsresearch.errors.WebSocketError`; failing handlers as what they raised.
        """
        return register(self._error_listeners, fn)

    def _new_queue(self) -> MessageQueue[_Item]:
        queue: MessageQueue[_Item] = MessageQueue(
            self._process,
            max_size=self.spec.queue.max_size,
            overflow=self.spec.queue.overflow,
            on_error=self._on_error,
            on_pressure=self._on_pressure,
            on_dropped=self._on_dropped,
            batches=True,
        )
        self._put = queue.put
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
        return (self._mono_ns() - self._started_ns) / 1e9

    @property
    def connected_for(self) -> float | None:
        """Seconds the current connection has been open; ``None`` when not connected."""
        if self._connected_ns is None or self.manager.state is not ConnectionState.CONNECTED:
            return None
        return (self._mono_ns() - self._connected_ns) / 1e9

    @property
    def state(self) -> ConnectionState:
        """Connection state."""
        return self.manager.state

    @property
    def generation(self) -> int:
        """Connection generation (+1 per successful open)."""
        return self.manager.generation

    def frame(self, channel: str) -> pl.DataFrame:
        """The valid, new messages of ``channel`` so far, one row each.

        Every one of them, or the newest ``max_rows`` (none with ``max_rows=0``).

        Columns are the model's fields plus ``recv_wall_ns``, ``recv_mono_ns``,
        ``generation``, ``exchange_ns`` (the channel's ``exchange_time``, null
        where it has none) and ``frame_seq`` (the frame's ``seq`` in the
        recording; null when not recording).

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

    @property
    def connections(self) -> pl.DataFrame:
        """Every open and close so far, one row each, as the recording's events.

        Columns: ``kind`` (``open``, ``close``, or ``stop`` where the feed was
        stopped), ``generation``, ``mono_ns``, ``wall_ns``, ``code``, ``reason``,
        ``category``.
        """
        return pl.DataFrame(
            list(self._timeline), orient="row",
            schema={"kind": pl.String, "generation": pl.Int64, "mono_ns": pl.Int64,
                    "wall_ns": pl.Int64, "code": pl.Int64, "reason": pl.String,
                    "category": pl.String},
        )

    @property
    def gaps(self) -> pl.DataFrame:
        """The most recent sequence gaps, one row each (:data:`~wsresearch.sequence.GAP_SCHEMA`)."""
        return self.sequences.frame()

    @property
    def rejects(self) -> list[Reject]:
        """The most recent rejected frames, with raw text, reason and detail."""
        return list(self.parser.rejects)

    @property
    def stats(self) -> FeedStats:
        """Counters of every stage, as of now."""
        counts = self.parser.counts
        rejects = {reason: counts[reason] for reason in REJECT_REASONS}
        generation = self.manager.generation
        return FeedStats(
            state=self.manager.state.name,
            generation=generation,
            reconnects=max(0, generation - 1),
            received=self.manager.received,
            processed=sum(counts.values()),
            ok=counts[OK],
            duplicates=counts[DUPLICATE],
            control=counts[CONTROL],
            invalid=sum(rejects.values()),
            rejects=rejects,
            dropped=self._dropped_before + self.queue.dropped,
            old_generation=self._old_generation,
            queue_size=self.queue.size,
            queue_max=self.queue.max_size,
            handler_errors=self._handler_errors,
            recorded=0 if self.recorder is None else self.recorder.events,
            recording_errors=0 if self.recorder is None else self.recorder.errors,
            recording_held=0 if self.recorder is None else self.recorder.held,
            pongs=self._pongs,
            last_rtt=self._last_rtt,
            last_close=self.manager.last_close,
            exchange_errors=counts[EXCHANGE_ERROR],
            sequence_gaps=self.sequences.counts[GAP],
            sequence_missing=self.sequences.counts["missing"],
            sequence_repeats=self.sequences.counts[REPEAT],
            sequence_out_of_order=self.sequences.counts[OUT_OF_ORDER],
            oversized=self.manager.closes[_MESSAGE_TOO_BIG],
        )

    # -- the pipeline --------------------------------------------------------------------

    def _on_frame(self, data: str | bytes, generation: int) -> None:
        mono, wall = self._mono_ns(), self._wall_ns()
        # Recorded first, before the queue can drop it.
        seq = -1 if self.recorder is None else self._record_frame(data, generation, mono, wall)
        try:  # noqa: SIM105  (a try costs nothing here; contextlib.suppress would)
            self._put((data, generation, mono, wall, seq))
        except QueueClosedError:
            pass  # stopping: the socket is being closed too

    def _process(self, items: list[_Item]) -> None:
        # The hot path, once per batch the queue hands over (up to 256 frames, in
        # order): the per-message steps are inline, their callables bound once.
        current = self._current_generation
        fresh = [item for item in items if item[1] == current]
        if len(fresh) != len(items):
            self._drop_old_generation([item for item in items if item[1] != current])
        outcomes = self._parse_batch([item[0] for item in fresh], [item[2] for item in fresh])
        per_type, observe = self._per_type, self._observe
        rows: dict[str, list[Any]] = {}
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        for (data, generation, mono, wall, seq), (status, kind, message) in zip(
            fresh, outcomes, strict=True
        ):
            if message is None or kind is None:
                continue
            if status == EXCHANGE_ERROR:
                self._exchange_error(kind, message, data)
                continue
            stream, exchange_time, sequenced = per_type[kind]
            if status == OK:
                exchange_ns = None
                if exchange_time is not None:
                    try:
                        exchange_ns = exchange_time(message)
                        if exchange_ns is not None and not (
                                INT64_MIN <= exchange_ns <= INT64_MAX):
                            raise ValueError(f"{kind}: exchange time {exchange_ns} ns does not "
                                             "fit 64 bits; the row is kept without it")
                    except Exception as exc:  # the row is kept, without its exchange time
                        exchange_ns = None
                        self._on_error(exc)
                bucket = rows.get(kind)
                if bucket is None:
                    bucket = rows[kind] = []
                bucket.append((message.__dict__, generation, mono, wall, exchange_ns,
                               None if seq < 0 else seq))
                if sequenced is not None:
                    sequence, sequence_key, group, channel = sequenced
                    try:
                        value = sequence(message)
                        gap = None if value is None else observe(
                            group, kind, None if sequence_key is None else sequence_key(message),
                            value, generation, mono)[1]
                    except Exception as exc:
                        self._on_error(exc)
                        gap = None
                    if gap is not None:
                        self._on_sequence_gap(gap, channel, generation, mono, seq)
            if stream not in last:
                first[stream] = mono
            last[stream] = mono
        extend, checks = self._extend, self._column_checks
        for kind, bucket in rows.items():
            if kind in checks:
                bucket = self._refuse_misfits(kind, bucket, fresh, outcomes)
            extend(kind, bucket)
        if last:
            self._record_batch(first, last)

    def _refuse_misfits(self, kind: str, bucket: list[Any], items: list[_Item],
                        outcomes: list[ParseOutcome]) -> list[Any]:
        """``bucket`` without the rows whose values their columns cannot hold exactly.

        One pass per column over the batch, in C on the common path (a ``min`` and a
        ``max`` per int column). A row that does not fit becomes a counted
        ``schema_error`` naming the field and value, where it would otherwise be a null
        in the frame. Its frame was judged for health and sequence like any other: it
        arrived, and it is valid JSON of its type.
        """
        try:
            bad = self._column_checks[kind].bad_rows(list(map(_first, bucket)))
        except Exception as exc:  # a check must never cost the batch: keep the rows
            self._on_error(exc)
            return bucket
        if not bad:
            return bucket
        # The rare path: find each refused row's frame (its outcome holds the same dict).
        frame_of = {id(outcome[2].__dict__): index for index, outcome in enumerate(outcomes)
                    if outcome[0] == OK and outcome[1] == kind}
        for position, detail in sorted(bad.items()):  # in the order received
            index = frame_of[id(bucket[position][0])]
            outcomes[index] = self.parser.refuse(items[index][0], kind, detail, items[index][2])
        return [row for position, row in enumerate(bucket) if position not in bad]

    def _drop_old_generation(self, items: list[_Item]) -> None:
        self._old_generation += len(items)
        if self.recorder is not None:  # so a faithful replay skips them too
            for item in items:
                # "stale" is the recording format's name for an old-generation drop.
                self.recorder.record("drop", item[1], ref_seq=item[4], reason="stale")

    def _on_sequence_gap(
        self, gap: SequenceGap, channel: Channel, generation: int, mono: int, ref_seq: int
    ) -> None:
        log.warning("sequence gap on %s %r: expected %d, got %d (%d missing)",
                    channel.name, gap.key, gap.expected, gap.first, gap.missing)
        if self.recorder is not None:
            self.recorder.record(
                "gap", generation, mono_ns=mono, stream=channel.name,
                ref_seq=None if ref_seq < 0 else ref_seq,
                data=json.dumps({"group": gap.group, "key": _jsonable(gap.key),
                                 "expected": gap.expected, "first": gap.first}),
            )
        for listener in list(self._gap_listeners):
            try:
                listener(gap)
            except Exception as exc:
                self._on_error(exc)
        if channel.resync_on_gap and generation == self.manager.generation:
            self.manager.reconnect(f"resync: sequence gap on {channel.name} {gap.key!r}")

    def _exchange_error(self, kind: str, decoded: Any, data: str | bytes) -> None:
        text = data if isinstance(data, str) else repr(data)
        if self.spec.error_text is not None:
            try:
                text = self.spec.error_text(decoded)
            except Exception as exc:  # keep the raw text; say why
                self._on_error(exc)
        log.warning("exchange error (%s): %s", kind, text)
        self._on_error(ExchangeError(text, kind))

    def _on_connected(self) -> None:
        # Registered first, and a plain function, so this runs before the new
        # socket's reader has delivered anything: no new frame is judged old.
        self._current_generation = self.manager.generation
        self._connected_ns = self._mono_ns()
        self._timeline.append(("open", self._current_generation, self._connected_ns,
                               self._wall_ns(), None, None, None))
        if self.recorder is not None:
            # Where it connected: after a redirect, not the spec's URL.
            self.recorder.record("open", self._current_generation,
                                 data=self.manager.connected_url)
        spec = self.spec
        if spec.auth is not None:
            auth = spec.auth() if callable(spec.auth) else spec.auth
            self._hide(auth_secret_values(auth, spec.redact), auth)
            self.manager.send(auth)
        for message in spec.subscribe:
            self._hide(secret_values(message, spec.redact))
            self.manager.send(message)

    def _hide(self, secrets: list[str], auth: object = None) -> None:
        """Keep ``secrets`` out of websockets' log of frames, and out of recorded ``sent`` events.

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
        if self.recorder is not None:
            self.recorder.record("pong", self.manager.generation, rtt=rtt)
        self._pongs += 1
        self._last_rtt = rtt
        self.health.record_pong()

    def _on_unhealthy(self, stream: str, last_ns: int | None) -> None:
        self._notify_health(stream, False)

    def _on_recovered(self, stream: str) -> None:
        log.info("stream %r recovered", stream)
        self._notify_health(stream, True)

    def _notify_health(self, stream: str, healthy: bool) -> None:
        if self.recorder is not None:
            when = self.health.transitions[-1].mono_ns if self.health.transitions else None
            self.recorder.record(
                "health", self.manager.generation, mono_ns=when, stream=stream, healthy=healthy
            )
        for listener in list(self._health_listeners):
            try:
                listener(stream, healthy)
            except Exception as exc:
                self._on_error(exc)

    def _on_closed(self, code: int | None, reason: str, category: CloseCategory) -> None:
        generation = self.manager.generation
        self._timeline.append(("close", generation, self._mono_ns(), self._wall_ns(), code,
                               reason, category.name))
        if self.recorder is not None:
            self.recorder.record(
                "close", generation, code=code, reason=reason, category=category.name
            )

    def _record_sent(self, text: str, generation: int) -> None:
        assert self.recorder is not None
        self.recorder.record("sent", generation, data=text)

    def _on_dropped(self, item: _Item) -> None:
        if self.recorder is not None:
            self.recorder.record("drop", item[1], ref_seq=item[4], reason="overflow")

    def mark(self, note: str) -> None:
        """Add a note to the recorded timeline (does nothing when not recording)."""
        if self.recorder is not None:
            self.recorder.record("mark", self.manager.generation, data=str(note))

    def _on_error(self, exc: BaseException) -> None:
        if self.recorder is not None and not isinstance(exc, RecordingError):
            self.recorder.record("error", self.manager.generation,
                                 data=f"{type(exc).__name__}: {exc}")
        # Connection reports (failed opens, the halting error) and recording write
        # failures (counted by the recorder) are not handler errors.
        self._handler_errors += not isinstance(exc, WebSocketError | RecordingError)
        self.errors.append(exc)
        for listener in list(self._error_listeners):
            try:
                listener(exc)
            except Exception:  # reporting it through on_error again could loop
                self._handler_errors += 1
                log.exception("an on_error listener raised")

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"Feed(url={redact_url(self.spec.url)!r}, state={s.state}, generation={s.generation}, "
            f"ok={s.ok}, duplicates={s.duplicates}, invalid={s.invalid}, dropped={s.dropped})"
        )


def _jsonable(key: Any) -> Any:
    """A stream key as JSON: scalars as they are, anything else as text."""
    if key is None or isinstance(key, str | int | float | bool):
        return key
    if isinstance(key, tuple):
        return [_jsonable(part) for part in key]
    return str(key)
