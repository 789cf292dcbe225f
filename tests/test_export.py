"""Export to a Hive-partitioned Parquet dataset, load it back, read it with DuckDB, merge events."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import Recording, replay
from wsresearch.exchanges import binance
from wsresearch.export import (
    CONNECTION_SCHEMA,
    export_parquet,
    load_connections,
    load_dataset,
    load_normalized,
    merge_events,
    recording_id,
)

from .conftest import SESSION

DATA = Path(__file__).resolve().parent.parent / "data"
BINANCE = DATA / "binance/cryptofeed_2021-07-22_usdm_futures_combined.jsonl.gz"


def binance_recording(tmp_path: Path) -> Recording:
    lines = gzip.decompress(BINANCE.read_bytes()).decode().splitlines()
    # Captured in 2021 from the combined endpoint, which served every stream then.
    spec = binance.spec(channels=list(binance.CHANNELS), market="usdm",
                        url="wss://fstream.binance.com/stream")
    # Real receive times are unknown: 10 ms apart from 2021-07-22 22:25 UTC, across midnight
    # of no day, so one date partition.
    start = int(dt.datetime(2021, 7, 22, 22, 25, tzinfo=dt.UTC).timestamp()) * 10**9
    return Recording.from_frames(tmp_path / "binance",
                                 [(start + i * 10**7, line) for i, line in enumerate(lines)],
                                 spec=spec)


def test_export_then_load_round_trips_every_row(tmp_path: Path) -> None:
    summary = export_parquet(SESSION, None, tmp_path / "ds")
    expected = replay(SESSION).frames
    assert summary.rows == {name: frame.height for name, frame in expected.items()}
    rid = recording_id(Recording.open(SESSION))
    assert summary.recording == rid
    assert expected["order"].height == 0  # an empty channel writes no file
    with pytest.raises(ValueError, match="no channel"):
        load_dataset(tmp_path / "ds", ["order"])
    for name, frame in expected.items():
        if not frame.height:
            continue
        loaded = load_dataset(tmp_path / "ds", [name]).collect()
        assert loaded["recording"].unique().to_list() == [rid]
        assert loaded["channel"].unique().to_list() == [name]
        assert loaded["exchange"].unique().to_list() == ["generic"]
        back = loaded.drop("channel", "exchange", "date", "recording").sort("frame_seq")
        assert_frame_equal(back, frame.sort("frame_seq"), check_column_order=False)
    for path in summary.files:
        assert path.exists() and not path.name.endswith(".tmp")


def test_exporting_again_replaces_and_recordings_share_a_dataset(tmp_path: Path) -> None:
    first = export_parquet(SESSION, None, tmp_path / "ds")
    again = export_parquet(SESSION, None, tmp_path / "ds")
    assert again.replaced == len(first.files) and sorted(again.files) == sorted(first.files)
    other = export_parquet(binance_recording(tmp_path), None, tmp_path / "ds")
    assert other.recording != first.recording
    trades = load_dataset(tmp_path / "ds", ["trade"]).collect()
    assert trades.height == first.rows["trade"]  # exported twice, kept once
    depth = load_dataset(tmp_path / "ds", ["depth"]).collect()
    assert depth.height == 764 and depth["date"].unique().to_list() == [dt.date(2021, 7, 22)]
    connections = load_connections(tmp_path / "ds")
    assert connections.schema == pl.Schema(CONNECTION_SCHEMA)
    per = dict(connections.group_by("recording").len().iter_rows())
    assert per == {first.recording: 6 + 6, other.recording: 1}  # 6 opens, 6 closes; 1 open
    closes = connections.filter(recording=first.recording, kind="close")
    assert sorted(closes["code"].to_list()) == [1000, 1001, 1006, 1006, 4401, 4429]
    # Who closed each connection comes along (read off the reasons of this version-1 session).
    assert dict(closes.select("code", "closed_by").filter(pl.col("code") != 1006).iter_rows()) == {
        1000: "client", 1001: "server", 4401: "server", 4429: "server"}


def test_connections_exported_before_closed_by_was_stored_still_load(tmp_path: Path) -> None:
    summary = export_parquet(SESSION, None, tmp_path / "ds")
    (table,) = (tmp_path / "ds" / "_connections").glob("*.parquet")
    pl.read_parquet(table).drop("closed_by").write_parquet(table)  # as an older export wrote it
    connections = load_connections(tmp_path / "ds")
    assert connections.schema == pl.Schema(CONNECTION_SCHEMA)
    assert connections.height == 12 and connections["closed_by"].null_count() == 12
    assert connections["recording"].unique().to_list() == [summary.recording]


def test_a_path_that_is_no_dataset_is_refused_not_read_as_never_connected(
        tmp_path: Path) -> None:
    for path in (tmp_path / "no-such-dataset", SESSION / "manifest.json"):
        with pytest.raises(FileNotFoundError, match="holds no connections to read"):
            load_connections(path)
    # A folder with no recording exported into it yet has no connections: that is no error.
    assert load_connections(tmp_path).is_empty()


def test_duckdb_reads_the_same_dataset_with_its_partitions(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb", reason="duckdb is a dev dependency")
    export_parquet(SESSION, None, tmp_path / "ds")
    export_parquet(binance_recording(tmp_path), None, tmp_path / "ds")
    glob = str(tmp_path / "ds" / "channel=*" / "exchange=*" / "date=*" / "*.parquet")
    counts = dict(duckdb.sql(
        f"select channel, count(*) from read_parquet('{glob}', hive_partitioning=true, "
        "union_by_name=true) group by channel").fetchall())
    expected = load_dataset(tmp_path / "ds").group_by("channel").len().collect()
    assert counts == dict(expected.iter_rows())
    dates = duckdb.sql(f"select distinct date from read_parquet('{glob}', hive_partitioning="
                       "true, union_by_name=true) where channel = 'depth'").fetchall()
    assert dates == [(dt.date(2021, 7, 22),)]


def test_time_bounds_prune_days_and_filter_rows(tmp_path: Path) -> None:
    export_parquet(binance_recording(tmp_path), None, tmp_path / "ds")
    depth = load_dataset(tmp_path / "ds", ["depth"]).collect()
    middle = int(depth["recv_wall_ns"].median())  # type: ignore[arg-type]
    late = load_dataset(tmp_path / "ds", ["depth"], start=middle).collect()
    assert late.height == depth.filter(pl.col("recv_wall_ns") >= middle).height > 0
    early = load_dataset(tmp_path / "ds", ["depth"], end=dt.datetime(2021, 7, 22, 22, 25, 1))
    assert early.collect()["recv_wall_ns"].max() < middle  # type: ignore[operator]
    assert load_dataset(tmp_path / "ds", start=dt.date(2021, 7, 23)).collect().height == 0
    with pytest.raises(ValueError, match=r"no channel\(s\) \['trades'\]"):
        load_dataset(tmp_path / "ds", ["trades"])
    with pytest.raises(FileNotFoundError, match="holds no exported dataset"):
        load_dataset(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="holds no exported dataset"):
        load_normalized(tmp_path / "nothing", "trades")  # a mistyped path: not zero trades
    # Exported without the normalized tables: the kind's columns, and no rows.
    assert load_normalized(tmp_path / "ds", "trades").collect().height == 0
    with pytest.raises(ValueError, match="is after end"):
        load_dataset(tmp_path / "ds", ["depth"], start=middle + 1, end=middle)
    # One channel by its name alone, not read as a list of letters.
    assert load_dataset(tmp_path / "ds", "depth").collect().height == depth.height
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match="is a file; a dataset is a directory"):
        export_parquet(tmp_path / "not-even-read", None, tmp_path / "a-file")  # found first


def test_merged_events_are_in_time_order_with_stable_ties(tmp_path: Path) -> None:
    export_parquet(binance_recording(tmp_path), None, tmp_path / "ds")
    merged = merge_events(tmp_path / "ds").collect()
    assert merged.height == 1535
    assert merged["event_ns"].is_sorted()
    assert merged["frame_seq"].is_sorted()  # one row per frame here: receive order
    assert set(merged["channel"].unique()) == {"depth", "bookTicker", "aggTrade", "kline"}
    by_exchange = merge_events(tmp_path / "ds", by="exchange").collect()
    assert by_exchange["event_ns"].is_sorted()
    assert (by_exchange["event_ns"] == by_exchange["exchange_ns"]).all()
    frames = replay(SESSION).frames
    live = merge_events(frames, channels=["trade", "ticker"]).collect()
    assert live.height == frames["trade"].height + frames["ticker"].height
    assert live["event_ns"].is_sorted()
    with pytest.raises(ValueError, match="by must be"):
        merge_events(frames, by="arrival")  # type: ignore[arg-type]
