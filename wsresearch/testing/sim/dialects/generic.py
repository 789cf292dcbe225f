"""The simulator's own dialect: flat JSON objects with a ``type``, as the generic adapter reads.

It is the dialect of the demo, the tests and the benchmarks: trades, tickers
and a mostly silent order stream, one subscribe message for every channel of
every symbol, an optional auth request (which the ``reject_auth`` fault
closes with 4401) and an app-level ping. See :mod:`wsresearch.exchanges.generic`
for the frames and the client side.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from ....exchanges import generic
from ..market import Market
from ._base import Dialect, Subscriber, to_json

__all__ = ["GenericDialect", "generic_frames"]


def _request(text: str) -> dict[str, Any]:
    """A request as a JSON object; empty (no ``op``) for anything else."""
    try:
        request = json.loads(text)
    except ValueError:
        return {}
    return request if isinstance(request, dict) else {}


class GenericDialect(Dialect):
    """The generic dialect: ``trade``, ``ticker`` and ``order`` events sent as they are made.

    A ``subscribe`` adds its channels and symbols to the connection's: it then
    gets every channel it asked for, of every symbol it asked for (all of the
    market's when it named none).
    """

    name = "generic"
    symbols = generic.SYMBOLS
    rates: ClassVar[dict[str, float]] = {"trade": 20.0, "ticker": 10.0, "order": 1 / 30}
    gap_stream = None
    adapter = generic.spec

    def is_auth_request(self, text: str) -> bool:
        """Whether ``text`` is ``{"op": "auth", ...}``."""
        return bool(_request(text).get("op") == "auth")

    def on_request(self, client: Subscriber, text: str, market: Market) -> list[str]:
        """``subscribe``, ``auth`` and ``ping``; anything else is an ``error``."""
        request = _request(text)
        op = request.get("op")
        if op == "subscribe":
            channels = [c for c in request.get("channels", []) if c in self.rates]
            client.channels.update(channels)
            client.symbols.update(request.get("symbols") or market.symbols)
            return [json.dumps({"type": "subscribed", "channels": channels})]
        if op == "auth":
            return ['{"type":"authenticated"}']
        if op == "ping":
            return ['{"type":"pong"}']
        return [json.dumps({"type": "error", "message": "unknown request"})]

    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """The event itself, to a connection subscribed to its stream and symbol."""
        if stream in client.channels and symbol in client.symbols:
            return [to_json(body)]
        return []


def generic_frames(
    n: int, seed: int = 0, symbols: Sequence[str] = generic.SYMBOLS
) -> Iterator[str]:
    """Yield ``n`` generic trade frames (for benchmarks and fixtures), deterministically.

    The same ``seed`` gives the same frames, with no simulator running: the
    timestamps start at a fixed instant and step by one ms.

    Parameters
    ----------
    n
        How many frames.
    seed
        Seed for prices, sizes, sides and symbols.
    symbols
        Symbols to trade.

    Yields
    ------
    str
        One trade frame, as the simulator sends it.

    Examples
    --------
    >>> frame = next(generic_frames(1))
    >>> frame.startswith('{"type":"trade"')
    True
    """
    timestamps = itertools.count(1_700_000_000_000_000_000, 1_000_000)
    market = Market(symbols, random.Random(seed), timestamps.__next__)
    for _ in range(n):
        yield to_json(market.event("trade")[1])
