import asyncio

import pytest

from wsresearch import VirtualClock
from wsresearch.clock import NS_PER_S
from wsresearch.lowlevel import Clock, SystemClock


def test_system_clock_reads_the_system() -> None:
    clock = SystemClock()
    assert isinstance(clock, Clock)
    a = clock.monotonic_ns()
    b = clock.monotonic_ns()
    assert b >= a > 0
    assert clock.time_ns() > 1_600_000_000 * 10**9


def test_virtual_clock_moves_only_when_told() -> None:
    clock = VirtualClock(mono_ns=5, wall_ns=1_000)
    assert isinstance(clock, Clock)
    assert (clock.monotonic_ns(), clock.time_ns()) == (5, 1_000)
    clock.advance(0.5)
    assert (clock.monotonic_ns(), clock.time_ns()) == (500_000_005, 500_001_000)
    clock.set(1_000_000_000)
    assert clock.time_ns() == 1_000_001_000 - 5  # wall keeps its offset
    clock.set(2_000_000_000, wall_ns=7)
    assert (clock.monotonic_ns(), clock.time_ns()) == (2_000_000_000, 7)


def test_virtual_clock_refuses_to_go_back() -> None:
    clock = VirtualClock(mono_ns=10)
    with pytest.raises(ValueError, match="negative"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(9)


async def test_sleepers_wake_in_deadline_order_when_advanced() -> None:
    clock = VirtualClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("late", 3.0), ("early", 1.0))]
    await asyncio.sleep(0)
    assert clock.sleepers == 2
    assert clock.next_deadline() == 1.0
    clock.advance(0.999)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(0.001)
    await asyncio.sleep(0)
    assert woke == ["early"]
    clock.advance(5)
    await asyncio.gather(*tasks)
    assert woke == ["early", "late"]
    assert clock.next_deadline() is None


async def test_cancelled_sleeper_is_forgotten() -> None:
    clock = VirtualClock()
    task = asyncio.create_task(clock.sleep(1.0))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert clock.sleepers == 0
    clock.advance(2.0)  # waking a cancelled future must not raise


def test_ns_per_s_converts_the_clocks_seconds() -> None:
    clock = VirtualClock(mono_ns=0)
    clock.advance(2.5)
    assert clock.monotonic_ns() == 2.5 * NS_PER_S
