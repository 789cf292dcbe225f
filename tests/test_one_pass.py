"""One replay for the export, the normalized tables and the quality report together."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from wsresearch import (
    Recording,
    export_parquet,
    load_dataset,
    load_normalized,
    load_outages,
    quality_report,
)
from wsresearch.export import export_with_report

RECORDING = (Path(__file__).resolve().parent.parent / "data" / "recordings"
             / "binance_hftbacktest_2024-08-08_spot_btcusdt")


def replays(calls: list[tuple[int, int]], files: int = 0) -> int:
    """How many replays a progress log shows: each ends with (total, total), as does each
    of the ``files`` an export writes at its end (the connections table aside)."""
    return sum(1 for done, total in calls if done == total) - files


def test_one_replay_gives_the_same_dataset_and_report_as_two(tmp_path: Path) -> None:
    recording = Recording.open(RECORDING)
    one: list[tuple[int, int]] = []
    summary, report = export_with_report(recording, None, tmp_path / "one", normalized=True,
                                         progress=lambda d, t: one.append((d, t)))
    two: list[tuple[int, int]] = []
    separate = export_parquet(recording, None, tmp_path / "two", normalized=True,
                              progress=lambda d, t: two.append((d, t)))
    alone = quality_report(recording, progress=lambda d, t: two.append((d, t)))
    # A call after each file but the connections table (and, with the report, its outages).
    written = len(summary.files) - 2
    assert written == len(separate.files) - 1 > 1
    assert_frame_equal(load_outages(tmp_path / "one").drop("recording"), report.outages)
    assert not (tmp_path / "two" / "_outages").exists()  # exported without its report
    assert (replays(one, written), replays(two, written)) == (1, 2)
    assert summary.rows == separate.rows and summary.normalized == separate.normalized
    for folder in ("one", "two"):
        assert load_dataset(tmp_path / folder).collect().height == sum(summary.rows.values())
    assert_frame_equal(load_dataset(tmp_path / "one").collect(),
                       load_dataset(tmp_path / "two").collect())
    assert_frame_equal(load_normalized(tmp_path / "one", "book_snapshots").collect(),
                       load_normalized(tmp_path / "two", "book_snapshots").collect())
    assert_frame_equal(report.summary(), alone.summary())
    for table in ("connections", "streams", "silences", "sequence", "latency", "outcomes",
                  "books"):
        assert_frame_equal(getattr(report, table), getattr(alone, table))


def test_a_file_where_the_dataset_goes_is_refused_before_any_replay(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    calls: list[tuple[int, int]] = []
    with pytest.raises(ValueError, match="is a file; a dataset is a directory"):
        export_with_report(RECORDING, None, tmp_path / "file",
                           progress=lambda d, t: calls.append((d, t)))
    assert calls == []


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wsresearch.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_export_report_writes_the_dataset_and_a_report_per_recording(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the HTML report's plots need matplotlib")
    result = run("export", str(RECORDING), "--out", str(tmp_path / "ds"), "--normalized",
                 "--report", str(tmp_path / "reports"))
    assert result.returncode == 0, result.stderr
    pages = list((tmp_path / "reports").glob("*.html"))
    assert len(pages) == 1 and "quality report ->" in result.stdout
    assert "Order books" in pages[0].read_text()
    trades = load_normalized(tmp_path / "ds", "trades").collect()
    assert trades.height > 1000 and trades["exchange"].unique().to_list() == ["binance"]
    assert list((tmp_path / "ds").glob("kind=book_snapshots/*/*/*.parquet"))
    assert load_outages(tmp_path / "ds")["recording"].to_list() == []  # a table, of no outage
    assert len(list((tmp_path / "ds" / "_outages").glob("*.parquet"))) == 1
    (tmp_path / "afile").write_text("x")
    refused = run("export", str(RECORDING), "--out", str(tmp_path / "ds"),
                  "--report", str(tmp_path / "afile"))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"wsresearch export: error: --report {tmp_path / 'afile'} is a file; it names a "
        "folder for the reports"]


def test_export_with_workers_writes_the_same_dataset_as_one_at_a_time(tmp_path: Path) -> None:
    folders = [str(p) for p in sorted(RECORDING.parent.iterdir())[:4]]
    serial = run("export", *folders, "--out", str(tmp_path / "serial"), "--normalized")
    parallel = run("export", *folders, "--out", str(tmp_path / "parallel"), "--normalized",
                   "--workers", "2")
    assert serial.returncode == parallel.returncode == 0, parallel.stderr
    assert "exporting 4 recordings, 2 at a time" in parallel.stdout
    said = [line for line in parallel.stdout.splitlines() if " -> " in line]
    assert [line.split(":")[0] for line in said] == folders  # in the order given
    for kind in ("trades", "quotes", "book_changes"):
        one = load_normalized(tmp_path / "serial", kind).collect()
        two = load_normalized(tmp_path / "parallel", kind).collect()
        order = ["recording", "local_time", "frame_seq"]
        assert_frame_equal(one.sort(order, maintain_order=True),
                           two.sort(order, maintain_order=True))
    order = ["recording", "channel", "recv_mono_ns"]
    one, two = (load_dataset(tmp_path / name).collect().sort(order, maintain_order=True)
                for name in ("serial", "parallel"))
    assert one.height > 5_000
    assert_frame_equal(one, two)
    bad = run("export", *folders, "--out", str(tmp_path / "x"), "--workers", "0")
    assert bad.returncode == 2 and "must be 1 to 64" in bad.stderr
