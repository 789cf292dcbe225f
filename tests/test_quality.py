"""Feed-quality reports find exactly what a known fault script did, and nothing else."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from wsresearch import Feed, Recording, Simulator
from wsresearch.quality import _html_table, _rate_quantile, _steps, compare, quality_report

from .conftest import RATES, SESSION, eventually, quick

NS = 1_000_000_000


def test_the_shipped_session_shows_exactly_its_fault_script() -> None:
    # data/sessions/sim-faults: the demo's script over 12 s (see data/SOURCES.md).
    report = quality_report(SESSION)
    closes = report.connections.select("code", "category").rows()
    assert closes == [(1006, "NORMAL"), (1001, "NORMAL"), (4401, "AUTH_FAILURE"),
                      (1006, "NORMAL"), (4429, "RATE_LIMITED"), (1000, "NORMAL")]
    assert report.connections["reason"][3] == "no pong within 1 s"
    downtimes = report.connections["downtime_after_s"].to_list()
    assert downtimes[-1] is None and all(0 < d < 3 for d in downtimes[:-1])
    # One silence longer than a threshold: the ticker, silenced 3.5 s at 0.26 x 12 s.
    silences = report.silences.filter(silence="stale")
    assert silences.select("stream", "recovered").rows() == [("ticker", True)]
    # Holes: the trade stream's silences across the three longest downtimes (the 1001
    # close then the 4401 rejection, the half-open socket, the rate limit); the 0.3 s
    # after the first 1006 is shorter than min_hole_s, and the ticker's 49 messages are
    # too few to judge its gaps by.
    holes = report.silences.filter(silence="hole")
    assert holes["stream"].to_list() == ["trade"] * 3 and all(holes["recovered"])
    closes = report.connections["closed_mono_ns"].to_list()
    assert [sum(start <= c <= end for c in closes) for start, end in holes.select(
        "start_mono_ns", "end_mono_ns").iter_rows()] == [2, 1, 1]
    first_open = report.connections["opened_mono_ns"][0]
    started = (silences["start_mono_ns"][0] - first_open) / NS
    assert 3.12 - 0.2 <= started <= 3.12  # its last tick came just before the fault
    assert 3.5 - 1.0 <= silences["length_s"][0] <= 3.5 + 1.0  # within one check interval
    outcomes = dict(report.outcomes.iter_rows())
    assert outcomes["duplicates"] == 5
    assert {k: v for k, v in outcomes.items() if k.startswith("reject:") and v} == {
        "reject:invalid_utf8": 1, "reject:invalid_json": 1, "reject:unknown_type": 2,
        "reject:schema_error": 2}
    assert report.sequence.filter(pl.col("gaps") > 0).rows() == [("trade", 1, 3, 0, 0)]
    assert outcomes["dropped_live"] == outcomes["old_generation_live"] == 0
    streams = {r["stream"]: r for r in report.streams.iter_rows(named=True)}
    assert streams["trade"]["messages"] == 2150 and streams["trade"]["stale_episodes"] == 0
    assert streams["order"]["messages"] == 0  # silent, and allowed to be
    assert report.latency["negative_share"].to_list() == [0.0, 0.0]
    summary = dict(report.summary().iter_rows())
    assert summary["sequence gaps"] == "1 (3 missing)"
    assert summary["stale episodes"].startswith("1 (")
    assert summary["holes"] == f"3 ({holes['length_s'].sum():.1f} s)"
    assert streams["trade"]["holes"] == 3 and streams["ticker"]["holes"] == 0
    assert report.latency["plausible"].all() and report.warnings == []
    assert "warnings" not in summary
    assert summary["recording"] == report.recording == "complete"


def test_without_a_spec_the_figures_are_frame_level(tmp_path: Path) -> None:
    lines = ['{"type":"x"}'] * 5
    recording = Recording.from_frames(tmp_path / "r", [(i * NS // 10, t) for i, t in
                                                       enumerate(lines)])
    report = quality_report(recording)
    assert report.streams.select("stream", "messages").rows() == [("frames", 5)]
    assert dict(report.outcomes.iter_rows())["received"] == 5
    assert report.silences.height == report.sequence.height == report.latency.height == 0
    assert report.connections["generation"].to_list() == [1]


async def test_a_live_feed_and_its_recording_tell_the_same_story(tmp_path: Path) -> None:
    async with Simulator(rates=RATES, seed=9) as sim:
        feed = Feed(sim.spec(connection=quick()), record_to=tmp_path / "rec",
                    flush_interval=0.05)
        async with feed:
            # Every symbol has its first trade (a baseline) well before the gap.
            await eventually(lambda: feed.store.rows("trade") >= 60, what="trades")
            sim.duplicate(2)
            sim.sequence_gap(2, "trade")
            await eventually(lambda: feed.stats.duplicates == 2 and feed.stats.sequence_gaps
                             == 1, what="the duplicates and the gap")
            await sim.disconnect(4429, "slow down")
            await eventually(lambda: feed.generation == 2, what="the reconnect")
            await eventually(lambda: (feed.frame("trade")["generation"] == 2).any(),
                             what="a trade of the new connection")
            live = quality_report(feed)
    recorded = quality_report(tmp_path / "rec")
    for report in (live, recorded):
        assert report.connections["code"][0] == 4429
        assert report.connections["category"][0] == "RATE_LIMITED"
        assert dict(report.outcomes.iter_rows())["duplicates"] == 2
        assert report.sequence.filter(pl.col("gaps") > 0)["missing"].to_list() == [2]
        # The time disconnected is an outage, from the close to the next connection's
        # first message, on the rows' wall clock, live as replayed.
        down = report.outages.filter(reason="disconnected")
        ns = report.connections.select(pl.col("opened", "closed").dt.epoch("ns"))
        [(start, end)] = down.select(pl.col("start", "end").dt.epoch("ns")).rows()
        # (first_message_s is on the monotonic clock, which runs µs apart from the wall's)
        assert start == ns["closed"][0] and end - ns["opened"][1] == pytest.approx(
            report.connections["first_message_s"][1] * 1e9, abs=1e6)
        assert down["detail"].to_list() == ["rate limited (4429), RATE_LIMITED: slow down"]
    # A connection's first message is its first frame, live as recorded: the simulator's
    # acknowledgement of the subscription, which makes no row. So both outages end there.
    assert live.connections["first_message_s"].to_list() == \
        recorded.connections["first_message_s"].to_list()
    assert_frame_equal(live.outages.filter(reason="disconnected"),
                       recorded.outages.filter(reason="disconnected"))
    side = compare(live, recorded)
    assert side.columns == ["metric", "a", "b"]
    assert dict(side.select("metric", "a").iter_rows())["sequence gaps"] == "1 (2 missing)"


def test_plots_and_a_self_contained_html_page(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="plots need the report extra (matplotlib)")
    report = quality_report(SESSION)
    figure = report.plot()
    assert len(figure.axes) == 3
    assert report.png().startswith(b"\x89PNG")
    page = report.to_html(tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 1
    assert "Feed quality:" in page and "RATE_LIMITED" in page and "<h2>Silences</h2>" in page
    assert "<h2>Outages</h2>" in page
    assert "http" not in page.replace(str(SESSION), "")  # nothing to fetch: self-contained
    assert "<table" in report._repr_html_()


def test_a_recordings_report_shows_progress() -> None:
    calls: list[tuple[int, int]] = []
    quality_report(SESSION, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1] > 0


def test_a_report_holds_a_row_of_rates_a_second_with_messages_not_a_row_a_second(
    tmp_path: Path,
) -> None:
    """Twelve messages over thirty days: the rates are six rows, not 2.6 million."""
    day = 86_400 * NS
    times = [0, NS // 2, NS, 2 * NS, 10 * day, 10 * day + 1, 20 * day, 30 * day - NS,
             *(30 * day - NS // 10 * k for k in range(1, 5))]
    recording = Recording.from_frames(tmp_path / "r", [(t, '{"type":"x"}') for t in
                                                       sorted(times)])
    report = quality_report(recording)
    assert report.rates.rows() == [
        ("frames", 0, 2), ("frames", 1, 1), ("frames", 2, 1), ("frames", 864_000, 2),
        ("frames", 1_728_000, 1), ("frames", 2_591_999, 5)]
    streams = report.streams.row(0, named=True)
    assert (streams["messages"], streams["rate_p50"], streams["rate_p99"]) == (12, 0.0, 0.0)
    assert streams["rate_mean"] == pytest.approx(12 / 2_592_000)


@given(counts=st.lists(st.integers(1, 50), max_size=60), zeros=st.integers(0, 200),
       quantile=st.sampled_from([0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 1.0]) | st.floats(0, 1))
@example(counts=[5], zeros=1, quantile=0.5)  # a tie: half away from zero, not to even
@example(counts=[44], zeros=1, quantile=0.49999999999999994)  # just below a tie
def test_a_rate_quantile_from_the_busy_seconds_is_the_one_of_every_second(
    counts: list[int], zeros: int, quantile: float,
) -> None:
    seconds = len(counts) + zeros
    if not seconds:
        return
    every = pl.Series([0] * zeros + counts, dtype=pl.Int64)
    assert _rate_quantile(pl.Series(counts, dtype=pl.Int64), seconds, quantile) == \
        every.quantile(quantile, interpolation="nearest")


def test_a_rates_steps_hold_each_count_for_its_second_and_0_between() -> None:
    assert _steps([0, 1, 5], [3, 4, 2], 7.5) == ([0.0, 1, 2, 5, 6, 7.5], [3, 4, 0, 2, 0, 0])
    assert _steps([1], [1], 1.5) == ([0.0, 1, 1.5], [0, 1, 1])
    assert _steps([], [], 3.0) == ([0.0, 3.0], [0, 0])
    # Every second busy: no 0 anywhere (it would stretch a log axis), nothing past the end.
    assert _steps([0, 1], [3, 4], 1.8) == ([0.0, 1, 1.8], [3, 4, 4])


def test_a_message_at_the_sessions_very_end_counts_in_its_last_second(tmp_path: Path) -> None:
    """A session of a whole number of seconds: its last message is not one second past it."""
    recording = Recording.from_frames(tmp_path / "r", [(t, '{"type":"x"}') for t in
                                                       (0, NS // 2, 2 * NS)])
    report = quality_report(recording)
    assert report.rates.rows() == [("frames", 0, 2), ("frames", 1, 1)]
    assert report.rates["messages"].sum() == report.streams["messages"][0] == 3


def test_an_html_table_shows_prices_whole_and_other_floats_to_6_digits() -> None:
    """A bid and an ask a tick apart must not read as a locked book."""
    table = _html_table(pl.DataFrame({"symbol": ["BTCUSDT"], "best_bid": [61843.24],
                                      "best_ask": [61843.25], "invalid_s": [1.23456789]}))
    assert ">61843.24<" in table and ">61843.25<" in table and ">1.23457<" in table


def test_a_streams_mean_rate_is_its_messages_over_the_sessions_length(tmp_path: Path) -> None:
    # 25 messages over 2.5 s: 10 a second, where three 1 s windows would say 8.33.
    recording = Recording.from_frames(tmp_path / "r", [
        (k * NS // 10, '{"type":"x"}') for k in range(26) if k != 13])
    streams = quality_report(recording).streams.row(0, named=True)
    assert streams["messages"] == 25
    assert streams["rate_mean"] == pytest.approx(10.0)
    one = Recording.from_frames(tmp_path / "one", [(NS, '{"type":"x"}')])
    assert quality_report(one).streams["rate_mean"].to_list() == [None]  # no length
