import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import (
    DamagedSegmentWarning,
    Feed,
    QueueConfig,
    RecordingError,
    RecordingFormatError,
    Simulator,
)
from wsresearch.clock import utc_text
from wsresearch.recording import EVENT_SCHEMA, Recorder, Recording, compact_recording
from wsresearch.recording.writer import lock_held
from wsresearch.redaction import redact_text
from wsresearch.widgets import Dashboard

from .conftest import RATES, eventually, other_tasks, quick

SECRET = "SECRET-KEY-4f1b"



@pytest.mark.parametrize("compression", ["deflate", None])  # None: frames read ahead
async def test_every_frame_sent_before_each_close_is_recorded_once_in_order(
    tmp_path: Path, compression: str | None,
) -> None:
    before = other_tasks()
    async with Simulator(rates=RATES, keep_sent=True, compression=compression) as sim:
        feed = Feed(sim.spec(connection=quick()), record_to=tmp_path / "rec",
                    flush_interval=0.05)
        async with feed:
            await eventually(lambda: feed.store.rows("trade") >= 20, what="trades")
            sim.duplicate(3)
            await sim.malformed(6)
            await sim.disconnect(1001, "maintenance")
            await eventually(lambda: feed.generation == 2 and feed.store.rows("trade") >= 60,
                             what="the second connection")
            await sim.rate_limit(4429)
            await eventually(lambda: feed.generation == 3, what="the third connection")
            await eventually(lambda: feed.recorder is not None and feed.recorder.flushed_seq > 0,
                             what="a flush")
            feed.mark("checked")
        sent = list(sim.sent_log)
    assert other_tasks() == before
    recording = Recording.open(tmp_path / "rec")
    frames = recording.frames()
    for index in range(3):
        got = frames.filter(pl.col("generation") == index + 1)
        expected = [f for i, f in sent if i == index]
        as_text = [
            f if isinstance(f, str) else base64.b64encode(f).decode()
            for f in expected
        ]
        if index < 2:  # closed by the server: everything it sent arrived first
            assert got["data"].to_list() == as_text
        else:  # closed by us: what arrived is a prefix of what was sent
            assert got["data"].to_list() == as_text[: got.height]
    assert frames["seq"].is_sorted() and frames["seq"].is_unique().all()
    assert frames["recv_mono_ns"].is_sorted()
    assert frames.filter(pl.col("binary"))["data"].len() == 1  # the malformed binary frame
    events = recording.events()
    assert events.schema == pl.Schema(EVENT_SCHEMA)
    assert events["seq"].to_list() == list(range(events.height))
    closes = events.filter(pl.col("kind") == "close")
    assert closes.select("generation", "code", "category", "closed_by").rows() == [
        (1, 1001, "NORMAL", "server"), (2, 4429, "RATE_LIMITED", "server"),
        (3, 1000, "NORMAL", "client"),
    ]
    assert events.filter(pl.col("kind") == "open")["generation"].to_list() == [1, 2, 3]
    assert events.filter(pl.col("kind") == "mark")["data"].to_list() == ["checked"]
    assert events.filter(pl.col("kind") == "pong").height >= 1
    assert recording.manifest.complete and recording.manifest.events == events.height
    text = repr(recording)
    assert "complete" in text and "3 generations" in text and "1001, 4429, 1000" in text
    assert f" s from {utc_text(events['wall_ns'][0], 3)}, " in text  # when it began


async def test_a_dropping_queue_still_leaves_a_complete_recording(tmp_path: Path) -> None:
    async with Simulator(rates=RATES, keep_sent=True) as sim:
        spec = sim.spec(connection=quick(), queue=QueueConfig(max_size=1))
        async with Feed(spec, record_to=tmp_path / "rec") as feed:
            await eventually(lambda: feed.store.rows("trade") >= 1, what="a trade")
            await sim.burst(2000)
            await eventually(lambda: feed.stats.received >= 2000, what="the burst")
        sent = [f for _, f in sim.sent_log]
    assert feed.stats.dropped > 0
    recording = Recording.open(tmp_path / "rec")
    frames = recording.frames()["data"].to_list()
    assert frames == sent[: len(frames)]
    assert len(frames) == feed.stats.received
    drops = recording.events().filter(pl.col("kind") == "drop")
    assert drops.height == feed.stats.dropped
    frame_seqs = set(recording.frames()["seq"].to_list())
    assert set(drops["ref_seq"].to_list()) <= frame_seqs


async def test_secrets_never_reach_the_recording_directory(tmp_path: Path) -> None:
    async with Simulator(rates=RATES) as sim:
        url = sim.url.replace("ws://", f"ws://user:{SECRET}@") + f"/?token={SECRET}"
        spec = sim.spec(api_key=SECRET, connection=quick()).with_url(url)
        async with Feed(spec, record_to=tmp_path / "rec") as feed:
            await eventually(lambda: feed.store.rows("trade") >= 5, what="trades")
    for file in (tmp_path / "rec").rglob("*"):
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file
    events = Recording.open(tmp_path / "rec").events()
    for column in ("data", "reason"):
        assert not events[column].str.contains(SECRET, literal=True).any()
    sent = events.filter(pl.col("kind") == "sent")["data"].to_list()
    assert '{"op":"auth","key":"***"}' in sent


def test_redact_text_masks_nested_keys_and_leaves_other_text() -> None:
    assert redact_text('{"a":[{"Secret":1}],"b":2}', ["secret"]) == '{"a":[{"Secret":"***"}],"b":2}'
    assert redact_text("ping", ["key"]) == "ping"


def test_newer_versions_and_non_recordings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RecordingFormatError, match=r"no manifest\.json"):
        Recording.open(tmp_path)
    with pytest.raises(RecordingFormatError, match=r"^\S+/typo is not a recording: it does "
                                                   r"not exist$"):
        Recording.open(tmp_path / "typo")
    (tmp_path / "file.parquet").write_bytes(b"PAR1")
    with pytest.raises(RecordingFormatError, match=r"it is a file, not a recording's folder \(a "
                                                   r"capture of frames\? `wsresearch import` "
                                                   r"makes a recording of it\)$"):
        Recording.open(tmp_path / "file.parquet")
    (tmp_path / "file.parquet").unlink()
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(RecordingFormatError, match="not a wsresearch-recording"):
        Recording.open(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"format": "wsresearch-recording", "version": 99}))
    with pytest.raises(RecordingFormatError, match="version 99, newer than"):
        Recording.open(tmp_path)
    assert issubclass(RecordingFormatError, ValueError)


async def test_torn_and_damaged_segments_are_skipped_with_a_warning(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1")
    await recorder.start()
    for n in range(10):
        recorder.record_message(f'{{"n":{n}}}', 1, n, n)
    await recorder.flush()
    for n in range(10, 15):
        recorder.record_message(f'{{"n":{n}}}', 1, n, n)
    await recorder.stop()
    folder = tmp_path / "rec" / "segments" / "0000"
    (folder / "events-000000000015.parquet.tmp").write_bytes(b"PAR1 half written")
    (folder / "events-000000000020.parquet").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"unfinished write \(the session ended abruptly\)"):
        recording = Recording.open(tmp_path / "rec")
    with pytest.warns(UserWarning, match="unreadable segment"):
        events = recording.events()
    assert events["seq"].to_list() == list(range(16))  # 15: the session's stop
    assert events["kind"][-1] == "stop"
    assert events.schema == pl.Schema(EVENT_SCHEMA)


async def test_a_running_recorders_write_under_way_is_skipped_without_a_word(
        tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1")
    await recorder.start()
    recorder.record_message('{"n":0}', 1, 0, 0)
    await recorder.flush()
    lock = tmp_path / "rec" / ".lock"
    assert lock_held(lock) is True  # held while the recorder runs
    (file,) = (tmp_path / "rec" / "segments").rglob("*.parquet")
    torn = file.with_name(file.name + ".x1y2.tmp")
    torn.write_bytes(b"PAR1 being written")  # as at a flush, before its rename
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not a word
        assert Recording.open(tmp_path / "rec").events()["seq"].to_list() == [0]
    await recorder.stop()
    assert not lock.exists()
    # A recorder that was killed leaves its lock file, held by nobody: its torn write is one.
    lock.write_bytes(b"")
    assert lock_held(lock) is False
    with pytest.warns(UserWarning, match=r"unfinished write \(the session ended abruptly\)"):
        Recording.open(tmp_path / "rec")


async def _three_small_segments(path: Path) -> list[Path]:
    """A recording of 15 messages in three segments (small: read together), and a stop."""
    recorder = Recorder(path, source_url="ws://127.0.0.1:1", segment_events=1)
    await recorder.start()
    for flush in range(3):
        for n in range(5):
            recorder.record_message(f'{{"n":{n}}}', 1, flush * 5 + n, flush * 5 + n)
        await recorder.flush()
    await recorder.stop()
    return sorted((path / "segments").rglob("*.parquet"))


def _lose(file: Path, column: str, rows: list[int]) -> list[int]:
    """Set ``column`` null at ``rows`` of a segment file; the ``seq`` of those events."""
    table = pl.read_parquet(file)
    lost = [table["seq"][row] for row in rows]
    table.with_columns(pl.when(pl.col("seq").is_in(lost)).then(None).otherwise(pl.col(column))
                       .alias(column)).write_parquet(file)
    return lost


@pytest.mark.parametrize("column", ["seq", "generation", "mono_ns", "wall_ns", "kind"])
async def test_an_event_without_a_required_value_is_left_out_with_a_warning(
    tmp_path: Path, column: str
) -> None:
    files = await _three_small_segments(tmp_path / "rec")
    # The first event of the second file: the warning names that file, not the one before.
    (lost,) = _lose(files[1], column, [0])
    recording = Recording.open(tmp_path / "rec")
    kept = [seq for seq in range(16) if seq != lost]  # 15: the session's stop
    warned = (f"{files[1].name}: skipping 1 event.s. without a value of {column} "
              r"\(a damaged segment\)")
    with pytest.warns(UserWarning, match=warned) as caught:
        assert recording.events()["seq"].to_list() == kept
    assert len(caught) == 1
    # A class of its own, saying what and where, and the line it names is the caller's.
    (found,) = [w.message for w in caught]
    assert isinstance(found, DamagedSegmentWarning)
    assert (found.file, found.left_out, found.lacking) == (files[1], 1, (column,))
    assert caught[0].filename == __file__
    with pytest.warns(DamagedSegmentWarning, match=warned) as caught:
        chunks = list(Recording.open(tmp_path / "rec").chunks(4))
    assert pl.concat(chunks)["seq"].to_list() == kept
    assert caught[0].filename == __file__
    # A pass over a few columns leaves out the same events (the chunks warn of them).
    assert pl.concat(list(Recording.open(tmp_path / "rec").columns(["data"])))[
        "seq"].to_list() == kept
    with pytest.warns(UserWarning, match=warned), pytest.raises(  # it would lose the event
            RecordingError, match="1 of its 16 events could not be read"):
        compact_recording(tmp_path / "rec")


async def test_each_file_read_together_is_warned_of_its_own_lost_values(tmp_path: Path) -> None:
    files = await _three_small_segments(tmp_path / "rec")
    lost = _lose(files[0], "seq", [1]) + _lose(files[1], "kind", [3, 4])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        events = Recording.open(tmp_path / "rec").events()
    assert sorted(str(w.message).split("/")[-1] for w in caught) == [
        f"{files[0].name}: skipping 1 event(s) without a value of seq (a damaged segment)",
        f"{files[1].name}: skipping 2 event(s) without a value of kind (a damaged segment)"]
    assert not set(lost) & set(events["seq"].to_list())


def _segments(path: Path) -> list[tuple[str, str, int]]:
    """Each segment file of a recording: its folder, its name, its events."""
    return [(f.parent.name, f.name, pl.read_parquet(f).height)
            for f in sorted((path / "segments").rglob("*.parquet"))]


async def test_a_message_neither_text_nor_bytes_is_refused_with_nothing_recorded(
    tmp_path: Path,
) -> None:
    """Refused at the call, before its run takes a seq or flags one binary."""
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1")
    await recorder.start()
    with pytest.raises(TypeError):
        recorder.record_messages(["a", b"\x01", 3], 1, 10, 10)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        recorder.record_message(None, 1, 10, 10)  # type: ignore[arg-type]
    assert (recorder.events, recorder.held) == (0, 0)
    assert recorder.record_messages(["b", "c"], 1, 20, 20) == range(0, 2)
    assert recorder.record_message(b"\x02", 1, 30, 30) == 2
    await recorder.stop()
    frames = Recording.open(tmp_path / "rec").events().filter(kind="frame")
    assert frames.select("seq", "data", "binary").rows() == [
        (0, "b", False), (1, "c", False), (2, base64.b64encode(b"\x02").decode(), True)]
    assert Recording.open(tmp_path / "rec").manifest.complete


async def test_a_quiet_feeds_flushes_grow_a_file_to_segment_events(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1", segment_events=6)
    await recorder.start()
    for flush in range(5):
        for n in range(3):
            seq = flush * 3 + n
            recorder.record_message(f'{{"n":{seq}}}', 1, seq, seq)
        await recorder.flush()
        assert recorder.flushed_seq == seq  # each flush on disk as it returns
    await recorder.stop()
    # 3 + 3 fit in a file of 6; the next 3 begin another; the stop event joins the last.
    assert _segments(tmp_path / "rec") == [
        ("0000", "events-000000000000.parquet", 6), ("0000", "events-000000000006.parquet", 6),
        ("0000", "events-000000000012.parquet", 4)]
    events = Recording.open(tmp_path / "rec").events()
    assert events["seq"].to_list() == list(range(16))
    assert events["data"].to_list()[:15] == [f'{{"n":{n}}}' for n in range(15)]


@pytest.mark.parametrize("same", [False, True])
async def test_a_file_of_big_messages_stops_growing_at_a_few_megabytes(
        tmp_path: Path, same: bool) -> None:
    # A book's snapshot a second: 10,000 of them would be a file rewritten at a GB. The same
    # message every time too (polars' own estimate counts a repeated text once).
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1")
    await recorder.start()
    big = "x" * 100_000
    for n in range(40):
        recorder.record_message(f'{{"n":{0 if same else n},"book":"{big}"}}', 1, n, n)
        await recorder.flush()
    await recorder.stop()
    sizes = [events for _, _, events in _segments(tmp_path / "rec")]
    assert sizes == [21, 20]  # 2.1 MB of them, then the rest and the stop


async def test_a_file_grows_only_within_its_folder(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1", rotate_interval=1.0)
    await recorder.start()
    start = recorder.manifest.started_wall_ns
    for n, at in enumerate([0.2, 0.5, 1.2, 1.4]):  # flushed one by one: two folders
        recorder.record_message(f'{{"n":{n}}}', 1, n, start + round(at * 1e9))
        await recorder.flush()
    assert _segments(tmp_path / "rec") == [
        ("0000", "events-000000000000.parquet", 2), ("0001", "events-000000000002.parquet", 2)]
    await recorder.stop()


async def test_a_feed_records_a_file_a_flush_only_when_asked(tmp_path: Path) -> None:
    async with Simulator(rates=RATES) as sim:
        for name, segment_events in (("grown", 10_000), ("a flush each", 1)):
            feed = Feed(sim.spec(connection=quick()), record_to=tmp_path / name,
                        flush_interval=0.05, segment_events=segment_events)
            async with feed:
                assert feed.recorder is not None
                await _two_flushes(feed.recorder)
    assert len(_segments(tmp_path / "grown")) == 1
    assert len(_segments(tmp_path / "a flush each")) >= 2


async def _two_flushes(recorder: Recorder) -> None:
    """Wait until ``recorder`` has written events twice."""
    await eventually(lambda: recorder.flushed_seq >= 0, what="a first flush")
    first = recorder.flushed_seq
    await eventually(lambda: recorder.flushed_seq > first, what="a second flush")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_segment_events_must_be_a_positive_int(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="segment_events must be a positive int"):
        Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1",
                 segment_events=bad)  # type: ignore[arg-type]


async def test_a_recording_directory_is_never_overwritten(tmp_path: Path) -> None:
    first = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1")
    await first.start()
    await first.stop()
    with pytest.raises(RecordingError, match="already holds a recording"):
        await Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1").start()


async def test_disk_errors_are_reported_and_the_feed_keeps_running(tmp_path: Path) -> None:
    async with Simulator(rates=RATES) as sim:
        feed = Feed(sim.spec(connection=quick()), record_to=tmp_path / "rec",
                    flush_interval=0.05)
        async with feed:
            await eventually(lambda: feed.store.rows("trade") >= 5, what="trades")
            segments = tmp_path / "rec" / "segments"
            for child in sorted(segments.rglob("*"), reverse=True):
                child.unlink() if child.is_file() else child.rmdir()
            segments.rmdir()
            segments.write_text("not a folder")  # every write now fails
            await eventually(lambda: feed.stats.recording_errors >= 1, what="a failed write")
            rows = feed.store.rows("trade")
            await eventually(lambda: feed.store.rows("trade") > rows + 5, what="more trades")
            stats = feed.stats
            assert stats.recording_held > 0  # kept for the next write, not dropped
            shown = Dashboard(feed).counters.value
            assert f"recording errors <b>{stats.recording_errors}</b>" in shown
    assert any(isinstance(e, RecordingError) for e in feed.errors)
    assert feed.stats.handler_errors == 0
    manifest = json.loads((tmp_path / "rec" / "manifest.json").read_text())
    assert manifest["complete"] is False
    assert "failed" in manifest["incomplete_reason"]


CHILD = textwrap.dedent("""
    import asyncio, sys
    from wsresearch import Feed, Simulator
    async def main():
        async with Simulator(rates={"trade": 300.0, "ticker": 100.0, "order": 0.1}) as sim:
            feed = Feed(sim.spec(), record_to=sys.argv[1], flush_interval=0.05)
            await feed.start()
            last = -1
            while True:
                await asyncio.sleep(0.01)
                if feed.recorder.flushed_seq != last:
                    last = feed.recorder.flushed_seq
                    print(last, flush=True)
    asyncio.run(main())
""")


def test_sigkill_mid_session_keeps_everything_flushed(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "rec")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None
        flushed = [int(child.stdout.readline()) for _ in range(6)]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    last = max(flushed)
    assert last > 0
    recording = Recording.open(tmp_path / "rec")
    assert not recording.manifest.complete
    seqs = recording.events()["seq"].to_list()
    assert seqs == list(range(len(seqs)))  # nothing torn, nothing missing in between
    assert len(seqs) >= last + 1
    assert recording.frames().height > 0


def test_polars_alone_reads_a_recording(tmp_path: Path) -> None:
    async def record() -> None:
        async with Simulator(rates=RATES) as sim, Feed(
            sim.spec(), record_to=tmp_path / "rec"
        ) as feed:
            await eventually(lambda: feed.store.rows("trade") >= 5, what="trades")

    asyncio.run(record())
    direct = pl.read_parquet(tmp_path / "rec" / "segments" / "*" / "*.parquet").sort("seq")
    assert_frame_equal(direct, Recording.open(tmp_path / "rec").events())


@pytest.mark.parametrize(("frames", "error", "message"), [
    ("one text", TypeError, "not one str: wrap it in a list"),
    ([1], TypeError, "frame 1: a frame is text or bytes, got int"),
    (["ok", None], TypeError, "frame 2: a frame is text or bytes, got NoneType"),
    ([(1,)], ValueError, r"frame 1: a pair is \(wall_ns, text\), got 1 items"),
    ([(1, "a"), ("soon", "b")], ValueError, "frame 2: wall_ns must be an int of 64 bits"),
    ([(2**70, "a")], ValueError, "frame 1: wall_ns must be an int of 64 bits"),
    ([(True, "a")], ValueError, "frame 1: wall_ns must be an int"),
])
def test_from_frames_refuses_what_is_not_a_frame_and_leaves_nothing(
    tmp_path: Path, frames: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Recording.from_frames(tmp_path / "rec", frames)  # type: ignore[arg-type]
    assert not (tmp_path / "rec").exists()  # a retry is not refused as "already recorded"
    # Bytes-like frames are frames.
    recording = Recording.from_frames(tmp_path / "rec", [(1, b"a"), (2, bytearray(b"b"))])
    assert recording.frames()["data"].to_list() == ["YQ==", "Yg=="]  # base64, as recorded


def test_the_writers_take_a_path_as_text_and_write_capture_cuts_segments(
        tmp_path: Path) -> None:
    # write_capture and write_events take the folder as a str as well as a Path, and
    # write_capture bounds its segments as its docstring says.
    from wsresearch.recording.writer import Captured, write_capture, write_events

    messages = [(1_000 + i, f'{{"i":{i}}}') for i in range(5)]
    write_capture(str(tmp_path / "capture"), messages, source_url="ws://127.0.0.1/",
                  segment_events=2)
    capture = Recording.open(tmp_path / "capture")
    assert capture.frames()["data"].to_list() == [text for _, text in messages]
    assert len(list((tmp_path / "capture" / "segments").rglob("*.parquet"))) == 4  # 7 events
    write_events(str(tmp_path / "events"), [Captured("frame", 1_000, '{"i":0}')],
                 source_url="ws://127.0.0.1/")
    assert Recording.open(tmp_path / "events").frames()["data"].to_list() == ['{"i":0}']
