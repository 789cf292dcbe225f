"""Exports write only where they should, privately, and load back whatever they hold.

F21: channel names became path parts (``../../x`` wrote outside the dataset).
F22: export followed a symlink planted at its predictable ``.tmp`` name, and its files
were readable by everyone while recordings are not. Research trial 4b: a dataset with
two exchanges' recordings could not be loaded (``SchemaError``), even filtered to one.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import polars as pl
import pytest
from pydantic import BaseModel, ValidationError

from wsresearch import (
    Channel,
    Recording,
    export_parquet,
    load_dataset,
    merge_events,
)

from .conftest import SESSION
from .test_exchange_data import CAPTURES, adapter_spec, lines


class Row(BaseModel):
    n: int


@pytest.mark.parametrize("name", ["../../../escaped_dir", "/abs", "a/b", "..", ".hidden",
                                  "channel=x", "nul\x00", ""])
def test_a_channel_name_that_is_not_one_safe_path_part_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="name"):
        Channel(name=name, model=Row)


@pytest.mark.parametrize("name", ["trade", "bookTicker", "books-l2-tbt", "kline_1m",
                                  "depth@100ms", "candle1m:BTC"])
def test_exchange_channel_names_are_accepted(name: str) -> None:
    assert Channel(name=name, model=Row).name == name


def test_export_never_follows_a_planted_symlink_and_writes_privately(tmp_path: Path) -> None:
    dataset = tmp_path / "shared_ds"
    summary = export_parquet(SESSION, None, dataset)
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    rid = summary.recording
    # Every name the old writer would have used for its temporary files.
    for final in summary.files:
        final.with_name(final.name + ".tmp").symlink_to(victim)
    export_parquet(SESSION, None, dataset)  # again: replaces its own files
    assert victim.read_text() == "untouched"
    assert all(p.is_symlink() for p in dataset.rglob("*.tmp"))  # left alone, not written
    written = [p for p in dataset.rglob("*") if not p.is_symlink()]
    assert any(p.name == f"{rid}.parquet" for p in written)
    for path in written:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def test_export_leaves_an_existing_folder_s_permissions_alone(tmp_path: Path) -> None:
    shared = tmp_path / "team"
    shared.mkdir()
    os.chmod(shared, 0o2775)
    export_parquet(SESSION, None, shared)
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o2775
    assert stat.S_IMODE(os.stat(shared / "channel=trade").st_mode) == 0o700


def _export_capture(file_part: str, tmp_path: Path, dataset: Path) -> str:
    capture = next(c for c in CAPTURES if file_part in c.file)
    recording = Recording.from_frames(tmp_path / file_part, lines(capture),
                                      spec=adapter_spec(capture))
    return export_parquet(recording, None, dataset).recording


def test_a_dataset_of_two_exchanges_loads_filters_and_merges(tmp_path: Path) -> None:
    dataset = tmp_path / "ds"
    binance = _export_capture("spot_btcusdt_depth100ms", tmp_path, dataset)
    kraken = _export_capture("v1_trade", tmp_path, dataset)
    trades = load_dataset(dataset, "trade").collect()
    by_recording = dict(trades.group_by("recording").len().iter_rows())
    assert by_recording == {binance: 1123, kraken: 10}
    # Each exchange's own columns, null in the other's rows.
    assert trades.filter(recording=binance)["trade_id"].null_count() == 0
    assert trades.filter(recording=kraken)["trade_id"].null_count() == 10
    only = load_dataset(dataset, "trade").filter(pl.col("recording") == kraken).collect()
    assert only.height == 10
    merged = merge_events(dataset, channels=["trade", "bookTicker"]).collect()
    assert merged.height == 1123 + 10 + 4346
    assert merged["event_ns"].is_sorted()


def test_columns_whose_types_cannot_be_merged_are_refused_naming_the_files(
    tmp_path: Path,
) -> None:
    dataset = tmp_path / "ds"
    _export_capture("v1_book1000", tmp_path, dataset)  # Kraken book: levels as structs
    _export_capture("XRPUSDT_orderbook500", tmp_path, dataset)  # Bybit: levels as arrays
    assert load_dataset(dataset, "book").collect().height == 4279  # each alone is fine
    assert load_dataset(dataset, "orderbook").collect().height == 50
    with pytest.raises(ValueError, match=r"column '(bids|asks)' is .* in .*channel=.* but .* in "
                                         r".*channel=.*no type keeps both; load them apart"):
        load_dataset(dataset, ["book", "orderbook"])
    with pytest.raises(ValueError, match="load them apart"):
        merge_events(dataset)


def test_old_naive_datetimes_and_new_utc_ones_load_together(tmp_path: Path) -> None:
    # Exports made before datetimes were stored in UTC hold naive ones (UTC all the same).
    folder = tmp_path / "ds" / "channel=t" / "date=2024-01-01"
    folder.mkdir(parents=True)
    at = dt.datetime(2024, 1, 1, 12)
    pl.DataFrame({"at": [at], "recv_wall_ns": [1]}).write_parquet(folder / "old.parquet")
    pl.DataFrame({"at": [at.replace(tzinfo=dt.UTC)], "recv_wall_ns": [2]}).write_parquet(
        folder / "new.parquet")
    rows = load_dataset(tmp_path / "ds", "t").collect()
    assert rows["at"].dtype == pl.Datetime("us", "UTC")
    assert rows["at"].to_list() == [at.replace(tzinfo=dt.UTC)] * 2


@pytest.mark.parametrize(("old", "new"), [(pl.Float64, pl.String), (pl.Int64, pl.UInt64)])
def test_types_that_would_change_their_values_meaning_are_refused(
    tmp_path: Path, old: pl.DataType, new: pl.DataType,
) -> None:
    folder = tmp_path / "ds" / "channel=t" / "date=2024-01-01"
    folder.mkdir(parents=True)
    pl.DataFrame({"v": pl.Series([1], dtype=old), "recv_wall_ns": [1]}).write_parquet(
        folder / "a.parquet")
    pl.DataFrame({"v": pl.Series(["1" if new == pl.String else 1], dtype=new),
                  "recv_wall_ns": [2]}).write_parquet(folder / "b.parquet")
    with pytest.raises(ValueError, match=r"column 'v' is .* no type keeps both"):
        load_dataset(tmp_path / "ds", "t")
