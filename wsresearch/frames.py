"""Validated messages as one polars DataFrame per channel.

Building a DataFrame per message would cost far more than validating it, so
:class:`FrameStore` appends each message to a per-channel list (one tuple per
row: the model and its receive metadata) and turns the rows added since the
last call into columns only when :meth:`FrameStore.frame` is asked for. The
result is cached and extended, so calling ``frame()`` in a notebook loop pays
only for the new rows.

Column types come from the model's annotations (``int`` → ``Int64``, ``float``
→ ``Float64``, ``str`` → ``String``, ``bool`` → ``Boolean``, ``Decimal`` →
``Decimal``, ``Optional[X]`` → ``X``, ``Literal`` of strings → ``String``), so
an empty channel still has the right schema. Other annotations (lists, nested
models) are left to polars to infer.
"""

from __future__ import annotations

import datetime as dt
import decimal
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

import polars as pl
from pydantic import BaseModel

from .errors import UnknownChannelError

__all__ = ["META_COLUMNS", "FrameStore", "polars_schema"]

META_COLUMNS: dict[str, pl.DataType] = {
    "recv_wall_ns": pl.Int64(),
    "recv_mono_ns": pl.Int64(),
    "generation": pl.Int64(),
}
"""Columns added to every channel frame: receive times (ns) and connection generation."""

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
        args = [a for a in get_args(annotation) if a is not type(None)]
        return _dtype(args[0]) if len(args) == 1 else None
    if origin is Literal:
        values = get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return pl.String()
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return pl.Int64()
    if origin is typing.Annotated:
        return _dtype(get_args(annotation)[0])
    return None


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


class FrameStore:
    """Per-channel row accumulation with on-demand, incremental DataFrames.

    Parameters
    ----------
    channels
        Channel name to the model whose fields become its columns.

    Raises
    ------
    ValueError
        If a model has a field named like a metadata column.
    """

    def __init__(self, channels: Mapping[str, type[BaseModel]]) -> None:
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
        self._pending: dict[str, list[tuple[BaseModel, int, int, int]]] = {
            name: [] for name in self._schemas
        }
        self._built: dict[str, pl.DataFrame] = {}
        self._chunks: dict[str, int] = {}

    @property
    def channels(self) -> list[str]:
        """Channel names, in spec order."""
        return list(self._schemas)

    def append(
        self, channel: str, message: BaseModel, generation: int, recv_mono_ns: int,
        recv_wall_ns: int,
    ) -> None:
        """Add one validated message (the per-message hot path: one list append)."""
        self._pending[channel].append((message, generation, recv_mono_ns, recv_wall_ns))

    def rows(self, channel: str) -> int:
        """Rows held for ``channel`` (built and pending)."""
        self._check(channel)
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

    def _build(self, channel: str, rows: list[tuple[BaseModel, int, int, int]]) -> pl.DataFrame:
        schema = self._schemas[channel]
        data: dict[str, list[Any]] = {}
        dicts = [row[0].__dict__ for row in rows]
        for name, dtype in schema.items():
            column = [d[name] for d in dicts]
            # Nested models and containers of them: plain Python for polars to infer.
            data[name] = column if dtype is not None else [_plain(v) for v in column]
        data["recv_wall_ns"] = [row[3] for row in rows]
        data["recv_mono_ns"] = [row[2] for row in rows]
        data["generation"] = [row[1] for row in rows]
        full_schema = {
            name: dtype for name, dtype in {**schema, **META_COLUMNS}.items() if dtype is not None
        }
        if not rows:
            return pl.DataFrame(
                {name: pl.Series(name, [], dtype=full_schema.get(name, pl.Null())) for name in data}
            )
        return pl.DataFrame(data, schema_overrides=full_schema, strict=False)

    def _check(self, channel: str) -> None:
        if channel not in self._schemas:
            raise UnknownChannelError(
                f"unknown channel {channel!r}; this feed has {self.channels}"
            )
