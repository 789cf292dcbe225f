"""Everything a session can say, as small frozen values on one stream.

A feed's session is more than its messages: connections open and close, pongs
come back, the queue drops, sequences skip, streams go silent and recover, a
handler raises, the feed sends a subscription, a researcher marks a moment.
Each of these is one event type here. The :class:`~wsresearch.pipeline.Pipeline`
and the :class:`~wsresearch.feed.Feed` *emit* them; the recorder, the feed's
connection timeline and user listeners *subscribe* to the one stream
(:meth:`Feed.on_event <wsresearch.feed.Feed.on_event>`). Adding a kind of event
touches this module and the recording's mapping (:func:`record_fields`), nothing
else.

Times are the feed clock's nanoseconds (``mono_ns``, ``wall_ns``); ``None`` means
"now", stamped by whoever stores the event. ``generation`` is the connection the
event belongs to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from .sequence import SequenceGap

__all__ = [
    "BookChanged",
    "Closed",
    "Dropped",
    "ErrorRaised",
    "Event",
    "GapFound",
    "HealthChanged",
    "Mark",
    "Opened",
    "Pong",
    "RestReceived",
    "Sent",
    "Stopped",
    "record_fields",
]

ClosedBy = Literal["client", "server", "network"]
"""Who ended a connection: this side, the peer (its close frame came first), or neither
(the TCP connection ended without a closing handshake)."""


@dataclass(frozen=True, slots=True)
class Opened:
    """A connection opened (``generation`` is new), at ``url`` (after any redirect)."""

    generation: int
    url: str
    mono_ns: int | None = None
    wall_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Closed:
    """A connection closed, and who closed it (``closed_by``).

    ``code`` is its close code (``None``: no close frame), ``reason`` the close
    reason, ``category`` the reconnect category it falls in.
    """

    generation: int
    code: int | None
    reason: str
    category: str
    closed_by: ClosedBy
    mono_ns: int | None = None
    wall_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Stopped:
    """The feed was stopped: the end of its session (after its last close)."""

    generation: int
    mono_ns: int | None = None
    wall_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong came back ``rtt`` seconds after its ping."""

    generation: int
    rtt: float


@dataclass(frozen=True, slots=True)
class Dropped:
    """A received message was discarded unparsed.

    ``reason`` is ``"overflow"`` (the queue was full) or ``"old_generation"`` (it
    arrived on a connection that had been replaced before it was processed).
    ``ref_seq`` is its ``seq`` in the recording (``None`` when not recording).
    """

    generation: int
    reason: Literal["overflow", "old_generation"]
    ref_seq: int | None


@dataclass(frozen=True, slots=True)
class GapFound:
    """A sequence gap on ``channel`` (see :mod:`wsresearch.sequence`).

    ``resync`` says the channel asks for a fresh snapshot on a gap
    (``Channel.resync_on_gap``): a live feed reconnects for it.
    """

    gap: SequenceGap
    resync: bool
    ref_seq: int | None

    @property
    def generation(self) -> int:
        """The connection the gap was found on."""
        return self.gap.generation

    @property
    def channel(self) -> str:
        """The channel of the message that revealed the gap."""
        return self.gap.channel


@dataclass(frozen=True, slots=True)
class HealthChanged:
    """``stream`` went stale (``healthy=False``) or recovered, at ``mono_ns``."""

    generation: int
    stream: str
    healthy: bool
    mono_ns: int | None = None


@dataclass(frozen=True, slots=True)
class ErrorRaised:
    """An error of any stage.

    A failing extractor or listener, a failed open, an exchange's error report
    (:class:`~wsresearch.errors.ExchangeError`).
    """

    generation: int
    error: BaseException


@dataclass(frozen=True, slots=True)
class Sent:
    """The feed sent ``text`` (secrets are masked where it is stored or shown)."""

    generation: int
    text: str


@dataclass(frozen=True, slots=True)
class Mark:
    """A researcher's note on the timeline (:meth:`Feed.mark <wsresearch.feed.Feed.mark>`)."""

    generation: int
    note: str


@dataclass(frozen=True, slots=True)
class RestReceived:
    """A REST response taken beside the stream (a book snapshot): its URL, status and body.

    Recorded (kind ``rest``) so a replay rebuilds the same books offline; a response
    of status 200 (or of unknown status, imported) is handed to the order books.
    """

    generation: int
    url: str
    status: int | None
    body: str
    mono_ns: int | None = None
    wall_ns: int | None = None


@dataclass(frozen=True, slots=True)
class BookChanged:
    """``symbol``'s order book became valid, or invalid and why (``reason``)."""

    generation: int
    symbol: str
    valid: bool
    reason: str
    mono_ns: int | None = None


Event = Opened | Closed | Stopped | Pong | Dropped | GapFound | HealthChanged | ErrorRaised | \
    Sent | Mark | RestReceived | BookChanged
"""Any session event."""

# The recording format's word for an old-generation drop (format version 1 onwards).
_FORMAT_DROP_REASON = {"overflow": "overflow", "old_generation": "stale"}


def record_fields(event: Event) -> tuple[str, int, dict[str, Any]]:
    """How ``event`` is stored in a recording: its kind, generation and columns.

    The one mapping from events to the recording's ``events`` table (see
    ``docs/recording-format.md``); the recorder writes what this returns.

    Examples
    --------
    >>> record_fields(Closed(3, 1006, "", "NORMAL", "network"))
    ('close', 3, {'code': 1006, 'reason': '', 'category': 'NORMAL', 'closed_by': 'network', \
'mono_ns': None, 'wall_ns': None})
    >>> record_fields(Dropped(2, "old_generation", 41))
    ('drop', 2, {'ref_seq': 41, 'reason': 'stale'})
    """
    match event:
        case Opened(generation, url, mono, wall):
            return "open", generation, {"data": url, "mono_ns": mono, "wall_ns": wall}
        case Closed(generation, code, reason, category, closed_by, mono, wall):
            return "close", generation, {"code": code, "reason": reason, "category": category,
                                         "closed_by": closed_by, "mono_ns": mono,
                                         "wall_ns": wall}
        case Stopped(generation, mono, wall):
            return "stop", generation, {"mono_ns": mono, "wall_ns": wall}
        case Pong(generation, rtt):
            return "pong", generation, {"rtt": rtt}
        case Dropped(generation, reason, ref_seq):
            return "drop", generation, {"ref_seq": ref_seq,
                                        "reason": _FORMAT_DROP_REASON[reason]}
        case GapFound(gap, _, ref_seq):
            return "gap", gap.generation, {
                "mono_ns": gap.recv_mono_ns, "stream": gap.channel, "ref_seq": ref_seq,
                "data": json.dumps({"group": gap.group, "key": _jsonable(gap.key),
                                    "expected": gap.expected, "first": gap.first})}
        case HealthChanged(generation, stream, healthy, mono):
            return "health", generation, {"mono_ns": mono, "stream": stream,
                                          "healthy": healthy}
        case ErrorRaised(generation, error):
            return "error", generation, {"data": f"{type(error).__name__}: {error}"}
        case Sent(generation, text):
            return "sent", generation, {"data": text}
        case Mark(generation, note):
            return "mark", generation, {"data": note}
        case RestReceived(generation, url, status, body, mono, wall):
            return "rest", generation, {"stream": url, "code": status, "data": body,
                                        "mono_ns": mono, "wall_ns": wall}
        case BookChanged(generation, symbol, valid, reason, mono):
            return "book", generation, {"stream": symbol, "healthy": valid,
                                        "reason": reason or None, "mono_ns": mono}
    raise TypeError(f"not a session event: {event!r}")


def _jsonable(key: Any) -> Any:
    """A stream key as JSON: scalars as they are, anything else as text."""
    if key is None or isinstance(key, str | int | float | bool):
        return key
    if isinstance(key, tuple):
        return [_jsonable(part) for part in key]
    return str(key)
