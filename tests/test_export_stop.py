"""An export stopped on the way (its progress callback raised) leaves the dataset as it was.

A stop in the replay, or while the final files are written: the earlier export of the
recording is still whole, no file of the stopped one is in the dataset, and its staging
folder is gone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsresearch import export_parquet
from wsresearch.export import export_with_report

from .conftest import built_once, trade_recording

DATA = Path(__file__).parent.parent / "data" / "recordings"
SPOT = DATA / "binance_hftbacktest_2024-08-08_spot_btcusdt"


class Stop(Exception):
    pass


def snapshot(root: Path) -> dict[Path, bytes]:
    """Every file under ``root`` (hidden ones too) and its bytes."""
    return {path.relative_to(root): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file()}


def calls(export: object, recording: Path, root: Path) -> list[tuple[int, int]]:
    """The progress calls of a whole export of ``recording`` into ``root``."""
    seen: list[tuple[int, int]] = []
    run(export, recording, root, lambda done, total: seen.append((done, total)))
    return seen


def run(export: object, recording: Path, root: Path, progress: object) -> None:
    assert export in (export_parquet, export_with_report)
    export(recording, None, root, normalized=True, chunk_events=1_000,  # type: ignore[operator]
           progress=progress)


@pytest.fixture(scope="module")
def trades(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40,000 trades: a replay's progress is told every 10,000 events."""
    return built_once(tmp_path_factory, "stop-40000-trades",
                      lambda path: trade_recording(path, 40_000, seed=3))


@pytest.mark.parametrize("export", [export_parquet, export_with_report])
@pytest.mark.parametrize("where", ["replay", "files"])
def test_a_stopped_export_leaves_the_dataset_as_it_was(
        tmp_path: Path, export: object, where: str, trades: Path) -> None:
    recording = trades if where == "replay" else SPOT
    seen = calls(export, recording, tmp_path / "scratch")
    total = seen[-1][1]
    ends = [i for i, (done, _) in enumerate(seen) if done == total]
    if where == "replay":  # in the middle of the replay
        stop_at = 1
        assert seen[stop_at][0] < total, seen
    else:  # a call after each final file, after the replay's own last one: before the last
        assert len(ends) >= 6, seen
        stop_at = ends[-2]

    root = tmp_path / "ds"
    export_parquet(recording, None, root)  # an earlier export: channels only
    before = snapshot(root)
    count = 0

    def progress(done: int, total: int) -> None:
        nonlocal count
        if count == stop_at:
            raise Stop
        count += 1

    with pytest.raises(Stop):
        run(export, recording, root, progress)
    assert snapshot(root) == before
    assert not list(root.glob(".export-*"))


def test_an_export_that_fails_while_placing_its_files_loses_no_earlier_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wsresearch import _staging

    root = tmp_path / "ds"
    export_parquet(SPOT, None, root)  # an earlier export: channels only
    before = snapshot(root)
    renames = []
    real = _staging.os.replace

    def failing(source: object, target: object) -> None:
        into = Path(str(target))  # a file's rename into the dataset (not the staging)
        if into.is_relative_to(root) and not into.relative_to(root).parts[0].startswith("."):
            renames.append(into)
            if len(renames) == 2:
                raise OSError(28, "No space left on device")
        real(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(_staging.os, "replace", failing)
    with pytest.raises(OSError, match="No space"):
        export_parquet(SPOT, None, root, normalized=True)
    after = snapshot(root)
    # Every earlier file is still there (the one renamed over holds the same rows), and
    # nothing written for the stopped export is left: no temporary file, no staging.
    assert set(before) <= set(after)
    changed = {path for path, data in after.items() if before.get(path) != data}
    assert changed <= {Path(renames[0]).relative_to(root)}  # placed before the failure
    assert not list(root.rglob("*.tmp")) and not list(root.glob(".export-*"))


@pytest.fixture
def other_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on another filesystem than ``tmp_path`` (the machine's shared memory)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK) or (
            shm.stat().st_dev == tmp_path.stat().st_dev):
        pytest.skip("no writable filesystem other than the temporary folder's (/dev/shm)")
    folder = Path(tempfile.mkdtemp(dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def test_a_partition_folder_on_another_filesystem_is_written_in_place(
        tmp_path: Path, other_disk: Path) -> None:
    # A partition folder linked to another disk: each file is written in its own folder
    # and renamed there, never moved across (a rename between filesystems fails).
    root = tmp_path / "ds"
    export_parquet(SPOT, None, root)
    elsewhere = other_disk / "depth"
    shutil.move(root / "channel=depth", elsewhere)
    (root / "channel=depth").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(root)
    export_parquet(SPOT, None, root, normalized=True)
    assert set(before) < set(snapshot(root))
    assert len(list(elsewhere.rglob("*.parquet"))) == 1
    assert not list(elsewhere.rglob("*.tmp"))
