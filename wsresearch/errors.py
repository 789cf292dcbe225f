"""Exceptions raised by wsresearch.

Every exception the package raises on purpose derives from
:class:`WsResearchError`, so ``except WsResearchError`` catches them all.
Where a builtin says the same thing, the class also inherits it, so code that
already catches ``ValueError`` or ``KeyError`` keeps working::

    WsResearchError
    ├── WebSocketError(message, code=None)      connection-level failures
    │   ├── WebSocketAuthError                  auth rejected too often: halted
    │   ├── MaxReconnectsExceededError(attempts) reconnect budget spent: halted
    │   └── NotConnectedError (+ RuntimeError)  send() after disconnect()
    ├── ExchangeError(message, error_type)      an error report the exchange sent
    ├── InvalidURLError (+ ValueError)          not a ws:// or wss:// URL
    ├── QueueFullError (+ RuntimeError)         put() on a full BLOCK queue
    ├── QueueClosedError (+ RuntimeError)       put() after close()
    ├── UnknownChannelError (+ KeyError)        a channel or stream the spec lacks
    └── RecordingError (+ OSError)              a recording cannot be created or written
        └── RecordingFormatError (+ ValueError) not a recording, or a newer format version

Two warnings have a class of their own, so that they can be filtered or caught by class
(each a :class:`UserWarning`): :class:`DamagedSegmentWarning`, for the events a damaged
segment file left without a value they are read by, or with one no writer gives; and
:class:`NothingKeptWarning`, for a replay that rejected every message (the wrong spec,
most likely), which ``wsresearch export`` turns into an error.

:class:`ExchangeError` is not a :class:`WebSocketError`: the connection is
fine, and the exchange used it to say that a request of ours was wrong (a
rejected subscription, an unknown symbol). It is an application-level report,
so ``except WebSocketError`` catches only failures of the connection itself.

Configuration mistakes surface as :class:`pydantic.ValidationError` from the
config models, naming the field at fault; :func:`first_error` puts one in a line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "DamagedSegmentWarning",
    "ExchangeError",
    "InvalidURLError",
    "MaxReconnectsExceededError",
    "NotConnectedError",
    "NothingKeptWarning",
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


class ExchangeError(WsResearchError):
    """An error report the exchange sent on the connection (subscription rejected, bad symbol).

    Parameters
    ----------
    message
        The exchange's own message.
    error_type
        The type name of the report: one of the spec's ``errors``.
    """

    def __init__(self, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


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
    """``put()`` on a full queue whose policy is ``BLOCK``: the producer should have paused."""


class QueueClosedError(WsResearchError, RuntimeError):
    """``put()`` on a queue after ``close()``."""


class UnknownChannelError(WsResearchError, KeyError):
    """A channel or health stream name that the spec does not define."""

    def __str__(self) -> str:
        # KeyError repr-quotes its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class RecordingError(WsResearchError, OSError):
    """A recording cannot be created, written or read."""


class RecordingFormatError(RecordingError, ValueError):
    """Not a recording, a damaged manifest, or a format version newer than this one reads."""


class DamagedSegmentWarning(UserWarning):
    """Events of a damaged segment file left out: a value lacking, or one no writer gives.

    Every event has a ``seq``, ``generation``, ``mono_ns``, ``wall_ns`` and ``kind``: the
    writers always fill them. An event of a damaged or hand-edited file without one cannot
    be placed, and every read of the recording leaves it out, with one of these warnings
    per file. So is an event whose value no writer gives (Parquet keeps no checksums, so a
    damaged page can still decode, to other numbers): a ``seq`` that repeats or steps back,
    a recorded message's ``mono_ns`` more than a day out of step with its connection's
    others (a monotonic clock does not step back), an imported event whose ``wall_ns``
    and ``mono_ns`` are not apart by the import's offset (see
    ``docs/recording-format.md``). Being a class of its own, it can be filtered
    (``warnings.filterwarnings("ignore", category=DamagedSegmentWarning)``) or caught and
    read: its attributes say which file, how many events and what was wrong.

    Parameters
    ----------
    file
        The segment file.
    left_out
        How many of its events were left out (of those read, where a reader stopped early).
    lacking
        The values they lacked, by column name.
    impossible
        The columns whose values were impossible: ``"seq"`` (repeats or steps back),
        ``"mono_ns"`` (a message's steps more than a day back), or both ``"mono_ns"`` and
        ``"wall_ns"`` (an imported event's two times disagree: which is wrong is not known).
    """

    def __init__(self, file: Path, left_out: int, lacking: tuple[str, ...],
                 impossible: tuple[str, ...] = ()) -> None:
        super().__init__(f"{file}: skipping {left_out} event(s) "
                         f"{_what_was_wrong(lacking, impossible)} (a damaged segment)")
        self.file, self.left_out, self.lacking = file, left_out, lacking
        self.impossible = impossible

    def __reduce__(self) -> tuple[type[DamagedSegmentWarning],
                                  tuple[Path, int, tuple[str, ...], tuple[str, ...]]]:
        # An export's worker process hands it to its parent: rebuilt from the four.
        return type(self), (self.file, self.left_out, self.lacking, self.impossible)


class NothingKeptWarning(UserWarning):
    """A replay rejected every message it judged and kept no row: the wrong spec, most likely.

    A spec of another exchange or market rejects each message with a reason, and each is
    counted; but a replay, report or export that keeps nothing is a mistake to be told
    of where it is made. In a script, ``warnings.filterwarnings("error",
    category=NothingKeptWarning)`` makes it an exception; ``wsresearch export`` does so,
    and exits 1 with nothing of that recording written.

    Parameters
    ----------
    recording
        The recording's directory.
    rejected
        How many messages were rejected.
    message
        What happened, in a line.
    """

    def __init__(self, recording: Path, rejected: int, message: str) -> None:
        super().__init__(message)
        self.recording, self.rejected = recording, rejected

    def __reduce__(self) -> tuple[type[NothingKeptWarning], tuple[Path, int, str]]:
        # An export's worker process hands it to its parent: rebuilt from the three.
        return type(self), (self.recording, self.rejected, str(self))


def _what_was_wrong(lacking: tuple[str, ...], impossible: tuple[str, ...]) -> str:
    """The faults of :class:`DamagedSegmentWarning`'s events, in words, ``; `` apart."""
    said = [f"without a value of {', '.join(lacking)}"] if lacking else []
    if "seq" in impossible:
        said.append("with a seq that repeats or steps back")
    if "wall_ns" in impossible:
        said.append("with a wall_ns and mono_ns not apart by the import's offset")
    elif "mono_ns" in impossible:
        said.append("with a mono_ns that steps more than a day back from its connection's")
    return "; ".join(said)


def first_error(exc: ValidationError, limit: int = 1) -> str:
    """A :class:`pydantic.ValidationError` in one line: its first errors and where they are.

    ``count: Input should be greater than or equal to 1``; a model-level error
    without a field gives its message alone. Errors beyond ``limit`` are
    counted (``and 2 more``), so the line stays short whatever the input, and
    one line is what a terminal, a log and a reject record can show.

    Parameters
    ----------
    exc
        The validation error.
    limit
        How many of its errors to spell out (at least one is).

    Examples
    --------
    >>> from pydantic import BaseModel, Field, ValidationError
    >>> class Window(BaseModel):
    ...     size: int = Field(ge=1)
    ...     step: int = Field(ge=1)
    ...     name: str
    >>> try:
    ...     Window(size=0, step=0)
    ... except ValidationError as exc:
    ...     print(first_error(exc))
    size: Input should be greater than or equal to 1; and 2 more
    """
    errors = exc.errors(include_url=False)[: max(1, limit)]
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
