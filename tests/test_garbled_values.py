"""Segments that still decode, to values no writer gives: left out, with a warning, alike.

Parquet keeps no page checksums: bytes flipped in a page can leave a segment readable with
other numbers in it. A ``seq`` that repeats or steps back, receive times no clock gives,
are left out by every read (``events()``, ``chunks()``, ``columns()``, so replay, report and
export), with one ``DamagedSegmentWarning`` a read naming the file; what a writer wrote
reads as it did, without a word.
"""

from __future__ import annotations

import pickle
import random
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import (
    DamagedSegmentWarning,
    Recording,
    RecordingError,
    export_parquet,
    quality_report,
    replay,
)
from wsresearch.clock import NS_PER_S, VirtualClock
from wsresearch.exchanges import generic
from wsresearch.recording import Recorder, compact_recording
from wsresearch.recording.format import MANIFEST
from wsresearch.recording.writer import SEGMENT_ROW_GROUP, write_capture

DATA = Path(__file__).resolve().parent.parent / "data"
SPOT = DATA / "recordings" / "binance_hftbacktest_2024-08-08_spot_btcusdt"
SESSION = DATA / "sessions" / "sim-faults"
SHIPPED = [*sorted(p for p in (DATA / "recordings").iterdir() if p.is_dir()), SESSION]
DAY = 86_400 * NS_PER_S
WALL = 1_700_000_000 * NS_PER_S
SPEC = generic.spec(url="ws://127.0.0.1:1")


def read_all(path: Path) -> tuple[pl.DataFrame, list[Warning]]:
    """The events of every read of ``path``, checked alike; the warnings they gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        events = Recording.open(path).events()
        for size in (7, 997):
            assert_frame_equal(pl.concat(Recording.open(path).chunks(size)), events)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # columns() leaves the same events out, silently
        parts = pl.concat(Recording.open(path).columns(["kind", "mono_ns", "wall_ns"]))
    # A table a segment: where segments overlap, in seq order within each.
    assert_frame_equal(parts.sort("seq"), events.select("seq", "kind", "mono_ns", "wall_ns"))
    return events, [w.message for w in caught]


def damaged(found: list[Warning]) -> list[DamagedSegmentWarning]:
    return [w for w in found if isinstance(w, DamagedSegmentWarning)]


def rewrite(file: Path, change: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
    """Write ``change`` of a segment file's table over it, as its writer lays it out."""
    table = change(pl.read_parquet(file))
    table.write_parquet(file, row_group_size=SEGMENT_ROW_GROUP)
    return table


def put(column: str, values: dict[int, int]) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """Set ``column`` at some rows (row: value)."""
    def change(table: pl.DataFrame) -> pl.DataFrame:
        found = table[column].to_list()
        for row, value in values.items():
            found[row] = value
        return table.with_columns(pl.Series(column, found, pl.Int64))
    return change


def imported(path: Path, count: int = 60, *, timed: bool = True,
             segment_events: int = 100_000) -> Recording:
    """A capture of ``count`` messages imported with its times (or without), 1-3 ms apart."""
    frames = [f'{{"n":{n}}}' for n in range(count)]
    write_capture(path, [(WALL + n * 1_000_000 + n % 3 * 1_000_000, text)
                         for n, text in enumerate(frames)] if timed else frames,
                  source_url="ws://127.0.0.1:1", segment_events=segment_events)
    return Recording.open(path)


def flip(file: Path, offset: int, count: int) -> None:
    """XOR ``count`` bytes of ``file`` from ``offset`` with 0x5a (as the outside trial did)."""
    raw = bytearray(file.read_bytes())
    for at in range(offset, offset + count):
        raw[at] ^= 0x5A
    file.write_bytes(bytes(raw))


def in_order_within(rows: list[tuple[object, ...]], whole: list[tuple[object, ...]]) -> bool:
    """Whether ``rows`` are some of ``whole``, in its order."""
    left = iter(whole)
    return all(any(row == other for other in left) for row in rows)


@pytest.mark.parametrize(("offset", "count", "left_out", "impossible"), [
    (2_000, 100, 92, ("seq",)),  # seq repeated and shuffled: rows came out in another order
    (20_000, 400, 395, ("mono_ns", "wall_ns")),  # mono_ns 200 years on: a span of 206 years
    (30_000, 200, 78, ("mono_ns", "wall_ns")),  # wall_ns off by microseconds
], ids=["seq", "mono_ns", "wall_ns"])
def test_the_trials_flipped_bytes_are_left_out_and_every_reader_agrees(
        tmp_path: Path, offset: int, count: int, left_out: int,
        impossible: tuple[str, ...]) -> None:
    # The outside trial's damage to the shipped Binance capture: the segment still decodes.
    path = tmp_path / "rec"
    shutil.copytree(SPOT, path)
    (file,) = Recording.open(path).files
    flip(file, offset, count)
    assert pl.read_parquet(file).height == 6_002  # decodes, to other values
    events, found = read_all(path)
    warning = damaged(found)[0]  # one for events(), for each chunks() too: once a read
    assert len(damaged(found)) == len(found) == 3
    assert (warning.file, warning.left_out, warning.lacking, warning.impossible) == (
        file, left_out, (), impossible)
    assert events.height == 6_002 - left_out
    assert events["seq"].is_unique().all() and events["seq"].is_sorted()
    clean = Recording.open(SPOT).events()
    span = pl.col("mono_ns").max() - pl.col("mono_ns").min()
    assert events.select(span).item() == clean.select(span).item()  # 53 s, not 206 years
    if impossible != ("seq",):  # every time left is a clean one
        assert events.join(clean, on=["seq", "mono_ns", "wall_ns"], how="anti").height == 0
    # The replay is of the events kept, in the file's order, told of once.
    with pytest.warns(DamagedSegmentWarning) as told:
        result = replay(path)
    assert len(damaged([w.message for w in told])) == 1
    whole = replay(SPOT)
    assert result.stats["frames"] == whole.stats["frames"] - left_out
    for channel, rows in result.frames.items():
        columns = [c for c in rows.columns if c != "frame_seq"]  # a kept seq may be wrong
        assert in_order_within(rows.select(columns).rows(),
                               whole.frames[channel].select(columns).rows())


def test_an_export_and_a_report_leave_out_what_the_replay_leaves_out(tmp_path: Path) -> None:
    path = tmp_path / "rec"
    shutil.copytree(SPOT, path)
    flip(Recording.open(path).files[0], 2_000, 100)
    with pytest.warns(DamagedSegmentWarning):
        result = replay(path)
    with pytest.warns(DamagedSegmentWarning, match="skipping 92 event"):
        export_parquet(path, None, tmp_path / "dataset")
    trades = pl.read_parquet(tmp_path / "dataset" / "channel=trade" / "**" / "*.parquet")
    replayed = result.frames["trade"]
    assert_frame_equal(trades.select(replayed.columns), replayed)
    with pytest.warns(DamagedSegmentWarning):
        report = quality_report(path)
    assert report.recording == "incomplete: 92 of 6002 event(s) not in the files"


def test_a_seq_that_repeats_or_steps_back_in_a_segment_is_left_out(tmp_path: Path) -> None:
    recording = imported(tmp_path / "rec")
    (file,) = recording.files
    original = pl.read_parquet(file)
    # Row 10 takes row 30's seq (a repeat, and a step forward), row 20 steps back to 5.
    rewrite(file, put("seq", {10: 30, 20: 5}))
    events, found = read_all(recording.path)
    (warning, *_) = damaged(found)
    assert str(warning) == (f"{file}: skipping 2 event(s) with a seq that repeats or steps "
                            "back (a damaged segment)")
    assert_frame_equal(events, original.filter(~pl.col("seq").is_in([10, 20])))


def test_a_seq_another_segment_holds_is_left_out_unless_the_event_is_a_copy(
        tmp_path: Path) -> None:
    recording = imported(tmp_path / "rec", 30, segment_events=10)
    files = recording.files
    assert len(files) == 4
    expected = recording.events()
    # A copy of a segment (a sync tool's conflicted copy) repeats its events as they are:
    # read as before, without a word.
    shutil.copy(files[1], files[1].with_name(files[1].stem + " (copy).parquet"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copied = Recording.open(recording.path).events()
    assert copied.height == expected.height + 10
    # The third file's first event garbled to a seq of the second's: the file is still in
    # order, but the event is another than the second file's: left out.
    seqs = pl.read_parquet(files[2])["seq"].to_list()
    rewrite(files[2], put("seq", {0: seqs[0] - 3}))
    events, found = read_all(recording.path)
    assert [(w.file, w.left_out, w.impossible) for w in damaged(found)][:1] == [
        (files[2], 1, ("seq",))]
    assert_frame_equal(events.unique("seq", keep="first", maintain_order=True),
                       expected.filter(pl.col("seq") != seqs[0]))


def test_overlapping_segments_read_without_a_word_until_one_repeats_the_others_seq(
        tmp_path: Path) -> None:
    # Segments a crash or an edit left overlapping: every one is in order, none repeats.
    recording = imported(tmp_path / "rec", 40)
    (file,) = recording.files
    table = pl.read_parquet(file)
    file.unlink()
    odd = file.with_name("events-000000000001.parquet")
    table.gather_every(2).write_parquet(file.with_name("events-000000000000.parquet"))
    table.gather_every(2, offset=1).write_parquet(odd)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        events, _ = read_all(recording.path)
        assert_frame_equal(events, table)
    # seq 7 garbled to 8: its file is still in order, but 8 is the other file's event.
    rewrite(odd, put("seq", {3: 8}))
    events, found = read_all(recording.path)
    assert [(w.file, w.left_out, w.impossible) for w in damaged(found)][:1] == [
        (odd, 1, ("seq",))]
    assert_frame_equal(events, table.filter(pl.col("seq") != 7))


def test_an_imported_events_times_that_disagree_are_left_out(tmp_path: Path) -> None:
    recording = imported(tmp_path / "rec")
    (file,) = recording.files
    original = pl.read_parquet(file)
    walls, monos = original["wall_ns"].to_list(), original["mono_ns"].to_list()
    # wall_ns a few microseconds off, as flipped bytes gave; a mono_ns far off.
    rewrite(file, lambda t: put("wall_ns", {row: walls[row] - 3_000 for row in range(5, 10)})(
        put("mono_ns", {20: monos[20] + 200 * 365 * DAY})(t)))
    events, found = read_all(recording.path)
    (warning, *_) = damaged(found)
    assert (warning.left_out, warning.impossible) == (6, ("mono_ns", "wall_ns"))
    assert "with a wall_ns and mono_ns not apart by the import's offset" in str(warning)
    assert_frame_equal(events, original.filter(~pl.col("seq").is_in([5, 6, 7, 8, 9, 20])))


def test_invented_times_that_disagree_are_left_out(tmp_path: Path) -> None:
    recording = imported(tmp_path / "rec", timed=False)
    assert recording.manifest.receive_times == "invented"
    (file,) = recording.files
    original = pl.read_parquet(file)
    rewrite(file, put("wall_ns", {12: original["wall_ns"][12] + 1}))
    events, found = read_all(recording.path)
    assert [(w.left_out, w.impossible) for w in damaged(found)][:1] == [
        (1, ("mono_ns", "wall_ns"))]
    assert_frame_equal(events, original.filter(pl.col("seq") != 12))


def test_an_import_whose_manifest_start_was_changed_loses_no_event(tmp_path: Path) -> None:
    # The offset is the manifest's start, unless most of a file's events agree on another.
    recording = imported(tmp_path / "rec")
    expected = recording.events()
    (file,) = recording.files
    rewrite(file, put("wall_ns", {7: expected["wall_ns"][7] + 1}))
    manifest = recording.path / MANIFEST
    manifest.write_text(manifest.read_text().replace(str(WALL), str(WALL + 5)))
    assert Recording.open(recording.path).manifest.started_wall_ns == WALL + 5
    events, found = read_all(recording.path)
    assert [(w.left_out, w.impossible) for w in damaged(found)][:1] == [
        (1, ("mono_ns", "wall_ns"))]
    assert_frame_equal(events, expected.filter(pl.col("seq") != 7))


def session_copy(path: Path) -> tuple[Path, pl.DataFrame]:
    """A copy of the shipped recorded session; its largest segment file, and its table."""
    shutil.copytree(SESSION, path)
    file = max(Recording.open(path).files, key=lambda f: pl.read_parquet(f).height)
    return file, pl.read_parquet(file)


@pytest.mark.parametrize(("where", "by"), [
    ("middle", 200 * 365 * DAY),  # away and back: the outside trial's 200 years
    ("middle", -3 * DAY),  # down and back up
    ("start", 10 * DAY),  # the file's first messages, with no way back before them
    ("end", -2 * DAY),  # its last ones step back, and stay
], ids=["years-away-and-back", "days-down-and-back", "at-the-start", "back-at-the-end"])
def test_a_recorded_mono_that_leaps_away_and_back_is_left_out(
        tmp_path: Path, where: str, by: int) -> None:
    file, table = session_copy(tmp_path / "rec")
    frames = table.with_row_index("row").filter(pl.col("kind") == "frame")["row"].to_list()
    count = 25
    rows = {"start": frames[:count], "end": frames[-count:],
            "middle": frames[100:100 + count]}[where]
    monos = table["mono_ns"].to_list()
    rewrite(file, put("mono_ns", {row: monos[row] + by for row in rows}))
    events, found = read_all(tmp_path / "rec")
    (warning, *_) = damaged(found)
    assert (warning.file, warning.left_out, warning.impossible) == (file, count, ("mono_ns",))
    assert "with a mono_ns that steps more than a day back from its connection's" in str(
        warning)
    gone = set(table["seq"].gather(rows).to_list())
    assert_frame_equal(events, Recording.open(SESSION).events().filter(
        ~pl.col("seq").is_in(gone)))


def test_a_recorded_block_of_random_times_is_left_out_and_only_it(tmp_path: Path) -> None:
    # A page of noise: each message its own run, days to a century off either way.
    file, table = session_copy(tmp_path / "rec")
    frames = table.with_row_index("row").filter(pl.col("kind") == "frame")["row"].to_list()
    rows = frames[500:800]
    chance = random.Random(7)
    monos = table["mono_ns"].to_list()
    rewrite(file, put("mono_ns", {row: monos[row] + chance.choice((-1, 1)) * chance.randrange(
        2 * DAY, 100 * 365 * DAY) for row in rows}))
    events, found = read_all(tmp_path / "rec")
    assert [(w.left_out, w.impossible) for w in damaged(found)][:1] == [(300, ("mono_ns",))]
    gone = table["seq"].gather(rows).implode()
    assert_frame_equal(events, Recording.open(SESSION).events().filter(
        ~pl.col("seq").is_in(gone)))


def test_a_recorded_connection_silent_for_days_is_kept_and_a_leap_back_after_it_is_not(
        tmp_path: Path) -> None:
    # Its messages leap forward and stay: kept, whatever the events of other kinds say.
    file, table = session_copy(tmp_path / "rec")
    frames = table.with_row_index("row").filter(pl.col("kind") == "frame")["row"].to_list()
    cut = frames[len(frames) // 2]
    row = pl.int_range(pl.len())
    later = (pl.col("kind") == "frame") & (row >= cut)
    changed = rewrite(file, lambda t: t.with_columns(
        mono_ns=pl.when(later).then(pl.col("mono_ns") + 5 * DAY).otherwise("mono_ns")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        events, _ = read_all(tmp_path / "rec")
    assert_frame_equal(events.select(changed.columns).filter(
        pl.col("seq").is_in(changed["seq"].implode())), changed)
    # Ten of the messages after it back where they were before: away and back, left out.
    back = frames[len(frames) // 2 + 20:len(frames) // 2 + 30]
    rewrite(file, lambda t: t.with_columns(mono_ns=pl.when(row.is_in(back)).then(
        pl.col("mono_ns") - 5 * DAY).otherwise("mono_ns")))
    events, found = read_all(tmp_path / "rec")
    assert [(w.left_out, w.impossible) for w in damaged(found)][:1] == [(10, ("mono_ns",))]
    assert_frame_equal(events.select(changed.columns).filter(
        pl.col("seq").is_in(changed["seq"].implode())), changed.filter(
        ~pl.int_range(pl.len()).is_in(back)))


async def test_messages_timed_by_their_caller_beside_the_recorders_clock_are_no_damage(
        tmp_path: Path) -> None:
    # A caller of Recorder gives each message its own clock's times; events it gives no
    # time take the recorder's clock, here 30 days on: every message is kept.
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1",
                        clock=VirtualClock(mono_ns=30 * DAY, wall_ns=WALL))
    await recorder.start()
    recorder.record("open", 1, data="ws://127.0.0.1:1")
    for n in range(20):
        recorder.record_message(f'{{"n":{n}}}', 1, n * NS_PER_S, WALL + n * NS_PER_S)
        if n % 5 == 4:
            recorder.record("mark", 1, data=f"after {n}")
    await recorder.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        events, _ = read_all(tmp_path / "rec")
    assert events.height == 1 + 20 + 4 + 1  # the open, the messages, the marks, the stop
    # The same messages with a leap a monotonic clock cannot make are left out.
    (file,) = Recording.open(tmp_path / "rec").files
    rows = pl.read_parquet(file).with_row_index("row").filter(
        pl.col("kind") == "frame")["row"].to_list()[8:11]
    rewrite(file, lambda t: t.with_columns(mono_ns=pl.when(pl.int_range(pl.len()).is_in(rows))
                                           .then(pl.col("mono_ns") + 40 * DAY)
                                           .otherwise("mono_ns")))
    events, found = read_all(tmp_path / "rec")
    assert [(w.left_out, w.impossible) for w in damaged(found)][:1] == [(3, ("mono_ns",))]
    assert events.height == 26 - 3


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_recordings_are_read_as_they_are_and_a_garbled_copy_is_not(
        tmp_path: Path, path: Path) -> None:
    # No false alarm on real data: every shipped recording is sound, read and replayed
    # without a word. A copy with one time garbled is told of.
    recording = Recording.open(path)
    assert all(sound for _, _, sound, _ in recording._survey())
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedSegmentWarning)
        events, _ = read_all(path)
        replay(path, recording.spec or SPEC, chunk_events=97)
    copy = tmp_path / "rec"
    shutil.copytree(path, copy)
    file = Recording.open(copy).files[-1]
    table = pl.read_parquet(file)
    row = table.with_row_index("row").filter(pl.col("kind") == "frame")["row"][-3]
    leap = 1 if recording.manifest.receive_times != "recorded" else 90 * DAY
    rewrite(file, put("mono_ns", {row: table["mono_ns"][row] + leap}))
    garbled, found = read_all(copy)
    assert [(w.file, w.left_out) for w in damaged(found)][:1] == [(file, 1)]
    assert garbled.height == events.height - 1


def test_a_folder_holding_garbled_values_is_not_compacted(tmp_path: Path) -> None:
    # Compacting would drop the events the reader leaves out: refused, as for lost values.
    recording = imported(tmp_path / "rec", 30, segment_events=10)
    file = recording.files[1]
    seqs = pl.read_parquet(file)["seq"].to_list()
    rewrite(file, put("seq", {3: seqs[7]}))
    with pytest.warns(DamagedSegmentWarning), pytest.raises(
            RecordingError, match="could not be read"):
        compact_recording(recording.path, segment_events=100)


def test_the_warning_crosses_to_another_process_with_what_was_wrong() -> None:
    warning = DamagedSegmentWarning(Path("events-000000000000.parquet"), 3, ("kind",),
                                    ("seq",))
    again = pickle.loads(pickle.dumps(warning))
    assert (again.file, again.left_out, again.lacking, again.impossible) == (
        warning.file, 3, ("kind",), ("seq",))
    assert str(again) == str(warning) == (
        "events-000000000000.parquet: skipping 3 event(s) without a value of kind; with a "
        "seq that repeats or steps back (a damaged segment)")
