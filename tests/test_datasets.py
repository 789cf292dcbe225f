"""A dataset of several exchanges: exported, loaded and merged whole, read alike by every engine."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
import warnings
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import Recording, export_parquet, load_dataset, merge_events
from wsresearch.exchanges import binance, coinbase, kraken
from wsresearch.export import load_normalized
from wsresearch.spec import FeedSpec

from .conftest import SESSION

DATA = Path(__file__).resolve().parent.parent / "data"
CAPTURES = {
    "binance-usdm": ("binance/cryptofeed_2021-07-22_usdm_futures_combined.jsonl.gz",
                     lambda: binance.spec(["BTCUSDT"], ["aggTrade"], market="usdm")),
    "coinbase": ("coinbase/cryptofeed_2021-04-17_exchange_level2_ticker_matches.jsonl.gz",
                 lambda: coinbase.spec(["BTC-USD"], ["matches", "ticker"], api="exchange")),
    "kraken": ("kraken/cryptofeed_2021-04-17_v1_trade.jsonl.gz",
               lambda: kraken.spec(["XBT/USD"], ["trade"], api="v1")),
}


def recording(tmp_path: Path, name: str, day: dt.datetime) -> tuple[Recording, FeedSpec]:
    path, build = CAPTURES[name]
    lines = gzip.decompress((DATA / path).read_bytes()).decode().splitlines()
    start = int(day.timestamp()) * 10**9
    spec = build()
    return Recording.from_frames(tmp_path / name, [(start + i * 10**7, line)
                                                   for i, line in enumerate(lines)],
                                 spec=spec), spec


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """The shipped simulator session and three exchanges' captures, in one dataset."""
    root = tmp_path / "ds"
    export_parquet(SESSION, None, root, normalized=True)
    for name, day in (("binance-usdm", dt.datetime(2021, 7, 22, 22, tzinfo=dt.UTC)),
                      ("coinbase", dt.datetime(2021, 4, 17, 12, tzinfo=dt.UTC)),
                      ("kraken", dt.datetime(2021, 4, 17, 13, tzinfo=dt.UTC))):
        made, spec = recording(tmp_path, name, day)
        export_parquet(made, spec, root, normalized=True)
    return root


def test_every_exchange_s_rows_load_together_and_merge(dataset: Path) -> None:
    rows = load_dataset(dataset).group_by("exchange").len().collect()
    assert set(rows["exchange"]) == {"generic", "binance-usdm", "coinbase", "kraken"}
    merged = merge_events(dataset).collect()
    assert merged.height == rows["len"].sum()
    assert merged["event_ns"].is_sorted()


def test_normalized_trades_of_every_exchange_read_the_same_in_polars_duckdb_and_pandas(
    dataset: Path,
) -> None:
    duckdb = pytest.importorskip("duckdb", reason="duckdb is a dev dependency")
    pandas = pytest.importorskip("pandas", reason="pandas comes with wsresearch[dataset]")
    key = ["exchange", "recording", "frame_seq", "trade_id"]
    columns = [*key, "symbol", "price", "amount", "side", "local_time"]
    # Every column sorts: a trade without an id (Kraken v1) ties on the key alone.
    polars_rows = load_normalized(dataset, "trades").select(columns).sort(columns).collect()
    assert set(polars_rows["exchange"]) == {"generic", "binance-usdm", "coinbase", "kraken"}
    glob = dataset / "kind=trades" / "exchange=*" / "date=*" / "*.parquet"
    duckdb_rows = pl.from_arrow(duckdb.sql(
        f"select {', '.join(columns)} from read_parquet('{glob}', hive_partitioning=true, "
        f"union_by_name=true) order by {', '.join(columns)} nulls last").arrow())
    pandas_rows = pl.from_pandas(pandas.read_parquet(dataset / "kind=trades")
                                 .astype({"exchange": str})[columns])
    assert isinstance(duckdb_rows, pl.DataFrame)
    for other in (duckdb_rows, pandas_rows.sort(columns)):
        assert_frame_equal(other.with_columns(pl.col("local_time").dt.epoch("ns")),
                           polars_rows.with_columns(pl.col("local_time").dt.epoch("ns")),
                           check_dtypes=False)


def test_polars_streaming_engine_aggregates_the_dataset_as_the_in_memory_one(
    dataset: Path,
) -> None:
    query = (load_normalized(dataset, "trades").group_by("exchange", "symbol")
             .agg(pl.len().alias("trades"), pl.col("amount").sum(), pl.col("price").max())
             .sort("exchange", "symbol"))
    streamed = query.collect(engine="streaming")
    assert streamed.height >= 4
    assert_frame_equal(streamed, query.collect(engine="in-memory"))


def test_a_dataset_exported_before_exchange_partitions_still_loads(dataset: Path) -> None:
    # The layout before: channel=<name>/date=<day>/<recording>.parquet, no exchange level.
    before = load_dataset(dataset, ["trade"]).collect()
    for folder in (dataset / "channel=trade").glob("exchange=*"):
        for day in folder.iterdir():
            shutil.move(day, dataset / "channel=trade" / day.name)
        folder.rmdir()
    after = load_dataset(dataset, ["trade"]).collect()
    assert after["exchange"].null_count() == after.height == before.height
    assert_frame_equal(after.drop("exchange"), before.drop("exchange"),
                       check_column_order=False, check_row_order=False)


def test_a_kind_no_recording_holds_loads_empty_with_its_columns(dataset: Path) -> None:
    candles = load_normalized(dataset, "liquidations").collect()
    assert candles.height == 0 and {"exchange", "price", "side"} <= set(candles.columns)
    with pytest.raises(ValueError, match="unknown kind"):
        load_normalized(dataset, "trade")


OKX = DATA / "recordings" / "okx_cryptofeed_2022-05-13_v5_public_tickers_trades_books"
BOOKS = [DATA / "recordings" / "binance_hftbacktest_2024-08-08_spot_btcusdt",
         DATA / "recordings" / "kraken_cryptofeed_2021-04-17_v1_book1000"]


def test_two_exchanges_books_merge_as_their_normalized_kinds(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for path in BOOKS:
        export_parquet(path, None, root, normalized=True)
    # Their native book channels' levels are of different types: one column cannot hold both.
    with pytest.raises(ValueError, match=r"'bids'.*merge_events\(dataset, kinds="):
        merge_events(root).collect()
    kinds = ["trades", "quotes", "book_changes", "book_snapshots"]
    merged = merge_events(root, kinds=kinds).collect()
    tables = {kind: load_normalized(root, kind).collect() for kind in kinds}
    assert merged.height == sum(table.height for table in tables.values())
    assert set(merged["exchange"]) == {"binance", "kraken"}
    assert set(merged["kind"]) == {"trades", "quotes", "book_changes", "book_snapshots"}
    assert merged["event_ns"].to_list() == merged["local_time"].dt.epoch("ns").to_list()
    assert merged["event_ns"].is_sorted()
    # Each kind's rows are its table's, in its order (ties keep it).
    for kind, table in tables.items():
        mine = merged.filter(kind=kind).select(table.columns)
        assert_frame_equal(mine.sort("local_time", maintain_order=True),
                           table.sort("local_time", maintain_order=True))
    by_exchange = merge_events(root, "exchange", kinds=["book_changes"]).collect()
    assert by_exchange["event_ns"].to_list() == by_exchange.select(pl.coalesce(
        "exchange_time", "local_time").dt.epoch("ns"))["exchange_time"].to_list()


@pytest.mark.parametrize(("arguments", "message"), [
    ({"kinds": ["nope"]}, "unknown kind 'nope'"),
    ({"kinds": "trades"}, r"a list of kinds \(kinds=\['trades'\]\)"),
    ({"kinds": ["trades"], "channels": ["trade"]}, "not both"),
])
def test_merging_kinds_refuses_what_it_cannot_merge(
        dataset: Path, arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        merge_events(dataset, **arguments)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dataset directory"):
        merge_events({"trade": pl.DataFrame()}, kinds=["trades"])


def test_merging_no_kinds_is_empty_and_a_kind_twice_is_merged_once(dataset: Path) -> None:
    assert merge_events(dataset, kinds=[]).collect().height == 0
    once = merge_events(dataset, kinds=["trades"]).collect()
    assert once.height == load_normalized(dataset, "trades").collect().height > 0
    assert_frame_equal(merge_events(dataset, kinds=["trades", "trades"]).collect(), once)


def test_a_channel_named_as_a_normalized_kind_is_told_apart_from_it(tmp_path: Path) -> None:
    # OKX calls its trades channel "trades", the name of the normalized kind: a researcher
    # asking load_dataset for "trades" of a dataset with Binance too gets OKX's frames only.
    root = tmp_path / "ds"
    export_parquet(SESSION, None, root, normalized=True)
    export_parquet(OKX, None, root, normalized=True)
    with pytest.warns(UserWarning, match=r"^'trades' is read as the channel of that name, the "
                                         r"native frames of \['okx'\] only; the normalized "
                                         r"'trades' also holds rows of \['generic'\]; the "
                                         r"normalized kind of every exchange is "
                                         r"load_normalized\(path, 'trades'\)$"):
        native = load_dataset(root, "trades").collect()
    assert set(native["exchange"]) == {"okx"}
    alone = tmp_path / "okx"
    export_parquet(OKX, None, alone, normalized=True)
    with warnings.catch_warnings():  # OKX's alone: its channel holds every exchange's trades
        warnings.simplefilter("error")
        assert load_dataset(alone, "trades").collect().height == native.height
    # The layout before exchange partitions does not say whose rows a folder holds.
    for folder in (alone / "kind=trades").iterdir():
        for day in folder.iterdir():
            day.rename(alone / "kind=trades" / day.name)
        folder.rmdir()
    with pytest.warns(UserWarning, match=r"^'trades' is read as the channel of that name, an "
                                         r"exchange's native frames; the normalized kind"):
        load_dataset(alone, "trades")
    assert set(load_normalized(root, "trades").collect()["exchange"]) == {"generic", "okx"}
    # A kind no exchange names a channel after is refused, with where it is.
    with pytest.raises(ValueError, match=r"has no channel\(s\) \['quotes'\]; it has \[.*\]; the "
                                         r"normalized kind of every exchange is "
                                         r"load_normalized\(path, 'quotes'\)$"):
        load_dataset(root, ["trade", "quotes"])
    with warnings.catch_warnings():  # the whole dataset, or other channels: nothing to tell
        warnings.simplefilter("error")
        load_dataset(root)
        load_dataset(root, "trade")
