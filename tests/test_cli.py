import asyncio
import contextlib
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection

from wsresearch import Feed, Recording, Simulator, cli
from wsresearch.cli import demo_faults
from wsresearch.exchanges import raw
from wsresearch.testing import generic_frames, parse_fault

from .conftest import SESSION as DATA
from .conftest import TIME_FACTOR, eventually, loopback_server, quick, run_here

KRAKEN = DATA.parent.parent / "recordings" / "kraken_cryptofeed_2021-04-17_v1_trade"
"""A second recording (Kraken's trades), for commands given several."""


def run(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsresearch.cli", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env=None if env is None else {**os.environ, **env},
    )


def summary_value(stdout: str, what: str) -> str:
    """A value of the session summary table."""
    match = re.search(rf"{re.escape(what)}[^│]*│\s*(.*?)\s*│", stdout)
    assert match, stdout
    return match.group(1)


def test_demo_runs_offline_and_survives_every_fault(tmp_path: Path) -> None:
    result = run("demo", "--seconds", "12", "--record", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "session summary" in out
    assert "feed survived every fault" in out
    for shown in ("abnormal closure (1006), NORMAL", "AUTH_FAILURE", "RATE_LIMITED",
                  "no pong", "duplicates removed", "rejected: invalid_json"):
        assert shown in out, shown
    progress = [line for line in out.splitlines() if line.startswith("[")]
    assert len(progress) >= 10  # a progress line a second when stdout is not a terminal
    assert result.stderr == ""
    assert f"session recorded to {tmp_path / 'demo'}" in out
    assert "4401" in repr(Recording.open(tmp_path / "demo"))


def test_simulate_serves_then_stops() -> None:
    result = run("simulate", "--seconds", "0.3", "--fault", "disconnect@1")
    assert result.returncode == 0, result.stderr
    assert "listening at ws://127.0.0.1:" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--seconds", "-1"], "must be > 0"),
        (["demo", "--seconds", "soon"], "not a number"),
        (["simulate", "--fault", "meteor@3"], "bad fault 'meteor@3'"),
        (["simulate", "--fault", "silence@3"], "stream="),
        (["simulate", "--fault", "burst@x"], "at"),
        (["nonsense"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
        args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_here(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0]
    assert "Traceback" not in err


def test_a_bad_argument_ends_the_interpreter_with_status_2_and_one_line() -> None:
    result = run("demo", "--seconds", "soon")  # the process itself, as a shell sees it
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "not a number" in result.stderr


def test_runtime_errors_give_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, said = run_here(capsys, "simulate", "--port", str(port), "--seconds", "0.1")
    assert code == 1
    err = said.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wsresearch simulate: error:")


def test_every_command_has_help() -> None:
    for command in ("demo", "simulate", "record", "replay", "report", "export"):
        result = run(command, "--help")
        assert result.returncode == 0 and command in result.stdout


def test_fault_parsing_and_the_demo_script() -> None:
    fault = parse_fault("silence@9:stream=ticker,duration=4")
    assert (fault.kind, fault.at, fault.stream, fault.duration) == ("silence", 9.0, "ticker", 4.0)
    assert parse_fault("disconnect").at == 0.0
    with pytest.raises(ValueError, match="not key=value"):
        parse_fault("burst@1:count")
    script = demo_faults(20)
    assert {f.kind for f in script} >= {"disconnect", "reject_auth", "rate_limit", "silence",
                                        "duplicate", "sequence_gap", "burst", "no_pong",
                                        "malformed"}
    assert max(f.at for f in script) < 20




def test_replay_summarises_the_shipped_session() -> None:
    result = run("replay", str(DATA))
    assert result.returncode == 0, result.stderr
    assert "6 generations" in result.stdout
    assert "trade" in result.stdout and "2220 messages over 6 connection(s)" in result.stdout


async def test_record_with_compact_leaves_one_segment_file(tmp_path: Path) -> None:
    out = tmp_path / "r[" / "x]ec"  # glob characters: every path is read as a path
    async with Simulator(rates={"trade": 100.0, "ticker": 50.0, "order": 0.1}) as sim:
        done = await asyncio.to_thread(
            run, "record", sim.url, "--out", str(out), "--seconds", "2.5", "--compact",
            "--subscribe", '{"op":"subscribe","channels":["trade"]}', "--segment-events", "1",
        )
    assert done.returncode == 0, done.stderr
    recording = Recording.open(out)
    assert [f.name for f in recording.files] == ["events-000000000000.c1.parquet"]
    assert recording.manifest.complete
    assert f"-> 1 ({recording.events().height} events)" in done.stdout


def test_replay_refuses_what_is_not_a_recording(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_here(capsys, "replay", str(tmp_path))
    assert code == 1
    assert err.strip().splitlines() == [
        f"wsresearch replay: error: {tmp_path} is not a recording: it has no manifest.json"
    ]


async def test_record_then_replay_a_simulator_feed(tmp_path: Path) -> None:
    out = tmp_path / "r[" / "x]ec"  # a path that is rich markup, printed as it is
    async with Simulator(rates={"trade": 100.0, "ticker": 50.0, "order": 0.1}) as sim:
        url = sim.url
        done = await asyncio.to_thread(
            run, "record", url, "--out", str(out), "--seconds", "1",
            "--subscribe", '{"op":"subscribe","channels":["trade"]}',
        )
    assert done.returncode == 0, done.stderr
    # Read through a plain name: polars reads a path with "[" as a glob pattern.
    (tmp_path / "rec").symlink_to(out)
    recording = Recording.open(tmp_path / "rec")
    assert recording.frames().height > 20
    assert f"recording {url} to {out} (Ctrl-C to stop)" in done.stdout
    assert f"recorded {recording.events().height} events to {out}" in done.stdout
    # The session summary, as demo prints it; rows are counted though none stay in memory.
    assert "session summary" in done.stdout
    assert int(summary_value(done.stdout, "rows: message")) == recording.frames().height
    assert int(summary_value(done.stdout, "messages received")) == recording.frames().height
    result = run("replay", str(tmp_path / "rec"))
    assert result.returncode == 0, result.stderr
    assert "subscribed" in result.stdout and "trade" in result.stdout


def test_record_refuses_bad_json_and_urls(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_here(capsys, "record", "ws://127.0.0.1:1", "--out", str(tmp_path / "r"),
                            "--subscribe", "{x")
    assert code == 2 and "not JSON" in err
    code, _, err = run_here(capsys, "record", "http://example.com", "--out", str(tmp_path / "r"))
    assert code == 1 and "ws:// or wss://" in err
    assert len(err.strip().splitlines()) == 1


def test_a_record_that_never_connects_leaves_no_recording_behind(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as bound:  # bound, not listening: every connection is refused
        bound.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{bound.getsockname()[1]}"

        def record(out: Path) -> tuple[int, str, str]:
            return run_here(capsys, "record", url, "--out", str(out), "--seconds", "0.5")

        out = tmp_path / "new" / "rec"
        for _ in range(2):  # the same --out again is not refused as holding a recording
            code, said, err = record(out)
            assert code == 1 and f"no connection to {url} opened within 0.5 s" in err
            assert f"no connection opened: nothing recorded, {out} removed" in said
            assert not out.parent.exists()  # nor the folder made to hold it
        empty = tmp_path / "empty"
        empty.mkdir()
        code, said, _ = record(empty)
        assert code == 1 and f"nothing recorded, {empty} emptied" in said
        assert empty.is_dir() and not any(empty.iterdir())
        # A folder the recorder refused is not its own: left as it was.
        held = tmp_path / "held"
        Recording.from_frames(held, [(0, '{"type":"x"}')])
        before = sorted(held.rglob("*"))
        code, said, err = record(held)
        assert code == 1 and "already holds a recording" in err
        assert "nothing recorded" not in said and sorted(held.rglob("*")) == before


def test_demo_speaks_an_exchange_dialect_through_its_adapter() -> None:
    result = run("demo", "--exchange", "okx", "--seconds", "8", "--no-record")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "simulator (okx)" in out and "feed survived every fault" in out
    for shown in ("rows: trades", "rows: books", "going away (1001), NORMAL", "sequence gaps",
                  "order books valid at the end"):
        assert shown in out, shown
    assert result.stderr == ""


def test_the_demo_script_adds_the_book_faults_each_exchange_has() -> None:
    kinds = {profile: [f.kind for f in demo_faults(20, profile)]
             for profile in ("generic", "binance", "kraken-v1", "okx")}
    assert "bad_snapshot" not in kinds["generic"] and "bad_checksum" not in kinds["generic"]
    assert "reject_auth" in kinds["generic"] and "reject_auth" not in kinds["okx"]
    assert kinds["binance"].count("bad_snapshot") == 1 and "bad_checksum" not in kinds["binance"]
    assert kinds["kraken-v1"].count("bad_checksum") == 1
    assert "bad_snapshot" not in kinds["kraken-v1"]
    # OKX sends its snapshot in-band, and checksums: a wrong checksum, no REST fault.
    assert "bad_snapshot" not in kinds["okx"] and kinds["okx"].count("bad_checksum") == 1
    ats = [f.at for f in demo_faults(20, "binance")]
    assert ats == sorted(ats)


async def test_record_an_exchange_by_name_against_its_simulator(tmp_path: Path) -> None:
    async with Simulator("binance", rates={"trade": 100.0, "ticker": 50.0, "book": 50.0}) as sim:
        url = sim.url
        done = await asyncio.to_thread(
            run, "record", "binance:btcusdt,ethusdt", "--channels", "trade,bookTicker",
            "--url", sim.url, "--out", str(tmp_path / "rec"), "--seconds", "1",
        )
    assert done.returncode == 0, done.stderr
    recording = Recording.open(tmp_path / "rec")
    spec = recording.spec
    assert spec is not None and spec.channel_names == ["trade", "bookTicker"]
    assert spec.url == url
    result = run("replay", str(tmp_path / "rec"))
    assert result.returncode == 0, result.stderr
    assert "bookTicker" in result.stdout and "0 rejected" in result.stdout


async def test_record_of_books_against_a_simulator_asks_its_rest_port_for_snapshots(
    tmp_path: Path,
) -> None:
    # --url points the WebSocket at the simulator; its snapshots are on a port of their
    # own, which simulate prints and --rest-url names. Without it they went to Binance.
    async with Simulator("binance", rates={"trade": 10.0, "ticker": 10.0, "book": 50.0}) as sim:
        assert sim.rest_url is not None
        done = await asyncio.to_thread(
            run, "record", "binance:btcusdt", "--channels", "depth", "--url", sim.url,
            "--rest-url", sim.rest_url, "--out", str(tmp_path / "rec"), "--seconds", "1",
        )
        assert done.returncode == 0, done.stderr
        assert sim.rest_requests == ["/api/v3/depth?symbol=BTCUSDT&limit=1000"]
    assert "note:" not in done.stdout
    assert re.search(r"order books valid at the end\W+1 of 1", done.stdout), done.stdout
    assert Recording.open(tmp_path / "rec").events().filter(kind="rest").height == 1


@pytest.mark.parametrize(("extra", "told"), [
    (["--url", "ws://127.0.0.1:9"], "https://api.binance.com"),
    (["--url", "ws://127.0.0.1:9", "--rest-url", "http://127.0.0.1:9"], None),
    ([], None),
])
def test_where_record_asks_for_snapshots_when_its_url_is_elsewhere(
    extra: list[str], told: str | None,
) -> None:
    args = cli._build_parser().parse_args(
        ["record", "binance:btcusdt", "--channels", "depth", "--out", "x", *extra])
    assert cli._rest_elsewhere(args, cli._record_spec(args)) == told
    # Channels without books need no snapshot.
    args = cli._build_parser().parse_args(["record", "binance:btcusdt", "--channels", "trade",
                                           "--out", "x", *extra])
    assert cli._rest_elsewhere(args, cli._record_spec(args)) is None


@pytest.mark.parametrize(("recording", "rest"), [
    (DATA.parent.parent / "recordings" / "binance_hftbacktest_2024-08-08_spot_btcusdt", 1),
    (DATA, 0),
])
def test_replay_serve_prints_where_its_recorded_rest_responses_are(
    recording: Path, rest: int, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_here(capsys, "replay", str(recording), "--serve", "--seconds", "0.1")
    assert code == 0
    told = re.findall(r"its (\d+) recorded REST response\(s\) at http://127\.0\.0\.1:\d+ "
                      r"\(record --rest-url\)", out)
    assert told == ([str(rest)] if rest else []), out


def test_simulate_prints_where_its_rest_snapshots_are(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_here(capsys, "simulate", "--profile", "binance", "--seconds", "0.1")
    assert code == 0
    assert re.search(r"REST book snapshots at http://127\.0\.0\.1:\d+ \(record --rest-url\)",
                     out), out
    code, out, _ = run_here(capsys, "simulate", "--profile", "kraken-v1", "--seconds", "0.1")
    assert code == 0 and "REST" not in out


@pytest.mark.parametrize(
    ("target", "extra", "message"),
    [
        ("ftx:btcusd", [], "neither a ws:// or wss:// URL nor EXCHANGE:SYMBOLS"),
        ("binance:", [], "neither"),
        ("binance:btcusdt", ["--channels", "trades"], "unknown Binance channel(s) ['trades']"),
        ("binance:BTC-USDT", [], "symbols look like 'btcusdt'"),
        ("binance:btcusdt", ["--option", "colour=blue"],
         "binance has no option 'colour'; its options: ['market'"),
        ("ws://127.0.0.1:1", ["--channels", "trade"], "go with EXCHANGE:SYMBOLS"),
        ("ws://127.0.0.1:1", ["--rest-url", "http://127.0.0.1:1"], "go with EXCHANGE:SYMBOLS"),
        ("binance:btcusdt", ["--rest-url", "ftp://x"], "rest_url must be an http:// or https://"),
        ("okx:BTC-USDT", ["--subscribe", "{}"], "--subscribe goes with a URL"),
    ],
)
def test_record_refuses_bad_targets_in_one_line(
    target: str, extra: list[str], message: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_here(capsys, "record", target, "--out", str(tmp_path / "r"), *extra)
    assert code == 1, out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "r").exists()


def test_export_writes_a_dataset_and_replaces_on_a_second_run(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    first = run("export", str(DATA), "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert "trade 2150, ticker 49" in first.stdout
    assert first.stdout.splitlines()[0].startswith(str(DATA))  # no blank line for a log's bar
    again = run("export", str(DATA), "--out", str(out))
    assert again.returncode == 0 and "replacing 3 earlier file(s)" in again.stdout
    assert len(list(out.glob("channel=*/exchange=*/date=*/*.parquet"))) == 2
    normalized = run("export", str(DATA), "--out", str(out), "--normalized")
    assert normalized.returncode == 0, normalized.stderr
    # What --normalized wrote too, so that the line shows it took effect.
    assert "trade 2150, ticker 49; normalized trades 2150, " in normalized.stdout


def test_export_needs_an_adapter_for_recordings_without_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Recording.from_frames(tmp_path / "rec", ['{"type":"trade"}'])  # no spec: no adapter named
    code, _, err = run_here(capsys, "export", str(tmp_path / "rec"), "--out",
                            str(tmp_path / "ds"))
    assert code == 1 and "say which with --exchange" in err
    code, _, err = run_here(capsys, "export", str(DATA), "--out", str(tmp_path / "ds"),
                            "--channels", "trade")
    assert code == 1 and "go with --exchange" in err
    code, _, err = run_here(capsys, "export", str(DATA), "--out", str(tmp_path / "ds2"),
                            "--exchange", "okx", "--channels", "trades")
    # Taken: the OKX spec is built, and rejects every generic frame (nothing written).
    assert code == 1
    assert "is the okx spec the recording's" in err, err


KRAKEN_FUTURES = (Path(__file__).resolve().parent.parent / "data" / "recordings"
                  / "kraken_cryptofeed_2021-07-22_futures_v1_book_trade_ticker")


def test_export_with_the_exchange_named_takes_the_recording_s_symbols(tmp_path: Path) -> None:
    # An API whose symbols the adapter's spot default does not fit, with no --symbols.
    export = run("export", str(KRAKEN_FUTURES), "--out", str(tmp_path / "ds"),
                 "--exchange", "kraken", "--option", "api=futures", "--report",
                 str(tmp_path / "reports"))
    assert export.returncode == 0, export.stderr
    # The report names the recording's ten products, not the adapter's default one.
    [page] = (tmp_path / "reports").glob("*.html")
    text = page.read_text()
    assert "trades 7 of 10 (FI_ETHUSD_211231, PI_XRPUSD" in text and "PI_XBTUSD" not in text
    # Another API than the recording's: its symbols are not taken (they need not be
    # spelled as that API's); the default is, and the rejections are said.
    other = run("export", str(KRAKEN_FUTURES), "--out", str(tmp_path / "ds2"),
                "--exchange", "kraken")
    assert other.returncode == 1
    assert "all 7,175 messages were rejected" in other.stderr, other.stderr


def test_report_prints_the_summary_and_writes_html(tmp_path: Path) -> None:
    result = run("report", str(DATA), "--html", str(tmp_path / "r.html"))
    assert result.returncode == 0, result.stderr
    for shown in ("rate limited (4429), RATE_LIMITED", "1 (3 missing)", "no pong",
                  "report written to"):
        assert shown in result.stdout, shown
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")
    missing = run("report", str(tmp_path / "none"))
    assert missing.returncode == 1 and "is not a recording" in missing.stderr


def test_reports_html_file_is_checked_before_the_work_and_its_folder_made(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("")
    for html, said in ((tmp_path, "is a folder; with one recording it names the HTML file"),
                       (tmp_path / "file" / "r.html", f"{tmp_path / 'file'} is a file, not a "
                                                     "folder")):
        code, out, err = run_here(capsys, "report", str(DATA), "--html", str(html))
        assert (code, out) == (1, "")  # refused before the recording was read
        assert err.startswith(f"wsresearch report: error: --html {html}") and said in err
        assert err.count("\n") == 1
    made = tmp_path / "new" / "folder" / "r.html"
    code, _, err = run_here(capsys, "report", str(tmp_path / "typo"), "--html", str(made))
    assert code == 1 and "typo is not a recording: it does not exist" in err
    assert not (tmp_path / "new").exists()  # nothing made for a recording that is not there
    code, out, err = run_here(capsys, "report", str(DATA), "--html", str(made))
    assert code == 0 and made.read_text().startswith("<!doctype html>")


def test_report_of_several_recordings_in_parallel_prints_what_one_at_a_time_prints(
    tmp_path: Path,
) -> None:
    kraken = str(KRAKEN)
    serial = run("report", str(DATA), kraken, "--workers", "1")
    parallel = run("report", str(DATA), kraken, "--workers", "2", "--html", str(tmp_path / "h"))
    assert serial.returncode == 0, serial.stderr
    assert parallel.returncode == 0, parallel.stderr
    lines = [line for line in parallel.stdout.splitlines()
             if not line.startswith(("reporting on", "report written"))]
    assert lines == serial.stdout.splitlines()
    assert serial.stdout.index(f"feed quality: {DATA}") < serial.stdout.index(
        f"feed quality: {kraken}")
    written = sorted((tmp_path / "h").glob("*.html"))
    assert len(written) == 2
    assert all(path.read_text().startswith("<!doctype html>") for path in written)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_one_recording_that_cannot_be_read_stops_an_export_before_any_is_written(
    tmp_path: Path, workers: str,
) -> None:
    """One process or several alike: the bad one is named, and the dataset is not begun."""
    import shutil

    kraken = str(KRAKEN)
    newer = tmp_path / "newer"
    shutil.copytree(DATA, newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    (newer / "manifest.json").write_text(json.dumps({**manifest, "version": 99}))
    unnamed = tmp_path / "unnamed"
    Recording.from_frames(unnamed, ['{"type":"x"}'])
    unknown = tmp_path / "unknown"
    shutil.copytree(DATA, unknown)
    (unknown / "manifest.json").write_text(json.dumps(
        {**manifest, "spec_origin": {**manifest["spec_origin"], "adapter": "ftx"}}))
    for bad, says in ((newer, "uses recording format version 99"),
                      (unnamed, "does not name the adapter it was recorded with"),
                      (unknown, "was recorded with the adapter 'ftx', which this wsresearch")):
        for command in (["export", "--out", str(tmp_path / "ds"), "--report",
                         str(tmp_path / "reports")], ["report", "--html", str(tmp_path / "h")]):
            if command[0] == "report" and bad != newer:
                continue  # a report needs no adapter
            result = run(*command, str(DATA), str(bad), kraken, "--workers", workers)
            assert result.returncode == 1, result.stderr
            assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
            assert result.stdout == ""
            for written in ("ds", "reports", "h"):
                assert not (tmp_path / written).exists(), written


def test_a_recordings_warnings_are_told_once_by_a_serial_export(tmp_path: Path) -> None:
    """Its recordings are opened once: checked before any is replayed, then exported."""
    import shutil

    copy = tmp_path / "rec"
    shutil.copytree(DATA, copy)
    (next((copy / "segments").iterdir()) / "odd.parquet").mkdir()  # skipped, with a warning
    kraken = str(KRAKEN)
    for command in (["export", "--out", str(tmp_path / "ds")], ["report"]):
        result = run(*command, str(copy), kraken)
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("odd.parquet") == 1, result.stderr


def test_a_workers_warning_shows_as_a_line_of_the_command(tmp_path: Path) -> None:
    # A damaged segment is skipped with a warning in the worker that reads it: the
    # parent's stderr has it as one line of the command's, not a Python source location.
    import shutil

    from wsresearch.recording.format import SEGMENTS

    damaged = tmp_path / "damaged"
    shutil.copytree(DATA, damaged)
    victim = sorted((damaged / SEGMENTS).glob("*/*.parquet"))[3]
    victim.write_bytes(b"PAR1 not a segment")
    done = run("export", str(DATA), str(damaged), "--out", str(tmp_path / "ds"),
               "--workers", "2")
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "warning" in line]
    assert warned and all(line.startswith("wsresearch export: warning: skipping unreadable "
                                          f"segment {victim}") for line in warned), warned
    assert ".py:" not in done.stderr


def in_a_terminal(*args: str, cwd: Path, timeout: float = 120) -> str:
    """What ``wsresearch ARGS`` writes to a terminal: a pseudo-terminal, 120 columns."""
    main_end, child_end = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "wsresearch.cli", *args], cwd=cwd,
                               stdin=child_end, stdout=child_end, stderr=child_end,
                               env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
                               start_new_session=True)  # its workers die with it
    os.close(child_end)
    deadline, chunks = time.monotonic() + timeout * TIME_FACTOR, []
    try:
        while time.monotonic() < deadline:
            if not select.select([main_end], [], [], 1.0)[0]:
                continue
            try:
                data = os.read(main_end, 65536)
            except OSError:  # EIO: the command ended and closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        shown = b"".join(chunks).decode(errors="replace")
        assert process.wait(timeout=10 * TIME_FACTOR) == 0, shown
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        os.close(main_end)
    return shown


def test_parallel_export_and_report_show_each_recordings_progress_in_a_terminal(
    tmp_path: Path,
) -> None:
    spec = raw.spec("ws://127.0.0.1:1")
    for name, seed in (("a", 1), ("b", 2)):
        Recording.from_frames(tmp_path / name, list(generic_frames(30_000, seed=seed)),
                              spec=spec)
    shown = in_a_terminal("export", "a", "b", "--out", "ds", "--workers", "2", cwd=tmp_path)
    assert "exporting a" in shown and "exporting b" in shown, shown
    assert "a: message 30000 -> ds" in shown and "b: message 30000 -> ds" in shown
    shown = in_a_terminal("report", "a", "b", "--workers", "2", cwd=tmp_path)
    assert "analysing a" in shown and "analysing b" in shown, shown


def test_a_failed_job_beside_one_reporting_much_progress_ends_the_parallel_run(
    tmp_path: Path,
) -> None:
    # The bars' thread stopped before the pool shut down: the other job's reports filled
    # the queue's pipe, its worker could not exit, and the command hung for good.
    code = (f"import asyncio, sys\nsys.path.insert(0, {str(Path(__file__).parent.parent)!r})\n"
            "from rich.console import Console\n"
            "from tests import _stand_in_jobs as jobs\n"
            "from wsresearch.cli import _in_processes\n"
            "async def run():\n"
            "    jobs_ = [('fail',), ('report', 20_000)]\n"
            "    async for _ in _in_processes(2, jobs.run, jobs_, Console(), ['a', 'b'],\n"
            "                                 'export'):\n"
            "        pass\n"
            "try:\n    asyncio.run(run())\n"
            "except RuntimeError as exc:\n    print('failed:', exc)\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=30 * TIME_FACTOR)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError("the parallel run did not end after its job failed") from None
    assert process.returncode == 0 and "failed: this job fails" in out, out


LIBRARIES = ("polars", "pydantic", "websockets", "pyarrow", "numpy")
"""What the data commands need, and the command line itself does not."""


def libraries_after(*argv: str) -> list[str]:
    """The :data:`LIBRARIES` a fresh process had imported once ``main(argv)`` returned."""
    code = ("import json, sys\nfrom wsresearch.cli import main\n"
            f"try:\n    main({list(argv)!r})\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps(sorted(name for name in {LIBRARIES!r} if name in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_help_errors_and_a_parallel_export_leave_the_data_libraries_to_the_workers(
    tmp_path: Path,
) -> None:
    # The parser and main import none of them (0.1 s for --help, not 0.5 s); the parent of
    # a parallel export hands every recording to a process of its own without them, so
    # the workers' start-up runs beside nothing but their own.
    assert libraries_after("--help") == []
    assert libraries_after("export", "--help") == []
    assert libraries_after("export", str(DATA), "--out", "x", "--workers", "0") == []
    kraken = str(KRAKEN)
    out = tmp_path / "dataset"
    assert libraries_after("export", str(DATA), kraken, "--out", str(out), "--workers", "2") == []
    exported = {path.parent.parent.name for path in out.glob("channel=trade/*/*/*.parquet")}
    assert exported == {"exchange=generic", "exchange=kraken"}  # both recordings
    assert "polars" in libraries_after("export", str(DATA), "--out", str(tmp_path / "one"))


def test_export_with_an_adapter_of_several_apis_takes_every_channel_of_the_chosen_one(
    tmp_path: Path,
) -> None:
    coinbase = DATA.parent.parent / "recordings" / (
        "coinbase_cryptofeed_2021-04-17_exchange_level2_ticker_matches")
    exchange = run("export", str(coinbase), "--out", str(tmp_path / "ds"), "--exchange",
                   "coinbase", "--option", "api=exchange")
    assert exchange.returncode == 0, exchange.stderr
    assert "ticker 107, match 107, snapshot 10, l2update 9719" in exchange.stdout
    # The default API's spec is built too; its channels take none of the Exchange's frames.
    advanced = run("export", str(coinbase), "--out", str(tmp_path / "ds2"), "--exchange",
                   "coinbase")
    assert advanced.returncode == 1
    assert "is the coinbase spec the recording's" in advanced.stderr, advanced.stderr


def test_the_demo_says_when_it_ended_disconnected() -> None:
    # Rate-limited 0.3 s in: the backoff (1.5 s) outlasts the run, which ends disconnected.
    result = run("demo", "--seconds", "1.2", "--no-record", "--fault", "rate_limit@0.3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "with 1 scripted faults" in out
    assert ("feed survived every fault (ended disconnected (RECONNECTING) after rate limited "
            "(4429), RATE_LIMITED)") in out
    assert "healthy at the end" not in out
    assert "rate limited (4429), RATE_LIMITED: rate limited" in summary_value(out, "close at")


def test_demo_refuses_faults_with_no_faults(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_here(capsys, "demo", "--no-faults", "--fault", "disconnect@1")
    assert code == 2 and "not allowed with argument" in err


async def make_markup_recording(folder: Path) -> None:
    """A real session whose frames and close reason are rich markup."""

    async def handler(ws: ServerConnection) -> None:
        for kind in ("[/oops]", "[link=file:///etc/passwd]x[/link]", ":smile:"):
            await ws.send(f'{{"type":"{kind}"}}')
        await ws.close(1001, "[/bold] maintenance")

    async with loopback_server(handler) as (_, url):
        feed = Feed(raw.spec(url, connection=quick()), record_to=folder)
        async with feed:
            await eventually(lambda: feed.stats.last_close is not None, what="the close")


async def test_server_strings_and_paths_are_printed_literally(tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    await make_markup_recording(folder)
    replayed = await asyncio.to_thread(run, "replay", str(folder))
    assert replayed.returncode == 0, replayed.stderr
    for literal in ("[/oops]", "[link=file:///etc/passwd]x[/link]", ":smile:",
                    repr(Recording.open(folder))):
        assert literal in replayed.stdout, literal
    (tmp_path / "h[").mkdir()
    html = tmp_path / "h[" / "y]report.html"
    reported = await asyncio.to_thread(run, "report", str(folder), "--html", str(html))
    assert reported.returncode == 0, reported.stderr
    for literal in ("[/bold] maintenance", f"report written to {html}"):
        assert literal in reported.stdout, literal
    assert html.exists()
    # A recording's path that is markup: shown as it is.
    (tmp_path / "a[").mkdir()
    (tmp_path / "a[" / "x]rec").symlink_to(folder)
    odd = tmp_path / "a[" / "x]rec"
    for command in ("replay", "report"):
        result = await asyncio.to_thread(run, command, str(odd))
        assert "MarkupError" not in result.stderr and "Traceback" not in result.stderr
        assert str(odd) in result.stdout + result.stderr


@pytest.mark.parametrize("command", [["replay", str(DATA)], ["report", str(DATA)]],
                         ids=["replay", "report"])
def test_output_does_not_depend_on_the_terminal_width(command: list[str]) -> None:
    narrow = run(*command, env={"COLUMNS": "20"})
    wide = run(*command, env={"COLUMNS": "300"})
    assert narrow.returncode == 0, narrow.stderr
    assert narrow.stdout == wide.stdout
    lines = [line.strip() for line in narrow.stdout.splitlines()]
    if command[0] == "replay":
        assert repr(Recording.open(DATA)) in lines
        assert any(line.startswith("2220 messages over 6 connection(s);")
                   and line.endswith("0 exchange error(s)") for line in lines)
        assert f"replay of {DATA}" in lines
    else:
        assert f"feed quality: {DATA}" in lines
        assert any("abnormal closure (1006), NORMAL; going away (1001), NORMAL" in line
                   for line in lines)
        assert any(re.search(r"\b4429\b.*RATE_LIMITED.*rate limited", line) for line in lines)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_export_of_a_recording_none_of_whose_events_can_be_read_fails(
        tmp_path: Path, workers: str) -> None:
    # Every segment truncated: the manifest counts its events, the files give none. It
    # used to export "no rows" and exit 0 beside a warning; its repr said "empty".
    import shutil

    from wsresearch.recording.format import SEGMENTS

    damaged = tmp_path / "damaged"
    shutil.copytree(DATA, damaged)
    for segment in (damaged / SEGMENTS).glob("*/*.parquet"):
        segment.write_bytes(segment.read_bytes()[:100])
    promised = Recording.open(damaged).manifest.events
    assert promised
    assert repr(Recording.open(damaged)) == (f"Recording({str(damaged)!r}, none of its "
                                             f"{promised} events readable)")
    others = [str(DATA)] if workers == "2" else []
    done = run("export", *others, str(damaged), "--out", str(tmp_path / "ds"),
               "--workers", workers)
    assert done.returncode == 1, done.stderr
    assert (f"wsresearch export: error: {damaged}: none of its {promised} events can be "
            "read") in done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_export_that_keeps_no_row_of_a_recording_fails_and_writes_nothing_of_it(
        tmp_path: Path, workers: str) -> None:
    # The Kraken recording through a Binance spec: every message rejected. It used to be
    # written (its connections, no rows) with a warning and exit 0: a batch saw success.
    from wsresearch.export import recording_id

    binance = DATA.parent.parent / "recordings" / "binance_hftbacktest_2024-08-08_spot_btcusdt"
    out = tmp_path / "ds"
    done = run("export", str(binance), str(KRAKEN), "--exchange", "binance", "--out", str(out),
               "--workers", workers)
    assert done.returncode == 1, done.stderr
    assert done.stderr.endswith(
        f"wsresearch export: error: {KRAKEN}: all 49 messages were rejected (unknown_type 49) "
        "and no row was kept: is the binance spec the recording's (it was recorded with the "
        "kraken adapter's)? Nothing of it was written.\n"), done.stderr
    written = {path.stem for path in out.rglob("*.parquet")}
    assert recording_id(Recording.open(binance)) in written  # exported before, or beside it
    assert recording_id(Recording.open(KRAKEN)) not in written


def test_a_split_export_that_keeps_no_row_fails_and_writes_nothing(tmp_path: Path) -> None:
    # One DIR of six connections, --workers 2: split into parts, each in a process; the
    # parent tells of the whole once the parts are done, before anything is written.
    out = tmp_path / "ds"
    done = run("-v", "export", str(DATA), "--exchange", "okx", "--channels", "trades",
               "--workers", "2", "--out", str(out))
    assert done.returncode == 1, done.stderr
    assert "exported by one process" not in done.stderr  # it was split
    assert done.stderr.endswith("is the okx spec the recording's (it was recorded with the "
                                "generic adapter's)? Nothing of it was written.\n"), done.stderr
    assert not [path for path in out.rglob("*") if path.is_file()]  # nor any staging left
