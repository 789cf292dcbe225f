"""Outages: the spells a feed did not show the market, on the rows' clock, and the rows in them."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from wsresearch import (
    Recording,
    export_parquet,
    load_dataset,
    load_normalized,
    load_outages,
    mark_outages,
    quality_report,
    replay,
)
from wsresearch._wall_clock import wall_clock
from wsresearch.export import OUTAGE_SCHEMA, export_with_report, recording_id
from wsresearch.outages import OUTAGE_COLUMNS, on_wall_clock, outage_spans
from wsresearch.quality import SILENCE_COLUMNS

from .conftest import SESSION as SIM_FAULTS
from .conftest import sized

ROOT = SIM_FAULTS.parent.parent
KRAKEN_BOOK = ROOT / "recordings" / "kraken_cryptofeed_2021-04-17_v1_book1000"


def at(second: float) -> datetime:
    return datetime.fromtimestamp(1_767_225_600 + second, UTC)


def outages(*rows: tuple[object, ...]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=OUTAGE_COLUMNS, orient="row")


def epoch_ns(series: pl.Series) -> list[int]:
    return series.dt.epoch("ns").to_list()


# -- the wall clock of a monotonic moment ---------------------------------------------------


def test_a_moment_at_an_event_reads_that_events_wall_time_and_between_events_the_time_since(
) -> None:
    events = pl.DataFrame({"mono_ns": [100, 200, 300], "wall_ns": [5_000, 5_107, 5_199]})
    walls = wall_clock(pl.Series([200, 250, 300, 50, None], dtype=pl.Int64), [events])
    got = dict(zip(walls["mono_ns"], epoch_ns(walls["wall"]), strict=True))
    # Each event's own reading, though the two clocks drift apart (7 ns, then -8 ns);
    # between events, the last one's plus the time since; before them, the first's less.
    assert got == {50: 4_950, 200: 5_107, 250: 5_157, 300: 5_199}


def test_a_stepped_wall_clock_reads_as_it_read_then_and_tables_in_any_order_agree() -> None:
    # The wall clock stepped back an hour between the 2nd and 3rd event.
    hour = 3_600 * 10**9
    events = pl.DataFrame({"mono_ns": [10, 20, 30, 40],
                           "wall_ns": [hour + 10, hour + 20, 30, 40]})
    moments = pl.Series([15, 20, 25, 35], dtype=pl.Int64)
    whole = wall_clock(moments, [events])
    assert epoch_ns(whole["wall"]) == [hour + 15, hour + 20, hour + 25, 35]
    parts = [events.slice(2), events.slice(0, 1), events.slice(1, 1)]  # any order
    assert_frame_equal(wall_clock(moments, parts), whole)


def test_without_events_no_moment_has_a_wall_time() -> None:
    walls = wall_clock(pl.Series([1, 2], dtype=pl.Int64), [])
    assert walls["wall"].null_count() == 2


# -- a report's outages, on real and simulated sessions -------------------------------------


def test_a_broken_kraken_book_is_an_outage_of_its_symbol_from_the_bad_message_to_the_snapshot(
    tmp_path: Path,
) -> None:
    spec = Recording.open(KRAKEN_BOOK).spec
    frames = Recording.open(KRAKEN_BOOK).frames()
    messages = frames["data"].to_list()
    bad = next(i for i, m in enumerate(messages)
               if m.startswith("[") and m.endswith('"XMR/USD"]') and '"c":"' in m)
    decoded = json.loads(messages[bad])
    decoded[1]["c"] = str((int(decoded[1]["c"]) + 1) % 2**32)
    messages[bad] = json.dumps(decoded, separators=(",", ":"))
    snapshot = next(m for m in messages if m.startswith("[") and '"as":[' in m
                    and m.endswith('"XMR/USD"]'))
    times = frames["recv_wall_ns"].to_list()
    recording = Recording.from_frames(
        tmp_path / "rec", list(zip([*times, times[-1] + 10**9],
                                   [*messages, snapshot], strict=True)), spec=spec)
    report = quality_report(recording)
    found = report.outages
    assert found.select("exchange", "reason", "stream", "symbol", "detail").rows() == [
        ("kraken", "book_invalid", None, "XMR/USD", "checksum mismatch")]
    # From the message that broke the book to the snapshot that mended it, to the ns.
    assert epoch_ns(found["start"]) == [times[bad]]
    assert epoch_ns(found["end"]) == [times[-1] + 10**9]
    assert found["length_s"].item() == pytest.approx((times[-1] + 10**9 - times[bad]) / 1e9)
    # The book's changes carry the same times on the wall clock.
    spells = report.book_changes.filter(symbol="XMR/USD")
    assert epoch_ns(spells["time"])[1:] == [times[bad], times[-1] + 10**9]

    changes = replay(recording).normalized("book_changes")
    marked = mark_outages(changes, found)
    inside = (pl.col("local_time").dt.epoch("ns") >= times[bad]) & (
        pl.col("local_time").dt.epoch("ns") < times[-1] + 10**9)
    expected = changes.select((inside & (pl.col("symbol") == "XMR/USD")).alias("outage"))
    assert marked["outage"].sum() > 0
    assert marked["outage"].to_list() == expected["outage"].to_list()
    assert_frame_equal(marked.drop("outage"), changes)  # the rows as they were, in order


def test_the_simulated_sessions_outages_are_its_downtimes_and_silences_on_its_wall_clock(
) -> None:
    recording = Recording.open(SIM_FAULTS)
    report = quality_report(recording)
    found = report.outages
    assert set(found["reason"]) == {"disconnected", "stale", "hole"}
    assert found["exchange"].unique().to_list() == ["generic"]
    events = recording.events()
    wall_at = dict(zip(events["mono_ns"], events["wall_ns"], strict=True))

    # Each downtime, from its close to the next connection's first message (nothing came
    # before it), read off the events themselves.
    closes = events.filter(kind="close").select("mono_ns", "wall_ns").rows()
    opens = events.filter(kind="open").select("mono_ns", "generation").rows()
    frames = events.filter(kind="frame").select("mono_ns", "generation", "wall_ns").rows()
    downs = found.filter(reason="disconnected")
    assert downs.height == report.connections["downtime_after_s"].drop_nulls().len() > 0
    for start, end in zip(epoch_ns(downs["start"]), epoch_ns(downs["end"]), strict=True):
        closed = next(mono for mono, wall in closes if wall == start)
        reopened = next(mono for mono, _ in opens if mono > closed)
        assert end == next(wall for mono, _, wall in frames if mono >= reopened)

    # Each stale and hole silence, with the wall time of the messages that bound it.
    silences = report.silences.filter(pl.col("silence").is_in(["stale", "hole"]))
    assert silences.height == found.filter(pl.col("reason") != "disconnected").height
    bounds = silences.select("start_mono_ns", pl.col("start").dt.epoch("ns"), "end_mono_ns",
                             pl.col("end").dt.epoch("ns"), "recovered")
    for start_mono, start, end_mono, end, recovered in bounds.rows():
        assert wall_at[start_mono] == start
        if recovered:  # else the session's end, which is no message
            assert wall_at[end_mono] == end
    assert found["start"].is_sorted()


def test_a_report_from_a_replay_already_made_has_the_same_outages() -> None:
    recording = Recording.open(SIM_FAULTS)
    result = replay(recording)
    one_pass = quality_report(recording, recording.spec, result=result)
    assert_frame_equal(one_pass.outages, quality_report(recording).outages)


def test_a_dataset_exported_with_its_report_carries_its_outages_each_by_its_recording(
    tmp_path: Path,
) -> None:
    # Two recordings of one exchange over the same minutes: the simulated session, and
    # its messages but the tickers as one connection (its own outages: no disconnect, no
    # stale ticker).
    first = Recording.open(SIM_FAULTS)
    frames = first.frames().filter(~pl.col("data").str.starts_with('{"type":"ticker"'))
    second = Recording.from_frames(
        tmp_path / "again", list(zip(frames["recv_wall_ns"], frames["data"], strict=True)),
        spec=first.spec)
    dataset = tmp_path / "ds"
    reports = {}
    for recording in (first, second):
        summary, reports[summary.recording] = export_with_report(recording, None, dataset,
                                                                 normalized=True)
        assert dataset / "_outages" / f"{summary.recording}.parquet" in summary.files
    found = load_outages(dataset)
    assert found.schema == pl.Schema(OUTAGE_SCHEMA)
    for rid, report in reports.items():
        assert_frame_equal(found.filter(recording=rid).drop("recording"), report.outages)
    assert found.filter(recording=recording_id(first))["reason"].unique().sort().to_list() == [
        "disconnected", "hole", "stale"]

    # One call marks every recording's rows by that recording's own outages.
    trades = load_normalized(dataset, "trades").collect().sort("recording", "local_time")
    marked = mark_outages(trades, found)
    each = pl.concat([mark_outages(trades.filter(recording=rid), report.outages)
                      for rid, report in sorted(reports.items())])
    assert_frame_equal(marked, each)
    assert marked["outage"].sum() > 0
    # Not keyed by recording, the other recording's outages would mark rows too.
    assert not mark_outages(trades.drop("recording"), found)["outage"].equals(marked["outage"])
    # The native rows, lazily, on their ns receive times: the same marks.
    native = mark_outages(load_dataset(dataset, "trade"), found, time="recv_wall_ns").collect()
    by_frame = ["recording", "frame_seq", "outage"]
    assert_frame_equal(native.select(by_frame).sort(by_frame),
                       marked.select(by_frame).sort(by_frame))

    with pytest.raises(FileNotFoundError, match="holds no outages to read"):
        load_outages(tmp_path / "no-such-dataset")  # not read as "no outages"
    # Exported again without its report, a recording's outages are gone with its old files,
    # and the dataset says that they are not known.
    again = export_parquet(first, None, dataset)
    assert again.replaced > 0
    with pytest.warns(UserWarning, match=rf"1 recording\(s\) of .* were exported without their "
                      rf"report, so their outages are not known: {again.recording} \("):
        found = load_outages(dataset)
    assert found["recording"].unique().to_list() == [recording_id(second)]


def test_every_shipped_recording_has_no_outage_but_a_table_with_every_column() -> None:
    for folder in sorted((ROOT / "recordings").iterdir()):
        report = quality_report(folder)
        assert report.outages.schema == pl.Schema(OUTAGE_COLUMNS), folder.name
        assert report.outages.height == 0, folder.name


# -- marking rows ---------------------------------------------------------------------------


def test_rows_are_marked_inside_start_and_before_end_for_every_reason_that_applies() -> None:
    table = outages(
        ("binance", "disconnected", None, None, at(10), at(12), 2.0, "going away (1001)"),
        ("binance", "hole", "bookTicker", None, at(20), at(22), 2.0, None),
        ("binance", "stale", "trade", None, at(30), at(32), 2.0, None),
        ("binance", "book_invalid", None, "ETHUSDT", at(40), at(42), 2.0, "gap"),
        ("kraken", "disconnected", None, None, at(50), at(52), 2.0, None),
    )
    rows = pl.DataFrame({
        "exchange": ["binance"] * 9 + ["kraken", "binance"],
        "symbol": ["BTCUSDT", "BTCUSDT", "BTCUSDT", "BTCUSDT", "BTCUSDT", "BTCUSDT",
                   "BTCUSDT", "ETHUSDT", "ETHUSDT", "XBT/USD", "BTCUSDT"],
        "local_time": [at(9), at(10), at(12), at(21), at(22), at(31), at(41), at(41), None,
                       at(51), at(51)],
    })
    assert mark_outages(rows, table)["outage"].to_list() == [
        False, True, False, True, False, True, False, True, False, True, False]
    # Only the quote stream's silences: the trade stream's stale spell is left out.
    only = mark_outages(rows, table, streams=["bookTicker"], name="blind")
    assert only["blind"].to_list() == [
        False, True, False, True, False, False, False, True, False, True, False]
    # A near miss of a stream the outages name marks nothing, and is told of; a stream
    # with no outage at all is no mistake (a quiet stream), and is not.
    with pytest.warns(UserWarning, match=r"^no outage of stream 'bookTickr', so it marks "
                                         r"nothing; did you mean 'bookTicker'\? The outages' "
                                         r"streams: \['bookTicker', 'trade'\]$"):
        missed = mark_outages(rows, table, streams=["bookTickr"], name="blind")
    assert missed["blind"].to_list() == [
        False, True, False, False, False, False, False, True, False, True, False]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mark_outages(rows, table, streams=["depth"], name="blind")
        # Names that are others', not misspellings: a part of one, or another symbol's.
        for other in ("Ticker", "book", "ethusdt@trade"):
            mark_outages(rows, table.with_columns(stream=pl.col("stream").replace(
                "trade", "btcusdt@trade")), streams=[other], name="blind")
    # Rows without exchange and symbol columns: every outage applies to them.
    times = rows.select("local_time")
    assert mark_outages(times, table)["outage"].to_list() == [
        False, True, False, True, False, True, True, True, False, True, True]


def test_a_lazy_dataset_is_marked_lazily_and_ns_times_as_datetimes() -> None:
    table = outages(("generic", "hole", "trade", None, at(1), at(2), 1.0, None))
    rows = pl.DataFrame({"recv_wall_ns": [int(at(s).timestamp()) * 10**9 for s in (0, 1, 2)],
                         "price": [1.0, 2.0, 3.0]})
    lazy = mark_outages(rows.lazy(), table, time="recv_wall_ns")
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect()["outage"].to_list() == [False, True, False]
    naive = pl.DataFrame({"t": [at(1).replace(tzinfo=None)]})  # naive: UTC
    assert mark_outages(naive, table, time="t")["outage"].to_list() == [True]


def test_keys_of_any_string_type_match_and_an_all_null_key_is_no_key() -> None:
    table = pl.DataFrame([("a", "generic", "disconnected", None, None, at(1), at(2), 1.0, None)],
                         schema=OUTAGE_SCHEMA, orient="row")
    rows = pl.DataFrame({"recording": ["a", "b"], "local_time": [at(1), at(1)]})
    expected = [True, False]
    for dtype in (pl.Categorical(), pl.Enum(["a", "b"])):
        keyed = rows.with_columns(pl.col("recording").cast(dtype))
        assert mark_outages(keyed, table)["outage"].to_list() == expected
        assert mark_outages(keyed.lazy(), table.with_columns(pl.col("recording").cast(
            pl.Categorical()))).collect()["outage"].to_list() == expected
    unknown = rows.with_columns(pl.lit(None).alias("recording"))  # dtype Null
    assert mark_outages(unknown, table)["outage"].to_list() == [False, False]
    assert mark_outages(rows, table.with_columns(pl.lit(None).alias("recording")))[
        "outage"].to_list() == [True, True]


@pytest.mark.parametrize(("call", "error", "words"), [
    (lambda t: mark_outages({"local_time": []}, t), TypeError, "polars DataFrame or LazyFrame"),  # type: ignore[type-var]
    (lambda t: mark_outages(pl.DataFrame({"x": [1]}), t), ValueError, "no column 'local_time'"),
    (lambda t: mark_outages(pl.DataFrame({"local_time": [at(0)], "outage": [1]}), t),
     ValueError, "have a column 'outage' already"),
    (lambda t: mark_outages(pl.DataFrame({"local_time": ["x"]}), t), ValueError,
     "give a Datetime column"),
    (lambda t: mark_outages(pl.DataFrame({"local_time": [at(0)]}), t.drop("end")),
     ValueError, "lack the column(s) ['end']"),
    (lambda t: mark_outages(pl.DataFrame({"local_time": [at(0)]}), t.lazy()), TypeError,
     "outages must be a polars DataFrame"),
    (lambda t: mark_outages(pl.DataFrame({"local_time": [at(0)]}), t, streams="trade"),
     TypeError, "not the string 'trade'"),
])
def test_bad_input_is_refused_in_one_line(call, error, words) -> None:  # type: ignore[no-untyped-def]
    table = outages(("generic", "hole", "trade", None, at(1), at(2), 1.0, None))
    with pytest.raises(error) as caught:
        call(table)
    assert words in str(caught.value)


def test_a_spell_open_at_the_end_holds_the_last_rows_and_one_never_ends_before_it_began(
) -> None:
    changes = pl.DataFrame(
        [(10, "A", True, ""), (20, "A", False, "gap"), (25, "A", False, "crossed"),
         (30, "A", True, ""), (40, "B", True, ""), (50, "B", False, "gap"), (45, "B", True, ""),
         (60, "B", False, "checksum mismatch")],
        schema={"mono_ns": pl.Int64, "symbol": pl.String, "valid": pl.Boolean,
                "reason": pl.String}, orient="row")
    none = pl.DataFrame(schema={"start_mono_ns": pl.Int64, "end_mono_ns": pl.Int64,
                                "detail": pl.String, "recovered": pl.Boolean})
    spans = outage_spans(none, pl.DataFrame(schema=SILENCE_COLUMNS), changes, end=70)
    # One spell while broken twice over; a time that stepped back ends a spell where it
    # began; a spell open at the end runs to it.
    assert spans.select("symbol", "start_mono_ns", "end_mono_ns", "detail", "recovered").rows(
    ) == [("A", 20, 30, "gap", True), ("B", 50, 50, "gap", True),
          ("B", 60, 70, "checksum mismatch", False)]
    events = pl.DataFrame({"mono_ns": [0], "wall_ns": [1_000]})
    walls = wall_clock(pl.concat([spans["start_mono_ns"], spans["end_mono_ns"]]), [events])
    table = on_wall_clock(spans, walls, "kraken")
    # The last spell ends 1 ns past the session's end, so a row at the end is in it.
    assert epoch_ns(table["end"]) == [1_030, 1_050, 1_071]
    rows = pl.DataFrame({"symbol": ["B", "B"], "t": [1_069, 1_070]})
    assert mark_outages(rows, table, time="t")["outage"].to_list() == [True, True]


KEYS = st.sampled_from(["a", "b", None])


@settings(max_examples=sized(25, 60), deadline=None)
@given(spans=st.lists(st.tuples(KEYS, KEYS, st.sampled_from(["disconnected", "stale", "hole",
                                                             "book_invalid"]),
                                st.sampled_from(["s1", "s2"]), KEYS, st.integers(0, 30),
                                st.integers(0, 10)), max_size=8),
       rows=st.lists(st.tuples(KEYS, KEYS, KEYS, st.none() | st.integers(0, 40)),
                     max_size=20),
       streams=st.none() | st.sampled_from([["s1"], ["s2"], []]),
       lazy=st.booleans())
@example(spans=[("a", None, "disconnected", "s1", None, 0, 5)],  # another recording's
         rows=[("b", None, None, 1), ("a", None, None, 1)], streams=None, lazy=False)
def test_marking_agrees_with_a_row_by_row_reading_of_the_rule(
    spans: list[tuple[str | None, str | None, str, str, str | None, int, int]],
    rows: list[tuple[str | None, str | None, str | None, int | None]],
    streams: list[str] | None, lazy: bool,
) -> None:
    # Keyed by recording (as a dataset's outages are), exchange and symbol.
    table = pl.DataFrame(
        [(recording, exchange, reason, stream if reason in ("stale", "hole") else None,
          symbol if reason == "book_invalid" else None, at(start), at(start + length),
          float(length), None)
         for recording, exchange, reason, stream, symbol, start, length in spans],
        schema=OUTAGE_SCHEMA, orient="row")
    frame = pl.DataFrame(
        [(r, e, s, None if t is None else at(t)) for r, e, s, t in rows], orient="row",
        schema={"recording": pl.String, "exchange": pl.String, "symbol": pl.String,
                "local_time": pl.Datetime("ns", "UTC")})

    def inside(recording: str | None, exchange: str | None, symbol: str | None,
               t: int | None, keys: tuple[str, ...] = ("recording", "exchange", "symbol"),
               ) -> bool:
        if t is None:
            return False
        row = {"recording": recording, "exchange": exchange, "symbol": symbol}
        for o in table.iter_rows(named=True):
            if o["reason"] in ("stale", "hole") and streams is not None and (
                    o["stream"] not in streams):
                continue
            if any(o[key] is not None and o[key] != row[key] for key in keys):
                continue
            if o["start"] <= at(t) < o["end"]:
                return True
        return False

    marked = mark_outages(frame.lazy() if lazy else frame, table, streams=streams)
    got = marked.collect() if isinstance(marked, pl.LazyFrame) else marked
    assert got["outage"].to_list() == [inside(*row) for row in rows]
    assert_frame_equal(got.drop("outage"), frame)
    # Without the recording in either table, an outage applies to every recording's rows.
    unkeyed = [inside(*row, keys=("exchange", "symbol")) for row in rows]
    for rows_of, outages_of in ((frame.drop("recording"), table),
                                (frame, table.drop("recording"))):
        assert mark_outages(rows_of, outages_of, streams=streams)["outage"].to_list() == unkeyed
