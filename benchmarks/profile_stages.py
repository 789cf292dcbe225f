"""Where the pipeline's time goes per message, stage by stage, without the network.

Each stage runs over the same ``--messages`` generic trade frames, alone, best of
``--rounds``; the stages add up to the Feed's per-message work after the socket:

- ``from_json`` alone, and the parser's full ``parse`` (decode, route, validate, de-dup);
- ``FrameStore.extend`` and the polars build of the rows;
- the channel's exchange-time extractor and the sequence check;
- ``HealthMonitor.record_message``;
- the recorder's ``record_message``;
- the whole ``Pipeline.process`` per message, and the queue's ``put`` plus worker.

Usage: python benchmarks/profile_stages.py [--messages 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic_core import from_json

from wsresearch.exchanges import generic
from wsresearch.lowlevel import MessageQueue, Recorder, SequenceTracker
from wsresearch.pipeline import Pipeline
from wsresearch.testing import generic_frames


def best(rounds: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n, rounds = args.messages, args.rounds
    frames = list(generic_frames(n, seed=11))
    spec = generic.spec(url="ws://127.0.0.1:1")
    messages = [Pipeline(spec).parser.parse(f).message for f in frames]
    items = [(f, 1, i, i, -1) for i, f in enumerate(frames)]
    # The inputs above are the harness's, not the pipeline's: keep the collector from
    # walking them (a live feed holds no 200,000 frames), and keep no stage's results.
    gc.collect()
    gc.freeze()
    results: dict[str, float] = {}

    def decode() -> None:
        for f in frames:
            from_json(f)
    results["from_json (decode only)"] = best(rounds, decode)

    def parse() -> None:
        parse_one = Pipeline(spec).parser.parse
        for f in frames:
            parse_one(f)
    results["MessageParser.parse (decode, route, validate, de-dup)"] = best(rounds, parse)

    rows = [(m.__dict__, 1, i, i, i, i) for i, m in enumerate(messages)]  # type: ignore[union-attr]

    def extend() -> None:
        store = Pipeline(spec).store
        add = store.extend
        for start in range(0, n, 256):  # the pipeline stores a batch's rows at once
            add("trade", rows[start:start + 256])
        store.frame("trade")
    results["FrameStore.extend + polars build"] = best(rounds, extend)

    extractor = spec.channel("trade").exchange_time
    assert extractor is not None
    def extract() -> None:
        for m in messages:
            extractor(m)
    results["exchange-time extractor"] = best(rounds, extract)

    def sequence() -> None:
        channel = spec.channel("trade")
        value, key, group = channel.sequence, channel.sequence_key, channel.sequence_group_name
        assert value is not None
        observe = SequenceTracker().observe
        for i, m in enumerate(messages):
            observe(group, "trade", None if key is None else key(m), value(m), 1, i)
    results["sequence check"] = best(rounds, sequence)

    def health() -> None:
        record = Pipeline(spec).health.record_message
        for i in range(n):
            record("trade", i)
    results["HealthMonitor.record_message"] = best(rounds, health)

    def recorder() -> None:
        with tempfile.TemporaryDirectory(prefix="wsr-profile-") as folder:
            rec = Recorder(Path(folder) / "r", source_url="ws://127.0.0.1:1")
            record = rec.record_message
            for i, f in enumerate(frames):
                record(f, 1, i, i)
    results["Recorder.record_message (buffering only)"] = best(rounds, recorder)


    def process() -> None:
        fresh = Pipeline(spec)
        fresh.open_generation(1)
        step = fresh.process
        for start in range(0, n, 256):  # the queue hands over up to 256 at a time
            step(items[start:start + 256])
        fresh.store.frames()
    results["Pipeline.process, all of the above but recording"] = best(rounds, process)

    async def queue_round() -> None:
        queue: MessageQueue[str] = MessageQueue(lambda item: None, max_size=n + 1)
        for f in frames:
            queue.put(f)
        await queue.join()
        queue.close()
        await queue.wait_closed()
    results["MessageQueue put + worker (empty handler)"] = best(
        rounds, lambda: asyncio.run(queue_round()))

    print(f"{n:,} generic trade frames, best of {rounds} rounds, per message:")
    for name, seconds in results.items():
        print(f"  {name:<52} {seconds / n * 1e6:6.2f} us")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    main()
