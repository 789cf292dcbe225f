"""A session's receive times and latencies, held in bounded memory for its quality report.

A report needs every message's receive time per stream (its holes, silences and rates
judge every gap) and every exchange latency (its exact percentiles), which for a day-long
recording are more than a small machine holds. :class:`SessionTimes` keeps them in a
:class:`~wsresearch._spill.Spill`: in memory up to a budget, in temporary files after,
and reads them back in order a piece at a time. The report's rules then run piece by
piece (see :mod:`wsresearch.quality`), and the latency percentiles are found exactly by
:func:`kth_smallest`, which reads the pieces a few times instead of holding them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ._spill import Spill

__all__ = ["LATENCY_SAMPLES", "LatencyFigures", "SessionTimes", "kth_smallest", "nearest_rank"]

LATENCY_SAMPLES = 100_000
"""Latency samples a report keeps per channel for its plot; beyond it, every 2nd, 4th, ..."""

_SLICE = 1 << 18
"""The longest piece a reader is given: the report's steps work on this many values at once."""
_PIVOTS = 4096  # values sampled per round of kth_smallest: a round keeps about 1/_PIVOTS

Parts = Callable[[], Iterable[pl.Series]]
"""A column read as pieces, in order; each call reads it again from the start."""


@dataclass(frozen=True)
class LatencyFigures:
    """One channel's latency figures, exact, in ms."""

    messages: int
    minimum: float
    maximum: float
    farthest: float  # the first value farthest from zero
    negative: int  # how many are below zero
    quantiles: dict[float, float]  # as polars' quantile(q) ("nearest") gives them


class SessionTimes:
    """Receive times per health stream and latencies per channel, gathered piece by piece.

    Parameters
    ----------
    budget_bytes
        The most held in memory (the times, the latencies and the working set of a
        percentile) before the pieces go to temporary files.
    samples
        Latency samples kept per channel for :meth:`latency_samples`.
    """

    def __init__(self, budget_bytes: int, samples: int = LATENCY_SAMPLES) -> None:
        self._spill = Spill(budget_bytes)
        self._memory = max(1, budget_bytes // 16)  # values a percentile may sort at once
        self._streams: dict[str, int] = {}  # stream: messages
        self._sources: dict[str, list[str]] = {}  # stream: its sources' columns
        self._last: dict[str, int] = {}  # source column: its latest time so far
        self._unordered: set[str] = set()  # streams with a source whose times went back
        self._closed = False
        self._channels: dict[str, int] = {}  # channel: latencies
        self._history: dict[str, int] = {}  # channel: rows left out as history
        self._samples: dict[str, _Sample] = {}
        self._sample_size = samples

    @property
    def spilled(self) -> bool:
        """Whether any piece went to a temporary file."""
        return self._spill.spilled

    @property
    def folder(self) -> Path | None:
        """The temporary directory of the pieces written, until :meth:`close`."""
        return self._spill.folder

    @property
    def streams(self) -> list[str]:
        """Every stream given times (maybe none), in the order they came."""
        return list(self._streams)

    def messages(self, stream: str) -> int:
        """How many receive times ``stream`` has."""
        return self._streams.get(stream, 0)

    def add_times(self, stream: str, times: pl.Series, source: str = "") -> None:
        """Add receive times of ``stream`` (in any order within the piece).

        ``source`` names where they come from (a channel): a stream fed by several
        channels keeps each one's times apart, each in the order of the recording, and
        merges them as it reads them back.
        """
        self._check_open()
        self._streams[stream] = self._streams.get(stream, 0) + times.len()
        sources = self._sources.setdefault(stream, [])
        if times.is_empty():
            return
        column = f"t{stream}\x00{source}"
        if column not in sources:
            sources.append(column)
        piece = times.sort().rename("recv_mono_ns")
        low, high = piece[0], piece[-1]
        last = self._last.get(column)
        if last is not None and low < last:
            self._unordered.add(stream)  # read back whole and sorted: see times()
        self._last[column] = high if last is None else max(last, high)
        self._spill.append(column, piece)

    def times(self, stream: str) -> Parts:
        """``stream``'s receive times in ascending order, as pieces.

        Each source's pieces follow one another in ascending order, as a recording's
        frames do; several sources are merged as they are read, a piece of each at a
        time. When a source's piece began before its last piece ended (receive times
        that went back, as in some imported captures), the stream is read whole and
        sorted, in memory.
        """
        self._check_open()
        columns = self._sources.get(stream, [])
        if stream in self._unordered:
            return lambda: _sliced([pl.concat([p for c in columns for p in self._spill.parts(c)])
                                    .sort()])
        if len(columns) == 1:
            return lambda: _sliced(self._spill.parts(columns[0]))
        return lambda: _sliced(_merged([self._spill.parts(c) for c in columns]))

    def add_latencies(self, channel: str, ms: pl.Series, history: int = 0) -> None:
        """Add exchange latencies (ms) of ``channel``, in the order of its rows.

        ``history``: how many of its rows were left out, stamped before their connection
        opened (:meth:`history`).
        """
        self._check_open()
        self._channels[channel] = self._channels.get(channel, 0) + ms.len()
        if history:
            self._history[channel] = self._history.get(channel, 0) + history
        if ms.is_empty():
            return
        self._spill.append(f"l{channel}", ms.rename("ms"))
        self._samples.setdefault(channel, _Sample(self._sample_size)).add(ms)

    def history(self) -> dict[str, int]:
        """Each channel's rows left out of its latencies: what happened before its connection."""
        return dict(self._history)

    def latencies(self, channel: str) -> Parts:
        """``channel``'s latencies in the order they came, as pieces."""
        self._check_open()
        name = f"l{channel}"
        return lambda: _sliced(self._spill.parts(name))

    def latency_figures(self, quantiles: Iterable[float]) -> dict[str, LatencyFigures]:
        """Each channel with a latency: its exact figures, the channels in the order they came."""
        return {channel: _figures(self.latencies(channel), count, tuple(quantiles), self._memory)
                for channel, count in self._channels.items() if count}

    def latency_samples(self) -> pl.DataFrame:
        """``channel, ms``: every latency, or an even sample of a channel's beyond ``samples``."""
        parts = [pl.DataFrame({"ms": self._samples[channel].values()}).select(
            pl.lit(channel).alias("channel"), "ms")
            for channel in self._channels if channel in self._samples]
        return pl.concat([pl.DataFrame(schema={"channel": pl.String, "ms": pl.Float64}),
                          *parts])

    def close(self) -> None:
        """Remove the temporary files, if any; the times cannot be read after."""
        self._closed = True
        self._spill.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("these session times were closed: their files are removed")


def _merged(sources: list[Iterator[pl.Series]]) -> Iterator[pl.Series]:
    """Ascending pieces of several sources, each itself ascending piece after piece.

    Holds one piece of each source: every round yields, sorted, all the values up to the
    least of the sources' latest held values (no source can still bring one below it), so
    the source that set it is used up and gives its next piece.
    """
    held: list[pl.Series | None] = [None] * len(sources)
    while True:
        for n, source in enumerate(sources):
            if held[n] is None or not len(held[n]):  # type: ignore[arg-type]
                held[n] = next(source, None)
        live = [piece for piece in held if piece is not None]
        if not live:
            return
        bound = min(piece[-1] for piece in live)
        out = []
        for n, piece in enumerate(held):
            if piece is None:
                continue
            cut = piece.search_sorted(bound, side="right")
            out.append(piece.slice(0, cut))
            held[n] = piece.slice(cut)
        yield pl.concat(out).sort()


class _Sample:
    """Every ``stride``-th value of a column, the stride doubling to stay within ``size``."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.stride = 1
        self.seen = 0
        self.kept: list[pl.Series] = []
        self.count = 0

    def add(self, values: pl.Series) -> None:
        offset = -self.seen % self.stride  # the first in ``values`` whose index is a multiple
        self.seen += values.len()
        if offset < values.len():
            taken = values.slice(offset).gather_every(self.stride)
            self.kept.append(taken)
            self.count += taken.len()
            if len(self.kept) > 64:  # a few values a chunk once the stride is long: join them
                self.kept = [pl.concat(self.kept)]
        while self.count > self.size:  # kept indices are multiples of stride: keep every 2nd
            whole = pl.concat(self.kept).gather_every(2)
            self.kept, self.count, self.stride = [whole], whole.len(), self.stride * 2

    def values(self) -> pl.Series:
        return pl.concat(self.kept) if self.kept else pl.Series("ms", [], pl.Float64)


def _sliced(pieces: Iterable[pl.Series]) -> Iterator[pl.Series]:
    """``pieces`` cut to at most ``_SLICE`` values each (views, not copies)."""
    for piece in pieces:
        for offset in range(0, piece.len(), _SLICE):
            yield piece.slice(offset, _SLICE)


def nearest_rank(n: int, q: float) -> int:
    """The index in ``n`` sorted values that polars' ``quantile(q)`` ("nearest") takes.

    ``(n - 1) * q`` rounded half away from zero, as Rust's ``f64::round`` does: adding
    0.5 before the floor would round 0.49999999999999994 up.
    """
    position = (n - 1) * q
    whole = math.floor(position)
    return whole + (position - whole >= 0.5)


def _figures(parts: Parts, count: int, quantiles: tuple[float, ...],
             memory: int) -> LatencyFigures:
    sorted_at_once = count <= memory
    if sorted_at_once:  # read once, held whole: the figures and the sort from it
        whole = pl.concat(list(parts()))
        parts = lambda: [whole]  # noqa: E731
    minimum = maximum = farthest = math.nan
    negative = 0
    for part in parts():
        low, high = part.min(), part.max()
        assert isinstance(low, float)
        assert isinstance(high, float)
        minimum = low if math.isnan(minimum) else min(minimum, low)
        maximum = high if math.isnan(maximum) else max(maximum, high)
        far = part[part.abs().arg_max()]  # type: ignore[index]  # a piece is never empty
        if math.isnan(farthest) or abs(far) > abs(farthest):  # ties keep the first
            farthest = far
        negative += int((part < 0).sum())
    if sorted_at_once:  # sorted, and indexed as polars' quantile would
        ordered = whole.sort()
        found = {q: float(ordered[nearest_rank(count, q)]) for q in quantiles}
    else:
        found = {q: kth_smallest(parts, nearest_rank(count, q), (minimum, maximum, count),
                                 memory) for q in quantiles}
    return LatencyFigures(count, minimum, maximum, farthest, negative, found)


def kth_smallest(parts: Parts, k: int, span: tuple[float, float, int], memory: int,
                 pivots: int = _PIVOTS) -> float:
    """The ``k``-th smallest value (from 0) of a column read as pieces, in bounded memory.

    Each round samples the values still in the running evenly as pivots, then counts, in
    one more read, the values equal to each pivot and those between it and the next, and
    keeps only the bucket where the ``k``-th value lies (or answers with its pivot). Once
    at most ``memory`` values are left, they are read, sorted and indexed. Every round
    leaves strictly fewer values, so it ends; with thousands of pivots spread over the
    values a round leaves a few thousandths of them, so a column of a billion values
    takes two or three rounds (values repeating with the sampling's period are sampled
    less evenly, and take more rounds). The values must be finite (no NaN).

    Parameters
    ----------
    parts
        The column, read again each round.
    k
        The rank wanted, ``0 <= k < count``.
    span
        ``(minimum, maximum, count)`` of the column.
    memory
        How many values may be sorted at once.
    pivots
        About how many values each round samples.
    """
    low, high, count = span
    below = 0  # values below the range still in the running
    while True:
        if low == high:
            return low
        if count <= memory:
            return float(pl.concat(list(_inside(parts, low, high))).sort()[k - below])
        chosen = _pivots(_inside(parts, low, high), max(1, count // pivots))
        for index, size, equal, bottom, top in _buckets(
                _inside(parts, low, high), chosen).iter_rows():
            if k - below < size:
                if k - below < equal:
                    return float(chosen[index])
                below += equal
                low, high, count = bottom, top, size - equal
                break
            below += size
        else:  # pragma: no cover - the buckets hold every value in the running
            raise AssertionError("kth_smallest: the rank is beyond the values")


def _inside(parts: Parts, low: float, high: float) -> Iterator[pl.Series]:
    """The values from ``low`` to ``high`` (both in) of every piece, read again."""
    for part in parts():
        yield part.filter((part >= low) & (part <= high))


def _pivots(pieces: Iterable[pl.Series], stride: int) -> pl.Series:
    """Every ``stride``-th value of ``pieces``, distinct and sorted."""
    taken: list[pl.Series] = []
    seen = 0
    for piece in pieces:
        offset = -seen % stride
        seen += piece.len()
        if offset < piece.len():
            taken.append(piece.slice(offset).gather_every(stride))
    return pl.concat(taken).unique().sort()


def _buckets(pieces: Iterable[pl.Series], pivots: pl.Series) -> pl.DataFrame:
    """Per pivot: the values from it up to the next, how many equal it, the others' span.

    Columns ``b`` (the pivot's index; -1: below the first pivot), ``size``, ``equal``,
    ``bottom`` and ``top`` (the least and the most of the values not equal to the pivot).
    """
    total = pl.DataFrame(schema={"b": pl.Int64, "size": pl.Int64, "equal": pl.Int64,
                                 "bottom": pl.Float64, "top": pl.Float64})
    others = pl.col("v").filter(~pl.col("at"))
    for piece in pieces:  # each piece's counts folded in at once: one row per pivot at most
        index = pivots.search_sorted(piece, side="right").cast(pl.Int64) - 1
        at = (pivots.gather(index.clip(0)) == piece) & (index >= 0)
        counted = pl.DataFrame({"v": piece, "b": index, "at": at}).group_by("b").agg(
            pl.len().cast(pl.Int64).alias("size"), pl.col("at").sum().cast(pl.Int64)
            .alias("equal"), others.min().alias("bottom"), others.max().alias("top"))
        total = pl.concat([total, counted]).group_by("b").agg(
            pl.col("size").sum(), pl.col("equal").sum(), pl.col("bottom").min(),
            pl.col("top").max())
    return total.sort("b")
