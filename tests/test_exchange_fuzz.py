"""Nothing a peer sends makes an adapter's parsing raise: random JSON, and real frames mangled."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsresearch.exchanges import binance, bybit, coinbase, kraken, okx
from wsresearch.parser import OUTCOMES
from wsresearch.pipeline import Pipeline

DATA = Path(__file__).resolve().parent.parent / "data"

SPECS = {
    "binance-spot": binance.spec(channels=list(binance.CHANNELS)),
    "binance-usdm": binance.spec(channels=list(binance.CHANNELS), market="usdm",
                                 # the endpoint the captures come from
                                 url="wss://fstream.binance.com/stream"),
    "coinbase-advanced": coinbase.spec(channels=list(coinbase.ADVANCED_CHANNELS)),
    "coinbase-exchange": coinbase.spec(channels=list(coinbase.EXCHANGE_CHANNELS),
                                       api="exchange"),
    "kraken-v2": kraken.spec(channels=list(kraken.CHANNELS["v2"])),
    "kraken-v1": kraken.spec(["XBT/USD"], list(kraken.CHANNELS["v1"]), api="v1"),
    "kraken-futures": kraken.spec(["PI_XBTUSD"], list(kraken.CHANNELS["futures"]),
                                  api="futures"),
    "bybit": bybit.spec(channels=list(bybit.CHANNELS)),
    "okx": okx.spec(channels=list(okx.CHANNELS)),
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=5),
    max_leaves=20,
)


def mangle(value: Any, rng: random.Random) -> Any:
    """Replace one node of a real frame by something else."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(list(value))
        return value | {key: mangle(value[key], rng)}
    if isinstance(value, list) and value and rng.random() < 0.7:
        index = rng.randrange(len(value))
        return [*value[:index], mangle(value[index], rng), *value[index + 1:]]
    return rng.choice([None, 0, -1, "x", "", [], {}, [1, 2], {"a": 1}, 1.5, True, "1e999"])


def check(pipeline: Pipeline, text: str) -> None:
    """Parse, extract and sequence-check one message as the live feed does: one outcome."""
    before = sum(pipeline.parser.counts.values())
    pipeline.open_generation(1)
    pipeline.process([(text, 1, 0, 0, -1)])
    assert sum(pipeline.parser.counts.values()) == before + 1
    assert set(pipeline.parser.counts) == set(OUTCOMES)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, name=st.sampled_from(sorted(SPECS)))
def test_random_json_never_raises(value: Any, name: str) -> None:
    check(Pipeline(SPECS[name]), json.dumps(value))


CAPTURES = [
    ("binance-spot", "binance/cryptofeed_2021-10-12_spot_combined_depth_bookTicker_kline_aggTrade"),
    ("binance-usdm", "binance/cryptofeed_2021-07-22_usdm_futures_combined"),
    ("coinbase-exchange", "coinbase/cryptofeed_2021-04-17_exchange_level2_ticker_matches"),
    ("kraken-v1", "kraken/cryptofeed_2021-04-17_v1_book1000"),
    ("kraken-v1", "kraken/cryptofeed_2021-04-17_v1_trade"),
    ("kraken-v1", "kraken/cryptofeed_2021-04-17_v1_ticker"),
    ("kraken-futures", "kraken/cryptofeed_2021-07-22_futures_v1_book_trade_ticker"),
    ("bybit", "bybit/nautilus_bybit-history_2024-12-01_XRPUSDT_orderbook500_linear"),
    ("okx", "okx/cryptofeed_2022-05-13_v5_public_tickers_trades_books"),
]


@pytest.mark.parametrize(("name", "capture"), CAPTURES, ids=[c for _, c in CAPTURES])
def test_mangled_real_frames_are_counted_never_raised(name: str, capture: str) -> None:
    raw = gzip.decompress((DATA / f"{capture}.jsonl.gz").read_bytes())
    lines = [line for line in raw.decode().splitlines() if not line.startswith('{"event"')]
    rng = random.Random(capture)
    pipeline = Pipeline(SPECS[name])
    for line in rng.sample(lines, min(300, len(lines))):
        for _ in range(3):
            check(pipeline, json.dumps(mangle(json.loads(line), rng)))
    counts = pipeline.parser.counts
    assert counts["schema_error"] > 0  # the mangling did reach the models
    assert sum(counts.values()) == 3 * min(300, len(lines))
