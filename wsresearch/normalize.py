"""Markets, not messages: one table per kind of market data, the same columns on every exchange.

An exchange's native rows are what it sent, in its own words: Binance's ``p``, ``q`` and
``m``, Coinbase's ``size`` and maker ``side``, Kraken's ``pair``. A researcher comparing
exchanges wants one ``trades`` table with ``price``, ``amount`` and the taker's ``side``,
whatever sent it. Each adapter's :class:`~wsresearch.spec.Channel` declares how its native
frame becomes each kind it holds (``Channel.normalized``: kind → a polars transformation);
this module fixes the kinds and their columns, and builds a kind's table from any set of
native frames, live (``Feed.normalized``) or replayed (``ReplayResult.normalized``).

Normalizing reads the native frames and leaves them as they are: it costs nothing on the
hot path, and a table is built (in polars, column-wise) when it is asked for.

Every kind has the columns of :data:`COMMON`; then its own (:data:`KINDS`):

=====================  ==========================================================================
``trades``             ``trade_id``, ``price``, ``amount``, ``side`` (``buy``/``sell``: the taker's)
``quotes``             ``bid_price``, ``bid_amount``, ``ask_price``, ``ask_amount``
``book_changes``       ``is_snapshot``, ``side`` (``bid``/``ask``), ``price``, ``amount`` (0: gone)
``derivative_ticker``  ``last_price``, ``mark_price``, ``index_price``, ``funding_rate``,
                       ``predicted_funding_rate``, ``funding_time``, ``open_interest``
``liquidations``       ``liquidation_id``, ``price``, ``amount``, ``side`` (the liquidated order's)
``candles``            ``interval``, ``open_time``, ``open``, ``high``, ``low``, ``close``,
                       ``volume``, ``closed``
``book_snapshots``     ``bids``, ``asks``: the best levels, best first, each ``{price, amount}``
                       (made by the order books, :mod:`wsresearch.book`)
=====================  ==========================================================================

Prices and amounts are ``Float64`` here, for arithmetic. A number the float does not keep
exactly is counted, never lost silently, and :func:`wsresearch.exactness.exact` adds the
exact decimal form beside the floats (``docs/normalized.md``, "Exact values").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import polars as pl

__all__ = ["COMMON", "KINDS", "Normalizer", "is_stateful", "normalize", "stateful"]

_TIME = pl.Datetime("ns", "UTC")

COMMON: dict[str, pl.DataType] = {
    "exchange": pl.String(),
    "symbol": pl.String(),
    "exchange_time": _TIME,
    "local_time": _TIME,
    "generation": pl.Int64(),
    "frame_seq": pl.Int64(),
}
"""Columns every kind has, first: which exchange (``binance``, ``binance-usdm``, ``coinbase``,
``kraken``, ``kraken-futures``, ``bybit``, ``okx``; ``generic`` for the simulator), the symbol
as the exchange spells it, the exchange's time (null where it gives none) and the local
receive time, the connection generation and the recording's ``seq`` of the message."""

_PRICE = pl.Float64()
KINDS: dict[str, dict[str, pl.DataType]] = {
    "trades": {"trade_id": pl.String(), "price": _PRICE, "amount": _PRICE,
               "side": pl.String()},
    "quotes": {"bid_price": _PRICE, "bid_amount": _PRICE, "ask_price": _PRICE,
               "ask_amount": _PRICE},
    "book_changes": {"is_snapshot": pl.Boolean(), "side": pl.String(), "price": _PRICE,
                     "amount": _PRICE},
    "derivative_ticker": {"last_price": _PRICE, "mark_price": _PRICE, "index_price": _PRICE,
                          "funding_rate": _PRICE, "predicted_funding_rate": _PRICE,
                          "funding_time": _TIME, "open_interest": _PRICE},
    "liquidations": {"liquidation_id": pl.String(), "price": _PRICE, "amount": _PRICE,
                     "side": pl.String()},
    "candles": {"interval": pl.String(), "open_time": _TIME, "open": _PRICE, "high": _PRICE,
                "low": _PRICE, "close": _PRICE, "volume": _PRICE, "closed": pl.Boolean()},
    "book_snapshots": {"bids": pl.List(pl.Struct({"price": _PRICE, "amount": _PRICE})),
                       "asks": pl.List(pl.Struct({"price": _PRICE, "amount": _PRICE}))},
}
"""Each kind's own columns, after :data:`COMMON`."""

Normalizer = Callable[[pl.LazyFrame], pl.LazyFrame]
"""How a channel's native frame becomes one kind: a polars transformation.

It gets the native frame (the model's fields and ``recv_wall_ns``, ``recv_mono_ns``,
``generation``, ``exchange_ns``, ``frame_seq``) and returns a frame with ``symbol`` and the
kind's own columns, keeping ``recv_wall_ns``, ``generation`` and ``frame_seq`` (a
``with_columns``, or an ``explode`` for a message that holds several rows, keeps them). It
may give ``exchange_time`` in ns; otherwise the native ``exchange_ns`` is used. A kind's
column it does not give is null; values are cast to the kind's types.

A normalizer that looks only at each row (renames, casts, an ``explode``, a sort by the
row's position) gives the same rows on any split of the native frame, so an export
streams it chunk by chunk. One whose rows depend on earlier rows (a value carried
forward from the last message that sent it) is marked :func:`stateful`: the export then
normalizes that channel's rows whole.
"""

_STATEFUL = "__wsresearch_stateful__"


def stateful(normalizer: Normalizer) -> Normalizer:
    """Mark ``normalizer`` as one whose rows depend on earlier rows of its channel.

    Bybit's tickers send a snapshot, then only the fields that changed: their quotes carry
    each field forward. Such a channel is normalized from all its rows at once, never
    chunk by chunk (:func:`~wsresearch.export.export_parquet` keeps them until the end).
    """
    setattr(normalizer, _STATEFUL, True)
    return normalizer


def is_stateful(normalizer: Normalizer) -> bool:
    """Whether ``normalizer`` was marked :func:`stateful`."""
    return bool(getattr(normalizer, _STATEFUL, False))


def normalize(
    kind: str,
    frames: Mapping[str, pl.DataFrame],
    normalizers: Mapping[str, Mapping[str, Normalizer]],
    exchange: str,
) -> pl.DataFrame:
    """The ``kind`` table of ``frames``: every channel that holds that kind, in one frame.

    Parameters
    ----------
    kind
        One of :data:`KINDS`.
    frames
        Native frames by channel.
    normalizers
        Per channel, its normalizers by kind (``Channel.normalized``).
    exchange
        The ``exchange`` column's value.

    Returns
    -------
    polars.DataFrame
        :data:`COMMON` then the kind's columns, rows in receive order; empty (with
        every column) when no channel holds the kind.

    Raises
    ------
    ValueError
        For a kind that is not one of :data:`KINDS`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; the kinds are {list(KINDS)}")
    schema = COMMON | KINDS[kind]
    parts = []
    for channel, by_kind in normalizers.items():
        build = by_kind.get(kind)
        if build is None or channel not in frames:
            continue
        out = build(frames[channel].lazy())
        names = set(out.collect_schema().names())
        exchange_time = pl.col("exchange_time") if "exchange_time" in names else (
            pl.col("exchange_ns") if "exchange_ns" in names else pl.lit(None))
        parts.append(out.select(
            pl.lit(exchange).alias("exchange"),
            pl.col("symbol").cast(pl.String),
            _as_time(exchange_time).alias("exchange_time"),
            _as_time(pl.col("recv_wall_ns")).alias("local_time"),
            pl.col("generation").cast(pl.Int64),
            pl.col("frame_seq").cast(pl.Int64),
            *((_cast(pl.col(name), dtype) if name in names else pl.lit(None, dtype)).alias(name)
              for name, dtype in KINDS[kind].items()),
        ))
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat(pl.collect_all(parts)).sort("local_time", maintain_order=True)


def _as_time(ns: pl.Expr) -> pl.Expr:
    """Nanoseconds since the epoch (or a datetime) as ``Datetime("ns", "UTC")``."""
    return ns.cast(pl.Int64).cast(_TIME)


def _cast(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == _TIME:
        return _as_time(column)
    return column.cast(dtype)
