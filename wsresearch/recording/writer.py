"""Writing a recording directory, synchronously: its claim, its segments and its manifest.

The async :class:`~wsresearch.recording.recorder.Recorder` buffers a live session
and hands batches to a :class:`SegmentWriter` in a worker thread;
:func:`write_events` (behind :func:`wsresearch.importers.import_capture`) and
:func:`write_capture` (behind :meth:`Recording.from_frames
<wsresearch.recording.reader.Recording.from_frames>`) use the same writer
directly, with no event loop, clock or timer, as events captured elsewhere
are all there already. Every file is written whole under a temporary name and
renamed, owner-only (:func:`~wsresearch._files.write_private_parquet`, which
exported datasets use too): a crash leaves the previous state or the new one,
never a torn file where a reader looks.

The directory claim lives here rather than in the recorder because both writers
need it: a directory is new or empty, and a lock file created exclusively keeps
a second writer out.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import polars as pl

from .._catalog import SEGMENT_EVENTS
from .._files import (
    CAN_LOCK,
    hold_file,
    make_private_dirs,
    write_private,
    write_private_parquet,
)
from .._limits import INT64_MAX, INT64_MIN, check_count
from ..clock import NS_PER_S
from ..errors import RecordingError
from ..redaction import (
    DEFAULT_REDACT,
    SecretMask,
    auth_secret_values,
    mask_auth,
    redact_request_url,
    redact_text,
    redact_url,
    secret_values,
)
from ..spec import SpecOrigin
from .format import (
    LOCK,
    MANIFEST,
    SEGMENTS,
    EventRow,
    MessageBuffer,
    MessageColumns,
    RecordingManifest,
    clean_text,
    event_table,
    new_manifest,
)

__all__ = ["CAPTURED_KINDS", "SEGMENT_COMPRESSION_LEVEL", "SEGMENT_EVENTS", "SEGMENT_ROW_GROUP",
           "Captured", "SegmentWriter", "capture_item", "lock_held", "write_capture",
           "write_events"]

# zstd level 1: as small as the default level 3 for message text here, and a third
# less CPU, which is taken from the feed sharing this core.
SEGMENT_COMPRESSION_LEVEL = 1
# Rows per row group of a segment file. A reader decodes whole row groups: a replay's
# piece of a large segment (reader._PIECE rows, a multiple of this) then decodes only its
# own rows, and a whole segment's row groups are decoded on every core at once.
SEGMENT_ROW_GROUP = 10_000
# A growing segment file is written again at every flush while its events' text is less
# than this: the events of big messages (a book's snapshot a second) stop it long before
# grow_to does, so a rewrite costs a few ms, never more.
_GROW_BYTES = 2 * 2**20
# Messages of a capture without receive times are this far apart, from the epoch.
_CAPTURE_SPACING_NS = 1_000_000


class SegmentWriter:
    """The files of one recording directory: its lock, its segment files, its manifest.

    Synchronous and without a clock: callers say what to write and when. Segment
    files go into a new folder every ``rotate_interval`` seconds of wall time after
    the start, so no folder grows without bound.

    Parameters
    ----------
    path
        The recording directory.
    rotate_interval
        Seconds of wall time per segment folder.
    grow_to
        A segment file of fewer events than this (and under 2 MB of their text) takes
        the next batch too: the file is written again, whole, with its events and the
        batch's (atomically, as every file is), while they are at most this many and in
        the same folder. So a quiet feed's recording is a file per ``grow_to`` events,
        not one per batch. A write that fails ends the file's growth: the next batch
        begins a new one. ``1`` (the default): a file per batch.
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 rotate_interval: float = 3600.0, grow_to: int = 1) -> None:
        self.path = Path(path)
        self._rotate_ns = round(rotate_interval * NS_PER_S)
        self._started_wall_ns = 0
        self._locked = False  # this writer made the lock file: creating it is the lock
        self._lock_descriptor: int | None = None  # open on it, and held (flock), meanwhile
        self._grow_to = grow_to
        # The last file written while it may grow: its folder, its path, its events.
        self._growing: tuple[int, Path, pl.DataFrame] | None = None

    @property
    def locked(self) -> bool:
        """Whether this writer holds the directory (between :meth:`open` and :meth:`release`)."""
        return self._locked

    def open(self, manifest: RecordingManifest) -> None:
        """Claim the directory, make its segment folder and write the first ``manifest``.

        Segment folders count from ``manifest.started_wall_ns``.

        Raises
        ------
        RecordingError
            If the directory holds a recording or anything else, another writer holds
            it, or it cannot be created or written.
        """
        self._claim()
        try:
            make_private_dirs(self.path / SEGMENTS)
            self._started_wall_ns = manifest.started_wall_ns
            self.write_manifest(manifest)
        except OSError as exc:
            self.release()
            raise RecordingError(
                f"cannot create recording directory {self.path}: {exc}") from None

    def _claim(self) -> None:
        """Make :attr:`path` this writer's: new or empty, and locked against a second writer.

        The directory is created if missing (owner-only). An existing one is never
        changed: it must be empty, and the lock file is created exclusively, so of
        two writers started at once on one directory, one is refused.
        """
        path = self.path
        try:
            make_private_dirs(path)
        except OSError as exc:
            raise RecordingError(f"cannot create recording directory {path}: {exc}") from None
        if (path / MANIFEST).exists():
            raise RecordingError(f"{path} already holds a recording; choose a new directory")
        try:
            descriptor = os.open(path / LOCK, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            self._locked = True
            if CAN_LOCK:  # held while this writer lives: see lock_held()
                hold_file(descriptor)  # at most a reader's look at it to wait for
            self._lock_descriptor = descriptor
        except FileExistsError:
            raise RecordingError(
                f"another recorder is writing to {path} (or one was killed there, leaving "
                f"{LOCK}); choose a new directory") from None
        except OSError as exc:
            raise RecordingError(f"cannot write to {path}: {exc}") from None
        others = sorted(p.name for p in path.iterdir() if p.name != LOCK)
        if others:
            self.release()
            raise RecordingError(
                f"{path} is not empty ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}"
                "); a recording goes into a new or empty directory")

    def release(self) -> None:
        """Give the directory up: the lock file goes, so the recording reads as finished."""
        if not self._locked:
            return
        self._locked = False
        with contextlib.suppress(OSError):
            (self.path / LOCK).unlink()
        descriptor, self._lock_descriptor = self._lock_descriptor, None
        if descriptor is not None:
            os.close(descriptor)

    def write_segment(
        self, messages: MessageColumns | MessageBuffer, binary: Collection[int],
        others: Sequence[EventRow],
    ) -> int:
        """Write one batch of events to a segment file; return the last ``seq`` written.

        A new file is named by its first ``seq`` and goes into the folder of its first
        event's wall time. Where the last file may grow (``grow_to``), it is written
        again with the batch after its events instead. A write that fails leaves the file
        as it was, and the batch is the caller's to write again: into a new file, since a
        failed write ends the last one's growth.

        Parameters
        ----------
        messages
            Inbound messages: as a recorder buffers them, or column by column.
        binary
            The ``seq`` of every binary message (its ``data`` is base64).
        others
            Every other event, one row each.

        Raises
        ------
        OSError
            What the filesystem said (``ENOSPC``, a folder gone): nothing was written.
        """
        table = event_table(messages, binary, others)
        first_wall = int(table["wall_ns"][0])
        rotation = max(0, (first_wall - self._started_wall_ns) // self._rotate_ns)
        growing, self._growing = self._growing, None
        if (growing is not None and growing[0] == rotation
                and growing[2].height + table.height <= self._grow_to):
            file, table = growing[1], pl.concat([growing[2], table])
        else:
            first_seq = int(table["seq"][0])
            file = (self.path / SEGMENTS / f"{rotation:04d}"
                    / f"events-{first_seq:012d}.parquet")
        # A write that fails leaves the file as it was, and the next batch begins a new
        # one: on a nearly full disk, the batch alone may fit where the whole file again
        # does not.
        write_private_parquet(table, file, compression_level=SEGMENT_COMPRESSION_LEVEL,
                              row_group_size=SEGMENT_ROW_GROUP)
        if table.height < self._grow_to and _text_bytes(table) < _GROW_BYTES:
            self._growing = (rotation, file, table)
        return int(table["seq"][-1])

    def write_manifest(self, manifest: RecordingManifest) -> None:
        """Write ``manifest.json``, replacing the previous one whole.

        Raises
        ------
        OSError
            What the filesystem said; the previous manifest is left as it was.
        """
        text = manifest.model_dump_json(indent=2) + "\n"
        write_private(self.path / MANIFEST, text.encode("utf-8"))

    def __repr__(self) -> str:
        return f"SegmentWriter({str(self.path)!r}, locked={self._locked})"


def lock_held(lock: Path) -> bool | None:
    """Whether a running writer holds the recording's lock file ``lock``.

    A writer holds its lock file (``flock``) while it lives, and the kernel lets go of
    it when its process ends, however it ends: a lock file nobody holds was left by a
    writer that was killed (or by one of a wsresearch that did not hold it yet). ``None``
    where that cannot be told: no ``flock`` (Windows), or no lock file to open.
    """
    if not CAN_LOCK:
        return None
    try:
        descriptor = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        hold_file(descriptor, shared=True, wait=False)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(descriptor)  # and with it the shared hold, at once
    return False


def _text_bytes(table: pl.DataFrame) -> int:
    """The bytes of ``table``'s event text (``data``), what its size is mostly made of.

    Counted string by string: polars' ``estimated_size`` counts a text repeated in every
    row once, and a feed that sends the same big message every second would grow a file
    without bound.
    """
    return int(table["data"].str.len_bytes().sum() or 0)


class Captured(NamedTuple):
    """One event of a session captured elsewhere, as :func:`write_events` takes it.

    A plain tuple: an import makes one per message.

    Attributes
    ----------
    kind
        ``"open"`` (a connection opened: ``data`` is its URL), ``"frame"`` (an
        inbound message: text, or bytes for a binary one), ``"sent"`` (an outbound
        message) or ``"rest"`` (a REST response: ``data`` is its body).
    wall_ns
        When it happened, ns since the epoch; ``None`` where the capture does not say.
    data
        As ``kind`` says.
    url
        For ``rest``: the request URL, where known.
    """

    kind: str
    wall_ns: int | None
    data: str | bytes | None = None
    url: str | None = None


CAPTURED_KINDS: tuple[str, ...] = ("open", "frame", "sent", "rest")
"""The kinds of event a capture made elsewhere can hold."""


def write_capture(
    path: str | os.PathLike[str],
    messages: Iterable[str | bytes | tuple[int, str | bytes]],
    *,
    source_url: str,
    description: str = "",
    channels: Sequence[str] = (),
    redact: Sequence[str] = (),
    origin: SpecOrigin | None = None,
    segment_events: int = SEGMENT_EVENTS,
) -> None:
    """Write messages captured elsewhere as a complete one-connection recording at ``path``.

    The recording is what a recorder would have written for a session that opened,
    received ``messages`` and stopped: an ``open`` event at the first message, the
    messages (``seq`` 1, 2 ...), and a ``stop`` at the last. Times given are kept
    (the connection's monotonic clock starts at the first one); without them,
    messages are 1 ms apart from the epoch. The manifest's ``receive_times`` says
    which: ``"imported"`` when every message came with its time, ``"invented"``
    otherwise.

    Parameters
    ----------
    path
        A new or empty directory.
    messages
        Texts or bytes, or ``(wall_ns, text or bytes)`` pairs, in arrival order.
    source_url, description, channels, redact, origin
        For the manifest, as a recorder takes them.
    segment_events
        Events per segment file at most (it bounds the memory one write takes). A small
        number writes what a live recorder leaves: a segment a flush.

    Raises
    ------
    RecordingError
        If ``path`` cannot be claimed (it holds a recording), or a write fails.
    TypeError, ValueError
        For an item :func:`capture_item` refuses.

    Anything raised once ``path`` was claimed removes it, so a retry is not refused.
    """
    write_events(path, _as_frames(messages), source_url=source_url, description=description,
                 channels=channels, redact=redact, origin=origin,
                 segment_events=segment_events)


def _as_frames(messages: Iterable[object]) -> Iterator[Captured]:
    for index, item in enumerate(messages, 1):
        wall, data = capture_item(item, index)
        yield Captured("frame", wall, data)


def write_events(
    path: str | os.PathLike[str],
    events: Iterable[Captured],
    *,
    source_url: str,
    description: str = "",
    channels: Sequence[str] = (),
    redact: Sequence[str] = DEFAULT_REDACT,
    origin: SpecOrigin | None = None,
    segment_events: int = SEGMENT_EVENTS,
) -> int:
    """Write a session captured elsewhere as a complete recording at ``path``.

    Every ``open`` starts a new connection (generation 1, 2 ...); the events after
    it belong to it. When the first event is not an ``open``, the session opens at
    it, with ``source_url``. A ``stop`` ends the session at the last event. Times
    given are kept, the monotonic clock starting at the first event; an event
    without one is placed 1 ms after the event before it from the epoch, and the
    manifest then says the receive times were ``"invented"`` (``"imported"``
    otherwise). Nothing says how a connection ended, so no ``close`` is written:
    a connection lasts until the next opens.

    ``sent`` text is masked as a recorder masks it: the values of the ``redact``
    keys, and for an auth message (``"op"``, ``"event"``, ``"method"`` or
    ``"type"`` is ``auth`` or ``login``) every string in a list too, those values
    masked wherever they appear later (a ``rest`` request's URL included). URLs lose
    their credentials: an ``open``'s every query value, a ``rest`` request's those of
    the ``redact`` keys, since its query says what was asked (a snapshot's ``symbol=``),
    as a recorder keeps it.

    Parameters
    ----------
    path
        A new or empty directory.
    events
        :class:`Captured` events in the order they happened.
    source_url, description, channels, redact, origin
        For the manifest, as a recorder takes them.
    segment_events
        Events per segment file at most (it bounds the memory one write takes). A small
        number writes what a live recorder leaves: a segment a flush.

    Returns
    -------
    int
        The number of events written, ``stop`` included.

    Raises
    ------
    RecordingError
        If ``path`` cannot be claimed (it holds a recording), or a write fails.
    TypeError, ValueError
        For an event of a kind not in :data:`CAPTURED_KINDS`, data that is not
        text (bytes for a frame), or ``segment_events`` not a positive int.

    Anything raised once ``path`` was claimed removes it, so a retry is not refused.
    """
    check_count(segment_events, "segment_events")
    items = iter(events)
    head = list(itertools.islice(items, 1))  # the first event, if there is one
    # The session starts with its first event: times given are kept, the manifest's
    # start and end follow them.
    first_wall = (head[0].wall_ns or 0) if head else 0
    known = not head or head[0].wall_ns is not None
    manifest = new_manifest(source_url=source_url, description=description, channels=channels,
                            redact=redact, origin=origin, flush_interval=3600.0,
                            rotate_interval=3600.0, started_wall_ns=first_wall,
                            receive_times="imported" if known else "invented")
    writer = SegmentWriter(path, rotate_interval=manifest.rotate_interval)
    writer.open(manifest)
    try:
        written = _write_events(writer, _read(itertools.chain(head, items)), first_wall,
                                manifest.source_url, tuple(redact), segment_events)
        writer.write_manifest(manifest.model_copy(update={
            "ended_wall_ns": first_wall + written.end_ns, "events": written.events,
            "complete": True,
            "receive_times": "imported" if written.all_timed else "invented"}))
    except BaseException as exc:
        writer.release()
        shutil.rmtree(path, ignore_errors=True)  # made here, from input that was refused
        if isinstance(exc, _InputFailed):  # the input's own error, whatever its type
            raise exc.error.with_traceback(exc.error.__traceback__) from None
        if isinstance(exc, OSError):
            raise RecordingError(f"cannot write the recording {path}: {exc}; nothing was "
                                 "kept") from None
        raise
    writer.release()
    return written.events


class _InputFailed(Exception):
    """An error raised by the events given, not by the writing: passed on as it is."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _read(events: Iterator[Captured]) -> Iterator[Captured]:
    """``events``, an error raised in taking one marked as the input's.

    A file read or a progress callback may raise an ``OSError`` (a ``TimeoutError`` to
    stop): it is passed on as raised, not told as a failed write.
    """
    while True:
        try:
            event = next(events)
        except StopIteration:
            return
        except Exception as exc:
            raise _InputFailed(exc) from exc
        yield event


class _Written(NamedTuple):
    events: int
    end_ns: int  # the stop's mono_ns
    all_timed: bool  # every event came with its time


def _write_events(
    writer: SegmentWriter, items: Iterator[Captured], first_wall: int, url: str,
    redact: tuple[str, ...], segment_events: int,
) -> _Written:
    """Write every item and the stop, opening the first connection if the items do not."""
    columns: MessageColumns = ([], [], [], [], [])
    binary: set[int] = set()
    others: list[EventRow] = []
    secrets = SecretMask()
    seq = generation = 0
    mono = 0
    all_timed = True
    for index, item in enumerate(items, 1):
        if not isinstance(item, Captured) or item.kind not in CAPTURED_KINDS:
            raise TypeError(f"event {index}: not a Captured event of a kind in "
                            f"{CAPTURED_KINDS}, got {item!r:.80}")
        wall = item.wall_ns
        if wall is None:
            all_timed = False
            wall = mono = index * _CAPTURE_SPACING_NS
        else:
            mono = wall - first_wall
        if item.kind == "open":
            generation += 1
            opened = redact_url(clean_text(_text(item.data, index)))
            others.append(_row(seq, generation, "open", mono, wall, data=opened))
            seq += 1
            continue
        if generation == 0:  # the session opens with its first event (its time, or 0)
            generation = 1
            opened = redact_url(clean_text(url))
            others.append(_row(seq, generation, "open", 0, first_wall, data=opened))
            seq += 1
        if item.kind == "frame":
            data = item.data
            if isinstance(data, bytes):
                binary.add(seq)
                data = base64.b64encode(data).decode("ascii")
            columns[0].append(seq)
            columns[1].append(generation)
            columns[2].append(mono)
            columns[3].append(wall)
            columns[4].append(_text(data, index))
        elif item.kind == "sent":
            text = _sent(clean_text(_text(item.data, index)), redact, secrets)
            others.append(_row(seq, generation, "sent", mono, wall, data=text))
        else:  # rest
            request = (None if item.url is None  # and the secrets sent before it
                       else secrets.apply(redact_request_url(clean_text(item.url), redact)))
            others.append(_row(seq, generation, "rest", mono, wall,
                               data=clean_text(_text(item.data, index)), stream=request))
        seq += 1
        if len(columns[0]) + len(others) >= segment_events:
            writer.write_segment(columns, binary, others)
            columns, binary, others = ([], [], [], [], []), set(), []
    if generation == 0:  # nothing captured: the session opened and stopped at once
        others.append(_row(seq, 1, "open", 0, first_wall, data=redact_url(clean_text(url))))
        seq += 1
    # The stop is at the last event; times that stepped back end it at the start.
    end = max(mono, 0)
    others.append(_row(seq, max(generation, 1), "stop", end, first_wall + end))
    writer.write_segment(columns, binary, others)
    return _Written(seq + 1, end, all_timed)


def _text(data: object, index: int) -> str:
    if not isinstance(data, str):
        raise TypeError(f"event {index}: its data must be text, got {type(data).__name__}")
    return data


_AUTH_OPS = frozenset({"auth", "login", "authenticate"})


def _sent(text: str, redact: tuple[str, ...], secrets: SecretMask) -> str:
    """A sent message as a recorder stores it: secrets masked (see :func:`write_events`)."""
    try:
        decoded = json.loads(text)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and any(
            isinstance(decoded.get(k), str) and decoded[k].lower() in _AUTH_OPS
            for k in ("op", "event", "method", "type")):
        secrets.add(*auth_secret_values(decoded, redact))
        text = mask_auth(text, redact)
    else:
        secrets.add(*secret_values(decoded, redact) if decoded is not None else ())
        text = redact_text(text, redact)
    return secrets.apply(text)


def _row(
    seq: int, generation: int, kind: str, mono_ns: int, wall_ns: int, *,
    data: str | None = None, stream: str | None = None,
) -> EventRow:
    """An event of a capture, laid out as :data:`EVENT_SCHEMA` orders it."""
    return (seq, generation, mono_ns, wall_ns, kind, data, None, None, None, None, None,
            stream, None, None, None)


def capture_item(item: object, index: int) -> tuple[int | None, str | bytes]:
    """``(wall_ns or None, data)`` of one captured message, or a clear error naming it.

    ``index`` counts from 1, as the error messages do (``frame 3: ...``).

    Raises
    ------
    TypeError
        For an item that is neither text, bytes nor a pair.
    ValueError
        For a pair that is not ``(wall_ns, text)`` with a time of 64 bits, or text
        UTF-8 cannot encode.
    """
    wall: int | None = None
    data = item
    if isinstance(item, tuple):
        if len(item) != 2:
            raise ValueError(f"frame {index}: a pair is (wall_ns, text), got {len(item)} items")
        time, data = item
        if isinstance(time, bool) or not isinstance(time, int) or not (
                INT64_MIN <= time <= INT64_MAX):
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
