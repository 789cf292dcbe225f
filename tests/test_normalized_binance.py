"""Binance's normalized tables, on the real captures in data/binance/ and documented messages.

Expected counts are read straight from the captures' JSON, not through the adapter: one
``trades`` row per ``trade`` message (USD-M: except the off-book ``INSURANCE_FUND`` and
``ADL`` fills, which have no taker) and per ``aggTrade`` message, one ``quotes`` row per
``bookTicker``, one ``book_changes`` row per price level of a ``depth`` diff (its ``b`` and
``a`` together), one ``candles`` row per ``kline``. ``markPrice`` and ``forceOrder`` come
from Binance's documentation (data/binance/docs_examples_*.jsonl), wrapped in the
combined-stream envelope as the endpoint sends them.
"""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import Recording, replay
from wsresearch.exchanges import binance
from wsresearch.normalize import COMMON, KINDS
from wsresearch.replay import ReplayResult

DATA = Path(__file__).resolve().parent.parent / "data" / "binance"
OFF_BOOK = ("INSURANCE_FUND", "ADL")


@dataclass(frozen=True)
class Capture:
    file: str
    market: str
    channels: tuple[str, ...]
    """What the capture's session subscribed (the spec it is replayed with)."""


HFT, CF = ("trade", "bookTicker", "depth"), ("aggTrade", "bookTicker", "depth", "kline")
CAPTURES = [
    Capture("hftbacktest_2024-08-08_spot_btcusdt_depth100ms_bookTicker_trade_first6000.jsonl",
            "spot", HFT),
    Capture("hftbacktest_2024-08-08_usdm_btcusdt_depth0ms_bookTicker_trade_first4000.jsonl.gz",
            "usdm", HFT),
    Capture("cryptofeed_2021-10-12_spot_combined_depth_bookTicker_kline_aggTrade.jsonl.gz",
            "spot", CF),
    Capture("cryptofeed_2021-10-12_binanceus_combined.jsonl.gz", "spot", CF),
    Capture("cryptofeed_2021-07-22_usdm_futures_combined.jsonl.gz", "usdm", CF),
]
IDS = [c.file.split(".")[0][:40] for c in CAPTURES]


def lines(file: str) -> list[str]:
    path = DATA / file
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return raw.decode("utf-8").splitlines()


def channel_of(message: dict[str, Any]) -> str:
    name = message["stream"].partition("@")[2].partition("@")[0]
    return "kline" if name.startswith("kline_") else name


def spec_for(market: str, channels: Sequence[str], **options: Any) -> Any:
    # An explicit URL, as a recording's replay passes one: no endpoint choice to warn about.
    return binance.spec(["btcusdt"], channels, market=market, url=binance.MARKETS[market],
                        **options)


def replayed(frames: list[str], spec: Any, folder: Path) -> ReplayResult:
    recording = Recording.from_frames(folder, frames, spec=spec)
    return replay(recording)  # the spec is rebuilt from the recording's manifest


@pytest.fixture(scope="module", params=CAPTURES, ids=IDS)
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         ) -> tuple[Capture, list[dict[str, Any]], ReplayResult]:
    capture: Capture = request.param
    frames = lines(capture.file)
    result = replayed(frames, spec_for(capture.market, capture.channels),
                      tmp_path_factory.mktemp("rec"))
    assert [(r.reason, r.detail) for r in result.rejects] == []
    return capture, [json.loads(text) for text in frames], result


def by_channel(messages: list[dict[str, Any]], channel: str) -> list[dict[str, Any]]:
    return [m["data"] for m in messages if channel_of(m) == channel]


def test_each_kind_has_the_rows_the_native_messages_give(case: Any) -> None:
    _, messages, result = case
    trades = [d for d in by_channel(messages, "trade") if d.get("X") not in OFF_BOOK]
    expected = {
        "trades": len(trades) + len(by_channel(messages, "aggTrade")),
        "quotes": len(by_channel(messages, "bookTicker")),
        "book_changes": sum(len(d["b"]) + len(d["a"]) for d in by_channel(messages, "depth")),
        "candles": len(by_channel(messages, "kline")),
        "derivative_ticker": 0,
        "liquidations": 0,
    }
    for kind, rows in expected.items():
        table = result.normalized(kind)
        assert table.schema == pl.Schema(COMMON | KINDS[kind]), kind
        assert table.height == rows, kind
    # The native rows, one per message, are what the tables were made from.
    assert sum(result.frames[c].height for c in ("trade", "aggTrade") if c in result.frames
               ) == expected["trades"]


def test_columns_are_filled_where_binance_gives_a_value(case: Any) -> None:
    capture, _, result = case
    exchange = {"spot": "binance", "usdm": "binance-usdm"}[capture.market]
    for kind in ("trades", "quotes", "book_changes", "candles"):
        table = result.normalized(kind)
        assert table["exchange"].unique().to_list() in ([exchange], []), kind
        given = [c for c in table.columns if c not in _NULL_BY_DESIGN[kind]]
        if kind == "quotes" and capture.market == "spot":
            given.remove("exchange_time")  # spot book tickers carry no time
            assert table["exchange_time"].null_count() == table.height
        nulls = {c: n for c, n in zip(given, table.select(given).null_count().row(0),
                                      strict=True) if n}
        assert nulls == {}, kind
        assert table["symbol"].str.len_chars().min() in (None, *range(2, 31)), kind
    assert set(result.normalized("trades")["side"]) <= {"buy", "sell"}
    book = result.normalized("book_changes")
    assert set(book["side"]) <= {"bid", "ask"}
    assert not book["is_snapshot"].any()  # a diff stream; the snapshot comes over REST
    assert (book["amount"] >= 0).all() and (book["price"] > 0).all()
    candles = result.normalized("candles")
    assert set(candles["interval"]) <= {"1m"}
    assert (candles["high"] >= candles["low"]).all()


# Columns a Binance kind leaves null because Binance does not send them (see the docs page).
_NULL_BY_DESIGN: dict[str, set[str]] = {
    "trades": set(), "quotes": set(), "book_changes": set(), "candles": set(),
    "derivative_ticker": {"last_price", "predicted_funding_rate", "open_interest"},
    "liquidations": {"liquidation_id"},
}


def test_local_time_is_the_receive_time_and_frames_follow_the_recording(case: Any) -> None:
    _, _, result = case
    for kind in ("trades", "quotes", "book_changes", "candles"):
        table = result.normalized(kind)
        assert table["local_time"].is_sorted(), kind
        assert table["generation"].unique().to_list() in ([1], []), kind


def _rows(table: pl.DataFrame, **where: Any) -> list[dict[str, Any]]:
    return table.filter(**where).drop("local_time", "generation", "frame_seq").to_dicts()


def _ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


# Rows checked by hand against the message text: (capture, trade_id, price, amount, side,
# trade time in ms). Binance's ``m`` is "is the buyer the market maker?": true means the
# seller was the taker, so the taker's side is ``sell``.
HAND_TRADES = [
    # {"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true}
    (0, "3735683259", 61837.63, 0.02, "sell", 1723161255342),
    # {"t":3735683305,"p":"61828.02000000","q":"0.00810000","T":1723161255856,"m":false}
    (0, "3735683305", 61828.02, 0.0081, "buy", 1723161255856),
    # {"T":1723161256322,"t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}
    (1, "5266583935", 61800.3, 0.006, "buy", 1723161256322),
    # {"T":1723161256523,"t":5266583939,"p":"61800.20","q":"0.015","X":"MARKET","m":true}
    (1, "5266583939", 61800.2, 0.015, "sell", 1723161256523),
    # aggTrade {"a":15683430,"p":"0.35280000","q":"58.00000000","T":1633998523963,"m":false}
    (2, "15683430", 0.3528, 58.0, "buy", 1633998523963),
    # aggTrade {"a":16599292,"p":"1.01100","q":"10","T":1626992741421,"m":false}
    (4, "16599292", 1.011, 10.0, "buy", 1626992741421),
    # aggTrade {"a":14888302,"p":"0.01731","q":"312","T":1626992742134,"m":true}
    (4, "14888302", 0.01731, 312.0, "sell", 1626992742134),
]


@pytest.mark.parametrize("check", HAND_TRADES, ids=[c[1] for c in HAND_TRADES])
def test_trade_sides_follow_binances_maker_flag(check: Any, tmp_path: Path) -> None:
    index, trade_id, price, amount, side, ms = check
    capture = CAPTURES[index]
    result = replayed(lines(capture.file), spec_for(capture.market, capture.channels),
                      tmp_path / "r")
    [row] = _rows(result.normalized("trades"), trade_id=trade_id)
    assert (row["price"], row["amount"], row["side"], row["exchange_time"]) == (
        price, amount, side, _ms(ms))


def test_every_trade_side_agrees_with_the_message_text(case: Any) -> None:
    _, messages, result = case
    expected = {str(d["t"]): "sell" if d["m"] else "buy" for d in by_channel(messages, "trade")}
    expected |= {str(d["a"]): "sell" if d["m"] else "buy"
                 for d in by_channel(messages, "aggTrade")}
    table = result.normalized("trades")
    assert dict(zip(table["trade_id"], table["side"], strict=True)) == expected


def test_a_depth_diff_becomes_one_row_per_level_bids_first(tmp_path: Path) -> None:
    capture = CAPTURES[0]
    result = replayed(lines(capture.file), spec_for("spot", HFT), tmp_path / "r")
    # The first message: 3 bids, all removed (qty 0), then 9 asks, E = 1723161255208.
    seq = result.frames["depth"].filter(final_update_id=50093239202)["frame_seq"].item()
    rows = _rows(result.normalized("book_changes"), frame_seq=seq)
    assert [(r["side"], r["price"], r["amount"]) for r in rows[:4]] == [
        ("bid", 61737.63, 0.0), ("bid", 61730.17, 0.0), ("bid", 56854.58, 0.0),
        ("ask", 61837.64, 1.54698)]
    assert len(rows) == 12 and [r["side"] for r in rows].count("ask") == 9
    assert {r["exchange_time"] for r in rows} == {_ms(1723161255208)}
    assert {r["symbol"] for r in rows} == {"BTCUSDT"} and not any(r["is_snapshot"] for r in rows)


def test_book_changes_keep_every_level_of_every_diff_in_order(case: Any) -> None:
    _, messages, result = case
    expected = [(d["s"], side, float(p), float(q)) for d in by_channel(messages, "depth")
                for side, levels in (("bid", d["b"]), ("ask", d["a"])) for p, q in levels]
    table = result.normalized("book_changes")
    assert list(table.select("symbol", "side", "price", "amount").iter_rows()) == expected


def test_quotes_and_candles_by_hand(tmp_path: Path) -> None:
    result = replayed(lines(CAPTURES[0].file), spec_for("spot", HFT), tmp_path / "s")
    # {"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000",
    #  "a":"61837.64000000","A":"1.54698000"}: spot book tickers carry no time.
    seq = result.frames["bookTicker"].filter(update_id=50093239212)["frame_seq"].item()
    [quote] = _rows(result.normalized("quotes"), frame_seq=seq)
    assert quote == {"exchange": "binance", "symbol": "BTCUSDT", "exchange_time": None,
                     "bid_price": 61837.63, "bid_amount": 3.78826, "ask_price": 61837.64,
                     "ask_amount": 1.54698}
    result = replayed(lines(CAPTURES[4].file), spec_for("usdm", CF), tmp_path / "u")
    # {"E":1626992741424,"s":"CTKUSDT","k":{"t":1626992700000,"i":"1m","o":"1.01000",
    #  "c":"1.01100","h":"1.01100","l":"1.01000","v":"3917","x":false,...}}
    [candle] = _rows(result.normalized("candles"), symbol="CTKUSDT",
                     exchange_time=_ms(1626992741424))
    assert candle == {"exchange": "binance-usdm", "symbol": "CTKUSDT",
                      "exchange_time": _ms(1626992741424), "interval": "1m",
                      "open_time": _ms(1626992700000), "open": 1.01, "high": 1.011,
                      "low": 1.01, "close": 1.011, "volume": 3917.0, "closed": False}


def test_normalizing_leaves_the_native_frames_as_they_were(case: Any, tmp_path: Path) -> None:
    capture, _, result = case
    before = {name: frame.clone() for name, frame in result.frames.items()}
    for kind in KINDS:
        result.normalized(kind)
    assert result.frames.keys() == before.keys()
    for name, frame in before.items():
        assert_frame_equal(result.frames[name], frame)
    # ... and are the rows a spec without normalizers gives.
    spec = spec_for(capture.market, capture.channels)
    plain = spec.replace(channels=tuple(c.model_copy(update={"normalized": {}})
                                        for c in spec.channels))
    recording = Recording.from_frames(tmp_path / "r", lines(capture.file), spec=spec)
    for name, frame in replay(recording, plain).frames.items():
        assert_frame_equal(frame, before[name])


def test_prices_and_sizes_give_back_the_exchanges_decimals(case: Any) -> None:
    # The native columns are float64: exact in the sense that repr() of each float is the
    # decimal Binance sent (trailing zeros aside), for every value of every capture.
    _, messages, _ = case
    fields = {"trade": ("p", "q"), "aggTrade": ("p", "q"), "bookTicker": ("b", "B", "a", "A")}
    texts: list[str] = []
    for m in messages:
        channel, d = channel_of(m), m["data"]
        if channel == "depth":
            texts += [v for level in (*d["b"], *d["a"]) for v in level]
        elif channel == "kline":
            texts += [d["k"][f] for f in ("o", "h", "l", "c", "v", "q")]
        else:
            texts += [d[f] for f in fields[channel]]
    assert texts
    lost = [t for t in texts if Decimal(repr(float(t))) != Decimal(t)]
    assert lost == []


# --- channels from Binance's documentation: markPrice and forceOrder (USD-M) ---------------

def docs_examples(channel: str) -> list[dict[str, Any]]:
    return [json.loads(text) for text in lines(f"docs_examples_{channel}.jsonl")]


def enveloped(stream: str, data: dict[str, Any]) -> str:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


def test_documented_mark_price_messages_parse_and_normalize(tmp_path: Path) -> None:
    examples = docs_examples("markPrice")
    delivery = copy.deepcopy(examples[0]) | {"s": "BTCUSDT_240927", "r": "", "T": 0}
    frames = [enveloped("btcusdt@markPrice@1s", d) for d in examples]
    frames.append(enveloped("btcusdt_240927@markPrice@1s", delivery))  # documented blanks
    result = replayed(frames, spec_for("usdm", ["markPrice"]), tmp_path / "r")
    assert result.rejects == [] and result.stats["ok"] == len(frames)
    table = result.normalized("derivative_ticker")
    assert table.drop("local_time", "generation", "frame_seq").to_dicts() == [
        {"exchange": "binance-usdm", "symbol": "BTCUSDT", "exchange_time": _ms(1562305380000),
         "last_price": None, "mark_price": 11794.15, "index_price": 11784.62659091,
         "funding_rate": 0.00038167, "predicted_funding_rate": None,
         "funding_time": _ms(1562306400000), "open_interest": None},
        {"exchange": "binance-usdm", "symbol": "BTCUSDT_240927",
         "exchange_time": _ms(1562305380000), "last_price": None, "mark_price": 11794.15,
         "index_price": 11784.62659091, "funding_rate": None, "predicted_funding_rate": None,
         "funding_time": None, "open_interest": None},
    ]
    assert result.frames["markPrice"]["estimated_settle_price"][0] == 11784.25641265


def test_documented_liquidation_messages_parse_and_normalize(tmp_path: Path) -> None:
    examples = docs_examples("forceOrder")
    frames = [enveloped("btcusdt@forceOrder", d) for d in examples]
    result = replayed(frames, spec_for("usdm", ["forceOrder"]), tmp_path / "r")
    assert result.rejects == [] and result.stats["ok"] == len(frames)
    # {"o":{"S":"SELL","q":"0.014","p":"9910","ap":"9910","X":"FILLED","z":"0.014",
    #  "T":1568014460893}}: a SELL liquidation order closes a long position.
    assert result.normalized("liquidations").drop("local_time", "generation",
                                                  "frame_seq").to_dicts() == [
        {"exchange": "binance-usdm", "symbol": "BTCUSDT", "exchange_time": _ms(1568014460893),
         "liquidation_id": None, "price": 9910.0, "amount": 0.014, "side": "sell"}]
    native = result.frames["forceOrder"].row(0, named=True)
    assert (native["side"], native["order_type"], native["status"], native["qty"]) == (
        "SELL", "LIMIT", "FILLED", 0.014)


def test_unsubscribed_streams_are_unknown_and_leave_the_sequence_alone(tmp_path: Path) -> None:
    frames = lines(CAPTURES[1].file)  # USD-M: depth 313, bookTicker 3117, trade 569
    extra = [enveloped("btcusdt@markPrice@1s", docs_examples("markPrice")[0]),
             enveloped("btcusdt@forceOrder", docs_examples("forceOrder")[0])]
    mixed = [*frames[:50], *extra, *frames[50:100], *extra, *frames[100:]]
    result = replayed(mixed, spec_for("usdm", ["depth"]), tmp_path / "r")
    stats = result.stats
    assert stats["ok"] == 313
    assert stats["invalid"] == stats["rejects"]["unknown_type"] == len(mixed) - 313
    assert stats["sequence_gaps"] == stats["sequence_repeats"] == 0
    assert stats["sequence_out_of_order"] == 0
    assert result.normalized("book_changes").height > 0
    for kind in ("trades", "quotes", "derivative_ticker", "liquidations"):
        assert result.normalized(kind).height == 0


def test_with_trade_and_aggtrade_the_trades_table_counts_each_fill_once(tmp_path: Path) -> None:
    frames = lines(CAPTURES[0].file) + lines(CAPTURES[2].file)  # trade, then aggTrade
    both = replayed(frames, spec_for("spot", ["trade", "aggTrade"]), tmp_path / "both")
    assert both.frames["trade"].height == 1123 and both.frames["aggTrade"].height == 2
    assert both.normalized("trades").height == 1123  # the fills, not their aggregates too
    alone = replayed(frames, spec_for("spot", ["aggTrade"]), tmp_path / "alone")
    assert alone.normalized("trades")["trade_id"].to_list() == ["15683430", "9213679"]


def test_off_book_usdm_fills_have_no_taker_and_no_trades_row(tmp_path: Path) -> None:
    # The capture's first trade, re-labelled as Binance labels insurance-fund and ADL fills.
    first = next(json.loads(t) for t in lines(CAPTURES[1].file) if "@trade" in t)
    frames = [json.dumps(first)]
    for n, kind in enumerate(("INSURANCE_FUND", "ADL", "LIQUIDATION"), start=1):
        frames.append(json.dumps(first | {"data": first["data"] | {
            "t": first["data"]["t"] + n, "X": kind}}))
    result = replayed(frames, spec_for("usdm", ["trade"]), tmp_path / "r")
    assert result.frames["trade"]["order_type"].to_list() == [
        "MARKET", "INSURANCE_FUND", "ADL", "LIQUIDATION"]
    assert result.normalized("trades")["trade_id"].to_list() == ["5266583935", "5266583938"]


# --- endpoints -------------------------------------------------------------------------------

def test_usdm_connects_to_the_endpoint_that_serves_its_channels() -> None:
    public, market = binance.USDM_ENDPOINTS["public"], binance.USDM_ENDPOINTS["market"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert binance.spec(market="usdm").url == public  # trade, bookTicker
        assert binance.spec(["btcusdt"], ["depth"], market="usdm").url == public
        assert binance.spec(["btcusdt"], ["aggTrade", "kline", "markPrice", "forceOrder"],
                            market="usdm").url == market
        assert binance.spec(["btcusdt"], list(binance.CHANNELS)).url == binance.MARKETS["spot"]
        given = "ws://127.0.0.1:9/x"
        assert binance.spec(["btcusdt"], ["trade", "kline"], given, market="usdm").url == given
    with pytest.warns(UserWarning, match=r"\['kline', 'markPrice'\] stay silent"):
        spec = binance.spec(["btcusdt"], ["trade", "kline", "markPrice"], market="usdm")
    assert spec.url == public


def test_usdm_channels_are_refused_on_spot_and_listed_per_market() -> None:
    with pytest.raises(ValueError, match=r"\['markPrice'\] are USD-M futures streams"):
        binance.spec(["btcusdt"], ["trade", "markPrice"])
    assert binance.MARKET_CHANNELS["usdm"][-2:] == ("markPrice", "forceOrder")
    assert binance.stream_names(["btcusdt"], ["markPrice", "forceOrder"], "usdm") == [
        "btcusdt@markPrice@1s", "btcusdt@forceOrder"]
