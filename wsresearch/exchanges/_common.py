"""What the exchange adapters share: exact time conversions, argument checks, spec assembly.

Timestamps become ``int`` nanoseconds since the epoch, converted exactly from
the exchange's text (no float on the way: ``"1618678123.481570"`` seconds is
``1618678123481570000``). Prices and sizes become ``float64``: every decimal of
up to 15 significant digits survives the round trip (``repr`` of the float
gives the exchange's number back), which covers the tick sizes of every
listed market; arithmetic on them is float arithmetic. A longer number (volumes, open
interest) is counted by the pipeline (:mod:`wsresearch.exactness`), never lost silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from ..clock import NS_PER_S, iso_ns, ns_from_ms, scaled_ns
from ..config import ConnectionConfig, HeartbeatConfig
from ..spec import FeedSpec, OutboundMessage, SpecOrigin

__all__ = [
    "Flat",
    "NsFromIso",
    "NsFromMs",
    "NsFromSeconds",
    "NsFromUs",
    "app_ping",
    "assemble",
    "check_choice",
    "check_channels",
    "check_symbols",
]



NsFromMs = Annotated[int, BeforeValidator(ns_from_ms)]
"""Milliseconds since the epoch (number or text) → ns."""
NsFromUs = Annotated[int, BeforeValidator(lambda v: scaled_ns(v, 1_000))]
"""Microseconds since the epoch (number or text) → ns."""
NsFromSeconds = Annotated[int, BeforeValidator(lambda v: scaled_ns(v, NS_PER_S))]
"""Seconds since the epoch with a fraction (``"1618678123.481570"``) → ns."""
NsFromIso = Annotated[int, BeforeValidator(iso_ns)]
"""ISO 8601 UTC text (``"2021-04-17T16:43:30.244075Z"``) → ns."""


class Flat(BaseModel):
    """A message model that ignores the fields it does not name (exchanges add fields)."""

    model_config = ConfigDict(extra="ignore")


def check_choice(what: str, value: str, choices: Iterable[str], exchange: str) -> str:
    """``value`` if it is one of ``choices``; else a ValueError listing them."""
    options = list(choices)
    if value not in options:
        raise ValueError(f"unknown {exchange} {what} {value!r}; choose from {options}")
    return value


def check_channels(channels: Sequence[str], valid: Iterable[str], exchange: str) -> list[str]:
    """The channels, in order and without repeats, once each is known to be valid."""
    if isinstance(channels, str):
        raise TypeError(f"channels must be a list of names, not the string {channels!r}")
    options = list(valid)
    unknown = [c for c in channels if c not in options]
    if unknown:
        raise ValueError(f"unknown {exchange} channel(s) {unknown}; choose from {options}")
    if not channels:
        raise ValueError(f"no {exchange} channel given; choose from {options}")
    return list(dict.fromkeys(channels))


def check_symbols(
    symbols: Sequence[str], pattern: str, example: str, exchange: str, *, upper: bool = False,
    lower: bool = False,
) -> list[str]:
    """Symbols in the exchange's spelling, or a ValueError naming the bad ones.

    An adapter cannot know offline which markets are listed today; it checks
    the form (``pattern``), and the exchange's own rejection of a well-formed
    but unlisted symbol arrives as an error report (``Feed.on_error``).
    """
    if isinstance(symbols, str):
        raise TypeError(f"symbols must be a list, not the string {symbols!r}")
    if not symbols:
        raise ValueError(f"no {exchange} symbol given (e.g. {example!r})")
    spelled = [s.upper() if upper else s.lower() if lower else s for s in symbols]
    regex = re.compile(pattern)
    bad = [s for s, t in zip(symbols, spelled, strict=True) if not regex.fullmatch(t)]
    if bad:
        raise ValueError(
            f"not {exchange} symbol(s): {bad}; {exchange} symbols look like {example!r}"
        )
    return list(dict.fromkeys(spelled))


def app_ping(connection: ConnectionConfig, message: str | dict[str, Any],
             interval: float) -> ConnectionConfig:
    """``connection`` with an app-level ``message`` sent every ``interval`` seconds."""
    heartbeat = connection.heartbeat.model_dump() | {
        "ping_message": message, "interval": min(interval, connection.heartbeat.interval)}
    return connection.model_copy(update={"heartbeat": HeartbeatConfig.model_validate(heartbeat)})


def assemble(
    adapter: str,
    arguments: dict[str, Any],
    overrides: dict[str, Any],
    **fields: Any,
) -> FeedSpec:
    """A FeedSpec from an adapter's ``fields``, recording how to rebuild it, with ``overrides``.

    ``arguments`` are the JSON arguments of the adapter's ``spec()`` that
    decide rows (symbols, channels, options); :attr:`FeedSpec.origin` keeps them.

    A spec that keeps order books takes its quotes from them (``quotes="book"``) unless
    the adapter says otherwise: an exchange's ticker tells the top when a trade prints
    (Coinbase, Kraken spot), every second (Kraken Futures) or at most every 100 ms
    (Bybit, OKX), and the book tells every change of it.
    """
    subscribe: Sequence[OutboundMessage] = fields.pop("subscribe", ())
    fields.setdefault("exchange", adapter)  # the name normalized tables give the exchange
    fields.setdefault("quotes", None if fields.get("book_sync") is None else "book")
    spec = FeedSpec(
        subscribe=tuple(subscribe),
        origin=SpecOrigin(adapter=adapter, arguments=arguments),
        **fields,
    )
    return spec.replace(**overrides) if overrides else spec
