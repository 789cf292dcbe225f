"""Memory a Feed holds per row, with every row kept, a ring of rows, or none (F6).

Each case parses N real-shaped frames with the channel's parser and stores them the
way a Feed does (``FrameStore.extend`` in batches of 256), then reports what the
store holds: Python memory (``tracemalloc``, pending rows included) plus the Arrow
buffers of the built chunks (``DataFrame.estimated_size``), per row added.

Usage: python benchmarks/bench_row_memory.py [N]   (default 200,000; tracemalloc is slow:
1,000,000 takes about five minutes and gives the same figures)
"""

from __future__ import annotations

import gc
import json
import sys
import tracemalloc

from wsresearch.exchanges import generic, raw
from wsresearch.lowlevel import FrameStore, MessageParser


def frames(n: int) -> list[str]:
    return [json.dumps({"type": "trade", "symbol": "BTC-USD", "seq": i, "trade_id": 10**9 + i,
                        "price": f"{30000 + i % 997 * 0.5}", "size": "0.015", "side": "buy",
                        "ts": 1_700_000_000_000_000_000 + i}) for i in range(n)]


def held(spec_name: str, n: int, max_rows: int | None) -> float:
    spec = raw.spec("ws://127.0.0.1:1") if spec_name == "raw" else generic.spec(
        url="ws://127.0.0.1:1")
    channel = spec.channels[0] if spec_name == "raw" else spec.channel("trade")
    parser = MessageParser(spec.type_of)
    parser.register(channel.name, channel.model)
    texts = frames(n)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = FrameStore({channel.name: channel.model}, max_rows=max_rows)
    for start in range(0, n, 256):
        batch = texts[start:start + 256]
        outcomes = parser.parse_batch(batch, [0] * len(batch))
        store.extend(channel.name, [(o.message.__dict__, 1, i, i, None, i)
                                    for i, o in enumerate(outcomes) if o.message is not None])
    built = store.frame(channel.name).estimated_size()  # the Arrow buffers the rows are in
    python = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return (python + built) / n


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"{n:,} rows; bytes held per row added")
    for spec_name in ("raw", "generic"):
        for label, max_rows in (("every row", None), ("ring of 100,000", 100_000),
                                ("none (max_rows=0)", 0)):
            print(f"  {spec_name:8} {label:20} {held(spec_name, n, max_rows):8.1f}")


if __name__ == "__main__":
    main()
