"""Decode, route, validate and de-duplicate inbound frames.

:meth:`MessageParser.parse` takes one raw frame and always returns a
:class:`ParseOutcome`; it never raises on anything a peer can send. Every
frame ends in exactly one status, and every status is counted:

==================  ==========================================================
``ok``              valid, new, handed to the handler
``duplicate``       valid, but its de-dup key was seen within the TTL
``control``         a type declared as control traffic (acks, pongs, heartbeats)
``exchange_error``  a type declared as the exchange's error report (the decoded
                    frame is the outcome's message)
``invalid_utf8``    a binary frame that is not UTF-8 text
``invalid_json``    not JSON
``unknown_type``    ``type_of`` returned no registered type, or raised
``schema_error``    JSON of a registered type that fails its model (or makes one of
                    its validators raise), or holds a value its columns cannot
                    keep exactly (:meth:`MessageParser.refuse`)
``handler_error``   the registered handler raised
==================  ==========================================================

Everything but ``ok``, ``duplicate``, ``control`` and ``exchange_error`` is a *reject*: the last
``max_rejects`` of them are kept with their raw text, reason and detail, for
inspection in a notebook.

When ``type_of`` is :func:`by_field` (the type is one key of a JSON object,
as on most exchanges), decoding, routing and validation of a well-formed frame
happen in one call into pydantic-core: a tagged union of the registered models,
keyed on that field, parses the JSON straight into the model with no
intermediate Python dict (a quarter less per frame). Any frame that path does
not accept (bad JSON, an unknown or control type, a schema error) goes through
the general path, which classifies it as above, so the outcomes are the same
either way.

De-duplication uses a :class:`~wsresearch.dedupe.DedupeCache` (the semantics of
:class:`cachetools.TTLCache`, at a sixth of its cost) whose timer is the
injected clock, so an entry expires after ``dedupe_ttl`` seconds of *that*
clock (a replay's virtual time included) or when ``max_dedupe_size`` newer keys
push it out, whichever comes first.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError
from pydantic_core import SchemaError, SchemaValidator, from_json
from pydantic_core import core_schema as cs

from .clock import Clock, SystemClock
from .dedupe import DedupeCache

__all__ = [
    "OUTCOMES",
    "REJECT_REASONS",
    "DedupeStats",
    "MessageParser",
    "FieldRouter",
    "ParseOutcome",
    "Reject",
    "by_field",
]

log = logging.getLogger(__name__)

OK = "ok"
DUPLICATE = "duplicate"
CONTROL = "control"
EXCHANGE_ERROR = "exchange_error"
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
UNKNOWN_TYPE = "unknown_type"
SCHEMA_ERROR = "schema_error"
HANDLER_ERROR = "handler_error"

REJECT_REASONS: tuple[str, ...] = (
    INVALID_UTF8,
    INVALID_JSON,
    UNKNOWN_TYPE,
    SCHEMA_ERROR,
    HANDLER_ERROR,
)
"""Statuses that count as rejects and are kept in the reject buffer."""

OUTCOMES: tuple[str, ...] = (OK, DUPLICATE, CONTROL, EXCHANGE_ERROR, *REJECT_REASONS)
"""Every status :meth:`MessageParser.parse` can return."""

_NS_PER_S = 1_000_000_000
_MAX_TTL = 7 * 86_400.0  # a week: longer would only fill the cache
# Raw text kept per reject: enough to see what went wrong, bounded in memory.
_MAX_REJECT_TEXT = 4096


class ParseOutcome(NamedTuple):
    """The result of parsing one frame.

    Attributes
    ----------
    status
        One of :data:`OUTCOMES`.
    type
        The routed type, when ``type_of`` produced one.
    message
        The validated model (for ``ok`` and ``duplicate``), the decoded JSON
        (for ``exchange_error``), else ``None``.
    """

    status: str
    type: str | None = None
    message: Any = None

    @property
    def ok(self) -> bool:
        """Whether the frame was valid, new and handled."""
        return self.status == OK


@dataclass(frozen=True, slots=True)
class Reject:
    """A rejected frame kept for inspection.

    Attributes
    ----------
    reason
        One of :data:`REJECT_REASONS`.
    raw
        The frame as received (text; at most 4096 characters, binary frames
        shown with ``repr``).
    detail
        What the decoder, router, model or handler said.
    mono_ns
        When it was parsed, on the parser's clock.
    type
        The routed type, if routing got that far.
    """

    reason: str
    raw: str
    detail: str
    mono_ns: int
    type: str | None = None


@dataclass(frozen=True, slots=True)
class DedupeStats:
    """De-duplication cache figures: current ``size``, ``hits`` (duplicates), ``misses``."""

    size: int
    hits: int
    misses: int


class FieldRouter:
    """A ``type_of`` that reads one key of a JSON object: see :func:`by_field`.

    Parameters
    ----------
    field
        The key whose value is the frame's type name.
    """

    __slots__ = ("field",)

    def __init__(self, field: str) -> None:
        if not isinstance(field, str) or not field:
            raise ValueError(f"the type field must be a non-empty string, got {field!r}")
        self.field = field

    def __call__(self, message: Any) -> Any:
        """``message[field]`` for a JSON object (``None`` if absent); ``None`` otherwise."""
        return message.get(self.field) if isinstance(message, dict) else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldRouter) and other.field == self.field

    def __hash__(self) -> int:
        return hash((FieldRouter, self.field))

    def __repr__(self) -> str:
        return f"by_field({self.field!r})"


def by_field(field: str) -> FieldRouter:
    """Route JSON objects by the value of ``field`` (e.g. ``"type"``, Binance's ``"e"``).

    Equivalent to ``lambda m: m.get(field) if isinstance(m, dict) else None``,
    but it lets :class:`MessageParser` decode and validate well-formed frames
    in a single pydantic-core call, and it has a readable ``repr``.

    Raises
    ------
    ValueError
        If ``field`` is not a non-empty string.

    Examples
    --------
    >>> by_field("type")({"type": "trade", "id": 1}), by_field("type")([1, 2])
    ('trade', None)
    """
    return FieldRouter(field)


# Builds a ParseOutcome without the Python-level namedtuple __new__ (hot path).
_outcome = tuple.__new__


@dataclass(slots=True)
class _Route:
    model: type[BaseModel]
    handler: Callable[[Any], object] | None
    dedupe_key: Callable[[Any], Hashable] | None
    # The model's compiled validator, called directly: model_validate() is a
    # Python wrapper around it that costs half a microsecond per message.
    validate: Callable[[Any], BaseModel]
    # One cache per type: a chatty type cannot push out a quiet type's keys,
    # and keys need not carry the type (cheaper to hash).
    cache: DedupeCache | None


class MessageParser:
    """Route raw frames to pydantic models by type, de-duplicate, and count outcomes.

    Parameters
    ----------
    type_of
        Maps a decoded JSON value to its type name (``None`` when it has none).
        May raise on odd shapes; that is counted as ``unknown_type``.
    max_dedupe_size
        De-dup cache capacity in keys, per type.
    dedupe_ttl
        Seconds a key is remembered.
    clock
        Time source for the TTL and reject timestamps.
    max_rejects
        How many recent rejects to keep.

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> class Trade(BaseModel):
    ...     type: str
    ...     id: int
    >>> parser = MessageParser(type_of=lambda m: m.get("type"))
    >>> parser.register("trade", Trade, dedupe_key=lambda t: t.id)
    >>> [parser.parse(raw).status for raw in
    ...  ['{"type":"trade","id":1}', '{"type":"trade","id":1}', '{"type":"x"}', "{oops"]]
    ['ok', 'duplicate', 'unknown_type', 'invalid_json']
    """

    def __init__(
        self,
        type_of: Callable[[Any], str | None],
        max_dedupe_size: int = 10_000,
        dedupe_ttl: float = 60.0,
        clock: Clock | None = None,
        *,
        max_rejects: int = 1000,
    ) -> None:
        if max_dedupe_size < 1:
            raise ValueError(f"max_dedupe_size must be >= 1, got {max_dedupe_size}")
        if not 0 < dedupe_ttl <= _MAX_TTL:  # NaN fails too
            raise ValueError(f"dedupe_ttl must be > 0 and <= {_MAX_TTL:g} seconds, "
                             f"got {dedupe_ttl}")
        if max_rejects < 0:
            raise ValueError(f"max_rejects must be >= 0, got {max_rejects}")
        self._type_of = type_of
        self._clock = clock or SystemClock()
        self._routes: dict[str, _Route] = {}
        # The by_field fast path: a tagged-union validator of every route, and
        # the route of each model class it can return (rebuilt on register()).
        self._tagged: Callable[[str], BaseModel] | None = None
        self._route_of: dict[type[BaseModel], tuple[str, _Route]] = {}
        self._control: set[str] = set()
        self._errors: set[str] = set()
        self._control_texts: frozenset[str] = frozenset()
        self._max_dedupe_size = max_dedupe_size
        self._dedupe_ttl_ns = round(dedupe_ttl * _NS_PER_S)
        self._hits = 0
        self._misses = 0
        self.counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        """Frames per status since creation."""
        self.rejects: deque[Reject] = deque(maxlen=max_rejects)
        """The most recent rejects, oldest first."""

    def register(
        self,
        type: str,
        model: type[BaseModel],
        handler: Callable[[Any], object] | None = None,
        dedupe_key: Callable[[Any], Hashable] | None = None,
    ) -> None:
        """Route frames whose ``type_of`` is ``type`` to ``model``.

        Parameters
        ----------
        type
            The type name ``type_of`` returns for these frames.
        model
            The pydantic model that validates them.
        handler
            Called with each valid, new message. Optional: a caller can use the
            returned :class:`ParseOutcome` instead.
        dedupe_key
            Maps a valid message to a hashable key; messages with a key seen
            within the TTL are ``duplicate``. ``None`` disables de-dup.

        Raises
        ------
        TypeError
            If ``model`` is not a pydantic model class.
        ValueError
            If ``type`` is already registered or declared as control.
        """
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            raise TypeError(f"model for {type!r} must be a pydantic BaseModel subclass")
        if type in self._routes or type in self._control or type in self._errors:
            raise ValueError(f"type {type!r} is already registered")
        cache = None
        if dedupe_key is not None:
            cache = DedupeCache(
                self._max_dedupe_size, self._dedupe_ttl_ns, self._clock.monotonic_ns
            )
        self._routes[type] = _Route(
            model, handler, dedupe_key, model.__pydantic_validator__.validate_python, cache
        )
        self._build_fast_path()

    def _build_fast_path(self) -> None:
        """Build the one-call validator for :func:`by_field` routing, where it applies.

        It applies when every route has its own model class (the class of the
        result names the route) and pydantic-core accepts the combined schema.
        """
        self._tagged, self._route_of = None, {}
        models = [route.model for route in self._routes.values()]
        if not isinstance(self._type_of, FieldRouter) or len(set(models)) != len(models):
            return
        try:
            validator = SchemaValidator(
                cs.tagged_union_schema(
                    {name: route.model.__pydantic_core_schema__
                     for name, route in self._routes.items()},
                    discriminator=self._type_of.field,
                )
            )
        except (SchemaError, TypeError, KeyError) as exc:  # e.g. unusual model schemas
            log.debug("no single-call validation for %s: %s", self.types, exc)
            return
        self._tagged = validator.validate_json
        self._route_of = {route.model: (name, route) for name, route in self._routes.items()}

    def ignore(self, types: Iterable[str]) -> None:
        """Declare ``types`` as control traffic: counted as ``control``, never rejected."""
        for name in types:
            if name in self._routes or name in self._errors:
                raise ValueError(f"type {name!r} is registered with a model or as an error")
            self._control.add(name)

    def ignore_texts(self, texts: Iterable[str]) -> None:
        """Declare non-JSON frames (e.g. OKX's ``pong``) as control traffic, by exact text."""
        self._control_texts = self._control_texts | frozenset(texts)

    def report_errors(self, types: Iterable[str]) -> None:
        """Declare ``types`` as the exchange's error reports: status ``exchange_error``.

        The outcome carries the decoded frame, so the caller can show the
        exchange's own message.
        """
        for name in types:
            if name in self._routes or name in self._control:
                raise ValueError(f"type {name!r} is already registered or control")
            self._errors.add(name)

    @property
    def single_call(self) -> bool:
        """Whether well-formed frames are decoded and validated in one call (:func:`by_field`).

        True when ``type_of`` is a :class:`FieldRouter` and every registered
        type has its own model class.
        """
        return self._tagged is not None

    @property
    def types(self) -> list[str]:
        """Registered types, in registration order."""
        return list(self._routes)

    def parse(
        self, raw: str | bytes | bytearray | memoryview, now_ns: int | None = None
    ) -> ParseOutcome:
        """Parse one raw frame; never raises on bad input.

        Parameters
        ----------
        raw
            The frame as received: text, or bytes for a binary frame.
        now_ns
            The frame's time for de-dup and the reject log (usually its receive
            time), on the parser's clock; ``None`` reads the clock.

        Returns
        -------
        ParseOutcome
            The status, routed type and validated message.
        """
        if not isinstance(raw, str):
            try:
                raw = bytes(raw).decode("utf-8")
            except (UnicodeDecodeError, TypeError) as exc:
                return self._reject(INVALID_UTF8, raw, f"binary frame is not UTF-8: {exc}",
                                    now_ns=now_ns)
        if self._tagged is not None:
            try:
                message = self._tagged(raw)
                name, fast_route = self._route_of[message.__class__]
            except Exception:
                pass  # not a valid frame of a registered type: classified below
            else:
                return self._accept(fast_route, name, message, raw, now_ns)
        try:
            # pydantic-core's parser (jiter): about twice as fast as json.loads here.
            decoded = from_json(raw)
        except ValueError as exc:
            if raw in self._control_texts:
                self.counts[CONTROL] += 1
                return _outcome(ParseOutcome, (CONTROL, raw, None))
            return self._reject(INVALID_JSON, raw, str(exc), now_ns=now_ns)
        try:
            kind = self._type_of(decoded)
        except Exception as exc:
            return self._reject(
                UNKNOWN_TYPE, raw, f"type_of raised {type(exc).__name__}: {exc}", now_ns=now_ns
            )
        try:
            route = self._routes[kind]  # type: ignore[index]  # misses handled below
        except (KeyError, TypeError):  # TypeError: type_of returned something unhashable
            if isinstance(kind, str) and kind in self._control:
                self.counts[CONTROL] += 1
                return _outcome(ParseOutcome, (CONTROL, kind, None))
            if isinstance(kind, str) and kind in self._errors:
                self.counts[EXCHANGE_ERROR] += 1
                return _outcome(ParseOutcome, (EXCHANGE_ERROR, kind, decoded))
            return self._reject(UNKNOWN_TYPE, raw, f"no model registered for type {kind!r}",
                                now_ns=now_ns)
        try:
            message = route.validate(decoded)
        except ValidationError as exc:
            return self._reject(SCHEMA_ERROR, raw, _summarise(exc), kind, now_ns)
        except Exception as exc:  # a model's own validator failed on an odd shape
            return self._reject(
                SCHEMA_ERROR, raw, f"model validator raised {type(exc).__name__}: {exc}", kind,
                now_ns,
            )
        return self._accept(route, kind, message, raw, now_ns)

    def parse_batch(
        self, raws: Sequence[str | bytes], times: Sequence[int]
    ) -> list[ParseOutcome]:
        """Parse frames in order, with the outcomes :meth:`parse` would give one at a time.

        The live feed's path: the common case (a valid frame of a registered
        type, decoded and validated in one call by :func:`by_field` routing,
        then de-duplicated) runs inline, without a Python call per step; every
        other frame goes through :meth:`parse`.

        Parameters
        ----------
        raws
            The frames as received.
        times
            Each frame's time for de-dup and the reject log (its receive time).

        Raises
        ------
        ValueError
            If ``raws`` and ``times`` differ in length.
        """
        tagged, route_of = self._tagged, self._route_of
        if tagged is None:
            return [self.parse(raw, now) for raw, now in zip(raws, times, strict=True)]
        out: list[ParseOutcome] = []
        add = out.append
        parse, accept = self.parse, self._accept
        ok = hits = misses = 0
        for raw, now in zip(raws, times, strict=True):
            if raw.__class__ is not str:
                add(parse(raw, now))
                continue
            try:
                message = tagged(raw)  # str: checked above
                name, route = route_of[message.__class__]
            except Exception:  # not a valid frame of a registered type
                add(parse(raw, now))
                continue
            if route.handler is not None:
                add(accept(route, name, message, raw, now))
                continue
            cache = route.cache
            if cache is not None:
                try:
                    seen = cache.seen(route.dedupe_key(message), now)  # type: ignore[misc]
                except Exception as exc:
                    add(self._key_failed(raw, exc, name, now))
                    continue
                if seen:
                    hits += 1
                    add(_outcome(ParseOutcome, (DUPLICATE, name, message)))
                    continue
                misses += 1
            ok += 1
            add(_outcome(ParseOutcome, (OK, name, message)))
        counts = self.counts
        counts[OK] += ok
        counts[DUPLICATE] += hits
        self._hits += hits
        self._misses += misses
        return out

    def _accept(
        self, route: _Route, kind: str | None, message: BaseModel, raw: str,
        now_ns: int | None = None,
    ) -> ParseOutcome:
        """De-duplicate a valid message and hand it to its handler."""
        if route.cache is not None:
            try:
                if route.cache.seen(route.dedupe_key(message), now_ns):  # type: ignore[misc]
                    self._hits += 1
                    self.counts[DUPLICATE] += 1
                    return _outcome(ParseOutcome, (DUPLICATE, kind, message))
                self._misses += 1
            except Exception as exc:
                return self._key_failed(raw, exc, kind, now_ns)
        if route.handler is not None:
            try:
                route.handler(message)
            except Exception as exc:
                return self._reject(
                    HANDLER_ERROR, raw, f"handler raised {type(exc).__name__}: {exc}", kind,
                    now_ns,
                )
        self.counts[OK] += 1
        return _outcome(ParseOutcome, (OK, kind, message))

    def _key_failed(
        self, raw: str, exc: Exception, kind: str | None, now_ns: int | None
    ) -> ParseOutcome:
        return self._reject(
            HANDLER_ERROR, raw, f"dedupe_key raised {type(exc).__name__}: {exc}", kind, now_ns
        )

    def refuse(
        self, raw: str | bytes, kind: str | None, detail: str, now_ns: int | None = None
    ) -> ParseOutcome:
        """Turn an ``ok`` outcome into a ``schema_error``: the message cannot be stored.

        For a check after validation (a value its column cannot hold exactly): the
        frame moves from the ``ok`` count to the ``schema_error`` count and joins the
        reject log with ``detail``.
        """
        self.counts[OK] -= 1
        return self._reject(SCHEMA_ERROR, raw, detail, kind, now_ns)

    @property
    def dedupe_stats(self) -> DedupeStats:
        """Keys remembered now (all types), duplicates found, and new keys seen."""
        size = sum(len(route.cache) for route in self._routes.values() if route.cache)
        return DedupeStats(size=size, hits=self._hits, misses=self._misses)

    def clear_dedupe(self) -> None:
        """Forget every de-dup key (hit and miss counts are kept)."""
        for route in self._routes.values():
            if route.cache is not None:
                route.cache.clear()

    @property
    def rejected(self) -> int:
        """Total rejects since creation (all reasons)."""
        counts = self.counts
        return sum(counts[reason] for reason in REJECT_REASONS)

    def _reject(
        self, reason: str, raw: str | bytes | bytearray | memoryview, detail: str,
        kind: str | None = None, now_ns: int | None = None,
    ) -> ParseOutcome:
        self.counts[reason] += 1
        text = raw if isinstance(raw, str) else repr(bytes(raw))
        if len(text) > _MAX_REJECT_TEXT:
            text = text[:_MAX_REJECT_TEXT] + f"… ({len(text)} chars)"
        when = self._clock.monotonic_ns() if now_ns is None else now_ns
        self.rejects.append(Reject(reason, text, detail, when, kind))
        log.debug("rejected frame (%s): %s", reason, detail)
        return _outcome(ParseOutcome, (reason, kind, None))

    def __repr__(self) -> str:
        return (
            f"MessageParser(types={self.types}, ok={self.counts[OK]}, "
            f"duplicates={self.counts[DUPLICATE]}, rejected={self.rejected})"
        )


def _summarise(exc: ValidationError) -> str:
    """One line naming each failing field, e.g. ``price: Input should be a valid number``."""
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
