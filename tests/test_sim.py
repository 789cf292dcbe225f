import asyncio
import inspect
import itertools
import json
from collections.abc import Callable

import pytest
from pydantic import ValidationError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from wsresearch import Fault, Simulator
from wsresearch.testing import generic_frames

from .conftest import RATES, eventually, other_tasks


async def subscribe(ws: object, channels: list[str]) -> None:
    await ws.send(json.dumps({"op": "subscribe", "channels": channels}))  # type: ignore[attr-defined]
    ack = json.loads(await ws.recv())  # type: ignore[attr-defined]
    assert ack == {"type": "subscribed", "channels": channels}


async def test_streams_what_was_subscribed_with_consistent_sequences() -> None:
    async with Simulator(rates=RATES, seed=5) as sim, connect(sim.url) as ws:
        await subscribe(ws, ["trade"])
        frames = [json.loads(await ws.recv()) for _ in range(60)]
    assert {f["type"] for f in frames} == {"trade"}
    per_symbol: dict[str, list[int]] = {}
    for f in frames:
        per_symbol.setdefault(f["symbol"], []).append(f["seq"])
    for seqs in per_symbol.values():
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    ids = [f["trade_id"] for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_the_same_seed_gives_the_same_market() -> None:
    assert list(generic_frames(50, seed=1)) == list(generic_frames(50, seed=1))
    assert list(generic_frames(50, seed=1)) != list(generic_frames(50, seed=2))


async def test_sequence_gap_and_duplicate_faults() -> None:
    async with Simulator(rates={"trade": 500.0, "ticker": 0.1, "order": 0.1},
                         symbols=["BTC-USD"]) as sim, connect(sim.url) as ws:
        await subscribe(ws, ["trade"])
        first = json.loads(await ws.recv())
        sim.sequence_gap(3)
        sim.duplicate(1)
        frames = [json.loads(await ws.recv()) for _ in range(50)]
    seqs = [first["seq"]] + [f["seq"] for f in frames]
    gaps = [b - a for a, b in itertools.pairwise(seqs)]
    # Frames already on their way keep their order; then exactly one jump of
    # four (three numbers skipped) and one repeat (the same frame twice).
    assert sorted(gaps) == [0] + [1] * 48 + [4]
    assert gaps.index(4) + 1 == gaps.index(0)


async def test_auth_rejection_and_app_ping() -> None:
    async with Simulator(rates=RATES) as sim:
        sim.reject_auth(1)
        async with connect(sim.url) as ws:
            await ws.send('{"op":"auth","key":"k"}')
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 4401
        async with connect(sim.url) as ws:
            await ws.send('{"op":"auth","key":"k"}')
            assert json.loads(await ws.recv()) == {"type": "authenticated"}
            await ws.send('{"op":"ping"}')
            assert json.loads(await ws.recv()) == {"type": "pong"}
            await ws.send("gibberish")
            assert json.loads(await ws.recv())["type"] == "error"
        assert sim.received[0] == '{"op":"auth","key":"k"}'


async def test_scripted_faults_fire_after_the_first_connection() -> None:
    faults = [Fault(kind="rate_limit", at=0.05, code=1013)]
    async with Simulator(faults=faults, rates=RATES) as sim, connect(sim.url) as ws:
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await ws.recv()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (1013, "rate limited")


async def test_malformed_frames_cycle_through_every_kind() -> None:
    async with Simulator(rates={"trade": 0.1, "ticker": 0.1, "order": 0.1}) as sim, \
            connect(sim.url) as ws:
        await eventually(lambda: sim.open_connections == 1, what="the connection")
        await sim.malformed(6)
        got = [await ws.recv() for _ in range(6)]
    assert isinstance(got[1], bytes)
    assert got[0] == "{not json"


async def test_stop_closes_everything_even_half_open_connections() -> None:
    before = other_tasks()
    sim = Simulator(rates=RATES)
    await sim.start()
    ws = await connect(sim.url)
    await eventually(lambda: sim.open_connections == 1, what="the connection")
    sim.stop_pongs(60)
    await sim.stop()
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert other_tasks() == before
    with pytest.raises(RuntimeError, match="not running"):
        sim.url  # noqa: B018


def test_bad_simulator_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown simulator profile 'nasdaq'"):
        Simulator(profile="nasdaq")
    with pytest.raises(ValueError, match="rates must be positive"):
        Simulator(rates={"trade": 0})
    with pytest.raises(ValueError, match="compression is 'deflate' or None, got 'gzip'"):
        Simulator(compression="gzip")
    with pytest.raises(ValidationError, match="stream="):
        Fault(kind="silence", duration=1)
    with pytest.raises(ValidationError, match="cannot be sent"):
        Fault(kind="disconnect", code=1006)
    with pytest.raises(ValidationError, match="kind"):
        Fault(kind="meteor")  # type: ignore[arg-type]


@pytest.mark.parametrize(("call", "message"), [
    (lambda sim: sim.malformed(0), "malformed: count: Input should be greater than or equal to 1"),
    (lambda sim: sim.burst(-3), "burst: count"),
    (lambda sim: sim.duplicate(0), "duplicate: count"),
    (lambda sim: sim.reject_auth(0), "reject_auth: count"),
    (lambda sim: sim.disconnect(99999), "disconnect: code"),
    (lambda sim: sim.disconnect(1006), "close code 1006 cannot be sent"),
    (lambda sim: sim.silence("nope", 1), "silence: no stream 'nope' in the generic profile"),
    (lambda sim: sim.silence("ticker", float("nan")), "silence: duration"),
    (lambda sim: sim.stop_pongs(-1), "no_pong: duration"),
    (lambda sim: sim.sequence_gap(1, "nope"), "sequence_gap: no stream 'nope'"),
])
async def test_faults_on_demand_are_checked_as_scripted_ones(
    call: Callable[[Simulator], object], message: str
) -> None:
    async with Simulator() as sim:
        with pytest.raises(ValueError, match=message):
            result = call(sim)
            if inspect.isawaitable(result):
                await result


def test_a_scripted_fault_on_a_stream_the_profile_lacks_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="no stream 'depth' in the okx profile"):
        Simulator("okx", faults=[Fault(kind="silence", stream="depth", duration=1)])
