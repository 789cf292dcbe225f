"""Hundreds of connection cycles: tasks, sockets and memory stay flat; every cycle resubscribes."""

import gc
import json
import logging
import os
import tracemalloc

import pytest
from websockets.asyncio.server import ServerConnection

from wsresearch import ConnectionConfig, Feed, HeartbeatConfig, ReconnectConfig
from wsresearch.exchanges import generic

from .conftest import FAST, eventually, loopback_server, other_tasks, sized

CYCLES = sized(160, 300)
WARM = 60  # cycles before the first measurement: caches and pools fill first


def open_descriptors() -> int:
    """File descriptors this process holds (sockets included)."""
    return len(os.listdir("/proc/self/fd"))


async def test_a_server_dropping_every_connection_leaves_tasks_sockets_and_memory_flat(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Two warnings a cycle would be kept by pytest's log capture and measured as growth.
    caplog.set_level(logging.ERROR, logger="wsresearch")
    subscribed: list[int] = []  # per connection: subscribe requests received

    async def handler(ws: ServerConnection) -> None:
        index = len(subscribed)
        subscribed.append(0)
        request = json.loads(await ws.recv())
        subscribed[index] += request.get("op") == "subscribe"
        for n in range(3):  # a little data, then the connection drops (no close frame)
            await ws.send(json.dumps({
                "type": "trade", "symbol": "BTC-USD", "seq": n + 1, "trade_id": index * 10 + n,
                "price": "1.5", "size": "2", "side": "buy", "ts": 1}))
        ws.transport.abort()

    # No compression: a connection's zlib state (tens of KB, there or not depending on the
    # moment a sample is taken) would swamp the few hundred bytes a cycle measured here.
    async with loopback_server(handler, compression=None) as (_, url):
        connection = ConnectionConfig(heartbeat=HeartbeatConfig(enabled=False),
            reconnect=ReconnectConfig(max_attempts=None, backoff=FAST))
        # A de-dup cache of 30 keys is full before the first sample: its growth (by design,
        # up to max_dedupe_size) is not mistaken for what a cycle leaves behind.
        feed = Feed(generic.spec(symbols=["BTC-USD"], channels=["trade"], url=url,
                                 connection=connection, max_dedupe_size=30))
        opened: list[int] = []
        feed.manager.on_connected(lambda: opened.append(feed.manager.generation))
        samples: dict[int, tuple[int, int, int]] = {}
        tracemalloc.start()
        try:
            async with feed:
                for mark in (WARM, CYCLES // 2, CYCLES):
                    await eventually(lambda mark=mark: feed.generation >= mark, within=60,
                                     what=f"{mark} connections")
                    feed.store.clear()  # rows grow with the data by design: not measured
                    gc.collect()
                    samples[mark] = (len(other_tasks()), open_descriptors(),
                                     tracemalloc.get_traced_memory()[0])
        finally:
            tracemalloc.stop()
    first, middle, last = samples[WARM], samples[CYCLES // 2], samples[CYCLES]
    # Tasks and sockets: the same number at every mark (one connection's worth, give or
    # take the one being replaced when the sample was taken).
    assert abs(last[0] - first[0]) <= 3 and abs(middle[0] - first[0]) <= 3, samples
    assert abs(last[1] - first[1]) <= 2 and abs(middle[1] - first[1]) <= 2, samples
    # Memory: what is left grows by the bounded timeline of opens and closes (two small
    # tuples a cycle) and nothing else; a leaked connection would cost tens of KB each.
    per_cycle = (last[2] - first[2]) / (CYCLES - WARM)
    assert per_cycle < 1_500, f"{per_cycle:.0f} bytes a cycle: {samples}"
    # Every cycle re-ran on_connected and resubscribed on its new connection.
    cycles = feed.generation
    assert opened[:cycles] == list(range(1, cycles + 1))
    assert all(count == 1 for count in subscribed[:cycles])
    assert feed.stats.invalid == 0 and feed.stats.handler_errors == 0
