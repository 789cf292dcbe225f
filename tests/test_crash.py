"""Recordings survive SIGKILL at random points: readable, every flushed event kept, incomplete."""

import asyncio
import random
import signal
import sys
import warnings
from pathlib import Path

import polars as pl

from wsresearch import Recording, quality_report

from .conftest import sized

# A recording feed in a process of its own, printing each flushed seq as it is written, from
# the first that holds a message (a slow start flushes the opening and the subscription alone).
CHILD = """
import asyncio, sys
from wsresearch import Feed, Simulator

async def main(folder):
    async with Simulator(seed=1, rates={"trade": 500.0, "ticker": 100.0}) as sim:
        feed = Feed(sim.spec(), record_to=folder, flush_interval=0.02)
        await feed.start()
        shown, first = -1, None
        while True:
            if first is None and feed.stats.ok:  # a message is recorded, at this seq or before
                first = feed.recorder.events - 1
            flushed = feed.recorder.flushed_seq
            if first is not None and flushed >= first and flushed != shown:
                print(flushed, flush=True)
                shown = flushed
            await asyncio.sleep(0.005)

asyncio.run(main(sys.argv[1]))
"""

KILLS = sized(8, 20)


async def record_and_kill(folder: Path, rng: random.Random) -> int:
    """Run the child until it has flushed a few times, SIGKILL it; the last seq it saw flushed."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(folder),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert child.stdout is not None
    flushes, last = rng.randint(1, 6), -1
    try:
        while flushes:
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line, "the recording child ended by itself"
            if int(line) >= 0:
                last = int(line)
                flushes -= 1
        # Somewhere in the next flush cycle: mid-buffering, mid-write or mid-rename.
        await asyncio.sleep(rng.uniform(0, 0.03))
        # Flushes the child reported before the kill count too.
        while True:
            try:
                line = await asyncio.wait_for(child.stdout.readline(), 0.001)
            except TimeoutError:
                break
            if line:
                last = max(last, int(line))
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    return last


async def test_sigkill_at_random_points_loses_no_flushed_event(tmp_path: Path) -> None:
    rng = random.Random(20261127)
    folders = [tmp_path / f"kill-{n:02d}" for n in range(KILLS)]
    flushed: list[int] = []
    for pair in range(0, KILLS, 2):  # two at a time: one per core
        flushed += await asyncio.gather(*(record_and_kill(f, random.Random(rng.random()))
                                          for f in folders[pair:pair + 2]))
    for folder, last in zip(folders, flushed, strict=True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            recording = Recording.open(folder)  # never raises on a killed recording
            events = recording.events()
        # The only complaint: a segment killed mid-write, skipped (its events were never
        # flushed: the rename is what makes a write count).
        assert all("an unfinished write" in str(w.message) for w in caught), folder
        assert not recording.manifest.complete
        seqs = events["seq"]
        # Every event the recorder had flushed is there, and nothing is missing before it.
        assert seqs.max() >= last > 0, (folder, last)
        assert seqs.to_list() == list(range(seqs.len())), folder
        assert events.filter(pl.col("kind") == "frame").height > 0
        assert quality_report(recording).recording.startswith(
            "incomplete: the session did not stop cleanly")
        leftovers = [p for p in folder.rglob("*") if p.suffix == ".tmp"]
        # A segment's temporary file, <segment>.parquet.<random>.tmp: ignored by readers.
        assert all(".parquet." in p.name for p in leftovers), leftovers
