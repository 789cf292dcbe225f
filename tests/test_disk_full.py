"""A full disk: the live feed keeps running, the error is visible, and nothing is lost
that the disk can take back once it has room again.

The first tests break writes by putting a file where the segment folder was; the
last fills a real 1 MiB tmpfs (in a user and mount namespace of its own) until
the kernel answers ``ENOSPC``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from wsresearch import RecordingError, quality_report
from wsresearch.recording import Recorder, Recording

from .conftest import TIME_FACTOR


def _break(segments: Path) -> None:
    """Make every write under ``segments`` fail: a file takes the folder's place."""
    segments.rename(segments.with_name("aside"))
    segments.write_text("not a folder")


def _mend(segments: Path) -> None:
    segments.unlink()
    segments.with_name("aside").rename(segments)


async def _failing(tmp_path: Path, *, max_buffer: int, max_backlog: int) -> Recorder:
    """A started recorder at ``tmp_path / "rec"`` whose writes fail until :func:`_mend`."""
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1",
                        max_buffer=max_buffer, max_backlog=max_backlog)
    await recorder.start()
    _break(tmp_path / "rec" / "segments")
    return recorder


def _messages(recorder: Recorder, start: int, count: int) -> None:
    for n in range(start, start + count):
        recorder.record_message(f'{{"n":{n}}}', 1, n, n)


async def test_a_failed_write_is_held_and_written_once_the_disk_recovers(tmp_path: Path) -> None:
    reported: list[BaseException] = []
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1",
                        on_error=reported.append)
    await recorder.start()
    _messages(recorder, 0, 10)
    await recorder.flush()
    assert (recorder.flushed_seq, recorder.held) == (9, 0)
    _break(tmp_path / "rec" / "segments")
    _messages(recorder, 10, 10)
    await recorder.flush()
    _messages(recorder, 20, 5)
    await recorder.flush()
    assert (recorder.failed_writes, recorder.held, recorder.lost, recorder.flushed_seq) == (
        2, 15, 0, 9)
    assert len(reported) == 2 and all(isinstance(e, RecordingError) for e in reported)
    assert "15 event(s) held" in str(reported[-1])
    _mend(tmp_path / "rec" / "segments")
    await recorder.flush()
    assert (recorder.held, recorder.lost, recorder.flushed_seq) == (0, 0, 24)
    await recorder.stop()
    recording = Recording.open(tmp_path / "rec")
    assert recording.manifest.complete  # written late, but all of it
    frames = recording.frames()
    assert frames["seq"].to_list() == list(range(25))
    assert frames["data"].to_list() == [f'{{"n":{n}}}' for n in range(25)]
    assert not list((tmp_path / "rec").rglob("*.tmp"))


async def test_a_growing_file_a_write_failed_to_grow_is_left_whole_and_the_rest_goes_on(
        tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1")
    await recorder.start()
    _messages(recorder, 0, 10)
    await recorder.flush()
    segments = tmp_path / "rec" / "segments"
    (file,) = segments.rglob("*.parquet")
    before = file.read_bytes()
    _break(segments)
    _messages(recorder, 10, 10)
    await recorder.flush()  # fails: the file would have been written again, with 20 events
    assert (recorder.failed_writes, recorder.held) == (1, 10)
    assert (segments.with_name("aside") / file.relative_to(segments)).read_bytes() == before
    _mend(segments)
    _messages(recorder, 20, 5)
    await recorder.flush()
    await recorder.stop()
    # The failed write ended the file's growth (on a nearly full disk, the held events
    # alone may fit where the whole file again does not): they begin a file of their own.
    assert file.read_bytes() == before
    assert sorted(f.name for f in segments.rglob("*.parquet")) == [
        file.name, "events-000000000010.parquet"]
    events = Recording.open(tmp_path / "rec").events()
    assert events["seq"].to_list() == list(range(26))  # 25 and the stop


async def test_the_backlog_is_bounded_and_what_it_drops_is_counted_and_named(
    tmp_path: Path,
) -> None:
    recorder = await _failing(tmp_path, max_buffer=5, max_backlog=8)
    _messages(recorder, 0, 6)
    recorder.record("mark", 1, data="six in")
    _messages(recorder, 7, 5)
    await recorder.flush()
    # 12 events held, the bound is 8: the four oldest go, and an error event says so.
    assert (recorder.lost, recorder.held) == (4, 9)
    _mend(tmp_path / "rec" / "segments")
    await recorder.stop()
    recording = Recording.open(tmp_path / "rec")
    assert not recording.manifest.complete
    assert recording.manifest.incomplete_reason == "1 write(s) failed; 4 event(s) lost"
    events = recording.events()
    assert events["seq"].to_list() == list(range(4, 14))  # 13: the session's stop
    assert events["kind"][-1] == "stop"
    assert events.filter(pl.col("kind") == "mark")["data"].to_list() == ["six in"]
    (note,) = events.filter(pl.col("kind") == "error")["data"].to_list()
    assert "4 event(s) dropped, seq 0-3" in note
    assert quality_report(recording).recording == (
        "incomplete: 1 write(s) failed; 4 event(s) lost; 4 of 14 event(s) not in the files")


@pytest.mark.parametrize("mark_at", [1, 4])  # dropped with the oldest, or kept
async def test_a_backlog_that_overflows_on_a_later_failed_write_keeps_the_newest_in_order(
    tmp_path: Path, mark_at: int,
) -> None:
    recorder = await _failing(tmp_path, max_buffer=2, max_backlog=5)
    for seq in range(8):  # seq 0-7: frames, and one mark
        if seq == mark_at:
            recorder.record("mark", 1, data="here")
        else:
            recorder.record_message(f'{{"n":{seq}}}', 1, seq, seq)
        if seq == 3:
            await recorder.flush()  # fails: 4 held, within the bound
            assert (recorder.held, recorder.lost) == (4, 0)
    await recorder.flush()  # fails: 8 held, 3 over the bound
    assert recorder.lost == 3
    _mend(tmp_path / "rec" / "segments")
    await recorder.stop()
    events = Recording.open(tmp_path / "rec").events()
    # 8: the error naming seq 0-2; 9: the session's stop
    assert events["seq"].to_list() == [3, 4, 5, 6, 7, 8, 9]
    assert ("here" in events["data"].to_list()) is (mark_at >= 3)
    assert "3 event(s) dropped, seq 0-2" in events.filter(kind="error")["data"][0]


async def test_a_backlog_cut_inside_a_run_keeps_the_rest_of_the_run_with_its_times(
    tmp_path: Path,
) -> None:
    """Messages received together share their times: the ones kept keep them, binary too."""
    recorder = await _failing(tmp_path, max_buffer=10, max_backlog=11)
    recorder.record_messages(['{"n":0}', '{"n":1}', '{"n":2}'], 1, 100, 1_000)
    recorder.record("mark", 1, data="between")
    recorder.record_messages(['{"n":4}', b"\x00\x05", '{"n":6}', '{"n":7}'], 1, 200, 2_000)
    await recorder.flush()  # fails: 8 held, within the bound
    recorder.record_messages([f'{{"n":{n}}}' for n in range(8, 13)], 2, 300, 3_000)
    await recorder.flush()  # fails: 13 held, 2 over: the cut is inside the first run
    assert (recorder.lost, recorder.held) == (2, 12)  # with the error event that says so
    _mend(tmp_path / "rec" / "segments")
    await recorder.stop()
    events = Recording.open(tmp_path / "rec").events()
    frames = events.filter(kind="frame")
    assert frames["seq"].to_list() == [2, *range(4, 13)]
    assert frames["data"][0] == '{"n":2}'
    assert frames["mono_ns"].to_list() == [100] + [200] * 4 + [300] * 5
    assert frames["wall_ns"].to_list() == [1_000] + [2_000] * 4 + [3_000] * 5
    assert frames["generation"].to_list() == [1] * 5 + [2] * 5
    assert frames["binary"].to_list() == [False, False, True] + [False] * 7
    assert frames["data"][2] == "AAU="  # b"\x00\x05", base64
    assert events.filter(kind="mark")["data"].to_list() == ["between"]
    (error,) = events.filter(kind="error").rows(named=True)
    assert "2 event(s) dropped, seq 0-1" in error["data"]
    assert error["generation"] == 2  # the newest event's held, not the last other event's


async def test_events_still_unwritten_at_stop_are_counted_lost(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1")
    await recorder.start()
    _messages(recorder, 0, 3)
    await recorder.flush()
    _break(tmp_path / "rec" / "segments")
    _messages(recorder, 3, 7)
    await recorder.stop()
    assert (recorder.lost, recorder.held, recorder.failed_writes) == (8, 0, 1)  # 7 frames, the stop
    recording = Recording.open(tmp_path / "rec")
    assert recording.manifest.incomplete_reason == "1 write(s) failed; 8 event(s) lost"
    (written,) = (tmp_path / "rec" / "aside").rglob("*.parquet")  # out of the reader's way
    assert pl.read_parquet(written)["seq"].to_list() == [0, 1, 2]


def test_max_backlog_below_max_buffer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_backlog must be >= max_buffer"):
        Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1", max_buffer=10, max_backlog=9)


# The child runs inside its own user and mount namespace, with a 1 MiB tmpfs at
# argv[1]: it records a simulator feed there, fills the disk, waits until the
# recorder has failed a few times while the feed goes on, frees the disk, waits
# until the held events are written, stops, and copies the recording out.
CHILD = textwrap.dedent("""
    import asyncio, errno, json, logging, os, shutil, sys
    from wsresearch import Feed, RecordingError, Simulator
    logging.basicConfig(level=logging.WARNING)

    async def until(condition, what, within):
        for _ in range(int(within / 0.01)):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise SystemExit(f"timed out waiting for {what}")

    async def main(disk, out, within):
        rates = {"trade": 300.0, "ticker": 100.0, "order": 0.1}
        async with Simulator(rates=rates) as sim:
            feed = Feed(sim.spec(), record_to=os.path.join(disk, "rec"), flush_interval=0.05)
            async with feed:
                await until(lambda: feed.recorder.flushed_seq > 50, "a first write", within)
                path = os.path.join(disk, "filler")
                filler = open(path, "wb", buffering=0)

                def fill():
                    try:
                        while True:
                            filler.write(b"x" * 4096)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC, exc

                async def keep_full():
                    # A failed segment write gives its blocks back: take them again.
                    while True:
                        fill()
                        await asyncio.sleep(0.002)

                fill()
                keeper = asyncio.ensure_future(keep_full())
                await until(lambda: feed.stats.recording_errors >= 3, "failed writes", within)
                await until(lambda: feed.recorder.held > 100, "held events", within)
                received = feed.stats.received
                await until(lambda: feed.stats.received > received + 100,
                            "frames while the disk is full", within)
                full = feed.stats.as_dict()
                full["held"] = feed.recorder.held
                full["errors"] = [str(e) for e in feed.errors if isinstance(e, RecordingError)]
                keeper.cancel()
                filler.close()
                os.remove(path)
                flushed = feed.recorder.flushed_seq
                await until(lambda: feed.recorder.flushed_seq > flushed + full["held"],
                            "the held events written", within)
            stats = feed.stats.as_dict()
        shutil.copytree(os.path.join(disk, "rec"), out)
        print(json.dumps({"full": full, "end": stats, "lost": feed.recorder.lost}))

    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
""")


def _namespaces_work() -> str | None:
    """Why a tmpfs cannot be mounted in a namespace of our own here, or None."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "needs util-linux's unshare and mount"
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True, text=True, timeout=30,
    )
    if probe.returncode != 0:
        return f"user and mount namespaces unavailable: {probe.stderr.strip()[:80]}"
    return None


def test_a_full_disk_keeps_the_feed_running_and_loses_nothing_once_space_returns(
    tmp_path: Path,
) -> None:
    why = _namespaces_work()
    if why is not None:
        pytest.skip(why)
    disk = tmp_path / "disk"
    disk.mkdir()
    out = tmp_path / "out"
    run = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         'mount -t tmpfs -o size=1m tmpfs "$1" && exec "$2" -c "$3" "$1" "$4" "$5"',
         "sh", str(disk), sys.executable, CHILD, str(out), str(20 * TIME_FACTOR)],
        capture_output=True, text=True, timeout=120 * TIME_FACTOR,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.splitlines()[-1])
    full, end = report["full"], report["end"]
    # While the disk was full: the feed went on, and the failures were visible.
    assert full["recording_errors"] >= 3
    assert full["handler_errors"] == 0
    assert full["errors"] and all("No space left on device" in e for e in full["errors"])
    assert full["held"] > 100
    assert "cannot write events" in run.stderr  # logged, too
    assert end["ok"] > full["ok"]
    # Once space returned, every frame received was written, in order, once.
    assert report["lost"] == 0
    recording = Recording.open(out)
    assert recording.manifest.complete
    events = recording.events()
    assert events["seq"].to_list() == list(range(events.height))
    assert recording.frames().height == end["received"]
    assert not list(out.rglob("*.tmp"))
