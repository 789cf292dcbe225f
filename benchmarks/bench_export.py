"""Export and feed-quality analysis of a large recording, and reading it back, against replay.

Builds a recording of ``--frames`` simulator trade frames (1 ms apart; no network), then,
in the same run (best of ``--rounds``):

- ``replay()`` of it: the baseline, since an export replays first;
- ``export_parquet()`` into a fresh dataset: seconds and rows/s, and its ratio to replay;
- ``quality_report()`` (which replays too): seconds and rows/s, and its ratio to replay;
- ``load_dataset(...).collect()`` and ``merge_events(...).collect()``: rows/s read back.

Usage: python benchmarks/bench_export.py [--frames 1000000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

from wsresearch import (
    Recording,
    export_parquet,
    load_dataset,
    merge_events,
    quality_report,
    replay,
)
from wsresearch.exchanges import generic
from wsresearch.testing import generic_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    n = args.frames
    spec = generic.spec(url="ws://127.0.0.1:1")
    start_ns = 1_700_000_000_000_000_000
    with tempfile.TemporaryDirectory(prefix="wsr-bench-") as folder:
        root = Path(folder)
        made = time.perf_counter()
        recording = Recording.from_frames(
            root / "rec", ((start_ns + i * 1_000_000, f) for i, f in
                           enumerate(generic_frames(n, seed=5))), spec=spec)
        print(f"{n:,} frames recorded in {time.perf_counter() - made:.1f} s")
        best = {"replay": float("inf"), "export": float("inf"), "quality": float("inf"),
                "load": float("inf"), "merge": float("inf")}
        rows = 0
        for _ in range(args.rounds):
            began = time.perf_counter()
            replay(recording, spec)
            best["replay"] = min(best["replay"], time.perf_counter() - began)
            shutil.rmtree(root / "ds", ignore_errors=True)
            began = time.perf_counter()
            summary = export_parquet(recording, spec, root / "ds")
            best["export"] = min(best["export"], time.perf_counter() - began)
            rows = sum(summary.rows.values())
            began = time.perf_counter()
            quality_report(recording, spec)
            best["quality"] = min(best["quality"], time.perf_counter() - began)
            began = time.perf_counter()
            assert load_dataset(root / "ds").collect().height == rows
            best["load"] = min(best["load"], time.perf_counter() - began)
            began = time.perf_counter()
            assert merge_events(root / "ds").collect().height == rows
            best["merge"] = min(best["merge"], time.perf_counter() - began)
    print(f"best of {args.rounds} rounds; {rows:,} rows")
    for name, label in (("replay", "replay() (baseline)"), ("export", "export_parquet()"),
                        ("quality", "quality_report()"),
                        ("load", "load_dataset().collect()"),
                        ("merge", "merge_events().collect()")):
        print(f"{label:<26}{best[name]:8.2f} s {rows / best[name]:>12,.0f} rows/s")
    print(f"export / replay time: {best['export'] / best['replay']:.2f}; "
          f"quality_report / replay time: {best['quality'] / best['replay']:.2f}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # replayed staleness is not news here
    main()
