"""The quality report's symbols table: rows per kind and symbol, and subscribed symbols with none.

The table is checked against the normalized tables of a whole replay (counted at once,
not chunk by chunk), on the real recordings in ``data/recordings`` and on a live feed.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import Feed, Recording
from wsresearch.exchanges import binance
from wsresearch.export import export_with_report
from wsresearch.normalize import KINDS, normalize
from wsresearch.quality import quality_report
from wsresearch.replay import ReplayResult, replay
from wsresearch.spec import FeedSpec
from wsresearch.testing import Simulator

from .conftest import RATES, eventually

RECORDINGS = sorted((Path(__file__).resolve().parent.parent / "data" / "recordings").iterdir())
KRAKEN_TRADES = next(p for p in RECORDINGS if p.name.endswith("2021-04-17_v1_trade"))
BINANCE_SPOT = next(p for p in RECORDINGS if p.name.endswith("2021-10-12_spot_combined"))


def _expected(result: ReplayResult, spec: FeedSpec) -> pl.DataFrame:
    """Rows, first, last and longest gap per kind and symbol, from whole normalized tables."""
    normalizers = {c.name: c.normalized for c in spec.channels}
    parts = []
    for kind in KINDS:
        table = normalize(kind, result.frames, normalizers, spec.exchange or "")
        if table.height:  # in receive order: the recording's seq
            parts.append(table.sort("frame_seq", maintain_order=True).group_by("symbol").agg(
                pl.len().cast(pl.Int64).alias("rows"), pl.col("local_time").first().alias("first"),
                pl.col("local_time").last().alias("last"),
                (pl.col("local_time").diff().dt.total_nanoseconds().max() / 1e9)
                .alias("longest_gap_s")).with_columns(kind=pl.lit(kind)))
    return pl.concat(parts).select("kind", "symbol", "rows", "first", "last", "longest_gap_s")


def _quietly(call, *args, **kwargs):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # times before 2000, clock skew: not judged here
        return call(*args, **kwargs)


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_every_symbol_with_rows_is_counted_as_its_normalized_rows(path: Path) -> None:
    recording = Recording.open(path)
    spec = recording.spec
    assert spec is not None
    report = _quietly(quality_report, recording, chunk_events=997)  # gaps across chunks too
    seen = report.symbols.filter(pl.col("rows") > 0)
    expected = _expected(_quietly(replay, recording, spec), spec)
    assert_frame_equal(seen.drop("subscribed"), expected, check_row_order=False)
    # Every subscribed symbol has a row in every kind, rows or none.
    subscribed = spec.origin.arguments["symbols"] if spec.origin else []
    listed = report.symbols.filter("subscribed")
    assert listed.height == len(subscribed) * report.symbols["kind"].n_unique()
    assert set(listed["symbol"].str.to_uppercase()) == {s.upper() for s in subscribed}
    assert report.symbols.filter(~pl.col("subscribed")).height == 0  # no stray symbol


def test_a_subscribed_symbol_that_never_traded_is_in_the_table_and_the_summary() -> None:
    report = quality_report(KRAKEN_TRADES)
    trades = dict(report.symbols.filter(kind="trades").select("symbol", "rows").iter_rows())
    assert trades == {"WAVES/EUR": 0, "XMR/USD": 4, "KSM/XBT": 0, "GRT/ETH": 0, "SC/EUR": 6,
                      "ETH/CHF": 0, "OCEAN/XBT": 0, "OMG/USD": 0, "XBT/CHF": 0, "ADA/XBT": 0}
    silent = report.symbols.filter(rows=0)
    assert silent.select(pl.col("first", "last", "longest_gap_s").null_count()).row(0) == (8, 8, 8)
    assert dict(report.summary().iter_rows())["symbols without rows"] == (
        "trades 8 of 10 (WAVES/EUR, KSM/XBT, GRT/ETH, ETH/CHF, OCEAN/XBT, ...)")
    page = report.to_html(Path(pytest.importorskip("tempfile").mkdtemp()) / "r.html")
    assert "<h2>Symbols</h2>" in page.read_text()


def test_symbols_are_matched_whatever_their_case_and_spelled_as_the_rows_spell_them() -> None:
    # Binance is subscribed in lower case; its rows name the symbol in upper case.
    report = _quietly(quality_report, BINANCE_SPOT)
    trades = report.symbols.filter(kind="trades")
    assert trades["symbol"].to_list() == ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
    assert trades["rows"].to_list() == [1, 0, 1, 0]  # BLZETH, RUNEEUR: a book, no trade
    assert dict(report.summary().iter_rows())["symbols without rows"] == (
        "trades 2 of 4 (BLZETH, RUNEEUR); quotes 1 of 4 (RUNEEUR); candles 2 of 4 "
        "(BLZETH, RUNEEUR)")
    # A symbol no kind has a row of keeps the spelling it was subscribed with.
    recording = Recording.open(BINANCE_SPOT)
    arguments = dict(recording.spec.origin.arguments)  # type: ignore[union-attr]
    wider = binance.spec(**{**arguments, "symbols": [*arguments["symbols"], "ethusdt"]})
    report = _quietly(quality_report, recording, wider)
    absent = report.symbols.filter(symbol="ethusdt")
    assert absent["kind"].to_list() == ["trades", "quotes", "book_changes", "candles"]
    assert absent["rows"].sum() == 0 and absent["subscribed"].all()
    assert "ethusdt" in dict(report.summary().iter_rows())["symbols without rows"]


def test_rows_of_symbols_not_subscribed_follow_and_an_unsaid_subscription_is_null() -> None:
    recording = Recording.open(BINANCE_SPOT)
    arguments = dict(recording.spec.origin.arguments)  # type: ignore[union-attr]
    # Binance routes by stream name: the other symbols' messages still make rows.
    narrower = binance.spec(**{**arguments, "symbols": ["lrcbtc"]})
    quotes = _quietly(quality_report, recording, narrower).symbols.filter(kind="quotes")
    assert quotes.select("symbol", "subscribed").rows() == [
        ("LRCBTC", True), ("BLZETH", False), ("NKNUSDT", False)]
    # A spec that does not say what it subscribed: every symbol's subscription is unknown.
    unsaid = recording.spec.model_copy(update={"origin": None})  # type: ignore[union-attr]
    report = _quietly(quality_report, recording, unsaid)
    assert report.symbols.height and report.symbols["subscribed"].null_count() == (
        report.symbols.height)
    assert report.symbols.filter(rows=0).height == 0
    assert "symbols without rows" not in dict(report.summary().iter_rows())


def test_a_clock_that_steps_back_gives_the_same_table_for_every_chunk_size(
        tmp_path: Path) -> None:
    # The Kraken trades, one of them received 20 s "before" the one ahead of it.
    source = Recording.open(KRAKEN_TRADES)
    frames = source.frames().select("recv_wall_ns", "data").rows()
    trades = [i for i, (_, text) in enumerate(frames) if '"XMR/USD"' in text and "[[" in text]
    moved = trades[2]
    frames[moved] = (frames[moved][0] - 20 * 10**9, frames[moved][1])
    recording = Recording.from_frames(tmp_path / "rec", frames, spec=source.spec)
    tables = [_quietly(quality_report, recording, chunk_events=n).symbols for n in (1, 3, 7, 1000)]
    for table in tables[1:]:
        assert_frame_equal(table, tables[0])
    xmr = tables[0].filter(kind="trades", symbol="XMR/USD")
    rows = _quietly(replay, recording).normalized("trades").filter(symbol="XMR/USD").sort(
        "frame_seq", maintain_order=True)  # receive order
    assert rows["local_time"].diff().min() < dt.timedelta(0)  # type: ignore[operator]
    assert_frame_equal(xmr.drop("subscribed"), _expected(_quietly(replay, recording),
                                                         source.spec).filter(  # type: ignore[arg-type]
        kind="trades", symbol="XMR/USD"))


def test_a_normalizer_without_a_symbol_leaves_its_kind_out_with_a_warning() -> None:
    recording = Recording.open(KRAKEN_TRADES)
    spec = recording.spec
    assert spec is not None
    [trade] = [c for c in spec.channels if c.name == "trade"]
    broken = trade.model_copy(update={"normalized": {
        "trades": lambda native: trade.normalized["trades"](native).drop("symbol")}})
    odd = spec.model_copy(update={"channels": [broken]})
    with pytest.warns(UserWarning, match="leaves out the trades of channel 'trade': its "
                                         "normalizer failed") as seen:
        report = quality_report(recording, odd, chunk_events=10)
    assert len(seen) == 1  # once, however many chunks
    assert report.symbols.filter(pl.col("rows") > 0).height == 0
    assert report.outcomes.height  # the rest of the report is there


def test_a_symbol_spelled_two_ways_keeps_each_spelling_s_rows() -> None:
    from wsresearch._coverage import SymbolCoverage

    recording = Recording.open(KRAKEN_TRADES)
    coverage = SymbolCoverage(recording.spec)
    frame = replay(recording).frames["trade"]
    lower = frame.with_columns(pl.col("pair").str.to_lowercase())
    coverage.add({"trade": frame})
    coverage.add({"trade": lower})
    xmr = coverage.frame().filter(pl.col("symbol").str.to_uppercase() == "XMR/USD")
    assert xmr.select("symbol", "subscribed", "rows").rows() == [
        ("XMR/USD", True, 4), ("xmr/usd", True, 4)]


def test_without_a_spec_the_table_is_empty(tmp_path: Path) -> None:
    start = 1_700_000_000 * 10**9
    frames = Recording.from_frames(tmp_path / "rec", [(start + i, '{"type": "x"}')
                                                      for i in range(10)])
    assert frames.spec is None
    report = quality_report(frames)
    assert report.symbols.height == 0
    assert list(report.symbols.columns) == ["kind", "symbol", "subscribed", "rows", "first",
                                            "last", "longest_gap_s"]
    assert "symbols without rows" not in dict(report.summary().iter_rows())


def test_one_pass_export_gives_the_same_table(tmp_path: Path) -> None:
    _, report = _quietly(export_with_report, BINANCE_SPOT, None, tmp_path / "ds",
                         normalized=True, chunk_events=500)
    assert_frame_equal(report.symbols, _quietly(quality_report, BINANCE_SPOT).symbols)


async def test_a_live_feed_counts_its_normalized_rows() -> None:
    async with Simulator(rates=RATES, seed=3) as sim:
        spec = sim.spec()
        async with Feed(spec) as feed:
            await eventually(lambda: feed.store.rows("trade") >= 50, what="trades")
            # No await between the two: the feed takes no message in between.
            report = quality_report(feed)
            trades = feed.normalized("trades")
    counted = report.symbols.filter(kind="trades", subscribed=True)
    subscribed = spec.origin.arguments["symbols"]  # type: ignore[union-attr]
    assert counted["symbol"].to_list() == subscribed
    truth = trades.group_by("symbol").agg(
        pl.len().cast(pl.Int64).alias("rows"), pl.col("local_time").min().alias("first"),
        pl.col("local_time").max().alias("last"))
    assert_frame_equal(counted.filter(pl.col("rows") > 0).select("symbol", "rows", "first", "last"),
                       truth, check_row_order=False)
    assert truth["rows"].sum() >= 50
