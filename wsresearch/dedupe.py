"""A de-duplication set bounded by size and by age, on the injected clock.

The parser asks one question per message: *was this key seen less than
``ttl`` ago?* and, if not, remembers it. :class:`cachetools.TTLCache` answers
that with the exact semantics wanted (a key lives ``ttl`` from insertion; when
full, the oldest key goes first; lookups do not refresh it), but its
pure-Python bookkeeping costs about 2.6 µs per new key, half a bare
``websockets`` receive. :class:`DedupeCache` keeps the same semantics with a
plain ``dict`` (key to expiry) and a ``deque`` of ``(key, expiry)`` in insertion
order, which is also expiry order because keys are inserted at non-decreasing
times: the oldest entry is always at the front, so both bounds are enforced
by popping from the front, in O(1) per key. A key remembered afresh after it
expired leaves its old entry behind in the deque; that entry is recognised by
its stale expiry and skipped when it reaches the front.

``tests/test_dedupe.py`` checks it against ``TTLCache`` on random operation
sequences; ``docs/performance.md`` has the measurements.
"""

from __future__ import annotations

import bisect
import operator
from collections import deque
from collections.abc import Callable, Hashable, Sequence

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

    __slots__ = ("_expiry", "_maxsize", "_order", "_timer", "_ttl")

    def __init__(self, maxsize: int, ttl: int | float, timer: Callable[[], int | float]) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0, got {ttl}")
        self._maxsize = maxsize
        self._ttl = ttl
        self._timer = timer
        self._expiry: dict[Hashable, int | float] = {}
        self._order: deque[tuple[Hashable, int | float]] = deque()

    def seen(self, key: Hashable, now: int | float | None = None) -> bool:
        """Whether ``key`` was remembered and has not expired; remember it if not.

        A repeat does not extend the key's life: it is forgotten ``ttl`` after
        it was first remembered, however often it recurs. ``now`` is the time
        to judge at (the timer's now by default); it must never go back.
        """
        if now is None:
            now = self._timer()
        expiry = self._expiry
        until = expiry.get(key)
        if until is not None and until > now:
            return True
        # New, or expired: remembered (afresh) at the back.
        order = self._order
        if order and order[0][1] <= now:
            self._expire(now)
        until = expiry[key] = now + self._ttl
        order.append((key, until))
        if len(expiry) > self._maxsize:
            self._evict()
        return False

    def fresh(self, keys: Sequence[Hashable], first: int | float) -> bool:
        """Whether :meth:`remember` may take ``keys``: all new, in time order with the rest.

        True when no key is remembered (expired or not), no key comes twice, ``first``
        (the earliest time they come at) is not before the last key remembered, and the
        keys held expire in the order they were remembered (no earlier time stepped
        back). Then :meth:`seen` would answer ``False`` for each of them in turn, and
        forgets keys in the same order :meth:`remember` does.
        """
        order = self._order
        if order and first < order[-1][1] - self._ttl:
            return False
        if not (len(set(keys)) == len(keys) and self._expiry.keys().isdisjoint(keys)):
            return False
        untils = [until for _, until in order]
        return all(map(operator.le, untils, untils[1:]))

    def first_known(self, keys: Sequence[Hashable]) -> int | None:
        """The index of the first of ``keys`` remembered (expired or not) or already given.

        The first that :meth:`fresh` refuses by its own; ``None`` if there is none.
        """
        expiry = self._expiry
        given: set[Hashable] = set()
        for index, key in enumerate(keys):
            if key in expiry or key in given:
                return index
            given.add(key)
        return None

    def remember(self, keys: Sequence[Hashable], times: Sequence[int | float]) -> None:
        """Remember ``keys``, each at its time: what :meth:`seen` for each in turn does.

        For keys :meth:`fresh` accepted, at times that never go back. The keys
        remembered and their expiry afterwards are those of calling :meth:`seen` once
        per key: with every expiry in order, the keys kept are the newest ``maxsize`` of
        those not yet expired at the last time, whichever order the forgetting happens
        in. The work is a few C-level passes, not a Python call per key.
        """
        if not keys:
            return
        ttl = self._ttl
        entries = list(zip(keys, [time + ttl for time in times], strict=True))
        if len(entries) >= self._maxsize:
            # The newest maxsize keys are all new: those not yet expired are all that is
            # kept (their expiry times ascend), so there is nothing to pop one by one.
            newest = entries[-self._maxsize:]
            kept = newest[bisect.bisect_right([until for _, until in newest], times[-1]):]
            self._expiry = dict(kept)
            self._order = deque(kept)
            return
        self._expiry.update(entries)
        self._order.extend(entries)
        self._expire(times[-1])
        # _evict() as many times as needed, inline: a call per key would double the cost.
        expiry, popleft = self._expiry, self._order.popleft
        excess = len(expiry) - self._maxsize
        while excess > 0:
            key, until = popleft()
            if expiry.get(key) == until:
                del expiry[key]
                excess -= 1

    def _expire(self, now: int | float) -> None:
        """Forget every key whose time is up (the front of the deque)."""
        expiry, order = self._expiry, self._order
        while order and order[0][1] <= now:
            key, until = order.popleft()
            if expiry.get(key) == until:  # not an entry left behind by a re-insert
                del expiry[key]

    def _evict(self) -> None:
        """Forget the oldest live key."""
        expiry, order = self._expiry, self._order
        while order:
            key, until = order.popleft()
            if expiry.get(key) == until:
                del expiry[key]
                return

    def state(self) -> list[tuple[Hashable, int | float]]:
        """Every key remembered, with its expiry, in insertion order: all :meth:`seen` depends on.

        Two caches of one ``maxsize`` and ``ttl`` with equal states answer every later
        question alike: how a long recording exported in parts (each part warmed up on the
        messages before it) is checked against the cache the part before handed over.
        """
        expiry = self._expiry
        return [(key, until) for key, until in self._order if expiry.get(key) == until]

    def load(self, state: list[tuple[Hashable, int | float]]) -> None:
        """Remember exactly ``state`` (from :meth:`state`), forgetting everything else."""
        self._expiry = dict(state)
        self._order = deque(state)

    @property
    def entries(self) -> int:
        """Entries held in memory: the keys remembered, and expired ones not yet dropped.

        An expired entry is dropped once it reaches the front of the insertion order,
        so this stays within a few of :func:`len` plus the keys that expired since.
        """
        return len(self._order)

    def __len__(self) -> int:
        """Keys remembered and not yet expired."""
        self._expire(self._timer())
        return len(self._expiry)

    def __repr__(self) -> str:
        return f"DedupeCache(size={len(self._expiry)}, maxsize={self._maxsize}, ttl={self._ttl})"
