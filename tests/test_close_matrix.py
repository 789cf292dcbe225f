"""Every standard close code and a sample of 4000-4999, sent by a real server.

Each is classified, followed by the right backoff schedule on the injected clock,
recorded with its code and reason, and the attempt budget is honoured.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection

from wsresearch import (
    BackoffConfig,
    CloseCategory,
    ConnectionConfig,
    Feed,
    HeartbeatConfig,
    MaxReconnectsExceededError,
    ReconnectConfig,
    Recording,
    VirtualClock,
    WebSocketAuthError,
)
from wsresearch.exchanges import generic
from wsresearch.lowlevel import WebSocketManager, backoff_delay

from .conftest import eventually, loopback_server

BACKOFF = BackoffConfig(initial_delay=1.0, multiplier=2.0, max_delay=8.0, jitter=0.5)
RATE_LIMIT = BackoffConfig(initial_delay=10.0, multiplier=3.0, max_delay=100.0, jitter=0.5)
RECONNECT = ReconnectConfig(max_attempts=3, max_auth_failure_attempts=2, backoff=BACKOFF,
                            rate_limit_backoff=RATE_LIMIT)
# Codes a server may not put in a close frame (RFC 6455 7.4.1): sent raw, they make the
# client fail the connection itself with 1002.
RESERVED = {1004, 1015}
CODES = [*range(1000, 1016), 4000, 4001, 4401, 4403, 4429, 4500, 4999]

EXPECTED = {
    1000: CloseCategory.NORMAL, 1001: CloseCategory.NORMAL, 1006: CloseCategory.NORMAL,
    1008: CloseCategory.AUTH_FAILURE, 4401: CloseCategory.AUTH_FAILURE,
    4403: CloseCategory.AUTH_FAILURE, 1013: CloseCategory.RATE_LIMITED,
    4429: CloseCategory.RATE_LIMITED,
}


def closer(code: int) -> Callable[[ServerConnection], Awaitable[None]]:
    """How the server ends each connection with ``code``, at once after the handshake."""

    async def close(ws: ServerConnection) -> None:
        if code == 1006:  # no close frame at all
            ws.transport.abort()
        elif code == 1005:  # a close frame with no code
            ws.transport.write(b"\x88\x00")
            await ws.wait_closed()
        elif code in RESERVED:  # a code no endpoint may send: written raw
            reason = f"reason {code}".encode()
            ws.transport.write(bytes([0x88, 2 + len(reason)]) + code.to_bytes(2, "big") + reason)
            await ws.wait_closed()
        else:
            await ws.close(code, f"reason {code}")

    return close


def recorded_as(code: int) -> tuple[int, str, CloseCategory]:
    """The (code, reason, category) the client records for a server's ``code``."""
    if code in RESERVED:
        return 1002, "invalid status code", CloseCategory.UNKNOWN
    if code in (1005, 1006):
        return code, "", EXPECTED.get(code, CloseCategory.UNKNOWN)
    return code, f"reason {code}", EXPECTED.get(code, CloseCategory.UNKNOWN)


@pytest.mark.parametrize("code", CODES)
async def test_close_code_matrix(code: int, tmp_path: Path) -> None:
    connections: list[ServerConnection] = []
    close = closer(code)

    async def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        await close(ws)

    clock = VirtualClock()
    scheduled: list[tuple[int, float, CloseCategory]] = []
    async with loopback_server(handler) as (_, url):
        connection = ConnectionConfig(reconnect=RECONNECT,
                                      heartbeat=HeartbeatConfig(enabled=False))
        feed = Feed(generic.spec(url=url, connection=connection), record_to=tmp_path / "rec",
                    clock=clock, rng=random.Random(11))
        feed.manager.on_reconnect(lambda *retry: scheduled.append(retry))
        await feed.start()
        halted = lambda: feed.manager.last_error is not None  # noqa: E731
        while not halted():
            await eventually(lambda: len(scheduled) > len(connections) - 1 or halted(),
                             what="a retry or the halt")
            if halted():
                break
            attempt, delay, _ = scheduled[-1]
            opened = len(connections)
            clock.advance(delay * 0.999)  # not yet: no new connection before the backoff
            for _ in range(3):
                await asyncio.sleep(0)
            assert len(connections) == opened
            clock.advance(delay * 0.001 + 1e-6)
            await eventually(lambda opened=opened: len(connections) > opened or halted(),
                             what=f"retry {attempt}")
        await feed.stop()

    got_code, got_reason, category = recorded_as(code)
    error = feed.manager.last_error
    if category is CloseCategory.AUTH_FAILURE:  # halts after 2 rejections in a row
        assert isinstance(error, WebSocketAuthError) and len(connections) == 2
    else:  # 3 retries, then the budget is spent
        assert isinstance(error, MaxReconnectsExceededError) and len(connections) == 4
    # The schedule: the category's backoff, attempt by attempt, with the seeded jitter.
    rng = random.Random(11)
    schedule = RATE_LIMIT if category is CloseCategory.RATE_LIMITED else BACKOFF
    assert scheduled == [(n, backoff_delay(n, schedule, rng), category)
                         for n in range(1, len(connections))]
    # Recorded: every close, with its code, reason and category, live and on disk.
    closes = feed.connections.filter(kind="close")
    assert closes.select("code", "reason", "category").rows() == [
        (got_code, got_reason, category.name)] * len(connections)
    on_disk = Recording.open(tmp_path / "rec").events().filter(kind="close")
    assert on_disk.select("code", "reason", "category").rows() == closes.select(
        "code", "reason", "category").rows()
    # Who closed it: the server's close frame, no frame at all, or this side failing a
    # connection whose peer sent a code no endpoint may send.
    last = feed.manager.last_close
    assert last is not None
    assert last.initiator == ("client" if code in RESERVED else
                              "network" if code == 1006 else "server")


async def test_a_server_that_closes_at_once_100_times_never_gets_an_early_reconnect() -> None:
    connections: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        await ws.close(1000, "go away")

    clock = VirtualClock()
    delays: list[float] = []
    rng_seed = 5
    async with loopback_server(handler) as (_, url):
        manager = WebSocketManager(
            url, ConnectionConfig(heartbeat=HeartbeatConfig(enabled=False),
                                  reconnect=ReconnectConfig(max_attempts=None, backoff=BACKOFF)),
            clock=clock, rng=random.Random(rng_seed))
        manager.on_reconnect(lambda attempt, delay, category: delays.append(delay))
        await manager.connect()
        for cycle in range(1, 101):
            await eventually(lambda cycle=cycle: len(delays) == cycle,
                             what=f"retry {cycle} scheduled")
            assert clock.sleepers == 1
            wait = clock.next_deadline()
            assert wait is not None
            assert wait == pytest.approx(delays[-1])
            clock.advance(wait * 0.999)
            for _ in range(3):
                await asyncio.sleep(0)
            assert len(connections) == cycle  # nothing before the backoff has passed
            clock.advance(wait * 0.001 + 1e-6)
            await eventually(lambda cycle=cycle: len(connections) == cycle + 1,
                             what=f"connection {cycle + 1}")
        # The server has the last connection before the client has finished opening it.
        await eventually(lambda: manager.generation == 101, what="the last connection open")
        await manager.disconnect()
    rng = random.Random(rng_seed)
    assert delays[:100] == [backoff_delay(n, BACKOFF, rng) for n in range(1, 101)]
    assert max(delays) <= BACKOFF.max_delay
    assert manager.generation == 101


async def test_a_message_over_max_message_size_closes_with_1009_and_is_recorded() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send("x" * 4096)
        await ws.wait_closed()

    async with loopback_server(handler) as (_, url):
        manager = WebSocketManager(url, ConnectionConfig(
            max_message_size=1024, heartbeat=HeartbeatConfig(enabled=False),
            reconnect=ReconnectConfig(enabled=False)))
        await manager.connect()
        with pytest.raises(Exception, match="1009"):
            await manager.wait_stopped()
    last = manager.last_close
    assert last is not None and last.code == 1009
    assert "1024" in last.reason  # what the limit was, in websockets' words
