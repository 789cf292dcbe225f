"""What to do after a connection closes: the close-code vocabulary and the reconnect decision.

Pure: no sockets, no event loop, no clock. :func:`classify_close_code` maps a close
code to the :class:`~wsresearch.config.CloseCategory` that picks the policy, and
:func:`describe_close` names a close for people. The connection
(:mod:`wsresearch.connection`) asks this module what to do and does it; tests check
the rules as tables, without a server.
"""

from __future__ import annotations

from collections.abc import Mapping

from .config import CloseCategory

__all__ = [
    "CLIENT_CLOSE_REASONS",
    "END_OF_SESSION",
    "CloseCategory",
    "classify_close_code",
    "describe_close",
]

# The code of a connection that ended without a closing handshake (a reset, a dead
# peer); also what this side records when it drops a peer that stopped answering.
_ABNORMAL = 1006

END_OF_SESSION = "client disconnect"
"""The reason of the close that ends a session (:meth:`WebSocketManager.disconnect`)."""

CLIENT_CLOSE_REASONS: tuple[str, ...] = (
    END_OF_SESSION, "no pong", "reconnect requested", "resync", "peer stopped reading",
)
"""How the reasons of the closes this side makes begin: the end of a session, a dead or
stalled peer dropped by the heartbeat, a requested reconnect or resync. A replay server
leaves these closes to its client, as the live server never made them."""

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
