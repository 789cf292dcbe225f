"""polars' allocator runs with one arena in the processes wsresearch starts, and only there.

Checked on the allocator itself: jemalloc prints its settings at exit when asked
(``stats_print:true``), so each test reads the number of arenas a real process ran with.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wsresearch._allocator import CONF

SESSION = Path(__file__).parent.parent / "data" / "sessions" / "sim-faults"


def arenas(code: list[str], conf: str) -> list[int]:
    """The arenas of every process that ``code`` (a command) ran, as jemalloc reports them."""
    env = {**os.environ, CONF: conf}
    done = subprocess.run(code, env=env, capture_output=True, text=True, timeout=120,
                          check=True)
    return [int(n) for n in re.findall(r"opt\.narenas: (\d+)", done.stderr)]


def _jemalloc() -> bool:
    return bool(arenas([sys.executable, "-c", "import polars"], "stats_print:true"))


pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _jemalloc(),
    reason="polars' allocator is jemalloc on Linux only")


def test_the_command_line_runs_polars_with_one_arena_unless_told_otherwise() -> None:
    command = [sys.executable, "-m", "wsresearch.cli", "replay", str(SESSION)]
    assert arenas(command, "stats_print:true") == [1]
    assert arenas(command, "stats_print:true,narenas:3") == [3]  # the user's own setting
    # A process of the user's own is left as it is.
    assert arenas([sys.executable, "-c", "import wsresearch, polars"],
                  "stats_print:true") != [1]


def test_a_pools_workers_run_polars_with_one_arena_whatever_their_parent_runs() -> None:
    # The parent imported polars first (a notebook's kernel), so it keeps its arenas.
    script = textwrap.dedent("""
        import polars as pl
        from wsresearch._catalog import process_pool

        if __name__ == "__main__":
            with process_pool(1, print, ("started",)) as pool:
                assert pool.submit(pl.DataFrame, {"a": [1]}).result().height == 1
        """)
    found = arenas([sys.executable, "-c", script], "stats_print:true")
    assert len(found) == 2 and min(found) == 1 and max(found) > 1, found  # worker, parent
