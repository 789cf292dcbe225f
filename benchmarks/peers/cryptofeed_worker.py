"""Play Binance frames through cryptofeed 2.4.1 in its own venv, offline; print the timings.

Runs in the peers' venv (``make bench-peers`` makes it), never in wsresearch's. The frames
come from a text file of ``<receive time>: <message>`` lines, cryptofeed's own raw format,
written by ``benchmarks/bench_peers.py``. Nothing reaches the network: the two requests
cryptofeed makes (the symbol list when the feed is built, the depth snapshot at the first
depth update) are answered from the file's neighbours, and sockets are refused outright.

Each variant prints one JSON line, ``{"variant": ..., "seconds": ..., "messages": ...}``:

- ``cryptofeed``: every message through ``Binance.message_handler``, as its ``playback``
  does (decoded with ``parse_float=Decimal``; aggTrade -> ``Trade``, bookTicker -> ``Ticker``,
  depth: update-id continuity and every level into its L2 book), callbacks counting;
- ``orjson``: the file read and split, each message ``orjson.loads``-ed, nothing kept.

Usage: python cryptofeed_worker.py FRAMES SNAPSHOT VARIANT
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any


def _no_network(*args: Any, **kwargs: Any) -> None:
    raise OSError("the benchmark runs offline")


def _lines(path: Path) -> list[tuple[float, str]]:
    found = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            stamp, message = line.split(": ", 1)
            found.append((float(stamp), message))
    return found


def run_cryptofeed(frames: Path, snapshot: str) -> tuple[float, int]:
    from cryptofeed.connection import HTTPAsyncConn, HTTPSync
    from cryptofeed.defines import L2_BOOK, TICKER, TRADES
    from cryptofeed.exchanges import Binance

    symbols = {"symbols": [{"symbol": "BTCUSDT", "baseAsset": "BTC", "quoteAsset": "USDT",
                            "status": "TRADING", "filters": [{"tickSize": "0.01"}]}]}

    def symbol_list(self: Any, address: str, json: bool = False, **kwargs: Any) -> Any:
        return symbols if json else __import__("json").dumps(symbols)

    async def depth_snapshot(self: Any, address: str, **kwargs: Any) -> str:
        return snapshot

    HTTPSync.read = symbol_list
    HTTPAsyncConn.read = depth_snapshot
    counted = {"book": 0, "trade": 0, "ticker": 0}

    async def count(kind: str, *args: Any) -> None:
        counted[kind] += 1

    async def book(*args: Any) -> None:
        await count("book")

    async def trade(*args: Any) -> None:
        await count("trade")

    async def ticker(*args: Any) -> None:
        await count("ticker")

    feed = Binance(symbols=["BTC-USDT"], channels=[L2_BOOK, TRADES, TICKER],
                   callbacks={L2_BOOK: book, TRADES: trade, TICKER: ticker})
    messages = _lines(frames)

    async def play() -> float:
        handler = feed.message_handler
        began = time.perf_counter()
        for stamp, message in messages:
            await handler(message, None, stamp)
        return time.perf_counter() - began

    seconds = asyncio.run(play())
    print(json.dumps({"callbacks": counted}), file=sys.stderr)
    return seconds, len(messages)


def run_orjson(frames: Path) -> tuple[float, int]:
    import orjson

    began = time.perf_counter()
    count = 0
    with frames.open(encoding="utf-8") as handle:
        for line in handle:
            orjson.loads(line.split(": ", 1)[1])
            count += 1
    return time.perf_counter() - began, count


def main() -> None:
    frames, snapshot, variant = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    socket.socket.connect = _no_network  # type: ignore[method-assign]
    socket.create_connection = _no_network  # type: ignore[assignment]
    if variant == "cryptofeed":
        seconds, count = run_cryptofeed(frames, snapshot.read_text(encoding="utf-8"))
    else:
        seconds, count = run_orjson(frames)
    print(json.dumps({"variant": variant, "seconds": seconds, "messages": count}))


if __name__ == "__main__":
    main()
