"""The columnar replay's bulk commits leave exactly the state the per-message path leaves.

Three methods commit many messages' state at once: ``DedupeCache.remember`` (after
``fresh`` accepted the keys), ``SequenceTracker.observe_runs`` and
``FrameStore.extend_frame``. Each is checked here against its one-at-a-time
counterpart (``seen``, ``observe``, ``extend``) on the same input, and then on later
calls, which must get the same answers from both.
"""

import itertools
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from pydantic import BaseModel

import wsresearch.dedupe as dedupe_module
from wsresearch._columnar import Decoded, _distinct, _earlier
from wsresearch.dedupe import DedupeCache, _previous
from wsresearch.errors import UnknownChannelError
from wsresearch.frames import META_COLUMNS, ROW_LAYOUT, FrameStore, Row, polars_schema
from wsresearch.sequence import Seq, SequenceTracker

from .conftest import sized

# --- DedupeCache.fresh / remember ------------------------------------------------------


def _times(start: int, steps: list[int]) -> list[int]:
    """Times from ``start`` moved by each step in turn (never below zero)."""
    out, now = [], start
    for step in steps:
        now = max(0, now + step)
        out.append(now)
    return out


def _warmed(maxsize: int, ttl: int, history: list[tuple[int, int]]) -> DedupeCache:
    cache = DedupeCache(maxsize, ttl, lambda: 0)
    for key, now in history:
        cache.seen(key, now)
    return cache


def _history(data: st.DataObject, back: int) -> list[tuple[int, int]]:
    """Prior ``seen`` calls: a small alphabet (repeats, expiry) at times stepping back by
    at most ``back``."""
    steps = data.draw(st.lists(st.tuples(st.integers(0, 7), st.integers(-back, 6)),
                               max_size=40), label="history")
    times = _times(0, [step for _, step in steps])
    return [(key, now) for (key, _), now in zip(steps, times, strict=True)]


def _batch(data: st.DataObject, start: int) -> tuple[list[int], list[int]]:
    """Distinct keys (some of the history's alphabet, so ``fresh`` may refuse them) at
    non-decreasing times from about ``start``."""
    keys = data.draw(st.lists(st.integers(0, 15), min_size=1, max_size=8, unique=True),
                     label="keys")
    first = data.draw(st.integers(max(0, start - 3), start + 6), label="first")
    steps = data.draw(st.lists(st.integers(0, 8), min_size=len(keys) - 1,
                               max_size=len(keys) - 1), label="steps")
    return keys, list(itertools.accumulate(steps, initial=first))


@pytest.mark.parametrize("back", [0, 4], ids=["ordered history", "history stepping back"])
@settings(max_examples=sized(120, 2000), deadline=None)
@given(maxsize=st.integers(1, 6), ttl=st.integers(1, 20), data=st.data())
def test_remember_leaves_the_state_seen_per_key_leaves(
        back: int, maxsize: int, ttl: int, data: st.DataObject) -> None:
    """The contract: keys ``fresh`` accepted, at times that never go back, remembered at
    once give the ``state()`` of ``seen`` per key (each answering False), and both caches
    answer every later ``seen`` alike, also at times stepping back a little. Recorded
    receive times can step back, so the history before the keys may too (by ``back``)."""
    history = _history(data, back=back)
    last = history[-1][1] if history else 0
    keys, times = _batch(data, last)
    one_by_one, at_once = _warmed(maxsize, ttl, history), _warmed(maxsize, ttl, history)
    assume(at_once.fresh(keys, times[0]))
    assert [one_by_one.seen(k, t) for k, t in zip(keys, times, strict=True)] == [False] * len(keys)
    at_once.remember(keys, times)
    assert at_once.state() == one_by_one.state()
    later = data.draw(st.lists(st.tuples(st.integers(0, 15), st.integers(-2, 6)),
                               max_size=40), label="later")
    for key, now in zip([k for k, _ in later], _times(times[-1], [s for _, s in later]),
                        strict=True):
        assert at_once.seen(key, now) == one_by_one.seen(key, now), (key, now)
        assert at_once.state() == one_by_one.state()


def test_fresh_refuses_keys_after_a_history_that_stepped_back() -> None:
    # With "b" remembered after "a" but expiring before it, seen() per key forgets in
    # another order than remember() would: seen("c", 1) evicts "a", then seen("d", 5)
    # expires "b" and "c"; remember() would expire nothing ("a" in front) and evict a, b,
    # keeping "c". So fresh() refuses, and the keys go one at a time.
    cache = DedupeCache(maxsize=2, ttl=3, timer=lambda: 0)
    cache.seen("a", 4)
    cache.seen("b", 1)  # a step back: "b" expires (at 4) before "a" (at 7)
    assert not cache.fresh(["c", "d"], 1)
    assert not cache.seen("c", 1) and not cache.seen("d", 5)
    assert cache.state() == [("d", 8)]


def test_an_entry_left_behind_in_front_is_passed_over_once_the_order_is_back() -> None:
    # A key remembered afresh while its expired entry is held behind a later-expiring one
    # leaves that entry behind. Once the one before it is evicted, the entries' expiry
    # times ascend again; the entry left behind must still not take the key's new life
    # with it when it expires.
    others = [f"x{i}" for i in range(10)]
    caches = [DedupeCache(maxsize=len(others) + 2, ttl=10, timer=lambda: 0) for _ in range(2)]
    for cache in caches:
        cache.seen("e", 5)  # expires at 15
        cache.seen("k", 0)  # a step back: expires at 10, behind "e"
        for key in others:
            cache.seen(key, 1)  # expire at 11
        assert not cache.seen("k", 12)  # expired, but held behind "e": left behind
        cache.seen("b", 12)  # one key too many: "e" is evicted; k@10, x@11..., k@22, b@22
    at_once, one_by_one = caches
    assert at_once.fresh(["c"], 13)
    at_once.remember(["c"], [13])  # k@10 and every x@11 expire: k@22 stays
    assert not one_by_one.seen("c", 13)
    assert at_once.state() == one_by_one.state() == [("k", 22), ("b", 22), ("c", 23)]
    assert at_once.seen("k", 14)


@settings(max_examples=sized(120, 2000), deadline=None)
@given(maxsize=st.integers(1, 12), ttl=st.integers(1, 20), data=st.data())
def test_batches_and_single_keys_in_turn_leave_the_state_seen_per_key_leaves(
        maxsize: int, ttl: int, data: st.DataObject) -> None:
    """A replay's take alternates: a batch remembered at once, then messages one by one
    where a fault sent them to the models, at receive times that may step back. The cache
    keeps what it knows of its order (whether the expiry times ascend, whether an entry is
    left behind) across both; it must agree with its entries after every step, and every
    batch it takes must leave the state ``seen`` per key leaves."""
    at_once, one_by_one = DedupeCache(maxsize, ttl, lambda: 0), DedupeCache(maxsize, ttl, int)
    now = 0
    for _ in range(data.draw(st.integers(1, 12), label="steps")):
        if data.draw(st.integers(0, 9), label="hand over") == 0:
            # A split export hands one part's cache to the next: both load the state.
            state = one_by_one.state()
            at_once.load(state)
            one_by_one.load(state)
        elif data.draw(st.booleans(), label="one key"):
            key = data.draw(st.integers(0, 20), label="key")
            now = max(0, now + data.draw(st.integers(-4, 6), label="step"))
            assert at_once.seen(key, now) == one_by_one.seen(key, now), (key, now)
        else:
            keys = data.draw(st.lists(st.integers(0, 40), min_size=1, max_size=30,
                                      unique=True), label="keys")
            steps = data.draw(st.lists(st.integers(0, 5), min_size=len(keys),
                                       max_size=len(keys)), label="times")
            times = list(itertools.accumulate(steps, initial=max(0, now - 2)))[1:]
            if not at_once.fresh(keys, times[0]):
                continue
            assert not any(one_by_one.seen(k, t) for k, t in zip(keys, times, strict=True))
            at_once.remember(keys, times)
            now = times[-1]
        assert at_once.state() == one_by_one.state()
        for cache in (at_once, one_by_one):
            held = list(cache._order)
            untils = [until for _, until in held]
            assert cache._ascending() == all(a <= b for a, b in itertools.pairwise(untils))
            if cache._popped >= cache._stale:  # nothing left behind: every entry is live
                assert len(held) == len(cache.state())


def test_a_float_time_a_rounding_below_the_last_is_taken_as_seen_takes_it() -> None:
    # 0.7999999999999998 is before 0.8, but expires with it (+ 7.25 rounds to 8.05 both
    # ways): remember() keeps the order seen() keeps, so the batch may go at once.
    at_once, one_by_one = (DedupeCache(10, 7.25, lambda: 0.0) for _ in range(2))
    for cache in (at_once, one_by_one):
        assert not cache.seen("a", 0.8)
    assert at_once.fresh(["b"], 0.7999999999999998)
    at_once.remember(["b"], [0.7999999999999998])
    assert not one_by_one.seen("b", 0.7999999999999998)
    assert at_once.state() == one_by_one.state() == [("a", 8.05), ("b", 8.05)]
    assert at_once._ascending() and one_by_one._ascending()
    for now in (8.0, 8.05):
        assert at_once.seen("a", now) == one_by_one.seen("a", now)
        assert at_once.state() == one_by_one.state()


def test_fresh_refuses_a_key_that_comes_twice_in_the_batch() -> None:
    cache = DedupeCache(10, 5, lambda: 0)
    assert not cache.fresh(["a", "b", "a"], 0)
    assert not cache.fresh([("s", 1), ("s", 1)], 0)  # tuple keys (several fields)


def test_fresh_refuses_a_key_remembered_even_when_expired_but_still_held() -> None:
    cache = DedupeCache(10, 5, lambda: 0)
    cache.seen("a", 0)
    assert not cache.fresh(["b", "a"], 2)  # live: seen() would say True
    assert cache.state() == [("a", 5)]
    assert not cache.fresh(["b", "a"], 9)  # expired at 5, but nothing has dropped it yet
    assert cache.fresh(["b", "c"], 9)


def test_fresh_refuses_a_first_time_before_the_last_key_was_remembered() -> None:
    cache = DedupeCache(10, 5, lambda: 0)
    cache.seen("a", 10)
    assert not cache.fresh(["b"], 9)
    assert cache.fresh(["b"], 10)
    assert cache.seen("a", 12)  # a repeat is not remembered: the last key is still "a"@10
    assert cache.fresh(["b"], 10)


def test_fresh_accepts_new_keys_and_remember_then_knows_them() -> None:
    cache = DedupeCache(10, 5, lambda: 0)
    assert cache.fresh([], 0)
    cache.remember([], [])
    assert cache.state() == []
    assert cache.fresh(["a", "b"], 0)
    cache.remember(["a", "b"], [0, 2])
    assert cache.state() == [("a", 5), ("b", 7)]
    assert cache.seen("a", 4) and cache.seen("b", 6)
    assert not cache.seen("a", 5)


# --- DedupeCache.repeats ----------------------------------------------------------------


@pytest.mark.parametrize("back", [0, 4], ids=["ordered history", "history stepping back"])
@settings(max_examples=sized(150, 3000), deadline=None)
@given(maxsize=st.integers(1, 8), ttl=st.integers(1, 20), told=st.booleans(),
       scan=st.sampled_from([0, 1, 2, 64]), data=st.data())
def test_repeats_are_those_seen_calls_repeats_up_to_the_limit(
        back: int, maxsize: int, ttl: int, told: bool, scan: int, data: st.DataObject
) -> None:
    """Keys from a small alphabet (repeats within the batch and of the history; expiry and
    eviction for room both reached), at times that never go back: ``repeats`` flags each
    key before its limit that ``seen`` in turn calls a repeat, and the limit is the first
    key ``seen`` would remember afresh though it was given before. Remembering the others
    then leaves the state ``seen`` of each leaves, and both answer later keys alike. The
    places of the keys held are found among the newest ``scan`` entries or in a map of
    them all, alike."""
    dedupe_module._SCAN, scanned = scan, dedupe_module._SCAN
    try:
        _check_repeats(back, maxsize, ttl, told, data)
    finally:
        dedupe_module._SCAN = scanned


def _check_repeats(back: int, maxsize: int, ttl: int, told: bool, data: st.DataObject) -> None:
    history = _history(data, back=back)
    last = history[-1][1] if history else 0
    keys = data.draw(st.lists(st.integers(0, 9), min_size=1, max_size=30), label="keys")
    first = data.draw(st.integers(max(0, last - 3), last + 6), label="first")
    steps = data.draw(st.lists(st.integers(0, 4), min_size=len(keys) - 1,
                               max_size=len(keys) - 1), label="steps")
    times = list(itertools.accumulate(steps, initial=first))
    one_by_one, at_once = _warmed(maxsize, ttl, history), _warmed(maxsize, ttl, history)
    before = at_once.state()
    repeats, limit = at_once.repeats(keys, np.array(times, np.int64),
                                     _earlier_of(keys) if told else None)
    assert at_once.state() == before  # asking changes nothing
    seen = [one_by_one.seen(k, t) for k, t in zip(keys, times, strict=True)]
    end = len(keys) if limit is None else limit
    flags = [False] * end if repeats is None else repeats.tolist()
    assert len(flags) == end
    assert flags == seen[:end]
    judged = at_once.takes(first) and at_once._popped >= at_once._stale
    if limit is not None:  # given before or held; where judged, remembered afresh
        assert keys[limit] in keys[:limit] or keys[limit] in at_once._expiry
        assert not (judged and seen[limit])
        event("a limit, judged" if judged else "a limit, not judged")
    elif repeats is not None:
        event("repeats, no limit")
    if not at_once.takes(first):
        return  # seen's answers are judged; remembering the rest at once is not allowed
    kept = [i for i in range(end) if not flags[i]]
    redo = _warmed(maxsize, ttl, history)
    for k, t in zip(keys[:end], times[:end], strict=True):
        redo.seen(k, t)
    at_once.remember([keys[i] for i in kept], [times[i] for i in kept])
    assert at_once.state() == redo.state()
    later = data.draw(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 6)),
                               max_size=20), label="later")
    for key, now in zip([k for k, _ in later], _times(times[end - 1] if end else first,
                                                      [s for _, s in later]), strict=True):
        assert at_once.seen(key, now) == redo.seen(key, now), (key, now)


def _earlier_of(keys: list[int]) -> np.ndarray:
    """For each key, the index of the last one before it equal to it (-1: none)."""
    return np.array([max((j for j in range(i) if keys[j] == key), default=-1)
                     for i, key in enumerate(keys)], np.int64)


def test_repeats_leaves_a_batch_without_any_alone() -> None:
    cache = DedupeCache(10, 5, lambda: 0)
    cache.seen("a", 0)
    assert cache.repeats(["b", "c"], np.array([1, 2], np.int64)) == (None, None)


def test_repeats_judges_a_key_forgotten_for_room_as_new() -> None:
    # "a" held with room for three keys: two new keys leave it a repeat, and a third
    # pushes it out, so "a" again is then remembered afresh (the limit).
    cache = DedupeCache(3, 100, lambda: 0)
    cache.seen("a", 0)
    found, limit = cache.repeats(["b", "a", "c", "a"], np.arange(1, 5, dtype=np.int64))
    assert limit is None and found is not None
    assert found.tolist() == [False, True, False, True]
    found, limit = cache.repeats(["b", "c", "d", "a"], np.arange(1, 5, dtype=np.int64))
    assert (found, limit) == (None, 3)


def test_repeats_judges_nothing_where_the_times_step_back() -> None:
    cache = DedupeCache(10, 5, lambda: 0)
    assert cache.repeats(["a", "b", "a"], np.array([3, 2, 4], np.int64)) == (None, 2)
    cache.seen("z", 10)
    assert cache.repeats(["y", "z"], np.array([4, 5], np.int64)) == (None, 1)  # before z's


# --- SequenceTracker.observe_runs ------------------------------------------------------

KEYS = [None, "A", "B", "C", 7]
GROUP, OTHER = "g", "h"


def _tracker_state(tracker: SequenceTracker) -> tuple[object, ...]:
    expected = {(group, key): tracker.expected(group, key)
                for group in (GROUP, OTHER) for key in KEYS}
    return (dict(tracker.counts), expected, tracker.generation,
            {c: dict(v) for c, v in tracker.by_channel.items()}, list(tracker.gaps))


def _warm_tracker(observed: list[tuple[str, object, int]], generation: int) -> SequenceTracker:
    tracker = SequenceTracker()
    for mono, (group, key, value) in enumerate(observed):
        tracker.observe(group, "c", key, value, generation, mono)
    return tracker


@settings(max_examples=sized(120, 2000), deadline=None)
@given(generation=st.integers(0, 3), data=st.data())
def test_observe_runs_leaves_the_state_of_observing_each_number(
        generation: int, data: st.DataObject) -> None:
    """Runs starting where each key expects (anywhere for a key with no state yet) count
    as one ``reset`` for a new key and ``in_order`` for the rest; expectations, counts per
    channel, gaps and later outcomes are those of ``observe`` per number."""
    observed = data.draw(st.lists(st.tuples(st.sampled_from([GROUP, OTHER]),
                                            st.sampled_from(KEYS), st.integers(0, 30)),
                                  min_size=1, max_size=40), label="warm-up")
    one_by_one = _warm_tracker(observed, generation)
    at_once = _warm_tracker(observed, generation)
    run_keys = data.draw(st.lists(st.sampled_from(KEYS), unique=True), label="run keys")
    runs = {}
    for key in run_keys:
        expected = at_once.expected(GROUP, key)
        first = data.draw(st.integers(-5, 40), label="first") if expected is None else expected
        runs[key] = (first, first + data.draw(st.integers(0, 6), label="length") - 1)
    runs = {k: (f, last) for k, (f, last) in runs.items() if last >= f}
    mono = len(observed)
    for key, (first, last) in runs.items():
        for value in range(first, last + 1):
            outcome = one_by_one.observe(GROUP, "c", key, value, generation, mono)[0]
            assert outcome in ("reset", "in_order")
            mono += 1
    at_once.observe_runs(GROUP, runs, generation)
    assert _tracker_state(at_once) == _tracker_state(one_by_one)
    later = data.draw(st.lists(st.tuples(st.sampled_from([GROUP, OTHER]),
                                         st.sampled_from(KEYS), st.integers(-5, 50)),
                               max_size=30), label="later")
    for group, key, value in later:
        assert (at_once.observe(group, "c", key, value, generation, mono)
                == one_by_one.observe(group, "c", key, value, generation, mono))
        mono += 1
    assert _tracker_state(at_once) == _tracker_state(one_by_one)


def _two_keys() -> SequenceTracker:
    tracker = SequenceTracker()
    tracker.observe(GROUP, "c", "A", 1, 1, 0)
    tracker.observe(GROUP, "c", "B", 5, 1, 1)
    return tracker


@pytest.mark.parametrize("tracker", [SequenceTracker, _two_keys],
                         ids=["nothing judged yet", "a connection before"])
@pytest.mark.parametrize("runs", [{"A": (7, 9)}, {"A": (2, 3), "new": (1, 1)}, {}])
def test_observe_runs_of_a_new_generation_start_afresh_as_observe_does(
        tracker: Any, runs: dict[str, tuple[int, int]]) -> None:
    # The first number of a connection clears what the last one left, every group's:
    # each run's first number is a reset, wherever the key stood.
    one_by_one, at_once = tracker(), tracker()
    for key, (first, last) in runs.items():
        for value in range(first, last + 1):
            one_by_one.observe(GROUP, "c", key, value, 2, 0)
    at_once.observe_runs(GROUP, runs, 2)
    assert _tracker_state(at_once) == _tracker_state(one_by_one)
    assert at_once.expected(GROUP, "B") == one_by_one.expected(GROUP, "B")


@pytest.mark.parametrize("run", [(3, 4), (1, 4), (0, 1)],
                         ids=["later", "overlapping", "before"])
def test_observe_runs_refuses_a_run_that_does_not_start_where_its_key_expects(
        run: tuple[int, int]) -> None:
    tracker = _two_keys()
    before = _tracker_state(tracker)
    with pytest.raises(ValueError, match="'A' expects 2, not"):
        tracker.observe_runs(GROUP, {"A": run}, 1)
    assert _tracker_state(tracker) == before


@pytest.mark.parametrize("key", ["A", "new"])
def test_observe_runs_refuses_a_run_that_ends_before_it_starts(key: str) -> None:
    tracker = _two_keys()
    before = _tracker_state(tracker)
    with pytest.raises(ValueError, match=r"cannot end before it starts: 2\.\.1"):
        tracker.observe_runs(GROUP, {key: (2, 1)}, 1)
    assert _tracker_state(tracker) == before
    assert tracker.expected(GROUP, "new") is None


REFUSED_LAST = pytest.mark.parametrize(
    ("bad", "why"), [((7, 9), "'B' expects 6, not 7"), ((9, 8), "end before it starts")],
    ids=["elsewhere", "backwards"])


@REFUSED_LAST
def test_a_refused_observe_runs_leaves_the_counts_unchanged(
        bad: tuple[int, int], why: str) -> None:
    """The refused run comes last, after a run of a known key and one of a new key."""
    tracker = _two_keys()
    counts = dict(tracker.counts)
    with pytest.raises(ValueError, match=why):
        tracker.observe_runs(GROUP, {"A": (2, 4), "new": (1, 3), "B": bad}, 1)
    assert tracker.counts == counts


@REFUSED_LAST
def test_a_refused_observe_runs_leaves_every_expectation_unchanged(
        bad: tuple[int, int], why: str) -> None:
    tracker = _two_keys()
    with pytest.raises(ValueError, match=why):
        tracker.observe_runs(GROUP, {"A": (2, 4), "new": (1, 3), "B": bad}, 1)
    assert (tracker.expected(GROUP, "A"), tracker.expected(GROUP, "new")) == (2, None)


# --- FrameStore.extend_frame -----------------------------------------------------------


class Trade(BaseModel):
    symbol: str
    trade_id: int
    price: float
    side: str | None = None


class Fill(BaseModel):
    price: float


class Fills(BaseModel):
    symbol: str
    fills: list[Fill]


SCHEMA = {**polars_schema(Trade), **META_COLUMNS}
INT64 = st.integers(-(2**63), 2**63 - 1)

row_strategy = st.tuples(
    st.builds(Trade, symbol=st.sampled_from(["BTC", "ETH", ""]), trade_id=INT64,
              price=st.floats(allow_nan=False), side=st.none() | st.sampled_from(["buy", "sell"])
              ).map(lambda trade: trade.__dict__),
    st.integers(0, 3), INT64, INT64, st.none() | INT64, st.none() | st.integers(0, 2**40),
)


def as_frame(rows: list[Row]) -> pl.DataFrame:
    """``rows`` in columns, as the columnar replay hands them to ``extend_frame``."""
    columns = {name: [row[0][name] for row in rows] for name in polars_schema(Trade)}
    for name in META_COLUMNS:
        position = ROW_LAYOUT.index(name)
        columns[name] = [row[position] for row in rows]
    return pl.DataFrame(columns, schema=SCHEMA)


def _assert_same_counts(mixed: FrameStore, plain: FrameStore) -> None:
    assert (mixed.added("t"), mixed.rows("t"), mixed.evicted("t")) == (
        plain.added("t"), plain.rows("t"), plain.evicted("t"))


operation = st.one_of(  # mostly batches of rows, now and then an empty one
    st.tuples(st.sampled_from(["extend", "extend_frame"]),
              st.lists(row_strategy, min_size=1, max_size=6)),
    st.tuples(st.sampled_from(["extend", "extend_frame"]), st.lists(row_strategy, max_size=6)),
    st.tuples(st.sampled_from(["extend", "extend_frame", "frame", "take"]), st.just([])),
)


@pytest.mark.parametrize("max_rows", [None, 0, 1, 3], ids=lambda n: f"max_rows={n}")
@settings(max_examples=sized(20, 300), deadline=None)
@given(batch_rows=st.sampled_from([4096, 1, 2, 3, 5, 8]),
       operations=st.lists(operation, min_size=2, max_size=12))
def test_extend_frame_leaves_what_extend_of_the_same_rows_leaves(
        max_rows: int | None, batch_rows: int,
        operations: list[tuple[str, list[Row]]]) -> None:
    """One store takes some batches in columns, the other every batch as tuples: the
    frame (dtypes included), rows added, held and let go agree throughout, also across
    ``take()`` and in a ring."""
    mixed = FrameStore({"t": Trade}, batch_rows=batch_rows, max_rows=max_rows)
    plain = FrameStore({"t": Trade}, batch_rows=batch_rows, max_rows=max_rows)
    mono = itertools.count()
    for name, drawn in operations:
        # Receive times that rise, as a feed's do: no two rows alike, so order shows.
        rows: list[Row] = [(f, g, next(mono), wall, ex, seq) for f, g, _, wall, ex, seq in drawn]
        if name == "extend":
            mixed.extend("t", rows)
        elif name == "extend_frame":
            frame = as_frame(rows)
            assert frame.schema == SCHEMA
            mixed.extend_frame("t", frame)
        elif name == "frame":
            assert_frame_equal(mixed.frame("t"), plain.frame("t"))
        else:
            assert_frame_equal(mixed.take("t"), plain.take("t"))
        if name.startswith("extend"):
            plain.extend("t", rows)
        _assert_same_counts(mixed, plain)
    frame = mixed.frame("t")
    assert_frame_equal(frame, plain.frame("t"))
    assert frame.schema == SCHEMA
    _assert_same_counts(mixed, plain)


def _trades(first: int, count: int) -> list[Row]:
    return [(Trade(symbol="BTC", trade_id=n, price=n / 2, side=None if n % 3 else "buy").__dict__,
             1, n, 10 * n, None if n % 2 else n, n) for n in range(first, first + count)]


@pytest.mark.parametrize("max_rows", [None, 0, 2, 5], ids=lambda n: f"max_rows={n}")
@pytest.mark.parametrize("batch_rows", [1, 3, 4096])
def test_extend_frame_keeps_the_order_rows_came_in(
        max_rows: int | None, batch_rows: int) -> None:
    """Pending tuples are built before a column chunk, across ``take()`` and in a ring."""
    mixed = FrameStore({"t": Trade}, batch_rows=batch_rows, max_rows=max_rows)
    plain = FrameStore({"t": Trade}, batch_rows=batch_rows, max_rows=max_rows)
    batches = [("extend", _trades(0, 2)), ("extend_frame", _trades(2, 3)),
               ("extend", _trades(5, 1)), ("extend_frame", _trades(6, 4)), ("take", []),
               ("extend_frame", _trades(10, 2)), ("extend", _trades(12, 2)),
               ("extend_frame", _trades(14, 1)), ("extend_frame", [])]
    for name, rows in batches:
        if name == "take":
            assert_frame_equal(mixed.take("t"), plain.take("t"))
            continue
        if name == "extend":
            mixed.extend("t", rows)
        else:
            mixed.extend_frame("t", as_frame(rows))
        plain.extend("t", rows)
        _assert_same_counts(mixed, plain)
    assert mixed.added("t") == 15
    assert_frame_equal(mixed.frame("t"), plain.frame("t"))
    kept = [10, 11, 12, 13, 14]  # added since take()
    if max_rows is not None:
        kept = kept[len(kept) - max_rows:] if max_rows else []
    assert mixed.frame("t")["trade_id"].to_list() == kept


def test_extend_frame_refuses_an_exploded_channel() -> None:
    store = FrameStore({"fills": Fills}, explode={"fills": "fills"})
    store.extend("fills", [({"symbol": "BTC", "fills": [Fill(price=1.0)]}, 1, 0, 0, None, None)])
    with pytest.raises(ValueError, match="'fills' is exploded"):
        store.extend_frame("fills", pl.DataFrame({"symbol": ["BTC"], "price": [2.0]}))
    assert store.added("fills") == 1
    assert store.frame("fills")["price"].to_list() == [1.0]


def test_extend_frame_refuses_an_unknown_channel() -> None:
    store = FrameStore({"t": Trade})
    with pytest.raises(UnknownChannelError, match="unknown channel 'nope'"):
        store.extend_frame("nope", as_frame([]))
    assert store.added("t") == 0


@settings(max_examples=sized(80, 1000), deadline=None)
@given(generation=st.integers(0, 2), data=st.data())
def test_observe_runs_of_ranges_leaves_the_state_of_observing_each_message(
        generation: int, data: st.DataObject) -> None:
    """Messages each carrying a range (a ``Seq``, each starting one past the last's end)
    count one outcome each: ``messages`` says how many carried each key's run."""
    observed = data.draw(st.lists(st.tuples(st.sampled_from([GROUP, OTHER]),
                                            st.sampled_from(KEYS), st.integers(0, 30)),
                                  max_size=20), label="warm-up")
    one_by_one = _warm_tracker(observed, generation)
    at_once = _warm_tracker(observed, generation)
    runs, messages, mono = {}, {}, len(observed)
    for key in data.draw(st.lists(st.sampled_from(KEYS), unique=True), label="run keys"):
        expected = at_once.expected(GROUP, key)
        start = data.draw(st.integers(-5, 40), label="first") if expected is None else expected
        first = start
        widths = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=6), label="widths")
        for width in widths:
            outcome = one_by_one.observe(GROUP, "c", key, Seq(first, first + width - 1),
                                         generation, mono)[0]
            assert outcome in ("reset", "in_order")
            first, mono = first + width, mono + 1
        runs[key], messages[key] = (start, first - 1), len(widths)
    at_once.observe_runs(GROUP, runs, generation, messages)
    assert _tracker_state(at_once) == _tracker_state(one_by_one)


# --- Decoded's de-dup twins -------------------------------------------------------------


def _twins(keys: list[tuple[Any, ...]]) -> list[int]:
    """For each key, the index of its last earlier equal key (-1: none), as a dict finds."""
    last: dict[tuple[Any, ...], int] = {}
    found = []
    for index, key in enumerate(keys):
        found.append(last.get(key, -1))
        last[key] = index
    return found


@settings(max_examples=sized(80, 1000), deadline=None)
@given(keys=st.lists(st.tuples(st.sampled_from(["A", "B", "", None]),
                               st.one_of(st.none(), st.integers(-3, 3)),
                               st.one_of(st.none(), st.booleans())),
                     max_size=40), data=st.data())
def test_the_rows_twins_are_those_a_set_of_their_key_tuples_finds(
        keys: list[tuple[Any, ...]], data: st.DataObject) -> None:
    """The columnar replay finds a take's twin keys from one sort in the read-ahead (nulls
    equal, as None in a tuple), and a slice of the rows keeps only twins within it: both
    must be what Python's dicts find on the key tuples the cache holds."""
    rows = pl.DataFrame(keys, schema={"s": pl.String, "i": pl.Int64, "b": pl.Boolean},
                        orient="row").with_columns(recv_mono_ns=pl.int_range(pl.len()))
    earlier = _earlier(rows, ("s", "i", "b"))
    assert earlier is not None
    assert earlier.tolist() == _twins(keys)
    count = len(keys)
    found = Decoded(rows, np.arange(count), np.ones(count, np.int64), list(keys), None,
                    earlier)
    start = data.draw(st.integers(0, count), label="start")
    stop = data.draw(st.integers(start, count), label="stop")
    part = found.part(slice(start, stop))
    assert part.earlier is not None
    assert part.earlier.tolist() == _twins(keys[start:stop])
    # The cache finds them itself where the rows' are not known (a float field).
    assert _previous(keys).tolist() == _twins(keys)


@settings(max_examples=sized(80, 200), deadline=None)
@given(symbols=st.one_of(st.just(["A"]), st.lists(st.sampled_from(["A", "B", None]),
                                                  min_size=1, max_size=3)),
       steps=st.one_of(st.lists(st.integers(0, 2), max_size=30),  # rising, or level
                       st.lists(st.one_of(st.integers(-3, 5), st.none()), max_size=30)),
       fields=st.sampled_from([("s", "i"), ("i",), ("s",), ("i", "s")]))
def test_keys_seen_distinct_at_a_glance_are_distinct(
        symbols: list[str | None], steps: list[int | None],
        fields: tuple[str, ...]) -> None:
    # Keys with an id that only rises are distinct at a glance; any other take's are
    # counted: either way, what a set of the key tuples finds.
    ids: list[int | None] = []
    last = 0
    for step in steps:
        last = last + step if step is not None else last
        ids.append(None if step is None else last)
    rows = pl.DataFrame({"s": [symbols[i % len(symbols)] for i in range(len(ids))], "i": ids},
                        schema={"s": pl.String, "i": pl.Int64})
    keys = list(zip(*(rows[name].to_list() for name in fields), strict=True))
    assert _distinct(rows, fields) == (len(set(keys)) == len(keys))


def test_a_key_with_a_float_field_is_left_to_python() -> None:
    # -0.0 == 0.0 in a tuple; a sort may tell them apart.
    rows = pl.DataFrame({"price": [0.0, -0.0], "recv_mono_ns": [0, 1]})
    assert _earlier(rows, ("price",)) is None
