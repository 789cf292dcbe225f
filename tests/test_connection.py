import asyncio
import contextlib
import json
import os
import random
import socket
from collections.abc import Callable

import pytest
from pydantic import ValidationError
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from wsresearch import (
    BackoffConfig,
    CloseCategory,
    ConnectionConfig,
    HeartbeatConfig,
    InvalidURLError,
    MaxReconnectsExceededError,
    NotConnectedError,
    ReconnectConfig,
    VirtualClock,
    WebSocketAuthError,
    WebSocketError,
)
from wsresearch.lowlevel import CloseInfo, ConnectionState, WebSocketManager, classify_close_code
from wsresearch.policy import ends_session

from .conftest import FAST, eventually, loopback_server, other_tasks


async def abort(conn: ServerConnection) -> None:
    """Drop the TCP connection without a close frame: the client sees 1006."""
    conn.transport.abort()


def listen(ws: WebSocketManager, fn: Callable[[str | bytes], object], runs: bool) -> None:
    """Hand every message to ``fn``: one by one (``on_message``), or in runs (``on_messages``)."""
    if runs:
        ws.on_messages(lambda run, generation: list(map(fn, run)))
    else:
        ws.on_message(lambda data, generation: fn(data))


def config(**kw: object) -> ConnectionConfig:
    reconnect = kw.pop("reconnect", ReconnectConfig(backoff=FAST, rate_limit_backoff=FAST))
    heartbeat = kw.pop("heartbeat", HeartbeatConfig(enabled=False))
    return ConnectionConfig(reconnect=reconnect, heartbeat=heartbeat, **kw)  # type: ignore[arg-type]


class Script:
    """A loopback server whose per-connection behaviour is scripted by the test."""

    def __init__(self) -> None:
        self.connections: list[ServerConnection] = []
        self.received: list[tuple[int, str]] = []
        self.on_open: list = []  # per connection index: coroutine fn(ws) or None

    async def handler(self, ws: ServerConnection) -> None:
        index = len(self.connections)
        self.connections.append(ws)
        action = self.on_open[index] if index < len(self.on_open) else None
        if action is not None:
            await action(ws)
            return
        async for message in ws:
            self.received.append((index, message))  # type: ignore[arg-type]


def test_close_codes_are_classified() -> None:
    table = {
        4401: "AUTH_FAILURE", 4403: "AUTH_FAILURE", 1008: "AUTH_FAILURE",
        4429: "RATE_LIMITED", 1013: "RATE_LIMITED",
        1000: "NORMAL", 1001: "NORMAL", 1006: "NORMAL", None: "NORMAL",
        1011: "UNKNOWN", 4000: "UNKNOWN", 1009: "UNKNOWN",
    }
    assert {code: classify_close_code(code).name for code in table} == table
    rate_limited = CloseCategory.RATE_LIMITED
    assert classify_close_code(4000, {4000: rate_limited}) is rate_limited


def test_bad_urls_and_values_give_one_clear_error() -> None:
    with pytest.raises(InvalidURLError, match=r"expected ws:// or wss://"):
        WebSocketManager("http://example.com")
    with pytest.raises(InvalidURLError):
        WebSocketManager("not a url")
    with pytest.raises(InvalidURLError, match="ws://\\*\\*\\*:\\*\\*\\*@") as info:
        WebSocketManager("ws://user:secret@:nope")
    assert "secret" not in str(info.value)
    with pytest.raises(ValidationError, match="max_attempts"):
        ReconnectConfig(max_attempts=0)
    with pytest.raises(ValidationError, match="timeout"):
        HeartbeatConfig(timeout=-1)
    assert "secret" not in repr(ConnectionConfig(headers={"X-Key": "secret"}))


async def test_connect_and_state_transitions() -> None:
    script = Script()
    states: list[ConnectionState] = []
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config())
        ws.on_state_change(states.append)
        assert ws.state is ConnectionState.DISCONNECTED and ws.generation == 0
        await ws.connect()
        assert ws.state is ConnectionState.CONNECTED and ws.generation == 1
        await ws.connect()  # already connected: nothing new
        await ws.disconnect()
    assert states == [ConnectionState.CONNECTING, ConnectionState.CONNECTED,
                      ConnectionState.DISCONNECTED]
    assert len(script.connections) == 1


async def test_concurrent_connects_open_exactly_one_socket() -> None:
    script = Script()
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config())
        await asyncio.gather(*(ws.connect() for _ in range(10)))
        assert len(script.connections) == 1
        assert ws.generation == 1
        await ws.disconnect()


async def test_reconnect_after_1006_reruns_on_connected_and_bumps_generation() -> None:
    script = Script()
    hooks: list[int] = []
    seen: list[tuple[int, int, str]] = []

    async def talk_then_drop(conn: ServerConnection) -> None:
        await conn.send("hello")
        await conn.recv()  # the subscribe
        conn.transport.abort()  # no close frame: the client sees 1006

    script.on_open = [talk_then_drop]
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config())
        closes: list[tuple[int | None, str, CloseCategory]] = []
        ws.on_disconnected(lambda code, reason, cat: closes.append((code, reason, cat)))

        async def subscribe() -> None:
            hooks.append(ws.generation)
            ws.send({"op": "subscribe"})

        ws.on_connected(subscribe)
        ws.on_message(lambda data, gen: seen.append((gen, ws.generation, str(data))))
        await ws.connect()
        await eventually(lambda: ws.generation == 2 and ws.state is ConnectionState.CONNECTED,
                         what="the second connection")
        await eventually(lambda: len(script.received) == 1, what="the re-subscribe")
        await ws.disconnect()
    assert hooks == [1, 2]
    assert closes[0][0] == 1006 and closes[0][2] is CloseCategory.NORMAL
    assert script.received == [(1, '{"op":"subscribe"}')]
    # Every message reached the handler tagged with the generation it arrived on,
    # which was the current one: nothing from an old socket leaks into a new one.
    assert seen == [(1, 1, "hello")]
    assert all(gen == current for gen, current, _ in seen)


async def test_on_connected_runs_before_queued_messages_are_flushed() -> None:
    script = Script()
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config())
        ws.send("queued before connect")
        ws.send({"n": 2})
        ws.on_connected(lambda: ws.send("auth"))
        await ws.connect()
        await eventually(lambda: len(script.received) == 3, what="three messages")
        await ws.disconnect()
    assert [m for _, m in script.received] == ["auth", "queued before connect", '{"n":2}']


async def test_send_after_disconnect_is_a_clear_error() -> None:
    script = Script()
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config())
        await ws.connect()
        await ws.disconnect()
        with pytest.raises(NotConnectedError, match="call connect"):
            ws.send("late")
        with pytest.raises(TypeError):
            WebSocketManager(url, config()).send({"not": object()})  # type: ignore[dict-item]


async def test_auth_rejected_three_times_halts_with_no_further_attempts() -> None:
    script = Script()

    async def reject(conn: ServerConnection) -> None:
        await conn.recv()
        await conn.close(4401, "invalid api key")

    script.on_open = [reject] * 10
    errors: list[BaseException] = []
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config())
        ws.on_connected(lambda: ws.send({"op": "auth", "key": "k"}))
        ws.on_error(errors.append)
        await ws.connect()  # the first open succeeds; auth fails after it
        with pytest.raises(WebSocketAuthError, match="rejected 3 times") as info:
            await ws.wait_stopped()
        assert info.value.code == 4401
        assert len(script.connections) == 3
        assert ws.state is ConnectionState.DISCONNECTED
        assert isinstance(errors[-1], WebSocketAuthError)
        # A later connect() starts afresh (the user fixed the key, say).
        script.on_open[3] = None
        await ws.connect()
        assert ws.generation == 4
        await ws.disconnect()


async def test_rate_limit_close_waits_longer_than_1006_at_the_same_attempt() -> None:
    async def first_delay(close: object) -> tuple[int, float, CloseCategory]:
        script = Script()
        script.on_open = [close]
        clock = VirtualClock()
        scheduled: list[tuple[int, float, CloseCategory]] = []
        async with loopback_server(script.handler) as (_, url):
            ws = WebSocketManager(
                url, config(reconnect=ReconnectConfig()), clock=clock, rng=random.Random(1)
            )
            ws.on_reconnect(lambda *a: scheduled.append(a))
            await ws.connect()
            await eventually(lambda: bool(scheduled), what="a scheduled retry")
            await ws.disconnect()
        return scheduled[0]


    async def rate_limited(conn: ServerConnection) -> None:
        await conn.close(4429, "slow down")

    async def try_later(conn: ServerConnection) -> None:
        await conn.close(1013, "try again later")

    normal = await first_delay(abort)
    limited = await first_delay(rate_limited)
    later = await first_delay(try_later)
    assert normal[0] == limited[0] == later[0] == 1
    assert normal[2] is CloseCategory.NORMAL
    assert limited[2] is later[2] is CloseCategory.RATE_LIMITED
    assert limited[1] > normal[1] and later[1] > normal[1]


async def test_backoff_sleeps_on_the_injected_clock() -> None:
    script = Script()


    script.on_open = [abort]
    clock = VirtualClock()
    async with loopback_server(script.handler) as (_, url):
        cfg = config(reconnect=ReconnectConfig(backoff=BackoffConfig(initial_delay=30, jitter=0)))
        ws = WebSocketManager(url, cfg, clock=clock)
        await ws.connect()
        await eventually(lambda: clock.sleepers == 1, what="the backoff sleep")
        assert clock.next_deadline() == 30.0
        assert ws.state is ConnectionState.RECONNECTING
        clock.advance(29.9)
        await asyncio.sleep(0.05)
        assert len(script.connections) == 1  # still waiting: virtual time has not passed
        clock.advance(0.1)
        await eventually(lambda: ws.generation == 2, what="the reconnect")
        await ws.disconnect()


async def accept_then_close(conn: ServerConnection) -> None:
    await conn.close(1000)


async def talk_then_close(conn: ServerConnection) -> None:
    await conn.send("welcome")
    await conn.close(1000)


@pytest.mark.parametrize("server", [accept_then_close, talk_then_close])
async def test_short_connections_walk_up_the_schedule_and_spend_the_budget(server: object) -> None:
    # Delivering a message (a welcome, an ack) is not a success: only staying open
    # for stable_after seconds is. Before, a welcome reset the count every time.
    script = Script()
    script.on_open = [server] * 20
    attempts: list[int] = []
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config(reconnect=ReconnectConfig(max_attempts=4, backoff=FAST)))
        ws.on_reconnect(lambda attempt, delay, cat: attempts.append(attempt))
        await ws.connect()
        with pytest.raises(MaxReconnectsExceededError) as info:
            await ws.wait_stopped()
    assert attempts == [1, 2, 3, 4]  # the schedule escalates: no tight loop
    assert info.value.attempts == 4
    assert len(script.connections) == 5


async def test_attempts_reset_once_a_connection_stays_open_for_stable_after() -> None:
    clock = VirtualClock()
    release = asyncio.Event()

    async def talk_and_hold(conn: ServerConnection) -> None:
        await conn.send("data")
        await release.wait()
        await conn.close(1000)

    script = Script()
    script.on_open = [accept_then_close, accept_then_close, talk_and_hold, accept_then_close]
    scheduled: list[tuple[int, float]] = []
    backoff = BackoffConfig(initial_delay=1.0, max_delay=60.0, jitter=0.0)
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config(reconnect=ReconnectConfig(
            backoff=backoff, stable_after=10.0)), clock=clock)
        ws.on_reconnect(lambda attempt, delay, cat: scheduled.append((attempt, delay)))
        await ws.connect()
        for retries in (1, 2):  # two connections closed at once: attempts 1, 2
            await eventually(lambda n=retries: len(scheduled) == n, what=f"retry {retries}")
            clock.advance(scheduled[-1][1])
        await eventually(lambda: ws.generation == 3 and ws.state is ConnectionState.CONNECTED,
                         what="the third connection")
        clock.advance(10.0)  # it stays open stable_after seconds of the manager's clock
        release.set()
        await eventually(lambda: len(scheduled) == 3, what="the retry after the good run")
        await ws.disconnect()
    assert scheduled == [(1, 1.0), (2, 2.0), (1, 1.0)]


async def test_unreachable_server_exhausts_attempts() -> None:
    async with loopback_server(Script().handler) as (_, url):
        pass  # closed: the port is now refused
    ws = WebSocketManager(url, config(reconnect=ReconnectConfig(max_attempts=2, backoff=FAST)))
    errors: list[BaseException] = []
    ws.on_error(errors.append)
    with pytest.raises(MaxReconnectsExceededError, match=r"\(2\)"):
        await ws.connect()
    assert len(errors) >= 3  # each failed open is reported, then the halt
    assert "could not connect" in str(errors[0])
    assert ws.state is ConnectionState.DISCONNECTED


async def test_http_401_at_handshake_counts_as_auth_failure() -> None:
    def refuse(conn: ServerConnection, request: object) -> Response:
        return Response(401, "Unauthorized", Headers(), b"no")

    async with loopback_server(Script().handler, process_request=refuse) as (_, url):
        ws = WebSocketManager(url, config())
        with pytest.raises(WebSocketAuthError):
            await ws.connect()


async def test_close_code_and_reason_reach_on_disconnected() -> None:
    codes = [1000, 1001, 1008, 4403, 1013, 4000, 1011]
    script = Script()

    def closer(code: int) -> object:
        async def close(conn: ServerConnection) -> None:
            await conn.send("x")
            await conn.close(code, f"because {code}")
        return close

    script.on_open = [closer(c) for c in codes]
    closes: list[tuple[int | None, str, CloseCategory]] = []
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config())
        ws.on_disconnected(lambda *a: closes.append(a))
        await ws.connect()
        await eventually(lambda: len(closes) == len(codes), what="every close")
        await ws.disconnect()
    assert [(c, r, cat.name) for c, r, cat in closes[: len(codes)]] == [
        (c, f"because {c}", classify_close_code(c).name) for c in codes
    ]


def watch_closes(ws: WebSocketManager) -> tuple[list[CloseInfo], list[CloseInfo | None]]:
    """What on_close hands over, and what last_close held when on_disconnected ran."""
    infos: list[CloseInfo] = []
    seen: list[CloseInfo | None] = []
    ws.on_close(infos.append)
    ws.on_disconnected(lambda code, reason, category: seen.append(ws.last_close))
    return infos, seen


async def deaf(conn: ServerConnection) -> None:
    conn.transport.pause_reading()  # pings are never read, so never answered
    await conn.wait_closed()


async def too_big(conn: ServerConnection) -> None:
    await conn.send("x" * 4096)
    await conn.wait_closed()


@pytest.mark.parametrize(("server", "settings", "ask", "code", "reason"), [
    pytest.param(None, {}, "disconnect", 1000, "client disconnect",
                 id="disconnect() ends the session"),
    pytest.param(None, {}, "reconnect", 1000, "reconnect requested",
                 id="a requested reconnect closes the connection to open another"),
    pytest.param(deaf, {"heartbeat": HeartbeatConfig(interval=0.05, timeout=0.2)}, None, 1006,
                 "no pong within 0.2 s", id="the heartbeat drops a peer that stopped answering"),
    pytest.param(too_big, {"max_message_size": 1024}, None, 1009, "1024",
                 id="a message over max_message_size makes this side fail the connection"),
])
async def test_a_close_this_side_makes_is_initiated_by_the_client(
    server: object, settings: dict[str, object], ask: str | None, code: int, reason: str,
) -> None:
    script = Script()
    script.on_open = [server]
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config(**settings))
        infos, seen = watch_closes(ws)
        await ws.connect()
        if ask == "disconnect":
            await ws.disconnect()
        elif ask == "reconnect":
            ws.reconnect()
        await eventually(lambda: bool(infos), what="the close")
        await ws.disconnect()
    first = infos[0]
    assert (first.code, first.initiator, first.generation) == (code, "client", 1)
    assert reason in first.reason
    assert seen[0] is first  # last_close was set before on_disconnected ran
    assert ws.last_close is infos[-1]


async def test_a_close_frame_from_the_server_is_initiated_by_the_server() -> None:
    async def goodbye(conn: ServerConnection) -> None:
        await conn.send("last words")
        await conn.close(4000, "maintenance")

    script = Script()
    script.on_open = [goodbye]
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config())
        infos, seen = watch_closes(ws)
        await ws.connect()
        await eventually(lambda: bool(infos), what="the server's close")
        await ws.disconnect()
    first = infos[0]
    assert (first.code, first.reason, first.initiator) == (4000, "maintenance", "server")
    assert seen[0] is first


async def test_a_connection_reset_with_no_close_frame_is_initiated_by_the_network() -> None:
    script = Script()
    script.on_open = [abort]
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config())
        infos, seen = watch_closes(ws)
        await ws.connect()
        await eventually(lambda: bool(infos), what="the reset")
        await ws.disconnect()
    first = infos[0]
    assert (first.code, first.reason, first.initiator) == (1006, "", "network")
    assert seen[0] is first


async def test_a_refused_handshake_is_no_close() -> None:
    def refuse(conn: ServerConnection, request: object) -> Response:
        return Response(503, "Service Unavailable", Headers(), b"busy")

    async with loopback_server(Script().handler, process_request=refuse) as (_, url):
        ws = WebSocketManager(url, config(reconnect=ReconnectConfig(max_attempts=1, backoff=FAST)))
        infos, _ = watch_closes(ws)
        with pytest.raises(MaxReconnectsExceededError):
            await ws.connect()
    assert infos == [] and ws.last_close is None


async def test_handler_errors_are_reported_and_never_kill_the_connection() -> None:
    script = Script()

    async def chatter(conn: ServerConnection) -> None:
        for n in range(5):
            await conn.send(str(n))
        await conn.wait_closed()

    script.on_open = [chatter]
    errors: list[BaseException] = []
    got: list[str] = []
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config())

        def fussy(data: str | bytes, gen: int) -> None:
            if data == "2":
                raise ValueError("cannot handle 2")
            got.append(str(data))

        ws.on_message(fussy)
        ws.on_error(errors.append)
        ws.on_connected(lambda: 1 / 0)
        await ws.connect()
        await eventually(lambda: len(got) == 4, what="the other messages")
        assert ws.state is ConnectionState.CONNECTED and ws.generation == 1
        await ws.disconnect()
    assert got == ["0", "1", "3", "4"]
    assert [type(e) for e in errors] == [ZeroDivisionError, ValueError]


async def test_unsubscribe_and_async_handler_refusal() -> None:
    script = Script()

    async def chatter(conn: ServerConnection) -> None:
        await conn.send("a")
        await conn.recv()
        await conn.send("b")
        await conn.wait_closed()

    script.on_open = [chatter]
    got: list[str] = []
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config())
        unsubscribe = ws.on_message(lambda d, g: got.append(str(d)))
        await ws.connect()
        await eventually(lambda: got == ["a"], what="the first message")
        unsubscribe()
        unsubscribe()  # twice is harmless
        ws.send("go")
        await eventually(lambda: ws.received == 2, what="the second message")
        await ws.disconnect()
    assert got == ["a"]

    async def handler(data: str, gen: int) -> None: ...

    with pytest.raises(TypeError, match="plain functions"):
        WebSocketManager("ws://127.0.0.1:1").on_message(handler)  # type: ignore[arg-type]


async def test_a_peer_that_stops_answering_pings_is_dropped_and_reconnected() -> None:
    script = Script()

    async def half_open(conn: ServerConnection) -> None:
        conn.transport.pause_reading()  # pings are never read, so never answered
        await conn.wait_closed()

    script.on_open = [half_open]
    pongs: list[float] = []
    closes: list[tuple[int | None, str, CloseCategory]] = []
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config(heartbeat=HeartbeatConfig(interval=0.05, timeout=0.2)))
        ws.on_pong(pongs.append)
        ws.on_disconnected(lambda *a: closes.append(a))
        await ws.connect()
        await eventually(lambda: ws.generation == 2 and ws.state is ConnectionState.CONNECTED,
                         what="detection and reconnect")
        await eventually(lambda: len(pongs) >= 2, what="pongs on the healthy connection")
        await ws.disconnect()
    assert closes[0][0] == 1006 and "no pong" in closes[0][1]
    assert all(0 <= rtt < 1 for rtt in pongs)


async def test_app_level_ping_message_is_sent_with_each_heartbeat() -> None:
    script = Script()
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config(heartbeat=HeartbeatConfig(
            interval=0.02, timeout=1, ping_message=lambda: {"op": "ping"})))
        await ws.connect()
        await eventually(lambda: len(script.received) >= 2, what="two app pings")
        await ws.disconnect()
    assert {m for _, m in script.received} == {'{"op":"ping"}'}


async def test_reconnect_now_skips_the_backoff_only_after_a_stable_connection() -> None:
    script = Script()
    clock = VirtualClock()
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config(reconnect=ReconnectConfig(backoff=FAST, stable_after=10)),
                              clock=clock)
        closes: list[tuple[int | None, str, CloseCategory]] = []
        scheduled: list[tuple[int, float, CloseCategory]] = []
        ws.on_disconnected(lambda *a: closes.append(a))
        ws.on_reconnect(lambda *a: scheduled.append(a))
        await ws.connect()
        clock.advance(10.0)  # open for stable_after seconds: a good run
        ws.reconnect("sequence gap")
        await eventually(lambda: ws.generation == 2, what="an immediate reconnect")
        assert scheduled == []
        # Asked again right after opening (a resync that fails at once, again and
        # again): it waits its backoff and counts as an attempt, so it cannot storm.
        ws.reconnect("sequence gap")
        await eventually(lambda: len(scheduled) == 1, what="a scheduled retry")
        assert ws.generation == 2 and clock.sleepers == 1
        assert scheduled[0][:2] == (1, 0.01)  # attempt 1 of FAST, no jitter
        clock.advance(0.01)
        await eventually(lambda: ws.generation == 3, what="the reconnect after the backoff")
        await ws.disconnect()
    assert closes[0][:2] == (1000, "reconnect requested: sequence gap")


@pytest.mark.parametrize("runs", [False, True], ids=["one by one", "runs"])
async def test_pause_reading_pushes_back_to_the_sender_over_tcp(runs: bool) -> None:
    script = Script()
    total = 20_000
    sent = 0
    stalled = asyncio.Event()

    async def flood(conn: ServerConnection) -> None:
        nonlocal sent
        pad = "x" * 1000
        for n in range(total):
            await conn.send(json.dumps({"n": n, "pad": pad}))
            sent += 1
            if conn.transport.get_write_buffer_size() > 0:
                stalled.set()  # the kernel buffers are full: our writes now queue
        await conn.wait_closed()

    script.on_open = [flood]
    got: list[int] = []
    # Uncompressed, so the bytes on the wire are as large as the messages.
    async with loopback_server(script.handler, compression=None) as (_, url):
        ws = WebSocketManager(url, config())
        listen(ws, lambda d: got.append(json.loads(d)["n"]), runs)
        ws.pause_reading()
        await ws.connect()
        await asyncio.wait_for(stalled.wait(), 10)
        assert got == [] and ws.reading_paused
        assert sent < total
        ws.resume_reading()
        await eventually(lambda: len(got) == total, what="every message after resume")
        await ws.disconnect()
    assert got == list(range(total))


async def test_disconnect_cancels_everything_and_leaves_no_task() -> None:
    before = other_tasks()
    script = Script()


    script.on_open = [abort]
    clock = VirtualClock()
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config(reconnect=ReconnectConfig(),
                                     heartbeat=HeartbeatConfig()), clock=clock)
        await ws.connect()
        await eventually(lambda: ws.state is ConnectionState.RECONNECTING and clock.sleepers >= 1,
                         what="a pending reconnect")
        await ws.disconnect()
        assert ws.state is ConnectionState.DISCONNECTED
        assert other_tasks() == before
        clock.advance(3600)
        await asyncio.sleep(0.05)
        assert len(script.connections) == 1  # the pending reconnect was cancelled


async def test_disconnect_while_connecting_fails_the_waiter() -> None:
    clock = VirtualClock()
    async with loopback_server(Script().handler) as (_, url):
        pass
    ws = WebSocketManager(url, config(reconnect=ReconnectConfig()), clock=clock)
    attempt = asyncio.create_task(ws.connect())
    await eventually(lambda: clock.sleepers == 1, what="the first backoff")
    await ws.disconnect()
    with pytest.raises(WebSocketError, match="disconnect"):
        await attempt


async def test_disconnect_drops_a_peer_that_never_answers_the_close() -> None:
    script = Script()
    server_side: list[ServerConnection] = []

    async def deaf(conn: ServerConnection) -> None:
        server_side.append(conn)
        conn.transport.pause_reading()  # our close frame is never read, never answered
        await conn.wait_closed()

    script.on_open = [deaf]
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config(close_timeout=0.2))
        await ws.connect()
        await ws.disconnect()
        # The TCP connection is gone, not left half alive: reading the server's end
        # of it (behind the paused transport) reaches end-of-stream.
        fd = os.dup(server_side[0].transport.get_extra_info("socket").fileno())
        with socket.socket(fileno=fd) as raw:
            raw.setblocking(False)

            def ended() -> bool:
                try:
                    while raw.recv(65536):
                        pass  # our close frame, unread by the deaf server
                except BlockingIOError:
                    return False
                except ConnectionResetError:
                    return True
                return True

            await eventually(ended, what="the TCP connection to end")
        server_side[0].transport.abort()
    last = ws.last_close
    assert last is not None and last.initiator == "client"  # our close frame, never answered
    # Still the end of the session, which this side made: a recording's books stay valid
    # at its end and its report counts no downtime after it (policy.ends_session).
    assert (last.code, last.reason) == (
        1006, "client disconnect: the peer did not answer the close")
    assert ends_session(last.reason)


@pytest.mark.parametrize("runs", [False, True], ids=["one by one", "runs"])
async def test_disconnect_from_a_busy_peer_reads_to_its_close_frame_and_loses_nothing(
    runs: bool,
) -> None:
    # A peer that sends as fast as it can: its frames fill websockets' buffer as soon as
    # the client stops reading, and its answer to our close frame comes behind them.
    sent = 0

    async def flood(conn: ServerConnection) -> None:
        nonlocal sent
        with contextlib.suppress(ConnectionClosed):
            while True:
                await conn.send(json.dumps({"n": sent, "pad": "x" * 200}))
                sent += 1
                if sent % 100 == 0:
                    await asyncio.sleep(0)  # the client runs on this event loop too

    got: list[int] = []
    async with loopback_server(flood) as (_, url):
        # A long close_timeout: waiting it out would end the close as an abnormal 1006.
        ws = WebSocketManager(url, config(close_timeout=30))
        listen(ws, lambda data: got.append(json.loads(data)["n"]), runs)
        await ws.connect()
        await eventually(lambda: len(got) >= 1000, what="a busy stream")
        await ws.disconnect()
    last = ws.last_close
    # The peer's close frame was read: a clean 1000 we began, not a 1006 after a timeout.
    assert last is not None and (last.code, last.initiator) == (1000, "client"), last
    # Every message the peer sent before answering our close was handed on, in order.
    assert got == list(range(sent))


@pytest.mark.parametrize("runs", [False, True], ids=["one by one", "runs"])
async def test_a_disconnect_its_caller_gives_up_on_drops_the_socket_and_hands_on_nothing_more(
    runs: bool,
) -> None:
    async def trickle(conn: ServerConnection) -> None:
        conn.transport.pause_reading()  # never reads, so never answers, our close frame
        with contextlib.suppress(ConnectionClosed):
            for n in range(10_000):
                await conn.send(str(n))
                await asyncio.sleep(0.01)

    got: list[str] = []
    async with loopback_server(trickle) as (server, url):
        ws = WebSocketManager(url, config(close_timeout=30))
        listen(ws, got.append, runs)
        await ws.connect()
        await eventually(lambda: len(got) >= 5, what="a few messages")
        with contextlib.suppress(TimeoutError):  # the caller gives up: a second cancel
            await asyncio.wait_for(ws.disconnect(), 0.2)
        ended = len(got)
        await eventually(lambda: not [t for t in other_tasks()
                                      if t.get_name() == "wsresearch-reader"],
                         what="the reader to stop")
        server.close(close_connections=True)
    assert len(got) == ended, f"{len(got) - ended} messages handed on after disconnect()"


async def test_disconnect_returns_when_an_on_connected_hook_swallows_its_cancellation() -> None:
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.wait_closed()

    entered = asyncio.Event()

    async def stubborn_hook() -> None:
        entered.set()
        # Waits for an ack that never comes, and swallows the cancellation, as user
        # code sometimes does.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()

    before = other_tasks()
    async with loopback_server(handler) as (_, url):
        manager = WebSocketManager(url, ConnectionConfig(heartbeat=HeartbeatConfig(enabled=False),
            reconnect=ReconnectConfig(backoff=FAST)))
        manager.on_connected(stubborn_hook)
        connecting = asyncio.ensure_future(manager.connect())
        await asyncio.wait_for(entered.wait(), 5)
        # Without the check after the hooks, the cancelled supervisor served this
        # connection (and every reconnect after it) and disconnect() never returned.
        await asyncio.wait_for(manager.disconnect(), 5)
        with pytest.raises(WebSocketError, match="disconnect"):
            await connecting
        assert manager.state is ConnectionState.DISCONNECTED
        assert connections == 1
    assert other_tasks() == before


async def test_a_reconnect_asked_while_the_peer_closes_keeps_the_peer_s_close() -> None:
    # A resync found by the queue worker a moment after the frame was read, while the
    # peer's close is already in: it must not turn the peer's 4429 into its own 1000.
    closed = asyncio.Event()

    async def last_frame_then_rate_limit(conn: ServerConnection) -> None:
        await conn.send("last frame")
        await conn.close(4429, "rate limited")
        closed.set()  # the closing handshake is over: the client has the peer's close

    script = Script()
    script.on_open = [last_frame_then_rate_limit]
    async with loopback_server(script.handler) as (_, url):
        ws = WebSocketManager(url, config(reconnect=ReconnectConfig(backoff=FAST)))
        closes: list[tuple[int | None, str, CloseCategory]] = []
        ws.on_disconnected(lambda *a: closes.append(a))
        await ws.connect()
        await asyncio.wait_for(closed.wait(), 5)
        ws.reconnect("resync: gap")
        await eventually(lambda: bool(closes), what="the close")
        await ws.disconnect()
    assert closes[0] == (4429, "rate limited", CloseCategory.RATE_LIMITED)
