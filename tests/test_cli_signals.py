"""Signals stop ``record``, ``demo``, ``simulate`` and ``export`` cleanly, as Ctrl-C does.

Each test runs the real command line as subprocesses on loopback, waits on what
they print and write, sends a real signal, and kills whatever is left in
``finally``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection

from wsresearch import Recording, Simulator
from wsresearch.exchanges import generic
from wsresearch.testing import generic_frames

from .conftest import TIME_FACTOR, built_once, eventually, loopback_server, trade_recording

SUBSCRIBE = '{"op":"subscribe","channels":["trade"]}'


class Cli:
    """A ``wsresearch`` command running as a subprocess, its output read as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [asyncio.ensure_future(self._read(proc.stdout, self.out)),
                         asyncio.ensure_future(self._read(proc.stderr, self.err))]

    @staticmethod
    async def _read(stream: asyncio.StreamReader, lines: list[str]) -> None:
        async for line in stream:
            lines.append(line.decode())

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    def said(self, text: str) -> bool:
        return text in self.stdout

    async def exit_status(self, within: float = 20.0) -> int:
        try:
            status = await asyncio.wait_for(self.proc.wait(), within * TIME_FACTOR)
        except TimeoutError:  # say what the process had said, so a hang can be told apart
            raise AssertionError(f"still running after {within:g} s\nstdout:\n{self.stdout}\n"
                                 f"stderr:\n{''.join(self.err)}") from None
        await asyncio.gather(*self._readers)
        return status

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@asynccontextmanager
async def running(*args: str, ignoring: tuple[signal.Signals, ...] = ()) -> AsyncIterator[Cli]:
    """``wsresearch ARGS`` with the stop signals at their default, as from a terminal.

    Whatever this suite was started with (under ``nohup``, SIGHUP is ignored, and a
    child inherits that): each command starts as a user's shell would start it, or
    ignoring the signals in ``ignoring``, as under ``nohup``.
    """
    def dispositions() -> None:  # in the child, before it runs Python
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN if signum in ignoring else signal.SIG_DFL)

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsresearch.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=dispositions,
    )
    cli = Cli(proc)
    try:
        yield cli
    finally:
        await cli.kill()


def has_segments(folder: Path) -> bool:
    """Whether the recorder flushed events to disk (segment files are renamed into place)."""
    return any(folder.glob("segments/*/events-*.parquet"))


def assert_closed_cleanly(folder: Path) -> Recording:
    recording = Recording.open(folder)
    assert recording.manifest.complete
    events = recording.events()
    assert events["kind"].to_list()[-2:] == ["close", "stop"]
    assert events["seq"].to_list() == list(range(events.height))  # no event missing
    assert recording.frames().height > 0
    return recording


def summary_rows(stdout: str, channel: str) -> int:
    match = re.search(rf"rows: {channel}\s*│\s*(\d+)", stdout)
    assert match, stdout
    return int(match.group(1))


CASES = [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]


@pytest.mark.parametrize(("signum", "status"), CASES, ids=[s.name for s, _ in CASES])
async def test_a_signal_stops_record_and_simulate_cleanly(
    signum: signal.Signals, status: int, tmp_path: Path,
) -> None:
    out = tmp_path / "rec"
    async with running("simulate") as sim:
        await eventually(lambda: sim.said("listening at"), within=20, what="the simulator")
        match = re.search(r"ws://127\.0\.0\.1:\d+", sim.stdout)
        assert match, sim.stdout
        async with running("record", match.group(0), "--out", str(out),
                           "--subscribe", SUBSCRIBE) as record:
            await eventually(lambda: has_segments(out), within=20, what="events on disk")
            record.proc.send_signal(signum)
            assert await record.exit_status() == status, "".join(record.err)
        sim.proc.send_signal(signum)
        assert await sim.exit_status() == status, "".join(sim.err)
    assert f"{signum.name} received: stopping" in record.stdout
    assert f"{signum.name} received: stopping" in sim.stdout
    assert record.err == [] and sim.err == []
    recording = assert_closed_cleanly(out)
    # The session summary, with the rows it counted: every recorded frame is one.
    assert "session summary" in record.stdout
    assert summary_rows(record.stdout, "message") == recording.frames().height


async def test_a_record_stopped_before_it_ever_connected_leaves_no_folder_behind(
        tmp_path: Path) -> None:
    out = tmp_path / "made" / "by" / "record"
    with socket.socket() as bound:  # bound, not listening: every connection is refused
        bound.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{bound.getsockname()[1]}"
        async with running("record", url, "--out", str(out)) as record:
            await eventually(lambda: (out / "manifest.json").is_file(), within=20,
                             what="the recording begun")
            record.proc.send_signal(signal.SIGTERM)
            assert await record.exit_status() == 143, "".join(record.err)
    assert f"no connection opened: nothing recorded, {out} removed" in record.stdout
    assert record.err == []
    assert not (tmp_path / "made").exists()  # the folders it made, gone with it


async def test_record_with_compact_compacts_the_recording_once_a_signal_stops_it(
        tmp_path: Path) -> None:
    out = tmp_path / "rec"
    async with running("simulate") as sim:
        await eventually(lambda: sim.said("listening at"), within=20, what="the simulator")
        match = re.search(r"ws://127\.0\.0\.1:\d+", sim.stdout)
        assert match, sim.stdout
        async with running("record", match.group(0), "--out", str(out), "--subscribe",
                           SUBSCRIBE, "--compact", "--segment-events", "1") as record:
            await eventually(lambda: len(list(out.glob("segments/*/events-*.parquet"))) >= 3,
                             within=30, what="three segments on disk (a flush a second)")
            record.proc.send_signal(signal.SIGINT)
            assert await record.exit_status() == 130, "".join(record.err)
        sim.proc.send_signal(signal.SIGINT)
        assert await sim.exit_status() == 130, "".join(sim.err)
    match = re.search(r"(\d+) segment files -> 1 \((\d+) events\)", record.stdout)
    assert match, record.stdout
    recording = assert_closed_cleanly(out)
    assert len(recording.files) == 1
    assert int(match.group(2)) == recording.events().height
    assert int(match.group(1)) >= 3


async def test_sigterm_stops_the_demo_and_closes_its_recording(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    async with running("demo", "--seconds", "60", "--record", str(out)) as demo:
        await eventually(lambda: has_segments(out), within=20, what="events on disk")
        demo.proc.send_signal(signal.SIGTERM)
        assert await demo.exit_status() == 143, "".join(demo.err)
    assert "SIGTERM received: stopping" in demo.stdout
    assert "session summary" in demo.stdout and f"session recorded to {out}" in demo.stdout
    assert demo.err == []
    assert_closed_cleanly(out)


async def ignores_the_close(ws: ServerConnection) -> None:
    for n in range(5):
        await ws.send(f'{{"type":"trade","n":{n}}}')
    ws.transport.pause_reading()  # the client's close frame is never read nor answered
    await ws.wait_closed()


@asynccontextmanager
async def stopping_a_record_whose_peer_ignores_the_close(out: Path) -> AsyncIterator[Cli]:
    """``record`` against a peer that never answers the close, once SIGTERM made it wait."""
    async with loopback_server(ignores_the_close) as (_, url), running(
        "record", url, "--out", str(out)
    ) as record:
        await eventually(lambda: has_segments(out), within=20, what="events on disk")
        record.proc.send_signal(signal.SIGTERM)
        await eventually(lambda: record.said("closing the connection (up to 5 s)"), within=4,
                         what="the note on the wait")
        yield record


async def test_a_stop_that_waits_for_the_closing_handshake_says_so(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    async with stopping_a_record_whose_peer_ignores_the_close(out) as record:
        assert record.proc.returncode is None  # said while waiting, not after
        assert await record.exit_status() == 143, "".join(record.err)
    lines = record.stdout.splitlines()
    note = lines.index("closing the connection (up to 5 s)\N{HORIZONTAL ELLIPSIS}")
    assert lines[note - 1] == "SIGTERM received: stopping (again to quit at once)"
    assert_closed_cleanly(out)


async def test_a_second_signal_while_stopping_quits_at_once(tmp_path: Path) -> None:
    async with stopping_a_record_whose_peer_ignores_the_close(tmp_path / "rec") as record:
        record.proc.send_signal(signal.SIGTERM)  # impatient: the default action, at once
        assert await record.exit_status(within=3) == -signal.SIGTERM


# The recipe of docs/cli.md ("A program of your own that runs a Feed"), pointed at a
# simulator: SIGTERM and SIGHUP cancel the task, and run_for stops the feed cleanly.
PROGRAM = """
import asyncio, signal, sys
from wsresearch import Feed
from wsresearch.exchanges import generic

async def record(url, folder):
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, task.cancel)  # stop as on Ctrl-C
    try:
        feed = Feed(generic.spec(url=url), record_to=folder, max_rows=0)
        await feed.run_for(24 * 3600)
    finally:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)

try:
    asyncio.run(record(sys.argv[1], sys.argv[2]))
except (KeyboardInterrupt, asyncio.CancelledError):
    sys.exit("stopped; the recording is complete")
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
async def test_a_program_running_its_own_feed_stops_cleanly_with_the_documented_recipe(
    signum: signal.Signals, tmp_path: Path,
) -> None:
    out = tmp_path / "rec"
    async with Simulator() as sim:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PROGRAM, sim.url, str(out),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            await eventually(lambda: has_segments(out), within=20, what="events on disk")
            child.send_signal(signum)
            _, err = await asyncio.wait_for(child.communicate(), 20 * TIME_FACTOR)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
    assert child.returncode == 1, err
    assert err.decode().strip() == "stopped; the recording is complete"
    assert_closed_cleanly(out)


async def test_a_signal_ignored_at_start_stays_ignored_as_under_nohup(tmp_path: Path) -> None:
    async with running("demo", "--seconds", "60", "--record", str(tmp_path / "demo"),
                       ignoring=(signal.SIGHUP,)) as demo:
        await eventually(lambda: has_segments(tmp_path / "demo"), within=20,
                         what="events on disk")
        demo.proc.send_signal(signal.SIGHUP)  # ignored: nohup's promise holds
        demo.proc.send_signal(signal.SIGTERM)  # what stops it
        assert await demo.exit_status() == 143, "".join(demo.err)
    assert "SIGHUP received" not in demo.stdout and "SIGTERM received: stopping" in demo.stdout
    assert_closed_cleanly(tmp_path / "demo")


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300,000 trades: an export of them in chunks of 1,000 takes seconds."""
    return built_once(tmp_path_factory, "long-300000-trades",
                      lambda path: trade_recording(path, 300_000, seed=4))


def staged(out: Path) -> bool:
    """Whether an export into ``out`` has written a part of its rows (it is replaying)."""
    return any(out.glob(".export-*/**/part-*.parquet"))


@pytest.mark.parametrize(("signum", "status"), CASES, ids=[s.name for s, _ in CASES])
async def test_a_signal_stops_an_export_at_its_next_chunk_leaving_the_dataset_as_it_was(
        signum: signal.Signals, status: int, tmp_path: Path, long_recording: Path) -> None:
    out = tmp_path / "ds"
    async with running("export", str(long_recording), "--out", str(out), "--normalized",
                       "--chunk-events", "1000") as export:
        await eventually(lambda: staged(out), within=30, what="a part of the export staged")
        export.proc.send_signal(signum)
        assert await export.exit_status() == status, "".join(export.err)
    assert f"{signum.name} received: stopping" in export.stdout
    assert export.err == []
    # Stopped in the replay: nothing written, the staging folder removed.
    assert not [p for p in out.rglob("*") if p.is_file()], sorted(out.rglob("*"))
    assert not list(out.glob(".export-*"))


async def test_a_signal_stops_the_workers_of_a_parallel_export(
        tmp_path: Path, long_recording: Path) -> None:
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        shutil.copytree(long_recording, folder)
    out = tmp_path / "ds"
    async with running("export", *map(str, folders), "--out", str(out), "--workers", "2",
                       "--normalized", "--chunk-events", "1000") as export:
        await eventually(lambda: staged(out), within=60, what="a part of an export staged")
        export.proc.send_signal(signal.SIGTERM)
        assert await export.exit_status() == 143, "".join(export.err)
    assert "SIGTERM received: stopping" in export.stdout
    assert not list(out.glob(".export-*"))
    assert not list(out.glob("[ck]*=*/**/*.parquet"))


def spawned_workers(pid: int) -> list[int]:
    """The worker processes ``pid`` has started (multiprocessing's ``spawn_main``)."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            with suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
    return found


def sigint_disposition(pid: int) -> str | None:
    """How process ``pid`` takes SIGINT (``/proc``): "ignored", "caught", or None (default)."""
    bit = 1 << (signal.SIGINT - 1)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, mask = line.partition(":\t")
        if name == "SigIgn" and int(mask, 16) & bit:
            return "ignored"
        if name == "SigCgt" and int(mask, 16) & bit:
            return "caught"
    return None


async def test_a_parallel_runs_workers_ignore_ctrl_c_from_their_start(
        tmp_path: Path, long_recording: Path) -> None:
    # A terminal's Ctrl-C reaches every process of the group: a worker that still caught
    # SIGINT while it imported (before its initializer ignored it) printed a
    # KeyboardInterrupt traceback. It is to ignore it from its first instruction.
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        shutil.copytree(long_recording, folder)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsresearch.cli", "report", *map(str, folders), "--workers", "2",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        start_new_session=True)  # a group of its own: all of it is killed at the end
    seen: list[str | None] = []
    try:
        await eventually(lambda: bool(spawned_workers(proc.pid)), within=30,
                         what="a worker process started")
        worker = spawned_workers(proc.pid)[0]

        def settled() -> bool:
            with suppress(OSError):  # it may have ended: then what was seen stands
                seen.append(sigint_disposition(worker))
                return seen[-1] is not None
            return True

        await eventually(settled, within=30, what="the worker's SIGINT disposition")
        _, err = await asyncio.wait_for(proc.communicate(), 60 * TIME_FACTOR)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert "caught" not in seen, seen
    assert seen[-1] == "ignored", seen
    assert proc.returncode == 0, err.decode()


def test_one_recording_failing_in_its_worker_leaves_the_others_running_to_the_end(
        tmp_path: Path, long_recording: Path) -> None:
    # Only a signal stops the recordings under way; one that fails stops itself (and
    # starts no other), as docs/cli.md says.
    import json
    import subprocess

    bad, good = tmp_path / "bad", tmp_path / "good"
    shutil.copytree(long_recording, bad)
    shutil.copytree(long_recording, good)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["started_wall_ns"] = "oops"  # past the parent's JSON check: fails in its worker
    (bad / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "ds"
    done = subprocess.run([sys.executable, "-m", "wsresearch.cli", "export", str(bad),
                           str(good), "--out", str(out), "--workers", "2"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1
    assert (f"wsresearch export: error: {bad}/manifest.json is damaged: started_wall_ns"
            in done.stderr), done.stderr
    written = list(out.glob("channel=*/*/*/*.parquet"))
    assert written, done.stderr  # the good recording's rows
    assert not list(out.glob(".export-*")) and not list(out.rglob("*.tmp"))


@pytest.fixture(scope="module")
def two_connections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300,000 trades over two connections: an export splits it into two processes."""
    from wsresearch.recording.writer import Captured, write_events

    start_ns = 1_700_000_000_000_000_000
    url = "ws://127.0.0.1:1"

    def events() -> Iterator[Captured]:
        for i, frame in enumerate(generic_frames(300_000, seed=6)):
            if i % 150_000 == 0:
                yield Captured("open", start_ns + i * 1_000_000, url)
            yield Captured("frame", start_ns + i * 1_000_000, frame)

    return built_once(tmp_path_factory, "two-connections-300000-trades",
                      lambda path: write_events(path, events(), source_url=url,
                                                origin=generic.spec(url=url).origin))


async def test_a_second_ctrl_c_quits_at_once_though_the_work_would_take_its_time(
        tmp_path: Path, two_connections: Path) -> None:
    # A split export stops once its parts end: the first Ctrl-C waits for them. The
    # second ends the process at once, as the line says, where it used to wait too.
    out = tmp_path / "ds"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsresearch.cli", "export", str(two_connections), "--out",
        str(out), "--workers", "2", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    cli = Cli(proc)
    try:
        await eventually(lambda: any(out.glob(".export-*/*/part-*.parquet")), within=60,
                         what="the parts under way")
        proc.send_signal(signal.SIGINT)  # to the command alone: its parts are not told
        await eventually(lambda: cli.said("SIGINT received: stopping (again to quit at once)"),
                         within=10, what="the first stop")
        proc.send_signal(signal.SIGINT)
        # Its parts' processes still hold its output open: its own end is what is awaited.
        await eventually(lambda: proc.returncode is not None, within=20,
                         what="the command's end")
        assert proc.returncode == -signal.SIGINT, "".join(cli.err)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the parts' processes too
        await asyncio.wait_for(proc.wait(), 30 * TIME_FACTOR)  # their pipes closed with them
        await asyncio.wait_for(asyncio.gather(*cli._readers), 30 * TIME_FACTOR)
