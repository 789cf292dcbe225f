"""Exchange sequence numbers: find gaps, repeats and out-of-order updates per stream key.

Most exchanges number their updates so a client can tell when it missed one:
Binance depth diffs carry the range ``U``..``u`` of book updates they cover,
Bybit books an update id ``u``, OKX books ``seqId`` with the ``prevSeqId`` it
follows, Coinbase a ``sequence_num`` per connection. A channel's ``sequence``
extractor maps a message to what it carries:

* an ``int`` ``n``: the message is number ``n``; the next is expected to be ``n + 1``;
* a :class:`Seq` ``(first, last)``: it covers ``first`` .. ``last``; the next is
  expected to start at ``last + 1``. A link to the previous message (OKX
  ``prevSeqId``, Binance futures ``pu``) is ``Seq(prev + 1, this)``;
* ``Seq(first, last, reset=True)``: a snapshot. It sets the baseline and is
  never a gap;
* ``None``: nothing to check.

Numbers are tracked per *key*: the channel's ``sequence_key`` (e.g. the symbol)
within its ``sequence_group`` (the channel by default; channels that share one
counter, like everything on a Coinbase Advanced Trade connection, share a
group). The first message of a key sets the baseline. A new connection
generation forgets everything: a fresh snapshot follows a reconnect, and
numbers from before it say nothing about what comes after.

Each message is then exactly one of:

================  =====================================================
``in_order``      starts where the previous one ended (or overlaps it and goes further)
``gap``           starts later: ``missing`` numbers never arrived (so far)
``repeat``        ends before the expected number and fills no known gap
``out_of_order``  ends before the expected number, inside a gap seen earlier
``reset``         a snapshot (or the first message of a key)
================  =====================================================
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl

from ._limits import INT64_MAX, INT64_MIN

__all__ = ["GAP_SCHEMA", "SEQUENCE_OUTCOMES", "Chain", "Seq", "SequenceGap", "SequenceTracker",
           "runs"]

IN_ORDER = "in_order"
GAP = "gap"
REPEAT = "repeat"
OUT_OF_ORDER = "out_of_order"
RESET = "reset"

SEQUENCE_OUTCOMES: tuple[str, ...] = (IN_ORDER, GAP, REPEAT, OUT_OF_ORDER, RESET)
"""Every outcome :meth:`SequenceTracker.observe` can return."""

# Open gaps remembered per key, to tell a late message from a repeat.
_MAX_OPEN_GAPS = 64
_IN_ORDER: tuple[str, None] = (IN_ORDER, None)


class Seq(NamedTuple):
    """The sequence numbers one message covers (see the module docs).

    Attributes
    ----------
    first
        The first number it covers.
    last
        The last number it covers (``first`` for a single update).
    reset
        A snapshot: it sets the baseline and is never a gap.
    """

    first: int
    last: int
    reset: bool = False


@dataclass(frozen=True, slots=True)
class Chain:
    """Sequence numbers declared as a chain: each message names the last number before it.

    ``Channel(sequence=Chain("prev_final_update_id", "final_update_id"))``: a message
    covers ``Seq(previous + 1, last)``, so it follows the one before when its
    ``previous`` is that one's ``last``, whatever its own first number (Binance USD-M
    depth diffs' ``pu`` and ``u``). Declared by field names, the chain is checked on
    columns too, as a range of two fields is. A message missing either number carries
    none; one whose ``last`` is not past its ``previous`` is reported and kept, as a
    range that ends before it starts is. (A chain whose links may repeat a number, or
    that marks a snapshot, such as OKX books' ``prevSeqId`` of ``-1``, needs a function.)

    Attributes
    ----------
    previous
        The field holding the last number of the message before.
    last
        The field holding this message's last number.
    """

    previous: str
    last: str


@dataclass(frozen=True, slots=True)
class SequenceGap:
    """One gap: numbers that should have come before a message, and did not.

    Attributes
    ----------
    group
        The sequence group (the channel's name unless it shares a counter).
    channel
        The channel of the message that revealed the gap.
    key
        The stream key (e.g. the symbol), ``None`` for one counter per group.
    expected
        The number that should have come next.
    first
        The first number the message carried.
    generation
        Connection generation.
    recv_mono_ns
        When the revealing message was received.
    """

    group: str
    channel: str
    key: Hashable
    expected: int
    first: int
    generation: int
    recv_mono_ns: int

    @property
    def missing(self) -> int:
        """How many numbers were skipped."""
        return self.first - self.expected


GAP_SCHEMA: dict[str, pl.DataType] = {
    "group": pl.String(),
    "channel": pl.String(),
    "key": pl.String(),
    "expected": pl.Int64(),
    "first": pl.Int64(),
    "missing": pl.Int64(),
    "generation": pl.Int64(),
    "recv_mono_ns": pl.Int64(),
}
"""Columns of :meth:`SequenceTracker.frame`."""


class _KeyState:
    __slots__ = ("expected", "open_gaps")

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.open_gaps: deque[tuple[int, int]] = deque(maxlen=_MAX_OPEN_GAPS)


class SequenceTracker:
    """Expected next numbers per (group, key); counts every outcome.

    Parameters
    ----------
    max_gaps
        How many recent gaps :attr:`gaps` keeps.

    Examples
    --------
    >>> tracker = SequenceTracker()
    >>> [tracker.observe("trade", "trade", "BTC", n, 1, 0)[0] for n in (1, 2, 5, 3, 3, 6)]
    ['reset', 'in_order', 'gap', 'out_of_order', 'repeat', 'in_order']
    >>> tracker.counts["missing"]
    2
    """

    def __init__(self, max_gaps: int = 10_000) -> None:
        self._state: dict[tuple[str, Hashable], _KeyState] = {}
        self._generation: int | None = None
        self.counts: dict[str, int] = dict.fromkeys((*SEQUENCE_OUTCOMES, "missing"), 0)
        """Messages per outcome, plus ``missing``: the numbers skipped by every gap."""
        self.gaps: deque[SequenceGap] = deque(maxlen=max_gaps)
        """The most recent gaps, oldest first."""
        self.by_channel: dict[str, dict[str, int]] = {}
        """Per channel: ``gap``, ``missing``, ``repeat`` and ``out_of_order`` counts."""

    def observe(
        self,
        group: str,
        channel: str,
        key: Hashable,
        value: int | Seq,
        generation: int,
        recv_mono_ns: int,
    ) -> tuple[str, SequenceGap | None]:
        """Judge one message's numbers; return its outcome and the gap it revealed, if any.

        Raises
        ------
        TypeError
            If ``value`` is neither an ``int`` nor a :class:`Seq`.
        ValueError
            If a :class:`Seq` ends before it starts, or a number does not fit in 64
            bits (the gap table's columns are Int64).
        """
        # The common case first, in as few steps as possible: the next int, in order.
        if value.__class__ is int and generation == self._generation:
            state = self._state.get((group, key))
            if state is not None and state.expected == value:
                state.expected = value + 1
                self.counts[IN_ORDER] += 1
                return _IN_ORDER
        if isinstance(value, Seq):
            first, last, reset = value
        elif isinstance(value, int) and not isinstance(value, bool):
            first = last = value
            reset = False
        else:
            raise TypeError(f"a sequence must be an int or a Seq, got {type(value).__name__}")
        if last < first:
            raise ValueError(f"a sequence range cannot end before it starts: {value!r}")
        if first < INT64_MIN or last > INT64_MAX:
            # A mangled id: it would make a gap no table can hold, and poison the counts.
            raise ValueError(f"a sequence number must fit in 64 bits, got {value!r}; "
                             "the message is kept, its number not checked")
        if generation != self._generation:
            self._state.clear()
            self._generation = generation
        state = self._state.get((group, key))
        counts = self.counts
        if state is None or reset:
            self._state[(group, key)] = _KeyState(last + 1)
            counts[RESET] += 1
            return RESET, None
        expected = state.expected
        if first <= expected <= last:
            state.expected = last + 1
            counts[IN_ORDER] += 1
            return IN_ORDER, None
        if first > expected:
            gap = SequenceGap(group, channel, key, expected, first, generation, recv_mono_ns)
            state.open_gaps.append((expected, first - 1))
            state.expected = last + 1
            counts[GAP] += 1
            counts["missing"] += first - expected
            mine = self._channel_counts(channel)
            mine[GAP] += 1
            mine["missing"] += first - expected
            self.gaps.append(gap)
            return GAP, gap
        # last < expected: old news. Late if it falls in a gap seen earlier.
        gaps = state.open_gaps
        for index, (low, high) in enumerate(gaps):
            if low <= first <= high:
                # What it fills is no longer open: a second copy is a repeat.
                del gaps[index]
                if low < first:
                    gaps.append((low, first - 1))
                if last < high:
                    gaps.append((last + 1, high))
                counts[OUT_OF_ORDER] += 1
                self._channel_counts(channel)[OUT_OF_ORDER] += 1
                return OUT_OF_ORDER, None
        counts[REPEAT] += 1
        self._channel_counts(channel)[REPEAT] += 1
        return REPEAT, None

    @property
    def generation(self) -> int | None:
        """The generation of the last message judged; a message of another starts afresh."""
        return self._generation

    def expected(self, group: str, key: Hashable) -> int | None:
        """The number ``key`` of ``group`` expects next; ``None`` before its first."""
        state = self._state.get((group, key))
        return None if state is None else state.expected

    def observe_runs(self, group: str, runs: Mapping[Hashable, tuple[int, int]],
                     generation: int, messages: Mapping[Hashable, int] | None = None) -> None:
        """Judge, per key, the consecutive numbers ``first..last``: as :meth:`observe` would.

        For runs known to be in order: each starts where its key expects, or its key
        has no expectation yet (the first number is then a ``reset``, as the first of a
        key always is), and each number is the one before plus one. Runs of a
        generation other than the last message's start every key afresh, as
        :meth:`observe` does. The counts and expectations afterwards are those of
        observing every number in turn; the caller has checked the runs (the columnar
        replay does, on columns).

        ``messages`` gives, per key, the messages that carried the run where each carried
        a range of numbers (a :class:`Seq`, each starting one past the last's end): each
        message is one outcome. Without it, each number is one message.

        Raises
        ------
        ValueError
            If a run does not start where its key expects or ends before it starts;
            nothing is changed then.
        """
        afresh = bool(runs) and generation != self._generation  # as observe() starts anew
        state = {} if afresh else self._state
        for key, (first, last) in runs.items():  # all checked before any is applied
            if last < first:
                raise ValueError(f"a run cannot end before it starts: {first}..{last}")
            found = state.get((group, key))
            if found is not None and found.expected != first:
                raise ValueError(f"{group} {key!r} expects {found.expected}, not {first}")
        if afresh:
            self._state.clear()
            self._generation = generation
            state = self._state
        resets = numbers = 0
        for key, (first, last) in runs.items():
            found = state.get((group, key))
            if found is None:
                state[(group, key)] = _KeyState(last + 1)
                resets += 1
            else:
                found.expected = last + 1
            numbers += last - first + 1 if messages is None else messages[key]
        self.counts[RESET] += resets
        self.counts[IN_ORDER] += numbers - resets

    def _channel_counts(self, channel: str) -> dict[str, int]:
        mine = self.by_channel.get(channel)
        if mine is None:
            mine = self.by_channel[channel] = dict.fromkeys(
                (GAP, "missing", REPEAT, OUT_OF_ORDER), 0)
        return mine

    def reset(self) -> None:
        """Forget every expectation (counts and gaps are kept)."""
        self._state.clear()
        self._generation = None

    def frame(self) -> pl.DataFrame:
        """The kept gaps as a DataFrame (:data:`GAP_SCHEMA`); keys shown as text."""
        rows = list(self.gaps)
        return pl.DataFrame(
            {
                "group": [g.group for g in rows],
                "channel": [g.channel for g in rows],
                "key": [None if g.key is None else str(g.key) for g in rows],
                "expected": [g.expected for g in rows],
                "first": [g.first for g in rows],
                "missing": [g.missing for g in rows],
                "generation": [g.generation for g in rows],
                "recv_mono_ns": [g.recv_mono_ns for g in rows],
            },
            schema=GAP_SCHEMA,
        )


def runs(rows: pl.DataFrame, key: pl.Expr, first: str | pl.Expr,
         last: str | pl.Expr) -> pl.DataFrame:
    """Each key's run of numbers in ``rows`` (in order), judged on the columns.

    ``first`` and ``last`` are each message's first and last number: columns by name (the
    same column twice for single numbers) or expressions (a :class:`Chain`'s first is its
    ``previous`` plus one). A row per key, in order of first appearance:
    ``key``, ``first`` (the first message's first number), ``last`` (the last message's
    last number), ``messages``, and ``steady``: whether each message starts one past the
    one before and ends at or after its start, so the run is consecutive.
    """
    numbers = Numbers.of(rows, key, first, last)
    if numbers is not None:
        return numbers.runs()
    first, last = (pl.col(c) if isinstance(c, str) else c for c in (first, last))
    return (rows.select(key.alias("key"), first.alias("first"), last.alias("last"))
            .group_by("key", maintain_order=True)
            .agg(pl.col("first").first(), pl.col("last").last(),
                 pl.len().alias("messages"),
                 ((pl.col("first") == pl.col("last").shift(1) + 1).drop_nulls().all()
                  & (pl.col("last") >= pl.col("first")).all()).alias("steady")))


class Numbers:
    """Each row's key and first and last number, in arrays: runs judged without polars.

    What :func:`runs` judges, and the first row that breaks its key's run, found with a few
    numpy steps over the rows: the replay judges each chunk's numbers several times, and
    a polars query costs about a millisecond however few its rows.

    Attributes
    ----------
    keys
        Each row's key.
    groups
        Each row's key as a number (equal keys, equal numbers); ``None``: one key.
    first, last
        Each row's first and last number.
    """

    __slots__ = ("_order", "first", "groups", "keys", "last")

    def __init__(self, keys: pl.Series, groups: npt.NDArray[np.int64] | None,
                 first: npt.NDArray[np.int64], last: npt.NDArray[np.int64]) -> None:
        self.keys, self.groups, self.first, self.last = keys, groups, first, last
        # The rows by key, each key's in order (its runs side by side).
        self._order = None if groups is None else np.argsort(groups, kind="stable")

    @classmethod
    def of(cls, rows: pl.DataFrame, key: pl.Expr, first: str | pl.Expr,
           last: str | pl.Expr) -> Numbers | None:
        """``rows``' numbers, as :func:`runs` takes them.

        ``None`` where a number is null or not an ``Int64`` (which the polars query judges
        in its own type), and for no rows.
        """
        bounds = [_column(rows, bound) for bound in (first, last)]
        if (not rows.height
                or any(bound.dtype != pl.Int64 or bound.null_count() for bound in bounds)):
            return None
        keys = _column(rows, key)
        if keys.len() != rows.height:  # a literal: one key for every row
            keys = keys.new_from_index(0, rows.height)
        groups = (None if keys.n_unique() <= 1
                  else keys.rank("dense").fill_null(0).cast(pl.Int64).to_numpy())
        starts, ends = (bound.to_numpy() for bound in bounds)
        return cls(keys, groups, starts, ends)

    def part(self, index: slice | npt.NDArray[np.intp]) -> Numbers | None:
        """The numbers of the rows at ``index`` (a slice, or positions ascending).

        ``None`` for no rows, as :meth:`of` gives for none.
        """
        first = self.first[index]
        if not first.size:
            return None
        if isinstance(index, slice):
            start = index.indices(self.first.size)[0]
            keys = self.keys.slice(start, first.size)
        else:
            keys = self.keys.gather(index)
        groups = None if self.groups is None else self.groups[index]
        return Numbers(keys, groups, first, self.last[index])

    def breaks(self) -> npt.NDArray[np.bool_]:
        """Each row that ends before it starts, or does not start one past its key's last."""
        first, last, groups = self.first, self.last, self.groups
        broken = last < first
        order = self._order
        if groups is None or order is None:
            broken[1:] |= first[1:] != last[:-1] + 1
            return broken
        same = groups[order[1:]] == groups[order[:-1]]
        later = order[1:][same]  # a row with one of its key's before it
        broken[later] |= first[later] != last[order[:-1][same]] + 1
        return broken

    def heads(self) -> list[tuple[Hashable, int, int]]:
        """Each key's first row, in order: ``(key, its first number, the row)``."""
        rows = [0] if self.groups is None else np.sort(
            np.unique(self.groups, return_index=True)[1]).tolist()
        keys = self.keys.gather(rows).to_list()
        return list(zip(keys, self.first[rows].tolist(), rows, strict=True))

    def runs(self) -> pl.DataFrame:
        """:func:`runs` of the rows."""
        groups, order, count = self.groups, self._order, self.first.size
        broken = self.breaks()
        if groups is None or order is None:
            heads, tails = np.array([0]), np.array([count - 1])
            steady = np.array([not broken.any()])
        else:
            starts = np.flatnonzero(np.concatenate([[True], groups[order[1:]]
                                                    != groups[order[:-1]]]))
            heads = order[starts]
            tails = order[np.concatenate([starts[1:], [count]]) - 1]
            steady = ~np.logical_or.reduceat(broken[order], starts)
            appearance = np.argsort(heads, kind="stable")
            heads, tails, steady = heads[appearance], tails[appearance], steady[appearance]
        return pl.DataFrame({
            "key": self.keys.gather(heads),
            "first": self.first[heads],
            "last": self.last[tails],
            "messages": pl.Series(_counts(groups, heads, count), dtype=pl.UInt32),
            "steady": steady,
        })


def _counts(groups: npt.NDArray[np.int64] | None, heads: npt.NDArray[np.int64],
            count: int) -> npt.NDArray[np.int64]:
    """Each key's rows, the keys in the order of ``heads``."""
    if groups is None:
        return np.array([count])
    return np.bincount(groups)[groups[heads]]


def _column(rows: pl.DataFrame, expression: str | pl.Expr) -> pl.Series:
    """A column of ``rows`` by name, or an expression over them."""
    if isinstance(expression, str):
        return rows[expression]
    if expression.meta.is_column():
        return rows[expression.meta.output_name()]
    return rows.select(expression).to_series()
