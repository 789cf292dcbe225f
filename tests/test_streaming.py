"""Recordings read and replayed chunk by chunk: the same results as whole, in bounded memory."""

from __future__ import annotations

import functools
import importlib
import itertools
import random
import shutil
import subprocess
import sys
import threading
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from wsresearch import Recording, RecordingError, replay
from wsresearch.exchanges import generic
from wsresearch.recording import reader
from wsresearch.recording.format import MANIFEST, SEGMENTS
from wsresearch.recording.writer import SEGMENT_ROW_GROUP, Captured, write_events
from wsresearch.replay import _AHEAD, ReplayResult, replay_in_chunks
from wsresearch.testing import generic_frames

DATA = Path(__file__).resolve().parent.parent / "data"
RECORDINGS = sorted(p for p in (DATA / "recordings").iterdir() if p.is_dir())
SESSION = DATA / "sessions" / "sim-faults"


def assert_same_replay(a: ReplayResult, b: ReplayResult) -> None:
    assert a.stats == b.stats
    assert a.frames.keys() == b.frames.keys()
    for channel in a.frames:
        assert_frame_equal(a.frames[channel], b.frames[channel])
    assert a.health_transitions == b.health_transitions
    assert_frame_equal(a.gaps, b.gaps)
    assert [(r.reason, r.raw, r.detail, r.channel) for r in a.rejects] == [
        (r.reason, r.raw, r.detail, r.channel) for r in b.rejects]
    assert a.errors == b.errors
    assert a.sequence_by_channel == b.sequence_by_channel
    assert (a.books is None) == (b.books is None)
    if a.books is not None and b.books is not None:
        assert_frame_equal(a.books.frame(), b.books.frame())
        assert_frame_equal(a.books.snapshots(), b.books.snapshots())
        assert_frame_equal(a.books.quotes(), b.books.quotes())


@pytest.mark.parametrize("path", [*RECORDINGS, SESSION], ids=lambda p: p.name)
def test_every_chunk_size_replays_every_recording_alike(path: Path) -> None:
    spec = Recording.open(path).spec or generic.spec(url="ws://127.0.0.1:1")
    whole = replay(Recording.open(path), spec, chunk_events=10**9)
    for size in (97,):  # many chunks, and batches cut at every edge
        assert_same_replay(whole, replay(Recording.open(path), spec, chunk_events=size))


def test_the_faithful_mode_skips_the_same_messages_in_chunks() -> None:
    spec = generic.spec(url="ws://127.0.0.1:1")
    whole = replay(SESSION, spec, "faithful", chunk_events=10**9)
    # Through the models in chunks of 23 (the columnar path's fixed cost, each chunk): the
    # skipping is what is tested; test_columnar_replay holds the two paths alike, faithful too.
    assert_same_replay(whole, replay(SESSION, spec, "faithful", chunk_events=23,
                                     columnar=False))


def resplit(source: Path, target: Path, owners: list[int]) -> pl.DataFrame:
    """Copy ``source`` with its events spread over segment files by ``owners`` (one per event).

    Segments may then overlap in ``seq`` and come in any order, as edited or damaged
    ones can; each is named by its first row's seq, as the writer names them.
    """
    events = Recording.open(source).events()
    target.mkdir()
    shutil.copy(source / MANIFEST, target / MANIFEST)
    folder = target / SEGMENTS / "0000"
    folder.mkdir(parents=True)
    tagged = events.with_columns(pl.Series("_owner", owners[:events.height]))
    for (_,), part in tagged.group_by("_owner", maintain_order=True):
        part = part.drop("_owner")
        part.write_parquet(folder / f"events-{part['seq'][0]:012d}.parquet")
    return events


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_overlapping_segments_still_stream_in_seq_order(
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
        data: st.DataObject) -> None:
    # Segments are decoded a piece at a time: small pieces, so every segment has several.
    monkeypatch.setattr(reader, "_PIECE", data.draw(st.integers(40, 300)))
    # Segments surveyed alone, together, or some of each (by their size).
    monkeypatch.setattr(reader, "_ALONE", data.draw(st.integers(0, 60_000)))
    count = Recording.open(SESSION).event_count
    segments = data.draw(st.integers(1, 6))
    shuffle = random.Random(data.draw(st.integers(0, 2**32)))
    if data.draw(st.booleans()):  # contiguous runs, as a writer makes them, in any order
        cuts = sorted(shuffle.sample(range(1, count), segments - 1))
        runs = [b - a for a, b in zip([0, *cuts], [*cuts, count], strict=True)]
        names = shuffle.sample(range(segments), segments)
        owners = [name for name, run in zip(names, runs, strict=True) for _ in range(run)]
    else:  # interleaved: every segment overlaps the others
        owners = [shuffle.randrange(segments) for _ in range(count)]
    size = data.draw(st.integers(1, 400))
    path = tmp_path_factory.mktemp("resplit") / "recording"
    events = resplit(SESSION, path, owners)
    chunks = list(Recording.open(path).chunks(size))
    assert all(0 < chunk.height <= size for chunk in chunks)
    assert_frame_equal(pl.concat(chunks), events)
    spec = generic.spec(url="ws://127.0.0.1:1")
    # Through the models: the chunks are what is tested here, and a chunk of a few events
    # costs the columnar path its fixed cost each (test_columnar_replay holds the two alike).
    # Chunks of any size were checked above; a replay pays a few milliseconds a chunk, so
    # it reads chunks of 20 events or more (small chunks replay alike: see above).
    assert_same_replay(replay(SESSION, spec), replay(
        path, spec, chunk_events=data.draw(st.integers(20, 400)), columnar=False))


def test_a_recording_counts_its_events_without_reading_them() -> None:
    recording = Recording.open(SESSION)
    count = recording.event_count
    assert recording._events is None  # nothing was decoded
    assert count == recording.events().height


def test_an_unreadable_segment_is_skipped_alike_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "recording"
    shutil.copytree(SESSION, path)
    victim = sorted((path / SEGMENTS).glob("*/*.parquet"))[3]
    victim.write_bytes(b"PAR1 not a segment")
    with pytest.warns(UserWarning, match="skipping unreadable segment"):
        whole = Recording.open(path).events()
    with pytest.warns(UserWarning, match="skipping unreadable segment"):
        chunked = pl.concat(list(Recording.open(path).chunks(50)))
    assert_frame_equal(chunked, whole)


def test_an_unreadable_segment_warns_in_a_replay_too(tmp_path: Path) -> None:
    # The next chunk is read in another thread while one is replayed: its warning
    # still reaches the caller, and the rest is replayed as when read in one piece.
    path = tmp_path / "recording"
    shutil.copytree(SESSION, path)
    victim = sorted((path / SEGMENTS).glob("*/*.parquet"))[3]
    victim.write_bytes(b"PAR1 not a segment")
    spec = generic.spec(url="ws://127.0.0.1:1")
    with pytest.warns(UserWarning, match="skipping unreadable segment"):
        chunked = replay(path, spec, chunk_events=50)
    with pytest.warns(UserWarning, match="skipping unreadable segment"):
        whole = replay(path, spec, chunk_events=1_000_000)
    assert_same_replay(chunked, whole)


def _read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("wsresearch-read-ahead")]


def test_a_failure_between_chunks_stops_the_reading_ahead() -> None:
    # A consumer of the chunks fails on the second: the replay stops there, the chunks
    # read ahead are the only ones read beyond it, and no thread is left reading.
    recording = Recording.open(SESSION)
    read: list[int] = []

    def chunks() -> Iterator[pl.DataFrame]:
        for chunk in recording.chunks(100):
            read.append(chunk.height)
            yield chunk

    def after_chunk(_: object, events: pl.DataFrame) -> None:
        if len(seen) == 1:
            raise RuntimeError("the consumer failed")
        seen.append(events.height)

    seen: list[int] = []
    with pytest.raises(RuntimeError, match="the consumer failed"):
        replay_in_chunks(recording, recording.spec, "complete", None, 100,  # type: ignore[arg-type]
                         after_chunk, chunks=chunks())
    assert not _read_ahead_threads()
    assert len(read) == 2 + _AHEAD and seen == read[:1]


def test_a_chunk_that_cannot_be_read_fails_the_replay_after_those_before_it() -> None:
    recording = Recording.open(SESSION)

    def chunks() -> Iterator[pl.DataFrame]:
        yield from itertools.islice(recording.chunks(100), 2)
        raise OSError("the disk went away")

    seen: list[int] = []
    with pytest.raises(OSError, match="the disk went away"):
        replay_in_chunks(recording, recording.spec, "complete", None, 100,  # type: ignore[arg-type]
                         lambda _, events: seen.append(events.height), chunks=chunks())
    assert seen == [chunk.height for chunk in itertools.islice(recording.chunks(100), 2)]
    assert not _read_ahead_threads()


def test_ctrl_c_waits_for_the_chunk_being_read_and_leaves_no_thread_working() -> None:
    # Ctrl-C during the first chunk's consumer, while the next chunk is still being read
    # (its source gives it half a second later): the replay ends once that read is done,
    # so nothing is left running in polars when a script then exits.
    recording = Recording.open(SESSION)
    released = threading.Event()
    read: list[int] = []

    def chunks() -> Iterator[pl.DataFrame]:
        source = recording.chunks(100)
        yield next(source)
        released.wait(timeout=30)
        chunk = next(source)
        read.append(chunk.height)
        yield chunk

    def interrupted(_: object, __: pl.DataFrame) -> None:
        threading.Timer(0.5, released.set).start()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replay_in_chunks(recording, recording.spec, "complete", None, 100,  # type: ignore[arg-type]
                         interrupted, chunks=chunks())
    assert read, "the replay returned while the next chunk was still being read"
    assert not _read_ahead_threads()


@pytest.mark.timeout(30)
def test_ctrl_c_where_a_thread_could_not_start_leaves_the_next_read_in_its_turn(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The first read-ahead thread starts, the next cannot (the process is out of threads),
    # so that step runs here and waits for the first's read; Ctrl-C lands in that wait.
    # The replay must still end (no later step waiting for ever for the one interrupted)
    # with the KeyboardInterrupt, and leave no thread behind.
    recording = Recording.open(SESSION)
    released = threading.Event()
    starting = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name.startswith("wsresearch-read-ahead") and _read_ahead_threads():
            raise RuntimeError("can't start new thread")
        starting(thread)

    class CtrlC(threading.Event):
        fired = False

        def wait(self, timeout: float | None = None) -> bool:
            if (not self.is_set() and not CtrlC.fired
                    and threading.current_thread() is threading.main_thread()):
                CtrlC.fired = True
                released.set()  # the first read ends soon after
                raise KeyboardInterrupt
            return super().wait(timeout)

    def chunks() -> Iterator[pl.DataFrame]:
        source = recording.chunks(100)
        released.wait(timeout=20)  # the first read lasts until Ctrl-C
        yield from source

    monkeypatch.setattr(threading.Thread, "start", start)
    # The replay's events only: threading's own (a thread's start waits on one) stay.
    module = importlib.import_module("wsresearch.replay")
    monkeypatch.setattr(module, "threading", types.SimpleNamespace(**{
        **vars(threading), "Event": CtrlC}))
    with pytest.raises(KeyboardInterrupt):
        replay_in_chunks(recording, recording.spec, "complete", None, 100,  # type: ignore[arg-type]
                         None, chunks=chunks())
    assert CtrlC.fired
    assert not _read_ahead_threads()


@pytest.mark.parametrize("where", ["atexit", "thread"])
def test_a_replay_runs_while_the_interpreter_shuts_down(where: str) -> None:
    # In an atexit handler, and in a thread still running when the main thread is done,
    # no new thread may be starting for long: the replay still completes.
    run = "atexit.register(go)" if where == "atexit" else (
        "threading.Thread(target=go).start()")
    script = (
        "import atexit, threading\n"
        "from wsresearch import replay\n"
        "def go():\n"
        f"    print('replayed', replay({str(SESSION)!r}).stats['frames'], flush=True)\n"
        f"{run}\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.startswith("replayed "), done.stderr
    assert int(done.stdout.split()[1]) == Recording.open(SESSION).frames().height


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "9"])
def test_a_chunk_size_that_is_not_a_positive_int_is_refused(bad: object, tmp_path: Path) -> None:
    """Named as the call names it."""
    from wsresearch import export_parquet, quality_report

    with pytest.raises(ValueError, match=r"^events must be a positive int"):
        Recording.open(SESSION).chunks(bad)  # type: ignore[arg-type]
    spec = generic.spec(url="ws://127.0.0.1:1")
    with pytest.raises(ValueError, match=r"^chunk_events must be a positive int"):
        replay(SESSION, spec, chunk_events=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^chunk_events must be a positive int"):
        quality_report(SESSION, chunk_events=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^chunk_events must be a positive int"):
        export_parquet(SESSION, spec, tmp_path / "ds", chunk_events=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "ds").exists()


def exported_equals_replay(dataset: Path, result: ReplayResult) -> None:
    """The dataset holds exactly the replay's rows, in its order, native and normalized."""
    from wsresearch import load_dataset, load_normalized
    from wsresearch.normalize import COMMON, KINDS

    for channel, frame in result.frames.items():
        if frame.height == 0:
            continue
        loaded = load_dataset(dataset, channel).collect()
        assert_frame_equal(loaded.select(frame.columns), frame, check_dtypes=False)
    assert result.spec is not None
    kinds = {kind for channel in result.spec.channels for kind in channel.normalized}
    if result.books is not None:
        kinds |= {"book_snapshots", "quotes"}
    for kind in kinds:
        table = result.normalized(kind)
        loaded = load_normalized(dataset, kind).collect()
        assert_frame_equal(loaded.select(*COMMON, *KINDS[kind]), table)


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_a_streamed_export_holds_every_row_of_the_replay_in_order(
        path: Path, tmp_path: Path) -> None:
    from wsresearch import export_parquet

    whole = replay(path)
    summary = export_parquet(path, None, tmp_path / "small", normalized=True, chunk_events=500)
    exported_equals_replay(tmp_path / "small", whole)
    assert summary.rows == {name: frame.height for name, frame in whole.frames.items()}
    one = export_parquet(path, None, tmp_path / "one", normalized=True, result=whole)
    assert (one.recording, one.rows, one.normalized) == (
        summary.recording, summary.rows, summary.normalized)
    assert [f.relative_to(tmp_path / "one") for f in one.files] == [
        f.relative_to(tmp_path / "small") for f in summary.files]
    assert not list((tmp_path / "small").glob(".export-*")), "the staging folder is removed"


BINANCE_TRADE = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":%d,"s":"BTCUSDT","t":%d,'
                 '"p":"61837.63","q":"0.02","T":%d,"m":true,"M":true}}')
BINANCE_AGG = ('{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":%d,"s":"BTCUSDT",'
               '"a":%d,"p":"61837.6","q":"58.0","f":%d,"l":%d,"T":%d,"m":false,"M":true}}')


def test_normalized_rows_keep_the_whole_order_when_the_clock_steps_back_between_chunks(
        tmp_path: Path) -> None:
    """Ties across channels and a receive clock stepping back fall on chunk boundaries."""
    from wsresearch import export_parquet
    from wsresearch.exchanges import binance

    start = 1_723_161_255_000 * 10**6
    spec = binance.spec(["btcusdt"], ["trade", "aggTrade"])
    walls = [1, 5, 5, 3, 2, 10, 10, 10, 4, 12, 12, 12]  # ms after start
    frames = []
    for n, ms in enumerate(walls):
        exchange_ms = 1_723_161_255_000 + n
        text = (BINANCE_TRADE % (exchange_ms, n, exchange_ms) if n % 2 else
                BINANCE_AGG % (exchange_ms, n, n, n, exchange_ms))
        frames.append((start + ms * 10**6, text))
    recording = Recording.from_frames(tmp_path / "rec", frames, spec=spec)
    whole = replay(recording, spec)
    assert whole.stats["ok"] == len(walls)
    for size in (1, 2, 3, 4):
        dataset = tmp_path / f"chunks-{size}"
        export_parquet(recording, spec, dataset, normalized=True, chunk_events=size)
        exported_equals_replay(dataset, whole)


REPORT_TABLES = ("connections", "streams", "silences", "sequence", "latency", "latencies",
                 "outcomes", "books")


@pytest.mark.parametrize("path", [*RECORDINGS, SESSION], ids=lambda p: p.name)
def test_a_report_is_the_same_for_every_chunk_size(path: Path) -> None:
    from wsresearch import quality_report

    spec = Recording.open(path).spec or generic.spec(url="ws://127.0.0.1:1")
    whole = quality_report(path, spec, chunk_events=10**9)
    small = quality_report(path, spec, chunk_events=997)
    assert_frame_equal(whole.summary(), small.summary())
    assert whole.warnings == small.warnings
    for table in REPORT_TABLES:
        assert_frame_equal(getattr(whole, table), getattr(small, table))


def test_a_report_of_frames_alone_is_the_same_for_every_chunk_size() -> None:
    from wsresearch import quality_report
    from wsresearch.exchanges import raw

    spec = raw.spec("ws://127.0.0.1:1")
    for spec_or_none in (None, spec):  # frames only; every frame one row of one channel
        whole = quality_report(SESSION, spec_or_none, chunk_events=10**9)
        small = quality_report(SESSION, spec_or_none, chunk_events=50)
        assert_frame_equal(whole.summary(), small.summary())
        for table in REPORT_TABLES:
            assert_frame_equal(getattr(whole, table), getattr(small, table))


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_for_a_replay_and_left_as_it_was(enabled: bool) -> None:
    import gc

    seen: list[bool] = []
    spec = generic.spec(url="ws://127.0.0.1:1")
    trade = spec.channel("trade")

    def exchange_time(message: generic.Trade) -> int:
        seen.append(gc.isenabled())
        return message.ts

    channels = [trade.model_copy(update={"exchange_time": exchange_time}) if c.name == "trade"
                else c for c in spec.channels]
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        replay(SESSION, spec.replace(channels=channels), chunk_events=500)
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert seen
    assert not any(seen), "no collection is started inside a chunk"


class _Cycle:
    """An object that refers to itself: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.mark.parametrize(("enabled", "young"), [(True, 700), (False, 700), (True, 0)])
def test_the_cycles_a_replay_makes_are_collected_between_its_chunks(enabled: bool,
                                                                    young: int) -> None:
    """Unless the collector was off: disabled, or its first threshold 0."""
    import gc
    import weakref

    collected: list[int] = []
    seen: list[int] = []  # at each message, how many cycles were collected by then
    spec = generic.spec(url="ws://127.0.0.1:1")
    trade = spec.channel("trade")

    def exchange_time(message: generic.Trade) -> int:
        for _ in range(100):  # garbage the collector alone frees: the young generation fills
            _Cycle()
        weakref.finalize(_Cycle(), collected.append, 1)
        seen.append(len(collected))
        return message.ts

    channels = [trade.model_copy(update={"exchange_time": exchange_time}) if c.name == "trade"
                else c for c in spec.channels]
    was, thresholds = gc.isenabled(), gc.get_threshold()
    (gc.enable if enabled else gc.disable)()
    gc.set_threshold(young, 10, 10)
    try:
        # Through the models: the extractor is called for every message.
        replay(SESSION, spec.replace(channels=channels), chunk_events=500, columnar=False)
    finally:
        (gc.enable if was else gc.disable)()
        gc.set_threshold(*thresholds)
    assert len(seen) > 1_000
    if not (enabled and young):
        assert seen[-1] == 0
        return
    # Collected between chunks, not once the replay is over: the memory they hold is bounded.
    assert 0 < seen[-1] < len(seen)


def test_a_spec_that_is_not_a_feedspec_is_refused_before_any_work(tmp_path: Path) -> None:
    from wsresearch import export_parquet, quality_report
    from wsresearch.export import export_with_report

    for call in (lambda: export_parquet(SESSION, "generic", tmp_path / "a"),  # type: ignore[arg-type]
                 lambda: export_with_report(SESSION, "generic", tmp_path / "b"),  # type: ignore[arg-type]
                 lambda: quality_report(SESSION, "generic")):  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="spec must be a FeedSpec"):
            call()
    assert not list(tmp_path.iterdir()), "nothing was written"


def test_chunks_from_a_seq_read_no_segment_wholly_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recording = Recording.open(SESSION)
    events = recording.events()
    start = int(events["seq"][events.height // 2])
    read: list[Path] = []
    fresh = Recording.open(SESSION)
    original = fresh._read

    def spy(file: Path, offset: int | None = None, length: int | None = None) -> Any:
        read.append(file)
        return original(file, offset, length)

    def spy_group(group: list[int], columns: list[str] | None) -> Any:
        read.extend(fresh.files[at] for at in group)  # a run of small segments read together
        return original_group(group, columns)

    original_group = fresh._read_group
    monkeypatch.setattr(fresh, "_read", spy)
    monkeypatch.setattr(fresh, "_read_group", spy_group)
    chunks = list(fresh.chunks(100, start=start))
    assert_frame_equal(pl.concat(chunks), events.filter(pl.col("seq") >= start))
    skipped = [f for f in fresh.files if f not in read]
    assert skipped, "segments before the start are not read"
    assert all(pl.read_parquet(f)["seq"].max() < start for f in skipped)  # type: ignore[operator]


def cut_segments(folder: Path, rows: pl.DataFrame, per_segment: int) -> None:
    """``rows`` as segment files of ``per_segment`` rows each in ``folder``, columns as given."""
    folder.mkdir(parents=True, exist_ok=True)
    for first in range(0, rows.height, per_segment):
        part = rows.slice(first, per_segment)
        part.write_parquet(folder / f"events-{part['seq'][0]:012d}.parquet")


def version_1_copy(path: Path) -> pl.DataFrame:
    """The version-1 session's manifest at ``path``, without segments; its rows as stored."""
    shutil.copytree(SESSION, path, ignore=shutil.ignore_patterns(SEGMENTS))
    events = pl.concat(pl.read_parquet(f) for f in Recording.open(SESSION).files)
    assert "closed_by" not in events.columns
    return events


def small_segments(path: Path, frames: int, per_segment: int) -> Recording:
    """A recording of ``frames`` generic trades in segments of ``per_segment`` events, as a
    live recorder leaves them (a segment a flush)."""
    spec = generic.spec(url="ws://127.0.0.1:1")
    start = 1_700_000_000 * 10**9
    events = [Captured("open", start, spec.url)] + [
        Captured("frame", start + i * 10**7, text)
        for i, text in enumerate(generic_frames(frames, seed=5))]
    write_events(path, events, source_url=spec.url, origin=spec.origin,
                 segment_events=per_segment)
    return Recording.open(path)


def test_a_large_segment_is_written_in_row_groups_and_read_in_pieces_of_whole_ones(
        tmp_path: Path) -> None:
    # A reader decodes whole row groups: a replay's piece of a large segment decodes only
    # the row groups it spans, and a chunk size that is not a multiple of them still gives
    # every event once, in order.
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow comes with the dataset extra")
    recording = small_segments(tmp_path / "rec", 45_000, 100_000)
    assert len(recording.files) == 1
    metadata = pq.ParquetFile(recording.files[0]).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [
        SEGMENT_ROW_GROUP] * 4 + [45_002 - 4 * SEGMENT_ROW_GROUP]
    events = recording.events()
    assert events.height == 45_002
    for size in (7_000, 25_000, 45_002):
        chunks = list(Recording.open(recording.path).chunks(size))
        assert [c.height for c in chunks[:-1]] == [size] * (len(chunks) - 1)
        assert_frame_equal(pl.concat(chunks), events)


@pytest.mark.parametrize("step_back", [False, True], ids=["in order", "a step back"])
def test_a_segment_read_in_pieces_leaves_out_lost_values_alike_and_warns_once(
        tmp_path: Path, step_back: bool) -> None:
    # A large segment in seq order is read a piece at a time: what its pieces leave out is
    # warned of once, for the file. A seq lost between two events that step back must not
    # hide the step from the survey: the segment is then read whole and sorted.
    recording = small_segments(tmp_path / "rec", 45_000, 100_000)
    (file,) = recording.files
    table = pl.read_parquet(file)
    seqs, kinds = table["seq"].to_list(), table["kind"].to_list()
    lost = [5, 25_000, 44_000]  # one in each piece of 20,000 events
    for row in lost:
        kinds[row] = None
    if step_back:
        seqs[19_999], seqs[20_001], seqs[20_000] = seqs[20_001], seqs[19_999], None
        lost += [19_999, 20_000]  # the seq that steps back to 19,999 after 20,001 is kept
    table.with_columns(pl.Series("seq", seqs, pl.Int64), pl.Series("kind", kinds, pl.String)
                       ).write_parquet(file, row_group_size=SEGMENT_ROW_GROUP)
    assert Recording.open(recording.path)._survey()[0][2] is not step_back  # in order
    expected = sorted(s for row, s in enumerate(seqs) if row not in lost)
    message = (f"{file.name}: skipping {len(lost)} event(s) without a value of "
               f"{'seq, kind; with a seq that repeats or steps back' if step_back else 'kind'}"
               " (a damaged segment)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        events = Recording.open(recording.path).events()
    assert [str(w.message).split("/")[-1] for w in caught] == [message]
    assert events["seq"].to_list() == expected
    for size in (7_000, 20_000, 45_002):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            chunks = pl.concat(list(Recording.open(recording.path).chunks(size)))
        assert [str(w.message).split("/")[-1] for w in caught] == [message]
        assert_frame_equal(chunks, events)
    # A reader that stops in the segment's first piece is told of what that piece lacked.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reading = Recording.open(recording.path).chunks(7_000)
        next(reading)
        reading.close()
    assert [str(w.message).split("/")[-1] for w in caught] == [
        message if step_back else message.replace("skipping 3", "skipping 1")]


def test_a_segment_gone_since_the_recording_was_opened_fails_every_reader(
        tmp_path: Path) -> None:
    # Gone, not damaged: the recording changed under the reader (a compaction), and what
    # it would give is part of it. Damaged segments are still skipped with a warning.
    recording = small_segments(tmp_path / "rec", 100, 10)
    for read in (lambda r: list(r.chunks(20)), lambda r: list(r.columns(["kind"])),
                 lambda r: r.events()):
        opened = Recording.open(recording.path)
        assert opened.event_count == 102  # surveyed while whole
        gone = opened.files[3]
        moved = gone.rename(tmp_path / "aside.parquet")
        try:
            with pytest.raises(RecordingError, match="is gone since the recording was opened"):
                read(opened)
        finally:
            moved.rename(gone)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "7", None])
def test_a_segment_size_that_is_not_a_positive_int_is_refused_before_any_write(
        tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="segment_events must be a positive int"):
        write_events(tmp_path / "rec", [], source_url="ws://127.0.0.1:1",
                     segment_events=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "rec").exists()


def test_small_segments_come_in_chunks_of_the_size_asked(
        tmp_path: Path) -> None:
    # A live recording is a segment a flush (a second): a chunk a segment would make a
    # replay pay a chunk's fixed cost for every second recorded.
    recording = small_segments(tmp_path / "rec", 1_000, 7)
    assert len(recording.files) == 144  # 1,002 events: the open, the frames, the stop
    events = recording.events()
    assert_frame_equal(events, pl.concat(pl.read_parquet(f) for f in recording.files))
    chunks = list(Recording.open(recording.path).chunks(50))
    assert [c.height for c in chunks] == [50] * 20 + [2]
    assert_frame_equal(pl.concat(chunks), events)
    parts = list(Recording.open(recording.path).columns(["kind", "mono_ns"]))
    assert len(parts) == 1
    assert_frame_equal(pl.concat(parts), events.select("seq", "kind", "mono_ns"))
    spec = recording.spec
    assert spec is not None
    assert_same_replay(replay(recording, spec, chunk_events=10**9),
                       replay(Recording.open(recording.path), spec, chunk_events=50))


def test_a_damaged_small_segment_is_skipped_alone(
        tmp_path: Path) -> None:
    # Read together, a damaged one would fail the others' query: they are then read one by
    # one, and only it is skipped, with its warning, as a whole read skips it.
    recording = small_segments(tmp_path / "rec", 300, 10)
    damaged = recording.files[5]
    damaged.write_bytes(damaged.read_bytes()[:-20])
    with pytest.warns(UserWarning, match="skipping unreadable segment"):
        whole = Recording.open(recording.path).events()
    assert whole.height == 302 - 10  # the open, 300 frames and the stop, less a segment
    assert Recording.open(recording.path).event_count == whole.height
    with pytest.warns(UserWarning, match="skipping unreadable segment"):
        chunks = list(Recording.open(recording.path).chunks(64))
    assert_frame_equal(pl.concat(chunks), whole)
    assert [c.height for c in chunks] == [64] * 4 + [36]
    parts = list(Recording.open(recording.path).columns(["kind"]))
    assert_frame_equal(pl.concat(parts), whole.select("seq", "kind"))


@pytest.mark.parametrize("which", [0, 4])  # the first of a run read together, or a later one
def test_a_segment_with_its_columns_in_another_order_is_read_as_the_others(
        tmp_path: Path, which: int) -> None:
    # A run of segments read in one query takes a later file's columns by name: read alone,
    # such a segment is read the same, so what is read never depends on how files group.
    recording = small_segments(tmp_path / "rec", 300, 10)
    expected = recording.events()
    table = pl.read_parquet(recording.files[which])
    table.select(reversed(table.columns)).write_parquet(recording.files[which])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped
        assert_frame_equal(Recording.open(recording.path).events(), expected)
        for size in (1, 64, 20_000):
            assert_frame_equal(pl.concat(Recording.open(recording.path).chunks(size)), expected)
        assert_frame_equal(pl.concat(Recording.open(recording.path).columns(["kind"])),
                           expected.select("seq", "kind"))


def test_a_segment_changed_after_the_survey_still_comes_out_in_seq_order(
        tmp_path: Path) -> None:
    # Surveyed first, then a segment gains three of the next one's events: its run is no
    # longer read together (its rows are not those surveyed), and what is read is bounded
    # by the rows read, not by the survey.
    recording = small_segments(tmp_path / "rec", 300, 10)
    assert recording.event_count == 302
    first, second = (pl.read_parquet(recording.files[at]) for at in (20, 21))
    pl.concat([first, second.head(3)]).write_parquet(recording.files[20])
    for size in (50, 20_000):
        chunks = pl.concat(recording.chunks(size))
        assert chunks["seq"].is_sorted()
        assert_frame_equal(chunks, Recording.open(recording.path).events())
        assert chunks.height == 305


def test_a_version_1_recordings_small_segments_are_read_once_each(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Version-1 segments lack closed_by: a run of them is read together and closed_by
    # derived, as for one; where a run cannot be read together (the columns asked for
    # include closed_by), its files are read one by one, not the run tried again at each.
    path = tmp_path / "v1"
    events = version_1_copy(path)
    cut_segments(path / SEGMENTS / "0000", events, 9)
    expected = Recording.open(SESSION).events()
    files_read = 0
    read_parquet = pl.read_parquet

    def counting(source: Any, *args: Any, **kwargs: Any) -> pl.DataFrame:
        nonlocal files_read
        table = read_parquet(source, *args, **kwargs)  # a query that fails reads no rows
        files_read += len(source) if isinstance(source, list) else 1
        return table

    monkeypatch.setattr(pl, "read_parquet", counting)
    recording = Recording.open(path)
    count = len(recording.files)
    assert count == -(-expected.height // 9)
    assert_frame_equal(recording.events(), expected)
    assert files_read == count
    files_read = 0
    assert_frame_equal(pl.concat(Recording.open(path).chunks(100)), expected)
    assert files_read == count
    files_read = 0
    closes = pl.concat(Recording.open(path).columns(["kind", "closed_by"]))
    assert_frame_equal(closes, expected.select("seq", "kind", "closed_by"))
    assert files_read == count  # the runs' query fails (no closed_by): each file alone


def test_a_segment_with_a_column_of_another_type_reads_alike_in_every_reader(
        tmp_path: Path) -> None:
    # A struct where the text should be: cast to text by every reader, never raised.
    recording = small_segments(tmp_path / "rec", 300, 10)
    damaged = recording.files[3]
    pl.read_parquet(damaged).with_columns(data=pl.struct("data", "kind")).write_parquet(damaged)
    whole = Recording.open(recording.path).events()
    assert whole.height == 302
    assert_frame_equal(pl.concat(Recording.open(recording.path).chunks(64)), whole)
    parts = Recording.open(recording.path).columns(["data"])
    assert_frame_equal(pl.concat(parts), whole.select("seq", "data"))


def test_a_few_columns_are_read_where_the_recordings_path_holds_glob_characters(
        tmp_path: Path) -> None:
    path = tmp_path / "a [x] *"
    shutil.copytree(SESSION, path)
    recording = Recording.open(path)
    parts = list(recording.columns(["kind", "closed_by"]))
    assert_frame_equal(pl.concat(parts), recording.events().select("seq", "kind", "closed_by"))


def test_a_few_columns_read_alone_are_those_of_the_events() -> None:
    recording = Recording.open(SESSION)
    parts = list(recording.columns(["kind", "code"]))
    assert len(parts) == 1 < len(recording.files)  # small segments in order: read together
    assert recording._events is None  # nothing but those columns was read
    assert_frame_equal(pl.concat(parts), recording.events().select("seq", "kind", "code"))
    with pytest.raises(ValueError, match="unknown column"):
        recording.columns(["kind", "nope"])


async def test_the_replay_server_reads_a_connection_when_it_serves_it() -> None:
    from websockets.asyncio.client import connect

    from wsresearch import ReplayServer

    recording = Recording.open(SESSION)
    expected = recording.events().filter((pl.col("generation") == 2)
                                         & (pl.col("kind") == "frame"))["data"].to_list()
    fresh = Recording.open(SESSION)
    server = ReplayServer(fresh, speed=None)
    assert server.generations == 6
    async with server:
        async with connect(server.url) as first:  # the first connection: not listened to
            await first.close()
        async with connect(server.url) as ws:
            await ws.send('{"op": "subscribe"}')  # it waits for one, as recorded
            received = [await ws.recv() for _ in expected]
    assert received == expected
    assert fresh._events is None, "the recording was never loaded whole"


@pytest.mark.parametrize(("call", "message"), [
    (lambda r: r.chunks(100, start="3"), "start must be a seq"),
    (lambda r: r.chunks(100, start=True), "start must be a seq"),
    (lambda r: r.columns("kind"), "names must be a list of column names"),
    (lambda r: r.columns(["kind", 3]), "names must be a list of column names"),
])
def test_bad_reading_arguments_are_refused_in_one_line(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(Recording.open(SESSION))


def test_small_segments_are_surveyed_in_batches_of_bounded_bytes(tmp_path: Path) -> None:
    # A grouped survey holds each row's file name: a batch of small files holds at most
    # _ALONE bytes of them, in their order; a file that large is surveyed alone.
    sizes = [0, 300, 500, 200, 100, 2_000, 900, 50, 1_000]  # 0: a file gone, as its size
    files = []
    for index, size in enumerate(sizes):
        file = tmp_path / f"events-{index:012d}.parquet"
        file.write_bytes(b"x" * size)
        files.append(file)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader, "_ALONE", 1_000)
        batches = reader._batches(files)
    assert [[files.index(f) for f in batch] for batch in batches] == [
        [0, 1, 2, 3], [4, 6], [7]]


def test_a_segment_with_a_column_too_many_or_too_few_is_skipped_naming_it(
        tmp_path: Path) -> None:
    path = tmp_path / "recording"
    shutil.copytree(SESSION, path)
    files = sorted(path.glob("segments/*/*.parquet"))
    pl.read_parquet(files[1]).with_columns(extra=pl.lit(1)).write_parquet(files[1])
    pl.read_parquet(files[2]).drop("stream").write_parquet(files[2])
    with pytest.warns(UserWarning, match="skipping unreadable segment") as caught:
        Recording.open(path).events()
    said = " ".join(str(w.message) for w in caught)
    assert "it has ['extra'], which the schema has not" in said
    assert "it lacks ['stream']" in said


def test_a_read_across_a_rename_over_the_file_is_made_again(tmp_path: Path) -> None:
    # A live recorder renames a grown segment over the old one at each flush; polars opens
    # a file more than once in a read, so a read across the rename is made again.
    from wsresearch.recording.reader import _steady

    file, grown = tmp_path / "events.parquet", tmp_path / "grown.parquet"
    pl.DataFrame({"seq": [0, 1]}).write_parquet(file)
    heights: list[int] = []

    def read(fails: bool) -> pl.DataFrame:
        found = pl.read_parquet(file)
        heights.append(found.height)
        if len(heights) == 1:  # the recorder's rename, while this read was under way
            pl.DataFrame({"seq": [0, 1, 2]}).write_parquet(grown)
            grown.replace(file)
            if fails:  # what polars says of a page it reads from the other file
                raise pl.exceptions.ComputeError("the page header reported the wrong size")
        return found

    for fails in (False, True):
        heights.clear()
        pl.DataFrame({"seq": [0, 1]}).write_parquet(file)
        assert _steady([file], functools.partial(read, fails)).height == 3
        assert heights == [2, 3]
    # A file that is damaged, not replaced, fails at once, as it did.
    calls: list[int] = []

    def damaged() -> pl.DataFrame:
        calls.append(1)
        raise pl.exceptions.ComputeError("damaged")

    with pytest.raises(pl.exceptions.ComputeError):
        _steady([file], damaged)
    assert len(calls) == 1
