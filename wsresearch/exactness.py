"""Exact values: which decimal numbers a ``Float64`` column keeps, and their exact form.

Prices and amounts are ``Float64`` in every table, for arithmetic. A float64 keeps every
decimal of up to 15 significant digits exactly: the float nearest the exchange's text
prints back as that text (``repr(float("64999.99")) == "64999.99"``), so the decimal value
the exchange sent can always be recovered from the float. Prices and sizes are quoted in
ticks and lots, far below 15 digits, so they are kept. Longer numbers do occur in volumes
and open interest (OKX sends ``"2216113.01000000309"``, 18 digits); their nearest float is
a different number.

So that no precision is lost silently:

- :func:`inexact_numbers` finds, in a message's text, every decimal number the float
  nearest to it does not give back. The pipeline runs it on each valid message (a scan
  of its bytes, about 0.4 µs for a 240-byte message; the exact check runs only on the
  rare numbers of 17 characters or more) and counts the messages holding one
  (``Counts.inexact``); the quality report flags them. Long integers (ids, times) are
  passed over at the cost of a substring search. Their rows keep the nearest float;
  the exact text is in the recording, which keeps every message as it arrived.
- :func:`exact` adds, beside the float columns of a table, their fixed-precision form:
  ``Decimal(38, scale)`` columns holding the exchange's decimal value, for tick
  arithmetic and sums that must not drift. It is exact for every value of a message
  that was not counted inexact.

Only numbers written with a decimal point are checked: an integer (an id, a time) goes
to an integer column, which holds it exactly or refuses the message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal

import polars as pl

__all__ = ["SUSPECT_LENGTH", "SUSPECT_PATTERN", "exact", "inexact_numbers", "may_be_inexact",
           "may_be_inexact_batch"]

_FLOAT_DIGITS = 15
"""Significant digits a float64 always gives back (DBL_DIG)."""
_SUSPECT_LENGTH = _FLOAT_DIGITS + 2
"""The shortest text that can hold more: 16 digits and a point."""

# One byte per character: digits and the point become "0", anything else a space; a
# number that needs checking is then a run of _SUSPECT_LENGTH zeros, found by a
# substring search in C. (A regular expression scan costs 13 times as much.)
_DIGITS_AND_POINT = bytes(
    0x30 if (0x30 <= b <= 0x39 or b == 0x2E) else 0x20 for b in range(256))
_RUN = b"0" * _SUSPECT_LENGTH
# Digits become "0", the point stays, anything else a space: for the batch scan.
_DIGITS_THEN_POINT = bytes(
    0x30 if 0x30 <= b <= 0x39 else 0x2E if b == 0x2E else 0x20 for b in range(256))
_HALF = (_FLOAT_DIGITS + 1) // 2
_POINT_AFTER = b"." + b"0" * _HALF
_POINT_BEFORE = b"0" * _HALF + b"."
_NUMBER = re.compile(rf"[0-9.]{{{_SUSPECT_LENGTH},}}")

SUSPECT_LENGTH = _SUSPECT_LENGTH
"""The fewest characters (digits and a point) of a number a float may not keep exactly."""

SUSPECT_PATTERN = "|".join(rf"[0-9.]{{{before}}}\.[0-9.]{{{_SUSPECT_LENGTH - 1 - before}}}"
                           for before in range(_SUSPECT_LENGTH))
"""What :func:`may_be_inexact` looks for, as a regular expression polars runs over a column:
a run of digits and points long enough to need checking, with a point in it."""

_MAX_PRECISION = 38
"""Digits of polars' widest decimal."""


def may_be_inexact(text: str | bytes) -> bool:
    """Whether ``text`` holds a run of digits and points long enough to need checking.

    The cheap test :func:`inexact_numbers` starts with, for a hot path to call first:
    ``False`` for almost every message.
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    runs = data.translate(_DIGITS_AND_POINT)
    start = runs.find(_RUN)
    while start >= 0:  # a long run of digits: a decimal only if it holds a point
        end = runs.find(b" ", start)
        end = len(runs) if end < 0 else end
        if b"." in data[start:end]:
            return True
        start = runs.find(_RUN, end)
    return False


def may_be_inexact_batch(texts: Sequence[str | bytes]) -> bool:
    """Whether any of ``texts`` may hold a number to check: one scan for a whole batch.

    A decimal of 16 or more digits has at least 8 of them on one side of its point, so a
    batch with no point beside 8 digits holds none (long integers, such as times in ns,
    do not count). ``False`` skips the batch; ``True`` asks :func:`may_be_inexact` of each
    message.
    """
    if not texts:
        return False
    try:
        joined = "\n".join(texts)  # type: ignore[arg-type]  # bytes fall to the loop below
    except TypeError:
        return any(may_be_inexact(text) for text in texts)
    marked = joined.encode("utf-8", "surrogatepass").translate(_DIGITS_THEN_POINT)
    return _POINT_AFTER in marked or _POINT_BEFORE in marked


def inexact_numbers(text: str | bytes) -> list[str]:
    """The decimal numbers in ``text`` that the nearest float64 does not give back.

    Parameters
    ----------
    text
        A message as received (JSON text, or its UTF-8 bytes).

    Returns
    -------
    list of str
        Each such number as written (without its sign), in order; empty for almost
        every message.

    Examples
    --------
    >>> inexact_numbers('{"oi": "2216113.01000000309", "px": "64999.99000000"}')
    ['2216113.01000000309']
    """
    if not may_be_inexact(text):
        return []
    found = bytes(text).decode("utf-8", "replace") if not isinstance(text, str) else text
    return [number for number in _NUMBER.findall(found)
            if number.count(".") == 1 and not _kept(number)]


def _kept(number: str) -> bool:
    """Whether the float nearest ``number`` prints back as the same decimal value."""
    if number == ".":
        return True
    shortest = repr(float(number))
    # The common cases: the number is written as its float's shortest text (as JSON
    # encoders write floats), or that with trailing zeros ("1618678123.481570").
    # Otherwise compare the values exactly.
    if shortest == number or ("e" not in shortest
                              and _plain(shortest) == _plain(number)):
        return True
    return Decimal(number) == Decimal(shortest)


def _plain(number: str) -> str:
    """A decimal text without trailing zeros after its point (``"1.50"`` → ``"1.5"``)."""
    return number.rstrip("0").rstrip(".") if "." in number else number


def exact(frame: pl.DataFrame, columns: Iterable[str] | None = None,
          *, suffix: str = "_exact") -> pl.DataFrame:
    """``frame`` with the fixed-precision form of its float columns beside them.

    Each column ``c`` gets ``c + suffix``, a ``Decimal(38, scale)`` holding the decimal
    value the exchange sent (the shortest text that reads back as the float), with the
    column's smallest scale that holds every value. Decimal columns add, subtract and
    compare exactly: ``trades["price_exact"].sum()`` does not drift, and a price minus a
    tick is the next tick.

    Parameters
    ----------
    frame
        A table with float columns: a normalized table, or a native frame.
    columns
        The columns to convert; all ``Float64`` and ``Float32`` columns by default.
    suffix
        Appended to each column's name for its exact form.

    Returns
    -------
    polars.DataFrame
        ``frame`` with the new columns after the others; the float columns unchanged.

    Raises
    ------
    KeyError
        For a column the frame does not have.
    TypeError
        For a column that is not a float column.
    ValueError
        For a column whose values need more than 38 digits at one scale (a value that is
        not finite, or one of 1e20 beside one of 1e-20).

    Examples
    --------
    >>> import polars as pl
    >>> exact(pl.DataFrame({"price": [64999.99, 0.1]}))["price_exact"].to_list()
    [Decimal('64999.99'), Decimal('0.10')]
    """
    if columns is None:
        names = [n for n, dtype in frame.schema.items() if dtype in (pl.Float64, pl.Float32)]
    else:
        names = list(columns)
        for name in names:
            if name not in frame.columns:
                raise KeyError(f"no column {name!r} to make exact; columns: {frame.columns}")
            if frame.schema[name] not in (pl.Float64, pl.Float32):
                raise TypeError(f"column {name!r} is {frame.schema[name]}, not a float column")
    return frame.with_columns(
        pl.col(name).cast(pl.String).cast(_decimal_for(frame[name])).alias(name + suffix)
        for name in names)


def _decimal_for(column: pl.Series) -> pl.Decimal:
    """The narrowest-scale decimal type that holds every value of ``column`` exactly."""
    scale = whole = 0
    for value in column.drop_nulls().unique().to_list():
        number = Decimal(repr(value))
        if not number.is_finite():
            raise ValueError(f"column {column.name!r} holds {value}, which has no decimal form")
        _, digits, exponent = number.normalize().as_tuple()
        assert isinstance(exponent, int)  # finite
        scale = max(scale, -exponent)
        whole = max(whole, len(digits) + exponent)
    if scale + whole > _MAX_PRECISION:
        raise ValueError(
            f"column {column.name!r} needs {whole} digits before the point and {scale} after: "
            f"more than the {_MAX_PRECISION} a decimal column holds")
    return pl.Decimal(_MAX_PRECISION, scale)
