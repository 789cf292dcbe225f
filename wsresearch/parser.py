"""Decode, route, validate and de-duplicate received messages: one outcome for each.

:meth:`MessageParser.parse` takes one raw message and always returns a
:class:`ParseOutcome`; it never raises on anything a peer can send. Every
message ends in exactly one status, and every status is counted:

==================  ==========================================================
``ok``              valid and new
``duplicate``       valid, but its de-dup key was seen within the TTL
``control``         a type declared as control traffic (acks, pongs, heartbeats)
``exchange_error``  a type declared as the exchange's error report (the decoded
                    message is the outcome's message)
``invalid_utf8``    a binary message that is not UTF-8 text
``invalid_json``    not JSON
``unknown_type``    ``type_of`` returned no registered type, or raised
``schema_error``    JSON of a registered type that fails its model (or makes one of
                    its validators raise), or holds a value its columns cannot
                    keep exactly (:meth:`MessageParser.refuse`)
``handler_error``   a valid message made its channel's ``dedupe_key`` raise (the one
                    user function the parser calls)
==================  ==========================================================

Everything but ``ok``, ``duplicate``, ``control`` and ``exchange_error`` is a *reject*: the last
``max_rejects`` of them are kept with their raw text, reason and detail, for
inspection in a notebook.

When ``type_of`` is :func:`by_field` (the type is one key of a JSON object,
as on most exchanges), decoding, routing and validation of a well-formed message
happen in one call into pydantic-core: a tagged union of the registered models,
keyed on that field, parses the JSON straight into the model with no
intermediate Python dict (a quarter less per message). Any message that path does
not accept (bad JSON, an unknown or control type, a schema error) goes through
the general path, which classifies it as above, so the outcomes are the same
either way.

De-duplication uses a :class:`~wsresearch.dedupe.DedupeCache` (the semantics of
:class:`cachetools.TTLCache`, at a sixth of its cost) whose timer is the
injected clock, so an entry expires after ``dedupe_ttl`` seconds of *that*
clock (a replay's virtual time included) or when ``max_dedupe_size`` newer keys
push it out, whichever comes first.

Names: ``type_of`` returns a message's *type name*. A type name registered with a
model is a *channel* (one per :class:`~wsresearch.spec.Channel` of the spec);
the others a parser knows are declared as control traffic or as the exchange's
error reports. :meth:`MessageParser.from_spec` sets all three up from a
:class:`~wsresearch.spec.FeedSpec`.
"""

from __future__ import annotations

import bisect
import inspect
import itertools
import logging
import operator
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel, ValidationError
from pydantic_core import SchemaError, SchemaValidator, from_json
from pydantic_core import core_schema as cs

from .clock import NS_PER_S, Clock, SystemClock
from .dedupe import DedupeCache
from .errors import first_error

if TYPE_CHECKING:
    from .spec import FeedSpec

__all__ = [
    "OUTCOMES",
    "REJECT_REASONS",
    "MessageParser",
    "FieldRouter",
    "ParseOutcome",
    "Reject",
    "by_field",
    "describe_rejects",
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


def describe_rejects(rejects: Mapping[str, int]) -> str:
    """Rejects by reason on one line, for people: every view says them the same way.

    Examples
    --------
    >>> describe_rejects({"invalid_json": 2, "schema_error": 0, "unknown_type": 1})
    'invalid_json 2, unknown_type 1'
    >>> describe_rejects({"invalid_json": 0})
    'none'
    """
    return ", ".join(f"{reason} {n}" for reason, n in rejects.items() if n) or "none"

OUTCOMES: tuple[str, ...] = (OK, DUPLICATE, CONTROL, EXCHANGE_ERROR, *REJECT_REASONS)
"""Every status :meth:`MessageParser.parse` can return."""

_MAX_TTL = 7 * 86_400.0  # a week: longer would only fill the cache
_ASK: Any = object()  # a message's de-dup key, not made yet: ask the channel's dedupe_key
_first = operator.itemgetter(0)


class _Raised(NamedTuple):
    """What a channel's ``dedupe_key`` raised for a message, kept to be reported in its place."""

    error: Exception


# Raw text kept per reject: enough to see what went wrong, bounded in memory.
_MAX_REJECT_TEXT = 4096
# Failing fields named in a schema_error's detail; the rest are counted.
_MAX_DETAIL_ERRORS = 5


class ParseOutcome(NamedTuple):
    """The result of parsing one message.

    Attributes
    ----------
    status
        One of :data:`OUTCOMES`.
    type_name
        The message's type name, when it is one the parser knows: the channel
        (``ok``, ``duplicate``, ``schema_error``, ``handler_error``), the declared
        control type (``control``; for a non-JSON control message, its text) or the
        declared error type (``exchange_error``). ``None`` otherwise.
    message
        The validated model (for ``ok`` and ``duplicate``), the decoded JSON
        (for ``exchange_error``, and ``control`` of a declared type), else ``None``.
    """

    status: str
    type_name: str | None = None
    message: Any = None

    @property
    def ok(self) -> bool:
        """Whether the message was valid and new."""
        return self.status == OK


class Grouped(NamedTuple):
    """A batch's outcomes, and where its valid messages are: the pipeline's batch path.

    Attributes
    ----------
    outcomes
        One per message, in order: what :meth:`MessageParser.parse_batch` returns.
    valid
        Per channel, in order of first appearance, the positions of its ``ok`` and
        ``duplicate`` messages, in order. With ``irregular`` set, a position may also
        be a ``handler_error`` (a de-dup key that failed).
    irregular
        Whether any of ``valid`` is not ``ok``.
    errors
        Whether any outcome is an exchange's error (the pipeline reports each in its place).
    controls
        Whether any outcome is control of a declared type, with its decoded message
        (which a spec's ``control_sequence`` numbers in its place).

    A parser without single-call validation (:attr:`MessageParser.single_call`) groups
    nothing: ``valid`` is empty and every flag is set.
    """

    outcomes: list[ParseOutcome]
    valid: dict[str, list[int]]
    irregular: bool
    errors: bool
    controls: bool


@dataclass(frozen=True, slots=True)
class Reject:
    """A rejected message kept for inspection.

    Attributes
    ----------
    reason
        One of :data:`REJECT_REASONS`.
    raw
        The message as received (text; at most 4096 characters, binary messages
        shown with ``repr``).
    detail
        What the decoder, router, model or ``dedupe_key`` said.
    mono_ns
        When it was parsed, on the parser's clock.
    channel
        The channel the message was routed to, if routing got that far.
    """

    reason: str
    raw: str
    detail: str
    mono_ns: int
    channel: str | None = None


class FieldRouter:
    """A ``type_of`` that reads one key of a JSON object: see :func:`by_field`.

    Parameters
    ----------
    field
        The key whose value is the message's type name.
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
    but it lets :class:`MessageParser` decode and validate well-formed messages
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
    """What the parser needs to know about one channel."""

    model: type[BaseModel]
    dedupe_key: Callable[[Any], Hashable] | None
    # The model's compiled validator, called directly: model_validate() is a
    # Python wrapper around it that costs half a microsecond per message.
    validate: Callable[[Any], BaseModel]
    # One cache per channel: a chatty channel cannot push out a quiet one's keys,
    # and keys need not carry the channel (cheaper to hash).
    cache: DedupeCache | None


class MessageParser:
    """Route raw messages to pydantic models by type name, de-duplicate, and count outcomes.

    Parameters
    ----------
    type_of
        Maps a decoded JSON value to its type name (``None`` when it has none).
        May raise on odd shapes; that is counted as ``unknown_type``.
    max_dedupe_size
        De-dup cache capacity in keys, per channel.
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
        self._dedupe_ttl_ns = round(dedupe_ttl * NS_PER_S)
        self.counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        """Messages per status since creation."""
        self.rejects: deque[Reject] = deque(maxlen=max_rejects)
        """The most recent rejects, oldest first."""

    @classmethod
    def from_spec(cls, spec: FeedSpec, clock: Clock | None = None) -> MessageParser:
        """The parser a :class:`~wsresearch.spec.FeedSpec` describes.

        Its routing, de-dup settings, channels (each with its model and
        ``dedupe_key``), control types and texts, and error types: what a live
        feed and a replay of its recording both need, built one way.

        Parameters
        ----------
        spec
            The feed's description.
        clock
            Time source for de-dup and reject times (default: the system clock).

        Examples
        --------
        >>> from pydantic import BaseModel
        >>> from wsresearch import Channel, FeedSpec, by_field
        >>> class Trade(BaseModel):
        ...     id: int
        >>> spec = FeedSpec(url="ws://127.0.0.1:9000", type_of=by_field("type"),
        ...                 channels=[Channel(name="trade", model=Trade)],
        ...                 control=frozenset({"pong"}))
        >>> parser = MessageParser.from_spec(spec)
        >>> [parser.parse(raw).status for raw in ['{"type":"trade","id":1}', '{"type":"pong"}']]
        ['ok', 'control']
        """
        parser = cls(
            spec.type_of,
            max_dedupe_size=spec.max_dedupe_size,
            dedupe_ttl=spec.dedupe_ttl,
            clock=clock,
        )
        for channel in spec.channels:
            parser.register(channel.name, channel.model, dedupe_key=channel.dedupe_key)
        parser.count_as_control(spec.control)
        parser.count_as_exchange_error(spec.error_types)
        parser.count_texts_as_control(spec.control_texts)
        return parser

    def register(
        self,
        channel: str,
        model: type[BaseModel],
        *,
        dedupe_key: Callable[[Any], Hashable] | None = None,
    ) -> None:
        """Route messages whose ``type_of`` is ``channel`` to ``model``.

        Parameters
        ----------
        channel
            The type name ``type_of`` returns for these messages.
        model
            The pydantic model that validates them.
        dedupe_key
            Maps a valid message to a hashable key; messages with a key seen
            within the TTL are ``duplicate``. ``None`` disables de-dup.

        Raises
        ------
        TypeError
            If ``model`` is not a pydantic model class.
        ValueError
            If ``channel`` is already registered, or declared as control or error.
        """
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            raise TypeError(f"model for {channel!r} must be a pydantic BaseModel subclass")
        if channel in self._routes or channel in self._control or channel in self._errors:
            raise ValueError(f"type {channel!r} is already registered")
        cache = None
        if dedupe_key is not None:
            cache = DedupeCache(
                self._max_dedupe_size, self._dedupe_ttl_ns, self._clock.monotonic_ns
            )
        self._routes[channel] = _Route(
            model, dedupe_key, model.__pydantic_validator__.validate_python, cache
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
            log.debug("no single-call validation for %s: %s", self.channels, exc)
            return
        self._tagged = validator.validate_json
        self._route_of = {route.model: (name, route) for name, route in self._routes.items()}

    def count_as_control(self, type_names: Iterable[str]) -> None:
        """Declare ``type_names`` as control traffic: counted as ``control``, never rejected.

        Acks, pongs and heartbeats are expected and carry no data: they are
        neither rows nor rejects, but they are counted, so every message is.

        Raises
        ------
        ValueError
            If a name is already a channel or an error type.
        """
        for name in type_names:
            if name in self._routes or name in self._errors:
                raise ValueError(f"type {name!r} is registered with a model or as an error")
            self._control.add(name)

    def count_texts_as_control(self, texts: Iterable[str]) -> None:
        """Declare whole non-JSON messages (e.g. OKX's ``pong``) as control traffic, by exact text.

        Without this they would be ``invalid_json`` rejects.
        """
        self._control_texts = self._control_texts | frozenset(texts)

    def count_as_exchange_error(self, type_names: Iterable[str]) -> None:
        """Declare ``type_names`` as the exchange's error reports: status ``exchange_error``.

        The outcome carries the decoded message, so the caller can show the
        exchange's own message.

        Raises
        ------
        ValueError
            If a name is already a channel or a control type.
        """
        for name in type_names:
            if name in self._routes or name in self._control:
                raise ValueError(f"type {name!r} is already registered or control")
            self._errors.add(name)

    @property
    def single_call(self) -> bool:
        """Whether well-formed messages are decoded and validated in one call (:func:`by_field`).

        True when ``type_of`` is a :class:`FieldRouter` and every channel has
        its own model class.
        """
        return self._tagged is not None

    @property
    def channels(self) -> list[str]:
        """Registered channels, in registration order."""
        return list(self._routes)

    def parse(
        self, raw: str | bytes | bytearray | memoryview, now_ns: int | None = None
    ) -> ParseOutcome:
        """Parse one raw message; never raises on bad input.

        Parameters
        ----------
        raw
            The message as received: text, or bytes for a binary message.
        now_ns
            The message's time for de-dup and the reject log (usually its receive
            time), on the parser's clock; ``None`` reads the clock.

        Returns
        -------
        ParseOutcome
            The status, type name and validated message.
        """
        if not isinstance(raw, str):
            try:
                raw = bytes(raw).decode("utf-8")
            except (UnicodeDecodeError, TypeError) as exc:
                return self._reject(INVALID_UTF8, raw, f"binary message is not UTF-8: {exc}",
                                    now_ns=now_ns)
        if self._tagged is not None:
            try:
                message = self._tagged(raw)
                channel, fast_route = self._route_of[message.__class__]
            except Exception:
                pass  # not a valid message of a registered type: classified below
            else:
                return self._accept(fast_route, channel, message, raw, now_ns)
        try:
            # pydantic-core's parser (jiter): about twice as fast as json.loads here.
            decoded = from_json(raw)
        except TypeError:  # a str holding a lone surrogate: not Unicode, so no UTF-8 either
            return self._reject(INVALID_UTF8, raw, "text holds a lone surrogate, which is "
                                "not Unicode", now_ns=now_ns)
        except ValueError as exc:
            if raw in self._control_texts:
                self.counts[CONTROL] += 1
                return _outcome(ParseOutcome, (CONTROL, raw, None))
            return self._reject(INVALID_JSON, raw, str(exc), now_ns=now_ns)
        try:
            type_name = self._type_of(decoded)
        except Exception as exc:
            return self._reject(
                UNKNOWN_TYPE, raw, f"type_of raised {type(exc).__name__}: {exc}", now_ns=now_ns
            )
        try:
            route = self._routes[type_name]  # type: ignore[index]  # misses handled below
        except (KeyError, TypeError):  # TypeError: type_of returned something unhashable
            if isinstance(type_name, str) and type_name in self._control:
                self.counts[CONTROL] += 1
                return _outcome(ParseOutcome, (CONTROL, type_name, decoded))
            if isinstance(type_name, str) and type_name in self._errors:
                self.counts[EXCHANGE_ERROR] += 1
                return _outcome(ParseOutcome, (EXCHANGE_ERROR, type_name, decoded))
            detail = (f"no model registered for type {type_name!r}" if type_name is not None
                      else "the spec's type_of finds no type in it: a message of another "
                           "shape than this feed's (a bare payload where it sends them "
                           "wrapped, say)")
            return self._reject(UNKNOWN_TYPE, raw, detail, now_ns=now_ns)
        # Routed: the type name is a channel from here on.
        try:
            message = route.validate(decoded)
        except ValidationError as exc:
            return self._reject(SCHEMA_ERROR, raw, first_error(exc, _MAX_DETAIL_ERRORS),
                                type_name, now_ns)
        except Exception as exc:  # a model's own validator failed on an odd shape
            return self._reject(
                SCHEMA_ERROR, raw, f"model validator raised {type(exc).__name__}: {exc}",
                type_name, now_ns,
            )
        return self._accept(route, type_name, message, raw, now_ns)

    def route(self, raw: str | bytes) -> str | None:
        """The channel :meth:`parse` would give ``raw``'s outcome, counting nothing.

        ``None`` for a message it would not tie to a channel (not UTF-8, not JSON, a
        control or error type, or no type). A columnar replay asks this of the messages
        its layouts do not match, to know which channels they belong to.
        """
        if not isinstance(raw, str):
            try:
                raw = bytes(raw).decode("utf-8")
            except (UnicodeDecodeError, TypeError):
                return None
        if self._tagged is not None:
            try:
                return self._route_of[self._tagged(raw).__class__][0]
            except Exception:
                pass  # not a valid message of a registered type: routed below
        try:
            type_name = self._type_of(from_json(raw))
        except Exception:
            return None
        try:
            return type_name if type_name in self._routes else None
        except TypeError:  # unhashable
            return None

    def parse_batch(
        self, raws: Sequence[str | bytes], times: Sequence[int]
    ) -> list[ParseOutcome]:
        """Parse messages in order, with the outcomes :meth:`parse` would give one at a time.

        The live feed's path: the common case (a valid message of a registered
        type, decoded and validated in one call by :func:`by_field` routing,
        then de-duplicated) runs inline, without a Python call per step; every
        other message goes through :meth:`parse`.

        Parameters
        ----------
        raws
            The messages as received.
        times
            Each message's time for de-dup and the reject log (its receive time).

        Raises
        ------
        ValueError
            If ``raws`` and ``times`` differ in length.
        """
        return self._parse_grouped(raws, times)[0]

    def _parse_grouped(self, raws: Sequence[str | bytes], times: Sequence[int]) -> Grouped:
        """:meth:`parse_batch`, with the outcomes grouped for the pipeline's batch path.

        A channel's valid messages are de-duplicated together where its cache can
        take them at once (:meth:`DedupeCache.fresh <wsresearch.dedupe.DedupeCache.fresh>`:
        all new, in time order): one set operation for the batch, not a call per
        message. Where it cannot (a repeat, a key that raises or cannot be hashed),
        each message is asked in turn, in the batch's order, as :meth:`parse` does.
        Messages :meth:`parse` handles whole come in their place: the keys before
        them are settled first, so every cache and the reject log see the order
        :meth:`parse` one at a time would.
        """
        tagged, route_of = self._tagged, self._route_of
        valid: dict[str, list[int]] = {}
        out: list[Any] = []  # a valid message stands in for its outcome until its de-dup
        if tagged is None:
            out.extend(itertools.starmap(self.parse, zip(raws, times, strict=True)))
            return Grouped(out, valid, True, True, True)
        add = out.append
        parse = self.parse
        since = 0  # the valid messages from here on wait for their channel's de-dup
        ok = 0
        irregular = errors = controls = False
        for index, (raw, now) in enumerate(zip(raws, times, strict=True)):
            if raw.__class__ is str:
                try:
                    message = tagged(raw)  # str: checked above
                    channel, route = route_of[message.__class__]
                except Exception:  # not a valid message of a registered type
                    pass
                else:
                    positions = valid.get(channel)
                    if positions is None:
                        positions = valid[channel] = []
                    positions.append(index)
                    if route.cache is None:
                        ok += 1
                        add(_outcome(ParseOutcome, (OK, channel, message)))
                    else:
                        add(message)  # its outcome comes with the channel's de-dup
                    continue
            if since < index:  # settled before this message can touch a cache or the log
                irregular |= self._dedupe(valid, since, out, raws, times)
            since = index + 1
            outcome = parse(raw, now)
            add(outcome)
            status = outcome[0]
            if status in (OK, DUPLICATE):
                irregular |= status == DUPLICATE
                valid.setdefault(outcome[1], []).append(index)  # type: ignore[arg-type]
            elif status == EXCHANGE_ERROR:
                errors = True
            elif status == CONTROL and outcome[2] is not None:
                controls = True
        if since < len(out):
            irregular |= self._dedupe(valid, since, out, raws, times)
        self.counts[OK] += ok
        return Grouped(out, valid, irregular, errors, controls)

    def _dedupe(self, valid: dict[str, list[int]], since: int, out: list[Any],
                raws: Sequence[str | bytes], times: Sequence[int]) -> bool:
        """Give the valid messages in ``out`` from ``since`` on their de-dup outcomes.

        Those of channels with a de-dup cache stand there as their messages.
        Returns whether any is not ``ok`` (a duplicate, or a key that failed).
        """
        alone: list[tuple[int, str, Any]] = []  # position, channel, key (or _ASK)
        for channel, found in valid.items():
            route = self._routes[channel]
            cache = route.cache
            positions = found[bisect.bisect_left(found, since):]
            if cache is None or not positions:
                continue
            messages = [out[i] for i in positions]
            stamps = [times[i] for i in positions]
            keys: list[Any] = []
            try:
                keys.extend(map(route.dedupe_key, messages))  # type: ignore[arg-type]
                together = (None not in stamps  # no time given: the clock's, one by one
                            and all(map(operator.le, stamps, itertools.islice(stamps, 1, None)))
                            and cache.fresh(keys, stamps[0]))
            except Exception as exc:  # a key that raises or cannot be hashed: one by one
                together = False
                if len(keys) < len(messages):  # the key after the last one made raised
                    keys.append(_Raised(exc))
            if not together:  # each key is asked for once: those made are kept
                alone.extend(zip(positions, itertools.repeat(channel),
                                 itertools.chain(keys, itertools.repeat(_ASK))))
                continue
            cache.remember(keys, stamps)
            outcomes = map(_outcome, itertools.repeat(ParseOutcome),
                           zip(itertools.repeat(OK), itertools.repeat(channel), messages))
            deque(map(out.__setitem__, positions, outcomes), maxlen=0)
            self.counts[OK] += len(positions)
        if not alone:
            return False
        alone.sort(key=_first)  # the batch's order, across channels: the reject log keeps it
        accept, routes = self._accept, self._routes
        irregular = False
        for index, channel, key in alone:
            outcome = out[index] = accept(routes[channel], channel, out[index],
                                          raws[index], times[index], key)  # type: ignore[arg-type]
            irregular |= outcome[0] != OK
        return irregular

    def _accept(
        self, route: _Route, channel: str | None, message: BaseModel, raw: str,
        now_ns: int | None = None, key: Any = _ASK,
    ) -> ParseOutcome:
        """De-duplicate a valid message of ``channel``: ``ok`` or ``duplicate``.

        ``key`` is the message's de-dup key where it was asked for already (``_ASK``: not
        yet; a :class:`_Raised`: asking raised).
        """
        if route.cache is not None:
            try:
                if key is _ASK:
                    key = route.dedupe_key(message)  # type: ignore[misc]
                elif isinstance(key, _Raised):
                    raise key.error
                if route.cache.seen(key, now_ns):
                    self.counts[DUPLICATE] += 1
                    return _outcome(ParseOutcome, (DUPLICATE, channel, message))
            except Exception as exc:
                return self._key_failed(raw, exc, channel, now_ns)
        self.counts[OK] += 1
        return _outcome(ParseOutcome, (OK, channel, message))

    def _key_failed(
        self, raw: str, exc: Exception, channel: str | None, now_ns: int | None
    ) -> ParseOutcome:
        """A channel's ``dedupe_key`` raised: a ``handler_error`` reject, not a crash."""
        return self._reject(
            HANDLER_ERROR, raw, f"dedupe_key raised {type(exc).__name__}: {exc}", channel,
            now_ns,
        )

    def refuse(
        self, raw: str | bytes, channel: str | None, detail: str, now_ns: int | None = None
    ) -> ParseOutcome:
        """Turn an ``ok`` outcome into a ``schema_error``: the message cannot be stored.

        For a check after validation (a value its column cannot hold exactly): the
        message moves from the ``ok`` count to the ``schema_error`` count and joins the
        reject log with ``detail``.

        Parameters
        ----------
        raw
            The message as received.
        channel
            The channel its ``ok`` outcome named.
        detail
            Why it cannot be stored.
        now_ns
            Its time for the reject log (usually its receive time).
        """
        self.counts[OK] -= 1
        return self._reject(SCHEMA_ERROR, raw, detail, channel, now_ns)

    def cache(self, channel: str) -> DedupeCache | None:
        """``channel``'s de-dup cache (``None`` for a channel without ``dedupe_key``).

        Raises
        ------
        KeyError
            For a channel that is not registered.
        """
        return self._routes[channel].cache

    def dedupe_state(self) -> dict[str, list[tuple[Hashable, int | float]]]:
        """Each de-duplicated channel's cache state (:meth:`DedupeCache.state`)."""
        return {name: route.cache.state() for name, route in self._routes.items()
                if route.cache is not None}

    def load_dedupe_state(self, state: Mapping[str, list[tuple[Hashable, int | float]]]) -> None:
        """Give each channel's cache the state :meth:`dedupe_state` took (others: empty)."""
        for name, route in self._routes.items():
            if route.cache is not None:
                route.cache.load(list(state.get(name, ())))

    @property
    def rejected(self) -> int:
        """Total rejects since creation (all reasons)."""
        counts = self.counts
        return sum(counts[reason] for reason in REJECT_REASONS)

    def _reject(
        self, reason: str, raw: str | bytes | bytearray | memoryview, detail: str,
        channel: str | None = None, now_ns: int | None = None,
    ) -> ParseOutcome:
        self.counts[reason] += 1
        text = raw if isinstance(raw, str) else repr(bytes(raw))
        if len(text) > _MAX_REJECT_TEXT:
            text = text[:_MAX_REJECT_TEXT] + f"… ({len(text)} chars)"
        when = self._clock.monotonic_ns() if now_ns is None else now_ns
        self.rejects.append(Reject(reason, text, detail, when, channel))
        log.debug("rejected message (%s): %s", reason, detail)
        return _outcome(ParseOutcome, (reason, channel, None))

    def __repr__(self) -> str:
        return (
            f"MessageParser(channels={self.channels}, ok={self.counts[OK]}, "
            f"duplicates={self.counts[DUPLICATE]}, rejected={self.rejected})"
        )

