"""Ready-made feed specs, one module per exchange dialect, and the registry that lists them.

Each module exposes ``spec(symbols, channels, url=None, **options) -> FeedSpec``:
``binance``, ``coinbase``, ``kraken``, ``bybit`` and ``okx`` for those exchanges'
public market data (see ``docs/exchanges/``); ``generic`` is the embedded
simulator's own dialect, used by the demo and the tests; ``raw`` keeps any JSON
feed, grouped by one type field.

The registry says, for each of them, what the command line and a recording
need to know without reading the module: :func:`adapter` returns its
:class:`Adapter` record (its ``spec`` function, its APIs with their URLs and
channels, the options it takes), and :func:`rebuild` makes the spec a
recording was made with from the :class:`~wsresearch.spec.SpecOrigin` it kept.
An adapter's module, and its pydantic models, are imported when it is first
looked up, not when this package is.

Examples
--------
>>> from wsresearch.exchanges import adapter
>>> kraken = adapter("kraken")
>>> kraken.api_option, kraken.default_api, list(kraken.apis)
('api', 'v2', ['v2', 'v1', 'futures'])
>>> kraken.channels({"api": "futures"})
('trade', 'book', 'ticker_lite', 'ticker')
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .._catalog import ADAPTERS, EXCHANGES, unknown_adapter
from ..errors import RecordingFormatError, first_error
from ..spec import FeedSpec, SpecOrigin

__all__ = ["ADAPTERS", "EXCHANGES", "Adapter", "Api", "adapter", "rebuild"]


@dataclass(frozen=True, slots=True)
class Api:
    """One API of an exchange (or market, or product category): where it is and what it offers.

    Attributes
    ----------
    url
        Its public endpoint; ``None`` where there is none (the simulator's dialect).
    channels
        The channel names its adapter accepts, in the adapter's order.
    """

    url: str | None
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Adapter:
    """What an adapter module offers, stated once: for the CLI, recordings, and docs.

    Attributes
    ----------
    name
        The module's name in :mod:`wsresearch.exchanges`, as a recording's
        :class:`~wsresearch.spec.SpecOrigin` names it.
    spec
        The module's ``spec()`` function.
    apis
        Each API the adapter speaks, by the value of :attr:`api_option` that picks it.
    default_api
        The API used when :attr:`api_option` is not given.
    api_option
        The keyword of ``spec()`` that picks the API (``"api"``, ``"market"``,
        ``"category"``); ``None`` for an adapter with one API.
    options
        The keyword options of ``spec()`` that a user may set by name
        (``wsresearch record --option``): besides symbols, channels, the URL
        and connection settings.
    """

    name: str
    spec: Callable[..., FeedSpec]
    apis: Mapping[str, Api]
    default_api: str
    api_option: str | None = None
    options: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        """The adapter module's import path."""
        return f"{__name__}.{self.name}"

    def api(self, options: Mapping[str, Any] | None = None) -> Api:
        """The API that ``spec(**options)`` would speak.

        Raises
        ------
        ValueError
            If ``options`` pick an API the adapter does not have.
        """
        chosen = (options or {}).get(self.api_option or "", self.default_api)
        if not isinstance(chosen, str) or chosen not in self.apis:
            raise ValueError(f"unknown {self.name} {self.api_option} {chosen!r}; choose from "
                             f"{list(self.apis)}")
        return self.apis[chosen]

    def channels(self, options: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        """Every channel of the API that ``spec(**options)`` would speak.

        Raises
        ------
        ValueError
            If ``options`` pick an API the adapter does not have.
        """
        return self.api(options).channels

    def recorded_arguments(self, url: str | None) -> frozenset[str]:
        """The arguments this adapter records in a spec's origin: what a manifest may give it.

        Read off the adapter's own default spec, so they are exactly what it writes
        (symbols, channels, market options), never its other parameters (an API key,
        messages to send) nor its ``**overrides`` (any :class:`~wsresearch.spec.FeedSpec`
        field). Empty for an adapter that cannot build a default spec for ``url``.
        """
        try:
            origin = self.spec(url=url).origin
        except Exception:  # an adapter that cannot build a default: take nothing from a manifest
            return frozenset()
        return frozenset() if origin is None else frozenset(origin.arguments)


def _binance() -> Adapter:
    from . import binance

    return Adapter(
        name="binance", spec=binance.spec,
        apis={market: Api(url, binance.MARKET_CHANNELS[market])
              for market, url in binance.MARKETS.items()},
        default_api="spot", api_option="market",
        options=("market", "depth_speed", "kline_interval"),
    )


def _coinbase() -> Adapter:
    from . import coinbase

    return Adapter(
        name="coinbase", spec=coinbase.spec,
        apis={api: Api(url, coinbase.CHANNELS[api]) for api, url in coinbase.APIS.items()},
        default_api="advanced", api_option="api", options=("api",),
    )


def _kraken() -> Adapter:
    from . import kraken

    return Adapter(
        name="kraken", spec=kraken.spec,
        apis={api: Api(url, kraken.CHANNELS[api]) for api, url in kraken.APIS.items()},
        default_api="v2", api_option="api", options=("api", "book_depth", "ohlc_interval"),
    )


def _bybit() -> Adapter:
    from . import bybit

    return Adapter(
        name="bybit", spec=bybit.spec,
        apis={category: Api(url, bybit.CATEGORY_CHANNELS[category])
              for category, url in bybit.CATEGORIES.items()},
        default_api="linear", api_option="category",
        options=("category", "book_depth", "kline_interval"),
    )


def _okx() -> Adapter:
    from . import okx

    return Adapter(name="okx", spec=okx.spec,
                   apis={"public": Api(okx.URL, okx.CHANNELS),
                         "business": Api(okx.BUSINESS_URL, okx.CANDLE_CHANNELS)},
                   default_api="public", api_option="api", options=("api",))


def _generic() -> Adapter:
    from . import generic

    return Adapter(name="generic", spec=generic.spec,
                   apis={"generic": Api(None, generic.CHANNELS)}, default_api="generic",
                   options=("api_key", "app_ping"))


def _raw() -> Adapter:
    from . import raw

    return Adapter(name="raw", spec=raw.spec, apis={"json": Api(None, raw.CHANNELS)},
                   default_api="json", options=("type_field", "subscribe"))


_RECORDS: dict[str, Callable[[], Adapter]] = {
    "binance": _binance, "coinbase": _coinbase, "kraken": _kraken, "bybit": _bybit,
    "okx": _okx, "generic": _generic, "raw": _raw,
}


@functools.cache
def adapter(name: str) -> Adapter:
    """The :class:`Adapter` record of ``name``, importing its module on first lookup.

    Parameters
    ----------
    name
        One of :data:`ADAPTERS`.

    Returns
    -------
    Adapter
        Its record.

    Raises
    ------
    ValueError
        For a name that is not an adapter, listing those that are.
    """
    try:
        record = _RECORDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"no adapter {name!r}; wsresearch has {list(ADAPTERS)}") from None
    return record()


def rebuild(origin: SpecOrigin, url: str | None, *, source: str = "the recording") -> FeedSpec:
    """The spec an adapter built, made again from the origin it recorded, pointed at ``url``.

    Only the arguments the adapter itself records in an origin are taken
    (symbols, channels, market options): an origin read from a manifest is data,
    and must not set health, queue, de-dup or check timing fields of the spec, nor
    messages it sends. The fields the spec had replaced after the adapter built it
    (:attr:`~wsresearch.spec.SpecOrigin.replaced`: where quotes come from, the snapshot
    grid, the exchange's name, no books) are set again, within the spec's own bounds.

    Parameters
    ----------
    origin
        The adapter's name and the arguments it recorded.
    url
        Where the spec connects (a recording's source URL); ``None``: the adapter's default.
    source
        What the origin came from, for messages (a recording's path).

    Returns
    -------
    FeedSpec
        The rebuilt spec.

    Raises
    ------
    RecordingFormatError
        If the origin names an adapter this wsresearch does not have, gives
        arguments the adapter does not record or refuses, or replaced fields the
        rebuilt spec refuses.

    Examples
    --------
    >>> spec = adapter("okx").spec(["BTC-USDT"], ["trades"])
    >>> rebuild(spec.origin, spec.url) == spec
    True
    """
    name = origin.adapter
    try:
        found = adapter(name)
    except ValueError:
        raise RecordingFormatError(unknown_adapter(source, name)) from None
    declared = found.recorded_arguments(url)
    unknown = sorted(set(origin.arguments) - declared)
    if unknown:
        raise RecordingFormatError(
            f"{source}: the manifest's spec_origin gives the {name!r} adapter argument(s) "
            f"{unknown} it does not take from a recording; it takes {sorted(declared)}")
    try:
        spec = found.spec(url=url, **origin.arguments)
    except Exception as exc:  # any refusal of edited arguments, whatever it raises
        raise RecordingFormatError(
            f"cannot rebuild the {name!r} spec of {source}: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(spec, FeedSpec):
        raise RecordingFormatError(f"the {name!r} adapter did not build a FeedSpec for {source}")
    if not origin.replaced:
        return spec
    try:
        return spec.replace(**origin.replaced)
    except ValidationError as exc:
        raise RecordingFormatError(
            f"{source}: cannot set {origin.replaced} on the {name!r} spec rebuilt from its "
            f"spec_origin: {first_error(exc)}") from None
