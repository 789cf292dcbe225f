"""Exceptions raised by wsresearch.

Every exception the package raises on purpose derives from
:class:`WsResearchError`, so ``except WsResearchError`` catches them all.
Where a builtin says the same thing, the class also inherits it, so code that
already catches ``ValueError`` or ``KeyError`` keeps working::

    WsResearchError
    ├── WebSocketError(message, code=None)      connection-level failures
    │   ├── WebSocketAuthError                  auth rejected too often: halted
    │   ├── MaxReconnectsExceededError(attempts) reconnect budget spent: halted
    │   ├── ExchangeError(message, type)        an error report the exchange sent
    │   └── NotConnectedError (+ RuntimeError)  send() after disconnect()
    ├── InvalidURLError (+ ValueError)          not a ws:// or wss:// URL
    ├── QueueFullError (+ RuntimeError)         put() on a full BLOCK queue
    ├── QueueClosedError (+ RuntimeError)       put() after close()
    ├── UnknownChannelError (+ KeyError)        frame() for a channel the spec lacks
    └── RecordingError (+ OSError)              a recording cannot be created or written
        └── RecordingFormatError (+ ValueError) not a recording, or a newer format version

Configuration mistakes surface as :class:`pydantic.ValidationError` from the
config models, naming the field at fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "ExchangeError",
    "InvalidURLError",
    "MaxReconnectsExceededError",
    "NotConnectedError",
    "QueueClosedError",
    "QueueFullError",
    "RecordingError",
    "RecordingFormatError",
    "UnknownChannelError",
    "WebSocketAuthError",
    "WebSocketError",
    "WsResearchError",
]


class WsResearchError(Exception):
    """Root of every exception wsresearch raises on purpose."""


class WebSocketError(WsResearchError):
    """A connection-level failure.

    Parameters
    ----------
    message
        What went wrong, for people.
    code
        The WebSocket close code involved, when there is one.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ExchangeError(WebSocketError):
    """An error report the exchange sent on the connection (subscription rejected, bad symbol).

    Parameters
    ----------
    message
        The exchange's own message.
    type
        The type name the spec routed the report to.
    """

    def __init__(self, message: str, type: str | None = None) -> None:
        super().__init__(message)
        self.type = type


class WebSocketAuthError(WebSocketError):
    """The server rejected authentication too many times; reconnecting stopped."""

    def __init__(
        self, message: str = "WebSocket authentication failed", code: int | None = None
    ) -> None:
        super().__init__(message, code)


class MaxReconnectsExceededError(WebSocketError):
    """Reconnection gave up after ``attempts`` consecutive failed attempts."""

    def __init__(self, attempts: int, code: int | None = None) -> None:
        super().__init__(f"Max reconnection attempts ({attempts}) exceeded", code)
        self.attempts = attempts


class NotConnectedError(WebSocketError, RuntimeError):
    """A message was sent after :meth:`WebSocketManager.disconnect`."""


class InvalidURLError(WsResearchError, ValueError):
    """A URL is not a valid ``ws://`` or ``wss://`` URL."""


class QueueFullError(WsResearchError, RuntimeError):
    """``put()`` on a full queue whose policy is ``BLOCK``; await ``put_wait()`` instead."""


class QueueClosedError(WsResearchError, RuntimeError):
    """``put()`` on a queue after ``close()``."""


class UnknownChannelError(WsResearchError, KeyError):
    """A channel name that the spec does not define."""

    def __str__(self) -> str:
        # KeyError repr-quotes its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class RecordingError(WsResearchError, OSError):
    """A recording cannot be created, written or read."""


class RecordingFormatError(RecordingError, ValueError):
    """Not a recording, a damaged manifest, or a format version newer than this one reads."""


def first_error(exc: ValidationError) -> str:
    """A :class:`pydantic.ValidationError` in one line: its first error and where it is.

    ``count: Input should be greater than or equal to 1``; a model-level error
    without a field gives its message alone.
    """
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
