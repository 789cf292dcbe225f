"""Recordings lose nothing to odd text, never share a directory, and read what they should.

F1/F29: one string UTF-8 cannot encode blocked every later write. F3: two recorders
started at once on one directory both wrote into it. F20: ``--out`` an existing folder
chmodded it and wrote into it. F25: a FIFO named like a segment hung the reader.
F24/F27: edited manifests ended in tracebacks or were refused for the wrong reason.
F26: NaN, infinite and tiny intervals were accepted and then failed later.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import stat
import threading
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from pydantic import BaseModel, ValidationError

from wsresearch import (
    Channel,
    Feed,
    FeedSpec,
    HeartbeatConfig,
    Recording,
    RecordingError,
    RecordingFormatError,
    Simulator,
    StreamConfig,
    quality_report,
    replay,
)
from wsresearch.cli import main
from wsresearch.exchanges import generic, raw
from wsresearch.export import export_parquet, load_connections, load_dataset
from wsresearch.parser import by_field
from wsresearch.recording import FORMAT_VERSION, Recorder

from .conftest import RATES, SESSION, eventually, quick

SURROGATE = "input file: caf\udce9.csv"  # what os.fsdecode(b"caf\xe9.csv") gives


async def test_a_note_that_utf8_cannot_encode_is_stored_escaped_and_blocks_nothing(
    tmp_path: Path,
) -> None:
    async with Simulator(rates=RATES) as sim:
        feed = Feed(sim.spec(connection=quick()), record_to=tmp_path / "rec",
                    flush_interval=0.05)
        async with feed:
            await eventually(lambda: feed.store.rows("trade") >= 5, what="trades")
            feed.mark(SURROGATE)
            feed.recorder.record("error", 1, data=f"ValueError: {SURROGATE}")  # type: ignore[union-attr]
            flushed = feed.recorder.flushed_seq  # type: ignore[union-attr]
            await eventually(lambda: feed.recorder.flushed_seq > flushed + 20,  # type: ignore[union-attr]
                             what="writes after the note")
        assert feed.stats.recording_errors == 0
    recording = Recording.open(tmp_path / "rec")
    assert recording.manifest.complete
    notes = recording.events().filter(pl.col("kind").is_in(["mark", "error"]))["data"]
    assert "input file: caf\\udce9.csv" in notes.to_list()
    assert recording.frames().height == feed.stats.received  # every frame after it, too


def test_from_frames_names_a_frame_utf8_cannot_encode_and_leaves_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    with pytest.raises(ValueError, match="frame 2: its text holds a character UTF-8 cannot"):
        Recording.from_frames(folder, ['{"a":1}', "bad \udce9", '{"b":2}'])
    assert not folder.exists()
    recording = Recording.from_frames(folder, ['{"a":1}', b"bad \xe9", '{"b":2}'])  # bytes: fine
    assert recording.frames()["binary"].to_list() == [False, True, False]


def test_two_recorders_started_at_once_on_one_directory_never_share_it(tmp_path: Path) -> None:
    for trial in range(30):
        folder = tmp_path / f"rec-{trial}"
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def record(name: str, folder: Path = folder, barrier: threading.Barrier = barrier,
                   outcomes: list[str] = outcomes) -> None:
            async def run() -> None:
                recorder = Recorder(folder, source_url="ws://127.0.0.1:1")
                barrier.wait()
                try:
                    await recorder.start()
                except RecordingError as exc:
                    outcomes.append(f"refused: {exc}")
                    return
                recorder.record("mark", 0, data=name)
                await recorder.stop()
                outcomes.append("recorded")
            asyncio.run(run())

        threads = [threading.Thread(target=record, args=(n,)) for n in "AB"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(o.split(":")[0] for o in outcomes) == ["recorded", "refused"], outcomes
        (refusal,) = [o for o in outcomes if o.startswith("refused")]
        assert "another recorder is writing" in refusal or "not empty" in refusal or (
            "already holds a recording" in refusal), refusal
        events = Recording.open(folder).events()
        assert events["kind"].to_list() == ["mark", "stop"]  # one writer's events only
        assert not (folder / ".lock").exists()  # released once complete


async def test_an_existing_folder_that_is_not_empty_is_refused_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    team = tmp_path / "team_notes"
    team.mkdir()
    (team / "README").write_text("notes")
    os.chmod(team, 0o2775)
    with pytest.raises(RecordingError, match="is not empty \\(README\\); a recording goes into "
                                             "a new or empty directory"):
        await Recorder(team, source_url="ws://127.0.0.1:1").start()
    assert stat.S_IMODE(os.stat(team).st_mode) == 0o2775
    assert sorted(p.name for p in team.iterdir()) == ["README"]


async def test_an_existing_empty_folder_is_used_and_keeps_its_permissions(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    os.chmod(empty, 0o2775)
    recorder = Recorder(empty, source_url="ws://127.0.0.1:1")
    await recorder.start()
    await recorder.stop()
    assert stat.S_IMODE(os.stat(empty).st_mode) == 0o2775
    assert stat.S_IMODE(os.stat(empty / "segments").st_mode) == 0o700
    assert Recording.open(empty).manifest.complete


def test_a_fifo_among_the_segments_is_skipped_with_a_warning(tmp_path: Path) -> None:
    copy = tmp_path / "fifo_rec"
    shutil.copytree(SESSION, copy)
    os.mkfifo(copy / "segments" / "0000" / "events-999999999999.parquet")
    with pytest.warns(UserWarning, match="not a regular file"):
        recording = Recording.open(copy)
    assert replay(recording, generic.spec(url="ws://127.0.0.1:1")).stats["frames"] == 2220


def edit_manifest(tmp_path: Path, **changes: object) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(SESSION, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest.update(changes)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize("version", ["1", 1.0, 0, -7, True, None])
def test_a_version_that_is_not_an_integer_of_at_least_1_is_damage(
    tmp_path: Path, version: object
) -> None:
    with pytest.raises(RecordingFormatError,
                       match=f"is damaged: its version must be an integer >= 1, got {version!r}"):
        Recording.open(edit_manifest(tmp_path, version=version))


def test_a_newer_version_asks_for_an_upgrade(tmp_path: Path) -> None:
    newer = FORMAT_VERSION + 1
    with pytest.raises(RecordingFormatError,
                       match=f"version {newer}, newer than this wsresearch reads"):
        Recording.open(edit_manifest(tmp_path, version=newer))


@pytest.mark.parametrize(("field", "value"), [
    ("started_wall_ns", 10**30), ("started_wall_ns", -(10**30)), ("started_wall_ns", 1.5e18),
    ("ended_wall_ns", 2**63), ("events", -1), ("flush_interval", -1),
    ("flush_interval", "nan"), ("rotate_interval", 0)])
def test_out_of_range_manifest_fields_are_refused_naming_the_field(
    tmp_path: Path, field: str, value: object, capsys: pytest.CaptureFixture[str],
) -> None:
    copy = edit_manifest(tmp_path, **{field: value})
    with pytest.raises(RecordingFormatError, match=f"is damaged: {field}: "):
        Recording.open(copy)
    for command in (["export", str(copy), "--out", str(tmp_path / "ds")], ["report", str(copy)],
                    ["replay", str(copy)]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"is damaged: {field}" in err, err


def test_a_spec_origin_the_adapter_refuses_is_a_format_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    copy = edit_manifest(tmp_path, spec_origin={"adapter": "raw", "arguments": {"type_field": 5}})
    with pytest.raises(RecordingFormatError, match="cannot rebuild the 'raw' spec"):
        replay(copy)
    assert main(["export", str(copy), "--out", str(tmp_path / "ds")]) == 1
    assert "cannot rebuild the 'raw' spec" in capsys.readouterr().err


GENERIC = {"symbols": ["BTC-USD", "ETH-USD", "SOL-USD"], "channels": ["trade", "ticker", "order"]}


@pytest.mark.parametrize(("replaced", "said"), [
    ({"quotes": "book"}, "quotes='book' takes the quotes from the order books"),
    ({"snapshot_depth": -1}, "snapshot_depth: Input should be greater than or equal to 1"),
])
def test_replaced_fields_a_spec_cannot_take_are_a_format_error_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], replaced: dict[str, object], said: str,
) -> None:
    copy = edit_manifest(tmp_path, spec_origin={"adapter": "generic", "arguments": GENERIC},
                         spec_replaced=replaced)
    with pytest.raises(RecordingFormatError, match=r"cannot set .* on the 'generic' spec"):
        replay(copy)
    assert main(["export", str(copy), "--out", str(tmp_path / "ds")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err, err


@pytest.mark.parametrize("where", ["spec_replaced", "spec_origin"])
def test_a_replaced_field_an_origin_cannot_keep_is_damage(tmp_path: Path, where: str) -> None:
    origin: dict[str, object] = {"adapter": "generic", "arguments": GENERIC}
    bad = {"dedupe_ttl": 1e-9}
    copy = edit_manifest(tmp_path, **({"spec_origin": origin | {"replaced": bad}}
                                      if where == "spec_origin"
                                      else {"spec_origin": origin, "spec_replaced": bad}))
    with pytest.raises(RecordingFormatError, match="an origin keeps only the fields"):
        Recording.open(copy)
    # One it can keep is taken, and replays.
    copy = edit_manifest(tmp_path / "kept", spec_origin=origin,
                         spec_replaced={"exchange": "mine"})
    trades = replay(copy).normalized("trades")
    assert trades.height > 0 and set(trades["exchange"]) == {"mine"}


@pytest.mark.parametrize("interval", [math.nan, math.inf, 0.0, -1.0, 7200.0])
def test_a_flush_interval_that_is_not_a_sane_number_of_seconds_is_refused(
    tmp_path: Path, interval: float
) -> None:
    with pytest.raises(ValueError, match="flush_interval must be > 0 and <= 3600"):
        Recorder(tmp_path / "r", source_url="ws://127.0.0.1:1", flush_interval=interval)
    with pytest.raises(ValueError, match="flush_interval"):
        Feed(generic.spec(url="ws://127.0.0.1:1"), record_to=tmp_path / "r",
             flush_interval=interval)


@pytest.mark.parametrize("interval", [math.nan, math.inf, 1e-300, 0.5])
def test_a_rotate_interval_under_a_second_or_not_finite_is_refused(
    tmp_path: Path, interval: float
) -> None:
    with pytest.raises(ValueError, match="rotate_interval must be a finite number of seconds"):
        Recorder(tmp_path / "r", source_url="ws://127.0.0.1:1", rotate_interval=interval)


@pytest.mark.parametrize("options", [{"dedupe_ttl": math.inf}, {"dedupe_ttl": math.nan},
                                     {"check_interval": 1e-12}, {"check_interval": math.inf}])
def test_spec_durations_are_finite_and_bounded(options: dict[str, float]) -> None:
    with pytest.raises(ValidationError, match=next(iter(options))):
        generic.spec(url="ws://127.0.0.1:1", **options)


def test_durations_that_would_silently_switch_a_check_off_are_refused() -> None:
    # Turning the heartbeat or a stream's check off is said with enabled / allow_silence.
    with pytest.raises(ValidationError, match="interval"):
        HeartbeatConfig(interval=math.inf)
    with pytest.raises(ValidationError, match="stale_threshold"):
        StreamConfig(expected_interval=1.0, stale_threshold=math.inf)


async def test_a_recording_that_ends_disconnected_reports_through_its_stop_event(
    tmp_path: Path,
) -> None:
    async with Simulator(rates=RATES) as sim:
        feed = Feed(sim.spec(connection=quick()), record_to=tmp_path / "rec")
        async with feed:
            await eventually(lambda: feed.store.rows("trade") >= 5, what="trades")
    events = Recording.open(tmp_path / "rec").events()
    assert events["kind"].to_list()[-2:] == ["close", "stop"]
    assert quality_report(tmp_path / "rec").recording == "complete"


def test_a_recording_whose_path_holds_glob_characters_reads_whole(tmp_path: Path) -> None:
    # polars reads a path as a pattern unless told otherwise: "[x]" matched nothing.
    folder = tmp_path / "runs [x] *" / "rec"
    frames = ['{"type":"a"}', '{"type":"b"}']
    recording = Recording.from_frames(folder, frames)
    assert recording.frames()["data"].to_list() == frames
    dataset = tmp_path / "ds [y]"
    export_parquet(recording, raw.spec("ws://127.0.0.1:1"), dataset)
    assert load_dataset(dataset, "message").collect().height == 2
    assert load_connections(dataset).height == 1


async def test_an_interrupted_stop_does_not_leave_the_directory_claimed(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1")
    await recorder.start()
    recorder.record("mark", 0, data="before the interrupt")
    stopping = asyncio.ensure_future(recorder.stop())
    await asyncio.sleep(0)  # the stop is under way
    stopping.cancel()
    await asyncio.gather(stopping, return_exceptions=True)
    assert not (tmp_path / "rec" / ".lock").exists()


@pytest.mark.parametrize("value", ["12345678901.1234567890123456789",  # 30 digits: 19 places
                                   "1" * 21, "0." + "0" * 18 + "1"])
def test_a_decimal_of_many_digits_is_refused_not_a_crash(tmp_path: Path, value: str) -> None:
    # More than 28 digits once made the check itself raise (decimal context arithmetic),
    # losing the whole batch.
    class Price(BaseModel):
        type: str
        p: Decimal

    spec = FeedSpec(url="ws://127.0.0.1:1", type_of=by_field("type"),
                    channels=[Channel(name="price", model=Price)])
    frames = [json.dumps({"type": "price", "p": v}) for v in ("1.5", value, "2.5")]
    result = replay(Recording.from_frames(tmp_path / "rec", frames), spec)
    assert result.frames["price"]["p"].to_list() == [Decimal("1.5"), Decimal("2.5")]
    assert result.stats["rejects"]["schema_error"] == 1
    assert "does not fit Decimal(38, 18)" in result.rejects[0].detail
