"""When a feed did not show the market, as spans of time a backtest can leave out.

A backtest that reads a recording believes every quiet moment: a quote held for a minute
is taken as the market for that minute, though the connection may have been down, the
quote stream silent, or the order book broken while it waited for a snapshot. A quality
report finds those spells (:attr:`QualityReport.outages
<wsresearch.quality.QualityReport>`); :func:`mark_outages` marks the rows that fall in
them, so a backtest drops or flags them with one filter.

The spells, by ``reason``:

``disconnected``
    From a connection's close to the first message after it (or to the session's end):
    nothing came at all, though a connection may have opened. Not after the client's own
    end of the session; one ended by the feed's stop ends there.
``stale``
    A stream the health monitor judged stale, from its last message before it to the
    message that brought it back (or the session's end): the spell the monitor saw.
``hole``
    A gap far longer than the stream's own recent gaps (the report's ``silences``).
``book_invalid``
    An order book not valid (a sequence gap, a failed checksum, a crossed book, a
    closed connection), from the message (or the close) that broke it to the one that
    made it valid again.

Times are on the wall clock of the rows (``local_time``, ``recv_wall_ns``), each span
``start <= time < end``: a stale or hole spell begins at the stream's last message before
it, so that message's own rows are in it, the conservative side for a mask.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TypeVar

import polars as pl

from ._wall_clock import TIME, told
from ._warn import warn
from .clock import NS_PER_S

__all__ = ["OUTAGE_COLUMNS", "mark_outages", "on_wall_clock", "outage_spans"]

OUTAGE_COLUMNS: dict[str, pl.DataType] = {
    "exchange": pl.String(),
    "reason": pl.String(),
    "stream": pl.String(),
    "symbol": pl.String(),
    "start": TIME,
    "end": TIME,
    "length_s": pl.Float64(),
    "detail": pl.String(),
}
"""The columns of an outages table: ``exchange`` (the spec's; null without a spec),
``reason`` (``disconnected``, ``stale``, ``hole`` or ``book_invalid``), ``stream`` (for
``stale`` and ``hole``), ``symbol`` (for ``book_invalid``), ``start`` and ``end`` on the
rows' wall clock, ``length_s`` (on the monotonic clock) and ``detail`` (the close, or why
the book broke)."""

_SPAN_COLUMNS: dict[str, pl.DataType] = {
    "reason": pl.String(), "stream": pl.String(), "symbol": pl.String(),
    "start_mono_ns": pl.Int64(), "end_mono_ns": pl.Int64(), "detail": pl.String(),
    "recovered": pl.Boolean()}

Rows = TypeVar("Rows", pl.DataFrame, pl.LazyFrame)


def outage_spans(downtimes: pl.DataFrame, silences: pl.DataFrame, book_changes: pl.DataFrame,
                 end: int) -> pl.DataFrame:
    """A session's outages on its monotonic clock, in order of their start.

    Parameters
    ----------
    downtimes
        ``start_mono_ns``, ``end_mono_ns``, ``detail`` and ``recovered`` of each time
        disconnected.
    silences
        The report's ``silences``: its ``stale`` and ``hole`` rows are outages
        (``silent_ok``, a silence the spec allows, is not).
    book_changes
        The report's ``book_changes`` (``mono_ns``, ``symbol``, ``valid``, ``reason``),
        in order.
    end
        The session's end, where a spell still open at the end stops.

    Returns
    -------
    polars.DataFrame
        ``reason``, ``stream``, ``symbol``, ``start_mono_ns``, ``end_mono_ns``, ``detail``,
        ``recovered`` (false: still open when the session ended).
    """
    parts = [
        downtimes.select(pl.lit("disconnected").alias("reason"),
                         pl.lit(None, pl.String).alias("stream"),
                         pl.lit(None, pl.String).alias("symbol"),
                         "start_mono_ns", "end_mono_ns", "detail", "recovered"),
        silences.filter(pl.col("silence").is_in(["stale", "hole"])).select(
            pl.col("silence").alias("reason"), "stream", pl.lit(None, pl.String).alias("symbol"),
            "start_mono_ns", "end_mono_ns", pl.lit(None, pl.String).alias("detail"),
            "recovered"),
        _broken_books(book_changes, end),
    ]
    return pl.concat([part.cast(_SPAN_COLUMNS) for part in parts]).sort(  # type: ignore[arg-type]
        "start_mono_ns", "reason", "stream", "symbol", nulls_last=True, maintain_order=True)


def _broken_books(changes: pl.DataFrame, end: int) -> pl.DataFrame:
    """Each book's spells without validity: from a change to invalid to the next to valid.

    A spell never ends before it began: receive times that step back (an imported
    capture's) end it where it began.
    """
    rows: list[tuple[str, int, int, str | None, bool]] = []
    broken: dict[str, tuple[int, str | None]] = {}  # symbol → since, why
    for mono, symbol, valid, reason in changes.select(
            "mono_ns", "symbol", "valid", "reason").iter_rows():
        if not valid:
            broken.setdefault(symbol, (mono, reason or None))
        elif symbol in broken:
            since, why = broken.pop(symbol)
            rows.append((symbol, since, max(mono, since), why, True))
    rows += [(symbol, since, max(end, since), why, False)
             for symbol, (since, why) in broken.items()]
    return pl.DataFrame(rows, orient="row", schema={
        "symbol": pl.String, "start_mono_ns": pl.Int64, "end_mono_ns": pl.Int64,
        "detail": pl.String, "recovered": pl.Boolean}).select(
            pl.lit("book_invalid").alias("reason"), pl.lit(None, pl.String).alias("stream"),
            "symbol", "start_mono_ns", "end_mono_ns", "detail", "recovered")


def on_wall_clock(spans: pl.DataFrame, walls: pl.DataFrame, exchange: str | None) -> pl.DataFrame:
    """``spans`` as an outages table (:data:`OUTAGE_COLUMNS`).

    Parameters
    ----------
    spans
        Of :func:`outage_spans`.
    walls
        Each start and end on the wall clock (``mono_ns``, ``wall``: of
        :func:`~wsresearch._wall_clock.wall_clock`).
    exchange
        The spec's exchange, or ``None`` without a spec.

    Returns
    -------
    polars.DataFrame
        The outages. A spell still open when the session ended ends 1 ns after the
        session's end, so that the rows of its last moment are in it (``time < end``).
    """
    still_open = pl.when(pl.col("recovered")).then(0).otherwise(1)
    return spans.select(
        pl.lit(exchange, pl.String).alias("exchange"), "reason", "stream", "symbol",
        told(walls, "start_mono_ns").alias("start"),
        (told(walls, "end_mono_ns") + pl.duration(nanoseconds=still_open)).alias("end"),
        ((pl.col("end_mono_ns") - pl.col("start_mono_ns")) / NS_PER_S).alias("length_s"),
        "detail")


def mark_outages(rows: Rows, outages: pl.DataFrame, *, time: str = "local_time",
                 streams: Iterable[str] | None = None, name: str = "outage") -> Rows:
    """``rows`` with a column that says which of them fell in an outage.

    A row is in an outage when its ``time`` lies in one (``start <= time < end``) that
    applies to it:

    - ``disconnected``: every row;
    - ``stale`` and ``hole``: every row, for the outages of ``streams`` (default: every
      stream's). A quote stream silent for a minute makes every trade of that minute
      one whose quote is a minute old;
    - ``book_invalid``: the rows of that symbol (every row where ``rows`` has no
      ``symbol`` column).

    An outage with an ``exchange`` applies only to rows of that exchange, where
    ``rows`` has an ``exchange`` column (the normalized tables do), so the outages of
    several reports, concatenated, mark the rows of several exchanges at once. Likewise
    an outage with a ``recording`` (a dataset's, of :func:`~wsresearch.export.load_outages`)
    applies only to that recording's rows, where ``rows`` has a ``recording`` column (an
    exported dataset's rows do): a dataset of many recordings is marked in one call. A
    row whose ``recording``, ``exchange`` or ``symbol`` is null is marked only by outages
    without one.
    The outages are merged per key first, so overlapping ones (every book broken by one
    disconnect) cost no more than one.

    Parameters
    ----------
    rows
        A table of rows (a ``DataFrame`` or ``LazyFrame``): normalized rows, a channel's
        frame, a dataset loaded lazily.
    outages
        An outages table: :attr:`QualityReport.outages
        <wsresearch.quality.QualityReport>`, several concatenated, or a dataset's
        (:func:`~wsresearch.export.load_outages`, which adds ``recording``).
    time
        The rows' receive time: a ``Datetime`` column (naive means UTC), or ns since
        the epoch (``recv_wall_ns``).
    streams
        The streams whose ``stale`` and ``hole`` outages apply (default: all). A name
        with no outage that is close to one with some is warned of (a misspelling).
    name
        The new Boolean column's name.

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        ``rows``, in their order, with ``name`` added: true in an outage, else false
        (also where ``time`` is null).

    Raises
    ------
    TypeError
        If ``rows`` is not a polars table, ``outages`` not a ``DataFrame``, or
        ``streams`` a string rather than several.
    ValueError
        If ``rows`` lacks ``time`` or already has ``name``, ``time`` is not a time,
        or ``outages`` lacks a column of :data:`OUTAGE_COLUMNS`.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> at = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=timezone.utc)
    >>> outages = pl.DataFrame([("binance", "hole", "bookTicker", None, at(10), at(20), 10.0,
    ...                          None)], schema=OUTAGE_COLUMNS, orient="row")
    >>> trades = pl.DataFrame({"local_time": [at(5), at(10), at(19), at(20)]})
    >>> mark_outages(trades, outages)["outage"].to_list()
    [False, True, True, False]
    """
    if not isinstance(rows, pl.DataFrame | pl.LazyFrame):
        raise TypeError(f"rows must be a polars DataFrame or LazyFrame, not "
                        f"{type(rows).__name__}")
    if not isinstance(outages, pl.DataFrame):
        raise TypeError(f"outages must be a polars DataFrame (a report's outages), not "
                        f"{type(outages).__name__}")
    if isinstance(streams, str):
        raise TypeError(f"streams must be a list of stream names, not the string {streams!r}")
    missing = [column for column in OUTAGE_COLUMNS if column not in outages.columns]
    if missing:
        raise ValueError(f"outages lack the column(s) {missing}: pass a report's outages "
                         f"(QualityReport.outages)")
    schema = rows.collect_schema()
    if time not in schema:
        raise ValueError(f"rows have no column {time!r}; their columns: {list(schema)}")
    if name in schema:
        raise ValueError(f"rows have a column {name!r} already; give another name=")
    ns = _as_ns(time, schema[time])
    if streams is not None:
        streams = list(streams)
        _tell_of_misspelt(streams, outages)
    keys = [key for key in ("recording", "exchange", "symbol")
            if key in schema and key in outages.columns]
    spans = outages.filter(
        pl.col("reason").is_in(["disconnected", "book_invalid"])
        | (pl.col("reason").is_in(["stale", "hole"])
           & (pl.lit(True) if streams is None else pl.col("stream").is_in(list(streams))))
    ).select(pl.col("start").cast(TIME).dt.epoch("ns").alias("_start"),
             pl.col("end").cast(TIME).dt.epoch("ns").alias("_end"), *_as_text(keys))
    numbered = rows.lazy().with_row_index(_ROW)
    times = numbered.select(_ROW, ns.alias(_TIME), *_as_text(keys)).drop_nulls(_TIME).sort(_TIME)
    inside = pl.lit(False)
    # An outage applies by the keys it has (recording, exchange, symbol), to any row where
    # it has none: one as-of join per set of keys, over the outages merged per key.
    for n, by in enumerate(_key_sets(keys)):
        group = spans.filter(*(pl.col(key).is_not_null() == (key in by) for key in keys))
        if not group.height:
            continue
        reach = pl.col("_end").cum_max()
        merged = group.sort(*by, "_start").with_columns(
            (reach.over(by) if by else reach).alias(f"_reach{n}")).sort(
            "_start", maintain_order=True).select(*by, pl.col("_start").alias(f"_start{n}"),
                                                 f"_reach{n}")
        times = times.join_asof(merged.lazy(), left_on=_TIME, right_on=f"_start{n}",
                                by=by or None, strategy="backward", check_sortedness=False)
        inside = inside | (pl.col(f"_reach{n}") > pl.col(_TIME)).fill_null(False)
    marked = numbered.join(times.select(_ROW, inside.alias(name)), on=_ROW, how="left",
                           maintain_order="left").with_columns(
        pl.col(name).fill_null(False)).drop(_ROW)
    return marked if isinstance(rows, pl.LazyFrame) else marked.collect()


def _tell_of_misspelt(streams: list[str], outages: pl.DataFrame) -> None:
    """Warn of a stream with no outage whose name is close to one that has some.

    A stream with no outage is no error (a quiet session), so only a near miss of a
    name the outages use (``tickr`` for ``ticker``) is told of: it would mark nothing.
    """
    named = sorted(set(outages.filter(pl.col("stream").is_not_null())["stream"].to_list()))
    for stream in streams:
        if stream not in named:
            # Close, and neither inside the other: "trade" is no misspelling of "aggTrade".
            close = [name for name in difflib.get_close_matches(stream, named, n=1, cutoff=0.85)
                     if stream.lower() not in name.lower() and name.lower() not in stream.lower()]
            if close:
                warn(f"no outage of stream {stream!r}, so it marks nothing; did you mean "
                     f"{close[0]!r}? The outages' streams: {named}")


_ROW = "__wsresearch_row"
_TIME = "__wsresearch_time"


def _as_text(keys: list[str]) -> list[pl.Expr]:
    """The key columns as strings: a Categorical, an Enum or an all-null column matches too."""
    return [pl.col(key).cast(pl.String) for key in keys]


def _key_sets(keys: list[str]) -> list[list[str]]:
    """Every subset of ``keys``, in their order: the keys an outage may have."""
    sets: list[list[str]] = [[]]
    for key in keys:
        sets += [[*subset, key] for subset in sets]
    return sets


def _as_ns(time: str, dtype: pl.DataType) -> pl.Expr:
    """The rows' ``time`` column as ns since the epoch, whatever its unit."""
    if isinstance(dtype, pl.Datetime):
        return pl.col(time).dt.epoch("ns")
    if dtype.is_integer():
        return pl.col(time).cast(pl.Int64)
    raise ValueError(f"rows' {time!r} is {dtype}: give a Datetime column, or ns since the "
                     f"epoch (recv_wall_ns)")
