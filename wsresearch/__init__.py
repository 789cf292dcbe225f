"""wsresearch: exchange WebSocket feeds for research, from Jupyter.

Resilient connections, validated messages as polars frames, per-stream
health, recording, replay, feed-quality reports, and an embedded exchange
simulator with fault injection.

The package has three public namespaces (``docs/api.md``):

``wsresearch``
    What a researcher types: :class:`Feed` and :class:`FeedSpec`, the
    settings, :func:`replay` and :class:`Recording`, the quality and export
    functions, the errors, and the simulator and proxy for trying it all offline.
``wsresearch.lowlevel``
    The building blocks a :class:`Feed` is made of (parser, queue, frame store,
    health monitor, connection manager...), for those who build new parts.
``wsresearch.testing``
    Test rigs: the simulator and its dialects, the fault proxy, golden-file
    replay tests and their pytest plugin.

Names are imported on first use (:pep:`562`), so ``import wsresearch`` is
quick and pulls in neither polars nor websockets; ``from wsresearch import
Feed`` imports what a feed needs, and no more.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .book_times import book_at, books_at
    from .clock import VirtualClock
    from .config import (
        BackoffConfig,
        CloseCategory,
        ConnectionConfig,
        HeartbeatConfig,
        OverflowPolicy,
        QueueConfig,
        ReconnectConfig,
        StreamConfig,
    )
    from .errors import (
        DamagedSegmentWarning,
        ExchangeError,
        InvalidURLError,
        MaxReconnectsExceededError,
        NotConnectedError,
        NothingKeptWarning,
        QueueClosedError,
        QueueFullError,
        RecordingError,
        RecordingFormatError,
        UnknownChannelError,
        WebSocketAuthError,
        WebSocketError,
        WsResearchError,
    )
    from .export import (
        ExportSummary,
        export_parquet,
        load_connections,
        load_dataset,
        load_normalized,
        load_outages,
        merge_events,
    )
    from .feed import Feed, FeedStats
    from .grid import on_grid
    from .importers import import_capture
    from .layout import Layout
    from .outages import mark_outages
    from .parser import by_field
    from .pipeline import Pipeline
    from .quality import QualityReport, compare, quality_report
    from .recording import Compacted, Recording, RecordingManifest, compact_recording
    from .replay import ReplayResult, ReplayServer, replay
    from .sequence import Seq, SequenceGap
    from .spec import Channel, FeedSpec
    from .testing.proxy import FaultProxy
    from .testing.sim.server import Fault, Simulator

    __version__: str

# A library's loggers stay quiet unless the application configures logging
# (``logging.basicConfig(level=logging.INFO)`` shows reconnects, closes, staleness).
logging.getLogger("wsresearch").addHandler(logging.NullHandler())

_PUBLIC: dict[str, str] = {
    # name: the module it is defined in, relative to this package
    "Feed": ".feed",
    "FeedStats": ".feed",
    "FeedSpec": ".spec",
    "Channel": ".spec",
    "Layout": ".layout",
    "by_field": ".parser",
    "Seq": ".sequence",
    "SequenceGap": ".sequence",
    "Pipeline": ".pipeline",
    "replay": ".replay",
    "ReplayResult": ".replay",
    "ReplayServer": ".replay",
    "Recording": ".recording",
    "RecordingManifest": ".recording",
    "compact_recording": ".recording",
    "Compacted": ".recording",
    "quality_report": ".quality",
    "QualityReport": ".quality",
    "compare": ".quality",
    "export_parquet": ".export",
    "load_dataset": ".export",
    "load_connections": ".export",
    "load_normalized": ".export",
    "load_outages": ".export",
    "merge_events": ".export",
    "import_capture": ".importers",
    "ExportSummary": ".export",
    "book_at": ".book_times",
    "books_at": ".book_times",
    "on_grid": ".grid",
    "mark_outages": ".outages",
    "BackoffConfig": ".config",
    "ConnectionConfig": ".config",
    "ReconnectConfig": ".config",
    "HeartbeatConfig": ".config",
    "QueueConfig": ".config",
    "StreamConfig": ".config",
    "OverflowPolicy": ".config",
    "CloseCategory": ".config",
    "WsResearchError": ".errors",
    "DamagedSegmentWarning": ".errors",
    "WebSocketError": ".errors",
    "WebSocketAuthError": ".errors",
    "MaxReconnectsExceededError": ".errors",
    "NotConnectedError": ".errors",
    "NothingKeptWarning": ".errors",
    "ExchangeError": ".errors",
    "InvalidURLError": ".errors",
    "QueueFullError": ".errors",
    "QueueClosedError": ".errors",
    "UnknownChannelError": ".errors",
    "RecordingError": ".errors",
    "RecordingFormatError": ".errors",
    "VirtualClock": ".clock",
    "Simulator": ".testing.sim.server",
    "Fault": ".testing.sim.server",
    "FaultProxy": ".testing.proxy",
}

_MOVED: dict[str, str] = {
    # name: its new home; reachable from here, with a DeprecationWarning, for one release
    name: "wsresearch.lowlevel"
    for name in (
        "CloseInfo", "Clock", "ConnectionState", "DEFAULT_BACKOFF", "FieldRouter", "FrameStore",
        "HealthMonitor", "HealthTransition", "MessageParser", "MessageQueue", "ParseOutcome",
        "RATE_LIMIT_BACKOFF", "Recorder", "Reject", "SequenceTracker", "SpecOrigin",
        "StreamStatus", "SystemClock", "WebSocketManager", "backoff_delay",
        "classify_close_code",
    )
}


class _LazyPackage(types.ModuleType):
    """A package module whose public names are resolved on first use.

    The import system binds every submodule, once loaded, as an attribute of
    its package; where a submodule and a public name share a name
    (``wsresearch.replay`` is a module and :func:`replay`), that binding would
    hide the name. This class keeps the name: the submodule stays reachable
    through ``sys.modules`` and ``import``, as always. Swapping a module's
    class is the documented way to customise more than ``__getattr__`` can
    (Python reference, "Customizing module attribute access").
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in self.__dict__.get("_lazy_names", ()):
            return
        super().__setattr__(name, value)


def _lazy_namespace(
    module_name: str,
    names: Mapping[str, str],
    moved: Mapping[str, str] | None = None,
    computed: Mapping[str, Callable[[], Any]] | None = None,
) -> None:
    """Resolve the public names of package ``module_name`` lazily, as websockets' ``lazy_import``.

    Installs the module's ``__getattr__`` and ``__dir__`` (:pep:`562`): a name
    is imported from its module on first access and kept, so the next access is
    a plain attribute lookup.

    Parameters
    ----------
    module_name
        The package (``__name__``); module paths in ``names`` are relative to it.
    names
        Public name to the module defining it (``".feed"``).
    moved
        Names that left this namespace, to their new home (a module path): still
        reachable, each access warning with a :class:`DeprecationWarning`.
    computed
        Names whose value a function makes on first access (``__version__``).
    """
    module = sys.modules[module_name]
    namespace = vars(module)
    moved = moved or {}
    computed = computed or {}

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(names[name], module_name), name)
        elif name in computed:
            value = computed[name]()
        elif name in moved:
            home = moved[name]
            warnings.warn(
                f"{module_name}.{name} has moved to {home}.{name}; import it from there "
                f"({module_name}.{name} will be removed in the next release)",
                DeprecationWarning, stacklevel=2,
            )
            return getattr(importlib.import_module(home), name)
        else:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        namespace[name] = value  # resolved once: later lookups do not come here
        return value

    def __dir__() -> list[str]:
        # Public names and loaded subpackages, not this module's own imports (``sys``...).
        shown = {key for key, value in namespace.items() if key.startswith("__") or (
            isinstance(value, types.ModuleType) and value.__name__.startswith(f"{module_name}."))}
        return sorted(shown | set(names) | set(computed))

    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = __dir__
    namespace["_lazy_names"] = frozenset(names) | frozenset(computed)
    module.__class__ = _LazyPackage


def _version() -> str:
    # importlib.metadata costs about 50 ms to import: paid when the version is asked for.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wsresearch")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"


_lazy_namespace(__name__, _PUBLIC, moved=_MOVED, computed={"__version__": _version})

__all__ = [
    "BackoffConfig",
    "Channel",
    "CloseCategory",
    "Compacted",
    "ConnectionConfig",
    "DamagedSegmentWarning",
    "ExchangeError",
    "ExportSummary",
    "Fault",
    "FaultProxy",
    "Feed",
    "FeedSpec",
    "FeedStats",
    "HeartbeatConfig",
    "InvalidURLError",
    "Layout",
    "MaxReconnectsExceededError",
    "NotConnectedError",
    "NothingKeptWarning",
    "OverflowPolicy",
    "Pipeline",
    "QualityReport",
    "QueueClosedError",
    "QueueConfig",
    "QueueFullError",
    "ReconnectConfig",
    "Recording",
    "RecordingError",
    "RecordingFormatError",
    "RecordingManifest",
    "ReplayResult",
    "ReplayServer",
    "Seq",
    "SequenceGap",
    "Simulator",
    "StreamConfig",
    "UnknownChannelError",
    "VirtualClock",
    "WebSocketAuthError",
    "WebSocketError",
    "WsResearchError",
    "__version__",
    "book_at",
    "books_at",
    "by_field",
    "compact_recording",
    "compare",
    "export_parquet",
    "import_capture",
    "load_connections",
    "load_dataset",
    "load_normalized",
    "load_outages",
    "mark_outages",
    "merge_events",
    "on_grid",
    "quality_report",
    "replay",
]
