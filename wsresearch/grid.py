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

from ._text import first_line
from ._warn import warn
from .clock import Time, given_ns, utc_text

__all__ = ["MAX_GRID_ROWS", "on_grid"]

MAX_GRID_ROWS = 100_000_000
"""The most rows :func:`on_grid` makes (grid times times series) before it refuses."""

_DEFAULT_BY = ("exchange", "symbol")


def on_grid(
    table: pl.DataFrame | pl.LazyFrame,
    every: str | dt.timedelta,
    *,
    by: str | Sequence[str] | None = None,
    columns: str | Sequence[str] | None = None,
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
        The columns that tell the series apart (a name, or several). Default:
        ``exchange`` and ``symbol``, those of them ``table`` has.
    columns
        The columns to sample (a name, or several). Default: all but ``by`` (``time``
        included, so each row tells when the value it holds was received). A lazy
        frame is read for these columns only.
    time
        The column the rows are ordered and sampled by: ``local_time`` (the receive
        time, what a strategy could have known) or ``exchange_time``.
    start, end
        The grid's span (inclusive), as a datetime, a date or ns since the epoch.
        Default: where every series has begun (its latest first row) to where the first
        series ends (the earliest last row), so every series has a value at every time.
    max_age
        A value older than this at a grid time is null, not carried forward (a quote
        from an hour ago is not the quote now); one exactly this old is kept. A calendar
        duration (``"1mo"``) counts as its length from 2000-01-01. Default: carried
        forward without limit; an ``end`` given past a series'
        last row is then warned of, since its values there are that row's.

    Returns
    -------
    polars.DataFrame
        ``time`` (the grid time, in ``time``'s type), the ``by`` columns, then
        ``columns``: one row per grid time and series, ordered by time then series. A
        series with no row yet at a time (before its first, with ``start`` given) has
        nulls there. Rows with no ``time`` are left out; a series with none in any row
        (Binance spot quotes on ``exchange_time``) is left out with a warning naming it.

    Raises
    ------
    TypeError
        If ``table`` is not a polars DataFrame or LazyFrame (a pandas one, say).
    ValueError
        If a named column is missing, the table has a column ``time`` among those
        sampled (the grid's times take that name), ``time`` is not a Datetime column,
        ``every`` or ``max_age`` is not a positive duration, ``every`` is finer than the
        time column's unit, a row's ``by`` value is null (it names no series), the table
        has no row with a time, the series do not overlap (and no ``start`` and ``end``
        are given), ``start`` is after ``end``, or the grid would exceed
        :data:`MAX_GRID_ROWS` rows.

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
    if not isinstance(table, pl.DataFrame | pl.LazyFrame):
        kind = type(table)
        hint = (" (polars.from_pandas(table) converts it)" if kind.__module__.startswith("pandas")
                else "")
        raise TypeError(f"on_grid takes a polars DataFrame or LazyFrame, got "
                        f"{kind.__module__}.{kind.__qualname__}{hint}")
    keys = [by] if isinstance(by, str) else None if by is None else list(by)
    wanted = [columns] if isinstance(columns, str) else None if columns is None else list(
        columns)
    names = table.collect_schema().names() if isinstance(table, pl.LazyFrame) else table.columns
    if keys is None:
        keys = [k for k in _DEFAULT_BY if k in names]
    missing = [c for c in (time, *keys, *(wanted or ())) if c not in names]
    if missing:
        raise ValueError(f"no column(s) {missing} in the table; its columns: {names}")
    values = [c for c in (names if wanted is None else wanted) if c not in keys]
    if "time" in keys or "time" in values:
        raise ValueError("the table has a column 'time', the name the grid's times take: "
                         "rename it, or leave it out of by= and columns=")
    # Only what is sampled is read, a lazy frame's included (a dataset of book changes);
    # of the rows with no time, only which series have any with one.
    picked = table.lazy().select(*keys, pl.col(time).alias("_row_time"), *values)
    dtype = picked.collect_schema()["_row_time"]
    if not isinstance(dtype, pl.Datetime):
        raise ValueError(f"{time!r} is {dtype}, not a Datetime column: give time= a column "
                         "of times (local_time, exchange_time)")
    queries = [picked.filter(pl.col("_row_time").is_not_null())]
    if keys:  # series to tell apart: which have a time, read in the same pass
        queries.append(picked.group_by(keys).agg(
            pl.col("_row_time").is_not_null().any().alias("_timed")))
    frame, *timed = pl.collect_all(queries)
    step = _ns(every, "every")
    unit = _UNIT_NS[dtype.time_unit]
    if step % unit:
        raise ValueError(f"every {every!r} is not a whole number of {dtype.time_unit}, the "
                         f"unit of {time!r}")
    age = None if max_age is None else _ns(max_age, "max_age")
    unnamed = frame.select(pl.any_horizontal(pl.col(keys).is_null()).sum()).item() if keys else 0
    if unnamed:
        raise ValueError(f"{unnamed:,} row(s) have a null {' or '.join(keys)}, which names no "
                         "series: drop or fill them first")
    if frame.height == 0:
        raise ValueError(f"the table has no row with a time in {time!r}: there is nothing "
                         "to sample")
    for series in timed:  # the input is good: what it lacks is worth a word
        _warn_timeless(series, keys, time)
    # Every time as ns since the epoch, exactly: a datetime object would stop at the us.
    rows = frame.with_columns(_row_ns=pl.col("_row_time").dt.epoch("ns")).sort(
        "_row_ns", maintain_order=True)
    spans = rows.group_by(keys, maintain_order=True) if keys else None
    series = (spans.agg(pl.col("_row_ns").min().alias("_first"),
                        pl.col("_row_ns").max().alias("_last")) if spans is not None else
              rows.select(pl.col("_row_ns").min().alias("_first"),
                          pl.col("_row_ns").max().alias("_last")))
    low = given_ns(start, "start") if start is not None else int(series["_first"].max())  # type: ignore[arg-type]
    high = given_ns(end, "end") if end is not None else int(series["_last"].min())  # type: ignore[arg-type]
    if end is not None and age is None:
        _warn_carried(series, keys, high)
    if low > high:
        if start is None and end is None:
            raise ValueError(
                f"the series do not overlap: the last to begin begins at {utc_text(low)}, "
                f"after the first to end ends at {utc_text(high)}; give start= and end= to "
                "sample them anyway")
        raise ValueError(f"start {utc_text(low)} is after end {utc_text(high)}")
    bounds = pl.select(_in(low, dtype).dt.truncate(every).alias("first"),
                       _in(high, dtype).alias("last"))
    first_ns = bounds.select(pl.col("first").dt.epoch("ns")).item()
    count = ((high - first_ns) // step + 1) * max(series.height, 1)  # before the grid is made
    if count > MAX_GRID_ROWS:
        raise ValueError(f"the grid would have {count:,} rows ({(high - first_ns) // step + 1:,} "
                         f"times, {series.height:,} series), over {MAX_GRID_ROWS:,}: choose a "
                         "longer every, a shorter span, or fewer series")
    grid = bounds.select(pl.datetime_range(pl.col("first").first(), pl.col("last").first(), every,
                                           time_unit=dtype.time_unit, time_zone=dtype.time_zone)
                         .alias("time"))
    grid = grid.with_columns(_grid_ns=pl.col("time").dt.epoch("ns")).filter(
        pl.col("_grid_ns").is_between(low, high))
    if keys:
        grid = grid.join(series.select(keys), how="cross")
    # Both sides are sorted by time above; polars cannot check it per series.
    sampled = grid.join_asof(rows, left_on="_grid_ns", right_on="_row_ns", by=keys or None,
                             strategy="backward", tolerance=age, check_sortedness=False)
    return sampled.select("time", *keys, *values)


_UNIT_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000}


def _warn_timeless(timed: pl.DataFrame, keys: list[str], time: str) -> None:
    """Warn of the series whose every row lacks ``time``: the grid cannot hold them.

    ``timed``: a row per series (its ``keys``, not empty), ``_timed`` whether any of its
    rows has a time. Binance spot's ``bookTicker`` carries no exchange time, so on ``exchange_time``
    its quotes have none: left out in silence, a venue would be missing from a comparison
    of venues with nothing to say so. Rows of a series that has some times are left out
    as documented, without a warning; so are rows with a null key, which name no series.
    """
    timeless = timed.filter(~pl.col("_timed")).drop_nulls(keys).sort(keys)
    if timeless.height == 0:
        return
    names = [" ".join(str(v) for v in row) for row in timeless.select(keys).head(_NAMED).rows()]
    more = f", and {timeless.height - _NAMED:,} more" if timeless.height > _NAMED else ""
    other = "exchange_time" if time == "local_time" else "local_time"
    one = timeless.height == 1
    warn(f"{timeless.height:,} series {'has' if one else 'have'} no {time} in any row and "
         f"{'is' if one else 'are'} left out of the grid: {', '.join(names)}{more}; sample "
         f"{'it' if one else 'them'} by time={other!r}, or fill {'its' if one else 'their'} "
         f"{time}")


def _warn_carried(series: pl.DataFrame, keys: list[str], high: int) -> None:
    """Warn of the series whose last row is before the ``end`` given (``high``).

    Past its last row a series' value is that row's, carried forward without limit
    (unless ``max_age``): right for a quote that did not change, and also what a span
    past the data gives, a recording that ended or a venue gone quiet. So it is told of.
    """
    ended = series.filter(pl.col("_last") < high).sort("_last")
    if ended.height == 0:
        return
    names = [" ".join(str(v) for v in row) for row in ended.select(keys).head(_NAMED).rows()]
    more = f", and {ended.height - _NAMED:,} more" if ended.height > _NAMED else ""
    which = f" ({', '.join(names)}{more})" if keys else ""
    last = utc_text(int(ended["_last"][0]), 3)
    one = ended.height == 1
    warn(f"{ended.height:,} series{which} {'ends' if one else 'end'} before end "
         f"{utc_text(high, 3)} (the first at {last}): past {'its' if one else 'their'} last "
         f"row the grid carries {'its' if one else 'their'} last value forward; max_age= "
         "leaves values that old null")


_NAMED = 5  # the series a warning names


def _in(ns: int, dtype: pl.Datetime) -> pl.Expr:
    """``ns`` since the epoch as a time of ``dtype`` (its unit, floored; its zone)."""
    utc = pl.lit(ns).cast(pl.Datetime("ns", "UTC")).cast(pl.Datetime(dtype.time_unit, "UTC"))
    return utc.dt.convert_time_zone(dtype.time_zone) if dtype.time_zone else (
        utc.dt.replace_time_zone(None))


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
        raise ValueError(f"{name} {value!r} is not a duration such as '1s', '100ms' or "
                         f"'5m': {first_line(error)}") from None
    if length <= 0:
        raise ValueError(f"{name} must be a positive duration, got {value!r}")
    return length
