"""What to do after a connection closes: the close-code vocabulary and the reconnect decision.

Pure: no sockets, no event loop, no clock. :func:`classify_close_code` maps a close
code to the :class:`~wsresearch.config.CloseCategory` that picks the policy, and
:func:`describe_close` names a close for people. :class:`ReconnectPolicy` holds the
attempt counts and turns each close, or each failed open, into a decision:
:class:`Retry` after a delay, or :class:`Halt`. The connection
(:mod:`wsresearch.connection`) measures how long a connection stayed open on its
clock, asks, and does what it is told; tests check the rules as tables, without a
server, and a replay or a simulation can ask the same questions offline.

The rules, in the order they apply to one close:

1. A close that ended the session on purpose (``disconnect()``) halts, with no error.
2. A connection that stayed open ``stable_after`` seconds was a success: the attempt
   counts start again from zero.
3. ``AUTH_FAILURE`` adds one to the auth-failure count, and halts with
   :class:`~wsresearch.errors.WebSocketAuthError` at ``max_auth_failure_attempts``;
   any other close of a stable connection sets that count back to zero.
4. With ``enabled=False`` every close halts with :class:`~wsresearch.errors.WebSocketError`.
5. A requested reconnect (a resync) after a stable connection goes at once, as no
   failure.
6. Anything else is a failure: the attempt count grows, and past ``max_attempts``
   the policy halts with :class:`~wsresearch.errors.MaxReconnectsExceededError`.
7. The delay is :func:`~wsresearch.backoff.backoff_delay` of the attempt on
   ``backoff``, or, for ``RATE_LIMITED``, of a rate-limit attempt count of its own
   on ``rate_limit_backoff``.

A failed open (refused, DNS, TLS, timeout, an HTTP answer instead of the upgrade) is a
connection that never was stable: HTTP 401, 403 and 429 count as 4401, 4403 and 4429,
anything else as 1006.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .backoff import backoff_delay
from .config import CloseCategory, ReconnectConfig
from .errors import MaxReconnectsExceededError, WebSocketAuthError, WebSocketError

__all__ = [
    "CLIENT_CLOSE_REASONS",
    "END_OF_SESSION",
    "PEER_GONE_REASONS",
    "CloseCategory",
    "Halt",
    "ReconnectPolicy",
    "Request",
    "Retry",
    "classify_close_code",
    "describe_close",
    "ends_session",
]

# The code of a connection that ended without a closing handshake (a reset, a dead
# peer); also what this side records when it drops a peer that stopped answering.
_ABNORMAL = 1006

END_OF_SESSION = "client disconnect"
"""The reason of the close that ends a session (:meth:`WebSocketManager.disconnect`)."""


def ends_session(reason: str | None) -> bool:
    """Whether a close of this ``reason`` is the one that ended its session.

    >>> ends_session("client disconnect"), ends_session("no pong"), ends_session(None)
    (True, False, False)
    """
    return (reason or "").startswith(END_OF_SESSION)


PEER_GONE_REASONS: tuple[str, ...] = ("no pong", "peer stopped reading")
"""How the reasons begin of the closes this side makes for a peer gone silent: one that
stopped answering pings, or stopped reading what this side sends."""

CLIENT_CLOSE_REASONS: tuple[str, ...] = (
    END_OF_SESSION, *PEER_GONE_REASONS, "reconnect requested", "resync",
)
"""How the reasons of the closes this side makes begin: the end of a session, a dead or
stalled peer dropped by the heartbeat, a requested reconnect or resync. Recordings store
who closed each connection since format version 2; version-1 recordings are read with
this rule instead (:func:`wsresearch.recording.format.closed_by_from_reason`)."""

_CATEGORIES: dict[int, CloseCategory] = {
    4401: CloseCategory.AUTH_FAILURE,
    4403: CloseCategory.AUTH_FAILURE,
    1008: CloseCategory.AUTH_FAILURE,  # policy violation: what servers send for bad keys
    4429: CloseCategory.RATE_LIMITED,
    1013: CloseCategory.RATE_LIMITED,  # try again later
    1000: CloseCategory.NORMAL,
    1001: CloseCategory.NORMAL,
    1006: CloseCategory.NORMAL,  # abnormal closure: the network blip case
}


def classify_close_code(
    code: int | None, overrides: Mapping[int, CloseCategory] | None = None
) -> CloseCategory:
    """Map a WebSocket close code to the category that decides the reconnect policy.

    Parameters
    ----------
    code
        The close code; ``None`` (no close frame at all) counts as 1006.
    overrides
        Exchange-specific codes, consulted first.

    Returns
    -------
    CloseCategory
        ``AUTH_FAILURE`` for 4401, 4403, 1008; ``RATE_LIMITED`` for 4429, 1013;
        ``NORMAL`` for 1000, 1001, 1006; ``UNKNOWN`` otherwise.

    Examples
    --------
    >>> classify_close_code(4429).name
    'RATE_LIMITED'
    >>> classify_close_code(4000, {4000: CloseCategory.AUTH_FAILURE}).name
    'AUTH_FAILURE'
    """
    if code is None:
        code = _ABNORMAL
    if overrides and code in overrides:
        return CloseCategory(overrides[code])
    return _CATEGORIES.get(code, CloseCategory.UNKNOWN)


_CLOSE_NAMES: dict[int, str] = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status code",
    1006: "abnormal closure",
    1007: "invalid data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failure",
    # What the manager records for a refused handshake (HTTP 401, 403, 429).
    4401: "unauthorized",
    4403: "forbidden",
    4429: "rate limited",
}


def describe_close(
    code: int | None, category: CloseCategory | str | None = None, reason: str | None = None
) -> str:
    """A close for people: the code named, its retry category, and the peer's reason.

    1006 is the code of a connection that ended without a closing handshake
    (a reset, a dead peer): it is named *abnormal closure* even though its
    category, ``NORMAL``, retries it on the normal backoff like any network blip.

    Examples
    --------
    >>> describe_close(1006, CloseCategory.NORMAL)
    'abnormal closure (1006), NORMAL'
    >>> describe_close(4000)
    'application code (4000)'
    >>> describe_close(None)
    'no close code'
    >>> describe_close(4429, "RATE_LIMITED", "slow down")
    'rate limited (4429), RATE_LIMITED: slow down'
    """
    if code is None:
        text = "no close code"
    else:
        name = _CLOSE_NAMES.get(code)
        if name is None:
            name = "application code" if 3000 <= code <= 4999 else "unknown code"
        text = f"{name} ({code})"
    if category is not None:
        known = category in CloseCategory.__members__.values()
        text += f", {CloseCategory(category).name if known else category}"
    return f"{text}: {reason}" if reason else text


Request = Literal["disconnect", "reconnect"]
"""Why this side closed a connection: to end the session (``"disconnect"``), or to open a
fresh one at once (``"reconnect"``: a resync after a sequence gap)."""

# A refused handshake counts as the close a server would have sent for the same refusal.
_HANDSHAKE_CODES: dict[int, int] = {401: 4401, 403: 4403, 429: 4429}


@dataclass(frozen=True, slots=True)
class Retry:
    """Open a new connection after ``delay`` seconds.

    Parameters
    ----------
    delay
        Seconds to wait first, on the caller's clock.
    attempt
        The consecutive failure this retry follows (1, 2, ...), as ``on_reconnect``
        reports it. 0 for a requested reconnect after a stable connection: that is
        no failure, so it goes at once (``delay`` 0) and is not announced as a retry.
    category
        The category of the close, which chose the schedule.
    """

    delay: float
    attempt: int
    category: CloseCategory


@dataclass(frozen=True, slots=True)
class Halt:
    """Stop reconnecting.

    Parameters
    ----------
    error
        Why: what ``connect()`` and ``wait_stopped()`` then raise. ``None`` when the
        session was ended on purpose (``disconnect()``), which is no error.
    """

    error: WebSocketError | None


class ReconnectPolicy:
    """The reconnect decision for one logical connection, and the counts it rests on.

    It reads no clock and opens no socket: the caller says how a connection ended
    and how long it stayed open, and gets back a :class:`Retry` or a :class:`Halt`
    (the rules are listed in this module's docstring). One policy serves a
    connection for its whole life, as the counts must outlive each socket.

    Parameters
    ----------
    config
        The rules' settings (:class:`~wsresearch.config.ReconnectConfig`; its
        defaults when omitted).
    close_codes
        Exchange-specific close codes and their categories, consulted first
        (``ConnectionConfig.close_codes``).
    rng
        Source of backoff jitter; seed it for a reproducible schedule.

    Examples
    --------
    A server that accepts and closes at once walks up the schedule; a connection
    that stayed open ``stable_after`` seconds (10 by default) starts it again:

    >>> from wsresearch.config import BackoffConfig
    >>> policy = ReconnectPolicy(ReconnectConfig(backoff=BackoffConfig(jitter=0.0)))
    >>> policy.after_close(1000, open_for=0.2)
    Retry(delay=1.0, attempt=1, category=<CloseCategory.NORMAL: 'NORMAL'>)
    >>> policy.after_failed_open("connection refused").delay
    2.0
    >>> policy.after_close(1006, open_for=3600.0).attempt
    1
    >>> policy.after_close(1000, open_for=60.0, requested="reconnect")
    Retry(delay=0.0, attempt=0, category=<CloseCategory.NORMAL: 'NORMAL'>)
    >>> policy.after_close(1000, open_for=60.0, requested="disconnect")
    Halt(error=None)
    """

    def __init__(
        self,
        config: ReconnectConfig | None = None,
        close_codes: Mapping[int, CloseCategory] | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = ReconnectConfig() if config is None else config
        """The rules' settings."""
        self.close_codes: Mapping[int, CloseCategory] = dict(close_codes or {})
        """Exchange-specific close codes, consulted before the standard table."""
        self._rng = rng
        self._attempt = 0
        self._rate_attempt = 0
        self._auth_failures = 0

    @property
    def attempt(self) -> int:
        """Consecutive failures: failed opens and connections closed before ``stable_after``."""
        return self._attempt

    @property
    def rate_attempt(self) -> int:
        """Rate-limit closes among those failures: the step on ``rate_limit_backoff``."""
        return self._rate_attempt

    @property
    def auth_failures(self) -> int:
        """Auth-failure closes in a row, with no stable connection closing otherwise between."""
        return self._auth_failures

    def start_session(self) -> None:
        """Begin a new session: a ``connect()`` after a halt or a ``disconnect()``.

        The auth-failure count starts again from zero, since the key may have been
        fixed meanwhile. The attempt counts carry on: a program that calls
        ``connect()`` again after failures keeps backing off rather than starting
        the schedule afresh (after a halt on ``max_attempts`` that leaves one try,
        until a stable connection resets the counts).
        """
        self._auth_failures = 0

    def after_close(
        self,
        code: int | None,
        reason: str = "",
        *,
        open_for: float,
        requested: Request | None = None,
    ) -> Retry | Halt:
        """Decide what follows a connection that opened and then closed.

        Parameters
        ----------
        code
            Its close code; ``None`` when no close frame was exchanged (as 1006).
        reason
            Its close reason, quoted in the error of a halt.
        open_for
            Seconds it stayed open, on the caller's clock: ``stable_after`` or
            more made it a success.
        requested
            ``"disconnect"`` when this side ended the session, ``"reconnect"``
            when this side closed it to open a fresh one; ``None`` when the peer
            or the network closed it, or this side dropped a dead peer.

        Returns
        -------
        Retry or Halt
            What to do next; the counts are updated to match.

        Examples
        --------
        >>> policy = ReconnectPolicy(ReconnectConfig(max_auth_failure_attempts=2))
        >>> policy.after_close(4401, "bad key", open_for=0.1).category.name
        'AUTH_FAILURE'
        >>> halt = policy.after_close(4401, "bad key", open_for=0.1)
        >>> print(halt.error)
        authentication rejected 2 times in a row (close 4401: bad key); not retrying
        """
        stable = open_for >= self.config.stable_after
        return self._decide(code, reason, stable=stable, requested=requested)

    def after_failed_open(
        self, reason: str = "", *, status: int | None = None, requested: Request | None = None
    ) -> Retry | Halt:
        """Decide what follows an open that failed: refused, DNS, TLS, timeout, HTTP.

        Such a connection never was stable. A handshake answered with HTTP 401, 403
        or 429 counts as a close with 4401, 4403 or 4429 (an auth failure, a rate
        limit); any other failure as 1006.

        Parameters
        ----------
        reason
            What went wrong, quoted in the error of a halt.
        status
            The HTTP status the server answered instead of upgrading, if it did.
        requested
            ``"disconnect"`` when the session was ended while opening.

        Returns
        -------
        Retry or Halt
            What to do next; the counts are updated to match.

        Examples
        --------
        >>> policy = ReconnectPolicy()
        >>> policy.after_failed_open("HTTP 429", status=429).category.name
        'RATE_LIMITED'
        """
        code = _ABNORMAL if status is None else _HANDSHAKE_CODES.get(status, _ABNORMAL)
        return self._decide(code, reason, stable=False, requested=requested)

    def _decide(
        self, code: int | None, reason: str, *, stable: bool, requested: Request | None
    ) -> Retry | Halt:
        if requested == "disconnect":
            return Halt(None)  # the session is over: nothing failed, nothing is counted
        config = self.config
        category = classify_close_code(code, self.close_codes)
        why = f"close {code}: {reason or 'no reason'}"
        if stable:
            self._attempt = self._rate_attempt = 0
        if category is CloseCategory.AUTH_FAILURE:
            # Counted even after a stable connection: a key revoked mid-session is
            # refused on every reconnect, and must halt as surely as a wrong one.
            self._auth_failures += 1
            if self._auth_failures >= config.max_auth_failure_attempts:
                return Halt(WebSocketAuthError(
                    f"authentication rejected {self._auth_failures} times in a row ({why}); "
                    "not retrying", code))
        elif stable:
            self._auth_failures = 0
        if not config.enabled:
            return Halt(WebSocketError(
                f"connection closed (code {code}: {reason or 'no reason'}) and reconnect is "
                "disabled", code))
        if requested == "reconnect" and stable:
            return Retry(0.0, 0, category)  # a resync after a good run: a fresh connection now
        self._attempt += 1
        if config.max_attempts is not None and self._attempt > config.max_attempts:
            return Halt(MaxReconnectsExceededError(config.max_attempts, code))
        if category is CloseCategory.RATE_LIMITED:
            self._rate_attempt += 1
            delay = backoff_delay(self._rate_attempt, config.rate_limit_backoff, self._rng)
        else:
            delay = backoff_delay(self._attempt, config.backoff, self._rng)
        return Retry(delay, self._attempt, category)

    def __repr__(self) -> str:
        return (f"ReconnectPolicy(attempt={self._attempt}, rate_attempt={self._rate_attempt}, "
                f"auth_failures={self._auth_failures})")
