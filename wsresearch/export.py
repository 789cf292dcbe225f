"""Recordings as a Parquet dataset for backtests, and an event-time merge across channels.

:func:`export_parquet` replays a recording through its spec and writes every
channel's rows into one Hive-partitioned dataset::

    out_dir/
      channel=trade/exchange=binance/date=2026-11-27/<recording id>.parquet
      channel=depth/exchange=binance/date=2026-11-27/<recording id>.parquet
      kind=trades/exchange=binance/date=2026-11-27/<recording id>.parquet    (normalized=True)
      _connections/<recording id>.parquet      opens and closes, to see the gaps
      _outages/<recording id>.parquet          its report's outages (export_with_report)

Rows keep the model's fields and ``recv_wall_ns``, ``recv_mono_ns``,
``exchange_ns``, ``generation`` and ``frame_seq``, plus ``recording`` (the
recording's id), so several recordings, of several exchanges, share one dataset.
With ``normalized=True`` the normalized market-data tables (:mod:`wsresearch.normalize`)
are written too, one folder per kind, the same columns for every exchange. The date
partition is the UTC date of the receive time. A recording's files are named by its id:
exporting it again replaces them, never duplicates them.

Plain Parquet with Hive partitioning, so DuckDB, Spark or pyarrow read it as
well; :func:`load_dataset` gives a lazy polars frame with partition pruning and
predicate pushdown, and :func:`merge_events` one time-ordered stream. Files of one
channel may differ in their columns (two exchanges' ``trade`` rows): each file is
read with its own schema and a column a file lacks is null in its rows. Columns
whose types cannot be reconciled are refused up front, naming the files.

Exports are private, like recordings, and written by the same helper
(:func:`~wsresearch._files.write_private_parquet`): folders wsresearch creates are
``0700``, files ``0600``, each written whole under a new temporary name, flushed to
disk and renamed (a symlink planted at a predictable name is never followed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from . import _split
from ._files import make_private_dirs, write_private_parquet
from ._limits import check_count
from ._rows import HeldRows
from ._staging import SOURCE, Staging
from ._warn import held, warn
from .book import Books
from .clock import NS_PER_S, Time, given_ns, ns_since_epoch
from .normalize import COMMON, KINDS, is_stateful, normalize
from .outages import OUTAGE_COLUMNS
from .pipeline import Pipeline, QuoteSource, normalized_books, quote_source
from .quality import QualityReport, ReportInputs, hole_rule
from .recording import Recording
from .recording.format import TIMELINE_SCHEMA
from .recording.reader import CHUNK_EVENTS, check_chunk_events
from .replay import ReplayResult, replay_in_chunks, spec_for
from .spec import CHANNEL_NAME, FeedSpec

__all__ = [
    "CONNECTION_SCHEMA",
    "OUTAGE_SCHEMA",
    "ExportSummary",
    "export_parquet",
    "export_with_report",
    "load_connections",
    "load_dataset",
    "load_normalized",
    "load_outages",
    "merge_events",
    "recording_id",
]

log = logging.getLogger(__name__)

_CONNECTIONS = "_connections"
_OUTAGES = "_outages"
_NS_PER_DAY = 86_400 * NS_PER_S

CONNECTION_SCHEMA: dict[str, pl.DataType] = {"recording": pl.String(), **TIMELINE_SCHEMA}
"""Columns of the ``_connections`` table: every open and close of every recording, and
who closed it (``closed_by``; null in datasets exported before it was stored)."""

OUTAGE_SCHEMA: dict[str, pl.DataType] = {"recording": pl.String(), **OUTAGE_COLUMNS}
"""Columns of the ``_outages`` table: each exported recording's outages
(:data:`~wsresearch.outages.OUTAGE_COLUMNS`), with the recording's id."""



@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_parquet` wrote.

    Attributes
    ----------
    recording
        The recording's id (the files' name).
    rows
        Rows per channel.
    normalized
        Rows per normalized kind written (``normalized=True``).
    files
        Every file written, connections table included.
    replaced
        Files of an earlier export of the same recording that were removed.
    parts
        Processes the recording was exported by (``workers``; 1 when it was not split).
    """

    recording: str
    rows: dict[str, int]
    files: list[Path] = field(default_factory=list)
    replaced: int = 0
    normalized: dict[str, int] = field(default_factory=dict)
    parts: int = 1


def recording_id(recording: Recording) -> str:
    """A stable id for ``recording``: the same for every export of it, different between recordings.

    Derived from what the recording holds, not where it is: the source URL, the
    start time, the number of events and the first events' data. A recording
    moved or copied keeps its id; two recordings started at the same instant
    (frames imported with :meth:`Recording.from_frames`) still differ.

    The events are counted as an export counts them where a damaged segment's events
    lack a value they are read by: those are not (:class:`Recording`). So it takes a pass
    over the few columns that tells, and reads the first events' data without a warning:
    the reads of the whole recording tell what it lacks, once. A segment whose other
    columns cannot be read (its ``data``, say) is still counted here, though a replay
    skips it whole: the id of such a recording differs from its export's.
    """
    events = sum(table.height for table in recording.columns(["seq"]))
    with held():  # let go
        head = next(recording.chunks(_HEAD), pl.DataFrame(schema={"data": pl.String}))
    return _recording_id(recording, events, head["data"].to_list())


_HEAD = 16  # the events whose data a recording's id hashes


def _recording_id(recording: Recording, events: int, head: Sequence[str | None]) -> str:
    manifest = recording.manifest
    basis = "|".join((manifest.source_url, str(manifest.started_wall_ns), str(events),
                      "\x1f".join(str(v) for v in head[:_HEAD])))
    digest = hashlib.sha256(basis.encode()).hexdigest()[:12]
    started = dt.datetime.fromtimestamp(manifest.started_wall_ns / NS_PER_S, dt.UTC)
    return f"{started:%Y%m%dT%H%M%S}-{digest}"


def export_parquet(
    recording: Recording | str | os.PathLike[str],
    spec: FeedSpec | None,
    out_dir: str | os.PathLike[str],
    *,
    normalized: bool = False,
    progress: Callable[[int, int], None] | None = None,
    result: ReplayResult | None = None,
    chunk_events: int = CHUNK_EVENTS,
    workers: int = 1,
    quotes: QuoteSource | None = None,
) -> ExportSummary:
    """Replay ``recording`` through ``spec`` and write its rows into the dataset at ``out_dir``.

    The replay streams: every ``chunk_events`` events, the rows made so far are written
    out and let go (:mod:`wsresearch._staging`), so the memory an export needs does not
    grow with the recording. The dataset is the same for every chunk size.

    Parameters
    ----------
    recording
        A :class:`~wsresearch.recording.Recording` or its directory.
    spec
        The spec that turns its frames into rows; ``None``: the recording's own
        (:attr:`Recording.spec`).
    out_dir
        The dataset's directory (created if needed; other recordings' files are kept).
    normalized
        Also write the normalized tables (``kind=<kind>/exchange=.../date=...``) of every
        kind the spec's channels hold.
    progress
        Called with ``(events done, events in all)`` during the replay, and with
        ``(events in all, events in all)`` after each file written at the end. An
        exception it raises stops the export: the dataset is left as it was (an earlier
        export of the recording included), the staging folder removed. (Split over
        ``workers``, the parts' processes are not called: it stops once they are done.)
    result
        A replay of ``recording`` through ``spec`` already made: written as it is, with
        no replay of its own.
    chunk_events
        Events replayed between two writes: the working set's bound.
    workers
        Processes to export the recording with: above 1, it is split where connections
        begin into that many parts of about equal length, each replayed in a process of
        its own (each rebuilds ``spec`` from its adapter origin, which keeps the fields
        ``spec.replace`` set: :data:`~wsresearch.spec.KEPT_FIELDS`); the dataset is the
        same. A recording with one
        connection, a spec built by hand, or a stateful normalized table is exported by
        one process (``ExportSummary.parts`` says how many there were).
    quotes
        Where the normalized ``quotes`` come from: ``"book"``, the order books (a row each
        time a valid book's top changes), even where a channel gives quotes (a ticker
        may be far sparser than the book, and lag it); ``"channel"``, the channels that
        give them only (none where no channel does). Default: the spec's choice
        (:attr:`FeedSpec.quotes <wsresearch.spec.FeedSpec>`: the adapters take the books'
        where they keep them, but on Binance); with none, the channels', where one gives
        quotes, else the books'.

    Returns
    -------
    ExportSummary

    Raises
    ------
    RecordingFormatError
        If ``recording`` is not a readable recording.
    ValueError
        If there is no ``spec`` and the recording cannot rebuild its own, ``out_dir``
        is a file, ``chunk_events`` is not a positive int, or ``quotes`` is not
        ``"channel"`` or ``"book"``, is given without ``normalized``, or is ``"book"``
        where the spec keeps no order books.
    """
    root = _dataset_dir(out_dir)
    if not isinstance(recording, Recording):
        recording = Recording.open(recording)
    spec = result.spec if result is not None else spec_for(recording, spec)
    if result is not None:
        unsafe = sorted(name for name in result.frames if not re.fullmatch(CHANNEL_NAME, name))
        if unsafe:  # a Channel refuses such names; a frames dict built by hand might not
            raise ValueError(f"channel name(s) {unsafe} cannot name a dataset folder")
    check_chunk_events(chunk_events)
    check_count(workers, "workers")
    if result is None and workers > 1:
        assert spec is not None  # found by spec_for
        split = _split_export(root, recording, spec, normalized, chunk_events, workers,
                              progress, quotes)
        if split is not None:
            return split
    export = _Export(root, recording, spec, normalized, progress=progress, quotes=quotes)
    try:
        if result is None:
            assert spec is not None  # found by spec_for
            kept = replay_in_chunks(recording, spec, "complete", progress, chunk_events,
                                    export.take)
            # Channels normalized from all their rows at once: in the store until now.
            export.add({name: kept.frames[name] for name in export.whole}, None)
        else:
            export.add(result.frames, result.books)
            for part in recording.columns(list(TIMELINE_SCHEMA)):  # no message is read
                export.note(part)
            return export.finish(recording_id(recording))
        return export.finish()
    finally:
        export.close()


def _split_export(root: Path, recording: Recording, spec: FeedSpec, normalized: bool,
                  chunk_events: int, workers: int,
                  progress: Callable[[int, int], None] | None,
                  quotes: QuoteSource | None) -> ExportSummary | None:
    """The export made by ``workers`` processes, or ``None`` if it cannot be split."""
    reason = _split.splittable(spec, normalized)
    if reason is not None:
        log.info("%s is exported by one process: %s", recording.path, reason)
        return None
    parts = _split.plan(recording, workers, spec.dedupe_ttl)
    if len(parts) < 2:
        log.info("%s is exported by one process: it has one connection", recording.path)
        return None
    export = _Export(root, recording, spec, normalized, progress=progress, quotes=quotes)
    try:
        done = _split.run_parts(recording, spec, normalized, chunk_events, parts,
                                export.staging.folder, root, workers, quotes)
        # The recording's first events: those of the first parts, however few each holds.
        export.head = [data for part in done for data in part.head][:_HEAD]
        for part in done:
            export.events += part.events
            export.staging.adopt(part.partitions)
            for name, count in part.rows.items():
                export.rows[name] = export.rows.get(name, 0) + count
            for kind, count in part.kinds.items():
                export.kinds[kind] = export.kinds.get(kind, 0) + count
            export.timeline.extend(part.timeline)
        return dataclasses.replace(export.finish(), parts=len(parts))
    finally:
        export.close()


class _Export:
    """One export in progress: the rows taken from the replay as it goes, staged, then named."""

    def __init__(self, root: Path, recording: Recording, spec: FeedSpec | None,
                 normalized: bool, staging: Path | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 quotes: QuoteSource | None = None) -> None:
        try:  # refused before anything is made
            quotes = _quote_source(spec, normalized, quotes)
        except ValueError as exc:
            raise ValueError(f"{recording.path}: {exc}") from None
        unsafe = [] if spec is None else sorted(
            c.name for c in spec.channels if not re.fullmatch(CHANNEL_NAME, c.name))
        if unsafe:  # a Channel refuses such names; a spec built by hand might not
            raise ValueError(f"channel name(s) {unsafe} cannot name a dataset folder")
        self.exchange = spec.exchange_name if spec is not None else "unknown"
        if not re.fullmatch(CHANNEL_NAME, self.exchange):
            raise ValueError(f"the spec's exchange {self.exchange!r} cannot name a dataset "
                             "folder")
        self.root, self.recording, self.spec = root, recording, spec
        self.progress = progress
        make_private_dirs(root)
        self.staging = Staging(root, self.exchange, staging)
        self.rows: dict[str, int] = {} if spec is None else dict.fromkeys(spec.channel_names, 0)
        self.kinds: dict[str, int] = {}
        self.order = {} if spec is None else {c.name: i for i, c in enumerate(spec.channels)}
        # The kinds to write, each with the channels that hold it; channels whose
        # normalizer needs all their rows stay in the store until the end.
        self.held: dict[str, list[str]] = {}
        self.whole: set[str] = set()
        self.book_kinds: set[str] = set()
        if normalized and spec is not None:
            for channel in spec.channels:
                for kind, normalizer in channel.normalized.items():
                    if kind == "quotes" and quotes == "book":
                        continue  # the books' quotes instead
                    self.held.setdefault(kind, []).append(channel.name)
                    if is_stateful(normalizer):
                        self.whole.add(channel.name)
            if spec.book_sync is not None:
                self.book_kinds = {"book_snapshots"} | (
                    {"quotes"} if quotes == "book" else set())
            for kind in KINDS:
                if kind in self.held or kind in self.book_kinds:
                    self.kinds[kind] = 0
        self.events = 0
        self.head: list[str | None] = []
        # Opens and closes as Python rows: a small polars frame kept for the whole replay
        # among each chunk's transient ones pins the allocator's pages (see HeldRows).
        self.timeline = HeldRows({"seq": pl.Int64(), **TIMELINE_SCHEMA})

    def note(self, events: pl.DataFrame) -> None:
        """Keep the opens and closes among ``events``: the connections table.

        ``events`` need only ``seq`` and the :data:`TIMELINE_SCHEMA` columns.
        """
        self.timeline.add(events.filter(pl.col("kind").is_in(["open", "close"])))

    def take(self, pipeline: Pipeline, events: pl.DataFrame) -> dict[str, pl.DataFrame]:
        """After a chunk of the replay: write the rows it made, let them go, return them.

        The chunk's events are counted and their first data kept: the recording's id.
        """
        self.events += events.height
        if len(self.head) < _HEAD:
            self.head += events["data"].head(_HEAD - len(self.head)).to_list()
        self.note(events)
        frames, tables = pipeline.take(keep=self.whole)
        self.add(frames, tables)
        return frames

    def add(self, frames: Mapping[str, pl.DataFrame],
            books: Books | Mapping[str, pl.DataFrame] | None) -> None:
        """Stage native rows (by channel) and the normalized rows made from them."""
        for channel, frame in frames.items():
            self.rows[channel] = self.rows.get(channel, 0) + frame.height
            self.staging.add(f"channel={channel}", frame)
        if not self.kinds or self.spec is None:
            return
        if isinstance(books, Books):
            books = {"book_snapshots": books.snapshots(), "quotes": books.quotes()}
        for kind in self.kinds:
            parts = []
            for channel in self.held.get(kind, ()):
                if channel in frames:
                    table = normalize(kind, {channel: frames[channel]},
                                      {channel: self.spec.channel(channel).normalized},
                                      self.exchange)
                    parts.append(table.with_columns(pl.lit(self.order[channel]).alias(SOURCE)))
            if kind in self.book_kinds and books:
                table = normalized_books(kind, books[kind], self.exchange)
                parts.append(table.with_columns(pl.lit(len(self.order)).alias(SOURCE)))
            for table in parts:
                self.kinds[kind] += table.height
            if parts:
                self.staging.add(f"kind={kind}", pl.concat(parts))

    def finish(self, rid: str | None = None,
               outages: pl.DataFrame | None = None) -> ExportSummary:
        """Name and write every file; remove an earlier export's files of the recording.

        ``rid``: the recording's id, where its events were not counted as they were
        replayed; ``outages``: the recording's outages (of its report), written too.
        """
        rid = rid or _recording_id(self.recording, self.events, self.head)
        written = None
        if self.progress is not None:  # after each file, as after each chunk: may stop it
            total = self.recording.event_count
            written = functools.partial(self.progress, total, total)
        # An earlier export of this recording, in this layout or the one before exchange
        # partitions: replaced, never duplicated.
        old = sorted(p for pattern in ("channel=*/**/", "kind=*/**/", f"{_CONNECTIONS}/",
                                       f"{_OUTAGES}/")
                     for p in self.root.glob(f"{pattern}{rid}.parquet"))
        self.staging.finish(rid, written)
        files = self.staging.place()  # over the old files of the same names
        # Written over below: the connections, and the outages where there are some.
        tables = {self.root / _CONNECTIONS / f"{rid}.parquet": (
            self.timeline.frame().sort("seq", maintain_order=True), CONNECTION_SCHEMA)}
        if outages is not None:
            tables[self.root / _OUTAGES / f"{rid}.parquet"] = (outages, OUTAGE_SCHEMA)
        for gone in sorted(set(old) - set(files) - set(tables)):  # a day no longer in it, say
            gone.unlink()
        for path, (table, schema) in tables.items():
            write_private_parquet(table.with_columns(pl.lit(rid).alias("recording")).select(
                *schema).cast(schema), path)  # type: ignore[arg-type]
            files.append(path)
        return ExportSummary(recording=rid, rows=self.rows, files=files, replaced=len(old),
                             normalized=self.kinds)

    def close(self) -> None:
        self.staging.close()


def _quote_source(spec: FeedSpec | None, normalized: bool,
                  quotes: QuoteSource | None) -> QuoteSource:
    """Where an export's ``quotes`` come from (:func:`~wsresearch.pipeline.quote_source`).

    Raises
    ------
    ValueError
        As :func:`~wsresearch.pipeline.quote_source` raises, and for ``quotes`` given
        without ``normalized``.
    """
    if quotes is not None and not normalized:
        raise ValueError("quotes= chooses the source of the normalized quotes: "
                         "export with normalized=True")
    return quote_source(spec, quotes, spec is not None and spec.book_sync is not None, "quotes")


def export_with_report(
    recording: Recording | str | os.PathLike[str],
    spec: FeedSpec | None,
    out_dir: str | os.PathLike[str],
    *,
    normalized: bool = False,
    progress: Callable[[int, int], None] | None = None,
    chunk_events: int = CHUNK_EVENTS,
    quotes: QuoteSource | None = None,
    **report_options: Any,
) -> tuple[ExportSummary, QualityReport]:
    """Export ``recording`` and report on its quality from **one** replay.

    :func:`export_parquet` and :func:`~wsresearch.quality.quality_report` each replay the
    recording; together they would parse it twice. Here one replay makes the rows, the
    normalized tables (with ``normalized``) and the report: the same dataset and the same
    report as the two calls, for the cost of one. The dataset also gets the report's
    outages (``_outages/<recording id>.parquet``, :func:`load_outages`), so that it
    carries the spells a backtest leaves out.

    Parameters
    ----------
    recording, spec, out_dir, normalized, progress, chunk_events, quotes
        As for :func:`export_parquet`: the replay streams, and what the report needs of
        its rows is kept as they go (:class:`~wsresearch.quality.ReportInputs`).
    **report_options
        The hole rule's options of :func:`~wsresearch.quality.quality_report`.

    Returns
    -------
    tuple of ExportSummary and QualityReport

    Raises
    ------
    RecordingFormatError
        If ``recording`` is not a readable recording.
    ValueError
        As :func:`export_parquet` and :func:`~wsresearch.quality.quality_report` raise.
    """
    root = _dataset_dir(out_dir)  # found before the replay, not after it
    if not isinstance(recording, Recording):
        recording = Recording.open(recording)
    rule = hole_rule(**report_options)
    spec = spec_for(recording, spec)
    export = _Export(root, recording, spec, normalized, progress=progress, quotes=quotes)
    inputs = ReportInputs(spec, chunk_events)

    def take(pipeline: Pipeline, events: pl.DataFrame) -> None:
        inputs.count(events)
        inputs.add(export.take(pipeline, events))

    try:
        result = replay_in_chunks(recording, spec, "complete", progress, chunk_events, take)
        whole = {name: result.frames[name] for name in export.whole}
        export.add(whole, None)
        inputs.add(whole)
        report = inputs.report(recording, spec, result, rule)
        return export.finish(outages=report.outages), report
    finally:
        export.close()
        inputs.close()


def _dataset_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` as a path, or a ValueError if it is a file (checked before any replay)."""
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise ValueError(f"out_dir {root} is a file; a dataset is a directory")
    return root


def _channels_in(root: Path) -> list[str]:
    return sorted(p.name.partition("=")[2] for p in root.glob("channel=*") if p.is_dir())


def load_dataset(
    path: str | os.PathLike[str],
    channels: Sequence[str] | None = None,
    start: Time | None = None,
    end: Time | None = None,
) -> pl.LazyFrame:
    """The dataset at ``path`` as one lazy frame, with ``channel``, ``exchange`` and ``date``.

    Channels keep their own columns (a column a channel lacks is null in its
    rows); any mix of exchanges, recordings and schemas loads (a column whose types
    cannot be reconciled is a one-line error naming the files). ``start``
    (inclusive) and ``end`` (exclusive) bound ``recv_wall_ns``; whole days outside
    them are never read (partition pruning), and polars pushes other filters down
    into the Parquet scan. One channel may be given by its name alone.

    Channels are what exchanges sent, under their own names; the normalized tables are
    :func:`load_normalized`'s. Where a channel's name is also a normalized kind's (OKX's
    ``trades``) and the dataset holds that kind of other exchanges too, naming it here
    warns that their rows are not among those read.

    Raises
    ------
    FileNotFoundError
        If ``path`` holds no dataset.
    ValueError
        For a channel the dataset does not have, or ``start`` after ``end``.
    """
    root = Path(path)
    present = _channels_in(root)
    if not present:
        raise FileNotFoundError(f"{root} holds no exported dataset (no channel=... folders)")
    if isinstance(channels, str):
        channels = [channels]
    chosen = list(channels) if channels is not None else present
    missing = sorted(set(chosen) - set(present))
    if missing:
        raise ValueError(f"the dataset has no channel(s) {missing}; it has {present}"
                         f"{_kind_hint([name for name in missing if name in KINDS])}")
    low = None if start is None else given_ns(start, "start")
    high = None if end is None else given_ns(end, "end")
    if low is not None and high is not None and low > high:
        raise ValueError(f"start ({start}) is after end ({end})")
    for name in chosen if channels is not None else ():
        if name in KINDS:
            _tell_of_a_kinds_name(root, name)
    return _scan(root, "channel", chosen, low, high)


def _tell_of_a_kinds_name(root: Path, name: str) -> None:
    """Warn where channel ``name`` is also a normalized kind that holds other exchanges.

    OKX's channel ``trades`` beside the normalized trades of Binance: the native rows read
    are those of fewer exchanges than the name suggests. A folder of the layout before
    exchange partitions (``date=`` right under it) does not say whose rows it holds, so
    there the warning names none.
    """
    native, kind = _exchanges(root / f"channel={name}"), _exchanges(root / f"kind={name}")
    if native is None or kind is None:
        warn(f"{name!r} is read as the channel of that name, an exchange's native frames"
             f"{_kind_hint([name])}")
    elif kind - native:
        warn(f"{name!r} is read as the channel of that name, the native frames of "
             f"{sorted(native)} only; the normalized {name!r} also holds rows of "
             f"{sorted(kind - native)}{_kind_hint([name])}")


def _exchanges(folder: Path) -> set[str] | None:
    """The exchanges a dataset's ``channel=`` or ``kind=`` folder holds rows of.

    ``None`` where some of its rows are in the layout before exchange partitions.
    """
    if any(path.is_dir() for path in folder.glob("date=*")):
        return None
    return {path.name.partition("=")[2] for path in folder.glob("exchange=*") if path.is_dir()}


def _kind_hint(kinds: Sequence[str]) -> str:
    """What to call for normalized kinds asked of :func:`load_dataset` as channels."""
    if not kinds:
        return ""
    calls = ", ".join(f"load_normalized(path, {kind!r})" for kind in kinds)
    return f"; the normalized kind of every exchange is {calls}"


def load_normalized(
    path: str | os.PathLike[str],
    kind: str,
    start: Time | None = None,
    end: Time | None = None,
) -> pl.LazyFrame:
    """One normalized kind (``trades``, ``quotes``...) of every exchange in the dataset.

    Written by ``export_parquet(..., normalized=True)``: the columns of
    :mod:`wsresearch.normalize` (``exchange`` from the partition), plus ``recording``
    and ``date``. ``start`` (inclusive) and ``end`` (exclusive) bound ``local_time``.

    A dataset exported without the normalized tables gives the kind's columns, empty.

    Raises
    ------
    FileNotFoundError
        If ``path`` holds no dataset at all (a mistyped path).
    ValueError
        For a kind that is not one of :data:`~wsresearch.normalize.KINDS`, or
        ``start`` after ``end``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; the kinds are {list(KINDS)}")
    root = Path(path)
    if not _channels_in(root) and not any(p.is_dir() for p in root.glob("kind=*")):
        raise FileNotFoundError(f"{root} holds no exported dataset (no channel=... or "
                                "kind=... folders)")
    low = None if start is None else given_ns(start, "start")
    high = None if end is None else given_ns(end, "end")
    if low is not None and high is not None and low > high:
        raise ValueError(f"start ({start}) is after end ({end})")
    lazy = _scan(root, "kind", [kind], low, high)
    columns = lazy.collect_schema().names()
    if "local_time" not in columns:  # no file of this kind: the table's columns, empty
        return pl.LazyFrame(schema=COMMON | KINDS[kind] | {"recording": pl.String(),
                                                           "kind": pl.String(),
                                                           "date": pl.Date()})
    return lazy.select(*COMMON, *KINDS[kind], "recording", "kind", "date")


_HIVE = {"exchange": pl.String(), "date": pl.Date()}


def _scan(root: Path, level: str, names: Sequence[str], low: int | None,
          high: int | None) -> pl.LazyFrame:
    """The files of ``level=<name>`` folders as one frame, days outside ``[low, high)`` unread.

    Both layouts read: ``<level>=X/exchange=E/date=D/`` and the one before exchange
    partitions, ``<level>=X/date=D/`` (its rows have a null ``exchange``).
    """
    files = []
    for name in names:
        found = sorted((root / f"{level}={name}").glob("**/date=*/*.parquet"))
        files += [f for f in found if _day_overlaps(f.parent.name, low, high)]
    hive = {level: pl.String()} | _HIVE
    if not files:
        return pl.LazyFrame(schema=hive)
    # One scan per file, each with its own columns: two recordings' rows of one
    # channel may have different fields (a scan of many files assumes the first's).
    lazy = _union([(str(file), pl.scan_parquet(
        file, hive_partitioning=True, glob=False,  # a path (which may hold "[" or "*")
        hive_schema={k: v for k, v in hive.items()
                     if k != "exchange" or file.parent.parent.name.startswith("exchange=")},
    )) for file in files])
    if "exchange" not in lazy.collect_schema().names():
        lazy = lazy.with_columns(pl.lit(None, pl.String()).alias("exchange"))
    time = "recv_wall_ns" if level == "channel" else "local_time"
    bound = pl.col(time) if level == "channel" else pl.col(time).dt.epoch("ns")
    if low is not None:
        lazy = lazy.filter(bound >= low)
    if high is not None:
        lazy = lazy.filter(bound < high)
    return lazy


def _union(parts: list[tuple[str, pl.LazyFrame]]) -> pl.LazyFrame:
    """The rows of every part in one frame, a column a part lacks null in its rows.

    Types that differ but mean the same are reconciled: a wider number (``Int64`` with
    ``Float64``), and datetimes written naive (exports made before datetimes were
    stored in UTC) with UTC ones, taken as UTC as they always were.

    Raises
    ------
    ValueError
        If a column's types in two parts have no common type that keeps both (a list
        of structs and a list of arrays; a number and text, which would make every
        value text; signed and unsigned 64-bit ints): naming the column, both types
        and where each comes from.
    """
    types: dict[str, tuple[pl.DataType, str]] = {}
    schemas = []
    for where, lazy in parts:
        schema = lazy.collect_schema()
        schemas.append(schema)
        for column, dtype in schema.items():
            dtype = _utc(dtype)
            seen = types.get(column)
            if seen is None or seen[0] == dtype:
                types.setdefault(column, (dtype, where))
                continue
            merged = _common(seen[0], dtype)
            if merged is None:
                raise ValueError(
                    f"column {column!r} is {seen[0]} in {seen[1]} but {dtype} in {where}: no "
                    "type keeps both; load them apart (one channel, or the recordings of "
                    "one kind, at a time), or across exchanges merge their normalized "
                    "tables (merge_events(dataset, kinds=[...]))")
            types[column] = (merged, seen[1])
    aligned = [lazy.with_columns(pl.col(column).dt.replace_time_zone("UTC") for column, dtype
                                 in schema.items() if _utc(dtype) != dtype)
               for (_, lazy), schema in zip(parts, schemas, strict=True)]
    return pl.concat(aligned, how="diagonal_relaxed")


def _utc(dtype: pl.DataType) -> pl.DataType:
    """A naive datetime type as the UTC one it stands for; any other type as it is."""
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        return pl.Datetime(dtype.time_unit, "UTC")
    return dtype


def _common(a: pl.DataType, b: pl.DataType) -> pl.DataType | None:
    """The type both ``a`` and ``b`` values keep their meaning in, or ``None``."""
    try:
        merged = pl.concat([pl.DataFrame(schema={"c": a}), pl.DataFrame(schema={"c": b})],
                           how="vertical_relaxed").schema["c"]
    except pl.exceptions.PolarsError:
        return None
    if merged == pl.String and (a != pl.String or b != pl.String):
        return None  # a number or a time would become text
    if isinstance(merged, pl.Int128):
        return None  # no Arrow type, no pandas type: not a column anyone could use
    return merged


def _day_overlaps(folder: str, low: int | None, high: int | None) -> bool:
    day = dt.date.fromisoformat(folder.partition("=")[2])
    first = ns_since_epoch(day)
    return (low is None or first + _NS_PER_DAY > low) and (high is None or first < high)


def load_connections(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Every open and close of every recording in the dataset (:data:`CONNECTION_SCHEMA`).

    One row per ``open`` and ``close`` in the dataset directory ``path``, by recording and
    monotonic time; none before a recording is exported into it.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a directory: a mistyped path must not read as "never connected".
    """
    files = sorted((_existing_dataset(path, "connections") / _CONNECTIONS).glob("*.parquet"))
    if not files:
        return pl.DataFrame(schema=CONNECTION_SCHEMA)
    # Files exported before a column was added lack it: null there, and in this order.
    merged = pl.concat([pl.read_parquet(f, glob=False) for f in files], how="diagonal_relaxed")
    return merged.select(
        (pl.col(name) if name in merged.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in CONNECTION_SCHEMA.items()
    ).sort("recording", "mono_ns")


def load_outages(path: str | os.PathLike[str]) -> pl.DataFrame:
    """The outages of every recording exported with its report (:data:`OUTAGE_SCHEMA`).

    :func:`export_with_report` (``wsresearch export --report``) writes each recording's
    outages beside its rows (an empty table where it had none);
    :func:`~wsresearch.outages.mark_outages` then marks the dataset's rows with them,
    each recording's rows by its own outages (both tables have the ``recording``
    column). A recording exported without its report has none here, and a
    ``UserWarning`` names it: its rows would read as never out.

    Parameters
    ----------
    path
        The dataset's directory.

    Returns
    -------
    polars.DataFrame
        One row per outage, by recording and start (none where no recording was exported
        with its report).

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a directory: a mistyped path must not read as "no outages".

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as dataset:
    ...     load_outages(dataset).columns
    ['recording', 'exchange', 'reason', 'stream', 'symbol', 'start', 'end', 'length_s', 'detail']
    """
    root = _existing_dataset(path, "outages")
    files = sorted((root / _OUTAGES).glob("*.parquet"))
    unknown = sorted({f.stem for f in (root / _CONNECTIONS).glob("*.parquet")}
                     - {f.stem for f in files})
    if unknown:
        warn(f"{len(unknown)} recording(s) of {path} were exported without their report, so "
             f"their outages are not known: {', '.join(unknown[:3])}"
             f"{', ...' if len(unknown) > 3 else ''} (export them with --report, or "
             "export_with_report)")
    if not files:
        return pl.DataFrame(schema=OUTAGE_SCHEMA)
    return pl.concat([pl.read_parquet(f, glob=False).cast(OUTAGE_SCHEMA)  # type: ignore[arg-type]
                      for f in files]).sort("recording", "start", maintain_order=True)


def _existing_dataset(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a path, or a FileNotFoundError naming ``what`` if it is no directory."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{path} is no dataset directory: it holds no {what} to read")
    return root


def merge_events(
    source: str | os.PathLike[str] | Mapping[str, pl.DataFrame | pl.LazyFrame],
    by: Literal["recv", "exchange"] = "recv",
    channels: Sequence[str] | None = None,
    *,
    kinds: Sequence[str] | None = None,
) -> pl.LazyFrame:
    """Every row of every channel as one stream in time order, for event-driven backtests.

    Parameters
    ----------
    source
        A dataset directory, or channel frames (``Feed.frames``,
        ``ReplayResult.frames``).
    by
        ``"recv"``: receive order (``recv_wall_ns``), what a live strategy saw.
        ``"exchange"``: ``exchange_ns``, rows without one falling back to their
        receive time.
    channels
        Only these channels.
    kinds
        Instead of the channels' own rows, the normalized tables of these kinds
        (``["trades", "quotes", "book_changes"]``; a dataset exported with
        ``normalized=True``): the same columns for every exchange, so this is the
        stream across exchanges. Ordered by ``local_time`` (``"recv"``) or
        ``exchange_time`` (``"exchange"``, falling back to ``local_time``); a ``kind``
        column says which table a row is from.

    Returns
    -------
    pl.LazyFrame
        The rows of all channels (a ``channel`` column says which; columns a
        channel lacks are null), with ``event_ns``, the time it is ordered by.
        Ties keep the order the frames were recorded in (``frame_seq``), then
        each channel's own row order (rows of one frame). Collect it, or stream it with
        ``.collect_batches()``.

    Raises
    ------
    ValueError
        For an unknown ``by`` or kind, ``channels`` with ``kinds``, ``kinds`` of frames
        rather than a dataset, or channels whose same-named columns have types that
        cannot be one column (two exchanges' book levels): merge their normalized
        ``kinds``, or fewer ``channels``.
    """
    if by not in ("recv", "exchange"):
        raise ValueError(f"by must be 'recv' or 'exchange', got {by!r}")
    if kinds is not None:
        if channels is not None:
            raise ValueError("give channels or kinds, not both")
        if isinstance(source, Mapping):
            raise ValueError("kinds are read from a dataset directory; frames are channels")
        if isinstance(kinds, str):
            raise ValueError(f"kinds is a list of kinds (kinds=[{kinds!r}]), not a string")
        unknown = [kind for kind in kinds if kind not in KINDS]
        if unknown:
            raise ValueError(f"unknown kind {unknown[0]!r}; the kinds are {list(KINDS)}")
        lazy = _union([(f"kind {kind!r}", load_normalized(source, kind))
                       for kind in dict.fromkeys(kinds)]) if kinds else pl.LazyFrame(
            schema=COMMON | {"recording": pl.String(), "kind": pl.String(),
                             "date": pl.Date()})
        time = pl.col("local_time")
        if by == "exchange":
            time = pl.coalesce(pl.col("exchange_time"), time)
        time = time.dt.epoch("ns")
    else:
        if isinstance(source, Mapping):
            names = list(channels) if channels is not None else list(source)
            frames = [(f"channel {name!r}", source[name].lazy().with_columns(
                pl.lit(name).alias("channel"))) for name in names]
            lazy = _union(frames) if frames else pl.LazyFrame()
        else:
            lazy = load_dataset(source, channels)
        time = pl.col("recv_wall_ns")
        if by == "exchange":
            time = pl.coalesce(pl.col("exchange_ns"), time)
    return (
        lazy.with_row_index("_order")
        .with_columns(time.alias("event_ns"))
        .sort("event_ns", "frame_seq", "_order", nulls_last=True, maintain_order=True)
        .drop("_order")
    )
