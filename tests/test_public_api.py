"""The three public namespaces: pinned, complete, documented, lazy; and the way out of old names."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import subprocess
import sys

import pytest

import wsresearch
import wsresearch.errors
import wsresearch.lowlevel
import wsresearch.testing

TOP_LEVEL = [
    "BackoffConfig", "Channel", "CloseCategory", "Compacted", "ConnectionConfig",
    "DamagedSegmentWarning", "ExchangeError",
    "ExportSummary", "Fault", "FaultProxy", "Feed", "FeedSpec", "FeedStats", "HeartbeatConfig",
    "InvalidURLError", "Layout", "MaxReconnectsExceededError", "NotConnectedError",
    "NothingKeptWarning",
    "OverflowPolicy", "Pipeline", "QualityReport", "QueueClosedError", "QueueConfig",
    "QueueFullError",
    "ReconnectConfig", "Recording", "RecordingError", "RecordingFormatError", "RecordingManifest",
    "ReplayResult", "ReplayServer", "Seq", "SequenceGap", "Simulator", "StreamConfig",
    "UnknownChannelError", "VirtualClock", "WebSocketAuthError", "WebSocketError",
    "WsResearchError", "__version__", "book_at", "books_at", "by_field", "compact_recording",
    "compare", "export_parquet",
    "import_capture",
    "load_connections", "load_dataset", "load_normalized", "load_outages", "mark_outages",
    "merge_events",
    "on_grid", "quality_report", "replay",
]
LOWLEVEL = [
    "Clock", "CloseInfo", "ConnectionState", "Counts", "DEFAULT_BACKOFF", "FieldRouter",
    "FrameStore", "Halt", "HealthMonitor", "HealthTransition", "MessageParser", "MessageQueue",
    "ParseOutcome", "RATE_LIMIT_BACKOFF", "Received", "ReconnectPolicy", "Recorder", "Reject",
    "Retry", "SequenceTracker", "SpecOrigin", "StreamStatus", "SystemClock", "WebSocketManager",
    "backoff_delay", "check_layout", "classify_close_code",
]
TESTING = [
    "DIALECTS", "Dialect", "Fault", "FaultKind", "FaultProxy", "GenericDialect", "Market",
    "PROFILES", "Simulator", "Subscriber", "UPDATE_ENV", "assert_replay_matches",
    "frame_differences", "generic_frames", "parse_fault",
]
NAMESPACES = {"wsresearch": (wsresearch, TOP_LEVEL), "wsresearch.lowlevel":
              (wsresearch.lowlevel, LOWLEVEL), "wsresearch.testing": (wsresearch.testing, TESTING)}


@pytest.mark.parametrize("where", NAMESPACES)
def test_all_is_pinned_sorted_and_every_name_importable(where: str) -> None:
    namespace, expected = NAMESPACES[where]
    names = namespace.__all__
    assert names == sorted(names) == sorted(expected)
    for name in names:
        assert getattr(namespace, name) is not None, f"{where}.{name}"
    assert set(names) <= set(dir(namespace))


def test_the_top_level_has_every_error_and_nothing_that_moved() -> None:
    assert set(wsresearch.errors.__all__) <= set(wsresearch.__all__)
    assert not set(wsresearch.__all__) & set(wsresearch.lowlevel.__all__)
    assert "DedupeStats" not in dir(wsresearch)
    with pytest.raises(AttributeError, match="no attribute 'DedupeStats'"):
        _ = wsresearch.DedupeStats


def test_replay_is_the_function_even_once_its_module_is_imported() -> None:
    import wsresearch.replay as module_or_name

    assert inspect.isfunction(wsresearch.replay)
    assert module_or_name is wsresearch.replay
    assert sys.modules["wsresearch.replay"].replay is wsresearch.replay


def test_a_name_that_moved_warns_and_names_its_new_home() -> None:
    with pytest.warns(DeprecationWarning,
                      match=r"wsresearch\.MessageParser has moved to "
                            r"wsresearch\.lowlevel\.MessageParser"):
        moved = wsresearch.MessageParser
    assert moved is wsresearch.lowlevel.MessageParser
    with pytest.warns(DeprecationWarning, match="wsresearch.lowlevel.backoff_delay"):
        from wsresearch import backoff_delay  # noqa: F401


def test_import_wsresearch_imports_nothing_heavy() -> None:
    heavy = ["polars", "websockets", "rich", "pydantic", "wsresearch.testing.sim",
             "wsresearch.feed", "wsresearch.exchanges", *(
                 f"wsresearch.exchanges.{name}" for name in
                 ("binance", "coinbase", "kraken", "bybit", "okx", "generic"))]
    code = f"import sys, wsresearch; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_simulator_imports_only_the_dialect_it_speaks() -> None:
    code = ("import sys; from wsresearch import Simulator; Simulator('okx'); "
            "print(sorted(m for m in sys.modules if m.startswith('wsresearch.exchanges.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['wsresearch.exchanges._common', 'wsresearch.exchanges.generic', " \
                          "'wsresearch.exchanges.okx']"


def test_every_public_name_is_documented() -> None:
    # Every public module of the package, found rather than listed: a new one is covered.
    modules = sorted(info.name.removeprefix("wsresearch.") for info in pkgutil.walk_packages(
        wsresearch.__path__, "wsresearch.") if not any(
            part.startswith("_") for part in info.name.split(".")))
    assert {"pipeline", "events", "policy", "config", "recording.format"} <= set(modules)
    for module_name in ["", *modules]:
        module = importlib.import_module(f"wsresearch{'.' if module_name else ''}{module_name}")
        assert module.__doc__, module_name
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__doc__ and obj.__doc__.strip(), f"{module_name}.{name}"
                for attr, member in vars(obj).items() if inspect.isclass(obj) else []:
                    if attr.startswith("_") or not (inspect.isfunction(member)
                                                    or isinstance(member, property)):
                        continue
                    assert member.__doc__, f"{module_name}.{name}.{attr}"


def test_import_applies_no_event_loop_patches() -> None:
    import asyncio

    assert not hasattr(asyncio, "_nest_patched")
