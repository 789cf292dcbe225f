"""Runs of sequence numbers judged in arrays (:class:`Numbers`) against a polars query.

:func:`runs` and the columnar replay's search for a chunk's first break judge numbers with
numpy; the polars query they replaced is the reference here, on random keys (nulls
among them), numbers that run on, repeat, jump or end before they start, and the three
ways a channel declares them (one field, a range, a chain).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from wsresearch.sequence import Numbers, runs

from .conftest import sized

ROWS = st.lists(st.tuples(st.sampled_from(["A", "B", "C", None]), st.integers(0, 12),
                          st.sampled_from([0, 0, 0, 1, 2, -1])), min_size=1, max_size=30)
DECLARED = [(pl.col("key"), "a", "b"), (pl.lit(None), "a", "b"),
            (pl.col("key"), pl.col("p") + 1, "b"), (pl.col("key"), "a", "a")]


def _frame(rows: list[tuple[str | None, int, int]]) -> pl.DataFrame:
    return pl.DataFrame({"key": [k for k, _, _ in rows], "a": [a for _, a, _ in rows],
                         "b": [a + d for _, a, d in rows], "p": [a - 1 for _, a, _ in rows]})


def _reference(rows: pl.DataFrame, key: pl.Expr, first: Any, last: Any) -> pl.DataFrame:
    first, last = (pl.col(c) if isinstance(c, str) else c for c in (first, last))
    return (rows.select(key.alias("key"), first.alias("first"), last.alias("last"))
            .group_by("key", maintain_order=True)
            .agg(pl.col("first").first(), pl.col("last").last(), pl.len().alias("messages"),
                 ((pl.col("first") == pl.col("last").shift(1) + 1).drop_nulls().all()
                  & (pl.col("last") >= pl.col("first")).all()).alias("steady")))


@given(rows=ROWS, declared=st.sampled_from(range(len(DECLARED))))
@settings(max_examples=sized(80, 200), deadline=None)
def test_runs_in_arrays_are_the_polars_querys(rows: list[Any], declared: int) -> None:
    frame = _frame(rows)
    assert_frame_equal(runs(frame, *DECLARED[declared]), _reference(frame, *DECLARED[declared]))


@given(rows=ROWS, keyed=st.booleans())
@settings(max_examples=200, deadline=None)
def test_a_break_is_a_row_that_does_not_run_on_from_its_keys_last(
        rows: list[Any], keyed: bool) -> None:
    frame = _frame(rows)
    numbers = Numbers.of(frame, pl.col("key") if keyed else pl.lit(None), "a", "b")
    assert numbers is not None
    last: dict[Any, int] = {}
    expected, heads = [], []
    for row, (key, first, end) in enumerate(zip(frame["key"], frame["a"], frame["b"],
                                                strict=True)):
        name = key if keyed else None
        expected.append(end < first or (name in last and first != last[name] + 1))
        if name not in last:
            heads.append((name, first, row))
        last[name] = end
    assert numbers.breaks().tolist() == expected
    assert numbers.heads() == heads


def test_a_null_number_is_left_to_the_polars_query() -> None:
    frame = pl.DataFrame({"key": ["A", "A"], "a": [1, None], "b": [1, 2]})
    assert Numbers.of(frame, pl.col("key"), "a", "b") is None
    assert_frame_equal(runs(frame, pl.col("key"), "a", "b"),
                       _reference(frame, pl.col("key"), "a", "b"))


def test_numbers_at_the_top_of_an_int64_break_as_the_polars_query_judges_them() -> None:
    top = np.iinfo(np.int64).max
    frame = pl.DataFrame({"key": ["A", "A"], "a": [top, top], "b": [top, top]})
    assert_frame_equal(runs(frame, pl.col("key"), "a", "b"),
                       _reference(frame, pl.col("key"), "a", "b"))


def test_numbers_of_another_integer_type_are_left_to_the_polars_query() -> None:
    frame = pl.DataFrame({"key": ["A", "A"], "a": [2**63, 2**63 + 1]}, schema={
        "key": pl.String, "a": pl.UInt64})
    assert Numbers.of(frame, pl.col("key"), "a", "a") is None
    assert_frame_equal(runs(frame, pl.col("key"), "a", "a"),
                       _reference(frame, pl.col("key"), "a", "a"))
