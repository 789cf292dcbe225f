"""Reading a recording back: its manifest checked, its segments in ``seq`` order, damage skipped.

A recording is data that may be damaged, edited or written by another version.
:meth:`Recording.open` refuses what is not a recording or is newer than this
wsresearch; a torn or unreadable segment is skipped with a warning, never raised,
so the rest still reads, replays and reports. Parquet keeps no checksums: a damaged
page can still decode, to other numbers, so an event whose ``seq`` or receive times no
writer could have given is skipped with a warning too. Segments of every version read
as one table of the current :data:`~wsresearch.recording.format.EVENT_SCHEMA`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import polars as pl

from .._catalog import CHUNK_EVENTS, read_manifest
from .._limits import check_count
from .._warn import warn
from ..clock import NS_PER_S, utc_text
from ..errors import DamagedSegmentWarning, RecordingError
from ..exchanges import rebuild
from ..spec import FeedSpec
from .damage import Times, impossible, steady_times
from .format import (
    EVENT_SCHEMA,
    LOCK,
    REPLACED,
    SEGMENTS,
    V1_COLUMNS,
    RecordingManifest,
    parse_manifest,
    v1_closed_by,
)
from .writer import SEGMENT_ROW_GROUP, lock_held, write_capture

__all__ = ["CHUNK_EVENTS", "Recording", "check_chunk_events"]


def check_chunk_events(events: object, name: str = "chunk_events") -> None:
    """Refuse a chunk size that is not a positive int, in one line (a ``ValueError``).

    The message names the parameter, ``name``, as the caller calls it.
    """
    check_count(events, name)


# Rows of a segment decoded at a time, at least (a whole one costs more): whole row groups
# of the writer's, so that a piece decodes only its own.
_PIECE = 2 * SEGMENT_ROW_GROUP

_V1_SCHEMA = {name: EVENT_SCHEMA[name] for name in V1_COLUMNS}
_V2_COLUMNS = list(EVENT_SCHEMA)


class Recording:
    """A recording directory, opened for reading.

    Use :meth:`open`. Segment files are read in ``seq`` order; a leftover
    temporary file from a crash, or a file that cannot be read, is skipped with
    a warning, and so is an event a damaged file left without its ``seq``,
    ``generation``, ``mono_ns``, ``wall_ns`` or ``kind``, or with a value no writer
    gives: a ``seq`` that repeats or steps back, receive times no clock gives (see
    ``docs/recording-format.md``). Recordings of format
    version 1 read as version 2: their ``close`` events get the ``closed_by`` they did
    not store, from their reason. The files are listed when it is opened: one gone since
    (a compaction replaced the segments) raises a
    :class:`~wsresearch.errors.RecordingError` rather than leave a part unread; open the
    recording again.
    """

    def __init__(self, path: Path, manifest: RecordingManifest, files: list[Path]) -> None:
        self.path = path
        self.manifest = manifest
        self.files = files
        """The readable segment files, in ``seq`` order."""
        self._events: pl.DataFrame | None = None
        self._surveyed: list[_Surveyed] | None = None
        self._times = Times(None if manifest.receive_times == "recorded"
                             else manifest.started_wall_ns)
        self._soundness: dict[Path, bool] | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Recording:
        """Open the recording at ``path``.

        Raises
        ------
        RecordingFormatError
            If ``path`` is not a recording, or was written by a newer format version.
        """
        root = Path(path)
        raw = read_manifest(root)
        segments = root / SEGMENTS
        if not segments.exists() and (root / REPLACED).is_dir():
            # A compaction stopped between its two renames: the old segments are whole.
            warn(f"{root}: a compaction was interrupted; its segments are read from "
                 f"{REPLACED} (the next compaction puts them back first)")
            segments = root / REPLACED
        return cls(root, parse_manifest(raw, root), _segment_files(segments, _writer(root)))

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
        """Write messages captured elsewhere as a one-connection recording, and open it.

        For messages another tool captured (the JSON-lines files of other
        recorders, an exchange's sample messages), so they can be replayed,
        reported on and exported like any session. Written synchronously: it
        needs no event loop, and runs inside one (a notebook's) as well.

        Parameters
        ----------
        path
            A new directory.
        frames
            Message texts (or bytes) in arrival order, or ``(wall_ns, text)`` pairs
            where the receive times are known. Without times, messages are 1 ms
            apart from the epoch, so health figures say nothing about the capture.
            The manifest's ``receive_times`` says which: ``"imported"`` when every
            message came with its time, ``"invented"`` otherwise (reports flag both).
            :func:`wsresearch.importers.import_capture` reads other tools' capture
            files with their times.
        spec
            The spec the messages belong to: its URL, channels and origin go into
            the manifest, so :attr:`spec` rebuilds it for replay.
        source_url
            The URL to record when there is no ``spec``.
        description
            What the messages are and where they come from.

        Returns
        -------
        Recording
            The recording just written.

        Raises
        ------
        RecordingError
            If ``path`` already holds a recording or cannot be written.
        TypeError, ValueError
            For a message that is not text, bytes or a ``(wall_ns, text)`` pair with
            a time that fits in 64 bits, or text UTF-8 cannot encode (the error
            names its position); nothing is left behind at ``path``.

        Examples
        --------
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     recording = Recording.from_frames(f"{folder}/rec", ['{"p":1}', bytes([1])])
        ...     recording.frames().select("seq", "data", "binary").rows()
        [(1, '{"p":1}', False), (2, 'AQ==', True)]
        """
        if isinstance(frames, str | bytes):
            raise TypeError("frames must be an iterable of frames, not one "
                            f"{type(frames).__name__}: wrap it in a list")
        write_capture(
            Path(path),
            frames,
            source_url=spec.url if spec is not None else source_url,
            description=description or (spec.description if spec is not None else ""),
            channels=spec.channel_names if spec is not None else (),
            redact=spec.redact if spec is not None else (),
            origin=spec.origin if spec is not None else None,
        )
        return cls.open(path)

    @property
    def spec(self) -> FeedSpec | None:
        """The spec that recorded this session, rebuilt; ``None`` where it cannot be.

        Specs from the adapters in :mod:`wsresearch.exchanges` are rebuilt from the
        manifest's ``spec_origin`` (adapter name and arguments, and the fields
        :meth:`FeedSpec.replace <wsresearch.spec.FeedSpec.replace>` set on the adapter's
        spec: :data:`~wsresearch.spec.KEPT_FIELDS`), pointed at the recorded URL. A spec
        built by hand, or changed in a way that decides rows, left no origin: pass it to
        :func:`~wsresearch.replay.replay` yourself.

        Only the arguments the adapter itself records in an origin are taken from the
        manifest (symbols, channels, market options): a manifest is data, and must
        not set health, queue, de-dup or check timing fields of the spec, nor messages
        it sends.

        Raises
        ------
        RecordingFormatError
            If the origin names an adapter this wsresearch does not have, arguments it
            does not declare or refuses, or replaced fields the rebuilt spec refuses.
        """
        origin = self.manifest.origin
        if origin is None:
            return None
        return rebuild(origin, self.manifest.source_url, source=str(self.path))

    def events(self) -> pl.DataFrame:
        """Every event, one row each, in ``seq`` order (:data:`EVENT_SCHEMA`).

        Read once, then kept: later calls return the same frame. What the reader
        skips (see :class:`Recording`) is not in it, with a warning.
        """
        if self._events is None:
            tables: list[pl.DataFrame] = []
            damage: dict[Path, _Damage] = {}
            seen = self._seen()
            try:
                for files, table, last in self._by_runs(
                        lambda group: self._read_group(group, None), self._read):
                    table = self._kept(table, files, damage, seen.events)
                    seen.add(table, last)
                    tables.append(table)
            finally:  # once per file, whatever the tables it was read in
                _warn_of(damage)
            self._events = (
                pl.concat(tables).sort("seq", maintain_order=True) if tables
                else pl.DataFrame(schema=EVENT_SCHEMA)
            )
        return self._events

    def chunks(self, events: int = CHUNK_EVENTS, start: int | None = None
               ) -> Iterator[pl.DataFrame]:
        """Every event in ``seq`` order, as tables of at most ``events`` rows.

        What :meth:`events` holds, read segment by segment: the memory it needs is
        one segment and one table, whatever the recording's length, so a day-long
        recording streams through :func:`~wsresearch.replay.replay` and the export on
        a small machine. Segments are read in the order of their first ``seq``; where
        edited or damaged segments overlap, events are still handed out in ``seq``
        order (each one once every segment that could hold an earlier one is read), and
        an event whose ``seq`` an earlier segment holds too is left out, with a warning
        (a copy of that event, from a copied file, is read as it is).
        An unreadable segment is skipped with a warning, as :meth:`events` skips it.

        Parameters
        ----------
        events
            The most rows per table (at least 1).
        start
            The first ``seq`` wanted: earlier events are left out, and a segment that
            holds none after it is not read at all.

        Raises
        ------
        ValueError
            If ``events`` is not a positive int, or ``start`` not an int.
        """
        check_chunk_events(events, "events")
        if start is not None and (isinstance(start, bool) or not isinstance(start, int)):
            raise ValueError(f"start must be a seq (an int) or None, got {start!r}")
        chunks = self._chunks(events, start)
        if start is None:
            return chunks
        return (chunk for chunk in (c.filter(pl.col("seq") >= start) for c in chunks)
                if chunk.height)

    def _chunks(self, events: int, start: int | None) -> Iterator[pl.DataFrame]:
        if self._events is not None:
            for first in range(0, self._events.height, events):
                yield self._events.slice(first, events)
            return
        yield from _gathered(self._in_order(events, start), events)

    def _in_order(self, events: int, start: int | None) -> Iterator[pl.DataFrame]:
        """The segments' events in ``seq`` order, in tables as the segments give them.

        Each table is read from one segment, or a piece of one (``max(events, _PIECE)``
        rows, rounded up to whole row groups), and holds the events of it (and of those
        before) that no later segment can hold an earlier one than. A run of small segments
        that follow on is read in one query (:meth:`_read_group`), then taken a segment at
        a time.
        """
        surveyed, later = self._survey(), self._later()
        held = pl.DataFrame(schema=EVENT_SCHEMA)
        # A sound segment (as written) is read a piece at a time: decoding a whole one
        # costs several times its size. Small ones are read several at once.
        size = -(-max(events, _PIECE) // SEGMENT_ROW_GROUP) * SEGMENT_ROW_GROUP
        small: dict[int, pl.DataFrame] = {}
        alone = -1  # the last of a run that could not be read together: read one by one
        for index, (file, (_, rows, sound, top), frontier) in enumerate(
                zip(self.files, surveyed, later, strict=True)):
            if start is not None and top is not None and top < start:
                continue  # wholly before what is wanted
            pieces = range(0, rows, size) if sound else [None]
            damage: dict[Path, _Damage] = {}  # what its pieces lacked: warned of once,
            try:  # even where the reader stops before its last piece
                for offset in pieces:
                    table = small.pop(index, None)
                    if table is None and offset == 0 and rows <= size and index > alone:
                        group = self._small_run(index, size)
                        if len(group) > 1:
                            small = self._split(group, self._read_group(group, None))
                            alone = alone if small else group[-1]
                            table = small.pop(index, None)
                    if table is None:  # a segment in one piece is read whole
                        table = self._read(file, offset if rows > size else None, size)
                    if table is None:
                        break  # unreadable: skipped, with a warning
                    # Only an earlier file's events not handed out yet can share a seq
                    # with this one's: those below the bound went, and it has none.
                    table = self._kept(table, [(file, table.height)], damage,
                                       held.select(_REQUIRED) if held.height else None)
                    bound = frontier
                    if offset is not None and offset + size < rows and table.height:
                        # The file's next piece starts at or after this one's last seq.
                        last = int(table["seq"][-1]) + 1
                        bound = last if bound is None else min(bound, last)
                    held = pl.concat([held, table]) if held.height else table
                    highest: int | None = held["seq"].max()  # type: ignore[assignment]
                    if bound is None or highest is None or highest < bound:  # as written
                        ready, held = held, held.clear()
                    else:
                        ready = held.filter(pl.col("seq") < bound)
                        held = held.filter(pl.col("seq") >= bound)
                    if not ready["seq"].is_sorted():  # a writer's segments always are: no copy
                        ready = ready.sort("seq", maintain_order=True)
                    yield ready
            finally:
                _warn_of(damage)
        if held.height:  # only where the last segment could not be read
            yield held.sort("seq", maintain_order=True)

    def _small_run(self, index: int, size: int) -> list[int]:
        """The segment at ``index`` and those after it that are small and follow on.

        Each sound and after the one before (as surveyed), up to :data:`_GROUP`
        files and ``size`` rows in all: read together, they are the events of reading
        each in turn. Empty where the one at ``index`` is not such a segment.
        """
        surveyed = self._survey()
        group: list[int] = []
        total, top = 0, None
        for at in range(index, min(index + _GROUP, len(self.files))):
            lowest, rows, sound, highest = surveyed[at]
            if (not (sound and rows) or total + rows > size or lowest is None
                    or (top is not None and lowest <= top)):
                break
            group.append(at)
            total, top = total + rows, highest
        return group

    def _split(self, group: list[int], table: pl.DataFrame | None) -> dict[int, pl.DataFrame]:
        """``table`` of the segments at ``group`` (:meth:`_read_group`), by segment."""
        if table is None:
            return {}
        surveyed, found, row = self._survey(), {}, 0
        for at in group:
            rows = surveyed[at][1]
            found[at] = table.slice(row, rows)
            row += rows
        return found

    def _read_group(self, group: list[int], columns: list[str] | None) -> pl.DataFrame | None:
        """The segments at ``group`` (:meth:`_small_run`) in one query, one after another.

        ``columns`` of them (``None``: every column, as :meth:`_read` gives them). ``None``
        where the query fails (a damaged file among them, a version-1 segment's missing
        column) or gives other rows than surveyed: each is then read alone, and a damaged
        one skipped with its warning.
        """
        files = [self.files[at] for at in group]
        try:
            table = _steady(files, lambda: pl.read_parquet(files, columns=columns, glob=False))
            if table.height != sum(self._survey()[at][1] for at in group):
                return None  # a file changed since it was surveyed
            if columns is not None:
                return table.cast({n: EVENT_SCHEMA[n] for n in columns})
            return _as_events(table)
        except (Exception, pl.exceptions.PanicException):
            return None

    def _by_runs(self, together: Callable[[list[int]], pl.DataFrame | None],
                 alone: Callable[[Path], pl.DataFrame | None]
                 ) -> Iterator[tuple[list[tuple[Path, int]], pl.DataFrame, int]]:
        """Every readable segment's table, in the files' order, with the files it is of.

        A run of small segments that follow on (:meth:`_small_run`) is read ``together``,
        as one table, its files' rows one after another, as many as surveyed; any other
        segment, and each of a run that cannot be read together, ``alone``. Each table
        comes with its files and their rows in it, and the index of its last file.
        """
        at, files, surveyed = 0, self.files, self._survey()
        while at < len(files):
            group = self._small_run(at, _PIECE)
            table = together(group) if len(group) > 1 else None
            if table is not None:
                yield [(files[one], surveyed[one][1]) for one in group], table, group[-1]
            else:
                for one in group if len(group) > 1 else [at]:
                    found = alone(files[one])
                    if found is not None:
                        yield [(files[one], found.height)], found, one
            at = (group[-1] if len(group) > 1 else at) + 1

    def columns(self, names: list[str]) -> Iterator[pl.DataFrame]:
        """A few of the event columns, a readable segment (or run of small ones) at a time.

        For a pass over a long recording that needs no message text (where its connections
        begin, what each one's close was): reading ``data`` is most of a segment's cost.
        Segments come in the reader's order; an unreadable one is skipped (:meth:`chunks`
        warns of it). Each table is in ``seq`` order: small segments that follow on in
        ``seq`` order (a live recording's written a flush each) come several to a table,
        read in one query.

        Raises
        ------
        ValueError
            For ``names`` that are not a list of columns of :data:`EVENT_SCHEMA`.
        """
        if isinstance(names, str) or not all(isinstance(name, str) for name in names):
            raise ValueError(f"names must be a list of column names, got {names!r}")
        unknown = sorted(set(names) - set(EVENT_SCHEMA))
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; the columns are {list(EVENT_SCHEMA)}")
        wanted = list(dict.fromkeys(["seq", *names]))
        if self._events is not None:
            return iter([self._events.select(wanted)])
        return self._columns(wanted)

    def _columns(self, wanted: list[str]) -> Iterator[pl.DataFrame]:
        # The required columns too, so that the events are those chunks() gives.
        read = list(dict.fromkeys([*wanted, *_REQUIRED]))
        seen = self._seen()
        for files, table, last in self._by_runs(
                lambda group: self._read_group(group, read),
                lambda file: self._columns_of(file, read)):
            # The same events left out, silently: chunks() tells of them.
            table = self._kept(table, files, {}, seen.events)
            seen.add(table, last)
            if not table["seq"].is_sorted():  # only a file changed since it was surveyed
                table = table.sort("seq", maintain_order=True)
            yield table.select(wanted)

    def _columns_of(self, file: Path, wanted: list[str]) -> pl.DataFrame | None:
        """:meth:`columns` of one segment file; ``None`` if it cannot be read."""
        try:
            table: pl.DataFrame | None = _steady(
                [file], lambda: pl.read_parquet(file, columns=wanted, glob=False))
        except pl.exceptions.ColumnNotFoundError:  # a version-1 segment: closed_by is derived
            table = self._read(file)
        except (Exception, pl.exceptions.PanicException):
            _check_still_there(file)
            return None  # unreadable: skipped, as the reader skips it
        if table is None:
            return None
        # In the file's order: where it is not sound, that order tells its damaged events.
        return table.select(wanted).cast({n: EVENT_SCHEMA[n] for n in wanted})

    @property
    def event_count(self) -> int:
        """How many events the readable segments hold, from their metadata (nothing decoded).

        Until :meth:`events` is read, that counts the events a damaged file left without a
        required value too, which every read leaves out (see :class:`Recording`); then, the
        events it holds.
        """
        if self._events is not None:
            return self._events.height
        return sum(rows for _, rows, _, _ in self._survey())

    def _survey(self) -> list[_Surveyed]:
        """Each segment's lowest ``seq``, row count, whether it is sound, highest; kept.

        Sound (:func:`_survey_of`): its ``seq`` rise and its receive times hold together,
        as a writer's always do. Only the others are read whole, their values checked.
        """
        if self._surveyed is None:
            files = self.files
            self._surveyed = [
                found for first in range(0, len(files), _GROUP)
                for found in _survey_group(files[first:first + _GROUP], self._times)]
        return self._surveyed

    def _later(self) -> list[int | None]:
        """For each segment, the lowest ``seq`` of those after it: what is below is final."""
        later: list[int | None] = []
        frontier: int | None = None
        for lowest, _, _, _ in reversed(self._survey()):
            later.append(frontier)
            if lowest is not None and (frontier is None or lowest < frontier):
                frontier = lowest
        later.reverse()
        return later

    def _seen(self) -> _Seen:
        """An empty :class:`_Seen` for a read of the files in their order."""
        return _Seen(self._later())

    def _kept(self, table: pl.DataFrame, files: list[tuple[Path, int]],
              damage: dict[Path, _Damage], earlier: pl.DataFrame | None) -> pl.DataFrame:
        """``table`` without the events no read gives (:func:`_kept`), told of in ``damage``.

        A file the survey found not sound is read whole and alone: its values are checked
        (:func:`~.damage.impossible`) in the order the file holds them.
        """
        whole = len(files) == 1 and not self._sound(files[0][0])
        return _kept(table, files, damage, earlier, self._times if whole else None)

    def _sound(self, file: Path) -> bool:
        """Whether the survey found ``file`` sound (:meth:`_survey`)."""
        if self._soundness is None:
            self._soundness = {one: found[2]
                               for one, found in zip(self.files, self._survey(), strict=True)}
        return self._soundness.get(file, False)

    def dropped(self) -> set[int]:
        """The ``seq`` of every message the live session's queue dropped (``drop`` events).

        Read from two columns of each segment, not the whole recording: what a
        faithful replay skips.
        """
        drops = (part.filter(pl.col("kind") == "drop")["ref_seq"]
                 for part in self.columns(["kind", "ref_seq"]))
        return {seq for refs in drops for seq in refs.drop_nulls().to_list()}

    def frames(self) -> pl.DataFrame:
        """Inbound messages only: ``seq, generation, recv_mono_ns, recv_wall_ns, data``.

        A last column, ``binary``, says which messages were binary: their ``data``
        holds the message's bytes in base64.
        """
        return (
            self.events()
            .filter(pl.col("kind") == "frame")
            .select("seq", "generation", pl.col("mono_ns").alias("recv_mono_ns"),
                    pl.col("wall_ns").alias("recv_wall_ns"), "data", "binary")
        )

    def rest(self) -> pl.DataFrame:
        """REST responses taken beside the feed (depth snapshots): ``rest`` events.

        Columns ``seq, generation, mono_ns, wall_ns, url, body``: the request URL
        (null where the capture did not say) and the response body as text.
        """
        return (
            self.events()
            .filter(pl.col("kind") == "rest")
            .select("seq", "generation", "mono_ns", "wall_ns", pl.col("stream").alias("url"),
                    pl.col("data").alias("body"))
        )

    def _read(self, file: Path, offset: int | None = None,
              length: int | None = None) -> pl.DataFrame | None:
        """A segment file as a table of :data:`EVENT_SCHEMA`; ``None`` if it cannot be read.

        With ``offset``, only ``length`` of its rows from there. An unreadable file is
        skipped with a warning. The file's own columns say its version: version 1 lacks
        ``closed_by``, which is then derived from the close reasons.
        """
        try:
            if offset is None:  # a path, never a pattern
                table = _steady([file], lambda: pl.read_parquet(file, glob=False))
            else:
                table = _steady([file], lambda: pl.scan_parquet(file, glob=False).slice(
                    offset, length).collect())
            return _as_events(table)
        # A damaged file must not hide the others. polars' Parquet reader can also
        # panic on one (a PanicException is a BaseException, not an Exception).
        except (Exception, pl.exceptions.PanicException) as exc:
            _check_still_there(file)
            warn(f"skipping unreadable segment {file}: {exc}")
            return None

    def __repr__(self) -> str:
        messages, low, high, generations, codes, first = self._outline()
        if low is None or high is None or first is None:
            promised = self.manifest.events
            if promised:  # its files held events once: damaged, not empty
                return (f"Recording({str(self.path)!r}, none of its {promised} events "
                        "readable)")
            return f"Recording({str(self.path)!r}, empty)"
        duration = (high - low) / NS_PER_S
        state = "complete" if self.manifest.complete else "INCOMPLETE"
        times = self.manifest.receive_times
        # Only what is not this wsresearch's own clock is said: it changes how to read it.
        note = "" if times == "recorded" else f", receive times {times}"
        return (
            f"Recording({str(self.path)!r}, {state}, {duration:.1f} s from "
            f"{utc_text(first, 3)}, {messages} frames, "
            f"{generations} generations, closes: {', '.join(map(str, codes)) or 'none'}{note})"
        )

    def _outline(self) -> tuple[int, int | None, int | None, int, list[int | None],
                                int | None]:
        """What the repr says: messages, time span, generations, closes and the start.

        Messages, first and last time (mono ns), generations, close codes and the first
        event's receive time on the wall clock (six columns read).
        """
        messages, times, generations = 0, [], set()
        closes: list[tuple[int, int | None]] = []
        first: tuple[int, int] | None = None  # (seq, wall ns) of the first event
        for part in self.columns(["kind", "mono_ns", "generation", "code", "wall_ns"]):
            if part.height == 0:
                continue
            count, low, high, seq, wall = part.select(
                (pl.col("kind") == "frame").sum(), pl.col("mono_ns").min().alias("low"),
                pl.col("mono_ns").max().alias("high"), pl.col("seq").min(),
                pl.col("wall_ns").get(pl.col("seq").arg_min())).row(0)
            messages += count
            times += [low, high]
            generations.update(part["generation"].unique().to_list())
            closes += part.filter(pl.col("kind") == "close").select("seq", "code").rows()
            if first is None or seq < first[0]:
                first = (seq, wall)
        if not times:
            return 0, None, None, 0, [], None
        return (messages, min(times), max(times), len(generations),
                [code for _, code in sorted(closes, key=lambda close: close[0])],
                None if first is None else first[1])


def _as_events(table: pl.DataFrame) -> pl.DataFrame:
    """A segment's table (or several's, one after another) as :data:`EVENT_SCHEMA` has it.

    The columns say the version: version 1 lacks ``closed_by``, which is then derived from
    the close reasons. Columns in another order are put in the schema's (a multi-file read
    puts a later file's in the first's).

    Raises
    ------
    ValueError
        If the columns are neither version's (a damaged footer can rename one).
    """
    if sorted(table.columns) == sorted(_V2_COLUMNS):
        return table.select(_V2_COLUMNS).cast(EVENT_SCHEMA)  # type: ignore[arg-type]
    if sorted(table.columns) != sorted(V1_COLUMNS):
        # Against the version its columns are nearer to, what is extra and what is missing.
        columns = set(table.columns)
        known = min((set(_V2_COLUMNS), set(V1_COLUMNS)),
                    key=lambda names: len(columns.symmetric_difference(names)))
        extra, missing = sorted(columns - known), sorted(known - columns)
        raise ValueError("its columns are not the event schema's: " + "; ".join(
            part for part in (f"it has {extra}, which the schema has not" if extra else "",
                              f"it lacks {missing}" if missing else "") if part))
    table = table.select(V1_COLUMNS).cast(_V1_SCHEMA)  # type: ignore[arg-type]
    return table.with_columns(v1_closed_by(pl.col("kind"), pl.col("reason")))


_REQUIRED = ("seq", "generation", "mono_ns", "wall_ns", "kind")
"""The columns an event is read only with a value in: its place in order, its connection,
its times, its kind. (Without its wall time, its rows would have no date, and the books
no time for their snapshots.)"""

_IMPOSSIBLE = ("seq", "mono_ns", "wall_ns")
"""The columns whose values are checked (:func:`~.damage.impossible`), in the order
warnings name them."""

@dataclass
class _Damage:
    """What a segment file's events lacked or held wrong (see :func:`_kept`)."""

    left_out: int = 0
    """Events left out: without a value of :data:`_REQUIRED`, or with an impossible one."""
    lacking: set[str] = field(default_factory=set)
    """The columns of :data:`_REQUIRED` they lacked a value of."""
    impossible: set[str] = field(default_factory=set)
    """The columns of :data:`_IMPOSSIBLE` they held an impossible value of."""


class _Seen:
    """The events read so far that a segment still to read could hold a ``seq`` of too.

    A read in the files' order leaves out an event whose ``seq`` an earlier file gave,
    unless it is a copy of that event (:func:`_kept`). Only a seq at or above the lowest of
    the files after can come again: a writer's segments follow on and hold none such, so
    nothing is kept nor looked up.
    """

    def __init__(self, later: list[int | None]) -> None:
        self._later = later
        self.events: pl.DataFrame | None = None
        """The :data:`_REQUIRED` columns of those events; ``None``: none."""

    def add(self, table: pl.DataFrame, last: int) -> None:
        """Count in ``table``, the events kept of the files up to the one at ``last``."""
        bound = self._later[last]
        if bound is None:  # no file after it
            self.events = None
            return
        found = self.events
        if found is not None:
            found = found.filter(pl.col("seq") >= bound)
        top: int | None = table["seq"].max()  # type: ignore[assignment]  # an int column
        if top is not None and top >= bound:
            new = table.select(_REQUIRED).filter(pl.col("seq") >= bound)
            found = new if found is None else pl.concat([found, new])
        self.events = found if found is not None and found.height else None


def _kept(table: pl.DataFrame, files: list[tuple[Path, int]], damage: dict[Path, _Damage],
          earlier: pl.DataFrame | None, times: Times | None) -> pl.DataFrame:
    """``table`` without the events no read gives, each file's told of in ``damage``.

    ``table`` holds the rows of ``files``, one after another, as many as each says. Only a
    damaged or hand-edited file has such an event, and it is left out, as an unreadable
    segment is, and counted in ``damage`` for the caller to warn of once per file
    (:func:`_warn_of`):

    - an event without a value of :data:`_REQUIRED` (the writers always fill them): it
      cannot be put in order, in its connection or in time, nor (without its kind) told
      from a message;
    - where ``times`` is given (one file, read whole, that its survey found not sound), an
      event with an impossible value (:func:`~.damage.impossible`);
    - an event whose ``seq`` an event of ``earlier`` (the :data:`_REQUIRED` columns of
      earlier files' events) has, with another value of those: the first file's is read.
      A copy of that event (a segment file copied, by a sync tool or by hand) is no
      damaged value, and is read as before: the replay's de-dup counts it.

    Counting the nulls reads no values, and the seqs' ``min`` and ``max`` say where they
    cannot repeat: a writer's table costs nothing to check.
    """
    lacking = [name for name in _REQUIRED if table[name].null_count()]
    if earlier is not None:
        lowest: int | None = table["seq"].min()  # type: ignore[assignment]  # an int column
        top: int | None = earlier["seq"].max()  # type: ignore[assignment]
        if lowest is None or top is None or lowest > top:
            earlier = None  # every seq of the table is above them
    if not (lacking or times is not None or earlier is not None):
        return table
    ends = np.cumsum([rows for _, rows in files])

    def blamed(rows: np.ndarray) -> list[tuple[_Damage, int]]:
        """The damage of each file that holds some of ``rows`` (positions), and how many."""
        places, counts = np.unique(np.searchsorted(ends, rows, side="right"),
                                   return_counts=True)
        return [(damage.setdefault(files[place][0], _Damage()), many)
                for place, many in zip(places.tolist(), counts.tolist(), strict=True)]

    out = np.zeros(table.height, dtype=bool)
    for name in lacking:
        lost = table[name].is_null().to_numpy()
        for its, _ in blamed(np.flatnonzero(lost)):
            its.lacking.add(name)
        out |= lost
    for its, many in blamed(np.flatnonzero(out)):
        its.left_out += many
    if times is not None:
        rest = np.flatnonzero(~out)
        for names, rows in impossible(table[rest] if out.any() else table, times, _REQUIRED):
            for its, many in blamed(rest[rows]):
                its.impossible.update(names)
                its.left_out += many
            out[rest[rows]] = True
    if earlier is not None:
        again = _repeats(table, earlier) & ~out
        for its, many in blamed(np.flatnonzero(again)):
            its.impossible.add("seq")
            its.left_out += many
        out |= again
    return table.filter(pl.Series(~out)) if out.any() else table


def _repeats(table: pl.DataFrame, earlier: pl.DataFrame) -> np.ndarray:
    """Which events of ``table`` have the ``seq`` of one of ``earlier`` but are not it.

    ``earlier`` holds the :data:`_REQUIRED` columns of events read before. An event with
    the same values of all of them (the same seq, connection, times and kind) is a copy.
    """
    rows = table.select(_REQUIRED).with_row_index("row")
    shared = rows.join(earlier.select("seq").unique(), on="seq", how="semi")
    if not shared.height:
        return np.zeros(table.height, dtype=bool)
    copies = shared.join(earlier.unique(), on=list(_REQUIRED), how="semi")
    found = np.zeros(table.height, dtype=bool)
    found[shared["row"].to_numpy()] = True
    found[copies["row"].to_numpy()] = False
    return found


def _warn_of(damage: dict[Path, _Damage]) -> None:
    """A warning for each file of ``damage``: how many events, which values lost or wrong."""
    for file, found in damage.items():
        names = tuple(name for name in _REQUIRED if name in found.lacking)
        wrong = tuple(name for name in _IMPOSSIBLE if name in found.impossible)
        warn(DamagedSegmentWarning(file, found.left_out, names, wrong))


def _gathered(tables: Iterable[pl.DataFrame], events: int) -> Iterator[pl.DataFrame]:
    """``tables``, one after another, as tables of ``events`` rows (the last may hold fewer).

    A live recording's segments can be a flush each, about a second of events: handed out
    one by one, each would be a chunk of its own, and a replay would pay a chunk's fixed
    cost (a few ms) for every second recorded, a hundred times the events' own cost for a
    quiet feed. Rows are copied only where small tables are joined.
    """
    pending: list[pl.DataFrame] = []
    count = 0
    for table in tables:
        if not table.height:
            continue
        pending.append(table)
        count += table.height
        if count < events:
            continue
        whole = pending[0] if len(pending) == 1 else pl.concat(pending, rechunk=True)
        cut = count - count % events
        for row in range(0, cut, events):
            yield whole.slice(row, events)
        rest = whole.slice(cut)
        pending, count = ([rest] if rest.height else []), rest.height
    if pending:
        yield pending[0] if len(pending) == 1 else pl.concat(pending, rechunk=True)


def _survey_of(times: Times) -> tuple[pl.Expr, ...]:
    """What a survey reads of a segment: its lowest ``seq``, rows, whether sound, highest.

    Sound: its seqs rise (over the values there are: a lost value between two must not
    hide a step back), and its receive times hold together as ``times`` says they do
    (:func:`~.damage.steady_times`), as a writer's always do. Only a file that is not
    is checked event by event (:func:`~.damage.impossible`): the rest read as they are,
    a piece at a time.
    """
    rising = (pl.col("seq").drop_nulls().diff() > 0).all()
    return (pl.col("seq").min().alias("lowest"), pl.len(),
            (rising & steady_times(times)).alias("sound"),
            pl.col("seq").max().alias("highest"))


_ALONE = 1 << 20
"""Bytes of a segment file from which it is surveyed alone (about 50,000 small events):
grouping its rows by file costs more than a query of its own, about 2 ms. Smaller files are
surveyed in batches of as many bytes at most."""

_GROUP = 256
"""Segment files surveyed, or read when small, in one query: a query costs about 2 ms however
small its files, and a live recording can be a file a flush (a second)."""

_Surveyed = tuple[int | None, int, bool, int | None]  # lowest seq, rows, sound, highest


def _survey_group(files: list[Path], times: Times) -> list[_Surveyed]:
    """:func:`_survey` of each of ``files``, the small ones a batch in one scan.

    A query costs about 2 ms however small its file, and a live recording can be a file a
    second: one scan of a few hundred files costs a tenth of that a file. A file of
    :data:`_ALONE` bytes or more is surveyed alone: grouping its rows by file would cost
    more than its query does, and the scan holds each row's file name, so a batch holds
    :data:`_ALONE` bytes of files at most. Where a scan fails (a damaged file among them)
    or leaves a file out (one without rows), those files are surveyed one by one, as alone.
    """
    by_file: dict[str, tuple[Any, ...]] = {}
    for batch in _batches(files):
        if len(batch) < 2:
            continue
        try:
            found = _steady(batch, functools.partial(_survey_batch, batch, times))
        except (Exception, pl.exceptions.PanicException):
            continue  # each surveyed alone
        by_file.update((row[0], row[1:]) for row in found.iter_rows())
    return [_surveyed(by_file[str(file)]) if str(file) in by_file else _survey(file, times)
            for file in files]


def _survey_batch(files: list[Path], times: Times) -> pl.DataFrame:
    """:func:`_survey_of` each of ``files``, by file, in one scan."""
    return pl.scan_parquet(files, glob=False, include_file_paths="__file").group_by(
        "__file").agg(*_survey_of(times)).collect()


def _batches(files: list[Path]) -> list[list[Path]]:
    """The small ones of ``files`` in batches of at most :data:`_ALONE` bytes in all.

    A grouped scan holds each row's file name: a batch's bytes bound what it holds.
    """
    batches: list[list[Path]] = []
    total = 0
    for file in files:
        size = _size(file)
        if size >= _ALONE:
            continue
        if not batches or total + size > _ALONE:
            batches.append([])
            total = 0
        batches[-1].append(file)
        total += size
    return batches


def _size(file: Path) -> int:
    """A file's size in bytes; 0 where it cannot be found (its survey says why)."""
    try:
        return file.stat().st_size
    except OSError:
        return 0


def _survey(file: Path, times: Times) -> _Surveyed:
    """A segment file's lowest ``seq``, rows, whether it is sound, highest ``seq``.

    From those columns (:func:`_survey_of`). ``(None, 0, False, None)`` if it cannot be
    read: the reader skips it, with its warning.
    """
    try:
        found = _steady([file], lambda: pl.scan_parquet(file, glob=False).select(
            *_survey_of(times)).collect().row(0))
    except (Exception, pl.exceptions.PanicException):
        _check_still_there(file)
        return None, 0, False, None
    return _surveyed(found)


_TRIES = 5
"""Reads of files one of which was replaced while they were read, at most (:func:`_steady`)."""

_T = TypeVar("_T")


def _steady(files: list[Path], read: Callable[[], _T]) -> _T:
    """``read()`` of ``files``, made again where one of them was replaced meanwhile.

    A recorder writes its last segment again at each flush while it grows (up to
    ``Recorder(segment_events=)``), renaming the new file over the old. polars opens a
    file more than once in a read, and a read across such a rename can fail as if the
    file were damaged (a wrong page size, a panic) or mix the two files. So a read counts
    only where each file is the same (inode, size, time) before and after it; otherwise
    it is made again, up to :data:`_TRIES` times in all, the last as it comes.
    """
    for _ in range(_TRIES - 1):
        before = [_identity(file) for file in files]
        try:
            found = read()
        except (Exception, pl.exceptions.PanicException):
            if [_identity(file) for file in files] == before:
                raise  # damaged, not replaced
            continue
        if [_identity(file) for file in files] == before:
            return found
    return read()


def _identity(file: Path) -> tuple[int, int, int] | None:
    """What tells a file from the one renamed over it; ``None`` where it is gone."""
    try:
        found = os.stat(file)
    except OSError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns


def _check_still_there(file: Path) -> None:
    """Raise where a segment that could not be read is gone since the recording was opened.

    A damaged segment is skipped, with a warning; one that is gone means the recording
    changed while it was read (a compaction put new segments in place), and what is read
    would be part of it: the recording is opened again instead.

    Raises
    ------
    RecordingError
        If ``file`` no longer exists.
    """
    if not os.path.lexists(file):
        raise RecordingError(f"the segment {file} is gone since the recording was opened: "
                             "the recording changed while it was read (compacted?); open "
                             "it again")


def _surveyed(found: tuple[Any, ...]) -> _Surveyed:
    """:func:`_survey_of`'s values of a file, as :func:`_survey` gives them."""
    lowest, rows, sound, highest = found
    return ((None if lowest is None else int(lowest)), int(rows), bool(sound),
            (None if highest is None else int(highest)))


def _writer(root: Path) -> bool | None:
    """Whether a recorder is writing the recording at ``root``: ``None`` where unknown.

    A recorder's lock file is there while it writes, held (:func:`lock_held`); one that
    was killed leaves it, held by nobody. Where ``flock`` is not there to tell, a lock
    file may be either. A compaction's lock file (marked) is not a recorder's.
    """
    lock = root / LOCK
    try:
        if lock.read_bytes():  # a compaction's: it writes no segment where readers look
            return False
    except OSError:  # no lock file: no recorder
        return False
    return lock_held(lock)


def _segment_files(segments: Path, writing: bool | None = False) -> list[Path]:
    """The segment files to read, in ``seq`` order; anything else is skipped with a warning.

    Only regular files are read: a FIFO, socket or device named like a segment
    would block or mislead the reader. A leftover temporary file is the
    unfinished write of a session that ended abruptly. Where a recorder is writing the
    recording (``writing``), a temporary file is its write under way, at a flush: skipped
    without a word, its events in the file it becomes. Where that cannot be told
    (``None``), the warning says it may be either.
    """
    why = ("under way if its recorder is running, or left by one that was killed"
           if writing is None else "the session ended abruptly")
    files = []
    for file in sorted(segments.glob("*/*"), key=lambda p: p.name):
        if file.name.endswith(".tmp"):
            if not writing:
                warn(f"skipping {file}: an unfinished write ({why})")
        elif file.suffix != ".parquet":
            continue
        elif not file.is_file():  # follows a symlink: a link to a segment is read
            warn(f"skipping {file}: not a regular file")
        else:
            files.append(file)
    return files
