"""How long a half-open link goes unnoticed, and how soon the feed is back.

A feed runs against the simulator through a :class:`~wsresearch.FaultProxy`; once
trades flow, the proxy goes half-open (no FIN, no RST: silence). The heartbeat
(ping every ``interval`` s, pong due within ``timeout`` s) should close the
connection between ``timeout`` and ``interval + timeout`` after the cut, and the
feed should reconnect right after. Ten runs, different seeds.

Usage: python benchmarks/bench_half_open.py [--interval 0.2] [--timeout 0.3] [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import Callable

from wsresearch import (
    BackoffConfig,
    ConnectionConfig,
    FaultProxy,
    Feed,
    HeartbeatConfig,
    ReconnectConfig,
    Simulator,
)


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(2_000):  # 10 s at most
        if condition():
            return
        await asyncio.sleep(0.005)
    raise RuntimeError(f"timed out waiting for {what}")


async def one(seed: int, interval: float, pong_timeout: float) -> tuple[float, float]:
    """Seconds from the cut to the close, and to the next open."""
    async with Simulator(seed=seed) as sim, FaultProxy(sim.url) as proxy:
        connection = ConnectionConfig(
        reconnect=ReconnectConfig(backoff=BackoffConfig(initial_delay=0.01, jitter=0.0)),
            heartbeat=HeartbeatConfig(interval=interval, timeout=pong_timeout))
        feed = Feed(sim.spec(url=proxy.url, connection=connection))
        async with feed:
            await _until(lambda: feed.store.rows("trade") >= 3, "trades")
            cut = feed.clock.monotonic_ns()
            proxy.half_open()
            await _until(lambda: feed.generation >= 2, "the reconnect")
        timeline = feed.connections
        close = timeline.filter(kind="close")["mono_ns"][0]
        reopen = timeline.filter(kind="open")["mono_ns"][1]
    return (close - cut) / 1e9, (reopen - cut) / 1e9


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=0.3)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    results = [await one(seed, args.interval, args.timeout) for seed in range(args.runs)]
    print(f"heartbeat: ping every {args.interval:g} s, pong within {args.timeout:g} s "
          f"(bound {args.interval + args.timeout:g} s); {args.runs} runs")
    for label, values in (("closed after the cut", [c for c, _ in results]),
                          ("reconnected after the cut", [r for _, r in results])):
        print(f"{label}: median {statistics.median(values):.3f} s, "
              f"min {min(values):.3f} s, max {max(values):.3f} s")


if __name__ == "__main__":
    asyncio.run(main())
