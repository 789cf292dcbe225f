"""Text from outside the program (server strings, paths, arguments) made safe to print."""

from __future__ import annotations

__all__ = ["first_line", "printable"]


def printable(text: str) -> str:
    r"""``text`` with control characters escaped: one line, that cannot drive a terminal.

    Examples
    --------
    >>> printable("maintenance\x1b[2J\nover")
    'maintenance\\x1b[2J\\nover'
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def first_line(error: BaseException) -> str:
    r"""The first line of ``error``'s message (a polars error runs on for several), or its type.

    Examples
    --------
    >>> first_line(ValueError("cannot use month offset\n\nresolved plan: ..."))
    'cannot use month offset'
    >>> first_line(KeyError())
    'KeyError'
    """
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
