from pathlib import Path

import polars as pl
import pytest

from wsresearch import Feed, Simulator
from wsresearch.exchanges import generic
from wsresearch.testing import assert_replay_matches, frame_differences

from .conftest import RATES, eventually

SPEC = generic.spec(url="ws://127.0.0.1:1")


@pytest.fixture
async def recording(tmp_path: Path) -> Path:
    async with Simulator(rates=RATES, seed=8) as sim, Feed(
        sim.spec(), record_to=tmp_path / "rec", flush_interval=0.05
    ) as feed:
        await eventually(lambda: feed.store.rows("trade") >= 30, what="trades")
        await sim.malformed(3)
        await eventually(lambda: feed.stats.invalid == 3, what="rejects")
    return tmp_path / "rec"


def test_snapshots_are_written_then_matched(recording: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSR_UPDATE_SNAPSHOTS", raising=False)
    snaps = tmp_path / "snaps"
    first = assert_replay_matches(recording, SPEC, snaps)
    assert (snaps / "trade.parquet").exists() and (snaps / "replay.json").exists()
    second = assert_replay_matches(recording, SPEC, snaps)
    assert second.stats == first.stats


def test_a_mismatch_names_channel_rows_and_columns(recording: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSR_UPDATE_SNAPSHOTS", raising=False)
    snaps = tmp_path / "snaps"
    assert_replay_matches(recording, SPEC, snaps)
    trade = pl.read_parquet(snaps / "trade.parquet")
    trade.with_columns(
        price=pl.when(pl.int_range(pl.len()).is_in([2, 7])).then(-1.0).otherwise(pl.col("price"))
    ).write_parquet(snaps / "trade.parquet")
    with pytest.raises(AssertionError) as info:
        assert_replay_matches(recording, SPEC, snaps)
    message = str(info.value)
    assert "channel 'trade'" in message
    assert "column 'price' differs in 2 row(s): row 2: expected -1.0" in message
    assert "row 7" in message
    monkeypatch.setenv("WSR_UPDATE_SNAPSHOTS", "1")
    assert_replay_matches(recording, SPEC, snaps)  # accepted: rewritten
    monkeypatch.delenv("WSR_UPDATE_SNAPSHOTS")
    assert_replay_matches(recording, SPEC, snaps)


def test_frame_differences_reports_schema_and_height() -> None:
    a = pl.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    assert frame_differences(a, a) == []
    assert frame_differences(a, a.drop("y")) == ["missing columns: y"]
    assert frame_differences(a, a.head(1)) == ["1 rows, expected 2"]
    assert frame_differences(a, a.with_columns(pl.col("x").cast(pl.Float64))) == [
        "changed types: x Int64 -> Float64"
    ]


def test_the_pytest_plugin_gives_a_fixture_and_an_option(pytester: pytest.Pytester,
                                                         recording: Path) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(f"""
        from wsresearch.exchanges import generic
        def test_golden(replay_snapshot):
            replay_snapshot({str(recording)!r}, generic.spec(url="ws://127.0.0.1:1"))
    """)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    snapshot = pytester.path / "snapshots" / "test_golden" / "trade.parquet"
    assert snapshot.exists()
    pl.DataFrame({"nothing": [1]}).write_parquet(snapshot)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1)
    pytester.runpytest("-p", "no:cacheprovider", "--update-snapshots").assert_outcomes(passed=1)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
