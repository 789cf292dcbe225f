"""Write cost and size per event of candidate recording formats, on real Binance frames.

Each candidate appends the same event stream (real frames from
``data/binance/...first6000.jsonl``, repeated to 30,000 events, each with ``seq``,
``generation``, ``mono_ns``, ``wall_ns``, ``kind`` and the raw ``data``) in flushes of
1,000 events, as a recorder with a one-second flush interval would at 1,000 msgs/s. It
reports microseconds per event to encode and write (best of three; fsync excluded, it is
the same for all), bytes per event on disk, and the time polars takes to read it all back.

Usage: python benchmarks/bench_recording_formats.py
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "binance" / (
    "hftbacktest_2024-08-08_spot_btcusdt_depth100ms_bookTicker_trade_first6000.jsonl"
)
EVENTS = 30_000
FLUSH = 1_000


def events() -> list[dict[str, object]]:
    frames = SAMPLE.read_text().splitlines()
    out = []
    mono, wall = 1_000_000_000, 1_723_161_253_937_085_768
    for seq in range(EVENTS):
        mono += 250_000
        wall += 250_000
        out.append({"seq": seq, "generation": 1, "mono_ns": mono, "wall_ns": wall,
                    "kind": "frame", "data": frames[seq % len(frames)]})
    return out


def batches(evs: list[dict[str, object]]) -> list[list[dict[str, object]]]:
    return [evs[i : i + FLUSH] for i in range(0, len(evs), FLUSH)]


def ndjson(out: Path, parts: list[list[dict[str, object]]]) -> None:
    with open(out / "events.ndjson", "w", encoding="utf-8") as f:
        for part in parts:
            f.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in part))
            f.flush()


def ndjson_gzip(level: int) -> Callable[[Path, list[list[dict[str, object]]]], None]:
    def write(out: Path, parts: list[list[dict[str, object]]]) -> None:
        with open(out / "events.ndjson.gz", "wb") as f:
            for part in parts:  # one gzip member per flush: a crash tears at most the last
                text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in part)
                f.write(gzip.compress(text.encode(), compresslevel=level))
                f.flush()
    return write


def frame_of(part: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(part, schema={"seq": pl.Int64, "generation": pl.Int64,
                                      "mono_ns": pl.Int64, "wall_ns": pl.Int64,
                                      "kind": pl.String, "data": pl.String})


def ipc(compression: str) -> Callable[[Path, list[list[dict[str, object]]]], None]:
    def write(out: Path, parts: list[list[dict[str, object]]]) -> None:
        for n, part in enumerate(parts):  # one file per flush: each complete on its own
            frame_of(part).write_ipc(
                out / f"{n:06d}.arrow", compression=compression  # type: ignore[arg-type]
            )
    return write


def parquet(out: Path, parts: list[list[dict[str, object]]]) -> None:
    for n, part in enumerate(parts):
        frame_of(part).write_parquet(out / f"{n:06d}.parquet", compression="zstd")


def read_back(out: Path) -> int:
    files = sorted(out.iterdir())
    name = files[0].name
    if name.endswith(".ndjson"):
        return pl.read_ndjson(files[0]).height
    if name.endswith(".gz"):
        return pl.read_ndjson(gzip.decompress(files[0].read_bytes())).height
    if name.endswith(".arrow"):
        return pl.concat([pl.read_ipc(f) for f in files]).height
    return pl.read_parquet(out / "*.parquet").height


CANDIDATES = {
    "NDJSON": ndjson,
    "NDJSON + gzip -1 (member per flush)": ndjson_gzip(1),
    "NDJSON + gzip -6 (member per flush)": ndjson_gzip(6),
    "Arrow IPC, uncompressed (file per flush)": ipc("uncompressed"),
    "Arrow IPC, lz4 (file per flush)": ipc("lz4"),
    "Arrow IPC, zstd (file per flush)": ipc("zstd"),
    "Parquet, zstd (file per flush)": parquet,
}


def main() -> None:
    parts = batches(events())
    raw = sum(len(str(e["data"])) for part in parts for e in part) / EVENTS
    print(f"{EVENTS:,} events, flushes of {FLUSH:,}; raw frame text {raw:.0f} B/event on average")
    print(f"{'format':<42} {'write us/event':>14} {'bytes/event':>12} {'read ms':>8}")
    for name, write in CANDIDATES.items():
        best, size, read_ms = float("inf"), 0, 0.0
        for _ in range(3):
            out = Path(tempfile.mkdtemp(prefix="wsr-bench-"))
            try:
                start = time.perf_counter()
                write(out, parts)
                best = min(best, time.perf_counter() - start)
                size = sum(f.stat().st_size for f in out.iterdir())
                start = time.perf_counter()
                assert read_back(out) == EVENTS
                read_ms = (time.perf_counter() - start) * 1e3
            finally:
                shutil.rmtree(out)
        print(f"{name:<42} {best / EVENTS * 1e6:>14.2f} {size / EVENTS:>12.1f} {read_ms:>8.1f}")


if __name__ == "__main__":
    main()
