"""Per-stream staleness, on the injected clock.

"Any message means healthy" hides the failure researchers care about: the
ticker still flows while the trade stream has silently stopped. So health is
tracked per stream, each with its own expectations (:class:`StreamConfig`).
A stream is *stale* once it has been silent longer than its
``stale_threshold``, counted from its last message, or from the monitor's
start if it never had one. Streams where silence is normal (order updates
when no orders are open) set ``allow_silence`` and are never reported.

:meth:`HealthMonitor.check` evaluates every stream once, *now*. The timer
started by :meth:`HealthMonitor.start` calls it every ``check_interval``;
replays and tests call it directly at the instants they choose. A stream is
reported once per episode: ``on_unhealthy`` when it goes stale, and
``on_recovered`` as soon as a message arrives again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from ._callbacks import report
from .clock import NS_PER_S, Clock, SystemClock
from .config import MAX_CHECK_INTERVAL, MIN_CHECK_INTERVAL, StreamConfig
from .errors import UnknownChannelError

__all__ = ["HealthMonitor", "HealthTransition", "Log", "StreamConfig", "StreamStatus",
           "stream_label"]

log = logging.getLogger(__name__)

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]
"""A logger, or an adapter of one that adds to its messages (a replay's)."""
_MAX_TRANSITIONS = 100_000


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """One stream's health at the last evaluation.

    Attributes
    ----------
    healthy
        Not stale (always ``True`` for ``allow_silence`` streams).
    last_message_ns
        Monotonic time of the last message, or ``None`` if none yet.
    silent_ok
        Silent beyond its threshold, but allowed to be.
    """

    healthy: bool
    last_message_ns: int | None
    silent_ok: bool


def stream_label(status: StreamStatus | None) -> str:
    """How a stream's health is shown, in one word every view uses.

    ``unmonitored`` (no :class:`StreamConfig`, so never judged), ``stale`` (silent past
    its threshold), ``silent (ok)`` (silent, and allowed to be), ``waiting`` (no
    message yet, not yet stale) or ``healthy``.

    Examples
    --------
    >>> stream_label(StreamStatus(healthy=False, last_message_ns=5, silent_ok=False))
    'stale'
    >>> stream_label(None)
    'unmonitored'
    """
    if status is None:
        return "unmonitored"
    if not status.healthy:
        return "stale"
    if status.silent_ok:
        return "silent (ok)"
    if status.last_message_ns is None:
        return "waiting"
    return "healthy"


class HealthTransition(NamedTuple):
    """A change of one stream's health at monotonic time ``mono_ns``."""

    mono_ns: int
    stream: str
    healthy: bool


class HealthMonitor:
    """Track per-stream staleness and report each unhealthy episode once.

    Parameters
    ----------
    streams
        Stream name to its expectations.
    on_unhealthy
        Called with ``(stream, last_message_ns or None)`` when a stream goes stale.
    on_recovered
        Called with ``stream`` when a stale stream receives a message.
    check_interval
        Seconds between evaluations once :meth:`start` is called.
    clock
        Time source.

    Examples
    --------
    >>> from wsresearch.clock import VirtualClock
    >>> clock, alerts = VirtualClock(), []
    >>> monitor = HealthMonitor(
    ...     {"trade": StreamConfig(expected_interval=1.0, stale_threshold=5.0)},
    ...     on_unhealthy=lambda s, last: alerts.append((s, last)), clock=clock)
    >>> monitor.record_message("trade")
    >>> clock.advance(6.0)
    >>> monitor.check()
    >>> alerts
    [('trade', 0)]
    """

    def __init__(
        self,
        streams: Mapping[str, StreamConfig],
        on_unhealthy: Callable[[str, int | None], None] | None = None,
        on_recovered: Callable[[str], None] | None = None,
        check_interval: float = 5.0,
        clock: Clock | None = None,
        *,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if not MIN_CHECK_INTERVAL <= check_interval <= MAX_CHECK_INTERVAL:  # NaN fails too
            raise ValueError(f"check_interval must be between {MIN_CHECK_INTERVAL:g} and "
                             f"{MAX_CHECK_INTERVAL:g} seconds, got {check_interval}")
        self._clock = clock or SystemClock()
        self._configs = {
            name: cfg if isinstance(cfg, StreamConfig) else StreamConfig.model_validate(cfg)
            for name, cfg in streams.items()
        }
        self._thresholds = {
            name: round(cfg.stale_threshold * NS_PER_S) for name, cfg in self._configs.items()
        }
        self._on_unhealthy = on_unhealthy
        self.log: Log = log
        """Where it says a stream went stale (a replay's say where in the recording)."""
        self._on_recovered = on_recovered
        self._on_error = on_error
        self.check_interval = check_interval
        self._since = self._clock.monotonic_ns()
        self._last: dict[str, int] = {}
        self._stale: set[str] = set()
        self._silent: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.transitions: deque[HealthTransition] = deque(maxlen=_MAX_TRANSITIONS)
        """Every health change, in order (the newest 100,000: a feed runs for days)."""

    @property
    def streams(self) -> dict[str, StreamConfig]:
        """The monitored streams and their configs."""
        return dict(self._configs)

    @property
    def running(self) -> bool:
        """Whether the periodic check is running."""
        return self._task is not None and not self._task.done()

    def record_message(self, stream: str, now_ns: int | None = None) -> None:
        """Note a message on ``stream`` (at ``now_ns``, default the clock's now).

        A stale stream recovers here, at once, rather than at the next check.
        Unmonitored stream names are remembered but never judged.
        """
        now = self._clock.monotonic_ns() if now_ns is None else now_ns
        self._last[stream] = now
        if self._stale and stream in self._stale:
            self._stale.discard(stream)
            self.transitions.append(HealthTransition(now, stream, True))
            self._call(self._on_recovered, stream)
        if self._silent:
            self._silent.discard(stream)

    def record_batch(self, first: Mapping[str, int], last: Mapping[str, int]) -> None:
        """Note a batch of messages: each stream's ``first`` and ``last`` message times.

        The same as :meth:`record_message` for every message of the batch, in
        order: a stale stream recovers at its first message of the batch.
        """
        stale = self._stale
        if stale:
            for stream, now in first.items():
                if stream in stale:
                    stale.discard(stream)
                    self.transitions.append(HealthTransition(now, stream, True))
                    self._call(self._on_recovered, stream)
        self._last.update(last)
        if self._silent:
            self._silent.difference_update(last)

    def due(self) -> int | None:
        """When :meth:`check` would next find a change, if no message came first.

        The earliest monotonic time at which a stream goes stale (or an
        ``allow_silence`` stream falls silent); ``None`` when no stream can change
        without a message. A replay runs only the checks that can change something: between two
        recorded events, the first check and then each check at or after this time.
        """
        times = [(self._since if (last := self._last.get(name)) is None else last) + limit + 1
                 for name, limit in self._thresholds.items()
                 if name not in self._stale and name not in self._silent]
        return min(times) if times else None

    def limits(self) -> dict[str, tuple[int, int]]:
        """Each stream that can go stale: how long it has been silent, and may be, in ns.

        ``(since, threshold)``: the stream's last message (or, if it has none, the start
        of the count, :meth:`reset`) and its stale threshold. A :meth:`check` at ``now``
        makes no stream stale while ``now - since <= threshold`` for each. A stream
        allowed to fall silent (``allow_silence``) never goes stale, and one stale already
        does not go stale again: neither is listed. For a caller that judges many checks
        at once (a replay, over the check points between the messages of a quiet feed).
        """
        since, configs, stale = self._since, self._configs, self._stale
        return {name: (self._last.get(name, since), limit)
                for name, limit in self._thresholds.items()
                if not configs[name].allow_silence and name not in stale}

    def last_seen(self, stream: str) -> int | None:
        """Monotonic time of ``stream``'s last message since the last reset, or ``None``."""
        return self._last.get(stream)

    def reset(self) -> None:
        """Restart every silence count from now, as if freshly started; keep transitions."""
        self._since = self._clock.monotonic_ns()
        self._last.clear()
        self._silent.clear()

    def check(self) -> None:
        """Evaluate every stream now and report streams that just went stale."""
        now = self._clock.monotonic_ns()
        for name, threshold in self._thresholds.items():
            last = self._last.get(name)
            silent_for = now - (self._since if last is None else last)
            if silent_for <= threshold:
                self._silent.discard(name)
                continue
            if self._configs[name].allow_silence:
                self._silent.add(name)
                continue
            if name not in self._stale:
                self._stale.add(name)
                self.transitions.append(HealthTransition(now, name, False))
                self.log.warning(
                    "stream %r stale: silent for %.1f s (threshold %.1f s)",
                    name, silent_for / NS_PER_S, threshold / NS_PER_S,
                )
                self._call(self._on_unhealthy, name, last)

    def is_stream_healthy(self, stream: str) -> bool:
        """Whether ``stream`` is not stale as of the last :meth:`check`.

        Raises
        ------
        UnknownChannelError
            If ``stream`` is not monitored (a :class:`KeyError`, as for an unknown
            channel).
        """
        if stream not in self._configs:
            raise UnknownChannelError(
                f"unknown stream {stream!r}; monitored: {sorted(self._configs)}")
        return stream not in self._stale

    def is_healthy(self) -> bool:
        """Whether no monitored stream is stale."""
        return not self._stale

    def status(self) -> dict[str, StreamStatus]:
        """Each monitored stream's :class:`StreamStatus` as of the last check."""
        return {
            name: StreamStatus(
                healthy=name not in self._stale,
                last_message_ns=self._last.get(name),
                silent_ok=name in self._silent,
            )
            for name in self._configs
        }

    def start(self) -> None:
        """Run :meth:`check` every ``check_interval`` on the running loop."""
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="wsresearch-health"
        )

    async def stop(self) -> None:
        """Stop the periodic check and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self.check_interval)
            try:
                self.check()
            except Exception as exc:
                self._report(exc)

    def _call(self, fn: Callable[..., None] | None, *args: object) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception as exc:  # a user callback must not stop health tracking
            self._report(exc)

    def _report(self, exc: BaseException) -> None:
        report(exc, self._on_error, log, "health callback")

    def __repr__(self) -> str:
        stale = sorted(self._stale)
        return f"HealthMonitor(streams={sorted(self._configs)}, stale={stale})"
