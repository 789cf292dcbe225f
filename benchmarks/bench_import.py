"""What ``import wsresearch`` costs, against ``import polars``, in fresh interpreters.

A notebook's first cell pays for every module the package imports. The target:
``import wsresearch`` takes at most 1.3 times as long as ``import polars``,
the library every wsresearch user imports anyway. Names are resolved on first
use, so the bare import should cost little; ``from wsresearch import Feed``
(what a feed needs: polars, pydantic, websockets) is shown for scale.

Each statement runs in a new ``python -c`` process, ``--runs`` times,
interleaved (one of each per round, in a rotating order) so that a busy
machine slows them all alike; the figures are medians of the wall time of the
whole process, interpreter start-up included (``python -c pass`` shows it).
One warm-up round first fills the bytecode caches. ``--profile`` prints the
slowest imports of one statement, from ``python -X importtime``.

Usage: python benchmarks/bench_import.py [--runs 9] [--profile "import wsresearch"]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TARGET = 1.3
STATEMENTS = {
    "startup": "pass",
    "polars": "import polars",
    "wsresearch": "import wsresearch",
    "Feed": "from wsresearch import Feed",
    "cli": "import wsresearch.cli",  # what every command, --help included, starts with
}


def run_once(statement: str) -> float:
    """Seconds a fresh interpreter takes to run ``statement`` and exit."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - start


def measure(runs: int) -> dict[str, float]:
    """Median seconds per statement over ``runs`` interleaved rounds (after one warm-up)."""
    names = list(STATEMENTS)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs + 1):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in order:
            seconds = run_once(STATEMENTS[name])
            if round_:  # round 0 warms the bytecode caches
                times[name].append(seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def profile(statement: str, top: int = 15) -> None:
    """Print the ``top`` imports of ``statement`` by cumulative time (``-X importtime``)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", statement],
                            check=True, capture_output=True, text=True)
    rows = []
    for line in result.stderr.splitlines():
        # "import time: <self us> | <cumulative us> | <indented module name>"
        _self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        if cumulative_us.strip().isdigit():
            rows.append((int(cumulative_us), name.strip()))
    print(f"slowest imports of {statement!r} (cumulative ms, -X importtime):")
    for cumulative, name in sorted(rows, reverse=True)[:top]:
        print(f"  {cumulative / 1000:8.1f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="rounds, at least 7 (default 9)")
    parser.add_argument("--profile", metavar="STATEMENT", default=None,
                        help="also print the slowest imports of STATEMENT")
    args = parser.parse_args()
    if args.runs < 7:
        parser.error("--runs must be at least 7")
    medians = measure(args.runs)
    startup = medians["startup"]
    print(f"medians of {args.runs} fresh interpreters ({sys.executable}):")
    for name, statement in STATEMENTS.items():
        net = medians[name] - startup
        print(f"  {statement:<30} {medians[name] * 1000:7.1f} ms   (start-up excluded: "
              f"{net * 1000:6.1f} ms)")
    ratio = medians["wsresearch"] / medians["polars"]
    net_ratio = (medians["wsresearch"] - startup) / (medians["polars"] - startup)
    verdict = "within" if ratio <= TARGET else "OVER"
    print(f"import wsresearch / import polars: {ratio:.2f}x ({verdict} the {TARGET}x target); "
          f"start-up excluded: {net_ratio:.2f}x")
    if args.profile:
        profile(args.profile)


if __name__ == "__main__":
    main()
