"""Compacting a finished recording: its many small segments rewritten as a few large ones.

A live recorder with ``segment_events=1`` writes a segment file a flush, a second by
default, so a day of a feed is 86,400 files (by default it grows a file to 10,000 events,
a dozen files an hour for a quiet feed). Reading a file costs about 0.4 ms however small
it is (its footer, its schema, a query), so a replay of that day spends half a minute on
files alone, and every engine reading the recording (DuckDB, Spark, polars) pays the
same.
:func:`compact_recording` rewrites each segment folder's events as files of up to
``segment_events`` events, in row groups of
:data:`~wsresearch.recording.writer.SEGMENT_ROW_GROUP`; a folder that is already in as few
files as that allows is kept as it is (its files linked, not copied).

Nothing about the events changes: every event keeps its ``seq`` and every column its value,
and each new file is read back and compared with the events it was written from before
anything is replaced. A version-1 recording's files stay version-1 files (its readers
derive ``closed_by`` as before), and files and folders keep their permissions and group.
A recording with a segment that cannot be read is refused rather than compacted without it.

The swap is safe against a crash at any point:

1. the new segments are written under ``segments.compacting/`` (readers never look there),
   each file atomically, and flushed to disk; an interruption leaves the recording as it
   was, and the next compaction removes the partial copy;
2. ``segments/`` and ``segments.compacting/`` exchange names in one atomic step (Linux's
   ``renameat2``), so ``segments/`` always holds every event. Where that cannot be done,
   two renames (``segments/`` to ``segments.replaced/``, then the new one into place),
   between which :meth:`Recording.open <wsresearch.recording.Recording.open>` reads
   ``segments.replaced/``, with a warning;
3. the old segments are removed.

A compaction holds the recording's lock file while it runs (``flock``), as a recorder
claims it, so two never run at once on one recording, and a recording still being written
(or whose recorder was killed, leaving its lock) is refused. A compaction's lock file that
nobody holds was left by one that was killed: it is taken over, and what that one left is
finished or undone first.

New files are named apart from the old ones (``events-<seq>.c<n>.parquet``), so a
:class:`~wsresearch.recording.Recording` opened before the compaction does not read a new
file for an old one: it fails on the segment gone, and is opened again.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .._catalog import not_a_recording
from .._files import (
    CAN_LOCK,
    exchange_paths,
    hold_file,
    make_private_dirs,
    sync_path,
    write_private_parquet,
)
from .._limits import check_count
from ..errors import RecordingError
from .format import (
    COMPACTING,
    FORMAT_VERSION,
    LOCK,
    MANIFEST,
    REPLACED,
    SEGMENTS,
    V1_COLUMNS,
    RecordingManifest,
)
from .reader import Recording
from .writer import (
    SEGMENT_COMPRESSION_LEVEL,
    SEGMENT_EVENTS,
    SEGMENT_ROW_GROUP,
)

__all__ = ["Compacted", "compact_recording"]

_COMPACTED_NAME = re.compile(r"\.c(\d+)(?:\.\d+)?\.parquet$")
"""How a compacted segment's name ends: ``.c<n>.parquet`` (or ``.c<n>.<k>.parquet``), ``n``
one more each time the folder is compacted."""


@dataclass(frozen=True)
class Compacted:
    """What :func:`compact_recording` did to a recording.

    Attributes
    ----------
    events
        Events in the recording (the same before and after).
    files_before, files_after
        Segment files before and after.
    bytes_before, bytes_after
        Their size on disk.
    folders_rewritten
        Segment folders whose events were rewritten (the others were already compact).
    """

    events: int
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    folders_rewritten: int


def compact_recording(
    path: str | os.PathLike[str],
    *,
    segment_events: int = SEGMENT_EVENTS,
    progress: Callable[[int, int], None] | None = None,
) -> Compacted:
    """Rewrite a finished recording's segments as files of up to ``segment_events`` events.

    Each segment folder (a ``rotate_interval`` of the session) is compacted on its own, so
    the folders keep their meaning. Running it again on a compacted recording changes
    nothing; running it after a compaction that was interrupted (killed, a crash) finishes
    or undoes that one first. Nothing else may read or write the recording meanwhile: a
    :class:`~wsresearch.recording.Recording` opened before fails once its segments are gone.

    Parameters
    ----------
    path
        The recording directory.
    segment_events
        Events per new segment file at most (a positive int); what one file's write holds
        in memory.
    progress
        Called with ``(events done, events in all)`` after each file; what it raises stops
        the compaction, leaving the recording as it was.

    Returns
    -------
    Compacted
        The files and bytes before and after.

    Raises
    ------
    RecordingFormatError
        If ``path`` is not a recording.
    RecordingError
        If a recorder (or another compaction) holds the recording's lock, a segment cannot
        be read, the segments are a symbolic link or hold something that is not a
        segment, or the disk fails (full, gone); the recording is then left as it was.
    ValueError
        For a ``segment_events`` that is not a positive int.
    """
    check_count(segment_events, "segment_events")
    root = Path(path)
    if not (root / MANIFEST).is_file():
        raise not_a_recording(root)
    linked = [root / name for name in (SEGMENTS, COMPACTING, REPLACED)
              if (root / name).is_symlink()]
    if linked:
        raise RecordingError(f"cannot compact {root}: {linked[0]} is a symbolic link; "
                             "compact the recording where its segments are")
    try:
        with _locked(root):
            _finish_interrupted(root)
            return _compact(root, segment_events, progress)
    except OSError as exc:
        if isinstance(exc, RecordingError):
            raise
        raise RecordingError(f"cannot compact {root}: {exc}; the recording is left as it "
                             "was") from exc


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the recording's lock file for the duration, marked as a compaction's.

    The lock file is held with ``flock`` while the compaction runs, and the kernel lets go
    of it when the process ends, however it ends: a lock file marked as a compaction's that
    nobody holds was left by one that was killed, and is taken over (held, not replaced,
    so that two compactions can never both take it). Any other lock file (a recorder's,
    which is empty) refuses.
    """
    lock = root / LOCK
    mine = f"{_MARK} {socket.gethostname()} {os.getpid()}\n"
    if not CAN_LOCK:
        raise RecordingError("compacting a recording needs flock, which this system "
                             "lacks (Windows); compact it on Linux or macOS")
    descriptor = _created(lock, mine)
    if descriptor is None:  # a lock file is there: a stale compaction's is taken over
        descriptor = _taken_over(lock, mine)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            held, there = os.fstat(descriptor), os.stat(lock)
            if (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino):  # ours still
                lock.unlink()
        os.close(descriptor)


_MARK = "compact"
"""How a compaction's lock file begins (a recorder's is empty)."""


def _created(lock: Path, mine: str) -> int | None:
    """A new lock file holding ``mine``, held; ``None`` if there is one already.

    The text is written to a file of its own, which is held, then linked into place: the
    lock file appears whole and held, or not at all (a full disk leaves no empty one).
    """
    descriptor, temporary = tempfile.mkstemp(dir=lock.parent, prefix=f"{lock.name}.",
                                             suffix=".tmp")
    try:
        hold_file(descriptor, wait=False)  # nobody knows it yet
        os.write(descriptor, mine.encode())
        os.fsync(descriptor)
        os.link(temporary, lock)
    except FileExistsError:
        os.close(descriptor)
        return None
    except BaseException:
        os.close(descriptor)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    return descriptor


def _taken_over(lock: Path, mine: str) -> int:
    """Hold the lock file a killed compaction left, marked now as this one's.

    Raises
    ------
    RecordingError
        If a compaction holds it, or it is not a compaction's (a recorder's).
    """
    try:
        descriptor = os.open(lock, os.O_RDWR)
    except OSError as exc:
        raise RecordingError(f"{lock.parent} is locked ({LOCK}), and the lock cannot be "
                             f"read: {exc}") from None
    try:
        # A recorder's lock file is empty (and held while it runs): told apart first.
        if not os.pread(descriptor, 200, 0).decode(errors="replace").startswith(_MARK + " "):
            raise RecordingError(
                f"{lock.parent} is locked ({LOCK}) by a recorder writing it, or one that was "
                f"killed there: compact it once no recorder runs (remove {LOCK} if one was "
                "killed)")
        try:
            hold_file(descriptor, wait=False)  # BlockingIOError where another holds it
        except BlockingIOError:
            raise RecordingError(f"{lock.parent} is being compacted ({LOCK} is held): compact "
                                 "it once that is over") from None
        os.ftruncate(descriptor, 0)  # held: the killed compaction's, now this one's
        os.pwrite(descriptor, mine.encode(), 0)
        os.fsync(descriptor)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _finish_interrupted(root: Path) -> None:
    """Finish or undo a compaction that was interrupted, leaving ``segments/`` whole.

    Whatever the step it stopped at, one of ``segments/`` and ``segments.replaced/`` holds
    every event and ``segments.compacting/`` is not needed: a partial copy, or the old
    segments after the exchange.
    """
    segments, replaced, compacting = root / SEGMENTS, root / REPLACED, root / COMPACTING
    try:
        if replaced.is_dir():
            if segments.is_dir():  # the swap was done: the new segments are whole
                shutil.rmtree(replaced)
            else:  # stopped between the two renames: the old ones are whole
                os.rename(replaced, segments)
                sync_path(root)
        if compacting.is_dir():
            shutil.rmtree(compacting)
    except OSError as exc:
        raise RecordingError(f"cannot finish the interrupted compaction of {root}: "
                             f"{exc}") from None


@dataclass(frozen=True)
class _Folder:
    """A segment folder: its segments (as a recording of them), its other files, its events."""

    path: Path
    part: Recording
    """Its segments as a recording of their own: surveyed once, for the count and the copy."""
    others: list[Path]
    """Leftovers of unfinished writes (``*.tmp``): kept as they are."""
    events: int

    @property
    def segments(self) -> list[Path]:
        """Its segment files, in name order."""
        return self.part.files

    def worth_compacting(self, size: int) -> bool:
        """Whether its segments would be fewer files compacted into files of ``size``."""
        return len(self.segments) > max(1, math.ceil(self.events / size))

    @functools.cached_property
    def mark(self) -> int:
        """The ``n`` of its new segments' names: one more than its old names have."""
        return 1 + max((int(found.group(1)) for file in self.segments
                        if (found := _COMPACTED_NAME.search(file.name))), default=0)

    def new_name(self, first_seq: int, target: Path) -> str:
        """A new segment's name, apart from every name the folder holds and ``target`` has.

        ``events-<first seq>.c<n>.parquet`` (:attr:`mark`); where a folder repeats a
        ``seq`` (a copied segment), two new files can begin on one, and the later takes a
        number after ``n``: ``.c<n>.<k>.parquet``.
        """
        stem = f"events-{first_seq:012d}.c{self.mark}"
        name, repeat = f"{stem}.parquet", 0
        while (target / name).exists():
            repeat += 1
            name = f"{stem}.{repeat}.parquet"
        return name


def _compact(root: Path, size: int, progress: Callable[[int, int], None] | None) -> Compacted:
    segments, compacting = root / SEGMENTS, root / COMPACTING
    manifest = Recording.open(root).manifest
    folders = _folders(root, manifest)
    files = [file for folder in folders for file in folder.segments]
    before = sum(file.stat().st_size for file in files)
    total = sum(folder.events for folder in folders)
    if not any(folder.worth_compacting(size) for folder in folders):
        return Compacted(total, len(files), len(files), before, before, 0)
    done, rewritten = 0, 0

    def advance(events: int) -> None:
        nonlocal done
        done += events
        if progress is not None:
            progress(done, total)

    try:
        make_private_dirs(compacting)
        for folder in folders:
            target = compacting / folder.path.name
            make_private_dirs(target)
            if folder.worth_compacting(size):
                _rewrite(folder, target, size, advance, _v1_only(manifest, folder.segments))
                rewritten += 1
            else:
                for file in folder.segments:
                    _link(file, target / file.name)
                advance(folder.events)
            for file in folder.others:
                _link(file, target / file.name)
            _same_owner(folder.path, target)  # filled first: a read-only folder stays so
            sync_path(target)
        _same_owner(segments, compacting)
        sync_path(compacting)
        after = list(compacting.glob("*/*.parquet"))
        if _events(Recording(root, manifest, after)) != total:  # what each check missed
            raise RecordingError(f"cannot compact {root}: the new segments do not hold "
                                 f"its {total} events")
        size_after = sum(file.stat().st_size for file in after)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(compacting)
        raise
    _swap(root)
    return Compacted(total, len(files), len(after), before, size_after, rewritten)


def _folders(root: Path, manifest: RecordingManifest) -> list[_Folder]:
    """Each segment folder, with its segments and the events they hold.

    Raises
    ------
    RecordingError
        For a segment that cannot be read, or anything in the segment folders that is not
        a segment or a leftover of an unfinished write: compacting would lose it.
    """
    segments = root / SEGMENTS
    if not segments.is_dir():
        return []
    found: list[_Folder] = []
    strange: list[str] = []
    for folder in sorted(segments.iterdir()):
        if folder.is_symlink() or not folder.is_dir():
            strange.append(f"{folder} ({'a symbolic link' if folder.is_symlink() else 'a file'}"
                           ", not a segment folder)")
            continue
        parquet, others = [], []
        for file in sorted(folder.iterdir(), key=lambda p: p.name):
            if file.is_symlink():
                strange.append(f"{file} (a symbolic link)")
            elif not file.is_file():
                strange.append(f"{file} (not a regular file)")
            elif file.suffix == ".parquet":
                parquet.append(file)
            elif file.suffix == ".tmp":
                others.append(file)
            else:
                strange.append(f"{file} (not a segment)")
        part = Recording(root, manifest, parquet)
        found.append(_Folder(folder, part, others, _events(part)))
    if strange:
        raise RecordingError(
            f"cannot compact {root}: it holds {'; '.join(strange[:3])}"
            f"{'; ...' if len(strange) > 3 else ''}, which a compaction would not keep "
            "as it is")
    return found


def _events(part: Recording) -> int:
    """The events ``part``'s files hold: from its survey, which its reading then uses too.

    A file the survey finds no rows in is asked its footer: one that cannot be read
    raises; one that holds no rows holds nothing to lose.
    """
    return sum(rows if rows else _rows(file)
               for file, (_, rows, _, _) in zip(part.files, part._survey(), strict=True))


def _rows(file: Path) -> int:
    """The rows a segment file's footer says it holds.

    Raises
    ------
    RecordingError
        If it cannot be read: compacting would lose it.
    """
    try:
        rows: int = pl.scan_parquet(file, glob=False).select(pl.len()).collect().item()
    except (Exception, pl.exceptions.PanicException) as exc:
        raise RecordingError(f"cannot compact the recording: its segment {file} cannot be "
                             f"read ({exc}), and compacting would lose it") from None
    return rows


def _v1_only(manifest: RecordingManifest, files: list[Path]) -> bool:
    """Whether a folder's segments are all version-1 files (no ``closed_by``).

    Such a folder's new segments are version-1 files too, so that the recording's files
    keep one schema: ``pl.read_parquet("DIR/segments/*/*.parquet")`` reads them all.
    """
    if manifest.version >= FORMAT_VERSION:
        return False
    return all("closed_by" not in pl.read_parquet_schema(file) for file in files)


def _rewrite(folder: _Folder, target: Path, size: int, advance: Callable[[int], None],
             v1: bool) -> None:
    """A folder's events as files of up to ``size`` events in ``target``, each checked.

    ``advance`` is called with each file's events once it is written and checked; ``v1``
    writes version-1 files (readers derive ``closed_by`` again, as they did).

    Raises
    ------
    RecordingError
        If not every event could be read (a damaged segment, which the reader skips with
        a warning), or a file written does not read back as the events it holds.
    """
    written, part = 0, folder.part
    for chunk in part.chunks(size):
        file = target / folder.new_name(int(chunk["seq"][0]), target)
        write_private_parquet(chunk.select(V1_COLUMNS) if v1 else chunk, file,
                              compression_level=SEGMENT_COMPRESSION_LEVEL,
                              row_group_size=SEGMENT_ROW_GROUP)
        _same_owner(folder.segments[0], file)
        if not Recording(part.path, part.manifest, [file]).events().equals(chunk):
            raise RecordingError(f"cannot compact {folder.path}: {file} does not read back "
                                 "as the events written")
        written += chunk.height
        advance(chunk.height)
    if written != folder.events:
        raise RecordingError(f"cannot compact {folder.path}: {folder.events - written} of "
                             f"its {folder.events} events could not be read (see the "
                             "warnings), and compacting would lose them")


def _same_owner(source: Path, target: Path) -> None:
    """Give ``target`` the permissions and the group ``source`` has.

    The group where this user may give it (a member of it, or root); otherwise the file
    keeps this user's group, as any file this user writes does.
    """
    found = source.stat()
    with contextlib.suppress(PermissionError):
        os.chown(target, -1, found.st_gid)
    os.chmod(target, stat.S_IMODE(found.st_mode))


def _link(source: Path, target: Path) -> None:
    """``target`` as another name of ``source``; a copy, flushed to disk, without links."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
        sync_path(target)


def _swap(root: Path) -> None:
    """Put the compacted segments in place of the old ones, then remove those."""
    segments, replaced, compacting = root / SEGMENTS, root / REPLACED, root / COMPACTING
    try:
        if exchange_paths(compacting, segments):  # segments/ is never missing
            old = compacting
        else:
            os.rename(segments, replaced)
            os.rename(compacting, segments)
            old = replaced
        sync_path(root)
    except OSError as exc:
        raise RecordingError(f"cannot put the compacted segments of {root} in place: "
                             f"{exc}; the next compaction puts the old ones back first"
                             ) from None
    with contextlib.suppress(OSError):  # the next compaction removes what is left
        shutil.rmtree(old)
