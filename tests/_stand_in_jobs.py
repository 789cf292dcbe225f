"""A job for tests of the command line's process pool, importable by its spawned workers."""

from __future__ import annotations

from collections.abc import Callable


def run(kind: str, reports: int = 0, *, progress: Callable[[int, int], None]) -> int:
    """Fail (``kind="fail"``), or send ``reports`` progress reports and return their count."""
    if kind == "fail":
        raise RuntimeError("this job fails")
    for done in range(reports):
        progress(done, reports)
    return reports
