"""The shipped simulator session, replayed against committed snapshots (the plugin on our own data).

After an intended change to the generic dialect's models or the pipeline:
``pytest tests/test_golden.py --update-snapshots``.
"""

from collections.abc import Callable
from typing import Any

from wsresearch.exchanges import generic

from .conftest import SESSION


def test_the_shipped_session_replays_as_recorded(replay_snapshot: Callable[..., Any]) -> None:
    result = replay_snapshot(SESSION, generic.spec(url="ws://127.0.0.1:1"))
    assert result.stats["generations"] == 6
    assert result.stats["duplicates"] > 0
    assert result.stats["invalid"] > 0
    assert result.frames["trade"].height > 2000
