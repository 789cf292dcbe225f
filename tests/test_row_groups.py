"""An export's final files: row groups bounded in bytes as well as rows, the same however split."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsresearch import _staging, export_parquet
from wsresearch._staging import row_bytes

from .test_split import pq_row_groups

DATA = Path(__file__).parent.parent / "data" / "recordings"
SPOT = DATA / "binance_hftbacktest_2024-08-08_spot_btcusdt"

LEVEL = pl.Array(pl.Float64, 2)
SCHEMA = {"symbol": pl.String(), "id": pl.Int64(), "flag": pl.Boolean(),
          "at": pl.Datetime("ns", "UTC"), "bids": pl.List(LEVEL),
          "asks": pl.List(pl.Struct({"price": pl.Float64, "amount": pl.Float64})),
          "tags": pl.List(pl.String())}

levels = st.lists(st.tuples(st.floats(0, 1e6), st.floats(0, 10)).map(list), max_size=5)
rows = st.lists(st.fixed_dictionaries({
    "symbol": st.none() | st.text(max_size=30),
    "id": st.none() | st.integers(-2**63, 2**63 - 1),
    "flag": st.none() | st.booleans(),
    "at": st.none() | st.integers(0, 2**62),
    "bids": st.none() | levels,
    "asks": st.none() | levels.map(lambda ls: [{"price": p, "amount": a} for p, a in ls]),
    "tags": st.none() | st.lists(st.none() | st.text(max_size=5), max_size=3),
}), max_size=40)


@settings(max_examples=60, deadline=None)
@given(rows=rows, cut=st.integers(0, 40))
def test_a_tables_size_is_the_sum_of_its_parts_however_it_is_cut(
        rows: list[dict[str, object]], cut: int) -> None:
    frame = pl.DataFrame(rows, schema=SCHEMA)
    cut = min(cut, frame.height)
    assert row_bytes(frame) == row_bytes(frame.head(cut)) + row_bytes(frame.slice(cut))
    assert row_bytes(frame.head(0)) == 0


def test_a_rows_size_counts_its_strings_bytes_and_its_lists_items() -> None:
    one = pl.DataFrame([{"symbol": "é" * 3, "id": 1, "flag": True, "at": 5,
                         "bids": [[1.0, 2.0]] * 4, "asks": [], "tags": ["a", None]}],
                       schema=SCHEMA)
    # fixed: 16 + 8 + 1 + 8 + three lists of 16; then 6 bytes, 4 levels of 16, 2 strings of 16
    assert row_bytes(one) == (16 + 8 + 1 + 8 + 3 * 16) + 6 + 4 * 16 + 2 * 16


def read_row_group(path: Path, index: int) -> pl.DataFrame:
    """One row group of a Parquet file, in arrays of its own."""
    import pyarrow.parquet as pq

    frame = pl.from_arrow(pq.ParquetFile(path).read_row_group(index))
    assert isinstance(frame, pl.DataFrame)
    return frame


@pytest.fixture
def bound(monkeypatch: pytest.MonkeyPatch) -> int:
    """Row groups of 64 KiB at most, any number of rows: a small recording makes several."""
    monkeypatch.setattr(_staging, "ROW_GROUP_BYTES", 64 * 1024)
    monkeypatch.setattr(_staging, "MIN_ROW_GROUP", 1)
    return 64 * 1024


def test_a_book_updates_row_groups_are_bounded_in_bytes_not_only_rows(
        tmp_path: Path, bound: int) -> None:
    export_parquet(SPOT, None, tmp_path / "ds", normalized=True, chunk_events=1_000)
    held = {}
    for folder in ("channel=depth", "channel=trade", "kind=book_changes"):
        [file] = (tmp_path / "ds" / folder).glob("*/*/*.parquet")
        groups = pq_row_groups(file)
        assert len(groups) > 2, (folder, groups)
        assert groups[:-1] == [groups[0]] * (len(groups) - 1), (folder, groups)
        # No group holds more than about the bound, by polars' own count of its memory
        # (row_bytes is an estimate, no exact count); a book update's, about the bound.
        for index in range(len(groups) - 1):
            size = read_row_group(file, index).drop("recording").estimated_size()
            assert size <= 1.5 * bound, (folder, groups[index], size)
            if folder == "channel=depth":
                assert size >= 0.5 * bound, (folder, groups[index], size)
        held[folder] = groups[0]
    assert held["channel=depth"] < min(held["kind=book_changes"], held["channel=trade"]) / 3, held


def test_a_book_export_is_the_same_bytes_in_chunks_of_any_size(tmp_path: Path, bound: int) -> None:
    export_parquet(SPOT, None, tmp_path / "a", normalized=True, chunk_events=20_000)
    export_parquet(SPOT, None, tmp_path / "b", normalized=True, chunk_events=333)
    files = sorted(f.relative_to(tmp_path / "a") for f in (tmp_path / "a").rglob("*.parquet"))
    assert len(files) > 5
    for file in files:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file


def test_a_size_past_four_gigabytes_is_counted_whole() -> None:
    # List(Null) items hold no memory, and count as wide as a string each: 2^28 + 10 of
    # them are past 2^32 bytes, where a sum in 32 bits wraps.
    items = 2**28 + 10

    def nulls(count: int) -> pl.DataFrame:
        return pl.select(pl.repeat(None, count, dtype=pl.Null).implode().alias("x"))

    assert row_bytes(nulls(items)) == 16 + items * 16
    assert row_bytes(pl.concat([nulls(items // 2)] * 2)) == 2 * 16 + items * 16
