"""Values no writer gives: telling the garbled events of a segment that still decodes.

Parquet keeps no checksums: a damaged page can still decode, to other numbers. A writer's
events hold together in ways such numbers do not (:class:`Times`): their ``seq`` rise, a
recorded connection's messages' ``mono_ns`` never step back a day, an import's two times
are apart by its offset. The reader (:mod:`wsresearch.recording.reader`) surveys each
segment with :func:`steady_times`, and checks a segment that fails it event by event with
:func:`impossible`, leaving out the events it names.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..clock import NS_PER_S

__all__ = ["LEAP_NS", "Times", "impossible", "steady_times"]


LEAP_NS = 86_400 * NS_PER_S
"""How far back a recorded connection's messages' ``mono_ns`` can step, at most (a day):
further is a clock that steps back, which a monotonic one cannot (:func:`_steps_back`).

Messages are recorded in ``seq`` order as they arrive, each run with the time it was
received, from one clock: seconds apart at most where one waited. A day leaves room for
any wait, and a leap forward of any size (a connection silent over a holiday) is never
flagged."""


@dataclass(frozen=True)
class Times:
    """How a recording's receive times hold together, from its manifest's ``receive_times``.

    A recorder is given a message's two times as it arrives (the feed's clock): the
    ``mono_ns`` of a connection's messages never step back by more than :data:`LEAP_NS`,
    their ``wall_ns`` may step anywhere (the wall clock is set). Its other events may take
    their times from another clock (the recorder's own, where a caller of
    :class:`~wsresearch.recording.Recorder` gives none). An import
    (:func:`~wsresearch.recording.writer.write_events`) gives each event
    ``mono_ns = wall_ns - offset``, the offset being the first event's time (the manifest's
    ``started_wall_ns``), or ``mono_ns = wall_ns`` where it invented the time:
    ``wall_ns - mono_ns`` is one of the two.
    """

    offset: int | None
    """An import's ``wall_ns - mono_ns`` (besides 0); ``None`` for a recorded session."""


def impossible(table: pl.DataFrame, times: Times, required: tuple[str, ...]
                ) -> list[tuple[tuple[str, ...], np.ndarray]]:
    """The events of one segment file no writer gives: the columns wrong, and where.

    ``table`` is the file's events, each with every value of ``required`` (the columns
    every event has), in the order the file holds them: a writer's are in ``seq`` order,
    and a damaged page changes the values, never the rows' order, so that order tells
    which events are wrong.

    - ``seq``: a writer numbers every event once, and writes a file in ``seq`` order. The
      events kept are the most that are (a longest strictly rising run of seqs,
      :func:`_rising`); the others repeat or step back. A copy of the event just before
      it (a compaction of a folder that held a copied file writes one) is no damaged value:
      it goes as its original does. Segments that overlap (after a crash, or edited) are
      each still in order, and are read as before.
    - ``mono_ns`` (a recorded session): where a connection's messages step back more than
      :data:`LEAP_NS`, those off the longest chain of them that does not
      (:func:`_steps_back`): a run that leapt away and back, or stepped back and stayed.
      Messages only: every one's time is from the same clock (see :class:`Times`).
    - ``mono_ns`` and ``wall_ns`` (an import): an event whose ``wall_ns - mono_ns`` is
      neither 0 nor the import's offset (:func:`_disagree`): one of them is wrong.

    Each event is counted once, under the first of these it fails. Only a file whose
    survey found it not sound comes here; a writer's never does.
    """
    found: list[tuple[tuple[str, ...], np.ndarray]] = []
    rising = _rising_with_copies(table, required)
    if not rising.all():
        found.append((("seq",), np.flatnonzero(~rising)))
        rest = np.flatnonzero(rising)
        table = table[rest]
    else:
        rest = np.arange(table.height)
    if times.offset is None:
        frames = np.flatnonzero((table["kind"] == "frame").to_numpy())
        wrong = frames[_steps_back(table["mono_ns"].to_numpy()[frames],
                                   table["generation"].to_numpy()[frames])]
        names: tuple[str, ...] = ("mono_ns",)
    else:
        wrong = _disagree(table, times.offset)
        names = ("mono_ns", "wall_ns")
    if wrong.size:
        found.append((names, rest[wrong]))
    return found


def _rising_with_copies(table: pl.DataFrame, required: tuple[str, ...]) -> np.ndarray:
    """:func:`_rising` of a file's events, a copy of the event before it going as that one.

    A copy: the same values of ``required`` as the event just before it.
    """
    copy = table.select(pl.all_horizontal(
        pl.col(name) == pl.col(name).shift(1) for name in required).fill_null(False)
                        ).to_series().to_numpy()
    if not copy.any():
        return _rising(table["seq"].to_numpy())
    own = np.flatnonzero(~copy)
    keep = np.zeros(table.height, dtype=bool)
    keep[own[_rising(table["seq"].to_numpy()[own])]] = True
    original = np.maximum.accumulate(np.where(copy, 0, np.arange(table.height)))
    keep[copy] = keep[original[copy]]
    return keep


def _rising(seqs: np.ndarray) -> np.ndarray:
    """Which of ``seqs`` to keep: a longest strictly rising run of them, in their order.

    Every seq above all before it and below all after it is in place, and in every such
    run (a run without it could take it): only the stretches between those are searched
    (:func:`_longest_rising`), for the values that fit between their two neighbours. A file
    in order is one comparison of its column.
    """
    count = seqs.size
    if count < 2 or bool((np.diff(seqs) > 0).all()):
        return np.ones(count, dtype=bool)
    above = np.empty(count, dtype=np.int64)
    above[0] = np.iinfo(np.int64).min
    np.maximum.accumulate(seqs[:-1], out=above[1:])
    below = np.empty(count, dtype=np.int64)
    below[-1] = np.iinfo(np.int64).max
    below[:-1] = np.minimum.accumulate(seqs[::-1])[::-1][1:]
    keep = (seqs > above) & (seqs < below)
    stray = np.flatnonzero(~keep)
    for stretch in np.split(stray, np.flatnonzero(np.diff(stray) > 1) + 1):
        first, last = int(stretch[0]), int(stretch[-1])
        values = seqs[stretch]
        fits = np.ones(stretch.size, dtype=bool)
        if first > 0:  # the seq in place before it, and after it
            fits &= values > seqs[first - 1]
        if last + 1 < count:
            fits &= values < seqs[last + 1]
        candidates = stretch[fits]
        keep[candidates[_longest_rising(seqs[candidates].tolist())]] = True
    return keep


def _longest_rising(values: list[int]) -> list[int]:
    """The positions of a longest strictly rising subsequence of ``values`` (patience)."""
    tails: list[int] = []  # the least last value of a rising run of each length
    ends: list[int] = []  # where that run ends
    before = [-1] * len(values)
    for at, value in enumerate(values):
        length = bisect.bisect_left(tails, value)
        if length == len(tails):
            tails.append(value)
            ends.append(at)
        else:
            tails[length], ends[length] = value, at
        before[at] = ends[length - 1] if length else -1
    found: list[int] = []
    at = ends[-1] if ends else -1
    while at >= 0:
        found.append(at)
        at = before[at]
    return found[::-1]


@dataclass(frozen=True)
class _Run:
    """Messages of one connection between two leaps of their ``mono_ns`` (:func:`_steps_back`)."""

    start: int
    stop: int
    first: float
    """The time of its first message."""
    last: float
    """The time of its last message."""


def _steps_back(mono: np.ndarray, generation: np.ndarray) -> np.ndarray:
    """Where a recorded file's ``mono_ns`` steps back more than a monotonic clock can.

    The times and connections of its messages, in ``seq`` order. A connection's messages
    are cut into runs where the time moves by more than :data:`LEAP_NS` from one to the
    next. A leap forward alone is a connection silent that long; a step back that far
    cannot happen. Where the runs step back, the messages kept are those of the chain of
    runs that never does and holds the most (:func:`_chain`): a run that leapt away and
    came back, or that stepped back and stayed, is left out, whichever holds fewer.
    Messages without a leap cost one comparison of the column.

    Returns
    -------
    numpy.ndarray
        The positions of the wrong messages, ascending.
    """
    times = mono.astype(np.float64)  # a difference of two garbled int64 can overflow
    same = generation[1:] == generation[:-1]
    cuts = np.flatnonzero(same & (np.abs(np.diff(times)) > LEAP_NS)) + 1
    if not cuts.size:
        return np.empty(0, dtype=np.int64)
    changes = np.flatnonzero(~same) + 1
    edges = np.union1d(cuts, changes).tolist()
    new_connection = set(changes.tolist())
    wrong: list[int] = []
    runs: list[_Run] = []
    for start, stop in zip([0, *edges], [*edges, mono.size], strict=True):
        if start in new_connection:  # a connection's runs are judged alone
            wrong += _off_the_chain(runs)
            runs = []
        runs.append(_Run(start, stop, times[start], times[stop - 1]))
    wrong += _off_the_chain(runs)
    return np.array(sorted(wrong), dtype=np.int64)


def _off_the_chain(runs: list[_Run]) -> list[int]:
    """The rows of one connection's ``runs`` that are not in their :func:`_chain`."""
    if all(after.first >= before.last - LEAP_NS
           for before, after in itertools.pairwise(runs)):
        return []  # only leaps forward
    chain = _chain(runs)
    return [row for at, run in enumerate(runs) if at not in chain
            for row in range(run.start, run.stop)]


def _chain(runs: list[_Run]) -> set[int]:
    """The runs, by index, of the chain that never steps back a leap and holds the most.

    A run may follow another where it starts no more than :data:`LEAP_NS` before that one
    ended. The best chain ending at each run is found from those before it whose end is
    at most its start plus a leap: a maximum over a prefix of their ends, kept in a
    Fenwick tree, so a file garbled into thousands of runs costs ``n log n``.
    """
    ends = sorted({run.last for run in runs})
    tree = [(0, -1)] * (len(ends) + 1)  # (messages, last run) of the best chain, by end
    best: list[int] = []
    before: list[int] = []
    for at, run in enumerate(runs):
        found, place = (0, -1), bisect.bisect_right(ends, run.first + LEAP_NS)
        while place > 0:
            found = max(found, tree[place])
            place -= place & -place
        best.append(found[0] + run.stop - run.start)
        before.append(found[1])
        place = bisect.bisect_left(ends, run.last) + 1
        while place < len(tree):
            tree[place] = max(tree[place], (best[at], at))
            place += place & -place
    chain: set[int] = set()
    end = max(range(len(runs)), key=best.__getitem__)
    while end >= 0:
        chain.add(end)
        end = before[end]
    return chain


def _disagree(table: pl.DataFrame, offset: int) -> np.ndarray:
    """Where an imported file's ``wall_ns - mono_ns`` is neither 0 nor the import's offset.

    The offset is the manifest's start, unless another offset is that of more than half of
    the file's events (a manifest whose start was changed): then that one.

    Returns
    -------
    numpy.ndarray
        The positions of the wrong events, ascending.
    """
    apart = table.select(pl.col("wall_ns") - pl.col("mono_ns")).to_series()
    usual = offset
    if 2 * int(((apart == 0) | (apart == offset)).sum()) <= apart.len():
        counts = apart.filter(apart != 0).value_counts(sort=True)
        if counts.height and 2 * int(counts["count"][0]) > apart.len():
            usual = int(counts[0, 0])
    return np.flatnonzero(((apart != 0) & (apart != usual)).to_numpy())


def steady_times(times: Times) -> pl.Expr:
    """Whether a segment's receive times show nothing :func:`impossible` would look into.

    A recorded session's: no leap of its ``mono_ns`` of more than :data:`LEAP_NS`, either
    way, within a connection (over the events with both values, of every kind: the
    ``kind`` column is not read for it, and a file whose events leap only where their
    clocks differ is then read whole, and kept). An import's: every ``wall_ns - mono_ns``
    is 0 or its offset. A comparison or two a value.
    """
    if times.offset is None:
        known = pl.col("mono_ns").is_not_null() & pl.col("generation").is_not_null()
        # As floats: a difference of two garbled int64 can overflow.
        leaps = pl.col("mono_ns").filter(known).cast(pl.Float64).diff().abs() > LEAP_NS
        return ~(leaps & (pl.col("generation").filter(known).diff() == 0)).any()
    apart = pl.col("wall_ns") - pl.col("mono_ns")
    return ((apart == 0) | (apart == times.offset)).all()
