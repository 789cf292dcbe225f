"""How good was a feed: connections, rates, silences, holes, sequence gaps, latency, rejects.

:func:`quality_report` works on a recording (replayed through its spec, so every
figure is what the live session would have shown, and the same on every run) or
on a live :class:`~wsresearch.feed.Feed` (so far). Every table is a polars frame;
:meth:`QualityReport.summary` is the one-table overview, :meth:`QualityReport.plot`
draws it (matplotlib, the ``report`` extra) and :meth:`QualityReport.to_html`
writes a self-contained page. :func:`compare` puts two sessions side by side.

Times in the tables are ns on the session's monotonic clock (``*_mono_ns``), on which
every figure is judged, with the same moments on the wall clock of the rows' ``local_time``
beside them (``opened``, ``start``, ``time``: UTC datetimes); durations are seconds
(``*_s``), latencies ms. :attr:`QualityReport.outages` lists the spells the feed did not
show the market, for a backtest to leave out (:func:`~wsresearch.outages.mark_outages`).

The report says what it cannot measure rather than print an impossible number:
receive times invented on import (the recording's manifest says so, or they are
before 2000), latencies beyond an hour (clocks that cannot be compared) and
negative latencies (clock skew) are flagged in :attr:`QualityReport.warnings` and
in the summary. Receive times imported from another tool's capture are real, but
that tool's clock: the summary says so in its ``receive times`` row.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import html
import io
import math
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ._coverage import COVERAGE_SCHEMA, SymbolCoverage, without_rows
from ._rows import HeldRows
from ._session_times import LatencyFigures, Parts, SessionTimes
from ._wall_clock import TIME, told, wall_clock
from .book import BOOK_CHANGE_COLUMNS, BOOK_COLUMNS, Books
from .clock import NS_PER_S
from .errors import first_error
from .health import HealthTransition
from .outages import OUTAGE_COLUMNS, on_wall_clock, outage_spans
from .pipeline import Counts, Pipeline
from .policy import END_OF_SESSION, describe_close, ends_session
from .recording import Recording
from .recording.format import TIMELINE_SCHEMA, ReceiveTimes
from .recording.reader import CHUNK_EVENTS, check_chunk_events
from .redaction import redact_url
from .replay import ReplayResult, check_spec, replay_in_chunks
from .spec import FeedSpec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .feed import Feed

__all__ = ["QualityReport", "ReportInputs", "compare", "hole_rule", "quality_report"]

_YEAR_2000_NS = 946_684_800 * NS_PER_S
"""Receive times before 2000-01-01 UTC were not taken from a clock: they were invented."""
_HOUR_MS = 3_600_000.0
"""No network delivers a message an hour late: a latency beyond it compares two clocks
that cannot be compared (times shifted, data re-served later)."""
_HISTORY_NS = NS_PER_S
"""A row stamped more than this (and less than an hour) before its connection opened is
history, not a latency: what an exchange sends of the past on subscribing (the last trade,
a ticker, the time of a book's last change). The margin keeps the first live messages of
an imported recording, whose connections open at their first message's receive time."""
_BYTES_PER_EVENT = 800
"""A report's times and latencies held in memory per event of a chunk (16 MB for the
default 20,000), before they go to temporary files."""
_QUANTILES = (0.01, 0.5, 0.9, 0.99)

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
"""The ``connections`` table's figures, on the monotonic clock; ``opened`` and ``closed``,
on the wall clock, follow them."""
LATENCY_COLUMNS: dict[str, pl.DataType] = {
    "channel": pl.String(),
    "messages": pl.Int64(),
    "min_ms": pl.Float64(),
    "p50_ms": pl.Float64(),
    "p90_ms": pl.Float64(),
    "p99_ms": pl.Float64(),
    "max_ms": pl.Float64(),
    "negative_share": pl.Float64(),
    "plausible": pl.Boolean(),
    "history": pl.Int64(),
}
SILENCE_COLUMNS: dict[str, pl.DataType] = {
    "stream": pl.String(),
    # What silence it is: stale (judged stale by the health monitor), silent_ok (an
    # allow_silence stream's silence beyond its threshold) or hole (long for its own rate)
    "silence": pl.String(),
    "start_mono_ns": pl.Int64(),
    "end_mono_ns": pl.Int64(),
    "length_s": pl.Float64(),
    "threshold_s": pl.Float64(),
    "beyond_threshold_s": pl.Float64(),
    "recovered": pl.Boolean(),
}
"""The ``silences`` table, as judged on the monotonic clock; ``start`` and ``end``, on the
wall clock, follow them."""


class _HoleRule(BaseModel):
    """When a gap between two messages of a stream is a hole (see :func:`quality_report`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=True)

    hole_factor: float = Field(ge=1)  # below 1, ordinary gaps would be holes
    hole_window: int = Field(ge=2)
    hole_min_gaps: int = Field(ge=1)
    min_hole_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _gaps_fit_the_window(self) -> _HoleRule:
        if self.hole_min_gaps > self.hole_window:
            raise ValueError(f"hole_min_gaps must be at most hole_window ({self.hole_window}), "
                             f"got {self.hole_min_gaps}")
        return self


def hole_rule(*, hole_factor: float = 10.0, hole_window: int = 1000, hole_min_gaps: int = 100,
              min_hole_s: float = 1.0) -> _HoleRule:
    """The hole rule of :func:`quality_report`'s keyword arguments (the same defaults).

    Raises
    ------
    ValueError
        Naming the argument out of its range.
    """
    return _hole_rule(hole_factor, hole_window, hole_min_gaps, min_hole_s)


def _hole_rule(factor: float, window: int, min_gaps: int, min_s: float) -> _HoleRule:
    """The rule from :func:`quality_report`'s arguments, or a ValueError naming the bad one."""
    try:
        return _HoleRule(hole_factor=factor, hole_window=window, hole_min_gaps=min_gaps,
                         min_hole_s=min_s)
    except ValidationError as exc:
        raise ValueError(first_error(exc)) from None


@dataclass(frozen=True)
class QualityReport:
    """The quality of one session, as tables (see :func:`quality_report`).

    Attributes
    ----------
    source
        What was analysed (a recording's path, or the feed's URL).
    start_mono_ns, end_mono_ns
        The session's span on its monotonic clock. It ends when the session
        ended: a recording's ``stop`` event (or, in recordings made before
        there was one, its last event); for a live feed, now, or the close that
        stopped it.
    connections
        One row per connection: opened, time to its first message, closed (code,
        reason, category), time connected, downtime until the next open, or
        until the end of the session when it ended while disconnected. The
        client's own end-of-session close (reason ``client disconnect``) is
        followed by no downtime (``null``). ``opened`` and ``closed``: the same
        moments on the rows' wall clock.
    streams
        One row per health stream: messages, rate (the mean over the session's
        length; p50 and p99 over 1 s windows), stale episodes and time, silent-ok
        time, holes and their time. Without a spec, one ``frames`` row for all frames.
    silences
        Every silence worth a look, one row each, by what it is (``silence``): ``stale``
        episodes the health monitor saw, the silences of ``allow_silence``
        streams beyond their ``stale_threshold`` (``silent_ok``), and ``hole``:
        a gap between two messages far longer than the stream's own recent gaps
        (the rule is in :func:`quality_report`). ``threshold_s`` is the
        threshold the silence was judged against. ``start`` and ``end``: the
        silence on the rows' wall clock.
    sequence
        Per sequenced channel: gaps, numbers missing, repeats, late messages.
    latency
        Per channel with an exchange time: receive minus exchange time, in ms
        (min, p50, p90, p99, max), the share of negative values (clock skew), and
        ``plausible``: false when the figures are not measurements (receive
        times before 2000, or the 1st or 99th percentile beyond an hour either way).
    outcomes
        Frames by outcome: received, ok, duplicates, control, exchange errors,
        each reject reason, and what the live pipeline dropped or discarded as
        frames of a replaced connection.
    rates
        Messages per stream per second of the session (for plots), for the seconds with
        any: a second left out had none. So it holds at most a row a message, however
        long the session.
    health
        Every health transition: ``mono_ns``, ``stream``, ``healthy``, and ``time``
        on the rows' wall clock.
    latencies
        Latency samples, ``channel``, ``ms``, for the distribution plot: every one, up
        to :data:`~wsresearch._session_times.LATENCY_SAMPLES` (100,000) per channel;
        beyond that an even sample of the channel's (every 2nd, 4th, 8th ..., in order),
        so a long session's report stays small. The ``latency`` table is exact.
    recording
        Whether the recording holds the whole session: ``complete``, or
        ``incomplete:`` and why (the session did not stop cleanly, writes
        failed and events were lost, ``seq`` numbers are missing). For a live
        feed, what its recorder has written, or ``not recording``. Every other
        figure describes what the recording holds, so read them with this.
    first_receive_wall_ns
        The earliest receive time on the wall clock (ns since the epoch), or
        ``None`` without frames: before 2000 it was invented, not measured.
    warnings
        Each figure the report could not take as a measurement, in a sentence:
        receive times invented on import, latencies beyond an hour, clock skew.
    receive_times
        Where the receive times came from, as the recording's manifest says:
        ``recorded`` (this wsresearch's clock; a live feed's too), ``imported``
        (the clock of the tool that captured the messages) or ``invented``.
    books
        One row per order book (:data:`~wsresearch.book.BOOK_COLUMNS`): valid at the end,
        top of book, updates, snapshots, checksums verified and failed, gaps, crossed,
        resyncs and the time without a valid book; empty when the spec keeps none.
    book_changes
        Every change of a book's validity: ``mono_ns``, ``symbol``, ``valid``, ``reason``,
        and ``time`` on the rows' wall clock.
    symbols
        Per normalized kind the spec's channels make (``kind``) and per ``symbol``:
        ``rows``, the ``first`` and ``last`` row's receive time, and
        ``longest_gap_s`` between two of its rows.
        Every symbol the spec subscribed has a row per kind (``subscribed`` true), with
        ``rows`` 0 where it has none: a symbol that never traded, or whose book never
        came. Symbols with rows but not subscribed by name (``subscribed`` false; null
        where the spec does not say what it subscribed) follow. Empty without a spec.
    outages
        The spells the feed did not show the market (:mod:`wsresearch.outages`), for a
        backtest to leave out with :func:`~wsresearch.outages.mark_outages`: each time
        disconnected, each ``stale`` and ``hole`` silence, each spell of an order book
        not valid; ``start`` and ``end`` on the rows' wall clock
        (:data:`~wsresearch.outages.OUTAGE_COLUMNS`), in order of their start.
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
    first_receive_wall_ns: int | None = None
    warnings: list[str] = field(default_factory=list)
    receive_times: ReceiveTimes = "recorded"
    books: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=BOOK_COLUMNS))
    book_changes: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema={**BOOK_CHANGE_COLUMNS, "time": TIME}))
    symbols: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=COVERAGE_SCHEMA))
    outages: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=OUTAGE_COLUMNS))

    @property
    def duration_s(self) -> float:
        """Length of the session in seconds."""
        return (self.end_mono_ns - self.start_mono_ns) / NS_PER_S

    @property
    def receive_times_invented(self) -> bool:
        """Whether the receive times were not read from a clock.

        The manifest says so (``receive_times: "invented"``), or the times are
        before 2000 (recordings made before the manifest said where its times
        came from).
        """
        return _invented(self.receive_times, self.first_receive_wall_ns)

    def summary(self) -> pl.DataFrame:
        """The overview: one ``metric``/``value`` row per figure (values as text).

        Returns
        -------
        polars.DataFrame
            Columns ``metric`` and ``value`` (both text): recording, receive
            times (only when not recorded by wsresearch: imported or invented),
            warnings (only when there are any), duration, connections, disconnects,
            downtime, uptime, messages, duplicates, rejected, dropped, exchange
            errors, sequence gaps, stale episodes, holes, latency, clock skew; order
            books (only where the spec keeps them); symbols without rows (only where
            the spec says which it subscribed): per kind, those with none of it.
        """
        c, o = self.connections, dict(self.outcomes.iter_rows())
        connected = float(c["connected_s"].sum() or 0.0)
        down = float(c["downtime_after_s"].sum() or 0.0)
        stale = self.silences.filter(silence="stale")
        holes = self.silences.filter(silence="hole")
        closes = c.filter(pl.col("closed_mono_ns").is_not_null()
                          & ~pl.col("reason").fill_null("").str.starts_with(END_OF_SESSION))
        rows: list[tuple[str, str]] = [("recording", self.recording)]
        if self.receive_times_invented:
            rows.append(("receive times", "invented on import: not measured"))
        elif self.receive_times == "imported":
            rows.append(("receive times", "imported: the capturing tool's clock, "
                                          "not this wsresearch's"))
        if self.warnings:
            rows.append(("warnings", " ".join(self.warnings)))
        rows += [
            ("duration", f"{self.duration_s:.1f} s"),
            ("connections", str(c.height)),
            ("disconnects", "; ".join(describe_close(code, category, reason) for code, category,
                                      reason in closes.select("code", "category", "reason")
                                      .iter_rows()) or "none"),
            ("downtime", f"{down:.2f} s"),
            ("uptime", f"{100 * connected / (connected + down):.1f}%"
             if connected + down > 0 else "n/a"),
            ("messages", str(o.get("ok", 0))),
            ("duplicates", str(o.get("duplicates", 0))),
            ("rejected", str(sum(v for k, v in o.items() if k.startswith("reject:")))),
            ("dropped (live queue)", str(o.get("dropped_live", 0))),
            ("exchange errors", str(o.get("exchange_errors", 0))),
            ("sequence gaps", f"{int(self.sequence['gaps'].sum() or 0)} "
                              f"({int(self.sequence['missing'].sum() or 0)} missing)"),
            ("stale episodes", f"{stale.height} ({float(stale['length_s'].sum() or 0):.1f} s)"),
            ("holes", f"{holes.height} ({float(holes['length_s'].sum() or 0):.1f} s)"),
            ("latency p50 / p99", self._latency_text()),
            ("clock skew", self._skew_text()),
        ]
        if self.books.height:
            b = self.books
            rows.append(("order books", (
                f"{int(b['valid'].sum())} of {b.height} valid at the end; checksums "
                f"{int(b['checksums_ok'].sum())} ok, {int(b['checksums_failed'].sum())} failed; "
                f"{int(b['gaps'].sum())} gap(s), {int(b['resyncs'].sum())} resync(s), "
                f"{int(b['crossed'].sum())} crossed; "
                f"{float(b['invalid_s'].sum()):.1f} s without a valid book")))
        missing = without_rows(self.symbols)
        if missing is not None:
            rows.append(("symbols without rows", missing))
        return pl.DataFrame(rows, schema={"metric": pl.String, "value": pl.String},
                            orient="row")

    def _latency_text(self) -> str:
        lat = self.latency
        if not lat.height:
            return "n/a"
        if self.receive_times_invented:
            if self.receive_times != "invented":
                return "not measured: receive times are before 2000 (invented on import?)"
            return "not measured: receive times were invented on import"
        good, bad = lat.filter("plausible"), lat.filter(~pl.col("plausible"))
        implausible = "" if not bad.height else (
            f"implausible: p50 {_span_ms(float(bad['p50_ms'].median()))}"  # type: ignore[arg-type]
            " (clocks not comparable)")
        history = int(lat["history"].sum())
        past = "" if not history else (
            f"{history} row(s) stamped over {_HISTORY_NS / NS_PER_S:.0f} s before their "
            "connection opened left out (the past, sent on subscribing)")
        if not good.height:
            return "; ".join(part for part in (implausible, past) if part)
        text = (f"{float(good['p50_ms'].median()):.1f} / "  # type: ignore[arg-type]
                f"{float(good['p99_ms'].max()):.1f} ms")  # type: ignore[arg-type]
        if bad.height:
            text += f"; {', '.join(bad['channel'])}: {implausible}"
        if past:
            text += f"; {past}"
        return text

    def _skew_text(self) -> str:
        lat = self.latency
        if not lat.height:
            return "n/a"
        if self.receive_times_invented:
            if self.receive_times != "invented":
                return "not measured: receive times are before 2000"
            return "not measured: receive times were invented on import"
        parts = [f"{channel} {share:.1%} negative (down to {_ms(low)})"
                 for channel, share, low in _skewed(lat)]
        bad = lat.filter(~pl.col("plausible"))["channel"].to_list()
        if bad:
            parts.append(f"not judged on {', '.join(bad)} (implausible latencies)")
        return "; ".join(parts) or "none"

    def _repr_html_(self) -> str:
        return (f"{_STYLE}<div class='wsr-quality'><b>Feed quality: "
                f"{html.escape(self.source)}</b>{_html_table(self.summary())}</div>")

    def __repr__(self) -> str:
        return f"QualityReport({self.source!r})\n{self.summary()}"

    def plot(self) -> Figure:
        """Rates per stream with disconnects, holes and stale spells shaded; latency; health.

        Both time axes span the whole session, the downtime at its end included.

        Returns
        -------
        matplotlib.figure.Figure
            Three panels: messages per second per stream (grey: disconnected,
            orange: hole, red: stale), the latency per channel (plausible
            channels only), and a health timeline per stream with a connection row.

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
        span = max(self.duration_s, 1e-9)

        def seconds(ns: Any) -> float:
            return (float(ns) - zero) / NS_PER_S

        for stream in self.streams["stream"]:  # a stream without a message too: at 0
            rows = self.rates.filter(stream=stream)
            # Each count holds for its second, and 0 for a second left out of the table.
            rate_ax.plot(*_steps(rows["second"].to_list(), rows["messages"].to_list(), span),
                         label=stream, linewidth=1, drawstyle="steps-post")
        for kind, color, alpha in (("hole", "tab:orange", 0.2), ("stale", "red", 0.15)):
            for start, end in self.silences.filter(silence=kind).select(
                    "start_mono_ns", "end_mono_ns").unique(maintain_order=True).iter_rows():
                rate_ax.axvspan(seconds(start), seconds(end), color=color, alpha=alpha,
                                label=f"_{kind}")
        down = self._downtimes()
        for start, length in down:  # on top, hatched: the reason for the silences under it
            rate_ax.axvspan(seconds(start), seconds(start) + length, facecolor="grey",
                            alpha=0.4, hatch="//", edgecolor="dimgrey", zorder=3,
                            label="_down")
        rate_ax.set_yscale("symlog")  # a burst must not flatten the quiet streams
        rate_ax.set_xlim(0, span)
        rate_ax.set_title("messages per second (grey, hatched: disconnected; orange: hole; "
                          "red: stale)")
        rate_ax.set_xlabel("seconds")
        if self.streams.height:
            rate_ax.legend(loc="upper right", fontsize="small")
        lat_ax.set_title("latency, exchange time to receive time (ms; box: p25-p75, "
                         "whiskers: p1-p99)")
        plausible = self.latency.filter("plausible")["channel"].to_list()
        if plausible:
            lat_ax.boxplot([self.latencies.filter(channel=n)["ms"].to_numpy()
                            for n in plausible],
                           orientation="horizontal", tick_labels=plausible, whis=(1, 99),
                           showfliers=False)
        else:
            lat_ax.text(0.5, 0.5, "no exchange times" if not self.latency.height else
                        f"latency {self._latency_text()}", ha="center", va="center")
        streams = self.streams["stream"].to_list()
        for index, stream in enumerate(streams):
            health_ax.broken_barh([(0, span)], (index - 0.4, 0.8), color="tab:green")
            for kind, color in (("hole", "tab:orange"), ("stale", "tab:red")):
                spells = self.silences.filter(stream=stream, silence=kind)
                health_ax.broken_barh(
                    [(seconds(s), (e - s) / NS_PER_S) for s, e in spells.select(
                        "start_mono_ns", "end_mono_ns").iter_rows()],
                    (index - 0.4, 0.8), color=color)
        health_ax.broken_barh([(seconds(start), length) for start, length in down],
                              (len(streams) - 0.4, 0.8), color="grey")
        symbols = self.books["symbol"].to_list()
        for offset, symbol in enumerate(symbols, start=len(streams) + 1):
            for start, end, valid in self._book_spells(symbol):
                health_ax.broken_barh([(seconds(start), (end - start) / NS_PER_S)],
                                      (offset - 0.4, 0.8),
                                      color="tab:blue" if valid else "tab:purple")
        health_ax.set_yticks(range(len(streams) + 1 + len(symbols)),
                             [*streams, "connection", *(f"book {s}" for s in symbols)])
        health_ax.set_xlim(0, span)
        health_ax.set_title("health (green: healthy, orange: hole, red: stale, grey: "
                            "disconnected; books: blue valid, purple not)")
        health_ax.set_xlabel("seconds")
        return figure

    def _book_spells(self, symbol: str) -> list[tuple[int, int, bool]]:
        """``(start, end, valid)`` of ``symbol``'s book over the session, from its changes.

        It starts invalid (no snapshot yet) at the session's start.
        """
        spells, start, valid = [], self.start_mono_ns, False
        for mono, now_valid in self.book_changes.filter(symbol=symbol).select(
                "mono_ns", "valid").iter_rows():
            spells.append((start, mono, valid))
            start, valid = mono, now_valid
        spells.append((start, self.end_mono_ns, valid))
        return [spell for spell in spells if spell[1] > spell[0]]

    def _downtimes(self) -> list[tuple[int, float]]:
        """``(closed_mono_ns, seconds)`` of every spell disconnected, the trailing one included."""
        return [(r["closed_mono_ns"], r["downtime_after_s"])
                for r in self.connections.iter_rows(named=True)
                if r["closed_mono_ns"] is not None and r["downtime_after_s"] is not None]

    def png(self) -> bytes:
        """:meth:`plot` as PNG bytes.

        Returns
        -------
        bytes
            The figure as a PNG image.
        """
        buffer = io.BytesIO()
        self.plot().savefig(buffer, format="png", dpi=90)
        return buffer.getvalue()

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """Write a self-contained HTML report: warnings, every table in full, the plots.

        Every row of every table is shown (no truncation), values as they are
        (text unquoted, HTML-escaped, so text from a server stays inert), wide
        tables scroll sideways; the plots are embedded as a PNG, so the page
        fetches nothing.

        Parameters
        ----------
        path
            The file to write.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        image = base64.b64encode(self.png()).decode("ascii")
        sections = [
            ("Summary", self.summary()), ("Connections", self.connections),
            ("Streams", self.streams), ("Silences", self.silences),
            ("Sequence", self.sequence), ("Latency", self.latency),
            ("Outcomes", self.outcomes),
            *([("Order books", self.books)] if self.books.height else []),
            *([("Symbols", self.symbols)] if self.symbols.height else []),
            *([("Outages", self.outages)] if self.outages.height else []),
        ]
        warnings = "" if not self.warnings else "<h2>Warnings</h2><ul>" + "".join(
            f"<li>{html.escape(w)}</li>" for w in self.warnings) + "</ul>"
        body = "".join(
            f"<h2>{title}</h2>{_html_table(frame)}" for title, frame in sections)
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>Feed quality: {html.escape(self.source)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}</style>"
            f"{_STYLE}</head><body class='wsr-quality'>"
            f"<h1>Feed quality: {html.escape(self.source)}</h1>{warnings}"
            f"<img alt='plots' src='data:image/png;base64,{image}'>{body}</body></html>"
        )
        target = Path(path)
        target.write_text(page, encoding="utf-8")
        return target


_STYLE = (
    "<style>.wsr-quality .wsr-table{overflow-x:auto;max-width:100%}"
    ".wsr-quality table{border-collapse:collapse}"
    ".wsr-quality th,.wsr-quality td{padding:2px 8px;border-bottom:1px solid #ddd;"
    "text-align:left;vertical-align:top}"
    ".wsr-quality td.num{text-align:right;white-space:nowrap}"
    ".wsr-quality td.null{color:#999;font-style:italic}</style>"
)


def _html_table(frame: pl.DataFrame) -> str:
    """Every row and column of ``frame`` as an HTML table, inside a sideways-scrolling box.

    Unlike polars' own ``_repr_html_`` it never truncates, has no dtype row,
    shows text as it is (unquoted) and escapes every value. Numbers are
    right-aligned, floats shown with 6 significant digits (prices, of
    :data:`_PRICES`, whole: a bid and an ask a tick apart must not look equal),
    times to the ns, nulls as ``null``.
    """
    # Times in full, to the ns, as polars prints them (a Python datetime stops at the µs).
    frame = frame.with_columns(pl.col(pl.Datetime).cast(pl.String))
    numeric = [dtype.is_numeric() for dtype in frame.dtypes]
    whole = [name in _PRICES for name in frame.columns]
    head = "".join(f"<th>{html.escape(name)}</th>" for name in frame.columns)
    body = "".join(
        "<tr>" + "".join(_html_cell(value, number, exact) for value, number, exact in zip(
            row, numeric, whole, strict=True)) + "</tr>"
        for row in frame.iter_rows())
    return (f"<div class='wsr-table'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


_PRICES = frozenset({"best_bid", "best_ask"})
"""Columns of the report's tables shown whole in HTML: prices."""


def _html_cell(value: object, number: bool, exact: bool = False) -> str:
    if value is None:
        return "<td class='null'>null</td>"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = repr(value) if exact else f"{value:.6g}"
    else:
        text = str(value)
    return f"<td class='num'>{html.escape(text)}</td>" if number else (
        f"<td>{html.escape(text)}</td>")


def _span_ms(ms: float) -> str:
    """A latency in the unit a person reads it in: ``12.3 ms``, ``3.2 days``, ``2.4 years``."""
    size = abs(ms)
    for limit, unit, per in ((1e3, "ms", 1.0), (60e3, "s", 1e3), (_HOUR_MS, "min", 60e3),
                             (48 * _HOUR_MS, "h", _HOUR_MS),
                             (365.25 * 24 * _HOUR_MS, "days", 24 * _HOUR_MS)):
        if size < limit:
            return f"{ms / per:.1f} {unit}"
    return f"{ms / (365.25 * 24 * _HOUR_MS):.1f} years"


def _ms(ms: float) -> str:
    """Milliseconds to one decimal, or two significant digits when that would show 0.0."""
    return f"{ms:.1f} ms" if abs(ms) >= 0.05 or ms == 0 else f"{ms:.2g} ms"


def _skewed(latency: pl.DataFrame) -> list[tuple[str, float, float]]:
    """``(channel, negative share, lowest ms)`` of each plausible channel with negatives."""
    return list(latency.filter(pl.col("plausible") & (pl.col("negative_share") > 0))
                .select("channel", "negative_share", "min_ms").iter_rows())


def _before_2000(first_wall: int | None) -> bool:
    return first_wall is not None and first_wall < _YEAR_2000_NS


def _invented(receive_times: ReceiveTimes, first_wall: int | None) -> bool:
    """Whether receive times were invented: the manifest says so, or they are before 2000."""
    return first_wall is not None and (receive_times == "invented" or _before_2000(first_wall))


def _warnings(
    first_wall: int | None, latency: pl.DataFrame, figures: dict[str, LatencyFigures],
    receive_times: ReceiveTimes = "recorded",
) -> list[str]:
    """Each figure that is not a measurement, in a sentence."""
    consequence = ("so latencies are not measured, and durations, rates, gaps and holes "
                   "describe the import, not the capture.")
    if _invented(receive_times, first_wall):
        assert first_wall is not None
        when = dt.datetime.fromtimestamp(first_wall / NS_PER_S, dt.UTC)
        why = ("the recording's manifest says so: the capture had none"
               if receive_times == "invented" else
               "before 2000: Recording.from_frames without times?")
        return [f"Receive times start at {when:%Y-%m-%d %H:%M:%S} UTC: they were invented on "
                f"import ({why}), " + consequence]
    found = []
    for channel, p50 in latency.filter(~pl.col("plausible")).select(
            "channel", "p50_ms").iter_rows():
        found.append(f"{channel}: latencies reach {_span_ms(figures[channel].farthest)} (p50 "
                     f"{_span_ms(p50)}), beyond an hour: the receive and exchange clocks "
                     "cannot be compared (times shifted, or data re-served later), so these "
                     "are not measurements.")
    for channel, share, low in _skewed(latency):
        found.append(f"{channel}: {share:.1%} of latencies are negative (down to {_ms(low)}): "
                     "the local clock is behind the exchange's (clock skew), so latencies "
                     "read low.")
    return found


def quality_report(
    source: Recording | Feed | str | os.PathLike[str],
    spec: FeedSpec | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    hole_factor: float = 10.0,
    hole_window: int = 1000,
    hole_min_gaps: int = 100,
    min_hole_s: float = 1.0,
    result: ReplayResult | None = None,
    chunk_events: int = CHUNK_EVENTS,
) -> QualityReport:
    """Analyse a recording (replayed) or a live feed (so far).

    A gap between two consecutive messages of a stream is a *hole* when it is
    longer than ``max(min_hole_s, hole_factor * p99)``, where p99 is the 99th
    percentile of the stream's preceding ``hole_window`` gaps, capped at the
    stream's ``stale_threshold`` where the spec's health config has one
    (``allow_silence`` streams too; no cap otherwise). A gap is judged only
    once ``hole_min_gaps`` gaps precede it. The silence from a stream's last
    message to the end of the session is judged the same way, as an
    unrecovered hole. So a stream's silence is reported when it is long for
    *that stream*, even when it is far shorter than the fixed stale threshold
    (10 s of nothing from an 80 msg/s stream whose threshold is 30 s).

    The defaults: the p99 of 1000 gaps is the stream's own "long gap", seen
    about 10 times in the window; ten times it is far outside the stream's
    habits (for a Poisson stream, the odds of a gap 10 * p99 long are e^-46);
    with 100 gaps the p99 is at least the second longest, so one odd gap
    cannot set it on its own; below 1 s a silence is network jitter for a person reading the report,
    however fast the stream.

    Parameters
    ----------
    source
        A :class:`~wsresearch.recording.Recording`, its directory, or a
        :class:`~wsresearch.feed.Feed`.
    spec
        For a recording: the spec to replay it with (default: its own). Without
        one the report has frame-level figures only: connections, frame rates,
        holes (in all frames), outcomes.
    progress
        For a recording: called with ``(events done, events in all)`` while it replays.
    hole_factor
        How many times the p99 gap a hole must last (>= 1).
    hole_window
        How many preceding gaps the p99 is taken over (>= 2).
    hole_min_gaps
        How many preceding gaps a gap needs before it is judged (1 to ``hole_window``).
    min_hole_s
        The shortest hole, in seconds (> 0).
    result
        For a recording: its replay through ``spec``, already made, used instead of
        replaying it again.
    chunk_events
        For a recording: events replayed at a time. The replay's rows are let go after
        each chunk, once their receive times and latencies are taken (16 bytes a
        message); those are held in memory up to 800 bytes per chunk event (16 MB by
        default) and in temporary files past it (see :class:`ReportInputs`), so the
        report of a recording of any length takes the same memory.

    Returns
    -------
    QualityReport
        The tables, the summary, the warnings.

    Raises
    ------
    RecordingFormatError
        If ``source`` is not a readable recording.
    ValueError
        If a hole argument is out of its range.

    Examples
    --------
    Frames 10 ms apart, then 5 s of nothing: far below any stale threshold, but a
    hole for a stream whose gaps are 10 ms.

    >>> import tempfile
    >>> from wsresearch import Recording
    >>> start = 1_700_000_000 * 10**9
    >>> times = [start + i * 10**7 for i in range(200)] + [start + 7 * 10**9]
    >>> folder = tempfile.TemporaryDirectory()
    >>> recording = Recording.from_frames(folder.name + "/rec",
    ...                                   [(t, '{"type": "x"}') for t in times])
    >>> report = quality_report(recording)
    >>> hole = report.silences.row(0, named=True)
    >>> hole["stream"], hole["silence"], round(hole["length_s"], 3), hole["threshold_s"]
    ('frames', 'hole', 5.01, 1.0)
    >>> dict(report.summary().iter_rows())["holes"]
    '1 (5.0 s)'
    >>> folder.cleanup()
    """
    rule = _hole_rule(hole_factor, hole_window, hole_min_gaps, min_hole_s)
    if not isinstance(source, Recording | str | os.PathLike):
        if not isinstance(getattr(source, "pipeline", None), Pipeline):
            raise TypeError(f"quality_report() takes a Recording, its directory, or a live "
                            f"Feed; got {type(source).__name__}")
        return _from_feed(source, rule)
    check_spec(spec)
    recording = source if isinstance(source, Recording) else Recording.open(source)
    return _from_recording(recording, spec if spec is not None else recording.spec, progress,
                           rule, result, chunk_events)


@dataclass(frozen=True)
class _Session:
    """What every report is made from, whatever the source."""

    source: str
    start: int
    end: int
    timeline: pl.DataFrame  # open, close and stop events
    # generation, recv_mono_ns, recv_wall_ns: each generation's first frame, once
    first_frames: pl.DataFrame
    outcomes: dict[str, int]
    recording: str
    times: SessionTimes  # receive times per stream, latencies per channel
    thresholds: dict[str, tuple[float, bool]] = field(default_factory=dict)
    transitions: list[HealthTransition] = field(default_factory=list)
    sequence_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    sequenced: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # warnings the source itself gives
    receive_times: ReceiveTimes = "recorded"  # what the recording's manifest says
    books: Books | None = None  # the session's order books, where its spec keeps them
    symbols: SymbolCoverage | None = None  # rows per kind and symbol, where there is a spec
    exchange: str | None = None  # the spec's, in normalized tables
    # The session's events with both clocks' readings (mono_ns, wall_ns), read once.
    anchors: Callable[[], Iterable[pl.DataFrame]] = lambda: ()


def _from_recording(
    recording: Recording, spec: FeedSpec | None, progress: Callable[[int, int], None] | None,
    rule: _HoleRule, result: ReplayResult | None = None, chunk_events: int = CHUNK_EVENTS,
) -> QualityReport:
    collected = ReportInputs(spec, chunk_events)  # which checks chunk_events
    try:
        if spec is not None and result is None:
            result = replay_in_chunks(recording, spec, "complete", progress, chunk_events,
                                      collected.take)
        else:  # nothing to replay: the events' times alone, no message read
            for part in recording.columns(list(TIMELINE_SCHEMA)):
                collected.count(part)
            if result is not None:  # after the events: the rows are judged by their opens
                collected.add(result.frames)
        return collected.report(recording, spec, result, rule)
    finally:
        collected.close()


_FIRST_SCHEMA = {"generation": pl.Int64(), "recv_mono_ns": pl.Int64(), "recv_wall_ns": pl.Int64()}


class ReportInputs:
    """What a quality report needs of a replay, gathered chunk by chunk as it goes.

    A report needs every message's receive time per stream (for holes, silences and
    rates) and every exchange latency (for its percentiles), but not the rows
    themselves: :meth:`take` keeps those two columns of each chunk's rows and lets the
    rows go. They are held in memory up to a budget set by ``chunk_events`` (800 bytes
    an event: 16 MB for the default 20,000) and in temporary files after, which
    :meth:`report` reads back a piece at a time and :meth:`close` removes, so the report
    of a recording of any length fits in the same memory. The recording's own events give the
    timeline, the drops and each connection's first message.

    Parameters
    ----------
    spec
        The spec replayed; ``None`` for a report of frames only.
    chunk_events
        The replay's chunk size, which sets the memory budget.
    """

    def __init__(self, spec: FeedSpec | None, chunk_events: int = CHUNK_EVENTS) -> None:
        check_chunk_events(chunk_events)
        self.spec = spec
        self.events = 0
        self.received = 0
        self.start: int | None = None
        self.end: int | None = None
        self.last_seq: int | None = None
        self.drops = {"overflow": 0, "stale": 0}
        # Kept as Python rows and numbers, not polars frames, across the replay (HeldRows).
        self._timeline = HeldRows({"seq": pl.Int64(), **TIMELINE_SCHEMA})
        self._first: dict[int, tuple[int, int]] = {}  # each generation's first mono, wall
        self._opened: dict[int, int] = {}  # each generation's open, wall
        self.times = SessionTimes(chunk_events * _BYTES_PER_EVENT)
        self._streams = {} if spec is None else {
            c.name: (c.stream_name, c.explode is not None) for c in spec.channels}
        for channel in self._streams:  # the latency tables list channels in the spec's order
            self.times.add_latencies(channel, _NO_LATENCY)
        self.symbols = SymbolCoverage(spec)

    def count(self, events: pl.DataFrame) -> None:
        """Note some of the recording's events: ``seq`` and the :data:`TIMELINE_SCHEMA` columns."""
        if events.height == 0:
            return
        self.events += events.height
        low, high, last = events.select(pl.col("mono_ns").min().alias("low"),
                                        pl.col("mono_ns").max().alias("high"),
                                        pl.col("seq").max()).row(0)
        self.start = low if self.start is None else min(self.start, low)
        self.end = high if self.end is None else max(self.end, high)
        self.last_seq = last if self.last_seq is None else max(self.last_seq, last)
        self._timeline.add(events.filter(pl.col("kind").is_in(["open", "close", "stop"])))
        self._opened.update(_opens(events))
        drops = events.filter(kind="drop")["reason"]
        for reason in self.drops:
            self.drops[reason] += int((drops == reason).sum())
        frames = events.filter(kind="frame")
        self.received += frames.height
        first = frames.group_by("generation").agg(
            pl.col("mono_ns").min().alias("recv_mono_ns"),
            pl.col("wall_ns").min().alias("recv_wall_ns"))
        # Folded in as they come: one entry per connection, however many chunks.
        for generation, mono, wall in first.iter_rows():
            seen = self._first.get(generation)
            self._first[generation] = (mono, wall) if seen is None else (
                min(seen[0], mono), min(seen[1], wall))
        if self.spec is None:
            self.times.add_times(_FRAMES, frames["mono_ns"])

    def take(self, pipeline: Pipeline, events: pl.DataFrame) -> None:
        """After a chunk of a replay: keep what the report needs of its rows, let them go."""
        self.count(events)
        frames, _ = pipeline.take()  # the report reads the books' state, not their tables
        self.add(frames)

    def add(self, frames: dict[str, pl.DataFrame]) -> None:
        """Keep each channel's receive times (once per message) and exchange latencies.

        A report without a spec reads the recording's frames alone (:meth:`count`), so
        it keeps nothing of rows.
        """
        if self.spec is None:
            return
        for channel, frame in frames.items():
            stream, exploded = self._streams.get(channel, (channel, False))
            self.times.add_times(stream, _message_times(frame, exploded), source=channel)
            self.times.add_latencies(channel, *_latency_ms(frame, self._opened))
        self.symbols.add(frames)

    def close(self) -> None:
        """Remove the temporary files, if any (also done when the inputs are collected).

        :func:`quality_report` and :func:`~wsresearch.export.export_with_report` close
        theirs once the report is built, or the replay failed.
        """
        self.times.close()

    def report(self, recording: Recording, spec: FeedSpec | None,
               result: ReplayResult | None, rule: _HoleRule) -> QualityReport:
        """The report of ``recording`` (replayed through ``spec`` as ``result``).

        Raises
        ------
        RuntimeError
            If the inputs were closed.
        """
        start = self.start if self.start is not None else 0
        end = self.end if self.end is not None else 0
        timeline = self._timeline.frame().sort("seq", maintain_order=True).drop("seq")
        first = pl.DataFrame([(g, *times) for g, times in self._first.items()], orient="row",
                             schema=_FIRST_SCHEMA)
        live = {"dropped_live": self.drops["overflow"], "old_generation_live": self.drops["stale"]}
        whole = _completeness(recording, self.events, self.last_seq)
        times = recording.manifest.receive_times
        if spec is None or result is None:
            self.times.add_times(_FRAMES, _NO_TIMES)  # a frames row even with no frame
            return _report(_Session(
                str(recording.path), start, end, timeline, first,
                {"received": self.received, **live}, whole, self.times,
                receive_times=times, anchors=_recorded(recording)), rule)
        assert result.counts is not None  # a replay always gives its counts
        outcomes = _outcomes(result.stats["frames"], result.counts, live)
        for channel in spec.channels:  # a stream with no message still has its (empty) times
            self.times.add_times(channel.stream_name, _NO_TIMES)
        return _report(_Session(
            str(recording.path), start, end, timeline, first, outcomes, whole, self.times,
            _thresholds(spec), result.health_transitions, result.sequence_by_channel,
            _sequenced(spec), _exactness_notes(result.counts), receive_times=times,
            books=result.books, symbols=self.symbols, exchange=spec.exchange_name,
            anchors=_recorded(recording)), rule)


def _recorded(recording: Recording) -> Callable[[], Iterable[pl.DataFrame]]:
    """A recording's events with both clocks' readings, read when asked for."""
    return lambda: recording.columns(["mono_ns", "wall_ns"])


_FRAMES = "frames"  # the one stream of a report without a spec
_NO_TIMES = pl.Series("recv_mono_ns", [], pl.Int64)
_NO_LATENCY = pl.Series("ms", [], pl.Float64)


def _completeness(recording: Recording, events: int, last_seq: int | None) -> str:
    """``complete``, or ``incomplete:`` with every reason the recording gives."""
    manifest = recording.manifest
    recorded = manifest.events if manifest.events is not None else (
        last_seq + 1 if last_seq is not None else 0)
    missing = recorded - events
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


def _outcomes(received: int, counts: Counts, live: dict[str, int]) -> dict[str, int]:
    """The outcome table's counts: every message received, and what became of it."""
    return {"received": received, "ok": counts.ok, "duplicates": counts.duplicates,
            "control": counts.control, "exchange_errors": counts.exchange_errors,
            **{f"reject:{k}": v for k, v in counts.rejects.items()}, **live}


def _exactness_notes(counts: Counts) -> list[str]:
    """A warning when messages held numbers their float columns keep only approximately."""
    if not counts.inexact:
        return []
    return [f"{counts.inexact} message(s) hold a decimal number with more significant digits "
            "than a float64 keeps (wsresearch.exactness): their rows hold the nearest float; "
            "the recording keeps the exact text."]


def _from_feed(feed: Feed, rule: _HoleRule) -> QualityReport:
    spec = feed.spec
    pipeline = feed.pipeline
    frames = pipeline.frames
    stats = feed.stats
    timeline = feed.connections
    # Each connection's first frame, as the session's recording has it (a subscription's
    # acknowledgement, say), not its first row: the two reports' first messages agree.
    first = pl.DataFrame([(g, *times) for g, times in feed._first_frames.items()],
                        orient="row", schema=_FIRST_SCHEMA)
    now = feed.clock.monotonic_ns()
    start = int(timeline["mono_ns"].min()) if timeline.height else now  # type: ignore[arg-type]
    outcomes = _outcomes(stats.received, pipeline.counts, {
        "dropped_live": stats.dropped, "old_generation_live": stats.old_generation})
    recorder = feed.recorder
    recording = "not recording" if recorder is None else (
        f"to {recorder.path}: {recorder.failed_writes} failed write(s), {recorder.held} event(s) "
        f"held, {recorder.lost} lost")
    notes = _exactness_notes(pipeline.counts)
    if pipeline.store.max_rows is not None:
        notes.append(
            f"The feed keeps only the newest {pipeline.store.max_rows} rows per channel "
            "(max_rows): stream counts, rates, holes and latencies describe those rows, "
            "while the outcomes count every frame. A report of its recording has them all.")
    symbols = SymbolCoverage(spec)
    symbols.add(frames)
    return _report(_Session(
        redact_url(spec.url), start, _feed_end(timeline, now), timeline, first, outcomes,
        recording, _feed_times(frames, spec, _opens(timeline)), _thresholds(spec),
        pipeline.transitions, pipeline.sequences.by_channel, _sequenced(spec), notes,
        books=pipeline.books, symbols=symbols, exchange=spec.exchange_name,
        anchors=lambda: [timeline.select("mono_ns", "wall_ns"), *(
            frame.select(pl.col("recv_mono_ns").alias("mono_ns"),
                         pl.col("recv_wall_ns").alias("wall_ns"))
            for frame in (first, *frames.values()))]),
        rule)


def _feed_end(timeline: pl.DataFrame, now: int) -> int:
    """Where a live feed's session ends: now, unless it was stopped.

    A stopped feed's timeline ends with its stop (where the feed records one)
    or with the close of the disconnect that stopped it; the time since is not
    part of the session.
    """
    if not timeline.height:
        return now
    kind, mono, reason = timeline.select("kind", "mono_ns", "reason").row(-1)
    if kind == "stop" or (kind == "close" and ends_session(reason)):
        return min(int(mono), now)
    return now


def _thresholds(spec: FeedSpec) -> dict[str, tuple[float, bool]]:
    return {name: (config.stale_threshold, config.allow_silence)
            for name, config in spec.health.items()}


def _sequenced(spec: FeedSpec) -> dict[str, bool]:
    return {c.name: c.sequence is not None for c in spec.channels}


def _opens(timeline: pl.DataFrame) -> dict[int, int]:
    """Each connection's open among ``timeline``'s events: generation → wall ns."""
    return dict(timeline.filter(kind="open").select("generation", "wall_ns").iter_rows())


def _feed_times(frames: dict[str, pl.DataFrame], spec: FeedSpec,
                opened: dict[int, int]) -> SessionTimes:
    """A live feed's receive times per health stream and latencies per channel.

    A message counts once, however many rows it made. The rows are in memory already,
    so the times are never written to files.
    """
    times = SessionTimes(budget_bytes=sys.maxsize)
    for channel in spec.channels:
        frame = frames[channel.name]
        times.add_times(channel.stream_name, _message_times(frame, channel.explode is not None),
                        source=channel.name)
        times.add_latencies(channel.name, *_latency_ms(frame, opened))
    return times


def _message_times(frame: pl.DataFrame, exploded: bool) -> pl.Series:
    """Each message's receive time: an exploded message's rows are one run of one frame."""
    if not exploded:
        return frame["recv_mono_ns"]
    key = pl.struct("frame_seq", "recv_mono_ns")
    return frame.filter(key.ne_missing(key.shift(1)).fill_null(True))["recv_mono_ns"]


def _report(session: _Session, rule: _HoleRule) -> QualityReport:
    s = session
    silences = pl.concat([
        _silences(s.times, s.thresholds, s.transitions, s.end),
        _holes(s.times, s.thresholds, s.end, rule),
    ]).sort("start_mono_ns", "stream", "silence")
    rates = _rates(s.times, s.start, s.end)
    walls = s.first_frames["recv_wall_ns"]
    first_wall = None if walls.is_empty() else int(walls.min())  # type: ignore[arg-type]
    invented = _invented(s.receive_times, first_wall)
    figures = s.times.latency_figures(_QUANTILES)
    latency = _latency(figures, invented, s.times.history())
    empty: dict[str, int] = {}
    health = pl.DataFrame(
        [(t.mono_ns, t.stream, t.healthy) for t in s.transitions], orient="row",
        schema={"mono_ns": pl.Int64, "stream": pl.String, "healthy": pl.Boolean})
    connections, downtimes = _connections(s.timeline, s.first_frames, s.end)
    book_changes = (pl.DataFrame(schema=BOOK_CHANGE_COLUMNS) if s.books is None
                    else s.books.transition_frame())
    spans = outage_spans(downtimes, silences, book_changes, s.end)
    wall_of = wall_clock(pl.concat([
        silences["start_mono_ns"], silences["end_mono_ns"], health["mono_ns"],
        book_changes["mono_ns"], spans["start_mono_ns"], spans["end_mono_ns"]]), s.anchors())
    books = {} if s.books is None else {
        "books": s.books.frame(s.end),
        "book_changes": book_changes.with_columns(told(wall_of, "mono_ns").alias("time"))}
    return QualityReport(
        recording=s.recording,
        source=s.source,
        start_mono_ns=s.start,
        end_mono_ns=s.end,
        connections=connections,
        streams=_streams(s.times, rates, s.thresholds, silences, s.start, s.end),
        silences=silences.with_columns(told(wall_of, "start_mono_ns").alias("start"),
                                       told(wall_of, "end_mono_ns").alias("end")),
        sequence=pl.DataFrame(
            [(name, *(s.sequence_counts.get(name, empty).get(outcome, 0)
                      for outcome in ("gap", "missing", "repeat", "out_of_order")))
             for name, has in s.sequenced.items() if has],
            schema={"channel": pl.String, "gaps": pl.Int64, "missing": pl.Int64,
                    "repeats": pl.Int64, "out_of_order": pl.Int64}, orient="row"),
        latency=latency,
        outcomes=pl.DataFrame(list(s.outcomes.items()), orient="row",
                              schema={"outcome": pl.String, "count": pl.Int64}),
        rates=rates,
        health=health.with_columns(told(wall_of, "mono_ns").alias("time")),
        latencies=s.times.latency_samples(),
        first_receive_wall_ns=first_wall,
        warnings=[*s.notes, *_warnings(first_wall, latency, figures, s.receive_times)],
        receive_times=s.receive_times,
        **books,
        **({} if s.symbols is None else {"symbols": s.symbols.frame()}),
        outages=on_wall_clock(spans, wall_of, s.exchange),
    )


def _connections(timeline: pl.DataFrame, first_frames: pl.DataFrame,
                 end: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row per connection, and the downtime after each; and each downtime's span.

    Downtime runs from a close the peer or the network made to the next open, or to
    the stop that ended the session while disconnected (a feed stopped, then started
    again later, was not down meanwhile: it was stopped). After the client's own end
    of the session (``client disconnect``) there is none.
    """
    first_message = dict(first_frames.select("generation", "recv_mono_ns").iter_rows())
    rows: list[dict[str, Any]] = []
    # Each downtime (its close, until, the close in words, whether it ran on into the next
    # connection, its generation): :func:`_downtime_spans` makes them outages.
    downtimes: list[tuple[int, int, str, bool, int]] = []
    stopped_at: int | None = None  # a stop after the last close

    def close_downtime(until: int, runs_on: bool = True) -> None:
        last = rows[-1] if rows else None
        if (last is not None and last["closed_mono_ns"] is not None
                and last["downtime_after_s"] is None
                and not ends_session(last["reason"])):
            closed = last["closed_mono_ns"]
            last["downtime_after_s"] = max(0, until - closed) / NS_PER_S
            downtimes.append((closed, max(closed, until),
                              describe_close(last["code"], last["category"], last["reason"]),
                              runs_on, last["generation"]))

    for event in timeline.iter_rows(named=True):
        if event["kind"] == "open":
            if rows and rows[-1]["closed_mono_ns"] is None and rows[-1]["connected_s"] is None:
                rows[-1]["connected_s"] = (event["mono_ns"] - rows[-1]["opened_mono_ns"]) / NS_PER_S
            close_downtime(event["mono_ns"] if stopped_at is None else stopped_at,
                           runs_on=stopped_at is None)
            stopped_at = None
            first = first_message.get(event["generation"])
            rows.append({
                "generation": event["generation"], "opened_mono_ns": event["mono_ns"],
                "opened_wall_ns": event["wall_ns"],
                "first_message_s": None if first is None else (first - event["mono_ns"]) / NS_PER_S,
                "closed_mono_ns": None, "code": None, "reason": None, "category": None,
                "connected_s": None, "downtime_after_s": None, "closed_wall_ns": None,
            })
        elif event["kind"] == "close" and rows and rows[-1]["closed_mono_ns"] is None:
            row = rows[-1]
            row.update(closed_mono_ns=event["mono_ns"], closed_wall_ns=event["wall_ns"],
                       code=event["code"],
                       reason=event["reason"], category=event["category"],
                       connected_s=(event["mono_ns"] - row["opened_mono_ns"]) / NS_PER_S)
        elif event["kind"] == "stop" and stopped_at is None:
            stopped_at = event["mono_ns"]
    if rows:
        if rows[-1]["connected_s"] is None:  # still open at the end
            rows[-1]["connected_s"] = (end - rows[-1]["opened_mono_ns"]) / NS_PER_S
        # Closed by the peer or the network and never reopened: the session ended
        # disconnected, so the downtime runs to its end.
        close_downtime(end if stopped_at is None else stopped_at, runs_on=False)
    table = pl.DataFrame(rows, schema={**CONNECTION_COLUMNS, "closed_wall_ns": pl.Int64})
    return table.with_columns(
        pl.col("opened_wall_ns").cast(TIME).alias("opened"),
        pl.col("closed_wall_ns").cast(TIME).alias("closed")).drop("closed_wall_ns"), (
        _downtime_spans(downtimes, first_message, end))


def _downtime_spans(downtimes: list[tuple[int, int, str, bool, int]],
                    first_message: dict[int, int], end: int) -> pl.DataFrame:
    """Each downtime as an outage: from its close to the first message after it.

    Nothing came before that message, though a connection opened (and maybe closed
    again, silent, as one refused at login does); with none after, to the session's end.
    A downtime ended by a stop (the feed stopped, then started again) ends there.
    """
    # From the last downtime back, the first messages of the connections after each,
    # kept sorted: the first one at or after a downtime's end is found by bisection.
    heard = sorted(first_message.items(), reverse=True)
    taken = 0
    later: list[int] = []
    spans = []
    for closed, until, detail, runs_on, generation in reversed(downtimes):
        while taken < len(heard) and heard[taken][0] > generation:
            bisect.insort(later, heard[taken][1])
            taken += 1
        if not runs_on:  # to a stop, or the session's end
            spans.append((closed, until, detail, until < end))
            continue
        at = bisect.bisect_left(later, until)
        heard_again = later[at] if at < len(later) else None
        spans.append((closed, end if heard_again is None else heard_again, detail,
                      heard_again is not None))
    spans.reverse()
    return pl.DataFrame(spans, orient="row", schema={
        "start_mono_ns": pl.Int64, "end_mono_ns": pl.Int64, "detail": pl.String,
        "recovered": pl.Boolean})


def _silences(
    times: SessionTimes,
    thresholds: dict[str, tuple[float, bool]],
    transitions: list[HealthTransition],
    end: int,
) -> pl.DataFrame:
    """Stale episodes (from the monitor's transitions) and ``allow_silence`` silences."""
    rows: list[tuple[Any, ...]] = []
    for stream, (threshold, allowed) in thresholds.items():
        received = times.times(stream)
        if allowed:  # never judged: the gaps between messages beyond the threshold
            last = pl.Series([], dtype=pl.Int64)
            for part in received():
                ends = pl.concat([last, part])
                gaps = pl.DataFrame({"start": ends.shift(1), "end": ends}).drop_nulls()
                last = part.tail(1)
                for start, stop in gaps.filter(
                        (pl.col("end") - pl.col("start")) > threshold * NS_PER_S).iter_rows():
                    length = (stop - start) / NS_PER_S
                    rows.append((stream, "silent_ok", start, stop, length, threshold,
                                 length - threshold, True))
            continue
        episodes: list[tuple[int, int, bool]] = []  # detected, stop, recovered
        stale_since: int | None = None
        for transition in transitions:
            if transition.stream != stream:
                continue
            if not transition.healthy:
                stale_since = transition.mono_ns
            elif stale_since is not None:
                episodes.append((stale_since, transition.mono_ns, True))
                stale_since = None
        if stale_since is not None:
            episodes.append((stale_since, end, False))
        before = _last_at_or_before(received, [detected for detected, _, _ in episodes])
        rows += [_episode(stream, last, detected, stop, threshold, recovered)
                 for last, (detected, stop, recovered) in zip(before, episodes, strict=True)]
    return pl.DataFrame(rows, schema=SILENCE_COLUMNS, orient="row")


def _last_at_or_before(received: Parts, moments: list[int]) -> list[int | None]:
    """For each moment, the latest receive time at or before it (``None``: there is none)."""
    found: list[int | None] = [None] * len(moments)
    if not moments:
        return found
    wanted = pl.Series(moments, dtype=pl.Int64)
    for part in received():  # ascending, so a later part's time is the later one
        index = part.search_sorted(wanted, side="right").cast(pl.Int64) - 1
        for n, at in enumerate(index):
            if at >= 0:
                found[n] = int(part[at])
    return found


def _episode(stream: str, before: int | None, detected: int, stop: int, threshold: float,
             recovered: bool) -> tuple[Any, ...]:
    start = before if before is not None else int(detected - threshold * NS_PER_S)
    length = (stop - start) / NS_PER_S
    return (stream, "stale", start, stop, length, threshold, max(0.0, length - threshold),
            recovered)


def _holes(
    times: SessionTimes,
    thresholds: dict[str, tuple[float, bool]],
    end: int,
    rule: _HoleRule,
) -> pl.DataFrame:
    """Gaps long for their own stream (the rule is in :func:`quality_report`).

    Each gap is judged against the p99 of the gaps before it (a rolling quantile,
    so the rule adapts as the stream's rate changes, and no gap sees the future
    or itself). The last message's gap is the silence from it to the session's end.
    The times are read a piece at a time: each piece is judged after the last
    ``hole_window + 1`` times before it, which are all its first gaps' windows see.
    """
    parts = [pl.DataFrame(schema=SILENCE_COLUMNS)]
    for stream in times.streams:
        if not times.messages(stream):
            continue
        cap = thresholds[stream][0] if stream in thresholds else None
        tail = pl.Series("start", [], pl.Int64)
        for part in times.times(stream)():
            starts = pl.concat([tail, part.rename("start")])
            # The tail's last time is the one whose gap waited for this piece.
            parts.append(_judge(stream, starts, max(tail.len() - 1, 0), None, cap, rule))
            tail = starts.tail(rule.hole_window + 1)
        last = int(tail[-1])
        parts.append(_judge(stream, tail, tail.len() - 1, max(end, last), cap, rule))
    return pl.concat(parts, how="vertical_relaxed")


def _judge(stream: str, starts: pl.Series, first: int, end: int | None, cap: float | None,
           rule: _HoleRule) -> pl.DataFrame:
    """The holes among the gaps of ``starts`` from the ``first`` on.

    Each gap runs to the next start; the last one's to ``end`` (an unrecovered hole), or,
    without an ``end``, it is not judged yet.
    """
    gap = (pl.col("end") - pl.col("start")) / NS_PER_S
    usual = gap.shift(1).rolling_quantile(0.99, window_size=rule.hole_window,
                                          min_samples=rule.hole_min_gaps)
    threshold = pl.max_horizontal(pl.lit(rule.min_hole_s), rule.hole_factor * usual)
    if cap is not None:
        threshold = threshold.clip(upper_bound=cap)
    following = pl.col("start").shift(-1)
    judged = (starts.to_frame("start")
              .with_columns(end=following if end is None else following.fill_null(end))
              .with_columns(length_s=gap, threshold_s=pl.when(usual.is_not_null()).then(threshold),
                            recovered=pl.lit(end is None) | (pl.int_range(pl.len()) < pl.len() - 1))
              .slice(first))
    if end is None:
        judged = judged.head(-1)
    return (judged.filter(pl.col("length_s") > pl.col("threshold_s"))
            .select(pl.lit(stream).alias("stream"), pl.lit("hole").alias("silence"),
                    pl.col("start").alias("start_mono_ns"), pl.col("end").alias("end_mono_ns"),
                    "length_s", "threshold_s",
                    (pl.col("length_s") - pl.col("threshold_s")).alias("beyond_threshold_s"),
                    "recovered"))


def _streams(
    times: SessionTimes,
    rates: pl.DataFrame,
    thresholds: dict[str, tuple[float, bool]],
    silences: pl.DataFrame,
    start: int,
    end: int,
) -> pl.DataFrame:
    seconds = max(1, (end - start + NS_PER_S - 1) // NS_PER_S)
    length = (end - start) / NS_PER_S  # the mean is over the session's length, not its windows
    rows = []
    for stream in times.streams:
        messages = times.messages(stream)
        full = rates.filter(stream=stream)["messages"]
        mine = silences.filter(stream=stream)
        stale, allowed = mine.filter(silence="stale"), mine.filter(silence="silent_ok")
        holes = mine.filter(silence="hole")
        threshold = thresholds.get(stream, (None, False))[0]
        rows.append((stream, messages, messages / length if length > 0 else None,
                     _rate_quantile(full, seconds, 0.5), _rate_quantile(full, seconds, 0.99),
                     threshold, stale.height, float(stale["beyond_threshold_s"].sum() or 0.0),
                     float(allowed["beyond_threshold_s"].sum() or 0.0), holes.height,
                     float(holes["length_s"].sum() or 0.0)))
    return pl.DataFrame(rows, orient="row", schema={
        "stream": pl.String, "messages": pl.Int64, "rate_mean": pl.Float64,
        "rate_p50": pl.Float64, "rate_p99": pl.Float64, "stale_threshold_s": pl.Float64,
        "stale_episodes": pl.Int64, "stale_s": pl.Float64, "silent_ok_s": pl.Float64,
        "holes": pl.Int64, "hole_s": pl.Float64})


def _rates(times: SessionTimes, start: int, end: int) -> pl.DataFrame:
    """Each stream's messages in each second of the session that has any, by second.

    Seconds without a message are left out (their rate is 0), so the table holds at most a
    row a message, however long the session: a week of a quiet stream, or a receive time
    far off, would be a row a second otherwise.
    """
    seconds = max(1, (end - start + NS_PER_S - 1) // NS_PER_S)
    index = pl.get_index_type()  # a count's type, as value_counts gives it
    parts = []
    for stream in times.streams:
        # A message at the session's very end is in its last second, not one past it.
        counts = [((part - start) // NS_PER_S).clip(upper_bound=seconds - 1).rename(
            "second").value_counts() for part in times.times(stream)()]
        per_second = pl.concat([pl.DataFrame(schema={"second": pl.Int64, "count": index}),
                                *counts]).group_by("second").agg(pl.col("count").sum())
        parts.append(per_second.cast({"second": pl.Int64, "count": index}).filter(
            pl.col("second") >= 0).sort("second").select(
                pl.lit(stream).alias("stream"), "second", pl.col("count").alias("messages")))
    if not parts:
        return pl.DataFrame(schema={"stream": pl.String, "second": pl.Int64,
                                    "messages": index})
    return pl.concat(parts)


def _rate_quantile(counts: pl.Series, seconds: int, quantile: float) -> float:
    """A quantile of a stream's messages a second, over every one of the session's ``seconds``.

    ``counts`` are those of the seconds with a message; the others count 0. The value
    polars' ``quantile`` (``"nearest"``) gives on the whole series, from the counts alone.
    """
    position = quantile * (seconds - 1)
    rank = math.floor(position)
    rank += position - rank >= 0.5  # half away from zero, as polars rounds
    zeros = seconds - counts.len()
    return 0.0 if rank < zeros else float(counts.sort()[rank - zeros])


def _steps(seconds: list[int], counts: list[int], span: float) -> tuple[list[float], list[int]]:
    """A stream's rate as the points of a ``steps-post`` line from 0 to ``span``.

    Each count holds for its second (the last to ``span``), and 0 for each second
    ``seconds`` leaves out: no point lies past ``span``, where it would stretch the axes.
    """
    xs: list[float] = [0.0]
    ys: list[int] = [0]
    for second, count in zip(seconds, counts, strict=True):
        if xs[-1] == second:  # the 0 after the second before, or the start: this count
            ys[-1] = count
        else:
            xs.append(second)
            ys.append(count)
        if second + 1 >= span:  # the session's last second: the count holds to its end
            break
        xs.append(second + 1)
        ys.append(0)
    xs.append(max(span, xs[-1]))
    ys.append(ys[-1])
    return xs, ys


def _latency_ms(frame: pl.DataFrame, opened: dict[int, int]) -> tuple[pl.Series, int]:
    """Each row's exchange latency in ms, where it has one, and how many rows are history.

    A row stamped more than :data:`_HISTORY_NS` before its connection opened (``opened``:
    generation → wall ns), and that much later than its connection's median latency
    among ``frame``'s rows, tells of the past; it is left out and counted. Up to an hour
    before: beyond, the two clocks cannot be compared (:data:`_HOUR_MS`), which the
    channel's ``plausible`` then says of all its rows.
    """
    timed = frame.filter(pl.col("exchange_ns").is_not_null())
    lag = pl.col("recv_wall_ns") - pl.col("exchange_ns")
    history = pl.lit(False)
    if opened and timed.height:
        began = pl.col("generation").replace_strict(
            list(opened), list(opened.values()), default=None, return_dtype=pl.Int64)
        stamped = pl.col("exchange_ns")
        history = ((stamped < began - _HISTORY_NS)
                   & (stamped >= began - round(_HOUR_MS * 1e6))
                   # and late for its connection: a clock set a few seconds off, or a
                   # steady lag, puts its first live rows before the open too
                   & (lag > lag.median().over("generation") + _HISTORY_NS)).fill_null(False)
    flagged = timed.select(history.alias("history"), (lag / 1e6).alias("ms"))
    past = flagged["history"]
    return flagged.filter(~past)["ms"], int(past.sum())


def _latency(figures: dict[str, LatencyFigures], invented: bool,
             history: dict[str, int]) -> pl.DataFrame:
    """Latency per channel; ``plausible`` unless times were invented or the bulk is > 1 h.

    ``history``: each channel's rows left out, stamped before their connection opened.
    """
    return pl.DataFrame([(
        channel, f.messages, f.minimum, f.quantiles[0.5], f.quantiles[0.9], f.quantiles[0.99],
        f.maximum, f.negative / f.messages,
        # The bulk, not one odd timestamp: 98% of the latencies within an hour.
        not invented and abs(f.quantiles[0.01]) <= _HOUR_MS
        and abs(f.quantiles[0.99]) <= _HOUR_MS, history.get(channel, 0))
        for channel, f in figures.items()], orient="row", schema=LATENCY_COLUMNS)


def compare(a: QualityReport, b: QualityReport) -> pl.DataFrame:
    """Two sessions side by side: ``metric``, then each summary's ``value``.

    Parameters
    ----------
    a, b
        The two reports.

    Returns
    -------
    polars.DataFrame
        Columns ``metric``, ``a`` and ``b``; a metric one summary lacks (``warnings``)
        is null on that side.
    """
    return a.summary().rename({"value": "a"}).join(
        b.summary().rename({"value": "b"}), on="metric", how="full", coalesce=True,
        maintain_order="left")
