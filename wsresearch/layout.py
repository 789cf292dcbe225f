r"""Layouts: the exact text of a channel's messages, read into typed columns in one pass.

A :class:`Layout` is a template of a channel's messages as the exchange writes them, key
order and all, with a placeholder for each value::

    Layout('{"stream":"<_:name>@bookTicker","data":{"u":<update_id:int>,"s":<symbol:str>,'
           '"b":<bid:decimal>,"B":<bid_qty:decimal>,"a":<ask:decimal>,"A":<ask_qty:decimal>}}')

It compiles to one regular expression that polars runs over a whole column of messages
in native code (:meth:`Layout.decode`): a matching message's values become typed columns
with no Python object per message. That is the columnar path a replay takes
(:mod:`wsresearch.replay`); the pydantic model stays the contract. A message that does
not match the template exactly (another key order, whitespace, an escape in a string, a
number too long to be read the same two ways) is simply not decoded here, and goes
through the model as before.

Each kind of placeholder admits only text that JSON, the model and polars read alike:

============  ======================================  =================================
kind          matches                                 column
============  ======================================  =================================
``int``       an integer an ``Int64`` holds           ``Int64``
``float``     a number without exponent, up to 16     ``Float64``
              digits each side of the point (not a
              bare ``-0``, the model's integer 0)
``decimal``   a string holding such a number          ``Float64`` (the model reads the
              (``"61837.63000000"``)                  text as a float)
``str``       a string with no escape and no          ``String``
              control character; ``str(a|b)``: one
              of the texts listed
``bool``      ``true`` or ``false``                   ``Boolean``
``ms``        an integer of milliseconds (at most     ``Int64`` of ns (the ``NsFromMs``
              13 digits, within 64 bits as ns)        fields of the adapters)
``name``      the characters of a string other than   not kept: routing text such as
              ``"``, ``\``, ``@`` and controls        a stream name's symbol
``levels``    an array of ``["price","amount"]``      ``List(Array(Float64, 2))`` (a
              pairs, each a ``decimal`` text, or      book diff's levels: the model's
              ``[]``                                  ``list[tuple[float, float]]``)
``changes``   an array of ``["buy"|"sell","price",    ``List(Struct(side, price,
              "size"]`` triples, the numbers          size))`` (Coinbase's level
              ``decimal`` texts, or ``[]``            changes: a list of models)
``iso``       a UTC time ``"YYYY-MM-DDTHH:MM:SS``     ``Int64`` of ns (the ``NsFromIso``
              ``[.fraction]Z"``, 1970 to 2259, up     fields of the adapters)
              to 9 fractional digits
============  ======================================  =================================

A placeholder is ``<field:kind>``, ``field`` being the model's field (not its alias), or
``<_:kind>`` for text that must be there but is not kept. A model field the template
leaves out must default to ``None`` (the optional fields of another market).

A layout is a promise: every message it matches is a message of its channel that the
model validates to exactly the decoded values. :func:`check_layout` tests that promise on
given messages; the test suite holds every layout of the adapters to it, on the real
frames in ``data/`` and on generated ones; and a replay tries each layout's
:meth:`Layout.examples` before it uses it (see ``docs/layout.md``).
"""

from __future__ import annotations

import re
import struct
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import polars as pl
from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from .clock import iso_ns, ns_from_ms
from .exactness import SUSPECT_LENGTH, SUSPECT_PATTERN
from .frames import polars_schema

__all__ = ["KINDS", "Kind", "Layout", "check_layout"]

_INT = r"-?(?:0|[1-9][0-9]{0,18})"
_NUMBER = r"-?(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,16})?"
_BARE_NUMBER = r"0|-?0\.[0-9]{1,16}|-?[1-9][0-9]{0,15}(?:\.[0-9]{1,16})?"
"""A JSON number the model and polars read alike: JSON's ``-0`` is the integer 0 to the
model, but ``-0.0`` to polars, so it is left out (``-0.0`` itself reads alike)."""
_MS = r"-?(?:0|[1-9][0-9]{0,12})"
_PAIR = rf'\["{_NUMBER}","{_NUMBER}"\]'
_LEVELS = rf"\[(?:{_PAIR}(?:,{_PAIR})*)?\]"
_CHANGE = rf'\["(?:buy|sell)","{_NUMBER}","{_NUMBER}"\]'
_CHANGES = rf"\[(?:{_CHANGE}(?:,{_CHANGE})*)?\]"
_ISO = (r"(?:19[7-9][0-9]|2[01][0-9][0-9]|22[0-5][0-9])-(?:0[1-9]|1[0-2])-"
        r"(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
        r"(?:\.[0-9]{1,9})?")
"""A UTC time whose ns an Int64 holds, to the second as ``datetime`` reads it (no leap
second: a day's calendar is checked when it is read)."""
_TEXT = r'[^"\\\x00-\x1f]*'
_NAME = r'[^"\\@\x00-\x1f]*'
_MAX_MS = (2**63 - 1) // 1_000_000
"""The most milliseconds whose ns an Int64 holds."""


@dataclass(frozen=True)
class Kind:
    """A placeholder kind: the text it admits and the column it gives.

    Attributes
    ----------
    token
        The regular expression of the JSON text it admits; its group captures the value.
    dtype
        The column's dtype; ``None`` for text that is matched but not kept.
    example
        A text it admits, for the example messages of :meth:`Layout.examples`.
    """

    token: str
    dtype: pl.DataType | None
    example: str


KINDS: Mapping[str, Kind] = {
    "int": Kind(f"({_INT})", pl.Int64(), "7"),  # and within Int64's range
    "float": Kind(f"({_BARE_NUMBER})", pl.Float64(), "1.5"),
    "decimal": Kind(f'"({_NUMBER})"', pl.Float64(), '"1.5"'),
    "str": Kind(f'"({_TEXT})"', pl.String(), '"x"'),
    "bool": Kind("(true|false)", pl.Boolean(), "true"),
    "ms": Kind(f"({_MS})", pl.Int64(), "1700000000000"),
    "name": Kind(_NAME, None, "x"),
    "levels": Kind(f"({_LEVELS})", pl.List(pl.Array(pl.Float64, 2)), '[["1.5","2"]]'),
    "changes": Kind(f"({_CHANGES})", pl.List(pl.Struct({
        "side": pl.String, "price": pl.Float64, "size": pl.Float64})),
        '[["buy","1.5","2"],["sell","1.6","0"]]'),
    "iso": Kind(f'"({_ISO})Z"', pl.Int64(), '"2021-04-17T16:43:37.075687Z"'),
}
"""The placeholder kinds and the column each gives (see the module's table)."""

_META = frozenset("\\.+*?()|[]{}^$#&-~")


def _literal(text: str) -> str:
    """``text`` as a regular expression that matches it alone (in the syntax polars uses)."""
    return "".join("\\" + c if c in _META else c for c in text)


def _choice(placeholder: str, kind: str, options: str) -> str:
    """The token of ``<field:str(a|b)>``: one of the texts listed, as a JSON string."""
    texts = options.split("|")
    if kind != "str" or not all(_OPTION.fullmatch(text) for text in texts):
        raise ValueError(f"{placeholder}: only str takes a list of texts, each without "
                         '", \\ or control characters')
    return '"(' + "|".join(_literal(text) for text in texts) + ')"'


_PLACEHOLDER = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*):([a-z]+)(?:\(([^()<>]*)\))?>")
_LOOKALIKE = re.compile(r"<[^<>\"]*:[^<>\"]*>")
_OPTION = re.compile(r'[^"\\\x00-\x1f]+')


class Layout:
    """A channel's messages as exact text, with placeholders for the values.

    Parameters
    ----------
    template
        The message as the exchange writes it, each value a ``<field:kind>`` placeholder
        (kinds: :data:`KINDS`) or ``<_:kind>`` for text that is not kept.

    Raises
    ------
    ValueError
        For an unknown kind, a field named twice, a kept ``name`` placeholder, or a
        template with no placeholder.

    Examples
    --------
    >>> layout = Layout('{"type":"trade","id":<trade_id:int>,"price":<price:decimal>}')
    >>> dict(layout.fields)
    {'trade_id': 'int', 'price': 'decimal'}
    >>> texts = pl.Series(['{"type":"trade","id":7,"price":"1.50"}', '{"id": 7}'])
    >>> layout.decode(texts).to_dicts()
    [{'trade_id': 7, 'price': 1.5}, {'trade_id': None, 'price': None}]
    """

    def __init__(self, template: str) -> None:
        if not isinstance(template, str):
            raise TypeError(f"a layout's template is text, got {type(template).__name__}")
        parts: list[str] = []
        pieces: list[str | tuple[str, str, tuple[str, ...] | None]] = []
        fields: dict[str, str] = {}
        captured: list[tuple[str, str]] = []  # every placeholder's group, and its kind
        end = 0
        for found in _PLACEHOLDER.finditer(template):
            name, kind, options = found.groups()
            if kind not in KINDS:
                raise ValueError(f"unknown placeholder kind {kind!r} in {found[0]}; "
                                 f"the kinds are {list(KINDS)}")
            literal = template[end:found.start()]
            token = KINDS[kind].token if options is None else _choice(found[0], kind, options)
            parts.append(_literal(literal))
            pieces += [literal, (name, kind, None if options is None else
                                 tuple(options.split("|")))]
            if name == "_":  # matched, not kept: captured unnamed, for the inexact check
                group = f"__{len(pieces) // 2}"
                parts.append(token.replace("(", f"(?P<{group}>", 1) if "(" in token
                             else f"(?P<{group}>{token})")
                captured.append((group, kind))
            elif KINDS[kind].dtype is None:
                raise ValueError(f"{found[0]}: a {kind} placeholder is not kept; "
                                 f"write <_:{kind}>")
            elif name in fields:
                raise ValueError(f"field {name!r} appears twice in the layout")
            else:
                fields[name] = kind
                parts.append(token.replace("(", f"(?P<{name}>", 1))
                captured.append((name, kind))
            end = found.end()
        if not fields:
            raise ValueError("a layout needs at least one <field:kind> placeholder that "
                             "keeps a field")
        parts.append(_literal(template[end:]))
        pieces.append(template[end:])
        literals = [piece for piece in pieces if isinstance(piece, str)]
        stray = next((m[0] for text in literals if (m := _LOOKALIKE.search(text))), None)
        if stray is not None:
            raise ValueError(f"{stray} is not a placeholder: write <field:kind> with a field "
                             f"name and one of the kinds {list(KINDS)}")
        self._template = template
        self._anchor = max(literals, key=len)
        self._fields = MappingProxyType(fields)
        self._choices = MappingProxyType({
            piece[0]: piece[2] for piece in pieces
            if not isinstance(piece, str) and piece[0] != "_" and piece[2] is not None})
        self._pattern = "^" + "".join(parts) + "$"
        self._captured = tuple(captured)
        self._bounded = _bounded(pieces)
        self._pieces = tuple(pieces)  # the last: a Layout is a value from here on

    @property
    def template(self) -> str:
        """The template it was made from."""
        return self._template

    @property
    def anchor(self) -> str:
        """The longest text every matching message holds: a cheap first filter."""
        return self._anchor

    @property
    def fields(self) -> Mapping[str, str]:
        """Each kept field and its kind, in template order."""
        return self._fields

    @property
    def choices(self) -> Mapping[str, tuple[str, ...]]:
        """The texts a ``<field:str(a|b)>`` placeholder admits, per field."""
        return self._choices

    @property
    def pattern(self) -> str:
        """The regular expression a message must match in full."""
        return self._pattern

    def examples(self, words: Iterable[str] = ()) -> list[str]:
        """Messages the layout matches: one of plain values, then one per other value.

        The others are each listed text of a ``str(a|b)`` placeholder, and each of
        ``words`` in every ``str`` and ``name`` placeholder (where the kind admits it). A
        replay routes them, with ``words`` the feed's type names, to be sure that what the
        layout matches is its channel's, whatever text its placeholders hold.
        """
        def value(kind: str, options: tuple[str, ...] | None) -> str:
            return f'"{options[0]}"' if options else KINDS[kind].example

        def render(changed: int, text: str) -> str:
            return "".join(
                piece if isinstance(piece, str) else text if index == changed
                else value(piece[1], piece[2]) for index, piece in enumerate(self._pieces))

        found = [render(-1, "")]
        for index, piece in enumerate(self._pieces):
            if isinstance(piece, str):
                continue
            _, kind, options = piece
            others = [f'"{o}"' for o in options[1:]] if options else (
                [f'"{w}"' for w in words if _OPTION.fullmatch(w)] if kind == "str" else
                [w for w in words if re.fullmatch(_NAME, w)] if kind == "name" else [])
            found.extend(render(index, other) for other in others)
        return found

    def decode(self, texts: pl.Series) -> pl.DataFrame:
        """Each message's values as typed columns; a row of nulls where it does not match.

        A row matches only if the whole text matches and every value is in range (an
        ``ms`` value whose ns would not fit 64 bits does not).
        """
        return texts.str.extract_groups(self.pattern).struct.unnest().select(self._typed())

    def decode_lazy(self, frame: pl.LazyFrame, column: str, keep: Sequence[str] = (),
                    *, exact: bool = False) -> pl.LazyFrame:
        """:meth:`decode` of ``frame``'s ``column``, beside its ``keep`` columns, as a query.

        So that several layouts' decodes run together (``pl.collect_all``), each on
        a core of its own. With ``exact``, a message holding a number a float may not keep
        exactly (``exactness.SUSPECT_PATTERN``, which the per-message path counts as
        inexact) has no row, so that it goes through the model. Only the messages with a
        value long enough to hold one are searched for it, where the template shows that
        no such number can lie outside the values (no long number in its text, no bare
        value beside a digit or a point); otherwise every message is.
        """
        return self._decoder(column, tuple(keep), exact=exact)(frame)

    def _decoder(self, column: str, keep: tuple[str, ...], *,
                 exact: bool) -> Callable[[pl.LazyFrame], pl.LazyFrame]:
        """:meth:`decode_lazy` of any frame, its expressions built once.

        For a caller that decodes many frames alike (a replay's chunks): building the
        expressions costs more than planning the query on a small chunk.
        """
        values = pl.col(column).str.extract_groups(self.pattern).struct.unnest()
        if not exact:
            typed = self._typed()
            return lambda frame: frame.select(*keep, values).select(*keep, *typed)
        text = pl.col("__text")
        searched = (pl.when("__long").then(text).otherwise(pl.lit("")) if self._bounded
                    else text)
        first = [*keep, pl.col(column).alias("__text"), values]
        # An array's items, split once for both its values and their lengths.
        split = [_quoted(pl.col(group)).alias(_ITEMS + group)
                 for group, kind in self._captured if kind in ("levels", "changes")]
        second = [*keep, "__text", *self._typed(split=True),
                  self._long(split=True).alias("__long")]
        plain = ~searched.str.contains(SUSPECT_PATTERN).fill_null(False)
        last = [*keep, *self.fields]
        return lambda frame: (frame.select(first).with_columns(split).select(second)
                              .filter(plain).select(last))

    def _long(self, *, split: bool = False) -> pl.Expr:
        """Whether a message has a value long enough to hold an inexact number.

        A text or a number of :data:`SUSPECT_LENGTH` characters or more, or an item of an
        array of levels or changes as long; integers, times and booleans hold no point
        (an ``iso`` time's longest run of digits and a point is 12 characters). With
        ``split``, an array's items are read from their column (see :meth:`_typed`).
        """
        checks = []
        for group, kind in self._captured:
            value = pl.col(group)
            if kind in ("str", "name", "float", "decimal"):
                checks.append(value.str.len_bytes() >= SUSPECT_LENGTH)
            elif kind in ("levels", "changes"):
                items = pl.col(_ITEMS + group) if split else _quoted(value)
                checks.append(items.list.eval(
                    pl.element().str.len_bytes() >= SUSPECT_LENGTH).list.any())
        return pl.any_horizontal(checks).fill_null(False) if checks else pl.lit(False)

    def _typed(self, *, split: bool = False) -> list[pl.Expr]:
        """Each field's typed column, from the text column of its name that the pattern gave.

        With ``split``, an array's items (:func:`_quoted`) are read from a column of their
        own, ``__items_`` and its field's name, which the query made once for this and for
        :meth:`_long`.
        """
        columns = []
        matched = pl.col(next(iter(self.fields))).is_not_null()
        for name, kind in self.fields.items():
            text = pl.col(name)
            if kind == "bool":
                columns.append(text == "true")
            elif kind == "ms":
                ms = text.cast(pl.Int64, strict=False)
                matched = matched & (ms.abs() <= _MAX_MS).fill_null(False)
                columns.append(ms * 1_000_000)
            elif kind == "int":  # 19 digits may be more than an Int64 holds: no match
                value = text.cast(pl.Int64, strict=False)
                matched = matched & value.is_not_null()
                columns.append(value)
            elif kind == "str":
                columns.append(text)
            elif kind == "levels":  # [["p","a"],...]: pairs of numbers
                items = pl.col(_ITEMS + name) if split else _quoted(text)
                columns.append(items.list.eval(_present.cast(pl.Float64).reshape((-1, 2))))
            elif kind == "changes":  # [["side","p","a"],...]: triples, then structs
                items = pl.col(_ITEMS + name) if split else _quoted(text)
                item = pl.element().arr.get
                columns.append(items.list.eval(_present.reshape((-1, 3))).list.eval(
                    pl.struct(side=item(0), price=item(1).cast(pl.Float64),
                              size=item(2).cast(pl.Float64))))
            elif kind == "iso":  # the seconds as datetime reads them (a real day), then ns
                seconds = (text.str.slice(0, 19).str.strptime(
                    pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S", strict=False).dt.epoch("s"))
                matched = matched & seconds.is_not_null()
                columns.append(seconds * 1_000_000_000
                               + text.str.slice(20).str.pad_end(9, "0").cast(pl.Int64))
            else:
                columns.append(text.cast(pl.Float64))
        return [pl.when(matched).then(column).alias(name)
                for name, column in zip(self.fields, columns, strict=True)]

    def matches(self, texts: pl.Series) -> pl.Series:
        """Whether each message matches and decodes (the rows :meth:`decode` fills)."""
        decoded = self.decode(texts)
        return decoded[next(iter(self.fields))].is_not_null().alias("matches")

    def check_model(self, model: type[BaseModel], channel: str = "") -> None:
        """Refuse a layout whose columns are not ``model``'s, or that leaves a required field out.

        Raises
        ------
        ValueError
            If a placeholder names no field of ``model``, its kind's dtype is not the
            field's column dtype, the field has validators or constraints (an ``ms``
            field: one before-validator, the adapters' ``NsFromMs``; an ``iso`` field,
            ``NsFromIso``), a ``changes`` field's items are not plain (see
            ``_items_problem``), a ``Literal`` field is not given texts it admits
            (``<side:str(buy|sell)>``), or a field that does not default to ``None`` is
            left out. A model's own ``model_validator`` is not
            seen here: :func:`check_layout` on real messages is the proof.
        """
        where = f"channel {channel!r}: " if channel else ""
        reshaping = _reshaping(model)
        if reshaping:
            raise ValueError(f"{where}{model.__name__}'s model_config sets {reshaping}, "
                             "which change values a layout reads as they are")
        schema = polars_schema(model)
        validated = _validated(model)
        for name, kind in self.fields.items():
            if name not in schema:
                raise ValueError(f"{where}layout field {name!r} is not a field of "
                                 f"{model.__name__} ({list(schema)})")
            if schema[name] != KINDS[kind].dtype:
                raise ValueError(f"{where}layout field {name!r} is <{kind}>, a "
                                 f"{KINDS[kind].dtype} column, but {model.__name__}.{name} "
                                 f"is a {schema[name]} column")
            info = model.model_fields[name]
            expected = [_PARSED[kind]] if kind in _PARSED else []
            if name in validated or [_step(m) for m in _metadata(info)] != expected:
                raise ValueError(f"{where}{model.__name__}.{name} has validators or "
                                 "constraints a layout cannot apply" + (
                                     " (an ms field is the adapters' NsFromMs, an iso field "
                                     "their NsFromIso)" if kind in _PARSED else "")
                                 + ": leave it out of layouts")
            problem = _items_problem(kind, info.annotation)
            if problem:
                raise ValueError(f"{where}{model.__name__}.{name}: {problem}: leave it out "
                                 "of layouts")
            admitted = _literal_texts(info.annotation)
            if admitted is not None and not set(self.choices.get(name, ("",))) <= admitted:
                raise ValueError(f"{where}{model.__name__}.{name} admits only "
                                 f"{sorted(admitted)}: write <{name}:str(" +
                                 "|".join(sorted(admitted)) + ")>")
        for name, info in model.model_fields.items():
            if name not in self.fields and (info.is_required() or info.default is not None):
                raise ValueError(f"{where}the layout leaves out {model.__name__}.{name}, "
                                 "which does not default to None")

    def left_out(self, model: type[BaseModel]) -> list[str]:
        """``model``'s fields the layout leaves out: ``None`` in every row it decodes."""
        return [name for name in model.model_fields if name not in self.fields]

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "_pieces"):
            raise AttributeError(f"a Layout is a value: {name!r} cannot be changed")
        super().__setattr__(name, value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and other.template == self.template

    def __hash__(self) -> int:
        return hash(self.template)

    def __repr__(self) -> str:
        return f"Layout({self.template!r})"


def _items_problem(kind: str, annotation: Any) -> str:
    """What keeps a ``changes`` field's items from reading as the kind does.

    The column's dtype says only that the items are structs of a side and two floats;
    the kind needs a model of plain ``price`` and ``size`` and a ``side`` that admits both
    ``buy`` and ``sell``, without validators of its fields or settings that reshape them.
    (A ``levels`` field's pairs with a constraint have no column dtype: refused already.)
    An empty text when there is nothing in the way (and for every other kind).
    """
    if kind != "changes":
        return ""
    items = _unwrapped(annotation)
    item = get_args(items)[0] if get_origin(items) is list and get_args(items) else None
    if not (isinstance(item, type) and issubclass(item, BaseModel)):
        return "its items are not models"
    if _reshaping(item) or _validated(item):
        return f"{item.__name__} reshapes or validates its fields"
    for field, info in item.model_fields.items():
        if _metadata(info):
            return f"{item.__name__}.{field} has validators or constraints"
    side = _literal_texts(item.model_fields["side"].annotation)
    if side is not None and not {"buy", "sell"} <= side:
        return f"{item.__name__}.side does not admit both buy and sell"
    return ""


def _reshaping(model: type[BaseModel]) -> list[str]:
    """The :data:`_RESHAPING` settings ``model``'s ``model_config`` sets."""
    return sorted(key for key in _RESHAPING if model.model_config.get(key))


def _validated(model: type[BaseModel]) -> set[str]:
    """The fields of ``model`` that a ``field_validator`` of its own runs on."""
    validated = {name for decorator in model.__pydantic_decorators__.field_validators.values()
                 for name in decorator.info.fields}
    if "*" in validated:  # @field_validator("*") runs on every field
        validated |= set(model.model_fields)
    return validated


_PARSED = {"ms": ns_from_ms, "iso": iso_ns}
"""The one before-validator a field of these kinds has: the adapters' ``NsFromMs`` and
``NsFromIso``, which the kind's decode does."""


_BARE = frozenset({"int", "float", "ms", "bool", "name"})
"""Kinds whose text is not quoted or bracketed: what is beside it could extend a number."""


def _bounded(pieces: Sequence[str | tuple[str, str, tuple[str, ...] | None]]) -> bool:
    """Whether a template keeps every inexact number of a matching message within a value.

    Its text holds no such number, and each bare value has text beside it (or the
    template's start or end) that is neither a digit nor a point.
    """
    last = len(pieces) - 1
    for index, piece in enumerate(pieces):
        if isinstance(piece, str):
            if re.search(SUSPECT_PATTERN, piece):
                return False
            continue
        if piece[1] not in _BARE:
            continue
        before, after = pieces[index - 1], pieces[index + 1]
        assert isinstance(before, str)  # text and values alternate
        assert isinstance(after, str)
        if ((before and before[-1] in _DIGIT_OR_POINT) or (not before and index - 1 > 0)
                or (after and after[0] in _DIGIT_OR_POINT) or (not after and index + 1 < last)):
            return False
    return True


_DIGIT_OR_POINT = frozenset("0123456789.")


def _quoted(text: pl.Expr) -> pl.Expr:
    """The quoted texts of a matched array of arrays of them (``[["a","b"],...]``), in order.

    The text was matched in full, so its values are what lies between the quotes: split
    out (three times faster than searching for them). ``[]`` splits into one empty text,
    which :data:`_present` drops.
    """
    return (text.str.replace_all('"],["', '","', literal=True)
            .str.strip_chars('[]"').str.split('","'))


_ITEMS = "__items_"
"""Before a field's name, the column of its array's items (:func:`_quoted`) in a query."""

_present = pl.element().filter(pl.element() != "")
"""In a list of :func:`_quoted` texts, the values (none of which is empty)."""


_RESHAPING = ("strict", "str_strip_whitespace", "str_to_lower", "str_to_upper",
              "str_min_length", "str_max_length", "coerce_numbers_to_str")
"""``model_config`` settings under which a model reads a value otherwise than its text."""


def _unwrapped(annotation: Any) -> Any:
    """The type an optional annotation (``X | None``) holds; any other annotation as is."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


def _metadata(info: FieldInfo) -> list[Any]:
    """A field's validators and constraints, those inside an optional type's member too."""
    inner = _unwrapped(info.annotation)
    return [*info.metadata, *(get_args(inner)[1:] if get_origin(inner) is Annotated else ())]


def _step(metadata: Any) -> Any:
    """A field's metadata item as compared: a before-validator by its function."""
    return metadata.func if isinstance(metadata, BeforeValidator) else metadata


def _literal_texts(annotation: Any) -> set[str] | None:
    """The texts a ``Literal`` annotation (or an optional one) admits; ``None`` otherwise."""
    annotation = _unwrapped(annotation)
    if get_origin(annotation) is Literal:
        return {value for value in get_args(annotation) if isinstance(value, str)}
    return None


def _same(decoded: Any, read: Any) -> bool:
    """Whether two values are the same: of one type, and a float to the bit (``-0.0``).

    Containers are compared item by item; a list read from a column and the model's
    tuple are the same container (a column holds either as one array).
    """
    if isinstance(decoded, list | tuple) and isinstance(read, list | tuple):
        return len(decoded) == len(read) and all(map(_same, decoded, read))
    if isinstance(decoded, dict) and isinstance(read, BaseModel):  # a struct, a model
        fields = read.__dict__
        return decoded.keys() == fields.keys() and all(
            _same(decoded[name], value) for name, value in fields.items())
    if type(decoded) is not type(read):
        return False
    if isinstance(read, float):
        return struct.pack("<d", decoded) == struct.pack("<d", read)
    return bool(decoded == read)


def check_layout(layout: Layout, model: type[BaseModel], texts: Iterable[str]) -> list[str]:
    """Where ``layout`` and ``model`` disagree on ``texts``: an empty list when they agree.

    For each text the layout matches, the model must validate it (as JSON) to exactly the
    values the layout decodes, defaults included. The test suite runs this over every
    adapter layout on real and generated messages; run it on a sample of your own
    channel's messages before you give it a layout.

    Parameters
    ----------
    layout
        The layout to check.
    model
        The channel's model.
    texts
        Messages of the channel, as received.

    Returns
    -------
    list[str]
        One line per disagreement, naming the text and the field.
    """
    texts = list(texts)
    decoded = layout.decode(pl.Series(texts, dtype=pl.String)).to_dicts()
    defaults = dict.fromkeys(layout.left_out(model))
    problems = []
    for text, values in zip(texts, decoded, strict=True):
        if values[next(iter(layout.fields))] is None:
            continue
        try:
            found = model.model_validate_json(text).__dict__
        except Exception as exc:  # the layout matched a message the model refuses
            problems.append(f"{text[:120]!r}: the model refuses it: {exc}")
            continue
        expected = values | defaults
        for name, value in found.items():
            if not _same(expected.get(name), value):
                problems.append(f"{text[:120]!r}: {name} decodes to {expected.get(name)!r}, "
                                f"the model gives {value!r}")
    return problems
