"""A feed's memory is bounded when asked, and its lifecycle calls say what they do.

F6: a Feed kept every row in memory, with no bound and no opt-out, so a days-long
``wsresearch record`` grew until it was killed. F28: a second concurrent ``start()``
returned before the connection opened, and ``stop()`` from another event loop failed
with asyncio's own error. Architecture review §4.1 and §4.3: the replay server closed
resync connections itself, and an offline replay warned about TLS.
"""

from __future__ import annotations

import asyncio
import json
import threading
import warnings
from pathlib import Path

import polars as pl
import pytest
from pydantic import BaseModel

from wsresearch import (
    ConnectionConfig,
    Feed,
    HeartbeatConfig,
    ReconnectConfig,
    Recording,
    Simulator,
    quality_report,
    replay,
)
from wsresearch.exchanges import generic
from wsresearch.lowlevel import ConnectionState, FrameStore
from wsresearch.recording import Recorder
from wsresearch.replay import _sessions

from .conftest import FAST, RATES, eventually, loopback_server, quick
from .test_reconnect_policy import GapServer


class Tick(BaseModel):
    n: int


class Batch(BaseModel):
    items: list[Tick]


def rows(first: int, count: int) -> list[tuple[dict[str, object], int, int, int, None, int]]:
    return [({"n": n}, 1, n, n, None, n) for n in range(first, first + count)]


@pytest.mark.parametrize("batch", [7, 100, 5000])
def test_a_ring_keeps_the_newest_rows_and_counts_every_row(batch: int) -> None:
    store = FrameStore({"tick": Tick}, batch_rows=64, max_rows=100)
    for first in range(0, 1000, batch):
        store.extend("tick", rows(first, min(batch, 1000 - first)))
        assert store.rows("tick") <= 100 + 64  # never much more than the ring
    frame = store.frame("tick")
    assert frame["n"].to_list() == list(range(900, 1000))
    assert (store.added("tick"), store.evicted("tick"), store.rows("tick")) == (1000, 900, 100)


def test_an_exploded_channel_keeps_the_newest_items() -> None:
    store = FrameStore({"batch": Batch}, batch_rows=8, explode={"batch": "items"}, max_rows=10)
    for first in range(0, 60, 3):  # three items a message
        store.extend("batch", [({"items": [Tick(n=first + k) for k in range(3)]}, 1, first,
                                first, None, first)])
    assert store.frame("batch")["n"].to_list() == list(range(50, 60))
    assert (store.added("batch"), store.evicted("batch")) == (60, 50)


def test_max_rows_0_keeps_no_row_but_counts_them_all() -> None:
    store = FrameStore({"tick": Tick}, max_rows=0)
    store.extend("tick", rows(0, 5000))
    assert store.frame("tick").height == 0
    assert store.frame("tick").columns[0] == "n"  # the schema is still there
    assert (store.added("tick"), store.evicted("tick")) == (5000, 5000)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_max_rows_must_be_none_or_a_count(bad: object) -> None:
    with pytest.raises(ValueError, match="max_rows must be None or an int >= 0"):
        FrameStore({"tick": Tick}, max_rows=bad)  # type: ignore[arg-type]


async def test_a_recorder_that_keeps_rows_on_disk_only_loses_nothing(tmp_path: Path) -> None:
    async with Simulator(rates=RATES) as sim:
        feed = Feed(sim.spec(connection=quick()), record_to=tmp_path / "rec",
                    max_rows=0)
        async with feed:
            await eventually(lambda: feed.store.added("trade") >= 200, what="200 trades")
            assert feed.store.rows("trade") == 0 and feed.frame("trade").height == 0
    recorded = replay(tmp_path / "rec").frames["trade"]
    assert recorded.height == feed.store.added("trade") == feed.store.evicted("trade")
    assert feed.stats.ok == sum(feed.store.added(c) for c in feed.spec.channel_names)


async def test_a_ring_feed_keeps_the_newest_rows(tmp_path: Path) -> None:
    async with Simulator(rates=RATES) as sim:
        feed = Feed(sim.spec(connection=quick()), record_to=tmp_path / "rec",
                    max_rows=50)
        async with feed:
            await eventually(lambda: feed.store.added("trade") >= 300, what="300 trades")
    kept = feed.frame("trade")
    every = replay(tmp_path / "rec").frames["trade"]
    assert kept.height == 50
    assert kept.equals(every.tail(50))  # the newest, exactly as a replay gives them
    # A live report of such a feed says its rows are not all there.
    assert any("keeps only the newest 50 rows per channel" in warning
               for warning in quality_report(feed).warnings)


async def test_concurrent_starts_all_return_connected() -> None:
    async with Simulator(rates=RATES) as sim:
        feed = Feed(sim.spec(connection=quick()))
        seen: list[ConnectionState] = []

        async def start() -> None:
            await feed.start()
            seen.append(feed.state)  # the state each caller sees when start() returns

        await asyncio.gather(start(), start(), start())
        await feed.stop()
    assert seen == [ConnectionState.CONNECTED] * 3


async def test_concurrent_starts_share_the_failure() -> None:
    connection = ConnectionConfig(heartbeat=HeartbeatConfig(enabled=False),
                                  reconnect=ReconnectConfig(max_attempts=1, backoff=FAST))
    feed = Feed(generic.spec(url="ws://127.0.0.1:1", connection=connection))
    outcomes = await asyncio.gather(feed.start(), feed.start(), return_exceptions=True)
    assert [type(o).__name__ for o in outcomes] == ["MaxReconnectsExceededError"] * 2


async def test_stop_from_another_event_loop_is_a_clear_error() -> None:
    async with Simulator(rates=RATES) as sim:
        feed = Feed(sim.spec(connection=quick()))
        await feed.start()
        errors: list[BaseException] = []

        def elsewhere() -> None:
            try:
                asyncio.run(feed.stop())
            except RuntimeError as exc:
                errors.append(exc)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        await asyncio.to_thread(thread.join, 10)
        assert feed.running and feed.state is ConnectionState.CONNECTED  # untouched
        await feed.stop()  # on its own loop: fine
    (error,) = errors
    assert "Feed.stop() was called from another event loop than the one this feed runs on" in (
        str(error))
    assert "asyncio.run_coroutine_threadsafe(feed.stop(), loop)" in str(error)


async def test_the_replay_server_leaves_a_resync_close_to_its_client(tmp_path: Path) -> None:
    server = GapServer()
    async with loopback_server(server.handler) as (_, url):
        connection = ConnectionConfig(heartbeat=HeartbeatConfig(enabled=False),
                                      reconnect=ReconnectConfig(backoff=FAST, stable_after=0))
        feed = Feed(generic.spec(url=url, connection=connection).with_resync("trade"),
                    record_to=tmp_path / "rec")
        async with feed:
            await eventually(lambda: feed.generation >= 3, what="two resyncs")
    recording = Recording.open(tmp_path / "rec")
    closes = recording.events().filter(kind="close")["reason"].to_list()
    assert closes[0].startswith("resync: sequence gap")
    sessions = _sessions(recording)
    assert [s.server_closed for s in sessions] == [False] * len(sessions)


async def test_the_replay_server_follows_who_closed_not_the_close_reason(
    tmp_path: Path,
) -> None:
    # Format 2 stores who closed each connection: the replay server leaves this
    # side's closes to its client whatever their reason says, and makes the others.
    recorder = Recorder(tmp_path / "rec", source_url="ws://127.0.0.1:1")
    await recorder.start()
    for generation, code, closed_by in ((1, 1000, "client"), (2, 1000, "server"),
                                        (3, 1006, "network")):
        recorder.record("open", generation, data="ws://127.0.0.1:1")
        recorder.record_message('{"type": "ticker"}', generation, generation, generation)
        recorder.record("close", generation, code=code, reason="goodbye", category="NORMAL",
                        closed_by=closed_by)
    await recorder.stop()
    sessions = _sessions(Recording.open(tmp_path / "rec"))
    assert [(s.server_closed, s.close_code) for s in sessions] == [
        (False, 1000), (True, 1000), (True, 1006)]


def test_an_offline_replay_never_warns_about_tls(tmp_path: Path) -> None:
    spec = generic.spec(url="wss://127.0.0.1:1", connection={"verify_tls": False})
    frames = [json.dumps({"type": "trade", "symbol": "BTC-USD", "seq": 1, "trade_id": 1,
                          "price": "1", "size": "1", "side": "buy", "ts": 1})]
    recording = Recording.from_frames(tmp_path / "rec", frames)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = replay(recording, spec)
    assert result.stats["ok"] == 1
    assert not [w for w in caught if "verification" in str(w.message)]
    assert isinstance(result.frames["trade"], pl.DataFrame)


async def test_a_start_during_a_stop_waits_for_it_and_starts_again() -> None:
    async with Simulator(rates=RATES) as sim:
        feed = Feed(sim.spec(connection=quick()))
        await feed.start()
        seen: list[ConnectionState] = []

        async def start() -> None:
            await feed.start()
            seen.append(feed.state)

        await asyncio.gather(feed.stop(), start())
        assert seen == [ConnectionState.CONNECTED] and feed.running
        await feed.stop()
    assert not feed.running


def test_rows_and_evicted_are_exact_before_a_frame_is_built() -> None:
    store = FrameStore({"tick": Tick}, batch_rows=10, max_rows=15)
    store.extend("tick", rows(0, 10))  # built: 10
    store.extend("tick", rows(10, 9))  # pending: 9, so 19 held before the ring cuts
    assert (store.rows("tick"), store.evicted("tick"), store.added("tick")) == (15, 4, 19)
    assert store.frame("tick")["n"].to_list() == list(range(4, 19))
    assert (store.rows("tick"), store.evicted("tick")) == (15, 4)
