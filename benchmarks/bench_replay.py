"""Replay throughput against bare batch validation of the same payloads, and reading speed.

Writes a recording of N simulator trade frames with the Recorder (no network), then
measures, in the same run (best of ``--rounds``):

- ``replay()`` of the recording into frames (complete mode): frames per second;
- the baseline: pydantic ``TypeAdapter(list[Trade]).validate_json`` on the same payloads
  in batches of 1,000 (validation alone, nothing kept);
- ``Recording.open(...).frames()``: rows per second read back from disk.

Usage: python benchmarks/bench_replay.py [--frames 300000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

from pydantic import TypeAdapter

from wsresearch import Recording, replay
from wsresearch.exchanges import generic
from wsresearch.lowlevel import Recorder
from wsresearch.testing import generic_frames


async def write_recording(path: Path, frames: list[str]) -> None:
    recorder = Recorder(path, source_url="ws://127.0.0.1:1", flush_interval=3600)
    await recorder.start()
    recorder.record("open", 1, data="ws://127.0.0.1:1", mono_ns=0, wall_ns=0)
    for n, frame in enumerate(frames):
        recorder.record_message(frame, 1, 1_000_000 * (n + 1), 1_700_000_000_000_000_000 + n)
        if n % 50_000 == 49_999:
            await recorder.flush()
    await recorder.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    frames = list(generic_frames(args.frames, seed=3))
    spec = generic.spec(url="ws://127.0.0.1:1")
    adapter = TypeAdapter(list[generic.Trade])
    batches = ["[" + ",".join(frames[i : i + 1000]) + "]" for i in range(0, len(frames), 1000)]
    best = {"replay": float("inf"), "batch": float("inf"), "read": float("inf")}
    with tempfile.TemporaryDirectory(prefix="wsr-bench-") as folder:
        path = Path(folder) / "rec"
        asyncio.run(write_recording(path, frames))
        for _ in range(args.rounds):
            start = time.perf_counter()
            result = replay(path, spec)
            best["replay"] = min(best["replay"], time.perf_counter() - start)
            assert result.frames["trade"].height == len(frames)
            start = time.perf_counter()
            for batch in batches:
                adapter.validate_json(batch)
            best["batch"] = min(best["batch"], time.perf_counter() - start)
            start = time.perf_counter()
            rows = Recording.open(path).frames().height
            best["read"] = min(best["read"], time.perf_counter() - start)
            assert rows == len(frames)
    n = len(frames)
    print(f"{n:,} frames, best of {args.rounds} rounds")
    print(f"replay() into frames            {n / best['replay']:>12,.0f} frames/s")
    print(f"TypeAdapter batch validation    {n / best['batch']:>12,.0f} frames/s")
    print(f"ratio replay / batch validation {best['batch'] / best['replay']:>12.2f}")
    print(f"Recording.frames() read         {n / best['read']:>12,.0f} rows/s")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # replayed staleness is not news here
    main()
