"""A recording's REST responses served again, for a feed that plays a recording live.

A book that starts from a REST snapshot (Binance, OKX) asks for one beside the stream. A
feed connected to a :class:`~wsresearch.replay.ReplayServer` must get the snapshot that
was recorded with the stream, not a fresh one from the exchange, which would not join the
recorded updates (and would leave the machine). :class:`RecordedRest` answers each
request with the next recorded response to the same request, with its recorded status.

It is an :class:`~wsresearch._http.HttpServer`: no server library beside ``websockets``.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import polars as pl
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from ._http import HttpServer, json_response

if TYPE_CHECKING:
    from .recording import Recording

__all__ = ["RecordedRest", "request_target"]


def request_target(url: str) -> str:
    """The part of a request URL a server sees: path and query (``/api/v3/depth?symbol=X``).

    >>> request_target("https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000")
    '/api/v3/depth?symbol=BTCUSDT&limit=1000'
    """
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class RecordedRest(HttpServer):
    """Answer requests with a recording's REST responses, each once, in recorded order.

    A request gets the next recorded response whose request had the same path and query;
    where none did, the next with the same path; where none did either, the next recorded
    without its request (an imported capture's: it did not say what was asked). When those
    are used up it gets a 404 saying so: the recording holds nothing more to answer it with.

    Parameters
    ----------
    recording
        The recording whose ``rest`` events are served.
    host
        Where to listen (a free port is chosen).
    """

    def __init__(self, recording: Recording, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self._recording = recording
        self._loaded = False
        # The responses not served yet, in recorded order: (request target or None, status,
        # body). A recording holds a few (a snapshot a book sync), so a request scans them.
        self._left: list[tuple[str | None, int, str]] = []

    def _load(self) -> None:
        """Read the recorded responses: the kinds first, the bodies only if there are any."""
        kind = pl.col("kind")
        if not any(part.filter(kind == "rest").height
                   for part in self._recording.columns(["kind"])):
            return
        for part in self._recording.columns(["kind", "stream", "code", "data"]):
            self._left += [(None if url is None else request_target(url),
                            200 if code is None else int(code), body or "")
                           for url, code, body in part.filter(kind == "rest").select(
                               "stream", "code", "data").iter_rows()]

    @property
    def left(self) -> int:
        """Recorded responses not served yet (all of them until the server starts: 0)."""
        return len(self._left)

    async def prepare(self) -> None:
        """Read the recorded responses, off the event loop, once."""
        if not self._loaded:
            await asyncio.to_thread(self._load)
            self._loaded = True

    async def answer(self, connection: ServerConnection, request: Request) -> Response:
        """The next recorded response to ``request``, or a 404 saying there is none."""
        found = self._take(request.path)
        if found is None:
            return json_response(connection, HTTPStatus.NOT_FOUND, '{"msg":"the recording '
                                 'holds no more responses to this request"}')
        return json_response(connection, *found)

    def _take(self, target: str) -> tuple[int, str] | None:
        """The next recorded response to ``target`` (to its path, to no request), used up."""
        path = urlsplit(target).path
        for fits in (lambda asked: asked == target,
                     lambda asked: asked is not None and urlsplit(asked).path == path,
                     lambda asked: asked is None):
            for index, (asked, status, body) in enumerate(self._left):
                if fits(asked):
                    del self._left[index]
                    return status, body
        return None
