"""Every setting, in one module: what a feed connects with, queues, judges and backs off by.

The settings are frozen pydantic models with ``extra="forbid"`` (a misspelt knob
is an error, not a silent default) and finite numbers only. They describe; they do
nothing: the modules that act on them (:mod:`~wsresearch.connection`,
:mod:`~wsresearch.queue`, :mod:`~wsresearch.health`, :mod:`~wsresearch.backoff`)
import them from here, so a spec, a recording's manifest or a test can hold a
setting without importing any I/O.

Durations are ``float`` seconds; the URL is not a setting but
:attr:`FeedSpec.url <wsresearch.spec.FeedSpec.url>`, kept in one place.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

from .errors import InvalidURLError
from .redaction import redact_url

__all__ = [
    "DEFAULT_BACKOFF",
    "MAX_CHECK_INTERVAL",
    "MIN_CHECK_INTERVAL",
    "RATE_LIMIT_BACKOFF",
    "BackoffConfig",
    "CloseCategory",
    "ConnectionConfig",
    "HeartbeatConfig",
    "OverflowPolicy",
    "QueueConfig",
    "ReconnectConfig",
    "StreamConfig",
    "validate_ws_url",
]

_WEEK = 7 * 86_400.0
MIN_CHECK_INTERVAL = 0.001
"""The shortest ``check_interval``: a check costs microseconds, a thousand a second is plenty."""
MAX_CHECK_INTERVAL = 3600.0
"""The longest ``check_interval``."""


class CloseCategory(StrEnum):
    """How a close code is handled by the reconnect policy."""

    AUTH_FAILURE = "AUTH_FAILURE"
    RATE_LIMITED = "RATE_LIMITED"
    NORMAL = "NORMAL"
    UNKNOWN = "UNKNOWN"


def validate_ws_url(url: str) -> str:
    """Return ``url`` if it is a valid ``ws://`` or ``wss://`` URL.

    Raises
    ------
    InvalidURLError
        Naming what is wrong with it (credentials are not echoed).
    """
    if not isinstance(url, str) or not url:
        raise InvalidURLError(f"a WebSocket URL must be a non-empty string, got {url!r}")
    try:
        parse_uri(url)
    except InvalidURI:
        scheme = url.split(":", 1)[0] if ":" in url else ""
        hint = " (expected ws:// or wss://)" if scheme not in ("ws", "wss") else ""
        raise InvalidURLError(f"invalid WebSocket URL{hint}: {redact_url(url)!r}") from None
    return url


class BackoffConfig(BaseModel):
    """Exponential backoff with jitter; delays in seconds.

    Parameters
    ----------
    initial_delay
        Delay before the first retry.
    max_delay
        Upper bound on any delay, jitter included.
    multiplier
        Growth factor per attempt (``>= 1``).
    jitter
        Relative spread in ``[0, 1]``: ``0.1`` gives delays within ±10 %.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    initial_delay: float = Field(1.0, gt=0, le=86_400)
    max_delay: float = Field(60.0, gt=0, le=86_400)
    multiplier: float = Field(2.0, ge=1, le=1_000)
    jitter: float = Field(0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _check_bounds(self) -> BackoffConfig:
        if self.max_delay < self.initial_delay:
            raise ValueError(
                f"max_delay ({self.max_delay}) must be >= initial_delay ({self.initial_delay})"
            )
        return self


DEFAULT_BACKOFF = BackoffConfig()
"""Backoff for ordinary drops: 1 s doubling to 60 s, ±10 %."""

RATE_LIMIT_BACKOFF = BackoffConfig(initial_delay=5.0, max_delay=300.0, multiplier=3.0, jitter=0.2)
"""Backoff after a rate-limit close (4429, 1013): starts at 5 s, triples to 5 min, ±20 %."""


class ReconnectConfig(BaseModel):
    """When and how fast to reconnect.

    Parameters
    ----------
    enabled
        Reconnect after a close at all.
    max_attempts
        Consecutive failed attempts before giving up; ``None`` never gives up.
    max_auth_failure_attempts
        Auth-failure closes in a row before giving up.
    backoff
        Schedule after ``NORMAL`` and ``UNKNOWN`` closes and failed opens.
    rate_limit_backoff
        Schedule after ``RATE_LIMITED`` closes, with its own attempt count.
    stable_after
        Seconds a connection must stay open to count as a success: only then do
        the attempt counts (and the auth-failure count) start again from zero, and
        only then does a requested reconnect (a resync) go without a backoff. A
        connection that delivers a welcome and closes, or that is resynced again
        and again, keeps walking up the schedule and spends the budget.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    enabled: bool = True
    max_attempts: int | None = Field(10, ge=1)
    max_auth_failure_attempts: int = Field(3, ge=1)
    backoff: BackoffConfig = DEFAULT_BACKOFF
    rate_limit_backoff: BackoffConfig = RATE_LIMIT_BACKOFF
    stable_after: float = Field(10.0, ge=0, le=86_400)


class HeartbeatConfig(BaseModel):
    """Liveness checks; durations in seconds.

    Parameters
    ----------
    enabled
        Send pings at all.
    interval
        Seconds between pings.
    timeout
        Seconds to wait for the pong before declaring the peer gone.
    ping_message
        An app-level ping sent alongside each WebSocket ping, for exchanges
        that want one: a string, a JSON-able dict, or a callable returning one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True,
                              allow_inf_nan=False)

    enabled: bool = True
    interval: float = Field(20.0, gt=0, le=3600)
    timeout: float = Field(10.0, gt=0, le=3600)
    ping_message: str | dict[str, Any] | Callable[[], str | dict[str, Any]] | None = None


class ConnectionConfig(BaseModel):
    """How to open and keep one WebSocket connection (the URL is the spec's).

    The URL is not part of it: it lives in one place, :attr:`FeedSpec.url
    <wsresearch.spec.FeedSpec.url>`, and :class:`~wsresearch.connection.WebSocketManager`
    takes it as its first argument.

    Parameters
    ----------
    subprotocols
        Subprotocols to offer.
    headers
        Extra HTTP headers for the handshake (hidden from ``repr``: they often
        carry keys).
    reconnect
        Reconnect policy.
    heartbeat
        Ping policy.
    max_message_size
        Largest inbound message in bytes; larger ones close the connection
        with 1009. ``None`` for no limit.
    open_timeout
        Seconds allowed for the TCP, TLS and HTTP handshake.
    close_timeout
        Seconds allowed for the closing handshake before the socket is dropped.
    close_codes
        Exchange-specific close codes and their categories.
    verify_tls
        Verify a ``wss://`` server's certificate and name (the default). Turning it
        off lets anyone on the path read and alter the feed; it is allowed only
        explicitly, and warns.
    """

    # Inputs are hidden from validation errors: URLs and headers may carry keys.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True,
                              allow_inf_nan=False)

    subprotocols: tuple[str, ...] = ()
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    reconnect: ReconnectConfig = ReconnectConfig()
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    max_message_size: int | None = Field(16 * 1024 * 1024, ge=1)
    open_timeout: float = Field(10.0, gt=0, le=3600)
    close_timeout: float = Field(5.0, gt=0, le=3600)
    close_codes: dict[int, CloseCategory] = Field(default_factory=dict)
    verify_tls: bool = True

    @model_validator(mode="before")
    @classmethod
    def _url_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "url" in data:
            warnings.warn("ConnectionConfig(url=) is ignored: the URL is FeedSpec.url, and "
                          "WebSocketManager(url, config) takes it first", DeprecationWarning,
                          stacklevel=2)
            data = {k: v for k, v in data.items() if k != "url"}
        return data


class OverflowPolicy(StrEnum):
    """What a full :class:`MessageQueue` does with one more message."""

    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"
    BLOCK = "block"


class QueueConfig(BaseModel):
    """Queue settings carried by a :class:`~wsresearch.spec.FeedSpec`.

    Parameters
    ----------
    max_size
        Capacity in messages.
    overflow
        Policy when full.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    max_size: int = Field(1000, ge=1)
    overflow: OverflowPolicy = OverflowPolicy.DROP_OLDEST


class StreamConfig(BaseModel):
    """What one stream is expected to do; durations in seconds.

    Parameters
    ----------
    expected_interval
        Typical gap between messages (used for display and rate baselines).
    stale_threshold
        Silence longer than this makes the stream stale; must be at least
        ``expected_interval``.
    allow_silence
        Silence is normal for this stream: never report it stale.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    expected_interval: float = Field(gt=0, le=_WEEK)
    stale_threshold: float = Field(gt=0, le=_WEEK)
    allow_silence: bool = False

    @model_validator(mode="after")
    def _check_threshold(self) -> StreamConfig:
        if self.stale_threshold < self.expected_interval:
            raise ValueError(
                f"stale_threshold ({self.stale_threshold}) must be >= "
                f"expected_interval ({self.expected_interval})"
            )
        return self
