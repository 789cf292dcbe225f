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

A replay remembers thousands of keys at once (:meth:`DedupeCache.remember`) and forgets
as many at once. So that neither costs a Python step per key, the cache knows, without
looking, whether its entries' expiry times ascend and whether any entry is left behind
(each is a position in the insertion order that the front must pass): while both hold,
the keys due are found by bisection and forgotten in C-level passes.

``tests/test_dedupe.py`` checks it against ``TTLCache`` on random operation
sequences; ``docs/performance.md`` has the measurements.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections import deque
from collections.abc import Callable, Hashable, Sequence

import numpy as np
import numpy.typing as npt

from ._limits import INT64_MAX

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

    __slots__ = ("_descent", "_expiry", "_maxsize", "_order", "_popped", "_stale", "_timer",
                 "_ttl")

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
        # Positions in the insertion order, counted from the first entry ever: entries
        # before _popped are gone. The expiry times ascend once the front has passed
        # _descent (the later entry of the last pair that steps back), and no entry is
        # left behind by a re-insert once it has passed _stale.
        self._popped = 0
        self._descent = 0
        self._stale = 0

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
            order = self._order
        if until is not None and key in expiry:  # its entry waits behind one due later
            self._stale = self._popped + len(order)
        new = expiry[key] = now + self._ttl
        if order and order[-1][1] > new:
            self._descent = self._popped + len(order)
        order.append((key, new))
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

        "Not before" is judged on the expiry times, as :meth:`remember` keeps them
        (``first + ttl`` against the last key's): with float times, a ``first`` a rounding
        below the last time still expires with it, and is taken.
        """
        return (self.takes(first) and len(set(keys)) == len(keys)
                and self._expiry.keys().isdisjoint(keys))

    def takes(self, first: int | float) -> bool:
        """Whether new keys from time ``first`` on may be remembered at once.

        :meth:`fresh`'s rule on time: ``first`` is not before the last key remembered
        (judged on expiry times), and the keys held expire in the order they were
        remembered.
        """
        order = self._order
        return not (order and first + self._ttl < order[-1][1]) and self._ascending()

    def _ascending(self) -> bool:
        """Whether the entries' expiry times never step back, front to back."""
        return self._popped >= self._descent

    def repeats(self, keys: Sequence[Hashable], times: npt.NDArray[np.int64],
                earlier: npt.NDArray[np.int64] | None = None
                ) -> tuple[npt.NDArray[np.bool_] | None, int | None]:
        """Which of ``keys`` :meth:`seen` would call repeats, asked of each in turn.

        Up to the first key it would remember afresh though it was given before (one
        that expired or was forgotten for room, then came again), which is left to
        :meth:`seen`: a few array steps judge many keys, where a repeat costs nothing in
        the cache (:meth:`seen` leaves it as it was) and every other key is new. So
        :meth:`remember` of the keys before that one that are not repeats leaves the
        cache as :meth:`seen` of each of them in turn does.

        Parameters
        ----------
        keys
            The keys, in the order asked.
        times
            Each key's time: an int64 array (with an integer ``ttl``), never going back
            and from a time :meth:`takes`, for any repeat to be judged.
        earlier
            For each key, the index of the last key before it equal to it (-1: none),
            where the caller knows it (``None``: found here).

        Returns
        -------
        tuple
            A flag per key before the limit, set for each repeat (``None``: none of
            them is one); and the limit: the first key whose outcome is not judged here
            (``None``: all are). Where the rule on ``times`` does not hold, or the
            cache holds an entry left behind or whose time steps back, no repeat is
            judged: the limit is the first key held or given before. The keys before
            the limit that are not repeats are all new: :meth:`takes` says whether they
            may be remembered at once.
        """
        count = len(keys)
        expiry, order, ttl = self._expiry, self._order, self._ttl
        if earlier is None:
            earlier = _previous(keys)
        held: npt.NDArray[np.bool_] | None = None
        if not expiry.keys().isdisjoint(keys):
            held = np.fromiter(map(expiry.__contains__, keys), np.bool_, count)
        given = earlier >= 0
        asked = given if held is None else given | held
        if not asked.any():
            return None, None
        judged = (isinstance(ttl, int) and times.dtype == np.int64
                  and int(times[-1]) <= INT64_MAX - ttl and self.takes(int(times[0]))
                  and bool((times[1:] >= times[:-1]).all()) and self._popped >= self._stale)
        if not judged:
            return None, int(np.argmax(asked))
        # Judged as if every key asked (held, or given before) were a repeat: then the keys
        # remembered before a key are the others before it (new_before counts them), and
        # that holds up to the first key asked that is not a repeat, the limit.
        rows = np.flatnonzero(asked)
        new_before = np.arange(count) - (np.cumsum(asked) - asked)
        # Each key's first among the keys: its earlier twin's, followed to the first, by
        # pointer doubling (a few steps for any run of twins).
        root = np.where(given, earlier, np.arange(count))
        while True:
            deeper = root[root]
            if (deeper == root).all():
                break
            root = deeper
        origin = root[rows]
        live = np.empty(rows.size, np.bool_)
        if held is not None:
            cached = held[origin]
            ask = [keys[i] for i in origin[cached].tolist()]
            until = np.fromiter(map(expiry.__getitem__, ask), np.int64, len(ask))
            fits = np.ones(len(ask), np.bool_)
            if len(order) + count > self._maxsize:  # some may be forgotten for room
                newer = len(order) - np.array(_places(order, ask), np.int64)
                fits = newer + new_before[rows[cached]] <= self._maxsize
            live[cached] = (until > times[rows[cached]]) & fits
        else:
            cached = np.zeros(rows.size, np.bool_)
        mine = ~cached
        at = origin[mine]
        live[mine] = ((times[at] + ttl > times[rows[mine]])
                      & (new_before[rows[mine]] - new_before[at] <= self._maxsize))
        if live.all():
            return asked, None
        limit = int(rows[np.argmin(live)])
        repeats = asked[:limit]
        return (repeats if repeats.any() else None), limit

    def remember(self, keys: Sequence[Hashable], times: Sequence[int | float]) -> None:
        """Remember ``keys``, each at its time: what :meth:`seen` for each in turn does.

        For keys :meth:`fresh` accepts (all new, from a time :meth:`takes`), at times
        that never go back. The keys remembered and their expiry afterwards are those of
        calling :meth:`seen` once per key: with every expiry in order, the keys kept are
        the newest ``maxsize`` of those not yet expired at the last time, whichever order
        the forgetting happens in. The work is a few C-level passes, not a Python call per key.
        """
        if not keys:
            return
        if len(keys) >= self._maxsize:
            # The newest maxsize keys are all new: those not yet expired are all that is
            # kept (their expiry times ascend), so there is nothing to pop one by one, and
            # the older keys need no entry at all.
            cut = len(keys) - self._maxsize
            untils = list(map(operator.add, times[cut:], itertools.repeat(self._ttl)))
            live = bisect.bisect_right(untils, times[-1])
            self._load(list(zip(keys[cut + live:], untils[live:], strict=True)),
                       ascending=True)
            return
        untils = list(map(operator.add, times, itertools.repeat(self._ttl)))
        entries = list(zip(keys, untils, strict=True))
        # No step back where they join: takes() held the first time to the last one's.
        self._expiry.update(entries)
        self._order.extend(entries)
        self._expire_many(times[-1])
        excess = len(self._expiry) - self._maxsize
        if excess > 0:
            self._forget_oldest(excess)

    def _forget_oldest(self, count: int) -> None:
        """Forget the ``count`` oldest live keys: :meth:`_evict` as many times, inline."""
        expiry, order = self._expiry, self._order
        if self._popped >= self._stale:  # every entry is live: the first count go
            self._drop_front(count)
            return
        popleft, before = order.popleft, len(order)
        while count > 0:
            key, until = popleft()
            if expiry.get(key) == until:
                del expiry[key]
                count -= 1
        self._popped += before - len(order)

    def _drop_front(self, count: int) -> None:
        """Forget the first ``count`` entries, all live, in C-level passes."""
        order = self._order
        deque(map(self._expiry.__delitem__,
                  map(operator.itemgetter(0), itertools.islice(order, count))), maxlen=0)
        if count * _REBUILD <= len(order):
            deque(itertools.starmap(order.popleft, itertools.repeat((), count)), maxlen=0)
        else:
            self._order = deque(itertools.islice(order, count, None))
        self._popped += count

    def _expire_many(self, now: int | float) -> None:
        """:meth:`_expire`, for many keys due at once: without a Python step per key if it can."""
        if self._ascending() and self._popped >= self._stale:
            self._drop_front(_due(self._order, now))  # the first entries, all live
        else:
            self._expire(now)

    def _expire(self, now: int | float) -> None:
        """Forget every key whose time is up (the front of the deque)."""
        expiry, order = self._expiry, self._order
        before = len(order)
        while order and order[0][1] <= now:
            key, until = order.popleft()
            if expiry.get(key) == until:  # not an entry left behind by a re-insert
                del expiry[key]
        self._popped += before - len(order)

    def _evict(self) -> None:
        """Forget the oldest live key."""
        expiry, order = self._expiry, self._order
        before = len(order)
        while order:
            key, until = order.popleft()
            if expiry.get(key) == until:
                del expiry[key]
                break
        self._popped += before - len(order)

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
        self._load(state, ascending=False)

    def _load(self, entries: list[tuple[Hashable, int | float]], *, ascending: bool) -> None:
        """Hold exactly ``entries``, each key once, in this order (``ascending``: by expiry)."""
        self._expiry = dict(entries)
        self._order = deque(entries)
        self._popped = self._stale = 0
        untils = [until for _, until in entries]
        self._descent = 0 if ascending else next(
            (j for j in range(len(untils) - 1, 0, -1) if untils[j - 1] > untils[j]), 0)

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


# Dropping the front of the order by copying the rest beats popping entry by entry once
# the entries dropped are more than 1/_REBUILD of those held.
_REBUILD = 16
_key = operator.itemgetter(0)
_until = operator.itemgetter(1)

_SCAN = 64
"""Newest entries of the order searched for a few keys before a map of it all is made."""


def _places(order: deque[tuple[Hashable, int | float]], keys: list[Hashable]) -> list[int]:
    """Each of ``keys``' index in ``order``, its last (every key is there).

    A duplicate mostly repeats a message just before it: the newest :data:`_SCAN` entries
    are searched first, and only where that does not find every key is a map of the whole
    order made (its size, ``max_dedupe_size``: about a millisecond at the default).
    """
    wanted = set(keys)
    if len(wanted) <= _SCAN:
        found: dict[Hashable, int] = {}
        last = len(order) - 1
        for back, (key, _) in enumerate(itertools.islice(reversed(order), _SCAN)):
            if key in wanted and key not in found:
                found[key] = last - back
                if len(found) == len(wanted):
                    return [found[key] for key in keys]
    place = dict(zip(map(_key, order), itertools.count()))
    return [place[key] for key in keys]


def _previous(keys: Sequence[Hashable]) -> npt.NDArray[np.int64]:
    """For each key, the index of the last key before it equal to it (-1: none)."""
    if len(set(keys)) == len(keys):
        return np.full(len(keys), -1, np.int64)
    last: dict[Hashable, int] = {}
    found = []
    for index, key in enumerate(keys):
        found.append(last.get(key, -1))
        last[key] = index
    return np.array(found, np.int64)


def _due(order: deque[tuple[Hashable, int | float]], now: int | float) -> int:
    """How many entries of ``order`` (expiry times ascending) are due at ``now``.

    Found by galloping from the front, then bisection: a deque's items cost more to reach
    the farther they are from its ends, and the entries due are usually near the front.
    """
    size, high = len(order), 1
    while high < size and order[high][1] <= now:
        high *= 2
    return bisect.bisect_right(order, now, lo=high // 2, hi=min(high, size), key=_until)
