"""Order books kept from real exchange messages: Kraken v1 checksums, integrity, determinism."""

from __future__ import annotations

import decimal
import gzip
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from wsresearch import (
    Recording,
    books_at,
    export_parquet,
    load_normalized,
    quality_report,
    replay,
)
from wsresearch.book import DISCONNECTED, Book, Books, kraken_checksum
from wsresearch.clock import VirtualClock
from wsresearch.exchanges import binance, bybit, coinbase, kraken, okx
from wsresearch.pipeline import Pipeline
from wsresearch.spec import FeedSpec

DATA = Path(__file__).resolve().parent.parent / "data" / "recordings"
KRAKEN_BOOK = DATA / "kraken_cryptofeed_2021-04-17_v1_book1000"


def kraken_messages() -> list[str]:
    return Recording.open(KRAKEN_BOOK).frames()["data"].to_list()


def replayed(messages: list[str], tmp_path: Path) -> object:
    spec = Recording.open(KRAKEN_BOOK).spec
    return replay(Recording.from_frames(tmp_path / "rec", messages, spec=spec))


def is_update_of(message: str, pair: str) -> bool:
    return message.startswith("[") and message.endswith(f'"{pair}"]') and '"c":"' in message


def test_every_kraken_v1_checksum_of_the_book1000_sample_verifies() -> None:
    result = replay(Recording.open(KRAKEN_BOOK))
    assert result.books is not None
    books = result.books.frame()
    assert books.height == 10
    assert books["checksums_ok"].sum() == 4269
    assert books["checksums_failed"].sum() == 0
    assert books["valid"].all() and books["crossed"].sum() == 0
    # Every update message carries a checksum: all of them were checked.
    checksummed = sum(1 for m in kraken_messages() if m.startswith("[") and '"c":"' in m)
    assert checksummed == 4269


def test_replaying_twice_gives_identical_books() -> None:
    first, second = (replay(Recording.open(KRAKEN_BOOK)) for _ in range(2))
    assert first.books is not None and second.books is not None
    assert_frame_equal(first.books.frame(), second.books.frame())
    for book in first.books:
        twin = second.book(book.symbol)
        assert list(book.bids.items()) == list(twin.bids.items())
        assert list(book.asks.items()) == list(twin.asks.items())


def test_a_wrong_checksum_invalidates_that_symbol_only_until_its_next_snapshot(
    tmp_path: Path,
) -> None:
    messages = kraken_messages()
    index = next(i for i, m in enumerate(messages) if is_update_of(m, "XMR/USD"))
    decoded = json.loads(messages[index])
    decoded[1]["c"] = str((int(decoded[1]["c"]) + 1) % 2**32)  # what a lost level would do
    messages[index] = json.dumps(decoded, separators=(",", ":"))
    snapshot = next(m for m in messages if m.startswith("[") and '"as":[' in m
                    and m.endswith('"XMR/USD"]'))
    result = replayed([*messages, snapshot], tmp_path)
    books = result.books.frame()  # type: ignore[attr-defined]
    xmr = books.filter(symbol="XMR/USD").row(0, named=True)
    assert (xmr["checksums_failed"], xmr["resyncs"], xmr["snapshots"]) == (1, 1, 2)
    assert xmr["valid"] and xmr["invalid_s"] > 0  # whole again after the snapshot
    others = books.filter(pl.col("symbol") != "XMR/USD")
    assert others["valid"].all() and others["checksums_failed"].sum() == 0
    assert others["resyncs"].sum() == 0
    # The quality report says so: its books table, its summary, and the book's spells.
    recording = Recording.open(tmp_path / "rec")
    report = quality_report(recording, recording.spec)
    assert_frame_equal(report.books.drop("invalid_s"), books.drop("invalid_s"))
    summary = dict(report.summary().iter_rows())["order books"]
    ok = int(books["checksums_ok"].sum())  # XMR/USD's updates after the failure: unchecked
    assert ok < 4269 - 1
    assert summary.startswith(f"10 of 10 valid at the end; checksums {ok} ok, 1 failed; "
                              "0 gap(s), 1 resync(s), 0 crossed;")
    spells = report.book_changes.filter(symbol="XMR/USD")
    assert spells.select("valid", "reason").rows() == [
        (True, ""), (False, "checksum mismatch"), (True, "")]


def test_a_book_without_its_snapshot_says_it_is_not_valid(tmp_path: Path) -> None:
    messages = [m for m in kraken_messages()
                if not (m.startswith("[") and '"as":[' in m and m.endswith('"KSM/XBT"]'))]
    result = replayed(messages, tmp_path)
    book = result.book("KSM/XBT")  # type: ignore[attr-defined]
    assert not book.valid and book.reason == "no snapshot yet"
    assert len(book.bids) == len(book.asks) == 0  # its updates were not applied
    assert book.stats.checksums_ok == 0
    assert result.book("XMR/USD").valid  # type: ignore[attr-defined]


def test_kraken_checksum_follows_the_documented_recipe() -> None:
    """Kraken's recipe: asks best first, then bids; point and leading zeros removed."""
    book = Book("XBT/USD")
    book.set("ask", 0.05005, 0.00000500, ("0.05005", "0.00000500"))
    book.set("ask", 0.05010, 0.00001, ("0.05010", "0.00001000"))
    book.set("bid", 0.05000, 0.00000500, ("0.05000", "0.00000500"))
    import zlib
    expected = zlib.crc32(b"5005" b"500" b"5010" b"1000" b"5000" b"500")
    assert kraken_checksum(book) == expected


def test_book_reading_and_its_errors() -> None:
    book = Book("X", max_depth=2)
    assert book.best_bid is None and book.mid is None and book.spread is None
    for price in (1.0, 2.0, 3.0):
        book.set("bid", price, 1.0)
        book.set("ask", price + 10, 2.0)
    book.truncate()
    assert book.side("bid") == [(3.0, 1.0), (2.0, 1.0)]
    assert book.side("ask") == [(11.0, 2.0), (12.0, 2.0)]
    assert (book.mid, book.spread, book.crossed) == (7.0, 8.0, False)
    # In the decimals sent, not the floats': one tick, not a tick plus noise.
    ticked = Book("BTCUSDT")
    ticked.set("bid", 61831.99, 1.0)
    ticked.set("ask", 61832.0, 1.0)
    assert 61832.0 - 61831.99 != 0.01
    assert (ticked.spread, ticked.mid) == (0.01, 61831.995)
    with decimal.localcontext(prec=4):  # a caller's own decimal settings change nothing
        assert (ticked.spread, ticked.mid) == (0.01, 61831.995)
    ticked.set("ask", math.inf, 1.0)  # no decimal form: the float's answer, not an error
    ticked.set("ask", 61832.0, 0)
    assert (ticked.spread, ticked.mid) == (math.inf, math.inf)
    book.set("bid", 11.0, 1.0)
    assert book.crossed
    book.set("bid", 11.0, 0)
    assert not book.crossed
    assert book.top(1).rows() == [("bid", 0, 3.0, 1.0), ("ask", 0, 11.0, 2.0)]
    result = replay(Recording.open(KRAKEN_BOOK))
    with pytest.raises(ValueError, match="no book of 'BTC/USD'; books: \\['ADA/XBT'"):
        result.book("BTC/USD")


# -- Bybit and Coinbase: snapshot then changes, never crossed ---------------------------

BYBIT = (Path(__file__).resolve().parent.parent / "data" / "bybit"
         / "nautilus_bybit-history_2024-12-01_XRPUSDT_orderbook500_linear.jsonl.gz")
COINBASE = DATA / "coinbase_cryptofeed_2021-04-17_exchange_level2_ticker_matches"


def bybit_messages() -> list[str]:
    return gzip.decompress(BYBIT.read_bytes()).decode().splitlines()


def bybit_replay(messages: list[str], tmp_path: Path) -> object:
    spec = bybit.spec(["XRPUSDT"], ["orderbook"], book_depth=500)
    return replay(Recording.from_frames(tmp_path / "bybit", messages, spec=spec))


def test_the_bybit_book_never_crosses_and_follows_every_delta(tmp_path: Path) -> None:
    messages = bybit_messages()
    result = bybit_replay(messages, tmp_path)
    book = result.book("XRPUSDT")  # type: ignore[attr-defined]
    assert book.valid and book.stats.updates == len(messages)
    assert book.stats.crossed == 0 and book.stats.gaps == 0
    assert len(book.bids) == len(book.asks) == 500
    # The last delta's own levels are in the book as sent.
    last = json.loads(messages[-1])["data"]
    assert last["b"]
    for price, size in last["b"]:
        assert book.bids.get(float(price), 0.0) == float(size)


def test_a_lost_bybit_delta_invalidates_the_book_until_a_snapshot(tmp_path: Path) -> None:
    messages = bybit_messages()
    del messages[10]
    # A snapshot Bybit sends later: after a service restart, with u = 1.
    again = json.loads(messages[0])
    again["ts"] += 60_000
    again["data"]["u"] = 1
    result = bybit_replay([*messages, json.dumps(again)], tmp_path)
    book = result.book("XRPUSDT")  # type: ignore[attr-defined]
    assert (book.stats.gaps, book.stats.resyncs, book.stats.snapshots) == (1, 1, 2)
    assert book.valid  # the snapshot at the end made it whole


def test_kraken_futures_books_follow_every_seq_and_never_cross() -> None:
    futures = DATA / "kraken_cryptofeed_2021-07-22_futures_v1_book_trade_ticker"
    result = replay(Recording.open(futures))
    books = result.books.frame()  # type: ignore[union-attr]
    assert books.height == 10 and books["valid"].all()
    assert books["gaps"].sum() == books["crossed"].sum() == 0
    updates = result.frames["book"].height + result.frames["book_snapshot"].height
    assert books["updates"].sum() == updates


def test_coinbase_exchange_books_never_cross_and_are_all_valid() -> None:
    result = replay(Recording.open(COINBASE))
    books = result.books.frame()  # type: ignore[union-attr]
    assert books.height == 10 and books["valid"].all()
    assert books["crossed"].sum() == 0 and books["snapshots"].to_list() == [1] * 10
    l2updates = result.frames["l2update"].height
    assert books["updates"].sum() == l2updates + 10


def test_coinbase_advanced_level2_documented_example_builds_a_book(tmp_path: Path) -> None:
    lines = (Path(__file__).resolve().parent.parent / "data" / "coinbase"
             / "docs_examples_level2.jsonl").read_text().splitlines()
    spec = coinbase.spec(["BTC-USD"], ["level2"])
    result = replay(Recording.from_frames(tmp_path / "cb", lines, spec=spec))
    assert result.rejects == []
    book = result.book("BTC-USD")
    assert book.valid and not book.crossed
    items = [i for line in lines for e in json.loads(line)["events"] for i in e["updates"]]
    assert len(book.bids) + len(book.asks) == len(
        {(i["side"], i["price_level"]) for i in items if float(i["new_quantity"]) > 0})


def test_a_feed_spec_without_book_channels_keeps_no_books() -> None:
    assert coinbase.spec(["BTC-USD"], ["market_trades"]).book_sync is None
    result = replay(Recording.open(DATA / "kraken_cryptofeed_2021-04-17_v1_trade"))
    assert result.books is None
    with pytest.raises(ValueError, match="kept no order books"):
        result.book("XBT/USD")


# -- Binance: synced from the REST snapshot taken in the same session ------------------

BINANCE = {market: DATA / f"binance_hftbacktest_2024-08-08_{market}_btcusdt"
           for market in ("spot", "usdm")}


Top = dict[tuple[str, int], tuple[object, object]]


def drive(recording: Recording, events: pl.DataFrame | None = None) -> tuple[
        Top, Top, Pipeline]:
    """Feed a Binance recording's events one at a time, as a replay does.

    Returns the book's best bid and ask after each diff that leaves it synced, and each
    bookTicker's, both by ``(symbol, update id)``, and the pipeline.
    """
    pipeline = Pipeline(recording.spec, VirtualClock(0, 0))  # type: ignore[arg-type]
    books: Top = {}
    tickers: Top = {}
    rows = (events if events is not None else recording.events()).select(
        "kind", "seq", "generation", "mono_ns", "wall_ns", "data", "stream", "code")
    for kind, seq, generation, mono, wall, data, url, code in rows.iter_rows():
        if kind == "open":
            pipeline.open_generation(generation)
        elif kind == "rest" and code in (None, 200):
            pipeline.rest(url, data, mono, wall)
        if kind != "frame":
            continue
        pipeline.process([(data, generation, mono, wall, seq)])
        message = json.loads(data).get("data")
        if message is None:  # the subscription's answer
            continue
        if message.get("e") == "depthUpdate":
            book = pipeline.book(message["s"])
            if book.valid and book.last_id == message["u"]:
                books[(message["s"], message["u"])] = (book.best_bid, book.best_ask)
        elif "A" in message:  # bookTicker
            tickers[(message["s"], message["u"])] = (
                (float(message["b"]), float(message["B"])),
                (float(message["a"]), float(message["A"])))
    return books, tickers, pipeline


@pytest.mark.parametrize(("market", "aligned"), [("spot", 95), ("usdm", 29)])
def test_binance_books_synced_from_the_snapshot_match_book_ticker(market: str,
                                                                  aligned: int) -> None:
    books, tickers, pipeline = drive(Recording.open(BINANCE[market]))
    common = sorted(set(books) & set(tickers))
    assert len(common) == aligned
    assert [u for u in common if books[u] != tickers[u]] == []
    book = pipeline.book("BTCUSDT")
    assert book.valid and book.stats.gaps == 0 and book.stats.crossed == 0
    assert book.stats.snapshots == 1


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_a_binance_book_is_not_valid_before_its_snapshot(market: str) -> None:
    recording = Recording.open(BINANCE[market])
    events = recording.events()
    rest_at = events.filter(kind="rest")["seq"].item()
    before = events.filter(pl.col("seq") < rest_at)
    _, _, pipeline = drive(recording, before)
    book = pipeline.book("BTCUSDT")
    assert not book.valid and book.reason == "no snapshot yet"
    assert len(book.bids) == 0 and len(book.pending) > 0  # held, not applied
    # A recording without the snapshot replays with the book invalid throughout.
    _, _, blind = drive(recording, events.filter(pl.col("kind") != "rest"))
    assert not blind.book("BTCUSDT").valid


def test_a_lost_binance_diff_invalidates_the_book(tmp_path: Path) -> None:
    recording = Recording.open(BINANCE["spot"])
    events = recording.events()
    rest_at = events.filter(kind="rest")["seq"].item()
    diffs = events.filter((pl.col("kind") == "frame") & (pl.col("seq") > rest_at + 50)
                          & pl.col("data").str.contains("depthUpdate"))
    lost = diffs["seq"][0]
    _, _, pipeline = drive(recording, events.filter(pl.col("seq") != lost))
    book = pipeline.book("BTCUSDT")
    assert not book.valid and book.stats.gaps == 1 and book.stats.resyncs == 1
    assert book.reason.startswith("update ids ")


# -- OKX: snapshot and seqId links, checksums where sent ------------------------------

OKX_CAPTURE = (Path(__file__).resolve().parent.parent / "data" / "okx"
               / "cryptofeed_2022-05-13_v5_public_tickers_trades_books.jsonl.gz")


def okx_replay(lines: list[str], tmp_path: Path, channels: tuple[str, ...] = ("books",),
               name: str = "okx") -> Any:
    spec = okx.spec(["BTC-USDT"], list(channels))
    return replay(Recording.from_frames(tmp_path / name, lines, spec=spec))


def test_every_okx_checksum_of_the_capture_verifies(tmp_path: Path) -> None:
    lines = gzip.decompress(OKX_CAPTURE.read_bytes()).decode().splitlines()
    result = okx_replay(lines, tmp_path, ("trades", "tickers", "books"))
    books = result.books.frame()
    updates = sum(1 for line in lines if '"channel":"books"' in line and '"data"' in line)
    assert books.height == 3 and books["valid"].all()
    assert books["checksums_ok"].sum() == updates == 290
    assert books["checksums_failed"].sum() == 0 and books["crossed"].sum() == 0


def test_a_wrong_okx_checksum_invalidates_that_instrument_only(tmp_path: Path) -> None:
    lines = gzip.decompress(OKX_CAPTURE.read_bytes()).decode().splitlines()
    index = next(i for i, line in enumerate(lines)
                 if '"instId":"UNI-USD-SWAP"' in line and '"action":"update"' in line)
    message = json.loads(lines[index])
    message["data"][0]["checksum"] += 1
    lines[index] = json.dumps(message)
    books = okx_replay(lines, tmp_path).books.frame()
    uni = books.filter(symbol="UNI-USD-SWAP").row(0, named=True)
    assert (uni["valid"], uni["reason"], uni["checksums_failed"]) == (
        False, "checksum mismatch", 1)
    assert books.filter(pl.col("symbol") != "UNI-USD-SWAP")["valid"].all()


def okx_book(action: str, seq: int, prev: int, bids: list[list[str]],
             asks: list[list[str]], ts: int = 1700000000000) -> str:
    """A ``books`` message shaped as OKX documents it (no checksum: OKX sends 0 now)."""
    return json.dumps({"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": action,
                       "data": [{"asks": [[p, s, "0", "1"] for p, s in asks],
                                 "bids": [[p, s, "0", "1"] for p, s in bids],
                                 "ts": str(ts + seq), "checksum": 0, "prevSeqId": prev,
                                 "seqId": seq}]})


def test_okx_updates_follow_seq_ids_and_a_break_invalidates(tmp_path: Path) -> None:
    lines = [okx_book("snapshot", 10, -1, [["100.0", "1"]], [["101.0", "2"]]),
             okx_book("update", 12, 10, [["100.5", "3"]], []),
             okx_book("update", 12, 12, [], []),            # a keep-alive: same ids
             okx_book("update", 15, 12, [], [["101.0", "0"], ["102", "1"]])]
    book = okx_replay(lines, tmp_path).book("BTC-USDT")
    assert book.valid and book.last_id == 15
    assert book.side("bid") == [(100.5, 3.0), (100.0, 1.0)]
    assert book.side("ask") == [(102.0, 1.0)]
    broken = [*lines[:2], okx_book("update", 20, 16, [["99", "1"]], [])]
    book = okx_replay(broken, tmp_path, name="broken").book("BTC-USDT")
    assert not book.valid and book.reason == "prevSeqId 16 after seqId 12"
    assert book.stats.gaps == 1


def test_okx_updates_join_a_rest_snapshot_when_none_is_sent_in_band() -> None:
    spec = okx.spec(["BTC-USDT"], ["books"])
    pipeline = Pipeline(spec, VirtualClock(0, 0))
    pipeline.open_generation(1)
    updates = [okx_book("update", 5, 3, [["100", "1"]], []),
               okx_book("update", 8, 5, [["100", "2"]], []),
               okx_book("update", 9, 8, [], [["101", "4"]])]
    pipeline.process([(updates[0], 1, 1, 1, 1), (updates[1], 1, 2, 2, 2)])
    book = pipeline.book("BTC-USDT")
    assert not book.valid and len(book.pending) == 2
    snapshot = {"code": "0", "data": [{"asks": [["101", "1", "0", "1"]],
                                       "bids": [["100", "1", "0", "1"]], "seqId": 6,
                                       "ts": "1700000000006"}]}
    pipeline.rest("https://www.okx.com/api/v5/market/books?instId=BTC-USDT&source=0",
                  json.dumps(snapshot), 3, 3)
    # seqId 5 is in the snapshot; 8 joins it (prevSeqId 5 <= 6 < 8); 9 follows 8.
    assert book.valid and book.last_id == 8 and book.side("bid") == [(100.0, 2.0)]
    pipeline.process([(updates[2], 1, 4, 4, 3)])
    assert book.last_id == 9 and book.side("ask") == [(101.0, 4.0)]


def test_okx_books5_messages_are_whole_books(tmp_path: Path) -> None:
    lines = (Path(__file__).resolve().parent.parent / "data" / "okx"
             / "docs_examples_books5.jsonl").read_text().splitlines()
    spec = okx.spec(["BCH-USDT-SWAP"], ["books5"])
    result = replay(Recording.from_frames(tmp_path / "b5", lines, spec=spec))
    book = result.book("BCH-USDT-SWAP")
    assert book.valid and len(book.bids) == len(book.asks) == 5
    assert book.best_ask == (111.06, 55154.0) and book.best_bid == (111.05, 57745.0)


# -- What the books make: snapshots every interval, quotes where no channel gives them --


def kraken_by_message() -> tuple[list[tuple[int, dict[str, object]]], list[tuple[object, ...]],
                                 Pipeline]:
    """The Kraken book recording, one message at a time: the state of every valid book
    before each message (with the message's receive time), and each top-of-book change."""
    recording = Recording.open(KRAKEN_BOOK)
    pipeline = Pipeline(recording.spec, VirtualClock(0, 0))  # type: ignore[arg-type]
    pipeline.open_generation(1)
    before: list[tuple[int, dict[str, object]]] = []
    tops: dict[str, object] = {}
    changes: list[tuple[object, ...]] = []
    frames = recording.frames()
    for seq, generation, mono, wall, data in frames.select(
            "seq", "generation", "recv_mono_ns", "recv_wall_ns", "data").iter_rows():
        books = pipeline.books
        assert books is not None
        before.append((wall, {b.symbol: (b.side("bid", 10), b.side("ask", 10))
                              for b in books if b.valid}))
        pipeline.process([(data, generation, mono, wall, seq)])
        for book in books:
            top = (book.best_bid, book.best_ask)
            if book.valid and tops.get(book.symbol) != top:
                tops[book.symbol] = top
                changes.append((book.symbol, *(book.best_bid or ()), *(book.best_ask or ())))
            elif not book.valid:
                tops.pop(book.symbol, None)
    return before, changes, pipeline


def test_book_snapshots_hold_every_message_received_before_each_second() -> None:
    before, _, pipeline = kraken_by_message()
    snapshots = pipeline.normalized("book_snapshots")
    assert snapshots.height > 100
    assert set(snapshots["symbol"]) == {b.symbol for b in pipeline.books}  # type: ignore[union-attr]
    second = 1_000_000_000
    expected = []
    boundary = None
    for wall, books in before:
        if boundary is not None and wall >= boundary:
            last = wall - (wall - boundary) % second
            expected += [(symbol, last, bids, asks) for symbol, (bids, asks) in books.items()]
        if boundary is None or wall >= boundary:
            boundary = (wall // second + 1) * second
    got = [(s, t, [(x["price"], x["amount"]) for x in b], [(x["price"], x["amount"]) for x in a])
           for s, t, b, a in snapshots.select(
               "symbol", pl.col("local_time").cast(pl.Int64), "bids", "asks").iter_rows()]
    assert sorted(got, key=lambda r: (r[1], r[0])) == sorted(
        expected, key=lambda r: (r[1], r[0]))


def test_quotes_come_from_the_book_where_no_channel_gives_them() -> None:
    _, changes, pipeline = kraken_by_message()
    quotes = pipeline.normalized("quotes")
    assert quotes.height == len(changes) > 100
    assert quotes.select("symbol", "bid_price", "bid_amount", "ask_price",
                         "ask_amount").rows() == changes
    assert (quotes["bid_price"] < quotes["ask_price"]).all()


def test_a_spec_with_a_quote_channel_keeps_its_quotes_and_snapshots_can_be_off(
    tmp_path: Path,
) -> None:
    recording = Recording.open(BINANCE["spot"])
    result = replay(recording)
    ticker = result.frames["bookTicker"]
    assert result.normalized("quotes").height == ticker.height  # bookTicker's, not the book's
    spec = recording.spec.model_copy(update={"snapshot_interval": None})  # type: ignore[union-attr]
    assert replay(recording, spec).normalized("book_snapshots").height == 0
    assert result.normalized("book_snapshots").height > 10


def test_book_snapshots_are_exported_and_join_trades_as_of_their_time(tmp_path: Path) -> None:
    recording = Recording.open(BINANCE["spot"])
    export_parquet(recording, None, tmp_path / "ds", normalized=True)
    snapshots = load_normalized(tmp_path / "ds", "book_snapshots").collect()
    expected = replay(recording).normalized("book_snapshots")
    assert_frame_equal(snapshots.sort("local_time").select(expected.columns), expected)
    trades = load_normalized(tmp_path / "ds", "trades").collect().sort("local_time")
    joined = trades.join_asof(
        snapshots.sort("local_time").select("symbol", "local_time", "bids",
                                            book_time="local_time"),
        on="local_time", by="symbol", check_sortedness=False)  # sorted above
    # A trade sees a book of the past, never of its future: that of the last whole second
    # before it, unless no book message came in that second (no snapshot is stamped then).
    after = joined.filter(pl.col("bids").is_not_null())
    assert after.height > 0.9 * trades.height
    age = (after["local_time"] - after["book_time"]).dt.total_nanoseconds()
    assert age.min() >= 0
    same_second = after["book_time"] == after["local_time"].dt.truncate("1s")
    assert same_second.mean() > 0.95  # type: ignore[operator]


def test_quotes_kept_in_columnar_chunks_are_the_same_quotes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    whole = replay(Recording.open(KRAKEN_BOOK)).normalized("quotes")
    monkeypatch.setattr("wsresearch.book._QUOTES_CHUNK", 7)  # many chunks, and a remainder
    chunked = replay(Recording.open(KRAKEN_BOOK))
    assert len(chunked.books._quote_chunks) == whole.height // 7  # type: ignore[union-attr]
    assert_frame_equal(chunked.normalized("quotes"), whole)


def test_a_book_valid_again_after_a_reconnect_quotes_its_top_even_if_unchanged() -> None:
    """In between, the top was unknown: the quote table says it again once known."""
    recording = Recording.open(KRAKEN_BOOK)
    pipeline = Pipeline(recording.spec, VirtualClock(0, 0))  # type: ignore[arg-type]
    pipeline.open_generation(1)
    frames = recording.frames()
    snapshot = frames.filter(pl.col("data").str.contains('"as"')).row(0, named=True)
    pipeline.process([(snapshot["data"], 1, snapshot["recv_mono_ns"],
                       snapshot["recv_wall_ns"], 1)])
    before = pipeline.normalized("quotes")
    assert before.height == 1
    pipeline.open_generation(2)  # a reconnect: every book waits for a snapshot
    pipeline.process([(snapshot["data"], 2, snapshot["recv_mono_ns"] + 1,
                       snapshot["recv_wall_ns"] + 1, 2)])
    after = pipeline.normalized("quotes")
    assert after.height == 2
    columns = ["symbol", "bid_price", "bid_amount", "ask_price", "ask_amount"]
    assert after.select(columns).row(0) == after.select(columns).row(1)
    assert after["generation"].to_list() == [1, 2]


def test_a_reconnect_leaves_a_book_nothing_of_the_old_connection_but_its_counts() -> None:
    recording = Recording.open(KRAKEN_BOOK)
    pipeline = Pipeline(recording.spec, VirtualClock(0, 0))  # type: ignore[arg-type]
    pipeline.open_generation(1)
    items = [(data, 1, mono, wall, seq) for seq, mono, wall, data in recording.frames().select(
        "seq", "recv_mono_ns", "recv_wall_ns", "data").head(200).iter_rows()]
    pipeline.process(items)
    books = pipeline.books
    assert books is not None
    book = next(b for b in books if b.valid)
    updates = book.stats.updates
    assert book.bids
    assert book.exchange_ns is not None
    pipeline.open_generation(2)
    assert not book.valid
    assert book.reason == "new connection: waiting for a snapshot"
    assert (len(book.bids), len(book.asks), book.best_bid, book.exchange_ns,
            book.recv_wall_ns, book.last_id) == (0, 0, None, None, None, None)
    assert book.stats.updates == updates  # the counts are the session's


def test_a_touched_book_counts_a_crossed_top_and_quotes_each_new_top() -> None:
    # A bid at the ask counts as crossed, as one above it does; one below does not. A
    # message that leaves the top as it was gives no quote; an invalid book none at all.
    books = Books(sync=okx.spec(["BTC-USDT"], ["books"]).book_sync)  # type: ignore[arg-type]
    book = books.book("X")
    book.touched(1, 1, None)  # invalid: neither counted nor quoted
    book.mark_valid(2)
    book.set("ask", 10.0, 1.0)
    for price, amount in ((9.0, 1.0), (9.0, 2.0), (10.0, 1.0), (11.0, 1.0), (11.0, 1.0)):
        book.set("bid", price, amount)
        book.touched(3, 3, 7)
    assert book.stats.crossed == 3 and book.stats.updates == 6
    assert books.quotes().select("bid_price", "bid_amount", "ask_price").rows() == [
        (9.0, 1.0, 10.0), (9.0, 2.0, 10.0), (10.0, 1.0, 10.0), (11.0, 1.0, 10.0)]


# -- Quotes from the books where a ticker is subscribed too --------------------------------

OKX_RECORDING = DATA / "okx_cryptofeed_2022-05-13_v5_public_tickers_trades_books"


def test_quotes_from_the_books_beside_a_ticker_are_each_books_top_as_books_at_reads_it() -> None:
    """OKX's ticker gives 28 quotes; its books change top 204 times: the spec takes those."""
    result = replay(OKX_RECORDING)
    assert result.spec.quotes == "book"  # the adapter's choice, where it keeps books
    assert_frame_equal(result.normalized("quotes", source="book"), result.normalized("quotes"))
    ticker = result.normalized("quotes", source="channel")
    booked = result.normalized("quotes")
    assert (ticker.height, booked.height) == (28, 204)
    assert booked.columns == ticker.columns
    assert booked.filter(pl.col("bid_price") >= pl.col("ask_price")).is_empty()
    # Each quote is its book's top after the message it follows: read independently, by
    # books_at at that receive time (the last of a symbol's quotes at one time, as it reads
    # past every message received then).
    last = booked.unique(["symbol", "local_time"], keep="last", maintain_order=True)
    read = books_at(OKX_RECORDING, last["local_time"], depth=1)
    tops = read.join(last.select("symbol", time="local_time"), on=["symbol", "time"]).select(
        "symbol", local_time="time", bid_price=pl.col("bids").list.first().struct["price"],
        bid_amount=pl.col("bids").list.first().struct["amount"],
        ask_price=pl.col("asks").list.first().struct["price"],
        ask_amount=pl.col("asks").list.first().struct["amount"])
    assert_frame_equal(last.select(tops.columns).sort("symbol", "local_time"),
                       tops.sort("symbol", "local_time"))


@pytest.mark.parametrize(("spec", "quotes"), [
    (okx.spec(["BTC-USDT"], ["tickers", "books"]), "book"),
    (okx.spec(["BTC-USDT"], ["tickers", "books5"]), "book"),
    (okx.spec(["BTC-USDT"], ["tickers"]), None),
    (kraken.spec(["XBT/USD"], ["ticker", "book"]), "book"),
    (kraken.spec(["XBT/USD"], ["ticker", "book"], api="v1"), "book"),
    (kraken.spec(["PI_XBTUSD"], ["ticker_lite", "book"], api="futures"), "book"),
    (bybit.spec(["BTCUSDT"], ["tickers", "orderbook"]), "book"),
    (coinbase.spec(["BTC-USD"], ["ticker", "level2"], api="exchange"), "book"),
    (coinbase.spec(["BTC-USD"], ["ticker", "level2"]), "book"),
    (coinbase.spec(["BTC-USD"], ["ticker"]), None),
    # bookTicker tells each change of the top before the 100 ms diffs do: its own.
    (binance.spec(["BTCUSDT"], ["bookTicker", "depth"]), None),
    (binance.spec(["BTCUSDT"], ["bookTicker", "depth"], market="usdm"), None),
])
def test_adapters_that_keep_books_take_their_quotes_from_them(spec: FeedSpec,
                                                              quotes: str | None) -> None:
    assert spec.quotes == quotes
    assert spec.origin is not None  # the choice is the adapter's: a recording rebuilds it


def test_a_spec_chooses_where_its_quotes_come_from_and_source_overrides_it(
        tmp_path: Path) -> None:
    # The OKX capture replayed through its adapter's spec told otherwise: the ticker's.
    made = Recording.open(OKX_RECORDING).spec
    assert made is not None and made.quotes == "book"
    ticker = replay(OKX_RECORDING, made.replace(quotes="channel"))
    assert ticker.normalized("quotes").height == 28
    assert_frame_equal(ticker.normalized("quotes"),
                       replay(OKX_RECORDING).normalized("quotes", source="channel"))
    assert ticker.normalized("quotes", source="book").height == 204  # still there, asked for
    exported = export_parquet(OKX_RECORDING, made.replace(quotes="channel"), tmp_path / "ds",
                              normalized=True)
    assert exported.normalized["quotes"] == 28
    # "book" needs books; and the choice is one of the two.
    with pytest.raises(ValueError, match=r"quotes='book' takes the quotes from the order "
                                         r"books, but the spec keeps none"):
        okx.spec(["BTC-USDT"], ["tickers"], quotes="book")
    with pytest.raises(ValueError, match="quotes"):
        made.replace(quotes="ticker")
    assert okx.spec(["BTC-USDT"], ["tickers", "books"], quotes=None).quotes is None
    # Books taken away take their quotes with them.
    assert made.replace(book_sync=None).quotes is None
    assert okx.spec(["BTC-USDT"], ["tickers", "books"], book_sync=None).quotes is None
    with pytest.raises(ValueError, match="quotes='book' takes the quotes"):
        made.replace(book_sync=None, quotes="book")


def test_quotes_source_is_checked_in_one_line() -> None:
    kraken_ticker = replay(DATA / "kraken_cryptofeed_2021-04-17_v1_ticker")
    with pytest.raises(ValueError, match=r"^no order books to take quotes from: the spec"):
        kraken_ticker.normalized("quotes", source="book")
    with pytest.raises(ValueError, match=r"^source must be one of \['channel', 'book'\], not 'x'"):
        kraken_ticker.normalized("quotes", source="x")
    with pytest.raises(ValueError, match=r"^source= chooses where quotes come from; 'trades'"):
        kraken_ticker.normalized("trades", source="book")
    with pytest.raises(ValueError, match=r"^unknown kind 'quote'; the kinds are \['trades'"):
        kraken_ticker.normalized("quote", source="book")  # the kind is what is wrong
    # A book and no ticker: the books' quotes by default, none from the channels.
    book1000 = replay(DATA / "kraken_cryptofeed_2021-04-17_v1_book1000")
    assert_frame_equal(book1000.normalized("quotes"), book1000.normalized("quotes", source="book"))
    assert book1000.normalized("quotes").height > 0
    assert book1000.normalized("quotes", source="channel").is_empty()


def test_a_rest_snapshot_that_comes_while_disconnected_is_left_for_the_next_connection() -> None:
    # The capture's REST snapshot syncs its book; the same response after a close does
    # not: the next connection starts every book afresh, and its diffs would not follow.
    recording = Recording.open(BINANCE["spot"])
    events = recording.events()
    at = events["kind"].to_list().index("rest")
    generation, mono, wall, url, body = events.select(
        "generation", "mono_ns", "wall_ns", "stream", "data").row(at)
    for closed in (False, True):
        _, _, pipeline = drive(recording, events.head(at))
        books = pipeline.books
        assert books is not None
        book = pipeline.book("BTCUSDT")
        assert not book.valid and [s for s, _ in books.wanting(None)] == ["BTCUSDT"]
        if closed:
            pipeline.closed(generation, "going away", mono, wall)
            assert books.wanting(None) == []  # nothing fetched for a connection gone
        pipeline.rest(url, body, mono, wall)
        assert book.valid is not closed
        assert book.stats.snapshots == (0 if closed else 1)


def test_only_a_close_of_the_current_connection_that_does_not_end_the_session_breaks_books(
) -> None:
    recording = Recording.open(KRAKEN_BOOK)
    pipeline = Pipeline(recording.spec, VirtualClock(0, 0))  # type: ignore[arg-type]
    pipeline.open_generation(1)
    pipeline.process([(data, 1, mono, wall, seq) for seq, mono, wall, data in
                      recording.frames().select("seq", "recv_mono_ns", "recv_wall_ns", "data")
                      .head(200).iter_rows()])
    books = pipeline.books
    assert books is not None
    valid = [b for b in books if b.valid]
    assert valid
    levels = [(list(b.bids.items()), list(b.asks.items())) for b in valid]
    pipeline.closed(1, "client disconnect", 10, 10)  # the session's end
    pipeline.closed(0, "an older connection's", 10, 10)
    assert all(b.valid for b in valid)
    pipeline.closed(1, "", 10, 10)
    assert [(b.valid, b.reason) for b in valid] == [(False, DISCONNECTED)] * len(valid)
    assert [(list(b.bids.items()), list(b.asks.items())) for b in valid] == levels
    assert [b.stats.resyncs for b in valid] == [1] * len(valid)


@given(st.decimals(min_value=0, max_value=10**7, places=8, allow_nan=False),
       st.decimals(min_value=0, max_value=10**7, places=8, allow_nan=False))
def test_spread_and_mid_are_worked_in_the_decimals_the_prices_were_sent_as(
    bid: Decimal, ask: Decimal,
) -> None:
    book = Book("X")
    book.set("bid", float(str(bid)), 1.0)
    book.set("ask", float(str(ask)), 1.0)
    assert book.spread == float(ask - bid)
    assert book.mid == float((ask + bid) / 2)
