"""A de-duplication set bounded by size and by age, on the injected clock.

The parser asks one question per message: *was this key seen less than
``ttl`` ago?* and, if not, remembers it. :class:`cachetools.TTLCache` answers
that with the exact semantics wanted (a key lives ``ttl`` from insertion; when
full, the oldest key goes first; lookups do not refresh it), but its
pure-Python bookkeeping costs about 5 µs per new key once the cache is full,
more than a bare ``websockets`` receive. :class:`DedupeCache` keeps the same
semantics on an :class:`collections.OrderedDict` (a C implementation) whose
insertion order is also expiry order, because keys are inserted at
non-decreasing clock times: the oldest entry is always at the front, so both
bounds are enforced by popping from the front, in O(1) per key.

``tests/test_dedupe.py`` checks it against ``TTLCache`` on random operation
sequences; ``docs/pipeline.md`` has the measurements.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["DedupeCache"]


class DedupeCache:
    """Remember keys for ``ttl`` time units, at most ``maxsize`` of them.

    Parameters
    ----------
    maxsize
        Keys kept at most; the oldest is forgotten first.
    ttl
        How long a key is remembered, in the units of ``timer``.
    timer
        Returns the current time; must never go backwards (a monotonic clock).

    Examples
    --------
    >>> now = [0]
    >>> cache = DedupeCache(maxsize=2, ttl=10, timer=lambda: now[0])
    >>> cache.seen("a"), cache.seen("a")
    (False, True)
    >>> now[0] = 10
    >>> cache.seen("a")
    False
    """

    __slots__ = ("_expiry", "_maxsize", "_timer", "_ttl")

    def __init__(self, maxsize: int, ttl: int | float, timer: Callable[[], int | float]) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0, got {ttl}")
        self._maxsize = maxsize
        self._ttl = ttl
        self._timer = timer
        self._expiry: OrderedDict[Hashable, int | float] = OrderedDict()

    def seen(self, key: Hashable) -> bool:
        """Whether ``key`` was remembered and has not expired; remember it if not.

        A repeat does not extend the key's life: it is forgotten ``ttl`` after
        it was first remembered, however often it recurs.
        """
        now = self._timer()
        expiry = self._expiry
        size = len(expiry)
        until = expiry.setdefault(key, now + self._ttl)  # one hash on the common paths
        if len(expiry) > size:  # a new key
            if size >= self._maxsize:
                expiry.popitem(last=False)
            # Expired keys further on are dropped lazily (len(), or pushed out
            # by newer ones): correctness never depends on it; memory is bounded.
            return False
        if until > now:
            return True
        del expiry[key]  # expired: remembered afresh, at the back
        expiry[key] = now + self._ttl
        return False

    def _expire(self, now: int | float) -> None:
        expiry = self._expiry
        while expiry:
            key = next(iter(expiry))
            if expiry[key] > now:
                return
            del expiry[key]

    def __len__(self) -> int:
        """Keys remembered and not yet expired."""
        self._expire(self._timer())
        return len(self._expiry)

    def clear(self) -> None:
        """Forget every key."""
        self._expiry.clear()

    def __repr__(self) -> str:
        return f"DedupeCache(size={len(self._expiry)}, maxsize={self._maxsize}, ttl={self._ttl})"
