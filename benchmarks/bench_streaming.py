"""Peak memory of export and report against the recording's size on disk, at two lengths.

Builds recordings of ``--frames`` and three times as many frames (no network): with
``--data generic``, simulator trades 1 ms apart; with ``--data book``, the real Binance spot
capture of ``data/recordings`` (trade, bookTicker and depth, its order book synced from its
REST snapshot) repeated, each copy a connection of its own, 10 minutes after the one
before. Book rows are wide (a depth update's levels), which a row group bounded in rows
alone let grow. Each job runs in a process of its own, which reports its peak RSS
(``VmHWM``) and its RSS once wsresearch is imported and the recording opened (``rest``):

- ``export``: ``export_parquet(normalized=True)``;
- ``report``: ``quality_report()``;
- ``export+report``: ``export_with_report(normalized=True)``;
- ``replay``: ``replay()``, which holds its output frames (for comparison);
- ``cli-export``, ``cli-report``: the same export and report as the command line runs
  them (``wsresearch export --normalized``, ``wsresearch report``), whose process keeps
  polars' allocator to one arena (``wsresearch._allocator``). Their ``rest`` is not
  measured: the command imports polars only once it runs.

Flat means the peak above rest is the same for both lengths: the memory is bounded by the
chunk size, not by the recording.

Usage: python benchmarks/bench_streaming.py [--frames 500000] [--jobs export,report]
                                            [--data generic|book]
       python benchmarks/bench_streaming.py --child JOB RECORDING OUT
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
JOBS = ("export", "report", "export+report", "replay", "cli-export", "cli-report")
BOOK_SOURCE = HERE.parent / "data" / "recordings" / "binance_hftbacktest_2024-08-08_spot_btcusdt"


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(job: str, path: str, out: str) -> None:
    if job.startswith("cli-"):
        from wsresearch.cli import main

        argv = (["export", path, "--out", out, "--normalized"] if job == "cli-export"
                else ["report", path])
        if main(argv) != 0:
            raise SystemExit(f"wsresearch {argv[0]} failed")
        print(json.dumps({"rest_mb": None, "peak_mb": rss_mb("VmHWM")}))
        return
    from wsresearch import Recording, export_parquet, quality_report, replay
    from wsresearch.exchanges import generic
    from wsresearch.export import export_with_report

    recording = Recording.open(path)
    # A book recording rebuilds its own spec (the adapter's, from its manifest).
    spec = generic.spec(url="ws://127.0.0.1:1") if recording.manifest.spec_origin is None else None
    rest = rss_mb("VmRSS")
    if job == "export":
        export_parquet(recording, spec, out, normalized=True)
    elif job == "report":
        quality_report(recording, spec)
    elif job == "export+report":
        export_with_report(recording, spec, out, normalized=True)
    else:
        replay(recording, spec)
    print(json.dumps({"rest_mb": rest, "peak_mb": rss_mb("VmHWM")}))


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def build(path: Path, frames: int) -> None:
    from wsresearch import Recording
    from wsresearch.exchanges import generic
    from wsresearch.testing import generic_frames

    start_ns = 1_700_000_000_000_000_000
    Recording.from_frames(path, ((start_ns + i * 1_000_000, f) for i, f in
                                 enumerate(generic_frames(frames, seed=5))),
                          spec=generic.spec(url="ws://127.0.0.1:1"))


def build_book(path: Path, frames: int) -> None:
    """The Binance capture repeated to about ``frames`` frames, a connection per copy."""
    import polars as pl

    from wsresearch import Recording
    from wsresearch.recording.writer import Captured, write_events

    source = Recording.open(BOOK_SOURCE)
    events = pl.concat(list(source.chunks(100_000))).filter(
        pl.col("kind").is_in(["frame", "sent", "rest"]))
    first = int(events["wall_ns"].min())
    step = int(events["wall_ns"].max()) - first + 600 * 1_000_000_000
    rows = events.select("kind", "wall_ns", "data", "stream").rows()
    copies = max(1, round(frames / events.filter(pl.col("kind") == "frame").height))
    url = source.manifest.source_url

    def tiled() -> Any:
        for copy in range(copies):
            yield Captured("open", first + copy * step, url)
            for kind, wall_ns, data, stream in rows:
                yield Captured(kind, wall_ns + copy * step, data,
                               stream if kind == "rest" else None)

    manifest = source.manifest
    write_events(path, tiled(), source_url=url, channels=manifest.channels,
                 origin=manifest.spec_origin)


def measure(frames: int, jobs: list[str], data: str = "generic"
            ) -> dict[tuple[str, int], dict[str, Any]]:
    """Per job and length factor: disk MB, rest MB, peak MB."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="wsr-bench-") as folder:
        root = Path(folder)
        for factor in (1, 3):
            recording = root / f"rec{factor}"
            (build_book if data == "book" else build)(recording, frames * factor)
            for job in jobs:
                out = root / f"out-{job}-{factor}"
                result = subprocess.run(
                    [sys.executable, str(HERE / "bench_streaming.py"), "--child", job,
                     str(recording), str(out)], capture_output=True, text=True, check=True)
                figures = json.loads(result.stdout.strip().splitlines()[-1])
                found[(job, factor)] = {"disk_mb": disk_mb(recording), **figures}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500_000)
    parser.add_argument("--jobs", default=",".join(JOBS))
    parser.add_argument("--data", choices=("generic", "book"), default="generic")
    parser.add_argument("--child", nargs=3, metavar=("JOB", "RECORDING", "OUT"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    jobs = [job for job in args.jobs.split(",") if job]
    found = measure(args.frames, jobs, args.data)
    print(f"{'job':<14} {'frames':>10} {'disk MB':>8} {'rest MB':>8} {'peak MB':>8} "
          f"{'peak-rest / disk':>17} {'peak / disk':>12}")
    for (job, factor), f in found.items():
        rest, above = "-", "-"
        if f["rest_mb"] is not None:
            rest = f"{f['rest_mb']:.0f}"
            above = f"{(f['peak_mb'] - f['rest_mb']) / f['disk_mb']:.2f}"
        print(f"{job:<14} {args.frames * factor:>10,} {f['disk_mb']:>8.1f} {rest:>8} "
              f"{f['peak_mb']:>8.0f} {above:>17} {f['peak_mb'] / f['disk_mb']:>12.2f}")


if __name__ == "__main__":
    main()
