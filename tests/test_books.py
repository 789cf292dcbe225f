"""Order books kept from real exchange messages: Kraken v1 checksums, integrity, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import Recording, replay
from wsresearch.book import Book, kraken_checksum

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
    book.set("bid", 11.0, 1.0)
    assert book.crossed
    book.set("bid", 11.0, 0)
    assert not book.crossed
    assert book.top(1).rows() == [("bid", 0, 3.0, 1.0), ("ask", 0, 11.0, 2.0)]
    result = replay(Recording.open(KRAKEN_BOOK))
    with pytest.raises(ValueError, match="no book of 'BTC/USD'; books: \\['ADA/XBT'"):
        result.book("BTC/USD")
