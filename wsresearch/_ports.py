"""Ports and URLs of the package's local servers (simulator, replay server, proxy)."""

from __future__ import annotations

from typing import Any


def check_port(port: int) -> int:
    """Return ``port`` if a TCP socket can listen on it; raise ``ValueError`` otherwise.

    Without this, a bad port surfaces from ``bind()`` as an ``OverflowError`` whose
    message names neither the argument nor what would do.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65_535:
        raise ValueError(f"port must be an integer from 0 (any free port) to 65535, got {port!r}")
    return port


def listening_url(server: Any, host: str, not_running: str) -> str:
    """``ws://host:port`` of a listening ``server`` (asyncio's or websockets').

    Raises
    ------
    RuntimeError
        With ``not_running``, when ``server`` is ``None``: it was never started.
    """
    if server is None:
        raise RuntimeError(not_running)
    return f"ws://{host}:{server.sockets[0].getsockname()[1]}"
