"""Terminal views of a running :class:`~wsresearch.feed.Feed`, drawn with rich.

:class:`FeedMonitor` samples a feed (it only reads public state, like the
notebook widget) and renders a live status table, a one-line progress string
for logs that are not terminals, and an end-of-run summary.

Every view is safe to print on any rich console: text from outside the program
(channel names, close reasons) is built as :class:`rich.text.Text`, never
parsed as markup, and the URL is shown with its credentials masked. Row counts
are rows *received* (``feed.store.added``), so they mean the same for a feed that
keeps its rows on disk only (``Feed(max_rows=0)``, as ``wsresearch record`` runs).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import polars as pl
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ._text import printable
from .clock import NS_PER_S
from .config import CloseCategory
from .connection import ConnectionState
from .events import BookChanged, Closed, Event, HealthChanged, Opened
from .feed import Feed
from .health import stream_label
from .parser import describe_rejects
from .policy import describe_close
from .redaction import redact_url
from .widgets import price_text

__all__ = ["FeedMonitor", "printable"]

_LABEL_STYLE = {  # health.stream_label's words, as the terminal shows them
    "healthy": ("healthy", "green"),
    "stale": ("STALE", "bold red"),
    "silent (ok)": ("silent (ok)", "cyan"),
    "waiting": ("waiting", "dim"),
    "unmonitored": ("unmonitored", "dim"),
}
_STATE_STYLE = {
    ConnectionState.CONNECTED: "bold green",
    ConnectionState.CONNECTING: "yellow",
    ConnectionState.RECONNECTING: "bold yellow",
    ConnectionState.DISCONNECTED: "bold red",
}


@dataclass(frozen=True, slots=True)
class _Event:
    at_s: float
    text: str
    style: str


class FeedMonitor:
    """Samples a feed's counters over time and renders them.

    Parameters
    ----------
    feed
        The feed to watch. The monitor registers listeners for closes and
        health transitions, to list them as events.
    max_events
        How many recent events to show.
    """

    def __init__(self, feed: Feed, max_events: int = 8) -> None:
        self.feed = feed
        self._clock = feed.clock
        self._t0 = self._clock.monotonic_ns()
        self._events: deque[_Event] = deque(maxlen=max_events)
        self.closes: list[tuple[float, int | None, str, CloseCategory]] = []
        self._prev_rows: dict[str, int] = {}
        self._prev_at = self._t0
        self._rates: dict[str, float] = {}
        feed.on_event(self._on_event)

    def elapsed(self) -> float:
        """Seconds since the monitor was created."""
        return (self._clock.monotonic_ns() - self._t0) / NS_PER_S

    def sample(self) -> None:
        """Update per-channel row rates since the last sample."""
        now = self._clock.monotonic_ns()
        span = (now - self._prev_at) / NS_PER_S
        for name in self.feed.spec.channel_names:
            rows = self.feed.store.added(name)
            if span > 0:
                self._rates[name] = (rows - self._prev_rows.get(name, 0)) / span
            self._prev_rows[name] = rows
        self._prev_at = now

    def render(self) -> Group:
        """The live view: connection line, per-stream table, pipeline counters, events."""
        feed, stats = self.feed, self.feed.stats
        state = feed.state
        head = Text.assemble(
            ("wsresearch ", "bold"),
            (f"{state.name:<12}", _STATE_STYLE[state]),
            f" {redact_url(feed.spec.url)}  generation {stats.generation}  "
            f"reconnects {stats.reconnects}  "
            f"t={self.elapsed():5.1f}s",
        )
        streams = Table(title=None, expand=False, box=None, pad_edge=False)
        for column in ("stream", "rows", "msg/s", "last msg", "health"):
            streams.add_column(column, justify="right" if column != "stream" else "left")
        status = feed.health.status()
        now = self._clock.monotonic_ns()
        for channel in feed.spec.channels:
            name = channel.name
            st = status.get(channel.stream_name)
            age = "-" if st is None or st.last_message_ns is None else (
                f"{(now - st.last_message_ns) / NS_PER_S:.1f}s ago")
            label = stream_label(st)
            text, style = _LABEL_STYLE[label]
            health = Text(text, style)
            streams.add_row(
                Text(name), Text(str(feed.store.added(name))),
                Text(f"{self._rates.get(name, 0.0):.1f}"), Text(age), health,
            )
        rejects = describe_rejects(stats.rejects)
        close = stats.last_close
        last_close = "none" if close is None else describe_close(close.code, close.category)
        pipeline = Text(
            f"queue {stats.queue_size}/{stats.queue_max}  dropped {stats.dropped}  "
            f"duplicates {stats.duplicates}  old-generation messages {stats.old_generation}  "
            f"rejects: {rejects}\n"
            f"last close: {last_close}  pongs {stats.pongs}"
            + ("" if stats.last_rtt is None else f" (rtt {stats.last_rtt * 1000:.1f} ms)")
        )
        events = Text()
        for event in self._events:
            events.append(f"  {event.at_s:6.1f}s  {event.text}\n", event.style)
        parts: list[Any] = [head, streams, pipeline]
        books = feed.books
        if books.height:
            parts.append(_books_table(books))
        return Group(*parts, Text("events:", "bold"), events)

    def progress_line(self) -> str:
        """One line for logs that are not terminals."""
        stats = self.feed.stats
        unhealthy = [s for s, st in self.feed.health.status().items() if not st.healthy]
        return (
            f"[{self.elapsed():5.1f}s] {stats.state:<12} gen {stats.generation} "
            f"ok {stats.ok} dup {stats.duplicates} invalid {stats.invalid} "
            f"dropped {stats.dropped} queue {stats.queue_size}/{stats.queue_max} "
            f"stale streams {unhealthy or 'none'}"
        )

    def summary(self) -> Table:
        """The end-of-run table: totals, per-channel rows, and every close."""
        stats = self.feed.stats
        table = Table(title="session summary", show_header=True)
        table.add_column("what")
        table.add_column("value", justify="right")
        for label, value in (
            ("duration", f"{self.elapsed():.1f} s"),
            ("connections (generations)", stats.generation),
            ("reconnects", stats.reconnects),
            ("messages received", stats.received),
            ("valid messages (rows)", stats.ok),
            ("duplicates removed", stats.duplicates),
            ("control messages", stats.control),
            ("rejected messages", stats.invalid),
            ("dropped by queue", stats.dropped),
            ("old-generation messages", stats.old_generation),
            ("health transitions", len(self.feed.health.transitions)),
            ("sequence gaps (numbers missing)",
             f"{stats.sequence_gaps} ({stats.sequence_missing})"),
            ("exchange errors", stats.exchange_errors),
        ):
            table.add_row(Text(label), Text(str(value)))
        # Shown once there is something to look at.
        if stats.recording_errors:
            table.add_row(Text("recording errors (events held)"),
                          Text(f"{stats.recording_errors} ({stats.recording_held})"))
        if stats.oversized:
            table.add_row(Text("oversized closes (1009)"), Text(str(stats.oversized)))
        for reason, n in stats.rejects.items():
            if n:
                table.add_row(Text(f"  rejected: {reason}"), Text(str(n)))
        for name in self.feed.spec.channel_names:
            table.add_row(Text(f"  rows: {name}"), Text(str(self.feed.store.added(name))))
        books = self.feed.books
        if books.height:
            table.add_row(Text("order books valid at the end"),
                          Text(f"{int(books['valid'].sum())} of {books.height}"))
            for label, column in (("book checksums ok", "checksums_ok"),
                                  ("book checksums failed", "checksums_failed"),
                                  ("book resyncs", "resyncs"), ("crossed books", "crossed")):
                table.add_row(Text(label), Text(str(int(books[column].sum()))))
            table.add_row(Text("time without a valid book"),
                          Text(f"{float(books['invalid_s'].sum()):.1f} s"))
        if stats.snapshot_failures:
            table.add_row(Text("book snapshot requests failed"),
                          Text(str(stats.snapshot_failures)))
            table.add_row(Text("  last"), Text(printable(stats.last_snapshot_failure or "")))
        for at, code, reason, category in self.closes:
            table.add_row(Text(f"  close at {at:.1f} s"),
                          Text(printable(describe_close(code, category, reason))))
        return table

    def _on_event(self, event: Event) -> None:
        at = self.elapsed()
        if isinstance(event, Closed):
            category = CloseCategory(event.category)
            self.closes.append((at, event.code, event.reason, category))
            text = printable(describe_close(event.code, category, event.reason))
            self._events.append(_Event(at, f"closed: {text}", "yellow"))
        elif isinstance(event, Opened):
            self._events.append(_Event(at, f"connected (generation {event.generation})",
                                       "green"))
        elif isinstance(event, BookChanged):
            text, style = ((f"book {event.symbol} valid", "green") if event.valid
                           else (f"book {event.symbol} INVALID: {event.reason}", "red"))
            self._events.append(_Event(at, printable(text), style))
        elif isinstance(event, HealthChanged):
            stream = event.stream
            text, style = ((f"{stream} recovered", "green") if event.healthy
                           else (f"{stream} STALE", "red"))
            self._events.append(_Event(at, text, style))


def _books_table(books: pl.DataFrame) -> Table:
    """A row per order book: state, top of book, integrity counts."""
    table = Table(title=None, expand=False, box=None, pad_edge=False)
    for column in ("book", "state", "bid", "ask", "updates", "checksums", "resyncs"):
        table.add_column(column, justify="left" if column in ("book", "state") else "right")
    for b in books.iter_rows(named=True):
        state = Text("valid", "green") if b["valid"] else Text(
            printable(b["reason"] or "invalid"), "red")
        table.add_row(Text(b["symbol"]), state, Text(price_text(b["best_bid"])),
                      Text(price_text(b["best_ask"])), Text(str(b["updates"])),
                      Text(f"{b['checksums_ok']} ok / {b['checksums_failed']} failed"),
                      Text(str(b["resyncs"])))
    return table
