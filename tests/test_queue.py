import asyncio

import pytest

from wsresearch import OverflowPolicy, QueueClosedError, QueueFullError
from wsresearch.lowlevel import MessageQueue

from .conftest import other_tasks


def flat(batches: list[list[int]]) -> list[int]:
    return [n for batch in batches for n in batch]


async def test_drop_oldest_keeps_the_newest_max_size() -> None:
    batches: list[list[int]] = []
    dropped: list[int] = []
    q: MessageQueue[int] = MessageQueue(batches.append, max_size=10, on_dropped=dropped.append)
    # Nothing yields between puts, so the worker cannot run: a burst of 100.
    results = [q.put(n) for n in range(100)]
    assert all(results)
    assert q.size == 10
    await q.join()
    assert flat(batches) == list(range(90, 100))
    assert dropped == list(range(90))
    assert q.dropped == 90
    assert q.processed == 10
    q.close()
    await q.wait_closed()


async def test_drop_newest_keeps_what_was_queued() -> None:
    batches: list[list[int]] = []
    dropped: list[int] = []
    q: MessageQueue[int] = MessageQueue(batches.append, max_size=10, overflow="drop_newest",
                                        on_dropped=dropped.append)
    results = [q.put(n) for n in range(25)]
    assert results == [True] * 10 + [False] * 15
    await q.join()
    assert flat(batches) == list(range(10))
    assert dropped == list(range(10, 25))
    assert q.dropped == 15
    q.close()
    await q.wait_closed()


async def test_block_refuses_put_when_full_and_reports_pressure() -> None:
    batches: list[list[int]] = []
    pressure: list[bool] = []
    q: MessageQueue[int] = MessageQueue(batches.append, max_size=3,
                                        overflow=OverflowPolicy.BLOCK, on_pressure=pressure.append)
    for n in range(3):
        q.put(n)
    assert pressure == [True]
    with pytest.raises(QueueFullError, match="on_pressure"):
        q.put(3)
    await q.join()
    assert pressure == [True, False]
    q.put(3)
    await q.join()
    assert flat(batches) == [0, 1, 2, 3]
    assert q.dropped == 0
    q.close()
    await q.wait_closed()


async def test_block_loses_nothing_when_the_producer_pauses_on_pressure() -> None:
    batches: list[list[int]] = []
    pressure: list[bool] = []
    room = asyncio.Event()
    room.set()

    def on_pressure(full: bool) -> None:
        pressure.append(full)
        room.clear() if full else room.set()

    q: MessageQueue[int] = MessageQueue(batches.append, max_size=20,
                                        overflow=OverflowPolicy.BLOCK, on_pressure=on_pressure)
    for n in range(400):  # a producer that never yields unless paused
        await room.wait()
        q.put(n)
    await q.join()
    assert flat(batches) == list(range(400))
    assert q.dropped == 0
    assert pressure[:2] == [True, False]  # it filled, then drained to half
    assert len(pressure) % 2 == 0
    q.close()
    await q.wait_closed()


async def test_batches_hand_over_every_message_waiting_in_order() -> None:
    batches: list[list[int]] = []
    errors: list[BaseException] = []

    def handler(batch: list[int]) -> None:
        batches.append(batch)
        if 7 in batch:
            raise RuntimeError("seven")

    q: MessageQueue[int] = MessageQueue(handler, max_size=1000, on_error=errors.append)
    for n in range(600):  # nothing yields: all 600 wait for the worker
        q.put(n)
    await q.join()
    assert [len(b) for b in batches] == [256, 256, 88]
    assert flat(batches) == list(range(600))
    assert (q.processed, q.failed_batches, [str(e) for e in errors]) == (600, 1, ["seven"])
    q.close()
    await q.wait_closed()


async def test_the_worker_waits_for_new_messages_after_draining() -> None:
    batches: list[list[int]] = []
    q: MessageQueue[int] = MessageQueue(batches.append)
    q.put(1)
    await q.join()
    await asyncio.sleep(0)  # the worker is now waiting on an empty queue
    q.put(2)
    q.put(3)
    await q.join()
    assert batches == [[1], [2, 3]]
    q.close()
    await q.wait_closed()


async def test_callback_errors_are_reported_and_the_queue_goes_on() -> None:
    errors: list[BaseException] = []

    def broken(_: object) -> None:
        raise RuntimeError("sink down")

    q: MessageQueue[int] = MessageQueue(lambda batch: None, max_size=1, overflow="drop_newest",
                                        on_dropped=broken, on_error=errors.append)
    assert q.put(1) and not q.put(2)
    assert [str(e) for e in errors] == ["sink down"] and q.dropped == 1
    await q.join()
    q.close()
    await q.wait_closed()


async def test_close_discards_the_queue_and_leaves_no_task_behind() -> None:
    before = other_tasks()
    batches: list[list[int]] = []
    q: MessageQueue[int] = MessageQueue(batches.append, max_size=50)
    for n in range(20):
        q.put(n)
    q.close()
    assert q.closed and q.size == 0
    await q.join()  # nothing left to wait for
    await q.wait_closed()
    assert batches == [] and q.dropped == 0  # a close is the caller's choice, not a drop
    with pytest.raises(QueueClosedError):
        q.put(1)
    assert other_tasks() == before


async def test_closing_a_pressured_block_queue_releases_the_pressure() -> None:
    pressure: list[bool] = []
    q: MessageQueue[int] = MessageQueue(
        lambda batch: None, max_size=2, overflow="block", on_pressure=pressure.append
    )
    q.put(1)
    q.put(2)
    assert pressure == [True]
    q.close()
    assert pressure == [True, False]
    await q.wait_closed()


def test_bad_configuration_is_refused() -> None:
    async def handler(batch: list[int]) -> None:
        return None

    with pytest.raises(ValueError, match="max_size"):
        MessageQueue(print, max_size=0)
    with pytest.raises(ValueError, match="drop_sideways"):
        MessageQueue(print, overflow="drop_sideways")
    with pytest.raises(TypeError, match="synchronous"):
        MessageQueue(handler)
    q: MessageQueue[int] = MessageQueue(print, max_size=7, overflow="block")
    assert (q.max_size, q.overflow, q.size, q.closed) == (7, OverflowPolicy.BLOCK, 0, False)


@pytest.mark.parametrize("policy", ["drop_newest", "block"])
async def test_a_control_item_is_queued_in_its_place_even_when_the_queue_is_full(
        policy: str) -> None:
    batches: list[list[int]] = []
    dropped: list[int] = []
    q: MessageQueue[int] = MessageQueue(batches.append, max_size=3, overflow=policy,
                                        on_dropped=dropped.append)
    for n in range(3):
        q.put(n)
    q.put_control(-1)  # a full queue of either policy takes it, after what it holds
    assert q.size == 4
    await q.join()
    assert flat(batches) == [0, 1, 2, -1]
    assert dropped == [] and q.dropped == 0
    q.close()
    await q.wait_closed()
    with pytest.raises(QueueClosedError):
        q.put_control(-2)


async def test_drop_oldest_drops_a_control_item_only_as_the_oldest() -> None:
    batches: list[list[int]] = []
    dropped: list[int] = []
    q: MessageQueue[int] = MessageQueue(batches.append, max_size=2, on_dropped=dropped.append)
    q.put(0)
    q.put_control(-1)
    q.put(1)  # over the bound: the oldest, 0, goes
    q.put(2)  # and then the control item, everything before it gone
    await q.join()
    assert dropped == [0, -1]
    assert flat(batches) == [1, 2]
    q.close()
    await q.wait_closed()
