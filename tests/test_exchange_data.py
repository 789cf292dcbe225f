"""Every frame of the real captures in data/ through its adapter, via a recording and replay.

Counts per channel are the captures' own (data/SOURCES.md); sequence tracking must
find nothing in the contiguous captures and exactly the gaps made by deleting frames.
"""

from __future__ import annotations

import gzip
import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wsresearch import Recording, replay
from wsresearch.exchanges import adapter

DATA = Path(__file__).resolve().parent.parent / "data"

# Where a capture's sequence numbers are, read straight from the JSON (not through
# the adapter): (key, first, last) of one message, or None for other frames.
RawSeq = Callable[[Any], "tuple[Any, int, int] | None"]


def binance_spot_depth(m: Any) -> tuple[Any, int, int] | None:
    d = m.get("data", {}) if isinstance(m, dict) else {}
    return (d["s"], d["U"], d["u"]) if d.get("e") == "depthUpdate" else None

USDM_COMBINED = "wss://fstream.binance.com/stream"
"""Where the USD-M captures were made: the combined endpoint, before its 2026 split."""


def binance_usdm_depth(m: Any) -> tuple[Any, int, int] | None:
    d = m.get("data", {}) if isinstance(m, dict) else {}
    return (d["s"], d["pu"] + 1, d["u"]) if d.get("e") == "depthUpdate" else None


def coinbase_match(m: Any) -> tuple[Any, int, int] | None:
    if isinstance(m, dict) and m.get("type") in ("match", "last_match"):
        return m["product_id"], m["trade_id"], m["trade_id"]
    return None


def kraken_futures_book(m: Any) -> tuple[Any, int, int] | None:
    if isinstance(m, dict) and m.get("feed") == "book" and "event" not in m:
        return m["product_id"], m["seq"], m["seq"]
    return None


def bybit_book(m: Any) -> tuple[Any, int, int] | None:
    if isinstance(m, dict) and m.get("type") == "delta":
        return m["data"]["s"], m["data"]["u"], m["data"]["u"]
    return None


@dataclass(frozen=True)
class Capture:
    file: str
    adapter: str
    options: dict[str, Any]
    rows: dict[str, int]
    control: int = 0
    sequenced: RawSeq | None = None


CAPTURES = [
    Capture("binance/hftbacktest_2024-08-08_spot_btcusdt_depth100ms_bookTicker_trade_first6000"
            ".jsonl", "binance", {"market": "spot"},
            {"trade": 1123, "bookTicker": 4346, "depth": 530}, sequenced=binance_spot_depth),
    Capture("binance/hftbacktest_2024-08-08_usdm_btcusdt_depth0ms_bookTicker_trade_first4000"
            ".jsonl.gz", "binance", {"market": "usdm", "url": USDM_COMBINED},
            {"trade": 569, "bookTicker": 3117, "depth": 313}, sequenced=binance_usdm_depth),
    Capture("binance/cryptofeed_2021-10-12_spot_combined_depth_bookTicker_kline_aggTrade"
            ".jsonl.gz", "binance", {"market": "spot"},
            {"depth": 177, "bookTicker": 84, "aggTrade": 2, "kline": 2},
            sequenced=binance_spot_depth),
    Capture("binance/cryptofeed_2021-10-12_binanceus_combined.jsonl.gz", "binance",
            {"market": "spot"}, {"depth": 336, "bookTicker": 128, "aggTrade": 11, "kline": 5},
            sequenced=binance_spot_depth),
    Capture("binance/cryptofeed_2021-07-22_usdm_futures_combined.jsonl.gz", "binance",
            {"market": "usdm", "url": USDM_COMBINED},
            {"depth": 764, "bookTicker": 613, "aggTrade": 91, "kline": 67},
            sequenced=binance_usdm_depth),
    Capture("coinbase/cryptofeed_2021-04-17_exchange_level2_ticker_matches.jsonl.gz",
            "coinbase", {"api": "exchange", "channels": ["ticker", "matches", "level2"]},
            {"ticker": 107, "match": 97 + 10, "snapshot": 10, "l2update": 9719}, control=3,
            sequenced=coinbase_match),
    Capture("kraken/cryptofeed_2021-04-17_v1_book1000.jsonl.gz", "kraken",
            {"api": "v1", "channels": ["book"]}, {"book": 4279}, control=42),
    Capture("kraken/cryptofeed_2021-04-17_v1_ticker.jsonl.gz", "kraken",
            {"api": "v1", "channels": ["ticker"]}, {"ticker": 18}, control=42),
    Capture("kraken/cryptofeed_2021-04-17_v1_trade.jsonl.gz", "kraken",
            {"api": "v1", "channels": ["trade"]}, {"trade": 10}, control=41),  # 8 frames
    Capture("kraken/cryptofeed_2021-07-22_futures_v1_book_trade_ticker.jsonl.gz", "kraken",
            {"api": "futures", "channels": ["book", "trade", "ticker_lite"]},
            {"book_snapshot": 10, "book": 7014, "trade_snapshot": 1000, "trade": 3,
             "ticker_lite": 107}, control=31, sequenced=kraken_futures_book),
    Capture("bybit/nautilus_bybit-history_2024-12-01_XRPUSDT_orderbook500_linear.jsonl.gz",
            "bybit", {"channels": ["orderbook"], "book_depth": 500}, {"orderbook": 50},
            sequenced=bybit_book),
    Capture("okx/cryptofeed_2022-05-13_v5_public_tickers_trades_books.jsonl.gz", "okx",
            {"channels": ["trades", "tickers", "books"]},
            {"books": 290, "trades": 74, "tickers": 28}, control=18),
]


def lines(capture: Capture) -> list[str]:
    path = DATA / capture.file
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return raw.decode("utf-8").splitlines()


def adapter_spec(capture: Capture) -> Any:
    found = adapter(capture.adapter)
    options = dict(capture.options)
    channels = options.pop("channels", None) or list(found.channels(options))
    # The symbols only shape the subscribe messages; rows come from whatever arrives.
    symbols = {"binance": ["btcusdt"], "coinbase": ["BTC-USD"], "bybit": ["XRPUSDT"],
               "okx": ["BTC-USDT"]}.get(capture.adapter)
    if capture.adapter == "kraken":
        symbols = ["PI_XBTUSD"] if options.get("api") == "futures" else ["XBT/USD"]
    return found.spec(symbols, channels, **options)


def replayed(capture: Capture, frames: list[str], tmp_path: Path) -> Any:
    recording = Recording.from_frames(tmp_path / "rec", frames, spec=adapter_spec(capture),
                                      description=capture.file)
    return replay(recording)  # the spec is rebuilt from the recording's manifest


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda c: Path(c.file).name.split(".")[0])
def test_every_frame_parses_with_the_expected_counts(capture: Capture, tmp_path: Path) -> None:
    frames = lines(capture)
    result = replayed(capture, frames, tmp_path)
    stats = result.stats
    assert [(r.reason, r.detail) for r in result.rejects] == []
    assert stats["invalid"] == 0 and stats["exchange_errors"] == 0
    assert {name: frame.height for name, frame in result.frames.items() if frame.height} == (
        capture.rows)
    assert stats["control"] == capture.control
    assert stats["ok"] + stats["control"] == len(frames)
    assert stats["sequence_gaps"] == stats["sequence_repeats"] == 0
    assert stats["sequence_out_of_order"] == 0


@pytest.mark.parametrize("capture", [c for c in CAPTURES if c.sequenced is not None],
                         ids=lambda c: Path(c.file).name.split(".")[0])
def test_deleted_frames_are_exactly_the_gaps_found(capture: Capture, tmp_path: Path) -> None:
    assert capture.sequenced is not None
    frames = lines(capture)
    numbered = [(index, capture.sequenced(json.loads(text))) for index, text in enumerate(frames)]
    by_key: dict[Any, list[tuple[int, int, int]]] = {}
    for index, seq in numbered:
        if seq is not None:
            by_key.setdefault(seq[0], []).append((index, seq[1], seq[2]))
    # Delete up to 6 messages that have a kept neighbour on each side within their key.
    candidates = [m for ms in by_key.values() for m in ms[1:-1]]
    deleted = sorted(random.Random(7).sample(candidates, min(6, len(candidates))))
    gone = {index for index, _, _ in deleted}
    expected = []
    for messages in by_key.values():
        run_start = None
        for (index, first, _last), following in itertools.pairwise(messages):
            if index in gone and run_start is None:
                run_start = first
            if index in gone and following[0] not in gone:
                expected.append((run_start, following[1]))
                run_start = None
    kept = [text for index, text in enumerate(frames) if index not in gone]
    result = replayed(capture, kept, tmp_path)
    found = sorted(zip(result.gaps["expected"].to_list(), result.gaps["first"].to_list(),
                       strict=True))
    assert found == sorted(expected)
    missing = sum(last - first + 1 for _, first, last in deleted)
    assert result.stats["sequence_missing"] == missing
