"""Instructions per message, counted by valgrind: the pipeline's cost without the machine's noise.

Wall-clock ratios on a shared machine swing by a third between rounds; the number of
machine instructions a run executes does not (to a few tenths of a percent). This script
runs each workload under ``valgrind --tool=callgrind`` twice, at two sizes, and divides
the difference in instructions by the difference in messages, so start-up, imports and
set-up cancel out. Instructions are not time (cache misses and branch mispredictions are
not counted) but they show, deterministically, where the interpreter's work goes.

Figures:

- live, client process only (the flood server runs natively in its own process): a bare
  ``websockets`` recv loop, the same plus ``model_validate_json``, the full ``Feed``, and
  the ``Feed`` recording;
- replay: ``replay()`` of a recording against ``TypeAdapter(list[Trade]).validate_json``
  in batches of 1,000;
- stages of ``Pipeline.process`` (no network): the trade model's pydantic validation alone, the
  parser's ``parse_batch``, the whole ``process``, and ``process`` without each of its
  stages in turn (the difference is that stage's cost).

Usage: python benchmarks/instructions.py [--small 5000] [--large 25000]
Needs valgrind; says so and exits if it is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

_WARM = 12_000  # stage runs: messages before the measured ones (caches full, as live)
_STAGES = ("validate", "parse_batch", "process", "process-nodedupe", "process-nostore",
           "process-nosequence", "process-noexchangetime")


def child(mode: str, n: int, path: str) -> None:
    """The measured workload, run under valgrind by the parent."""
    if mode in ("bare", "validate-live", "feed", "feed-recording"):
        import bench_pipeline
        from flood_server import running

        run = {
            "bare": lambda url: bench_pipeline.bare(url, n),
            "validate-live": lambda url: bench_pipeline.bare_validate(url, n),
            "feed": lambda url: bench_pipeline.full_feed(url, n),
            "feed-recording": lambda url: bench_pipeline.full_feed(url, n, record=True),
        }[mode]
        with running(n) as url:
            asyncio.run(run(url))
    elif mode in ("replay", "replay-read"):
        from wsresearch import Recording, replay
        from wsresearch.exchanges import generic

        recording = Recording.open(path)
        if mode == "replay":
            replay(recording, generic.spec(url="ws://127.0.0.1:1"))
        else:
            recording.events()
    elif mode == "batch-validation":
        from pydantic import TypeAdapter

        from wsresearch.exchanges import generic
        from wsresearch.testing import generic_frames

        frames = list(generic_frames(int(path), seed=3))  # as many at both sizes
        adapter = TypeAdapter(list[generic.Trade])
        for start in range(0, n, 1000):
            adapter.validate_json("[" + ",".join(frames[start:start + 1000]) + "]")
    else:
        stage(mode, n, measure=path == "measure")


def stage(mode: str, n: int, measure: bool) -> None:
    """``_WARM`` messages through one stage, then ``n`` more if ``measure``."""
    from wsresearch.exchanges import generic
    from wsresearch.pipeline import Pipeline
    from wsresearch.testing import generic_frames

    frames = list(generic_frames(_WARM + n, seed=11))
    items = [(frame, 1, i, i, -1) for i, frame in enumerate(frames)]
    spec = generic.spec(url="ws://127.0.0.1:1")
    # A stage is knocked out through the spec, as a user would: the pipeline then
    # skips it. The difference to "process" is that stage's cost.
    knocked = {"process-nodedupe": "dedupe_key", "process-nosequence": "sequence",
               "process-noexchangetime": "exchange_time"}.get(mode)
    if knocked is not None:
        spec = spec.replace(channels=[c.model_copy(update={knocked: None})
                                      for c in spec.channels])
    # "process-nostore" keeps no rows (max_rows=0): the rows are still built and
    # handed over, but never converted to columns.
    pipeline = Pipeline(spec, max_rows=0 if mode == "process-nostore" else None)
    pipeline.open_generation(1)
    validate = generic.Trade.__pydantic_validator__.validate_json

    def run(part: list[tuple[str, int, int, int, int]]) -> None:
        for start in range(0, len(part), 64):  # the live reader's bursts
            batch = part[start:start + 64]
            if mode == "validate":
                for item in batch:
                    validate(item[0])
            elif mode == "parse_batch":
                pipeline.parser.parse_batch([i[0] for i in batch], [i[2] for i in batch])
            else:
                pipeline.process(batch)
        pipeline.frames  # noqa: B018  (builds the frames: part of the cost)

    run(items[:_WARM])
    if measure:
        run(items[_WARM:])


def instructions(mode: str, n: int, path: str = "") -> int:
    """Instructions valgrind counted for ``child(mode, n, path)``."""
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, __file__, "--child", mode, str(n), path],
        capture_output=True, text=True, check=True,
    )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind for {mode}:\n{result.stderr}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=5_000)
    parser.add_argument("--large", type=int, default=25_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, n, path = args.child
        child(mode, int(n), path)
        return
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: no instruction counts (apt install valgrind)")
        return
    small, large = args.small, args.large
    with tempfile.TemporaryDirectory(prefix="wsr-instructions-") as folder:
        recording = str(Path(folder) / "rec")
        from bench_replay import write_recording

        from wsresearch.testing import generic_frames

        asyncio.run(write_recording(Path(recording), list(generic_frames(large, seed=3))))
        jobs: dict[str, tuple[tuple[str, int, str], tuple[str, int, str], int]] = {
            name: ((name, small, str(large)), (name, large, str(large)), large - small)
            for name in ("bare", "validate-live", "feed", "feed-recording", "batch-validation")
        }
        jobs["replay"] = (("replay-read", large, recording), ("replay", large, recording), large)
        for name in _STAGES:
            jobs[name] = ((name, large, "warm"), (name, large, "measure"), large)
        with ThreadPoolExecutor(2) as pool:
            counts = {name: (pool.submit(instructions, *low), pool.submit(instructions, *high), n)
                      for name, (low, high, n) in jobs.items()}
            per = {name: (high.result() - low.result()) / n
                   for name, (low, high, n) in counts.items()}
    print("instructions per message (valgrind callgrind, difference of two run sizes)")
    rows = [
        ("live: bare websockets recv loop", "bare", None),
        ("live: recv + model_validate_json", "validate-live", "bare"),
        ("live: full Feed", "feed", "bare"),
        ("live: full Feed recording", "feed-recording", "bare"),
        ("recording on / off", "feed-recording", "feed"),
        ("replay()", "replay", "batch-validation"),
        ("  TypeAdapter batch validation", "batch-validation", None),
        ("Pipeline.process (no network)", "process", None),
        ("  pydantic validation of the trade model", "validate", None),
        ("  MessageParser.parse_batch", "parse_batch", None),
    ]
    print(f"{'figure':<40} {'instr/msg':>10} {'ratio':>14}")
    for label, name, baseline in rows:
        ratio = "" if baseline is None else f"{per[baseline] / per[name]:.2f} of {baseline}"
        print(f"{label:<40} {per[name]:>10,.0f} {ratio:>14}")
    for name in _STAGES[3:]:
        stage_name = name.removeprefix("process-no")
        print(f"{'  stage: ' + stage_name:<40} {per['process'] - per[name]:>10,.0f}")


if __name__ == "__main__":
    main()
