"""An embedded exchange simulator: a real ``websockets`` server on 127.0.0.1.

It speaks a dialect (``profile``: its own ``generic`` one, or Binance's,
Coinbase's, Kraken's, Bybit's or OKX's, see :mod:`wsresearch.testing.sim.dialects`),
streams seeded market data (:mod:`~wsresearch.testing.sim.market`), and injects the
faults real exchanges inflict, either on a script (:class:`Fault` with an
``at`` time, for demos) or on demand from a test (``await sim.disconnect()``,
``sim.silence("trade", 5)``...), which keeps tests free of timing guesses.

Market events are generated once and broadcast to every subscribed
connection; sequence numbers run per symbol and stream across connections, so
a client that was away sees the gap as an exchange would show it.

Faults
------
``disconnect``      close every connection, abruptly (``code=None``: the
                    client sees 1006) or with ``code``
``reject_auth``     the next ``count`` auth requests are closed with 4401
``rate_limit``      close every connection with ``code`` (4429 default, or 1013)
``silence``         stop sending ``stream`` for ``duration`` seconds
``duplicate``       send each of the next ``count`` trades twice
``sequence_gap``    skip ``count`` sequence numbers on the next event (of
                    ``stream`` if given; exchange profiles: of the stream the
                    adapter tracks)
``burst``           send ``count`` trades at once
``no_pong``         stop reading (so no pongs) and sending for ``duration``:
                    a half-open connection
``malformed``       send ``count`` bad frames: broken JSON, binary, wrong
                    schema, unknown type, non-object JSON

On the command line, and in :func:`parse_fault`, a fault is written
``KIND@SECONDS[:key=value,...]``, e.g. ``silence@9:stream=ticker,duration=4``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from ..._ports import check_port, listening_url
from ...clock import Clock, SystemClock
from ...errors import first_error
from ...spec import FeedSpec
from .dialects import PROFILES, Subscriber, dialect
from .market import Market
from .rest import RestServer, SnapshotFault

__all__ = ["PROFILES", "Fault", "FaultKind", "Simulator", "parse_fault"]

log = logging.getLogger(__name__)

FaultKind = Literal[
    "disconnect", "reject_auth", "rate_limit", "silence", "duplicate", "sequence_gap", "burst",
    "no_pong", "malformed", "bad_snapshot", "bad_checksum",
]
"""The kinds of :class:`Fault`, described in the module docs."""

_MALFORMED: tuple[str | bytes, ...] = (
    "{not json",
    b"\xff\xfe\x00binary",
    '{"type":"trade","symbol":"BTC-USD"}',
    '{"type":"mystery","x":1}',
    "[1,2,3]",
    '{"type":"trade","symbol":"BTC-USD","seq":"x","trade_id":1,"price":"1","size":"1",'
    '"side":"hold","ts":0}',
)


class Fault(BaseModel):
    """One scripted fault, ``at`` seconds after the first client connects.

    Parameters
    ----------
    kind
        Which fault (see the module docs).
    at
        Seconds after the first connection opened.
    code
        Close code for ``disconnect`` (``None``: abrupt) and ``rate_limit``.
    stream
        Stream for ``silence`` (and optionally ``sequence_gap``).
    duration
        Seconds for ``silence`` and ``no_pong``.
    count
        How many, for ``reject_auth``, ``duplicate``, ``sequence_gap``, ``burst``,
        ``malformed``, ``bad_snapshot`` and ``bad_checksum``.
    status
        The HTTP status of a ``bad_snapshot`` (429, 418, 5xx); with none, the snapshots
        answer ``duration`` seconds late.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    kind: FaultKind
    at: float = Field(0.0, ge=0)
    code: int | None = Field(None, ge=1000, le=4999)
    stream: str | None = None
    duration: float = Field(0.0, ge=0)
    count: int = Field(1, ge=1)
    status: int | None = Field(None, ge=400, le=599)

    @model_validator(mode="after")
    def _check(self) -> Fault:
        if self.code in (1005, 1006, 1015):
            raise ValueError(f"close code {self.code} cannot be sent; use code=None for abrupt")
        if self.kind == "silence" and not self.stream:
            raise ValueError("a silence fault needs stream=")
        if self.kind in ("silence", "no_pong") and self.duration <= 0:
            raise ValueError(f"a {self.kind} fault needs duration > 0")
        if self.kind == "bad_snapshot" and self.status is None and self.duration <= 0:
            raise ValueError("a bad_snapshot fault needs status= (an HTTP error) or "
                             "duration > 0 (a slow answer)")
        return self


def parse_fault(text: str) -> Fault:
    """Parse ``KIND@SECONDS[:key=value,...]``, e.g. ``silence@9:stream=ticker,duration=4``.

    The form the command line takes (``wsresearch simulate --fault``); ``@SECONDS``
    may be left out (``at`` 0).

    Parameters
    ----------
    text
        The fault, written as above.

    Returns
    -------
    Fault
        The fault, validated.

    Raises
    ------
    ValueError
        With a one-line reason.

    Examples
    --------
    >>> parse_fault("disconnect@5:code=1001")
    Fault(kind='disconnect', at=5.0, code=1001, stream=None, duration=0.0, count=1, status=None)
    """
    head, _, options = text.partition(":")
    kind, at_sep, at = head.partition("@")
    fields: dict[str, Any] = {"kind": kind, "at": at if at_sep else 0.0}
    for option in filter(None, options.split(",")):
        key, eq, value = option.partition("=")
        if not eq:
            raise ValueError(f"fault option {option!r} is not key=value")
        fields[key.strip()] = value.strip()
    try:
        return Fault.model_validate(fields)
    except ValidationError as exc:
        raise ValueError(f"bad fault {text!r}: {' '.join(first_error(exc).split())}") from None


@dataclass(eq=False)
class _Client:
    """One accepted connection: its socket, and its subscriptions in the dialect's terms."""

    ws: ServerConnection
    index: int
    frozen: bool = False
    sub: Subscriber = field(default_factory=lambda: Subscriber(0))


class Simulator:
    """A local exchange that streams seeded data and misbehaves on request.

    Parameters
    ----------
    profile
        The dialect (see :data:`PROFILES`).
    faults
        Scripted faults, timed from the first connection.
    seed
        Seed for prices, sizes and choice of symbols.
    symbols
        Symbols traded, in the profile's spelling (default: the profile's own).
    rates
        Events per second per market stream. Generic: ``trade`` 20, ``ticker`` 10,
        ``order`` 1/30. Exchange profiles: ``trade`` 20, ``ticker`` 10, ``book``
        20, ``heartbeat`` 1 where the exchange sends heartbeats, and ``mark`` 2 and
        ``liquidation`` 1/20 where it has perpetuals (Binance USD-M, Bybit, OKX swaps).
    host, port
        Where to listen: loopback, and a free port by default.
    clock
        Source of exchange timestamps.
    keep_sent
        Keep every frame sent, per connection, in :attr:`sent_log` (for tests).
    compression
        ``"deflate"`` (websockets' default) compresses every message where the client
        agrees to permessage-deflate; ``None`` sends them uncompressed, as many exchanges
        do (a client then reads each whole message ahead of websockets' parser).

    Examples
    --------
    >>> import asyncio
    >>> from wsresearch import Feed
    >>> async def main():
    ...     async with Simulator(seed=1) as sim:
    ...         async with Feed(sim.spec()) as feed:
    ...             await sim.disconnect()          # abrupt: the feed reconnects by itself
    ...             while feed.generation < 2:
    ...                 await asyncio.sleep(0.01)
    ...             return feed.stats.last_close.code
    >>> asyncio.run(main())
    1006
    """

    def __init__(
        self,
        profile: str = "generic",
        faults: Sequence[Fault] = (),
        seed: int = 0,
        *,
        symbols: Sequence[str] | None = None,
        rates: dict[str, float] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        keep_sent: bool = False,
        compression: str | None = "deflate",
    ) -> None:
        if compression not in ("deflate", None):
            raise ValueError(f"compression is 'deflate' or None, got {compression!r}")
        self._compression = compression
        self._dialect = dialect(profile)
        streams = self._dialect.rates
        rates = dict(streams if rates is None else rates)
        bad = {k: v for k, v in rates.items() if k not in streams or v <= 0}
        if bad:
            raise ValueError(f"rates must be positive, for the {profile} streams "
                             f"{list(streams)}; got {bad}")
        if symbols is None:
            symbols = self._dialect.symbols
        if not symbols or isinstance(symbols, str):
            raise ValueError("the simulator needs a list of at least one symbol")
        self.profile = profile
        self.rates = rates
        self.faults = tuple(self._known_stream(Fault.model_validate(f)) for f in faults)
        self.seed = seed
        self.host = host
        self.port = check_port(port)
        self._clock = clock or SystemClock()
        self._market = Market(symbols, random.Random(seed), self._clock.time_ns,
                              consistent="book" in streams)
        self._rest = (RestServer(self._dialect, self._market, host)
                      if self._dialect.serves_rest else None)
        self._clients: set[_Client] = set()
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._first_connection = asyncio.Event()
        self._silenced: dict[str, float] = {}
        self._duplicates = 0
        self._auth_rejections = 0
        self._malformed = itertools.cycle(_MALFORMED)
        self.connections = 0
        """Connections accepted so far."""
        self.sent = 0
        """Frames sent, over every connection."""
        self.received: list[str] = []
        """Text frames received from clients, in order."""
        self.keep_sent = keep_sent
        self.sent_log: list[tuple[int, str | bytes]] = []
        """``(connection index, frame)`` for every frame sent, when ``keep_sent``."""

    # -- lifecycle -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """``ws://host:port`` of the running simulator."""
        return listening_url(self._server, self.host,
                             "the simulator is not running: use 'async with Simulator() as sim'")

    @property
    def rest_url(self) -> str | None:
        """``http://host:port`` of the simulator's REST API (book snapshots).

        For dialects whose exchange serves one (Binance); ``None`` for the others.
        """
        return None if self._rest is None else self._rest.url

    @property
    def rest_requests(self) -> list[str]:
        """Every REST request received (path and query), in order."""
        return [] if self._rest is None else list(self._rest.requests)

    @property
    def open_connections(self) -> int:
        """Client connections open right now."""
        return len(self._clients)

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start listening and generating data."""
        if self._server is not None:
            return
        self._server = await serve(
            self._serve, self.host, self.port, ping_interval=None, close_timeout=1,
            max_size=None, compression=self._compression,
        )
        if self._rest is not None:
            await self._rest.start()
        self._spawn(self._generate())
        if self.faults:
            self._spawn(self._run_script())

    async def stop(self) -> None:
        """Stop generating, close every connection and the listening socket."""
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server, self._server = self._server, None
        if server is not None:
            for client in list(self._clients):
                if client.frozen:
                    client.ws.transport.abort()
            server.close()
            await server.wait_closed()
        if self._rest is not None:
            await self._rest.stop()

    def spec(self, **options: Any) -> FeedSpec:
        """The :class:`~wsresearch.spec.FeedSpec` for this profile, pointed at :attr:`url`.

        ``options`` go to the adapter's ``spec()`` (``channels=``, ``connection=``...);
        the symbols are the simulator's unless given. ``url=`` points the spec
        elsewhere, e.g. at a :class:`~wsresearch.testing.FaultProxy` in front of it.
        """
        url = options.pop("url") if "url" in options else self.url
        symbols = options.pop("symbols", self._market.symbols)
        if self._rest is not None and "rest_url" not in options:
            options["rest_url"] = self._rest.url
        return self._dialect.spec(url, symbols, **options)

    # -- faults on demand -------------------------------------------------------------

    async def disconnect(self, code: int | None = None, reason: str = "") -> None:
        """Close every connection: abruptly when ``code`` is ``None``, else with ``code``."""
        self._checked("disconnect", code=code)
        clients = list(self._clients)
        for client in clients:
            if code is None:
                client.ws.transport.abort()
            else:
                await client.ws.close(code, reason)
        for client in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.ws.wait_closed(), 2)

    async def rate_limit(self, code: int = 4429) -> None:
        """Close every connection with a rate-limit code (4429 or 1013)."""
        await self.disconnect(code, "rate limited")

    def reject_auth(self, times: int = 1) -> None:
        """Close the next ``times`` auth requests with 4401."""
        self._auth_rejections += self._checked("reject_auth", count=times).count

    def silence(self, stream: str, duration: float) -> None:
        """Send nothing on ``stream`` for ``duration`` seconds.

        Nor on the streams the dialect sends on its channel (Bybit's marks go with its
        tickers), so that the channel goes quiet.
        """
        self._checked("silence", stream=stream, duration=duration)
        until = asyncio.get_running_loop().time() + duration
        for name in (stream, *self._dialect.sent_with.get(stream, ())):
            self._silenced[name] = until

    def duplicate(self, count: int = 1) -> None:
        """Send each of the next ``count`` trades twice."""
        self._duplicates += self._checked("duplicate", count=count).count

    def sequence_gap(self, count: int = 1, stream: str | None = None) -> None:
        """Skip ``count`` sequence numbers on the next event of ``stream``.

        ``None``: the next event of any stream (generic), or the stream the
        profile's adapter tracks (exchange profiles: ``book``, or ``trade`` for
        Kraken v2, or every connection's ``sequence_num`` for Coinbase).
        """
        self._checked("sequence_gap", count=count, stream=stream)
        if stream is None and self._dialect.connection_sequence:
            for client in self._clients:
                client.sub.skip += count
            return
        if stream is None:
            stream = self._dialect.gap_stream
        self._market.skip[stream] = self._market.skip.get(stream, 0) + count

    async def burst(self, count: int) -> None:
        """Send ``count`` trades at once."""
        for _ in range(self._checked("burst", count=count).count):
            await self._broadcast("trade", *self._market.event("trade"))

    async def malformed(self, count: int = 1) -> None:
        """Send ``count`` malformed frames to every client."""
        for _ in range(self._checked("malformed", count=count).count):
            frame = next(self._malformed)
            for client in list(self._clients):
                await self._send(client, frame)

    def snapshot_fault(self, status: int | None = None, delay: float = 0.0, stale: int = 0,
                       times: int = 1) -> None:
        """Make the next ``times`` REST book snapshots misbehave.

        They fail with HTTP ``status`` (429, 418, 5xx), answer after ``delay`` seconds,
        or are ``stale`` updates old.

        Raises
        ------
        ValueError
            If this profile's exchange serves no REST snapshot, or for a bad value.
        """
        if self._rest is None:
            raise ValueError(f"the {self.profile} profile serves no REST snapshots")
        self._rest.fault(SnapshotFault(status, delay, stale, times))

    def withhold_book_snapshots(self) -> None:
        """Answer book subscriptions with no in-band snapshot from now on.

        OKX's new procedure: the client fetches the REST one.

        Raises
        ------
        ValueError
            For a profile whose exchange always sends it.
        """
        if not self._dialect.can_withhold_snapshots:
            raise ValueError(f"the {self.profile} profile always sends its book snapshots")
        self._market.withhold_snapshots = True

    def checksum_fault(self, times: int = 1) -> None:
        """Send the next ``times`` book updates with a wrong checksum (Kraken, OKX)."""
        if times < 1:
            raise ValueError(f"checksum_fault: times must be >= 1, got {times}")
        self._market.bad_checksums += times

    def stop_pongs(self, duration: float) -> None:
        """Make every current connection half-open for ``duration`` seconds."""
        self._checked("no_pong", duration=duration)
        for client in list(self._clients):
            client.frozen = True
            client.ws.transport.pause_reading()
            self._spawn(self._thaw(client, duration))

    async def apply(self, fault: Fault) -> None:
        """Inject ``fault`` now."""
        kind = fault.kind
        if kind == "disconnect":
            await self.disconnect(fault.code, "simulated disconnect")
        elif kind == "rate_limit":
            await self.rate_limit(fault.code or 4429)
        elif kind == "reject_auth":
            self.reject_auth(fault.count)
        elif kind == "silence":
            self.silence(fault.stream or "", fault.duration)
        elif kind == "duplicate":
            self.duplicate(fault.count)
        elif kind == "sequence_gap":
            self.sequence_gap(fault.count, fault.stream)
        elif kind == "burst":
            await self.burst(fault.count)
        elif kind == "no_pong":
            self.stop_pongs(fault.duration)
        elif kind == "bad_snapshot":
            self.snapshot_fault(fault.status, fault.duration, times=fault.count)
        elif kind == "bad_checksum":
            self.checksum_fault(fault.count)
        else:
            await self.malformed(fault.count)

    # -- internals ---------------------------------------------------------------------

    def _checked(self, kind: FaultKind, **fields: Any) -> Fault:
        """The fault an on-demand call asks for, checked as a scripted one would be.

        Raises
        ------
        ValueError
            In one line, for a count below 1, a negative or NaN duration, a close
            code that cannot be sent, or a stream this profile does not have.
        """
        try:
            fault = Fault(kind=kind, **fields)
        except ValidationError as exc:
            raise ValueError(f"{kind}: {first_error(exc)}") from None
        return self._known_stream(fault)

    def _known_stream(self, fault: Fault) -> Fault:
        if fault.stream is not None and fault.stream not in self.rates:
            raise ValueError(f"{fault.kind}: no stream {fault.stream!r} in the {self.profile} "
                             f"profile; its streams: {list(self.rates)}")
        return fault

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, ws: ServerConnection) -> None:
        client = _Client(ws, self.connections, sub=Subscriber(self.connections))
        self.connections += 1
        self._clients.add(client)
        self._first_connection.set()
        try:
            async for raw in ws:
                if isinstance(raw, str):
                    self.received.append(raw)
                    await self._on_request(client, raw)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)

    async def _on_request(self, client: _Client, raw: str) -> None:
        if self._auth_rejections > 0 and self._dialect.is_auth_request(raw):
            self._auth_rejections -= 1
            await client.ws.close(4401, "invalid api key")
            return
        for frame in self._dialect.on_request(client.sub, raw, self._market):
            await self._send(client, frame)

    async def _send(self, client: _Client, frame: str | bytes) -> None:
        if client.frozen:
            return
        if client.ws.state is not State.OPEN:
            return
        # Logged before the await: send() writes at once when the connection is
        # open, so the log is in wire order even with several senders at a time.
        if self.keep_sent:
            self.sent_log.append((client.index, frame))
        self.sent += 1
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(frame)

    async def _broadcast(self, stream: str, symbol: str, body: dict[str, Any]) -> None:
        copies = 1
        if stream == "trade" and self._duplicates:
            self._duplicates -= 1
            copies = 2
        render = self._dialect.render
        for client in list(self._clients):
            for frame in render(client.sub, stream, symbol, body):
                for _ in range(copies):
                    await self._send(client, frame)

    async def _generate(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        due = {stream: start + 1 / rate for stream, rate in self.rates.items()}
        while True:
            stream = min(due, key=due.__getitem__)
            await asyncio.sleep(max(0.0, due[stream] - loop.time()))
            due[stream] += 1 / self.rates[stream]
            if self._silenced.get(stream, 0.0) > loop.time():
                continue
            await self._broadcast(stream, *self._market.event(stream))

    async def _run_script(self) -> None:
        await self._first_connection.wait()
        loop = asyncio.get_running_loop()
        start = loop.time()
        for fault in sorted(self.faults, key=lambda f: f.at):
            await asyncio.sleep(max(0.0, start + fault.at - loop.time()))
            log.info("simulator: injecting %s", fault)
            await self.apply(fault)

    async def _thaw(self, client: _Client, duration: float) -> None:
        await asyncio.sleep(duration)
        client.frozen = False
        if client in self._clients:
            client.ws.transport.resume_reading()
