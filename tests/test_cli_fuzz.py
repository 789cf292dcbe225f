"""Fuzz the command line: whatever the arguments, it ends as documented.

The documented outcomes (``wsresearch.cli``): exit status 0, or 2 for bad
arguments, or 1 for anything else, with the error in one line on stderr and
never a traceback.

Arguments are drawn from each command's own options with values that are odd
more often than not: empty, huge, negative, not numbers, not JSON, NUL bytes,
unknown names. So that every example is bounded, loopback-only and writes
nowhere but a temporary directory, each argument list ends with a few settings
that argparse lets override the drawn ones (the last of an option wins): a short
``--seconds``, and for ``record`` a loopback ``--url``. Paths are drawn from a
fixed set of relative names, run from a fresh temporary working directory that
holds a copy of the shipped session as ``session``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from wsresearch.cli import main

from .conftest import SESSION, sized

CLOSED_PORT_URL = "ws://127.0.0.1:9"  # the discard port: nothing listens there

odd_text = st.one_of(
    st.sampled_from(["", " ", "0", "-1", "1e309", "nan", "inf", "-inf", "0x10", "\x00", "é",
                     "{}", "[", "null", "true", '{"op":"subscribe"}', "a=b", "=", "a=",
                     "key=1", "api=spot", "channels=[1]", "symbols=5", "api=\x00"]),
    st.text(max_size=12).filter(lambda t: not t.startswith(("-", "/")) and ".." not in t),
)
number = st.one_of(
    st.sampled_from(["0.01", "0.2", "1", "7", "2.5"]),
    st.sampled_from(["0", "0.01", "1", "-5", "3e2", "nan", "inf", "", "x", "1e309", "65536",
                     "-1", "80", "99999999999999999999"]),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
port = st.one_of(st.integers(-70_000, 140_000).map(str), number)
path = st.sampled_from(["session", "session", "rec", "out", "a/b", "", ".", "missing",
                        "data.parquet", "x\x00y", "report.html"])
fault = st.one_of(
    st.sampled_from(["disconnect@0", "silence@0.01:stream=ticker,duration=1", "nope@1",
                     "burst@x", "burst@1:count=-3", "duplicate@1:count", "@", ":", "malformed@1e9",
                     "rate_limit@0:code=99999", "silence@0:stream=\x00"]),
    odd_text,
)
target = st.one_of(
    st.sampled_from(["binance:btcusdt", "okx:BTC-USDT", "kraken:", "coinbase:BTC-USD,ETH-USD",
                     "bybit:BTCUSDT", "nasdaq:AAPL", ":", "binance", f"{CLOSED_PORT_URL}/ws",
                     "ws://127.0.0.1:bad", "ws://127.0.0.1:9/\x00", "wss://127.0.0.1:9"]),
    odd_text.filter(lambda t: not t.lower().startswith("ws")),
)

COMMON = {"--type-field": odd_text}
OPTIONS: dict[str, dict[str, st.SearchStrategy[str] | None]] = {
    "demo": {"--seconds": number, "--seed": number, "--no-faults": None,
             "--exchange": st.sampled_from(["binance", "okx", "kraken", "nope", ""]),
             "--record": path, "--no-record": None, "--fault": fault},
    "simulate": {"--port": port, "--profile": st.sampled_from(["generic", "okx", "x"]),
                 "--seed": number, "--fault": fault},
    "record": {"--out": path, "--channels": odd_text, "--option": odd_text,
               "--subscribe": odd_text, "--seconds": number, **COMMON},
    "replay": {"--serve": None, "--port": port, "--speed": number, **COMMON},
    "report": {"--html": path},
    "export": {"--out": path, "--exchange": st.sampled_from(["binance", "okx", "nope"]),
               "--channels": odd_text, "--option": odd_text, "--report": path},
}
POSITIONAL = {"record": target, "replay": path, "report": path, "export": path}
STRAY = st.one_of(
    st.sampled_from(["--", "-", "--nope", "-x", "--seconds=", "-h", "--version", "-vv",
                     "--verbose=1", "a\nb", "\x1c", "\u2028", "\x1b[31mred"]),
    st.text(max_size=6).filter(lambda t: not t.startswith(("-", "/")) and ".." not in t),
)


@st.composite
def argv(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(sorted(OPTIONS)))
    positionals = []
    if command in POSITIONAL:
        count = draw(st.sampled_from([1, 1, 1, 1, 0, 2]))  # mostly right, sometimes not
        positionals = [draw(POSITIONAL[command]) for _ in range(count)]
    args = [command, *positionals]
    options = OPTIONS[command]
    names = draw(st.lists(st.sampled_from(sorted(options)), max_size=4))
    if command in ("record", "export") and draw(st.integers(0, 5)):
        names.insert(0, "--out")  # required: leave it out only now and then
    for name in names:
        args.append(name)
        value = options[name]
        if value is not None:
            args.append(draw(value))
    if draw(st.integers(0, 4)) == 0:
        args.insert(draw(st.integers(0, len(args))), draw(STRAY))
    # Bounds that override whatever was drawn: short, loopback, quick to refuse.
    if command in ("demo", "simulate", "record", "replay"):
        args += ["--seconds", "0.05"]
    if command == "record" and not (len(positionals) == 1
                                    and positionals[0].startswith(("ws:", "wss:"))):
        args += ["--url", CLOSED_PORT_URL]  # an exchange's adapter must not reach out
    return args


@settings(max_examples=sized(60, 400), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(args=argv())
def test_any_arguments_end_in_a_documented_exit(
    args: list[str], tmp_path: Path, capfd: pytest.CaptureFixture[str],
) -> None:
    here = os.getcwd()
    work = Path(tempfile.mkdtemp(dir=tmp_path))  # a clean directory for each example
    shutil.copytree(SESSION, work / "session")  # a copy: export and report may write there
    os.chdir(work)
    try:
        status = main(args)
    except SystemExit as exc:  # argparse: 2 for bad arguments, 0 for --help/--version
        status = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(here)
    _, err = capfd.readouterr()
    event(f"{args[0]} exit {status}")
    assert status in (0, 1, 2), (args, status, err)
    assert "Traceback" not in err, (args, err)
    if status:
        lines = err.strip().splitlines()  # any line break, \x1c and \u2028 included
        assert len(lines) == 1, (args, err)
        assert lines[0].isprintable(), (args, err)  # control characters come escaped
        assert lines[0].startswith("wsresearch"), (args, err)
