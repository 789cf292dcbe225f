"""How good was a feed: connections, rates, silences, sequence gaps, latency, rejects.

:func:`quality_report` works on a recording (replayed through its spec, so every
figure is what the live session would have shown, and the same on every run) or
on a live :class:`~wsresearch.feed.Feed` (so far). Every table is a polars frame;
:meth:`QualityReport.summary` is the one-table overview, :meth:`QualityReport.plot`
draws it (matplotlib, the ``report`` extra) and :meth:`QualityReport.to_html`
writes a self-contained page. :func:`compare` puts two sessions side by side.

Times in the tables are ns on the session's monotonic clock (``*_mono_ns``)
and seconds (``*_s``) for durations; latencies are in ms.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from .connection import redact_url
from .feed import Feed
from .health import HealthTransition
from .recording import Recording
from .replay import replay
from .spec import FeedSpec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["QualityReport", "compare", "quality_report"]

_NS = 1_000_000_000

CONNECTION_COLUMNS: dict[str, pl.DataType] = {
    "generation": pl.Int64(),
    "opened_mono_ns": pl.Int64(),
    "opened_wall_ns": pl.Int64(),
    "first_message_s": pl.Float64(),
    "closed_mono_ns": pl.Int64(),
    "code": pl.Int64(),
    "reason": pl.String(),
    "category": pl.String(),
    "connected_s": pl.Float64(),
    "downtime_after_s": pl.Float64(),
}
SILENCE_COLUMNS: dict[str, pl.DataType] = {
    "stream": pl.String(),
    "kind": pl.String(),  # stale (the stream was judged stale) or silent_ok (allowed)
    "start_mono_ns": pl.Int64(),
    "end_mono_ns": pl.Int64(),
    "length_s": pl.Float64(),
    "beyond_threshold_s": pl.Float64(),
    "recovered": pl.Boolean(),
}


@dataclass(frozen=True)
class QualityReport:
    """The quality of one session, as tables (see :func:`quality_report`).

    Attributes
    ----------
    source
        What was analysed (a recording's path, or the feed's URL).
    start_mono_ns, end_mono_ns
        The session's span on its monotonic clock.
    connections
        One row per connection: opened, time to its first message, closed (code,
        reason, category), time connected, downtime until the next open.
    streams
        One row per health stream: messages, rate (mean, p50, p99 over 1 s
        windows), stale episodes and time, silent-ok time. Without a spec, one
        ``frames`` row for all frames.
    silences
        Every silence longer than its stream's ``stale_threshold``: the stale
        episodes the health monitor saw, and the allowed silences of
        ``allow_silence`` streams.
    sequence
        Per sequenced channel: gaps, numbers missing, repeats, late messages.
    latency
        Per channel with an exchange time: receive minus exchange time, in ms
        (p50, p90, p99, max), and the share of negative values (clock skew).
    outcomes
        Frames by outcome: received, ok, duplicates, control, exchange errors,
        each reject reason, and what the live pipeline dropped or found stale.
    rates
        Messages per stream per second of the session (for plots).
    health
        Every health transition.
    latencies
        Every latency sample: ``channel``, ``ms`` (for the distribution plot).
    recording
        Whether the recording holds the whole session: ``complete``, or
        ``incomplete:`` and why (the session did not stop cleanly, writes
        failed and events were lost, ``seq`` numbers are missing). For a live
        feed, what its recorder has written, or ``not recording``. Every other
        figure describes what the recording holds, so read them with this.
    """

    source: str
    start_mono_ns: int
    end_mono_ns: int
    connections: pl.DataFrame
    streams: pl.DataFrame
    silences: pl.DataFrame
    sequence: pl.DataFrame
    latency: pl.DataFrame
    outcomes: pl.DataFrame
    rates: pl.DataFrame
    health: pl.DataFrame
    latencies: pl.DataFrame
    recording: str = "not recording"

    @property
    def duration_s(self) -> float:
        """Length of the session in seconds."""
        return (self.end_mono_ns - self.start_mono_ns) / _NS

    def summary(self) -> pl.DataFrame:
        """The overview: one ``metric``/``value`` row per figure (values as text)."""
        c, o = self.connections, dict(self.outcomes.iter_rows())
        connected = float(c["connected_s"].sum()) if c.height else 0.0
        first_open = int(c["opened_mono_ns"].min()) if c.height else self.start_mono_ns  # type: ignore[arg-type]
        span = max(1e-9, (self.end_mono_ns - first_open) / _NS)
        stale = self.silences.filter(kind="stale")
        lat = self.latency
        rows: list[tuple[str, str]] = [
            ("recording", self.recording),
            ("duration", f"{self.duration_s:.1f} s"),
            ("connections", str(c.height)),
            ("disconnects", ", ".join(f"{code} {cat}" for code, cat in
                                      c.filter(pl.col("closed_mono_ns").is_not_null())
                                      .select("code", "category").iter_rows()) or "none"),
            ("downtime", f"{float(c['downtime_after_s'].sum() or 0.0):.2f} s"),
            ("uptime", f"{100 * min(1.0, connected / span):.1f}%"),
            ("messages", str(o.get("ok", 0))),
            ("duplicates", str(o.get("duplicates", 0))),
            ("rejected", str(sum(v for k, v in o.items() if k.startswith("reject:")))),
            ("dropped (live queue)", str(o.get("dropped_live", 0))),
            ("exchange errors", str(o.get("exchange_errors", 0))),
            ("sequence gaps", f"{int(self.sequence['gaps'].sum() or 0)} "
                              f"({int(self.sequence['missing'].sum() or 0)} missing)"),
            ("stale episodes", f"{stale.height} ({float(stale['length_s'].sum() or 0):.1f} s)"),
            ("latency p50 / p99", "n/a" if not lat.height else
             f"{float(lat['p50_ms'].median()):.1f} / {float(lat['p99_ms'].max()):.1f} ms"),  # type: ignore[arg-type]
            ("clock skew", ", ".join(lat.filter(pl.col("negative_share") > 0)["channel"])
             or "none"),
        ]
        return pl.DataFrame(rows, schema={"metric": pl.String, "value": pl.String},
                            orient="row")

    def _repr_html_(self) -> str:
        return f"<b>Feed quality: {html.escape(self.source)}</b>" + (
            self.summary()._repr_html_())

    def __repr__(self) -> str:
        return f"QualityReport({self.source!r})\n{self.summary()}"

    def plot(self) -> Figure:
        """Rates per stream with disconnects and stale spells shaded, latency, health timeline.

        Raises
        ------
        ImportError
            Without matplotlib (``pip install 'wsresearch[report]'``).
        """
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError(
                "plots need matplotlib: pip install 'wsresearch[report]'") from None
        figure = Figure(figsize=(10, 8), layout="constrained")
        rate_ax, lat_ax, health_ax = figure.subplots(3, 1, height_ratios=(3, 2, 2))
        zero = self.start_mono_ns

        def seconds(ns: Any) -> float:
            return (float(ns) - zero) / _NS

        for stream in self.rates["stream"].unique(maintain_order=True):
            rows = self.rates.filter(stream=stream)
            rate_ax.plot(rows["second"], rows["messages"], label=stream, linewidth=1)
        for row in self.connections.iter_rows(named=True):
            if row["closed_mono_ns"] is not None and row["downtime_after_s"] is not None:
                start = seconds(row["closed_mono_ns"])
                rate_ax.axvspan(start, start + row["downtime_after_s"], color="grey",
                                alpha=0.3, label="_down")
        for row in self.silences.filter(kind="stale").iter_rows(named=True):
            rate_ax.axvspan(seconds(row["start_mono_ns"]), seconds(row["end_mono_ns"]),
                            color="red", alpha=0.15, label="_stale")
        rate_ax.set_yscale("symlog")  # a burst must not flatten the quiet streams
        rate_ax.set_title("messages per second (grey: disconnected, red: stale)")
        rate_ax.set_xlabel("seconds")
        if self.rates.height:
            rate_ax.legend(loc="upper right", fontsize="small")
        lat_ax.set_title("latency, exchange time to receive time (ms; box: p25-p75, "
                         "whiskers: p1-p99)")
        if self.latencies.height:
            names = self.latencies["channel"].unique(maintain_order=True).to_list()
            lat_ax.boxplot([self.latencies.filter(channel=n)["ms"].to_numpy() for n in names],
                           orientation="horizontal", tick_labels=names, whis=(1, 99),
                           showfliers=False)
        else:
            lat_ax.text(0.5, 0.5, "no exchange times", ha="center", va="center")
        streams = self.streams["stream"].to_list()
        for index, stream in enumerate(streams):
            health_ax.broken_barh([(0, self.duration_s)], (index - 0.4, 0.8), color="tab:green")
            spells = self.silences.filter(stream=stream, kind="stale")
            health_ax.broken_barh(
                [(seconds(s), (e - s) / _NS) for s, e in spells.select(
                    "start_mono_ns", "end_mono_ns").iter_rows()],
                (index - 0.4, 0.8), color="tab:red")
        down = [(seconds(r["closed_mono_ns"]), r["downtime_after_s"])
                for r in self.connections.iter_rows(named=True)
                if r["closed_mono_ns"] is not None and r["downtime_after_s"] is not None]
        health_ax.broken_barh(down, (len(streams) - 0.4, 0.8), color="grey")
        health_ax.set_yticks(range(len(streams) + 1), [*streams, "connection"])
        health_ax.set_title("health (green: healthy, red: stale, grey: disconnected)")
        health_ax.set_xlabel("seconds")
        return figure

    def png(self) -> bytes:
        """:meth:`plot` as PNG bytes."""
        buffer = io.BytesIO()
        self.plot().savefig(buffer, format="png", dpi=90)
        return buffer.getvalue()

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """Write a self-contained HTML report (tables, and the plots embedded as PNG)."""
        image = base64.b64encode(self.png()).decode("ascii")
        sections = [
            ("Summary", self.summary()), ("Connections", self.connections),
            ("Streams", self.streams), ("Silences", self.silences),
            ("Sequence", self.sequence), ("Latency", self.latency),
            ("Outcomes", self.outcomes),
        ]
        body = "".join(
            f"<h2>{title}</h2>{frame._repr_html_()}" for title, frame in sections)
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>Feed quality: {html.escape(self.source)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{padding:2px 8px}</style></head><body>"
            f"<h1>Feed quality: {html.escape(self.source)}</h1>"
            f"<img alt='plots' src='data:image/png;base64,{image}'>{body}</body></html>"
        )
        target = Path(path)
        target.write_text(page, encoding="utf-8")
        return target


def quality_report(
    source: Recording | Feed | str | os.PathLike[str],
    spec: FeedSpec | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> QualityReport:
    """Analyse a recording (replayed) or a live feed (so far).

    Parameters
    ----------
    source
        A :class:`~wsresearch.recording.Recording`, its directory, or a
        :class:`~wsresearch.feed.Feed`.
    spec
        For a recording: the spec to replay it with (default: its own). Without
        one the report has frame-level figures only: connections, frame rates,
        outcomes.
    progress
        For a recording: called with ``(events done, events in all)`` while it replays.

    Raises
    ------
    RecordingFormatError
        If ``source`` is not a readable recording.
    """
    if isinstance(source, Feed):
        return _from_feed(source)
    recording = source if isinstance(source, Recording) else Recording.open(source)
    return _from_recording(recording, spec if spec is not None else recording.spec, progress)


def _from_recording(
    recording: Recording, spec: FeedSpec | None, progress: Callable[[int, int], None] | None
) -> QualityReport:
    events = recording.events()
    start = int(events["mono_ns"].min()) if events.height else 0  # type: ignore[arg-type]
    end = int(events["mono_ns"].max()) if events.height else 0  # type: ignore[arg-type]
    timeline = events.filter(pl.col("kind").is_in(["open", "close"])).select(
        "kind", "generation", "mono_ns", "wall_ns", "code", "reason", "category")
    frames_seen = recording.frames().select("generation", "recv_mono_ns")
    drops = events.filter(kind="drop")
    live = {"dropped_live": drops.filter(reason="overflow").height,
            "old_generation_live": drops.filter(reason="stale").height}
    whole = _completeness(recording, events)
    if spec is None:
        outcomes = {"received": frames_seen.height, **live}
        times = {"frames": frames_seen["recv_mono_ns"]}
        return _report(str(recording.path), start, end, timeline, frames_seen, times, {},
                       {}, [], {}, {}, outcomes, whole)
    result = replay(recording, spec, progress=progress)
    stats = result.stats
    outcomes = {"received": stats["frames"], "ok": stats["ok"],
                "duplicates": stats["duplicates"], "control": stats["control"],
                "exchange_errors": stats["exchange_errors"],
                **{f"reject:{k}": v for k, v in stats["rejects"].items()}, **live}
    return _report(str(recording.path), start, end, timeline, frames_seen,
                   _stream_times(result.frames, spec), result.frames, _thresholds(spec),
                   result.health_transitions, result.sequence_by_channel,
                   _sequenced(spec), outcomes, whole)


def _completeness(recording: Recording, events: pl.DataFrame) -> str:
    """``complete``, or ``incomplete:`` with every reason the recording gives."""
    manifest = recording.manifest
    recorded = manifest.events if manifest.events is not None else (
        int(events["seq"].max()) + 1 if events.height else 0)  # type: ignore[arg-type]
    missing = recorded - events.height
    if manifest.complete and missing <= 0:
        return "complete"
    reasons = []
    if manifest.ended_wall_ns is None:
        reasons.append("the session did not stop cleanly (a crash or a kill): "
                       "the last flush interval may be missing")
    elif manifest.incomplete_reason:
        reasons.append(manifest.incomplete_reason)
    if missing > 0:
        reasons.append(f"{missing} of {recorded} event(s) not in the files")
    return "incomplete: " + ("; ".join(reasons) or "marked so by its manifest")


def _from_feed(feed: Feed) -> QualityReport:
    spec = feed.spec
    frames = feed.frames
    stats = feed.stats
    timeline = feed.connections
    seen = pl.concat([f.select("generation", "recv_mono_ns") for f in frames.values()]) if (
        frames) else pl.DataFrame(schema={"generation": pl.Int64, "recv_mono_ns": pl.Int64})
    now = feed.clock.monotonic_ns()
    start = int(timeline["mono_ns"].min()) if timeline.height else now  # type: ignore[arg-type]
    outcomes = {"received": stats.received, "ok": stats.ok, "duplicates": stats.duplicates,
                "control": stats.control, "exchange_errors": stats.exchange_errors,
                **{f"reject:{k}": v for k, v in stats.rejects.items()},
                "dropped_live": stats.dropped, "old_generation_live": stats.old_generation}
    recorder = feed.recorder
    recording = "not recording" if recorder is None else (
        f"to {recorder.path}: {recorder.errors} failed write(s), {recorder.held} event(s) "
        f"held, {recorder.lost} lost")
    return _report(redact_url(spec.url), start, now, timeline, seen,
                   _stream_times(frames, spec), frames, _thresholds(spec),
                   list(feed.health.transitions), feed.sequences.by_channel, _sequenced(spec),
                   outcomes, recording)


def _thresholds(spec: FeedSpec) -> dict[str, tuple[float, bool]]:
    return {name: (config.stale_threshold, config.allow_silence)
            for name, config in spec.health.items()}


def _sequenced(spec: FeedSpec) -> dict[str, bool]:
    return {c.name: c.sequence is not None for c in spec.channels}


def _stream_times(frames: dict[str, pl.DataFrame], spec: FeedSpec) -> dict[str, pl.Series]:
    """Receive times per health stream (a message counts once, however many rows it made)."""
    times: dict[str, list[pl.Series]] = {}
    for channel in spec.channels:
        frame = frames[channel.name]
        column = frame.select(pl.col("recv_mono_ns").unique(maintain_order=True)).to_series() \
            if channel.explode else frame["recv_mono_ns"]
        times.setdefault(channel.stream_name, []).append(column)
    return {stream: pl.concat(parts).sort() for stream, parts in times.items()}


def _report(
    source: str,
    start: int,
    end: int,
    timeline: pl.DataFrame,
    frames_seen: pl.DataFrame,
    stream_times: dict[str, pl.Series],
    frames: dict[str, pl.DataFrame],
    thresholds: dict[str, tuple[float, bool]],
    transitions: list[HealthTransition],
    sequence_counts: dict[str, dict[str, int]],
    sequenced: dict[str, bool],
    outcomes: dict[str, int],
    recording: str,
) -> QualityReport:
    silences = _silences(stream_times, thresholds, transitions, end)
    rates = _rates(stream_times, start, end)
    latencies = _latency_samples(frames)
    empty: dict[str, int] = {}
    health = pl.DataFrame(
        [(t.mono_ns, t.stream, t.healthy) for t in transitions], orient="row",
        schema={"mono_ns": pl.Int64, "stream": pl.String, "healthy": pl.Boolean})
    return QualityReport(
        recording=recording,
        source=source,
        start_mono_ns=start,
        end_mono_ns=end,
        connections=_connections(timeline, frames_seen, end),
        streams=_streams(stream_times, rates, thresholds, silences, start, end),
        silences=silences,
        sequence=pl.DataFrame(
            [(name, *(sequence_counts.get(name, empty).get(outcome, 0)
                      for outcome in ("gap", "missing", "repeat", "out_of_order")))
             for name, has in sequenced.items() if has],
            schema={"channel": pl.String, "gaps": pl.Int64, "missing": pl.Int64,
                    "repeats": pl.Int64, "out_of_order": pl.Int64}, orient="row"),
        latency=_latency(latencies),
        outcomes=pl.DataFrame(list(outcomes.items()), orient="row",
                              schema={"outcome": pl.String, "count": pl.Int64}),
        rates=rates,
        health=health,
        latencies=latencies,
    )


def _connections(timeline: pl.DataFrame, seen: pl.DataFrame, end: int) -> pl.DataFrame:
    first_message = dict(seen.group_by("generation").agg(pl.col("recv_mono_ns").min())
                         .iter_rows())
    rows: list[dict[str, Any]] = []
    for event in timeline.iter_rows(named=True):
        if event["kind"] == "open":
            if rows and rows[-1]["closed_mono_ns"] is None and rows[-1]["connected_s"] is None:
                rows[-1]["connected_s"] = (event["mono_ns"] - rows[-1]["opened_mono_ns"]) / _NS
            if rows and rows[-1]["closed_mono_ns"] is not None:
                rows[-1]["downtime_after_s"] = (
                    event["mono_ns"] - rows[-1]["closed_mono_ns"]) / _NS
            first = first_message.get(event["generation"])
            rows.append({
                "generation": event["generation"], "opened_mono_ns": event["mono_ns"],
                "opened_wall_ns": event["wall_ns"],
                "first_message_s": None if first is None else (first - event["mono_ns"]) / _NS,
                "closed_mono_ns": None, "code": None, "reason": None, "category": None,
                "connected_s": None, "downtime_after_s": None,
            })
        elif rows and rows[-1]["closed_mono_ns"] is None:
            row = rows[-1]
            row.update(closed_mono_ns=event["mono_ns"], code=event["code"],
                       reason=event["reason"], category=event["category"],
                       connected_s=(event["mono_ns"] - row["opened_mono_ns"]) / _NS)
    if rows and rows[-1]["connected_s"] is None:  # still open at the end
        rows[-1]["connected_s"] = (end - rows[-1]["opened_mono_ns"]) / _NS
    return pl.DataFrame(rows, schema=CONNECTION_COLUMNS)


def _silences(
    times: dict[str, pl.Series],
    thresholds: dict[str, tuple[float, bool]],
    transitions: list[HealthTransition],
    end: int,
) -> pl.DataFrame:
    rows: list[tuple[Any, ...]] = []
    for stream, (threshold, allowed) in thresholds.items():
        received = times.get(stream, pl.Series([], dtype=pl.Int64))
        if allowed:  # never judged: the gaps between messages beyond the threshold
            gaps = pl.DataFrame({"start": received.shift(1), "end": received}).drop_nulls()
            for start, stop in gaps.filter(
                    (pl.col("end") - pl.col("start")) > threshold * _NS).iter_rows():
                length = (stop - start) / _NS
                rows.append((stream, "silent_ok", start, stop, length, length - threshold,
                             True))
            continue
        stale_since: int | None = None
        for transition in transitions:
            if transition.stream != stream:
                continue
            if not transition.healthy:
                stale_since = transition.mono_ns
            elif stale_since is not None:
                rows.append(_episode(stream, received, stale_since, transition.mono_ns,
                                     threshold, True))
                stale_since = None
        if stale_since is not None:
            rows.append(_episode(stream, received, stale_since, end, threshold, False))
    return pl.DataFrame(rows, schema=SILENCE_COLUMNS, orient="row").sort("start_mono_ns")


def _episode(stream: str, received: pl.Series, detected: int, stop: int, threshold: float,
             recovered: bool) -> tuple[Any, ...]:
    before = received.filter(received <= detected)
    start = int(before[-1]) if before.len() else int(detected - threshold * _NS)
    length = (stop - start) / _NS
    return (stream, "stale", start, stop, length, max(0.0, length - threshold), recovered)


def _streams(
    times: dict[str, pl.Series],
    rates: pl.DataFrame,
    thresholds: dict[str, tuple[float, bool]],
    silences: pl.DataFrame,
    start: int,
    end: int,
) -> pl.DataFrame:
    seconds = max(1, (end - start + _NS - 1) // _NS)
    rows = []
    for stream, received in times.items():
        full = rates.filter(stream=stream)["messages"]
        mine = silences.filter(stream=stream)
        stale, allowed = mine.filter(kind="stale"), mine.filter(kind="silent_ok")
        threshold = thresholds.get(stream, (None, False))[0]
        rows.append((stream, received.len(), received.len() / (seconds or 1),
                     float(full.quantile(0.5) or 0.0), float(full.quantile(0.99) or 0.0),
                     threshold, stale.height, float(stale["beyond_threshold_s"].sum() or 0.0),
                     float(allowed["beyond_threshold_s"].sum() or 0.0)))
    return pl.DataFrame(rows, orient="row", schema={
        "stream": pl.String, "messages": pl.Int64, "rate_mean": pl.Float64,
        "rate_p50": pl.Float64, "rate_p99": pl.Float64, "stale_threshold_s": pl.Float64,
        "stale_episodes": pl.Int64, "stale_s": pl.Float64, "silent_ok_s": pl.Float64})


def _rates(times: dict[str, pl.Series], start: int, end: int) -> pl.DataFrame:
    seconds = max(1, (end - start + _NS - 1) // _NS)
    parts = []
    for stream, received in times.items():
        counts = ((received - start) // _NS).value_counts()
        parts.append(pl.DataFrame({"second": pl.int_range(0, seconds, eager=True)}).join(
            counts.rename({counts.columns[0]: "second"}).cast({"second": pl.Int64}),
            on="second", how="left").fill_null(0).select(
                pl.lit(stream).alias("stream"), "second", pl.col("count").alias("messages")))
    if not parts:
        return pl.DataFrame(schema={"stream": pl.String, "second": pl.Int64,
                                    "messages": pl.UInt32})
    return pl.concat(parts)


def _latency_samples(frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
    parts = [frame.filter(pl.col("exchange_ns").is_not_null()).select(
        pl.lit(channel).alias("channel"),
        ((pl.col("recv_wall_ns") - pl.col("exchange_ns")) / 1e6).alias("ms"))
        for channel, frame in frames.items()]
    if not parts:
        return pl.DataFrame(schema={"channel": pl.String, "ms": pl.Float64})
    return pl.concat(parts)


def _latency(samples: pl.DataFrame) -> pl.DataFrame:
    ms = pl.col("ms")
    return samples.group_by("channel", maintain_order=True).agg(
        pl.len().cast(pl.Int64).alias("messages"), ms.quantile(0.5).alias("p50_ms"),
        ms.quantile(0.9).alias("p90_ms"), ms.quantile(0.99).alias("p99_ms"),
        ms.max().alias("max_ms"), (ms < 0).mean().alias("negative_share"),
    )


def compare(a: QualityReport, b: QualityReport) -> pl.DataFrame:
    """Two sessions side by side: ``metric``, then each summary's ``value``."""
    return a.summary().rename({"value": "a"}).join(
        b.summary().rename({"value": "b"}), on="metric", how="full", coalesce=True,
        maintain_order="left")
