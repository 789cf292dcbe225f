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
from collections import deque
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
        self._by_target: dict[str, deque[tuple[int, str]]] = {}
        self._by_path: dict[str, deque[tuple[str, int, str]]] = {}
        self._unasked: deque[tuple[int, str]] = deque()  # recorded without their request
        self.responses = 0
        """Responses the recording holds (known once started)."""
        self.requests: list[str] = []
        """Every request target received, in order."""

    def _load(self) -> None:
        """Index the recorded responses: the kinds read first, the bodies only if any."""
        kind = pl.col("kind")
        if not any(part.filter(kind == "rest").height
                   for part in self._recording.columns(["kind"])):
            return
        for part in self._recording.columns(["kind", "stream", "code", "data"]):
            for url, code, body in part.filter(kind == "rest").select(
                    "stream", "code", "data").iter_rows():
                answer = (200 if code is None else int(code), body or "")
                self.responses += 1
                if url is None:
                    self._unasked.append(answer)
                    continue
                target = request_target(url)
                self._by_target.setdefault(target, deque()).append(answer)
                self._by_path.setdefault(urlsplit(target).path, deque()).append(
                    (target, *answer))

    async def prepare(self) -> None:
        """Read the recorded responses, off the event loop, once."""
        if not self._loaded:
            await asyncio.to_thread(self._load)
            self._loaded = True

    def answer(self, connection: ServerConnection, request: Request) -> Response:
        """The next recorded response to ``request``, or a 404 saying there is none."""
        self.requests.append(request.path)
        found = self._take(request.path)
        if found is None:
            return json_response(connection, HTTPStatus.NOT_FOUND, '{"msg":"the recording '
                                 'holds no more responses to this request"}')
        return json_response(connection, *found)

    def _take(self, target: str) -> tuple[int, str] | None:
        """The next recorded response to ``target`` (to its path, to no request), used up."""
        same = self._by_target.get(target)
        if same:
            answer = same.popleft()
            path = self._by_path[urlsplit(target).path]
            path.remove((target, *answer))
            return answer
        by_path = self._by_path.get(urlsplit(target).path)
        if not by_path:
            return self._unasked.popleft() if self._unasked else None
        other, status, body = by_path.popleft()
        self._by_target[other].remove((status, body))
        return status, body
