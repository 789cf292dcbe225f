"""The dashboard's widget state after known events, against the simulator."""

import re
import sys

import pytest

from wsresearch import Feed, Simulator
from wsresearch.exchanges import generic
from wsresearch.widgets import Dashboard, sparkline

from .conftest import RATES, eventually, other_tasks, quick


def counter(dash: Dashboard, name: str) -> int:
    match = re.search(rf"{name} <b>(\d+)</b>", dash.counters.value)
    assert match, dash.counters.value
    return int(match.group(1))


async def test_the_dashboard_follows_a_live_feed_and_stops_with_it() -> None:
    async with Simulator(rates={"trade": 200.0, "ticker": 100.0, "order": 1e-6}, seed=1) as sim:
        feed = Feed(sim.spec(connection=quick()))
        await feed.start()
        dash = feed.dashboard()
        assert dash.updating
        assert "CONNECTED" in dash.header.value and "generation <b>1</b>" in dash.header.value
        await eventually(lambda: counter(dash, "ok") >= 20, what="the timer to show messages")
        first = dash.refreshes
        await eventually(lambda: dash.refreshes > first + 1, what="two more refreshes")
        rows = {row.stream: row for row in dash.rows}
        assert rows["trade"].status == "healthy" and rows["trade"].rate > 0
        assert rows["trade"].history and rows["trade"].age is not None
        assert rows["order"].status == "waiting" and rows["order"].age is None
        assert dash.queue_bar.max == feed.spec.queue.max_size
        assert 0 <= dash.queue_bar.value <= dash.queue_bar.max
        assert "trade" in dash.streams_html.value

        await sim.disconnect(1001, "going away")
        await eventually(lambda: "generation <b>2</b>" in dash.header.value, what="reconnect")
        assert "last close <b>going away (1001), NORMAL</b>" in dash.header.value
        assert "reconnects <b>1</b>" in dash.header.value

        await feed.stop()
        await eventually(lambda: not dash.updating, what="the timer to end with the feed")
        assert "STOPPED" in dash.header.value
        assert counter(dash, "ok") == feed.stats.ok  # the final state, drawn once more
        # Frames of a replaced connection are named so, not "stale" (a silent stream).
        assert counter(dash, "old-generation messages") == feed.stats.old_generation
        assert "stale" not in dash.counters.value
    assert not other_tasks()


async def test_closing_the_widget_ends_its_timer_and_leaves_the_feed_alone() -> None:
    async with Simulator(rates=RATES, seed=2) as sim, Feed(
        sim.spec(connection=quick())
    ) as feed:
        dash = Dashboard(feed, max_hz=4)
        dash.close()
        await eventually(lambda: not dash.updating, what="the timer to stop")
        assert feed.running and feed.state.name == "CONNECTED"
        assert dash.widget.comm is None
    assert not other_tasks()


async def test_a_dashboard_of_a_stopped_feed_shows_its_final_state() -> None:
    async with Simulator(rates=RATES, seed=3) as sim:
        feed = Feed(sim.spec(connection=quick()))
        await feed.run_for(0.3)
        dash = Dashboard(feed)
        assert "STOPPED" in dash.header.value
        assert counter(dash, "ok") == feed.stats.ok > 0
        await eventually(lambda: not dash.updating, what="a single final refresh")


def test_a_dashboard_without_a_loop_is_refreshed_by_hand() -> None:
    feed = Feed(generic.spec(url="ws://127.0.0.1:1"))
    dash = Dashboard(feed)
    assert not dash.updating and dash.refreshes == 1
    dash.refresh()
    assert dash.refreshes == 2
    assert [row.status for row in dash.rows] == ["waiting", "waiting", "waiting"]


def test_bad_options_and_a_missing_ipywidgets_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    feed = Feed(generic.spec(url="ws://127.0.0.1:1"))
    with pytest.raises(ValueError, match="between 1 and 4"):
        Dashboard(feed, max_hz=50)
    with pytest.raises(ValueError, match="history"):
        Dashboard(feed, history=0)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'wsresearch\[notebook\]'"):
        feed.dashboard()


def test_sparkline_scales_to_the_maximum() -> None:
    assert sparkline([0, 0]) == "▁▁"
    assert sparkline([0, 2, 14]) == "▁▂█"
    assert len(sparkline(list(range(100)), width=30)) == 30


async def test_rates_count_rows_received_when_the_feed_keeps_none() -> None:
    pytest.importorskip("ipywidgets", reason="the dashboard needs wsresearch[notebook]")
    async with Simulator(rates=RATES, seed=2) as sim:
        feed = Feed(sim.spec(connection=quick()), max_rows=0)
        async with feed:
            dash = feed.dashboard()
            first = dash.refreshes
            await eventually(lambda: dash.refreshes > first + 1, what="two refreshes")
            rows = {row.stream: row for row in dash.rows}
            assert feed.store.rows("trade") == 0
            assert rows["trade"].rate > 0  # what arrived, though nothing is kept
            dash.close()
