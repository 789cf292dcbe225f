"""Network faults between a feed and a real server, injected by FaultProxy."""

import asyncio

import pytest

from wsresearch import FaultProxy, Feed, HeartbeatConfig, QueueConfig, ReplayServer, Simulator

from .conftest import SESSION, TIME_FACTOR, eventually, other_tasks, quick

NS = 1_000_000_000


async def test_half_open_is_found_within_ping_interval_and_timeout_and_the_feed_reconnects(
) -> None:
    interval, timeout = 0.2, 0.3
    async with Simulator(seed=1) as sim, FaultProxy(sim.url) as proxy:
        heartbeat = HeartbeatConfig(interval=interval, timeout=timeout)
        feed = Feed(sim.spec(url=proxy.url, connection=quick(heartbeat)))
        async with feed:
            await eventually(lambda: feed.store.rows("trade") >= 3, what="trades")
            cut = feed.clock.monotonic_ns()
            proxy.half_open()
            await eventually(lambda: feed.generation == 2, what="the reconnect")
            await eventually(lambda: feed.frame("trade").filter(generation=2).height >= 1,
                             what="trades on the new connection")
        close = feed.connections.filter(kind="close").row(0, named=True)
    assert close["reason"] == f"no pong within {timeout:g} s"
    # A ping is due at most `interval` after the cut, and its pong at most `timeout`
    # after that; the rest is one turn of the loop and the close itself.
    assert 0 < close["mono_ns"] - cut <= (interval + timeout + 0.3 * TIME_FACTOR) * NS
    assert proxy.dropped > 0  # the server kept sending into the dead link


async def test_frames_split_into_one_byte_segments_parse_correctly() -> None:
    async with Simulator(seed=2, rates={"trade": 200.0, "ticker": 50.0}) as sim, \
            FaultProxy(sim.url) as proxy:
        proxy.split(1)
        feed = Feed(sim.spec(url=proxy.url, connection=quick()))
        async with feed:
            await eventually(lambda: feed.stats.ok >= 100, what="100 messages in pieces")
    stats = feed.stats
    assert stats.invalid == 0 and stats.sequence_gaps == 0, feed.rejects[:3]
    assert proxy.writes >= proxy.bytes_down + proxy.bytes_up  # a write per byte
    assert proxy.writes > 1_000  # (frames are compressed: ~30 bytes each on the wire)


async def test_a_throttled_link_with_block_loses_nothing() -> None:
    rate = 5_000  # bytes a second: a fraction of what the simulator produces, compressed
    async with Simulator(seed=3, rates={"trade": 500.0, "ticker": 50.0}) as sim, \
            FaultProxy(sim.url) as proxy:
        proxy.throttle(rate)
        spec = sim.spec(url=proxy.url, connection=quick(HeartbeatConfig(
            interval=5.0, timeout=5.0)), queue=QueueConfig(max_size=20, overflow="block"))
        feed = Feed(spec)
        async with feed:
            loop = asyncio.get_running_loop()
            began = loop.time()
            carried = proxy.bytes_down
            await eventually(lambda: feed.stats.ok >= 300, within=30, what="300 messages")
            elapsed, carried = loop.time() - began, proxy.bytes_down - carried
            # The server had more to send than the link carried.
            backlog = sim.sent - feed.stats.received
    stats = feed.stats
    assert stats.dropped == 0 and stats.sequence_gaps == 0 and stats.invalid == 0
    assert stats.generation == 1  # the slow link was never mistaken for a dead one
    trades = feed.frame("trade")
    for (symbol,), part in trades.group_by("symbol"):
        seqs = part["seq"].sort()
        assert seqs.diff().drop_nulls().eq(1).all(), f"trades of {symbol} lost"
    # The link was the bottleneck, and the throttle held it to its rate.
    assert rate * elapsed * 0.5 <= carried <= rate * (elapsed + 0.5)
    assert backlog > 0


async def test_latency_pause_and_reset() -> None:
    async with Simulator(seed=4, rates={"trade": 100.0}) as sim, FaultProxy(sim.url) as proxy:
        feed = Feed(sim.spec(url=proxy.url, connection=quick()))
        async with feed:
            await eventually(lambda: feed.store.rows("trade") >= 3, what="trades")
            proxy.latency(0.05)
            proxy.pause()
            held = feed.stats.received
            await eventually(lambda: sim.sent > held + 20, what="the server sending on")
            assert feed.stats.received <= held + 1  # at most one chunk was already in flight
            proxy.resume()
            await eventually(lambda: feed.stats.received > held + 20, what="the held frames")
            await proxy.reset()
            await eventually(lambda: feed.generation == 2, what="the reconnect after a reset")
            proxy.clear()
            await eventually(lambda: feed.frame("trade").filter(generation=2).height >= 1,
                             what="trades on the new connection")
        closes = feed.connections.filter(kind="close")
    assert closes["code"][0] == 1006  # a reset is an abnormal close, no close frame
    assert feed.stats.invalid == 0 and feed.stats.sequence_gaps == 0


async def test_the_proxy_stops_everything_it_started() -> None:
    before = other_tasks()
    async with Simulator(seed=5) as sim:
        proxy = FaultProxy(sim.url)
        await proxy.start()
        async with Feed(sim.spec(url=proxy.url, connection=quick())) as feed:
            await eventually(lambda: feed.store.rows("trade") >= 1, what="a trade")
            proxy.half_open()
        assert proxy.open_connections == 1  # half-open: still open, as the peers think
        await proxy.stop()
        assert proxy.open_connections == 0
    await eventually(lambda: other_tasks() == before, what="no task left behind")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy(("10.0.0.1", 80))
    with pytest.raises(ValueError, match="ws://host:port"):
        FaultProxy("ws://127.0.0.1")
    proxy = FaultProxy(("127.0.0.1", 1))
    with pytest.raises(ValueError, match="latency"):
        proxy.latency(-1)
    with pytest.raises(ValueError, match="rate"):
        proxy.throttle(0)
    with pytest.raises(ValueError, match="split"):
        proxy.split(0)
    with pytest.raises(RuntimeError, match="not running"):
        _ = proxy.url


@pytest.mark.parametrize("port", [-1, 65_536, 2**70, True])
def test_every_local_server_refuses_a_port_it_could_not_listen_on(port: int) -> None:
    for make in (lambda: FaultProxy(("127.0.0.1", 1), port=port),
                 lambda: Simulator(port=port),
                 lambda: ReplayServer(SESSION, port=port)):
        with pytest.raises(ValueError, match="port must be an integer from 0"):
            make()
