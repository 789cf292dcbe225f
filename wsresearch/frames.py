"""Validated messages as one polars DataFrame per channel.

Building a DataFrame per message would cost far more than validating it, so
:class:`FrameStore` appends each message to a per-channel list (one tuple per
row: the model and its receive metadata) and turns pending rows into a polars
chunk when :meth:`FrameStore.frame` is asked for, or once ``batch_rows`` have
piled up. Chunks are cached and extended, so calling ``frame()`` in a notebook
loop pays only for the new rows, and a long session holds its rows in Arrow
memory rather than as Python objects (a tenth of the size, and nothing for the
garbage collector to walk).

Column types come from the model's annotations (``int`` → ``Int64``, ``float``
→ ``Float64``, ``str`` → ``String``, ``bool`` → ``Boolean``, ``Decimal`` →
``Decimal``, ``Optional[X]`` → ``X``, ``Literal`` of strings → ``String``,
``list[X]`` and homogeneous tuples → ``List``, a nested model → ``Struct``), so
an empty channel still has the right schema. Other annotations are left to
polars to infer.

A channel may *explode* one list-of-models field (:func:`explode_fields`): each
item becomes a row, with the message's other fields repeated, for exchanges
that batch several trades into one frame.
"""

from __future__ import annotations

import datetime as dt
import decimal
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, cast, get_args, get_origin

import polars as pl
from pydantic import BaseModel

from .errors import UnknownChannelError

__all__ = ["META_COLUMNS", "FrameStore", "explode_fields", "polars_schema"]

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

# A stored row: the model's dict, generation, receive mono and wall ns, exchange ns, seq.
_Row = tuple[dict[str, Any], int, int, int, int | None, int | None]
# Where each metadata column is in a stored row (the model's dict is at 0).
_META_INDEX = (3, 2, 1, 4, 5)

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
    dt.datetime: pl.Datetime("us"),
    dt.date: pl.Date(),
}


def _dtype(annotation: Any) -> pl.DataType | None:
    """The polars dtype for a field annotation, or ``None`` to let polars infer it."""
    if annotation in _SIMPLE:
        return _SIMPLE[annotation]
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return _dtype(members[0]) if len(members) == 1 else None
    if origin is Literal:
        values = get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return pl.String()
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return pl.Int64()
    if origin is typing.Annotated:
        return _dtype(get_args(annotation)[0])
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


def explode_fields(model: type[BaseModel], field: str) -> dict[str, pl.DataType | None]:
    """The columns the items of ``model.field`` give when a channel explodes it.

    Raises
    ------
    ValueError
        If ``field`` is not a ``list`` of a pydantic model, or an item field
        clashes with one of the message's other fields or a metadata column.
    """
    info = model.model_fields.get(field)
    args = get_args(info.annotation) if info is not None else ()
    item = args[0] if len(args) == 1 else None
    if (info is None or get_origin(info.annotation) is not list
            or not (isinstance(item, type) and issubclass(item, BaseModel))):
        raise ValueError(
            f"explode={field!r}: {model.__name__} needs a field {field!r} of type list[<model>]"
        )
    columns = polars_schema(item)
    others = set(model.model_fields) - {field}
    clash = sorted(set(columns) & (others | set(META_COLUMNS)))
    if clash:
        raise ValueError(
            f"explode={field!r}: item field(s) {clash} of {item.__name__} clash with the "
            f"other columns of {model.__name__}"
        )
    return columns


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
    return {name: _dtype(field.annotation) for name, field in model.model_fields.items()}


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


class _Irregular(Exception):
    """A value that the fast path does not take (``None`` for a container, a wrong width)."""


def _instance(dtype: Any) -> pl.DataType:
    """Polars gives inner types as classes or instances; make it an instance."""
    return dtype if isinstance(dtype, pl.DataType) else cast(pl.DataType, dtype())


def _nested(name: str, values: list[Any], dtype: pl.DataType) -> pl.Series:
    if isinstance(dtype, pl.List):
        if any(v is None for v in values):
            raise _Irregular
        lengths = [len(v) for v in values]
        inner = _nested(name, [x for v in values for x in v], _instance(dtype.inner))
        return _implode(inner, lengths, dtype)
    if isinstance(dtype, pl.Array):
        width = dtype.size
        if any(v is None or len(v) != width for v in values):
            raise _Irregular
        flat = _nested(name, [x for v in values for x in v], _instance(dtype.inner))
        return flat.reshape((len(values), width)) if values else pl.Series(name, [], dtype)
    if isinstance(dtype, pl.Struct):
        if any(v is None for v in values):
            raise _Irregular
        rows = [v.__dict__ if isinstance(v, BaseModel) else v for v in values]
        fields = [_nested(f.name, [row[f.name] for row in rows], _instance(f.dtype))
                  for f in dtype.fields]
        return pl.DataFrame(fields, schema={f.name: f.dtype for f in dtype.fields}).to_struct(name)
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

    Raises
    ------
    ValueError
        If a model has a field named like a metadata column.
    """

    def __init__(
        self,
        channels: Mapping[str, type[BaseModel]],
        batch_rows: int = 4096,
        explode: Mapping[str, str] | None = None,
    ) -> None:
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
        self._batch = batch_rows
        self._schemas: dict[str, dict[str, pl.DataType | None]] = {}
        for name, model in channels.items():
            schema = polars_schema(model)
            clash = sorted(set(schema) & set(META_COLUMNS))
            if clash:
                raise ValueError(
                    f"channel {name!r}: model field(s) {clash} clash with the metadata "
                    f"columns {sorted(META_COLUMNS)}; rename them (pydantic alias)"
                )
            self._schemas[name] = schema
        self._explode = dict(explode or {})
        for name, field in self._explode.items():
            explode_fields(channels[name], field)  # raises on a bad field
        # Rows hold the model's __dict__, not the model: a dict of plain values is
        # invisible to the garbage collector, so thousands of pending rows cost
        # no collection time, and the model object itself is freed at once.
        self._pending: dict[str, list[_Row]] = {name: [] for name in self._schemas}
        self._built: dict[str, pl.DataFrame] = {}
        self._chunks: dict[str, int] = {}

    @property
    def channels(self) -> list[str]:
        """Channel names, in spec order."""
        return list(self._schemas)

    def append(
        self, channel: str, message: BaseModel, generation: int, recv_mono_ns: int,
        recv_wall_ns: int, exchange_ns: int | None = None, frame_seq: int | None = None,
    ) -> None:
        """Add one validated message (:meth:`extend` adds a batch)."""
        self.extend(channel, [
            (message.__dict__, generation, recv_mono_ns, recv_wall_ns, exchange_ns, frame_seq)
        ])

    def extend(self, channel: str, rows: list[_Row]) -> None:
        """Add a batch of stored rows (the feed's path; :meth:`append` makes one).

        Each row is ``(model.__dict__, generation, recv_mono_ns, recv_wall_ns,
        exchange_ns, frame_seq)``.
        """
        pending = self._pending[channel]
        pending.extend(rows)
        if len(pending) >= self._batch:
            self.frame(channel)

    def rows(self, channel: str) -> int:
        """Rows held for ``channel``, built and pending.

        An exploded channel's pending messages are built first, as their row
        count is only known then.
        """
        self._check(channel)
        if channel in self._explode:
            return self.frame(channel).height
        built = self._built.get(channel)
        return len(self._pending[channel]) + (0 if built is None else built.height)

    def frame(self, channel: str) -> pl.DataFrame:
        """The DataFrame of every message received on ``channel`` so far.

        Raises
        ------
        UnknownChannelError
            If ``channel`` is not one of :attr:`channels`.
        """
        self._check(channel)
        pending = self._pending[channel]
        built = self._built.get(channel)
        if built is not None and not pending:
            return built
        new = self._build(channel, pending)
        self._pending[channel] = []
        if built is None:
            frame, chunks = new, 1
        else:
            frame, chunks = pl.concat([built, new], how="vertical_relaxed", rechunk=False), (
                self._chunks[channel] + 1
            )
            if chunks > _MAX_CHUNKS:
                frame, chunks = frame.rechunk(), 1
        self._built[channel], self._chunks[channel] = frame, chunks
        return frame

    def frames(self) -> dict[str, pl.DataFrame]:
        """Every channel's DataFrame."""
        return {name: self.frame(name) for name in self._schemas}

    def clear(self) -> None:
        """Forget every row."""
        for name in self._schemas:
            self._pending[name] = []
        self._built.clear()
        self._chunks.clear()

    def _build(self, channel: str, rows: list[_Row]) -> pl.DataFrame:
        columns = []
        for name, dtype in self._schemas[channel].items():
            values = [row[0][name] for row in rows]
            if dtype is None:
                # Nested models and containers of them: plain Python for polars to infer.
                columns.append(pl.Series(name, [_plain(v) for v in values], strict=False))
            elif dtype.is_nested():
                columns.append(nested_series(name, values, dtype))
            else:
                columns.append(pl.Series(name, values, dtype=dtype, strict=False))
        for index, (name, dtype) in zip(_META_INDEX, META_COLUMNS.items(), strict=True):
            columns.append(pl.Series(name, [row[index] for row in rows], dtype=dtype,
                                     strict=False))
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
