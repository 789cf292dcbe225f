"""One side of a book changed by a stretch of messages at once, in arrays.

The columnar replay hands a book rule a chunk's diffs that all follow on from a valid book
(:meth:`BookRule.takes_rows <wsresearch.book.BookRule.takes_rows>`). What they must give is
what applying them one message at a time gives: the best level after each message (the
quotes and the crossed count), the best few levels before chosen messages (the snapshots),
and the side at the end. A Python step per level costs about 0.4 µs; a Binance diff holds
about 30 levels.

Here a side's stretch is a set of *lives*: a price's amount from the message that set it
(or from the start, for a level already there) to the next message that changed that price
(or to the end). The *states* are the side before the first message (0) and after each
(1..count). The lives, ordered from the worst price to the best, fill a segment tree over
the states: each node holds the best life that spans the whole of its range, and the best
level of state ``s`` is the best life held by a node above leaf ``s``. Filling the tree
takes about ``log2(count)`` numpy steps over all lives, reading it as many steps over the
nodes; no step is per level or per message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl

if TYPE_CHECKING:
    from wsresearch._levels import Levels
    from wsresearch.book import Book

__all__ = ["Changes", "Stretch", "Sweep", "ends", "exact", "side_arrays", "sweep"]

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Level = tuple[float, float]


class Changes(NamedTuple):
    """One side's level changes over a stretch of rows, in the order applied."""

    rows: Ints
    """The row each change belongs to: non-decreasing."""
    prices: Floats
    amounts: Floats
    """0 removes the price's level."""

    def per_row(self, count: int) -> tuple[list[float], list[float], list[int]]:
        """Prices and amounts as lists, and where each of ``count`` rows' changes end.

        Row ``i``'s are ``prices[ends[i-1]:ends[i]]`` (from 0 for the first): for applying
        them one row at a time.
        """
        return self.prices.tolist(), self.amounts.tolist(), ends(self.rows, count)

    def of_rows(self, rows: npt.NDArray[np.bool_]) -> Changes:
        """The changes of the rows where ``rows`` (one per row) is true."""
        keep = rows[self.rows]
        return Changes(self.rows[keep], self.prices[keep], self.amounts[keep])


_WINDOW = 32  # prices looked at first from a state's best down, for its best few levels


@dataclass(frozen=True, slots=True)
class Sweep:
    """One side's lives over a stretch of ``count`` messages, and its best level in each state.

    Attributes
    ----------
    prices, amounts
        Each life's price and amount, the lives ordered from the worst price to the best
        (one price's lives, which never overlap, in the order they began).
    starts, ends
        The first state each life is in, and the first it is no longer in
        (``count + 1`` for one still in the side at the end).
    best
        For each state ``0..count``, the index of its best life; -1 where the side is empty.
    """

    prices: Floats
    amounts: Floats
    starts: Ints
    ends: Ints
    best: Ints

    def best_levels(self) -> tuple[Floats, Floats, npt.NDArray[np.bool_]]:
        """Price and amount of the best level after each message, and where there is one.

        Arrays of ``count``: entry ``k`` is state ``k + 1``, the side once message ``k`` is
        applied. Where the side is empty, price and amount are NaN and the mask is False.
        """
        after = self.best[1:]
        present = after >= 0
        found = np.where(present, after, 0)
        if not self.prices.size:
            nothing = np.full(after.size, np.nan)
            return nothing, nothing.copy(), present
        return (np.where(present, self.prices[found], np.nan),
                np.where(present, self.amounts[found], np.nan), present)

    def top(self, states: Ints, depth: int) -> list[list[Level]]:
        """The best ``depth`` levels of each of ``states``, best first, as ``(price, amount)``."""
        found: list[list[Level]] = [[] for _ in range(states.size)]
        if depth <= 0 or not states.size or not self.prices.size:
            return found
        # A price's lives are together (from the worst price to the best), in the order
        # they began: the one a state finds of a price is the last begun by then.
        ranked = self.prices
        group = np.cumsum(np.concatenate([[True], ranked[1:] != ranked[:-1]])) - 1
        span = self.best.size + 1
        keys = group * span + self.starts  # ascending
        pending = np.arange(states.size)
        window = _WINDOW
        while pending.size:
            at = states[pending]
            best = self.best[at]
            # Prices from each state's best downwards, and the life of each the state is in.
            groups = np.where(best >= 0, group[best], -1)[:, None] - np.arange(window)[None, :]
            lives = np.searchsorted(keys, groups * span + at[:, None], side="right") - 1
            safe = np.maximum(lives, 0)
            alive = ((groups >= 0) & (lives >= 0) & (group[safe] == groups)
                     & (self.ends[safe] > at[:, None]))
            enough = (alive.sum(axis=1) >= depth) | (groups[:, -1] < 0)  # or all looked at
            alive = alive[enough]
            alive &= np.cumsum(alive, axis=1) <= depth
            rows, columns = np.nonzero(alive)
            chosen = safe[enough][rows, columns]
            levels = list(zip(self.prices[chosen].tolist(), self.amounts[chosen].tolist(),
                              strict=True))
            start = 0
            for query, end in zip(pending[enough].tolist(),
                                  np.cumsum(alive.sum(axis=1)).tolist(), strict=True):
                found[query] = levels[start:end]
                start = end
            pending = pending[~enough]
            window *= 4
        return found

    def final(self) -> tuple[list[float], list[float]]:
        """The side at the end: its prices and amounts, from the worst price to the best."""
        last = self.ends == self.best.size
        return self.prices[last].tolist(), self.amounts[last].tolist()


def ends(rows: Ints, count: int) -> list[int]:
    """Where each of ``count`` rows' items end, given each item's row (non-decreasing)."""
    found: list[int] = np.searchsorted(rows, np.arange(1, count + 1), side="left").tolist()
    return found


def exact(changes: Changes) -> bool:
    """Whether applying these changes at once gives exactly what one at a time gives.

    Not for a NaN (a NaN price raises one at a time; a NaN amount is a quote of its own on
    every message, since NaN is not equal to itself), nor for a price of zero (0.0 and -0.0
    are one price in a side, but the one first set is what it shows).
    """
    prices, amounts = changes.prices, changes.amounts
    return not (np.isnan(prices).any() or np.isnan(amounts).any() or (prices == 0).any())


def side_arrays(levels: Levels) -> Changes:
    """A side's levels as changes of row -1 (the state before the first row)."""
    count = len(levels)
    return Changes(np.full(count, -1, np.int64), np.fromiter(levels.keys(), np.float64, count),
                   np.fromiter(levels.values(), np.float64, count))


def sweep(first: Changes, sign: float, changes: Changes, count: int) -> Sweep:
    """The lives of a side over ``count`` rows changing it.

    Parameters
    ----------
    first
        The side before the first row (:func:`side_arrays`).
    sign
        1.0 for bids (the best is the highest price), -1.0 for asks.
    changes
        The rows' changes: each change's row in ``0..count-1``. Call :func:`exact` on them
        first.
    count
        The rows.
    """
    every_price = np.concatenate([first.prices, changes.prices])
    every_amount = np.concatenate([first.amounts, changes.amounts])
    # A level there at the start is in state 0, a change's from its row's state on.
    begins = np.concatenate([first.rows, changes.rows]) + 1
    # From the worst price to the best; each price's items in the order applied.
    order = np.argsort(sign * every_price, kind="stable")
    ranked = every_price[order]
    starts = begins[order]
    ends = np.full(order.size, count + 1, np.int64)
    same = ranked[1:] == ranked[:-1]
    ends[:-1][same] = starts[1:][same]  # a life ends where its price's next change begins
    # A level at the start is in the side whatever its amount; a change only with one.
    alive = (order < first.prices.size) | (every_amount[order] != 0)
    lives = np.flatnonzero(alive & (starts < ends))
    starts, ends = starts[lives], ends[lives]
    return Sweep(ranked[lives], every_amount[order[lives]], starts, ends,
                 _best(starts, ends, count + 1))


class Stretch:
    """One book changed by its rows of a stretch, its levels all at once.

    Everything :meth:`Book.touched <wsresearch.book.Book.touched>` and the quotes would
    have seen row by row: each row's best bid and ask, the crossed count, the exchange
    time, and the book as it was before any of the rows (for the snapshots).

    Parameters
    ----------
    book
        The book, valid, before its first row.
    first
        Its bids and asks then (:func:`side_arrays`).
    at
        The book's rows among the stretch's, ascending; ``None`` for all of them.
    bids, asks
        The stretch's changes, rows numbered among all of its rows.
    exchange
        Each of the stretch's rows' exchange time (null where it has none).
    walls
        Each of the stretch's rows' receive time.
    top
        The book's last quoted top, ``(bid, ask)``, or ``None`` if none is on record.
    """

    def __init__(self, book: Book, first: tuple[Changes, Changes], at: Ints | None,
                 bids: Changes, asks: Changes, exchange: pl.Series, walls: Ints,
                 top: Any) -> None:
        self.book = book
        self.at = at
        if at is not None:
            bids, asks = _local(bids, at), _local(asks, at)
            exchange, walls = exchange.gather(at), walls[at]
        self.count = count = walls.size
        self.bids = sweep(first[0], 1.0, bids, count)
        self.asks = sweep(first[1], -1.0, asks, count)
        # Each row's exchange time as the book keeps it: the last one a row had.
        self.exchange = pl.concat([pl.Series([book.exchange_ns], dtype=pl.Int64),
                                   exchange]).fill_null(strategy="forward")
        self.walls = walls
        bid, bid_amount, has_bid = self.bids.best_levels()
        ask, ask_amount, has_ask = self.asks.best_levels()
        self._tops = (bid, bid_amount, has_bid, ask, ask_amount, has_ask)
        self.crossed = int((has_bid & has_ask & (bid >= ask)).sum())
        self._changed = _changed(self._tops, top)

    @property
    def last_row(self) -> int:
        """The book's last row, among the stretch's."""
        return self.count - 1 if self.at is None else int(self.at[-1])

    @property
    def last_exchange(self) -> int | None:
        """The book's exchange time after its last row."""
        last: int | None = self.exchange[-1]
        return last

    @property
    def last_top(self) -> tuple[Level | None, Level | None]:
        """The book's top after its last row, as :meth:`Books.record_quote` keeps it."""
        bid, bid_amount, has_bid, ask, ask_amount, has_ask = self._tops
        return ((float(bid[-1]), float(bid_amount[-1])) if has_bid[-1] else None,
                (float(ask[-1]), float(ask_amount[-1])) if has_ask[-1] else None)

    def quotes(self, generation: int) -> pl.DataFrame:
        """The quote rows of the rows whose top changed, with ``_row``, their row in the stretch."""
        changed = self._changed
        rows = np.flatnonzero(changed)
        bid, bid_amount, _, ask, ask_amount, _ = (part[changed] for part in self._tops)
        return pl.DataFrame({
            "_row": rows if self.at is None else self.at[rows],
            "symbol": pl.Series([self.book.symbol], dtype=pl.String).new_from_index(
                0, rows.size),
            "exchange_ns": self.exchange[1:].filter(pl.Series(changed)),
            "recv_wall_ns": self.walls[rows],
            "generation": np.full(rows.size, generation, np.int64),
            "bid_price": bid, "bid_amount": bid_amount,
            "ask_price": ask, "ask_amount": ask_amount,
        }, schema_overrides={"exchange_ns": pl.Int64}).fill_nan(None)

    def before(self, rows: Ints, depth: int) -> tuple[
            list[int | None], list[int | None], list[list[Level]], list[list[Level]]]:
        """The book before each of ``rows`` of the stretch.

        Its exchange time, its receive time (its last row's, or its own before the
        stretch), and its best ``depth`` bids and asks.
        """
        # A state: how many of the book's rows come before.
        states = rows if self.at is None else np.searchsorted(self.at, rows, side="left")
        exchange = self.exchange.gather(states).to_list()
        walls = self.walls[np.maximum(states - 1, 0)].tolist()
        received = [self.book.recv_wall_ns if state == 0 else wall
                    for state, wall in zip(states.tolist(), walls, strict=True)]
        return exchange, received, self.bids.top(states, depth), self.asks.top(states, depth)

    def settle(self) -> None:
        """Leave the book's sides as its last row left them, and count its crossed rows."""
        for levels, lives in ((self.book.bids, self.bids), (self.book.asks, self.asks)):
            levels.replace(*lives.final())
        self.book.stats.crossed += self.crossed


def _local(changes: Changes, at: Ints) -> Changes:
    """The changes of rows ``at``, their rows numbered among those."""
    rows = np.searchsorted(at, changes.rows, side="left")
    mine = np.flatnonzero((rows < at.size) & (at[np.minimum(rows, at.size - 1)] == changes.rows))
    return Changes(rows[mine], changes.prices[mine], changes.amounts[mine])


def _changed(tops: tuple[Any, ...], last: Any) -> npt.NDArray[np.bool_]:
    """Where a row's top differs from the row's before (the first's, from ``last``)."""
    bid, bid_amount, has_bid, ask, ask_amount, has_ask = tops
    changed = np.zeros(has_bid.size, np.bool_)
    for price, amount, has, side in ((bid, bid_amount, has_bid, 0), (ask, ask_amount, has_ask, 1)):
        level = None if last is None else last[side]
        before_has = np.concatenate([[level is not None], has[:-1]])
        before_price = np.concatenate([[level[0] if level else np.nan], price[:-1]])
        before_amount = np.concatenate([[level[1] if level else np.nan], amount[:-1]])
        changed |= (has != before_has) | (has & ((price != before_price)
                                                  | (amount != before_amount)))
    if last is None:
        changed[:1] = True  # no top on record: the first row's is new
    return changed


def _best(starts: Ints, ends: Ints, states: int) -> Ints:
    """For each of ``states``, the highest index ``i`` with ``starts[i] <= state < ends[i]``."""
    # No life below the best of those that span every state is the best of any.
    spanning = np.flatnonzero((starts == 0) & (ends == states))
    floor = int(spanning[-1]) if spanning.size else 0
    size = 1 << max(0, (states - 1).bit_length())
    tree = np.full(2 * size, -1, np.int64)
    low, high = starts[floor:] + size, ends[floor:] + size
    index = np.arange(floor, starts.size, dtype=np.int64)
    while low.size:  # each life onto the nodes that cover its range, level by level
        odd = (low & 1).astype(np.bool_)
        np.maximum.at(tree, low[odd], index[odd])
        low = low + odd
        odd = (high & 1).astype(np.bool_)
        high = high - odd
        np.maximum.at(tree, high[odd], index[odd])
        low, high = low >> 1, high >> 1
        going = low < high
        low, high, index = low[going], high[going], index[going]
    width = 1
    while width < size:  # each node's best down to its children
        parents = tree[width:2 * width]
        children = tree[2 * width:4 * width].reshape(-1, 2)
        np.maximum(children, parents[:, None], out=children)
        width *= 2
    return tree[size:size + states]
