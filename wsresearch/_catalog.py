"""What the package offers, by name, importable with nothing else.

The command line builds its parser (choices, defaults, help) and hands work to other
processes before it imports polars, pydantic or an adapter: ``wsresearch --help``
answers at once, and a worker's start-up is not spent on what its parent loaded. The
modules these names belong to import them from here, so each is stated once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from .errors import RecordingFormatError

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

__all__ = ["ADAPTERS", "CHUNK_EVENTS", "DIALECT_CLASSES", "EXCHANGES", "FORMATS",
           "FORMAT_NAME", "FORMAT_VERSION", "MANIFEST", "PROFILES", "RECORDED_SEGMENT_EVENTS",
           "SEGMENT_EVENTS", "ImportFormat", "check_format", "not_a_recording", "process_pool",
           "read_manifest", "unknown_adapter"]

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

    # A worker of spawn imports the script that started its pool: one that starts a pool
    # at its top level, with no `if __name__ == "__main__":`, starts it again in every
    # worker, where multiprocessing refuses it with a long traceback each. One line here.
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SystemExit(
            "wsresearch: a worker process, importing the script that started it, was asked "
            "for a process pool again: put the script's work (export_parquet(..., "
            "workers=N), say) under `if __name__ == \"__main__\":`")
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=functools.partial(_start, initializer, initargs))


def _start(initializer: Callable[..., object] | None, initargs: tuple[Any, ...]) -> None:
    """A pool worker's start: polars' allocator in one arena, then ``initializer``."""
    from ._allocator import one_arena

    one_arena()
    if initializer is not None:
        initializer(*initargs)


FORMAT_NAME = "wsresearch-recording"
"""What a recording's manifest says it is (its ``format``)."""
FORMAT_VERSION = 2
"""The recording format version this wsresearch writes, and the newest it reads."""
MANIFEST = "manifest.json"
"""A recording's manifest, in its directory."""


def not_a_recording(root: Path) -> RecordingFormatError:
    """The error for a path without a manifest: what is there instead, in its words."""
    if not root.exists():
        why = "it does not exist"
    elif not root.is_dir():
        why = ("it is a file, not a recording's folder (a capture of frames? `wsresearch "
               "import` makes a recording of it)")
    else:
        why = f"it has no {MANIFEST}"
    return RecordingFormatError(f"{root} is not a recording: {why}")


def read_manifest(root: Path) -> dict[str, Any]:
    """The decoded ``manifest.json`` of the recording at ``root``, its format checked.

    What opening a recording finds wrong before its fields are read, with nothing but
    ``json``: so a command can refuse every recording it is given before it loads what
    reads one.

    Raises
    ------
    RecordingFormatError
        If ``root`` has no manifest, it cannot be read as JSON, or it is not one this
        version reads (:func:`check_format`).
    """
    path = root / MANIFEST
    if not path.is_file():
        raise not_a_recording(root)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordingFormatError(f"cannot read {path}: {exc}") from None
    check_format(raw, root)
    return raw  # type: ignore[no-any-return]  # a dict: just checked


def check_format(raw: object, root: Path) -> None:
    """Check that ``raw``, the decoded manifest of ``root``, is one this version reads.

    The version is checked before any field, so a newer recording asks for an upgrade
    rather than failing on a field this version does not know.

    Raises
    ------
    RecordingFormatError
        If ``raw`` is not a manifest of this format, or its version is newer than
        :data:`FORMAT_VERSION` or not an integer of at least 1.
    """
    where = root / MANIFEST
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise RecordingFormatError(f"{where} is not a {FORMAT_NAME} manifest")
    version = raw.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RecordingFormatError(
            f"{where} is damaged: its version must be an integer >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise RecordingFormatError(
            f"{root} uses recording format version {version}, "
            f"newer than this wsresearch reads (version {FORMAT_VERSION}); upgrade wsresearch"
        )


def unknown_adapter(source: object, name: object) -> str:
    """What a recording made with an adapter this version does not have is told."""
    return (f"{source} was recorded with the adapter {name!r}, which this wsresearch does not "
            "have; upgrade it, or pass the spec yourself")
