"""Messages too big to hold: a plain oversized frame and a permessage-deflate bomb.

Both fail the connection with 1009 before the message is held in memory, are
counted in ``FeedStats.oversized`` and recorded, and the feed reconnects.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import polars as pl
from rich.table import Table
from websockets.asyncio.server import ServerConnection

from wsresearch import ConnectionConfig, FaultProxy, Feed, HeartbeatConfig, Recording
from wsresearch.console import FeedMonitor
from wsresearch.exchanges import generic
from wsresearch.widgets import Dashboard

from .conftest import FAST, eventually, loopback_server

LIMIT = 1024 * 1024  # the client's max_message_size
CHUNK = "a" * 65_536  # deflates to about 100 bytes
BOMB = 64 * 1024 * 1024  # what the bomb inflates to: 64 times the limit


def _config(url: str) -> ConnectionConfig:
    return ConnectionConfig(max_message_size=LIMIT, heartbeat=HeartbeatConfig(enabled=False),
        reconnect={"backoff": FAST})


async def _bomb() -> AsyncIterator[str]:
    """One text message of BOMB bytes, sent as fragments so the server never holds it."""
    for _ in range(BOMB // len(CHUNK)):
        yield CHUNK


async def test_a_compression_bomb_closes_with_1009_within_bounded_memory_and_is_counted(
    tmp_path: Path,
) -> None:
    connections: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        if len(connections) == 1:
            assert ws.response is not None
            assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
            await ws.send(_bomb())  # raises once the client has failed the connection
        await ws.wait_closed()

    async with loopback_server(handler) as (_, url), FaultProxy(url) as proxy:
        feed = Feed(generic.spec(url=proxy.url, connection=_config(proxy.url)),
                    record_to=tmp_path / "rec", flush_interval=0.05)
        tracemalloc.start()
        try:
            async with feed:
                await eventually(lambda: feed.stats.oversized == 1 and feed.generation == 2,
                                 what="the 1009 close and a new connection")
                _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # The bomb came over the wire small; the client stopped inflating it at the limit.
    assert proxy.bytes_down < LIMIT
    assert peak < 4 * LIMIT, f"peak {peak / 2**20:.1f} MiB while a {BOMB >> 20} MiB bomb came in"
    last = feed.connections.filter(pl.col("kind") == "close").row(0, named=True)
    assert (last["code"], last["category"]) == (1009, "UNKNOWN")
    assert feed.stats.received == 0  # nothing of it reached the pipeline
    closes = Recording.open(tmp_path / "rec").events().filter(pl.col("kind") == "close")
    assert closes["code"].to_list()[0] == 1009
    assert str(LIMIT) in closes["reason"].to_list()[0]


async def test_a_plain_oversized_frame_is_counted_and_the_feed_goes_on() -> None:
    sent = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal sent
        sent += 1
        if sent <= 3:
            await ws.send("x" * (LIMIT + 1))
        await ws.wait_closed()

    async with loopback_server(handler, compression=None) as (_, url):
        feed = Feed(generic.spec(url=url, connection=_config(url)))
        async with feed:
            await eventually(lambda: feed.generation == 4, what="the fourth connection")
            stats = feed.stats
    assert stats.oversized == 3
    assert stats.received == 0
    assert stats.last_close is not None and stats.last_close.code == 1009
    assert feed.manager.closes[1009] == 3
    # Shown where people look, once it is not zero.
    assert "oversized closes <b>3</b>" in Dashboard(feed).counters.value
    assert "recording errors" not in Dashboard(feed).counters.value
    rows = {row[0]: row[1] for row in _cells(FeedMonitor(feed).summary())}
    assert rows["oversized closes (1009)"] == "3"
    assert "recording errors" not in rows


def _cells(table: Table) -> list[tuple[str, ...]]:
    columns = [list(column.cells) for column in table.columns]
    return [tuple(str(cell) for cell in row) for row in zip(*columns, strict=True)]
