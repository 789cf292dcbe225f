"""What every simulator dialect shares: the :class:`Dialect` contract, a connection's subscriptions.

A dialect is sans-I/O: it turns one text request into reply frames
(:meth:`Dialect.on_request`) and one market event into the frames a connection
gets (:meth:`Dialect.render`), and never touches a socket. The server
(:mod:`wsresearch.testing.sim.server`) owns the sockets and the faults, so each
exchange's module holds only that exchange's words. The helpers here write
numbers and times the way exchanges do (text without float noise, ms, ISO
8601 with ns, decimal seconds).
"""

from __future__ import annotations

import abc
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ....clock import NS_PER_S
from ....spec import FeedSpec
from ..market import Market

__all__ = [
    "DERIVATIVE_RATES",
    "RATES",
    "RATES_WITH_DERIVATIVES",
    "RATES_WITH_HEARTBEAT",
    "Dialect",
    "Subscriber",
    "to_iso",
    "to_json",
    "to_ms",
    "to_num",
    "to_seconds",
]

RATES: dict[str, float] = {"trade": 20.0, "ticker": 10.0, "book": 20.0}
"""Default events per second of an exchange dialect's market streams."""
RATES_WITH_HEARTBEAT: dict[str, float] = RATES | {"heartbeat": 1.0}
"""The same, for exchanges that also send a heartbeat every second."""
DERIVATIVE_RATES: dict[str, float] = {"mark": 2.0, "liquidation": 0.05}
"""Default events per second of the derivative streams: a mark about every second per
symbol (two symbols), a liquidation about every 20 seconds."""
RATES_WITH_DERIVATIVES: dict[str, float] = RATES | DERIVATIVE_RATES
"""The market streams of the dialects that serve perpetual contracts."""


def to_json(body: Any) -> str:
    """``body`` as compact JSON, as exchanges send it (no spaces)."""
    return json.dumps(body, separators=(",", ":"))


def to_ms(ns: int) -> int:
    """Ns since the epoch as whole ms."""
    return ns // 1_000_000


def to_iso(ns: int) -> str:
    """Ns since the epoch as ISO 8601 UTC text with nine fractional digits."""
    whole, rest = divmod(ns, NS_PER_S)
    moment = dt.datetime.fromtimestamp(whole, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:09d}Z"


def to_seconds(ns: int) -> str:
    """Ns as Kraken v1's decimal seconds, e.g. ``"1618678142.557535"``."""
    whole, rest = divmod(ns, NS_PER_S)
    return f"{whole}.{rest // 1000:06d}"


def to_num(value: Any) -> str:
    """A number as exchanges send it: text, without float noise."""
    return f"{float(value):.8f}".rstrip("0").rstrip(".")


@dataclass(eq=False)
class Subscriber:
    """One connection's subscriptions: (market stream, symbol) to the exchange channels.

    Attributes
    ----------
    index
        The connection's number, from 0, in the order they were accepted.
    subs
        ``(market stream, symbol)`` to the exchange channels that render it.
    heartbeats
        The connection asked for (or was subscribed to) the exchange's heartbeats.
    seq, skip
        The per-connection sequence number last sent, and how many the next one skips.
    last_ms
        The last ms stamped per ``(channel, symbol)``, see :meth:`distinct_ms`.
    last_id
        The last book update id sent per ``(channel, symbol)``: a top-of-book channel
        that carries it (Binance's ``bookTicker``) is sent only when the book changed.
    channels, symbols
        The generic dialect's subscriptions: every channel asked for, of every
        symbol asked for, whichever request asked.
    """

    index: int
    subs: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    heartbeats: bool = False
    seq: int = 0
    skip: int = 0
    last_ms: dict[tuple[str, str], int] = field(default_factory=dict)
    last_id: dict[tuple[str, str], int] = field(default_factory=dict)
    channels: set[str] = field(default_factory=set)
    symbols: set[str] = field(default_factory=set)

    def add(self, stream: str, symbol: str, channel: str) -> None:
        """Subscribe to ``stream`` events of ``symbol``, rendered as ``channel``."""
        self.subs.setdefault((stream, symbol), set()).add(channel)

    def remove(self, stream: str | None, symbol: str, channel: str | None = None) -> None:
        """Unsubscribe from ``stream`` events of ``symbol``: as ``channel``, or as any.

        An unknown stream (``None``) or a subscription that was never made is no error,
        as exchanges answer such an ``unsubscribe`` with success.
        """
        channels = self.subs.get((stream or "", symbol), set())
        if channel is None:
            channels.clear()
        else:
            channels.discard(channel)

    def distinct_ms(self, channel: str, symbol: str, ns: int) -> int:
        """``ns`` in ms, bumped past the last one sent on ``channel`` for ``symbol``.

        Exchanges that push a channel at most every few ms stamp each push with its
        own ms (OKX's tickers); a fast simulated market must not send two in one ms.
        """
        stamp = max(to_ms(ns), self.last_ms.get((channel, symbol), -1) + 1)
        self.sent_at(channel, symbol, stamp)
        return stamp

    def sent_at(self, channel: str, symbol: str, ms: int) -> None:
        """Note a push on ``channel`` for ``symbol`` stamped ``ms``: later ones go after it."""
        self.last_ms[(channel, symbol)] = max(ms, self.last_ms.get((channel, symbol), ms))

    def next_seq(self) -> int:
        """The next per-connection sequence number (a pending gap skips some)."""
        self.seq += 1 + self.skip
        self.skip = 0
        return self.seq


class Dialect(abc.ABC):
    """One wire format, as the simulator speaks it (a subclass per exchange API).

    Attributes
    ----------
    name
        The profile name.
    symbols
        Symbols traded by default, in the exchange's spelling.
    rates
        Default events per second per market stream.
    connection_sequence
        Sequence numbers count per connection (gaps go to connections, not symbols).
    gap_stream
        The market stream whose sequence numbers the adapter tracks, where a
        ``sequence_gap`` fault goes by default (``None``: the next event of any stream).
    """

    name: ClassVar[str]
    symbols: ClassVar[tuple[str, ...]]
    rates: ClassVar[dict[str, float]] = RATES
    connection_sequence: ClassVar[bool] = False
    gap_stream: ClassVar[str | None] = "book"
    adapter: ClassVar[Callable[..., FeedSpec]]
    """The adapter module's ``spec`` function."""
    fixed: ClassVar[dict[str, Any]] = {}
    """Adapter options that pick the API this dialect speaks (``api="v1"``...)."""
    defaults: ClassVar[dict[str, Any]] = {}
    """Adapter options used unless given: every channel the dialect serves."""
    serves_rest: ClassVar[bool] = False
    """The simulator serves the exchange's REST book snapshot (:meth:`rest`)."""
    snapshots_in_band: ClassVar[bool] = True
    """A book subscription is answered with a snapshot (Binance's is not: its books
    start from the REST one)."""
    can_withhold_snapshots: ClassVar[bool] = False
    """The in-band snapshot can be withheld (:attr:`Market.withhold_snapshots`), as OKX's
    new procedure does."""
    sent_with: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Market streams sent on another's channel (Bybit's marks on ``tickers``): silencing
    that one silences them too, so that its channel goes quiet."""

    def rest(self, path: str, query: dict[str, str], market: Market, stale: int = 0,
             ) -> Any | None:
        """The REST answer to ``path`` (a book snapshot), or ``None`` for no such path.

        ``stale``: answer with an update id that many updates old. Dialects whose
        exchange needs no REST snapshot serve nothing.
        """
        return None

    def spec(self, url: str, symbols: Sequence[str], **options: Any) -> FeedSpec:
        """The adapter's spec for this dialect, pointed at ``url``, subscribing to ``symbols``."""
        return type(self).adapter(symbols, url=url, **(self.defaults | options | self.fixed))

    def is_auth_request(self, text: str) -> bool:
        """Whether ``text`` asks to authenticate (the ``reject_auth`` fault closes it).

        Exchange dialects model public market data only, so none of their requests is one.
        """
        return False

    @abc.abstractmethod
    def on_request(self, client: Subscriber, text: str, market: Market) -> list[str]:
        """Handle one text request; return the frames to answer with."""

    @abc.abstractmethod
    def render(self, client: Subscriber, stream: str, symbol: str, body: dict[str, Any],
               ) -> list[str]:
        """The frames ``client`` gets for one market event (none if not subscribed)."""

    @staticmethod
    def channels_of(client: Subscriber, stream: str, symbol: str) -> set[str]:
        """The exchange channels ``client`` wants ``stream`` events of ``symbol`` as."""
        return client.subs.get((stream, symbol), set())
