"""What the package offers, by name, importable with nothing else.

The command line builds its parser (choices, defaults, help) and hands work to other
processes before it imports polars, pydantic or an adapter: ``wsresearch --help``
answers at once, and a worker's start-up is not spent on what its parent loaded. The
modules these names belong to import them from here, so each is stated once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

__all__ = ["ADAPTERS", "CHUNK_EVENTS", "DIALECT_CLASSES", "EXCHANGES", "FORMATS", "PROFILES",
           "RECORDED_SEGMENT_EVENTS", "SEGMENT_EVENTS", "ImportFormat", "process_pool"]

EXCHANGES: tuple[str, ...] = ("binance", "coinbase", "kraken", "bybit", "okx")
"""The public exchanges, by adapter name: what ``wsresearch record EXCHANGE:SYMBOLS`` takes."""

ADAPTERS: tuple[str, ...] = (*EXCHANGES, "generic", "raw")
"""Every adapter: the exchanges, the simulator's ``generic`` dialect and ``raw`` JSON."""

DIALECT_CLASSES: dict[str, tuple[str, str]] = {
    "generic": ("generic", "GenericDialect"),
    "binance": ("binance", "BinanceDialect"),
    "binance-usdm": ("binance", "BinanceUsdmDialect"),
    "coinbase": ("coinbase", "CoinbaseDialect"),
    "coinbase-exchange": ("coinbase", "CoinbaseExchangeDialect"),
    "kraken": ("kraken", "KrakenDialect"),
    "kraken-v1": ("kraken", "KrakenV1Dialect"),
    "kraken-futures": ("kraken", "KrakenFuturesDialect"),
    "bybit": ("bybit", "BybitDialect"),
    "okx": ("okx", "OkxDialect"),
}
"""Each simulator profile's dialect: its module in ``wsresearch.testing.sim.dialects``
and class there."""

PROFILES: tuple[str, ...] = tuple(DIALECT_CLASSES)
"""Dialects the simulator speaks: its own (``generic``, first), then each exchange API's."""

ImportFormat = Literal["hftbacktest", "cryptofeed", "tardis", "side-files", "lines"]
"""The capture formats :func:`~wsresearch.importers.import_capture` reads."""

FORMATS: tuple[ImportFormat, ...] = get_args(ImportFormat)
"""Every format name, in the order :func:`~wsresearch.importers.detect_format` tries them
(``lines`` last, and only when asked for)."""

CHUNK_EVENTS = 20_000
"""Events per table of :meth:`~wsresearch.Recording.chunks` by default: a few tens of MB
of working set."""

SEGMENT_EVENTS = 100_000
"""Events per segment file of a capture, an import and a compacted recording, at most: it
bounds the memory one write takes."""

RECORDED_SEGMENT_EVENTS = 10_000
"""Events a live recording's segment file grows to, flush by flush, by default
(``Recorder(segment_events=)``): a row group's worth, which one rewrite encodes in a few ms."""


def process_pool(workers: int, initializer: Callable[..., object] | None = None,
                 initargs: tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` fresh interpreters (``spawn``).

    None of this process's threads, event loop or state is copied into them, so a job
    rebuilds what it needs (a spec from its origin, say). Each imports only the module
    its job is defined in and what the job imports. Each, as it starts, sets polars'
    allocator to one arena (:func:`~wsresearch._allocator.one_arena`: before its job
    imports polars) and then runs ``initializer(*initargs)`` (what can only be handed
    over then: a ``multiprocessing`` queue).
    """
    import functools
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=functools.partial(_start, initializer, initargs))


def _start(initializer: Callable[..., object] | None, initargs: tuple[Any, ...]) -> None:
    """A pool worker's start: polars' allocator in one arena, then ``initializer``."""
    from ._allocator import one_arena

    one_arena()
    if initializer is not None:
        initializer(*initargs)
