"""OKX's normalized tables, from the real capture in data/okx and OKX's documented examples.

Expected values are read straight from the JSON (not through the adapter): one trade row
per trade, one quote per ``tickers`` message, one book change per level of a ``books`` or
``books5`` message, and the documented meaning of each field (``side``: "Trade side of
taker"; a liquidation's ``side``: the liquidation order's side).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import Recording, replay
from wsresearch.exchanges import adapter, okx
from wsresearch.normalize import COMMON, KINDS
from wsresearch.pipeline import Pipeline

from .test_exchange_fuzz import check, mangle

DATA = Path(__file__).resolve().parent.parent / "data" / "okx"
CAPTURE = DATA / "cryptofeed_2022-05-13_v5_public_tickers_trades_books.jsonl.gz"
CAPTURED = ["trades", "tickers", "books"]
MS = 1_000_000


def capture_lines() -> list[str]:
    return gzip.decompress(CAPTURE.read_bytes()).decode().splitlines()


def docs_lines(channel: str) -> list[str]:
    return (DATA / f"docs_examples_{channel}.jsonl").read_text().splitlines()


def replayed(lines: list[str], channels: list[str], tmp_path: Path, name: str = "rec") -> Any:
    spec = okx.spec(["BTC-USDT"], channels)
    return replay(Recording.from_frames(tmp_path / name, lines, spec=spec))


def data_messages(lines: list[str], channel: str) -> list[dict[str, Any]]:
    """The capture's messages of ``channel``, parsed here, in order."""
    found = []
    for line in lines:
        message = json.loads(line)
        if message.get("arg", {}).get("channel") == channel and "data" in message:
            found.append(message)
    return found


def ms(value: str) -> dt.datetime:
    """Milliseconds text as the tables' time (exact: polars keeps the ns)."""
    found: dt.datetime = pl.Series([int(value) * MS]).cast(pl.Datetime("ns", "UTC"))[0]
    return found


def check_common(table: pl.DataFrame, kind: str) -> None:
    """The kind's columns and types; exchange, symbol, local time, generation and seq set."""
    assert table.schema == pl.Schema(COMMON | KINDS[kind])
    assert table.height > 0
    assert set(table["exchange"]) == {"okx"}
    assert table.select(pl.col("symbol", "local_time", "generation", "frame_seq")
                        .null_count()).row(0) == (0, 0, 0, 0)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Any:
    result = replayed(capture_lines(), CAPTURED, tmp_path_factory.mktemp("okx"))
    assert result.rejects == [] and result.stats["sequence_gaps"] == 0
    return result


def test_trades_one_row_per_trade_with_the_takers_side(capture: Any) -> None:
    lines = capture_lines()
    trades = [t for m in data_messages(lines, "trades") for t in m["data"]]
    table = capture.normalized("trades")
    check_common(table, "trades")
    assert table.height == len(trades) == capture.frames["trades"].height == 74
    assert table.null_count().row(0) == (0,) * table.width  # OKX gives every column
    assert set(table["side"]) == {"buy", "sell"}
    # OKX documents `side` as "Trade side of taker": it is the table's side as sent.
    assert table.select("trade_id", "side", "price", "amount", "symbol").rows() == [
        (t["tradeId"], t["side"], float(t["px"]), float(t["sz"]), t["instId"]) for t in trades]
    assert table["exchange_time"].to_list() == [ms(t["ts"]) for t in trades]
    # By hand: the capture's one UNI-USD-SWAP trade, a taker selling 100 contracts at 5.123.
    uni = table.filter(symbol="UNI-USD-SWAP").row(0, named=True)
    assert (uni["trade_id"], uni["side"], uni["price"], uni["amount"]) == (
        "12883020", "sell", 5.123, 100.0)


def test_the_first_trades_okx_pushes_are_older_and_the_documented_filter_drops_them() -> None:
    """OKX marks no trade as of the past; docs/normalized.md shows how to leave them out."""
    recording = (Path(__file__).resolve().parent.parent / "data" / "recordings"
                 / "okx_cryptofeed_2022-05-13_v5_public_tickers_trades_books")
    trades = replay(recording).normalized("trades")  # with its receive times
    first = trades.sort("exchange_time").row(0, named=True)
    assert first["symbol"] == "BTC-USD-220527"
    assert round((first["local_time"] - first["exchange_time"]).total_seconds(), 1) == 25.5
    opened = trades.group_by("generation").agg(pl.col("local_time").min().alias("opened"))
    live = trades.join(opened, on="generation").filter(
        pl.col("exchange_time") >= pl.col("opened") - pl.duration(seconds=1)).drop("opened")
    assert live.height == 72
    gone = trades.join(live, on="trade_id", how="anti")
    assert sorted(gone["symbol"]) == ["BTC-USD-220527", "UNI-USD-SWAP"]


def test_quotes_one_row_per_ticker_with_best_bid_and_ask(capture: Any) -> None:
    tickers = [m["data"][0] for m in data_messages(capture_lines(), "tickers")]
    table = capture.normalized("quotes", source="channel")  # the ticker's, not the books'
    check_common(table, "quotes")
    assert table.height == len(tickers) == 28
    assert table.null_count().row(0) == (0,) * table.width
    assert table.select("symbol", "bid_price", "bid_amount", "ask_price", "ask_amount").rows() == [
        (t["instId"], float(t["bidPx"]), float(t["bidSz"]), float(t["askPx"]), float(t["askSz"]))
        for t in tickers]
    assert table["exchange_time"].to_list() == [ms(t["ts"]) for t in tickers]


def test_book_changes_one_row_per_level(capture: Any) -> None:
    books = data_messages(capture_lines(), "books")
    expected = [
        (m["arg"]["instId"], m["action"] == "snapshot", side, float(level[0]), float(level[1]))
        for m in books for side, key in (("bid", "bids"), ("ask", "asks"))
        for level in m["data"][0][key]]
    table = capture.normalized("book_changes")
    check_common(table, "book_changes")
    assert table.height == len(expected) == 8264
    assert table.null_count().row(0) == (0,) * table.width
    assert set(table["side"]) == {"bid", "ask"}
    assert table.select("symbol", "is_snapshot", "side", "price", "amount").rows() == expected
    snapshot_levels = sum(len(m["data"][0]["bids"]) + len(m["data"][0]["asks"])
                          for m in books if m["action"] == "snapshot")
    assert table["is_snapshot"].sum() == snapshot_levels > 0  # one snapshot per instrument
    # Updates remove levels with size 0, and the table keeps them as amount 0.
    removed = sum(level[1] == "0" for m in books if m["action"] == "update"
                  for key in ("bids", "asks") for level in m["data"][0][key])
    assert removed > 0 and table.filter(amount=0.0).height == removed
    # By hand: BTC-USDT's snapshot starts with its best bid, then its best ask follows
    # its 400 bids; every row of one message has the message's time and seq.
    snapshot = next(m for m in books if m["arg"]["instId"] == "BTC-USDT")
    rows = table.filter(symbol="BTC-USDT", is_snapshot=True)
    first_bid, first_ask = snapshot["data"][0]["bids"][0], snapshot["data"][0]["asks"][0]
    assert rows.select("side", "price", "amount").row(0) == (
        "bid", float(first_bid[0]), float(first_bid[1]))
    assert rows.select("side", "price", "amount").row(400) == (
        "ask", float(first_ask[0]), float(first_ask[1]))
    assert rows["frame_seq"].n_unique() == 1
    assert set(rows["exchange_time"]) == {ms(snapshot["data"][0]["ts"])}


def test_kinds_the_capture_does_not_hold_are_empty_with_every_column(capture: Any) -> None:
    for kind in ("derivative_ticker", "liquidations", "candles"):
        table = capture.normalized(kind)
        assert table.height == 0 and table.schema == pl.Schema(COMMON | KINDS[kind])


def test_normalizing_leaves_the_native_frames_as_they_are(tmp_path: Path) -> None:
    lines = capture_lines()
    untouched = replayed(lines, CAPTURED, tmp_path, "plain").frames
    result = replayed(lines, CAPTURED, tmp_path, "normalized")
    before = {name: frame.clone() for name, frame in result.frames.items()}
    for kind in KINDS:
        result.normalized(kind)
    assert set(result.frames) == set(untouched)
    for name, frame in result.frames.items():
        assert_frame_equal(frame, before[name])
        assert_frame_equal(frame, untouched[name])


# Each documented example through its channel: (channel, kind, expected rows of the kind's
# own columns plus symbol and exchange time), from OKX's field descriptions.
DOCUMENTED = [
    ("trades", "trades", [
        {"symbol": "BTC-USDT", "trade_id": "130639474", "price": 42219.9,
         "amount": 0.12060306, "side": "buy", "exchange_time": ms("1630048897897")}]),
    ("books5", "book_changes", [
        {"symbol": "BCH-USDT-SWAP", "is_snapshot": True, "side": side, "price": price,
         "amount": amount, "exchange_time": ms("1670324386802")}
        for side, price, amount in [
            ("bid", 111.05, 57745.0), ("bid", 111.04, 57109.0), ("bid", 111.03, 69563.0),
            ("bid", 111.02, 71248.0), ("bid", 111.01, 65090.0), ("ask", 111.06, 55154.0),
            ("ask", 111.07, 53276.0), ("ask", 111.08, 72435.0), ("ask", 111.09, 70312.0),
            ("ask", 111.1, 67272.0)]]),
    ("funding-rate", "derivative_ticker", [
        {"symbol": "BTC-USD-SWAP", "funding_rate": 0.0001875391284828,
         "predicted_funding_rate": None,  # "" since OKX dropped the next-period forecast
         "funding_time": ms("1700726400000"), "mark_price": None, "index_price": None,
         "open_interest": None, "last_price": None, "exchange_time": ms("1700724675402")},
    ]),  # the second example is the same message as an older page showed it: a duplicate
    ("mark-price", "derivative_ticker", [
        {"symbol": "LTC-USD-190628", "mark_price": 0.1, "funding_rate": None,
         "exchange_time": ms("1597026383085")},
        {"symbol": "BTC-USDT", "mark_price": 42310.6, "funding_rate": None,
         "exchange_time": ms("1630049139746")}]),
    ("index-tickers", "derivative_ticker", [
        {"symbol": "BTC-USDT", "index_price": 0.1, "mark_price": None,
         "exchange_time": ms("1597026383085")}]),
    ("open-interest", "derivative_ticker", [
        {"symbol": "BTC-USDT-SWAP", "open_interest": 2216113.01000000309, "mark_price": None,
         "exchange_time": ms("1743041250440")}]),
    ("liquidation-orders", "liquidations", [
        # A short position liquidated by a buy order at the bankruptcy price.
        {"symbol": "IOST-USDT-SWAP", "liquidation_id": None, "price": 0.007831, "amount": 13.0,
         "side": "buy", "exchange_time": ms("1692266434010")}]),
    ("candle1D", "candles", [
        {"symbol": "BTC-USDT", "interval": "1D", "open_time": ms("1597026383085"),
         "open": 8533.02, "high": 8553.74, "low": 8527.17, "close": 8548.26,
         "volume": 45247.0, "closed": False, "exchange_time": None},
        {"symbol": "BTC-USDT", "interval": "1D", "open_time": ms("1629993600000"),
         "open": 42500.0, "high": 48199.9, "low": 41006.1, "close": 41006.1,
         "volume": 3587.41204591, "closed": False, "exchange_time": None}]),
]


@pytest.mark.parametrize(("channel", "kind", "expected"), DOCUMENTED,
                         ids=[c for c, _, _ in DOCUMENTED])
def test_documented_examples_parse_and_normalize(channel: str, kind: str,
                                                 expected: list[dict[str, Any]],
                                                 tmp_path: Path) -> None:
    lines = docs_lines(channel)
    result = replayed(lines, [channel], tmp_path)
    assert [(r.reason, r.detail) for r in result.rejects] == []
    assert result.stats["invalid"] == 0
    assert result.stats["duplicates"] == (1 if channel == "funding-rate" else 0)
    assert result.stats["ok"] + result.stats["duplicates"] == len(lines)
    table = result.normalized(kind)
    check_common(table, kind)
    assert table.select(list(expected[0])).to_dicts() == expected


def test_derivative_ticker_gathers_its_channels_each_giving_its_columns(tmp_path: Path) -> None:
    channels = ["funding-rate", "mark-price", "index-tickers", "open-interest"]
    lines = [line for channel in channels for line in docs_lines(channel)]
    result = replayed(lines, channels, tmp_path)
    assert result.rejects == []
    table = result.normalized("derivative_ticker")
    given = table.select(pl.col("funding_rate", "mark_price", "index_price", "open_interest")
                         .is_not_null().cast(pl.Int8)).rows()
    assert given == [(1, 0, 0, 0)] + [(0, 1, 0, 0)] * 2 + [(0, 0, 1, 0), (0, 0, 0, 1)]
    assert table["last_price"].null_count() == table.height  # OKX's is in tickers


def test_channels_not_subscribed_are_unknown_and_make_no_gap(tmp_path: Path) -> None:
    others = [line for channel in ("books5", "funding-rate", "mark-price", "index-tickers",
                                   "open-interest", "liquidation-orders", "candle1D", "trades")
              for line in docs_lines(channel)]
    books = [line for line in capture_lines()
             if '"channel":"books"' in line and '"data"' in line]
    mixed = [line for pair in zip(books, others, strict=False) for line in pair]
    mixed += books[len(others):]
    alone = replayed(books, ["books"], tmp_path, "alone")
    result = replayed(mixed, ["books"], tmp_path, "mixed")
    assert result.stats["rejects"]["unknown_type"] == len(others)
    assert {r.reason for r in result.rejects} == {"unknown_type"}
    assert result.stats["sequence_gaps"] == result.stats["sequence_out_of_order"] == 0
    assert result.stats["ok"] == len(books)
    assert_frame_equal(result.normalized("book_changes").drop("frame_seq", "local_time"),
                       alone.normalized("book_changes").drop("frame_seq", "local_time"))


def test_candles_are_served_apart_from_the_public_channels() -> None:
    assert okx.spec(["BTC-USDT"], ["candle1m", "candle1Dutc"]).url == okx.BUSINESS_URL
    assert okx.spec(["BTC-USDT"], ["trades", "funding-rate"]).url == okx.URL
    with pytest.raises(ValueError, match="make one feed for \\['candle1m'\\]"):
        okx.spec(["BTC-USDT"], ["trades", "candle1m"])
    with pytest.raises(ValueError, match="candle<bar> for a bar in \\['1s', '1m'"):
        okx.spec(["BTC-USDT"], ["candle7m"])


def test_the_registry_names_both_endpoints_and_the_api_option_picks_one() -> None:
    record = adapter("okx")
    assert record.channels({"api": "business"}) == okx.CANDLE_CHANNELS
    assert "candle1Dutc" in record.channels({"api": "business"})
    assert record.channels() == okx.CHANNELS
    business = okx.spec(api="business")
    assert (business.url, business.channel_names) == (okx.BUSINESS_URL, ["candle1m"])
    assert okx.spec(["BTC-USDT"], ["candle1H"]).origin.arguments["api"] == "business"
    every = record.spec(channels=list(record.channels({"api": "business"})), api="business")
    assert len(every.channels) == len(okx.CANDLE_CHANNELS)
    with pytest.raises(ValueError, match="OKX's business API does not serve \\['trades'\\]"):
        okx.spec(["BTC-USDT"], ["trades"], api="business")
    with pytest.raises(ValueError, match="unknown OKX API 'v9'"):
        okx.spec(api="v9")


def test_liquidations_are_subscribed_by_the_symbols_instrument_types() -> None:
    built = okx.spec(["BTC-USDT-SWAP", "ETH-USDT-SWAP", "BTC-USD-220527", "BTC-USDT"],
                     ["liquidation-orders", "mark-price"])
    request = built.subscribe[0]
    assert isinstance(request, dict)
    args = request["args"]
    assert args[:3] == [{"channel": "liquidation-orders", "instType": t}
                        for t in ("SWAP", "FUTURES", "MARGIN")]
    assert len(args) == 3 + 4 and all("instId" in a for a in args[3:])


@pytest.mark.parametrize("channels", [list(okx.CHANNELS), ["candle1D"]], ids=["public", "candles"])
def test_mangled_documented_examples_are_counted_never_raised(channels: list[str]) -> None:
    files = [c for c, _, _ in DOCUMENTED if c in channels]
    lines = [line for channel in files for line in docs_lines(channel)]
    pipeline = Pipeline(okx.spec(["BTC-USDT"], channels))
    rng = random.Random(" ".join(channels))
    for _ in range(1000):
        check(pipeline, json.dumps(mangle(json.loads(rng.choice(lines)), rng)))
    assert pipeline.parser.counts["schema_error"] > 0  # the mangling reached the new models
    assert pipeline.parser.counts["handler_error"] == 0
