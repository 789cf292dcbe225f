"""Session recordings: written at receive time, crash-safe, readable with polars alone.

A recording is a directory::

    manifest.json                       format, version, source, spec, start/end, completeness
    segments/0000/events-000000000000.parquet
    segments/0000/events-000000001873.parquet
    segments/0001/...

Every event of the session (``open``, ``frame``, ``sent``, ``close``, ``error``,
``pong``, ``drop``, ``health``, ``mark``, ``gap``, ``stop``) is one row of one
table (:data:`EVENT_SCHEMA`), numbered by ``seq``. The :class:`Recorder` keeps new
events in memory (a tuple append on the hot path) and writes them as one Parquet
file per flush, at least every ``flush_interval`` seconds, from a worker thread.
Each file is written under a temporary name and renamed when complete, so a crash
loses at most the events of the last interval and never leaves a half-written file
where a reader looks: a leftover ``.tmp`` is skipped with a warning. Files are
grouped in segment folders, a new one every ``rotate_interval`` seconds, so no
folder or file grows without bound. One recorder writes a directory: it claims it
with a lock file, and refuses a directory that is not new or empty.

Read it back with :class:`Recording`, or with polars alone::

    pl.read_parquet("session/segments/*/*.parquet").sort("seq")

``docs/recording-format.md`` documents the format and the measurements behind it.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import functools
import heapq
import importlib
import io
import itertools
import json
import logging
import math
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._files import make_private_dirs, write_private
from ._limits import INT64_MAX, INT64_MIN
from .clock import Clock, SystemClock, VirtualClock
from .errors import RecordingError, RecordingFormatError, first_error
from .redaction import SecretMask, redact_text, redact_url, secret_values
from .spec import FeedSpec, SpecOrigin

__all__ = [
    "EVENT_KINDS",
    "EVENT_SCHEMA",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Recorder",
    "Recording",
    "RecordingManifest",
    "redact_text",
    "secret_values",
]

log = logging.getLogger(__name__)

FORMAT_NAME = "wsresearch-recording"
FORMAT_VERSION = 1
EVENT_KINDS: tuple[str, ...] = (
    "open", "frame", "sent", "close", "error", "pong", "drop", "health", "mark", "gap", "stop",
)
"""Every event kind a recorder writes. Readers skip kinds they do not know, so a
recording with a kind added later still reads, replays and reports."""

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "seq": pl.Int64(),  # 0, 1, 2 ... over the whole recording
    "generation": pl.Int64(),  # connection generation the event belongs to
    "mono_ns": pl.Int64(),  # monotonic receive/event time
    "wall_ns": pl.Int64(),  # wall-clock time, ns since the epoch
    "kind": pl.String(),
    "data": pl.String(),  # frame text (base64 when binary), sent text, note, error, URL
    "binary": pl.Boolean(),  # frame: data is base64 of a binary frame
    "code": pl.Int64(),  # close: close code
    "reason": pl.String(),  # close: reason
    "category": pl.String(),  # close: CloseCategory name
    "rtt": pl.Float64(),  # pong: round-trip time in seconds
    "stream": pl.String(),  # health: stream name; gap: channel
    "healthy": pl.Boolean(),  # health: new state
    "ref_seq": pl.Int64(),  # drop: seq of the frame the queue dropped; gap: the revealing frame
}
"""Columns of every segment file, in order."""

_FRAME_COLUMNS = ("seq", "generation", "mono_ns", "wall_ns", "data")
_FrameColumns = tuple[list[int], list[int], list[int], list[int], list[str]]
_Batch = tuple[_FrameColumns, set[int], list[tuple[Any, ...]]]
_MANIFEST = "manifest.json"
_SEGMENTS = "segments"
_LOCK = ".lock"
_INT64 = range(INT64_MIN, INT64_MAX + 1)
# Longer flush intervals would let a crash lose more than anyone would expect.
_MAX_FLUSH_INTERVAL = 3600.0


def clean_text(text: str) -> str:
    r"""``text`` as it can be stored: a lone surrogate (which UTF-8 cannot encode) escaped.

    A note or an error message can hold one (``os.fsdecode`` of a file name that is
    not UTF-8 gives ``"\udce9"``); written as is, it would fail the whole segment.

    Examples
    --------
    >>> clean_text("caf\udce9.csv")
    'caf\\udce9.csv'
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _clean(value: str | None) -> str | None:
    return None if value is None else clean_text(str(value))


_Ns = Annotated[int, Field(strict=True, ge=_INT64.start, lt=_INT64.stop)]


class RecordingManifest(BaseModel):
    """``manifest.json``: what was recorded, from where, and whether it is complete.

    Every field is checked when a recording is opened (a manifest is data, perhaps
    edited or damaged): times are ints of ns that fit in 64 bits, counts are not
    negative, intervals are finite and positive.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    format: Literal["wsresearch-recording"] = "wsresearch-recording"
    version: int = Field(FORMAT_VERSION, strict=True, ge=1)
    wsresearch_version: str
    source_url: str
    description: str = ""
    channels: list[str] = []
    redacted_keys: list[str] = []
    started_wall_ns: _Ns
    ended_wall_ns: _Ns | None = None
    complete: bool = False
    incomplete_reason: str | None = None
    events: int | None = Field(None, ge=0)
    spec_origin: SpecOrigin | None = None
    flush_interval: float = Field(gt=0)
    rotate_interval: float = Field(gt=0)


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
    max_buffer
        Events held in memory before a write is started early.
    max_backlog
        Events held in memory while writes fail (a full disk, a vanished folder).
        A failed write is not lost: its events are kept and written with the next
        flush, so a disk that frees up again leaves a complete recording. Past this
        many held events the oldest are dropped, counted in :attr:`lost`, and an
        ``error`` event says which ``seq`` range went. The default holds about
        half a gigabyte of 300-byte frames.
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
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be >= 1, got {max_buffer}")
        if max_backlog < max_buffer:
            raise ValueError(
                f"max_backlog must be >= max_buffer ({max_buffer}), got {max_backlog}"
            )
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self._redact = tuple(redact)
        self._flush_interval = flush_interval
        self._rotate_ns = round(rotate_interval * 1e9)
        self._max_buffer = max_buffer
        self._max_backlog = max_backlog
        self._failing = False  # the last write failed: retry on the timer only
        self._on_error = on_error
        # Frames are buffered column by column (seq, generation, mono_ns, wall_ns,
        # data): five appends on the hot path cost less than transposing rows in
        # the writer, which holds the GIL while it does.
        self._frames: _FrameColumns = ([], [], [], [], [])
        self._binary: set[int] = set()
        self._others: list[tuple[Any, ...]] = []
        self._hidden = SecretMask()
        self._in_flight = 0  # events of the batch being written
        self._generation = 0  # of the last open: where the stop event belongs
        self._locked = False  # this recorder made the lock file: creating it is the lock
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._writing: asyncio.Future[None] | None = None
        self._started_wall = 0
        self.flushed_seq = -1
        """Highest ``seq`` safely on disk."""
        self.errors = 0
        """Writes that failed (each is retried with the next flush)."""
        self.lost = 0
        """Events lost: dropped from the backlog, or still unwritten at :meth:`stop`."""
        from . import __version__

        self.manifest = RecordingManifest(
            wsresearch_version=__version__,
            source_url=redact_url(source_url),
            description=description.replace(source_url, redact_url(source_url)),
            channels=list(channels),
            redacted_keys=list(self._redact),
            spec_origin=origin,
            started_wall_ns=0,
            flush_interval=flush_interval,
            rotate_interval=rotate_interval,
        )

    @property
    def events(self) -> int:
        """Events recorded so far (written or buffered)."""
        return self._seq

    @property
    def running(self) -> bool:
        """Whether the flush timer runs."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Create the directory and manifest and start the flush timer.

        Raises
        ------
        RecordingError
            If the directory already holds a recording, or cannot be created.
        """
        if self.running:
            return
        self._claim()
        try:
            make_private_dirs(self.path / _SEGMENTS)
            self._started_wall = self._clock.time_ns()
            self.manifest = self.manifest.model_copy(
                update={"started_wall_ns": self._started_wall})
            self._write_manifest()
        except OSError as exc:
            self._release()
            raise RecordingError(f"cannot create recording directory {self.path}: {exc}") from None
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="wsresearch-recorder"
        )

    def _claim(self) -> None:
        """Make :attr:`path` this recorder's: new or empty, and locked against a second writer.

        The directory is created if missing (owner-only). An existing one is never
        changed: it must be empty, and the lock file is created exclusively, so of
        two recorders started at once on one directory, one is refused.
        """
        path = self.path
        try:
            make_private_dirs(path)
        except OSError as exc:
            raise RecordingError(f"cannot create recording directory {path}: {exc}") from None
        if (path / _MANIFEST).exists():
            raise RecordingError(f"{path} already holds a recording; choose a new directory")
        try:
            os.close(os.open(path / _LOCK, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            self._locked = True
        except FileExistsError:
            raise RecordingError(
                f"another recorder is writing to {path} (or one was killed there, leaving "
                f"{_LOCK}); choose a new directory") from None
        except OSError as exc:
            raise RecordingError(f"cannot write to {path}: {exc}") from None
        others = sorted(p.name for p in path.iterdir() if p.name != _LOCK)
        if others:
            self._release()
            raise RecordingError(
                f"{path} is not empty ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}"
                "); a recording goes into a new or empty directory")

    def _release(self) -> None:
        """Give the directory up: the lock file goes, so the recording reads as finished."""
        if not self._locked:
            return
        self._locked = False
        with contextlib.suppress(OSError):
            (self.path / _LOCK).unlink()

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
            self._release()

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
            self._frames, self._others, self._binary = ([], [], [], [], []), [], set()
        update: dict[str, Any] = {
            "ended_wall_ns": self._clock.time_ns(),
            "events": self._seq,
            "complete": self.lost == 0,
        }
        if self.lost:
            update["incomplete_reason"] = (
                f"{self.errors} write(s) failed; {self.lost} event(s) lost"
            )
        self.manifest = self.manifest.model_copy(update=update)
        try:
            self._write_manifest()
        except OSError as exc:
            self._fail(f"cannot write the manifest: {exc}")

    # -- the hot path and its friends ---------------------------------------------

    def record_frame(self, data: str | bytes, generation: int, mono_ns: int, wall_ns: int) -> int:
        """Record an inbound frame as received; return its ``seq``."""
        seq = self._seq
        self._seq = seq + 1
        if not isinstance(data, str):
            self._binary.add(seq)
            data = base64.b64encode(bytes(data)).decode("ascii")
        seqs, generations, monos, walls, datas = self._frames
        seqs.append(seq)
        generations.append(generation)
        monos.append(mono_ns)
        walls.append(wall_ns)
        datas.append(data)
        if len(seqs) >= self._max_buffer:
            self._wake.set()
        return seq

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
    ) -> int:
        """Record any event but a frame; return its ``seq``.

        ``sent`` data is redacted here (the ``redact`` keys' values, and every value
        given to :meth:`hide`); ``open`` data (a URL) loses its credentials. Text
        that UTF-8 cannot encode (a lone surrogate) is stored escaped
        (:func:`clean_text`), so one odd string cannot fail the writes after it.
        """
        if kind not in EVENT_KINDS or kind == "frame":
            raise ValueError(f"unknown event kind {kind!r}; use record_frame() for frames")
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
            kind, data, None, code, reason, category, rtt, stream, healthy, ref_seq,
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
        batch: _Batch = (self._frames, self._binary, self._others)
        self._frames, self._binary, self._others = ([], [], [], [], []), set(), []
        if not batch[0][0] and not batch[2]:
            return
        writing = asyncio.ensure_future(asyncio.to_thread(self._write_segment, *batch))
        self._writing = writing
        self._in_flight = len(batch[0][0]) + len(batch[2])
        writing.add_done_callback(functools.partial(self._written, batch))
        # If the caller is cancelled here, the write still finishes and is accounted
        # for by _written; the next flush waits for it.
        await asyncio.wait({writing})

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
        return len(self._frames[0]) + len(self._others) + self._in_flight

    def _hold(self, batch: _Batch) -> None:
        """Put a failed batch back in front of what came since, within ``max_backlog``.

        Runs on the event loop once per failed flush, so it costs what arrived
        since the last flush, not the size of the backlog: the failed batch's own
        lists are extended in place.
        """
        frames, binary, others = batch
        columns: tuple[list[Any], ...] = frames
        arrived: tuple[list[Any], ...] = self._frames
        for held, new in zip(columns, arrived, strict=True):
            held.extend(new)
        others.extend(self._others)
        binary |= self._binary
        self._frames, self._binary, self._others = frames, binary, others
        excess = self.held - self._max_backlog
        if excess <= 0:
            return
        # Both lists are in seq order: the first seq kept is the excess-th of their merge.
        seqs = heapq.merge(frames[0], (event[0] for event in others))
        first = min(frames[0][:1] + [event[0] for event in others[:1]])
        keep_from = next(itertools.islice(seqs, excess, None))
        cut = bisect.bisect_left(frames[0], keep_from)
        for column in columns:
            del column[:cut]
        self._binary = {seq for seq in binary if seq >= keep_from}
        self._others = [event for event in others if event[0] >= keep_from]
        self.lost += excess
        message = (f"recording backlog full ({self._max_backlog} events) while writes fail: "
                   f"{excess} event(s) dropped, seq {first}-{keep_from - 1}")
        log.error("%s", message)
        generation = self._others[-1][1] if self._others else frames[1][-1]
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

    def _write_segment(
        self,
        frames: _FrameColumns,
        binary: set[int],
        others: list[tuple[Any, ...]],
    ) -> None:
        parts = []
        if frames[0]:
            columns = cast(tuple[list[Any], ...], frames)
            part = pl.DataFrame([
                _column(name, values)
                for name, values in zip(_FRAME_COLUMNS, columns, strict=True)
            ]).with_columns(kind=pl.lit("frame"))
            if binary:
                part = part.with_columns(binary=pl.col("seq").is_in(list(binary)))
            else:
                part = part.with_columns(binary=pl.lit(False))
            parts.append(part)
        if others:
            parts.append(pl.DataFrame(others, schema=EVENT_SCHEMA, orient="row"))
        table = pl.concat(parts, how="diagonal_relaxed")
        table = table.select(
            [
                pl.col(c).cast(t) if c in table.columns else pl.lit(None, dtype=t).alias(c)
                for c, t in EVENT_SCHEMA.items()
            ]
        ).sort("seq")
        first_seq = int(table["seq"][0])
        first_wall = int(table["wall_ns"][0])
        rotation = max(0, (first_wall - self._started_wall) // self._rotate_ns)
        folder = self.path / _SEGMENTS / f"{rotation:04d}"
        make_private_dirs(folder)
        # zstd level 1: as small as the default level 3 for frame text here, and a
        # third less CPU, which is taken from the feed sharing this core.
        # Encoded in memory first, so that a failing disk surfaces as the OSError
        # itself (ENOSPC, EIO) and not as a polars "transport error".
        encoded = io.BytesIO()
        table.write_parquet(encoded, compression="zstd", compression_level=1, statistics=True)
        write_private(folder / f"events-{first_seq:012d}.parquet", encoded.getbuffer())
        self.flushed_seq = int(table["seq"][-1])

    def _write_manifest(self) -> None:
        text = self.manifest.model_dump_json(indent=2) + "\n"
        write_private(self.path / _MANIFEST, text.encode("utf-8"))

    def _fail(self, message: str) -> None:
        self.errors += 1
        error = RecordingError(message)
        log.error("%s", message)
        if self._on_error is not None:
            self._on_error(error)

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r}, events={self._seq}, flushed_seq={self.flushed_seq})"


def _column(name: str, values: list[Any]) -> pl.Series:
    """One column of a segment; frame text that UTF-8 cannot encode is stored escaped.

    Frames from a socket are always valid UTF-8 (websockets checks), so the
    escape path runs only for text handed to the recorder directly.
    """
    dtype = EVENT_SCHEMA[name]
    try:
        return pl.Series(name, values, dtype=dtype)
    except UnicodeEncodeError:
        log.warning("a recorded frame held text UTF-8 cannot encode (a lone surrogate); "
                    "it is stored with that character escaped")
        return pl.Series(name, [clean_text(v) for v in values], dtype=dtype)


class Recording:
    """A recording directory, opened for reading.

    Use :meth:`open`. Segment files are read in ``seq`` order; a leftover
    temporary file from a crash, or a file that cannot be read, is skipped with
    a warning.
    """

    def __init__(self, path: Path, manifest: RecordingManifest, files: list[Path]) -> None:
        self.path = path
        self.manifest = manifest
        self.files = files
        """The readable segment files, in ``seq`` order."""
        self._events: pl.DataFrame | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Recording:
        """Open the recording at ``path``.

        Raises
        ------
        RecordingFormatError
            If ``path`` is not a recording, or was written by a newer format version.
        """
        root = Path(path)
        manifest_path = root / _MANIFEST
        if not manifest_path.is_file():
            raise RecordingFormatError(f"{root} is not a recording: it has no {_MANIFEST}")
        try:
            raw = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RecordingFormatError(f"cannot read {manifest_path}: {exc}") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
            raise RecordingFormatError(f"{manifest_path} is not a {FORMAT_NAME} manifest")
        version = raw.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise RecordingFormatError(
                f"{manifest_path} is damaged: its version must be an integer >= 1, "
                f"got {version!r}")
        if version > FORMAT_VERSION:
            raise RecordingFormatError(
                f"{root} uses recording format version {version}, newer than this "
                f"wsresearch reads (version {FORMAT_VERSION}); upgrade wsresearch"
            )
        try:
            manifest = RecordingManifest.model_validate(raw)
        except ValidationError as exc:
            raise RecordingFormatError(
                f"{manifest_path} is damaged: {first_error(exc)}") from None
        return cls(root, manifest, _segment_files(root / _SEGMENTS))

    @classmethod
    def from_frames(
        cls,
        path: str | os.PathLike[str],
        frames: Iterable[str | bytes | tuple[int, str | bytes]],
        *,
        spec: FeedSpec | None = None,
        source_url: str = "ws://127.0.0.1/",
        description: str = "",
    ) -> Recording:
        """Write frames captured elsewhere as a one-connection recording, and open it.

        For frames another tool captured (the JSON-lines files of other
        recorders, an exchange's sample messages), so they can be replayed,
        reported on and exported like any session.

        Parameters
        ----------
        path
            A new directory.
        frames
            Frame texts in arrival order, or ``(wall_ns, text)`` pairs where the
            receive times are known. Without times, frames are 1 ms apart from
            the epoch, so health figures say nothing about the capture.
        spec
            The spec the frames belong to: its URL, channels and origin go into
            the manifest, so :attr:`spec` rebuilds it for replay.
        source_url
            The URL to record when there is no ``spec``.
        description
            What the frames are and where they come from.

        Raises
        ------
        RecordingError
            If ``path`` already holds a recording or cannot be written.
        TypeError, ValueError
            For a frame that is not text, bytes or a ``(wall_ns, text)`` pair with
            a time that fits in 64 bits, or text UTF-8 cannot encode (the error
            names its position); nothing is left behind at ``path``.
        """
        from .notebook import run

        if isinstance(frames, str | bytes):
            raise TypeError("frames must be an iterable of frames, not one "
                            f"{type(frames).__name__}: wrap it in a list")

        run(_write_frames(Path(path), frames, spec, source_url, description))
        return cls.open(path)

    @property
    def spec(self) -> FeedSpec | None:
        """The spec that recorded this session, rebuilt; ``None`` where it cannot be.

        Specs from the adapters in :mod:`wsresearch.exchanges` are rebuilt from the
        manifest's ``spec_origin`` (adapter name and arguments), pointed at the
        recorded URL. A spec built by hand, or changed in a way that decides rows,
        left no origin: pass it to :func:`~wsresearch.replay.replay` yourself.

        Only the arguments the adapter itself records in an origin are taken from the
        manifest (symbols, channels, market options): a manifest is data, and must
        not set health, queue or timing fields of the spec, nor messages it sends.

        Raises
        ------
        RecordingFormatError
            If the origin names an adapter this wsresearch does not have, or
            arguments it does not declare or refuses.
        """
        origin = self.manifest.spec_origin
        if origin is None:
            return None
        try:
            adapter = importlib.import_module(f"wsresearch.exchanges.{origin.adapter}")
            build = adapter.spec
        except (ImportError, AttributeError):
            raise RecordingFormatError(
                f"{self.path} was recorded with the adapter {origin.adapter!r}, which this "
                "wsresearch does not have; upgrade it, or pass the spec yourself"
            ) from None
        declared = _recorded_arguments(build, self.manifest.source_url)
        unknown = sorted(set(origin.arguments) - declared)
        if unknown:
            raise RecordingFormatError(
                f"{self.path}: the manifest's spec_origin gives the {origin.adapter!r} adapter "
                f"argument(s) {unknown} it does not take from a recording; it takes "
                f"{sorted(declared)}")
        try:
            spec = build(url=self.manifest.source_url, **origin.arguments)
        except Exception as exc:  # any refusal of edited arguments, whatever it raises
            raise RecordingFormatError(
                f"cannot rebuild the {origin.adapter!r} spec of {self.path}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(spec, FeedSpec):
            raise RecordingFormatError(
                f"the {origin.adapter!r} adapter did not build a FeedSpec for {self.path}")
        return spec

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """Yield every event as a dict, in ``seq`` order, one segment file in memory at a time."""
        for file in self.files:
            table = self._read(file)
            if table is not None:
                yield from table.iter_rows(named=True)

    def events(self) -> pl.DataFrame:
        """Every event, one row each, in ``seq`` order (:data:`EVENT_SCHEMA`)."""
        if self._events is None:
            tables = [t for t in (self._read(f) for f in self.files) if t is not None]
            self._events = (
                pl.concat(tables).sort("seq") if tables
                else pl.DataFrame(schema=EVENT_SCHEMA)
            )
        return self._events

    def frames(self) -> pl.DataFrame:
        """Inbound frames only: ``seq, generation, recv_mono_ns, recv_wall_ns, data``.

        A last column, ``binary``, says which frames were binary: their ``data`` holds
        the frame's bytes in base64.
        """
        return (
            self.events()
            .filter(pl.col("kind") == "frame")
            .select("seq", "generation", pl.col("mono_ns").alias("recv_mono_ns"),
                    pl.col("wall_ns").alias("recv_wall_ns"), "data", "binary")
        )

    def _read(self, file: Path) -> pl.DataFrame | None:
        try:
            table = pl.read_parquet(file, glob=False)  # a path, never a pattern
            if table.columns != list(EVENT_SCHEMA):  # a damaged footer can rename a column
                raise ValueError(f"its columns {table.columns} are not the event schema's")
            return table.cast(EVENT_SCHEMA)  # type: ignore[arg-type]
        # A damaged file must not hide the others. polars' Parquet reader can also
        # panic on one (a PanicException is a BaseException, not an Exception).
        except (Exception, pl.exceptions.PanicException) as exc:
            warnings.warn(f"skipping unreadable segment {file}: {exc}", stacklevel=3)
            return None

    def __repr__(self) -> str:
        events = self.events()
        if events.height == 0:
            return f"Recording({str(self.path)!r}, empty)"
        kinds = events["kind"]
        frames = int((kinds == "frame").sum())
        closes = events.filter(pl.col("kind") == "close")
        codes = ", ".join(str(c) for c in closes["code"].to_list()) or "none"
        duration = (int(events["mono_ns"].max()) - int(events["mono_ns"].min())) / 1e9  # type: ignore[arg-type]
        state = "complete" if self.manifest.complete else "INCOMPLETE"
        return (
            f"Recording({str(self.path)!r}, {state}, {duration:.1f} s, {frames} frames, "
            f"{events['generation'].n_unique()} generations, closes: {codes})"
        )


def _recorded_arguments(build: Callable[..., Any], url: str) -> set[str]:
    """The arguments an adapter records in a spec's origin: what a manifest may give it.

    Read off the adapter's own default spec, so they are exactly what it writes (symbols,
    channels, market options), never its other parameters (an API key, messages to
    send) nor its ``**overrides`` (any :class:`~wsresearch.spec.FeedSpec` field).
    """
    try:
        origin = build(url=url).origin
    except Exception:  # an adapter that cannot build a default: take nothing from the manifest
        return set()
    return set() if origin is None else set(origin.arguments)


def _segment_files(segments: Path) -> list[Path]:
    """The segment files to read, in ``seq`` order; anything else is skipped with a warning.

    Only regular files are read: a FIFO, socket or device named like a segment
    would block or mislead the reader. A leftover temporary file is the
    unfinished write of a session that ended abruptly.
    """
    files = []
    for file in sorted(segments.glob("*/*"), key=lambda p: p.name):
        if file.name.endswith(".tmp"):
            warnings.warn(f"skipping {file}: an unfinished write (the session ended abruptly)",
                          stacklevel=3)
        elif file.suffix != ".parquet":
            continue
        elif not file.is_file():  # follows a symlink: a link to a segment is read
            warnings.warn(f"skipping {file}: not a regular file", stacklevel=3)
        else:
            files.append(file)
    return files


async def _write_frames(
    path: Path,
    frames: Iterable[str | bytes | tuple[int, str | bytes]],
    spec: FeedSpec | None,
    source_url: str,
    description: str,
) -> None:
    items = iter(frames)
    head = list(itertools.islice(items, 1))  # the first frame, if there is one
    # The session starts with its first frame: times given are kept, the manifest's
    # start and end follow them, and the connection opens at the first frame.
    first_wall = (_frame(head[0], 1)[0] or 0) if head else 0
    clock = VirtualClock(mono_ns=0, wall_ns=first_wall)
    recorder = Recorder(
        path,
        source_url=spec.url if spec is not None else source_url,
        description=description or (spec.description if spec is not None else ""),
        channels=spec.channel_names if spec is not None else (),
        redact=spec.redact if spec is not None else (),
        origin=spec.origin if spec is not None else None,
        flush_interval=3600.0,
        clock=clock,
    )
    await recorder.start()
    try:
        recorder.record("open", 1, mono_ns=0, wall_ns=first_wall,
                        data=recorder.manifest.source_url)
        mono = 0
        for index, item in enumerate(itertools.chain(head, items), 1):
            wall, data = _frame(item, index)
            if wall is None:
                wall = mono = index * 1_000_000
            else:
                mono = wall - first_wall
            recorder.record_frame(data, 1, mono, wall)
            if index % 100_000 == 0:
                await recorder.flush()
        clock.set(max(mono, 0), wall_ns=first_wall + max(mono, 0))
    except BaseException:
        await recorder.stop()
        shutil.rmtree(path, ignore_errors=True)  # made here, from input that was refused
        raise
    await recorder.stop()
    if recorder.lost:
        shutil.rmtree(path, ignore_errors=True)  # half a recording: gone, so a retry works
        raise RecordingError(f"{recorder.lost} event(s) could not be written to {path} "
                             f"({recorder.errors} failed write(s)); nothing was kept")


def _frame(item: object, index: int) -> tuple[int | None, str | bytes]:
    """``(wall_ns or None, data)`` of one ``from_frames`` item, or a clear error naming it."""
    wall: int | None = None
    data = item
    if isinstance(item, tuple):
        if len(item) != 2:
            raise ValueError(f"frame {index}: a pair is (wall_ns, text), got {len(item)} items")
        time, data = item
        if isinstance(time, bool) or not isinstance(time, int) or time not in _INT64:
            raise ValueError(f"frame {index}: wall_ns must be an int of 64 bits "
                             f"(ns since the epoch), got {time!r}")
        wall = time
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, str | bytes):
        raise TypeError(f"frame {index}: a frame is text or bytes, got {type(data).__name__}")
    if isinstance(data, str) and clean_text(data) is not data:
        raise ValueError(f"frame {index}: its text holds a character UTF-8 cannot encode "
                         "(a lone surrogate, as from decoding bytes with surrogateescape); "
                         "a WebSocket text frame never does: pass the frame's bytes")
    return wall, data
