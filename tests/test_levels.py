"""A book side (:class:`Levels`) against a plain dict sorted on every read.

Every change and read is checked after each step, on both sides, with a small
``flat_max`` so the side switches between its flat list and its sorted list of lists
back and forth within one example.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsresearch.book import Book, Levels, apply_pairs

PRICES = st.sampled_from([-1.5, 0.0, 0.5, 1.0, 1.25, 2.0, 3.5, 10.0, 99.99, 100.0, 1e9])
AMOUNTS = st.sampled_from([0.0, 0.0, 0.1, 1.0, 2.5])
OPS = st.lists(st.one_of(
    st.tuples(st.just("apply"), st.lists(st.tuples(PRICES, AMOUNTS), max_size=8)),
    st.tuples(st.just("set"), st.tuples(PRICES, AMOUNTS)),
    st.tuples(st.just("pop"), PRICES),
    st.tuples(st.just("popitem"), st.integers(-12, 11)),
    st.tuples(st.just("trim"), st.integers(0, 6)),
    st.tuples(st.just("clear"), st.none()),
), max_size=60)


def _check(levels: Levels, reference: dict[float, float], side: str) -> None:
    ascending = sorted(reference)
    best_first = ascending[::-1] if side == "bid" else ascending
    assert levels.keys() == ascending
    assert list(levels) == ascending
    assert levels.items() == [(p, reference[p]) for p in ascending]
    assert levels.values() == [reference[p] for p in ascending]
    assert len(levels) == len(reference) and bool(levels) == bool(reference)
    assert levels.best_prices() == best_first
    assert levels.best_levels() == [(p, reference[p]) for p in best_first]
    for n in (0, 1, 3):
        assert levels.best_prices(n) == best_first[:n]
        assert levels.best_levels(n) == [(p, reference[p]) for p in best_first[:n]]
    best = best_first[0] if best_first else None
    assert levels.best_price() == best
    assert levels.best() == (None if best is None else (best, reference[best]))
    for index in range(-len(ascending), len(ascending)):
        assert levels.peekitem(index) == (ascending[index], reference[ascending[index]])
    for price in (0.5, 7.0):
        assert (price in levels) == (price in reference)
        assert levels.get(price) == reference.get(price)


def _run(side: str, ops: list[tuple[str, Any]], flat_max: int) -> None:
    levels, reference = Levels(side, flat_max=flat_max), {}  # type: ignore[arg-type]
    for op, arg in ops:
        if op == "apply":
            levels.apply(arg)
            for price, amount in arg:
                if amount == 0:
                    reference.pop(price, None)
                else:
                    reference[price] = amount
        elif op == "set":
            levels[arg[0]] = arg[1]
            reference[arg[0]] = arg[1]
        elif op == "pop":
            assert levels.pop(arg, -1.0) == reference.pop(arg, -1.0)
        elif op == "popitem":
            ascending = sorted(reference)
            if -len(ascending) <= arg < len(ascending):
                price = ascending[arg]
                assert levels.popitem(arg) == (price, reference.pop(price))
            else:
                with pytest.raises(IndexError):
                    levels.popitem(arg)
        elif op == "trim":
            ascending = sorted(reference)
            kept = ascending[-arg:] if side == "bid" else ascending[:arg]
            gone = [p for p in ascending if p not in kept]
            assert sorted(levels.trim(arg)) == (gone if arg else ascending)
            reference = {p: reference[p] for p in (kept if arg else [])}
        else:
            levels.clear()
            reference.clear()
        _check(levels, reference, side)


@settings(max_examples=300, deadline=None)
@given(side=st.sampled_from(["bid", "ask"]), ops=OPS, flat_max=st.sampled_from([2, 4, 10_000]))
def test_a_side_reads_as_a_sorted_dict(side: str, ops: list[tuple[str, Any]],
                                       flat_max: int) -> None:
    _run(side, ops, flat_max)


def test_a_side_switches_to_a_sorted_list_past_flat_max_and_back() -> None:
    levels = Levels("ask", flat_max=100)
    levels.apply((float(p), 1.0) for p in range(150))
    assert type(levels._ranks).__name__ == "SortedList"
    assert levels.best() == (0.0, 1.0) and levels.peekitem(-1) == (149.0, 1.0)
    levels.apply((float(p), 0.0) for p in range(100))  # 50 left: half of flat_max or fewer
    assert type(levels._ranks) is list
    assert levels.keys() == [float(p) for p in range(100, 150)]


def test_a_book_keeps_its_sides_in_levels() -> None:
    book = Book("X", max_depth=2)
    apply_pairs(book, "bid", [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)])
    apply_pairs(book, "ask", [(5.0, 1.0), (4.0, 2.0), (6.0, 3.0)])
    assert book.best_bid == (3.0, 3.0) and book.best_ask == (4.0, 2.0)
    assert book.side("bid", 2) == [(3.0, 3.0), (2.0, 2.0)]
    assert book.side("ask") == [(4.0, 2.0), (5.0, 1.0), (6.0, 3.0)]
    book.truncate()
    assert book.bids.keys() == [2.0, 3.0] and book.asks.keys() == [4.0, 5.0]
    book.set("ask", 3.5, 1.0)
    assert book.crossed is False and book.spread == 0.5
    book.set("bid", 3.5, 1.0)
    assert book.crossed is True
    book.set("bid", 3.5, 0.0)
    assert 3.5 not in book.bids and book.best_bid == (3.0, 3.0)


def test_a_side_is_bid_or_ask() -> None:
    with pytest.raises(ValueError, match="side must be 'bid' or 'ask'"):
        Levels("buy")  # type: ignore[arg-type]


def test_a_price_of_nan_is_refused_and_the_side_stays_whole() -> None:
    nan = float("nan")
    levels = Levels("bid")
    with pytest.raises(ValueError, match="priced nan has no place"):
        levels.apply([(100.0, 1.0), (nan, 1.0), (101.0, 1.0)])
    assert levels.items() == [(100.0, 1.0)]  # the level before it is set, none after
    with pytest.raises(ValueError, match="priced nan"):
        levels[nan] = 2.0
    levels.apply([(100.0, 0.0)])
    assert levels.keys() == [] and levels.best() is None


def test_a_big_snapshot_best_first_switches_to_a_sorted_list_as_it_grows() -> None:
    # Best first: each price lands at the flat list's far end, the costly place; past
    # flat_max the rest goes into a sorted list, within the one apply().
    levels = Levels("bid", flat_max=50)
    seen = []

    def snapshot() -> Iterator[tuple[float, float]]:
        for p in range(400):
            seen.append(type(levels._ranks).__name__)
            yield float(1000 - p), 1.0

    levels.apply(snapshot())
    assert seen.index("SortedList") == 51  # from the level after the 51st
    assert type(levels._ranks).__name__ == "SortedList"
    assert levels.keys() == [float(p) for p in range(601, 1001)]
