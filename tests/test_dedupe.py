"""DedupeCache must answer exactly as cachetools.TTLCache used as a seen-set would."""

import pytest
from cachetools import TTLCache
from hypothesis import given, settings
from hypothesis import strategies as st

from wsresearch.dedupe import DedupeCache


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


@settings(max_examples=400, deadline=None)
@given(maxsize=st.integers(1, 6), ttl=st.integers(1, 10), ops=operations)
def test_same_answers_as_ttlcache(maxsize: int, ttl: int, ops: list[tuple[str, int]]) -> None:
    now = [0]
    fast = DedupeCache(maxsize, ttl, lambda: now[0])
    reference = Reference(maxsize, ttl, lambda: now[0])
    for op, value in ops:
        if op == "tick":
            now[0] += value
        else:
            assert fast.seen(value) == reference.seen(value), (op, value, now[0])
            assert len(fast) == len(reference.cache)


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
