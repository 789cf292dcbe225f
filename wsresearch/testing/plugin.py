"""The pytest plugin installed with wsresearch: ``--update-snapshots`` and ``replay_snapshot``.

Registered through the ``pytest11`` entry point, so a project that installs
wsresearch gets the option and the fixture without a ``conftest.py`` line. The
comparison itself is :func:`~wsresearch.testing.golden.assert_replay_matches`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .golden import UPDATE_ENV, assert_replay_matches

__all__ = ["pytest_addoption", "replay_snapshot"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--update-snapshots``."""
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        default=False,
        help=f"rewrite wsresearch replay snapshots instead of comparing (or set {UPDATE_ENV}=1)",
    )


@pytest.fixture
def replay_snapshot(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``replay_snapshot(recording, spec, name=None, mode="complete")``: a golden replay test.

    Snapshots live in ``snapshots/<test name>[/<name>]`` beside the test file.
    """
    update = bool(request.config.getoption("--update-snapshots")) or (
        os.environ.get(UPDATE_ENV, "") not in ("", "0")
    )
    base = Path(str(request.node.path)).parent / "snapshots" / request.node.name

    def check(recording: Any, spec: Any, name: str | None = None, **options: Any) -> Any:
        folder = base if name is None else base / name
        return assert_replay_matches(recording, spec, folder, update=update, **options)

    return check
