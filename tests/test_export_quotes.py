"""Where exported quotes come from: the spec's choice, or ``quotes="book"`` / ``"channel"``."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import Recording, export_parquet, load_normalized, replay
from wsresearch.export import export_with_report

from .conftest import as_connections, run_here
from .test_split import assert_same_dataset

RECORDINGS = Path(__file__).resolve().parent.parent / "data" / "recordings"
OKX = RECORDINGS / "okx_cryptofeed_2022-05-13_v5_public_tickers_trades_books"
KRAKEN_TRADES = RECORDINGS / "kraken_cryptofeed_2021-04-17_v1_trade"
COINBASE = RECORDINGS / "coinbase_cryptofeed_2021-04-17_exchange_level2_ticker_matches"
KRAKEN_BOOK = RECORDINGS / "kraken_cryptofeed_2021-04-17_v1_book1000"


def exported_quotes(dataset: Path) -> pl.DataFrame:
    """A dataset's quotes as a replay gives them: without the dataset's own column."""
    return load_normalized(dataset, "quotes").collect().drop("recording", "kind", "date")


def test_quotes_from_the_books_are_exported_beside_the_ticker_channels_rows(
        tmp_path: Path) -> None:
    # The shipped OKX capture: its ticker gives 28 quotes, its books change their top 204
    # times; the spec takes the books' (FeedSpec.quotes), so an export does too.
    result = replay(OKX)
    default = export_parquet(OKX, None, tmp_path / "default", normalized=True)
    booked = export_parquet(OKX, None, tmp_path / "book", normalized=True, quotes="book")
    channel = export_parquet(OKX, None, tmp_path / "channel", normalized=True,
                             quotes="channel")
    assert (default.normalized["quotes"], channel.normalized["quotes"],
            booked.normalized["quotes"]) == (204, 28, 204)
    assert_frame_equal(exported_quotes(tmp_path / "book"),
                       result.normalized("quotes", source="book"))
    assert_frame_equal(exported_quotes(tmp_path / "default"), result.normalized("quotes"))
    assert_frame_equal(exported_quotes(tmp_path / "channel"),
                       result.normalized("quotes", source="channel"))
    # Every other table is the default export's.
    for kind in ("trades", "book_snapshots", "book_changes"):
        assert_frame_equal(load_normalized(tmp_path / "channel", kind).collect(),
                           load_normalized(tmp_path / "default", kind).collect())
    # With the report, from the same replay.
    summary, _ = export_with_report(OKX, None, tmp_path / "report", normalized=True,
                                    quotes="channel")
    assert summary.normalized == channel.normalized
    assert_frame_equal(exported_quotes(tmp_path / "report"),
                       exported_quotes(tmp_path / "channel"))


def test_quotes_from_the_books_split_at_reconnects_are_the_serial_ones(tmp_path: Path) -> None:
    """The OKX capture played as three connections, each rebuilding its books (3 minutes a
    connection: a copy within the de-dup TTL of the last would be a duplicate)."""
    as_connections(OKX, tmp_path / "rec", 3, stretch=18)
    serial = export_parquet(tmp_path / "rec", None, tmp_path / "serial", normalized=True,
                            quotes="book")
    split = export_parquet(tmp_path / "rec", None, tmp_path / "split", normalized=True,
                           quotes="book", workers=3)
    assert split.parts == 3
    assert serial.normalized["quotes"] == split.normalized["quotes"] == 3 * 204
    assert_frame_equal(exported_quotes(tmp_path / "split"), exported_quotes(tmp_path / "serial"))


def test_a_split_export_follows_the_spec_it_is_given_as_one_process_does(
        tmp_path: Path) -> None:
    # Parts rebuild the spec from its origin: the fields changed without dropping it (the
    # quotes' source, the snapshot grid) must reach them too, by replace() (which the
    # origin keeps) or by pydantic's model_copy (which it does not).
    as_connections(OKX, tmp_path / "rec", 3, stretch=18)
    made = Recording.open(tmp_path / "rec").spec
    assert made is not None
    fields = {"quotes": "channel", "snapshot_interval": 0.25, "snapshot_depth": 3}
    spec, copied = made.replace(**fields), made.model_copy(update=fields)
    assert copied.origin == made.origin
    serial = export_parquet(tmp_path / "rec", spec, tmp_path / "serial", normalized=True)
    split = export_parquet(tmp_path / "rec", copied, tmp_path / "split", normalized=True,
                           workers=3)
    assert split.parts == 3
    assert serial.normalized["quotes"] == 3 * 28  # the ticker's, not the books' 3 * 204
    assert split.normalized == serial.normalized
    assert_same_dataset(tmp_path / "serial", tmp_path / "split")
    snapshots = load_normalized(tmp_path / "split", "book_snapshots").collect()
    assert snapshots["bids"].list.len().max() == 3


def test_quotes_from_the_channels_are_the_tickers_and_none_where_no_channel_gives_them(
        tmp_path: Path) -> None:
    # Coinbase's spec keeps the level2 book and takes its quotes from it; its ticker's
    # own 107 are there for the asking.
    default = export_parquet(COINBASE, None, tmp_path / "default", normalized=True)
    channel = export_parquet(COINBASE, None, tmp_path / "channel", normalized=True,
                             quotes="channel")
    assert (default.normalized["quotes"], channel.normalized["quotes"]) == (1778, 107)
    assert_frame_equal(exported_quotes(tmp_path / "channel"),
                       replay(COINBASE).normalized("quotes", source="channel"))
    # Kraken's book1000 capture has no ticker: no channel gives quotes, so none.
    books = export_parquet(KRAKEN_BOOK, None, tmp_path / "kraken", normalized=True)
    none = export_parquet(KRAKEN_BOOK, None, tmp_path / "kraken-channel", normalized=True,
                          quotes="channel")
    assert books.normalized["quotes"] == 810 and "quotes" not in none.normalized
    assert none.normalized == {k: n for k, n in books.normalized.items() if k != "quotes"}


@pytest.mark.parametrize(("recording", "options", "words"), [
    (OKX, {"normalized": True, "quotes": "ticker"}, "quotes must be one of ['channel', 'book']"),
    (OKX, {"quotes": "book"}, "export with normalized=True"),
    (KRAKEN_TRADES, {"normalized": True, "quotes": "book"}, "no order books to take quotes"),
])
def test_a_quote_source_that_cannot_be_is_refused_before_anything_is_written(
        tmp_path: Path, recording: Path, options: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        export_parquet(recording, None, tmp_path / "ds", **options)  # type: ignore[arg-type]
    assert not (tmp_path / "ds").exists()


def test_export_takes_its_quotes_from_the_books_when_asked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def export(*args: str) -> tuple[int, str, list[str]]:
        code, out, err = run_here(capsys, "export", *args)
        return code, out, err.strip().splitlines()

    code, said, _ = export(str(OKX), "--out", str(tmp_path / "ds"), "--normalized",
                           "--quotes", "book")
    assert code == 0 and "quotes 204" in said
    code, _, err = export(str(OKX), "--out", str(tmp_path / "x"), "--quotes", "book")
    assert (code, err) == (1, ["wsresearch export: error: --quotes goes with --normalized"])
    # Refused before any recording is exported: the OKX one, given first, is not written.
    code, _, err = export(str(OKX), str(KRAKEN_TRADES), "--out", str(tmp_path / "y"),
                          "--normalized", "--quotes", "book")
    assert code == 1 and not (tmp_path / "y").exists()
    assert err == [f"wsresearch export: error: {KRAKEN_TRADES}: --quotes book, but its spec "
                   "keeps no order books to take quotes from"]
