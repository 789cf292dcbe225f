"""Compacting a finished recording: the same events in fewer files, or nothing touched."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import wsresearch.recording.compact as compact_module
from wsresearch import Recording, compact_recording, replay
from wsresearch._files import exchange_paths
from wsresearch.cli import main
from wsresearch.errors import RecordingError, RecordingFormatError
from wsresearch.exchanges import generic
from wsresearch.recording import Recorder
from wsresearch.recording.format import COMPACTING, LOCK, REPLACED, SEGMENTS
from wsresearch.recording.writer import SEGMENT_ROW_GROUP, Captured, write_events
from wsresearch.testing import generic_frames

from .test_streaming import (
    RECORDINGS,
    assert_same_replay,
    cut_segments,
    small_segments,
    version_1_copy,
)

HOUR_NS = 3_600 * 10**9


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file under ``path``, by its relative name: what "left as it was" compares."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def test_small_segments_become_a_few_files_holding_the_same_events(tmp_path: Path) -> None:
    recording = small_segments(tmp_path / "rec", 1_000, 7)
    events, spec = recording.events(), recording.spec
    assert spec is not None
    before = replay(recording, spec)
    steps: list[tuple[int, int]] = []
    done = compact_recording(recording.path, segment_events=400,
                             progress=lambda *step: steps.append(step))
    assert (done.events, done.files_before, done.files_after, done.folders_rewritten) == (
        1_002, 144, 3, 1)
    assert done.bytes_after < done.bytes_before
    assert steps == [(400, 1_002), (800, 1_002), (1_002, 1_002)]  # a step a file written
    compacted = Recording.open(recording.path)
    assert [f.name for f in compacted.files] == [  # named apart from the old ones
        "events-000000000000.c1.parquet", "events-000000000400.c1.parquet",
        "events-000000000800.c1.parquet"]
    assert_frame_equal(compacted.events(), events)
    assert_same_replay(replay(compacted, spec), before)
    assert not (recording.path / COMPACTING).exists()
    assert not (recording.path / REPLACED).exists()
    assert not (recording.path / LOCK).exists()
    assert oct(compacted.files[0].stat().st_mode & 0o777) == "0o600"


def test_compacting_a_compact_recording_changes_nothing(tmp_path: Path) -> None:
    recording = small_segments(tmp_path / "rec", 1_000, 7)
    compact_recording(recording.path)
    files = snapshot(recording.path)
    again = compact_recording(recording.path)
    assert (again.files_before, again.files_after, again.folders_rewritten) == (1, 1, 0)
    assert snapshot(recording.path) == files


def test_new_segments_are_written_in_row_groups(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow comes with the dataset extra")
    recording = small_segments(tmp_path / "rec", 25_000, 1_000)
    compact_recording(recording.path)
    (only,) = Recording.open(recording.path).files
    metadata = pq.ParquetFile(only).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [
        SEGMENT_ROW_GROUP] * 2 + [25_002 - 2 * SEGMENT_ROW_GROUP]


def test_each_segment_folder_is_compacted_on_its_own(tmp_path: Path) -> None:
    # A folder is a rotate_interval (an hour) of the session: the folders keep their
    # meaning, and one already in as few files as it can be is kept as it is.
    spec = generic.spec(url="ws://127.0.0.1:1")
    start = 1_700_000_000 * 10**9
    frames = list(generic_frames(40, seed=2))
    # Segments of 2 events: hour 0, the open and 29 frames (15 segments); hour 1, 2 frames
    # (1); hour 2, 9 frames and the stop (5).
    times = [start + i * 10**9 for i in range(29)] + [
        start + HOUR_NS + i * 10**9 for i in range(2)] + [
        start + 2 * HOUR_NS + i * 10**9 for i in range(9)]
    events = [Captured("open", start, spec.url)] + [
        Captured("frame", at, text) for at, text in zip(times, frames, strict=True)]
    write_events(tmp_path / "rec", events, source_url=spec.url, origin=spec.origin,
                 segment_events=2)
    path = tmp_path / "rec"
    folders = sorted(p.name for p in (path / SEGMENTS).iterdir())
    assert len(folders) == 3
    single = snapshot(path / SEGMENTS / folders[1])
    expected = Recording.open(path).events()
    done = compact_recording(path, segment_events=20)
    assert done.folders_rewritten == 2
    assert sorted(p.name for p in (path / SEGMENTS).iterdir()) == folders
    assert [len(list((path / SEGMENTS / f).iterdir())) for f in folders] == [2, 1, 1]
    assert snapshot(path / SEGMENTS / folders[1]) == single
    assert_frame_equal(Recording.open(path).events(), expected)


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_real_recordings_replay_alike_compacted(tmp_path: Path, path: Path) -> None:
    # Segments of 50 events, rewritten as larger ones: every event and every
    # outcome of the replay (books, gaps, health) stay as they were.
    source = Recording.open(path)
    spec = source.spec
    assert spec is not None
    events = source.events()
    cut = tmp_path / "cut"
    shutil.copytree(path, cut, ignore=shutil.ignore_patterns(SEGMENTS))
    cut_segments(cut / SEGMENTS / "0000", events, 50)
    before = replay(Recording.open(cut), spec)
    done = compact_recording(cut, segment_events=2_000)
    assert done.files_after == -(-events.height // 2_000) < done.files_before
    compacted = Recording.open(cut)
    assert_frame_equal(compacted.events(), events)
    assert_same_replay(replay(compacted, spec), before)


def test_a_version_1_recording_keeps_its_events(tmp_path: Path) -> None:
    # Version-1 segments lack closed_by, which readers derive from the close reasons:
    # compacted, they are version-1 files still, and the events read the same.
    path = tmp_path / "v1"
    cut_segments(path / SEGMENTS / "0000", version_1_copy(path), 9)
    expected = Recording.open(path).events()
    compact_recording(path)
    assert len(Recording.open(path).files) == 1
    assert_frame_equal(Recording.open(path).events(), expected)


@pytest.mark.parametrize("damage", ["footer", "data"])
def test_a_recording_with_a_damaged_segment_is_refused_and_left_as_it_was(
        tmp_path: Path, damage: str) -> None:
    # A reader skips a damaged segment with a warning; a compaction would lose its events
    # for good. Whether the damage is in the footer (the file cannot be opened) or in the
    # messages' pages (only reading them fails).
    recording = small_segments(tmp_path / "rec", 300, 10)
    damaged = recording.files[5]
    raw = bytearray(damaged.read_bytes())
    if damage == "footer":
        del raw[-20:]
    else:  # the first page header of the data column: the seq column still reads
        pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow comes with the dataset "
                                 "extra")
        group = pq.ParquetFile(damaged).metadata.row_group(0)
        (column,) = [group.column(i) for i in range(group.num_columns)
                     if group.column(i).path_in_schema == "data"]
        at = column.dictionary_page_offset or column.data_page_offset
        raw[at:at + 8] = b"\xff" * 8
    damaged.write_bytes(bytes(raw))
    if damage == "data":
        assert pl.read_parquet(damaged, columns=["seq"]).height == 10
    files = snapshot(recording.path)
    # Damage past the footer shows as the read goes: the reader's warning, then the refusal.
    read = (pytest.warns(UserWarning, match="skipping unreadable segment")
            if damage == "data" else contextlib.nullcontext())
    with pytest.raises(RecordingError, match="compacting would lose"), read:
        compact_recording(recording.path)
    assert snapshot(recording.path) == files


def test_a_locked_recording_is_refused_and_its_lock_kept(tmp_path: Path) -> None:
    recording = small_segments(tmp_path / "rec", 100, 10)
    (recording.path / LOCK).touch()
    files = snapshot(recording.path)
    with pytest.raises(RecordingError, match=r"is locked \(\.lock\) by a recorder writing it, "
                       r"or one that was killed there: .* \(remove \.lock if"):
        compact_recording(recording.path)
    assert snapshot(recording.path) == files


async def test_a_recording_its_recorder_is_writing_is_refused_as_such(tmp_path: Path) -> None:
    # The running recorder holds its lock file: still a recorder's, not a compaction's.
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1")
    await recorder.start()
    recorder.record_message('{"n":0}', 1, 0, 0)
    await recorder.flush()
    try:
        with pytest.raises(RecordingError, match=r"is locked \(\.lock\) by a recorder writing"):
            compact_recording(tmp_path / "rec")
    finally:
        await recorder.stop()


def test_anything_but_segments_in_the_segment_folders_is_refused(tmp_path: Path) -> None:
    recording = small_segments(tmp_path / "rec", 100, 10)
    notes = recording.path / SEGMENTS / "0000" / "notes.txt"
    notes.write_text("mine")
    files = snapshot(recording.path)
    with pytest.raises(RecordingError, match=r"notes\.txt \(not a segment\)"):
        compact_recording(recording.path)
    assert snapshot(recording.path) == files


def test_the_leftover_of_an_unfinished_write_is_kept(tmp_path: Path) -> None:
    recording = small_segments(tmp_path / "rec", 100, 10)
    leftover = recording.path / SEGMENTS / "0000" / "events-000000000099.parquet.x1.tmp"
    leftover.write_bytes(b"torn")
    with pytest.warns(UserWarning, match="an unfinished write"):
        compact_recording(recording.path)
    assert leftover.read_bytes() == b"torn"
    with pytest.warns(UserWarning, match="an unfinished write"):
        assert len(Recording.open(recording.path).files) == 1


def test_a_compaction_stopped_before_the_swap_is_cleared(tmp_path: Path) -> None:
    recording = small_segments(tmp_path / "rec", 100, 10)
    partial = recording.path / COMPACTING / "0000"
    partial.mkdir(parents=True)
    (partial / "events-000000000050.c1.parquet").write_bytes(b"half")  # not a name it writes
    expected = recording.events()
    compact_recording(recording.path)
    assert not (recording.path / COMPACTING).exists()
    assert [f.name for f in Recording.open(recording.path).files] == [
        "events-000000000000.c1.parquet"]
    assert_frame_equal(Recording.open(recording.path).events(), expected)


def test_a_compaction_stopped_between_its_renames_still_reads_and_is_undone(
        tmp_path: Path) -> None:
    # Between renaming segments/ away and the new ones into place, segments/ is missing:
    # readers read the old ones, which are whole, and the next compaction starts again.
    recording = small_segments(tmp_path / "rec", 100, 10)
    expected = recording.events()
    os.rename(recording.path / SEGMENTS, recording.path / REPLACED)
    (recording.path / COMPACTING / "0000").mkdir(parents=True)
    with pytest.warns(UserWarning, match="a compaction was interrupted"):
        assert_frame_equal(Recording.open(recording.path).events(), expected)
    done = compact_recording(recording.path)
    assert done.files_before == 11 and done.files_after == 1
    assert sorted(p.name for p in recording.path.iterdir()) == ["manifest.json", SEGMENTS]
    assert_frame_equal(Recording.open(recording.path).events(), expected)


def test_a_compaction_stopped_after_its_renames_is_finished(tmp_path: Path) -> None:
    recording = small_segments(tmp_path / "rec", 100, 10)
    expected = recording.events()
    shutil.copytree(recording.path / SEGMENTS, recording.path / REPLACED)
    compact_recording(recording.path)
    assert not (recording.path / REPLACED).exists()
    assert_frame_equal(Recording.open(recording.path).events(), expected)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "7", None])
def test_a_segment_size_that_is_not_a_positive_int_is_refused_before_any_work(
        tmp_path: Path, bad: object) -> None:
    recording = small_segments(tmp_path / "rec", 100, 10)
    (recording.path / LOCK).touch()  # would be refused too, but later
    with pytest.raises(ValueError, match="segment_events must be a positive int"):
        compact_recording(recording.path, segment_events=bad)  # type: ignore[arg-type]


def test_a_folder_that_is_not_a_recording_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RecordingFormatError, match="is not a recording"):
        compact_recording(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_compacts_each_recording_and_says_what_it_did(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = small_segments(tmp_path / "a", 100, 10).path
    second = small_segments(tmp_path / "b", 100, 200).path
    assert main(["compact", str(first), str(second), "--segment-events", "60"]) == 0
    out = capsys.readouterr().out
    assert f"{first}: 11 segment files -> 2 (102 events)" in out
    assert f"{second}: already compact (1 segment file, 102 events)" in out
    assert main(["compact", str(tmp_path / "none")]) == 1
    assert "is not a recording" in capsys.readouterr().err


def test_the_command_line_compacts_the_others_where_one_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `wsresearch compact recordings/*` while today's is still being recorded.
    live = small_segments(tmp_path / "live", 100, 10).path
    (live / LOCK).touch()
    done = small_segments(tmp_path / "done", 100, 10).path
    assert main(["compact", str(live), str(done)]) == 1
    captured = capsys.readouterr()
    assert f"{done}: 11 segment files -> 1 (102 events)" in captured.out
    assert captured.err.splitlines() == [
        f"wsresearch compact: error: {live} is locked (.lock) by a recorder writing it, or "
        "one that was killed there: compact it once no recorder runs (remove .lock if one "
        "was killed)",
        "wsresearch compact: 1 of 2 recordings not compacted"]
    assert len(Recording.open(live).files) == 11


# A compaction killed (SIGKILL: nothing of it runs after) at one of its steps, in a child
# process: what it leaves is what a crash or a power cut there leaves, its lock included.
KILLED = textwrap.dedent("""
    import os, signal, sys
    import wsresearch.recording.compact as compact

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    step = sys.argv[2]
    if step == "writing":  # once the second new file is written
        write, calls = compact.write_private_parquet, []
        def writing(*args, **kwargs):
            write(*args, **kwargs)
            calls.append(1)
            if len(calls) == 2:
                die()
        compact.write_private_parquet = writing
    elif step == "exchanged":  # segments/ and segments.compacting/ have swapped names
        exchange = compact.exchange_paths
        def exchanged(first, second):
            assert exchange(first, second)
            die()
        compact.exchange_paths = exchanged
    elif step == "between renames":  # where names cannot be exchanged: after the first
        compact.exchange_paths = lambda first, second: False
        rename = os.rename
        def renaming(source, target):
            rename(source, target)
            die()
        compact.os.rename = renaming
    compact.compact_recording(sys.argv[1], segment_events=40)
    raise SystemExit("not killed")
""")


@pytest.mark.parametrize("step", ["writing", "exchanged", "between renames"])
def test_a_killed_compaction_leaves_every_event_readable_and_is_finished_by_the_next(
        tmp_path: Path, step: str) -> None:
    recording = small_segments(tmp_path / "rec", 100, 10)
    expected = recording.events()
    killed = subprocess.run([sys.executable, "-c", KILLED, str(recording.path), step],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (recording.path / LOCK).read_text().startswith("compact ")  # left behind
    if step == "between renames":  # segments/ is missing: the old ones are read
        with pytest.warns(UserWarning, match="a compaction was interrupted"):
            assert_frame_equal(Recording.open(recording.path).events(), expected)
    else:  # segments/ is whole, the old segments or the new: read by polars alone too
        assert_frame_equal(Recording.open(recording.path).events(), expected)
        alone = pl.read_parquet(recording.path / SEGMENTS / "*" / "*.parquet").sort("seq")
        assert_frame_equal(alone, expected)
    done = compact_recording(recording.path, segment_events=40)  # the killed one's lock taken
    assert done.files_after == 3
    assert sorted(p.name for p in recording.path.iterdir()) == ["manifest.json", SEGMENTS]
    assert_frame_equal(Recording.open(recording.path).events(), expected)


def test_a_held_lock_is_never_taken_and_a_stale_one_is(tmp_path: Path) -> None:
    # A running compaction holds its lock (flock); the kernel lets go when it dies. So two
    # can never both take a lock one of them judged stale.
    recording = small_segments(tmp_path / "rec", 100, 10)
    lock = recording.path / LOCK
    lock.write_text(f"compact {socket.gethostname()} 1\n")
    held = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RecordingError, match=r"is being compacted \(\.lock is held\)"):
            compact_recording(recording.path)
        assert lock.read_text() == f"compact {socket.gethostname()} 1\n"
    finally:
        os.close(held)  # as the compaction holding it ends
    assert compact_recording(recording.path).files_after == 1  # stale now: taken over
    assert not lock.exists()


def test_a_lock_put_in_place_of_the_compactions_is_left_alone(tmp_path: Path) -> None:
    recording = small_segments(tmp_path / "rec", 100, 10)
    lock = recording.path / LOCK

    def replacing(done: int, total: int) -> None:
        if done == total:  # someone else's lock file, where the compaction's was
            lock.unlink()
            lock.write_text("another's")

    compact_recording(recording.path, progress=replacing)
    assert lock.read_text() == "another's"


def test_a_folder_compacted_again_gets_new_names(tmp_path: Path) -> None:
    recording = small_segments(tmp_path / "rec", 100, 10)
    compact_recording(recording.path, segment_events=40)
    assert [f.name for f in Recording.open(recording.path).files] == [
        "events-000000000000.c1.parquet", "events-000000000040.c1.parquet",
        "events-000000000080.c1.parquet"]
    compact_recording(recording.path, segment_events=100)
    assert [f.name for f in Recording.open(recording.path).files] == [
        "events-000000000000.c2.parquet", "events-000000000100.c2.parquet"]
    assert Recording.open(recording.path).events().height == 102


def test_a_seq_repeated_in_a_folder_gives_new_files_names_of_their_own(
        tmp_path: Path) -> None:
    # A copied segment (a sync tool's "conflicted copy") repeats seqs: two new files can
    # begin on one seq, and neither may replace the other.
    recording = small_segments(tmp_path / "rec", 100, 2)
    first = recording.files[0]  # seq 0 and 1, then copied thrice: seq 0 four times
    for copy in range(3):
        shutil.copy(first, first.with_name(f"events-000000000000 (copy {copy}).parquet"))
    expected = Recording.open(recording.path).events()
    assert expected.height == 108
    compact_recording(recording.path, segment_events=3)  # [0, 0, 0], [0, 1, 1], ...
    names = [f.name for f in Recording.open(recording.path).files]
    assert {"events-000000000000.c1.parquet", "events-000000000000.c1.1.parquet"} <= set(names)
    assert_frame_equal(Recording.open(recording.path).events(), expected)


def test_the_new_segments_are_counted_before_they_replace_the_old(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each file is checked as it is written; the count of them all catches what a file's
    # own check cannot: one written over another.
    recording = small_segments(tmp_path / "rec", 100, 10)
    files = snapshot(recording.path)
    monkeypatch.setattr(compact_module._Folder, "new_name",
                        lambda self, first_seq, target: "events-000000000000.c1.parquet")
    with pytest.raises(RecordingError, match="the new segments do not hold its 102 events"):
        compact_recording(recording.path, segment_events=40)
    assert snapshot(recording.path) == files


def test_exchanging_names_where_it_cannot_be_done_changes_nothing(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    (outer / "inner").mkdir(parents=True)
    assert not exchange_paths(outer, outer / "inner")  # EINVAL: a folder and its own
    assert (outer / "inner").is_dir()
    with pytest.raises(FileNotFoundError):
        exchange_paths(outer, tmp_path / "missing")


def test_files_and_folders_keep_their_group(tmp_path: Path) -> None:
    recording = small_segments(tmp_path / "rec", 100, 10)
    segments = recording.path / SEGMENTS
    others = [*os.getgroups(), 1] if os.getuid() == 0 else os.getgroups()  # root: any group
    group = next((g for g in others if g != os.getgid()), None)
    if group is None:
        pytest.skip("this user is in one group only: no other group to give the files")
    for path in (segments, *segments.rglob("*")):
        os.chown(path, -1, group)
    compact_recording(recording.path)
    assert {p.stat().st_gid for p in (segments, *segments.rglob("*"))} == {group}


def test_a_version_1_recordings_files_stay_version_1(tmp_path: Path) -> None:
    # Rewritten folders must keep the schema of the folders kept as they are: polars reads
    # the recording's files in one glob only if they share one.
    path = tmp_path / "v1"
    events = version_1_copy(path)
    cut_segments(path / SEGMENTS / "0000", events.head(40), 40)  # compact already
    cut_segments(path / SEGMENTS / "0001", events.slice(40), 9)  # not
    expected = Recording.open(path).events()
    done = compact_recording(path)
    assert done.folders_rewritten == 1
    files = Recording.open(path).files
    assert all("closed_by" not in pl.read_parquet_schema(f) for f in files)
    assert_frame_equal(pl.read_parquet(path / SEGMENTS / "*" / "*.parquet").sort("seq"), events)
    assert_frame_equal(Recording.open(path).events(), expected)


def test_files_and_folders_keep_their_permissions(tmp_path: Path) -> None:
    recording = small_segments(tmp_path / "rec", 100, 10)
    segments = recording.path / SEGMENTS
    for folder in (segments, *segments.iterdir()):
        folder.chmod(0o750)
    for file in segments.glob("*/*"):
        file.chmod(0o640)
    compact_recording(recording.path)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (segments, *segments.rglob("*"))}
    assert modes == {SEGMENTS: "0o750", "0000": "0o750", "events-000000000000.c1.parquet":
                     "0o640"}


def test_a_file_that_does_not_read_back_as_written_stops_the_compaction(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A disk or a library that loses a row: the check after each write is what catches it.
    recording = small_segments(tmp_path / "rec", 100, 10)
    files = snapshot(recording.path)
    write = compact_module.write_private_parquet

    def losing_a_row(table: pl.DataFrame, *args: Any, **kwargs: Any) -> None:
        write(table.head(-1), *args, **kwargs)

    monkeypatch.setattr(compact_module, "write_private_parquet", losing_a_row)
    with pytest.raises(RecordingError, match="does not read back as the events written"):
        compact_recording(recording.path)
    assert snapshot(recording.path) == files


def test_a_recording_opened_before_a_compaction_fails_rather_than_reading_part(
        tmp_path: Path) -> None:
    recording = small_segments(tmp_path / "rec", 100, 10)
    opened = Recording.open(recording.path)
    compact_recording(recording.path, segment_events=55)
    with pytest.raises(RecordingError, match="is gone since the recording was opened"):
        list(opened.chunks(20))
    assert Recording.open(recording.path).events().height == 102  # opened again: whole


def test_segments_behind_a_symbolic_link_are_refused(tmp_path: Path) -> None:
    recording = small_segments(tmp_path / "rec", 100, 10)
    elsewhere = tmp_path / "elsewhere"
    (recording.path / SEGMENTS).rename(elsewhere)
    (recording.path / SEGMENTS).symlink_to(elsewhere)
    with pytest.raises(RecordingError, match="is a symbolic link"):
        compact_recording(recording.path)
    assert len(list(elsewhere.glob("*/*.parquet"))) == 11


def test_a_failing_disk_is_a_recording_error_and_leaves_the_recording_as_it_was(
        tmp_path: Path) -> None:
    recording = small_segments(tmp_path / "rec", 100, 10)
    (recording.path / COMPACTING).write_text("in the way")  # where the copy would go
    files = snapshot(recording.path)
    with pytest.raises(RecordingError, match="the recording is left as it was"):
        compact_recording(recording.path)
    assert snapshot(recording.path) == files


def test_ctrl_c_stops_the_compaction_at_its_next_file(tmp_path: Path) -> None:
    # The compaction runs in a thread of the command: Ctrl-C must stop it, not wait for it
    # to finish, and leave the recording as it was.
    recording = small_segments(tmp_path / "rec", 10_000, 10)
    files = snapshot(recording.path)
    command = subprocess.Popen([sys.executable, "-m", "wsresearch.cli", "compact",
                                str(recording.path), "--segment-events", "100"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(6_000):  # until new files are being written (at most a minute)
            if (recording.path / COMPACTING / "0000").is_dir() or command.poll() is not None:
                break
            time.sleep(0.01)
        command.send_signal(signal.SIGINT)
        assert command.wait(60) == 130, command.stderr.read() if command.stderr else ""
    finally:
        command.kill()
        command.wait()
    assert snapshot(recording.path) == files
