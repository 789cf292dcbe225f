"""The order book at any time of a recording (books_at, book_at), on real exchange data.

The reference is the replay's own snapshot grid: a snapshot at a boundary holds every
message received before it, which is the book at 1 ns before the boundary.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import Recording, book_at, book_times, books_at, replay
from wsresearch.book_times import BOOKS_AT_SCHEMA
from wsresearch.exchanges import generic

RECORDINGS = Path(__file__).resolve().parent.parent / "data" / "recordings"
SPOT = RECORDINGS / "binance_hftbacktest_2024-08-08_spot_btcusdt"
KRAKEN = RECORDINGS / "kraken_cryptofeed_2021-04-17_v1_book1000"
SESSION = Path(__file__).resolve().parent.parent / "data" / "sessions" / "sim-faults"


def grid(path: Path) -> pl.DataFrame:
    """The replay's snapshots: ``time`` 1 ns before each boundary, the levels there."""
    snapshots = replay(path).normalized("book_snapshots")
    assert snapshots.height > 20
    return snapshots.select(
        (pl.col("local_time") - pl.duration(nanoseconds=1)).alias("time"), "symbol",
        "bids", "asks").sort("time", "symbol")


@pytest.fixture(params=["columnar", "per-message"])
def path_taken(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The replay's columnar path for the cuts, or the per-message one (dense times)."""
    monkeypatch.setattr(book_times, "_EVENTS_A_CUT", 0 if request.param == "columnar" else 10**9)
    return str(request.param)


@pytest.mark.usefixtures("path_taken")
@pytest.mark.parametrize("path", [SPOT, KRAKEN], ids=["binance-spot", "kraken-v1"])
@pytest.mark.parametrize("chunk_events", [97, 20_000])
def test_the_books_at_the_grids_times_are_its_snapshots(path: Path, chunk_events: int) -> None:
    expected = grid(path)
    spec = Recording.open(path).spec
    assert spec is not None
    found = books_at(path, expected["time"], depth=spec.snapshot_depth,
                     chunk_events=chunk_events)
    assert found.schema == pl.Schema(BOOKS_AT_SCHEMA)
    # Every snapshot is of a valid book; books_at also gives the invalid ones, flagged.
    valid = found.filter("valid").select("time", "symbol", "bids", "asks").sort("time", "symbol")
    assert_frame_equal(valid, expected)


def test_a_time_past_the_end_gives_the_books_the_replay_ends_with() -> None:
    found = books_at(KRAKEN, [dt.datetime(2030, 1, 1)], depth=None)
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


def test_two_times_between_the_same_two_events_get_the_same_book(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The pieces are cut in the replay's read-ahead thread, the books read in its own: a
    # cut handed over and then added to could be read before the addition (the second time
    # got the next time's book, or none). The pieces made slow to come widen that window.
    import time as clock

    walls = Recording.open(SPOT).frames()["recv_wall_ns"]
    first, later = int(walls[1000]), int(walls[3000])
    cut = book_times._pieces

    def slow(*arguments: object) -> object:
        for piece in cut(*arguments):  # type: ignore[arg-type]
            yield piece
            clock.sleep(0.2)

    monkeypatch.setattr(book_times, "_pieces", slow)
    found = books_at(SPOT, [first, first + 1, later], depth=5)
    assert found["time"].dt.epoch("ns").to_list() == [first, first + 1, later]
    one, two, three = found.iter_rows(named=True)
    assert (one["bids"], one["asks"], one["local_time"]) == (
        two["bids"], two["asks"], two["local_time"])
    assert three["local_time"] > two["local_time"]


def test_times_in_a_time_zone_are_the_instants_they_name() -> None:
    utc = dt.datetime(2024, 8, 8, 23, 54, 30, tzinfo=dt.UTC)
    zoned = pl.Series([utc]).dt.convert_time_zone("America/New_York")
    assert zoned.dt.hour()[0] == 19
    found = books_at(SPOT, zoned, depth=1)
    assert found["time"].to_list() == [utc]
    assert_frame_equal(found, books_at(SPOT, [utc], depth=1))
    assert books_at(SPOT, [], depth=1).schema == pl.Schema(BOOKS_AT_SCHEMA)
