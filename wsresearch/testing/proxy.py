"""A fault-injecting TCP proxy on 127.0.0.1, for testing what a feed does on a bad network.

:class:`FaultProxy` sits between a client and a real server and forwards bytes both ways
until told to misbehave. The faults are the network's, not the server's (for those, see
:class:`~wsresearch.testing.Simulator`):

==================  ===================================================================
``half_open()``     stop forwarding on every open connection, in both directions, and
                    close nothing: no FIN, no RST. The peers see silence, as when a NAT
                    or a link dies. New connections are forwarded normally.
``reset()``         abort every open connection with a TCP RST to both peers.
``latency(s)``      hold every chunk ``s`` seconds before forwarding it.
``throttle(bps)``   forward at most ``bps`` bytes a second in each direction.
``split(n)``        forward in writes of ``n`` bytes each (1: one TCP segment a byte,
                    as ``TCP_NODELAY`` is set), so WebSocket frames arrive in pieces.
``pause()``         hold everything (kept, in order) until ``resume()``.
``clear()``         remove every fault but a half-open state already applied.
==================  ===================================================================

Bytes forwarded each way are counted (``bytes_up`` towards the server, ``bytes_down``
towards the client), and so are connections and the writes ``split`` made.

Examples
--------
>>> import asyncio
>>> from wsresearch import Feed, Simulator
>>> async def main():
...     async with Simulator() as sim, FaultProxy(sim.url) as proxy:
...         proxy.split(1)
...         async with Feed(sim.spec(url=proxy.url)) as feed:
...             while feed.store.rows("trade") < 5:
...                 await asyncio.sleep(0.01)
...         return feed.stats.invalid, proxy.writes > proxy.bytes_down // 2
>>> asyncio.run(main())
(0, True)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .._ports import check_port, listening_url

__all__ = ["FaultProxy"]

_CHUNK = 65_536


@dataclass
class _Link:
    """One proxied connection: the client's and the server's streams, and its pumps."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    dead: bool = False  # half-open: bytes are read and dropped, nothing is closed


class FaultProxy:
    """Forward TCP between clients and ``target``, injecting network faults on request.

    Parameters
    ----------
    target
        Where to forward: a ``ws://host:port`` URL or ``(host, port)``. Loopback only.
    host, port
        Where to listen: loopback and a free port by default.

    Raises
    ------
    ValueError
        If ``target`` or ``host`` is not a loopback address.
    """

    def __init__(
        self, target: str | tuple[str, int], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if isinstance(target, str):
            parts = urlsplit(target)
            if parts.hostname is None or parts.port is None:
                raise ValueError(f"target must be ws://host:port, got {target!r}")
            target = (parts.hostname, parts.port)
        for address in (target[0], host):
            if address not in ("127.0.0.1", "localhost", "::1"):
                raise ValueError(f"FaultProxy works on loopback only, got {address!r}")
        self.target = target
        self.host = host
        self.port = check_port(port)
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []
        self._latency = 0.0
        self._rate: float | None = None
        self._split: int | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connections = 0
        """Client connections accepted so far."""
        self.bytes_up = 0
        """Bytes forwarded from clients to the server."""
        self.bytes_down = 0
        """Bytes forwarded from the server to clients."""
        self.writes = 0
        """Separate writes made while splitting (one TCP segment each at ``split(1)``)."""
        self.dropped = 0
        """Bytes read from half-open connections and never forwarded."""

    @property
    def url(self) -> str:
        """``ws://host:port`` of the proxy, for a client to connect to instead of the target."""
        return listening_url(self._server, self.host,
                             "the proxy is not running: use 'async with' or 'await start()'")

    @property
    def open_connections(self) -> int:
        """Proxied connections open now (half-open ones included)."""
        return len(self._links)

    async def start(self) -> None:
        """Listen on ``host:port``."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, self.host, self.port)

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        server, self._server = self._server, None
        self._flowing.set()
        for link in list(self._links):
            await self._close(link, rst=False)
        if server is not None:
            server.close()
            await server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- faults ------------------------------------------------------------------

    def half_open(self) -> None:
        """Silently stop forwarding on every open connection, both ways; close nothing."""
        for link in self._links:
            link.dead = True

    async def reset(self) -> None:
        """Abort every open connection with a TCP RST to both peers."""
        for link in list(self._links):
            await self._close(link, rst=True)

    def latency(self, seconds: float) -> None:
        """Hold every chunk ``seconds`` before forwarding it (0 removes the delay)."""
        if seconds < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {seconds}")
        self._latency = seconds

    def throttle(self, bytes_per_second: float | None) -> None:
        """Forward at most ``bytes_per_second`` each way (``None`` removes the limit)."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError(f"the rate must be > 0 bytes a second, got {bytes_per_second}")
        self._rate = bytes_per_second

    def split(self, size: int | None = 1) -> None:
        """Forward in writes of ``size`` bytes (``None`` forwards chunks as read)."""
        if size is not None and size < 1:
            raise ValueError(f"the split size must be >= 1 byte, got {size}")
        self._split = size

    def pause(self) -> None:
        """Hold every byte, in order, until :meth:`resume`."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward what :meth:`pause` held, and everything after."""
        self._flowing.set()

    def clear(self) -> None:
        """Remove latency, throttling, splitting and a pause (half-open links stay dead)."""
        self._latency, self._rate, self._split = 0.0, None, None
        self._flowing.set()

    # -- forwarding ----------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        for stream in (writer, up_writer):
            sock = stream.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(client=writer, server=up_writer)
        self._links.append(link)
        link.tasks = [
            asyncio.ensure_future(self._pump(link, reader, up_writer, up=True)),
            asyncio.ensure_future(self._pump(link, up_reader, writer, up=False)),
        ]
        await asyncio.gather(*link.tasks, return_exceptions=True)
        await self._close(link, rst=False)

    async def _pump(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool
    ) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:  # the sender closed: pass the FIN on, unless the link is dead
                    if not link.dead and writer.can_write_eof():
                        writer.write_eof()
                    return
                if link.dead:
                    self.dropped += len(data)
                    continue
                await self._flowing.wait()
                if self._latency:
                    await asyncio.sleep(self._latency)
                await self._forward(link, writer, data, up)
        except (ConnectionError, OSError):
            return

    async def _forward(
        self, link: _Link, writer: asyncio.StreamWriter, data: bytes, up: bool
    ) -> None:
        step = self._split or len(data)
        if self._rate is not None:  # at most a tenth of a second's worth at once
            step = max(1, min(step, int(self._rate / 10)))
        for start in range(0, len(data), step):
            if link.dead:
                self.dropped += len(data) - start
                return
            piece = data[start:start + step]
            writer.write(piece)
            await writer.drain()
            if up:
                self.bytes_up += len(piece)
            else:
                self.bytes_down += len(piece)
            if self._split is not None:
                self.writes += 1
                await asyncio.sleep(0)  # let the kernel send it as a segment of its own
            if self._rate is not None:
                await asyncio.sleep(len(piece) / self._rate)

    async def _close(self, link: _Link, rst: bool) -> None:
        if link in self._links:
            self._links.remove(link)
        for task in link.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for writer in (link.client, link.server):
            if rst:
                sock = writer.get_extra_info("socket")
                if sock is not None:  # SO_LINGER 0: close() sends RST, not FIN
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                writer.transport.abort()
            else:
                writer.close()
        for writer in (link.client, link.server):
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def __repr__(self) -> str:
        return (f"FaultProxy(target={self.target!r}, connections={self.connections}, "
                f"open={self.open_connections})")
