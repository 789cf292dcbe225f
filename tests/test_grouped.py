"""The pipeline's batch path, a channel at a time, against the same batch message by message.

``Pipeline.process`` takes a batch a channel at a time (one ``map`` per extractor, rows in
one ``zip``, numbers judged as runs) when nothing in it needs the message order, and
message by message otherwise. Both must leave everything alike: rows, counts, gaps,
rejects, events in order, health, de-dup and sequence state.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from wsresearch import VirtualClock
from wsresearch.events import Event
from wsresearch.health import StreamConfig
from wsresearch.parser import by_field
from wsresearch.pipeline import Pipeline, Received
from wsresearch.spec import Channel, FeedSpec

from .conftest import sized

URL = "ws://127.0.0.1:1"
SECOND = 1_000_000_000


class A(BaseModel):
    type: str
    k: str
    n: int
    id: int
    t: int | None = None


class B(BaseModel):
    type: str
    k: str
    n: int
    t: int


def a_key(message: A) -> Any:
    if message.id == 13 or (message.id % 11 == 0 and message.id < 1000):
        raise RuntimeError(f"no key for {message.id}")
    return [message.id] if message.id == 14 else (message.k, message.id)  # 14: unhashable


def b_key(message: B) -> Any:
    if message.n % 7 == 0:
        raise RuntimeError(f"no key for {message.n}")
    return (message.k, message.n)


def a_sequence(message: A) -> int | bool | None:
    if message.n == 99:
        raise ValueError("no number for 99")
    if message.n == 98:
        return True  # not an int: refused, as a number given as a bool
    return None if message.n == 97 else message.n


def a_time(message: A) -> int | None:
    if message.t == -1:
        raise ValueError("no time for -1")
    if message.t == -3:
        return float("nan")  # type: ignore[return-value]  # a float, and not a number
    return 2**70 if message.t == -2 else message.t


def spec(shared_group: bool, control_sequence: bool) -> FeedSpec:
    group = "g" if shared_group else None
    return FeedSpec(
        url=URL,
        type_of=by_field("type"),
        channels=(
            Channel(name="a", model=A, dedupe_key=a_key, sequence=a_sequence,
                    sequence_key="k", exchange_time=a_time, stream="s", sequence_group=group),
            Channel(name="b", model=B, dedupe_key=b_key, sequence="n", sequence_key="k",
                    exchange_time="t", stream="s", sequence_group=group),
        ),
        health={"s": StreamConfig(expected_interval=0.1, stale_threshold=1.0)},
        control=frozenset({"ping"}),
        control_sequence=(lambda decoded: decoded.get("cs")) if control_sequence else None,
        error_types=frozenset({"err"}),
        dedupe_ttl=2.0,
        max_dedupe_size=8,
    )


def a(k: str, n: int, id_: int, t: int | None) -> str:
    return json.dumps({"type": "a", "k": k, "n": n, "id": id_, "t": t})


# A message: its kind, key, how its number and id move from the last of its kind and key
# (mostly on by one, so most batches run in order), and its exchange time.
STEPS = [1, 1, 1, 1, 1, 1, 0, 2, -1, -3]
message_plans = st.tuples(
    st.sampled_from(["a", "a", "a", "b", "b", "other", "binary"]),
    st.sampled_from("xy"),
    st.sampled_from(STEPS),
    st.sampled_from(STEPS),
    st.integers(0, 10**6) | st.sampled_from([None, -1, -2, -3]),
    st.sampled_from(['{"type":"ping"}', '{"type":"ping","cs":3}', '{"type":"err","m":1}',
                     "{nope", '{"type":"a","k":"x"}', '{"type":"zzz"}',
                     a("x", 97, 1, 0), a("y", 98, 2, 0), a("x", 99, 3, 0), a("x", 5, 13, 0),
                     a("y", 5, 14, 0)]),
)
# Most batches are clean (every number and id the next, no other message) or clean but for
# one odd message: the ones taken a channel at a time, or just not.
steps = st.lists(
    st.tuples(
        st.lists(st.tuples(message_plans,
                           st.sampled_from([0, 0, 0, 1, 300_000_000, 3 * SECOND, -1])),
                 max_size=30),
        st.sampled_from(["", "", "check", "reconnect"]),
        st.booleans(),  # the batch's first message is of the connection before
        st.sampled_from(["clean", "clean", "odd", "any"]),
        st.integers(0, 30),  # where the odd message goes
    ),
    min_size=1, max_size=6,
)


def texts(plans: list[tuple[Any, ...]], counters: dict[Any, int], mode: str,
          odd: int) -> list[str | bytes]:
    """The messages the plans describe, numbers and ids running on from ``counters``."""
    out: list[str | bytes] = []
    for index, (kind, key, number_step, id_step, t, other) in enumerate(plans):
        if mode != "any" and not (mode == "odd" and index == odd % len(plans)):
            kind = kind if kind in ("a", "b") else "a"
            number_step = id_step = 1
            t = t if t is None or t >= 0 else 0
        elif mode == "odd":
            kind = "other"
        if kind == "other":
            out.append(other)
            continue
        n = counters[kind, key, "n"] = max(1, counters.get((kind, key, "n"), 0) + number_step)
        if kind == "b":
            out.append(json.dumps({"type": "b", "k": key, "n": n, "t": t or 0}))
            continue
        i = counters[kind, key, "id"] = max(1, counters.get((kind, key, "id"), 0) + id_step)
        text = a(key, n, i + 20, t)  # ids from 21: 13 and 14 come only as "other"
        out.append(text.encode() if kind == "binary" else text)
    return out


def run(p: Pipeline, batches: list[list[Received]], after: list[str],
        clock: VirtualClock, one_by_one: bool) -> list[Event]:
    events: list[Event] = []
    p.on_event(events.append)
    generation = 1
    p.open_generation(generation)
    for batch, then in zip(batches, after, strict=True):
        for part in ([[item] for item in batch] if one_by_one else [batch]):
            p.process(part)
        if batch:
            clock.set(max(clock.monotonic_ns(), batch[-1][2]))
        if then == "check":
            p.check_health()
        elif then == "reconnect":
            generation += 1
            p.open_generation(generation)
    return events


def state(p: Pipeline, events: list[Event]) -> dict[str, Any]:
    tracker = p.sequences
    return {
        # A stale stream's recovery among them, in its place however the batch is taken.
        "events": [repr(event) for event in events],
        "counts": p.counts,
        "frames": {name: frame.rows() for name, frame in p.frames.items()},
        "gaps": p.gaps.rows(),
        "rejects": [(r.reason, r.raw, r.detail, r.mono_ns, r.channel) for r in p.rejects],
        "transitions": list(p.health.transitions),
        "last_seen": p.health.last_seen("s"),
        "dedupe": p.parser.dedupe_state(),
        "sequences": (tracker.counts, tracker.by_channel, tracker.generation,
                      {key: tracker.expected(*key) for key in
                       [(g, k) for g in ("a", "b", "g") for k in ("x", "y")]}),
        "inexact": p.counts.inexact,
    }


@settings(max_examples=sized(100, 300), deadline=None)
@given(plan=steps, shared_group=st.booleans(), control_sequence=st.booleans(),
       recorded=st.booleans())
def test_a_batch_taken_a_channel_at_a_time_leaves_what_it_does_message_by_message(
    plan: list[tuple[list[tuple[Any, int]], str, bool, str, int]], shared_group: bool,
    control_sequence: bool, recorded: bool,
) -> None:
    batches: list[list[Received]] = []
    mono, seq, generation = 1_000, 0, 1
    counters: dict[Any, int] = {}
    for batch, then, late, mode, odd in plan:
        items: list[Received] = []
        made = texts([m for m, _ in batch], counters, mode, odd)
        for index, (data, step) in enumerate(zip(made, [s for _, s in batch], strict=True)):
            mono = max(0, mono + step)
            seq += 1
            items.append((data, generation - (late and index == 0), mono, 10**18 + mono,
                          seq if recorded else -1))
        batches.append(items)
        generation += then == "reconnect"
    after = [step[1] for step in plan]
    assert_alike(batches, after, shared_group, control_sequence)


def assert_alike(batches: list[list[Received]], after: list[str], shared_group: bool = False,
                 control_sequence: bool = False) -> None:
    """The batches leave the state they leave taken one message at a time, message by message."""
    results = []
    for grouped in (True, False):
        clock = VirtualClock()
        p = Pipeline(spec(shared_group, control_sequence), clock)
        if not grouped:
            p._take_grouped = lambda *_: False  # type: ignore[method-assign]
        events = run(p, batches, after, clock, one_by_one=not grouped)
        results.append(state(p, events))
    assert results[0] == results[1]


def b(k: str, n: int) -> str:
    return json.dumps({"type": "b", "k": k, "n": n, "t": 0})


def at(texts: list[str], times: list[int]) -> list[Received]:
    return [(text, 1, mono, 10**18 + mono, -1) for text, mono in zip(texts, times, strict=True)]


@pytest.mark.parametrize("batches", [
    pytest.param([at([a("x", n, 20 + i, 0) for i, n in enumerate((4, 6, 6))], [1, 2, 3])],
                 id="numbers that end where a run would, with a gap and a repeat inside"),
    pytest.param([at([a("x", 1, 21, 0)], [10 * SECOND]),
                  at([a("x", 2, 22, 0), a("x", 3, 23, 0)], [12 * SECOND, 12 * SECOND - 1])],
                 id="a key due at a time, and the next time a nanosecond before it"),
    pytest.param([at([a("x", 1, 21, 0), b("x", 7), a("x", 2, 33, 0)], [1, 2, 3])],
                 id="keys that fail in two channels, the later channel's first"),
    pytest.param([at([a("x", 1, 21, 5), a("x", 2, 22, -3)], [1, 2])],
                 id="an exchange time that is NaN, after one that is not"),
])
def test_batches_at_the_edges_of_a_run_are_taken_as_message_by_message(
    batches: list[list[Received]],
) -> None:
    assert_alike(batches, [""] * len(batches))


@pytest.mark.parametrize("grouped", [False, True])
def test_a_stale_stream_recovers_in_its_place_however_the_batch_is_taken(
    grouped: bool,
) -> None:
    """After its first message's own events (here a gap), before the next message's."""
    silent = [at([a("x", 1, 21, 0), '{"type":"zzz"}'], [SECOND, 3 * SECOND])]
    texts = [a("x", 3, 25, 0), a("x", 5, 26, 0), a("y", 1, 27, 0)]  # a gap, a gap, none
    times = [4 * SECOND, 4 * SECOND + 1, 4 * SECOND + 2]
    orders = []
    singly = [at([text], [time]) for text, time in zip(texts, times, strict=True)]
    for batches in ([at(texts, times)], singly):
        clock = VirtualClock()
        p = Pipeline(spec(False, False), clock)
        if not grouped:
            p._take_grouped = lambda *_: False  # type: ignore[method-assign]
        events = run(p, silent + batches, ["check"] + [""] * len(batches), clock,
                     one_by_one=False)
        orders.append([(type(event).__name__, getattr(event, "healthy", None)) for event in events])
        assert [(t.healthy, t.mono_ns) for t in p.health.transitions] == [
            (False, 3 * SECOND), (True, 4 * SECOND)]
    assert orders[0] == orders[1] == [("HealthChanged", False), ("GapFound", None),
                                      ("HealthChanged", True), ("GapFound", None)]


def plain(count: int, start: int = 1) -> list[Received]:
    return [(a("x", n, 1_000 + n, n), 1, 1_000 + n, 10**18 + n, -1)
            for n in range(start, start + count)]


def test_a_plain_batch_is_taken_a_channel_at_a_time_and_a_gap_message_by_message() -> None:
    p = Pipeline(spec(False, False), VirtualClock())
    p.open_generation(1)
    taken: list[bool] = []
    grouped = p._take_grouped
    p._take_grouped = lambda *args: taken.append(grouped(*args)) or taken[-1]  # type: ignore[method-assign]
    p.process(plain(5))
    p.process(plain(3, start=6))  # runs on
    p.process(plain(3, start=20))  # a gap
    assert taken == [True, True, False]
    assert p.counts.ok == 11
    assert p.sequences.counts["gap"] == 1


@pytest.mark.parametrize("recorded", [False, True])
def test_a_channel_without_exchange_times_keeps_its_rows_with_null_columns(
    recorded: bool,
) -> None:
    """No exchange time, and (not recording) no frame seq: both columns null, every row kept."""
    plain_spec = spec(False, False)
    untimed = plain_spec.channels[0].model_copy(update={"exchange_time": None})
    p = Pipeline(plain_spec.replace(channels=[untimed, plain_spec.channels[1]]), VirtualClock())
    p.open_generation(1)
    batch = [(*item[:4], index if recorded else -1) for index, item in enumerate(plain(5))]
    p.process(batch)
    frame = p.store.frame("a")
    assert frame["n"].to_list() == [1, 2, 3, 4, 5]
    assert frame["exchange_ns"].null_count() == 5
    assert frame["frame_seq"].to_list() == ([0, 1, 2, 3, 4] if recorded else [None] * 5)
