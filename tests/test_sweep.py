"""A stretch of book rows applied at once against the same rows applied one at a time.

:meth:`Books.apply_changes` (the columnar replay's book path) must leave exactly what
:meth:`Books.apply_each` leaves: levels, quotes, snapshots, counts, times. Both are run on
two copies of the same books, over random rows of several symbols, twice in a row (so that
what the first leaves, the last quote and the next snapshot's boundary, is checked too).
The side alone (:func:`sweep`) is checked against :class:`Levels` in every state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wsresearch._sweep as sweep_module
import wsresearch.book as book_module
from wsresearch._sweep import Changes, side_arrays, sweep
from wsresearch.book import Book, Books, Levels, level_changes, side_changes
from wsresearch.exchanges.binance import BookSync

from .conftest import sized

PRICES = st.sampled_from([0.5, 1.0, 1.25, 2.0, 3.5, 10.0, 99.99, 100.0, 1e9])
AMOUNTS = st.sampled_from([0.0, 0.0, 0.1, 1.0, 2.5])
LEVELS = st.lists(st.tuples(PRICES, AMOUNTS), max_size=6)
SYMBOLS = ("AAA", "BBB", "CCC")


@pytest.fixture
def small_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Look at two prices first for a state's best few: the window grows within an example.

    And apply every stretch at once, however few its rows (:data:`AT_ONCE_ROWS` 0).
    """
    monkeypatch.setattr(sweep_module, "_WINDOW", 2)
    monkeypatch.setattr(book_module, "AT_ONCE_ROWS", 0)


@given(side=st.sampled_from(["bid", "ask"]), first=LEVELS,
       rows=st.lists(LEVELS, max_size=30), depth=st.integers(1, 8))
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_side_swept_is_the_side_changed_message_by_message(
        small_window: None, side: str, first: list[tuple[float, float]],
        rows: list[list[tuple[float, float]]], depth: int) -> None:
    levels = Levels(side)  # type: ignore[arg-type]
    levels.apply(first)
    changes = Changes(np.array([i for i, row in enumerate(rows) for _ in row], np.int64),
                      np.array([p for row in rows for p, _ in row], np.float64),
                      np.array([a for row in rows for _, a in row], np.float64))
    swept = sweep(side_arrays(levels), 1.0 if side == "bid" else -1.0, changes, len(rows))

    reference = Levels(side)  # type: ignore[arg-type]
    reference.apply(first)
    states, bests = [reference.items()], []
    for row in rows:
        reference.apply(row)
        states.append(reference.items())
        bests.append(reference.best())
    prices, amounts, present = swept.best_levels()
    assert [(p, a) if here else None for p, a, here in zip(
        prices.tolist(), amounts.tolist(), present.tolist(), strict=True)] == bests
    tops = swept.top(np.arange(len(rows) + 1, dtype=np.int64), depth)
    for items, top in zip(states, tops, strict=True):
        assert top == (items[::-1] if side == "bid" else items)[:depth]
    final = Levels(side)  # type: ignore[arg-type]
    final.replace(*swept.final())
    assert final.items() == reference.items() and final == reference


def _books(first: dict[str, tuple[list[Any], list[Any]]], interval: float | None,
           quoted: tuple[bool, ...] = (True, True, True)) -> Books:
    books = Books(BookSync(list(SYMBOLS), futures=False), snapshot_interval=interval,
                  snapshot_depth=3)
    for (symbol, (bids, asks)), touch in zip(first.items(), quoted, strict=False):
        book = books.book(symbol)
        book.bids.apply(bids)
        book.asks.apply(asks)
        book.snapshot_done(0)
        if touch:
            book.touched(0, 0, 7)  # a quote on record, and an exchange time
    return books


def _rows(draw: Any, symbols: list[str], start: int) -> pl.DataFrame:
    count = draw(st.integers(1, 25))
    walls = np.cumsum([draw(st.integers(0, 3)) for _ in range(count)]) * 400 + start
    return pl.DataFrame({
        "symbol": [draw(st.sampled_from(symbols)) for _ in range(count)],
        "recv_mono_ns": (walls + 5).tolist(),
        "recv_wall_ns": walls.tolist(),
        "exchange_ns": [draw(st.none() | st.integers(0, 10**6)) for _ in range(count)],
        "bids": [draw(LEVELS) for _ in range(count)],
        "asks": [draw(LEVELS) for _ in range(count)],
    }, schema_overrides={"bids": pl.List(pl.Array(pl.Float64, 2)),
                         "asks": pl.List(pl.Array(pl.Float64, 2)),
                         "exchange_ns": pl.Int64})


def _each(books: Books, rows: pl.DataFrame) -> None:
    bids, asks = rows["bids"].to_list(), rows["asks"].to_list()

    def change(book: Book, i: int) -> None:
        book.bids.apply((p, a) for p, a in bids[i])
        book.asks.apply((p, a) for p, a in asks[i])
        book.last_id = i

    books.apply_each(rows, "symbol", "exchange_ns", change, _raise)


def _raise(error: Exception) -> None:
    raise error


def _state(books: Books) -> list[Any]:
    return [books.quotes().to_dicts(), books.snapshots().to_dicts(), books.frame().to_dicts(),
            books._next_snapshot_ns, dict(books._tops),
            [(b.symbol, b.bids.items(), b.asks.items(), b.recv_mono_ns, b.recv_wall_ns,
              b.exchange_ns, b.last_id, b.stats) for b in books]]


@given(data=st.data(), symbols=st.integers(1, 3), interval=st.sampled_from([None, 1e-6, 2e-6]))
@settings(max_examples=sized(40, 100), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_rows_applied_at_once_leave_what_one_at_a_time_leaves(
        small_window: None, data: st.DataObject, symbols: int, interval: float | None) -> None:
    chosen = list(SYMBOLS[:symbols])
    first = {s: (data.draw(LEVELS), data.draw(LEVELS)) for s in chosen}
    quoted = tuple(data.draw(st.booleans()) for _ in chosen)  # a book with no quote yet
    one, once = _books(first, interval, quoted), _books(first, interval, quoted)
    wall = 1_000
    for _ in range(2):
        rows = _rows(data.draw, chosen, wall)
        wall = int(rows["recv_wall_ns"].max()) + 1  # type: ignore[arg-type]
        _each(one, rows)

        def finish(book: Book, i: int) -> None:
            book.last_id = i

        assert once.apply_changes(rows, "symbol", "exchange_ns", level_changes(rows["bids"]),
                                  level_changes(rows["asks"]), finish)
        assert _state(once) == _state(one)


@pytest.mark.parametrize("spoil", ["nan price", "nan amount", "zero price", "time back"])
def test_rows_it_cannot_apply_exactly_are_left_alone(small_window: None, spoil: str) -> None:
    first = {"AAA": ([(1.0, 1.0)], [(2.0, 1.0)])}
    books = _books(first, 1e-6)
    rows = pl.DataFrame({
        "symbol": ["AAA", "AAA"], "recv_mono_ns": [10, 20], "recv_wall_ns": [10, 20],
        "exchange_ns": [1, 2], "bids": [[[1.5, 1.0]], [[1.25, 2.0]]], "asks": [[], []],
    }, schema_overrides={"bids": pl.List(pl.Array(pl.Float64, 2)),
                         "asks": pl.List(pl.Array(pl.Float64, 2))})
    spoilt = {"nan price": rows.with_columns(bids=pl.Series([[[1.5, 1.0]], [[np.nan, 2.0]]])),
              "nan amount": rows.with_columns(bids=pl.Series([[[1.5, 1.0]], [[1.2, np.nan]]])),
              "zero price": rows.with_columns(bids=pl.Series([[[1.5, 1.0]], [[0.0, 2.0]]])),
              "time back": rows.with_columns(recv_wall_ns=pl.Series([20, 10]))}[spoil]
    spoilt = spoilt.cast({"bids": pl.List(pl.Array(pl.Float64, 2))})
    before = _state(books)
    assert not books.apply_changes(spoilt, "symbol", "exchange_ns",
                                   level_changes(spoilt["bids"]), level_changes(spoilt["asks"]))
    assert _state(books) == before


def test_a_level_amount_of_nan_already_in_the_book_is_left_to_one_at_a_time(
        small_window: None) -> None:
    books = _books({"AAA": ([(1.0, float("nan"))], [(2.0, 1.0)])}, None)
    rows = pl.DataFrame({"symbol": ["AAA"], "recv_mono_ns": [1], "recv_wall_ns": [1],
                         "exchange_ns": [1], "bids": [[[1.5, 1.0]]], "asks": [[]]},
                        schema_overrides={"bids": pl.List(pl.Array(pl.Float64, 2)),
                                          "asks": pl.List(pl.Array(pl.Float64, 2))})
    assert not books.apply_changes(rows, "symbol", "exchange_ns", level_changes(rows["bids"]),
                                   level_changes(rows["asks"]))


def test_changes_of_both_sides_in_one_column_split_by_side() -> None:
    column = pl.Series([[{"side": "buy", "price": 1.0, "size": 2.0},
                         {"side": "sell", "price": 3.0, "size": 0.0}], [],
                        [{"side": "sell", "price": 4.0, "size": 1.0}]])
    bids, asks = side_changes(column, "buy")
    assert (bids.rows.tolist(), bids.prices.tolist(), bids.amounts.tolist()) == ([0], [1.0],
                                                                                  [2.0])
    assert (asks.rows.tolist(), asks.prices.tolist(), asks.amounts.tolist()) == (
        [0, 2], [3.0, 4.0], [0.0, 1.0])


LEVEL_LISTS = st.lists(st.none() | st.lists(st.none() | st.tuples(PRICES, AMOUNTS), max_size=4),
                       max_size=8)


@given(column=LEVEL_LISTS)
@settings(max_examples=200, deadline=None)
def test_a_column_of_levels_gives_each_level_with_its_row(
        column: list[list[tuple[float, float] | None] | None]) -> None:
    # Empty and null lists give no level (polars explodes them to a null, or to nothing,
    # by version); a null level among a list's is left out with its row kept in step.
    changes = level_changes(pl.Series(column, dtype=pl.List(pl.Array(pl.Float64, 2))))
    expected = [(row, level) for row, levels in enumerate(column) for level in levels or []
                if level is not None]
    assert list(zip(changes.rows.tolist(), zip(changes.prices.tolist(),
                                               changes.amounts.tolist(), strict=True),
                    strict=True)) == expected
