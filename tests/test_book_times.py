"""The order book at any time of a recording (books_at, book_at), on real exchange data.

Two references: the replay's own snapshot grid (a snapshot at a boundary holds every
message received before it, which is the book at 1 ns before the boundary), and
:func:`book_at`, a replay that stops at the time, so that nothing after it can reach the
book: books_at reads the books inside one replay that goes on past every time.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import Recording, book_at, books_at, replay
from wsresearch import book as book_module
from wsresearch.book import LEVELS, Books, Readings, _level_column
from wsresearch.book_times import BOOKS_AT_SCHEMA
from wsresearch.exchanges import coinbase, generic
from wsresearch.recording.writer import Captured

from .test_columnar_replay import (
    BASE,
    _base,
    _depth_positions,
    _with_snapshot_before,
    record_like,
)

DATA = Path(__file__).resolve().parent.parent / "data"
RECORDINGS = DATA / "recordings"
SPOT = RECORDINGS / "binance_hftbacktest_2024-08-08_spot_btcusdt"
KRAKEN = RECORDINGS / "kraken_cryptofeed_2021-04-17_v1_book1000"
COINBASE = RECORDINGS / "coinbase_cryptofeed_2021-04-17_exchange_level2_ticker_matches"
FUTURES = RECORDINGS / "kraken_cryptofeed_2021-07-22_futures_v1_book_trade_ticker"
SESSION = DATA / "sessions" / "sim-faults"


@functools.cache
def grid(path: Path) -> pl.DataFrame:
    """The replay's snapshots: ``time`` 1 ns before each boundary, the levels there.

    Made once per recording (a shipped one, which no test changes): each chunk size and
    path of ``books_at`` is checked against the same replay.
    """
    snapshots = replay(path).normalized("book_snapshots")
    assert snapshots.height > 20
    return snapshots.select(
        (pl.col("local_time") - pl.duration(nanoseconds=1)).alias("time"), "symbol",
        "bids", "asks").sort("time", "symbol")


def within(path: Path, times: pl.Series) -> pl.Series:
    """Those of ``times`` from the recording's first event on (earlier ones are warned of)."""
    return times.filter(times >= Recording.open(path).events()["wall_ns"].min())


def levels(row: dict[str, Any], side: str) -> list[tuple[float, float]]:
    return [(level["price"], level["amount"]) for level in row[side]]


def assert_book_at(path: Path, row: dict[str, Any], ns: int) -> None:
    """``row`` of books_at, at ``ns``, is the book a replay stopped at that time has.

    (The row's ``time`` as Python reads it is to the microsecond.)
    """
    assert _utc(ns) == row["time"]
    book = book_at(path, ns, row["symbol"])
    depth = len(row["bids"]), len(row["asks"])
    assert (row["valid"], levels(row, "bids"), levels(row, "asks")) == (
        book.valid, book.side("bid", depth[0]), book.side("ask", depth[1])), row["time"]
    assert row["local_time"] == _utc(book.recv_wall_ns)
    assert row["exchange_time"] == _utc(book.exchange_ns)
    assert depth[0] == min(5, len(book.bids)) and depth[1] == min(5, len(book.asks))


def _utc(ns: int | None) -> dt.datetime | None:
    return None if ns is None else pl.Series([ns]).cast(pl.Datetime("ns", "UTC")).item()


@pytest.mark.parametrize("columnar", [True, False], ids=["columnar", "per-message"])
@pytest.mark.parametrize("path", [SPOT, KRAKEN], ids=["binance-spot", "kraken-v1"])
@pytest.mark.parametrize("chunk_events", [97, 20_000])
def test_the_books_at_the_grids_times_are_its_snapshots(path: Path, chunk_events: int,
                                                        columnar: bool) -> None:
    expected = grid(path)
    spec = Recording.open(path).spec
    assert spec is not None
    found = books_at(path, expected["time"], depth=spec.snapshot_depth,
                     chunk_events=chunk_events, columnar=columnar)
    assert found.schema == pl.Schema(BOOKS_AT_SCHEMA)
    # Every snapshot is of a valid book; books_at also gives the invalid ones, flagged.
    valid = found.filter("valid").select("time", "symbol", "bids", "asks").sort("time", "symbol")
    assert_frame_equal(valid, expected)


def test_a_time_past_the_end_gives_the_books_the_replay_ends_with() -> None:
    # Right, and what a local time taken for UTC gives too: told of.
    with pytest.warns(UserWarning, match=r"^the time is after the recording's last event "
                                         r"\(2021-04-17 16:49:\d\d\.\d{3} UTC\): the books "
                                         r"as it ended are given"):
        found = books_at(KRAKEN, [dt.datetime(2030, 1, 1)], depth=None)
    with pytest.warns(UserWarning, match=r"^the time is after the recording's last event .*"
                                         r"given \(a naive datetime is UTC\)$"):
        whole = book_at(KRAKEN, dt.datetime(2030, 1, 1), found["symbol"][0])
    # A time in a zone is what it says: nothing is added of how it was read.
    with pytest.warns(UserWarning, match="^2 of the 2 times are after .* are given$"):
        books_at(KRAKEN, pl.Series([dt.datetime(2030, 1, 1), dt.datetime(2030, 1, 2)],
                                   dtype=pl.Datetime("us", "UTC")), depth=1)
    assert whole.side("bid", 3) == [(level["price"], level["amount"])
                                    for level in found["bids"][0][:3]]
    result = replay(KRAKEN)
    assert found["symbol"].to_list() == sorted(result.books.books)  # type: ignore[union-attr]
    for row in found.iter_rows(named=True):
        book = result.book(row["symbol"])
        assert row["valid"] == book.valid
        assert [(level["price"], level["amount"]) for level in row["bids"]] == book.side("bid")
        assert [(level["price"], level["amount"]) for level in row["asks"]] == book.side("ask")


def test_times_are_taken_sorted_once_and_those_before_any_book_give_no_row() -> None:
    first = Recording.open(SPOT).events()["wall_ns"].min()
    assert isinstance(first, int)
    late, early = first + 30 * 10**9, first + 10 * 10**9
    with pytest.warns(UserWarning, match=r"^1 of the 3 times is before the recording's first "
                                         r"event \(2024-08-08 23:54:\d\d\.\d{3} UTC\): no "
                                         r"book existed then \(an int is ns since the epoch"):
        found = books_at(SPOT, [late, first - 1, early, late], depth=3)
    assert found["time"].dt.epoch("ns").to_list() == [early, late]
    assert found["bids"].list.len().to_list() == [3, 3]
    # The same as datetimes, and as a Series of either.
    as_datetimes = [dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=t // 1000)
                    for t in (early - early % 1000, late - late % 1000)]
    again = books_at(SPOT, pl.Series(as_datetimes), depth=3)
    assert again["time"].to_list() == as_datetimes


def test_one_book_at_a_time_is_the_whole_book_books_at_gives_in_part() -> None:
    at = dt.datetime(2021, 4, 17, 16, 49, 10, tzinfo=dt.UTC)
    [row] = books_at(KRAKEN, [at], symbols=["XBT/CHF"], depth=None).iter_rows(named=True)
    book = book_at(KRAKEN, at, "XBT/CHF")
    assert len(book.side("bid")) > 10
    assert book.valid == row["valid"]
    assert book.side("bid") == [(level["price"], level["amount"]) for level in row["bids"]]
    assert book.side("ask") == [(level["price"], level["amount"]) for level in row["asks"]]
    with pytest.raises(ValueError, match="no book of 'NOPE'"):
        book_at(KRAKEN, at, "NOPE")


@pytest.mark.parametrize(("arguments", "message"), [
    ({"times": ["2024-01-01"]}, "not a time"),
    ({"times": [True]}, "not a time"),
    ({"times": pl.Series(["x"])}, "datetimes or ints"),
    ({"times": pl.Series([1, None])}, "null"),
    ({"times": [1], "depth": 0}, "depth must be"),
    ({"times": dt.datetime(2024, 8, 8), "depth": 1}, "a list of times"),
    ({"times": [1], "symbols": "BTCUSDT"}, r"a list of symbols \(symbols=\['BTCUSDT'\]\)"),
])
def test_what_is_not_a_time_or_a_depth_is_refused(arguments: dict[str, object],
                                                   message: str) -> None:
    with pytest.raises(ValueError, match=message):
        books_at(SPOT, **arguments)  # type: ignore[arg-type]


def test_a_spec_without_books_is_refused() -> None:
    with pytest.raises(ValueError, match="keeps no order books"):
        books_at(SESSION, [0], generic.spec(url="ws://127.0.0.1:1"))


def test_two_times_between_the_same_two_events_get_the_same_book() -> None:
    walls = Recording.open(SPOT).frames()["recv_wall_ns"]
    first, later = int(walls[1000]), int(walls[3000])
    found = books_at(SPOT, [first, first + 1, later], depth=5)
    assert found["time"].dt.epoch("ns").to_list() == [first, first + 1, later]
    one, two, three = found.iter_rows(named=True)
    assert (one["bids"], one["asks"], one["local_time"]) == (
        two["bids"], two["asks"], two["local_time"])
    assert three["local_time"] > two["local_time"]


@pytest.mark.parametrize("path", [SPOT, KRAKEN, COINBASE, FUTURES],
                         ids=["binance-spot", "kraken-v1", "coinbase", "kraken-futures"])
def test_a_time_at_every_message_reads_each_book_as_a_replay_stopped_there(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A time at, and 1 ns before, every message's receive time: many times between two
    # book messages, and many inside the stretches the columnar replay applies at once
    # (read from the stretch's arrays, not the books). Both paths give the same rows, in
    # small chunks and in large, and a sample of them is what a replay stopped at the
    # time has. (The per-message path at other chunk sizes:
    # test_the_books_at_the_grids_times_are_its_snapshots.)
    at_once: list[object] = []
    taken = Books._readings_at

    def counted(books: Books, *arguments: Any) -> None:
        at_once.append(arguments)
        taken(books, *arguments)

    monkeypatch.setattr(Books, "_readings_at", counted)
    walls = Recording.open(path).frames()["recv_wall_ns"]
    times = within(path, pl.concat([walls, walls - 1]))
    symbols = sorted(replay(path).books.books)[:2]  # type: ignore[union-attr]
    models = books_at(path, times, symbols=symbols, depth=5, columnar=False)
    for chunk_events in (500, 20_000):
        at_once.clear()
        columns = books_at(path, times, symbols=symbols, depth=5, chunk_events=chunk_events)
        assert_frame_equal(columns, models)
        if path in (SPOT, COINBASE) and chunk_events == 20_000:
            assert at_once  # the stretches applied at once were read from
    assert columns["time"].n_unique() > 0.9 * times.n_unique()
    assert set(columns["symbol"]) == set(symbols)
    rows = columns.filter(pl.col("symbol") == columns["symbol"][0])
    for index in range(0, rows.height, max(1, rows.height // 6)):
        assert_book_at(path, rows.row(index, named=True), rows["time"].dt.epoch("ns")[index])


def test_a_time_before_a_reconnect_or_a_rest_snapshot_reads_the_book_before_it(
        tmp_path: Path) -> None:
    # Between a reconnect (every book reset) or a REST snapshot (a book reloaded) and
    # the next diff, the time just before either gets the book as it was: read when
    # they come, not when the next diff does.
    events = _with_snapshot_before(list(BASE), 30, [["1.5", "2"]])
    depth = _depth_positions(events)
    rest = next(i for i in range(depth[25], depth[30]) if events[i].kind == "rest")
    events[rest] = events[rest]._replace(wall_ns=int(events[rest].wall_ns or 0) - 1_000)
    opened = depth[-5]
    reconnect = int(events[opened].wall_ns or 0) - 1_000
    events.insert(opened, Captured("open", reconnect, str(events[0].data)))
    record_like(SPOT, tmp_path / "r", events)
    path = tmp_path / "r"
    snapshot = int(events[rest].wall_ns or 0)
    times = [snapshot - 1, snapshot, reconnect - 1, reconnect]
    for columnar in (True, False):
        found = books_at(path, times, depth=5, columnar=columnar)
        before_snapshot, after_snapshot, before_reconnect, after_reconnect = found.iter_rows(
            named=True)
        assert 1.5 not in [p for p, _ in levels(before_snapshot, "bids")]
        assert 1.5 in [p for p, _ in levels(after_snapshot, "bids")]
        assert before_reconnect["valid"] and before_reconnect["bids"]
        assert not after_reconnect["valid"] and not after_reconnect["bids"]
        for row, ns in zip(found.iter_rows(named=True), times, strict=True):
            assert_book_at(path, row, ns)


def test_a_time_before_a_gap_another_channel_shows_reads_the_book_before_it(
        tmp_path: Path) -> None:
    # Coinbase numbers every message of a connection: a heartbeat after a lost message
    # makes every book invalid. A time between the heartbeat and the next book message
    # reads the book before it, valid.
    level2 = (DATA / "coinbase" / "docs_examples_level2.jsonl").read_text().splitlines()
    heartbeat = json.loads((DATA / "coinbase" / "docs_examples_heartbeats.jsonl").read_text())
    snapshot = json.loads(level2[0])
    [event] = snapshot["events"]
    update = {**snapshot, "events": [{**event, "type": "update", "updates": [
        {**event["updates"][0], "price_level": "21921.5", "new_quantity": "1"}]}]}
    start = 1_700_000_000 * 10**9
    frames = [(start, snapshot), (start + 10**6, {**update, "sequence_num": 1}),
              (start + 3 * 10**6, {**heartbeat, "sequence_num": 3}),  # 2 was lost
              (start + 5 * 10**6, {**update, "sequence_num": 4})]
    spec = coinbase.spec(["BTC-USD"], ["level2", "heartbeats"])
    path = tmp_path / "cb"
    Recording.from_frames(path, [(wall, json.dumps(frame)) for wall, frame in frames],
                          spec=spec)
    assert replay(path).gaps.height == 1
    times = [start + 3 * 10**6 - 1, start + 3 * 10**6]
    before, after = books_at(path, times, symbols=["BTC-USD"], depth=5).iter_rows(named=True)
    assert before["valid"] and before["bids"]
    assert not after["valid"]
    for row, ns in zip((before, after), times, strict=True):
        assert_book_at(path, row, ns)


@pytest.mark.parametrize("path", [SPOT, COINBASE], ids=["binance-spot", "coinbase"])
def test_a_lost_trade_changes_no_book_read(path: Path, tmp_path: Path) -> None:
    # A trade lost is a gap on the trade channel, which the rule does not act on: the books
    # read at every message around it are those a replay stopped there has. (On the
    # columnar path the chunk's diffs are applied at the end of their stretch, after the
    # trade that shows the gap: read at the gap, the books would be behind.)
    events, _ = _base(path, 6_000)
    trades = [i for i, event in enumerate(events) if isinstance(event.data, str)
              and ('@trade"' in event.data[:40] or '"type":"match"' in event.data[:20])]
    lost = trades[len(trades) // 2]
    record_like(path, tmp_path / "r", events[:lost] + events[lost + 1:])
    assert replay(tmp_path / "r").gaps.height == 1
    walls = Recording.open(tmp_path / "r").frames()["recv_wall_ns"]
    times = within(tmp_path / "r", pl.concat([walls, walls - 1]))
    symbols = sorted(replay(tmp_path / "r").books.books)[:2]  # type: ignore[union-attr]
    columns = books_at(tmp_path / "r", times, symbols=symbols, depth=5)
    assert_frame_equal(columns, books_at(tmp_path / "r", times, symbols=symbols, depth=5,
                                         columnar=False))
    gap = int(events[lost + 1].wall_ns or 0)  # about where the next trade shows it
    near = columns.filter(pl.col("time").dt.epoch("ns").is_between(gap - 10**9, gap + 10**9))
    for index in range(0, near.height, max(1, near.height // 5)):
        assert_book_at(tmp_path / "r", near.row(index, named=True),
                       near["time"].dt.epoch("ns")[index])


def test_every_level_of_a_book_at_many_messages_is_the_same_either_path() -> None:
    walls = Recording.open(SPOT).frames()["recv_wall_ns"].gather_every(7)
    columns = books_at(SPOT, walls, depth=None)
    assert_frame_equal(columns, books_at(SPOT, walls, depth=None, columnar=False))
    assert columns["bids"].list.len().max() > 100  # type: ignore[operator]


def test_times_in_a_time_zone_are_the_instants_they_name() -> None:
    utc = dt.datetime(2024, 8, 8, 23, 54, 30, tzinfo=dt.UTC)
    zoned = pl.Series([utc]).dt.convert_time_zone("America/New_York")
    assert zoned.dt.hour()[0] == 19
    found = books_at(SPOT, zoned, depth=1)
    assert found["time"].to_list() == [utc]
    assert_frame_equal(found, books_at(SPOT, [utc], depth=1))
    assert books_at(SPOT, [], depth=1).schema == pl.Schema(BOOKS_AT_SCHEMA)


@pytest.mark.parametrize("rows", [
    [],
    [[]],
    [[], []],
    [[(1.5, 2.0)]],
    [[(3.0, 1.0), (2.5, 0.25)], [], [(7.0, 0.5)], []],
    [[(float(k), k / 2) for k in range(n)] for n in (0, 300, 1, 0, 17)],
])
def test_a_level_column_is_the_levels_of_each_row_best_first(
        rows: list[list[tuple[float, float]]]) -> None:
    column = _level_column("bids", rows)
    expected = pl.Series("bids", [[{"price": p, "amount": a} for p, a in row] for row in rows],
                         LEVELS)
    assert column.dtype == LEVELS
    assert column.to_list() == expected.to_list()


def test_readings_held_as_chunks_give_the_same_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """What was read becomes a polars chunk every so many levels: the rows, in order, the same.

    Every level of the Coinbase books at 300 times is 2.5M levels: at 5,000 levels a
    chunk, a chunk about every time.
    """
    walls = Recording.open(COINBASE).frames()["recv_wall_ns"]
    first, last = int(walls.min()), int(walls.max())
    times = [first + (last - first) * k // 300 for k in range(301)]
    whole = books_at(COINBASE, times, depth=None)
    made: list[int] = []
    chunk = Readings._chunk

    def counted(self: Readings) -> pl.DataFrame:
        frame = chunk(self)
        made.append(frame.height)
        return frame

    monkeypatch.setattr(book_module, "_READ_LEVELS", 5_000)
    monkeypatch.setattr(Readings, "_chunk", counted)
    chunked = books_at(COINBASE, times, depth=None)
    assert len(made) > 100 and 0 < made[0] < chunked.height / 100
    assert sum(made) == chunked.height
    assert_frame_equal(chunked, whole)
    assert whole.select(pl.col("bids").list.len().sum()).item() > 1_000_000


@pytest.mark.parametrize("symbols", [["btcusdt"], ["BTCUSDT", "ETHUSDT"]])
def test_a_symbol_with_no_book_is_refused_naming_the_books(symbols: list[str]) -> None:
    # As the spec is given it (lower case) or not in the recording: an error, not an
    # empty table that a join would turn into null books.
    with pytest.raises(ValueError, match=r"^no book of '(btcusdt|ETHUSDT)' in the "
                                         r"recording; its books: \['BTCUSDT'\]$"):
        books_at(SPOT, [dt.datetime(2024, 8, 8, 23, 55)], symbols=symbols)


def test_times_in_seconds_read_as_ns_are_told_of() -> None:
    with pytest.warns(UserWarning, match="^the time is before the recording's first event"):
        assert books_at(SPOT, [1_723_161_300]).is_empty()  # seconds: 1970, as ns


def test_readings_give_the_same_frame_when_asked_again() -> None:
    readings = Readings([1, 2, 3], None)
    readings.add(2, [("A", True, 5, 6, [(1.0, 2.0)], [])])
    first = readings.frame()
    assert first.height == 2
    assert_frame_equal(readings.frame(), first)
    readings.add(3, [("A", False, 7, 8, [], [(3.0, 1.0)])])
    assert readings.frame()["valid"].to_list() == [True, True, False]


def test_a_time_taken_as_a_series_keeps_its_nanoseconds_a_python_datetime_does_not() -> None:
    """docs/books.md: a quote's time as one element stops at the us, 100 ns before it."""
    quotes = replay(KRAKEN).normalized("quotes").sort("local_time", maintain_order=True)
    quote = quotes.row(405, named=True)
    nanos = quotes["local_time"].dt.nanosecond()[405] % 1000
    assert (quote["symbol"], quote["ask_price"], nanos) == ("XMR/USD", 354.34, 100)
    kept = books_at(KRAKEN, quotes["local_time"][405:406], symbols=["XMR/USD"], depth=1)
    cut = books_at(KRAKEN, [quotes["local_time"][405]], symbols=["XMR/USD"], depth=1)
    assert kept["asks"][0][0]["price"] == 354.34  # the book the quote was made from
    assert cut["asks"][0][0]["price"] == 354.37  # the one before it


@pytest.mark.parametrize(("time", "hint"), [
    (1_723_161_300, "; an int is ns since the epoch"),
    (dt.datetime(2024, 8, 8, 20), "; a naive datetime is UTC"),
    (dt.date(2024, 8, 8), "; a date is its midnight UTC"),
    (dt.datetime(2024, 8, 8, 20, tzinfo=dt.UTC), ""),
])
def test_one_book_asked_before_the_recording_says_so(time: object, hint: str) -> None:
    # Seconds read as ns (1970), or an hour before the capture began: the error says why
    # there is no book, not only that there is none, and how the time given was read
    # (nothing to say of one in a zone).
    with pytest.raises(ValueError, match=r"^no book of 'BTCUSDT' by .*: that is before the "
                                         r"recording's first event \(2024-08-08 .*\)"
                                         + re.escape(hint) + "$"):
        book_at(SPOT, time, "BTCUSDT")  # type: ignore[arg-type]
