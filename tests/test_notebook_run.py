"""wsresearch.notebook.run: scripts (no loop), and refusal inside a coroutine.

The running-kernel case (nest-asyncio2) is exercised by executing the example
notebooks on a real kernel (tests/test_notebooks.py), not here: it patches
asyncio for the whole process.
"""

import asyncio
import subprocess
import sys
import textwrap
import warnings

import pytest

from wsresearch.notebook import run


def test_a_script_keeps_one_loop_across_calls_and_collects_frames() -> None:
    script = textwrap.dedent("""
        from wsresearch import Feed, Simulator
        from wsresearch.notebook import run

        sim = Simulator(rates={"trade": 200.0, "ticker": 50.0, "order": 0.1})
        run(sim.start())                      # the server keeps its loop for the next call
        feed = Feed(sim.spec())
        frames = feed.collect(0.5)            # start, run 0.5 s, stop: synchronous
        assert frames["trade"].height > 0, frames
        assert not feed.running
        run(sim.stop())
        import sys
        print("ok", frames["trade"].height, "nest_asyncio2" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
    assert done.stdout.split()[-1] == "False"  # no loop was running: asyncio left unpatched


async def test_run_inside_a_coroutine_points_to_await() -> None:
    async def work() -> int:
        return 1

    coroutine = work()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the refused coroutine is closed, not leaked
        with pytest.raises(RuntimeError, match="Use `await` there instead"):
            run(coroutine)
    assert coroutine.cr_frame is None  # closed


async def test_feed_collect_inside_a_coroutine_points_to_run_for() -> None:
    from wsresearch import Feed
    from wsresearch.exchanges import generic

    feed = Feed(generic.spec(url="ws://127.0.0.1:1"))
    with pytest.raises(RuntimeError, match=r"await feed.run_for\(5\)"):
        feed.collect(1)
    assert not feed.running


def test_run_refuses_what_cannot_be_awaited() -> None:
    with pytest.raises(TypeError, match="coroutine or awaitable"):
        run(42)  # type: ignore[arg-type]


class Later:
    """An awaitable that is not a coroutine."""

    def __await__(self):  # type: ignore[no-untyped-def]
        return asyncio.sleep(0, result="done").__await__()


def test_run_accepts_any_awaitable() -> None:
    assert run(Later()) == "done"
