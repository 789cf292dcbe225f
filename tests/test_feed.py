import asyncio
import contextlib
import gc
import socket
import time
import weakref
from pathlib import Path

import polars as pl
import pytest
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from wsresearch import (
    ConnectionConfig,
    Feed,
    HeartbeatConfig,
    OverflowPolicy,
    QueueConfig,
    ReconnectConfig,
    Recording,
    Simulator,
    StreamConfig,
    UnknownChannelError,
    VirtualClock,
    WebSocketAuthError,
    WebSocketError,
)
from wsresearch.exchanges import generic
from wsresearch.lowlevel import ConnectionState
from wsresearch.testing import generic_frames

from .conftest import FAST, RATES, eventually, loopback_server, other_tasks, quick


def rows(feed: Feed, channel: str) -> int:
    return feed.store.rows(channel)


@pytest.mark.parametrize("compression", ["deflate", None])  # None: frames read ahead
async def test_a_feed_turns_frames_into_validated_polars_rows(compression: str | None) -> None:
    async with Simulator(rates=RATES, seed=3, compression=compression) as sim:
        feed = Feed(sim.spec(connection=quick()))
        await feed.start()
        assert feed.state is ConnectionState.CONNECTED and feed.generation == 1
        await eventually(lambda: rows(feed, "trade") >= 50 and rows(feed, "ticker") >= 20,
                         what="trades and tickers")
        await feed.stop()
    trades = feed.frame("trade")
    assert trades.columns == ["symbol", "seq", "trade_id", "price", "size", "side", "ts",
                              "recv_wall_ns", "recv_mono_ns", "generation", "exchange_ns",
                              "frame_seq"]
    assert (trades["exchange_ns"] == trades["ts"]).all()  # the channel's exchange_time
    assert trades["frame_seq"].null_count() == trades.height  # not recording
    assert trades.schema["price"] == pl.Float64 and trades.schema["ts"] == pl.Int64
    assert trades["generation"].unique().to_list() == [1]
    assert trades["recv_mono_ns"].is_sorted()
    assert trades["trade_id"].is_unique().all()
    now = time.time_ns()
    assert trades["recv_wall_ns"].is_between(now - 60 * 10**9, now).all()
    assert feed.frame("order").height == 0 and "order_id" in feed.frame("order").columns
    assert set(feed.frames) == {"trade", "ticker", "order"}
    stats = feed.stats
    assert stats.ok == trades.height + feed.frame("ticker").height
    assert stats.control == 1  # the 'subscribed' ack
    assert stats.invalid == stats.dropped == stats.old_generation == 0
    assert stats.received == stats.processed
    with pytest.raises(UnknownChannelError, match="unknown channel 'trades'"):
        feed.frame("trades")


@pytest.mark.parametrize("compression", ["deflate", None])  # None: frames read ahead
async def test_duplicates_and_malformed_frames_are_counted_not_fatal(
    compression: str | None,
) -> None:
    async with Simulator(rates=RATES, compression=compression) as sim, Feed(
            sim.spec(connection=quick())) as feed:
        await eventually(lambda: rows(feed, "trade") >= 5, what="first trades")
        sim.duplicate(7)
        await sim.malformed(6)
        await eventually(
            lambda: feed.stats.duplicates == 7 and feed.stats.invalid == 6,
            what="duplicates and rejects counted",
        )
        assert feed.state is ConnectionState.CONNECTED and feed.generation == 1
    stats = feed.stats
    assert stats.rejects == {"invalid_utf8": 1, "invalid_json": 1, "unknown_type": 2,
                             "schema_error": 2, "handler_error": 0}
    assert {r.reason for r in feed.rejects} == {"invalid_utf8", "invalid_json", "unknown_type",
                                                 "schema_error"}
    trades = feed.frame("trade")
    assert trades.select(["symbol", "trade_id"]).is_unique().all()  # duplicates never stored


async def test_the_feed_survives_disconnects_and_keeps_collecting() -> None:
    async with Simulator(rates=RATES) as sim, Feed(sim.spec(connection=quick())) as feed:
        await eventually(lambda: rows(feed, "trade") >= 5, what="first trades")
        await sim.disconnect()  # abrupt
        await eventually(lambda: feed.generation == 2, what="reconnect after 1006")
        await sim.disconnect(1001, "going away")
        await eventually(lambda: feed.generation == 3, what="reconnect after 1001")
        await sim.rate_limit(1013)
        await eventually(lambda: feed.generation == 4, what="reconnect after 1013")
        before = rows(feed, "trade")
        await eventually(lambda: rows(feed, "trade") > before + 5, what="trades on gen 4")
    trades = feed.frame("trade")
    assert set(trades["generation"].unique().to_list()) >= {1, 4}
    assert feed.stats.reconnects == 3
    assert [s.count("subscribe") for s in sim.received if "subscribe" in s] == [1] * 4
    assert feed.stats.last_close is not None  # the final, client-side close


async def test_auth_rejection_surfaces_and_halts() -> None:
    async with Simulator(rates=RATES) as sim:
        sim.reject_auth(3)
        feed = Feed(sim.spec(api_key="bad", connection=quick()))
        with pytest.raises(WebSocketAuthError):
            await feed.run_for(30)
        assert sim.connections == 3
        assert isinstance(feed.errors[-1], WebSocketAuthError)


async def test_a_silent_stream_goes_stale_and_recovers() -> None:
    fast_health = {
        "trade": StreamConfig(expected_interval=0.01, stale_threshold=0.3),
        "ticker": StreamConfig(expected_interval=0.01, stale_threshold=0.3),
        "order": StreamConfig(expected_interval=0.1, stale_threshold=0.3, allow_silence=True),
    }
    async with Simulator(rates=RATES) as sim:
        spec = sim.spec(connection=quick(), health=fast_health, check_interval=0.05)
        events: list[tuple[str, bool]] = []
        feed = Feed(spec)
        feed.on_health(lambda stream, healthy: events.append((stream, healthy)))
        async with feed:
            await eventually(lambda: rows(feed, "ticker") >= 3, what="first tickers")
            sim.silence("ticker", 0.8)
            await eventually(lambda: ("ticker", False) in events, what="ticker stale")
            assert not feed.health.is_stream_healthy("ticker")
            assert feed.health.is_stream_healthy("trade")
            await eventually(lambda: ("ticker", True) in events, what="ticker recovered")
            assert feed.health.status()["order"].healthy  # silent, and allowed to be
    assert events == [("ticker", False), ("ticker", True)]


async def test_a_half_open_connection_is_detected_through_the_feed() -> None:
    async with Simulator(rates=RATES) as sim:
        spec = sim.spec(connection=quick(heartbeat=HeartbeatConfig(interval=0.05,
                                                                             timeout=0.2)))
        async with Feed(spec) as feed:
            await eventually(lambda: feed.stats.pongs >= 1, what="a pong")
            sim.stop_pongs(5)
            await eventually(lambda: feed.generation == 2, what="drop and reconnect")
        assert feed.stats.last_rtt is not None
    closes = list(feed.errors)  # nothing but connection reports
    assert feed.stats.handler_errors == 0, closes


async def test_stale_generation_frames_are_counted_and_never_parsed() -> None:
    async with Simulator(rates=RATES) as sim, Feed(sim.spec(connection=quick())) as feed:
        await eventually(lambda: rows(feed, "trade") >= 1, what="a trade")
        await sim.disconnect()
        await eventually(lambda: feed.generation == 2, what="the reconnect")
        old = next(generic_frames(1, seed=99))
        # A frame that arrived on generation 1 but was still queued at the reconnect.
        feed.queue.put((old, 1, 0, 0, -1))
        await feed.queue.join()
        assert feed.stats.old_generation == 1
        assert 0 not in feed.frame("trade")["recv_mono_ns"].to_list()


async def test_block_policy_drops_nothing_even_under_a_burst() -> None:
    async with Simulator(rates=RATES) as sim:
        spec = sim.spec(connection=quick(),
                        queue=QueueConfig(max_size=8, overflow=OverflowPolicy.BLOCK))
        async with Feed(spec) as feed:
            await eventually(lambda: rows(feed, "trade") >= 1, what="a trade")
            await sim.burst(3000)
            await eventually(lambda: rows(feed, "trade") >= 3000, what="the whole burst")
        assert feed.stats.dropped == 0
        assert feed.frame("trade")["trade_id"].is_unique().all()


async def test_drop_oldest_under_a_burst_counts_what_it_drops() -> None:
    async with Simulator(rates=RATES) as sim:
        spec = sim.spec(connection=quick(), queue=QueueConfig(max_size=1))
        async with Feed(spec) as feed:
            await eventually(lambda: rows(feed, "trade") >= 1, what="the subscription")
            await sim.burst(2000)
            await eventually(lambda: feed.stats.received >= 2000, what="the burst read")
            assert feed.stats.dropped > 0  # a queue of one cannot absorb a burst
            await feed.queue.join()
        s = feed.stats
        assert s.received == s.processed + s.dropped + s.old_generation
        assert s.ok + s.duplicates + s.control + s.invalid == s.processed


async def test_stop_leaves_no_task_socket_or_timer_behind() -> None:
    before = other_tasks()
    async with Simulator(rates=RATES) as sim:
        feed = Feed(sim.spec(connection=quick()))
        await feed.start()
        await eventually(lambda: rows(feed, "trade") >= 1, what="a trade")
        await feed.stop()
        assert feed.state is ConnectionState.DISCONNECTED
        assert not feed.health.running
        await eventually(lambda: sim.open_connections == 0, what="the server to see the close")
        await feed.stop()  # stopping twice is harmless
    assert other_tasks() == before


async def test_run_for_runs_then_stops() -> None:
    async with Simulator(rates=RATES) as sim:
        # Long enough to connect on a loaded machine (the suite runs on every core).
        feed = await Feed(sim.spec(connection=quick())).run_for(1.5)
        assert feed.state is ConnectionState.DISCONNECTED
        assert rows(feed, "trade") > 0


def test_feed_needs_a_spec() -> None:
    with pytest.raises(TypeError, match="FeedSpec"):
        Feed("ws://127.0.0.1:1")  # type: ignore[arg-type]


async def test_start_that_cannot_connect_cleans_up() -> None:
    before = other_tasks()
    async with Simulator() as sim:
        spec = sim.spec(connection=ConnectionConfig(
            reconnect=ReconnectConfig(max_attempts=1, backoff=FAST)))
    feed = Feed(spec)
    with pytest.raises(Exception, match="Max reconnection attempts"):
        await feed.start()
    await asyncio.sleep(0)
    assert other_tasks() == before


async def test_a_stopped_feed_can_start_again_and_keeps_its_rows() -> None:
    async with Simulator(rates=RATES) as sim:
        feed = Feed(sim.spec(connection=quick()))
        await feed.start()
        await eventually(lambda: rows(feed, "trade") >= 3, what="trades")
        await feed.stop()
        first = rows(feed, "trade")
        await feed.start()
        assert feed.generation == 2
        await eventually(lambda: rows(feed, "trade") > first + 3, what="more trades")
        await feed.stop()
    assert feed.frame("trade")["generation"].unique().sort().to_list() == [1, 2]


async def test_block_feed_restarts_after_stopping_under_pressure() -> None:
    async with Simulator(rates=RATES) as sim:
        spec = sim.spec(connection=quick(),
                        queue=QueueConfig(max_size=2, overflow=OverflowPolicy.BLOCK))
        feed = Feed(spec)
        await feed.start()
        await eventually(lambda: rows(feed, "trade") >= 1, what="a trade")
        await sim.burst(500)
        await feed.stop()  # mid-burst: the queue is drained, not dropped
        assert not feed.manager.reading_paused
        before = rows(feed, "trade")
        await feed.start()
        await eventually(lambda: rows(feed, "trade") > before + 3, what="trades after restart")
        await feed.stop()
    assert feed.stats.dropped == 0


@pytest.mark.parametrize("overflow", [OverflowPolicy.BLOCK, OverflowPolicy.DROP_OLDEST])
async def test_a_stop_during_a_flood_records_and_processes_every_message_sent(
    overflow: OverflowPolicy, tmp_path: Path,
) -> None:
    # The server sends as fast as it can until it answers the close; the feed stops while
    # its queue (BLOCK: with the socket paused) and websockets' buffer are full.
    sent = 0

    async def flood(conn: ServerConnection) -> None:
        nonlocal sent
        await conn.recv()  # the subscription
        with contextlib.suppress(ConnectionClosed):
            for frame in generic_frames(200_000, seed=7):
                await conn.send(frame)
                sent += 1
                if sent % 100 == 0:
                    await asyncio.sleep(0)  # the feed runs on this event loop too

    async with loopback_server(flood) as (_, url):
        spec = generic.spec(symbols=["BTC-USD"], channels=["trade"], url=url,
                            connection=ConnectionConfig(
                                heartbeat=HeartbeatConfig(enabled=False), close_timeout=30),
                            queue=QueueConfig(max_size=64, overflow=overflow))
        feed = Feed(spec, record_to=tmp_path / "rec")
        async with feed:
            await eventually(lambda: feed.stats.received >= 5_000, what="a flood")
    close = feed.manager.last_close
    assert close is not None and (close.code, close.initiator) == (1000, "client"), close
    stats = feed.stats
    assert stats.received == sent  # read up to the server's answer to the close
    assert Recording.open(tmp_path / "rec").frames().height == sent  # and every one recorded
    if overflow is OverflowPolicy.BLOCK:  # nothing dropped: every message is a row
        assert stats.dropped == 0 and rows(feed, "trade") == sent


async def test_an_exchange_time_that_fails_leaves_the_row_without_it() -> None:
    async with Simulator(rates=RATES, seed=2) as sim:
        spec = sim.spec(channels=["trade"], connection=quick())
        broken = spec.channel("trade").model_copy(update={"exchange_time": lambda t: 1 // 0})
        async with Feed(spec.replace(channels=[broken])) as feed:
            await eventually(lambda: rows(feed, "trade") >= 5, what="trades")
    trades = feed.frame("trade")
    assert trades["exchange_ns"].null_count() == trades.height
    assert feed.stats.handler_errors >= trades.height
    assert isinstance(feed.errors[-1], ZeroDivisionError)


@pytest.mark.parametrize("enabled", [True, False])
async def test_the_collector_waits_for_the_end_of_each_batch_and_is_left_as_it_was(
    enabled: bool,
) -> None:
    seen: list[bool] = []

    def exchange_time(trade: generic.Trade) -> int:
        seen.append(gc.isenabled())
        return trade.ts

    between: list[bool] = []
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        async with Simulator(rates=RATES, seed=2) as sim:
            spec = sim.spec(channels=["trade"], connection=quick())
            timed = spec.channel("trade").model_copy(update={"exchange_time": exchange_time})
            async with Feed(spec.replace(channels=[timed])) as feed:
                await eventually(lambda: rows(feed, "trade") >= 50, what="trades")
                between.append(gc.isenabled())
            between.append(gc.isenabled())
    finally:
        (gc.enable if was else gc.disable)()
    assert len(seen) >= 50
    assert not any(seen), "the collector is off while a batch is taken"
    assert between == [enabled, enabled]


class _Cycle:
    """An object that refers to itself: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


async def test_cycles_made_while_a_batch_is_taken_are_collected_while_the_feed_runs() -> None:
    collected: list[int] = []

    def exchange_time(trade: generic.Trade) -> int:
        for _ in range(100):  # garbage only the collector frees: its young generation fills
            _Cycle()
        weakref.finalize(_Cycle(), collected.append, 1)
        return trade.ts

    async with Simulator(rates=RATES, seed=2) as sim:
        spec = sim.spec(channels=["trade"], connection=quick())
        timed = spec.channel("trade").model_copy(update={"exchange_time": exchange_time})
        async with Feed(spec.replace(channels=[timed])) as feed:
            await eventually(lambda: len(collected) >= 10, what="cycles collected")
            assert rows(feed, "trade") >= 10


async def test_run_for_counts_connecting_and_ends_on_time_when_no_server_answers() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{probe.getsockname()[1]}"
    clock = VirtualClock()
    before = other_tasks()
    feed = Feed(generic.spec(url=url, connection=quick()), clock=clock)
    run = asyncio.ensure_future(feed.run_for(5))
    await eventually(lambda: len(feed.errors) >= 1, what="a failed open")
    assert not run.done()
    clock.advance(4.9)
    for _ in range(5):
        await asyncio.sleep(0)
    assert not run.done()  # still within the five seconds
    clock.advance(0.2)
    with pytest.raises(WebSocketError, match=r"no connection to .* opened within 5 s \(last: "
                                             r"could not connect .*ConnectionRefused"):
        await run
    assert feed.manager.state is ConnectionState.DISCONNECTED
    assert other_tasks() == before


@pytest.mark.parametrize("seconds", [0, -1, float("nan")])
async def test_run_for_refuses_a_run_that_cannot_last(seconds: float) -> None:
    feed = Feed(generic.spec(url="ws://127.0.0.1:9"))
    with pytest.raises(ValueError, match="seconds must be > 0"):
        await feed.run_for(seconds)
    assert feed.manager.state is ConnectionState.DISCONNECTED  # nothing was started
