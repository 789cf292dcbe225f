"""Tables of several exchanges and symbols on one time grid: the last row at or before each time.

Two exchanges' quotes never arrive at the same instants; comparing them (a basis, a
lead-lag, a spread across venues) starts by sampling each on common times. That takes the
span where every series has begun and not yet ended, a grid over it, and an as-of join
per series; :func:`on_grid` does all of it, on any normalized table
(:mod:`wsresearch.normalize`), live, replayed or loaded from an export.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from .clock import Time, ns_since_epoch

__all__ = ["MAX_GRID_ROWS", "on_grid"]

MAX_GRID_ROWS = 100_000_000
"""The most rows :func:`on_grid` makes (grid times times series) before it refuses."""

_DEFAULT_BY = ("exchange", "symbol")


def on_grid(
    table: pl.DataFrame | pl.LazyFrame,
    every: str | dt.timedelta,
    *,
    by: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    time: str = "local_time",
    start: Time | None = None,
    end: Time | None = None,
    max_age: str | dt.timedelta | None = None,
) -> pl.DataFrame:
    """Each series of ``table`` at the times of one grid: its last row at or before each time.

    Parameters
    ----------
    table
        Rows with a ``Datetime`` column ``time``, e.g. ``replay(...).normalized("quotes")``
        of several recordings concatenated, or ``load_normalized(dataset, "quotes")``.
    every
        The grid's step: a polars duration (``"1s"``, ``"100ms"``, ``"5m"``) or a
        ``timedelta``. Grid times fall on multiples of it (whole seconds for ``"1s"``).
    by
        The columns that tell the series apart. Default: ``exchange`` and ``symbol``,
        those of them ``table`` has.
    columns
        The columns to sample. Default: all but ``by`` (``time`` included, so each row
        tells when the value it holds was received).
    time
        The column the rows are ordered and sampled by: ``local_time`` (the receive
        time, what a strategy could have known) or ``exchange_time``.
    start, end
        The grid's span (inclusive), as a datetime, a date or ns since the epoch.
        Default: where every series has begun (its latest first row) to where the first
        series ends (the earliest last row), so every series has a value at every time.
    max_age
        A value older than this at a grid time is null, not carried forward (a quote
        from an hour ago is not the quote now). Default: carried forward without limit.

    Returns
    -------
    polars.DataFrame
        ``time`` (the grid time, in ``time``'s type), the ``by`` columns, then
        ``columns``: one row per grid time and series, ordered by time then series. A
        series with no row yet at a time (before its first, with ``start`` given) has
        nulls there.

    Raises
    ------
    ValueError
        If a named column is missing, ``time`` is not a Datetime column, ``every`` or
        ``max_age`` is not a positive duration, the table is empty, the series do not
        overlap (and no ``start`` and ``end`` are given), ``start`` is after ``end``, or
        the grid would exceed :data:`MAX_GRID_ROWS` rows.

    Examples
    --------
    Two exchanges' quotes, sampled every second where both are quoted:

    >>> import datetime as dt
    >>> import polars as pl
    >>> t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    >>> quotes = pl.DataFrame({
    ...     "exchange": ["a", "b", "a", "b", "a"],
    ...     "symbol": ["BTC"] * 5,
    ...     "local_time": [t0 + dt.timedelta(milliseconds=ms)
    ...                    for ms in (0, 300, 1500, 2000, 2200)],
    ...     "bid_price": [100.0, 101.0, 102.0, 103.0, 104.0],
    ... })
    >>> grid = on_grid(quotes, "1s", columns=["bid_price"])
    >>> grid.select(pl.col("time").dt.strftime("%S"), "exchange", "bid_price").rows()
    [('01', 'a', 100.0), ('01', 'b', 101.0), ('02', 'a', 102.0), ('02', 'b', 103.0)]
    """
    frame = table.collect() if isinstance(table, pl.LazyFrame) else table
    keys = [k for k in _DEFAULT_BY if k in frame.columns] if by is None else list(by)
    missing = [c for c in (time, *keys, *(columns or ())) if c not in frame.columns]
    if missing:
        raise ValueError(f"no column(s) {missing} in the table; its columns: {frame.columns}")
    dtype = frame.schema[time]
    if not isinstance(dtype, pl.Datetime):
        raise ValueError(f"{time!r} is {dtype}, not a Datetime column: give time= a column "
                         "of times (local_time, exchange_time)")
    step = _ns(every, "every")
    if max_age is not None:
        _ns(max_age, "max_age")
    values = [c for c in frame.columns if c not in keys] if columns is None else [
        c for c in columns if c not in keys]
    rows = frame.select(*keys, pl.col(time).alias("_row_time"), *values).filter(
        pl.col("_row_time").is_not_null()).sort("_row_time", maintain_order=True)
    if rows.height == 0:
        raise ValueError("the table has no row with a time: there is nothing to sample")
    series = rows.group_by(keys, maintain_order=True).agg(
        pl.col("_row_time").min().alias("_first"), pl.col("_row_time").max().alias("_last")) \
        if keys else rows.select(pl.col("_row_time").min().alias("_first"),
                                 pl.col("_row_time").max().alias("_last"))
    low = _as(start, dtype) if start is not None else series["_first"].max()
    high = _as(end, dtype) if end is not None else series["_last"].min()
    if low > high:  # type: ignore[operator]
        if start is None and end is None:
            raise ValueError(
                f"the series do not overlap: the last to begin begins at {low}, after the "
                f"first to end ends at {high}; give start= and end= to sample them anyway")
        raise ValueError(f"start {low} is after end {high}")
    first, last = pl.select(pl.lit(low, dtype).dt.truncate(every).alias("first"),
                            pl.lit(high, dtype).alias("last")).row(0)
    span_ns = pl.select((pl.lit(last, dtype) - pl.lit(first, dtype)).dt.total_nanoseconds()
                        ).item()
    count = (span_ns // step + 1) * max(series.height, 1)  # before the grid is made
    if count > MAX_GRID_ROWS:
        raise ValueError(f"the grid would have {count:,} rows ({span_ns // step + 1:,} times, "
                         f"{series.height:,} series), over {MAX_GRID_ROWS:,}: choose a "
                         "longer every, a shorter span, or fewer series")
    times = pl.datetime_range(first, last, every, eager=True, time_unit=dtype.time_unit,
                              time_zone=dtype.time_zone).alias("time")
    times = times.filter(times >= low)
    grid = times.to_frame()
    if keys:
        grid = grid.join(series.select(keys), how="cross")
    # Both sides are sorted by time above; polars cannot check it per series.
    sampled = grid.join_asof(rows, left_on="time", right_on="_row_time", by=keys or None,
                             strategy="backward", tolerance=max_age, check_sortedness=False)
    return sampled.select("time", *keys, *values)


def _ns(value: str | dt.timedelta, name: str) -> int:
    """``value``'s length in ns, checked positive, or a one-line ``ValueError`` naming ``name``.

    A calendar duration (``"1mo"``) counts as its length from 2000-01-01.
    """
    if not isinstance(value, str | dt.timedelta):
        raise ValueError(f"{name} must be a duration such as '1s' or a timedelta, "
                         f"not {type(value).__name__}")
    origin = pl.lit(dt.datetime(2000, 1, 1)).cast(pl.Datetime("ns"))
    moved = origin + value if isinstance(value, dt.timedelta) else origin.dt.offset_by(value)
    try:
        length: int = pl.select((moved - origin).dt.total_nanoseconds()).item()
    except pl.exceptions.PolarsError as error:
        message = str(error).strip().splitlines()[0]
        raise ValueError(f"{name} {value!r} is not a duration such as '1s', '100ms' or "
                         f"'5m': {message}") from None
    if length <= 0:
        raise ValueError(f"{name} must be a positive duration, got {value!r}")
    return length


def _as(value: Time, dtype: pl.Datetime) -> object:
    """``value`` in the table's time type (its unit and zone)."""
    utc = pl.lit(ns_since_epoch(value)).cast(pl.Datetime("ns", "UTC")).cast(
        pl.Datetime(dtype.time_unit, "UTC"))
    local = utc.dt.convert_time_zone(dtype.time_zone) if dtype.time_zone else (
        utc.dt.replace_time_zone(None))
    return pl.select(local).item()
