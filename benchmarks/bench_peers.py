"""Replay against cryptofeed 2.4.1's playback and a plain read + orjson loop, same Binance frames.

The input is the hftbacktest Binance spot BTCUSDT capture in ``data/`` (depth@100ms,
bookTicker, trades; 5,999 frames and its REST snapshot) repeated ``--copies`` times
(50: 299,950 frames) with update ids, trade ids and times shifted so every copy follows the
last without a gap. Trades are given aggTrade's shape, the trade channel cryptofeed
subscribes. Each tool reads its own storage of the same frames:

- wsresearch: ``replay()`` of a recording (Parquet) with ``binance.spec(["btcusdt"],
  ["depth", "bookTicker", "aggTrade"], depth_speed="100ms")``: validation, de-dup, sequence
  checks, the order book synced from the snapshot, rows as polars frames;
- cryptofeed 2.4.1: its Binance handler on each line of a text file in its raw format
  (``<time>: <message>``), keeping its L2 book (``benchmarks/peers/cryptofeed_worker.py``);
- read + ``orjson.loads`` of that text file, nothing kept;
- wsresearch again, on the same recording with a bookTicker sent twice about every 5,000
  frames (``--duplicate-every``): how much duplicates cost against the clean replay.

cryptofeed and orjson run in a venv of their own (``make bench-peers`` creates
``benchmarks/.peers-venv`` from ``benchmarks/peers/requirements.txt``), never in
wsresearch's; nothing reaches the network. Each variant runs in a fresh process that times
only its processing (imports and set-up excluded); the order rotates every round. Ratios
are same-round: wsresearch's rate over the peer's (and over its own, clean, for the
duplicates).

Usage: python benchmarks/bench_peers.py [--rounds 5] [--copies 50] [--duplicate-every 5000]
       [--python benchmarks/.peers-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "data" / "recordings" / "binance_hftbacktest_2024-08-08_spot_btcusdt"
PEERS = HERE / ".peers-venv" / "bin" / "python"


def build(folder: Path, copies: int, every: int = 5_000) -> tuple[Path, Path, Path, int]:
    """The recording, the text file, the snapshot file, and the number of frames."""
    from wsresearch import Recording
    from wsresearch.exchanges import binance
    from wsresearch.recording.writer import Captured, write_events

    source = Recording.open(SOURCE)
    frames = source.frames()
    snapshot = source.rest()["body"][0]
    texts = frames["data"].to_list()
    walls = frames["recv_wall_ns"].to_list()
    decoded = [json.loads(t) for t in texts]
    depth = [d["data"] for d in decoded if d["stream"].endswith("@depth@100ms")]
    trades = [d["data"] for d in decoded if d["stream"].endswith("@trade")]
    id_span = depth[-1]["u"] - depth[0]["U"] + 1
    trade_span = trades[-1]["t"] - trades[0]["t"] + 1
    time_span = walls[-1] - walls[0] + 1_000_000
    ms_span = time_span // 1_000_000
    spec = binance.spec(["btcusdt"], ["depth", "bookTicker", "aggTrade"], depth_speed="100ms")

    def shifted(message: dict[str, Any], k: int) -> str:
        stream, data = message["stream"], dict(message["data"])
        if stream.endswith("@trade"):
            t = data["t"] + k * trade_span
            stream = "btcusdt@aggTrade"
            data = {"e": "aggTrade", "E": data["E"] + k * ms_span, "s": data["s"], "a": t,
                    "p": data["p"], "q": data["q"], "f": t, "l": t,
                    "T": data["T"] + k * ms_span, "m": data["m"], "M": data["M"]}
        elif stream.endswith("@depth@100ms"):
            data.update(E=data["E"] + k * ms_span, U=data["U"] + k * id_span,
                        u=data["u"] + k * id_span)
        else:  # bookTicker
            data["u"] += k * id_span
        return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))

    recording, text, snapshot_file = folder / "recording", folder / "BINANCE.ws.1", \
        folder / "snapshot.json"
    snapshot_file.write_text(snapshot, encoding="utf-8")
    events: list[Captured] = [Captured("rest", walls[0] - 1_000_000, snapshot)]
    with text.open("w", encoding="utf-8") as out:
        for k in range(copies):
            for message, wall in zip(decoded, walls, strict=True):
                frame = shifted(message, k)
                at = wall + k * time_span
                events.append(Captured("frame", at, frame))
                out.write(f"{at / 1e9:.6f}: {frame}\n")
    write_events(recording, events, source_url=spec.url, origin=spec.origin)
    # The same with a bookTicker sent twice every `every` frames or so: a duplicate each.
    faulty: list[Captured] = []
    due = every
    for n, event in enumerate(events):
        faulty.append(event)
        if n >= due and '@bookTicker"' in str(event.data):
            faulty.append(event)
            due += every
    write_events(folder / "faulty", faulty, source_url=spec.url, origin=spec.origin)
    return recording, text, snapshot_file, len(events) - 1


def wsresearch_child(path: str) -> None:
    import time

    from wsresearch import Recording, replay
    from wsresearch.exchanges import binance

    spec = binance.spec(["btcusdt"], ["depth", "bookTicker", "aggTrade"], depth_speed="100ms")
    recording = Recording.open(path)
    began = time.perf_counter()
    result = replay(recording, spec)
    seconds = time.perf_counter() - began
    stats = result.stats
    if stats["invalid"] or stats["sequence_gaps"] or not result.book("BTCUSDT").valid:
        raise SystemExit(f"the replay did not go through cleanly: {stats}")
    print(json.dumps({"variant": "wsresearch", "seconds": seconds, "messages": stats["frames"]}))


def run(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def measure(rounds: int, copies: int, python: Path,
            every: int = 5_000) -> dict[str, list[float]]:
    """Per-round ratios: ``cryptofeed`` and ``orjson`` (wsresearch rate / theirs), and rates."""
    if not python.exists():
        raise SystemExit(f"{python} is missing: run `make bench-peers` (it creates the peers' "
                         "venv with cryptofeed 2.4.1 and orjson)")
    ratios: dict[str, list[float]] = {"cryptofeed": [], "orjson": [], "wsresearch_rate": [],
                                      "cryptofeed_rate": [], "faulty": []}
    with tempfile.TemporaryDirectory(prefix="wsr-peers-") as folder:
        recording, text, snapshot, frames = build(Path(folder), copies, every)
        print(f"{frames:,} frames", file=sys.stderr)
        variants = {
            "wsresearch": [sys.executable, str(Path(__file__).resolve()), "--child",
                           str(recording)],
            "cryptofeed": [str(python), str(HERE / "peers" / "cryptofeed_worker.py"), str(text),
                           str(snapshot), "cryptofeed"],
            "orjson": [str(python), str(HERE / "peers" / "cryptofeed_worker.py"), str(text),
                       str(snapshot), "orjson"],
            "with duplicates": [sys.executable, str(Path(__file__).resolve()), "--child",
                                str(Path(folder) / "faulty")],
        }
        names = list(variants)
        for round_ in range(rounds):
            order = names[round_ % len(names):] + names[:round_ % len(names)]
            rates = {}
            for name in order:
                found = run(variants[name])
                rates[name] = found["messages"] / found["seconds"]
            ratios["cryptofeed"].append(rates["wsresearch"] / rates["cryptofeed"])
            ratios["orjson"].append(rates["wsresearch"] / rates["orjson"])
            ratios["wsresearch_rate"].append(rates["wsresearch"])
            ratios["cryptofeed_rate"].append(rates["cryptofeed"])
            ratios["faulty"].append(rates["with duplicates"] / rates["wsresearch"])
            print(f"round {round_ + 1}: " + ", ".join(
                f"{name} {rate:,.0f}/s" for name, rate in rates.items()), file=sys.stderr)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument("--python", type=Path, default=PEERS)
    parser.add_argument("--duplicate-every", type=int, default=5_000,
                        help="frames between two duplicates of the last variant")
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child:
        wsresearch_child(args.child)
        return
    ratios = measure(args.rounds, args.copies, args.python, args.duplicate_every)
    for name, values in ratios.items():
        print(f"{name:<16} median {statistics.median(values):>10.3f}  "
              f"min-max {min(values):.3f}-{max(values):.3f}")


if __name__ == "__main__":
    main()
