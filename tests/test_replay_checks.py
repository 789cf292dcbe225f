"""Replay runs only the health checks that can change something, with the same result (F8).

A recording's manifest could set ``check_interval=1e-9`` through ``spec_origin``,
and replay built one check point per interval over the whole recording: 24 GB and an
OOM kill. Even a legitimate 1 ms over a day is 86 million check points.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsresearch import Recording, RecordingFormatError, StreamConfig, VirtualClock
from wsresearch.exchanges import generic
from wsresearch.lowlevel import HealthMonitor
from wsresearch.recording.writer import Captured, write_events
from wsresearch.replay import ReplayResult, _run_checks, replay, replay_in_chunks

from .conftest import SESSION, sized

MS = 1_000_000


def edited(tmp_path: Path, **arguments: object) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(SESSION, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["spec_origin"]["arguments"].update(arguments)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize("argument", [{"check_interval": 1e-9}, {"health": {}},
                                      {"queue": {"max_size": 1}}, {"dedupe_ttl": 1e-9},
                                      {"api_key": "not from a manifest"}])
def test_a_manifest_cannot_set_spec_fields_the_adapter_does_not_take(
    tmp_path: Path, argument: dict[str, object]
) -> None:
    recording = Recording.open(edited(tmp_path, **argument))
    (name,) = argument
    with pytest.raises(RecordingFormatError, match=f"argument\\(s\\) \\['{name}'\\] it does not"):
        replay(recording)


def test_a_tiny_check_interval_over_a_long_recording_replays_at_once(tmp_path: Path) -> None:
    # Two trades a day apart, checked every millisecond: 86.4 million check points,
    # of which only those that can change something run.
    day = 86_400 * 10**9
    frames = [(1_700_000_000 * 10**9 + at, json.dumps({
        "type": "trade", "symbol": "BTC-USD", "seq": n, "trade_id": n, "price": "1",
        "size": "1", "side": "buy", "ts": 1})) for n, at in enumerate((0, day), 1)]
    spec = generic.spec(url="ws://127.0.0.1:1", check_interval=0.001)
    recording = Recording.from_frames(tmp_path / "rec", frames)
    result = replay(recording, spec)
    assert result.stats["ok"] == 2
    stale = [(t.stream, t.healthy) for t in result.health_transitions]
    assert stale == [("trade", False), ("ticker", False), ("trade", True)]
    # The trade stream went stale on the first check point past its 2 s threshold.
    first = recording.events()["mono_ns"][0]
    assert result.health_transitions[0].mono_ns == first + 2 * 10**9 + MS


STREAMS = {"fast": StreamConfig(expected_interval=0.01, stale_threshold=0.05),
           "slow": StreamConfig(expected_interval=0.1, stale_threshold=0.3),
           "quiet": StreamConfig(expected_interval=1, stale_threshold=2, allow_silence=True)}


@settings(max_examples=150, deadline=None, derandomize=True)
@given(messages=st.lists(st.tuples(st.sampled_from(sorted(STREAMS)),
                                   st.integers(0, 3_000 * MS)), max_size=40),
       interval_ms=st.integers(1, 400))
def test_skipping_idle_check_points_gives_the_transitions_of_running_every_one(
    messages: list[tuple[str, int]], interval_ms: int
) -> None:
    interval, end = interval_ms * MS, 3_500 * MS

    def monitor() -> tuple[HealthMonitor, VirtualClock]:
        clock = VirtualClock(mono_ns=0)
        return HealthMonitor(STREAMS, clock=clock), clock

    # Every check point, as the live timer runs them.
    every, clock = monitor()
    timeline = sorted(messages, key=lambda m: m[1])
    pending = list(timeline)
    for k in range(1, end // interval + 1):
        while pending and pending[0][1] < k * interval:
            stream, at = pending.pop(0)
            clock.set(max(clock.monotonic_ns(), at))
            every.record_message(stream)
        clock.set(k * interval)
        every.check()

    # Replay's way: between two messages, only the check points that can change something.
    skipping, clock = monitor()
    done = 0
    for stream, at in [*timeline, ("", end + interval)]:
        reached = at // interval  # check points at or before the message run first
        if reached > done:
            _run_checks(skipping, clock, 0, interval, done, min(reached, end // interval))
            done = reached
        if stream:
            clock.set(max(clock.monotonic_ns(), at))
            skipping.record_message(stream)
    assert skipping.transitions == every.transitions
    assert skipping.status() == every.status()


def _quiet_feed(gaps: list[tuple[str, int]]) -> list[Captured]:
    """A connection's events: a message of each ``(channel, gap in ms)``, after its gap.

    A gap may be negative (a receive time that steps back); ``"open"`` opens a new
    connection there.
    """
    start = 1_700_000_000 * 10**9
    events = [Captured("open", start, "ws://127.0.0.1:1")]
    at, numbers = start, {"trade": 0, "ticker": 0, "order": 0}
    for channel, gap in gaps:
        at += gap * MS
        if channel == "open":
            events.append(Captured("open", at, "ws://127.0.0.1:1"))
            continue
        numbers[channel] += 1
        n = numbers[channel]
        text = {
            "trade": f'{{"type":"trade","symbol":"BTC-USD","seq":{n},"trade_id":{n},'
                     f'"price":"100.5","size":"0.25","side":"buy","ts":{at}}}',
            "ticker": f'{{"type":"ticker","symbol":"BTC-USD","seq":{n},"bid":"100.0",'
                      f'"ask":"101.0","bid_size":"1.5","ask_size":"2.5","ts":{at}}}',
            # No layout: taken one by one, among the others' columns.
            "order": f'{{"type":"order","order_id":"o{n}","symbol":"BTC-USD",'
                     f'"status":"new","price":"100.5","size":"0.25","ts":{at}}}',
        }[channel]
        events.append(Captured("frame", at, text))
    return events


_CHANNELS = ["trade"] * 6 + ["ticker"] * 3 + ["order", "open"]


@settings(max_examples=sized(40, 100), deadline=None)
@given(gaps=st.lists(st.tuples(st.sampled_from(_CHANNELS),
                               st.one_of(st.integers(-300, 400), st.integers(400, 4_000))),
                     min_size=1, max_size=150),
       interval_ms=st.integers(1, 1_500), chunk_events=st.integers(3, 200),
       thresholds_ms=st.tuples(*[st.integers(1, 3_000)] * 3),
       silent=st.tuples(*[st.booleans()] * 3))
def test_passing_over_quiet_check_points_keeps_every_health_outcome(
        tmp_path_factory: pytest.TempPathFactory, gaps: list[tuple[str, int]],
        interval_ms: int, chunk_events: int, thresholds_ms: tuple[int, int, int],
        silent: tuple[bool, bool, bool]) -> None:
    # A quiet feed in columns passes over the check points that change nothing; through
    # the models every one that can change something runs. Health must not tell them apart:
    # the same transitions, and the same status after every chunk. Receive times step back,
    # connections open anew, any stream may be allowed silence.
    path = tmp_path_factory.mktemp("quiet") / "recording"
    health = {name: StreamConfig(expected_interval=0.001, stale_threshold=ms / 1000,
                                 allow_silence=quiet)
              for name, ms, quiet in zip(("trade", "ticker", "order"), thresholds_ms, silent,
                                         strict=True)}
    spec = generic.spec(url="ws://127.0.0.1:1", check_interval=interval_ms / 1000,
                        health=health)
    write_events(path, _quiet_feed(gaps), source_url=spec.url, origin=spec.origin)

    def run(columnar: bool) -> tuple[ReplayResult, list[object]]:
        statuses: list[object] = []
        result = replay_in_chunks(
            Recording.open(path), spec, "complete", None, chunk_events,
            lambda pipeline, _: statuses.append(pipeline.health.status()), columnar=columnar)
        return result, statuses

    (columns, in_columns), (models, through_models) = run(True), run(False)
    assert columns.health_transitions == models.health_transitions
    assert in_columns == through_models
    assert columns.stats == models.stats
    for name, frame in models.frames.items():
        assert columns.frames[name].equals(frame), name


def test_a_quiet_feed_in_columns_passes_over_its_check_points_and_still_goes_stale(
        tmp_path: Path) -> None:
    # A trade every 0.9 s (threshold 1 s, a check point every 0.1 s), then one 1.5 s late:
    # the stream goes stale at the check point past the threshold, and recovers at the
    # late trade, as through the models.
    gaps = [("trade", 900)] * 300 + [("trade", 1_500)] + [("trade", 900)] * 50
    path = tmp_path / "recording"
    health = {"trade": StreamConfig(expected_interval=0.1, stale_threshold=1.0)}
    spec = generic.spec(url="ws://127.0.0.1:1", channels=["trade"], check_interval=0.1,
                        health=health)
    write_events(path, _quiet_feed(gaps), source_url=spec.url, origin=spec.origin)
    columns, models = (replay(Recording.open(path), spec, chunk_events=100, columnar=c)
                       for c in (True, False))
    assert [(t.stream, t.healthy) for t in columns.health_transitions] == [
        ("trade", False), ("trade", True)]
    assert columns.health_transitions == models.health_transitions
    assert columns.read_in_columns == 350  # the late trade, its stream stale: one by one


def test_a_stream_that_recovers_among_quiet_check_points_goes_stale_again_on_time(
        tmp_path: Path) -> None:
    # Trades every 0.5 s throughout; one order, taken one by one, at 3 s: its stream, stale
    # since 1.5 s, recovers then, and goes stale again at the check point 1.5 s later, which
    # lies among check points the trades alone would let pass.
    gaps = [("trade", 500)] * 6 + [("order", 0)] + [("trade", 500)] * 20
    path = tmp_path / "recording"
    health = {"trade": StreamConfig(expected_interval=0.1, stale_threshold=1.0),
              "order": StreamConfig(expected_interval=1, stale_threshold=1.5)}
    spec = generic.spec(url="ws://127.0.0.1:1", channels=["trade", "order"],
                        check_interval=0.1, health=health)
    write_events(path, _quiet_feed(gaps), source_url=spec.url, origin=spec.origin)
    columns, models = (replay(Recording.open(path), spec, columnar=c) for c in (True, False))
    start = Recording.open(path).events()["mono_ns"][0]
    assert [(t.stream, t.healthy, (t.mono_ns - start) // 10**8)
            for t in columns.health_transitions] == [
        ("order", False, 16), ("order", True, 30), ("order", False, 46)]
    assert columns.health_transitions == models.health_transitions
