"""A report's times held in bounded memory: the same figures whether they stay in memory or not.

The quality report keeps every receive time and latency of a session; past a budget set by
``chunk_events`` they go to temporary files and are read back a piece at a time
(``wsresearch._spill``, ``wsresearch._session_times``). Every table must come out exactly as
when everything is held at once, the latency percentiles exactly as polars' ``quantile``
gives them.
"""

from __future__ import annotations

import math
import random
from itertools import pairwise
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from wsresearch import Recording, quality_report, replay
from wsresearch._session_times import SessionTimes, _Sample, kth_smallest, nearest_rank
from wsresearch._spill import Spill
from wsresearch.exchanges import generic
from wsresearch.quality import ReportInputs, hole_rule
from wsresearch.replay import replay_in_chunks

TABLES = ("connections", "streams", "silences", "sequence", "latency", "outcomes", "rates",
          "health", "latencies", "books", "book_changes")
START = 1_700_000_000 * 10**9
TRADE = ('{"type":"trade","symbol":"%s","seq":%d,"trade_id":%d,"price":"2000.5",'
         '"size":"0.25","side":"buy","ts":%d}')
TICKER = ('{"type":"ticker","symbol":"%s","seq":%d,"bid":1.5,"ask":1.75,"bid_size":2.0,'
          '"ask_size":3.0,"ts":%d}')


def session(n: int, seed: int, backwards: bool = False) -> list[tuple[int, str]]:
    """Trades and tickers at an uneven rate, with silences of every length, some
    exchange times ahead of the receive time, and, if ``backwards``, receive times that
    sometimes step back (as in some imported captures)."""
    rng = random.Random(seed)
    frames, now, seqs = [], START, dict[tuple[str, str], int]()
    for _ in range(n):
        draw = rng.random()
        now += (3 * 10**9 if draw < 0.002 else 700_000_000 if draw < 0.006 else
                int(rng.expovariate(1 / 2_000_000)))
        if backwards and rng.random() < 0.02:
            now -= rng.randrange(1, 5_000_000)
        kind = "trade" if rng.random() < 0.8 else "ticker"
        symbol = rng.choice(("BTC-USD", "ETH-USD"))
        seq = seqs[kind, symbol] = seqs.get((kind, symbol), 0) + 1
        exchange = now - rng.randrange(-2_000_000, 40_000_000)  # ahead at times: skew
        text = (TRADE % (symbol, seq, len(frames), exchange) if kind == "trade" else
                TICKER % (symbol, seq, exchange))
        frames.append((now, text))
    return frames


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sessions")
    spec = generic.spec(["trade", "ticker"], url="ws://127.0.0.1:1")
    return {name: Recording.from_frames(root / name, session(3_000, seed, backwards),
                                        spec=spec).path
            for name, seed, backwards in (("even", 1, False), ("backwards", 2, True))}


def assert_same_reports(a: object, b: object) -> None:
    for table in TABLES:
        assert_frame_equal(getattr(a, table), getattr(b, table))
    assert_frame_equal(a.summary(), b.summary())  # type: ignore[attr-defined]
    assert a.warnings == b.warnings  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["even", "backwards"])
@pytest.mark.parametrize("min_hole_s", [1.0, 0.001])
def test_a_report_is_the_same_whether_its_times_stay_in_memory_or_go_to_files(
        recordings: dict[str, Path], name: str, min_hole_s: float) -> None:
    # With min_hole_s near 0 each hole's threshold is its own window's p99: a piece judged
    # without the whole window of gaps before it would give another threshold.
    path = recordings[name]
    held = quality_report(path, chunk_events=10**9, min_hole_s=min_hole_s)
    spilled = quality_report(path, chunk_events=40, min_hole_s=min_hole_s)  # a 32 kB budget
    assert_same_reports(held, spilled)
    # Something to compare: holes, stale spells, latencies below zero.
    kinds = set(held.silences["silence"])
    assert {"hole", "stale"} <= kinds, kinds
    assert (held.latency["negative_share"] > 0).all()


def test_the_latency_figures_are_polars_own_on_every_latency(recordings: dict[str, Path]) -> None:
    path = recordings["even"]
    result = replay(path)
    report = quality_report(path, chunk_events=40)
    checked = []
    for channel, frame in result.frames.items():
        ms = frame.filter(pl.col("exchange_ns").is_not_null()).select(
            (pl.col("recv_wall_ns") - pl.col("exchange_ns")) / 1e6).to_series()
        if ms.is_empty():
            continue
        checked.append(channel)
        row = report.latency.filter(channel=channel).row(0, named=True)
        assert row["messages"] == ms.len()
        assert row["min_ms"] == ms.min() and row["max_ms"] == ms.max()
        for q, column in ((0.5, "p50_ms"), (0.9, "p90_ms"), (0.99, "p99_ms")):
            assert row[column] == ms.quantile(q), (channel, q)
        assert row["negative_share"] == (ms < 0).mean()
    assert checked == report.latency["channel"].to_list() == ["trade", "ticker"]


def test_the_inputs_go_to_files_past_their_budget_and_the_files_go_when_closed(
        recordings: dict[str, Path]) -> None:
    recording = Recording.open(recordings["even"])
    assert recording.spec is not None
    inputs = ReportInputs(recording.spec, chunk_events=40)
    result = replay_in_chunks(recording, recording.spec, "complete", None, 40, inputs.take)
    assert inputs.times.spilled
    folder = inputs.times.folder
    assert folder is not None and any(folder.iterdir())
    inputs.report(recording, recording.spec, result, hole_rule())
    inputs.close()
    assert not folder.exists()
    small = ReportInputs(recording.spec)  # the default budget holds this session
    result = replay_in_chunks(recording, recording.spec, "complete", None, 20_000, small.take)
    assert not small.times.spilled


def test_a_report_of_frames_alone_is_the_same_when_its_times_go_to_files(
        tmp_path: Path) -> None:
    path = Recording.from_frames(tmp_path / "frames", session(3_000, 3)).path  # no spec
    assert Recording.open(path).spec is None
    held = quality_report(path, chunk_events=10**9)
    assert held.streams["stream"].to_list() == ["frames"] and held.silences.height
    assert_same_reports(held, quality_report(path, chunk_events=30))


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.integers(-12, 12), min_size=1, max_size=90),
       cuts=st.lists(st.integers(0, 90), max_size=6),
       memory=st.integers(1, 20), pivots=st.integers(1, 6))
def test_kth_smallest_finds_every_rank_read_in_pieces(
        values: list[int], cuts: list[int], memory: int, pivots: int) -> None:
    floats = [v / 8 for v in values]  # ties and negatives, exact in binary
    edges = sorted({0, len(floats), *(c for c in cuts if c < len(floats))})
    pieces = [pl.Series(floats[a:b], dtype=pl.Float64) for a, b in pairwise(edges)]
    span = (min(floats), max(floats), len(floats))
    ordered = sorted(floats)
    for k in range(len(floats)):
        assert kth_smallest(lambda: pieces, k, span, memory, pivots) == ordered[k], k


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300),
       memory=st.integers(1, 40), q=st.floats(0, 1))
def test_kth_smallest_at_the_nearest_rank_is_polars_quantile(
        values: list[float], memory: int, q: float) -> None:
    whole = pl.Series(values, dtype=pl.Float64)
    pieces = [whole.slice(a, 37) for a in range(0, len(values), 37)]
    span = (min(values), max(values), len(values))
    for quantile in (q, 0.01, 0.5, 0.9, 0.99):
        found = kth_smallest(lambda: pieces, nearest_rank(len(values), quantile), span, memory, 4)
        assert found == whole.quantile(quantile), quantile


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 5_000), q=st.floats(0, 1))
def test_nearest_rank_is_the_index_polars_quantile_takes(n: int, q: float) -> None:
    assert nearest_rank(n, q) == pl.Series(range(n), dtype=pl.Float64).quantile(q)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 3_000), size=st.integers(1, 300),
       cuts=st.lists(st.integers(0, 3_000), max_size=8))
def test_the_latency_sample_is_every_stride_th_whatever_the_pieces(
        n: int, size: int, cuts: list[int]) -> None:
    values = pl.Series(range(n), dtype=pl.Float64)
    sample = _Sample(size)
    edges = sorted({0, n, *(c for c in cuts if c < n)})
    for a, b in pairwise(edges):
        sample.add(values.slice(a, b - a))
    stride = 1
    while math.ceil(n / stride) > size:
        stride *= 2
    assert sample.values().to_list() == values.gather_every(stride).to_list()


def test_session_times_keep_streams_and_channels_in_the_order_they_came() -> None:
    times = SessionTimes(budget_bytes=64, samples=3)
    times.add_times("b", pl.Series([5, 3], dtype=pl.Int64))
    times.add_times("a", pl.Series([], dtype=pl.Int64))
    times.add_times("b", pl.Series([9, 7], dtype=pl.Int64))
    times.add_latencies("y", pl.Series([], dtype=pl.Float64))
    times.add_latencies("x", pl.Series([1.0, -2.0, 3.0, 2.0], dtype=pl.Float64))
    times.add_latencies("y", pl.Series([4.0], dtype=pl.Float64))
    assert times.streams[:2] == ["b", "a"]
    assert [t for part in times.times("b")() for t in part.to_list()] == [3, 5, 7, 9]
    assert times.messages("b") == 4 and times.messages("a") == 0
    times.add_times("c", pl.Series([5, 10], dtype=pl.Int64))
    times.add_times("c", pl.Series([12, 11], dtype=pl.Int64))  # sorted within the piece
    assert [t for p in times.times("c")() for t in p.to_list()] == [5, 10, 11, 12]
    times.add_times("c", pl.Series([6], dtype=pl.Int64))  # back before the last: read whole
    assert [p.to_list() for p in times.times("c")()] == [[5, 6, 10, 11, 12]]
    figures = times.latency_figures((0.5,))
    assert list(figures) == ["y", "x"]  # y was named first
    x = figures["x"]
    assert (x.messages, x.minimum, x.maximum, x.farthest, x.negative) == (4, -2.0, 3.0, 3.0, 1)
    assert x.quantiles[0.5] == pl.Series([1.0, -2.0, 3.0, 2.0]).quantile(0.5)
    samples = times.latency_samples()
    assert samples.rows() == [("y", 4.0), ("x", 1.0), ("x", 3.0)]  # x: every 2nd of 4
    times.close()


def test_a_spill_reads_back_in_order_and_removes_its_files() -> None:
    spill = Spill(budget_bytes=20)
    spill.append("a", pl.Series([1, 2], dtype=pl.Int64))  # 16 bytes: held
    assert not spill.spilled and spill.folder is None
    spill.append("b", pl.Series([3], dtype=pl.Int64))  # 24: both go to files
    spill.append("a", pl.Series([4], dtype=pl.Int64))  # held
    spill.append("a", pl.Series([], dtype=pl.Int64))  # nothing
    assert spill.spilled
    assert [p.to_list() for p in spill.parts("a")] == [[1, 2], [4]]
    assert [p.to_list() for p in spill.parts("b")] == [[3]]
    assert list(spill.parts("c")) == []
    folder = spill.folder
    assert folder is not None and len(list(folder.iterdir())) == 2
    spill.close()
    assert not folder.exists()
    with pytest.raises(ValueError, match="budget_bytes must be > 0"):
        Spill(budget_bytes=0)


def shared_stream_spec() -> generic.FeedSpec:
    """Trades and tickers judged as one health stream, as some adapters' channels are."""
    from wsresearch.config import StreamConfig

    spec = generic.spec(["trade", "ticker"], url="ws://127.0.0.1:1")
    return spec.replace(channels=[c.model_copy(update={"stream": "md"}) for c in spec.channels],
                        health={"md": StreamConfig(expected_interval=0.05, stale_threshold=0.5)})


def test_a_stream_of_several_channels_is_merged_a_piece_at_a_time() -> None:
    times = SessionTimes(budget_bytes=10**6)
    times.add_times("s", pl.Series([9, 1, 5], dtype=pl.Int64), source="a")
    times.add_times("s", pl.Series([2, 3], dtype=pl.Int64), source="b")
    times.add_times("s", pl.Series([10, 12], dtype=pl.Int64), source="a")
    times.add_times("s", pl.Series([4, 11], dtype=pl.Int64), source="b")
    # Each round: everything up to the least of the sources' latest held times.
    assert [p.to_list() for p in times.times("s")()] == [[1, 2, 3], [4, 5, 9], [10, 11], [12]]
    assert times.messages("s") == 9


def test_a_report_of_channels_sharing_a_stream_is_the_same_read_in_pieces(
        recordings: dict[str, Path]) -> None:
    spec = shared_stream_spec()
    recording = Recording.open(recordings["even"])
    held = quality_report(recording, spec, chunk_events=10**9, min_hole_s=0.001)
    assert held.streams["stream"].to_list() == ["md"]
    assert_same_reports(held, quality_report(recording, spec, chunk_events=40,
                                             min_hole_s=0.001))
    inputs = ReportInputs(spec, chunk_events=40)
    replay_in_chunks(recording, spec, "complete", None, 40, inputs.take)
    pieces = list(inputs.times.times("md")())
    assert len(pieces) > 1, "read a piece at a time, not whole"
    assert pl.concat(pieces).is_sorted()
    inputs.close()


def test_report_inputs_give_the_same_report_twice_and_none_once_closed(
        recordings: dict[str, Path]) -> None:
    recording = Recording.open(recordings["even"])
    spec = recording.spec
    assert spec is not None
    inputs = ReportInputs(spec, chunk_events=40)
    result = replay_in_chunks(recording, spec, "complete", None, 40, inputs.take)
    first = inputs.report(recording, spec, result, hole_rule())
    assert_same_reports(first, inputs.report(recording, spec, result, hole_rule()))
    inputs.close()
    with pytest.raises(RuntimeError, match="closed"):
        inputs.report(recording, spec, result, hole_rule())


def test_a_report_that_fails_midway_leaves_no_temporary_files(
        recordings: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done >= total // 2:  # halfway: well past the first files
            assert list(tmp_path.glob("wsresearch-spill-*/*.arrow"))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        quality_report(recordings["even"], chunk_events=40, progress=progress)
    assert seen
    assert list(tmp_path.glob("wsresearch-spill-*")) == []
    quality_report(recordings["even"], chunk_events=40)  # and none after a whole one
    assert list(tmp_path.glob("wsresearch-spill-*")) == []


def test_a_report_without_a_spec_given_a_replay_is_of_frames_alone(
        recordings: dict[str, Path], tmp_path: Path) -> None:
    frames = session(500, 4)
    path = Recording.from_frames(tmp_path / "bare", frames).path  # no spec in it
    spec = Recording.open(recordings["even"]).spec
    report = quality_report(path, result=replay(path, spec))
    assert report.streams["stream"].to_list() == ["frames"]
    assert report.latency.height == 0 and report.latencies.height == 0
    assert_same_reports(report, quality_report(path))


def test_nearest_rank_rounds_half_away_from_zero_as_polars_does() -> None:
    just_below_half = 0.49999999999999994
    assert nearest_rank(2, just_below_half) == 0 == pl.Series([0.0, 1.0]).quantile(
        just_below_half)
    assert nearest_rank(2, 0.5) == 1 == pl.Series([0.0, 1.0]).quantile(0.5)
