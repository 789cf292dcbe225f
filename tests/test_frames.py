from decimal import Decimal
from typing import Literal

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import BaseModel

from wsresearch import FrameStore, UnknownChannelError
from wsresearch.frames import polars_schema


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
    assert polars_schema(Book)["bids"] is None  # nested: left to polars


def test_an_empty_channel_has_the_full_schema() -> None:
    frame = FrameStore({"trade": Trade}).frame("trade")
    assert frame.height == 0
    assert frame.schema == pl.Schema({
        "symbol": pl.String, "id": pl.Int64, "price": pl.Float64, "side": pl.String,
        "maker": pl.Boolean, "recv_wall_ns": pl.Int64, "recv_mono_ns": pl.Int64,
        "generation": pl.Int64,
    })


def test_rows_become_columns_with_receive_metadata() -> None:
    store = FrameStore({"trade": Trade})
    for n in range(3):
        store.append("trade", trade(n), generation=1, recv_mono_ns=10 + n, recv_wall_ns=100 + n)
    expected = pl.DataFrame({
        "symbol": ["BTC"] * 3, "id": [0, 1, 2], "price": [0.5, 1.5, 2.5],
        "side": ["sell", "buy", "sell"], "maker": pl.Series([None] * 3, dtype=pl.Boolean),
        "recv_wall_ns": [100, 101, 102], "recv_mono_ns": [10, 11, 12], "generation": [1, 1, 1],
    })
    assert_frame_equal(store.frame("trade"), expected)


def test_frames_are_built_incrementally_and_cached() -> None:
    store = FrameStore({"trade": Trade})
    store.append("trade", trade(0), 1, 0, 0)
    first = store.frame("trade")
    assert store.frame("trade") is first  # nothing new: the same object
    for n in range(1, 100):
        store.append("trade", trade(n), 2, n, n)
        assert store.rows("trade") == n + 1
        frame = store.frame("trade")  # one small build per call, not a rebuild
    assert frame["id"].to_list() == list(range(100))
    assert frame["generation"].to_list() == [1] + [2] * 99
    assert frame.n_chunks() <= 33


def test_nested_models_become_structs() -> None:
    store = FrameStore({"book": Book})
    store.append("book", Book(symbol="X", bids=[Level(price=Decimal("1.5"), size=Decimal(2))]),
                 1, 0, 0)
    frame = store.frame("book")
    assert frame["bids"].to_list() == [[{"price": Decimal("1.5"), "size": Decimal("2")}]]


def test_unknown_channel_and_metadata_clash_are_clear_errors() -> None:
    store = FrameStore({"trade": Trade})
    with pytest.raises(UnknownChannelError, match=r"unknown channel 'tarde'.*\['trade'\]"):
        store.frame("tarde")

    class Bad(BaseModel):
        generation: int

    with pytest.raises(ValueError, match="clash"):
        FrameStore({"bad": Bad})


def test_clear_forgets_rows() -> None:
    store = FrameStore({"trade": Trade})
    store.append("trade", trade(1), 1, 0, 0)
    store.frame("trade")
    store.clear()
    assert store.frame("trade").height == 0
