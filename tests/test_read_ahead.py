"""Whole data frames read ahead of websockets' parser give what websockets alone gives.

The client connection cuts whole, uncompressed, unmasked text and binary frames out of
each read itself, and hands every other frame's bytes to websockets in order. Whatever
the frames and wherever the reads split them, the messages handed on (in runs, or
through ``recv()``) and the way the connection fails must be websockets' own: the
reference here is websockets' sans-I/O protocol fed the same bytes at once.
"""

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri
from websockets.utils import accept_key

from wsresearch._client import GuardedConnection

from .conftest import eventually, loopback_server

LIMIT = 70_000  # max_size: past the 16-bit lengths, so all three length forms are taken
TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT


async def idle(conn: ServerConnection) -> None:
    """A server that sends nothing: the test writes what the client reads."""
    await conn.wait_closed()


@asynccontextmanager
async def client(**kwargs: object) -> AsyncIterator[GuardedConnection]:
    async with loopback_server(idle) as (_, url), connect(
            url, create_connection=GuardedConnection, max_size=LIMIT, compression=None,
            ping_interval=None, close_timeout=1, **kwargs) as ws:  # type: ignore[arg-type]
        assert isinstance(ws, GuardedConnection)
        yield ws


def reference(wire: bytes) -> tuple[list[str | bytes], int | None]:
    """What websockets alone makes of ``wire``: the messages, and the code it fails with."""
    protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN, max_size=LIMIT)
    protocol.receive_data(wire)
    messages: list[str | bytes] = []
    parts: list[bytes] = []
    for event in protocol.events_received():
        if not isinstance(event, Frame) or event.opcode not in (TEXT, BINARY, CONT):
            continue
        if event.opcode is not CONT:
            kind = event.opcode
        parts.append(bytes(event.data))
        if event.fin:
            data = b"".join(parts)
            parts = []
            if kind is TEXT:
                try:
                    messages.append(data.decode())
                except UnicodeDecodeError:
                    return messages, 1007
            else:
                messages.append(data)
    sent = protocol.close_sent
    return messages, (None if sent is None else int(sent.code))


async def released(ws: GuardedConnection, turns: int = 10_000) -> None:
    """Let the loop turn until the rest of the last read is no longer held."""
    for _ in range(turns):
        if not ws._holding:
            return
        await asyncio.sleep(0)  # each turn the rest's release takes what room there is
    raise AssertionError(f"the rest of a read is still held after {turns} turns")


async def read(ws: GuardedConnection, chunks: list[bytes], room: int | list[int]) -> tuple[
        list[str | bytes], int | None]:
    """Feed ``chunks`` as reads, handing on as the manager does: each run, then what waits.

    ``room`` is the room of every run, or the rooms of the runs in turn, round and round.
    """
    got: list[str | bytes] = []
    rooms = itertools.cycle([room] if isinstance(room, int) else room)
    ws.hand, ws.room = got.extend, rooms.__next__
    closed = False
    for chunk in chunks:  # what comes after a close or a failure too
        if ws.protocol.reader.eof:
            break  # the peer ended the stream: a transport hands on nothing after that
        ws.data_received(chunk)
        await released(ws)
        while ws.waiting and not closed:
            try:
                got.append(await ws.recv())
            except ConnectionClosed:
                closed = True
            ws.waiting -= 1
    sent = ws.protocol.close_sent
    return got, (None if sent is None else int(sent.code))


def text(n: int) -> st.SearchStrategy[bytes]:
    return st.text(max_size=n).map(str.encode)


frame = st.one_of(
    text(40).map(lambda d: [Frame(TEXT, d)]),
    st.binary(max_size=40).map(lambda d: [Frame(BINARY, d)]),
    st.sampled_from([125, 126, 65_535, 65_536]).map(lambda n: [Frame(TEXT, b"x" * n)]),
    st.lists(text(20), min_size=2, max_size=3).map(
        lambda parts: [Frame(TEXT if i == 0 else CONT, p, fin=i == len(parts) - 1)
                       for i, p in enumerate(parts)]),
    st.binary(max_size=60).map(lambda d: [Frame(Opcode.PING, d)]),
    st.binary(max_size=8).map(lambda d: [Frame(Opcode.PONG, d)]),
)
ending = st.sampled_from([
    [], [Frame(TEXT, b"\xff\xfe")], [Frame(TEXT, b"y" * (LIMIT + 1))],
    [Frame(Opcode.CLOSE, b"\x03\xe8")], [Frame(TEXT, b"z", fin=False), Frame(TEXT, b"w")],
    "masked",
])


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames=st.lists(frame, max_size=12), end=ending, tail=st.lists(frame, max_size=2),
       seed=st.integers(0, 2**32),
       room=st.sampled_from([1, 3, 1000]) | st.lists(st.sampled_from([0, 1, 3]), min_size=1,
                                                    max_size=4))
def test_every_split_of_every_stream_gives_what_websockets_gives(
        frames: list[list[Frame]], end: list[Frame] | str, tail: list[list[Frame]],
        seed: int, room: int | list[int]) -> None:
    pieces = [f.serialize(mask=False, extensions=[]) for group in frames for f in group]
    if end == "masked":  # a server must not mask: websockets fails the connection (1002)
        pieces.append(Frame(TEXT, b"m").serialize(mask=True, extensions=[]))
    else:
        pieces += [f.serialize(mask=False, extensions=[]) for f in end]
    pieces += [f.serialize(mask=False, extensions=[]) for group in tail for f in group]
    wire = b"".join(pieces)
    # Reads that end anywhere: in a header, in a payload, on a boundary; most near a
    # frame's start, where the header and the short frames are.
    rng = random.Random(seed)
    starts = [sum(map(len, pieces[:i])) for i in range(len(pieces))]
    near = [start + rng.randint(-2, 12) for start in starts for _ in range(rng.randint(0, 2))]
    anywhere = [rng.randrange(len(wire) or 1) for _ in range(rng.randint(0, 4))]
    cuts = sorted({cut for cut in near + anywhere if 0 < cut < len(wire)})
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True) if a < b]

    async def main() -> tuple[list[str | bytes], int | None]:
        async with client() as ws:
            return await read(ws, chunks, room)

    assert asyncio.run(main()) == reference(wire)


@pytest.mark.parametrize("ending", ["close", "masked", "not UTF-8"])
@pytest.mark.parametrize("split", [False, True], ids=["one read", "two reads"])
async def test_nothing_after_websockets_stops_parsing_frames_is_read_ahead(
        ending: str, split: bool) -> None:
    # A close, or a frame websockets fails the connection for, then whole messages: in
    # the same read as it (the hand-off), or in the next (between reads).
    stop = {"close": Frame(Opcode.CLOSE, b"\x03\xe8").serialize(mask=False, extensions=[]),
            "masked": Frame(TEXT, b"m").serialize(mask=True, extensions=[]),
            "not UTF-8": Frame(TEXT, b"\xff").serialize(mask=False, extensions=[])}[ending]
    before = Frame(TEXT, b"a").serialize(mask=False, extensions=[])
    after = b"".join(Frame(TEXT, f"after {n}".encode()).serialize(mask=False, extensions=[])
                     for n in range(3))
    chunks = [before + stop, after] if split else [before + stop + after]
    async with client() as ws:
        got = await read(ws, chunks, room=1000)
    assert got == reference(before + stop + after)
    assert got[0] == ["a"]


async def test_a_stream_whose_messages_are_compressed_and_not_keeps_their_order() -> None:
    # permessage-deflate: the server compresses what it sends (websockets decompresses
    # those); a message sent uncompressed among them (RSV1 clear) is read ahead.
    sent: list[str] = []

    async def mixed(conn: ServerConnection) -> None:
        await conn.recv()
        for n in range(300):
            message = f'{{"n":{n},"pad":"{"x" * (n % 50)}"}}'
            sent.append(message)
            if n % 3:
                await conn.send(message)
            else:
                conn.transport.write(Frame(TEXT, message.encode()).serialize(
                    mask=False, extensions=[]))
        await conn.wait_closed()

    got: list[str | bytes] = []
    async with loopback_server(mixed) as (_, url), connect(
            url, create_connection=GuardedConnection) as ws:
        assert isinstance(ws, GuardedConnection)
        assert ws.protocol.extensions  # deflate was agreed
        ws.hand, ws.room = got.extend, lambda: 10

        async def drain() -> None:
            while True:
                message = await ws.recv()
                ws.waiting -= 1
                got.append(message)

        reader = asyncio.ensure_future(drain())
        await ws.send("go")
        try:
            await eventually(lambda: len(got) == 300, what="every message")
        finally:
            reader.cancel()
    assert got == sent


async def test_frames_in_the_read_that_ends_the_handshake_are_read_ahead() -> None:
    # A server that sends as soon as it accepts: the first frames come in the same read
    # as the handshake's response, before the connection is served (nothing takes runs
    # yet), and wait for recv() in websockets' buffer.
    async def eager(conn: ServerConnection) -> None:
        conn.transport.write(b"".join(Frame(TEXT, str(n).encode()).serialize(
            mask=False, extensions=[]) for n in range(5)))
        await conn.wait_closed()

    async with loopback_server(eager) as (_, url), connect(
            url, create_connection=GuardedConnection) as ws:
        assert isinstance(ws, GuardedConnection)
        got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(5)]
        assert ws._ahead  # reading ahead from the handshake's end on
    assert got == [str(n) for n in range(5)]


async def test_a_response_whose_blank_line_is_split_between_reads_is_read_ahead_after() -> None:
    # A server speaking HTTP by hand: the blank line ending its response comes in two
    # writes, the second with the first frames behind it.
    # The first message holds what looks like a frame, one byte in: read from the wrong
    # place, it would be taken as a message of its own.
    sent: list[str | bytes] = [b"X\x81\x03abc", "message 1", "message 2"]
    frames = b"".join(Frame(BINARY if isinstance(m, bytes) else TEXT,
                            m if isinstance(m, bytes) else m.encode()).serialize(
        mask=False, extensions=[]) for m in sent)

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        key = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                   if line.lower().startswith("sec-websocket-key:"))
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r").encode())
        await writer.drain()
        await asyncio.sleep(0.05)  # a read of its own for what came so far
        writer.write(b"\n" + frames)
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(respond, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", create_connection=GuardedConnection,
                           compression=None, close_timeout=0.5) as ws:
            assert isinstance(ws, GuardedConnection)
            got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(3)]
            assert ws._ahead
    finally:
        server.close()
        await server.wait_closed()
    assert got == sent


# -- the rest of a read, held for room ------------------------------------------------------

def texts(*names: str) -> bytes:
    return b"".join(Frame(TEXT, name.encode()).serialize(mask=False, extensions=[])
                    for name in names)


async def test_the_rest_of_a_read_waits_a_turn_with_reading_paused() -> None:
    async with client() as ws:
        got: list[str | bytes] = []
        ws.hand, ws.room = got.extend, lambda: 2
        ws.data_received(texts("a", "b", "c", "d", "e"))
        assert got == ["a", "b"]
        assert ws._holding and not ws.transport.is_reading()  # type: ignore[attr-defined]
        await asyncio.sleep(0)  # the taker's turn, then the rest's
        assert got == ["a", "b", "c", "d"]
        await asyncio.sleep(0)
        assert got == ["a", "b", "c", "d", "e"]
        assert not ws._holding and ws.transport.is_reading()  # type: ignore[attr-defined]
        assert ws.waiting == 0


async def test_with_no_room_on_the_next_turn_the_rest_goes_to_websockets_buffer() -> None:
    async with client() as ws:
        got: list[str | bytes] = []
        rooms = iter([2, 0])
        ws.hand, ws.room = got.extend, rooms.__next__
        ws.data_received(texts("a", "b", "c", "d", "e"))
        await asyncio.sleep(0)
        assert got == ["a", "b"]
        assert not ws._holding and ws.transport.is_reading()  # type: ignore[attr-defined]
        assert ws.waiting == 3
        assert [await ws.recv() for _ in range(3)] == ["c", "d", "e"]


async def test_a_read_that_comes_while_the_rest_is_held_comes_after_it() -> None:
    # websockets resumes reading when its own buffer drains, which may be while the rest
    # of a read is held: what that read brings waits behind it.
    async with client() as ws:
        got: list[str | bytes] = []
        ws.hand, ws.room = got.extend, lambda: 1
        ws.data_received(texts("a", "b", "c"))
        ws.data_received(texts("d", "e"))
        assert got == ["a"]
        await released(ws)
        assert got == ["a", "b", "c", "d", "e"]


async def test_the_rest_held_when_the_connection_is_lost_is_handed_on() -> None:
    async with client() as ws:
        got: list[str | bytes] = []

        def take(run: list[str | bytes]) -> None:
            got.extend(run)
            ws.transport.abort()  # lost before the rest's turn comes

        ws.hand, ws.room = take, lambda: 2
        ws.data_received(texts("a", "b", "c", "d", "e"))
        await eventually(lambda: ws.protocol.state is State.CLOSED)
        rest = []
        with pytest.raises(ConnectionClosed):
            while True:
                rest.append(await ws.recv())
        assert got + rest == ["a", "b", "c", "d", "e"]


async def test_a_room_that_fails_on_the_rests_turn_ends_the_connection_and_loses_nothing() -> None:
    # As when a read's handling fails: the transport is aborted; what was held goes to
    # websockets' buffer first, where recv() still finds it.
    async with client() as ws:
        got: list[str | bytes] = []
        rooms = iter([1])
        ws.hand, ws.room = got.extend, rooms.__next__  # StopIteration on the rest's turn
        ws.data_received(texts("a", "b", "c"))
        await eventually(lambda: ws.protocol.state is State.CLOSED)
        rest = []
        with pytest.raises(ConnectionClosed):
            for _ in range(10):
                rest.append(await ws.recv())
        assert got + rest == ["a", "b", "c"]


async def test_a_read_that_starts_with_no_room_is_not_held() -> None:
    async with client() as ws:
        ws.hand, ws.room = [].extend, lambda: 0
        ws.data_received(texts("a", "b"))
        assert not ws._holding and ws.waiting == 2
        assert [await ws.recv(), await ws.recv()] == ["a", "b"]
