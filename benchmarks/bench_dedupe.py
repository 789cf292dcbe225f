"""Cost per new key of the de-dup cache: cachetools.TTLCache against DedupeCache.

Both are used as the parser uses them (is the key there? if not, remember it), with a
full cache (10,000 keys) and a 60 s TTL on a nanosecond monotonic clock, so every new key
also pushes out the oldest. Best of five runs of 300,000 keys each.

Usage: python benchmarks/bench_dedupe.py
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from cachetools import TTLCache

from wsresearch.dedupe import DedupeCache

N = 300_000
KEYS = [("BTC-USD", n) for n in range(N)]
TTL_NS = 60 * 1_000_000_000


def with_ttlcache() -> Callable[[Hashable], bool]:
    cache: TTLCache[Hashable, bool] = TTLCache(maxsize=10_000, ttl=TTL_NS, timer=time.monotonic_ns)

    def seen(key: Hashable) -> bool:
        if key in cache:
            return True
        cache[key] = True
        return False

    return seen


def with_dedupe_cache() -> Callable[[Hashable], bool]:
    return DedupeCache(10_000, TTL_NS, time.monotonic_ns).seen


def best_us_per_key(make: Callable[[], Callable[[Hashable], bool]]) -> float:
    best = float("inf")
    for _ in range(5):
        seen = make()
        start = time.perf_counter()
        for key in KEYS:
            seen(key)
        best = min(best, time.perf_counter() - start)
    return best / N * 1e6


if __name__ == "__main__":
    ttl = best_us_per_key(with_ttlcache)
    fast = best_us_per_key(with_dedupe_cache)
    print(f"{'cache':<28} {'us/new key':>10}")
    print(f"{'cachetools.TTLCache':<28} {ttl:>10.2f}")
    print(f"{'wsresearch DedupeCache':<28} {fast:>10.2f}")
    print(f"TTLCache costs {ttl / fast:.1f}x as much")
