"""Format version 2: who closed each connection (``closed_by``), and version 1 read as version 2.

Also: frames captured elsewhere are written without an event loop, so
``Recording.from_frames`` runs the same inside a running one (a notebook cell).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from wsresearch import Recording, replay
from wsresearch.clock import VirtualClock
from wsresearch.exchanges import generic
from wsresearch.policy import CLIENT_CLOSE_REASONS
from wsresearch.recording import EVENT_SCHEMA, FORMAT_VERSION, Recorder
from wsresearch.recording.format import MessageBuffer, clean_text, event_table

from .conftest import SESSION, other_tasks, sized

WALL = 1_700_000_000_000_000_000


def closes(recording: Recording) -> list[tuple[int, str | None, str | None]]:
    return recording.events().filter(kind="close").select(
        "generation", "reason", "closed_by").rows()


def test_a_version_1_recording_reads_with_closed_by_taken_from_the_reasons() -> None:
    recording = Recording.open(SESSION)
    assert recording.manifest.version == 1
    on_disk = pl.read_parquet(SESSION / "segments" / "*" / "*.parquet")
    assert "closed_by" not in on_disk.columns  # nothing is rewritten, only read
    events = recording.events()
    assert events.schema == pl.Schema(EVENT_SCHEMA)
    assert closes(recording) == [
        (1, "", "server"),  # a lost connection: version 1 cannot tell it from the server's
        (2, "simulated disconnect", "server"),
        (3, "invalid api key", "server"),
        (4, "no pong within 1 s", "client"),
        (5, "rate limited", "server"),
        (6, "client disconnect", "client"),
    ]
    assert events.filter(pl.col("kind") != "close")["closed_by"].null_count() == (
        events.height - 6)
    # Every other column is what the files hold.
    assert_frame_equal(events.drop("closed_by"), on_disk.sort("seq"))


def test_every_client_close_reason_of_a_version_1_recording_reads_as_the_clients(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "v1"
    shutil.copytree(SESSION, copy)
    segment = next(f for f in sorted(copy.rglob("*.parquet"))
                   if pl.read_parquet(f).filter(kind="close").height)
    table = pl.read_parquet(segment)
    reasons = [f"{prefix}: and more" for prefix in CLIENT_CLOSE_REASONS] + ["", None, "resyn"]
    template = table.filter(kind="close").head(1)
    extra = pl.concat([template.with_columns(seq=pl.lit(10**9 + n, dtype=pl.Int64),
                                             reason=pl.lit(reason, dtype=pl.String))
                       for n, reason in enumerate(reasons)])
    pl.concat([table, extra]).write_parquet(segment)
    got = {reason: by for _, reason, by in closes(Recording.open(copy))}
    assert [got[reason] for reason in reasons] == (
        ["client"] * len(CLIENT_CLOSE_REASONS) + ["server", "server", "server"])


def test_a_version_1_recording_replays_and_reports_as_before() -> None:
    result = replay(SESSION, generic.spec(url="ws://127.0.0.1:1"))
    assert result.stats["generations"] == 6
    assert result.stats["frames"] == 2220


async def record_closes(path: Path, **close: str | None) -> Recording:
    """A recording of one connection per ``close`` item: ``reason=closed_by``."""
    recorder = Recorder(path, source_url="ws://127.0.0.1:1", clock=VirtualClock(wall_ns=WALL))
    await recorder.start()
    for generation, (reason, closed_by) in enumerate(close.items(), 1):
        recorder.record("open", generation, data="ws://127.0.0.1:1")
        recorder.record_message('{"n":1}', generation, generation, WALL + generation)
        recorder.record("close", generation, code=1006, reason=reason.replace("_", " "),
                        category="NORMAL", closed_by=closed_by)
    await recorder.stop()
    return Recording.open(path)


async def test_a_new_recording_stores_who_closed_each_connection_as_told(tmp_path: Path) -> None:
    recording = await record_closes(
        tmp_path / "rec", lost="network", maintenance="server", client_disconnect="client",
        no_pong="server",  # told: kept, whatever the reason suggests
    )
    assert recording.manifest.version == FORMAT_VERSION == 2
    assert json.loads((tmp_path / "rec" / "manifest.json").read_text())["version"] == 2
    assert closes(recording) == [
        (1, "lost", "network"), (2, "maintenance", "server"),
        (3, "client disconnect", "client"), (4, "no pong", "server"),
    ]
    # Stored in the files, for readers with polars alone.
    direct = pl.read_parquet(tmp_path / "rec" / "segments" / "*" / "*.parquet").sort("seq")
    assert direct.columns == list(EVENT_SCHEMA)
    assert direct.filter(kind="close")["closed_by"].to_list() == [
        "network", "server", "client", "server"]
    assert direct.filter(pl.col("kind") != "close")["closed_by"].null_count() == (
        direct.height - 4)


async def test_a_close_recorded_without_closed_by_gets_it_from_its_reason(
    tmp_path: Path,
) -> None:
    recording = await record_closes(tmp_path / "rec", resync_on_gap=None, going_away=None)
    assert [by for _, _, by in closes(recording)] == ["client", "server"]


@pytest.mark.parametrize(("kind", "closed_by", "message"), [
    ("close", "nobody", "closed_by must be one of client, server, network, got 'nobody'"),
    ("mark", "client", "closed_by is for close events, not 'mark'"),
])
async def test_a_closed_by_that_means_nothing_is_refused(
    tmp_path: Path, kind: str, closed_by: str, message: str,
) -> None:
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1")
    with pytest.raises(ValueError, match=message):
        recorder.record(kind, 1, closed_by=closed_by)
    assert recorder.events == 0


def test_record_frame_is_the_former_name_of_record_message() -> None:
    assert Recorder.record_frame is Recorder.record_message


async def test_from_frames_runs_inside_a_running_event_loop_and_starts_no_task(
    tmp_path: Path,
) -> None:
    before = other_tasks()
    recording = Recording.from_frames(tmp_path / "rec", [(WALL, '{"a":1}'), (WALL + 5, b"\x01")])
    assert other_tasks() == before
    assert recording.manifest.complete
    assert recording.events().select("seq", "kind", "mono_ns", "wall_ns", "data").rows() == [
        (0, "open", 0, WALL, "ws://127.0.0.1/"),
        (1, "frame", 0, WALL, '{"a":1}'),
        (2, "frame", 5, WALL + 5, "AQ=="),
        (3, "stop", 5, WALL + 5, None),
    ]


def test_from_frames_needs_no_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_loop(*args: object, **kwargs: object) -> None:
        raise AssertionError("from_frames made an event loop")

    monkeypatch.setattr(asyncio, "new_event_loop", no_loop)
    monkeypatch.setattr(asyncio, "run", no_loop)
    recording = Recording.from_frames(tmp_path / "rec", ['{"a":1}', '{"a":2}'])
    assert recording.frames()["recv_wall_ns"].to_list() == [1_000_000, 2_000_000]
    assert (recording.manifest.started_wall_ns, recording.manifest.ended_wall_ns) == (0, 2_000_000)
    assert not (tmp_path / "rec" / ".lock").exists()  # released: the recording is complete


@settings(max_examples=sized(60, 150), deadline=None)
@given(data=st.data())
def test_a_segments_table_is_its_events_row_by_row_in_seq_order(data: st.DataObject) -> None:
    """Messages alone, other events alone, or both interleaved; messages laid out as a
    recorder buffers them (in runs received together) and column by column alike."""
    count = data.draw(st.integers(0, 30))
    kinds = data.draw(st.lists(st.sampled_from(["frame", "frame", "frame", "pong", "close"]),
                               min_size=count, max_size=count))
    if not kinds:
        kinds = ["frame"]
    # Lone surrogates too (text handed to the recorder directly): stored escaped.
    texts = st.text(alphabet=st.one_of(st.characters(), st.sampled_from(["\ud800", "\udfff"])),
                    max_size=8)
    columns: tuple[list[Any], ...] = ([], [], [], [], [])
    runs: list[tuple[int, list[str], int, int, int]] = []  # first seq, texts, their numbers
    binary: set[int] = set()
    others = []
    expected = []
    for seq, kind in enumerate(kinds):
        generation, mono, wall = data.draw(st.integers(1, 3)), seq * 10, 10**18 + seq
        if kind == "frame":
            text = data.draw(texts)
            is_binary = data.draw(st.booleans())
            if is_binary:
                binary.add(seq)
            run = runs[-1] if runs else None
            if (run is not None and run[0] + len(run[1]) == seq  # the last event was its
                    and data.draw(st.booleans())):  # received with it
                _, run_texts, generation, mono, wall = run
                run_texts.append(text)
            else:
                runs.append((seq, [text], generation, mono, wall))
            for column, value in zip(columns, (seq, generation, mono, wall, text),
                                     strict=True):
                column.append(value)
            expected.append((seq, generation, mono, wall, "frame", clean_text(text), is_binary)
                            + (None,) * 8)
        else:
            row = (seq, generation, mono, wall, kind, None, None,
                   1000 if kind == "close" else None, None, None,
                   0.5 if kind == "pong" else None, None, None, None,
                   "client" if kind == "close" else None)
            others.append(row)
            expected.append(row)
    buffered = MessageBuffer()
    for first, run_texts, generation, mono, wall in runs:
        buffered.add(first, run_texts, generation, mono, wall)
    expected_table = pl.DataFrame(expected, schema=EVENT_SCHEMA, orient="row")
    assert_frame_equal(event_table(columns, binary, others),  # type: ignore[arg-type]
                       expected_table)
    assert_frame_equal(event_table(buffered, binary, others), expected_table)


@pytest.mark.parametrize("time", [5, None, True, 1.5, "5", 2**63, -(2**63) - 1])
def test_a_message_buffer_takes_a_time_as_a_column_of_them_would(time: Any) -> None:
    """A time that is not a 64-bit int fails the segment as the columns do; None is null."""
    buffered = MessageBuffer()
    buffered.add(0, ["x", "y"], 1, time, 7)
    columns: tuple[list[Any], ...] = ([0, 1], [1, 1], [time, time], [7, 7], ["x", "y"])
    outcomes = []
    for messages in (buffered, columns):
        try:
            outcomes.append(event_table(messages, set(), []).rows())  # type: ignore[arg-type]
        except TypeError as exc:
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]
    assert (outcomes[0] is TypeError) is (time not in (5, None, True))


@settings(max_examples=sized(80, 200), deadline=None)
@given(sizes=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3)), max_size=8),
       cut=st.integers(-1, 40))
def test_a_message_buffer_forgets_what_comes_before_a_seq(
    sizes: list[tuple[int, int]], cut: int,
) -> None:
    """Runs of messages, with other events' seqs between them; a cut anywhere, inside a run too."""
    buffered, seq = MessageBuffer(), 0
    for index, (size, skipped) in enumerate(sizes):
        buffered.add(seq, [f"m{n}" for n in range(seq, seq + size)], index, 10 * index,
                     10**18 + index)
        seq += size + skipped
    before = buffered.frame()
    buffered.drop_before(cut)
    kept = before.filter(pl.col("seq") >= cut)
    assert list(buffered.seqs()) == kept["seq"].to_list()
    assert buffered.texts == kept["data"].to_list()
    assert len(buffered) == kept.height
    assert_frame_equal(buffered.frame(), kept)
