"""wsresearch: exchange WebSocket feeds for research, from Jupyter.

Resilient connections, validated messages as polars frames, per-stream
health, and an embedded exchange simulator with fault injection. The public
names are re-exported here; see ``docs/architecture.md`` for how they fit.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from .backoff import DEFAULT_BACKOFF, RATE_LIMIT_BACKOFF, BackoffConfig, backoff_delay
from .clock import Clock, SystemClock, VirtualClock
from .connection import (
    CloseCategory,
    CloseInfo,
    ConnectionConfig,
    ConnectionState,
    HeartbeatConfig,
    ReconnectConfig,
    WebSocketManager,
    classify_close_code,
)
from .errors import (
    ExchangeError,
    InvalidURLError,
    MaxReconnectsExceededError,
    NotConnectedError,
    QueueClosedError,
    QueueFullError,
    RecordingError,
    RecordingFormatError,
    UnknownChannelError,
    WebSocketAuthError,
    WebSocketError,
    WsResearchError,
)
from .export import ExportSummary, export_parquet, load_connections, load_dataset, merge_events
from .feed import Feed, FeedStats
from .frames import FrameStore
from .health import HealthMonitor, HealthTransition, StreamConfig, StreamStatus
from .parser import DedupeStats, FieldRouter, MessageParser, ParseOutcome, Reject, by_field
from .proxy import FaultProxy
from .quality import QualityReport, compare, quality_report
from .queue import MessageQueue, OverflowPolicy, QueueConfig
from .recording import Recorder, Recording, RecordingManifest
from .replay import ReplayResult, ReplayServer, replay
from .sequence import Seq, SequenceGap, SequenceTracker
from .sim import Fault, Simulator
from .spec import Channel, FeedSpec, SpecOrigin

# A library's loggers stay quiet unless the application configures logging
# (``logging.basicConfig(level=logging.INFO)`` shows reconnects, closes, staleness).
logging.getLogger("wsresearch").addHandler(logging.NullHandler())

try:
    __version__ = version("wsresearch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "BackoffConfig",
    "Channel",
    "Clock",
    "CloseCategory",
    "CloseInfo",
    "ConnectionConfig",
    "ConnectionState",
    "DEFAULT_BACKOFF",
    "DedupeStats",
    "ExchangeError",
    "ExportSummary",
    "Fault",
    "FaultProxy",
    "Feed",
    "FeedSpec",
    "FeedStats",
    "FieldRouter",
    "FrameStore",
    "HealthMonitor",
    "HealthTransition",
    "HeartbeatConfig",
    "InvalidURLError",
    "MaxReconnectsExceededError",
    "MessageParser",
    "MessageQueue",
    "NotConnectedError",
    "OverflowPolicy",
    "ParseOutcome",
    "QualityReport",
    "QueueClosedError",
    "QueueConfig",
    "QueueFullError",
    "RATE_LIMIT_BACKOFF",
    "ReconnectConfig",
    "Recorder",
    "Recording",
    "RecordingError",
    "RecordingFormatError",
    "RecordingManifest",
    "Reject",
    "ReplayResult",
    "ReplayServer",
    "Seq",
    "SequenceGap",
    "SequenceTracker",
    "Simulator",
    "SpecOrigin",
    "StreamConfig",
    "StreamStatus",
    "SystemClock",
    "UnknownChannelError",
    "VirtualClock",
    "WebSocketAuthError",
    "WebSocketError",
    "WebSocketManager",
    "WsResearchError",
    "__version__",
    "backoff_delay",
    "by_field",
    "classify_close_code",
    "compare",
    "export_parquet",
    "load_connections",
    "load_dataset",
    "merge_events",
    "quality_report",
    "replay",
]
