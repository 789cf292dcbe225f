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
from wsresearch.replay import _run_checks, replay

from .conftest import SESSION

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
