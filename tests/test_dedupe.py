"""DedupeCache must answer exactly as cachetools.TTLCache used as a seen-set would."""

import itertools

import pytest
from cachetools import TTLCache
from hypothesis import given, settings
from hypothesis import strategies as st

from wsresearch.dedupe import DedupeCache

from .conftest import sized


class Reference:
    """The semantics wanted, spelled with cachetools: contains, else insert."""

    def __init__(self, maxsize: int, ttl: int, timer: object) -> None:
        self.cache: TTLCache[object, bool] = TTLCache(maxsize=maxsize, ttl=ttl, timer=timer)

    def seen(self, key: object) -> bool:
        if key in self.cache:
            return True
        self.cache[key] = True
        return False


operations = st.lists(
    st.one_of(
        st.tuples(st.just("key"), st.integers(0, 12)),
        st.tuples(st.just("tick"), st.integers(0, 7)),
    ),
    max_size=200,
)


@settings(max_examples=sized(150, 400), deadline=None)
@given(maxsize=st.integers(1, 6), ttl=st.integers(1, 10), ops=operations)
def test_same_answers_as_ttlcache(maxsize: int, ttl: int, ops: list[tuple[str, int]]) -> None:
    _same_answers(maxsize, ttl, ops)


def _same_answers(maxsize: int, ttl: int, ops: list[tuple[str, int]]) -> None:
    now = [0]
    fast = DedupeCache(maxsize, ttl, lambda: now[0])
    reference = Reference(maxsize, ttl, lambda: now[0])
    for op, value in ops:
        if op == "tick":
            now[0] += value
        else:
            assert fast.seen(value) == reference.seen(value), (op, value, now[0])
            assert len(fast) == len(reference.cache)


@settings(max_examples=sized(100, 300), deadline=None)
@given(maxsize=st.integers(1, 40), ttl=st.integers(1, 30), ops=st.lists(st.one_of(
    st.tuples(st.just("key"), st.integers(0, 60)),
    st.tuples(st.just("tick"), st.integers(0, 12)),
), max_size=300))
def test_same_answers_as_ttlcache_with_runs_of_keys_due_at_once(
        maxsize: int, ttl: int, ops: list[tuple[str, int]]) -> None:
    # Many keys, and time moving in larger steps: runs of keys expire at once.
    _same_answers(maxsize, ttl, ops)


def test_a_repeat_does_not_extend_a_keys_life() -> None:
    now = [0]
    cache = DedupeCache(10, 5, lambda: now[0])
    assert not cache.seen("k")
    now[0] = 4
    assert cache.seen("k")
    now[0] = 5
    assert not cache.seen("k")  # five after first sight, not after the repeat


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        DedupeCache(0, 1, int)
    with pytest.raises(ValueError, match="ttl"):
        DedupeCache(1, 0, int)


def test_keys_remembered_afresh_leave_nothing_behind() -> None:
    now = [0]
    cache = DedupeCache(10, 5, lambda: now[0])
    for _ in range(1000):
        assert not cache.seen("k")  # expired each time: remembered afresh
        now[0] += 5
    assert cache.entries <= 2


@settings(max_examples=sized(100, 300), deadline=None)
@given(st.data())
def test_a_cache_loaded_with_another_s_state_answers_as_that_one_would(
        data: st.DataObject) -> None:
    """What a split export relies on: a part warmed up on the last 2 * ttl agrees with the
    whole run whenever their states agree, and one loaded with the state handed over always
    does (a key repeated for ever is new again at times the whole history sets, which a
    warm-up can miss)."""
    n = data.draw(st.integers(2, 120))
    maxsize, ttl = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 20))
    keys = data.draw(st.lists(st.integers(0, 12), min_size=n, max_size=n))
    times = list(itertools.accumulate(data.draw(
        st.lists(st.integers(0, 4), min_size=n, max_size=n))))
    cut = data.draw(st.integers(1, n - 1))
    whole = DedupeCache(maxsize, ttl, lambda: 0)
    before = [whole.seen(k, t) for k, t in zip(keys[:cut], times[:cut], strict=True)]
    handed = whole.state()
    after = [whole.seen(k, t) for k, t in zip(keys[cut:], times[cut:], strict=True)]
    assert len(before) == cut
    start = next(i for i in range(n) if times[i] >= times[cut] - 2 * ttl)
    warm = DedupeCache(maxsize, ttl, lambda: 0)
    for k, t in zip(keys[start:cut], times[start:cut], strict=True):
        warm.seen(k, t)
    if warm.state() == handed:
        assert [warm.seen(k, t) for k, t in zip(keys[cut:], times[cut:], strict=True)] == after
    loaded = DedupeCache(maxsize, ttl, lambda: 0)
    loaded.load(handed)
    assert loaded.state() == handed
    assert [loaded.seen(k, t) for k, t in zip(keys[cut:], times[cut:], strict=True)] == after
