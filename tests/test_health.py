import asyncio

import pytest
from pydantic import ValidationError

from wsresearch import StreamConfig, UnknownChannelError, VirtualClock
from wsresearch.lowlevel import HealthMonitor

from .conftest import other_tasks

S = 1_000_000_000


def monitor(clock: VirtualClock, **kw: object) -> tuple[HealthMonitor, list, list]:
    unhealthy: list[tuple[str, int | None]] = []
    recovered: list[str] = []
    m = HealthMonitor(
        {
            "trade": StreamConfig(expected_interval=1.0, stale_threshold=5.0),
            "orders": StreamConfig(expected_interval=60, stale_threshold=120, allow_silence=True),
        },
        on_unhealthy=lambda s, last: unhealthy.append((s, last)),
        on_recovered=recovered.append,
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )
    return m, unhealthy, recovered


def test_the_documented_example() -> None:
    clock = VirtualClock()
    m, alerts, _ = monitor(clock)
    m.record_message("trade")
    clock.advance(6.0)
    m.check()
    assert alerts == [("trade", 0)]


def test_one_report_per_episode_and_recovery_on_the_next_message() -> None:
    clock = VirtualClock()
    m, unhealthy, recovered = monitor(clock)
    m.record_message("trade")
    clock.advance(5.0)
    m.check()
    assert m.is_stream_healthy("trade")  # exactly at the threshold is not stale
    clock.advance(0.5)
    m.check()
    clock.advance(10)
    m.check()
    assert unhealthy == [("trade", 0)]
    assert not m.is_healthy()
    m.record_message("trade")
    assert recovered == ["trade"] and m.is_healthy()
    clock.advance(6)
    m.check()
    assert unhealthy == [("trade", 0), ("trade", 15_500_000_000)]
    assert [(t.stream, t.healthy) for t in m.transitions] == [
        ("trade", False), ("trade", True), ("trade", False),
    ]
    assert [t.mono_ns for t in m.transitions] == [5_500_000_000, 15_500_000_000, 21_500_000_000]


def test_a_stream_that_never_spoke_goes_stale_from_the_start() -> None:
    clock = VirtualClock(mono_ns=100 * S)
    m, unhealthy, _ = monitor(clock)
    clock.advance(5.1)
    m.check()
    assert unhealthy == [("trade", None)]


def test_allow_silence_stream_stays_healthy_through_10x_its_threshold() -> None:
    clock = VirtualClock()
    m, unhealthy, _ = monitor(clock)
    m.record_message("orders")
    for _ in range(300):
        m.record_message("trade")
        clock.advance(4.0)  # 1200 s in all: 10x the orders threshold
        m.check()
    assert unhealthy == []
    status = m.status()["orders"]
    assert status.healthy and status.silent_ok and status.last_message_ns == 0
    m.record_message("orders")
    assert not m.status()["orders"].silent_ok


def test_unknown_streams_are_remembered_never_judged_and_asking_about_one_fails() -> None:
    clock = VirtualClock(mono_ns=42)
    m, _, _ = monitor(clock)
    m.record_message("unmonitored")
    assert "unmonitored" not in m.status() and m.last_seen("unmonitored") == 42
    with pytest.raises(UnknownChannelError, match=r"unknown stream 'nope'.*\['orders', 'trade'\]"):
        m.is_stream_healthy("nope")
    with pytest.raises(KeyError):  # what code that catches the builtin expects
        m.is_stream_healthy("nope")


def test_callback_errors_are_reported_not_raised() -> None:
    clock = VirtualClock()
    errors: list[BaseException] = []

    def broken(stream: str, last: int | None) -> None:
        raise RuntimeError("alert sink down")

    m = HealthMonitor(
        {"t": StreamConfig(expected_interval=1, stale_threshold=1)},
        on_unhealthy=broken, clock=clock, on_error=errors.append,
    )
    clock.advance(2)
    m.check()
    assert [str(e) for e in errors] == ["alert sink down"]
    assert not m.is_healthy()


async def test_start_runs_check_every_interval_on_the_clock_and_stop_ends_it() -> None:
    before = other_tasks()
    clock = VirtualClock()
    m, unhealthy, _ = monitor(clock, check_interval=2.0)
    m.start()
    assert m.running
    await asyncio.sleep(0)
    clock.advance(4.0)  # two checks, trade silent for 4 s: fine
    await asyncio.sleep(0)
    assert unhealthy == []
    clock.advance(2.0)  # third check at 6 s: stale
    for _ in range(3):
        await asyncio.sleep(0)
    assert unhealthy == [("trade", None)]
    assert m.transitions[0].mono_ns == 6 * S
    await m.stop()
    assert not m.running
    assert other_tasks() == before


def test_bad_configs_name_the_field() -> None:
    with pytest.raises(ValidationError, match="stale_threshold"):
        StreamConfig(expected_interval=5, stale_threshold=1)
    with pytest.raises(ValidationError, match="expected_interval"):
        StreamConfig(expected_interval=0, stale_threshold=1)
    with pytest.raises(ValueError, match="check_interval"):
        HealthMonitor({}, check_interval=0)


def test_record_batch_is_record_message_for_each_message_in_order() -> None:
    messages = [("orders", 3), ("trade", 4), ("trade", 6), ("elsewhere", 7), ("orders", 9)]
    results = []
    for batched in (False, True):
        clock = VirtualClock()
        unhealthy: list[tuple[str, int | None]] = []
        recovered: list[str] = []
        strict = StreamConfig(expected_interval=1.0, stale_threshold=5.0)
        m = HealthMonitor({"trade": strict, "orders": strict}, clock=clock,
                          on_unhealthy=lambda s, last, seen=unhealthy: seen.append((s, last)),
                          on_recovered=recovered.append)
        clock.advance(200)
        m.check()  # both streams go stale: never spoke
        if batched:
            first: dict[str, int] = {}
            last: dict[str, int] = {}
            for stream, at in messages:
                first.setdefault(stream, at * S)
                last[stream] = at * S
            m.record_batch(first, last)
        else:
            for stream, at in messages:
                m.record_message(stream, at * S)
        results.append((unhealthy, recovered, m.transitions,
                        [m.last_seen(s) for s in ("trade", "orders", "elsewhere")]))
    assert results[0] == results[1]
    assert results[0][1] == ["orders", "trade"]  # recovered in order of their first message


def test_limits_give_each_stream_that_can_go_stale_its_silence_and_threshold() -> None:
    clock = VirtualClock(mono_ns=1_000)
    monitor = HealthMonitor(
        {"a": StreamConfig(expected_interval=1, stale_threshold=2),
         "b": StreamConfig(expected_interval=1, stale_threshold=3),
         "quiet": StreamConfig(expected_interval=1, stale_threshold=1, allow_silence=True)},
        clock=clock)
    # No message yet: silent since the monitor started; a stream allowed silence is not listed.
    assert monitor.limits() == {"a": (1_000, 2 * 10**9), "b": (1_000, 3 * 10**9)}
    clock.set(5_000)
    monitor.record_message("a")
    assert monitor.limits()["a"] == (5_000, 2 * 10**9)
    clock.set(5_000 + 3 * 10**9 + 1)
    monitor.check()  # "b" goes stale (and "a" too): stale streams are not listed
    assert monitor.limits() == {}
    monitor.record_message("b")  # recovered: listed again, silent from its message
    assert monitor.limits() == {"b": (5_000 + 3 * 10**9 + 1, 3 * 10**9)}
