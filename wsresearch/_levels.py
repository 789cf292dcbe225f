"""One side of an order book: price → amount, sorted, read at the best end after every message.

A side keeps its amounts in a dict and its prices in one sorted list of *ranks* (the price
for bids, minus the price for asks), so the best level is always the last and most changes
land near the end of the list: an insert or a removal there moves few pointers, in C
(``bisect``), with no Python call per level. Measured on the real Binance diffs in
``data/`` (``docs/books.md``), that is about three times faster than
:class:`sortedcontainers.SortedDict`, which the books used before.

A flat list pays for a change far from the best in pointers moved: past
:data:`FLAT_MAX` levels (a full-depth book of a busy market) a side keeps its ranks in a
:class:`sortedcontainers.SortedList` instead, whose cost does not grow with the side, and
goes back to a flat list once it has shrunk to half of that.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from sortedcontainers import SortedList  # type: ignore[import-untyped]  # no stubs

__all__ = ["FLAT_MAX", "Levels"]

FLAT_MAX = 16_384
"""Levels a side keeps in a flat list. Measured with changes spread evenly over the side
(the worst case for a flat list): a flat list is faster up to about 20,000 levels."""


class Levels:
    """One side of a book: each price's amount, in price order, the best at hand.

    It reads like the :class:`sortedcontainers.SortedDict` the books used before: keys in
    ascending price (bids and asks alike), :meth:`peekitem` and :meth:`popitem` by that
    order's index, ``len``, ``in``, ``[]``, :meth:`get`, :meth:`items`.

    Parameters
    ----------
    side
        ``"bid"`` (the best is the highest price) or ``"ask"`` (the lowest).
    flat_max
        Levels kept in a flat list before the side switches to a sorted list of lists.
    """

    __slots__ = ("_amounts", "_flat_max", "_ranks", "_sign")

    def __init__(self, side: Literal["bid", "ask"], flat_max: int = FLAT_MAX) -> None:
        if side not in ("bid", "ask"):
            raise ValueError(f"side must be 'bid' or 'ask', not {side!r}")
        self._sign = 1.0 if side == "bid" else -1.0
        self._amounts: dict[float, float] = {}
        self._ranks: list[float] | SortedList = []  # sign * price, ascending: the best last
        self._flat_max = flat_max

    # -- changes -----------------------------------------------------------------------

    def apply(self, levels: Iterable[tuple[float, float]]) -> None:
        """Set each ``(price, amount)``; an amount of 0 removes the price's level.

        Raises
        ------
        ValueError
            For a new level priced NaN, which has no place in the order (the levels
            before it are set, it and those after it are not).
        """
        amounts, sign = self._amounts, self._sign
        ranks: Any = self._ranks  # a list, or past flat_max a SortedList
        pending = iter(levels)
        if isinstance(ranks, list):
            limit = self._flat_max
            for price, amount in pending:
                if amount == 0:
                    if amounts.pop(price, None) is not None:
                        del ranks[bisect_left(ranks, sign * price)]
                    continue
                if price not in amounts:
                    if price != price:
                        raise _nan(price)
                    insort(ranks, sign * price)
                    if len(ranks) > limit:  # a big snapshot: the rest into a sorted list
                        amounts[price] = amount
                        self._ranks = ranks = SortedList(ranks)
                        break
                amounts[price] = amount
        for price, amount in pending:  # a sorted list (from the start, or since the break)
            if amount == 0:
                if amounts.pop(price, None) is not None:
                    ranks.remove(sign * price)
                continue
            if price not in amounts:
                if price != price:
                    raise _nan(price)
                ranks.add(sign * price)
            amounts[price] = amount
        self._resized()

    def __setitem__(self, price: float, amount: float) -> None:
        """Set one level (an amount of 0 is kept: :meth:`apply` is the one that removes).

        Raises
        ------
        ValueError
            For a price of NaN.
        """
        amounts = self._amounts
        if price not in amounts:
            if price != price:
                raise _nan(price)
            self._add_rank(self._sign * price)
        amounts[price] = amount

    def pop(self, price: float, default: float | None = None) -> float | None:
        """Remove ``price``'s level and give its amount (``default`` if there is none)."""
        amount = self._amounts.pop(price, None)
        if amount is None:
            return default
        self._remove_rank(self._sign * price)
        return amount

    def popitem(self, index: int = -1) -> tuple[float, float]:
        """Remove and give the level at ``index`` in ascending price order.

        Raises
        ------
        IndexError
            If the side is empty, or ``index`` is out of range.
        """
        price = self._price_at(index)
        amount = self._amounts.pop(price)
        self._remove_rank(self._sign * price)
        return price, amount

    def trim(self, depth: int) -> list[float]:
        """Keep the best ``depth`` levels; give the prices removed."""
        ranks, sign = self._ranks, self._sign
        excess = len(ranks) - depth
        if excess <= 0:
            return []
        worst = ranks[:excess]
        del ranks[:excess]
        removed = [sign * rank for rank in worst]
        for price in removed:
            del self._amounts[price]
        self._resized()
        return removed

    def replace(self, prices: list[float], amounts: list[float]) -> None:
        """Make the side exactly these levels, given from the worst price to the best."""
        self._amounts = dict(zip(prices, amounts, strict=True))
        ranks = prices if self._sign > 0 else [-price for price in prices]
        # Sorted already; a sorted list stays one until it shrinks (as the changes leave it).
        self._ranks = ranks if isinstance(self._ranks, list) else SortedList(ranks)
        self._resized()

    def clear(self) -> None:
        """Remove every level."""
        self._amounts.clear()
        self._ranks = []

    # -- reading -----------------------------------------------------------------------

    def best(self) -> tuple[float, float] | None:
        """The best level, ``(price, amount)``; ``None`` on an empty side."""
        ranks = self._ranks
        if not ranks:
            return None
        price = self._sign * ranks[-1]
        return price, self._amounts[price]

    def best_price(self) -> float | None:
        """The best price; ``None`` on an empty side."""
        ranks = self._ranks
        return self._sign * ranks[-1] if ranks else None

    def best_prices(self, n: int | None = None) -> list[float]:
        """The best ``n`` prices (all by default), best first."""
        ranks, sign = self._ranks, self._sign
        found = ranks[::-1] if n is None else ranks[:-n - 1:-1] if n > 0 else []
        return found if sign > 0 else [-rank for rank in found]

    def best_levels(self, n: int | None = None) -> list[tuple[float, float]]:
        """The best ``n`` levels (all by default) as ``(price, amount)``, best first."""
        prices = self.best_prices(n)
        return list(zip(prices, map(self._amounts.__getitem__, prices), strict=True))

    def amount(self, price: float) -> float:
        """The amount at ``price``.

        Raises
        ------
        KeyError
            If no level has that price.
        """
        return self._amounts[price]

    def keys(self) -> list[float]:
        """Every price, ascending."""
        ranks = self._ranks
        return list(ranks) if self._sign > 0 else [-rank for rank in reversed(ranks)]

    def values(self) -> list[float]:
        """Every amount, in ascending price order."""
        amounts = self._amounts
        return [amounts[price] for price in self.keys()]

    def items(self) -> list[tuple[float, float]]:
        """Every ``(price, amount)``, in ascending price order."""
        amounts = self._amounts
        return [(price, amounts[price]) for price in self.keys()]

    def peekitem(self, index: int = -1) -> tuple[float, float]:
        """The level at ``index`` in ascending price order: ``-1`` is the highest.

        Raises
        ------
        IndexError
            If the side is empty, or ``index`` is out of range.
        """
        price = self._price_at(index)
        return price, self._amounts[price]

    def get(self, price: float, default: float | None = None) -> float | None:
        """The amount at ``price``, or ``default``."""
        return self._amounts.get(price, default)

    def __getitem__(self, price: float) -> float:
        return self._amounts[price]

    def __contains__(self, price: object) -> bool:
        return price in self._amounts

    def __len__(self) -> int:
        return len(self._amounts)

    def __iter__(self) -> Iterator[float]:
        return iter(self.keys())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Levels):
            return NotImplemented
        return self._sign == other._sign and self._amounts == other._amounts

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        side = "bid" if self._sign > 0 else "ask"
        return f"Levels({side!r}, {dict(self.items())!r})"

    # -- the ranks ---------------------------------------------------------------------

    def _price_at(self, index: int) -> float:
        """The price at ``index`` in ascending price order."""
        ranks = self._ranks
        size = len(ranks)
        if not -size <= index < size:
            raise IndexError(f"level index {index} out of range for {size} levels")
        position = index if self._sign > 0 else -1 - index  # asks: ranks run descending
        return self._sign * ranks[position]

    def _add_rank(self, rank: float) -> None:
        """Add one rank; a flat list grown past ``flat_max`` becomes a sorted list."""
        ranks = self._ranks
        if isinstance(ranks, list):
            insort(ranks, rank)
            if len(ranks) > self._flat_max:
                self._ranks = SortedList(ranks)
        else:
            ranks.add(rank)

    def _remove_rank(self, rank: float) -> None:
        """Remove one rank; a sorted list shrunk to half of ``flat_max`` turns flat again."""
        ranks = self._ranks
        if isinstance(ranks, list):
            del ranks[bisect_left(ranks, rank)]
        else:
            ranks.remove(rank)
            if len(ranks) <= self._flat_max // 2:
                self._ranks = list(ranks)

    def _resized(self) -> None:
        """Switch between a flat list and a sorted list of lists as the side grows or shrinks."""
        ranks = self._ranks
        size = len(ranks)
        if isinstance(ranks, list):
            if size > self._flat_max:
                self._ranks = SortedList(ranks)
        elif size <= self._flat_max // 2:
            self._ranks = list(ranks)


def _nan(price: float) -> ValueError:
    return ValueError(f"a book level priced {price!r} has no place among the prices: "
                      "not applied")
