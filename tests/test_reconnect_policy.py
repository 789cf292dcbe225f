"""The reconnect policy holds when servers misbehave in the ways exchanges do.

Each test runs a real websockets server on 127.0.0.1 that reproduces one finding:
a resync that fails at once on every connection (F12), a rate-limit close after a
welcome frame (F13), a resync whose close reason would be too long for a close frame
(F19), a redirect to a page that is not a WebSocket (F10), and a redirect to another
origin while the connection carries an API key in a header (F11).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from wsresearch import (
    BackoffConfig,
    CloseCategory,
    ConnectionConfig,
    Feed,
    HeartbeatConfig,
    MaxReconnectsExceededError,
    ReconnectConfig,
    Recording,
)
from wsresearch.exchanges import generic
from wsresearch.lowlevel import WebSocketManager

from .conftest import FAST, eventually, loopback_server

NO_HEARTBEAT = HeartbeatConfig(enabled=False)
DOUBLING = BackoffConfig(initial_delay=0.02, max_delay=1.0, multiplier=2.0, jitter=0.0)


def trade(symbol: str, seq: int, trade_id: int = 0) -> str:
    return json.dumps({"type": "trade", "symbol": symbol, "seq": seq, "trade_id": trade_id,
                       "price": "1.5", "size": "2", "side": "buy", "ts": 1_700_000_000 * 10**9})


class GapServer:
    """Every connection sends seq 1 and then seq 5 of one symbol: a gap, every time."""

    def __init__(self, symbol: str = "BTC-USD") -> None:
        self.symbol = symbol
        self.connections = 0
        self.closes: list[tuple[int, str]] = []  # (code, reason) each client close carried

    async def handler(self, conn: ServerConnection) -> None:
        self.connections += 1
        ids = 10 * self.connections  # new trades on every connection: none is a duplicate
        await conn.send(trade(self.symbol, 1, ids + 1))
        await conn.send(trade(self.symbol, 5, ids + 5))
        await conn.wait_closed()
        if conn.protocol.close_rcvd is not None:
            self.closes.append((conn.protocol.close_rcvd.code, conn.protocol.close_rcvd.reason))


async def test_resyncs_that_fail_at_once_follow_the_backoff_and_spend_the_budget() -> None:
    # F12: with_resync against a server whose every connection shows a gap reconnected
    # 282 times a second, with no backoff and no end.
    server = GapServer()
    async with loopback_server(server.handler) as (_, url):
        connection = ConnectionConfig(heartbeat=NO_HEARTBEAT, reconnect=ReconnectConfig(
            max_attempts=4, backoff=DOUBLING))
        feed = Feed(generic.spec(url=url, connection=connection).with_resync("trade"))
        scheduled: list[tuple[int, float, CloseCategory]] = []
        feed.manager.on_reconnect(lambda *a: scheduled.append(a))
        await feed.start()
        with pytest.raises(MaxReconnectsExceededError):
            await feed.manager.wait_stopped()
        await feed.stop()
    assert [(attempt, delay) for attempt, delay, _ in scheduled] == [
        (1, 0.02), (2, 0.04), (3, 0.08), (4, 0.16)]
    assert server.connections == 5
    assert feed.stats.sequence_gaps == 5
    assert all(reason.startswith("resync: sequence gap") for _, reason in server.closes)


async def test_a_resync_after_a_stable_connection_reconnects_at_once() -> None:
    server = GapServer()
    async with loopback_server(server.handler) as (_, url):
        connection = ConnectionConfig(heartbeat=NO_HEARTBEAT, reconnect=ReconnectConfig(
            backoff=DOUBLING, stable_after=0.0))  # every connection counts as a good run
        feed = Feed(generic.spec(url=url, connection=connection).with_resync("trade"))
        scheduled: list[object] = []
        feed.manager.on_reconnect(lambda *a: scheduled.append(a))
        async with feed:
            await eventually(lambda: feed.generation >= 4, what="three resyncs")
    assert scheduled == []  # no backoff between them


async def test_a_resync_whose_reason_is_too_long_for_a_close_frame_still_resyncs() -> None:
    # F19: a sequence key of 200 characters made the close reason longer than the 123
    # bytes a close frame holds; websockets refused to send it, in a task nobody
    # awaited, and the feed went on applying deltas after the gap.
    server = GapServer(symbol="S" * 200)
    async with loopback_server(server.handler) as (_, url):
        connection = ConnectionConfig(heartbeat=NO_HEARTBEAT, reconnect=ReconnectConfig(
            backoff=FAST, stable_after=0.0))
        feed = Feed(generic.spec(url=url, connection=connection).with_resync("trade"))
        async with feed:
            await eventually(lambda: feed.generation >= 3, what="two resyncs")
            await eventually(lambda: len(server.closes) >= 2, what="the server to see two closes")
    for code, reason in server.closes[:2]:
        assert code == 1000
        assert reason.startswith("resync: sequence gap on trade 'SSS")
        assert len(reason.encode()) == 123  # cut to what a close frame holds
    assert feed.connections.filter(kind="close")["code"].to_list()[:2] == [1000, 1000]


def redirect_to(location: str):  # type: ignore[no-untyped-def]
    def process_request(conn: ServerConnection, request: Request) -> Response | None:
        return Response(302, "Found", Headers({"Location": location}), b"")
    return process_request


async def test_a_redirect_to_a_page_that_is_not_a_websocket_is_retried_and_named() -> None:
    # F10: a 301/302 to an https:// maintenance page halted the feed at the first
    # attempt, blaming the user's URL ("invalid WebSocket URL").
    requests: list[str] = []

    def counted(conn: ServerConnection, request: Request) -> Response | None:
        requests.append(request.path)
        return redirect_to("https://127.0.0.1:1/maintenance?token=PAGESECRET99")(conn, request)

    async with loopback_server(lambda conn: conn.wait_closed(), process_request=counted) as (
        _, url
    ):
        manager = WebSocketManager(url, ConnectionConfig(heartbeat=NO_HEARTBEAT,
                                                    reconnect=ReconnectConfig(max_attempts=3,
                                                                              backoff=FAST)))
        errors: list[str] = []
        manager.on_error(lambda exc: errors.append(str(exc)))
        with pytest.raises(MaxReconnectsExceededError):
            await manager.connect()
    assert len(requests) == 4  # the first attempt and three retries on the backoff
    expected = ("the server redirected to https://127.0.0.1:1/maintenance?token=***, which is "
                "not a WebSocket URL")
    assert sum(expected in error for error in errors) == 4
    assert not any("PAGESECRET99" in error for error in errors)


async def test_a_redirect_to_another_origin_carries_no_header_and_is_logged_and_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # F11: websockets drops only Authorization and Cookie on a cross-origin redirect;
    # an exchange key in X-MBX-APIKEY went to the other host, silently.
    seen: list[tuple[str, Headers]] = []

    def note(conn: ServerConnection, request: Request) -> Response | None:
        seen.append((request.path, request.headers))
        return None

    async def hello(conn: ServerConnection) -> None:
        await conn.send(trade("BTC-USD", 1))
        await conn.wait_closed()

    key = "HEADERSECRET456"
    async with loopback_server(hello, process_request=note) as (_, other), loopback_server(
        hello, process_request=redirect_to(f"{other}/elsewhere")
    ) as (_, first):
        connection = ConnectionConfig(heartbeat=NO_HEARTBEAT,
                                      headers={"X-MBX-APIKEY": key})
        feed = Feed(generic.spec(url=first, connection=connection),
                    record_to=tmp_path / "rec")
        with caplog.at_level(logging.INFO, logger="wsresearch"):
            async with feed:
                await eventually(lambda: feed.stats.ok >= 1, what="a trade from the other host")
        assert feed.manager.connected_url == f"{other}/elsewhere"
    ((path, headers),) = seen
    assert path == "/elsewhere"
    assert "X-MBX-APIKEY" not in headers  # the key stayed home
    assert any(f"redirected to {other}/elsewhere, another origin" in r.getMessage()
               for r in caplog.records)
    opened = Recording.open(tmp_path / "rec").events().filter(kind="open")["data"].to_list()
    assert opened == [f"{other}/elsewhere"]  # where it really connected


async def test_a_redirect_within_the_origin_keeps_the_headers() -> None:
    seen: list[tuple[str, Headers]] = []

    def route(conn: ServerConnection, request: Request) -> Response | None:
        seen.append((request.path, request.headers))
        if request.path == "/old":
            return redirect_to("/new")(conn, request)
        return None

    async with loopback_server(lambda conn: conn.wait_closed(), process_request=route) as (
        _, url
    ):
        manager = WebSocketManager(f"{url}/old", ConnectionConfig(heartbeat=NO_HEARTBEAT,
                                                    headers={"X-Api-Key": "kept-for-its-host"}))
        await manager.connect()
        assert manager.connected_url == f"{url}/new"
        await manager.disconnect()
    assert [(path, headers.get("X-Api-Key")) for path, headers in seen] == [
        ("/old", "kept-for-its-host"), ("/new", "kept-for-its-host")]


async def test_rate_limit_closes_after_a_welcome_escalate_on_their_own_schedule_and_halt() -> None:
    # F13: a 4429 after one delivered frame (a welcome, an ack) reset the attempt
    # count on every connection: the backoff never grew and the budget never ran out.
    async def welcome_then_rate_limit(conn: ServerConnection) -> None:
        await conn.send('{"event":"welcome"}')
        await conn.close(4429, "slow down")

    async def abort(conn: ServerConnection) -> None:
        await conn.send('{"event":"welcome"}')
        conn.transport.abort()

    script = [welcome_then_rate_limit, abort, welcome_then_rate_limit, abort,
              welcome_then_rate_limit]
    connections = 0

    async def handler(conn: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await script[min(connections, len(script)) - 1](conn)

    limited = BackoffConfig(initial_delay=0.02, multiplier=3.0, max_delay=5.0, jitter=0.0)
    async with loopback_server(handler) as (_, url):
        manager = WebSocketManager(url, ConnectionConfig(heartbeat=NO_HEARTBEAT,
                                                    reconnect=ReconnectConfig(
            max_attempts=4, backoff=FAST, rate_limit_backoff=limited)))
        scheduled: list[tuple[int, float, CloseCategory]] = []
        manager.on_reconnect(lambda *a: scheduled.append(a))
        await manager.connect()
        with pytest.raises(MaxReconnectsExceededError):
            await manager.wait_stopped()
    # One budget for every failure; rate-limit delays count their own attempts (1, 2, ...)
    # on their own schedule, and abrupt closes theirs on the normal one.
    assert [(a, round(d, 6), c.name) for a, d, c in scheduled] == [
        (1, 0.02, "RATE_LIMITED"), (2, 0.02, "NORMAL"), (3, 0.06, "RATE_LIMITED"),
        (4, 0.05, "NORMAL")]
    assert connections == 5
