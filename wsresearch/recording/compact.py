"""Compacting a finished recording: its many small segments rewritten as a few large ones.

A live recorder writes a segment file a flush, a second by default, so a day of a feed is
86,400 files. Reading a file costs about 0.4 ms however small it is (its footer, its
schema, a query), so a replay of that day spends half a minute on files alone, and every
engine reading the recording (DuckDB, Spark, polars) pays the same. :func:`compact_recording`
rewrites each segment folder's events as files of up to ``segment_events`` events, in row
groups of :data:`~wsresearch.recording.writer.SEGMENT_ROW_GROUP`; a folder that is already
in as few files as that allows is kept as it is (its files linked, not copied).

Nothing about the events changes: every event keeps its ``seq`` and every column its value,
and each new file is read back and compared with the events it was written from before
anything is replaced. A recording with a segment that cannot be read is refused rather than
compacted without it.

The swap is safe against a crash at any point:

1. the new segments are written under ``segments.compacting/`` (readers never look there),
   each file atomically; an interruption leaves the recording as it was, and the next
   :func:`compact_recording` removes the partial copy;
2. ``segments/`` is renamed ``segments.replaced/`` and ``segments.compacting/`` renamed
   ``segments/``: two renames, between which readers read ``segments.replaced/``
   (:meth:`Recording.open <wsresearch.recording.Recording.open>`, with a warning), so the
   recording reads the same throughout;
3. ``segments.replaced/`` is removed; if that is interrupted, the next :func:`compact_recording`
   removes it.

A compaction holds the recording's lock file while it runs, as a recorder does, so two
never run at once on one recording, and a recording still being written (or whose recorder
was killed, leaving the lock) is refused.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .._files import make_private_dirs, write_private_parquet
from ..errors import RecordingError, RecordingFormatError
from .format import COMPACTING, LOCK, MANIFEST, REPLACED, SEGMENTS, RecordingManifest
from .reader import Recording
from .writer import (
    SEGMENT_COMPRESSION_LEVEL,
    SEGMENT_EVENTS,
    SEGMENT_ROW_GROUP,
    check_segment_events,
)

__all__ = ["Compacted", "compact_recording"]


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
    nothing; running it after an interrupted compaction finishes or undoes that one first.

    Parameters
    ----------
    path
        The recording directory.
    segment_events
        Events per new segment file at most (a positive int); what one file's write holds
        in memory.
    progress
        Called with ``(events done, events in all)`` as folders are compacted.

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
        be read, the segment folders hold something that is not a segment, or a write
        fails; the recording is then left as it was.
    ValueError
        For a ``segment_events`` that is not a positive int.
    """
    check_segment_events(segment_events)
    root = Path(path)
    if not (root / MANIFEST).is_file():
        raise RecordingFormatError(f"{root} is not a recording: it has no {MANIFEST}")
    with _locked(root):
        _finish_interrupted(root)
        return _compact(root, segment_events, progress)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the recording's lock file, as a recorder does, for the duration."""
    try:
        os.close(os.open(root / LOCK, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise RecordingError(
            f"{root} is locked ({LOCK}): a recorder is writing it, another compaction is "
            f"running, or a recorder was killed there; compact it once no recorder runs "
            f"(removing {LOCK} if one was killed)") from None
    except OSError as exc:
        raise RecordingError(f"cannot lock {root}: {exc}") from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            (root / LOCK).unlink()


def _finish_interrupted(root: Path) -> None:
    """Finish or undo a compaction that was interrupted, leaving ``segments/`` complete."""
    segments, replaced, compacting = root / SEGMENTS, root / REPLACED, root / COMPACTING
    try:
        if replaced.is_dir():
            if segments.is_dir():  # the swap was done: the new segments are complete
                shutil.rmtree(replaced)
            else:  # stopped between the two renames: the old ones are complete
                os.rename(replaced, segments)
        if compacting.is_dir():  # a copy never put in place
            shutil.rmtree(compacting)
    except OSError as exc:
        raise RecordingError(f"cannot finish the interrupted compaction of {root}: "
                             f"{exc}") from None


@dataclass(frozen=True)
class _Folder:
    """A segment folder: its segments, its other files, and the events they hold."""

    path: Path
    segments: list[Path]
    others: list[Path]
    """Leftovers of unfinished writes (``*.tmp``): kept as they are."""
    events: int

    def worth_compacting(self, size: int) -> bool:
        """Whether its segments would be fewer files compacted into files of ``size``."""
        return len(self.segments) > max(1, math.ceil(self.events / size))


def _compact(root: Path, size: int, progress: Callable[[int, int], None] | None) -> Compacted:
    compacting = root / COMPACTING
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
        for folder in folders:
            target = compacting / folder.path.name
            make_private_dirs(target)
            if folder.worth_compacting(size):
                _rewrite(Recording(root, manifest, folder.segments), folder.events, target,
                         size, advance)
                rewritten += 1
            else:
                for file in folder.segments:
                    _link(file, target / file.name)
                advance(folder.events)
            for file in folder.others:
                _link(file, target / file.name)
        after = list(compacting.glob("*/*.parquet"))
        _sync_tree(compacting)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(compacting)
        raise
    size_after = sum(file.stat().st_size for file in after)
    _swap(root)
    return Compacted(total, len(files), len(after), before, size_after, rewritten)


def _folders(root: Path, manifest: RecordingManifest) -> list[_Folder]:
    """Each segment folder, with its segments and the events they hold (from their footers).

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
    strange: list[Path] = []
    for folder in sorted(segments.iterdir()):
        if folder.is_symlink() or not folder.is_dir():
            strange.append(folder)
            continue
        parquet, others = [], []
        for file in sorted(folder.iterdir()):
            if file.is_symlink() or not file.is_file():
                strange.append(file)
            elif file.suffix == ".parquet":
                parquet.append(file)
            elif file.suffix == ".tmp":
                others.append(file)
            else:
                strange.append(file)
        found.append(_Folder(folder, parquet, others, _events(root, manifest, parquet)))
    if strange:
        raise RecordingError(
            f"cannot compact {root}: {', '.join(map(str, strange[:3]))}"
            f"{', ...' if len(strange) > 3 else ''} is not a segment file or folder, and "
            "compacting would remove it")
    return found


def _events(root: Path, manifest: RecordingManifest, files: list[Path]) -> int:
    """The events ``files`` hold: surveyed a few hundred files a query, as the reader does.

    A file the survey finds no rows in is asked its footer: one that cannot be read
    raises; one that holds no rows holds nothing to lose.
    """
    surveyed = Recording(root, manifest, files)._survey()
    return sum(rows if rows else _rows(file)
               for file, (_, rows, _, _) in zip(files, surveyed, strict=True))


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
        raise RecordingError(f"cannot compact the recording: its segment "
                             f"{file} cannot be read ({exc}), and compacting would lose "
                             "it") from None
    return rows


def _rewrite(part: Recording, events: int, target: Path, size: int,
             advance: Callable[[int], None]) -> None:
    """A folder's ``events`` as files of up to ``size`` events in ``target``, each checked.

    ``advance`` is called with each file's events once it is written and checked.

    Raises
    ------
    RecordingError
        If not every event could be read (a damaged segment, which the reader skips with
        a warning), or a file written does not read back as the events it holds.
    """
    written = 0
    for chunk in part.chunks(size):
        file = target / f"events-{int(chunk['seq'][0]):012d}.parquet"
        write_private_parquet(chunk, file, compression_level=SEGMENT_COMPRESSION_LEVEL,
                              row_group_size=SEGMENT_ROW_GROUP)
        if not Recording(part.path, part.manifest, [file]).events().equals(chunk):
            raise RecordingError(f"cannot compact {part.path}: {file} does not read back "
                                 "as the events written")
        written += chunk.height
        advance(chunk.height)
    if written != events:
        raise RecordingError(f"cannot compact {part.path}: {events - written} of its "
                             f"{events} events could not be read, and compacting would "
                             "lose them")


def _link(source: Path, target: Path) -> None:
    """``target`` as another name of ``source`` (a copy where links are not supported)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _sync_tree(top: Path) -> None:
    """Flush ``top``'s folders (the names in them) to disk, then ``top`` itself."""
    for folder in [*sorted(p for p in top.iterdir() if p.is_dir()), top]:
        _sync_dir(folder)


def _sync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _swap(root: Path) -> None:
    """Put the compacted segments in place of the old ones (two renames), then drop those."""
    segments, replaced, compacting = root / SEGMENTS, root / REPLACED, root / COMPACTING
    try:
        os.rename(segments, replaced)
        os.rename(compacting, segments)
        _sync_dir(root)
    except OSError as exc:
        raise RecordingError(f"cannot put the compacted segments of {root} in place: "
                             f"{exc}; run the compaction again to finish it") from None
    with contextlib.suppress(OSError):  # the next compaction removes what is left
        shutil.rmtree(replaced)
