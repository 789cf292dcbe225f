"""Normalized tables: one set of columns per kind, built from native frames left as they were."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import BaseModel, ValidationError

from wsresearch import Channel, Feed, FeedSpec, Simulator, replay
from wsresearch.exchanges import generic
from wsresearch.normalize import COMMON, KINDS, normalize

from .conftest import SESSION, eventually, quick


def test_every_kind_has_the_common_columns_then_its_own_even_when_empty() -> None:
    spec = generic.spec(url="ws://127.0.0.1:1")
    result = replay(SESSION, spec)
    for kind in KINDS:
        table = result.normalized(kind)
        assert table.schema == pl.Schema(COMMON | KINDS[kind]), kind
    assert result.normalized("candles").height == 0  # the simulator sends no candles


def test_the_simulator_s_trades_and_quotes_come_one_row_per_native_row() -> None:
    result = replay(SESSION, generic.spec(url="ws://127.0.0.1:1"))
    trades, native = result.normalized("trades"), result.frames["trade"]
    assert trades.height == native.height > 0
    assert trades["exchange"].unique().to_list() == ["generic"]
    assert set(trades["side"].unique()) <= {"buy", "sell"}
    assert trades.null_count().select(pl.sum_horizontal(pl.all())).item() == 0
    first = native.row(0, named=True)
    row = trades.filter(pl.col("frame_seq") == first["frame_seq"]).row(0, named=True)
    assert (row["trade_id"], row["price"], row["amount"], row["side"], row["symbol"]) == (
        str(first["trade_id"]), first["price"], first["size"], first["side"], first["symbol"])
    assert row["exchange_time"].timestamp() == pytest.approx(first["exchange_ns"] / 1e9)
    assert row["local_time"].timestamp() == pytest.approx(first["recv_wall_ns"] / 1e9)
    quotes = result.normalized("quotes")
    assert quotes.height == result.frames["ticker"].height
    ticker = result.frames["ticker"].row(0, named=True)
    assert quotes.select("bid_price", "bid_amount", "ask_price", "ask_amount").row(0) == (
        ticker["bid"], ticker["bid_size"], ticker["ask"], ticker["ask_size"])


def test_normalizing_leaves_the_native_frames_as_they_were() -> None:
    result = replay(SESSION, generic.spec(url="ws://127.0.0.1:1"))
    before = {name: frame.clone() for name, frame in result.frames.items()}
    for kind in KINDS:
        result.normalized(kind)
    for name, frame in result.frames.items():
        assert_frame_equal(frame, before[name])


def test_an_unknown_kind_is_a_clear_error_everywhere() -> None:
    result = replay(SESSION, generic.spec(url="ws://127.0.0.1:1"))
    with pytest.raises(ValueError, match=r"unknown kind 'trade'; the kinds are \['trades'"):
        result.normalized("trade")
    with pytest.raises(ValidationError, match="unknown kind"):
        Channel(name="x", model=generic.Trade, normalized={"prices": lambda f: f})


def test_the_exchange_column_names_the_api_and_defaults_to_the_adapter() -> None:
    spec = generic.spec(url="ws://127.0.0.1:1")
    assert spec.exchange_name == "generic"
    renamed = spec.replace(exchange="sim-east")
    assert replay(SESSION, renamed).normalized("trades")["exchange"].unique().to_list() == [
        "sim-east"]


def test_a_normalizer_that_gives_several_rows_per_message_keeps_their_times() -> None:
    class Level(BaseModel):
        price: float
        size: float

    class Book(BaseModel):
        type: str
        symbol: str
        bids: list[Level]

    def changes(native: pl.LazyFrame) -> pl.LazyFrame:
        return (native.explode("bids").unnest("bids")
                .with_columns(side=pl.lit("bid"), amount="size", is_snapshot=pl.lit(False)))

    spec = FeedSpec(url="ws://127.0.0.1:1", type_of=lambda m: m.get("type"), channels=[
        Channel(name="book", model=Book, normalized={"book_changes": changes})])
    frames = {"book": pl.DataFrame({
        "symbol": ["A", "B"], "bids": [[{"price": 1.0, "size": 2.0}, {"price": 0.5, "size": 0.0}],
                                       [{"price": 9.0, "size": 1.0}]],
        "recv_wall_ns": [10, 20], "recv_mono_ns": [1, 2], "generation": [1, 1],
        "exchange_ns": [None, 15], "frame_seq": [3, 4]})}
    table = spec.normalized("book_changes", frames)
    assert table.select("symbol", "price", "amount", "frame_seq").rows() == [
        ("A", 1.0, 2.0, 3), ("A", 0.5, 0.0, 3), ("B", 9.0, 1.0, 4)]
    assert table["exchange_time"].dt.epoch("ns").to_list() == [None, None, 15]
    assert table["exchange"].to_list() == ["unknown"] * 3  # a hand-built spec names none
    assert normalize("book_changes", frames, {}, "x").height == 0


async def test_a_live_feed_gives_the_same_tables_as_its_replay(tmp_path: Path) -> None:
    async with Simulator(seed=3) as sim:
        spec = sim.spec(connection=quick())
        async with Feed(spec, record_to=f"{tmp_path}/rec", flush_interval=0.05) as feed:
            await eventually(lambda: feed.store.rows("trade") >= 30, what="trades")
    live = feed.normalized("trades")
    replayed = replay(f"{tmp_path}/rec", spec).normalized("trades")
    assert live.height >= 30
    assert_frame_equal(live, replayed)  # the recording keeps the receive times too
    assert set(live["side"]) <= {"buy", "sell"}
