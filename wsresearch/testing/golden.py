"""Golden-file tests for parsers and strategies: replay a recording, compare with snapshots.

:func:`assert_replay_matches` replays a recording through a spec and compares
every channel's frame, the health transitions and the counters with Parquet and
JSON snapshots. Missing snapshots are written (the first run records the
truth); ``--update-snapshots`` on the pytest command line, or
``WSR_UPDATE_SNAPSHOTS=1`` in the environment, rewrites them after an intended
change. Otherwise a mismatch fails with what differs: which channel, which
rows, which columns, expected against got.

The pytest plugin (installed with the package) adds the option and a
``replay_snapshot`` fixture whose snapshots live in
``<test file folder>/snapshots/<test name>/``::

    def test_my_parser(replay_snapshot):
        replay_snapshot("data/sessions/sim-faults", my_spec)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import polars as pl

from ..recording import Recording
from ..replay import ReplayResult, replay
from ..spec import FeedSpec

__all__ = ["UPDATE_ENV", "assert_replay_matches", "frame_differences"]

UPDATE_ENV = "WSR_UPDATE_SNAPSHOTS"
"""Set to ``1`` to rewrite snapshots instead of comparing."""

_SUMMARY = "replay.json"
_MAX_SHOWN = 5


def assert_replay_matches(
    recording: Recording | str | os.PathLike[str],
    spec: FeedSpec,
    snapshot_dir: str | os.PathLike[str],
    *,
    mode: Literal["complete", "faithful"] = "complete",
    update: bool | None = None,
) -> ReplayResult:
    """Replay ``recording`` through ``spec`` and compare with the snapshots in ``snapshot_dir``.

    Parameters
    ----------
    recording
        The recording (or its directory).
    spec
        The spec under test.
    snapshot_dir
        Where ``<channel>.parquet`` and ``replay.json`` (transitions and counters) live.
    mode
        Replay mode.
    update
        Rewrite the snapshots; default: whether ``WSR_UPDATE_SNAPSHOTS`` is ``1``.

    Returns
    -------
    ReplayResult
        The replay, for further assertions.

    Raises
    ------
    AssertionError
        Saying which channel, rows and columns differ, or what else changed.
    """
    result = replay(recording, spec, mode)
    folder = Path(snapshot_dir)
    if update is None:
        update = os.environ.get(UPDATE_ENV, "") not in ("", "0")
    summary = {
        "health_transitions": [list(t) for t in result.health_transitions],
        "stats": result.stats,
    }
    if update or not (folder / _SUMMARY).exists():
        folder.mkdir(parents=True, exist_ok=True)
        for channel, frame in result.frames.items():
            frame.write_parquet(folder / f"{channel}.parquet")
        (folder / _SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        return result

    problems = []
    for channel, frame in result.frames.items():
        path = folder / f"{channel}.parquet"
        if not path.exists():
            problems.append(f"channel {channel!r}: no snapshot at {path}")
            continue
        problems += [f"channel {channel!r}: {p}" for p in frame_differences(
            pl.read_parquet(path, glob=False), frame)]
    expected = json.loads((folder / _SUMMARY).read_text(encoding="utf-8"))
    for key in ("stats", "health_transitions"):
        if expected.get(key) != json.loads(json.dumps(summary[key])):
            problems.append(f"{key} differ: expected {expected.get(key)}, got {summary[key]}")
    if problems:
        raise AssertionError(
            f"replay of {recording} does not match the snapshots in {folder} "
            f"(set {UPDATE_ENV}=1 or pass --update-snapshots to accept):\n  "
            + "\n  ".join(problems)
        )
    return result


def frame_differences(expected: pl.DataFrame, got: pl.DataFrame) -> list[str]:
    """Describe how ``got`` differs from ``expected``: columns, row count, then cells.

    Returns an empty list when they are equal.
    """
    problems = []
    if expected.schema != got.schema:
        missing = [c for c in expected.columns if c not in got.columns]
        extra = [c for c in got.columns if c not in expected.columns]
        retyped = [
            f"{c} {expected.schema[c]} -> {got.schema[c]}"
            for c in expected.columns if c in got.columns and expected.schema[c] != got.schema[c]
        ]
        for label, items in (("missing columns", missing), ("new columns", extra),
                             ("changed types", retyped)):
            if items:
                problems.append(f"{label}: {', '.join(items)}")
        if problems:
            return problems
    if expected.height != got.height:
        return [f"{got.height} rows, expected {expected.height}"]
    for column in expected.columns:
        differs = expected[column].ne_missing(got[column])
        rows = differs.arg_true().to_list()
        if not rows:
            continue
        shown = ", ".join(
            f"row {r}: expected {_show(expected[column][r])}, got {_show(got[column][r])}"
            for r in rows[:_MAX_SHOWN]
        )
        more = f" (and {len(rows) - _MAX_SHOWN} more)" if len(rows) > _MAX_SHOWN else ""
        problems.append(f"column {column!r} differs in {len(rows)} row(s): {shown}{more}")
    return problems


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
