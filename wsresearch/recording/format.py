"""The recording format: what a recording directory holds, column by column, field by field.

Pure data, no I/O: the writer (:mod:`wsresearch.recording.writer`) lays events out
with it, the reader (:mod:`wsresearch.recording.reader`) checks what it finds against
it, and ``docs/recording-format.md`` documents the same names. The stored names are
the format's own vocabulary and never change: an inbound WebSocket message is an
event of kind ``"frame"``.

The manifest says where the receive times came from (``receive_times``,
:data:`RECEIVE_TIMES`): a recorder's clock, another tool's capture, or nowhere
(invented on import). Manifests written before the field read as ``"recorded"``.

Version 2 added one column, ``closed_by`` (who closed the connection, for ``close``
events). Version-1 segments have the other columns in the same order;
:func:`v1_closed_by` derives the missing column from the close reason, so readers
of either version see the same table (:data:`EVENT_SCHEMA`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._catalog import FORMAT_NAME, FORMAT_VERSION, MANIFEST, check_format
from .._limits import INT64_MAX, INT64_MIN
from ..errors import RecordingFormatError, first_error
from ..events import ClosedBy
from ..policy import CLIENT_CLOSE_REASONS
from ..redaction import redact_url
from ..spec import Replaced, SpecOrigin

__all__ = [
    "CLOSED_BY",
    "EVENT_KINDS",
    "EVENT_SCHEMA",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LOCK",
    "MANIFEST",
    "MESSAGE_COLUMNS",
    "RECEIVE_TIMES",
    "SEGMENTS",
    "V1_COLUMNS",
    "ClosedBy",
    "TIMELINE_SCHEMA",
    "EventRow",
    "MessageBuffer",
    "MessageColumns",
    "MessageRun",
    "ReceiveTimes",
    "RecordingManifest",
    "clean_text",
    "closed_by_from_reason",
    "event_table",
    "new_manifest",
    "parse_manifest",
    "v1_closed_by",
]

log = logging.getLogger(__name__)


# Names in a recording directory: the manifest, the parent of the segment folders, and
# the lock file that says a writer holds the directory. While a recording is compacted,
# its new segments are written under COMPACTING, and its old ones are kept as REPLACED
# for the moment the new ones take their place (wsresearch.recording.compact).
SEGMENTS = "segments"
LOCK = ".lock"
COMPACTING = "segments.compacting"
REPLACED = "segments.replaced"

EVENT_KINDS: tuple[str, ...] = (
    "open", "frame", "sent", "close", "error", "pong", "drop", "health", "mark", "gap", "stop",
    "rest", "book",
)
"""Every event kind a recording holds. Readers skip kinds they do not know, so a
recording with a kind added later still reads, replays and reports. ``rest`` is a
REST response taken beside the feed (a depth snapshot): its body in ``data``, the
request URL in ``stream``, its HTTP status in ``code`` (null when imported). ``book``:
an order book became valid or invalid (``stream``: the symbol, ``healthy``: valid,
``reason``: why not)."""

ReceiveTimes = Literal["recorded", "imported", "invented"]
"""Where a recording's receive times came from (the manifest's ``receive_times``)."""

RECEIVE_TIMES: tuple[ReceiveTimes, ...] = ("recorded", "imported", "invented")
"""``recorded``: this wsresearch's clock, as each message arrived; ``imported``: the
clock of the tool that captured the messages, read from its capture; ``invented``:
none was known, so the messages were spaced 1 ms apart from the epoch on import."""

CLOSED_BY: tuple[ClosedBy, ...] = ("client", "server", "network")
"""Who closed a connection: this side (the end of a session, a dropped peer, a
resync), the server (a close frame it started), or neither (the connection was lost)."""

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "seq": pl.Int64(),  # 0, 1, 2 ... over the whole recording
    "generation": pl.Int64(),  # connection generation the event belongs to
    "mono_ns": pl.Int64(),  # monotonic receive/event time
    "wall_ns": pl.Int64(),  # wall-clock time, ns since the epoch
    "kind": pl.String(),
    "data": pl.String(),  # message text (base64 when binary), sent text, note, error, URL,
    # REST response body
    "binary": pl.Boolean(),  # frame: data is base64 of a binary message
    "code": pl.Int64(),  # close: close code; rest: HTTP status
    "reason": pl.String(),  # close: reason; book: why it is not valid
    "category": pl.String(),  # close: CloseCategory name
    "rtt": pl.Float64(),  # pong: round-trip time in seconds
    "stream": pl.String(),  # health: stream name; gap: channel; rest: request URL; book: symbol
    "healthy": pl.Boolean(),  # health: new state; book: valid
    "ref_seq": pl.Int64(),  # drop: seq of the message the queue dropped; gap: the revealing one
    "closed_by": pl.String(),  # close: "client", "server" or "network" (version 2)
}
"""Columns of every segment file, in order (version 2)."""

TIMELINE_SCHEMA: dict[str, pl.DataType] = {
    name: EVENT_SCHEMA[name]
    for name in ("kind", "generation", "mono_ns", "wall_ns", "code", "reason", "category",
                 "closed_by")
}
"""The columns of a session's timeline of opens, closes and its stop: the live feed's
``connections``, a recording's, the quality report's and an export's all have them."""


V1_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA)[:-1]
"""Columns of a version-1 segment file: version 2's without ``closed_by``."""

MESSAGE_COLUMNS: tuple[str, ...] = ("seq", "generation", "mono_ns", "wall_ns", "data")
"""The columns an inbound message is buffered in, one list each (see :data:`MessageColumns`)."""

MessageColumns = tuple[list[int], list[int], list[int], list[int], list[str]]
"""Inbound messages, column by column: ``seq, generation, mono_ns, wall_ns, data``."""

EventRow = tuple[Any, ...]
"""Any other event: one value per :data:`EVENT_SCHEMA` column, in its order."""

MessageRun = tuple[int, int, int, int, int]
"""Messages received together: first ``seq``, how many, ``generation``, ``mono_ns``, ``wall_ns``."""

_RUN_COLUMNS = ("seq", "count", "generation", "mono_ns", "wall_ns")


class MessageBuffer:
    """Inbound messages as a recorder holds them until a write: their texts, and runs.

    A run is messages received together (one read of the socket): they share a
    generation and receive times, and their ``seq`` values follow on. The recorder's
    hot path then costs one ``list.extend`` of the texts and one tuple a run, not four
    numbers a message; the columns of numbers are made in the writer's thread, from
    the runs, in arrays (:meth:`frame`).
    """

    __slots__ = ("runs", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        """Every message's text (base64 for a binary one), in ``seq`` order."""
        self.runs: list[MessageRun] = []
        """The runs the texts came in, in order."""

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, first_seq: int, texts: Sequence[str], generation: int, mono_ns: int,
            wall_ns: int) -> None:
        """Append a run: ``texts``, numbered on from ``first_seq``, received together."""
        if texts:
            self.texts.extend(texts)
            self.runs.append((first_seq, len(texts), generation, mono_ns, wall_ns))

    def extend(self, other: MessageBuffer) -> None:
        """Append every message of ``other`` (later in ``seq``) after these."""
        self.texts.extend(other.texts)
        self.runs.extend(other.runs)

    def seqs(self) -> Iterator[int]:
        """Every message's ``seq``, in order."""
        return itertools.chain.from_iterable(
            range(first, first + count) for first, count, *_ in self.runs)

    def drop_before(self, seq: int) -> None:
        """Forget the messages before ``seq``."""
        runs, dropped, whole = self.runs, 0, 0
        for first, count, generation, mono, wall in runs:
            if first + count <= seq:
                dropped, whole = dropped + count, whole + 1
                continue
            if first < seq:  # the run goes on past seq: its front goes
                dropped += seq - first
                runs[whole] = (seq, first + count - seq, generation, mono, wall)
            break
        del runs[:whole], self.texts[:dropped]

    def frame(self) -> pl.DataFrame:
        """The messages as the columns of :data:`MESSAGE_COLUMNS`, in ``seq`` order.

        Raises
        ------
        TypeError
            If a run's numbers are not ints that fit 64 bits (a float, a string), as a
            column of them would; ``None`` stands for a time not known, as in a column.
        """
        values = list(zip(*self.runs, strict=True)) or [()] * len(_RUN_COLUMNS)
        runs = pl.DataFrame([pl.Series(name, column, dtype=pl.Int64, strict=True)
                             for name, column in zip(_RUN_COLUMNS, values, strict=True)])
        counts = runs["count"].to_numpy()
        starts = np.cumsum(counts) - counts  # each run's first position
        shared = runs.select("generation", "mono_ns", "wall_ns")  # a run's, for each message
        return shared[np.repeat(np.arange(runs.height), counts)].select(
            seq=pl.Series(np.arange(len(self.texts), dtype=np.int64)
                          + np.repeat(runs["seq"].to_numpy() - starts, counts)),
            generation="generation", mono_ns="mono_ns", wall_ns="wall_ns",
            data=_column("data", self.texts))


_Ns = Annotated[int, Field(strict=True, ge=INT64_MIN, lt=INT64_MAX + 1)]


class RecordingManifest(BaseModel):
    """``manifest.json``: what was recorded, from where, and whether it is complete.

    Every field is checked when a recording is opened (a manifest is data, perhaps
    edited or damaged): times are ints of ns that fit in 64 bits, counts are not
    negative, intervals are finite and positive. ``receive_times`` says where the
    receive times came from (:data:`RECEIVE_TIMES`); a manifest written before the
    field existed reads as ``"recorded"``. ``spec_replaced`` holds the fields the spec
    had replaced on its adapter's (:attr:`~wsresearch.spec.SpecOrigin.replaced`), left
    out when there are none; :attr:`origin` puts the two together.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    format: Literal["wsresearch-recording"] = "wsresearch-recording"
    version: int = Field(FORMAT_VERSION, strict=True, ge=1)
    wsresearch_version: str
    source_url: str
    description: str = ""
    channels: list[str] = []
    redacted_keys: list[str] = []
    started_wall_ns: _Ns
    ended_wall_ns: _Ns | None = None
    complete: bool = False
    incomplete_reason: str | None = None
    events: int | None = Field(None, ge=0)
    spec_origin: SpecOrigin | None = None
    spec_replaced: Replaced = Field(default_factory=dict,
                                    exclude_if=lambda replaced: not replaced)
    receive_times: ReceiveTimes = "recorded"
    flush_interval: float = Field(gt=0)
    rotate_interval: float = Field(gt=0)

    @property
    def origin(self) -> SpecOrigin | None:
        """The spec's origin with the fields it had replaced (``spec_replaced``)."""
        if self.spec_origin is None or not self.spec_replaced:
            return self.spec_origin
        return self.spec_origin.with_replaced(self.spec_replaced)


def new_manifest(
    *,
    source_url: str,
    description: str,
    channels: Sequence[str],
    redact: Sequence[str],
    origin: SpecOrigin | None,
    flush_interval: float,
    rotate_interval: float,
    started_wall_ns: int = 0,
    receive_times: ReceiveTimes = "recorded",
) -> RecordingManifest:
    """The manifest of a recording about to be written, its URL's credentials masked.

    The description is masked too where it repeats the URL: a spec's default
    description names it. ``receive_times`` is ``"recorded"`` for a recorder's
    session, ``"imported"`` or ``"invented"`` for messages captured elsewhere.
    """
    from .. import __version__  # the package's __init__ imports this module first

    masked = redact_url(source_url)
    return RecordingManifest(
        wsresearch_version=__version__,
        source_url=masked,
        description=description.replace(source_url, masked),
        channels=list(channels),
        redacted_keys=list(redact),
        # The replaced fields beside the origin, not in it: a wsresearch older than them
        # ignores a manifest's field it does not know, but refuses one in spec_origin.
        spec_origin=None if origin is None else origin.model_copy(update={"replaced": {}}),
        spec_replaced={} if origin is None else dict(origin.replaced),
        started_wall_ns=started_wall_ns,
        receive_times=receive_times,
        flush_interval=flush_interval,
        rotate_interval=rotate_interval,
    )


def parse_manifest(raw: object, root: Path) -> RecordingManifest:
    """Check the decoded JSON of the ``manifest.json`` of ``root`` and return it as a manifest.

    The version is checked first, so a newer recording asks for an upgrade rather than
    failing on a field this version does not know.

    Raises
    ------
    RecordingFormatError
        If ``raw`` is not a manifest of this format, its version is newer than
        :data:`FORMAT_VERSION` or not an integer of at least 1, or a field is damaged.
    """
    check_format(raw, root)
    try:
        return RecordingManifest.model_validate(raw)
    except ValidationError as exc:
        raise RecordingFormatError(f"{root / MANIFEST} is damaged: {first_error(exc)}") from None


def clean_text(text: str) -> str:
    r"""``text`` as it can be stored: a lone surrogate (which UTF-8 cannot encode) escaped.

    A note or an error message can hold one (``os.fsdecode`` of a file name that is
    not UTF-8 gives ``"\udce9"``); written as is, it would fail the whole segment.

    Examples
    --------
    >>> clean_text("caf\udce9.csv")
    'caf\\udce9.csv'
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def closed_by_from_reason(reason: str | None) -> ClosedBy:
    """Who closed a connection, as far as its close reason tells: for closes recorded without it.

    A reason that begins like one this side gives
    (:data:`~wsresearch.policy.CLIENT_CLOSE_REASONS`: the end of the session, a
    dropped peer, a requested reconnect or resync) was the client's close; any other,
    the server's. A reason cannot tell a lost connection from a server's close, so
    this never says ``"network"``.

    Examples
    --------
    >>> closed_by_from_reason("resync: sequence gap on trade"), closed_by_from_reason("bye")
    ('client', 'server')
    """
    return "client" if (reason or "").startswith(CLIENT_CLOSE_REASONS) else "server"


def v1_closed_by(kind: pl.Expr, reason: pl.Expr) -> pl.Expr:
    """``closed_by`` of a version-1 recording, which did not store it: read off the reason.

    :func:`closed_by_from_reason` as a polars expression, for every ``close`` event;
    null for the other kinds.

    Examples
    --------
    >>> events = pl.DataFrame({"kind": ["close", "close", "frame"],
    ...                        "reason": ["resync: sequence gap", "maintenance", None]})
    >>> events.select(v1_closed_by(pl.col("kind"), pl.col("reason")))["closed_by"].to_list()
    ['client', 'server', None]
    """
    by_client = pl.any_horizontal(
        [reason.str.starts_with(prefix) for prefix in CLIENT_CLOSE_REASONS]).fill_null(False)
    return (
        pl.when(kind == "close")
        .then(pl.when(by_client).then(pl.lit("client")).otherwise(pl.lit("server")))
        .otherwise(pl.lit(None, dtype=pl.String()))
        .alias("closed_by")
    )


def event_table(
    messages: MessageColumns | MessageBuffer, binary: Collection[int],
    others: Sequence[EventRow],
) -> pl.DataFrame:
    """One segment's events as a table of :data:`EVENT_SCHEMA`, in ``seq`` order.

    Parameters
    ----------
    messages
        Inbound messages: as the recorder buffers them, or column by column.
    binary
        The ``seq`` of every message whose ``data`` is the base64 of a binary message.
    others
        Every other event, one :data:`EventRow` each.

    Raises
    ------
    ValueError
        If there are no events at all.
    """
    parts = []
    if isinstance(messages, MessageBuffer):
        part = messages.frame() if messages else None
    else:
        columns = cast(tuple[list[Any], ...], messages)
        part = pl.DataFrame([
            _column(name, values) for name, values in zip(MESSAGE_COLUMNS, columns, strict=True)
        ]) if columns[0] else None
    if part is not None:
        parts.append(part.with_columns(
            kind=pl.lit("frame"),
            binary=pl.col("seq").is_in(list(binary)) if binary else pl.lit(False)))
    if others:
        parts.append(pl.DataFrame(others, schema=EVENT_SCHEMA, orient="row"))
    if not parts:
        raise ValueError("a segment holds at least one event")
    table = pl.concat(parts, how="diagonal_relaxed")
    return table.select([
        pl.col(c).cast(t) if c in table.columns else pl.lit(None, dtype=t).alias(c)
        for c, t in EVENT_SCHEMA.items()
    ]).sort("seq")


def _column(name: str, values: list[Any]) -> pl.Series:
    """One column of a segment; message text that UTF-8 cannot encode is stored escaped.

    Messages from a socket are always valid UTF-8 (websockets checks), so the
    escape path runs only for text handed to the recorder directly.
    """
    dtype = EVENT_SCHEMA[name]
    try:
        return pl.Series(name, values, dtype=dtype)
    except UnicodeEncodeError:
        log.warning("a recorded message held text UTF-8 cannot encode (a lone surrogate); "
                    "it is stored with that character escaped")
        return pl.Series(name, [clean_text(v) for v in values], dtype=dtype)
