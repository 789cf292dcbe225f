"""Throughput of the full Feed against a bare websockets recv loop, in the same run.

A flood server in another process sends N small trade frames (the simulator's
generic dialect, ~190 bytes) as fast as it can. The script measures messages
per second of:

(a) a bare ``websockets`` recv loop that only counts messages (the ceiling);
(b) the same loop plus ``model_validate_json`` per message (pydantic's floor);
(c) the full :class:`wsresearch.Feed`: queue, JSON decode, routing, pydantic
    validation, de-dup, health, and column batches for polars;
(d) the same feed recording the session to disk.

and prints the ratios against (a), and (d) against (c). Each variant runs ``--rounds`` times,
interleaved, and the best round counts (the least disturbed by the machine).

Usage: python benchmarks/bench_pipeline.py [--messages 300000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from flood_server import running
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from wsresearch import ConnectionConfig, Feed, HeartbeatConfig
from wsresearch.exchanges import generic


async def recv_loop(url: str, n: int, per_message: Callable[[str | bytes], object]) -> float:
    async with connect(url, max_size=None) as ws:
        await ws.send("go")
        count = 0
        start = time.perf_counter()
        try:
            while True:
                per_message(await ws.recv())
                count += 1
        except ConnectionClosed:
            pass
        elapsed = time.perf_counter() - start
    assert count == n, (count, n)
    return count / elapsed


async def bare(url: str, n: int) -> float:
    return await recv_loop(url, n, lambda message: None)


async def bare_validate(url: str, n: int) -> float:
    return await recv_loop(url, n, generic.Trade.model_validate_json)


async def full_feed(url: str, n: int, record: bool = False) -> float:
    spec = generic.spec(url=url,
                        connection=ConnectionConfig(heartbeat=HeartbeatConfig(enabled=False)))
    with tempfile.TemporaryDirectory(prefix="wsr-bench-") as folder:
        feed = Feed(spec, record_to=Path(folder) / "rec" if record else None)
        return await _measure_feed(feed, n)


async def recording_feed(url: str, n: int) -> float:
    return await full_feed(url, n, record=True)


async def _measure_feed(feed: Feed, n: int) -> float:
    done = asyncio.Event()
    feed.manager.on_disconnected(lambda *_: done.set())
    await feed.start()
    start = time.perf_counter()
    await done.wait()
    await feed.queue.join()
    if feed.recorder is not None:
        await feed.recorder.flush()  # everything on disk counts
    elapsed = time.perf_counter() - start
    await feed.stop()
    stats = feed.stats
    assert stats.ok == n, stats
    assert stats.dropped == 0, stats
    assert feed.frame("trade").height == n
    return n / elapsed


VARIANTS: dict[str, Callable[[str, int], Awaitable[float]]] = {
    "(a) bare websockets recv loop": bare,
    "(b) recv + model_validate_json": bare_validate,
    "(c) full Feed pipeline": full_feed,
    "(d) full Feed, recording to disk": recording_feed,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with running(args.messages) as url:
        results: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for round_ in range(args.rounds):
            for name, variant in VARIANTS.items():
                rate = asyncio.run(variant(url, args.messages))
                results[name].append(rate)
                print(f"round {round_ + 1}: {name:<34} {rate:>10,.0f} msgs/s", flush=True)
    baselines = results["(a) bare websockets recv loop"]
    print(f"\n{args.messages:,} messages, {args.rounds} rounds, Python {sys.version.split()[0]}")
    print("ratio: best against best; in brackets the median of per-round ratios, each")
    print("round's variant against that same round's bare loop (robust to machine drift)")
    print(f"{'variant':<34} {'best msgs/s':>11} {'us/msg':>7} {'ratio to (a)':>13}")
    recording_ratio = statistics.median(
        d / c for d, c in zip(results["(d) full Feed, recording to disk"],
                              results["(c) full Feed pipeline"], strict=True)
    )
    for name, rates in results.items():
        best = max(rates)
        paired = statistics.median(r / b for r, b in zip(rates, baselines, strict=True))
        print(f"{name:<34} {best:>11,.0f} {1e6 / best:>7.2f} {best / max(baselines):>8.2f} "
              f"[{paired:.2f}]")
    best_ratio = max(results["(d) full Feed, recording to disk"]) / max(
        results["(c) full Feed pipeline"])
    print(f"recording on vs off, (d)/(c): {best_ratio:.2f} best vs best, "
          f"{recording_ratio:.2f} median per round")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    main()
