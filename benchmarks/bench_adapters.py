"""Each exchange adapter on the real captures in data/: replay throughput against decoding alone.

For every capture, the frames become a recording once (``Recording.from_frames``), then,
in the same run (best of ``--rounds``):

- ``replay()`` through the adapter's spec (decode, route, validate, de-dup, sequence
  tracking, health, rows into polars): frames per second;
- the baseline: ``pydantic_core.from_json`` of the same frames, decoding only.

The ratio replay / decoding says how much of an adapter's cost is its models and the
pipeline rather than JSON.

Usage: python benchmarks/bench_adapters.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic_core import from_json

from wsresearch import Recording, replay
from wsresearch.exchanges import binance, bybit, coinbase, kraken, okx

DATA = Path(__file__).resolve().parent.parent / "data"

CAPTURES: list[tuple[str, str, Any]] = [
    ("binance spot", "binance/hftbacktest_2024-08-08_spot_btcusdt_depth100ms_bookTicker_trade"
     "_first6000.jsonl", binance.spec(channels=list(binance.CHANNELS))),
    ("binance usdm", "binance/hftbacktest_2024-08-08_usdm_btcusdt_depth0ms_bookTicker_trade"
     "_first4000.jsonl.gz", binance.spec(channels=list(binance.CHANNELS), market="usdm",
                                               url="wss://fstream.binance.com/stream")),
    ("coinbase exchange", "coinbase/cryptofeed_2021-04-17_exchange_level2_ticker_matches"
     ".jsonl.gz", coinbase.spec(channels=["ticker", "matches", "level2"], api="exchange")),
    ("kraken v1 book", "kraken/cryptofeed_2021-04-17_v1_book1000.jsonl.gz",
     kraken.spec(["XBT/USD"], ["book"], api="v1")),
    ("kraken futures", "kraken/cryptofeed_2021-07-22_futures_v1_book_trade_ticker.jsonl.gz",
     kraken.spec(["PI_XBTUSD"], ["book", "trade", "ticker_lite"], api="futures")),
    ("bybit orderbook", "bybit/nautilus_bybit-history_2024-12-01_XRPUSDT_orderbook500_linear"
     ".jsonl.gz", bybit.spec(channels=["orderbook"], book_depth=500)),
    ("okx", "okx/cryptofeed_2022-05-13_v5_public_tickers_trades_books.jsonl.gz",
     okx.spec(channels=["trades", "tickers", "books"])),
]


def lines(file: str) -> list[str]:
    raw = (DATA / file).read_bytes()
    return (gzip.decompress(raw) if file.endswith(".gz") else raw).decode().splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'capture':<20}{'frames':>8}{'replay frames/s':>18}{'decode frames/s':>18}"
          f"{'ratio':>8}")
    with tempfile.TemporaryDirectory(prefix="wsr-bench-") as folder:
        for index, (name, file, spec) in enumerate(CAPTURES):
            frames = lines(file)
            recording = Recording.from_frames(Path(folder) / str(index), frames, spec=spec)
            best_replay = best_decode = float("inf")
            for _ in range(args.rounds):
                start = time.perf_counter()
                result = replay(recording, spec)
                best_replay = min(best_replay, time.perf_counter() - start)
                assert result.stats["invalid"] == 0
                start = time.perf_counter()
                for frame in frames:
                    from_json(frame)
                best_decode = min(best_decode, time.perf_counter() - start)
            replay_rate, decode_rate = len(frames) / best_replay, len(frames) / best_decode
            print(f"{name:<20}{len(frames):>8}{replay_rate:>18,.0f}{decode_rate:>18,.0f}"
                  f"{replay_rate / decode_rate:>8.2f}")


if __name__ == "__main__":
    main()
