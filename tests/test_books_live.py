"""Order books live against the simulator: REST snapshots fetched, recorded, resynced per symbol.

The simulator keeps one market-consistent book per symbol (never crossed, its ticker the
top of the book) and serves Binance's REST snapshot on a port of its own, with faults on
request. Waits are bounded polls of the feed's state, never fixed sleeps.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import (
    BackoffConfig,
    ConnectionConfig,
    Feed,
    ReconnectConfig,
    Recording,
    books_at,
    quality_report,
    replay,
)
from wsresearch.book import DISCONNECTED
from wsresearch.events import BookChanged
from wsresearch.lowlevel import ConnectionState
from wsresearch.testing import Simulator

from .conftest import eventually
from .test_books import drive

FAST = ConnectionConfig(reconnect=ReconnectConfig(
    backoff=BackoffConfig(initial_delay=0.05, max_delay=0.2, jitter=0.0),
    rate_limit_backoff=BackoffConfig(initial_delay=0.1, max_delay=0.3, jitter=0.0)))
RATES = {"trade": 5.0, "ticker": 40.0, "book": 80.0}
SYMBOLS = ("BTCUSDT", "ETHUSDT")


async def until(condition: Callable[[], bool], what: str) -> None:
    """:func:`eventually`, with the time a resync through backoffs may take."""
    await eventually(condition, within=10.0, what=what)


def all_valid(feed: Feed, books: int = len(SYMBOLS)) -> bool:
    table = feed.books
    return table.height == books and bool(table["valid"].all())


def book_changes(feed: Feed) -> list[BookChanged]:
    """Every ``BookChanged`` the feed emits from now on, as they come."""
    changes: list[BookChanged] = []
    feed.on_event(lambda e: changes.append(e) if isinstance(e, BookChanged) else None)
    return changes


def requests_sent(received: list[str]) -> list[tuple[str, str]]:
    """``(operation, text)`` of each request a client sent, pings left out."""
    found = []
    for text in received:
        message = None if text == "ping" else json.loads(text)
        operation = None if message is None else (
            message.get("op") or message.get("event") or message.get("method")
            or message.get("type"))
        if operation not in (None, "ping"):
            found.append((operation, text))
    return found


@pytest.mark.parametrize("profile", ["binance", "binance-usdm"])
async def test_binance_books_sync_from_the_simulators_rest_snapshot(profile: str,
                                                                    tmp_path: Path) -> None:
    async with Simulator(profile, seed=5, rates=RATES) as sim:
        spec = sim.spec(channels=["bookTicker", "depth"], connection=FAST)
        async with Feed(spec, record_to=tmp_path / "rec") as feed:
            await until(lambda: all_valid(feed), "both books valid")
            await until(lambda: feed.frame("bookTicker").height > 100, "100 tickers")
            requests = sim.rest_requests
            report = quality_report(feed)
            assert set(report.books["symbol"]) == set(SYMBOLS)
            assert "2 of 2 valid" in dict(report.summary().iter_rows())["order books"]
        assert feed.generation == 1 and feed.stats.sequence_gaps == 0
    assert sorted(r.split("symbol=")[1].split("&")[0] for r in requests) == list(SYMBOLS)
    recording = Recording.open(tmp_path / "rec")
    assert recording.rest().height == 2  # each snapshot recorded, with its URL
    # Offline, the same books: at every update id both know, the top is the ticker's.
    books, tickers, _ = drive(recording)
    common = set(books) & set(tickers)
    assert len(common) > 50
    assert [key for key in common if books[key] != tickers[key]] == []
    replayed = replay(recording)
    for symbol in SYMBOLS:
        book = replayed.book(symbol)
        assert book.valid and book.stats.crossed == 0
        assert (book.best_bid, book.best_ask) != (None, None)


@pytest.mark.parametrize(("fault", "requests"), [
    ({"status": 429}, 2), ({"status": 418}, 2), ({"status": 503}, 2), ({"delay": 0.5}, 1),
    ({"stale": 1000}, 2),
], ids=["429", "418", "503", "slow", "stale"])
async def test_a_gap_on_one_symbol_resyncs_only_it_through_a_failing_snapshot(
    fault: dict[str, object], requests: int,
) -> None:
    async with Simulator("binance", seed=9, rates=RATES) as sim:
        spec = sim.spec(channels=["bookTicker", "depth"], connection=FAST)
        async with Feed(spec) as feed:
            changes = book_changes(feed)
            await until(lambda: all_valid(feed), "both books valid")
            changes.clear()  # from here on
            before = len(sim.rest_requests)
            sim.snapshot_fault(times=1, **fault)  # type: ignore[arg-type]
            sim.sequence_gap(count=3)  # the next book update of one symbol skips 3 ids
            await until(lambda: any(not c.valid for c in changes), "a book to go invalid")
            broken = next(c.symbol for c in changes if not c.valid)
            await until(lambda: feed.book(broken).valid, f"{broken} valid again")
            other = next(s for s in SYMBOLS if s != broken)
            assert {c.symbol for c in changes} == {broken}  # the other never changed
            assert feed.book(other).valid and feed.book(other).stats.resyncs == 0
            book = feed.book(broken)
            assert book.stats.gaps == 1 and book.stats.resyncs == 1
            # The faulty answer, then (unless it was only slow) one that worked: all for
            # the broken symbol.
            after = sim.rest_requests[before:]
            assert len(after) == requests and all(broken in r for r in after)
            # A failed request is counted, the last one told with its URL (its symbol and
            # limit masked); a slow one that answered is no failure.
            stats = feed.stats
            if "status" in fault:
                assert stats.snapshot_failures == 1
                assert stats.last_snapshot_failure == (
                    f"HTTP {fault['status']} ({broken} from {sim.rest_url}"
                    "/api/v3/depth?symbol=***&limit=***)")
            else:
                assert (stats.snapshot_failures, stats.last_snapshot_failure) == (0, None)
            assert feed.generation == 1  # nothing reconnected
            assert not book.crossed


async def test_a_recording_of_the_live_books_replays_to_the_same_books(tmp_path: Path) -> None:
    async with Simulator("binance-usdm", seed=11, rates=RATES) as sim:
        spec = sim.spec(channels=["depth"], connection=FAST)
        async with Feed(spec, record_to=tmp_path / "rec") as feed:
            await until(lambda: all_valid(feed), "both books valid")
            await until(lambda: feed.book("BTCUSDT").stats.updates > 50, "50 updates")
        live = feed.pipeline.books
        assert live is not None
        quoted = feed.normalized("quotes", source="book")
    replayed = replay(Recording.open(tmp_path / "rec"))
    assert replayed.books is not None
    assert quoted.height > 1  # a row per change of a book's top, live and replayed alike
    assert_frame_equal(quoted, replayed.normalized("quotes", source="book"))
    for symbol in SYMBOLS:
        ours, theirs = live.books[symbol], replayed.book(symbol)
        assert list(ours.bids.items()) == list(theirs.bids.items())
        assert list(ours.asks.items()) == list(theirs.asks.items())
        assert ours.last_id == theirs.last_id
    events = Recording.open(tmp_path / "rec").events().filter(kind="book")
    assert set(events["stream"]) == set(SYMBOLS) and events["healthy"].all()
    assert pl.Series(events["stream"]).n_unique() == 2


async def test_a_live_feed_takes_its_quotes_where_its_spec_says_as_its_replay_does(
        tmp_path: Path) -> None:
    # OKX keeps books beside its ticker: the feed's quotes are the books' tops by default,
    # the ticker's when asked, and the recording replays to the same two tables.
    async with Simulator("okx", seed=7, rates=RATES) as sim:
        spec = sim.spec(channels=["tickers", "books"], connection=FAST)
        assert spec.quotes == "book"
        async with Feed(spec, record_to=tmp_path / "rec") as feed:
            await until(lambda: all_valid(feed), "both books valid")
            await until(lambda: feed.frame("tickers").height > 20, "20 tickers")
        quoted, ticker = feed.normalized("quotes"), feed.normalized("quotes", source="channel")
    assert_frame_equal(quoted, feed.normalized("quotes", source="book"))
    assert ticker.height == feed.frame("tickers").height
    assert quoted.height > 1 and not quoted.equals(ticker)
    replayed = replay(Recording.open(tmp_path / "rec"))
    assert_frame_equal(quoted, replayed.normalized("quotes"))
    assert_frame_equal(ticker, replayed.normalized("quotes", source="channel"))


async def test_a_recording_keeps_the_quote_source_its_spec_was_given_by_replace(
        tmp_path: Path) -> None:
    # The feed's spec told to take the ticker's quotes: its recording replays to the
    # feed's own quotes, the ticker's, with no spec given to the replay.
    async with Simulator("okx", seed=7, rates=RATES) as sim:
        spec = sim.spec(channels=["tickers", "books"], connection=FAST).replace(
            quotes="channel", snapshot_depth=3)
        async with Feed(spec, record_to=tmp_path / "rec") as feed:
            await until(lambda: all_valid(feed), "both books valid")
            await until(lambda: feed.frame("tickers").height > 20, "20 tickers")
        quoted = feed.normalized("quotes")
    assert_frame_equal(quoted, feed.normalized("quotes", source="channel"))
    recorded = Recording.open(tmp_path / "rec").spec
    assert recorded is not None
    assert (recorded.quotes, recorded.snapshot_depth) == ("channel", 3)
    # Beside the origin, where a wsresearch older than the field does not look.
    manifest = json.loads((tmp_path / "rec" / "manifest.json").read_text())
    assert manifest["spec_replaced"] == {"quotes": "channel", "snapshot_depth": 3}
    assert set(manifest["spec_origin"]) == {"adapter", "arguments"}
    replayed = replay(tmp_path / "rec")
    assert_frame_equal(quoted, replayed.normalized("quotes"))
    assert replayed.books is not None
    assert_frame_equal(feed.normalized("book_snapshots"),
                       replayed.normalized("book_snapshots"))


async def test_the_dashboard_and_the_console_show_a_row_per_book() -> None:
    pytest.importorskip("ipywidgets", reason="the dashboard needs ipywidgets")
    from rich.console import Console

    from wsresearch.console import FeedMonitor
    from wsresearch.widgets import Dashboard

    async with Simulator("binance", seed=13, rates=RATES) as sim:
        feed = Feed(sim.spec(channels=["depth"], connection=FAST))
        monitor = FeedMonitor(feed)
        async with feed:
            await until(lambda: all_valid(feed), "both books valid")
            sim.sequence_gap(count=2)
            await until(lambda: any(e.text.startswith("book") and "INVALID" in e.text
                                    for e in monitor._events), "the console to see a gap")
            await until(lambda: all_valid(feed), "both books valid again")
            dashboard = Dashboard(feed)
            dashboard.refresh()
            html = dashboard.books_html.value
            dashboard.close()
            console = Console(record=True, width=200, file=io.StringIO())
            console.print(monitor.render())
            console.print(monitor.summary())
            text = console.export_text()
    assert html.count("<tr>") == 1 + len(SYMBOLS) and all(s in html for s in SYMBOLS)
    assert html.count(">valid<") == len(SYMBOLS)
    assert "order books valid at the end" in text and "book resyncs" in text
    assert all(s in text for s in SYMBOLS)
    assert "INVALID: update ids" in text  # the event line of the gap


@pytest.mark.parametrize(("profile", "channel", "pairs"), [
    ("kraken-v1", "book", ("XBT/USD", "ETH/USD")), ("kraken", "book", ("BTC/USD", "ETH/USD")),
    ("okx", "books", ("BTC-USDT", "ETH-USDT"))])
async def test_a_wrong_checksum_resubscribes_that_symbol_only(
    profile: str, channel: str, pairs: tuple[str, str],
) -> None:
    """Kraken's and OKX's books carry real checksums: a wrong one resyncs one symbol."""
    rates = {"trade": 2.0, "ticker": 2.0, "book": 80.0} | (
        {"heartbeat": 1.0} if profile.startswith("kraken") else {})
    async with Simulator(profile, seed=17, rates=rates) as sim:
        feed = Feed(sim.spec(channels=[channel], connection=FAST))
        changes = book_changes(feed)
        async with feed:
            await until(lambda: all_valid(feed)
                        and int(feed.books["checksums_ok"].min()) >= 20,  # type: ignore[arg-type]
                        "both books valid, 20 checksums each")
            changes.clear()
            before = len(sim.received)
            sim.checksum_fault()
            await until(lambda: any(not c.valid for c in changes), "a checksum to fail")
            broken = next(c.symbol for c in changes if not c.valid)
            await until(lambda: feed.book(broken).valid, f"{broken} valid again")
            other = next(p for p in pairs if p != broken)
            book = feed.book(broken)
            assert (book.stats.checksums_failed, book.stats.resyncs, book.stats.snapshots) == (
                1, 1, 2)
            assert {c.symbol for c in changes} == {broken}
            assert feed.book(other).stats.checksums_failed == 0
            ops = requests_sent(sim.received[before:])
            assert [op for op, _ in ops] == ["unsubscribe", "subscribe"]
            assert all(broken in text for _, text in ops)
            assert feed.generation == 1  # nothing reconnected
            await until(lambda: book.stats.checksums_ok > 40, "checksums after the resync")
            assert book.valid and book.stats.checksums_failed == 1


@pytest.mark.parametrize(("profile", "symbols"), [
    ("bybit", ("BTCUSDT", "ETHUSDT")), ("okx", ("BTC-USDT", "ETH-USDT")),
    ("kraken-futures", ("PI_XBTUSD", "PI_ETHUSD"))])
async def test_a_sequence_gap_resubscribes_that_symbol_only(profile: str,
                                                           symbols: tuple[str, str]) -> None:
    rates = {"trade": 2.0, "ticker": 2.0, "book": 80.0}
    async with Simulator(profile, seed=19, rates=rates) as sim:
        channel = {"bybit": "orderbook", "okx": "books"}.get(profile, "book")
        feed = Feed(sim.spec(channels=[channel], connection=FAST))
        changes = book_changes(feed)
        async with feed:
            await until(lambda: all_valid(feed), "both books valid")
            changes.clear()
            before = len(sim.received)
            sim.sequence_gap(count=2)
            await until(lambda: any(not c.valid for c in changes), "a gap")
            broken = next(c.symbol for c in changes if not c.valid)
            await until(lambda: feed.book(broken).valid, f"{broken} valid again")
            book = feed.book(broken)
            assert (book.stats.gaps, book.stats.resyncs, book.stats.snapshots) == (1, 1, 2)
            assert {c.symbol for c in changes} == {broken}
            other = feed.book(next(s for s in symbols if s != broken))
            assert other.valid and other.stats.resyncs == 0
            ops = requests_sent(sim.received[before:])
            assert [op for op, _ in ops] == ["unsubscribe", "subscribe"]
            assert all(broken in text for _, text in ops)
            assert feed.generation == 1 and not book.crossed


async def test_after_a_reconnect_every_book_waits_for_the_new_connections_snapshot() -> None:
    rates = {"trade": 2.0, "ticker": 2.0, "book": 60.0}
    async with Simulator("bybit", seed=23, rates=rates) as sim:
        feed = Feed(sim.spec(channels=["orderbook"], connection=FAST))
        changes = book_changes(feed)
        async with feed:
            await until(lambda: all_valid(feed), "both books valid")
            changes.clear()
            subscriptions = len(sim.received)
            await sim.disconnect()
            await until(lambda: feed.generation == 2 and bool(feed.books["valid"].all())
                        and len(changes) == 4, "both books valid on the new connection")
            # Invalid at the close, on the old connection (through the queue, or at the
            # new connection's opening where the queue had not reached it yet), valid
            # again on the new connection's snapshot.
            assert [(c.generation, c.valid, c.reason) for c in changes] == [
                (1, False, DISCONNECTED)] * 2 + [(2, True, "")] * 2
            # No resubscription: the new connection's own subscription brought the snapshots.
            assert [op for op, _ in requests_sent(sim.received[subscriptions:])] == [
                "subscribe"]


HELD = ConnectionConfig(reconnect=ReconnectConfig(
    rate_limit_backoff=BackoffConfig(initial_delay=60.0, max_delay=60.0, jitter=0.0)))
"""A rate-limit close keeps the feed disconnected for a minute: longer than any test."""


@pytest.mark.parametrize(("profile", "channels"), [
    ("binance", ["bookTicker", "depth"]), ("okx", ["books"]), ("kraken", ["book"])])
async def test_books_are_invalid_while_disconnected_live_and_in_their_replay(
    profile: str, channels: list[str], tmp_path: Path,
) -> None:
    """A book shows the market at the close, not valid, until a new connection's snapshot."""
    async with Simulator(profile, seed=31, rates=RATES) as sim:
        spec = sim.spec(channels=channels, connection=HELD)
        async with Feed(spec, record_to=tmp_path / "rec") as feed:
            changes = book_changes(feed)
            await until(lambda: all_valid(feed), "both books valid")
            changes.clear()
            await sim.rate_limit()
            await until(lambda: sum(not c.valid for c in changes) == 2, "both books invalid")
            assert feed.state is ConnectionState.RECONNECTING
            assert [(c.generation, c.valid, c.reason) for c in changes] == [
                (1, False, DISCONNECTED)] * 2
            assert feed.books["valid"].to_list() == [False, False]
            held = {symbol: feed.book(symbol).side("bid", 5) for symbol in feed.books["symbol"]}
            assert all(len(bids) == 5 for bids in held.values())  # its levels at the close
            summary = dict(quality_report(feed).summary().iter_rows())["order books"]
            assert summary.startswith("0 of 2 valid at the end")
    recording = Recording.open(tmp_path / "rec")
    closed = recording.events().filter(kind="close")
    assert closed.height == 1  # the rate limit's: the session ended disconnected
    closed_at = closed["wall_ns"][0]
    # Recorded live as the replay finds them: the close is where the books broke.
    live = recording.events().filter(kind="book").select(
        "mono_ns", "stream", "healthy", pl.col("reason").fill_null(""))
    replayed = replay(recording)
    assert replayed.books is not None
    assert_frame_equal(replayed.books.transition_frame().select(
        "mono_ns", pl.col("symbol").alias("stream"), pl.col("valid").alias("healthy"),
        "reason"), live, check_dtypes=False)
    # Read after the close: the levels held then, not valid.
    after = books_at(recording, [closed_at + 1], depth=5)
    assert after["valid"].to_list() == [False, False]
    for symbol, bids in held.items():
        row = after.filter(symbol=symbol)
        assert [(level["price"], level["amount"]) for level in row["bids"][0]] == bids
    outages = quality_report(recording).outages
    broken = outages.filter(reason="book_invalid")
    assert broken["detail"].to_list() == [DISCONNECTED] * 2
    assert broken["start"].to_list() == outages.filter(reason="disconnected")["start"].to_list() * 2


async def test_a_coinbase_connection_gap_resubscribes_every_book() -> None:
    """Coinbase numbers every message of a connection: a lost one may be any book's."""
    rates = {"trade": 2.0, "ticker": 2.0, "book": 60.0, "heartbeat": 1.0}
    async with Simulator("coinbase", seed=29, rates=rates) as sim:
        feed = Feed(sim.spec(channels=["level2", "heartbeats"], connection=FAST))
        async with feed:
            await until(lambda: all_valid(feed), "both books valid")
            before = len(sim.received)
            sim.sequence_gap(count=1)
            await until(lambda: int(feed.books["resyncs"].sum()) == 2,  # type: ignore[arg-type]
                        "both books invalid")
            await until(lambda: bool(feed.books["valid"].all()), "both books valid again")
            sent = [json.loads(m) for m in sim.received[before:]]
            assert sorted((m["type"], m["product_ids"][0]) for m in sent) == sorted(
                (kind, product) for kind in ("unsubscribe", "subscribe")
                for product in ("BTC-USD", "ETH-USD"))
            assert feed.generation == 1 and feed.stats.sequence_gaps == 1


async def test_okx_books_start_from_the_rest_snapshot_when_none_comes_in_band() -> None:
    rates = {"trade": 2.0, "ticker": 2.0, "book": 80.0}
    async with Simulator("okx", seed=31, rates=rates) as sim:
        sim.withhold_book_snapshots()
        feed = Feed(sim.spec(channels=["books"], connection=FAST))
        async with feed:
            await until(lambda: all_valid(feed), "both books valid from REST snapshots")
            await until(lambda: int(feed.books["checksums_ok"].min()) >= 10,  # type: ignore[arg-type]
                        "checksums after the join")
            books = feed.books
            assert sorted(r.split("instId=")[1].split("&")[0] for r in sim.rest_requests) == [
                "BTC-USDT", "ETH-USDT"]
            assert books["checksums_failed"].sum() == books["gaps"].sum() == 0
            assert feed.generation == 1


async def test_withholding_snapshots_is_one_simulators_state_not_its_dialects() -> None:
    async with Simulator("okx", seed=37) as withholding:
        withholding.withhold_book_snapshots()
        async with Simulator("okx", seed=37) as other:
            feed = Feed(other.spec(channels=["books"], connection=FAST))
            async with feed:
                await until(lambda: all_valid(feed), "both books valid")
                assert other.rest_requests == []  # the in-band snapshots came
    with pytest.raises(ValueError, match="always sends its book snapshots"):
        Simulator("bybit").withhold_book_snapshots()
