"""A peer that stops reading is found and dropped, with bounded memory (F4, F5).

The server in each test stops reading its socket (``transport.pause_reading()``), so
what this side writes piles up: first in the kernel's buffers, then in the client's
own write buffer. websockets' ``ping()`` waits for that buffer to drain before it
sends, so a heartbeat that started its timer after the ping never timed out.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import os

import pytest
from websockets.asyncio.server import ServerConnection

from wsresearch import ConnectionConfig, HeartbeatConfig, ReconnectConfig
from wsresearch.connection import MAX_UNSENT
from wsresearch.lowlevel import WebSocketManager

from .conftest import FAST, eventually, loopback_server

# One unmasked WebSocket ping frame from a server, with the largest payload (125 bytes).
PING = b"\x89\x7d" + b"p" * 125


def fill(manager: WebSocketManager) -> None:
    """Queue 32 MB to send: far more than the kernel's socket buffers hold (a few MB on
    loopback), so the write buffer stays full and every write waits to drain.

    Random text, as permessage-deflate would shrink anything repetitive to nothing.
    """
    for _ in range(512):
        manager.send(base64.b64encode(os.urandom(49_152)).decode())


class DeafServer:
    """Sends a greeting, then stops reading; optionally floods pings it never reads answers to."""

    def __init__(self, flood: bool = False) -> None:
        self.flood = flood
        self.connections = 0

    async def handler(self, conn: ServerConnection) -> None:
        self.connections += 1
        await conn.send("hello")
        conn.transport.pause_reading()
        while self.flood and not conn.transport.is_closing():
            if conn.transport.get_write_buffer_size() < 1_000_000:
                conn.transport.write(PING * 500)  # raw frames: the protocol keeps no state
            await asyncio.sleep(0)
        await conn.wait_closed()


Closes = list[tuple[int | None, str]]


async def watched(url: str, heartbeat: HeartbeatConfig) -> tuple[WebSocketManager, Closes]:
    """A connected manager, and the (code, reason) of every close it sees."""
    manager = WebSocketManager(url, ConnectionConfig(
        heartbeat=heartbeat, close_timeout=0.2, reconnect=ReconnectConfig(backoff=FAST)))
    closes: Closes = []
    manager.on_disconnected(lambda code, reason, category: closes.append((code, reason)))
    await manager.connect()
    return manager, closes


async def test_a_peer_that_stops_reading_is_dropped_within_the_heartbeat_even_with_data_pending(
) -> None:
    # F4: with 4 MB or more waiting to be sent, the ping never went out and the pong
    # timer never started: the dead peer was never found.
    server = DeafServer()
    async with loopback_server(server.handler) as (_, url):
        manager, closes = await watched(url, HeartbeatConfig(interval=0.2, timeout=0.3))
        fill(manager)
        await eventually(lambda: bool(closes), within=5, what="the dead peer to be dropped")
        await eventually(lambda: manager.generation == 2, what="the reconnect")
        await manager.disconnect()
    code, reason = closes[0]
    assert code == 1006
    assert reason.startswith(("peer stopped reading", "no pong within 0.3 s")), reason


async def test_a_ping_flood_from_a_peer_that_never_reads_is_dropped_with_bounded_memory() -> None:
    # F5: each ping is answered with a pong written to a socket the server never reads:
    # the client's write buffer grew by 10 MB/s without bound, and the heartbeat stalled.
    # With the heartbeat off, the bound on unsent bytes alone must end it.
    server = DeafServer(flood=True)
    async with loopback_server(server.handler) as (_, url):
        manager, closes = await watched(url, HeartbeatConfig(enabled=False))
        await eventually(lambda: bool(closes), within=20, what="the flood to be cut off")
        await manager.disconnect()
    code, reason = closes[0]
    assert code == 1006
    assert reason.startswith("peer stopped reading:"), reason
    unsent = int(reason.split(":")[1].split()[0])
    # Cut off once past the bound: never more than one read's worth of pongs beyond it.
    assert MAX_UNSENT < unsent < MAX_UNSENT + 1_000_000, unsent


async def test_the_pongs_answering_a_burst_of_pings_go_out_together() -> None:
    # One write per pong made the flood above quadratic on Python 3.12 and 3.13, whose
    # asyncio sums every buffered piece at each write (CPython gh-146507): the cut-off
    # came after 20 s of a busy loop. The count of the socket's writes shows it here.
    async def burst(conn: ServerConnection) -> None:
        await conn.recv()  # the client is watching its writes
        conn.transport.write(PING * 500)  # raw frames, in one write
        await conn.wait_closed()

    async with loopback_server(burst) as (_, url):
        manager, _ = await watched(url, HeartbeatConfig(enabled=False))
        transport = manager._ws.transport  # type: ignore[union-attr]
        writes: list[int] = []
        write = transport.write

        def counted(data: bytes) -> None:
            writes.append(len(data))
            write(data)

        transport.write = counted  # type: ignore[method-assign]
        manager.send("go")
        pong = 2 + 4 + 125  # header, mask and the ping's payload
        await eventually(lambda: sum(writes) >= len("go") + 6 + 500 * pong, what="500 pongs")
        await manager.disconnect()
    assert len(writes) <= 1 + 50, f"{len(writes)} writes for 500 pongs"


async def test_a_ping_flood_with_data_pending_is_found_by_the_heartbeat() -> None:
    server = DeafServer(flood=True)
    async with loopback_server(server.handler) as (_, url):
        manager, closes = await watched(url, HeartbeatConfig(interval=0.1, timeout=0.2))
        fill(manager)
        await eventually(lambda: bool(closes), within=5, what="the flood to be found")
        await eventually(lambda: manager.generation >= 2, what="the reconnect")
        await manager.disconnect()
    assert closes[0][0] == 1006
    assert closes[0][1].startswith(("peer stopped reading", "no pong")), closes[0]


async def test_a_disconnect_while_a_ping_waits_leaves_no_task_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="websockets.client")  # to see the ping go out
    server = DeafServer()  # never reads: the ping is written but never answered
    async with loopback_server(server.handler) as (_, url):
        manager, _ = await watched(url, HeartbeatConfig(interval=0.05, timeout=30))
        await eventually(lambda: any("> PING" in r.getMessage() for r in caplog.records),
                         what="a ping waiting for its pong")
        await manager.disconnect()
    gc.collect()  # a task that ended with an exception nobody retrieved says so now
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
