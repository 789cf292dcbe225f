"""The order book at many times (``books_at``) against the replay that reads them.

The input is ``bench_peers``' recording: the hftbacktest Binance spot BTCUSDT capture in
``data/`` repeated ``--copies`` times (50: 299,950 frames), its book synced from the REST
snapshot. Each round, in turn, in one process: ``replay()`` of it, then ``books_at`` at
1,000 and 10,000 times spread evenly over the recording, and at the receive time of every
trade (the book as each trade printed), 10 levels a side. The figure is each one's time
over the replay's in the same round: what reading the books costs on top of the replay.

Then every level (``depth=None``) of the Coinbase Exchange capture's deep books (about
8,000 levels a book) at ``--deep`` times spread evenly over it, in a process of its own:
its peak RSS over the size of the rows it returns (``DataFrame.estimated_size``), and its
time over the replay's.

Usage: python benchmarks/bench_books_at.py [--rounds 5] [--copies 50] [--deep 3000]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_peers
import polars as pl

from wsresearch import Recording, books_at, replay
from wsresearch.exchanges import binance

SPEC = binance.spec(["btcusdt"], ["depth", "bookTicker", "aggTrade"], depth_speed="100ms")
DEEP = (Path(__file__).resolve().parent.parent / "data" / "recordings"
        / "coinbase_cryptofeed_2021-04-17_exchange_level2_ticker_matches")


def measure(rounds: int, copies: int) -> dict[str, list[float]]:
    """Per round, each ``books_at``'s time over the replay's, and the seconds of each."""
    found: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="wsr-books-at-") as folder:
        path, _, _, frames = bench_peers.build(Path(folder), copies)
        recording = Recording.open(path)
        every = recording.frames()
        walls = every["recv_wall_ns"]
        trades = every.filter(pl.col("data").str.contains('@aggTrade"', literal=True))[
            "recv_wall_ns"]
        first, last = int(walls[0]), int(walls[-1])
        times = {f"{n:,} times": pl.int_range(n, eager=True) * ((last - first) // n) + first
                 for n in (1_000, 10_000)}
        times[f"every trade ({trades.len():,})"] = trades
        for _ in range(rounds):
            began = time.perf_counter()
            replay(recording, SPEC)
            alone = time.perf_counter() - began
            found.setdefault("replay s", []).append(alone)
            for name, at in times.items():
                began = time.perf_counter()
                rows = books_at(recording, at, SPEC)
                seconds = time.perf_counter() - began
                if rows.height != at.n_unique():
                    raise SystemExit(f"{name}: {rows.height} rows for {at.n_unique()} times")
                found.setdefault(name, []).append(seconds / alone)
                found.setdefault(f"{name} s", []).append(seconds)
    print(f"{frames:,} frames")
    return found


def deep(count: int) -> dict[str, float]:
    """Every level of the Coinbase books at ``count`` times, in this process (fresh)."""
    recording = Recording.open(DEEP)
    walls = recording.frames()["recv_wall_ns"]
    first, last = int(walls.min()), int(walls.max())
    at = pl.int_range(count, eager=True) * ((last - first) // count) + first
    began = time.perf_counter()
    replay(recording)
    alone = time.perf_counter() - began
    began = time.perf_counter()
    rows = books_at(recording, at, depth=None)
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": seconds, "replay": alone, "peak": peak,
            "size": rows.estimated_size(), "levels": int(rows.select(
                pl.col("bids").list.len().sum() + pl.col("asks").list.len().sum()).item())}


def measure_deep(rounds: int, count: int) -> dict[str, list[float]]:
    """Per round, in a fresh process: peak RSS over the rows' size, and time over the replay's."""
    found: dict[str, list[float]] = {}
    for _ in range(rounds):
        probe = subprocess.run([sys.executable, __file__, "--deep-probe", str(count)],
                               check=True, capture_output=True, text=True)
        one = json.loads(probe.stdout)
        found.setdefault("every level, peak RSS / rows", []).append(one["peak"] / one["size"])
        found.setdefault("every level", []).append(one["seconds"] / one["replay"])
        found.setdefault("every level s", []).append(one["seconds"])
        found.setdefault("every level, rows MB", []).append(one["size"] / 1e6)
    print(f"every level at {count:,} times: {one['levels']:,} levels")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument("--deep", type=int, default=3_000)
    parser.add_argument("--deep-probe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.deep_probe is not None:
        print(json.dumps(deep(args.deep_probe)))
        return
    found = measure(args.rounds, args.copies) | measure_deep(args.rounds, args.deep)
    for name, values in found.items():
        unit = ("s" if name.endswith(" s") else "x" if "/" in name else "MB"
                if name.endswith("MB") else "x the replay")
        print(f"{name:<32} median {statistics.median(values):8.2f} "
              f"({min(values):.2f}-{max(values):.2f}) {unit}")


if __name__ == "__main__":
    main()
