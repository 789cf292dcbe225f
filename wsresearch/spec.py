"""What a feed is: the URL, the channels and their models, and how to talk to it.

A :class:`FeedSpec` holds everything that decides how messages become rows:
routing (``type_of``), models, de-dup keys, health expectations, queue policy,
and what to send on every connect. The same spec drives a live
:class:`~wsresearch.feed.Feed` and a replay of its recording
(:func:`~wsresearch.replay.replay`), which is why both give the same rows.
Exchange adapters in :mod:`wsresearch.exchanges` build specs;
:meth:`FeedSpec.with_url` points one at a simulator or a proxy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping
from operator import attrgetter
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from .config import (
    MAX_CHECK_INTERVAL,
    MIN_CHECK_INTERVAL,
    ConnectionConfig,
    QueueConfig,
    StreamConfig,
    validate_ws_url,
)
from .errors import InvalidURLError, UnknownChannelError
from .frames import check_channel
from .layout import Layout
from .normalize import KINDS, Normalizer, normalize
from .redaction import DEFAULT_REDACT, mask, mask_auth, redact_url
from .sequence import Chain, Seq

__all__ = ["CHANNEL_NAME", "CONNECTION_GROUP", "KEPT_FIELDS", "QUOTE_SOURCES", "Channel",
           "FeedSpec", "OutboundMessage", "QuoteSource", "Replaced", "SpecOrigin", "check_replaced"]

CHANNEL_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.@:-]*$"
"""What a channel name may be: one safe path component (it names an export folder)."""

CONNECTION_GROUP = "connection"
"""The sequence group of numbers counted per connection over every message
(``FeedSpec.control_sequence``; channels join it with ``sequence_group``)."""

_NAMED = ("dedupe_key", "sequence", "sequence_key", "exchange_time")

OutboundMessage = str | dict[str, Any] | list[Any]
"""A message to send: text as is, anything else as compact JSON."""


class _Range:
    """A message's range of sequence numbers, read from two fields: ``Seq(first, last)``."""

    __slots__ = ("_first", "_last")

    def __init__(self, first: str, last: str) -> None:
        self._first, self._last = attrgetter(first), attrgetter(last)

    def __call__(self, message: Any) -> Seq | None:
        first, last = self._first(message), self._last(message)
        return None if first is None or last is None else Seq(first, last)

    def __repr__(self) -> str:
        return "sequence range"


class _Chained:
    """A message's numbers as a :class:`~wsresearch.sequence.Chain` says them."""

    __slots__ = ("_last", "_previous")

    def __init__(self, chain: Chain) -> None:
        self._previous, self._last = attrgetter(chain.previous), attrgetter(chain.last)

    def __call__(self, message: Any) -> Seq | None:
        previous, last = self._previous(message), self._last(message)
        return None if previous is None or last is None else Seq(previous + 1, last)

    def __repr__(self) -> str:
        return "sequence chain"


class Channel(BaseModel):
    """One message type of a feed and how to handle it.

    Parameters
    ----------
    name
        The type name ``type_of`` returns for its messages; also the name of its DataFrame, and
        the name of its folder in an exported dataset: letters, digits and
        ``_ . @ : -``, starting with a letter, digit or ``_`` (so never a path).
    model
        The pydantic model that validates them; its fields become columns.
    dedupe_key
        Maps a message to a key; repeats within the TTL are dropped as duplicates. This and
        ``sequence``, ``sequence_key`` and ``exchange_time`` may be given as a field name
        or a tuple of field names (``("symbol", "trade_id")``) where they read fields: the
        names are kept in :attr:`field_names`, so what the channel reads is declared, not
        hidden in a function (a columnar pass can read those columns), and the message is
        read with :func:`operator.attrgetter`, as fast as a callable can be.
    stream
        The health stream it feeds (default: ``name``). Several channels may
        share one stream.
    sequence
        Maps a message to the exchange sequence numbers it carries: an ``int``,
        a :class:`~wsresearch.sequence.Seq` range or snapshot, or ``None``
        (see :mod:`wsresearch.sequence`). The Feed counts gaps, repeats and
        out-of-order messages with it. As field names: one names the number; two name
        the first and the last number of a range (``("first_update_id",
        "final_update_id")``: the message covers ``Seq(first, last)``; one whose last is
        below its first is reported and kept, its numbers not checked). A
        :class:`~wsresearch.sequence.Chain` of two field names: each message names the
        last number of the one before (Binance USD-M's ``pu``).
    sequence_key
        Maps a message to the key its numbers count under (e.g. the symbol);
        ``None``: one counter for the group.
    sequence_group
        Channels with the same group share one counter per key (default: the
        channel's own name).
    resync_on_gap
        Reconnect (for a fresh snapshot) when a gap is found on this channel.
    exchange_time
        Maps a message to its exchange timestamp in ns, where there is one.
    explode
        The name of a list-of-models field whose items become the rows (e.g. the
        trades of a message that batches several); the message's other fields are
        repeated on each. ``None``: one row per message.
    normalized
        The market-data kinds this channel holds (``trades``, ``quotes``...), each with
        the polars transformation that makes its native frame that kind's table (see
        :mod:`wsresearch.normalize`). The native frame is not changed.
    layout
        The exact text of the channel's messages, with a placeholder per value (see
        :mod:`wsresearch.layout`): a replay reads the messages that match it straight
        into columns, with the same rows and counts as through ``model``, several times
        faster. ``None``: every message goes through ``model``.

    Attributes
    ----------
    field_names
        For each of ``dedupe_key``, ``sequence``, ``sequence_key`` and ``exchange_time``
        given as field names, those names (derived: not given by hand).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(min_length=1, max_length=100, pattern=CHANNEL_NAME)
    model: type[BaseModel]
    dedupe_key: Callable[[Any], Hashable] | None = None
    stream: str | None = None
    sequence: Callable[[Any], int | Seq | None] | None = None
    sequence_key: Callable[[Any], Hashable] | None = None
    sequence_group: str | None = None
    resync_on_gap: bool = False
    exchange_time: Callable[[Any], int | None] | None = None
    explode: str | None = None
    normalized: dict[str, Normalizer] = Field(default_factory=dict)
    layout: Layout | None = None
    field_names: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _names_as_getters(cls, data: Any) -> Any:
        """Extractors given as field names become attribute getters; the names are kept."""
        if not isinstance(data, dict):
            return data
        if "field_names" in data:
            raise ValueError("field_names is derived: give the names as dedupe_key=..., "
                             "sequence=..., sequence_key=... or exchange_time=...")
        data = dict(data)
        names: dict[str, tuple[str, ...]] = {}
        for extractor in _NAMED:
            value = data.get(extractor)
            if extractor == "sequence" and isinstance(value, Chain):
                if not all(isinstance(n, str) and n for n in (value.previous, value.last)):
                    raise ValueError(f"sequence: a Chain names two fields, got {value!r}")
                names[extractor] = (value.previous, value.last)
                data[extractor] = _Chained(value)
                continue
            if isinstance(value, str):
                value = (value,)
            elif isinstance(value, list):
                value = tuple(value)
            if isinstance(value, tuple):
                if not value or not all(isinstance(n, str) and n for n in value):
                    raise ValueError(f"{extractor}: field names must be non-empty strings, "
                                     f"got {value!r}")
                names[extractor] = value
                if extractor == "sequence" and len(value) == 2:
                    data[extractor] = _Range(*value)
                elif extractor == "sequence" and len(value) > 2:
                    raise ValueError(f"sequence: one field name (the number) or two (the "
                                     f"first and last of a range), got {value!r}")
                else:
                    data[extractor] = attrgetter(*value)
        data["field_names"] = names
        return data

    @field_validator("normalized")
    @classmethod
    def _known_kinds(cls, normalized: dict[str, Normalizer]) -> dict[str, Normalizer]:
        unknown = sorted(set(normalized) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown kind(s) {unknown}; the kinds are {list(KINDS)}")
        return normalized

    @property
    def stream_name(self) -> str:
        """The health stream this channel feeds."""
        return self.stream or self.name

    @property
    def sequence_chained(self) -> bool:
        """Whether ``sequence`` was declared as a :class:`~wsresearch.sequence.Chain`."""
        return isinstance(self.sequence, _Chained)

    def sequence_bounds(self) -> tuple[pl.Expr, pl.Expr]:
        """Each message's first and last sequence number, over its columns.

        As ``sequence`` was declared: one field (both), a range's two, or a chain's
        previous number plus one and its last. For checks on columns
        (:func:`~wsresearch.sequence.runs`).

        Raises
        ------
        ValueError
            If ``sequence`` is not declared by field names.
        """
        names = self.field_names.get("sequence")
        if names is None:
            raise ValueError(f"{self.name}: its sequence is not declared by field names")
        if self.sequence_chained:
            return pl.col(names[0]) + 1, pl.col(names[1])
        return pl.col(names[0]), pl.col(names[-1])

    @property
    def sequence_group_name(self) -> str:
        """The group whose counter this channel's sequence numbers count in."""
        return self.sequence_group or self.name

    def with_layout(self, layout: Layout | None) -> Channel:
        """A copy with ``layout`` (``None``: none), checked as the constructor checks it.

        Raises
        ------
        ValueError
            If the channel is exploded, or ``layout`` does not fit its model
            (:meth:`Layout.check_model <wsresearch.layout.Layout.check_model>`).
        """
        if layout is not None:
            self._check_layout(layout)
        return self.model_copy(update={"layout": layout})

    def _check_layout(self, layout: Layout) -> None:
        if self.explode is not None:
            raise ValueError(f"{self.name}: a layout gives one row per message; "
                             "an exploded channel cannot have one")
        layout.check_model(self.model, self.name)

    @model_validator(mode="after")
    def _check_columns(self) -> Channel:
        # The store's own check, run here so a bad channel fails where it is declared.
        check_channel(self.name, self.model, self.explode)
        if self.layout is not None:
            self._check_layout(self.layout)
        for extractor, names in self.field_names.items():
            unknown = [n for n in names if n not in self.model.model_fields]
            if unknown:
                raise ValueError(f"{self.name}: {extractor} names {unknown}, not fields of "
                                 f"{self.model.__name__} ({list(self.model.model_fields)})")
        return self


QuoteSource = Literal["channel", "book"]
QUOTE_SOURCES: tuple[QuoteSource, ...] = ("channel", "book")
"""Where ``normalized("quotes")`` takes the quotes from: the spec's channels that give them
(a ticker), or the order books (a row each time a valid book's top changes)."""

# Fields that change how messages become rows: a spec whose origin is recorded
# cannot keep it once one of these is changed by hand.
_ROW_FIELDS = frozenset({"channels", "type_of", "health", "control", "control_texts",
                         "control_sequence", "error_types", "error_text", "errors",
                         "dedupe_ttl", "max_dedupe_size", "check_interval"})

KEPT_FIELDS = ("quotes", "snapshot_interval", "snapshot_depth", "exchange", "book_sync")
"""The fields of plain values that shape the tables and that :meth:`FeedSpec.replace` sets
without dropping the spec's origin: the origin keeps them (:attr:`SpecOrigin.replaced`),
so a recording, or a parallel export's part, rebuilds the spec as replaced. ``book_sync``
is kept only as ``None`` (no books); another object drops the origin."""


def check_replaced(replaced: dict[str, Any]) -> dict[str, Any]:
    """``replaced`` if an origin can keep it (:attr:`SpecOrigin.replaced`).

    Raises
    ------
    ValueError
        For a field not of :data:`KEPT_FIELDS`, or a ``book_sync`` that is not ``None``.
    """
    unknown = sorted(set(replaced) - set(KEPT_FIELDS))
    if unknown:
        raise ValueError(f"an origin keeps only the fields {list(KEPT_FIELDS)}, not {unknown}")
    if replaced.get("book_sync") is not None:
        raise ValueError("an origin keeps book_sync only as None (no books)")
    return replaced


Replaced = Annotated[dict[str, Any], AfterValidator(check_replaced)]
"""Fields of :data:`KEPT_FIELDS` an origin keeps (:func:`check_replaced`). Where a model
holds them, an empty one is left out of its dump (``exclude_if``): a manifest is then as
it was before they were kept."""


class SpecOrigin(BaseModel):
    """How an adapter built a spec, so a recording can rebuild it (:attr:`Recording.spec`).

    Only adapters in :mod:`wsresearch.exchanges` record an origin, and only
    JSON arguments that decide rows (symbols, channels): never a secret, a URL
    or connection settings.

    Attributes
    ----------
    adapter
        The adapter module's name in :mod:`wsresearch.exchanges` (e.g. ``"generic"``).
    arguments
        Keyword arguments for its ``spec()``, besides ``url``.
    replaced
        Fields of :data:`KEPT_FIELDS` set after the adapter built the spec (by
        :meth:`FeedSpec.replace`, or an adapter's keyword overrides): the rebuilt spec
        gets them too. A manifest keeps them beside ``spec_origin``, as
        ``spec_replaced``, where a wsresearch older than the field does not look.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    adapter: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    arguments: dict[str, Any] = Field(default_factory=dict)
    replaced: Replaced = Field(default_factory=dict, exclude_if=lambda replaced: not replaced)

    def with_replaced(self, fields: Mapping[str, Any]) -> SpecOrigin:
        """A copy that keeps ``fields`` as replaced too, over those it keeps already."""
        return self.model_copy(update={"replaced": self.replaced | dict(fields)})


class FeedSpec(BaseModel):
    """Everything that decides how a feed's messages become rows.

    Parameters
    ----------
    url
        ``ws://`` or ``wss://`` URL.
    channels
        The channels to validate and keep.
    type_of
        Maps a decoded message to its type name (``None`` when it has none).
    subscribe
        Messages sent, in order, on every connect (after ``auth``).
    auth
        A message, or a callable returning one, sent first on every connect.
    health
        Stream name to its :class:`~wsresearch.health.StreamConfig`. Streams
        without one are not judged.
    queue
        Inbound queue policy.
    connection
        How to connect: reconnect, heartbeat, limits, headers (``None``: the defaults).
    redact
        JSON keys whose values are secrets, masked wherever sent messages are
        shown or stored.
    control
        Type names that are protocol chatter (acks, pongs, heartbeats): counted
        as ``control``, never rejected.
    control_texts
        Whole messages that are not JSON but protocol chatter (OKX answers a
        ``ping`` with the text ``pong``): counted as ``control``.
    control_sequence
        For an exchange that numbers every message of a connection, whatever its
        channel (Coinbase Advanced Trade's ``sequence_num``): maps a decoded
        ``control`` message (an ack, a message of a channel the spec does not
        subscribe) to its number, or ``None``. The number counts in the sequence
        group :data:`CONNECTION_GROUP` (key ``None``), where the channels count
        theirs, so a message the spec does not keep still moves the count on and
        the next one makes no false gap.
    book_sync
        The exchange's rule for keeping order books from its book channels (a
        :class:`~wsresearch.book.BookRule`; adapters set it when a book channel is
        subscribed): the pipeline then keeps one book per symbol (``Feed.book``).
    snapshot_interval, snapshot_depth
        The order books' snapshots (``normalized("book_snapshots")``): every
        ``snapshot_interval`` seconds of receive time (``None``: none), the best
        ``snapshot_depth`` levels a side.
    quotes
        Where ``normalized("quotes")`` takes its rows when not told (``source=``): the
        channels that give quotes (``"channel"``: a ticker), or the order books
        (``"book"``: a row each time a book's top changes; needs ``book_sync``). ``None``:
        the channels', where one gives quotes, else the books'. Adapters choose the books
        wherever they keep them and the exchange's ticker tells the top less often than
        the book changes (every exchange's but Binance's, whose ``bookTicker`` tells each
        change of it): a live feed, a replay and an export then all follow that choice.
    rest_url
        The base of the exchange's REST API, for book snapshots (``None``: the
        exchange's own; a :class:`~wsresearch.testing.Simulator` sets its own port).
    error_types
        Type names of the exchange's error reports (subscription rejected,
        invalid symbol): each is counted as ``exchange_error`` and reported
        through ``Feed.on_error`` as an :class:`~wsresearch.errors.ExchangeError`.
        (Called ``errors`` before; that name still works, with a warning.)
    error_text
        Maps a decoded error report to the exchange's own message (default:
        the message's text).
    description
        A line saying what this feed is.
    dedupe_ttl
        Seconds a de-dup key is remembered.
    max_dedupe_size
        De-dup cache capacity.
    check_interval
        Seconds between health checks.
    exchange
        The exchange's name in normalized tables (``binance``, ``binance-usdm``,
        ``kraken-futures``...; set by the adapters). Default: the adapter's name.
    origin
        Set by exchange adapters: how to rebuild this spec from a recording.
        Dropped by :meth:`replace` when a field that decides rows changes.

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> class Trade(BaseModel):
    ...     type: str
    ...     id: int
    >>> spec = FeedSpec(url="ws://127.0.0.1:9000", channels=[Channel(name="trade", model=Trade)],
    ...                 type_of=lambda m: m.get("type"))
    >>> spec.channel_names
    ['trade']
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True,
                              allow_inf_nan=False)

    url: str
    channels: tuple[Channel, ...] = Field(min_length=1)
    type_of: Callable[[Any], str | None]
    subscribe: tuple[OutboundMessage, ...] = ()
    auth: OutboundMessage | Callable[[], OutboundMessage] | None = None
    health: dict[str, StreamConfig] = Field(default_factory=dict)
    queue: QueueConfig = QueueConfig()
    connection: ConnectionConfig = ConnectionConfig()
    redact: tuple[str, ...] = DEFAULT_REDACT
    control: frozenset[str] = frozenset()
    control_texts: frozenset[str] = frozenset()
    control_sequence: Callable[[Any], int | None] | None = None
    book_sync: Any = None
    snapshot_interval: float | None = Field(1.0, gt=0, le=86_400)
    snapshot_depth: int = Field(10, ge=1, le=1_000)
    quotes: QuoteSource | None = None
    rest_url: str | None = None
    error_types: frozenset[str] = frozenset()
    error_text: Callable[[Any], str] | None = None
    description: str = ""
    dedupe_ttl: float = Field(60.0, gt=0, le=7 * 86_400)
    max_dedupe_size: int = Field(10_000, ge=1)
    check_interval: float = Field(1.0, ge=MIN_CHECK_INTERVAL, le=MAX_CHECK_INTERVAL)
    exchange: str = ""
    origin: SpecOrigin | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        try:
            return validate_ws_url(url)
        except InvalidURLError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("rest_url")
    @classmethod
    def _check_rest_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"rest_url must be an http:// or https:// URL, got "
                             f"{redact_url(url)!r}")
        return url

    @field_validator("connection", mode="before")
    @classmethod
    def _default_connection(cls, connection: Any) -> Any:
        return ConnectionConfig() if connection is None else connection

    @model_validator(mode="before")
    @classmethod
    def _errors_renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "errors" in data:
            warnings.warn("FeedSpec(errors=) is now FeedSpec(error_types=): the type names of "
                          "the exchange's error reports", DeprecationWarning, stacklevel=2)
            data = {("error_types" if k == "errors" else k): v for k, v in data.items()}
        return data

    @property
    def errors(self) -> frozenset[str]:
        """Deprecated name of :attr:`error_types`."""
        warnings.warn("FeedSpec.errors is now FeedSpec.error_types", DeprecationWarning,
                      stacklevel=2)
        return self.error_types

    @model_validator(mode="before")
    @classmethod
    def _description_masks_url(cls, data: Any) -> Any:
        # A description that names the URL (the raw adapter's does) must not carry
        # its credentials into reprs, the console and recordings' manifests.
        if isinstance(data, dict) and isinstance(data.get("url"), str) and isinstance(
            data.get("description"), str
        ):
            url = data["url"]
            data = data | {"description": data["description"].replace(url, redact_url(url))}
        return data

    @model_validator(mode="after")
    def _check_quotes(self) -> FeedSpec:
        if self.quotes == "book" and self.book_sync is None:
            raise ValueError("quotes='book' takes the quotes from the order books, but the "
                             "spec keeps none (book_sync is None)")
        return self

    @model_validator(mode="after")
    def _check_names(self) -> FeedSpec:
        names = [channel.name for channel in self.channels]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"channel names must be unique; repeated: {repeated}")
        streams = {channel.stream_name for channel in self.channels}
        unknown = sorted(set(self.health) - streams)
        if unknown:
            raise ValueError(
                f"health configured for unknown stream(s) {unknown}; streams: {sorted(streams)}"
            )
        for label, declared in (("control", self.control), ("error_types", self.error_types)):
            overlap = sorted(declared & set(names))
            if overlap:
                raise ValueError(f"type(s) {overlap} are both channels and {label}")
        both = sorted(self.control & self.error_types)
        if both:
            raise ValueError(f"type(s) {both} are both control and error_types")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Credentials shown masked: the URL's, and the redact keys' values in the
        # auth and subscribe messages (a notebook displays a spec in full).
        for name, value in super().__repr_args__():
            if name == "url":
                value = redact_url(value)
            elif name == "auth" and not callable(value):
                value = mask_auth(value, self.redact)
            elif name == "subscribe":
                value = tuple(mask(message, self.redact) for message in value)
            yield name, value

    @property
    def exchange_name(self) -> str:
        """The ``exchange`` of normalized tables: :attr:`exchange`, or the adapter's name.

        ``unknown`` for a spec built by hand that names none.
        """
        return self.exchange or (self.origin.adapter if self.origin is not None else "unknown")

    def normalized(self, kind: str, frames: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
        """The ``kind`` table (:mod:`wsresearch.normalize`) of this spec's native ``frames``.

        Raises
        ------
        ValueError
            For a kind that is not one of :data:`~wsresearch.normalize.KINDS`.
        """
        return normalize(kind, frames, {c.name: c.normalized for c in self.channels},
                         self.exchange_name)

    @property
    def channel_names(self) -> list[str]:
        """Channel names, in order."""
        return [channel.name for channel in self.channels]

    @property
    def streams(self) -> list[str]:
        """Health stream names, in channel order, without repeats."""
        return list(dict.fromkeys(channel.stream_name for channel in self.channels))

    def channel(self, name: str) -> Channel:
        """The channel called ``name``.

        Raises
        ------
        UnknownChannelError
            Listing the channels there are.
        """
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise UnknownChannelError(f"unknown channel {name!r}; this spec has {self.channel_names}")

    def with_url(self, url: str) -> FeedSpec:
        """A copy pointed at ``url`` (a simulator, a replay server, a proxy)."""
        return FeedSpec.model_validate(self._fields() | {"url": url})

    def with_resync(self, *channels: str) -> FeedSpec:
        """A copy that reconnects for a fresh snapshot on a sequence gap in ``channels``.

        Default: every channel with a ``sequence`` extractor. The origin is kept:
        resyncing changes when connections are replaced, not how messages become rows.

        Raises
        ------
        UnknownChannelError
            For a name the spec does not have.
        ValueError
            For a channel without a ``sequence`` extractor.
        """
        names = channels or tuple(c.name for c in self.channels if c.sequence is not None)
        for name in names:
            if self.channel(name).sequence is None:
                raise ValueError(f"channel {name!r} has no sequence numbers to resync on")
        updated = tuple(
            c.model_copy(update={"resync_on_gap": True}) if c.name in names else c
            for c in self.channels
        )
        return FeedSpec.model_validate(self._fields() | {"channels": updated})

    def replace(self, **changes: Any) -> FeedSpec:
        """A validated copy with ``changes`` applied (e.g. ``queue=QueueConfig(...)``).

        Changing a field that decides rows (channels, routing, health, de-dup, the
        functions that read sequences and errors) drops :attr:`origin`, as the adapter
        would no longer rebuild this spec. The fields of :data:`KEPT_FIELDS` (where quotes
        come from, the snapshot grid, the exchange's name, books taken away) are kept in
        the origin instead (:attr:`SpecOrigin.replaced`), so that a recording of the spec
        replays as replaced; a ``book_sync`` of one's own drops it. Taking the books away
        (``book_sync=None``) takes their quotes with them: ``quotes="book"`` becomes
        ``None``, unless ``quotes`` is given too.
        """
        if "origin" not in changes and (
                _ROW_FIELDS & set(changes)
                or changes.get("book_sync") is not None):
            changes = changes | {"origin": None}
        if ("book_sync" in changes and changes["book_sync"] is None and "quotes" not in changes
                and self.quotes == "book"):
            changes = changes | {"quotes": None}
        spec = FeedSpec.model_validate(self._fields() | changes)
        kept = [name for name in KEPT_FIELDS
                if name in changes and getattr(spec, name) != getattr(self, name)]
        if spec.origin is None or "origin" in changes or not kept:
            return spec
        # Validated above: the fields as the new spec has them, book_sync only as None.
        return spec.model_copy(update={"origin": spec.origin.with_replaced(
            {name: getattr(spec, name) for name in kept})})

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in type(self).model_fields}
