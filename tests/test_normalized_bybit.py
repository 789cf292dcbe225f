"""Bybit's normalized tables, from the real capture in data/bybit/ and Bybit's documented examples.

Expected values are read straight from the JSON (not through the adapter): row counts per
kind from the native rows (one ``book_changes`` row per level sent, one ``trades`` row per
trade, one ``candles`` row per candle, one ``liquidations`` row per liquidation), sides
from Bybit's documented meaning (publicTrade ``S``: "Side of taker"; allLiquidation ``S``:
"Position side ... a Buy update means that a long position has been liquidated").
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import Recording, replay
from wsresearch.exchanges import bybit
from wsresearch.normalize import COMMON, KINDS
from wsresearch.replay import ReplayResult

DATA = Path(__file__).resolve().parent.parent / "data" / "bybit"
BOOK = "nautilus_bybit-history_2024-12-01_XRPUSDT_orderbook500_linear.jsonl.gz"
MS = 1_000_000


def book_lines() -> list[str]:
    return gzip.decompress((DATA / BOOK).read_bytes()).decode("utf-8").splitlines()


def docs(channel: str) -> list[str]:
    return (DATA / f"docs_examples_{channel}.jsonl").read_text("utf-8").splitlines()


def replayed(lines: list[str], tmp_path: Path, name: str = "rec", **options: Any,
             ) -> ReplayResult:
    spec = bybit.spec(**options)
    recording = Recording.from_frames(tmp_path / name, lines, spec=spec)
    result = replay(recording)  # the spec rebuilt from the recording's manifest
    assert [(r.reason, r.detail) for r in result.rejects] == []
    assert result.stats["ok"] == len(lines)
    return result


def check_table(table: pl.DataFrame, kind: str) -> None:
    """The columns of ``kind``, with exchange, symbol and every time filled."""
    assert table.schema == pl.Schema(COMMON | KINDS[kind])
    assert table["exchange"].unique().to_list() == ["bybit"]
    for column in ("symbol", "exchange_time", "local_time", "generation", "frame_seq"):
        assert table[column].null_count() == 0, column


def test_book_changes_are_one_row_per_level_sent(tmp_path: Path) -> None:
    lines = book_lines()
    result = replayed(lines, tmp_path, symbols=["XRPUSDT"], channels=["orderbook"],
                      book_depth=500)
    native = result.frames["orderbook"]
    table = result.normalized("book_changes")
    check_table(table, "book_changes")
    messages = [json.loads(line) for line in lines]
    expected = [(seq, m["type"] == "snapshot", side, float(price), float(size), m["ts"] * MS)
                for seq, m in enumerate(messages, start=1)
                for side, key in (("bid", "b"), ("ask", "a"))
                for price, size in m["data"][key]]
    assert table.height == len(expected) == sum(
        len(b) + len(a) for b, a in native.select("bids", "asks").iter_rows())
    got = table.select("frame_seq", "is_snapshot", "side", "price", "amount",
                       pl.col("exchange_time").dt.epoch("ns")).rows()
    assert got == expected  # every level, in the order sent: a message's bids, then its asks
    assert table.filter("is_snapshot").height == 1000  # the one snapshot: 500 bids, 500 asks
    assert set(table["side"]) == {"bid", "ask"}
    assert table["symbol"].unique().to_list() == ["XRPUSDT"]
    assert table.filter(pl.col("amount") == 0, pl.col("is_snapshot")).height == 0
    assert table.filter(pl.col("amount") == 0).height > 0  # deltas remove levels


def test_a_known_book_delta_by_hand(tmp_path: Path) -> None:
    lines = book_lines()
    result = replayed(lines, tmp_path, symbols=["XRPUSDT"], channels=["orderbook"],
                      book_depth=500)
    first_delta = json.loads(lines[1])
    assert first_delta["type"] == "delta"
    bid_price, bid_size = first_delta["data"]["b"][0]
    rows = result.normalized("book_changes").filter(frame_seq=2)
    first = rows.row(0, named=True)
    assert (first["side"], first["price"], first["amount"], first["is_snapshot"]) == (
        "bid", float(bid_price), float(bid_size), False)
    asks = rows.filter(side="ask")
    assert asks["price"].to_list() == [float(p) for p, _ in first_delta["data"]["a"]]


def test_trades_take_the_takers_side(tmp_path: Path) -> None:
    (text,) = docs("publicTrade")
    message = json.loads(text)
    # A second message like the documented one, with a seller as taker and two trades.
    sells = message | {"ts": message["ts"] + 5, "data": [
        message["data"][0] | {"S": "Sell", "i": "t-2", "T": message["ts"] + 3},
        message["data"][0] | {"S": "Buy", "i": "t-3", "T": message["ts"] + 4, "p": "16579.00"}]}
    result = replayed([text, json.dumps(sells)], tmp_path, channels=["publicTrade"])
    native = result.frames["publicTrade"]
    table = result.normalized("trades")
    check_table(table, "trades")
    assert table.height == native.height == 3  # one row per trade
    assert table.select("trade_id", "side", "price", "amount").rows() == [
        ("20f43950-d8dd-5b31-9112-a178eb6023af", "buy", 16578.5, 0.001),
        ("t-2", "sell", 16578.5, 0.001), ("t-3", "buy", 16579.0, 0.001)]
    assert table.select(pl.all().exclude("liquidation_id")).null_count().sum_horizontal()[0] == 0
    # The trade's own fill time, not the message's.
    assert table["exchange_time"].dt.epoch("ns")[0] == message["data"][0]["T"] * MS


def test_linear_tickers_give_quotes_and_the_derivative_ticker(tmp_path: Path) -> None:
    text = docs("tickers")[0]
    data = json.loads(text)["data"]
    result = replayed([text], tmp_path, channels=["tickers"])
    quotes = result.normalized("quotes")
    check_table(quotes, "quotes")
    assert quotes.select("bid_price", "bid_amount", "ask_price", "ask_amount").row(0) == (
        float(data["bid1Price"]), float(data["bid1Size"]), float(data["ask1Price"]),
        float(data["ask1Size"]))
    ticker = result.normalized("derivative_ticker")
    check_table(ticker, "derivative_ticker")
    row = ticker.row(0, named=True)
    assert (row["last_price"], row["mark_price"], row["index_price"], row["funding_rate"],
            row["open_interest"]) == tuple(float(data[k]) for k in (
                "lastPrice", "markPrice", "indexPrice", "fundingRate", "openInterest"))
    assert row["funding_time"] == pl.Series([int(data["nextFundingTime"]) * MS]).cast(
        pl.Datetime("ns", "UTC"))[0]
    assert row["predicted_funding_rate"] is None  # Bybit sends one rate: the next funding's
    native = result.frames["tickers"].row(0, named=True)
    assert native["next_funding_time_ns"] == int(data["nextFundingTime"]) * MS
    assert native["open_interest_value"] == float(data["openInterestValue"])


def ticker_deltas() -> list[str]:
    """The documented linear snapshot, then deltas carrying only changed fields.

    Bybit: "If a response param is not found in the message, then its value has not
    changed." The deltas are built here (the documentation shows no delta).
    """
    snapshot = json.loads(docs("tickers")[0])
    ts, cs = snapshot["ts"], snapshot["cs"]

    def delta(step: int, **data: str) -> str:
        return json.dumps({"topic": "tickers.BTCUSDT", "type": "delta", "data": {
            "symbol": "BTCUSDT", **data}, "cs": cs + step, "ts": ts + 100 * step})

    return [json.dumps(snapshot), delta(1, markPrice="17218.00", indexPrice="17228.00"),
            delta(2, bid1Price="17216.00", bid1Size="1.5"), delta(3, volume24h="91706.000")]


def test_ticker_deltas_carry_the_last_value_of_what_they_omit(tmp_path: Path) -> None:
    result = replayed(ticker_deltas(), tmp_path, channels=["tickers"])
    native = result.frames["tickers"]
    assert native["bid1_price"].null_count() == 2  # the deltas without it: null, as sent
    quotes = result.normalized("quotes")
    # Rows only for messages that sent a quote field: the snapshot and the bid delta.
    assert quotes["frame_seq"].to_list() == [1, 3]
    assert quotes.select("bid_price", "bid_amount", "ask_price", "ask_amount").rows() == [
        (17215.5, 84.489, 17216.0, 83.02), (17216.0, 1.5, 17216.0, 83.02)]
    ticker = result.normalized("derivative_ticker")
    assert ticker["frame_seq"].to_list() == [1, 2]
    assert ticker.select("mark_price", "index_price", "funding_rate", "open_interest").rows() == [
        (17217.33, 17227.36, -0.000212, 68744.761), (17218.0, 17228.0, -0.000212, 68744.761)]
    assert ticker.drop("predicted_funding_rate").null_count().sum_horizontal()[0] == 0


def test_a_new_connection_does_not_inherit_the_last_ones_values(tmp_path: Path) -> None:
    result = replayed(ticker_deltas(), tmp_path, channels=["tickers"])
    native = result.frames["tickers"]
    # The same rows, as if the deltas had come on a second connection without a snapshot.
    moved = native.with_columns(generation=pl.when(pl.col("frame_seq") > 1).then(2)
                                .otherwise(pl.col("generation")))
    assert result.spec is not None
    quotes = result.spec.normalized("quotes", {"tickers": moved})
    assert quotes.filter(generation=2).select("bid_price", "bid_amount", "ask_price",
                                              "ask_amount").rows() == [(17216.0, 1.5, None, None)]


def test_option_tickers_give_quotes_and_an_empty_side_is_null(tmp_path: Path) -> None:
    text = docs("tickers")[1]
    data = json.loads(text)["data"]
    assert (data["bidPrice"], data["bidSize"]) == ("0", "0")  # no bid at all
    result = replayed([text], tmp_path, symbols=[data["symbol"]], channels=["tickers"],
                      category="option")
    quotes = result.normalized("quotes")
    check_table(quotes, "quotes")
    assert quotes.select("symbol", "bid_price", "bid_amount", "ask_price", "ask_amount").rows(
    ) == [(data["symbol"], None, None, float(data["askPrice"]), float(data["askSize"]))]
    assert result.normalized("derivative_ticker").height == 0  # linear and inverse only


def test_spot_tickers_hold_no_quotes(tmp_path: Path) -> None:
    text = docs("tickers")[2]
    result = replayed([text], tmp_path, channels=["tickers"], category="spot")
    assert result.frames["tickers"]["last_price"].to_list() == [16363.78]
    assert result.normalized("quotes").height == 0  # spot tickers carry no bid or ask
    assert result.normalized("derivative_ticker").height == 0


def test_kline_gives_candles(tmp_path: Path) -> None:
    (text,) = docs("kline")
    message = json.loads(text)
    candle = message["data"][0]
    result = replayed([text], tmp_path, channels=["kline"], kline_interval="5")
    assert result.spec is not None
    assert result.spec.subscribe == ({"op": "subscribe", "args": ["kline.5.BTCUSDT"]},)
    native = result.frames["kline"]
    assert native.select("symbol", "interval", "start_ns", "end_ns", "confirm").row(0) == (
        "BTCUSDT", "5", candle["start"] * MS, candle["end"] * MS, False)
    table = result.normalized("candles")
    check_table(table, "candles")
    assert table.height == native.height == 1
    row = table.row(0, named=True)
    assert (row["interval"], row["open"], row["high"], row["low"], row["close"],
            row["volume"], row["closed"]) == (
        "5", float(candle["open"]), float(candle["high"]), float(candle["low"]),
        float(candle["close"]), float(candle["volume"]), False)
    assert table.select(pl.col("open_time").dt.epoch("ns")).item() == candle["start"] * MS
    assert table.null_count().sum_horizontal()[0] == 0


def test_all_liquidation_gives_the_liquidated_orders_side(tmp_path: Path) -> None:
    (text,) = docs("allLiquidation")
    message = json.loads(text)
    # Bybit's S is the position's side: the documented "Sell" is a short position
    # liquidated, by a buy order; a "Buy" (a long liquidated) is a sell order.
    longs = message | {"ts": message["ts"] + 500, "data": [
        message["data"][0] | {"S": "Buy", "T": message["ts"] + 100, "v": "150"},
        message["data"][0] | {"S": "Sell", "T": message["ts"] + 200, "v": "70"}]}
    result = replayed([text, json.dumps(longs)], tmp_path, symbols=["ROSEUSDT"],
                      channels=["allLiquidation"])
    native = result.frames["allLiquidation"]
    table = result.normalized("liquidations")
    check_table(table, "liquidations")
    assert table.height == native.height == 3
    assert native["position_side"].to_list() == ["Sell", "Buy", "Sell"]
    assert table.select("side", "price", "amount").rows() == [
        ("buy", 0.04499, 20000.0), ("sell", 0.04499, 150.0), ("buy", 0.04499, 70.0)]
    assert table["liquidation_id"].null_count() == 3  # Bybit gives none
    assert table.select(pl.col("exchange_time").dt.epoch("ns")).to_series().to_list() == [
        message["data"][0]["T"] * MS, (message["ts"] + 100) * MS, (message["ts"] + 200) * MS]


def every_table(result: ReplayResult) -> dict[str, pl.DataFrame]:
    return {kind: result.normalized(kind) for kind in KINDS}


def test_normalizing_leaves_the_native_frames_as_they_are(tmp_path: Path) -> None:
    lines = [*book_lines()[:10], *docs("publicTrade"), *ticker_deltas(), *docs("kline"),
             *docs("allLiquidation")]
    options: dict[str, Any] = {"symbols": ["XRPUSDT"], "channels": list(bybit.CHANNELS),
                               "book_depth": 500, "kline_interval": "5"}
    plain = replayed(lines, tmp_path, "plain", **options)
    normalized = replayed(lines, tmp_path, "normalized", **options)
    before = {name: frame.clone() for name, frame in normalized.frames.items()}
    tables = every_table(normalized)
    assert {kind for kind, table in tables.items() if table.height} == {
        "trades", "quotes", "book_changes", "derivative_ticker", "liquidations", "candles"}
    assert normalized.frames.keys() == plain.frames.keys() == before.keys()
    for name, frame in normalized.frames.items():
        assert_frame_equal(frame, before[name])
        assert_frame_equal(frame, plain.frames[name])


def test_messages_of_channels_not_subscribed_are_unknown_and_make_no_gap(tmp_path: Path,
                                                                         ) -> None:
    book = book_lines()
    others = [*docs("kline"), *docs("allLiquidation"), *docs("publicTrade"), docs("tickers")[0]]
    lines = [book[0], *others[:2], *book[1:20], *others[2:], *book[20:]]
    spec = bybit.spec(["XRPUSDT"], ["orderbook"], book_depth=500)
    result = replay(Recording.from_frames(tmp_path / "r", lines, spec=spec))
    assert result.stats["ok"] == len(book)
    rejects = {reason: n for reason, n in result.stats["rejects"].items() if n}
    assert rejects == {"unknown_type": len(others)}
    assert result.stats["sequence_gaps"] == 0
    assert result.normalized("candles").height == result.normalized("liquidations").height == 0
    assert result.normalized("book_changes").height == 2966 + 1000


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"channels": ["allLiquidation"], "category": "spot"},
         "Bybit spot has no channel(s) ['allLiquidation']"),
        ({"channels": ["kline"], "category": "option"}, "Bybit option has no channel(s) ['kline']"),
        ({"channels": ["kline"], "kline_interval": "1m"},
         "unknown Bybit kline interval '1m'; choose from ['1', '3'"),
    ],
)
def test_the_new_channels_are_checked_at_spec(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        bybit.spec(["BTCUSDT"], **options)


def test_each_category_declares_the_kinds_its_channels_hold() -> None:
    kinds = {category: {c.name: sorted(c.normalized) for c in bybit.spec(
        ["BTCUSDT"], list(bybit.CATEGORY_CHANNELS[category]), category=category,
        book_depth=50 if category != "option" else 25).channels}
        for category in bybit.CATEGORIES}
    derivatives = {"publicTrade": ["trades"], "tickers": ["derivative_ticker", "quotes"],
                   "orderbook": ["book_changes"], "kline": ["candles"],
                   "allLiquidation": ["liquidations"]}
    assert kinds == {
        "spot": {"publicTrade": ["trades"], "tickers": [], "orderbook": ["book_changes"],
                 "kline": ["candles"]},
        "linear": derivatives, "inverse": derivatives,
        "option": {"publicTrade": ["trades"], "tickers": ["quotes"],
                   "orderbook": ["book_changes"]},
    }
