"""Order books: levels applied per second, against the ``order-book`` library's own loop.

The workload is a stream of book messages (each a few level changes around a moving price,
a third of them removals), as an exchange sends them. After each message a researcher's
book is read at the top (best bid and ask: the crossed check, a quote, a checksum), so
every loop reads it too:

- ``wsresearch.book.Book``: ``set()`` per level, ``best_bid``/``best_ask`` per message;
- ``order-book`` (C, the library cryptofeed keeps its books in): item assignment and
  deletion per level, ``bids.index(0)``/``asks.index(0)`` per message;
- ``order-book`` writes alone, its fastest loop (no ordered read at all).

Also: replay of a real book recording (Kraken v1 book1000, ten pairs, with every checksum
verified) with its books kept, against the same replay with no books; and replay of real
Binance USD-M frames (the hftbacktest BTCUSDT capture in ``data/``, depth@0ms, bookTicker
and trades, repeated ``--copies`` times with update and trade ids shifted so every copy
follows the last: 199,950 frames), its book kept, in columns against through the models
(``columnar=False``); and the same of the Kraken Futures capture (ten products' books, one
level a message, with trades and tickers), 30 copies after one subscription, each
product's ``seq`` running on from copy to copy; and of the Coinbase Exchange capture (ten
products' level2 books, tickers and matches), 20 copies after one subscription.

Usage: python benchmarks/bench_books.py [--rounds 5] [--messages 100000] [--copies 50]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from wsresearch import Recording, replay
from wsresearch.book import Book

RECORDINGS = Path(__file__).resolve().parent.parent / "data" / "recordings"
KRAKEN = RECORDINGS / "kraken_cryptofeed_2021-04-17_v1_book1000"
USDM = RECORDINGS / "binance_hftbacktest_2024-08-08_usdm_btcusdt"
KRAKEN_FUTURES = RECORDINGS / "kraken_cryptofeed_2021-07-22_futures_v1_book_trade_ticker"
COINBASE = RECORDINGS / "coinbase_cryptofeed_2021-04-17_exchange_level2_ticker_matches"

Message = list[tuple[bool, float, float]]  # (is_bid, price, size) per level


def workload(messages: int, seed: int = 7) -> list[Message]:
    """Book messages of 1 to 6 level changes near a random-walking mid, never crossing it."""
    rng = random.Random(seed)
    mid, out = 30_000.0, []
    for _ in range(messages):
        mid += rng.gauss(0, 0.5)
        levels = []
        for _ in range(rng.randint(1, 6)):
            is_bid = rng.random() < 0.5
            offset = round(rng.randint(1, 200) * 0.1, 1)
            price = round(mid - offset if is_bid else mid + offset, 1)
            size = 0.0 if rng.random() < 0.33 else round(rng.uniform(0.001, 5), 3)
            levels.append((is_bid, price, size))
        out.append(levels)
    return out


def ours(messages: list[Message]) -> None:
    book = Book("BTCUSDT")
    put = book.set
    for message in messages:
        for is_bid, price, size in message:
            put("bid" if is_bid else "ask", price, size)
        book.best_bid, book.best_ask  # noqa: B018


def order_book_loop(messages: list[Message], read: bool) -> None:
    """``order-book``'s loop: item assignment and deletion, the top read per message if
    ``read``."""
    from order_book import OrderBook

    ob = OrderBook()
    bids, asks = ob.bids, ob.asks
    for message in messages:
        for is_bid, price, size in message:
            side = bids if is_bid else asks
            if size:
                side[price] = size
            elif price in side:
                del side[price]
        if read and len(bids) and len(asks):
            bids.index(0), asks.index(0)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def levels_per_second(rounds: int, messages: int) -> dict[str, list[float]]:
    """Levels applied per second by each loop, per round (``order-book`` ones if installed)."""
    work = workload(messages)
    levels = sum(map(len, work))
    loops: dict[str, Callable[[list[Message]], None]] = {"wsresearch Book": ours}
    try:
        import order_book  # noqa: F401
    except ImportError:
        print("order-book is not installed: no baseline (pip install order-book)")
    else:
        loops |= {"order-book, top read per message": partial(order_book_loop, read=True),
                  "order-book, writes only": partial(order_book_loop, read=False)}
    found: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(rounds):
        for name, loop in loops.items():
            found[name].append(levels / timed(lambda loop=loop: loop(work)))  # type: ignore[misc]
    return found


def replay_books(rounds: int) -> tuple[list[float], list[float]]:
    """Seconds to replay the Kraken book recording with its books, and without."""
    recording = Recording.open(KRAKEN)
    spec = recording.spec
    assert spec is not None
    assert spec.book_sync is not None
    bare = spec.model_copy(update={"book_sync": None})
    on, off = [], []
    for _ in range(rounds):
        on.append(timed(lambda: replay(recording, spec)))
        off.append(timed(lambda: replay(recording, bare)))
    return on, off


Decoded = dict[str, Any]
"""A recorded frame's JSON."""


def repeated(source: Path, folder: Path, copies: int,
             moved: Callable[[Decoded, int], Decoded | None]) -> Recording:
    """``source``'s frames ``copies`` times over, into ``folder``; its REST responses once.

    ``moved(message, k)`` gives copy ``k``'s message (its ids moved past the copy before),
    or ``None`` to leave it out of that copy; the receive times move on by the capture's
    length from copy to copy.
    """
    from wsresearch.recording.writer import Captured, write_events

    recording = Recording.open(source)
    frames, rest = recording.frames(), recording.rest()
    walls = frames["recv_wall_ns"].to_list()
    decoded = [json.loads(text) for text in frames["data"].to_list()]
    time_span = walls[-1] - walls[0] + 1_000_000
    events = [Captured("rest", walls[0] - 1_000_000, body, url)
              for body, url in zip(rest["body"].to_list(), rest["url"].to_list(), strict=True)]
    for k in range(copies):
        for message, wall in zip(decoded, walls, strict=True):
            data = moved(dict(message), k)
            if data is not None:
                events.append(Captured("frame", wall + k * time_span,
                                       json.dumps(data, separators=(",", ":"))))
    spec = recording.spec
    assert spec is not None
    write_events(folder / source.name, events, source_url=spec.url, origin=spec.origin)
    return Recording.open(folder / source.name)


def _decoded(source: Path) -> list[Decoded]:
    return [json.loads(text) for text in Recording.open(source).frames()["data"].to_list()]


def usdm_recording(folder: Path, copies: int) -> Recording:
    """The USD-M capture ``copies`` times over, each copy's ids and times after the last's."""
    decoded = _decoded(USDM)
    depth = [d["data"] for d in decoded if "@depth" in d["stream"]]
    trades = [d["data"] for d in decoded if d["stream"].endswith("@trade")]
    id_span = depth[-1]["u"] - depth[0]["pu"]
    trade_span = trades[-1]["t"] - trades[0]["t"] + 1

    def moved(message: Decoded, k: int) -> Decoded:
        data = dict(message["data"])
        if "@depth" in message["stream"]:
            data.update(U=data["U"] + k * id_span, u=data["u"] + k * id_span,
                        pu=data["pu"] + k * id_span)
        elif message["stream"].endswith("@trade"):
            data["t"] += k * trade_span
        else:  # bookTicker
            data["u"] += k * id_span
        return {"stream": message["stream"], "data": data}

    return repeated(USDM, folder, copies, moved)


def usdm_replay(rounds: int, copies: int = 50) -> tuple[list[float], list[float], int]:
    """Seconds to replay the USD-M frames in columns, and through the models; the frames."""
    with tempfile.TemporaryDirectory(prefix="wsr-usdm-") as folder:
        return columns_and_models(usdm_recording(Path(folder), copies), rounds, "USD-M")


def kraken_futures_recording(folder: Path, copies: int) -> Recording:
    """The Kraken Futures capture ``copies`` times over, each copy after the last.

    One subscription: the snapshots (books and trades) and replies are the first copy's
    only. In each later copy every product's ``seq`` moves on by that product's count of
    messages in a copy, so its levels and trades follow the copy before; each trade's
    ``uid`` gets the copy's number.
    """
    per_copy: dict[tuple[str, str], int] = {}  # (feed, product): messages a copy
    for message in _decoded(KRAKEN_FUTURES):
        if message.get("feed") in ("book", "trade") and "event" not in message:
            key = (message["feed"], message["product_id"])
            per_copy[key] = per_copy.get(key, 0) + 1

    def moved(data: Decoded, k: int) -> Decoded | None:
        feed = data.get("feed")
        if "event" in data:
            return None if k else data
        if feed in ("book", "trade"):
            data["seq"] += k * per_copy[feed, data["product_id"]]
        if feed == "trade":
            data["uid"] = f"{data['uid']}-{k}"
        return None if k and feed in ("book_snapshot", "trade_snapshot") else data

    return repeated(KRAKEN_FUTURES, folder, copies, moved)


def kraken_futures_replay(rounds: int, copies: int = 30) -> tuple[list[float], list[float], int]:
    """Seconds to replay the Kraken Futures frames in columns, and through the models."""
    with tempfile.TemporaryDirectory(prefix="wsr-kraken-futures-") as folder:
        return columns_and_models(kraken_futures_recording(Path(folder), copies), rounds,
                                  "Kraken Futures")


def coinbase_recording(folder: Path, copies: int) -> Recording:
    """The Coinbase Exchange capture ``copies`` times over, each copy after the last.

    One subscription: the snapshots, replies and ``last_match`` are the first copy's only.
    In each later copy every product's match ``trade_id`` moves on by its count of matches
    in a copy, so they follow the copy before, and each ticker's ``sequence`` (its de-dup
    key) moves past the last copy's.
    """
    matches: dict[str, int] = {}  # product: matches a copy
    for message in _decoded(COINBASE):
        if message["type"] == "match":
            matches[message["product_id"]] = matches.get(message["product_id"], 0) + 1

    def moved(data: Decoded, k: int) -> Decoded | None:
        kind = data["type"]
        if kind == "match":
            data["trade_id"] += k * matches[data["product_id"]]
        elif kind == "ticker":
            data["sequence"] += k * 10**9
        return None if k and kind not in ("l2update", "ticker", "match") else data

    return repeated(COINBASE, folder, copies, moved)


def coinbase_replay(rounds: int, copies: int = 20) -> tuple[list[float], list[float], int]:
    """Seconds to replay the Coinbase Exchange frames in columns, and through the models."""
    with tempfile.TemporaryDirectory(prefix="wsr-coinbase-") as folder:
        return columns_and_models(coinbase_recording(Path(folder), copies), rounds, "Coinbase")


def captures_replay(rounds: int) -> tuple[list[float], list[float], int]:
    """Seconds to replay the Kraken Futures and Coinbase captures as recorded, both ways.

    Each as it is in ``data/``: one connection, a snapshot per product after subscribing,
    then the book's changes, all in one chunk of the replay. Per round, the best of
    three replays of each, added.
    """
    recordings = [Recording.open(path) for path in (KRAKEN_FUTURES, COINBASE)]
    columns, models = [], []
    for _ in range(rounds):
        columns.append(sum(min(timed(lambda r=r: replay(r)) for _ in range(3))
                           for r in recordings))
        models.append(sum(min(timed(lambda r=r: replay(r, columnar=False)) for _ in range(3))
                          for r in recordings))
    return columns, models, sum(replay(r).stats["frames"] for r in recordings)


def columns_and_models(recording: Recording, rounds: int,
                       name: str) -> tuple[list[float], list[float], int]:
    """Seconds to replay ``recording`` in columns, and through the models; its frames.

    Refuses (exits) unless the replay goes through without a gap or an invalid message,
    every book valid at the end.
    """
    columns, models = [], []
    for _ in range(rounds):
        columns.append(timed(lambda: replay(recording)))
        models.append(timed(lambda: replay(recording, columnar=False)))
    result = replay(recording)
    if (result.stats["sequence_gaps"] or result.stats["invalid"] or result.books is None
            or not all(book.valid for book in result.books)):
        raise SystemExit(f"the {name} replay did not go through cleanly: {result.stats}")
    return columns, models, result.stats["frames"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--copies", type=int, default=50)
    args = parser.parse_args()
    found = levels_per_second(args.rounds, args.messages)
    for name, values in found.items():
        print(f"{name:<36} {statistics.median(values) / 1e6:6.2f} M levels/s")
    on, off = replay_books(args.rounds)
    print(f"replay with books / without: {statistics.median(off) / statistics.median(on):.2f}")
    for name, (columns, models, frames) in (
            ("USD-M", usdm_replay(args.rounds, args.copies)),
            ("Kraken Futures", kraken_futures_replay(args.rounds)),
            ("Coinbase Exchange", coinbase_replay(args.rounds)),
            ("Kraken Futures and Coinbase as recorded", captures_replay(args.rounds))):
        print(f"{name} replay, {frames:,} frames: in columns {frames / min(columns):,.0f}/s, "
              f"through the models {frames / min(models):,.0f}/s; columns / models "
              f"{statistics.median(r / c for c, r in zip(columns, models, strict=True)):.2f}")


if __name__ == "__main__":
    main()
