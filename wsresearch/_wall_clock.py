"""Moments of a session's monotonic clock, told on its wall clock.

A quality report judges a session on the monotonic clock (``*_mono_ns``): it never steps
back, so a silence's length is its length. Rows are stamped on the wall clock
(``local_time``, ``recv_wall_ns``), and that is the clock a backtest masks them by. Every
event of a session holds both readings, so a moment of the report is told on the wall
clock by the event received at it (exactly its ``wall_ns``), or, between events, by the
latest event before it plus the monotonic time since (before the first event, the first
one less the time until it). No rate is assumed between the two clocks, so a wall clock
that was stepped reads as it read then.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

__all__ = ["TIME", "told", "wall_clock"]

TIME = pl.Datetime("ns", "UTC")
"""The type of a time on the wall clock, as the normalized tables' ``local_time``."""

_BEFORE = ("before_mono", "before_wall")
_AFTER = ("after_mono", "after_wall")


def wall_clock(moments: pl.Series, anchors: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """Each distinct moment (ns on the monotonic clock) on the wall clock.

    Parameters
    ----------
    moments
        Monotonic ns (``Int64``); nulls are left out.
    anchors
        The session's events, a table at a time, each with ``mono_ns`` and ``wall_ns``
        (a recording's :meth:`~wsresearch.recording.Recording.columns`, or a live feed's
        rows and timeline). Read once, a table at a time, in any order; of two events
        at the same moment with different wall times, the one read first counts.

    Returns
    -------
    polars.DataFrame
        ``mono_ns`` (each distinct moment) and ``wall`` (:data:`TIME`; null where no
        event holds both readings).
    """
    wanted = moments.drop_nulls().unique().sort().cast(pl.Int64).to_frame("mono_ns")
    found = wanted.with_columns(
        pl.lit(None, pl.Int64).alias(name) for name in (*_BEFORE, *_AFTER))
    if wanted.height:
        for part in anchors:
            events = part.select(pl.col("mono_ns").alias("at"), pl.col("wall_ns").alias("wall"))
            events = events.drop_nulls().sort("at")
            if events.height:
                found = _nearer(found, _nearest(wanted, events))
    before, after = pl.col("before_mono"), pl.col("after_mono")
    wall = (pl.when(before.is_not_null())
            .then(pl.col("before_wall") + (pl.col("mono_ns") - before))
            .otherwise(pl.col("after_wall") - (after - pl.col("mono_ns"))))
    return found.select("mono_ns", wall.cast(TIME).alias("wall"))


def _nearest(wanted: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """For each moment, the last event of ``events`` at or before it and the first after."""
    def side(strategy: str, names: tuple[str, str]) -> pl.DataFrame:
        joined = wanted.join_asof(events, left_on="mono_ns", right_on="at",
                                  strategy=strategy,  # type: ignore[arg-type]
                                  check_sortedness=False)  # both sorted above
        return joined.select(pl.col("at").alias(names[0]), pl.col("wall").alias(names[1]))

    return pl.concat([wanted, side("backward", _BEFORE), side("forward", _AFTER)],
                     how="horizontal")


def _nearer(found: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """The nearer of two tables' events on each side; on a tie, the one found first."""
    def pick(names: tuple[str, str], better: pl.Expr) -> list[pl.Expr]:
        take = pl.col(f"{names[0]}_new").is_not_null() & (pl.col(names[0]).is_null() | better)
        return [pl.when(take).then(pl.col(f"{name}_new")).otherwise(pl.col(name)).alias(name)
                for name in names]

    both = pl.concat([found, new.drop("mono_ns").rename(lambda name: f"{name}_new")],
                     how="horizontal")
    return both.select(
        "mono_ns",
        *pick(_BEFORE, pl.col("before_mono_new") > pl.col("before_mono")),
        *pick(_AFTER, pl.col("after_mono_new") < pl.col("after_mono")))


def told(walls: pl.DataFrame, column: str) -> pl.Expr:
    """``column`` (monotonic ns) on the wall clock, by ``walls`` (of :func:`wall_clock`)."""
    return pl.col(column).replace_strict(walls["mono_ns"], walls["wall"], default=None,
                                         return_dtype=TIME)
