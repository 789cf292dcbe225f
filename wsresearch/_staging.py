"""An export's rows written as they come: part files staged, one file per partition at the end.

An export of a long recording cannot hold its rows until the end. :class:`Staging` takes
them a chunk at a time, writes each chunk's rows of each partition (a channel or kind,
an exchange, a UTC date) as a part file into a private staging folder beside the dataset,
and at :meth:`~Staging.finish` streams each partition's parts into its one final file
(polars' streaming engine: a row group at a time), adding the columns only known then,
under a temporary name in its final folder; :meth:`~Staging.place` renames them once all
are written, so an export stopped (or failed) before then leaves the dataset as it was.
What is held is one chunk and one row group, whatever the recording's length; a row group
is bounded in bytes as well as rows (:data:`ROW_GROUP_BYTES`), so that a wide row (a book
update's levels) does not make it large.

Rows of a normalized kind come from several channels and must end in receive order, as
one table of the whole recording would have them: sorted on ``local_time``, ties in the
order of the spec's channels, then of arrival. Each part is sorted so, with a ``_source``
column for the channel; when every part begins at or after the end of the one before (a
clock that never steps back across a chunk: the common case), the parts joined are that
order already. Otherwise the partition is sorted whole, which gives the same order,
because a stable sort of the parts joined keeps arrival order among ties.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ._files import sink_private_parquet, write_private_parquet

__all__ = ["ROW_GROUP", "ROW_GROUP_BYTES", "SOURCE", "Staging", "row_bytes"]

SOURCE = "_source"
"""The column that orders a normalized part's ties by channel; never in a final file."""

_ORDER = ("local_time", SOURCE)

ROW_GROUP = 100_000
"""Rows in each row group of a final file but its last, at most. The number is the same
whatever chunks and processes its rows came from, so that the file is too."""

ROW_GROUP_BYTES = 16 * 2**20
"""The row groups' size, at most, in bytes of their rows in memory (:func:`row_bytes`).

polars' sink holds a row group whole before it writes it: 100,000 rows of Binance depth
updates are about 53 MB, and held 80 MB more at an export's end than 10,000 rows.
A partition's row groups are made as long as its rows' average size lets them be within
this, from :data:`ROW_GROUP` rows down to :data:`MIN_ROW_GROUP`."""

MIN_ROW_GROUP = 1_000
"""Rows in a row group, at least (a file's last aside): however wide its rows are."""

_FIXED: dict[object, int] = {
    pl.Boolean: 1, pl.Int8: 1, pl.UInt8: 1, pl.Int16: 2, pl.UInt16: 2, pl.Int32: 4,
    pl.UInt32: 4, pl.Float32: 4, pl.Date: 4, pl.Int64: 8, pl.UInt64: 8, pl.Float64: 8,
    pl.Datetime: 8, pl.Duration: 8, pl.Time: 8, pl.Int128: 16, pl.Decimal: 16}
_VIEW = 16  # a string's or a list's own share of a row, besides its bytes or items


@dataclass
class _Partition:
    folder: str  # "channel=trade" or "kind=trades"
    day: dt.date
    parts: list[Path] = field(default_factory=list)
    schemas: list[dict[str, pl.DataType]] = field(default_factory=list)  # each part's
    # For ordered (normalized) partitions: each part's first and last (local_time, _source).
    bounds: list[tuple[Any, Any]] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0  # the rows' size in memory (row_bytes): adds up the same however split

    def row_group(self) -> int:
        """Rows in each of the final file's row groups: within :data:`ROW_GROUP_BYTES`."""
        fit = ROW_GROUP_BYTES * self.rows // max(self.bytes, 1)
        return min(ROW_GROUP, max(MIN_ROW_GROUP, fit))

    def in_order(self) -> bool:
        """Whether the parts joined are sorted already (each starts where the last ended)."""
        return all(after[0] >= before[1] for before, after in
                   zip(self.bounds, self.bounds[1:], strict=False))


class Staging:
    """Part files of one export, staged in a private folder of the dataset's root.

    Parameters
    ----------
    root
        The dataset's directory (it exists).
    exchange
        The ``exchange`` partition of every file.
    folder
        Where to make the staging folder (default ``root``): a part of a recording exported
        in parts stages into the staging folder of the whole.
    """

    def __init__(self, root: Path, exchange: str, folder: Path | None = None) -> None:
        self.root = root
        self.exchange = exchange
        # 0700, and removed by close()
        self.folder = Path(tempfile.mkdtemp(prefix=".export-", dir=folder or root))
        self._partitions: dict[tuple[str, dt.date], _Partition] = {}
        self._written = 0
        self._pending: list[tuple[Path, Path]] = []  # final files written, not yet placed

    @property
    def partitions(self) -> list[_Partition]:
        """The partitions staged so far, each with its part files in order."""
        return list(self._partitions.values())

    def adopt(self, partitions: list[_Partition]) -> None:
        """Append another staging's parts (of a later part of the recording) to these."""
        for other in partitions:
            mine = self._partitions.setdefault((other.folder, other.day),
                                               _Partition(other.folder, other.day))
            mine.parts += other.parts
            mine.schemas += other.schemas
            mine.bounds += other.bounds
            mine.rows += other.rows
            mine.bytes += other.bytes

    def add(self, folder: str, frame: pl.DataFrame) -> None:
        """Stage ``frame``'s rows of ``folder`` (``channel=...``, or ``kind=...`` with ``_source``).

        A ``channel`` frame's date is its ``recv_wall_ns``'s, a ``kind`` frame's its
        ``local_time``'s. A ``kind`` frame is sorted into receive order here.
        """
        if frame.height == 0:
            return
        ordered = folder.startswith("kind=")
        if ordered:
            frame = frame.sort(*_ORDER, maintain_order=True)
            day = pl.col("local_time").dt.date()
        else:
            day = pl.from_epoch("recv_wall_ns", time_unit="ns").dt.date()
        dated = frame.with_columns(day.alias("_date"))
        for (key,), part in dated.group_by("_date", maintain_order=True):
            assert isinstance(key, dt.date)
            partition = self._partitions.setdefault((folder, key), _Partition(folder, key))
            self._written += 1
            path = self.folder / f"part-{self._written:08d}.parquet"
            part = part.drop("_date")
            write_private_parquet(part, path, compression_level=1)
            partition.parts.append(path)
            partition.schemas.append(dict(part.schema))
            partition.rows += part.height
            partition.bytes += row_bytes(part)
            if ordered:
                partition.bounds.append((part.select(*_ORDER).row(0),
                                         part.select(*_ORDER).row(-1)))

    def finish(self, recording: str, written: Callable[[], object] | None = None) -> None:
        """Write each partition's file, named ``<recording>.parquet``, not yet in place.

        Each is written under a temporary name in its final folder; after each,
        ``written()`` is called (an exception it raises stops here, the files written so
        far removed by :meth:`close`: nothing of the export is in the dataset yet).
        :meth:`place` then renames them into place. Partitions go in the order of their
        folder names, then of their dates.

        Every row gets the ``recording`` column; a normalized kind loses ``exchange``
        (the partition's) and ``_source``.
        """
        for _, partition in sorted(self._partitions.items()):
            final = (self.root / partition.folder / f"exchange={self.exchange}"
                     / f"date={partition.day.isoformat()}" / f"{recording}.parquet")
            parts = _scan_parts(partition)
            if partition.folder.startswith("kind="):
                if not partition.in_order():  # a clock that stepped back across chunks
                    parts = parts.sort(*_ORDER, maintain_order=True)
                parts = parts.drop("exchange", SOURCE)
            written_to = sink_private_parquet(
                parts.with_columns(pl.lit(recording).alias("recording")), final,
                row_group_size=partition.row_group())
            self._pending.append((written_to, final))
            if written is not None:
                written()

    def place(self) -> list[Path]:
        """Rename each file :meth:`finish` wrote to its name in the dataset; the names.

        A rename in its own folder each (atomic, and never across filesystems, where a
        partition folder is a mount or a link to another disk), over the earlier file of
        the same name, if any: the dataset's files change in a moment at the end, not over
        the time their writing takes.
        """
        placed = []
        while self._pending:
            path, final = self._pending[0]
            os.replace(path, final)
            placed.append(final)
            del self._pending[0]
        return placed

    def close(self) -> None:
        """Remove the staging folder and what is left in it, and the files not placed."""
        with contextlib.suppress(OSError):
            shutil.rmtree(self.folder)
        for path, _ in self._pending:
            with contextlib.suppress(OSError):
                path.unlink()
        self._pending.clear()


def row_bytes(frame: pl.DataFrame) -> int:
    """The size of ``frame``'s rows in memory, as a row group's bound counts it.

    A fixed-width value counts its width; a string its bytes and 16 more; a list 16 and
    each of its items, each as wide as the list's type says (a string item 16). A sum
    over the rows, so a table's is the same however it is split into parts, and the final
    file's row groups with it. An estimate of what polars holds, not an exact count.
    """
    counted: list[pl.Expr] = []
    for name, dtype in frame.schema.items():
        # In 64 bits before the sum: polars sums a 32-bit column in 32 bits, wrapping.
        if isinstance(dtype, pl.String):
            counted.append(pl.col(name).str.len_bytes().cast(pl.Int64).sum())
        elif isinstance(dtype, pl.List):
            counted.append(pl.col(name).list.len().cast(pl.Int64).sum() * _width(dtype.inner))
    extra = sum(frame.select(counted).row(0)) if counted else 0
    fixed: int = sum(_width(dtype) for dtype in frame.schema.values())
    return fixed * frame.height + extra


def _width(dtype: Any) -> int:
    """A value's width in memory, by its polars type (or the type's class).

    A string or a list counts :data:`_VIEW`; their bytes and items are counted apart.
    """
    if isinstance(dtype, pl.Array):
        return _width(dtype.inner) * dtype.size
    if isinstance(dtype, pl.Struct):
        return sum(_width(f.dtype) for f in dtype.fields)
    return _FIXED.get(dtype.base_type(), _VIEW)


def _scan_parts(partition: _Partition) -> pl.LazyFrame:
    """A partition's parts, in order, as one lazy frame to stream into its file.

    Parts of one schema (as a channel's always are) are read by one scan of them all,
    which reads a few files at a time: a scan per part, joined, held a little memory per
    part (about 0.1 MB, so 450 parts took 88 MB above rest, one scan of them 50 MB), which
    a day-long recording's thousands of chunks would have made large. Where a part's
    schema differs from the one before (a normalized kind whose column was all null in a
    chunk), the runs are joined with their types relaxed, as before.
    """
    runs: list[tuple[dict[str, pl.DataType], list[Path]]] = []
    for path, schema in zip(partition.parts, partition.schemas, strict=True):
        if runs and runs[-1][0] == schema:
            runs[-1][1].append(path)
        else:
            runs.append((schema, [path]))
    return pl.concat([pl.scan_parquet(paths, glob=False, hive_partitioning=False)
                      for _, paths in runs], how="vertical_relaxed")
