"""The quality report tells the truth: about a session's end, holes, impossible figures, HTML.

Each test is a finding of the research trial (rows 3a to 3c), on real sockets or real
exchange frames: a session that ends disconnected, a hole far shorter than the
stale threshold, latencies that are not measurements, and an HTML page that shows
every row of every table.
"""

from __future__ import annotations

import gzip
import json
import time
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as serve_ws

from wsresearch import (
    BackoffConfig,
    ConnectionConfig,
    Feed,
    HeartbeatConfig,
    ReconnectConfig,
    Recording,
    Simulator,
    StreamConfig,
)
from wsresearch.connection import CLIENT_CLOSE_REASONS
from wsresearch.exchanges import binance, bybit, generic
from wsresearch.lowlevel import ConnectionState
from wsresearch.quality import quality_report
from wsresearch.recording.writer import Captured, write_events
from wsresearch.replay import replay
from wsresearch.spec import FeedSpec

from .conftest import FAST, RATES, SESSION, eventually

NS = 1_000_000_000
DATA = Path(__file__).resolve().parent.parent / "data"
SPOT = DATA / ("binance/hftbacktest_2024-08-08_spot_btcusdt_depth100ms_bookTicker_trade"
               "_first6000.jsonl")
BYBIT = DATA / "bybit/nautilus_bybit-history_2024-12-01_XRPUSDT_orderbook500_linear.jsonl.gz"
YEAR_NS = 365 * 24 * 3600 * NS


def spot_spec() -> FeedSpec:
    return binance.spec(["btcusdt"], ["trade", "bookTicker", "depth"], depth_speed="100ms")


def spot_frames() -> list[tuple[int, str]]:
    """The Binance spot capture with receive times taken from the frames themselves.

    The capture lost hftbacktest's local timestamps, and spot ``bookTicker`` carries
    no event time. Trades and depth updates do (``E``, ms): a frame without one gets
    a time interpolated between its neighbours', in arrival order, so the times run
    with the market (53 s) rather than 1 ms apart from the epoch.
    """
    lines = SPOT.read_text().splitlines()
    exchange_ms = [json.loads(line)["data"].get("E") for line in lines]
    first = next(ms for ms in exchange_ms if ms is not None)
    times = pl.DataFrame({"E": exchange_ms}, schema={"E": pl.Int64}).select(
        ((pl.col("E") - first).cast(pl.Float64).interpolate().forward_fill().backward_fill()
         .cum_max() * 1e6).round().cast(pl.Int64) + first * 1_000_000
    ).to_series()
    return list(zip(times.to_list(), lines, strict=True))


def stream_of(text: str) -> str:
    name: str = json.loads(text)["stream"].split("@")[1]
    return name


# -- 1. a session that ends while disconnected ------------------------------------------------


async def test_a_session_that_ends_disconnected_has_its_downtime_to_the_end(
    tmp_path: Path,
) -> None:
    async with Simulator(rates=RATES, seed=5) as sim:
        # Rate-limited, the feed waits a minute before it tries again: it is still
        # disconnected when it stops.
        connection = ConnectionConfig(reconnect=ReconnectConfig(
                backoff=FAST,
                rate_limit_backoff=BackoffConfig(initial_delay=60.0, max_delay=60.0, jitter=0),
            ),
            heartbeat=HeartbeatConfig(interval=0.1, timeout=0.5))
        spec = sim.spec(connection=connection, check_interval=0.05, health={
            "trade": StreamConfig(expected_interval=0.005, stale_threshold=0.3),
            "ticker": StreamConfig(expected_interval=0.01, stale_threshold=0.3),
            "order": StreamConfig(expected_interval=10.0, stale_threshold=60.0,
                                  allow_silence=True),
        })
        feed = Feed(spec, record_to=tmp_path / "rec", flush_interval=0.05)
        async with feed:
            await eventually(lambda: feed.store.rows("trade") >= 150, what="150 trades")
            await sim.rate_limit()
            # Waiting on the monitor: both streams go stale 0.3 s into the downtime.
            await eventually(lambda: not any(feed.health.is_stream_healthy(s)
                                             for s in ("trade", "ticker")),
                             what="both streams stale while disconnected")
            # And silent for longer than the threshold plus a check interval, so the
            # replay's check points (every 0.05 s from the first event) see it too.
            last = max(status.last_message_ns or 0 for status in feed.health.status().values())
            await eventually(lambda: feed.clock.monotonic_ns() - last > 0.4 * NS,
                             what="0.4 s of silence")
            assert feed.state is ConnectionState.RECONNECTING
            live = quality_report(feed)
    events = Recording.open(tmp_path / "rec").events()
    assert events["kind"][-1] == "stop"
    opened, closed, stopped = (int(events.filter(kind=k)["mono_ns"][0])
                               for k in ("open", "close", "stop"))

    report = quality_report(tmp_path / "rec", spec)
    assert (report.start_mono_ns, report.end_mono_ns) == (opened, stopped)
    row = report.connections.row(0, named=True)
    assert report.connections.height == 1 and row["code"] == 4429
    assert row["connected_s"] == (closed - opened) / NS
    assert row["downtime_after_s"] == (stopped - closed) / NS >= 0.3
    assert row["connected_s"] + row["downtime_after_s"] == pytest.approx(report.duration_s)
    summary = dict(report.summary().iter_rows())
    assert summary["duration"] == f"{(stopped - opened) / NS:.1f} s"
    assert summary["downtime"] == f"{(stopped - closed) / NS:.2f} s"
    assert summary["uptime"] == f"{100 * (closed - opened) / (stopped - opened):.1f}%"
    assert summary["disconnects"] == "rate limited (4429), RATE_LIMITED: rate limited"
    # The stale spells the live feed saw, still open when it stopped: replay finds them
    # again (it checks health up to the stop event), ending where the live feed ended.
    live_health = dict(events.filter(kind="health").select("stream", "healthy").rows())
    replayed = dict((t.stream, t.healthy) for t in replay(tmp_path / "rec", spec)
                    .health_transitions)
    assert replayed == live_health == {"trade": False, "ticker": False}
    stale = report.silences.filter(silence="stale", recovered=False)
    assert sorted(stale["stream"]) == ["ticker", "trade"]
    assert stale["end_mono_ns"].to_list() == [stopped, stopped]
    # The trade stream's hole runs to the end; its threshold is the stream's stale
    # threshold, below min_hole_s (the cap).
    hole = report.silences.filter(silence="hole", stream="trade").row(-1, named=True)
    assert (hole["end_mono_ns"], hole["recovered"], hole["threshold_s"]) == (stopped, False, 0.3)
    assert hole["start_mono_ns"] <= closed

    # Live, while still disconnected: the downtime runs to now.
    live_row = live.connections.row(0, named=True)
    assert live_row["downtime_after_s"] >= 0.3
    assert live_row["connected_s"] + live_row["downtime_after_s"] == pytest.approx(
        live.duration_s)

    # The plot shades the tail grey, on the rate panel and the connection bar, and
    # both time axes span the whole session.
    pytest.importorskip("matplotlib", reason="plots need the report extra (matplotlib)")
    figure = report.plot()
    rate_ax, _, health_ax = figure.axes
    assert rate_ax.get_xlim() == health_ax.get_xlim() == (0.0, report.duration_s)
    grey = [p.get_extents().transformed(rate_ax.transData.inverted()).x1
            for p in rate_ax.patches if p.get_label() == "_down"]
    assert grey == [pytest.approx(report.duration_s)]
    connection_bar = health_ax.collections[-1].get_paths()[0].get_extents()
    assert connection_bar.x1 == pytest.approx(report.duration_s)
    assert connection_bar.x0 == pytest.approx((closed - opened) / NS)
    ends = [line.get_path().get_extents().x1 for line in rate_ax.get_lines()]
    assert ends == [report.duration_s] * 3  # every stream's rate, to the end


def test_the_clients_own_end_of_session_close_is_no_disconnect() -> None:
    # data/sessions/sim-faults ends with Feed.stop(): a 1000 close, "client disconnect".
    assert CLIENT_CLOSE_REASONS[0] == "client disconnect"
    report = quality_report(SESSION)
    assert report.connections["reason"][-1] == "client disconnect"
    assert report.connections["downtime_after_s"][-1] is None  # the session ended there
    summary = dict(report.summary().iter_rows())
    assert summary["disconnects"] == (
        "abnormal closure (1006), NORMAL; going away (1001), NORMAL: simulated disconnect; "
        "unauthorized (4401), AUTH_FAILURE: invalid api key; abnormal closure (1006), "
        "NORMAL: no pong within 1 s; rate limited (4429), RATE_LIMITED: rate limited")
    down = float(report.connections["downtime_after_s"].sum())
    connected = float(report.connections["connected_s"].sum())
    assert summary["downtime"] == f"{down:.2f} s"
    assert summary["uptime"] == f"{100 * connected / (connected + down):.1f}%"


# -- 2. holes, relative to a stream's own rate ------------------------------------------------


def test_a_ten_second_hole_is_found_though_the_stale_threshold_is_thirty(
    tmp_path: Path,
) -> None:
    frames = spot_frames()
    first = frames[0][0]
    whole = quality_report(Recording.from_frames(tmp_path / "whole", frames, spec=spot_spec()))
    assert whole.silences.height == 0  # the capture has no hole, nor a stale spell
    assert dict(whole.summary().iter_rows())["holes"] == "0 (0.0 s)"
    assert whole.warnings == []

    # Cut out the frames received from 20 s to 30 s into the capture (1125 of 5999).
    cut_from, cut_to = first + 20 * NS, first + 30 * NS
    kept = [(t, text) for t, text in frames if not cut_from <= t < cut_to]
    assert len(frames) - len(kept) == 1125
    before = [t for t, text in kept if t < cut_from and stream_of(text) == "bookTicker"][-1]
    after = next(t for t, text in kept if t >= cut_to and stream_of(text) == "bookTicker")
    report = quality_report(Recording.from_frames(tmp_path / "cut", kept, spec=spot_spec()))

    holes = report.silences.filter(silence="hole")
    ticker = holes.filter(stream="bookTicker").row(0, named=True)
    assert holes.filter(stream="bookTicker").height == 1
    assert (ticker["start_mono_ns"], ticker["end_mono_ns"]) == (before - first, after - first)
    assert ticker["length_s"] == pytest.approx((after - before) / NS) and after - before > 10 * NS
    # Judged against the stream's own gaps (p99 about 0.16 s), not its 30 s threshold.
    assert 1.0 <= ticker["threshold_s"] < 3.0 and ticker["recovered"]
    # Every other hole is the same cut, seen in another stream; nothing else is a hole.
    assert all(start < cut_from - first and end >= cut_to - first
               for start, end in holes.select("start_mono_ns", "end_mono_ns").iter_rows())
    assert sorted(holes["stream"]) == ["bookTicker", "depth", "trade"]
    assert report.silences.filter(silence="stale").height == 0  # the monitor saw nothing
    streams = {r["stream"]: r for r in report.streams.iter_rows(named=True)}
    assert streams["bookTicker"]["holes"] == 1
    assert streams["bookTicker"]["hole_s"] == ticker["length_s"]
    summary = dict(report.summary().iter_rows())
    assert summary["holes"] == f"3 ({holes['length_s'].sum():.1f} s)"
    assert summary["stale episodes"] == "0 (0.0 s)"

    # The rule's settings are the caller's: a 20 s minimum finds no 10 s hole.
    lenient = quality_report(tmp_path / "cut", spot_spec(), min_hole_s=20.0)
    assert lenient.silences.filter(silence="hole").height == 0


@pytest.mark.parametrize(("argument", "value"), [
    ("hole_factor", 0.5), ("hole_factor", float("nan")), ("hole_window", 1),
    ("hole_window", 2.5), ("hole_min_gaps", 0), ("hole_min_gaps", 2000),
    ("min_hole_s", 0.0), ("min_hole_s", float("inf")), ("min_hole_s", True),
])
def test_the_hole_rule_refuses_settings_out_of_range(argument: str, value: object) -> None:
    with pytest.raises(ValueError, match=argument):
        quality_report(SESSION, **{argument: value})  # type: ignore[arg-type]


# -- 3. impossible figures are flagged, not reported as measurements ---------------------------


@pytest.mark.parametrize("capture", ["binance", "bybit"])
def test_receive_times_invented_on_import_give_no_latency(capture: str, tmp_path: Path) -> None:
    if capture == "binance":
        lines, spec = SPOT.read_text().splitlines(), spot_spec()
    else:
        lines = gzip.decompress(BYBIT.read_bytes()).decode().splitlines()
        spec = bybit.spec(["XRPUSDT"], ["orderbook"], book_depth=500)
    report = quality_report(Recording.from_frames(tmp_path / "rec", lines, spec=spec))
    # The numbers stay available, as what they are: receive (1970) minus exchange (2024).
    assert report.latency.height and (report.latency["p50_ms"] < -1.7e12).all()
    assert not report.latency["plausible"].any()
    assert report.receive_times_invented
    summary = dict(report.summary().iter_rows())
    # The manifest says where the times came from: no guess (before 2000, so invented?).
    assert report.receive_times == "invented"
    assert summary["latency p50 / p99"] == "not measured: receive times were invented on import"
    assert summary["clock skew"] == "not measured: receive times were invented on import"
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith("Receive times start at 1970-01-01 00:00:00 UTC: "
                                         "they were invented on import (the recording's "
                                         "manifest says so: the capture had none)")
    assert summary["warnings"] == report.warnings[0]


def test_latencies_from_clocks_years_apart_are_implausible(tmp_path: Path) -> None:
    frames = spot_frames()
    later = [(t + 2 * YEAR_NS, text) for t, text in frames]  # re-recorded two years on
    report = quality_report(Recording.from_frames(tmp_path / "later", later, spec=spot_spec()))
    assert not report.receive_times_invented
    assert report.latency.select("channel", "plausible").rows() == [
        ("trade", False), ("depth", False)]
    assert (report.latency["p50_ms"] > 2 * 365 * 86_400_000 - 1_000).all()  # still there
    summary = dict(report.summary().iter_rows())
    assert summary["latency p50 / p99"] == "implausible: p50 2.0 years (clocks not comparable)"
    assert summary["clock skew"] == "not judged on trade, depth (implausible latencies)"
    assert [w.split(":")[0] for w in report.warnings] == ["trade", "depth"]
    assert "beyond an hour" in report.warnings[0] and "2.0 years" in report.warnings[0]

    earlier = [(t - 3 * YEAR_NS, text) for t, text in frames]  # 2021: after 2000, but wrong
    report = quality_report(
        Recording.from_frames(tmp_path / "earlier", earlier, spec=spot_spec()))
    assert not report.latency["plausible"].any()
    assert dict(report.summary().iter_rows())["latency p50 / p99"] == (
        "implausible: p50 -3.0 years (clocks not comparable)")


def test_negative_latencies_are_flagged_as_clock_skew(tmp_path: Path) -> None:
    # Receive times 50 ms before the exchange's own: a local clock running behind.
    behind = [(t - 50_000_000, text) for t, text in spot_frames()]
    report = quality_report(Recording.from_frames(tmp_path / "r", behind, spec=spot_spec()))
    assert report.latency["plausible"].all()
    shares = dict(report.latency.select("channel", "negative_share").iter_rows())
    assert list(shares) == ["trade", "depth"] and min(shares.values()) > 0.9
    summary = dict(report.summary().iter_rows())
    assert summary["latency p50 / p99"].endswith(" ms")
    assert summary["clock skew"] == (
        f"trade {shares['trade']:.1%} negative (down to -50.0 ms); "
        f"depth {shares['depth']:.1%} negative (down to -50.0 ms)")
    assert report.warnings[0] == (
        f"trade: {shares['trade']:.1%} of latencies are negative (down to -50.0 ms): the local "
        "clock is behind the exchange's (clock skew), so latencies read low.")
    assert summary["warnings"] == " ".join(report.warnings)


# -- 4. the HTML shows every row of every table ------------------------------------------------


class _Tables(HTMLParser):
    """The tables of a page: each a list of rows, each row a list of (tag, text) cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, str]]]] = []
        self.cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""
            self.tables[-1][-1].append((tag, ""))

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            tag, text = self.tables[-1][-1][-1]
            self.tables[-1][-1][-1] = (tag, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self.cell = None


def tables_of(page: str) -> list[list[list[tuple[str, str]]]]:
    parser = _Tables()
    parser.feed(page)
    return parser.tables


def assert_rendered_in_full(table: list[list[tuple[str, str]]], frame: pl.DataFrame) -> None:
    header, *rows = table
    assert header == [("th", name) for name in frame.columns]  # one header row, no dtypes
    assert len(rows) == frame.height
    frame = frame.with_columns(pl.col(pl.Datetime).cast(pl.String))  # to the ns
    for cells, values in zip(rows, frame.iter_rows(), strict=True):
        assert all(tag == "td" for tag, _ in cells)
        for (_, text), value in zip(cells, values, strict=True):
            if isinstance(value, str):
                assert text == value  # unquoted, unabridged
            elif isinstance(value, int) and not isinstance(value, bool):
                assert text == str(value)


async def test_the_html_page_and_notebook_view_show_every_row(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="plots need the report extra (matplotlib)")
    reason = "<img src=x onerror=alert(1)>"  # server text: must stay inert
    async with Simulator(rates=RATES, seed=11) as sim:
        # Twelve closes in a row: more than the default ten attempts allow.
        connection = ConnectionConfig(heartbeat=HeartbeatConfig(interval=0.1, timeout=0.5),
            reconnect=ReconnectConfig(backoff=FAST, rate_limit_backoff=FAST, max_attempts=None))
        async with Feed(sim.spec(connection=connection)) as feed:
            for generation in range(1, 13):
                await eventually(lambda g=generation: feed.generation == g,  # type: ignore[misc]
                                 what=f"connection {generation}")
                await sim.disconnect(1001, reason)
            await eventually(lambda: feed.generation == 13, what="the last reconnect")
            report = quality_report(feed)
        # Stopped: the session ended with the client's own close, then its stop; so
        # does the report.
        stopped = quality_report(feed)
    last_close = stopped.connections["closed_mono_ns"][-1]
    assert feed.connections["kind"][-1] == "stop"
    assert stopped.end_mono_ns == feed.connections["mono_ns"][-1] >= last_close
    assert stopped.connections["reason"][-1] == "client disconnect"
    assert stopped.connections["downtime_after_s"][-1] is None
    assert dict(stopped.summary().iter_rows())["disconnects"].count("(1001)") == 12
    assert report.connections.height == 13
    assert (report.connections["reason"] == reason).sum() == 12
    page = report.to_html(tmp_path / "report.html").read_text()
    assert "…" not in page and "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "overflow-x:auto" in page  # wide tables scroll inside their box
    sections = [report.summary(), report.connections, report.streams, report.silences,
                report.sequence, report.latency, report.outcomes, report.symbols,
                report.outages]
    assert report.symbols.height  # the simulator's spec names the symbols it subscribes
    assert report.outages.filter(reason="disconnected").height == 12
    tables = tables_of(page)
    assert len(tables) == len(sections)
    assert report.summary().height > 10 and report.outcomes.height > 10
    for table, frame in zip(tables, sections, strict=True):
        assert_rendered_in_full(table, frame)
    summary = dict(report.summary().iter_rows())
    assert summary["disconnects"].count(reason) == 12
    assert summary["disconnects"].startswith(f"going away (1001), NORMAL: {reason}; ")

    notebook = report._repr_html_()
    assert "…" not in notebook and "<img src=x" not in notebook
    [table] = tables_of(notebook)
    assert_rendered_in_full(table, report.summary())



async def test_time_a_feed_was_stopped_between_two_runs_is_no_downtime() -> None:
    async with Simulator(rates=RATES, seed=6) as sim:
        feed = Feed(sim.spec(connection=ConnectionConfig(heartbeat=HeartbeatConfig(
            interval=0.1, timeout=0.5), reconnect=ReconnectConfig(backoff=FAST))))
        for _ in range(2):  # run, stop, run again: a feed may be restarted
            async with feed:
                await eventually(lambda: feed.store.rows("trade") >= 20 * feed.generation,
                                 what="trades")
    report = quality_report(feed)
    assert report.connections["reason"].to_list() == ["client disconnect"] * 2
    assert report.connections["downtime_after_s"].to_list() == [None, None]
    assert dict(report.summary().iter_rows())["uptime"] == "100.0%"


# -- the past sent on subscribing is not a latency ------------------------------------------


def _generic_trade(seq: int, ts: int) -> str:
    return json.dumps({"type": "trade", "symbol": "BTC-USD", "seq": seq, "trade_id": seq,
                       "price": "100.5", "size": "1", "side": "buy", "ts": ts})


def test_rows_stamped_before_their_connection_opened_are_history_not_latency(
        tmp_path: Path) -> None:
    """Each connection opens, then its first trade tells of one made 30 s before it: an
    exchange's last trade on subscribing. It is counted as history, not as a 30 s latency;
    a row stamped within the second before its open (an imported recording's open is its
    first message) stays a latency."""
    t0 = 1_700_000_000 * NS
    events = []
    for k, opened in enumerate((t0, t0 + 60 * NS)):  # two connections
        seq = 10 * k
        events += [Captured("open", opened, "wss://example.test/ws"),
                   Captured("frame", opened + NS // 10, _generic_trade(seq + 1, opened - 30 * NS)),
                   Captured("frame", opened + NS // 5, _generic_trade(seq + 2, opened - NS // 2)),
                   *(Captured("frame", opened + j * NS,
                              _generic_trade(seq + 2 + j, opened + j * NS - 5_000_000))
                     for j in range(1, 6))]
    spec = generic.spec(["BTC-USD"], ["trade"], url="wss://example.test/ws")
    write_events(tmp_path / "rec", events, source_url=spec.url, origin=spec.origin)
    report = quality_report(tmp_path / "rec")
    row = report.latency.row(0, named=True)
    assert (row["channel"], row["messages"], row["history"]) == ("trade", 12, 2)
    assert row["max_ms"] == pytest.approx(700.0)  # the row stamped 0.5 s before its open
    assert row["p50_ms"] == pytest.approx(5.0)
    latency = dict(report.summary().iter_rows())["latency p50 / p99"]
    assert latency.endswith("; 2 row(s) stamped over 1 s before their connection opened "
                            "left out (the past, sent on subscribing)")


def test_a_steady_lag_over_a_second_is_latency_not_history(tmp_path: Path) -> None:
    """Every trade stamped 1.5 s before it arrives (a clock set off, or a slow route): the
    first ones are stamped before their connection opened, but no later than the rest."""
    t0 = 1_700_000_000 * NS
    events = [Captured("open", t0, "wss://example.test/ws"),
              *(Captured("frame", t0 + k * NS // 10,
                         _generic_trade(k + 1, t0 + k * NS // 10 - 3 * NS // 2))
                for k in range(50))]
    spec = generic.spec(["BTC-USD"], ["trade"], url="wss://example.test/ws")
    write_events(tmp_path / "rec", events, source_url=spec.url, origin=spec.origin)
    row = quality_report(tmp_path / "rec").latency.row(0, named=True)
    assert (row["messages"], row["history"]) == (50, 0)
    assert row["min_ms"] == row["max_ms"] == pytest.approx(1500.0)


def test_a_report_of_a_replay_given_judges_history_as_its_own_replay() -> None:
    path = DATA / "recordings" / "coinbase_cryptofeed_2021-04-17_exchange_level2_ticker_matches"
    alone = quality_report(path)
    assert alone.latency["history"].sum() > 0
    assert_frame_equal(quality_report(path, result=replay(path)).latency, alone.latency)


def test_coinbase_last_matches_are_history_in_the_report() -> None:
    """The Coinbase capture's last_match and first ticker tell of trades up to 107 s old."""
    report = quality_report(DATA / "recordings"
                            / "coinbase_cryptofeed_2021-04-17_exchange_level2_ticker_matches")
    figures = {row["channel"]: row for row in report.latency.iter_rows(named=True)}
    assert figures["match"]["history"] > 0 and figures["ticker"]["history"] > 0
    assert all(row["max_ms"] < 2_000 for row in figures.values())


async def test_a_live_feed_counts_the_past_sent_on_subscribing_as_history() -> None:
    """A server that sends, on connecting, a trade made a minute before, then live ones."""
    async def serve(websocket: ServerConnection) -> None:
        now = time.time_ns()
        await websocket.send(_generic_trade(1, now - 60 * NS))
        for seq in range(2, 6):
            await websocket.send(_generic_trade(seq, time.time_ns()))
        await websocket.wait_closed()

    async with serve_ws(serve, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        spec = generic.spec(["BTC-USD"], ["trade"], url=f"ws://127.0.0.1:{port}")
        async with Feed(spec) as feed:
            await eventually(lambda: feed.store.rows("trade") == 5, what="the trades")
            report = quality_report(feed)
    row = report.latency.row(0, named=True)
    assert (row["messages"], row["history"]) == (4, 1)
    assert row["max_ms"] < 10_000


def test_times_before_2000_in_an_older_manifest_are_taken_as_invented(tmp_path: Path) -> None:
    """A manifest from before ``receive_times`` existed reads as recorded: the report
    guesses from the times themselves, and says it guesses."""
    Recording.from_frames(tmp_path / "rec", SPOT.read_text().splitlines()[:50],
                          spec=spot_spec())
    manifest = json.loads((tmp_path / "rec/manifest.json").read_text())
    del manifest["receive_times"]
    (tmp_path / "rec/manifest.json").write_text(json.dumps(manifest))
    report = quality_report(tmp_path / "rec")
    assert report.receive_times == "recorded" and report.receive_times_invented
    summary = dict(report.summary().iter_rows())
    assert summary["latency p50 / p99"] == (
        "not measured: receive times are before 2000 (invented on import?)")
    assert summary["clock skew"] == "not measured: receive times are before 2000"
    assert report.warnings[0].startswith("Receive times start at 1970-01-01 00:00:00 UTC: "
                                         "they were invented on import (before 2000: "
                                         "Recording.from_frames without times?)")
