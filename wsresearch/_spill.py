"""Columns gathered a piece at a time, in memory up to a budget and in temporary files after.

A report of a long recording needs every message's receive time and latency, read in
order, more than once, but never all at once: :class:`Spill` keeps the pieces it is given
in memory until they pass its budget, then writes them to Arrow IPC files in a temporary
directory and lets them go. Reading a column back yields its pieces in the order they
came, from the files and then from memory, so the memory a reader holds is one piece.
The budget is shared: when the pieces held pass it, every column's go to files, so
nothing touches the disk until the budget is passed once.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path

import polars as pl

__all__ = ["Spill"]


class Spill:
    """Named columns, each appended in pieces and read back in order.

    The pieces held when the budget is passed are joined into one file per column, so a
    column reads back in fewer, longer pieces than it was given; their order is kept.

    Parameters
    ----------
    budget_bytes
        The most the held pieces take in memory together: past it, each column's held
        pieces are written to a file of their own and let go (> 0).

    Examples
    --------
    >>> import polars as pl
    >>> with Spill(budget_bytes=16) as spill:
    ...     spill.append("t", pl.Series([1, 2], dtype=pl.Int64))
    ...     spill.append("t", pl.Series([3], dtype=pl.Int64))
    ...     spill.append("t", pl.Series([4], dtype=pl.Int64))
    ...     [part.to_list() for part in spill.parts("t")], spill.spilled
    ([[1, 2, 3], [4]], True)
    """

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be > 0, got {budget_bytes}")
        self.budget_bytes = budget_bytes
        self._held: dict[str, list[pl.Series]] = {}
        self._files: dict[str, list[Path]] = {}
        self._held_bytes = 0
        self._written = 0
        self._dir: Path | None = None
        self._cleanup: weakref.finalize | None = None  # type: ignore[type-arg]

    @property
    def spilled(self) -> bool:
        """Whether any piece went to a file."""
        return self._dir is not None

    @property
    def folder(self) -> Path | None:
        """The temporary directory of the files, once one is written and until :meth:`close`."""
        return self._dir

    def append(self, name: str, values: pl.Series) -> None:
        """Add ``values`` to the end of column ``name`` (an empty piece is not kept)."""
        if values.is_empty():
            return
        self._held.setdefault(name, []).append(values)
        self._held_bytes += int(values.estimated_size())
        if self._held_bytes > self.budget_bytes:
            self._write_held()

    def parts(self, name: str) -> Iterator[pl.Series]:
        """Column ``name``'s pieces in order: those in files (read one at a time), then held."""
        for path in self._files.get(name, []):
            yield pl.read_ipc(path).to_series()
        yield from self._held.get(name, [])

    def _write_held(self) -> None:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="wsresearch-spill-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, True)
        for name, pieces in self._held.items():
            files = self._files.setdefault(name, [])
            path = self._dir / f"{self._written}.arrow"
            self._written += 1
            pl.concat(pieces, rechunk=True).to_frame().write_ipc(path, compression="uncompressed")
            files.append(path)
        self._held.clear()
        self._held_bytes = 0

    def close(self) -> None:
        """Remove the files (also done when the spill is collected)."""
        self._held.clear()
        self._files.clear()
        self._held_bytes = 0
        if self._cleanup is not None:
            self._cleanup()
        self._dir = None

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
