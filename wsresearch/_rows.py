"""Rows kept for a whole replay, held as Python tuples rather than as polars frames.

A replay in chunks makes and frees a chunk's worth of polars data again and again. A
small frame kept from each chunk until the end (the opens and closes of an export, say)
lives among those transient allocations and keeps the allocator from reusing or returning
the pages around it: an export of 1.8M real Binance frames peaked 56 MB higher for
13 KB of such frames, and the more chunks, the higher. Kept as Python rows, the same few
rows cost nothing of polars' memory, and become one frame only when they are read.
"""

from __future__ import annotations

from typing import Any

import polars as pl

__all__ = ["HeldRows"]


class HeldRows:
    """A table's rows gathered over a replay: added a frame at a time, read as one frame.

    Parameters
    ----------
    schema
        The table's columns and types; an added frame has at least these columns.
    """

    def __init__(self, schema: dict[str, pl.DataType]) -> None:
        self.schema = schema
        self._rows: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, frame: pl.DataFrame) -> None:
        """Keep ``frame``'s rows (its columns of :attr:`schema`, in that order)."""
        if frame.height:
            self._rows += frame.select(list(self.schema)).rows()

    def extend(self, other: HeldRows) -> None:
        """Keep ``other``'s rows after these (a later part of the same table)."""
        self._rows += other._rows

    def frame(self) -> pl.DataFrame:
        """The rows kept, in the order they were added, as one frame of :attr:`schema`."""
        return pl.DataFrame(self._rows, schema=self.schema, orient="row")
