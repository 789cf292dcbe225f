"""Memory of one scenario, in a process of its own (peak RSS is per process).

Modes (each prints one JSON line):

``bare URL N``                  a bare websockets recv loop over the flood: the baseline
``flood URL N POLICY``          a Feed with a slow consumer (0.1 ms a message, the
                                newest 5,000 rows kept) under the flood, with queue policy
                                ``drop_oldest`` or ``block``
``reconnects SECONDS``          a Feed against the simulator, recording, with a disconnect
                                every 10 s and its rows cleared then (so kept data does not
                                grow); RSS after the first fifth and at the end: a leak shows
                                as growth

Usage: python benchmarks/memory_probe.py MODE ARGS...
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from wsresearch import (
    ConnectionConfig,
    Feed,
    FeedSpec,
    HeartbeatConfig,
    OverflowPolicy,
    QueueConfig,
    Simulator,
)
from wsresearch.exchanges import generic

_PAGE = 4096


def peak_mb() -> float:
    """Peak resident memory of this process so far: ``VmHWM``.

    Not ``getrusage``'s ``ru_maxrss``: Linux keeps that across ``execve``, so a probe
    started by a big parent would report the parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_mb() -> float:
    """Resident memory now."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE / 2**20


def slow(spec: FeedSpec) -> FeedSpec:
    """``spec`` with a consumer that keeps up with only 10k messages a second.

    Each trade's exchange-time extractor sleeps 0.1 ms: the pipeline, not the
    socket, is slow, as with a heavy handler.
    """
    def slowed(extract: Callable[[Any], int | None]) -> Callable[[Any], int | None]:
        def extractor(message: Any) -> int | None:
            time.sleep(0.0001)
            return extract(message)
        return extractor

    return spec.replace(channels=[
        c.model_copy(update={"exchange_time": slowed(c.exchange_time)})
        if c.exchange_time is not None else c for c in spec.channels])


async def bare(url: str, n: int) -> dict[str, float]:
    async with connect(url, max_size=None) as ws:
        await ws.send("go")
        count = 0
        try:
            while True:
                await ws.recv()
                count += 1
        except ConnectionClosed:
            pass
    return {"messages": count, "peak_mb": peak_mb()}


async def flood(url: str, n: int, policy: str) -> dict[str, float]:
    overflow = OverflowPolicy[policy.upper()]
    spec = generic.spec(url=url,
                        connection=ConnectionConfig(heartbeat=HeartbeatConfig(enabled=False)),
                        queue=QueueConfig(max_size=10_000, overflow=overflow))
    # Only the newest 5,000 rows are kept: kept rows grow with the data by design;
    # what is measured here is whether the backlog does.
    feed = Feed(slow(spec), max_rows=5_000)
    done = asyncio.Event()
    feed.manager.on_disconnected(lambda *_: done.set())
    await feed.start()
    await done.wait()
    await feed.stop()
    stats = feed.stats
    return {"messages": stats.received, "ok": stats.ok, "dropped": stats.dropped,
            "peak_mb": peak_mb()}


async def reconnects(seconds: float) -> dict[str, float]:
    async with Simulator(seed=1, rates={"trade": 500.0, "ticker": 100.0, "order": 1.0}) as sim:
        with tempfile.TemporaryDirectory(prefix="wsr-probe-") as folder:
            feed = Feed(sim.spec(), record_to=Path(folder) / "rec")
            await feed.start()
            loop = asyncio.get_running_loop()
            start = loop.time()
            early: float | None = None
            rows = 0
            while loop.time() - start < seconds:
                await asyncio.sleep(10)
                rows += feed.store.rows("trade")
                feed.store.clear()
                await sim.disconnect()
                if early is None and loop.time() - start >= seconds / 5:
                    early = rss_mb()
            await feed.stop()
            late = rss_mb()
            return {"generations": feed.generation, "rows": rows,
                    "rss_early_mb": early or late, "rss_end_mb": late}


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "bare":
        result = asyncio.run(bare(args[0], int(args[1])))
    elif mode == "flood":
        result = asyncio.run(flood(args[0], int(args[1]), args[2]))
    else:
        result = asyncio.run(reconnects(float(args[0])))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    main()
