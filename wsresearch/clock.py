"""Injected time: the only place wsresearch reads the system clock.

Every time-dependent component takes a ``clock=`` argument. Live runs use
:class:`SystemClock`; replays and tests use :class:`VirtualClock`, which only
moves when told to, so a backoff schedule, a staleness episode or a de-dup TTL
can be checked exactly without sleeping.

Timestamps are ``int`` nanoseconds. Durations passed to :meth:`Clock.sleep`
are ``float`` seconds, as in :mod:`asyncio`; :data:`NS_PER_S` converts between
the two, so the factor is written once for the whole package.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import re
import time
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, runtime_checkable

from ._warn import warn

__all__ = ["NS_PER_S", "Clock", "SystemClock", "Time", "VirtualClock", "given_ns", "iso_ns",
           "ns_since_epoch", "scaled_ns", "utc_text"]

NS_PER_S = 1_000_000_000
"""Nanoseconds per second: the one conversion between timestamps and durations."""


@runtime_checkable
class Clock(Protocol):
    """What every time-dependent component needs from a clock."""

    def monotonic_ns(self) -> int:
        """Return monotonic time in nanoseconds (for intervals and ordering)."""
        ...

    def time_ns(self) -> int:
        """Return wall-clock time in nanoseconds since the Unix epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic_ns`, :func:`time.time_ns`, :func:`asyncio.sleep`.

    Examples
    --------
    >>> clock = SystemClock()
    >>> clock.monotonic_ns() > 0
    True
    """

    __slots__ = ()

    # Bound straight to the builtins: these sit on the per-message hot path.
    monotonic_ns = staticmethod(time.monotonic_ns)
    time_ns = staticmethod(time.time_ns)

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running event loop."""
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


class VirtualClock:
    """A clock that moves only when :meth:`advance` or :meth:`set` is called.

    Coroutines waiting in :meth:`sleep` wake when the clock passes their
    deadline, in deadline order. Monotonic and wall time move together, so
    the wall clock keeps its offset from the monotonic one.

    Parameters
    ----------
    mono_ns
        Initial monotonic time in nanoseconds.
    wall_ns
        Initial wall time in nanoseconds since the epoch.

    Examples
    --------
    >>> clock = VirtualClock(mono_ns=0, wall_ns=1_700_000_000_000_000_000)
    >>> clock.advance(1.5)
    >>> clock.monotonic_ns()
    1500000000
    """

    def __init__(self, mono_ns: int = 0, wall_ns: int = 1_700_000_000 * NS_PER_S) -> None:
        self._mono = int(mono_ns)
        self._wall = int(wall_ns)
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic_ns(self) -> int:
        """Return the current virtual monotonic time in nanoseconds."""
        return self._mono

    def time_ns(self) -> int:
        """Return the current virtual wall time in nanoseconds."""
        return self._wall

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` and wake sleepers now due.

        Raises
        ------
        ValueError
            If ``seconds`` is negative: time never goes back.
        """
        if seconds < 0:
            raise ValueError(f"cannot advance a clock by a negative duration ({seconds} s)")
        step = round(seconds * NS_PER_S)
        self._mono += step
        self._wall += step
        self._wake()

    def set(self, mono_ns: int, wall_ns: int | None = None) -> None:
        """Jump to ``mono_ns`` (and ``wall_ns`` when given), waking sleepers now due.

        Replay uses this to follow recorded timestamps exactly.

        Raises
        ------
        ValueError
            If ``mono_ns`` is earlier than the current monotonic time.
        """
        if mono_ns < self._mono:
            raise ValueError(
                f"monotonic time cannot go back (now {self._mono} ns, asked {mono_ns} ns)"
            )
        self._wall = self._wall + (mono_ns - self._mono) if wall_ns is None else int(wall_ns)
        self._mono = int(mono_ns)
        if self._sleepers:
            self._wake()

    async def sleep(self, seconds: float) -> None:
        """Wait until the virtual clock has advanced ``seconds`` from now."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self._mono + round(seconds * NS_PER_S)
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        """Number of coroutines waiting in :meth:`sleep` (cancelled ones excluded)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        """Seconds until the earliest pending sleeper wakes, or ``None`` if none waits."""
        self._sleepers = [s for s in self._sleepers if not s[2].done()]
        heapq.heapify(self._sleepers)
        if not self._sleepers:
            return None
        return max(0.0, (self._sleepers[0][0] - self._mono) / NS_PER_S)

    def _wake(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    def __repr__(self) -> str:
        return f"VirtualClock(mono_ns={self._mono}, wall_ns={self._wall})"


def scaled_ns(value: Any, factor: int) -> int:
    """``value`` (a number or numeric text) times ``factor``, exactly, as an int.

    How timestamps in other units become ns without a float's rounding: milliseconds
    (``factor=1_000_000``), or seconds with a fraction (``NS_PER_S``).

    Examples
    --------
    >>> scaled_ns("1618678123.481570", NS_PER_S)
    1618678123481570000
    """
    if isinstance(value, bool):
        raise ValueError("a timestamp cannot be a boolean")
    if isinstance(value, int):
        return value * factor
    try:
        exact = Decimal(str(value)) * factor
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not exact.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return int(exact.to_integral_value())


def ns_from_ms(value: Any) -> int:
    """Milliseconds since the epoch (a number or numeric text) as ns, exactly.

    The validator of the adapters' ``NsFromMs`` fields, named so that a
    :class:`~wsresearch.layout.Layout`'s ``ms`` placeholder can recognise it.

    Examples
    --------
    >>> ns_from_ms(1723161255208)
    1723161255208000000
    """
    return scaled_ns(value, 1_000_000)


_ISO = re.compile(
    r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9})\d*)?(Z|[+-]\d{2}:?\d{2})?$"
)


def iso_ns(value: Any) -> int:
    """ISO 8601 text (up to 9 fractional digits; no zone means UTC) as ns since the epoch.

    Exact to the digit given: Python's own parser stops at microseconds.

    Examples
    --------
    >>> iso_ns("2021-04-17T12:00:00.123456789Z")
    1618660800123456789
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 timestamp, got {value!r}")
    match = _ISO.match(value)
    if match is None:
        raise ValueError(f"not an ISO 8601 UTC timestamp: {value!r}")
    whole, fraction, zone = match.groups()
    moment = dt.datetime.fromisoformat(whole + (zone if zone not in ("Z", None) else "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    seconds = int(moment.timestamp())
    return seconds * NS_PER_S + int((fraction or "").ljust(9, "0")[:9] or 0)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


Time = dt.datetime | dt.date | int
"""A time: a datetime (naive means UTC), a date (its midnight, UTC) or ns since the epoch."""


def ns_since_epoch(time: Time) -> int:
    """A :data:`Time` as ns since the epoch, exactly.

    Raises
    ------
    ValueError
        For anything else (text, a float, a bool: an int to Python, never a time).

    Examples
    --------
    >>> ns_since_epoch(dt.date(2024, 8, 8)), ns_since_epoch(dt.datetime(1970, 1, 1, 0, 0, 1))
    (1723075200000000000, 1000000000)
    """
    if isinstance(time, int) and not isinstance(time, bool):
        return time
    if isinstance(time, dt.datetime):
        delta = (time if time.tzinfo else time.replace(tzinfo=dt.UTC)) - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000
    if isinstance(time, dt.date):
        return ns_since_epoch(dt.datetime(time.year, time.month, time.day))
    raise ValueError(f"not a time (a datetime, a date or ns since the epoch): {time!r}")


_PLAUSIBLE_NS = 10**17
"""1973-03-03 in ns: a positive int below it is seconds, ms or us far more often than ns."""

_UNITS = ((10**11, "seconds", "10**9"), (10**14, "milliseconds", "10**6"),
          (_PLAUSIBLE_NS, "microseconds", "10**3"))


def given_ns(time: Time, name: str) -> int:
    """:func:`ns_since_epoch` of a time a caller gave as ``name``, told of if it looks wrong.

    An int is ns since the epoch, so seconds given for ns (``start=1723161260``) read as
    a time in January 1970, and a filter or a grid of market data then silently finds
    nothing, or everything. A positive int before 1973 is warned of in a ``UserWarning``
    naming the unit it looks like; it is still read as ns.

    Examples
    --------
    >>> given_ns(1_723_161_260_000_000_000, "start")
    1723161260000000000
    """
    ns = ns_since_epoch(time)
    if isinstance(time, int) and 0 < time < _PLAUSIBLE_NS:
        unit, factor = next((unit, factor) for bound, unit, factor in _UNITS if time < bound)
        warn(f"{name}={time} is read as ns since the epoch ({utc_text(ns, 3)}); it looks "
             f"like {unit} (times {factor} for ns)")
    return ns


def utc_text(ns: int, digits: int = 9) -> str:
    """A time in ns since the epoch as UTC text for people, to ``digits`` fractional digits.

    Examples
    --------
    >>> utc_text(1723161255208123456, 3)
    '2024-08-08 23:54:15.208 UTC'
    """
    moment = _EPOCH + dt.timedelta(seconds=ns // NS_PER_S)
    fraction = f"{ns % NS_PER_S:09d}"[:digits]
    return f"{moment:%Y-%m-%d %H:%M:%S}{'.' + fraction if digits else ''} UTC"
