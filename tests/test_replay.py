import asyncio
import contextlib
import hashlib
import io
import json
import pickle
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from wsresearch import (
    DamagedSegmentWarning,
    Feed,
    HeartbeatConfig,
    NothingKeptWarning,
    QueueConfig,
    Recording,
    RecordingFormatError,
    ReplayServer,
    Simulator,
    UnknownChannelError,
    replay,
)
from wsresearch.exchanges import generic, raw
from wsresearch.recording.writer import Captured, write_events
from wsresearch.replay import replay_in_chunks

from .conftest import RATES, SESSION, eventually, loopback_server, quick


def parquet_digests(frames: dict[str, pl.DataFrame]) -> dict[str, str]:
    digests = {}
    for name, frame in sorted(frames.items()):
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        digests[name] = hashlib.sha256(buffer.getvalue()).hexdigest()
    return digests


async def record_session(path: Path, **spec_options: object) -> Feed:
    async with Simulator(rates=RATES, seed=4) as sim:
        spec = sim.spec(connection=quick(), **spec_options)  # type: ignore[arg-type]
        async with Feed(spec, record_to=path, flush_interval=0.05) as feed:
            await eventually(lambda: feed.store.rows("trade") >= 20, what="trades")
            sim.duplicate(4)
            await sim.malformed(6)
            await sim.disconnect()
            await eventually(lambda: feed.generation == 2, what="a reconnect")
            await sim.rate_limit(4429)
            await eventually(lambda: feed.generation == 3 and feed.store.rows("trade") >= 80,
                             what="more trades")
    return feed


async def test_complete_replay_gives_the_live_frames_and_counters(tmp_path: Path) -> None:
    live = await record_session(tmp_path / "rec")
    assert live.stats.dropped == live.stats.old_generation == 0
    result = replay(tmp_path / "rec", live.spec)
    for channel in live.spec.channel_names:
        assert_frame_equal(result.frames[channel], live.frame(channel))
    stats = live.stats
    assert result.stats["ok"] == stats.ok
    assert result.stats["duplicates"] == stats.duplicates
    assert result.stats["rejects"] == stats.rejects
    assert result.stats["generations"] == 3
    assert [r.raw for r in result.rejects] == [r.raw for r in live.rejects]


async def test_two_replays_are_byte_identical_also_in_a_fresh_process(tmp_path: Path) -> None:
    live = await record_session(tmp_path / "rec")
    first = replay(tmp_path / "rec", live.spec)
    second = replay(tmp_path / "rec", live.spec)
    assert parquet_digests(first.frames) == parquet_digests(second.frames)
    assert first.health_transitions == second.health_transitions
    assert first.stats == second.stats
    script = textwrap.dedent(f"""
        import hashlib, io, json
        from wsresearch import replay
        from wsresearch.exchanges import generic
        spec = generic.spec(url="ws://127.0.0.1:1")
        result = replay({str(tmp_path / "rec")!r}, spec)
        digests = {{}}
        for name, frame in sorted(result.frames.items()):
            buffer = io.BytesIO()
            frame.write_parquet(buffer)
            digests[name] = hashlib.sha256(buffer.getvalue()).hexdigest()
        print(json.dumps([digests, result.stats, [list(t) for t in result.health_transitions]]))
    """)
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script],
        capture_output=True, text=True, check=True, timeout=60,
    )
    out = done.stdout


    digests, stats, transitions = json.loads(out)
    assert digests == parquet_digests(first.frames)
    assert stats == first.stats
    assert transitions == [list(t) for t in first.health_transitions]


async def test_faithful_replay_reproduces_a_live_run_that_dropped(tmp_path: Path) -> None:
    async with Simulator(rates=RATES, seed=2) as sim:
        spec = sim.spec(connection=quick(), queue=QueueConfig(max_size=1))
        async with Feed(spec, record_to=tmp_path / "rec", flush_interval=0.05) as live:
            await eventually(lambda: live.store.rows("trade") >= 1, what="a trade")
            await sim.burst(2000)
            await eventually(lambda: live.stats.received >= 2000, what="the burst")
    assert live.stats.dropped > 0
    faithful = replay(tmp_path / "rec", spec, mode="faithful")
    complete = replay(tmp_path / "rec", spec, mode="complete")
    for channel in spec.channel_names:
        assert_frame_equal(faithful.frames[channel], live.frame(channel))
    assert faithful.stats["skipped"] == live.stats.dropped + live.stats.old_generation
    assert complete.frames["trade"].height > live.frame("trade").height


def test_bad_mode_is_refused(tmp_path: Path) -> None:
    from wsresearch.exchanges import generic

    with pytest.raises(ValueError, match="mode must be"):
        replay(tmp_path, generic.spec(url="ws://127.0.0.1:1"), mode="fast")  # type: ignore[arg-type]


async def test_a_feed_recording_from_a_replay_server_gets_the_same_frames(
    tmp_path: Path,
) -> None:
    async with Simulator(rates=RATES, seed=6) as sim:
        spec = sim.spec(connection=quick())
        async with Feed(spec, record_to=tmp_path / "original", flush_interval=0.05) as feed:
            await eventually(lambda: feed.store.rows("trade") >= 20, what="trades")
            await sim.malformed(6)
            await sim.disconnect(1001, "maintenance")
            await eventually(lambda: feed.generation == 2 and feed.store.rows("trade") >= 50,
                             what="the second connection")
            await sim.rate_limit(4429)
            await eventually(lambda: feed.generation == 3 and feed.store.rows("trade") >= 80,
                             what="the third connection")
    original = Recording.open(tmp_path / "original")
    async with ReplayServer(original, speed=None) as server:
        closes: list[tuple[int | None, str]] = []
        replayed = Feed(spec.with_url(server.url), record_to=tmp_path / "copy",
                        flush_interval=0.05)
        replayed.manager.on_disconnected(lambda code, reason, category: closes.append(
            (code, reason)))
        async with replayed:
            last = original.frames().filter(pl.col("generation") == 3).height
            await eventually(
                lambda: replayed.generation == 3 and replayed.stats.received
                == original.frames().height,
                what="every recorded frame, over three connections",
            )
            assert last > 0
    assert closes[:2] == [(1001, "maintenance"), (4429, "rate limited")]
    copy = Recording.open(tmp_path / "copy")
    def data(recording: Recording, generation: int) -> list[str]:
        return recording.frames().filter(pl.col("generation") == generation)["data"].to_list()

    for generation in (1, 2, 3):
        assert data(copy, generation) == data(original, generation)
    assert_frame_equal(
        replay(copy, spec).frames["trade"].drop("recv_wall_ns", "recv_mono_ns", "frame_seq"),
        replay(original, spec).frames["trade"].drop("recv_wall_ns", "recv_mono_ns",
                                                     "frame_seq"),
    )


def test_replay_server_refuses_a_bad_speed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="speed must be > 0"):
        ReplayServer(tmp_path, speed=0)


def test_a_recording_rebuilds_its_adapter_spec_and_replays_with_it() -> None:
    recording = Recording.open(SESSION)
    rebuilt = recording.spec
    assert rebuilt is not None
    assert rebuilt.channel_names == ["trade", "ticker", "order"]
    assert rebuilt.url == recording.manifest.source_url
    own = replay(recording)
    given = replay(recording, generic.spec(url="ws://127.0.0.1:1"))
    assert parquet_digests(own.frames) == parquet_digests(given.frames)
    assert own.stats == given.stats


async def test_recorded_origin_leaves_secrets_out_and_follows_the_spec(tmp_path: Path) -> None:
    await record_session(tmp_path / "rec", api_key="sekret", channels=["trade", "ticker"])
    recording = Recording.open(tmp_path / "rec")
    assert recording.manifest.spec_origin is not None
    assert "sekret" not in recording.manifest.model_dump_json()
    rebuilt = recording.spec
    assert rebuilt is not None and rebuilt.channel_names == ["trade", "ticker"]


async def test_a_hand_built_or_changed_spec_leaves_no_origin(tmp_path: Path) -> None:
    base = generic.spec(url="ws://127.0.0.1:1")
    assert base.replace(queue=QueueConfig(max_size=10)).origin == base.origin
    changed = base.replace(check_interval=0.5)
    assert changed.origin is None
    await record_session(tmp_path / "rec", check_interval=0.5)
    recording = Recording.open(tmp_path / "rec")
    assert recording.spec is None
    with pytest.raises(ValueError, match="pass it as spec="):
        replay(recording)


def test_an_unknown_adapter_in_a_manifest_is_a_clear_error(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(SESSION, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["spec_origin"] = {"adapter": "nowhere", "arguments": {}}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RecordingFormatError, match="adapter 'nowhere'"):
        _ = Recording.open(copy).spec
    manifest["spec_origin"] = {"adapter": "generic", "arguments": {"channels": ["nope"]}}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RecordingFormatError, match="cannot rebuild"):
        _ = Recording.open(copy).spec


def test_replayed_rows_name_the_frame_they_came_from_and_its_exchange_time() -> None:
    recording = Recording.open(SESSION)
    trades = replay(recording).frames["trade"]
    assert trades["frame_seq"].null_count() == 0
    texts = dict(zip(*recording.frames().select("seq", "data").to_dict(as_series=False).values(),
                     strict=True))
    for row in trades.head(50).iter_rows(named=True):
        frame = json.loads(texts[row["frame_seq"]])
        assert (frame["trade_id"], frame["ts"]) == (row["trade_id"], row["exchange_ns"])


TRADE = ('{"type":"trade","symbol":"BTC-USD","seq":1,"trade_id":1,"price":1.0,'
         '"size":1.0,"side":"buy","ts":1}')
"""A generic trade, for a recording of a few frames."""


def one_segment(path: Path, frames: list[str | bytes]) -> tuple[Path, pl.DataFrame]:
    """A recording of ``frames`` (the generic adapter's) in one segment: its file, its events."""
    Recording.from_frames(path, frames, spec=generic.spec(url="ws://127.0.0.1:1"))
    (segment,) = path.rglob("*.parquet")
    return segment, pl.read_parquet(segment)


def test_a_frame_whose_recorded_data_was_garbled_is_replayed_and_warned_about(
    tmp_path: Path,
) -> None:
    trade, spec = TRADE, generic.spec(url="ws://127.0.0.1:1")
    segment, events = one_segment(tmp_path / "rec", [trade, trade.encode(), trade.encode()])
    # What a damaged segment can leave: base64 that no longer decodes, and a lost value.
    first, second = events.filter(pl.col("binary"))["seq"].to_list()
    events = events.with_columns(data=pl.when(pl.col("seq") == first).then(pl.lit("eyJ0eX#"))
                                 .when(pl.col("seq") == second).then(None)
                                 .otherwise(pl.col("data")))
    events.write_parquet(segment)
    recording = Recording.open(tmp_path / "rec")
    with pytest.warns(UserWarning, match="2 message.s. whose recorded data a damaged segment"):
        result = replay(recording, spec)
    assert result.stats["frames"] == result.stats["replayed"] == 3
    assert result.stats["ok"] == 1 and result.stats["invalid"] == 2  # one outcome each
    server = ReplayServer(recording, speed=None)  # the messages are read when served

    async def receive() -> list[str | bytes]:
        async with server, connect(server.url) as ws:
            return [await ws.recv() for _ in range(3)]

    with pytest.warns(UserWarning, match="garbled"):
        served = asyncio.run(receive())
    assert served == [trade, b"eyJ0eX#", b""]  # served as they are


def test_a_frame_whose_binary_flag_was_lost_is_replayed_as_text_and_warned_about_once(
    tmp_path: Path,
) -> None:
    segment, events = one_segment(tmp_path / "rec", [TRADE] * 5)
    events.with_columns(binary=pl.when(pl.col("kind") == "frame").then(None)
                        .otherwise(pl.col("binary"))).write_parquet(segment)
    # Read in chunks of 2 events: one warning for the replay, not one a chunk, and the
    # line it names is the caller's.
    with pytest.warns(UserWarning, match="binary flag") as caught:
        result = replay(Recording.open(tmp_path / "rec"), generic.spec(url="ws://127.0.0.1:1"),
                        chunk_events=2)
    assert [str(w.message).split(": ", 1)[1] for w in caught] == [
        "5 message(s) whose binary flag a damaged segment lost; replayed as text"]
    assert caught[0].filename == __file__
    assert result.stats["replayed"] == result.stats["ok"] + result.stats["duplicates"] == 5


def test_a_damaged_segment_read_ahead_is_warned_of_at_the_callers_line(tmp_path: Path) -> None:
    # The replay reads its chunks in threads of its own: the warning still names this line.
    segment, events = one_segment(tmp_path / "rec", [TRADE] * 3)
    events.with_columns(mono_ns=pl.when(pl.col("seq") == 2).then(None)
                        .otherwise(pl.col("mono_ns"))).write_parquet(segment)
    with pytest.warns(DamagedSegmentWarning) as caught:
        replay(Recording.open(tmp_path / "rec"), generic.spec(url="ws://127.0.0.1:1"))
    assert [(w.category, w.filename) for w in caught] == [(DamagedSegmentWarning, __file__)]


def test_a_replay_stopped_early_still_tells_of_the_damage_in_what_it_took(
        tmp_path: Path) -> None:
    # Segments of 30 events, the first with one event damaged: its warning comes once the
    # reader reads past it, in a chunk read ahead that the replay, stopped after its first
    # chunk (29 events, the segment's others), never takes.
    spec = generic.spec(url="ws://127.0.0.1:1")
    write_events(tmp_path / "rec", [Captured("open", 1, spec.url)] + [
        Captured("frame", 1 + n, TRADE) for n in range(89)], source_url=spec.url,
        origin=spec.origin, segment_events=30)
    first = min((tmp_path / "rec" / "segments").rglob("*.parquet"))
    pl.read_parquet(first).with_columns(mono_ns=pl.when(pl.col("seq") == 5).then(None)
                                        .otherwise(pl.col("mono_ns"))).write_parquet(first)
    taken: list[int] = []

    def stop(pipeline: object, events: pl.DataFrame) -> None:
        taken.append(events.height)
        raise KeyboardInterrupt

    with pytest.warns(DamagedSegmentWarning) as caught, pytest.raises(KeyboardInterrupt):
        replay_in_chunks(Recording.open(tmp_path / "rec"), spec, "complete", None, 29, stop)
    assert taken == [29]
    assert [(w.category, w.filename) for w in caught] == [(DamagedSegmentWarning, __file__)]


def test_a_spec_that_is_not_a_feedspec_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"spec must be a FeedSpec \(or None: the recording's "
                                        r"own\), got str"):
        replay(SESSION, "generic")  # type: ignore[arg-type]


def test_a_replays_log_says_which_recording_and_when_in_it(
        caplog: pytest.LogCaptureFixture) -> None:
    # -v output of a replay: without this, a stream gone stale in a recording of 2026-11-27
    # read as if it went stale today, in a session no line named.
    import datetime as dt
    import logging

    spec = generic.spec(url="ws://127.0.0.1:1")
    with caplog.at_level(logging.INFO, logger="wsresearch"):
        result = replay(SESSION, spec)
    stale = [r for r in caplog.records if r.name == "wsresearch.health"]
    assert stale and len(stale) == sum(not t.healthy for t in result.health_transitions)
    assert any(r.name == "wsresearch.pipeline" for r in caplog.records)
    for record in caplog.records:
        if record.name in ("wsresearch.health", "wsresearch.pipeline"):
            assert record.getMessage().startswith(f"replay of {SESSION}, at "), record
    # The time is the replayed one: that of the health check that found the stream stale.
    started = dt.datetime.fromtimestamp(Recording.open(SESSION).manifest.started_wall_ns / 1e9,
                                        dt.UTC)
    said = stale[0].getMessage().split(", at ")[1].split(" UTC:")[0]
    when = dt.datetime.strptime(said, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.UTC)
    assert started < when < started + dt.timedelta(hours=1)


def test_a_replay_with_another_exchanges_spec_warns_that_it_kept_nothing() -> None:
    from wsresearch.exchanges import kraken

    recording = (Path(__file__).resolve().parent.parent
                 / "data/recordings/binance_hftbacktest_2024-08-08_spot_btcusdt")
    with pytest.warns(NothingKeptWarning, match=r"binance_hftbacktest_2024-08-08_spot_btcusdt: all "
                                         r"5,999 messages were rejected \(unknown_type "
                                         r"5,999\) and no row was kept: is the kraken spec the "
                                         r"recording's \(it was recorded with the binance "
                                         r"adapter's\)\?$") as caught:
        result = replay(recording, kraken.spec(["XBT/USD"], ["trade"]))
    assert result.stats["ok"] == 0
    told = caught[0].message
    assert isinstance(told, NothingKeptWarning)
    assert (told.recording, told.rejected) == (recording, 5_999)
    again = pickle.loads(pickle.dumps(told))  # as a worker process hands it over
    assert (type(again), str(again), again.recording, again.rejected) == (
        NothingKeptWarning, str(told), recording, 5_999)


def test_a_replay_that_keeps_some_rows_does_not_warn() -> None:
    # The shipped session rejects a few messages on purpose and keeps the rest.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = replay(SESSION).stats
    assert stats["invalid"] > 0 and stats["ok"] > 0


async def test_a_replay_server_plays_every_connection_of_a_session_with_a_dropped_peer() -> None:
    # The shipped session's third connection ended with the client's "no pong" close: this
    # server answers pings, so it drops that connection after its messages itself, and the
    # feed goes on to the next; before, the feed waited there for ever.
    recording = Recording.open(SESSION)
    closes = recording.events().filter(kind="close")
    assert closes.filter(pl.col("reason").str.starts_with("no pong")).height == 1
    assert recording.spec is not None
    spec = recording.spec.replace(connection=quick())
    async with ReplayServer(recording, speed=None) as server, Feed(server.spec(spec)) as feed:
        await eventually(lambda: feed.generation == server.generations == 6
                         and feed.stats.received == recording.frames().height,
                         what="every recorded frame, over six connections")


async def test_a_replay_server_answers_a_books_rest_request_with_the_recorded_snapshot(
) -> None:
    # The real Binance capture: its depth diffs join the REST snapshot recorded with them,
    # served by the replay server, so the live book is the replay's, and nothing is asked
    # of the exchange.
    path = SESSION.parent.parent / "recordings" / "binance_hftbacktest_2024-08-08_spot_btcusdt"
    recording = Recording.open(path)
    offline = replay(recording).book("BTCUSDT")
    assert offline.valid
    async with ReplayServer(recording, speed=None) as server:
        spec = server.spec()
        assert spec.rest_url == server.rest_url and spec.origin == recording.spec.origin
        async with Feed(spec) as feed:
            await eventually(lambda: feed.stats.received == recording.frames().height
                             and feed.stats.processed == feed.stats.received,
                             what="every recorded frame")
            book = feed.book("BTCUSDT")
            assert book.valid and book.stats.snapshots == 1
            assert (book.bids.items(), book.asks.items(), book.last_id) == (
                offline.bids.items(), offline.asks.items(), offline.last_id)
        assert server.rest_requests == ["/api/v3/depth?symbol=BTCUSDT&limit=1000"]
        assert server.rest_responses == 0  # the one recorded, served


async def test_a_replay_servers_rest_answers_each_request_with_the_next_recorded_response(
        tmp_path: Path) -> None:
    base = "https://api.example.com/api/v3/depth"
    write_events(tmp_path / "r", [
        Captured("open", 1, "wss://example.com/ws"),
        Captured("rest", 2, '"x1"', f"{base}?symbol=X"),
        Captured("rest", 3, '"y1"', f"{base}?symbol=Y"),
        Captured("rest", 4, '"x2"', f"{base}?symbol=X"),
        Captured("rest", 5, '"unasked"'),  # a capture that did not say what was asked
        Captured("frame", 6, '{"type":"x"}'),
    ], source_url="wss://example.com/ws")
    async with ReplayServer(tmp_path / "r", speed=None) as server, httpx.AsyncClient(
            base_url=server.rest_url) as client:
        answers = []
        for target in ("/api/v3/depth?symbol=Y", "/api/v3/depth?symbol=Z",
                       "/api/v3/depth?symbol=X", "/api/v3/depth?symbol=X", "/other",
                       "/other"):
            response = await client.get(target)
            answers.append((response.status_code, response.text))
        assert server.rest_requests[0] == "/api/v3/depth?symbol=Y"
    assert answers == [
        (200, '"y1"'),  # the same request's
        (200, '"x1"'),  # none for Z: the next of the same path
        (200, '"x2"'),  # X's first went to Z
        (200, '"unasked"'),  # X's used up: the one recorded without its request
        (404, '{"msg":"the recording holds no more responses to this request"}'),
        (404, '{"msg":"the recording holds no more responses to this request"}')]


async def test_a_paced_replay_keeps_the_silence_before_a_peer_was_dropped(tmp_path: Path) -> None:
    # A peer that went silent and was dropped for it ("no pong"): the replay server drops
    # the connection itself, at the close's recorded time, not at once after the last
    # message, so a paced replay keeps the silence a health monitor would see.
    path = tmp_path / "silent"
    async with Simulator(rates=RATES, seed=4) as sim:
        spec = sim.spec(connection=quick(HeartbeatConfig(interval=0.1, timeout=0.5)))
        async with Feed(spec, record_to=path, flush_interval=0.05) as feed:
            await eventually(lambda: feed.stats.received >= 5, what="a few frames")
            sim.stop_pongs(30)
            await eventually(lambda: feed.generation == 2, what="the silent peer dropped")
    events = Recording.open(path).events().filter(generation=1)
    close = events.filter(kind="close").row(0, named=True)
    assert close["reason"].startswith("no pong") and close["closed_by"] == "client"
    frames = events.filter(kind="frame")["mono_ns"]
    silence = (close["mono_ns"] - frames.max()) / 1e9
    played = (close["mono_ns"] - frames.min()) / 1e9
    assert silence >= 0.5  # the heartbeat's timeout at least
    speed = 1.0
    async with ReplayServer(path, speed=speed) as server:
        loop = asyncio.get_running_loop()
        began = loop.time()  # before the server's first message: its times count from later
        got = 0
        async with connect(server.url) as ws:
            await ws.send("{}")  # the recorded client spoke first: the server waits for it
            with contextlib.suppress(ConnectionClosed):
                async for _ in ws:
                    got += 1
            ended = loop.time()
    assert got == frames.len()
    # The close came no sooner than recorded (paced), which is after the silence.
    assert ended - began >= played / speed


def test_a_replays_repr_is_a_few_lines_and_its_frames_are_read_by_channel() -> None:
    # A notebook cell ending with the result showed every frame and the whole spec.
    result = replay(SESSION)
    assert repr(result) == (
        "ReplayResult(2,220 messages replayed over 6 connection(s)\n"
        "  rows: trade 2,150, ticker 49, order 0\n"
        "  duplicates 5, rejected 6, sequence gaps 1, exchange errors 0)")
    assert result.frame("trade") is result.frames["trade"]
    with pytest.raises(UnknownChannelError, match=r"^unknown channel 'trades'; this replay has "
                                                  r"\['trade', 'ticker', 'order'\]$"):
        result.frame("trades")
    books = replay(SESSION.parent.parent / "recordings"
                   / "binance_hftbacktest_2024-08-08_spot_btcusdt")
    assert repr(books).endswith("\n  books: 1 (1 valid at the end))")


async def test_a_paced_replay_keeps_the_silence_of_a_peer_dropped_before_any_message(
        tmp_path: Path) -> None:
    # A peer silent from its opening: nothing to pace from but the opening itself.
    opened = 0

    async def deaf(conn: ServerConnection) -> None:
        nonlocal opened
        opened += 1
        if opened == 1:
            conn.transport.pause_reading()  # pings never read, never answered
        await conn.wait_closed()

    path = tmp_path / "deaf"
    async with loopback_server(deaf) as (_, url):
        spec = raw.spec(url).replace(connection=quick(HeartbeatConfig(interval=0.1, timeout=0.4)))
        async with Feed(spec, record_to=path, flush_interval=0.05) as feed:
            await eventually(lambda: feed.generation == 2, what="the deaf peer dropped")
    events = Recording.open(path).events().filter(generation=1)
    assert events.filter(kind="frame").is_empty()
    close = events.filter(kind="close").row(0, named=True)
    assert close["reason"].startswith("no pong")
    silence = (close["mono_ns"] - events["mono_ns"].min()) / 1e9
    assert silence >= 0.4
    async with ReplayServer(path, speed=1.0) as server:
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with connect(server.url) as ws:
            with contextlib.suppress(ConnectionClosed):
                async for _ in ws:
                    pass
            ended = loop.time()
    assert ended - began >= silence
