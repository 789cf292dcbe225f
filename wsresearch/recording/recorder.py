"""Recording a live session: every event kept in memory for a moment, then written in batches.

The hot path (:meth:`Recorder.record_message`) appends to lists and returns; a
flush timer hands what waits to a :class:`~wsresearch.recording.writer.SegmentWriter`
in a worker thread, at least every ``flush_interval`` seconds, so a crash loses at
most that interval and the event loop never waits on the disk. A write that fails
(a full disk) is not lost: its events are held and written with the next flush,
within a bound (``max_backlog``) past which the oldest go and the recording says so.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import heapq
import itertools
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._catalog import RECORDED_SEGMENT_EVENTS
from .._limits import check_count
from ..clock import Clock, SystemClock
from ..errors import RecordingError
from ..redaction import SecretMask, redact_text, redact_url
from ..spec import SpecOrigin
from .format import (
    CLOSED_BY,
    EVENT_KINDS,
    EventRow,
    MessageBuffer,
    RecordingManifest,
    clean_text,
    closed_by_from_reason,
    new_manifest,
)
from .writer import SegmentWriter

__all__ = ["Recorder"]

log = logging.getLogger(__name__)

_Batch = tuple[MessageBuffer, set[int], list[EventRow]]
# Longer flush intervals would let a crash lose more than anyone would expect.
_MAX_FLUSH_INTERVAL = 3600.0


class Recorder:
    """Append every event of a session to a recording directory.

    Parameters
    ----------
    path
        A new or empty directory. It is created (owner-only) if missing; a directory
        that holds a recording, or anything else, is refused rather than written
        into, and one that another recorder has claimed is refused too.
    source_url
        Where the feed connects (credentials are removed before it is stored).
    description
        What the feed is (the spec's description).
    channels
        The spec's channel names, for the manifest.
    redact
        JSON keys whose values are masked in ``sent`` events.
    origin
        The spec's :class:`~wsresearch.spec.SpecOrigin`, so the recording can rebuild it.
    flush_interval
        Seconds between writes (at most this much is lost in a crash); finite,
        at most an hour.
    rotate_interval
        Seconds per segment folder; finite, at least a second.
    segment_events
        A segment file grows, flush by flush, to this many events: while a flush's
        events fit, the current file is written again, whole and atomically, with them
        after its own, so a crash still loses at most the last interval. A quiet feed's
        hour is then a few dozen files rather than one a flush (3,600), which every read
        of the recording opens one by one; a busy feed's flushes are a file each, as
        before. ``1``: a new file every flush. The default is a row group's worth
        (10,000 events).
    max_buffer
        Events held in memory before a write is started early.
    max_backlog
        Events held in memory while writes fail (a full disk, a vanished folder).
        A failed write is not lost: its events are kept and written with the next
        flush, so a disk that frees up again leaves a complete recording. Past this
        many held events the oldest are dropped, counted in :attr:`lost`, and an
        ``error`` event says which ``seq`` range went. The default holds about
        half a gigabyte of 300-byte messages.
    clock
        Time source for events without their own timestamps, and for the flush timer.
    on_error
        Called with a :class:`~wsresearch.errors.RecordingError` when a write fails;
        the recorder goes on, and the manifest says the recording is incomplete.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        source_url: str,
        description: str = "",
        channels: Sequence[str] = (),
        redact: Sequence[str] = (),
        origin: SpecOrigin | None = None,
        flush_interval: float = 1.0,
        rotate_interval: float = 3600.0,
        segment_events: int = RECORDED_SEGMENT_EVENTS,
        max_buffer: int = 100_000,
        max_backlog: int = 1_000_000,
        clock: Clock | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        # NaN fails every comparison: each check is written so that NaN fails it.
        if not 0 < flush_interval <= _MAX_FLUSH_INTERVAL:
            raise ValueError(f"flush_interval must be > 0 and <= {_MAX_FLUSH_INTERVAL:g} "
                             f"seconds, got {flush_interval}")
        if not 1.0 <= rotate_interval < math.inf:
            raise ValueError(f"rotate_interval must be a finite number of seconds >= 1, "
                             f"got {rotate_interval}")
        check_count(segment_events, "segment_events")
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be >= 1, got {max_buffer}")
        if max_backlog < max_buffer:
            raise ValueError(
                f"max_backlog must be >= max_buffer ({max_buffer}), got {max_backlog}"
            )
        self.path = Path(path)
        self._writer = SegmentWriter(self.path, rotate_interval=rotate_interval,
                                     grow_to=segment_events)
        self._clock = clock or SystemClock()
        self._redact = tuple(redact)
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._max_backlog = max_backlog
        self._failing = False  # the last write failed: retry on the timer only
        self._on_error = on_error
        # Messages are buffered as their texts and, per run received together, its numbers
        # (MessageBuffer): the hot path makes no number object a message, and the writer
        # makes the columns of numbers from the runs, in arrays.
        self._messages = MessageBuffer()
        self._binary: set[int] = set()
        self._others: list[EventRow] = []
        self._hidden = SecretMask()
        self._in_flight = 0  # events of the batch being written
        self._generation = 0  # of the last open: where the stop event belongs
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._wake = asyncio.Event()
        self._writing: asyncio.Future[None] | None = None
        self.flushed_seq = -1
        """Highest ``seq`` safely on disk."""
        self.failed_writes = 0
        """Writes that failed (each is retried with the next flush)."""
        self.lost = 0
        """Events lost: dropped from the backlog, or still unwritten at :meth:`stop`."""
        self.manifest: RecordingManifest = new_manifest(
            source_url=source_url,
            description=description,
            channels=channels,
            redact=self._redact,
            origin=origin,
            flush_interval=flush_interval,
            rotate_interval=rotate_interval,
            receive_times="recorded",  # every receive time is this clock's, taken on arrival
        )

    @property
    def events(self) -> int:
        """Events recorded so far (written or buffered)."""
        return self._seq

    @property
    def running(self) -> bool:
        """Whether the flush timer runs."""
        return self._task is not None and not self._task.done()

    @property
    def started(self) -> bool:
        """Whether :meth:`start` made the directory this recording's (stopped since or not).

        False where it refused the directory (one holding a recording, say): what is
        there is not this recorder's.
        """
        return self._started

    async def start(self) -> None:
        """Create the directory and manifest and start the flush timer.

        Raises
        ------
        RecordingError
            If the directory already holds a recording, or cannot be created.
        """
        if self.running:
            return
        manifest = self.manifest.model_copy(update={"started_wall_ns": self._clock.time_ns()})
        self._writer.open(manifest)
        self._started = True
        self.manifest = manifest
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="wsresearch-recorder"
        )

    async def stop(self) -> None:
        """Write everything buffered, mark the manifest complete, stop the timer."""
        task, self._task = self._task, None
        if task is None:
            return
        try:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self._finish()
        finally:  # even when the stop itself is interrupted: the directory is not left claimed
            self._writer.release()

    async def _finish(self) -> None:
        """Write the stop event and everything held, then the final manifest."""
        # The end of the session: time spent disconnected, or stale, up to here counts.
        self.record("stop", self._generation)
        await self.flush()
        unwritten = self.held
        if unwritten:  # the last write failed too: nothing more can be done
            log.error("recording %s stopped with %d event(s) never written", self.path,
                      unwritten)
            self.lost += unwritten
            self._messages, self._others, self._binary = MessageBuffer(), [], set()
        update: dict[str, Any] = {
            "ended_wall_ns": self._clock.time_ns(),
            "events": self._seq,
            "complete": self.lost == 0,
        }
        if self.lost:
            update["incomplete_reason"] = (
                f"{self.failed_writes} write(s) failed; {self.lost} event(s) lost"
            )
        self.manifest = self.manifest.model_copy(update=update)
        try:
            self._writer.write_manifest(self.manifest)
        except OSError as exc:
            self._fail(f"cannot write the manifest: {exc}")

    # -- the hot path and its friends ---------------------------------------------

    def record_message(
        self, data: str | bytes, generation: int, mono_ns: int, wall_ns: int
    ) -> int:
        """Record an inbound message as received; return its ``seq``.

        Stored as an event of kind ``"frame"`` (the format's name for it); bytes
        (a binary message) are stored as base64 and flagged ``binary``.

        Raises
        ------
        TypeError
            If ``data`` is neither text nor bytes; nothing is recorded.
        """
        return self.record_messages([data], generation, mono_ns, wall_ns)[0]

    def record_messages(
        self, messages: list[str | bytes], generation: int, mono_ns: int, wall_ns: int
    ) -> range:
        """Record a run of inbound messages received together; return their ``seq`` values.

        The same events as :meth:`record_message` for each in turn: one list operation
        for a run of text, and one tuple for the numbers the run's messages share.

        Raises
        ------
        TypeError
            If a message is neither text nor bytes; nothing of the run is recorded.
        """
        first = self._seq
        texts: list[str]
        if set(map(type, messages)) <= {str}:
            texts = messages  # type: ignore[assignment]  # all str: just checked
        else:  # binary messages as base64, each flagged, once every one is known to be
            texts = [data if isinstance(data, str) else _base64(data) for data in messages]
            self._binary.update(first + index for index, data in enumerate(messages)
                                if not isinstance(data, str))
        self._seq = first + len(messages)
        buffered = self._messages
        buffered.add(first, texts, generation, mono_ns, wall_ns)
        if len(buffered) >= self._max_buffer:
            self._wake.set()
        return range(first, self._seq)

    record_frame = record_message
    """The former name of :meth:`record_message`."""

    def record(
        self,
        kind: str,
        generation: int,
        *,
        mono_ns: int | None = None,
        wall_ns: int | None = None,
        data: str | None = None,
        code: int | None = None,
        reason: str | None = None,
        category: str | None = None,
        rtt: float | None = None,
        stream: str | None = None,
        healthy: bool | None = None,
        ref_seq: int | None = None,
        closed_by: str | None = None,
    ) -> int:
        """Record any event but an inbound message; return its ``seq``.

        ``sent`` data is redacted here (the ``redact`` keys' values, and every value
        given to :meth:`hide`); ``open`` data (a URL) loses its credentials. Text
        that UTF-8 cannot encode (a lone surrogate) is stored escaped
        (:func:`~wsresearch.recording.format.clean_text`), so one odd string cannot
        fail the writes after it.

        ``closed_by`` says, for a ``close``, who closed the connection: ``"client"``,
        ``"server"`` or ``"network"``. A close recorded without it gets what a
        version-1 recording is read with: ``"client"`` for a reason this side gives
        (:data:`~wsresearch.policy.CLIENT_CLOSE_REASONS`), ``"server"`` otherwise.

        Raises
        ------
        ValueError
            For an unknown kind, or ``"frame"`` (use :meth:`record_message`); for a
            ``closed_by`` that is not one of the three, or given with another kind.
        """
        if kind not in EVENT_KINDS or kind == "frame":
            raise ValueError(f"unknown event kind {kind!r}; use record_message() for "
                             "inbound messages")
        if kind == "close":
            if closed_by is None:
                closed_by = closed_by_from_reason(reason)
            elif closed_by not in CLOSED_BY:
                raise ValueError(f"closed_by must be one of {', '.join(CLOSED_BY)}, "
                                 f"got {closed_by!r}")
        elif closed_by is not None:
            raise ValueError(f"closed_by is for close events, not {kind!r}")
        if data is not None:
            data = clean_text(str(data))
            if kind == "sent":
                data = self._redacted(data)
            elif kind == "open":
                data = redact_url(data)
        if kind == "open":
            self._generation = generation
        reason, category, stream = _clean(reason), _clean(category), _clean(stream)
        seq = self._seq
        self._seq = seq + 1
        self._others.append((
            seq, generation,
            self._clock.monotonic_ns() if mono_ns is None else mono_ns,
            self._clock.time_ns() if wall_ns is None else wall_ns,
            kind, data, None, code, reason, category, rtt, stream, healthy, ref_seq, closed_by,
        ))
        return seq

    def hide(self, *values: str) -> None:
        """Mask ``values`` (a key, a signature) wherever they appear in ``sent`` events.

        For secrets no ``redact`` key names: the positional arguments of an auth
        message (``{"op": "auth", "args": [KEY, expires, SIGNATURE]}``). Values
        shorter than six characters are not masked by value.
        """
        self._hidden.add(*values)

    def _redacted(self, text: str) -> str:
        return self._hidden.apply(redact_text(text, self._redact))

    async def flush(self) -> None:
        """Write what is buffered now (in a worker thread) and wait for it.

        A write that fails is reported (``on_error``, :attr:`errors`) and its
        events are held for the next flush; see ``max_backlog``.
        """
        while self._writing is not None:  # one write at a time, in seq order
            await asyncio.wait({self._writing})
        batch: _Batch = (self._messages, self._binary, self._others)
        self._messages, self._binary, self._others = MessageBuffer(), set(), []
        if not batch[0] and not batch[2]:
            return
        writing = asyncio.ensure_future(asyncio.to_thread(self._write, *batch))
        self._writing = writing
        self._in_flight = len(batch[0]) + len(batch[2])
        writing.add_done_callback(functools.partial(self._written, batch))
        # If the caller is cancelled here, the write still finishes and is accounted
        # for by _written; the next flush waits for it.
        await asyncio.wait({writing})

    def _write(self, messages: MessageBuffer, binary: set[int], others: list[EventRow]) -> None:
        """One batch to disk (in a worker thread)."""
        self.flushed_seq = self._writer.write_segment(messages, binary, others)

    def _written(self, batch: _Batch, writing: asyncio.Future[None]) -> None:
        self._writing = None
        self._in_flight = 0
        exc = None if writing.cancelled() else writing.exception()
        if not writing.cancelled() and exc is None:
            if self._failing:
                log.warning("recording writes to %s work again; the held events are written",
                            self.path)
            self._failing = False
            return
        # A full disk must not stop the feed, nor lose what it could not write yet:
        # report, hold the events for the next flush, go on.
        self._failing = True
        self._hold(batch)
        self._fail(f"cannot write events to {self.path}: {type(exc).__name__}: {exc}; "
                   f"{self.held} event(s) held for the next write")

    @property
    def held(self) -> int:
        """Events in memory, not yet on disk (more than usual while writes fail).

        The batch being written counts too, until its write has succeeded: a write to
        a full disk takes its events back.
        """
        return len(self._messages) + len(self._others) + self._in_flight

    def _hold(self, batch: _Batch) -> None:
        """Put a failed batch back in front of what came since, within ``max_backlog``.

        Runs on the event loop once per failed flush, so it costs what arrived
        since the last flush, not the size of the backlog: the failed batch's own
        lists are extended in place.
        """
        messages, binary, others = batch
        messages.extend(self._messages)
        others.extend(self._others)
        binary |= self._binary
        self._messages, self._binary, self._others = messages, binary, others
        excess = self.held - self._max_backlog
        if excess <= 0:
            return
        # Both are in seq order: the first seq kept is the excess-th of their merge.
        first = min([*itertools.islice(messages.seqs(), 1), *(event[0] for event in others[:1])])
        keep_from = next(itertools.islice(heapq.merge(messages.seqs(),
                                                      (event[0] for event in others)),
                                          excess, None))
        messages.drop_before(keep_from)
        self._binary = {seq for seq in binary if seq >= keep_from}
        self._others = [event for event in others if event[0] >= keep_from]
        self.lost += excess
        message = (f"recording backlog full ({self._max_backlog} events) while writes fail: "
                   f"{excess} event(s) dropped, seq {first}-{keep_from - 1}")
        log.error("%s", message)
        # The error belongs to the connection of the newest event held.
        newest = [(event[0], event[1]) for event in self._others[-1:]]
        newest += [(run[0] + run[1] - 1, run[2]) for run in messages.runs[-1:]]
        generation = max(newest)[1]
        self.record("error", generation, data=message)

    # -- internals ----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            sleep = asyncio.ensure_future(self._clock.sleep(self._flush_interval))
            wake = asyncio.ensure_future(self._wake.wait())
            # While writes fail, retry on the timer only: a full buffer must not
            # turn into a loop of writes to a full disk.
            waits = {sleep} if self._failing else {sleep, wake}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleep.cancel()
                wake.cancel()
            self._wake.clear()
            await self.flush()

    def _fail(self, message: str) -> None:
        self.failed_writes += 1
        error = RecordingError(message)
        log.error("%s", message)
        if self._on_error is not None:
            self._on_error(error)

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r}, events={self._seq}, flushed_seq={self.flushed_seq})"


def _base64(data: bytes) -> str:
    """A binary message as the format stores it.

    Raises
    ------
    TypeError
        If ``data`` is not bytes-like.
    """
    return base64.b64encode(data).decode("ascii")


def _clean(value: str | None) -> str | None:
    return None if value is None else clean_text(str(value))
