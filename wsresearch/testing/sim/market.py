"""The simulated market: seeded prices, per-stream sequence numbers, a real order book.

The market is the state every dialect renders: it makes one event at a time in
a generic shape (plain dicts), and the server broadcasts it to every connection
in that connection's dialect. Keeping it apart from the dialects is what makes
a seeded run give the same market whatever exchange is spoken, and keeping it
apart from the server is what lets :func:`~wsresearch.testing.generic_frames`
make frames with no socket at all.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["START_PRICES", "Market", "start_price"]

START_PRICES: dict[str, float] = {"BTC": 30_000.0, "ETH": 2_000.0, "SOL": 25.0}
"""Opening prices by base currency; any other symbol opens at 100."""


class Market:
    """Seeded market state: prices random-walk, sequences count per (stream, symbol).

    Events are plain dicts in the generic shape; each dialect renders them in
    its exchange's. The order book is real state (levels change and vanish), so
    a snapshot sent to a new subscriber agrees with the updates that follow it.

    Parameters
    ----------
    symbols
        The symbols traded, in the dialect's spelling.
    rng
        The source of every random choice: a seeded one gives the same market each run.
    time_ns
        The exchange's clock, for event timestamps.
    consistent
        Keep one book per symbol that never crosses, and make tickers its top of book
        (the exchange dialects); ``False`` keeps the generic dialect's independent
        ticker prices.
    """

    def __init__(
        self, symbols: Sequence[str], rng: random.Random, time_ns: Callable[[], int],
        *, consistent: bool = False,
    ) -> None:
        self.consistent = consistent
        self.symbols = list(symbols)
        self.rng = rng
        self.time_ns = time_ns
        self.price = {s: start_price(s) for s in self.symbols}
        self.seq: dict[tuple[str, str], int] = {}
        self.trade_ids = itertools.count(1)
        self.order_ids = itertools.count(1)
        self.skip: dict[str | None, int] = {}
        """Numbers to skip on the next event of a stream (``None``: of any stream)."""
        self.books: dict[str, tuple[dict[float, float], dict[float, float]]] = {}
        self.withhold_snapshots = False
        """Answer book subscriptions with no in-band snapshot (where the dialect can)."""
        self.bad_checksums = 0
        """Book updates still to send with a wrong checksum (the next ones, any symbol)."""

    def _next_seq(self, stream: str, symbol: str) -> int:
        skip = self.skip
        n = self.seq.get((stream, symbol), 0) + 1
        if skip:
            n += skip.pop(stream, 0) + skip.pop(None, 0)
        self.seq[(stream, symbol)] = n
        return n

    def _step(self, symbol: str) -> float:
        return max(0.01, round(self.price[symbol] * 1e-4, 2))

    def book(self, symbol: str) -> tuple[dict[float, float], dict[float, float]]:
        """The (bids, asks) of ``symbol``: price to size, ten levels a side to start."""
        book = self.books.get(symbol)
        if book is None:
            step, mid = self._step(symbol), self.price[symbol]
            book = self.books[symbol] = (
                {round(mid - i * step, 2): round(self.rng.uniform(0.1, 5), 3) for i in
                 range(1, 11)},
                {round(mid + i * step, 2): round(self.rng.uniform(0.1, 5), 3) for i in
                 range(1, 11)},
            )
        return book

    def book_seq(self, symbol: str) -> int:
        """The sequence number of ``symbol``'s last book update (0 before the first)."""
        return self.seq.get(("book", symbol), 0)

    def snapshot(self, symbol: str) -> dict[str, Any]:
        """The whole book of ``symbol`` now, with the sequence number of its last update."""
        bids, asks = self.book(symbol)
        return {"symbol": symbol, "seq": self.book_seq(symbol),
                "bids": [[p, bids[p]] for p in sorted(bids, reverse=True)],
                "asks": [[p, asks[p]] for p in sorted(asks)], "ts": self.time_ns()}

    def top(self, symbol: str, depth: int) -> dict[str, list[list[float]]]:
        """The best ``depth`` levels of each side of ``symbol``'s book, best first."""
        bids, asks = self.book(symbol)
        return {"bids": [[p, bids[p]] for p in sorted(bids, reverse=True)[:depth]],
                "asks": [[p, asks[p]] for p in sorted(asks)[:depth]]}

    def event(self, stream: str) -> tuple[str, dict[str, Any]]:
        """One event of ``stream``: ``(symbol, body)`` in the generic shape."""
        rng = self.rng
        if stream == "heartbeat":
            return "", {"type": "heartbeat", "ts": self.time_ns()}
        symbol = rng.choice(self.symbols)
        price = self.price[symbol] = max(0.01, self.price[symbol] * (1 + rng.gauss(0, 2e-4)))
        ts = self.time_ns()
        body: dict[str, Any]
        if stream == "trade":
            body = {"type": "trade", "symbol": symbol, "seq": self._next_seq(stream, symbol),
                    "trade_id": next(self.trade_ids), "price": f"{price:.2f}",
                    "size": f"{rng.uniform(0.001, 2):.4f}", "side": rng.choice(("buy", "sell")),
                    "ts": ts}
        elif stream == "ticker" and self.consistent:
            bids, asks = self.book(symbol)
            bid, ask = max(bids), min(asks)
            body = {"type": "ticker", "symbol": symbol, "seq": self._next_seq(stream, symbol),
                    "bid": f"{bid:.2f}", "ask": f"{ask:.2f}", "bid_size": f"{bids[bid]:.3f}",
                    "ask_size": f"{asks[ask]:.3f}", "ts": ts,
                    "book_seq": self.book_seq(symbol)}
        elif stream == "ticker":
            half = price * 5e-5
            body = {"type": "ticker", "symbol": symbol, "seq": self._next_seq(stream, symbol),
                    "bid": f"{price - half:.2f}", "ask": f"{price + half:.2f}",
                    "bid_size": f"{rng.uniform(0.1, 5):.3f}",
                    "ask_size": f"{rng.uniform(0.1, 5):.3f}", "ts": ts}
        elif stream == "book":
            bids, asks = self.book(symbol)
            side, levels = ("bids", bids) if rng.random() < 0.5 else ("asks", asks)
            offset = rng.randint(1, 12) * self._step(symbol)
            if self.consistent:  # from the other side's best: the book never crosses
                level = round(min(asks) - offset if side == "bids" else max(bids) + offset, 2)
            else:
                level = round(price - offset if side == "bids" else price + offset, 2)
            size = 0.0 if level in levels and len(levels) > 1 and rng.random() < 0.3 else round(
                rng.uniform(0.01, 5), 3)
            if size:
                levels[level] = size
            else:
                levels.pop(level, None)
            body = {"type": "book", "symbol": symbol, "seq": self._next_seq(stream, symbol),
                    "bids": [[level, size]] if side == "bids" else [],
                    "asks": [[level, size]] if side == "asks" else [], "ts": ts}
            if self.consistent:  # the best levels after the change, for checksums
                body["top"] = self.top(symbol, 25)
                if self.bad_checksums:
                    self.bad_checksums -= 1
                    body["bad_checksum"] = True
        else:
            body = {"type": "order", "order_id": f"o-{next(self.order_ids)}", "symbol": symbol,
                    "status": rng.choice(("new", "filled", "cancelled")),
                    "price": f"{price:.2f}", "size": f"{rng.uniform(0.01, 1):.3f}", "ts": ts}
        return symbol, body


def start_price(symbol: str) -> float:
    """A plausible price for ``symbol`` in any exchange's spelling (``btcusdt``, ``XBT/USD``).

    Examples
    --------
    >>> start_price("XBT/USD"), start_price("ethusdt"), start_price("DOGE-USD")
    (30000.0, 2000.0, 100.0)
    """
    upper = symbol.upper().replace("XBT", "BTC")
    for base, price in START_PRICES.items():
        if base in upper:
            return price
    return 100.0
