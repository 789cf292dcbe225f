import asyncio

import pytest

from wsresearch import MessageQueue, OverflowPolicy, QueueClosedError, QueueFullError

from .conftest import eventually, other_tasks


async def test_drop_oldest_keeps_the_newest_max_size() -> None:
    seen: list[int] = []
    drops: list[int] = []
    q: MessageQueue[int] = MessageQueue(seen.append, max_size=10, on_drop=drops.append)
    # Nothing yields between puts, so the worker cannot run: a burst of 100.
    results = [q.put(n) for n in range(100)]
    assert all(results)
    assert q.size == 10
    await q.join()
    assert seen == list(range(90, 100))
    assert q.dropped == 90 == sum(drops)
    assert q.processed == 10
    q.close()
    await q.wait_closed()


async def test_drop_newest_keeps_what_was_queued() -> None:
    seen: list[int] = []
    q: MessageQueue[int] = MessageQueue(seen.append, max_size=10, overflow="drop_newest")
    results = [q.put(n) for n in range(25)]
    assert results == [True] * 10 + [False] * 15
    await q.join()
    assert seen == list(range(10))
    assert q.dropped == 15
    q.close()
    await q.wait_closed()


async def test_block_refuses_put_when_full_and_put_wait_waits() -> None:
    seen: list[int] = []
    q: MessageQueue[int] = MessageQueue(seen.append, max_size=3, overflow=OverflowPolicy.BLOCK)
    for n in range(3):
        q.put(n)
    with pytest.raises(QueueFullError, match="put_wait"):
        q.put(3)
    await q.put_wait(3)  # waits for the worker to make room
    await q.join()
    assert seen == [0, 1, 2, 3]
    assert q.dropped == 0
    q.close()
    await q.wait_closed()


async def test_block_loses_nothing_under_a_10x_faster_producer() -> None:
    seen: list[int] = []
    pressure: list[bool] = []

    async def slow(n: int) -> None:
        await asyncio.sleep(0.0005)  # consumer: ~10x slower than the producer below
        seen.append(n)

    q: MessageQueue[int] = MessageQueue(
        slow, max_size=20, overflow=OverflowPolicy.BLOCK, on_pressure=pressure.append
    )
    for n in range(400):
        await q.put_wait(n)
        if n % 10 == 0:
            await asyncio.sleep(0)
    await q.join()
    assert seen == list(range(400))
    assert q.dropped == 0
    assert pressure[:2] == [True, False]  # it filled, then drained to half
    assert len(pressure) % 2 == 0
    q.close()
    await q.wait_closed()


async def test_concurrency_bounds_handlers_in_flight() -> None:
    in_flight = 0
    peak = 0
    release = asyncio.Event()

    async def handler(_: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1

    q: MessageQueue[int] = MessageQueue(handler, concurrency=3)
    for n in range(10):
        q.put(n)
    await eventually(lambda: in_flight == 3, what="three handlers in flight")
    assert q.size == 7
    release.set()
    await q.join()
    assert peak == 3
    assert q.processed == 10
    q.close()
    await q.wait_closed()


async def test_a_failing_handler_is_reported_and_the_worker_goes_on() -> None:
    errors: list[BaseException] = []
    seen: list[int] = []

    def handler(n: int) -> None:
        if n % 2:
            raise RuntimeError(f"odd {n}")
        seen.append(n)

    q: MessageQueue[int] = MessageQueue(handler, on_error=errors.append)
    for n in range(6):
        q.put(n)
    await q.join()
    assert seen == [0, 2, 4]
    assert [str(e) for e in errors] == ["odd 1", "odd 3", "odd 5"]
    assert (q.errors, q.processed) == (3, 6)
    q.close()
    await q.wait_closed()


async def test_clear_close_and_no_task_left_behind() -> None:
    before = other_tasks()
    q: MessageQueue[int] = MessageQueue(lambda n: None, max_size=50)
    for n in range(20):
        q.put(n)
    assert q.clear() == 20
    assert q.size == 0
    assert q.dropped == 0  # a clear is the user's choice, not a drop
    await q.join()
    q.close()
    await q.wait_closed()
    with pytest.raises(QueueClosedError):
        q.put(1)
    assert other_tasks() == before


async def test_put_wait_is_released_by_close() -> None:
    release = asyncio.Event()

    async def handler(_: int) -> None:
        await release.wait()

    q: MessageQueue[int] = MessageQueue(handler, max_size=1, overflow="block")
    q.put(0)
    await asyncio.sleep(0)  # the worker takes 0 and blocks on release
    q.put(1)
    waiter = asyncio.create_task(q.put_wait(2))
    await asyncio.sleep(0)
    assert not waiter.done()
    q.close()
    with pytest.raises(QueueClosedError):
        await waiter
    await q.wait_closed()


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="max_size"):
        MessageQueue(print, max_size=0)
    with pytest.raises(ValueError, match="concurrency"):
        MessageQueue(print, concurrency=0)
    with pytest.raises(ValueError, match="drop_sideways"):
        MessageQueue(print, overflow="drop_sideways")


async def test_closing_a_pressured_block_queue_releases_the_pressure() -> None:
    pressure: list[bool] = []
    q: MessageQueue[int] = MessageQueue(
        lambda n: None, max_size=2, overflow="block", on_pressure=pressure.append
    )
    q.put(1)
    q.put(2)
    assert pressure == [True]
    q.close()
    assert pressure == [True, False]
    await q.wait_closed()


async def test_batches_hand_over_every_message_waiting_in_order() -> None:
    batches: list[list[int]] = []
    errors: list[BaseException] = []

    def handler(batch: list[int]) -> None:
        batches.append(batch)
        if 7 in batch:
            raise RuntimeError("seven")

    q: MessageQueue[int] = MessageQueue(handler, max_size=1000, batches=True,
                                        on_error=errors.append)
    for n in range(600):  # nothing yields: all 600 wait for the worker
        q.put(n)
    await q.join()
    assert [len(b) for b in batches] == [256, 256, 88]
    assert [n for b in batches for n in b] == list(range(600))
    assert (q.processed, q.errors, [str(e) for e in errors]) == (600, 1, ["seven"])
    q.close()
    await q.wait_closed()


async def test_batches_release_block_pressure_once_taken() -> None:
    pressure: list[bool] = []
    q: MessageQueue[int] = MessageQueue(lambda batch: None, max_size=10, batches=True,
                                        overflow=OverflowPolicy.BLOCK, on_pressure=pressure.append)
    for n in range(10):
        q.put(n)
    assert pressure == [True]
    await q.join()
    assert pressure == [True, False]
    q.close()
    await q.wait_closed()


def test_batches_need_a_synchronous_handler() -> None:
    async def handler(batch: list[int]) -> None:
        return None

    with pytest.raises(ValueError, match="synchronous"):
        MessageQueue(handler, batches=True)
