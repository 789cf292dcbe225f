"""The per-message cost of sequence tracking, against the cheapest possible check.

In the same run (best of ``--rounds``), for ``--messages`` in-order numbers over 3 keys:

- ``SequenceTracker.observe`` (what the pipeline calls for every message of a sequenced channel);
- the pipeline's whole check (extractors, key, tracker) on generic trade messages;
- the baseline: a bare ``dict`` compare-and-store per message, the least any check can do.

Usage: python benchmarks/bench_sequence.py [--messages 300000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time

from wsresearch.exchanges import generic
from wsresearch.lowlevel import SequenceTracker
from wsresearch.pipeline import Pipeline

SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.messages
    keys = [SYMBOLS[i % 3] for i in range(n)]
    numbers = [i // 3 + 1 for i in range(n)]
    trades = [generic.Trade(symbol=k, seq=s, trade_id=i, price=1.0, size=1.0, side="buy", ts=0)
              for i, (k, s) in enumerate(zip(keys, numbers, strict=True))]
    best = {"dict": float("inf"), "observe": float("inf"), "feed": float("inf")}
    for _ in range(args.rounds):
        expected: dict[str, int] = {}
        start = time.perf_counter()
        for key, number in zip(keys, numbers, strict=True):
            if expected.get(key, number) == number:
                expected[key] = number + 1
        best["dict"] = min(best["dict"], time.perf_counter() - start)

        tracker = SequenceTracker()
        observe = tracker.observe
        start = time.perf_counter()
        for key, number in zip(keys, numbers, strict=True):
            observe("trade", "trade", key, number, 1, 0)
        best["observe"] = min(best["observe"], time.perf_counter() - start)
        assert tracker.counts["gap"] == 0

        pipeline = Pipeline(generic.spec(url="ws://127.0.0.1:1"))
        channel = pipeline.spec.channel("trade")
        value, key_of, group = channel.sequence, channel.sequence_key, channel.sequence_group_name
        assert value is not None
        observe = pipeline.sequences.observe
        start = time.perf_counter()
        for trade in trades:  # what the pipeline's batch loop does per sequenced message
            observe(group, "trade", None if key_of is None else key_of(trade), value(trade), 1, 0)
        best["feed"] = min(best["feed"], time.perf_counter() - start)
        assert pipeline.counts.sequence_gaps == 0
    base = best["dict"]
    for name, label in (("dict", "bare dict check (baseline)"),
                        ("observe", "SequenceTracker.observe"),
                        ("feed", "Feed sequence check")):
        print(f"{label:<30}{best[name] / n * 1e6:8.3f} us/msg   {best[name] / base:5.1f}x")


if __name__ == "__main__":
    main()
