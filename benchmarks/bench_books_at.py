"""The order book at many times (``books_at``) against the replay that reads them.

The input is ``bench_peers``' recording: the hftbacktest Binance spot BTCUSDT capture in
``data/`` repeated ``--copies`` times (50: 299,950 frames), its book synced from the REST
snapshot. Each round, in turn, in one process: ``replay()`` of it, then ``books_at`` at
1,000 and 10,000 times spread evenly over the recording, and at the receive time of every
trade (the book as each trade printed), 10 levels a side. The figure is each one's time
over the replay's in the same round: what reading the books costs on top of the replay.

Usage: python benchmarks/bench_books_at.py [--rounds 5] [--copies 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import bench_peers
import polars as pl

from wsresearch import Recording, books_at, replay
from wsresearch.exchanges import binance

SPEC = binance.spec(["btcusdt"], ["depth", "bookTicker", "aggTrade"], depth_speed="100ms")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--copies", type=int, default=50)
    args = parser.parse_args()
    for name, values in measure(args.rounds, args.copies).items():
        unit = "s" if name.endswith(" s") else "x the replay"
        print(f"{name:<32} median {statistics.median(values):8.2f} "
              f"({min(values):.2f}-{max(values):.2f}) {unit}")


if __name__ == "__main__":
    main()
