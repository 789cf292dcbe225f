"""Validated messages as one polars DataFrame per channel.

Building a DataFrame per message would cost far more than validating it, so
:class:`FrameStore` takes rows (one plain tuple per message, laid out as
:data:`Row` says: the model's fields and its receive metadata), keeps them column
by column in plain lists, and turns pending rows into a polars chunk when
:meth:`FrameStore.frame` is asked for, or once ``batch_rows`` have piled up.
A str, an int or a float in a list is nothing the garbage collector walks, where a
row tuple per message would be, until the build (a list or nested-model field stays an
object it tracks). Chunks are cached and extended, so calling
``frame()`` in a notebook loop pays only for the new rows, and a long session
holds its rows in Arrow memory rather than as Python objects (a tenth of the size).

Column types come from the model's annotations (``int`` → ``Int64``, or
``UInt64`` for a field constrained to ``ge=0``; ``float`` → ``Float64``, ``str`` →
``String``, ``bool`` → ``Boolean``, ``Decimal`` → ``Decimal(38, 18)``,
``datetime`` → ``Datetime("us", "UTC")``, ``Optional[X]`` → ``X``, ``Literal`` of
strings → ``String``, ``list[X]`` and homogeneous tuples → ``List``, a nested
model → ``Struct``), so an empty channel still has the right schema. Other
annotations are left to polars to infer.

Every value is stored exactly or not at all. The feed holds each message to
what its columns keep (:class:`ColumnCheck`): an int beyond 64 bits, or a decimal
beyond 20 digits before the point or 18 after, makes the message a counted
``schema_error`` naming the field, never a null. Datetimes are stored in UTC: aware values are
converted, naive ones are taken as UTC (exchanges publish UTC), so one naive
value among aware ones cannot poison a channel.

A store may keep only each channel's newest rows (``max_rows``, a ring), or none
(``max_rows=0``, for a recorder that keeps rows on disk only); :meth:`FrameStore.added`
counts every row either way.

A channel may *explode* one list-of-models field: each item becomes a row, with
the message's other fields repeated, for exchanges that batch several trades
into one frame. :func:`check_channel` says whether a model (and its exploded
field) can be a channel at all; the spec asks it when a channel is declared, so
a mistake surfaces there rather than when the first row arrives.
"""

from __future__ import annotations

import datetime as dt
import decimal
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from itertools import chain, repeat
from operator import is_, itemgetter
from typing import Any, Literal, TypeAlias, Union, cast, get_args, get_origin

import annotated_types
import polars as pl
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ._limits import INT64_MAX, INT64_MIN, UINT64_MAX
from .errors import UnknownChannelError

__all__ = [
    "META_COLUMNS",
    "ROW_LAYOUT",
    "ColumnCheck",
    "FrameStore",
    "Row",
    "check_channel",
    "polars_schema",
]

META_COLUMNS: dict[str, pl.DataType] = {
    "recv_wall_ns": pl.Int64(),
    "recv_mono_ns": pl.Int64(),
    "generation": pl.Int64(),
    "exchange_ns": pl.Int64(),
    "frame_seq": pl.Int64(),
}
"""Columns added to every channel frame: receive times (ns), connection generation, the
exchange's own time of the message in ns (null where the channel has none), and the
``seq`` of the frame in the session's recording (null when not recording)."""

Row: TypeAlias = tuple[dict[str, Any], int, int, int, int | None, int | None]
"""One message as :meth:`FrameStore.extend` takes it, positions named by :data:`ROW_LAYOUT`.

``(fields, generation, recv_mono_ns, recv_wall_ns, exchange_ns, frame_seq)``:
the validated model's ``__dict__`` (field name to value), the connection
generation, the receive times in ns (monotonic, then wall), the exchange's own
time in ns or ``None``, and the frame's recording ``seq`` or ``None``. A plain
tuple rather than a named one: the pipeline builds one per message, and a
literal tuple is the cheapest object Python makes."""

ROW_LAYOUT: tuple[str, ...] = (
    "fields", "generation", "recv_mono_ns", "recv_wall_ns", "exchange_ns", "frame_seq",
)
"""What each position of a :data:`Row` holds, in order (the names of the metadata columns
they fill)."""

# Where each metadata column sits in a Row, in META_COLUMNS order; the fields are at 0.
_META_INDEX = tuple(ROW_LAYOUT.index(column) for column in META_COLUMNS)
_first = itemgetter(0)

# Fold cached chunks into one after this many appends, so repeated frame()
# calls on a live feed do not leave a DataFrame of thousands of tiny chunks.
_MAX_CHUNKS = 32

_SIMPLE: dict[Any, pl.DataType] = {
    int: pl.Int64(),
    float: pl.Float64(),
    str: pl.String(),
    bool: pl.Boolean(),
    bytes: pl.Binary(),
    decimal.Decimal: pl.Decimal(38, 18),
    dt.datetime: pl.Datetime("us", "UTC"),
    dt.date: pl.Date(),
}

_DECIMAL_DIGITS, _DECIMAL_PLACES = 38, 18


def _unsigned(constraints: Iterable[Any]) -> bool:
    """Whether constraints (``ge=0``, ``gt=0``...) keep an int from being negative."""
    for item in constraints:
        if isinstance(item, FieldInfo):
            nested = _unsigned(item.metadata)
        elif isinstance(item, annotated_types.Ge):
            nested = _at_least(item.ge, 0)
        else:
            nested = isinstance(item, annotated_types.Gt) and _at_least(item.gt, -1)
        if nested:
            return True
    return False


def _at_least(bound: Any, floor: int) -> bool:
    try:
        return bool(bound >= floor)
    except TypeError:
        return False


def _dtype(annotation: Any, constraints: Iterable[Any] = ()) -> pl.DataType | None:
    """The polars dtype for a field annotation, or ``None`` to let polars infer it."""
    if annotation is int and _unsigned(constraints):
        return pl.UInt64()
    if annotation in _SIMPLE:
        return _SIMPLE[annotation]
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return _dtype(members[0], constraints) if len(members) == 1 else None
    if origin is Literal:
        values = get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return pl.String()
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return pl.Int64()
    if origin is typing.Annotated:
        inner, *extra = get_args(annotation)
        return _dtype(inner, [*constraints, *extra])
    if origin is list or origin is tuple:
        fixed = origin is tuple and Ellipsis not in get_args(annotation)
        args = tuple(a for a in get_args(annotation) if a is not Ellipsis)
        if not args or any(a != args[0] for a in args):
            return None
        inner = _dtype(args[0])
        if inner is None:
            return None
        # A fixed-size tuple of one type (a book level: price, size) is an Array.
        return pl.Array(inner, len(args)) if fixed else pl.List(inner)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = polars_schema(annotation)
        if any(dtype is None for dtype in fields.values()):
            return None
        return pl.Struct(fields)  # type: ignore[arg-type]
    return None


def check_channel(name: str, model: type[BaseModel], explode: str | None = None) -> None:
    """Refuse a model (and exploded field) that cannot be a channel's columns.

    The one check behind both :class:`~wsresearch.spec.Channel` and
    :class:`FrameStore`, so a spec that validates always builds a store.

    Parameters
    ----------
    name
        The channel's name, for the message.
    model
        The model whose fields become the columns.
    explode
        The list-of-models field whose items become the rows, if any.

    Raises
    ------
    ValueError
        If a model field is named like a metadata column, or ``explode`` is not
        a ``list`` of a pydantic model, or one of that model's fields clashes
        with another column of the channel.
    """
    clash = sorted(set(model.model_fields) & set(META_COLUMNS))
    if clash:
        raise ValueError(
            f"channel {name!r}: model {model.__name__} has field(s) {clash} that clash with "
            f"the metadata columns {sorted(META_COLUMNS)}; rename them (a pydantic alias "
            "keeps the JSON key)"
        )
    if explode is None:
        return
    info = model.model_fields.get(explode)
    args = get_args(info.annotation) if info is not None else ()
    item = args[0] if len(args) == 1 else None
    if (info is None or get_origin(info.annotation) is not list
            or not (isinstance(item, type) and issubclass(item, BaseModel))):
        raise ValueError(
            f"channel {name!r}: explode={explode!r} needs a field {explode!r} of type "
            f"list[<model>] in {model.__name__}"
        )
    others = set(model.model_fields) - {explode}
    clash = sorted(set(item.model_fields) & (others | set(META_COLUMNS)))
    if clash:
        raise ValueError(
            f"channel {name!r}: explode={explode!r}: item field(s) {clash} of "
            f"{item.__name__} clash with the other columns of {model.__name__}"
        )


def polars_schema(model: type[BaseModel]) -> dict[str, pl.DataType | None]:
    """Map each field of ``model`` to its polars dtype (``None`` where polars should infer).

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> class Trade(BaseModel):
    ...     price: float
    ...     side: str | None = None
    >>> polars_schema(Trade)
    {'price': Float64, 'side': String}
    """
    return {name: _dtype(field.annotation, field.metadata)
            for name, field in model.model_fields.items()}


class ColumnCheck:
    """Finds the rows whose values a channel's columns cannot keep exactly.

    A model accepts any Python int or Decimal; its columns do not: ``Int64`` (or
    ``UInt64`` for a field constrained to ``ge=0``) and ``Decimal(38, 18)``. Built
    from a channel's :func:`polars_schema`, :meth:`bad_rows` checks a batch of
    validated messages, column by column (a ``min``/``max`` per int column on the
    common path), so the pipeline can reject the few that do not fit, with a reason,
    before they become nulls.

    Examples
    --------
    >>> import polars as pl
    >>> check = ColumnCheck({"id": pl.Int64(), "price": pl.Float64()})
    >>> check.bad_rows([{"id": 1, "price": 1.0}, {"id": 2**64, "price": 2.0}])
    {1: 'id: 18446744073709551616 does not fit a 64-bit int column'}
    """

    def __init__(self, schema: Mapping[str, pl.DataType | None]) -> None:
        self._checks = [(name, dtype) for name, dtype in schema.items()
                        if dtype is not None and _checked(dtype)]

    def __bool__(self) -> bool:
        return bool(self._checks)

    def bad_rows(self, rows: list[dict[str, Any]]) -> dict[int, str]:
        """Row index to what does not fit, for each row that has such a value."""
        bad: dict[int, str] = {}
        for name, dtype in self._checks:
            values = list(map(itemgetter(name), rows))
            for index, detail in _misfits(values, dtype):
                bad.setdefault(index, f"{name}{detail}")
        return bad


def _checked(dtype: pl.DataType) -> bool:
    """Whether values of ``dtype`` can be out of its range (ints, decimals, inside too)."""
    if isinstance(dtype, pl.Int64 | pl.UInt64 | pl.Decimal):
        return True
    if isinstance(dtype, pl.List | pl.Array):
        return _checked(_instance(dtype.inner))
    if isinstance(dtype, pl.Struct):
        return any(_checked(_instance(f.dtype)) for f in dtype.fields)
    return False


def _misfits(values: list[Any], dtype: pl.DataType) -> list[tuple[int, str]]:
    """``(index, detail)`` of each value that ``dtype`` cannot hold exactly."""
    if isinstance(dtype, pl.Int64 | pl.UInt64):
        low, high = (0, UINT64_MAX) if isinstance(dtype, pl.UInt64) else (
            INT64_MIN, INT64_MAX)
        try:  # the common path: no None, so min and max run in C
            if not values or (low <= min(values) and max(values) <= high):
                return []
        except TypeError:  # None among them
            present = [v for v in values if v is not None]
            if not present or (low <= min(present) and max(present) <= high):
                return []
        kind = "an unsigned 64-bit" if low == 0 else "a 64-bit"
        return [(i, f": {v} does not fit {kind} int column") for i, v in enumerate(values)
                if v is not None and not low <= v <= high]
    if isinstance(dtype, pl.Decimal):
        return [(i, f": {v} does not fit Decimal(38, 18) (at most 20 digits before "
                    "the point and 18 after)") for i, v in enumerate(values)
                if v is not None and not _decimal_fits(v)]
    if isinstance(dtype, pl.List | pl.Array):
        owners = [i for i, v in enumerate(values) if v for _ in v]
        items = [x for v in values if v for x in v]
        return [(owners[j], f"[]{detail}")
                for j, detail in _misfits(items, _instance(dtype.inner))]
    if isinstance(dtype, pl.Struct):
        found: list[tuple[int, str]] = []
        for field in dtype.fields:
            inner = _instance(field.dtype)
            if not _checked(inner):
                continue
            members = [(i, _member(v, field.name)) for i, v in enumerate(values)
                       if v is not None]
            found += [(members[j][0], f".{field.name}{detail}")
                      for j, detail in _misfits([m for _, m in members], inner)]
        return found
    return []


def _member(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


def _decimal_fits(value: Any) -> bool:
    """Whether ``Decimal(38, 18)`` holds ``value`` exactly: 20 digits before the point, 18 after.

    Judged on the digits alone (trailing zeros do not count), with no decimal context:
    context arithmetic would round, or raise, on a value of more than 28 digits.
    """
    if not isinstance(value, decimal.Decimal):
        return True
    if not value.is_finite():
        return False  # NaN and infinity have no column value
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if not any(digits):
        return True  # zero, however it is written
    significant = len(digits)
    while significant > 1 and digits[significant - 1] == 0:
        significant -= 1
        exponent += 1
    places = max(0, -exponent)
    whole = max(0, significant + exponent)
    return places <= _DECIMAL_PLACES and whole <= _DECIMAL_DIGITS - _DECIMAL_PLACES


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def nested_series(name: str, values: list[Any], dtype: pl.DataType) -> pl.Series:
    """A column of a nested ``dtype`` (lists, arrays, structs) from Python values, fast.

    polars converts nested Python values element by element (microseconds per
    inner list: a book frame of 50 levels costs more than validating it). Here
    every level is flattened to plain columns of scalars, converted in one call
    each, and put back together with offsets, in Rust: tens of times faster.
    Values holding ``None`` where a container is expected take polars' own path.
    """
    try:
        return _nested(name, values, dtype)
    except _Irregular:
        return pl.Series(name, [_plain(v) for v in values], dtype=dtype, strict=False)


_is_none = partial(is_, None)


class _Irregular(Exception):
    """A value that the fast path does not take (``None`` for a container, a wrong width)."""


def _instance(dtype: Any) -> pl.DataType:
    """Polars gives inner types as classes or instances; make it an instance."""
    return dtype if isinstance(dtype, pl.DataType) else cast(pl.DataType, dtype())


def _nested(name: str, values: list[Any], dtype: pl.DataType) -> pl.Series:
    # Per item, only C loops (map, chain): a book column holds hundreds of thousands of
    # levels per batch, and a Python step per level would cost more than the rest.
    if isinstance(dtype, pl.List):
        if any(map(_is_none, values)):
            raise _Irregular
        lengths = list(map(len, values))
        inner = _nested(name, list(chain.from_iterable(values)), _instance(dtype.inner))
        return _implode(inner, lengths, dtype)
    if isinstance(dtype, pl.Array):
        width = dtype.size
        if any(map(_is_none, values)) or set(map(len, values)) - {width}:
            raise _Irregular
        flat = _nested(name, list(chain.from_iterable(values)), _instance(dtype.inner))
        return flat.reshape((len(values), width)) if values else pl.Series(name, [], dtype)
    if isinstance(dtype, pl.Struct):
        if any(map(_is_none, values)):
            raise _Irregular
        rows = [v.__dict__ if isinstance(v, BaseModel) else v for v in values]
        fields = [_nested(f.name, [row[f.name] for row in rows], _instance(f.dtype))
                  for f in dtype.fields]
        return pl.DataFrame(fields, schema={f.name: f.dtype for f in dtype.fields}).to_struct(name)
    if isinstance(dtype, pl.Datetime):
        values = _utc(values)
    return pl.Series(name, values, dtype=dtype, strict=False)


def _implode(inner: pl.Series, lengths: list[int], dtype: pl.DataType) -> pl.Series:
    """Rows of ``lengths`` consecutive items of ``inner``, as one List column."""
    name, rows = inner.name, len(lengths)
    if not rows:
        return pl.Series(name, [], dtype)
    row_of = pl.Series("row", range(rows), dtype=pl.UInt32).repeat_by(
        pl.Series(lengths, dtype=pl.UInt32)).explode()
    grouped = (pl.DataFrame({"row": row_of.drop_nulls(), name: inner})
               .group_by("row", maintain_order=True).agg(pl.col(name)))
    if grouped.height == rows:
        return grouped[name].cast(dtype)
    every = pl.DataFrame({"row": pl.Series(range(rows), dtype=pl.UInt32)})
    joined = every.join(grouped, on="row", how="left", maintain_order="left")[name]
    return joined.fill_null(pl.Series([[]], dtype=dtype)).cast(dtype)


class FrameStore:
    """Per-channel row accumulation with on-demand, incremental DataFrames.

    Parameters
    ----------
    channels
        Channel name to the model whose fields become its columns.
    batch_rows
        Pending rows per channel that trigger a conversion to a polars chunk.
    explode
        Channel name to the list-of-models field whose items become its rows.
    max_rows
        Rows kept per channel: ``None`` keeps every row; ``n`` keeps the newest
        ``n`` (a ring: older rows are let go, counted in :meth:`evicted`); ``0``
        keeps none, for a feed whose rows live on disk only (a recorder).

    Raises
    ------
    ValueError
        If a channel cannot be one (:func:`check_channel`), ``explode`` names a
        channel not in ``channels``, or ``max_rows`` is negative.
    """

    def __init__(
        self,
        channels: Mapping[str, type[BaseModel]],
        batch_rows: int = 4096,
        explode: Mapping[str, str] | None = None,
        max_rows: int | None = None,
    ) -> None:
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
        if max_rows is not None and (
                isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0):
            raise ValueError(f"max_rows must be None or an int >= 0, got {max_rows!r}")
        self._batch = batch_rows
        self._max_rows = max_rows
        self._explode = dict(explode or {})
        unknown = sorted(set(self._explode) - set(channels))
        if unknown:
            raise ValueError(f"explode names unknown channel(s) {unknown}; "
                             f"channels: {list(channels)}")
        for name, model in channels.items():
            check_channel(name, model, self._explode.get(name))
        self._schemas = {name: polars_schema(model) for name, model in channels.items()}
        # Pending rows are kept column by column (the fields, then META_COLUMNS), as
        # lists of values: a str, int or float is nothing the garbage collector tracks
        # (a list or nested-model field is), where a row tuple per message is one more
        # object for every collection to walk until the build. The models and their row
        # tuples are freed at once.
        self._fields = {name: tuple(map(itemgetter, schema))
                        for name, schema in self._schemas.items()}
        self._pending: dict[str, list[list[Any]]] = {
            name: self._no_rows(name) for name in self._schemas}
        self._built: dict[str, pl.DataFrame] = {}
        self._chunks: dict[str, int] = {}
        # Rows added per channel. An exploded channel's rows are counted when built
        # (a message's row count is only known then).
        self._added = dict.fromkeys(self._schemas, 0)

    @property
    def channels(self) -> list[str]:
        """Channel names, in spec order."""
        return list(self._schemas)

    @property
    def max_rows(self) -> int | None:
        """Rows kept per channel (``None``: all of them; ``0``: none)."""
        return self._max_rows

    def extend(self, channel: str, rows: Iterable[Row]) -> None:
        """Add a batch of rows, each laid out as :data:`Row` says.

        The rows' values are appended to the channel's pending columns, a C-level pass
        per column; nothing is converted until the next build. With ``max_rows=0`` the
        rows are counted, not read.

        Raises
        ------
        UnknownChannelError
            If ``channel`` is not one of :attr:`channels`.
        ValueError
            For a row not laid out as :data:`Row` says (not a tuple of its six values,
            or its fields without one of the channel's columns); nothing of the batch
            is added.
        """
        batch = rows if isinstance(rows, list) else list(rows)
        self._add(channel, map(_first, batch),
                  [map(itemgetter(index), batch) for index in _META_INDEX], len(batch))

    def extend_columns(
        self, channel: str, fields: Sequence[Mapping[str, Any]], *, generation: int,
        recv_mono_ns: Sequence[int], recv_wall_ns: Sequence[int],
        exchange_ns: Sequence[int | None] | None = None,
        frame_seq: Sequence[int | None] | None = None,
    ) -> None:
        """Add a batch of rows given column by column: :meth:`extend` without the row tuples.

        For a caller that has the batch's values in lists already (the pipeline's batch
        path): ``fields`` holds each row's field dict, the other arguments its
        :data:`META_COLUMNS`, one value per row; ``exchange_ns`` and ``frame_seq`` of
        ``None`` are null in every row.

        Raises
        ------
        UnknownChannelError
            If ``channel`` is not one of :attr:`channels`.
        ValueError
            For a column of another length than ``fields``, or fields without one of the
            channel's columns; nothing of the batch is added.
        """
        count = len(fields)
        lengths = {len(column) for column in (recv_mono_ns, recv_wall_ns, exchange_ns, frame_seq)
                   if column is not None}
        if lengths - {count}:
            raise ValueError(f"channel {channel!r}: every column holds one value per row "
                             f"({count} fields), got lengths {sorted(lengths)}")
        self._add(channel, fields, [  # in META_COLUMNS order
            recv_wall_ns, recv_mono_ns, repeat(generation, count),
            repeat(None, count) if exchange_ns is None else exchange_ns,
            repeat(None, count) if frame_seq is None else frame_seq,
        ], count)

    def _add(self, channel: str, fields: Iterable[Any], meta: Sequence[Iterable[Any]],
             count: int) -> None:
        """Append ``count`` rows to ``channel``'s pending columns, all of them or none."""
        self._check(channel)
        limit = self._max_rows
        if limit == 0 and channel not in self._explode:  # rows live on disk only
            self._added[channel] += count
            return
        pending = self._pending[channel]
        held = len(pending[-1])
        try:  # a list (extend_columns') is read as it is; extend's rows are read here
            dicts = fields if isinstance(fields, list) else list(fields)
            for column, value in zip(pending, self._fields[channel], strict=False):  # meta: below
                column.extend(map(value, dicts))
            for column, values in zip(pending[-len(META_COLUMNS):], meta, strict=True):
                column.extend(values)
            if len(set(map(len, pending))) > 1:  # a column short of values: none is kept
                raise IndexError("the columns came out of different lengths")
        except (KeyError, IndexError, TypeError) as exc:
            for column in pending:  # a failing pass may have appended part of the batch
                del column[held:]
            raise ValueError(f"a row of channel {channel!r} is not laid out as Row says "
                             f"({', '.join(ROW_LAYOUT)}): {type(exc).__name__}: {exc}"
                             ) from None
        if channel not in self._explode:
            self._added[channel] += count
        size = len(pending[-1])
        if size >= self._batch:
            self.frame(channel)
        elif limit is not None and size > limit and channel not in self._explode:
            # Pending rows alone fill the ring: every built row is older than them.
            self._evict_pending(channel, size - limit)

    def extend_frame(self, channel: str, rows: pl.DataFrame) -> None:
        """Add rows already in columns: as :meth:`extend` of the same rows, built.

        ``rows`` has the channel's columns (its fields, then :data:`META_COLUMNS`) with
        their dtypes, as the columnar replay decodes them. Rows added before it are
        built first, so the frame keeps the order rows were added in.

        Raises
        ------
        ValueError
            For an exploded channel (its rows are only known once built).
        """
        self._check(channel)
        if channel in self._explode:
            raise ValueError(f"channel {channel!r} is exploded: add its rows with extend()")
        self._added[channel] += rows.height
        if self._max_rows == 0 or not rows.height:
            return
        self._append(channel, self.frame(channel), rows, "vertical")

    def rows(self, channel: str) -> int:
        """Rows held for ``channel`` now, built and pending (at most ``max_rows``).

        An exploded channel's pending messages are built first, as their row
        count is only known then.
        """
        self._check(channel)
        if channel in self._explode:
            return self.frame(channel).height
        built = self._built.get(channel)
        held = len(self._pending[channel][-1]) + (0 if built is None else built.height)
        return held if self._max_rows is None else min(held, self._max_rows)

    def pending(self, channel: str) -> int:
        """Rows of ``channel`` held as Python values in lists, not yet built into a chunk.

        They are built every ``batch_rows`` rows and whenever the frame is asked for;
        until then each costs Python memory (its values, in lists) rather than Arrow's.
        """
        self._check(channel)
        return len(self._pending[channel][-1])

    def added(self, channel: str) -> int:
        """Rows added to ``channel`` since the store was made or cleared, those let go included."""
        self._check(channel)
        if channel in self._explode:
            self.frame(channel)
        return self._added[channel]

    def evicted(self, channel: str) -> int:
        """Rows of ``channel`` let go to keep within ``max_rows``: those added, less those held."""
        return self.added(channel) - self.rows(channel)

    def frame(self, channel: str) -> pl.DataFrame:
        """The DataFrame of the rows of ``channel`` held now (all of them, or the newest).

        Raises
        ------
        UnknownChannelError
            If ``channel`` is not one of :attr:`channels`.
        """
        self._check(channel)
        pending = self._pending[channel]
        built = self._built.get(channel)
        if built is not None and not pending[-1]:
            return built
        new = self._build(channel, pending)
        self._pending[channel] = self._no_rows(channel)
        if channel in self._explode:
            self._added[channel] += new.height
        return self._append(channel, built, new, "vertical_relaxed")

    def _append(self, channel: str, built: pl.DataFrame | None, new: pl.DataFrame,
                how: Literal["vertical", "vertical_relaxed"]) -> pl.DataFrame:
        """``new`` after ``built`` as ``channel``'s frame, within ``max_rows``; returned."""
        if built is None:
            frame, chunks = new, 1
        else:
            frame, chunks = pl.concat([built, new], how=how, rechunk=False), (
                self._chunks[channel] + 1
            )
            if chunks > _MAX_CHUNKS:
                frame, chunks = frame.rechunk(), 1
        limit = self._max_rows
        if limit is not None and frame.height > limit:
            # A slice shares the chunks it keeps; whole chunks before it are freed.
            frame = frame.tail(limit) if limit else frame.clear()
        self._built[channel], self._chunks[channel] = frame, chunks
        return frame

    def frames(self) -> dict[str, pl.DataFrame]:
        """Every channel's DataFrame."""
        return {name: self.frame(name) for name in self._schemas}

    def take(self, channel: str) -> pl.DataFrame:
        """The rows of ``channel`` held now, handed over and let go (counted as let go).

        For a consumer that writes rows out as they come (an export): the store then
        holds none of them, and :meth:`added` still counts them.

        Raises
        ------
        UnknownChannelError
            If ``channel`` is not one of :attr:`channels`.
        """
        frame = self.frame(channel)
        self._built.pop(channel, None)
        self._chunks.pop(channel, None)
        return frame

    def clear(self) -> None:
        """Forget every row, and the counts of rows added and let go."""
        for name in self._schemas:
            self._pending[name] = self._no_rows(name)
            self._added[name] = 0
        self._built.clear()
        self._chunks.clear()

    def _no_rows(self, channel: str) -> list[list[Any]]:
        """Empty pending columns for ``channel``: one per field, then one per meta column."""
        return [[] for _ in range(len(self._schemas[channel]) + len(META_COLUMNS))]

    def _evict_pending(self, channel: str, count: int) -> None:
        for column in self._pending[channel]:
            del column[:count]
        if self._built.pop(channel, None) is not None:
            self._chunks.pop(channel, None)

    def _build(self, channel: str, pending: list[list[Any]]) -> pl.DataFrame:
        columns = []
        schema = self._schemas[channel]
        for (name, dtype), values in zip(schema.items(), pending, strict=False):  # meta: below
            if dtype is None:
                # Nested models and containers of them: plain Python for polars to infer.
                columns.append(pl.Series(name, [_plain(v) for v in values], strict=False))
            elif dtype.is_nested():
                columns.append(nested_series(name, values, dtype))
            else:
                if isinstance(dtype, pl.Datetime):
                    values = _utc(values)
                columns.append(pl.Series(name, values, dtype=dtype, strict=False))
        for (name, dtype), values in zip(META_COLUMNS.items(), pending[len(schema):],
                                         strict=True):
            columns.append(pl.Series(name, values, dtype=dtype, strict=False))
        frame = pl.DataFrame(columns)
        field = self._explode.get(channel)
        if field is None:
            return frame
        # One row per item: empty lists give no row (explode would give a null one).
        return frame.filter(pl.col(field).list.len() > 0).explode(field).unnest(field)

    def _check(self, channel: str) -> None:
        if channel not in self._schemas:
            raise UnknownChannelError(
                f"unknown channel {channel!r}; this feed has {self.channels}"
            )


def _utc(values: list[Any]) -> list[Any]:
    """Datetimes for a UTC column: naive ones are taken as UTC, aware ones kept (polars converts).

    One naive value among aware ones would otherwise make the whole column unbuildable.
    """
    return [v.replace(tzinfo=dt.UTC) if isinstance(v, dt.datetime) and v.tzinfo is None else v
            for v in values]
