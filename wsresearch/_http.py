"""Local HTTP servers made of a ``websockets`` server that never upgrades.

``process_request`` answers every request with an HTTP response before any WebSocket
handshake, so the package serves REST (the simulator's snapshots, a recording's REST
responses played again) with no other server library.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from ._ports import listening_url

__all__ = ["HttpServer", "json_response"]


class HttpServer(ABC):
    """An HTTP server on a free loopback port: :meth:`answer` makes each response.

    :attr:`requests` lists what was asked, in order.

    Parameters
    ----------
    host
        Where to listen (a free port is chosen).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._server: Server | None = None
        self.requests: list[str] = []
        """Every request target (path and query) received, in order."""

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        ws_url = listening_url(self._server, self.host, "the REST server is not running")
        return "http" + ws_url.removeprefix("ws")

    async def start(self) -> None:
        """Start listening (once :meth:`prepare` is done)."""
        if self._server is None:
            await self.prepare()
            self._server = await serve(_refuse, self.host, 0, process_request=self._respond)

    async def stop(self) -> None:
        """Stop listening."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def prepare(self) -> None:  # noqa: B027  (a hook: most servers need nothing)
        """What to do before the first start: nothing unless a server says otherwise."""

    async def _respond(self, connection: ServerConnection, request: Request) -> Response:
        self.requests.append(request.path)
        return await self.answer(connection, request)

    @abstractmethod
    async def answer(self, connection: ServerConnection, request: Request) -> Response:
        """The response to ``request``."""


def json_response(connection: ServerConnection, status: int, text: str) -> Response:
    """A response of ``status`` whose body is the JSON ``text``."""
    response = connection.respond(status, text)
    response.headers["Content-Type"] = "application/json"
    return response


async def _refuse(connection: ServerConnection) -> None:
    """Never reached: every request is answered before any upgrade."""
    await connection.close()
