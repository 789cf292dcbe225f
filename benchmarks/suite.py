"""The benchmark suite: every figure a ratio to a baseline measured in the same run.

``make bench`` runs it. Each benchmark repeats for ``--rounds``; the table shows the median
and the min-max of the per-round ratios, and the target where there is one:

- import cost: ``import wsresearch`` against ``import polars``, each in fresh
  interpreters, interleaved (``benchmarks/bench_import.py``);
- live ingest: the full Feed (recording on, and off) against a bare websockets recv loop
  over the same flood from a server in another process (``--messages`` frames);
- recording on vs off;
- CPU per message at a fixed rate (``--rate`` msgs/s for ``--seconds``): process CPU seconds
  of the full Feed (recording on) against the bare loop on the same paced stream;
- replay of ``--messages`` recorded frames against pydantic batch validation of the same
  payloads (``TypeAdapter(list[Trade]).validate_json`` in batches of 1,000);
- the normalized ``trades`` table of that replay against the replay itself (normalizing is
  done when a table is asked for, column-wise, off the hot path), and per trade row;
- order books: levels applied per second by ``wsresearch.book.Book`` (top of book read
  after each message, as a researcher's book is) against the ``order-book`` library's loop
  doing the same, and against its writes alone; replay of a real book recording (Kraken v1,
  every checksum verified) with books against the same replay without; and replay of
  199,950 real Binance USD-M frames (book kept) in columns against through the models
  (``benchmarks/bench_books.py``);
- ``books_at`` at 1,000 and 10,000 times and at every trade of 299,950 real Binance frames
  against the replay alone, and every level of the Coinbase capture's deep books at 3,000
  times: its peak RSS over the rows' size (``benchmarks/bench_books_at.py``);
- ``wsresearch export --workers 2`` against ``--workers 1`` on 4 recordings of
  ``--messages / 2`` frames each (a process per recording at a time), the same on 4
  recordings of ``2 * --messages`` frames each (each worker's start, about half a second,
  then weighs a quarter as much), and one recording of ``4 * --messages`` frames over four
  connections exported by 2 processes against by 1 (split where connections begin);
- replay of 299,950 real Binance frames against cryptofeed 2.4.1's Binance handler and a
  plain read + ``orjson.loads`` of the same frames, each in a process of its own, the peers
  in their own venv (``benchmarks/bench_peers.py``; ``make bench`` creates the venv);
- replay of an hour of a live recording, 3,600 segments of 30 frames (a segment a flush, as
  a recorder with ``segment_events=1`` writes them), and the same hour as a recorder writes
  it by default (files grown to 9,990 events), against the same events in one segment; the
  hour of 3,600 compacted (``compact_recording``), and the time compacting it takes over one
  replay of it;
- peak RSS of ``export`` and ``report`` (each in a process of its own) against the
  recording's size on disk, for a recording of ``--messages`` frames and one three times
  as long: flat means the same peak for both (``benchmarks/bench_streaming.py``); and the
  same, export and report by the command line, for the real Binance book capture repeated
  to 300k and 900k frames (``--data book``: wide rows);
- ``Feed.frame()`` refresh after 10,000 new rows on a frame of 1M rows against the same on
  a frame of 10,000 rows (1.0 means the cost follows the new rows, not the total);
- memory: peak RSS of a feed with a slow consumer under a flood, ``DROP_OLDEST`` and
  ``BLOCK``, above the bare loop's peak in the same conditions (each in its own process),
  for the flood and for a flood three times as long: the same excess means memory is
  bounded by the queue, not by the flood;
- RSS growth over a run with a reconnect every 10 s (``--soak`` seconds, 300 by default).

Usage: python benchmarks/suite.py [--rounds 3] [--messages 300000] [--rate 20000]
       [--seconds 10] [--soak 300] [--flood 100000]
       [--only imports,live,cpu,replay,peers,normalize,books,booksat,workers,segments,
              streaming,refresh,memory,soak]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import bench_books  # noqa: E402
import bench_books_at  # noqa: E402
import bench_import  # noqa: E402
import bench_peers  # noqa: E402
import bench_streaming  # noqa: E402
from bench_pipeline import bare, full_feed, recv_loop  # noqa: E402
from flood_server import running  # noqa: E402

from wsresearch import Recording, replay  # noqa: E402
from wsresearch.exchanges import generic  # noqa: E402
from wsresearch.lowlevel import FrameStore  # noqa: E402
from wsresearch.testing import generic_frames  # noqa: E402


@dataclass
class Figure:
    """One row of the table: per-round values of a ratio."""

    name: str
    baseline: str
    target: str = ""
    values: list[float] = field(default_factory=list)
    unit: str = "x"

    def row(self) -> str:
        if not self.values:
            return f"{self.name:<44} {self.baseline:<34} {'-':>8}"
        mid, low, high = statistics.median(self.values), min(self.values), max(self.values)
        return (f"{self.name:<44} {self.baseline:<34} {mid:>8.2f} {low:>7.2f}-{high:<7.2f} "
                f"{self.unit:<5} {self.target}")


def live(args: argparse.Namespace, on: Figure, off: Figure, ratio: Figure) -> None:
    with running(args.messages) as url:
        for _ in range(args.rounds):
            base = asyncio.run(bare(url, args.messages))
            plain = asyncio.run(full_feed(url, args.messages))
            recording = asyncio.run(full_feed(url, args.messages, record=True))
            on.values.append(recording / base)
            off.values.append(plain / base)
            ratio.values.append(recording / plain)


def cpu(args: argparse.Namespace, figure: Figure, per_message: Figure) -> None:
    n = int(args.rate * args.seconds)
    with running(n, args.rate) as url:
        for _ in range(args.rounds):
            start = time.process_time()
            asyncio.run(recv_loop(url, n, lambda message: None))
            base = time.process_time() - start
            start = time.process_time()
            asyncio.run(full_feed(url, n, record=True))
            feed = time.process_time() - start
            figure.values.append(feed / base)
            per_message.values.append(feed / n * 1e6)


def replay_speed(args: argparse.Namespace, figure: Figure) -> None:
    frames = list(generic_frames(args.messages, seed=3))
    spec = generic.spec(url="ws://127.0.0.1:1")
    adapter = TypeAdapter(list[generic.Trade])
    batches = ["[" + ",".join(frames[i: i + 1000]) + "]" for i in range(0, len(frames), 1000)]
    with tempfile.TemporaryDirectory(prefix="wsr-bench-") as folder:
        recording = Recording.from_frames(Path(folder) / "rec", frames, spec=spec)
        for _ in range(args.rounds):
            start = time.perf_counter()
            replay(recording, spec)
            replayed = time.perf_counter() - start
            start = time.perf_counter()
            for batch in batches:
                adapter.validate_json(batch)
            validated = time.perf_counter() - start
            figure.values.append(validated / replayed)


def normalizing(args: argparse.Namespace, ratio: Figure, per_row: Figure) -> None:
    """What the normalized trades table costs against the replay that made the native rows."""
    frames = list(generic_frames(args.messages, seed=3))
    spec = generic.spec(url="ws://127.0.0.1:1")
    with tempfile.TemporaryDirectory(prefix="wsr-bench-") as folder:
        recording = Recording.from_frames(Path(folder) / "rec", frames, spec=spec)
        for _ in range(args.rounds):
            start = time.perf_counter()
            result = replay(recording, spec)
            replayed = time.perf_counter() - start
            start = time.perf_counter()
            table = result.normalized("trades")
            normalized = time.perf_counter() - start
            ratio.values.append(normalized / replayed)
            per_row.values.append(normalized / table.height * 1e6)


def workers(args: argparse.Namespace, figure: Figure, frames: int) -> None:
    """``wsresearch export --workers 2`` against ``--workers 1`` on 4 recordings of ``frames``."""
    spec = generic.spec(url="ws://127.0.0.1:1")
    with tempfile.TemporaryDirectory(prefix="wsr-bench-") as folder:
        root = Path(folder)
        dirs = [str(root / f"r{i}") for i in range(4)]
        for i, path in enumerate(dirs):
            Recording.from_frames(path, list(generic_frames(frames, seed=i)), spec=spec)

        def export(count: int, out: Path) -> float:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "wsresearch.cli", "export", *dirs,
                            "--out", str(out), "--workers", str(count)],
                           check=True, capture_output=True)
            return time.perf_counter() - start

        for round_ in range(args.rounds):
            one = export(1, root / f"one{round_}")
            two = export(2, root / f"two{round_}")
            figure.values.append(one / two)


def split(args: argparse.Namespace, figure: Figure) -> None:
    """One recording of four connections exported by 2 processes against by 1."""
    from wsresearch import export_parquet
    from wsresearch.recording.writer import Captured, write_events

    spec = generic.spec(url="ws://127.0.0.1:1")
    frames = args.messages * 4
    start = 1_700_000_000 * 10**9
    with tempfile.TemporaryDirectory(prefix="wsr-bench-") as folder:
        root = Path(folder)
        events = []
        for i, text in enumerate(generic_frames(frames, seed=3)):
            if i % (frames // 4) == 0:  # a reconnect every quarter, 10 ms between frames
                events.append(Captured("open", start + i * 10**7, spec.url))
            events.append(Captured("frame", start + i * 10**7, text))
        write_events(root / "rec", events, source_url=spec.url, origin=spec.origin)
        del events
        for round_ in range(args.rounds):
            began = time.perf_counter()
            export_parquet(root / "rec", None, root / f"one{round_}", normalized=True)
            one = time.perf_counter() - began
            began = time.perf_counter()
            export_parquet(root / "rec", None, root / f"two{round_}", normalized=True, workers=2)
            figure.values.append(one / (time.perf_counter() - began))


def segments(args: argparse.Namespace, figure: Figure, grown: Figure, compacted: Figure,
             compacting: Figure) -> None:
    """Replay of an hour of a live recording's segments against the same events in one.

    A recorder with ``segment_events=1`` writes a segment a flush (a second): 3,600 segments
    of 30 generic trades (an hour of a quiet feed), written as it cuts them, against the
    same events in one segment; the same hour as a recorder writes it by default, each
    file grown flush by flush to 9,990 events (333 flushes of 30: the next would pass
    10,000); then the hour of 3,600 compacted (``compact_recording``), and what compacting
    it costs against one replay of it as recorded.
    """
    from wsresearch import Recording, compact_recording, replay
    from wsresearch.recording.writer import Captured, write_events

    spec = generic.spec(url="ws://127.0.0.1:1")
    start = 1_700_000_000 * 10**9
    events = [Captured("open", start, spec.url)] + [
        Captured("frame", start + i * 33_333_333, text)
        for i, text in enumerate(generic_frames(108_000, seed=4))]
    with tempfile.TemporaryDirectory(prefix="wsr-bench-") as folder:
        root = Path(folder)
        for name, size in (("hour", 30), ("grown", 9_990), ("one", len(events) + 1)):
            write_events(root / name, events, source_url=spec.url, origin=spec.origin,
                         segment_events=size)

        def timed(name: str) -> float:
            began = time.perf_counter()
            replay(Recording.open(root / name), spec)
            return time.perf_counter() - began

        for round_ in range(args.rounds):
            hour, one = timed("hour"), timed("one")
            figure.values.append(one / hour)
            grown.values.append(one / timed("grown"))
            shutil.copytree(root / "hour", root / f"compacted{round_}")
            began = time.perf_counter()
            compact_recording(root / f"compacted{round_}")
            compacting.values.append((time.perf_counter() - began) / hour)
            compacted.values.append(one / timed(f"compacted{round_}"))


def peers(args: argparse.Namespace, figures: dict[str, Figure]) -> None:
    """Replay against cryptofeed's Binance handler and read + orjson, same frames."""
    found = bench_peers.measure(max(5, args.rounds), 50, bench_peers.PEERS)
    for name in ("cryptofeed", "orjson", "faulty"):
        figures[name].values.extend(found[name])
    figures["rate"].values.extend(v / 1000 for v in found["wsresearch_rate"])


def books_at_times(args: argparse.Namespace, figures: dict[str, Figure]) -> None:
    """books_at at many times against the replay alone, same frames, same round."""
    found = bench_books_at.measure(args.rounds, 50) | bench_books_at.measure_deep(args.rounds,
                                                                                  3_000)
    for name, values in found.items():
        key = name.split(" (")[0]  # "every trade (56,150)": the figure "every trade"
        if key in figures:
            figures[key].values.extend(values)


def streaming(args: argparse.Namespace, figures: dict[tuple[str, int], Figure]) -> None:
    """Peak RSS of export and report over the recording's size, at two lengths."""
    found = bench_streaming.measure(args.messages, ["export", "report", "cli-export",
                                                     "cli-report"])
    for (job, factor), f in found.items():
        figures[(job, factor)].values.append(f["peak_mb"] / f["disk_mb"])
        if f["rest_mb"] is not None:
            figures[(job, factor, "above")].values.append(  # type: ignore[index]
                f["peak_mb"] - f["rest_mb"])
    book = bench_streaming.measure(300_000, ["cli-export", "cli-report"], "book")
    for (job, factor), f in book.items():
        figures[("book", job, factor)].values.append(  # type: ignore[index]
            f["peak_mb"])


def refresh(args: argparse.Namespace, figure: Figure) -> None:
    trade = generic.Trade(symbol="BTC-USD", seq=1, trade_id=1, price=1.0, size=1.0,
                          side="buy", ts=0)

    fields = trade.__dict__

    def cost(total: int) -> float:
        store = FrameStore({"trade": generic.Trade}, batch_rows=10**9)
        store.extend("trade", [(fields, 1, i, i, None, None) for i in range(total)])
        store.frame("trade")
        store.extend("trade", [(fields, 1, i, i, None, None) for i in range(10_000)])
        start = time.perf_counter()
        store.frame("trade")
        return time.perf_counter() - start

    for _ in range(args.rounds):
        figure.values.append(cost(1_000_000) / cost(10_000))


def probe(*arguments: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(HERE / "memory_probe.py"), *arguments],
                         capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def memory(args: argparse.Namespace, figures: dict[tuple[str, int], Figure]) -> None:
    # One round: peak memory does not jitter like timings do, and each probe takes
    # n / 10,000 seconds behind its slow consumer.
    for factor in (1, 3):
        n = args.flood * factor
        with running(n) as url:
            for _ in range(1):
                base = probe("bare", url, str(n))["peak_mb"]
                for policy in ("drop_oldest", "block"):
                    peak = probe("flood", url, str(n), policy)["peak_mb"]
                    figures[(policy, factor)].values.append(peak - base)


def soak(args: argparse.Namespace, growth: Figure) -> None:
    result = probe("reconnects", str(args.soak))
    growth.values.append(result["rss_end_mb"] - result["rss_early_mb"])


def imports(args: argparse.Namespace, figure: Figure) -> None:
    """``import wsresearch`` against ``import polars``, each in fresh interpreters."""
    times = bench_import.measure(max(5, args.rounds))
    figure.values.append(times["wsresearch"] / times["polars"])


def books(args: argparse.Namespace, figures: dict[str, Figure], per_second: Figure,
          replayed: Figure, usdm: Figure, usdm_rate: Figure, futures: Figure,
          futures_rate: Figure, coinbase: Figure, coinbase_rate: Figure,
          captures: Figure, captures_rate: Figure) -> None:
    """Book levels per second against order-book's loops; replay with books against without."""
    found = bench_books.levels_per_second(args.rounds, 100_000)
    ours = found.pop("wsresearch Book")
    per_second.values.extend(v / 1e6 for v in ours)
    for name, values in found.items():
        figures[name].values.extend(a / b for a, b in zip(ours, values, strict=True))
    on, off = bench_books.replay_books(args.rounds)
    replayed.values.extend(b / a for a, b in zip(on, off, strict=True))
    for (columns, models, frames), ratio, rate in (
            (bench_books.usdm_replay(args.rounds), usdm, usdm_rate),
            (bench_books.kraken_futures_replay(args.rounds), futures, futures_rate),
            (bench_books.coinbase_replay(args.rounds), coinbase, coinbase_rate),
            (bench_books.captures_replay(args.rounds), captures, captures_rate)):
        ratio.values.extend(m / c for c, m in zip(columns, models, strict=True))
        rate.values.extend(frames / c / 1000 for c in columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--soak", type=float, default=300.0)
    parser.add_argument("--flood", type=int, default=100_000,
                        help="messages of the memory probes' flood (1x; 3x is the other)")
    parser.add_argument("--only",
                        default="imports,live,cpu,replay,peers,normalize,books,booksat,workers,"
                                "segments,streaming,refresh,memory,soak",
                        help="comma-separated steps to run (default: all)")
    args = parser.parse_args()
    on = Figure("live ingest, Feed recording", "bare websockets recv loop", ">= 0.6")
    off = Figure("live ingest, Feed not recording", "bare websockets recv loop")
    ratio = Figure("recording on / off", "the same Feed not recording", ">= 0.95")
    cpu_ratio = Figure(f"CPU at {args.rate:,.0f} msgs/s, Feed recording",
                       "bare recv loop CPU, same stream")
    cpu_us = Figure("  CPU per message, Feed recording", "(absolute)", unit="us")
    replayed = Figure("replay()", "TypeAdapter batch validation", ">= 0.6")
    refreshed = Figure("frame() after 10k new rows, 1M rows held", "same on 10k rows held",
                       "~1 (O(new rows))")
    memory_figures = {
        (policy, factor): Figure(
            f"peak RSS, slow consumer, {policy.upper()}, {factor}x flood",
            "above the bare loop's peak", "same for 1x and 3x", unit="MB")
        for policy in ("drop_oldest", "block") for factor in (1, 3)
    }
    growth = Figure(f"RSS growth, {args.soak:g} s, reconnect every 10 s", "RSS after 1/5",
                    "~0 (no leak)", unit="MB")
    imported = Figure("import wsresearch (fresh process)", "import polars (fresh process)",
                      "<= 1.3")
    normalized = Figure("normalized trades table", "the replay that made the rows")
    normalized_us = Figure("  per trade row", "(absolute)", unit="us")
    book_figures = {
        name: Figure("book levels per second", name)
        for name in ("order-book, top read per message", "order-book, writes only")}
    book_levels = Figure("  levels per second, wsresearch Book", "(absolute)", unit="M/s")
    book_replay = Figure("replay with books (Kraken v1 book1000)", "the same replay, no books")
    usdm_columns = Figure("USD-M replay, book kept, in columns", "the same through the models")
    usdm_rate = Figure("  USD-M frames replayed a second", "(absolute)", unit="k/s")
    futures_columns = Figure("Kraken Futures replay, books, in columns",
                             "the same through the models")
    futures_rate = Figure("  Kraken Futures frames replayed a second", "(absolute)", unit="k/s")
    coinbase_columns = Figure("Coinbase Exchange replay, books, in columns",
                              "the same through the models")
    coinbase_rate = Figure("  Coinbase frames replayed a second", "(absolute)", unit="k/s")
    captures_columns = Figure("Kraken Futures + Coinbase as recorded, cols",
                              "the same through the models")
    captures_rate = Figure("  frames of the two replayed a second", "(absolute)", unit="k/s")
    parallel = Figure("export --workers 2, 4 recordings", "the same with --workers 1",
                      ">= 1.7")
    parallel_long = Figure("export --workers 2, 4 recordings 4x as long",
                           "the same with --workers 1", ">= 1.7")
    split_figure = Figure("export --workers 2, one recording of 4 connections",
                          "the same by one process")
    segmented = Figure("replay, an hour in 3,600 segments (108k)", "the same events in one segment")
    grown = Figure("replay, the hour as recorded (11 files)", "the same events in one segment")
    compacted = Figure("replay, the hour compacted", "the same events in one segment")
    compacting = Figure("  compacting the hour", "one replay of it as recorded", unit="x")
    peer_figures = {
        "cryptofeed": Figure("replay(), 300k Binance frames", "cryptofeed 2.4.1 playback", ">= 3"),
        "orjson": Figure("replay(), 300k Binance frames", "read + orjson.loads", ">= 0.4"),
        "rate": Figure("  replay, Binance frames per second", "(absolute)", unit="k/s"),
        "faulty": Figure("replay, a duplicate every 5,000 frames", "the same replay without"),
    }
    at_figures = {
        name: Figure(f"books_at, {name}, 300k Binance frames", "the replay alone", unit="x")
        for name in ("1,000 times", "10,000 times", "every trade")}
    at_figures["every level, peak RSS / rows"] = Figure(
        "books_at, every level, 3,000 times, Coinbase", "the rows' size", unit="x")
    at_figures["every level"] = Figure(
        "  the same, its time", "the replay alone", unit="x")
    stream_figures: dict[tuple[Any, ...], Figure] = {}
    for job in ("export", "report"):
        for factor in (1, 3):
            stream_figures[(job, factor)] = Figure(
                f"{job} peak RSS, {factor}x recording", "recording size on disk", "<= 5",
                unit="x")
            stream_figures[(job, factor, "above")] = Figure(
                f"  {job} peak above rest, {factor}x", "(absolute)", "flat", unit="MB")
            stream_figures[(f"cli-{job}", factor)] = Figure(
                f"wsresearch {job} peak RSS, {factor}x", "recording size on disk", "<= 5",
                unit="x")
    for job in ("export", "report"):
        for factor in (1, 3):
            stream_figures[("book", f"cli-{job}", factor)] = Figure(
                f"wsresearch {job} peak, Binance book, {factor * 300}k", "(absolute)", "flat",
                unit="MB")
    steps = {
        "imports": ("import cost", lambda: imports(args, imported)),
        "live": ("live ingest", lambda: live(args, on, off, ratio)),
        "cpu": ("CPU at a fixed rate", lambda: cpu(args, cpu_ratio, cpu_us)),
        "replay": ("replay", lambda: replay_speed(args, replayed)),
        "normalize": ("normalized tables", lambda: normalizing(args, normalized, normalized_us)),
        "books": ("order books", lambda: books(args, book_figures, book_levels, book_replay,
                                               usdm_columns, usdm_rate, futures_columns,
                                               futures_rate, coinbase_columns,
                                               coinbase_rate, captures_columns,
                                               captures_rate)),
        "booksat": ("the book at many times", lambda: books_at_times(args, at_figures)),
        "workers": ("parallel export", lambda: (workers(args, parallel, args.messages // 2),
                                                workers(args, parallel_long, args.messages * 2),
                                                split(args, split_figure))),
        "segments": ("a live recording's segments",
                     lambda: segments(args, segmented, grown, compacted, compacting)),
        "peers": ("replay against peers", lambda: peers(args, peer_figures)),
        "streaming": ("export and report memory",
                      lambda: streaming(args, stream_figures)),  # type: ignore[arg-type]
        "refresh": ("frame refresh", lambda: refresh(args, refreshed)),
        "memory": ("memory under a flood", lambda: memory(args, memory_figures)),
        "soak": ("reconnect soak", lambda: soak(args, growth)),
    }
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(steps))
    if unknown:
        parser.error(f"unknown step(s) {unknown}; choose from {sorted(steps)}")
    for label, step in (steps[name] for name in chosen):
        began = time.perf_counter()
        step()
        print(f"{label}: {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    print(f"\nPython {sys.version.split()[0]}, {args.rounds} rounds; median and min-max of "
          "per-round ratios to the baseline measured in the same round")
    print(f"{'figure':<44} {'baseline':<34} {'median':>8} {'min-max':<15} {'unit':<5} target")
    for figure in (imported, on, off, ratio, cpu_ratio, cpu_us, replayed,
                   *peer_figures.values(), normalized,
                   normalized_us, *book_figures.values(), book_levels, book_replay,
                   usdm_columns, usdm_rate, futures_columns, futures_rate,
                   coinbase_columns, coinbase_rate, captures_columns, captures_rate,
                   *at_figures.values(), parallel,
                   parallel_long,
                   split_figure, segmented, grown, compacted, compacting, *stream_figures.values(),
                   refreshed,
                   *memory_figures.values(), growth):
        print(figure.row())


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    main()
