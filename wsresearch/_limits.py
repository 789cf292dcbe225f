"""The ranges of the 64-bit columns every timestamp, count and id is stored in.

Python ints have no limit; polars columns and the recording's Parquet files do.
Values are checked against these where they enter (a message's fields, an exchange
time, a sequence number, a manifest), so none overflows into a null later.
"""

from __future__ import annotations

__all__ = ["INT64_MAX", "INT64_MIN", "UINT64_MAX", "check_count"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


def check_count(value: object, name: str) -> None:
    """Refuse a count (events, workers) that is not a positive int, in one line.

    A bool is not a count, though Python counts it an int.

    Raises
    ------
    ValueError
        Naming ``name``: "``name`` must be a positive int, got ...".
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
