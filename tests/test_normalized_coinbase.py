"""Coinbase normalized tables: the real Exchange capture, the documented Advanced Trade messages.

Row counts are derived from the native rows: one trade per ``match`` row (Exchange; a
``last_match``, the last trade before subscribing, is of the past) or per exploded
``market_trades`` row of an ``update`` (Advanced Trade; a ``snapshot`` re-sends trades made
before subscribing); one quote per ticker row
that carries a best bid or ask (where the spec keeps no book: with one, the book's quotes);
one book change per level (every ``[price, size]`` of a
snapshot's ``bids`` and ``asks``, every ``changes`` entry of an ``l2update``, every exploded
``level2`` row). Sides follow Coinbase's documented conventions: both APIs send the maker's
side, so the taker's is the other one.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import Recording, replay
from wsresearch.exchanges import coinbase
from wsresearch.normalize import COMMON, KINDS
from wsresearch.pipeline import normalized_books

DATA = Path(__file__).resolve().parent.parent / "data" / "coinbase"
CAPTURE = DATA / "cryptofeed_2021-04-17_exchange_level2_ticker_matches.jsonl.gz"
ADVANCED_EXAMPLES = ("market_trades", "ticker", "level2", "heartbeats", "candles", "status")
NS = 1_000_000_000


def exchange_spec() -> Any:
    return coinbase.spec(["BTC-USD"], ["ticker", "matches", "level2"], api="exchange")


def replayed(lines: list[str], spec: Any, where: Path) -> Any:
    return replay(Recording.from_frames(where, lines, spec=spec))


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Any:
    lines = gzip.decompress(CAPTURE.read_bytes()).decode("utf-8").splitlines()
    return replayed(lines, exchange_spec(), tmp_path_factory.mktemp("cb") / "rec")


def example(channel: str) -> list[str]:
    return (DATA / f"docs_examples_{channel}.jsonl").read_text(encoding="utf-8").splitlines()


def check_common(table: pl.DataFrame, kind: str) -> None:
    assert table.schema == pl.Schema(COMMON | KINDS[kind])
    assert table["exchange"].unique().to_list() == ["coinbase"]
    for column in ("symbol", "local_time", "generation", "frame_seq"):
        assert table[column].null_count() == 0, column


# -- the Exchange feed, on the real capture -------------------------------------------------


def test_exchange_trades_are_one_per_match_with_the_takers_side(capture: Any) -> None:
    every = capture.frames["match"]
    native = every.filter(pl.col("type") == "match")
    trades = capture.normalized("trades")
    check_common(trades, "trades")
    # The 10 last_match rows, one per product on subscribing, are trades of up to 107 s
    # before it: native rows, not trades of the session (as Kraken's snapshot trades).
    assert (every.height, trades.height, native.height) == (107, 97, 97)
    assert set(trades["side"]) == {"buy", "sell"}
    # Coinbase: "the side field indicates the maker order side"; the taker is the other one.
    by_id = native.select(pl.col("trade_id").cast(pl.String), "side", "price", "size",
                          "time_ns", "product_id")
    joined = trades.join(by_id, on="trade_id", validate="1:1")
    assert joined.height == trades.height
    assert (joined["side"] != joined["side_right"]).all()
    assert joined.select((pl.col("price") == pl.col("price_right")).all(),
                         (pl.col("amount") == pl.col("size")).all(),
                         (pl.col("symbol") == pl.col("product_id")).all()).row(0) == (
        True, True, True)
    assert (joined["exchange_time"].dt.epoch("ns") == joined["time_ns"]).all()
    assert trades.drop("exchange_time").null_count().row(0) == (0,) * (trades.width - 1)
    assert trades["exchange_time"].null_count() == 0


def test_exchange_trade_sides_checked_by_hand(capture: Any) -> None:
    trades = capture.normalized("trades")
    # {"type":"last_match","trade_id":881613,...,"product_id":"BAND-GBP",...}: made before
    # subscribing, a native row only.
    assert capture.frames["match"].filter(pl.col("trade_id") == 881613)["type"].to_list() == [
        "last_match"]
    assert trades.filter(pl.col("trade_id") == "881613").is_empty()
    # {"type":"match","trade_id":280232,...,"side":"sell","size":"985",
    #  "price":"0.00001305","product_id":"SKL-BTC","time":"2021-04-17T16:43:37.089723Z"}
    match = trades.filter(pl.col("trade_id") == "280232").row(0, named=True)
    assert (match["symbol"], match["price"], match["amount"], match["side"]) == (
        "SKL-BTC", 0.00001305, 985.0, "buy")
    assert match["exchange_time"].isoformat() == "2021-04-17T16:43:37.089723+00:00"


def test_exchange_taker_side_agrees_with_the_ticker_of_the_same_trade(capture: Any) -> None:
    # The Exchange ticker names the taker's side of its last trade: every trade of the
    # capture has a ticker with the same trade_id, and their sides agree.
    tickers = capture.frames["ticker"].select(
        pl.col("product_id").alias("symbol"), pl.col("trade_id").cast(pl.String),
        pl.col("side").alias("ticker_side"))
    joined = capture.normalized("trades").join(tickers, on=["symbol", "trade_id"])
    assert joined.height == 97
    assert (joined["side"] == joined["ticker_side"]).all()


def test_exchange_quotes_come_from_the_book_where_level2_is_kept(capture: Any) -> None:
    # A ticker tells the top when a trade prints; the book, every change of it.
    quotes = capture.normalized("quotes")
    assert quotes.schema == pl.Schema(COMMON | KINDS["quotes"])  # a book's: no frame_seq
    assert_frame_equal(quotes, normalized_books("quotes", capture.books.quotes(), "coinbase"))
    ticker = capture.frames["ticker"]
    assert quotes.height > 5 * ticker.height
    assert quotes["bid_amount"].null_count() == 0  # the book knows its sizes
    assert (quotes["bid_price"] < quotes["ask_price"]).all()
    skl = quotes.filter(pl.col("symbol") == "SKL-USD")
    assert skl.height > 300 and ticker.filter(pl.col("product_id") == "SKL-USD").height < 60


def test_exchange_quotes_come_from_the_ticker_without_the_book(tmp_path: Path) -> None:
    lines = gzip.decompress(CAPTURE.read_bytes()).decode("utf-8").splitlines()
    capture = replayed(lines, coinbase.spec(["BTC-USD"], ["ticker", "matches"],
                                            api="exchange"), tmp_path / "r")
    native = capture.frames["ticker"]
    quotes = capture.normalized("quotes")
    check_common(quotes, "quotes")
    assert quotes.height == native.height == 107  # every ticker row carries a bid and ask
    assert quotes["bid_price"].to_list() == native["best_bid"].to_list()
    assert quotes["ask_price"].to_list() == native["best_ask"].to_list()
    assert (quotes["bid_price"] <= quotes["ask_price"]).all()
    # The 2021 feed sent no best_bid_size/best_ask_size: null, as in the native rows.
    assert quotes["bid_amount"].null_count() == native["best_bid_size"].null_count() == 107
    assert quotes["ask_amount"].null_count() == native["best_ask_size"].null_count() == 107
    assert quotes["exchange_time"].null_count() == 0


def test_exchange_book_changes_are_one_row_per_level(capture: Any) -> None:
    snapshots, updates = capture.frames["snapshot"], capture.frames["l2update"]
    changes = capture.normalized("book_changes")
    check_common(changes, "book_changes")
    snapshot_levels = int(snapshots["bids"].list.len().sum() + snapshots["asks"].list.len().sum())
    update_levels = int(updates["changes"].list.len().sum())
    assert changes.height == snapshot_levels + update_levels == 18081
    assert changes["is_snapshot"].sum() == snapshot_levels == 8362
    assert set(changes["side"]) == {"bid", "ask"}
    assert changes.select("side", "price", "amount", "is_snapshot").null_count().sum_horizontal(
        ).item() == 0
    # A snapshot has no time; every update has its own.
    assert changes.filter("is_snapshot")["exchange_time"].null_count() == snapshot_levels
    assert changes.filter(~pl.col("is_snapshot"))["exchange_time"].null_count() == 0
    # l2update sides: buy is a bid, sell an ask, level for level.
    native_sides = updates["changes"].explode().struct.field("side")
    book = changes.filter(~pl.col("is_snapshot"))
    assert book["side"].to_list() == native_sides.replace_strict(
        {"buy": "bid", "sell": "ask"}).to_list()


def test_exchange_book_changes_checked_by_hand(capture: Any) -> None:
    changes = capture.normalized("book_changes")
    # The first snapshot: {"type":"snapshot","product_id":"BAND-GBP",
    #   "asks":[["14.8024","12.77"],...],"bids":[["14.7693","27.51"],...]}
    band = changes.filter(pl.col("symbol") == "BAND-GBP", "is_snapshot")
    assert band.row(0, named=True)["side"] == "bid"
    assert band.select("side", "price", "amount").row(0) == ("bid", 14.7693, 27.51)
    first_ask = band.filter(pl.col("side") == "ask").row(0, named=True)
    assert (first_ask["price"], first_ask["amount"]) == (14.8024, 12.77)
    # The first update: {"type":"l2update","product_id":"SKL-BTC",
    #   "changes":[["sell","0.00001306","660.5"]],"time":"2021-04-17T16:43:37.075687Z"}
    update = changes.filter(~pl.col("is_snapshot")).row(0, named=True)
    assert (update["symbol"], update["side"], update["price"], update["amount"]) == (
        "SKL-BTC", "ask", 0.00001306, 660.5)
    assert update["exchange_time"].isoformat() == "2021-04-17T16:43:37.075687+00:00"


def test_normalizing_leaves_the_native_frames_as_they_were(capture: Any, tmp_path: Path,
                                                           ) -> None:
    lines = gzip.decompress(CAPTURE.read_bytes()).decode("utf-8").splitlines()
    untouched = replayed(lines, exchange_spec(), tmp_path / "again")
    before = {name: frame.clone() for name, frame in capture.frames.items()}
    for kind in KINDS:
        capture.normalized(kind)
    assert capture.frames.keys() == untouched.frames.keys()
    for name, frame in capture.frames.items():
        assert_frame_equal(frame, before[name])
        assert_frame_equal(frame, untouched.frames[name])


def test_kinds_no_exchange_channel_holds_are_empty(capture: Any) -> None:
    for kind in ("derivative_ticker", "liquidations", "candles"):
        table = capture.normalized(kind)
        assert table.height == 0
        assert table.schema == pl.Schema(COMMON | KINDS[kind])


def test_an_exchange_ticker_with_sizes_gives_full_quotes(tmp_path: Path) -> None:
    # The feed's current ticker shape carries the sizes of the best bid and ask.
    message = {"type": "ticker", "sequence": 37475248783, "product_id": "ETH-USD",
               "price": "1285.22", "best_bid": "1285.04", "best_bid_size": "0.46688654",
               "best_ask": "1285.27", "best_ask_size": "1.56637040", "side": "buy",
               "time": "2022-10-19T23:28:22.061769Z", "trade_id": 370843401,
               "last_size": "11.4396987"}
    spec = coinbase.spec(["ETH-USD"], ["ticker"], api="exchange")
    result = replayed([json.dumps(message)], spec, tmp_path / "r")
    assert result.stats["ok"] == 1
    assert result.normalized("quotes").select(
        "symbol", "bid_price", "bid_amount", "ask_price", "ask_amount").row(0) == (
        "ETH-USD", 1285.04, 0.46688654, 1285.27, 1.5663704)


# -- Advanced Trade, on the documented messages ---------------------------------------------


@pytest.mark.parametrize("channel", ADVANCED_EXAMPLES)
def test_each_documented_advanced_trade_message_parses(channel: str, tmp_path: Path) -> None:
    lines = example(channel)
    result = replayed(lines, coinbase.spec(["BTC-USD"], [channel]), tmp_path / "r")
    assert [(r.reason, r.detail) for r in result.rejects] == []
    assert result.stats["ok"] == len(lines)
    assert result.stats["invalid"] == result.stats["sequence_gaps"] == 0
    assert result.frames[channel].height >= 1


def advanced(channel: str, tmp_path: Path) -> Any:
    return replayed(example(channel), coinbase.spec(["BTC-USD"], [channel]), tmp_path / "r")


def test_advanced_trades_flip_the_makers_side(tmp_path: Path) -> None:
    # Coinbase's example is the snapshot sent on subscribing: trades made before it, a
    # native row only. The same trade in an update is a trade of the session.
    snapshot = advanced("market_trades", tmp_path / "snapshot")
    assert snapshot.frames["market_trades"]["event"].to_list() == ["snapshot"]
    assert snapshot.normalized("trades").is_empty()
    lines = [line.replace('"type":"snapshot"', '"type":"update"')
             for line in example("market_trades")]
    assert lines != example("market_trades")
    result = replayed(lines, coinbase.spec(["BTC-USD"], ["market_trades"]), tmp_path / "r")
    native, trades = result.frames["market_trades"], result.normalized("trades")
    check_common(trades, "trades")
    assert trades.height == native.height == 1
    # {"trade_id":"000000000","product_id":"ETH-USD","price":"1260.01","size":"0.3",
    #  "side":"BUY","time":"2019-08-14T20:42:27.265Z"}: a buying maker, a selling taker.
    row = trades.row(0, named=True)
    assert (row["symbol"], row["trade_id"], row["price"], row["amount"], row["side"]) == (
        "ETH-USD", "000000000", 1260.01, 0.3, "sell")
    assert row["exchange_time"].isoformat() == "2019-08-14T20:42:27.265000+00:00"


def test_advanced_quotes_come_from_the_ticker(tmp_path: Path) -> None:
    quotes = advanced("ticker", tmp_path).normalized("quotes")
    check_common(quotes, "quotes")
    assert quotes.select("symbol", "bid_price", "bid_amount", "ask_price", "ask_amount").rows(
        ) == [("BTC-USD", 21931.98, 8000.21, 21933.98, 8038.07770938)]
    assert quotes["exchange_time"].dt.epoch("ns").item() == 1_675_974_637_167_359_596


def test_a_ticker_batch_row_without_a_bid_or_ask_is_no_quote(tmp_path: Path) -> None:
    batch = json.loads(example("ticker")[0]) | {"channel": "ticker_batch", "sequence_num": 1}
    for key in ("best_bid", "best_bid_quantity", "best_ask", "best_ask_quantity"):
        del batch["events"][0]["tickers"][0][key]
    lines = [*example("ticker"), json.dumps(batch)]
    result = replayed(lines, coinbase.spec(["BTC-USD"], ["ticker"]), tmp_path / "r")
    assert result.frames["ticker"].height == 2
    assert result.normalized("quotes").height == 1


def test_advanced_book_changes_are_one_row_per_level(tmp_path: Path) -> None:
    result = advanced("level2", tmp_path)
    changes = result.normalized("book_changes")
    check_common(changes, "book_changes")
    assert changes.height == result.frames["level2"].height == 2
    assert changes.select("is_snapshot", "side", "price", "amount").rows() == [
        (True, "bid", 21921.73, 0.06317902), (True, "bid", 21921.3, 0.02)]
    # The snapshot's levels say 1970-01-01T00:00:00Z: the message's timestamp stands in.
    assert changes["exchange_time"].dt.epoch("ns").to_list() == [1_675_974_770_714_964_855] * 2


def test_an_offer_is_an_ask_and_an_update_is_no_snapshot(tmp_path: Path) -> None:
    message = json.loads(example("level2")[0])
    message["events"][0]["type"] = "update"
    message["events"][0]["updates"] = [{"side": "offer", "event_time": "2023-02-09T20:32:50Z",
                                         "price_level": "21930.5", "new_quantity": "0"}]
    result = replayed([json.dumps(message)], coinbase.spec(["BTC-USD"], ["level2"]),
                      tmp_path / "r")
    assert result.normalized("book_changes").select(
        "is_snapshot", "side", "price", "amount").row(0) == (False, "ask", 21930.5, 0.0)
    assert result.normalized("book_changes")["exchange_time"].dt.epoch("ns").item() == (
        1_675_974_770 * NS)


def test_advanced_candles(tmp_path: Path) -> None:
    result = advanced("candles", tmp_path)
    candles = result.normalized("candles")
    check_common(candles, "candles")
    assert candles.height == result.frames["candles"].height == 1
    row = candles.row(0, named=True)
    assert (row["symbol"], row["interval"], row["open"], row["high"], row["low"], row["close"],
            row["volume"], row["closed"]) == (
        "ETH-USD", "FIVE_MINUTE", 1867.38, 1867.72, 1865.63, 1866.81, 0.20269406, None)
    assert candles["open_time"].dt.epoch("ns").item() == 1_688_998_200 * NS


def test_the_status_channel_keeps_increments_as_text(tmp_path: Path) -> None:
    result = advanced("status", tmp_path)
    row = result.frames["status"].row(0, named=True)
    assert (row["id"], row["product_type"], row["base_increment"], row["quote_increment"],
            row["status"], row["min_market_funds"]) == (
        "BTC-USD", "SPOT", "0.00000001", "0.01", "online", "1")
    for kind in KINDS:
        assert result.normalized(kind).height == 0


def test_new_channels_are_offered_and_subscribed() -> None:
    assert {"candles", "status"} <= set(coinbase.ADVANCED_CHANNELS)
    spec = coinbase.spec(["eth-usd"], ["candles", "status", "heartbeats"])
    assert spec.subscribe == tuple(
        {"type": "subscribe", "product_ids": ["ETH-USD"], "channel": name}
        for name in ("candles", "status", "heartbeats"))
    assert spec.channel_names == ["candles", "status", "heartbeats", "subscriptions"]
    assert spec.exchange_name == "coinbase"
    assert coinbase.spec(api="exchange").exchange_name == "coinbase"


# -- Advanced Trade: one sequence_num per message of the connection -------------------------


def envelope(channel: str, number: int, events: list[Any]) -> str:
    return json.dumps({"channel": channel, "client_id": "",
                       "timestamp": f"2023-02-09T20:19:{number:02d}.5Z",
                       "sequence_num": number, "events": events})


TRADE = [{"type": "update", "trades": [{
    "trade_id": "7", "product_id": "BTC-USD", "price": "21900.5", "size": "0.1",
    "side": "SELL", "time": "2023-02-09T20:19:35.1Z"}]}]


def connection() -> list[str]:
    """Acks, trades, and messages of channels a ``market_trades`` spec does not subscribe."""
    return [
        envelope("subscriptions", 0, [{"subscriptions": {"market_trades": ["BTC-USD"]}}]),
        envelope("market_trades", 1, TRADE),
        envelope("l2_data", 2, [{"type": "update", "product_id": "BTC-USD", "updates": []}]),
        envelope("candles", 3, [{"type": "update", "candles": []}]),
        envelope("some_new_channel", 4, [{}]),
        envelope("market_trades", 5, TRADE),
        envelope("heartbeats", 6, [{"current_time": "x", "heartbeat_counter": "1"}]),
        envelope("market_trades", 7, TRADE),
    ]


def test_messages_of_unsubscribed_channels_are_control_and_advance_the_sequence(
    tmp_path: Path,
) -> None:
    spec = coinbase.spec(["BTC-USD"], ["market_trades"])
    result = replayed(connection(), spec, tmp_path / "r")
    stats = result.stats
    assert stats["invalid"] == stats["exchange_errors"] == 0
    assert stats["sequence_gaps"] == stats["sequence_missing"] == stats["sequence_repeats"] == 0
    assert result.frames["market_trades"].height == 3
    # Counted as control, not kept as rows: only the ack is a row.
    assert stats["control"] == 4  # l2_data, candles, some_new_channel, heartbeats
    assert stats["ok"] == 4
    assert result.frames["subscriptions"].select("sequence_num", "channel").rows() == [
        (0, "subscriptions")]
    assert result.normalized("trades")["side"].to_list() == ["buy"] * 3


def test_without_counting_control_numbers_each_one_would_look_like_a_gap(tmp_path: Path) -> None:
    """The connection-wide count is what prevents the false gaps."""
    spec = coinbase.spec(["BTC-USD"], ["market_trades"])
    assert spec.control_sequence is not None
    blind = spec.model_copy(update={"control_sequence": None})
    result = replay(Recording.from_frames(tmp_path / "r", connection(), spec=spec), blind)
    assert result.stats["control"] == 4
    # The trades numbered 5 and 7 follow numbers the channels never saw.
    assert result.stats["sequence_gaps"] == 2
    assert result.gaps.select("expected", "first").rows() == [(2, 5), (6, 7)]


def test_a_gap_found_on_an_unsubscribed_channels_message_is_counted(tmp_path: Path) -> None:
    lines = connection()
    del lines[2]  # sequence_num 2: the next message, of an unsubscribed channel, shows the gap
    result = replayed(lines, coinbase.spec(["BTC-USD"], ["market_trades"]), tmp_path / "r")
    assert result.stats["sequence_gaps"] == 1
    assert result.gaps.select("channel", "expected", "first").rows() == [("unsubscribed", 2, 3)]


def test_a_lost_message_is_still_a_gap(tmp_path: Path) -> None:
    lines = connection()
    del lines[3]  # sequence_num 3
    result = replayed(lines, coinbase.spec(["BTC-USD"], ["market_trades"]), tmp_path / "r")
    assert result.stats["sequence_gaps"] == 1
    assert result.stats["sequence_missing"] == 1
    assert result.gaps.select("expected", "first").rows() == [(3, 4)]


def test_a_subscribed_channel_still_gets_its_own_rows(tmp_path: Path) -> None:
    spec = coinbase.spec(["BTC-USD"], ["market_trades", "level2", "candles", "heartbeats"])
    result = replayed(connection(), spec, tmp_path / "r")
    assert result.stats["sequence_gaps"] == 0
    assert result.stats["control"] == 1  # some_new_channel
    assert result.frames["subscriptions"]["channel"].to_list() == ["subscriptions"]
    assert result.frames["heartbeats"].height == 1


def test_an_error_report_is_not_taken_for_an_envelope(tmp_path: Path) -> None:
    lines = [json.dumps({"type": "error", "message": "failure to subscribe"})]
    result = replayed(lines, coinbase.spec(["BTC-USD"], ["market_trades"]), tmp_path / "r")
    assert result.stats["exchange_errors"] == 1
    assert result.frames["subscriptions"].height == 0
