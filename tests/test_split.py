"""One recording exported by several processes, split where connections begin: the same dataset."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import DamagedSegmentWarning, Recording, _staging, export_parquet
from wsresearch._split import plan, splittable
from wsresearch.exchanges import bybit, generic, kraken
from wsresearch.export import recording_id
from wsresearch.recording.writer import Captured, write_events

from .conftest import as_connections

START = 1_700_000_000 * 10**9


def pq_row_groups(path: Path) -> list[int]:
    """The rows of each row group of a Parquet file."""
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


S = 10**9


def trade(n: int, trade_id: int, ms: int) -> str:
    return json.dumps({"type": "trade", "symbol": "BTC-USD", "seq": n, "trade_id": trade_id,
                       "price": "1.5", "size": "0.1", "side": "buy", "ts": START + ms * 10**6})


def session(path: Path, connections: list[tuple[float, float]], chain: float | None) -> Recording:
    """Connections ``(from_s, to_s)``, a trade each 0.5 s with fresh ids; the first seconds of
    each connection repeat the last trades of the one before (duplicates across a reconnect).
    ``chain``: also a trade id repeated every that many seconds all along, whose de-dup life
    (60 s from when it was last new) depends on the whole history before any point."""
    spec = generic.spec(url="ws://127.0.0.1:1")
    events = []
    n = 0
    last: list[tuple[int, int]] = []
    for low, high in connections:
        events.append(Captured("open", START + round(low * S), spec.url))
        t = low
        for trade_id, ms in last[-4:]:  # the reconnect overlap
            n += 1
            events.append(Captured("frame", START + round(t * S), trade(n, trade_id, ms)))
        next_chain = low
        while t < high:
            n += 1
            trade_id = 1_000_000 + n
            text = trade(n, trade_id, round(t * 1000))
            events.append(Captured("frame", START + round(t * S), text))
            last.append((trade_id, round(t * 1000)))
            if chain is not None and t >= next_chain:
                n += 1
                events.append(Captured("frame", START + round(t * S), trade(n, 7, 0)))
                next_chain += chain
            t += 0.5
    write_events(path, events, source_url=spec.url, origin=spec.origin)
    return Recording.open(path)


def assert_same_dataset(a: Path, b: Path) -> None:
    """The same files, byte for byte (so their rows, and row groups, are the same)."""
    files = sorted(f.relative_to(a) for f in a.rglob("*.parquet"))
    assert files == sorted(f.relative_to(b) for f in b.rglob("*.parquet"))
    assert files
    for file in files:
        assert_frame_equal(pl.read_parquet(a / file), pl.read_parquet(b / file))
        assert (a / file).read_bytes() == (b / file).read_bytes(), file


@pytest.fixture(params=["rows", "bytes"])
def small_row_groups(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Final files in small row groups, so that small recordings make several: bounded by
    100 rows, or by 8 KiB of rows (each file's own number of rows, found from its rows'
    size). Returns the rows bound, or 0 for the bytes bound."""
    if request.param == "rows":
        monkeypatch.setattr(_staging, "ROW_GROUP", 100)
        return 100
    monkeypatch.setattr(_staging, "ROW_GROUP_BYTES", 8 * 1024)
    monkeypatch.setattr(_staging, "MIN_ROW_GROUP", 1)
    return 0


@pytest.mark.parametrize("chunk_events", [97, 1_000])
def test_a_datasets_files_are_the_same_bytes_whatever_the_chunks_and_processes(
    tmp_path: Path, chunk_events: int, small_row_groups: int,
) -> None:
    recording = session(tmp_path / "rec", [(0, 150), (151, 300)], chain=None)
    export_parquet(recording, None, tmp_path / "whole", normalized=True, chunk_events=20_000)
    export_parquet(recording, None, tmp_path / "chunked", normalized=True,
                   chunk_events=chunk_events, workers=2)
    assert_same_dataset(tmp_path / "whole", tmp_path / "chunked")
    for file in (tmp_path / "whole").glob("[ck]*=*/*/*/*.parquet"):
        groups = pq_row_groups(file)
        assert len(set(groups[:-1])) <= 1 and groups[-1] <= groups[0], (file, groups)
        if small_row_groups:
            assert groups[0] == small_row_groups or len(groups) == 1, (file, groups)
    groups = pq_row_groups(next((tmp_path / "whole").glob("channel=trade/*/*/*.parquet")))
    assert len(groups) > 3


def test_a_long_recording_split_over_processes_gives_the_serial_dataset(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Four connections of 150 s: each part after the first warms up on the 120 s before it.
    recording = session(tmp_path / "rec", [(0, 150), (151, 300), (301, 450), (451, 600)],
                        chain=None)
    parts = plan(recording, 3, 60.0)
    assert len(parts) == 3
    assert all(0 < part.warm < part.start for part in parts[1:]), parts
    serial = export_parquet(recording, None, tmp_path / "serial", normalized=True)
    assert serial.rows["trade"] < recording.event_count - 8, "the overlaps are duplicates"
    with caplog.at_level(logging.INFO, logger="wsresearch._split"):
        split = export_parquet(recording, None, tmp_path / "split", normalized=True, workers=3)
    assert split.parts == 3
    assert (split.recording, split.rows, split.normalized) == (
        serial.recording, serial.rows, serial.normalized)
    assert_same_dataset(tmp_path / "serial", tmp_path / "split")
    assert "replayed again" not in caplog.text, "every warm-up found the state handed over"


def test_a_part_whose_warm_up_misses_the_caches_is_replayed_from_the_hand_over(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A trade id repeated every 40 s: when it is new again depends on all that came before,
    # and the warm-up (120 s) starts between two of its repeats.
    recording = session(tmp_path / "rec", [(0, 200.5), (201, 400.5)], chain=40.0)
    serial = export_parquet(recording, None, tmp_path / "serial")
    with caplog.at_level(logging.INFO, logger="wsresearch._split"):
        split = export_parquet(recording, None, tmp_path / "split", workers=2)
    assert split.parts == 2
    assert split.rows == serial.rows
    assert "replayed again" in caplog.text
    assert_same_dataset(tmp_path / "serial", tmp_path / "split")


def test_a_damaged_segment_is_warned_of_once_by_the_parent_as_by_the_serial_export(
        tmp_path: Path) -> None:
    # One file of 80,000 events (read in pieces of 20,000), three connections: the first
    # part (15,000 events) stops before the file's last piece, the others read all of it.
    # An event in the first piece and one in the last lost their mono_ns.
    recording = session(tmp_path / "rec", [(0, 7500), (7501, 20000), (20001, 40000)],
                        chain=None)
    (file,) = (tmp_path / "rec" / "segments").rglob("*.parquet")
    table = pl.read_parquet(file)
    assert table.height > 80_000
    lost = pl.col("seq").is_in([5_000, 70_000])
    table.with_columns(mono_ns=pl.when(lost).then(None).otherwise(pl.col("mono_ns"))
                       ).write_parquet(file, row_group_size=10_000)
    recording = Recording.open(tmp_path / "rec")
    said = f"{file}: skipping 2 event(s) without a value of mono_ns (a damaged segment)"

    def export(out: str, workers: int) -> tuple[object, list[warnings.WarningMessage]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            done = export_parquet(recording, None, tmp_path / out, workers=workers)
        return done, caught

    serial, told = export("serial", 1)
    assert [str(w.message) for w in told] == [said]
    split, told = export("split", 3)
    assert split.parts == 3  # type: ignore[attr-defined]
    assert split.rows == serial.rows  # type: ignore[attr-defined]
    assert [str(w.message) for w in told] == [said]
    assert told[0].category is DamagedSegmentWarning
    assert told[0].filename == __file__  # the caller's line, not a worker's
    assert_same_dataset(tmp_path / "serial", tmp_path / "split")
    # The id the files are named by is the recording's, counted as the export counts.
    assert (tmp_path / "serial" / "_connections" / f"{recording_id(recording)}.parquet"
            ).is_file()


def test_garbled_messages_and_skipped_files_are_told_of_as_by_the_serial_export(
        tmp_path: Path) -> None:
    # Lost data at seq 281, in the second part's warm-up (the first part's own events),
    # and at 404, in its own; and a torn write beside the segment, which each part's
    # process finds again when it opens the recording.
    recording = session(tmp_path / "rec", [(0, 150), (151, 300)], chain=None)
    assert [part.start for part in plan(recording, 2, 60.0)] == [0, 301]
    (file,) = (tmp_path / "rec" / "segments").rglob("*.parquet")
    lost = pl.col("seq").is_in([281, 404])
    pl.read_parquet(file).with_columns(data=pl.when(lost).then(None).otherwise(pl.col("data"))
                                       ).write_parquet(file)
    file.with_name(file.name + ".x1y2.tmp").write_bytes(b"torn")
    told = []
    for workers in (1, 2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            export_parquet(Recording.open(tmp_path / "rec"), None, tmp_path / f"out{workers}",
                           workers=workers)
        told.append(sorted(str(w.message) for w in caught))
    assert told[0] == told[1]
    assert len(told[0]) == 2 and "2 message(s) whose recorded data" in told[0][0]
    assert "an unfinished write" in told[0][1]


def test_a_first_part_of_few_events_names_the_files_as_the_serial_export(
        tmp_path: Path) -> None:
    # The recording's id hashes its first 16 events: here 3 in the first part.
    recording = session(tmp_path / "rec", [(0, 1), (1.5, 60)], chain=None)
    assert plan(recording, 2, 60.0)[1].start == 3
    export_parquet(recording, None, tmp_path / "serial")
    assert export_parquet(recording, None, tmp_path / "split", workers=2).parts == 2
    assert_same_dataset(tmp_path / "serial", tmp_path / "split")


def test_what_cannot_be_split_is_exported_by_one_process(tmp_path: Path) -> None:
    one = session(tmp_path / "one", [(0, 30)], chain=None)
    assert export_parquet(one, None, tmp_path / "a", workers=2).parts == 1
    by_hand = generic.spec(url="ws://127.0.0.1:1").replace(dedupe_ttl=5.0)
    many = session(tmp_path / "many", [(0, 30), (31, 60)], chain=None)
    assert export_parquet(many, by_hand, tmp_path / "b", workers=2).parts == 1
    stateful = bybit.spec(["BTCUSDT"], ["tickers"])
    assert "carries state" in (splittable(stateful, normalized=True) or "")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_workers_must_be_a_positive_int(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="workers must be a positive int"):
        export_parquet(Path(__file__).parent.parent / "data" / "sessions" / "sim-faults", None,
                       tmp_path / "x", workers=bad)  # type: ignore[arg-type]


def test_order_books_split_at_reconnects_give_the_serial_books_tables(tmp_path: Path) -> None:
    """Kraken's book capture played as three connections: books, their snapshots and
    quotes, exported in parts, are the serial ones (each connection rebuilds its books)."""
    # Stretched to 5 minutes a connection, so each part's warm-up (2 minutes) starts inside
    # the connection before it, where the books were never whole and their symbols come in
    # another order.
    as_connections(Path(__file__).parent.parent / "data" / "recordings"
                   / "kraken_cryptofeed_2021-04-17_v1_book1000", tmp_path / "rec", 3, stretch=10)
    serial = export_parquet(tmp_path / "rec", None, tmp_path / "serial", normalized=True)
    split = export_parquet(tmp_path / "rec", None, tmp_path / "split", normalized=True,
                           workers=3)
    assert split.parts == 3
    assert all(0 < part.warm < part.start for part in plan(Recording.open(tmp_path / "rec"), 3,
                                                           60.0)[1:])
    assert serial.normalized["book_snapshots"] > 0
    assert serial.normalized["quotes"] > 0
    assert (split.rows, split.normalized) == (serial.rows, serial.normalized)
    assert_same_dataset(tmp_path / "serial", tmp_path / "split")


def test_a_script_without_a_main_guard_is_told_so_in_one_line(tmp_path: Path) -> None:
    recording = session(tmp_path / "rec", [(0, 150), (151, 300)], chain=None)
    script = tmp_path / "unguarded.py"
    script.write_text("from wsresearch import export_parquet\n"
                      f"export_parquet({str(recording.path)!r}, None, {str(tmp_path / 'ds')!r}, "
                      "workers=2)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode != 0
    told = [line for line in done.stderr.splitlines() if line.startswith("wsresearch: ")]
    assert told and all('under `if __name__ == "__main__":`' in line for line in told), told
    assert "bootstrapping phase" not in done.stderr  # multiprocessing's own long traceback
    assert len(done.stderr.splitlines()) < 40, done.stderr


def _unknown_then_trades(path: Path) -> None:
    """Two connections: the first sends only messages of no known type, the second trades."""
    t0 = 1_700_000_000 * 10**9
    events = []
    for k, opened in enumerate((t0, t0 + 600 * 10**9)):
        events.append(Captured("open", opened, "wss://example.test/ws"))
        for j in range(1, 50):
            text = json.dumps({"type": "mystery", "n": j}) if k == 0 else json.dumps(
                {"type": "trade", "symbol": "BTC-USD", "seq": j, "trade_id": 100 + j,
                 "price": "100.5", "size": "1", "side": "buy", "ts": opened + j * 10**9})
            events.append(Captured("frame", opened + j * 10**9, text))
    spec = generic.spec(["BTC-USD"], ["trade"], url="wss://example.test/ws")
    write_events(path, events, source_url=spec.url, origin=spec.origin)


def test_a_part_that_keeps_nothing_is_not_told_of_as_the_whole(tmp_path: Path) -> None:
    # Its first part rejects every message, the second keeps them: the export kept rows,
    # so no warning, as the serial export gives none. With another exchange's spec every
    # message of both parts is rejected: one warning of them all, as the serial one.
    _unknown_then_trades(tmp_path / "rec")
    assert len(plan(Recording.open(tmp_path / "rec"), 2, 60.0)) == 2
    kraken_spec = kraken.spec(["XBT/USD"], ["trade"])
    for name, spec, expected in (("own", None, []), ("kraken", kraken_spec, [
            f"{tmp_path / 'rec'}: all 98 messages were rejected (unknown_type 98) and no row "
            "was kept: is the kraken spec the recording's (it was recorded with the generic "
            "adapter's)?"])):
        for workers in (1, 2):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                export_parquet(tmp_path / "rec", spec, tmp_path / f"out-{name}-{workers}",
                               workers=workers)
            assert [str(w.message) for w in caught] == expected, workers
