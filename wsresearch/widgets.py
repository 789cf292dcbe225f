"""A live health dashboard for a :class:`~wsresearch.feed.Feed` in Jupyter (ipywidgets 8).

:class:`Dashboard` only observes: it reads the feed's counters on a throttled
timer (at most ``max_hz`` updates a second, whatever the message rate) and never
starts, stops or otherwise owns the connection. It stops updating, after one last
refresh showing the final state, when the feed stops or the widget is closed. It
works the same for a live feed and a feed connected to a
:class:`~wsresearch.replay.ReplayServer`.

What it shows:

- the connection: state (coloured), URL (credentials masked), generation, time
  up and connected, reconnects, last close code with its category;
- per stream: message rate, age of the last message, healthy / stale / silent
  (allowed), and a sparkline of the recent message rate;
- the pipeline: queue depth against its bound (a progress bar), drops,
  duplicates, rejects by reason, sequence gaps, exchange errors, recorded events.

Needs ``pip install 'wsresearch[notebook]'``; without ipywidgets, creating a
dashboard raises an :class:`ImportError` saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .clock import NS_PER_S
from .health import stream_label
from .parser import describe_rejects
from .policy import describe_close
from .redaction import redact_url

if TYPE_CHECKING:
    import polars as pl

    from .feed import Feed, FeedStats

__all__ = ["Dashboard", "StreamRow", "price_text", "sparkline"]

_INSTALL_HINT = (
    "the dashboard needs ipywidgets 8: pip install 'wsresearch[notebook]' "
    "(then restart the kernel)"
)
_BLOCKS = "▁▂▃▄▅▆▇█"
_STATE_COLOURS = {
    "CONNECTED": "#1a7f37",
    "CONNECTING": "#9a6700",
    "RECONNECTING": "#9a6700",
    "DISCONNECTED": "#57606a",
    "STOPPED": "#cf222e",
}
_STATUS_COLOURS = {"healthy": "#1a7f37", "stale": "#cf222e", "silent (ok)": "#57606a",
                   "waiting": "#9a6700"}


def sparkline(values: list[float], width: int = 30) -> str:
    """The last ``width`` of ``values`` as block characters scaled to their maximum.

    Examples
    --------
    >>> sparkline([0, 1, 2, 4])
    '▁▃▅█'
    >>> sparkline([])
    ''
    """
    recent = values[-width:]
    top = max(recent, default=0)
    if top <= 0:
        return _BLOCKS[0] * len(recent)
    return "".join(_BLOCKS[min(len(_BLOCKS) - 1, round(v / top * (len(_BLOCKS) - 1)))]
                   for v in recent)


@dataclass(frozen=True)
class StreamRow:
    """One stream's line in the dashboard.

    Attributes
    ----------
    stream
        The stream name.
    rate
        Messages per second since the previous refresh.
    age
        Seconds since its last message (``None`` before the first).
    status
        ``"healthy"``, ``"stale"``, ``"silent (ok)"`` or ``"waiting"`` (nothing yet).
    history
        Recent rates, oldest first.
    """

    stream: str
    rate: float
    age: float | None
    status: str
    history: tuple[float, ...]


class Dashboard:
    """A live view of a feed's connection, streams and pipeline counters.

    Parameters
    ----------
    feed
        The feed to watch (running or not: a stopped feed shows its final state).
    max_hz
        Refreshes per second at most (1 to 4; default 4).
    history
        Rate samples kept per stream for the sparkline.

    Attributes
    ----------
    widget
        The ipywidgets ``VBox`` (displayed when the dashboard is the cell's value).
    header, streams_html, counters, queue_bar
        Its parts: HTML for the connection line, the stream table and the
        counters, and an ``IntProgress`` for the queue depth.

    Raises
    ------
    ImportError
        Without ipywidgets, saying how to install it.
    ValueError
        If ``max_hz`` is not between 1 and 4, or ``history`` < 1.
    """

    def __init__(self, feed: Feed, *, max_hz: float = 4.0, history: int = 60) -> None:
        try:
            import ipywidgets as widgets
        except ImportError:
            raise ImportError(_INSTALL_HINT) from None
        if not 1 <= max_hz <= 4:
            raise ValueError(f"max_hz must be between 1 and 4 updates a second, got {max_hz}")
        if history < 1:
            raise ValueError(f"history must be >= 1 samples, got {history}")
        self.feed = feed
        self.interval = 1.0 / max_hz
        self.refreshes = 0
        """How many times the view was redrawn."""
        self._history: dict[str, deque[float]] = {
            name: deque(maxlen=history) for name in feed.spec.streams
        }
        self._channels_of: dict[str, list[str]] = {}
        for channel in feed.spec.channels:
            self._channels_of.setdefault(channel.stream_name, []).append(channel.name)
        self._last_rows: dict[str, int] | None = None
        self._last_ns = 0
        self.rows: list[StreamRow] = []
        """The stream table as last drawn."""
        self.header = widgets.HTML()
        self.counters = widgets.HTML()
        self.streams_html = widgets.HTML()
        self.books_html = widgets.HTML()
        self.queue_bar = widgets.IntProgress(
            value=0, min=0, max=max(1, feed.spec.queue.max_size), description="queue",
            bar_style="info", layout=widgets.Layout(width="320px"),
        )
        self.widget = widgets.VBox(
            [self.header, widgets.HBox([self.queue_bar, self.counters]), self.streams_html,
             self.books_html],
            layout=widgets.Layout(border="1px solid #d0d7de", padding="6px"),
        )
        self._task: asyncio.Task[None] | None = None
        self.refresh()
        with contextlib.suppress(RuntimeError):  # no running loop: refresh() by hand
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="wsresearch-dashboard"
            )

    # -- public -------------------------------------------------------------------------

    @property
    def updating(self) -> bool:
        """Whether the timer is still refreshing the view."""
        return self._task is not None and not self._task.done()

    def refresh(self) -> None:
        """Redraw from the feed's current counters (the timer calls this)."""
        feed = self.feed
        stats = feed.stats
        now = feed.clock.monotonic_ns()
        self.rows = self._stream_rows(now)
        self.header.value = self._header_html(stats)
        self.queue_bar.max = max(1, stats.queue_max)
        self.queue_bar.value = min(stats.queue_size, self.queue_bar.max)
        self.queue_bar.bar_style = "danger" if stats.queue_size >= stats.queue_max else "info"
        self.counters.value = self._counters_html(stats)
        self.streams_html.value = self._streams_html(self.rows)
        self.books_html.value = self._books_html(feed.books)
        self.refreshes += 1

    def close(self) -> None:
        """Stop updating and close the widgets (the feed is not touched)."""
        if self._task is not None:
            self._task.cancel()
        self.widget.close()
        for part in (self.header, self.counters, self.streams_html, self.books_html,
                     self.queue_bar):
            part.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"Dashboard({self.feed!r}, updating={self.updating})"

    # -- internals ----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.widget.comm is None:  # closed from code or by the front end
                return
            self.refresh()
            if not self.feed.running:  # final state drawn; nothing more will change
                return

    def _stream_rows(self, now: int) -> list[StreamRow]:
        feed = self.feed
        store = feed.store
        rows_now = {name: sum(store.added(c) for c in channels)  # received, kept or not
                    for name, channels in self._channels_of.items()}
        elapsed = (now - self._last_ns) / NS_PER_S
        status = feed.health.status()
        result = []
        for name in self._channels_of:
            rate = 0.0
            if self._last_rows is not None and elapsed > 0:
                rate = (rows_now[name] - self._last_rows[name]) / elapsed
                self._history[name].append(rate)
            last = feed.health.last_seen(name)
            age = None if last is None else max(0.0, (now - last) / NS_PER_S)
            label = stream_label(status.get(name))  # None: a stream without a health config
            result.append(StreamRow(name, rate, age, label, tuple(self._history[name])))
        self._last_rows, self._last_ns = rows_now, now
        return result

    def _header_html(self, stats: FeedStats) -> str:
        feed = self.feed
        state = stats.state if feed.running else "STOPPED"
        colour = _STATE_COLOURS.get(state, "#57606a")
        close = stats.last_close
        last_close = "none" if close is None else describe_close(close.code, close.category)
        uptime = feed.uptime
        connected = feed.connected_for
        return (
            f'<div style="font-family:sans-serif">'
            f'<span style="background:{colour};color:white;padding:1px 6px;'
            f'border-radius:3px;font-weight:bold">{state}</span> '
            f"<code>{html.escape(redact_url(feed.spec.url))}</code> "
            f"generation <b>{stats.generation}</b> · reconnects <b>{stats.reconnects}</b> · "
            f"up {_seconds(uptime)} · connected {_seconds(connected)} · "
            f"last close <b>{html.escape(last_close)}</b></div>"
        )

    @staticmethod
    def _counters_html(stats: FeedStats) -> str:
        rejects = describe_rejects(stats.rejects)
        return (
            f'<div style="font-family:sans-serif;padding-left:12px">'
            f"queue <b>{stats.queue_size}</b>/{stats.queue_max} · "
            f"received <b>{stats.received}</b> · ok <b>{stats.ok}</b> · "
            f"dropped <b>{stats.dropped}</b> · duplicates <b>{stats.duplicates}</b> · "
            f"old-generation messages <b>{stats.old_generation}</b> · "
            f"rejects <b>{stats.invalid}</b> ({rejects}) · "
            f"sequence gaps <b>{stats.sequence_gaps}</b> ({stats.sequence_missing} missing) · "
            f"exchange errors <b>{stats.exchange_errors}</b> · "
            f"recorded <b>{stats.recorded}</b>{_trouble(stats)}</div>"
        )

    @staticmethod
    def _streams_html(rows: list[StreamRow]) -> str:
        cells = []
        for row in rows:
            colour = _STATUS_COLOURS.get(row.status, "#57606a")
            age = "-" if row.age is None else f"{row.age:.1f} s"
            cells.append(
                f"<tr><td>{html.escape(row.stream)}</td>"
                f'<td style="text-align:right">{row.rate:,.1f}/s</td>'
                f'<td style="text-align:right">{age}</td>'
                f'<td style="color:{colour};font-weight:bold">{row.status}</td>'
                f'<td style="font-family:monospace">{sparkline(list(row.history))}</td></tr>'
            )
        return (
            '<table style="font-family:sans-serif;border-collapse:collapse">'
            "<tr><th>stream</th><th>rate</th><th>last message</th><th>health</th>"
            "<th>rate history</th></tr>" + "".join(cells) + "</table>"
        )


    @staticmethod
    def _books_html(books: pl.DataFrame) -> str:
        """A row per order book: valid or why not, top of book, integrity counts."""
        if not books.height:
            return ""
        cells = []
        for b in books.iter_rows(named=True):
            state = ('<span style="color:#1a7f37;font-weight:bold">valid</span>' if b["valid"]
                     else f'<span style="color:#cf222e;font-weight:bold">'
                          f'{html.escape(b["reason"] or "invalid")}</span>')
            cells.append(
                f"<tr><td>{html.escape(b['symbol'])}</td><td>{state}</td>"
                f'<td style="text-align:right">{price_text(b["best_bid"])}</td>'
                f'<td style="text-align:right">{price_text(b["best_ask"])}</td>'
                f'<td style="text-align:right">{b["updates"]:,}</td>'
                f'<td style="text-align:right">{b["checksums_ok"]:,} / '
                f'{b["checksums_failed"]:,}</td>'
                f'<td style="text-align:right">{b["resyncs"]}</td>'
                f'<td style="text-align:right">{b["crossed"]}</td>'
                f'<td style="text-align:right">{_seconds(b["invalid_s"])}</td></tr>')
        return (
            '<table style="font-family:sans-serif;border-collapse:collapse">'
            "<tr><th>book</th><th>state</th><th>bid</th><th>ask</th><th>updates</th>"
            "<th>checksums ok / failed</th><th>resyncs</th><th>crossed</th>"
            "<th>time invalid</th></tr>" + "".join(cells) + "</table>"
        )


def price_text(value: float | None) -> str:
    """A price as the views show it (``-`` for none)."""
    return "-" if value is None else f"{value:,.10g}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def _trouble(stats: FeedStats) -> str:
    """Counters shown only once they are not zero: each means something to look at."""
    shown = []
    if stats.recording_errors:
        shown.append(f" · recording errors <b>{stats.recording_errors}</b> "
                     f"({stats.recording_held} events held)")
    if stats.oversized:
        shown.append(f" · oversized closes <b>{stats.oversized}</b>")
    return "".join(shown)
