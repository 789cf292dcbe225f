"""The simulator's REST API: book snapshots from the same market, on a port of their own.

Exchanges whose books start from a REST snapshot (Binance) serve it beside the stream.
:class:`RestServer` answers the dialect's snapshot paths from the simulated market, so a
snapshot agrees with the updates before and after it, and misbehaves on request
(:class:`SnapshotFault`): an error status (429 and 418 as Binance rate-limits, or 5xx), a
slow answer, or a stale snapshot (an update id older than the stream's).

It is an :class:`~wsresearch._http.HttpServer`: the simulator needs no server library
beside ``websockets``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from ..._http import HttpServer, json_response

if TYPE_CHECKING:
    from .dialects import Dialect
    from .market import Market

__all__ = ["RestServer", "SnapshotFault"]


@dataclass
class SnapshotFault:
    """How the next ``times`` snapshot requests misbehave.

    Attributes
    ----------
    status
        Answer with this HTTP status instead (429, 418, 500, 503...); ``None``: a snapshot.
    delay
        Seconds to wait before answering.
    stale
        Answer with a snapshot whose update id is this many updates old (``0``: current).
    times
        How many requests it applies to.
    """

    status: int | None = None
    delay: float = 0.0
    stale: int = 0
    times: int = 1


class RestServer(HttpServer):
    """Book snapshots over HTTP for one simulator (see the module docs).

    Parameters
    ----------
    dialect
        The simulator's dialect: :meth:`~wsresearch.testing.Dialect.rest` answers a path.
    market
        The simulator's market.
    host
        Where to listen (a free port is chosen).
    """

    def __init__(self, dialect: Dialect, market: Market, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self._dialect = dialect
        self._market = market
        self._faults: list[SnapshotFault] = []

    def fault(self, fault: SnapshotFault) -> None:
        """Make the next ``fault.times`` snapshot requests misbehave as ``fault`` says."""
        if fault.times < 1 or fault.delay < 0 or fault.stale < 0:
            raise ValueError(f"a snapshot fault needs times >= 1, delay >= 0, stale >= 0: "
                             f"{fault}")
        if fault.status is not None and not 400 <= fault.status <= 599:
            raise ValueError(f"a snapshot fault's status is an HTTP error (400-599), got "
                             f"{fault.status}")
        self._faults.append(fault)

    async def answer(self, connection: ServerConnection, request: Request) -> Response:
        """A snapshot of the market, or the fault asked for."""
        parts = urlsplit(request.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        fault = self._take_fault()
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            return _json(connection, fault.status, {"code": -1003, "msg": "simulated"})
        body = self._dialect.rest(parts.path, query, self._market,
                                  0 if fault is None else fault.stale)
        if body is None:
            return _json(connection, HTTPStatus.NOT_FOUND, {"code": -1, "msg": "no such path"})
        return _json(connection, HTTPStatus.OK, body)

    def _take_fault(self) -> SnapshotFault | None:
        if not self._faults:
            return None
        fault = self._faults[0]
        fault.times -= 1
        if fault.times == 0:
            self._faults.pop(0)
        return fault


def _json(connection: ServerConnection, status: int, body: Any) -> Response:
    return json_response(connection, status, json.dumps(body, separators=(",", ":")))
