"""The one check every local server of the package makes on the port it is given."""

from __future__ import annotations


def check_port(port: int) -> int:
    """Return ``port`` if a TCP socket can listen on it; raise ``ValueError`` otherwise.

    Without this, a bad port surfaces from ``bind()`` as an ``OverflowError`` whose
    message names neither the argument nor what would do.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65_535:
        raise ValueError(f"port must be an integer from 0 (any free port) to 65535, got {port!r}")
    return port
