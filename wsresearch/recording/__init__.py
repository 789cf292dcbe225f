"""Session recordings: written at receive time, crash-safe, readable with polars alone.

A recording is a directory::

    manifest.json                       format, version, source, spec, start/end, completeness
    segments/0000/events-000000000000.parquet
    segments/0000/events-000000001873.parquet
    segments/0001/...

Every event of the session (``open``, ``frame``, ``sent``, ``close``, ``error``,
``pong``, ``drop``, ``health``, ``mark``, ``gap``, ``stop``, ``rest``) is one row of one
table (:data:`EVENT_SCHEMA`), numbered by ``seq``; an inbound message is an event
of kind ``frame``. The :class:`Recorder` keeps new events in memory (a list append
on the hot path) and writes them to a Parquet file at least every ``flush_interval``
seconds, from a worker thread: the last file again, with them, while it holds fewer
than ``segment_events`` (a quiet feed's flushes grow one file), else a new one. Each
file is written under a temporary name and renamed when complete, so a crash loses at
most the events of the last interval and never leaves a half-written file where a
reader looks: a leftover ``.tmp`` is skipped with a warning. Files are grouped in segment folders,
a new one every ``rotate_interval`` seconds, so no folder or file grows without
bound. One writer writes a directory: it claims it with a lock file, and refuses a
directory that is not new or empty.

Read it back with :class:`Recording`, or with polars alone::

    pl.read_parquet("session/segments/*/*.parquet").sort("seq")

The package is split along its seams: :mod:`~wsresearch.recording.format` (the
schema and manifest, no I/O), :mod:`~wsresearch.recording.writer` (synchronous
files), :mod:`~wsresearch.recording.recorder` (the async buffering around the
writer), :mod:`~wsresearch.recording.reader` and
:mod:`~wsresearch.recording.compact` (a finished recording's small segments rewritten as a
few large ones). ``docs/recording-format.md``
documents the format and the measurements behind it.
"""

from __future__ import annotations

from .compact import Compacted, compact_recording
from .format import (
    EVENT_KINDS,
    EVENT_SCHEMA,
    FORMAT_NAME,
    FORMAT_VERSION,
    RecordingManifest,
)
from .format import clean_text as clean_text
from .reader import Recording
from .recorder import Recorder

__all__ = [
    "EVENT_KINDS",
    "EVENT_SCHEMA",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Compacted",
    "Recorder",
    "Recording",
    "RecordingManifest",
    "compact_recording",
]
