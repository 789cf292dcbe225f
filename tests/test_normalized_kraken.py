"""Kraken's normalized tables, on the real captures in data/kraken/ and documented messages.

How many rows each kind must have is read off the native frames:

* ``trades``: one row per native trade row of a live message (v1 ``trade``; v2 ``trade``
  updates; Futures ``trade``). The trades a snapshot re-sends (v2 ``type: snapshot``,
  Futures ``trade_snapshot``) happened before subscribing and come again on every
  reconnect: they stay native rows but are not counted.
* ``quotes``: one row per native ticker row.
* ``book_changes``: one row per level: every entry of a message's ``bids`` and ``asks``
  (v1, v2, Futures ``book_snapshot``), or the one level of a Futures ``book`` message.
* ``candles``: one row per v2 ``ohlc`` candle; ``derivative_ticker``: one per Futures
  ``ticker``.

Sides follow what each API documents: v1 ``trade`` ``b``/``s`` is the "taker side", v2
``trade`` ``side`` is "the side of the taker order", Futures ``trade`` ``side`` is "the
classification of the taker side" (docs.kraken.com).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import Recording, replay
from wsresearch.exchanges import kraken
from wsresearch.normalize import COMMON, KINDS
from wsresearch.replay import ReplayResult

DATA = Path(__file__).resolve().parent.parent / "data" / "kraken"
NS = 1_000_000_000
MS = 1_000_000


def lines(name: str) -> list[str]:
    path = DATA / name
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return raw.decode("utf-8").splitlines()


def replayed(tmp_path: Path, messages: list[str], spec: Any) -> ReplayResult:
    recording = Recording.from_frames(tmp_path / "rec", messages, spec=spec)
    return replay(recording)


@dataclass(frozen=True)
class Capture:
    file: str
    api: str
    channels: tuple[str, ...]
    exchange: str
    # kind -> columns that are null by design (the exchange does not give them)
    nullable: dict[str, frozenset[str]]


CAPTURES = [
    Capture("cryptofeed_2021-04-17_v1_trade.jsonl.gz", "v1", ("trade",), "kraken",
            {"trades": frozenset({"trade_id"})}),  # v1 trades have no id
    Capture("cryptofeed_2021-04-17_v1_ticker.jsonl.gz", "v1", ("ticker",), "kraken",
            {"quotes": frozenset({"exchange_time"})}),  # the v1 ticker carries no time
    Capture("cryptofeed_2021-04-17_v1_book1000.jsonl.gz", "v1", ("book",), "kraken",
            {"book_changes": frozenset()}),
    Capture("cryptofeed_2021-07-22_futures_v1_book_trade_ticker.jsonl.gz", "futures",
            ("book", "trade", "ticker_lite"), "kraken-futures",
            {"trades": frozenset(), "book_changes": frozenset(),
             # ticker_lite: no time, and no sizes for the best bid and ask
             "quotes": frozenset({"exchange_time", "bid_amount", "ask_amount"})}),
]
IDS = [c.file.split(".")[0] for c in CAPTURES]


def capture_spec(capture: Capture) -> Any:
    symbols = ["PI_XBTUSD"] if capture.api == "futures" else ["XBT/USD"]
    return kraken.spec(symbols, list(capture.channels), api=capture.api)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ReplayResult]:
    return {c.file: replayed(tmp_path_factory.mktemp(c.api), lines(c.file), capture_spec(c))
            for c in CAPTURES}


def levels(frame: pl.DataFrame, *columns: str) -> int:
    return int(sum(frame[c].list.len().sum() for c in columns))


def expected_rows(capture: Capture, frames: dict[str, pl.DataFrame]) -> dict[str, int]:
    if capture.api == "v1":
        return {"trades": frames["trade"].height if "trade" in frames else 0,
                "quotes": frames["ticker"].height if "ticker" in frames else 0,
                "book_changes": levels(frames["book"], "bids", "asks") if "book" in frames
                else 0}
    return {"trades": frames["trade"].height,  # trade_snapshot rows are not counted
            "quotes": frames["ticker_lite"].height,
            "book_changes": frames["book"].height
            + levels(frames["book_snapshot"], "bids", "asks")}


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_row_counts_follow_the_native_rows(capture: Capture,
                                           results: dict[str, ReplayResult]) -> None:
    result = results[capture.file]
    assert not result.rejects
    counts = {kind: result.normalized(kind).height for kind in KINDS}
    expected = expected_rows(capture, result.frames)
    # The order books make snapshots, and the quotes: the spec takes the books' wherever
    # it keeps them (the futures ticker tells the top once a second).
    books = result.books
    made = {"book_snapshots": 0 if books is None else books.snapshots().height}
    if books is not None:
        assert result.spec.quotes == "book"
        made["quotes"] = books.quotes().height
    assert counts == expected | {"derivative_ticker": 0, "liquidations": 0, "candles": 0} | made
    assert sum(expected.values()) > 0


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_every_table_is_filled_where_kraken_gives_a_value(
        capture: Capture, results: dict[str, ReplayResult]) -> None:
    result = results[capture.file]
    for kind, nullable in capture.nullable.items():
        # Kraken's own values: the quotes of its ticker, not of the books the spec prefers.
        table = result.normalized(kind, **({"source": "channel"} if kind == "quotes" else {}))
        assert table.schema == pl.Schema(COMMON | KINDS[kind])
        assert table["exchange"].unique().to_list() == [capture.exchange]
        nulls = {name for name, count in table.null_count().row(0, named=True).items() if count}
        assert nulls == set(nullable), kind
        assert table["local_time"].is_sorted()
        if "side" in KINDS[kind]:
            allowed = {"bid", "ask"} if kind == "book_changes" else {"buy", "sell"}
            assert set(table["side"].unique()) <= allowed
        if kind in ("trades", "book_changes"):
            assert (table["price"] > 0).all() and (table["amount"] >= 0).all()


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_normalizing_leaves_the_native_frames_as_replayed(
        capture: Capture, results: dict[str, ReplayResult], tmp_path: Path) -> None:
    normalized = results[capture.file]
    for kind in KINDS:
        normalized.normalized(kind)
    untouched = replayed(tmp_path, lines(capture.file), capture_spec(capture))
    assert normalized.frames.keys() == untouched.frames.keys()
    for name, frame in untouched.frames.items():
        assert_frame_equal(normalized.frames[name], frame)


def row_of(table: pl.DataFrame, frame_seq: int, index: int = 0) -> dict[str, Any]:
    return table.filter(pl.col("frame_seq") == frame_seq).row(index, named=True)


def epochs(table: pl.DataFrame, column: str) -> list[int | None]:
    """A time column in ns since the epoch (a Python datetime would lose the last digits)."""
    return table[column].dt.epoch("ns").to_list()


def seq_of(messages: list[str], text: str) -> int:
    """The recording's seq of the message that contains ``text`` (1-based line number)."""
    return next(i for i, line in enumerate(messages, start=1) if text in line)


def test_v1_trade_side_is_the_taker_s_b_or_s(results: dict[str, ReplayResult]) -> None:
    file = CAPTURES[0].file
    trades, native = results[file].normalized("trades"), results[file].frames["trade"]
    messages = lines(file)
    # [993,[["354.11000000","0.89594024","1618678142.557535","s","l",""]],"trade","XMR/USD"]
    seq = seq_of(messages, '"1618678142.557535","s"')
    sold = row_of(trades, seq)
    assert (sold["symbol"], sold["price"], sold["amount"], sold["side"], sold["trade_id"]) == (
        "XMR/USD", 354.11, 0.89594024, "sell", None)
    assert epochs(trades.filter(frame_seq=seq), "exchange_time") == [1618678142_557535000]
    bought = row_of(trades, seq_of(messages, '"1618678145.715785","b"'))
    assert (bought["price"], bought["side"]) == (354.55, "buy")
    assert trades["side"].to_list() == native["side"].replace_strict(
        {"b": "buy", "s": "sell"}).to_list()


def test_v1_ticker_quotes_are_the_best_bid_and_ask_with_their_lot_volumes(
        results: dict[str, ReplayResult]) -> None:
    file = CAPTURES[1].file
    quotes = results[file].normalized("quotes")
    # {"a":["13.253900",35,"35.72892241"],"b":["13.232900",185,"185.18432037"],...} WAVES/EUR
    row = row_of(quotes, seq_of(lines(file), '"WAVES/EUR"]'))
    assert (row["symbol"], row["bid_price"], row["bid_amount"], row["ask_price"],
            row["ask_amount"]) == ("WAVES/EUR", 13.2329, 185.18432037, 13.2539, 35.72892241)
    assert (quotes["bid_price"] < quotes["ask_price"]).all()


def test_v1_book_levels_keep_their_own_times_and_zero_removes(
        results: dict[str, ReplayResult]) -> None:
    file = CAPTURES[2].file
    changes = results[file].normalized("book_changes")
    messages = lines(file)
    # [3648,{"b":[["0.00754500","0.00000000","1618678133.887197"]],"c":"381490296"},...]
    seq = seq_of(messages, '"c":"381490296"')
    assert changes.filter(pl.col("frame_seq") == seq).height == 1
    row = row_of(changes, seq)
    assert (row["symbol"], row["side"], row["price"], row["amount"], row["is_snapshot"]) == (
        "KSM/XBT", "bid", 0.007545, 0.0, False)
    assert epochs(changes.filter(frame_seq=seq), "exchange_time") == [1618678133_887197000]
    ask = row_of(changes, seq_of(messages, '"c":"978792387"'))
    assert (ask["side"], ask["price"], ask["amount"]) == ("ask", 0.007576, 2.27388316)
    snapshots = results[file].frames["book"].filter("snapshot")
    assert changes["is_snapshot"].sum() == levels(snapshots, "bids", "asks") > 0
    first = snapshots.row(0, named=True)
    in_order = changes.filter(pl.col("frame_seq") == first["frame_seq"])
    assert in_order["side"].to_list() == ["bid"] * len(first["bids"]) + ["ask"] * len(
        first["asks"])
    assert in_order["price"].to_list() == [level["price"] for level in
                                           first["bids"] + first["asks"]]


def test_futures_trades_book_and_light_quotes(results: dict[str, ReplayResult]) -> None:
    file = CAPTURES[3].file
    result, messages = results[file], lines(file)
    trades = result.normalized("trades")
    native = result.frames["trade"]
    assert trades["trade_id"].to_list() == native["uid"].to_list()
    assert trades["side"].to_list() == native["side"].to_list()  # the taker's, as sent
    assert trades["symbol"].to_list() == native["product_id"].to_list()
    assert epochs(trades, "exchange_time") == native["time_ns"].to_list()
    # none of the 1000 trades of the snapshots (sent on subscribing) is a trade row
    assert trades.height == 3 and result.frames["trade_snapshot"].height == 1000

    changes = result.normalized("book_changes")
    # {"feed":"book","product_id":"PI_ETHUSD","side":"sell","seq":26660860,"price":2004.85,...}
    seq = seq_of(messages, '"seq":26660860,')
    row = row_of(changes, seq)
    assert (row["symbol"], row["side"], row["price"], row["amount"], row["is_snapshot"]) == (
        "PI_ETHUSD", "ask", 2004.85, 4787.0, False)
    assert epochs(changes.filter(frame_seq=seq), "exchange_time") == [1626994927744 * MS]
    book = result.frames["book"]
    updates = changes.filter(~pl.col("is_snapshot"))
    assert updates["side"].to_list() == book["side"].replace_strict(
        {"buy": "bid", "sell": "ask"}).to_list()
    # {"feed":"book_snapshot","product_id":"FI_BCHUSD_210730","timestamp":1626994925378,
    #  "seq":91192,...,"bids":[{"price":439.3,"qty":20108.0},...
    snapshot = changes.filter(pl.col("frame_seq") == seq_of(messages, '"seq":91192,'))
    assert snapshot["is_snapshot"].all()
    assert snapshot.row(0, named=True)["price"] == 439.3
    assert snapshot.row(0, named=True)["amount"] == 20108.0
    assert set(snapshot["side"]) == {"bid", "ask"}

    quotes = result.normalized("quotes", source="channel")
    # {"feed":"ticker_lite","product_id":"FI_BCHUSD_210730","bid":439.3,"ask":439.6,...}
    lite = row_of(quotes, seq_of(messages, '"product_id":"FI_BCHUSD_210730","bid":439.3,'))
    assert (lite["bid_price"], lite["ask_price"], lite["bid_amount"]) == (439.3, 439.6, None)


def futures_trade(seq: int, kind: str, side: str) -> str:
    """A futures ``trade`` delta as Kraken documents it."""
    return json.dumps({"feed": "trade", "product_id": "PF_XBTUSD", "uid": f"u{seq}",
                       "side": side, "type": kind, "seq": seq, "time": 1612269825817 + seq,
                       "qty": 0.25 * seq, "price": 34900.0 + seq})


def test_futures_liquidation_trades_are_the_liquidations_table(tmp_path: Path) -> None:
    spec = kraken.spec(["PF_XBTUSD"], ["trade"], api="futures")
    messages = [futures_trade(1, "fill", "buy"), futures_trade(2, "liquidation", "sell"),
                futures_trade(3, "termination", "buy"), futures_trade(4, "liquidation", "buy")]
    result = replayed(tmp_path, messages, spec)
    assert not result.rejects
    liquidations = result.normalized("liquidations")
    assert liquidations.schema == pl.Schema(COMMON | KINDS["liquidations"])
    assert liquidations.select("exchange", "symbol", "liquidation_id", "price", "amount",
                               "side").rows() == [
        ("kraken-futures", "PF_XBTUSD", "u2", 34902.0, 0.5, None),
        ("kraken-futures", "PF_XBTUSD", "u4", 34904.0, 1.0, None)]
    assert epochs(liquidations, "exchange_time") == [1612269825819 * MS, 1612269825821 * MS]
    # They stay trades too, with the taker's side.
    assert result.normalized("trades")["side"].to_list() == ["buy", "sell", "buy", "buy"]


# -- v2: messages shaped as Kraken documents them --------------------------------------


def v2_trade(kind: str, trade_id: int, side: str) -> str:
    return json.dumps({"channel": "trade", "type": kind, "data": [
        {"symbol": "BTC/USD", "side": side, "price": 26500.1, "qty": 0.00412,
         "ord_type": "market", "trade_id": trade_id,
         "timestamp": "2023-09-25T07:49:37.708706Z"}]})


V2_MESSAGES = [
    json.dumps({"method": "subscribe", "result": {"channel": "trade", "symbol": "BTC/USD"},
                "success": True, "time_in": "2023-09-25T09:04:31.742599Z",
                "time_out": "2023-09-25T09:04:31.742648Z"}),
    v2_trade("snapshot", 41, "sell"),
    v2_trade("update", 42, "buy"),
    json.dumps({"channel": "heartbeat"}),
    json.dumps({"channel": "ticker", "type": "snapshot", "data": [
        {"symbol": "BTC/USD", "bid": 26500.0, "bid_qty": 1.5, "ask": 26500.1, "ask_qty": 0.2,
         "last": 26500.1, "volume": 1200.5, "vwap": 26480.2, "low": 26300.0, "high": 26600.0,
         "change": 100.0, "change_pct": 0.38}]}),
    json.dumps({"channel": "book", "type": "snapshot", "data": [
        {"symbol": "BTC/USD", "bids": [{"price": 26500.0, "qty": 1.5},
                                       {"price": 26499.9, "qty": 0.3}],
         "asks": [{"price": 26500.1, "qty": 0.2}], "checksum": 2439117997}]}),
    json.dumps({"channel": "book", "type": "update", "data": [
        {"symbol": "BTC/USD", "bids": [{"price": 26499.9, "qty": 0.0}], "asks": [],
         "checksum": 1092355491, "timestamp": "2023-09-25T07:49:38.000001Z"}]}),
]


def test_v2_tables_from_documented_message_shapes(tmp_path: Path) -> None:
    spec = kraken.spec(["BTC/USD"], ["trade", "ticker", "book"])
    result = replayed(tmp_path, V2_MESSAGES, spec)
    assert not result.rejects
    assert result.stats["ok"] == 5 and result.stats["control"] == 2

    trades = result.normalized("trades")
    assert result.frames["trade"].height == 2  # the snapshot's trade stays a native row
    assert trades.select("symbol", "trade_id", "price", "amount", "side").rows() == [
        ("BTC/USD", "42", 26500.1, 0.00412, "buy")]
    assert epochs(trades, "exchange_time") == [1695628177_708706000]
    assert trades["exchange"].to_list() == ["kraken"]

    quotes = result.normalized("quotes")
    assert quotes.select("symbol", "bid_price", "bid_amount", "ask_price", "ask_amount").rows(
    ) == [("BTC/USD", 26500.0, 1.5, 26500.1, 0.2)]

    changes = result.normalized("book_changes")
    assert changes.select("is_snapshot", "side", "price", "amount").rows() == [
        (True, "bid", 26500.0, 1.5), (True, "bid", 26499.9, 0.3), (True, "ask", 26500.1, 0.2),
        (False, "bid", 26499.9, 0.0)]
    assert changes["exchange_time"].is_null().to_list() == [True, True, True, False]


# -- channels added from Kraken's documentation ----------------------------------------


def test_v2_ohlc_documented_messages_become_candles(tmp_path: Path) -> None:
    messages = lines("docs_examples_v2_ohlc.jsonl")
    spec = kraken.spec(["ALGO/USD", "MATIC/USD"], ["ohlc"], ohlc_interval=5)
    assert spec.subscribe[0] == {"method": "subscribe", "params": {
        "channel": "ohlc", "symbol": ["ALGO/USD", "MATIC/USD"], "interval": 5}}
    result = replayed(tmp_path, messages, spec)
    assert not result.rejects and result.stats["ok"] == len(messages)
    native = result.frames["ohlc"]
    candles = result.normalized("candles")
    assert candles.height == native.height == 3
    assert candles.select("symbol", "interval", "open", "high", "low", "close", "volume",
                          "closed").rows() == [
        ("ALGO/USD", "5", 0.09875, 0.09875, 0.09875, 0.09875, 201.86015, True),
        ("ALGO/USD", "5", 0.09875, 0.0988, 0.09875, 0.09875, 16255.46368, True),
        # the running candle: 16:25 + 5 min is after the message's 16:26:30
        ("MATIC/USD", "5", 0.5624, 0.5628, 0.5622, 0.5627, 30927.68066226, False)]
    assert epochs(candles, "open_time") == native["interval_begin_ns"].to_list()
    assert epochs(candles, "open_time")[2] == 1696436700 * NS  # 2023-10-04T16:25:00Z
    assert epochs(candles, "exchange_time")[2] == 1696436790_524394914
    assert candles["exchange"].unique().to_list() == ["kraken"]
    assert candles.null_count().select(pl.sum_horizontal(pl.all())).item() == 0


def futures_ticker(**fields: Any) -> str:
    return json.dumps({"time": 1612270825253, "feed": "ticker"} | fields)


def test_futures_ticker_documented_message_gives_quotes_and_the_derivative_ticker(
        tmp_path: Path) -> None:
    messages = [
        *lines("docs_examples_futures_ticker.jsonl"),
        # a dated future: no funding at all
        futures_ticker(product_id="FI_XBTUSD_210625", bid=35000.0, ask=35010.5,
                       bid_size=100, ask_size=200, last=35005.0, index=34803.45,
                       markPrice=35004.0, openInterest=5000000, tag="quarter",
                       maturityTime=1624633200000),
        # a perpetual whose rates are zero: Kraken leaves them out
        futures_ticker(product_id="PF_ETHUSD", bid=1.0, ask=2.0, bid_size=3, ask_size=4,
                       last=1.5, index=1.5, markPrice=1.5, openInterest=7,
                       next_funding_rate_time=1612274400000),
    ]
    spec = kraken.spec(["PI_XBTUSD", "FI_XBTUSD_210625", "PF_ETHUSD"], ["ticker"],
                       api="futures")
    result = replayed(tmp_path, messages, spec)
    assert not result.rejects and result.stats["ok"] == 3
    ticker = result.normalized("derivative_ticker")
    assert ticker["exchange"].unique().to_list() == ["kraken-futures"]
    documented = ticker.row(0, named=True)
    assert (documented["symbol"], documented["last_price"], documented["mark_price"],
            documented["index_price"], documented["funding_rate"],
            documented["predicted_funding_rate"], documented["open_interest"]) == (
        "PI_XBTUSD", 34852.0, 34844.25, 34803.45, 0.000135046879166667, 0.000146960125,
        107706940.0)
    assert epochs(ticker, "funding_time")[0] == 1612281600000 * MS
    assert epochs(ticker, "exchange_time") == [1612270825253 * MS] * 3
    dated, quiet = ticker.row(1, named=True), ticker.row(2, named=True)
    assert (dated["funding_rate"], dated["predicted_funding_rate"], dated["funding_time"]) == (
        None, None, None)
    assert (quiet["funding_rate"], quiet["predicted_funding_rate"]) == (0.0, 0.0)

    quotes = result.normalized("quotes")
    assert quotes.select("symbol", "bid_price", "bid_amount", "ask_price", "ask_amount").row(
        0) == ("PI_XBTUSD", 34832.5, 42864.0, 34847.5, 2300.0)
    assert quotes.null_count().select(pl.sum_horizontal(pl.all())).item() == 0


def interleaved(trades: list[str], other: str) -> Iterator[str]:
    for index, trade in enumerate(trades):
        yield trade
        if index == 0:
            yield other


@pytest.mark.parametrize(("api", "symbol", "trades", "other"), [
    ("v2", "BTC/USD", [v2_trade("update", 42, "buy"), v2_trade("update", 43, "sell")],
     lines("docs_examples_v2_ohlc.jsonl")[1]),
    ("futures", "PI_XBTUSD", [
        json.dumps({"feed": "trade", "product_id": "PI_XBTUSD", "uid": f"u{seq}",
                    "side": "buy", "type": "fill", "seq": seq, "time": 1612270825000,
                    "qty": 10.0, "price": 34850.0}) for seq in (7, 8)],
     lines("docs_examples_futures_ticker.jsonl")[0]),
], ids=["v2-ohlc", "futures-ticker"])
def test_a_channel_not_subscribed_is_unknown_and_leaves_no_gap(
        api: str, symbol: str, trades: list[str], other: str, tmp_path: Path) -> None:
    spec = kraken.spec([symbol], ["trade"], api=api)
    result = replayed(tmp_path, list(interleaved(trades, other)), spec)
    assert result.stats["rejects"]["unknown_type"] == 1
    assert result.stats["ok"] == 2 and result.stats["rejects"]["schema_error"] == 0
    assert result.stats["sequence_gaps"] == result.stats["sequence_missing"] == 0
    assert result.normalized("trades").height == 2


def test_a_bad_ohlc_interval_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"ohlc interval 2; choose from \(1, 5, 15"):
        kraken.spec(["BTC/USD"], ["ohlc"], ohlc_interval=2)
