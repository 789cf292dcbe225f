"""The building blocks a :class:`~wsresearch.Feed` is made of, for those who build new parts.

A researcher rarely types these names: a :class:`~wsresearch.Feed` (or a
:class:`~wsresearch.Pipeline`) wires them together from a
:class:`~wsresearch.FeedSpec`. They are public, and kept stable, for code that
composes them differently: a custom transport in front of
:class:`MessageParser`, a health dashboard on :class:`HealthMonitor`, a
recorder of another source with :class:`Recorder`. The values they hand back
(:class:`ParseOutcome`, :class:`Reject`, :class:`HealthTransition`,
:class:`CloseInfo`...) are here too, for annotating such code. Each part does
one job and takes its clock (:class:`Clock`) as an argument, as ``trio.lowlevel``
gathers trio's.

==========================  =========================================================
parsing                     :class:`MessageParser`, :class:`FieldRouter`,
                            :class:`ParseOutcome`, :class:`Reject`
queueing                    :class:`MessageQueue`
rows                        :class:`FrameStore`, :func:`check_layout` (a channel's
                            :class:`~wsresearch.Layout` held to its model)
sequence numbers            :class:`SequenceTracker`
health                      :class:`HealthMonitor`, :class:`HealthTransition`,
                            :class:`StreamStatus`
the pipeline's values        :class:`Counts`, :data:`Received`
the connection              :class:`WebSocketManager`, :class:`ConnectionState`,
                            :class:`CloseInfo`, :func:`classify_close_code`,
                            :func:`backoff_delay`, :data:`DEFAULT_BACKOFF`,
                            :data:`RATE_LIMIT_BACKOFF`
reconnect decisions         :class:`ReconnectPolicy`, :class:`Retry`, :class:`Halt`
recording                   :class:`Recorder`, :class:`SpecOrigin`
time                        :class:`Clock`, :class:`SystemClock`
==========================  =========================================================
"""

from __future__ import annotations

from .backoff import backoff_delay
from .clock import Clock, SystemClock
from .config import DEFAULT_BACKOFF, RATE_LIMIT_BACKOFF
from .connection import CloseInfo, ConnectionState, WebSocketManager
from .frames import FrameStore
from .health import HealthMonitor, HealthTransition, StreamStatus
from .layout import check_layout
from .parser import FieldRouter, MessageParser, ParseOutcome, Reject
from .pipeline import Counts, Received
from .policy import Halt, ReconnectPolicy, Retry, classify_close_code
from .queue import MessageQueue
from .recording import Recorder
from .sequence import SequenceTracker
from .spec import SpecOrigin

__all__ = [
    "Clock",
    "CloseInfo",
    "ConnectionState",
    "Counts",
    "DEFAULT_BACKOFF",
    "FieldRouter",
    "FrameStore",
    "Halt",
    "HealthMonitor",
    "HealthTransition",
    "MessageParser",
    "MessageQueue",
    "ParseOutcome",
    "RATE_LIMIT_BACKOFF",
    "Received",
    "ReconnectPolicy",
    "Recorder",
    "Reject",
    "Retry",
    "SequenceTracker",
    "SpecOrigin",
    "StreamStatus",
    "SystemClock",
    "WebSocketManager",
    "backoff_delay",
    "check_layout",
    "classify_close_code",
]
