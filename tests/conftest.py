"""Shared test helpers: scaled waits on conditions, loopback servers, task-leak checks,
simulator trades recorded."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from wsresearch import BackoffConfig, ConnectionConfig, HeartbeatConfig, ReconnectConfig, cli

pytest_plugins = ["pytester"]

# One factor scales every real-time wait in the suite (slow CI machines set it > 1).
TIME_FACTOR = float(os.environ.get("WSR_TEST_TIME_FACTOR", "1"))

THOROUGH = os.environ.get("WSR_THOROUGH", "") == "1"
"""Set by ``make test-thorough``: the fuzz and soak tests run at their full size."""


def sized(default: int, thorough: int) -> int:
    """A fuzz or soak test's size: ``default`` in ``make test``, else ``thorough``.

    ``thorough`` is for ``make test-thorough`` (``WSR_THOROUGH=1``).
    """
    return thorough if THOROUGH else default


async def eventually(
    condition: Callable[[], bool], within: float = 5.0, what: str = "condition"
) -> None:
    """Wait until ``condition()`` is true, failing after ``within`` (scaled) seconds.

    This waits on a state, never for a guessed duration: it returns as soon as
    the condition holds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within * TIME_FACTOR
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within * TIME_FACTOR:g} s waiting for {what}")
        await asyncio.sleep(0.005)  # poll: the conditions are plain attributes


@asynccontextmanager
async def loopback_server(
    handler: Callable[[ServerConnection], Awaitable[None]], **kwargs: object
) -> AsyncIterator[tuple[Server, str]]:
    """A real websockets server on 127.0.0.1, port 0, stopped on exit."""
    async with serve(
        handler, "127.0.0.1", 0, ping_interval=None, close_timeout=1, **kwargs
    ) as server:
        port = server.sockets[0].getsockname()[1]
        yield server, f"ws://127.0.0.1:{port}"


SESSION = Path(__file__).resolve().parent.parent / "data" / "sessions" / "sim-faults"
"""The shipped simulator session with faults (data/sessions/sim-faults)."""

RATES = {"trade": 200.0, "ticker": 100.0, "order": 0.1}
"""Simulator rates for tests: enough traffic to see things happen within a fraction of a second."""

FAST = BackoffConfig(initial_delay=0.01, max_delay=0.05, jitter=0.0)
"""A reconnect schedule fast enough for tests on real sockets."""


def quick(heartbeat: HeartbeatConfig | None = None) -> ConnectionConfig:
    """Connection settings for tests: fast retries, a quick heartbeat, a short wait for a close.

    A peer that never answers a close frame (a half-open link) costs ``close_timeout``.
    """
    return ConnectionConfig(
        reconnect=ReconnectConfig(backoff=FAST, rate_limit_backoff=FAST),
        heartbeat=heartbeat or HeartbeatConfig(interval=0.1, timeout=0.5),
        close_timeout=TIME_FACTOR,
    )


def other_tasks() -> set[asyncio.Task[object]]:
    """Tasks on the running loop other than the current one."""
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current and not t.done()}


@pytest.fixture
def time_factor() -> float:
    return TIME_FACTOR


def built_once(factory: pytest.TempPathFactory, name: str,
               build: Callable[[Path], object]) -> Path:
    """``build(path)`` run once a test run, whichever of the suite's workers asks first.

    For the large recordings several tests read and none change: each of the
    pytest-xdist workers that runs one of them would otherwise write it again (seconds of
    CPU each). The workers of a run share the folder above their own temporary folders;
    the first to ask builds there under a lock, the others wait on the lock and take it.
    Run without workers, it is built in the run's own temporary folder.
    """
    import fcntl  # POSIX, as the workers' shared folder is; here, not at the top

    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        path = factory.mktemp(name) / name
        build(path)
        return path
    root = factory.getbasetemp().parent  # this run's, shared by its workers
    path, done = root / name, root / f"{name}.built"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)  # a build that failed part way
            build(path)
            done.touch()
    return path


def trade_recording(path: Path, frames: int, seed: int) -> Path:
    """``frames`` simulator trades recorded at ``path``, 1 ms apart, one connection."""
    from wsresearch import Recording
    from wsresearch.exchanges import generic
    from wsresearch.testing import generic_frames

    start_ns = 1_700_000_000_000_000_000
    Recording.from_frames(path, ((start_ns + i * 1_000_000, frame) for i, frame in
                                 enumerate(generic_frames(frames, seed=seed))),
                          spec=generic.spec(url="ws://127.0.0.1:1"))
    return path


def as_connections(source: Path, path: Path, connections: int, stretch: int) -> Path:
    """The recording at ``source`` played ``connections`` times over, one connection each,
    its times stretched ``stretch`` times (so that a copy of a message comes after the
    de-dup TTL of the last, not as a duplicate), written at ``path``."""
    from wsresearch import Recording
    from wsresearch.recording.writer import Captured, write_events

    recording = Recording.open(source)
    spec = recording.spec
    assert spec is not None
    rows = recording.frames().select("recv_wall_ns", "data").rows()
    first = rows[0][0]
    frames = [(first + (wall - first) * stretch, data) for wall, data in rows]
    span = frames[-1][0] - frames[0][0] + 1_000_000_000
    events = []
    for k in range(connections):
        events.append(Captured("open", frames[0][0] + k * span, spec.url))
        events += [Captured("frame", wall + k * span, data) for wall, data in frames]
    write_events(path, events, source_url=spec.url, origin=spec.origin)
    return path


def run_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """A command run in this process: ``(exit status, stdout, stderr)``.

    For the checks of arguments and the errors that need no interpreter of their own (each
    costs about half a second of CPU to start); the tests where the process is the point
    start one.
    """
    capsys.readouterr()  # what came before is not the command's
    try:
        code = cli.main(list(args))
    except SystemExit as exc:  # argparse refuses a bad argument by exiting
        code = int(exc.code or 0)
    said = capsys.readouterr()
    return code, said.out, said.err
