"""Text from outside the program (server strings, paths, arguments) made safe to print."""

from __future__ import annotations

__all__ = ["printable"]


def printable(text: str) -> str:
    r"""``text`` with control characters escaped: one line, that cannot drive a terminal.

    Examples
    --------
    >>> printable("maintenance\x1b[2J\nover")
    'maintenance\\x1b[2J\\nover'
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
