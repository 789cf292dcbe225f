"""The simulated market: seeded prices, per-stream sequence numbers, a real order book.

The market is the state every dialect renders: it makes one event at a time in
a generic shape (plain dicts), and the server broadcasts it to every connection
in that connection's dialect. Keeping it apart from the dialects is what makes
a seeded run give the same market whatever exchange is spoken, and keeping it
apart from the server is what lets :func:`~wsresearch.testing.generic_frames`
make frames with no socket at all.

Derivative events (``mark``: mark and index price, funding, open interest;
``liquidation``) draw from a random source of their own, derived from the
market's: a seeded market gives the same trades, tickers and books whether or
not anyone asks for derivatives, and the same derivatives each run.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...clock import NS_PER_S

__all__ = [
    "DERIVATIVE_STREAMS", "FUNDING_INTERVAL_NS", "MAX_FUNDING_RATE", "START_PRICES", "Market",
    "next_funding_ns", "start_price",
]

START_PRICES: dict[str, float] = {"BTC": 30_000.0, "ETH": 2_000.0, "SOL": 25.0}
"""Opening prices by base currency; any other symbol opens at 100."""

DERIVATIVE_STREAMS: tuple[str, ...] = ("mark", "liquidation")
"""The market streams of perpetual contracts: marks with funding, and liquidations."""
FUNDING_INTERVAL_NS = 8 * 3600 * NS_PER_S
"""Funding is paid every 8 hours, at 00:00, 08:00 and 16:00 UTC."""
MAX_FUNDING_RATE = 0.00375
"""The bound of a funding rate, either way (OKX's ``maxFundingRate`` for BTC-USDT-SWAP)."""


@dataclass(slots=True)
class _Perpetual:
    """The slow state of one perpetual contract: what a mark event walks."""

    funding_rate: float
    open_interest: float
    """In the base currency."""


class Market:
    """Seeded market state: prices random-walk, sequences count per (stream, symbol).

    Events are plain dicts in the generic shape; each dialect renders them in
    its exchange's. The order book is real state (levels change and vanish), so
    a snapshot sent to a new subscriber agrees with the updates that follow it.
    Perpetuals' events (``mark``, ``liquidation``) read the prices and draw from
    :attr:`derivative_rng`, never from ``rng``.

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
        # Seeded from rng's state, not from a draw of it: rng's sequence is left as it was.
        self.derivative_rng = random.Random(repr(rng.getstate()))
        """The source of every derivative value (:data:`DERIVATIVE_STREAMS`)."""
        self.perpetuals: dict[str, _Perpetual] = {}
        """Each symbol's funding rate and open interest, from its first mark event."""

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
        if stream == "mark":
            return self._mark()
        if stream == "liquidation":
            return self._liquidation()
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

    def _perpetual(self, symbol: str) -> _Perpetual:
        """``symbol``'s contract state, drawn on its first mark event."""
        perpetual = self.perpetuals.get(symbol)
        if perpetual is None:
            rng = self.derivative_rng
            perpetual = self.perpetuals[symbol] = _Perpetual(
                funding_rate=rng.uniform(-1e-4, 1e-4),
                open_interest=rng.uniform(2e8, 2e9) / self.price[symbol])  # $0.2-2 bn
        return perpetual

    def _mark(self) -> tuple[str, dict[str, Any]]:
        """A mark event: mark and index price near the last price, funding, open interest.

        The funding rate and the open interest walk slowly; the next funding time is the
        next 8-hour mark of the market's clock.
        """
        rng = self.derivative_rng
        symbol = rng.choice(self.symbols)
        perpetual = self._perpetual(symbol)
        rate = perpetual.funding_rate + rng.gauss(0, 2e-6)
        perpetual.funding_rate = min(MAX_FUNDING_RATE, max(-MAX_FUNDING_RATE, rate))
        perpetual.open_interest *= 1 + rng.gauss(0, 1e-4)
        index = self.price[symbol] * (1 + rng.gauss(0, 1e-4))
        ts = self.time_ns()
        return symbol, {
            "type": "mark", "symbol": symbol, "mark": round(index * (1 + rng.gauss(0, 1e-4)), 2),
            "index": index, "funding_rate": perpetual.funding_rate,
            "funding_time": next_funding_ns(ts), "open_interest": perpetual.open_interest,
            "ticker_seq": self.seq.get(("ticker", symbol), 0), "ts": ts}

    def _liquidation(self) -> tuple[str, dict[str, Any]]:
        """A liquidation: its order's side, fill and bankruptcy prices near the last price.

        A ``sell`` closes a long position, below the market; a ``buy`` a short, above it.
        The order fills between the market and the bankruptcy price.
        """
        rng = self.derivative_rng
        symbol = rng.choice(self.symbols)
        side = rng.choice(("buy", "sell"))
        sign = 1 if side == "buy" else -1
        price = self.price[symbol]
        return symbol, {
            "type": "liquidation", "symbol": symbol, "side": side,
            "price": round(price * (1 + sign * rng.uniform(0, 5e-4)), 2),
            "bankruptcy_price": round(price * (1 + sign * rng.uniform(1e-3, 5e-3)), 2),
            "size": round(rng.uniform(0.001, 2), 3), "ts": self.time_ns()}


def next_funding_ns(ns: int) -> int:
    """The first funding time after ``ns`` (ns since the epoch): the next 00:00, 08:00, 16:00 UTC.

    Examples
    --------
    >>> hour = 3600 * 10**9
    >>> next_funding_ns(7 * hour) // hour, next_funding_ns(8 * hour) // hour
    (8, 16)
    """
    return (ns // FUNDING_INTERVAL_NS + 1) * FUNDING_INTERVAL_NS


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
