"""Runs: the messages one read of the socket brought, handed on together.

``WebSocketManager.on_messages`` takes whole messages from websockets as it parses a
read, without a ``recv()`` each; the ``Feed`` reads that way. These tests check that a
run keeps every message, in order, around what cannot join it (fragments, text that is
not UTF-8, a pause), takes no more than its room, and that the queue, the recorder and
the receive times downstream see one run as the messages one by one.
"""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode

from wsresearch import (
    ConnectionConfig,
    Feed,
    HeartbeatConfig,
    OverflowPolicy,
    QueueConfig,
    ReconnectConfig,
)
from wsresearch.exchanges import generic
from wsresearch.lowlevel import MessageQueue, WebSocketManager
from wsresearch.recording import Recorder, Recording
from wsresearch.testing import generic_frames

from .conftest import FAST, eventually, loopback_server

TEXT, BINARY, CONT, PING = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PING


def wire(*frames: Frame) -> bytes:
    """Frames as a server writes them, unmasked, as one buffer."""
    return b"".join(frame.serialize(mask=False, extensions=[]) for frame in frames)


def writes_at_once(data: bytes) -> Callable[[ServerConnection], Awaitable[None]]:
    """A server that waits for the client's first message, then writes ``data`` at once."""

    async def handler(conn: ServerConnection) -> None:
        await conn.recv()  # the client is served: its runs are on
        conn.transport.write(data)  # one write: on loopback, one read on the other side
        await conn.wait_closed()

    return handler


def config(attempts: int = 10) -> ConnectionConfig:
    return ConnectionConfig(reconnect=ReconnectConfig(backoff=FAST, max_attempts=attempts),
                            heartbeat=HeartbeatConfig(enabled=False))


async def test_a_read_is_handed_on_as_one_run_up_to_what_cannot_join_it() -> None:
    data = wire(Frame(TEXT, b"a"), Frame(TEXT, b"b"), Frame(BINARY, b"\x00c"),
                Frame(TEXT, b"d1", fin=False), Frame(PING, b"p"), Frame(CONT, b"d2"),
                Frame(TEXT, b"e"), Frame(PING, b"q"), Frame(TEXT, "é".encode()))
    runs: list[list[str | bytes]] = []
    each: list[str | bytes] = []
    async with loopback_server(writes_at_once(data)) as (_, url):
        ws = WebSocketManager(url, config())
        ws.on_message(lambda message, generation: each.append(message))
        ws.on_messages(lambda run, generation: runs.append(list(run)))
        await ws.connect()
        ws.send("go")
        await eventually(lambda: sum(map(len, runs)) == 6, what="every message")
        await ws.disconnect()
    # The read's first three come as a run taken as parsed; the fragmented message goes
    # through websockets' buffer, and those behind it wait there too, in order.
    assert runs == [["a", "b", b"\x00c"], ["d1d2", "e", "é"]]
    assert each == ["a", "b", b"\x00c", "d1d2", "e", "é"]
    assert ws.received == 6


async def test_a_run_takes_no_more_than_its_room_and_the_rest_follow_in_order() -> None:
    data = wire(*(Frame(TEXT, str(n).encode()) for n in range(50)))
    runs: list[list[str | bytes]] = []
    async with loopback_server(writes_at_once(data)) as (_, url):
        ws = WebSocketManager(url, config())
        ws.on_messages(lambda run, generation: runs.append(list(run)), room=lambda: 3)
        await ws.connect()
        ws.send("go")
        await eventually(lambda: sum(map(len, runs)) == 50, what="every message")
        await ws.disconnect()
    assert [m for run in runs for m in run] == [str(n) for n in range(50)]
    assert max(map(len, runs)) == 3


async def test_text_that_is_not_utf8_ends_a_run_and_fails_the_connection_with_1007() -> None:
    data = wire(Frame(TEXT, b"a"), Frame(TEXT, b"\xff"), Frame(TEXT, b"c"))
    runs: list[list[str | bytes]] = []
    async with loopback_server(writes_at_once(data)) as (_, url):
        ws = WebSocketManager(url, config(attempts=1))
        ws.on_messages(lambda run, generation: runs.append(list(run)))
        await ws.connect()
        ws.send("go")
        await eventually(lambda: ws.last_close is not None, what="the close")
        await ws.disconnect()
    assert runs == [["a"]]  # what came before it; nothing after
    close = ws.last_close
    assert close is not None and (close.code, close.initiator) == (1007, "client"), close


async def test_nothing_is_handed_on_while_paused_and_everything_after() -> None:
    data = wire(*(Frame(TEXT, str(n).encode()) for n in range(200)))
    runs: list[list[str | bytes]] = []
    async with loopback_server(writes_at_once(data)) as (_, url):
        ws = WebSocketManager(url, config())
        ws.on_messages(lambda run, generation: runs.append(list(run)))
        ws.pause_reading()
        await ws.connect()
        ws.send("go")
        # websockets' buffer fills and it stops reading the socket; nothing is handed on.
        await eventually(lambda: ws._ws is not None and ws._ws.waiting > 0,
                         what="messages waiting in websockets' buffer")
        assert runs == []
        ws.resume_reading()
        await eventually(lambda: sum(map(len, runs)) == 200, what="every message")
        await ws.disconnect()
    assert [m for run in runs for m in run] == [str(n) for n in range(200)]


async def test_a_read_larger_than_the_feeds_queue_is_not_dropped() -> None:
    # 300 messages in one read, a queue of 100 that drops the oldest when full: a run
    # takes what the queue has room for, and the rest follow once the pipeline has
    # taken those, so nothing is dropped only because it came in one read.
    frames = generic_frames(300, seed=3)
    data = wire(*(Frame(TEXT, text.encode()) for text in frames))
    async with loopback_server(writes_at_once(data)) as (_, url):
        spec = generic.spec(symbols=["BTC-USD"], channels=["trade"], url=url,
                            connection=config(),
                            queue=QueueConfig(max_size=100, overflow=OverflowPolicy.DROP_OLDEST))
        async with Feed(spec) as feed:
            await eventually(lambda: feed.stats.processed == 300, what="every message")
        stats = feed.stats
    assert stats.dropped == 0 and stats.ok == 300
    # The messages of one read share the time of that read.
    times = feed.frame("trade")["recv_mono_ns"]
    assert times.n_unique() < 300
    assert times.is_sorted()


async def test_a_run_is_recorded_as_its_messages_one_by_one(tmp_path: Path) -> None:
    messages: list[str | bytes] = ['{"n":0}', b"\x00\xff", '{"n":2}', "é", b""]
    one, run = Recorder(tmp_path / "one", source_url="ws://127.0.0.1:1"), Recorder(
        tmp_path / "run", source_url="ws://127.0.0.1:1")
    await one.start()
    await run.start()
    try:
        seqs = [one.record_message(m, 1, 5, 7) for m in messages] + [
            one.record_message("tail", 2, 9, 9)]
        ranged = list(run.record_messages(messages, 1, 5, 7)) + list(
            run.record_messages(["tail"], 2, 9, 9))
    finally:
        await one.stop()
        await run.stop()
    assert ranged == seqs == list(range(6))
    a, b = Recording.open(tmp_path / "one"), Recording.open(tmp_path / "run")
    assert a.frames().drop("path", strict=False).equals(b.frames().drop("path", strict=False))
    frames = b.frames()
    assert frames["binary"].to_list() == [False, True, False, False, True, False]
    assert frames["data"].to_list() == ['{"n":0}', "AP8=", '{"n":2}', "é", "", "tail"]


@settings(max_examples=60, deadline=None)
@given(max_size=st.integers(1, 6),
       policy=st.sampled_from(list(OverflowPolicy)),
       puts=st.lists(st.integers(0, 8), max_size=6))
def test_put_many_is_put_for_each_in_turn(max_size: int, policy: OverflowPolicy,
                                          puts: list[int]) -> None:
    def run(many: bool) -> tuple[object, ...]:
        async def main() -> tuple[object, ...]:
            got: list[int] = []
            dropped: list[int] = []
            pressure: list[bool] = []
            q: MessageQueue[int] = MessageQueue(
                got.extend, max_size=max_size, overflow=policy, on_dropped=dropped.append,
                on_pressure=pressure.append)
            results: list[object] = []
            counter = 0
            for size in puts:
                batch = list(range(counter, counter + size))
                counter += size
                try:
                    if many:
                        results.append(q.put_many(batch))
                    else:
                        results.append(sum(q.put(n) for n in batch))
                except Exception as exc:  # BLOCK when full: the same error at the same one
                    results.append(type(exc).__name__)
                    break
            queued = q.size
            await asyncio.wait_for(q.join(), 10)
            q.close()
            await q.wait_closed()
            return results, queued, got, dropped, pressure, q.dropped
        return asyncio.run(main())

    assert run(many=True) == run(many=False)


@pytest.mark.parametrize("run_handler", [False, True])
async def test_a_handler_that_raises_is_reported_and_the_next_run_comes(run_handler: bool) -> None:
    # Two reads, the second asked for once the first was handed on (and raised).
    got: list[str | bytes] = []
    errors: list[BaseException] = []

    async def twice(conn: ServerConnection) -> None:
        for batch in range(2):
            await conn.recv()
            conn.transport.write(wire(*(Frame(TEXT, f"{batch}.{n}".encode())
                                        for n in range(5))))
        await conn.wait_closed()

    def taker(run: list[str | bytes], generation: int) -> None:
        got.extend(run)
        raise RuntimeError("boom")

    async with loopback_server(twice) as (_, url):
        ws = WebSocketManager(url, config())
        ws.on_error(errors.append)
        if run_handler:
            ws.on_messages(taker)
        else:
            ws.on_message(lambda message, generation: taker([message], generation))
        await ws.connect()
        ws.send("first")
        await eventually(lambda: len(got) == 5, what="the first read's messages")
        ws.send("second")
        await eventually(lambda: len(got) == 10, what="the second read's messages")
        assert ws.state.name == "CONNECTED" and ws.generation == 1
        await ws.disconnect()
    assert got == [f"{batch}.{n}" for batch in range(2) for n in range(5)]
    assert errors and all(isinstance(e, RuntimeError) for e in errors)


@pytest.mark.parametrize("bad", ["not UTF-8", "too many fragments"])
async def test_nothing_behind_a_message_that_fails_the_connection_is_handed_on(bad: str) -> None:
    # A fragmented message first: it waits in websockets' buffer, and those behind it too,
    # so the reader takes them. websockets fails the connection at the bad one (1007, or
    # 1009 for more than its 4,096 fragments); a plain recv() loop reads nothing after it.
    failing = ([Frame(TEXT, b"\xff\xfe")] if bad == "not UTF-8" else
               [Frame(TEXT, b"x", fin=False), *[Frame(CONT, b"x", fin=False)] * 4096,
                Frame(CONT, b"x")])
    data = wire(Frame(TEXT, b"p1", fin=False), Frame(CONT, b"p2"), *failing,
                Frame(TEXT, b"after"))
    got: list[str | bytes] = []
    async with loopback_server(writes_at_once(data)) as (_, url):
        ws = WebSocketManager(url, config())
        ws.on_messages(lambda run, generation: got.extend(run))
        await ws.connect()
        ws.send("go")
        await eventually(lambda: ws.generation == 2, what="a reconnect after the failure")
        await ws.disconnect()
    assert got[0] == "p1p2" and "after" not in got, got
    first = ws.closes.most_common()
    assert (1007 if bad == "not UTF-8" else 1009) in dict(first), first


async def test_a_handler_that_unregisters_itself_mid_run_hears_no_more_and_the_rest_hear_all(
) -> None:
    data = wire(*(Frame(TEXT, f"m{n}".encode()) for n in range(5)))
    once: list[str | bytes] = []
    every: list[str | bytes] = []
    async with loopback_server(writes_at_once(data)) as (_, url):
        ws = WebSocketManager(url, config())

        def first_only(message: str | bytes, generation: int) -> None:
            once.append(message)
            unregister()

        unregister = ws.on_message(first_only)
        ws.on_message(lambda message, generation: every.append(message))
        ws.on_messages(lambda run, generation: None)  # runs on, as a feed reads
        await ws.connect()
        ws.send("go")
        await eventually(lambda: len(every) == 5, what="every message")
        await ws.disconnect()
    assert once == ["m0"]
    assert every == ["m0", "m1", "m2", "m3", "m4"]


async def test_handlers_see_a_run_in_the_order_they_were_registered() -> None:
    # A feed registers its run handler first: it records a run before a handler
    # registered after it sees any of its messages.
    data = wire(*(Frame(TEXT, f"m{n}".encode()) for n in range(3)))
    seen: list[str] = []
    async with loopback_server(writes_at_once(data)) as (_, url):
        ws = WebSocketManager(url, config())
        ws.on_messages(lambda run, generation: seen.extend(f"run {m!s}" for m in run))
        ws.on_message(lambda message, generation: seen.append(f"one {message!s}"))
        await ws.connect()
        ws.send("go")
        await eventually(lambda: len(seen) == 6, what="every message, twice")
        await ws.disconnect()
    assert seen == ["run m0", "run m1", "run m2", "one m0", "one m1", "one m2"]


@pytest.mark.parametrize("room", [lambda: 2.5, lambda: "3", lambda: 1 // 0])
async def test_a_room_that_is_not_an_int_is_reported_and_counts_as_none(room: object) -> None:
    data = wire(*(Frame(TEXT, f"m{n}".encode()) for n in range(5)))
    got: list[str | bytes] = []
    errors: list[BaseException] = []
    async with loopback_server(writes_at_once(data)) as (_, url):
        ws = WebSocketManager(url, config())
        ws.on_error(errors.append)
        ws.on_messages(lambda run, generation: got.extend(run), room=room)  # type: ignore[arg-type]
        await ws.connect()
        ws.send("go")
        await eventually(lambda: len(got) == 5, what="every message, one at a time")
        assert ws.state.name == "CONNECTED"
        await ws.disconnect()
    assert got == ["m0", "m1", "m2", "m3", "m4"]
    assert errors and all(isinstance(e, TypeError | ZeroDivisionError) for e in errors)
    assert any("room() must return an int" in str(e) for e in errors) or isinstance(
        errors[0], ZeroDivisionError)
