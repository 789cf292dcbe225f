import sys
from decimal import Decimal
from typing import Literal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from pydantic import BaseModel

from wsresearch import UnknownChannelError
from wsresearch.frames import (
    META_COLUMNS,
    ROW_LAYOUT,
    _plain,
    check_channel,
    nested_series,
    polars_schema,
)
from wsresearch.lowlevel import FrameStore


def add(store: FrameStore, channel: str, message: BaseModel, generation: int, recv_mono_ns: int,
        recv_wall_ns: int, exchange_ns: int | None = None, frame_seq: int | None = None) -> None:
    """One validated message as a row, as the pipeline stores it."""
    store.extend(channel, [(message.__dict__, generation, recv_mono_ns, recv_wall_ns,
                            exchange_ns, frame_seq)])


class Trade(BaseModel):
    symbol: str
    id: int
    price: float
    side: Literal["buy", "sell"]
    maker: bool | None = None


class Level(BaseModel):
    price: Decimal
    size: Decimal


class Book(BaseModel):
    symbol: str
    bids: list[Level]
    checksum: int | None = None


def trade(n: int) -> Trade:
    return Trade(symbol="BTC", id=n, price=float(n) + 0.5, side="buy" if n % 2 else "sell")


def test_schema_follows_the_model_annotations() -> None:
    assert polars_schema(Trade) == {
        "symbol": pl.String(), "id": pl.Int64(), "price": pl.Float64(), "side": pl.String(),
        "maker": pl.Boolean(),
    }
    assert polars_schema(Book)["bids"] == pl.List(
        pl.Struct({"price": pl.Decimal(38, 18), "size": pl.Decimal(38, 18)})
    )


class Untyped(BaseModel):
    anything: list[dict[str, int]]
    pair: tuple[float, float]
    mixed: tuple[float, str]


def test_homogeneous_containers_are_lists_and_the_rest_is_inferred() -> None:
    schema = polars_schema(Untyped)
    assert schema == {"anything": None, "pair": pl.Array(pl.Float64(), 2), "mixed": None}


def test_an_empty_channel_has_the_full_schema() -> None:
    frame = FrameStore({"trade": Trade}).frame("trade")
    assert frame.height == 0
    assert frame.schema == pl.Schema({
        "symbol": pl.String, "id": pl.Int64, "price": pl.Float64, "side": pl.String,
        "maker": pl.Boolean, "recv_wall_ns": pl.Int64, "recv_mono_ns": pl.Int64,
        "generation": pl.Int64, "exchange_ns": pl.Int64, "frame_seq": pl.Int64,
    })


def test_rows_become_columns_with_receive_metadata() -> None:
    store = FrameStore({"trade": Trade})
    for n in range(3):
        add(store, "trade", trade(n), generation=1, recv_mono_ns=10 + n, recv_wall_ns=100 + n,
                     exchange_ns=None if n == 1 else 90 + n, frame_seq=7 + n)
    expected = pl.DataFrame({
        "symbol": ["BTC"] * 3, "id": [0, 1, 2], "price": [0.5, 1.5, 2.5],
        "side": ["sell", "buy", "sell"], "maker": pl.Series([None] * 3, dtype=pl.Boolean),
        "recv_wall_ns": [100, 101, 102], "recv_mono_ns": [10, 11, 12], "generation": [1, 1, 1],
        "exchange_ns": [90, None, 92], "frame_seq": [7, 8, 9],
    })
    assert_frame_equal(store.frame("trade"), expected)


def test_frames_are_built_incrementally_and_cached() -> None:
    store = FrameStore({"trade": Trade})
    add(store, "trade", trade(0), 1, 0, 0)
    first = store.frame("trade")
    assert store.frame("trade") is first  # nothing new: the same object
    for n in range(1, 100):
        add(store, "trade", trade(n), 2, n, n)
        assert store.rows("trade") == n + 1
        frame = store.frame("trade")  # one small build per call, not a rebuild
    assert frame["id"].to_list() == list(range(100))
    assert frame["generation"].to_list() == [1] + [2] * 99
    assert frame.n_chunks() <= 33


def test_nested_models_become_structs() -> None:
    store = FrameStore({"book": Book})
    add(store, "book", Book(symbol="X", bids=[Level(price=Decimal("1.5"), size=Decimal(2))]),
                 1, 0, 0)
    frame = store.frame("book")
    assert frame["bids"].to_list() == [[{"price": Decimal("1.5"), "size": Decimal("2")}]]


def test_unknown_channel_and_metadata_clash_are_clear_errors() -> None:
    store = FrameStore({"trade": Trade})
    with pytest.raises(UnknownChannelError, match=r"unknown channel 'tarde'.*\['trade'\]"):
        store.frame("tarde")

    class Bad(BaseModel):
        generation: int

    with pytest.raises(ValueError, match=r"channel 'bad'.*\['generation'\] that clash"):
        FrameStore({"bad": Bad})


def test_clear_forgets_rows() -> None:
    store = FrameStore({"trade": Trade})
    add(store, "trade", trade(1), 1, 0, 0)
    store.frame("trade")
    store.clear()
    assert store.frame("trade").height == 0


class Fill(BaseModel):
    id: int
    price: float


class Batch(BaseModel):
    symbol: str
    fills: list[Fill]


def test_an_exploded_channel_has_one_row_per_item() -> None:
    store = FrameStore({"fills": Batch}, explode={"fills": "fills"})
    assert store.frame("fills").columns == [
        "symbol", "id", "price", "recv_wall_ns", "recv_mono_ns", "generation", "exchange_ns",
        "frame_seq"]
    batches = [Batch(symbol="A", fills=[Fill(id=1, price=1.0), Fill(id=2, price=2.0)]),
               Batch(symbol="B", fills=[]),
               Batch(symbol="C", fills=[Fill(id=3, price=3.0)])]
    for n, batch in enumerate(batches):
        add(store, "fills", batch, generation=1, recv_mono_ns=n, recv_wall_ns=n)
    frame = store.frame("fills")
    assert frame.select("symbol", "id", "recv_mono_ns").rows() == [
        ("A", 1, 0), ("A", 2, 0), ("C", 3, 2)]


def test_explode_needs_a_list_of_models_without_clashing_names() -> None:
    with pytest.raises(ValueError, match="list\\[<model>\\]"):
        FrameStore({"t": Trade}, explode={"t": "symbol"})
    with pytest.raises(ValueError, match="list\\[<model>\\]"):
        check_channel("t", Trade, "missing")

    class Clash(BaseModel):
        id: int
        fills: list[Fill]

    class MetaItem(BaseModel):
        frame_seq: int

    class Batched(BaseModel):
        items: list[MetaItem]

    with pytest.raises(ValueError, match=r"\['id'\] of Fill clash"):
        FrameStore({"c": Clash}, explode={"c": "fills"})
    with pytest.raises(ValueError, match=r"\['frame_seq'\] of MetaItem clash"):
        check_channel("b", Batched, "items")
    check_channel("fills", Batch, "fills")  # a good one passes
    with pytest.raises(ValueError, match=r"unknown channel\(s\) \['fill'\]"):
        FrameStore({"fills": Batch}, explode={"fill": "fills"})


def test_the_row_layout_names_every_metadata_column() -> None:
    assert ROW_LAYOUT[0] == "fields"
    assert sorted(ROW_LAYOUT[1:]) == sorted(META_COLUMNS)


class Quote(BaseModel):
    price: float
    size: float
    side: str


levels = st.lists(st.tuples(st.floats(allow_nan=False), st.floats(allow_nan=False)), max_size=4)
structs = st.lists(st.builds(Quote, price=st.floats(allow_nan=False),
                             size=st.floats(allow_nan=False), side=st.text(max_size=3)),
                   max_size=4)
NESTED = [
    (levels, pl.List(pl.Array(pl.Float64, 2))),
    (st.lists(st.lists(st.integers(-10, 10), max_size=3), max_size=4), pl.List(pl.List(pl.Int64))),
    (structs, pl.List(pl.Struct({"price": pl.Float64, "size": pl.Float64, "side": pl.String}))),
    (st.one_of(st.none(), levels), pl.List(pl.Array(pl.Float64, 2))),  # None: polars' own path
]


@settings(max_examples=60, deadline=None)
@given(data=st.data(), case=st.sampled_from(range(len(NESTED))))
def test_nested_columns_are_built_fast_and_the_same(data: st.DataObject, case: int) -> None:
    strategy, dtype = NESTED[case]
    values = data.draw(st.lists(strategy, max_size=6))
    fast = nested_series("x", values, dtype)
    slow = pl.Series("x", [_plain(v) for v in values], dtype=dtype, strict=False)
    assert fast.dtype == dtype
    assert fast.to_list() == slow.to_list()


def test_rows_of_an_exploded_channel_count_items_not_messages() -> None:
    store = FrameStore({"fills": Batch}, explode={"fills": "fills"})
    add(store, "fills", Batch(symbol="A", fills=[]), 1, 0, 0)
    add(store, "fills", Batch(symbol="B", fills=[Fill(id=1, price=1.0)] * 3), 1, 0, 0)
    assert store.rows("fills") == 3


def test_extend_stores_rows_as_append_does_and_builds_at_the_batch_size() -> None:
    one, many = FrameStore({"trade": Trade}), FrameStore({"trade": Trade}, batch_rows=4)
    rows = [(trade(n).__dict__, 1, 10 + n, 100 + n, None, n) for n in range(6)]
    for row in rows:
        add(one, "trade", trade(row[5]), 1, row[2], row[3], None, row[5])
    many.extend("trade", rows[:5])
    assert many.pending("trade") == 0  # the batch size was passed: built at once
    many.extend("trade", rows[5:])
    assert_frame_equal(one.frame("trade"), many.frame("trade"))


def test_a_row_not_laid_out_as_row_says_is_refused_and_nothing_of_its_batch_added() -> None:
    store = FrameStore({"trade": Trade})
    add(store, "trade", trade(0), 1, 0, 0)
    good = (trade(1).__dict__, 1, 1, 1, None, None)
    lacking = ({"symbol": "BTC", "id": 2}, 1, 2, 2, None, None)  # no price, side, maker
    short = (trade(3).__dict__, 1, 3)
    no_seq = (trade(4).__dict__, 1, 4, 4, None)  # fails in the last column, after a good row
    for bad in (lacking, short, no_seq, (), None):
        with pytest.raises(ValueError, match=r"a row of channel 'trade' is not laid out as Row"):
            store.extend("trade", [good, bad])  # type: ignore[list-item]
        assert store.pending("trade") == 1 and store.added("trade") == 1
    store.extend("trade", (row for row in [good]))  # any iterable of rows
    assert store.pending("trade") == 2 and store.added("trade") == 2
    with pytest.raises(UnknownChannelError, match="unknown channel 'tarde'"):
        store.extend("tarde", [good])
    assert store.frame("trade")["id"].to_list() == [0, 1]


def test_pending_rows_keep_their_values_not_the_row_tuples() -> None:
    """A row tuple kept until the build would be one more object for every collection to walk."""
    store = FrameStore({"trade": Trade}, batch_rows=10_000)
    rows = [(trade(n).__dict__, 1, n, n, None, n) for n in range(1_000)]
    held = [sys.getrefcount(row) for row in rows]
    store.extend("trade", rows)
    assert store.pending("trade") == 1_000
    assert [sys.getrefcount(row) for row in rows] == held
    assert store.frame("trade")["id"].to_list() == list(range(1_000))


def test_extend_columns_adds_what_extend_adds_of_the_same_rows() -> None:
    rows = [(trade(n).__dict__, 2, 10 + n, 100 + n, None if n % 2 else n, n) for n in range(5)]
    by_rows, by_columns = FrameStore({"trade": Trade}), FrameStore({"trade": Trade})
    by_rows.extend("trade", rows)
    by_columns.extend_columns("trade", [row[0] for row in rows], generation=2,
                              recv_mono_ns=[row[2] for row in rows],
                              recv_wall_ns=[row[3] for row in rows],
                              exchange_ns=[row[4] for row in rows],
                              frame_seq=[row[5] for row in rows])
    assert_frame_equal(by_columns.frame("trade"), by_rows.frame("trade"))
    unnumbered = FrameStore({"trade": Trade})
    unnumbered.extend_columns("trade", [rows[0][0]], generation=1, recv_mono_ns=[1],
                              recv_wall_ns=[2])
    assert unnumbered.frame("trade").select("exchange_ns", "frame_seq").row(0) == (None, None)
    with pytest.raises(ValueError, match=r"one value per row \(2 fields\), got lengths \[1, 2\]"):
        by_columns.extend_columns("trade", [rows[0][0]] * 2, generation=1, recv_mono_ns=[1],
                                  recv_wall_ns=[1, 2])
    with pytest.raises(ValueError, match="not laid out as Row says"):
        by_columns.extend_columns("trade", [rows[0][0], {"symbol": "X"}], generation=1,
                                  recv_mono_ns=[1, 2], recv_wall_ns=[1, 2])
    assert by_columns.added("trade") == 5 and by_columns.pending("trade") == 0
