"""The pipeline without I/O: batches of received messages in, frames, counts and events out.

No socket, no event loop: each test builds a ``Pipeline`` from a spec and a
``VirtualClock``, processes batches and checks what came out, the way
python-websockets tests its sans-I/O protocol.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsresearch import VirtualClock
from wsresearch.errors import ExchangeError
from wsresearch.events import Dropped, ErrorRaised, Event, GapFound, HealthChanged
from wsresearch.exchanges import generic
from wsresearch.pipeline import Pipeline, Received

URL = "ws://127.0.0.1:1"


def trade(seq: int, trade_id: int | None = None, symbol: str = "BTC-USD", **change: Any) -> str:
    fields = {"type": "trade", "symbol": symbol, "seq": seq,
              "trade_id": seq if trade_id is None else trade_id, "price": 100.5,
              "size": 0.25, "side": "buy", "ts": 1_700_000_000_000_000_000 + seq} | change
    return json.dumps(fields)


def received(texts: list[str], generation: int = 1, start_ns: int = 1_000) -> list[Received]:
    """Messages as the socket hands them over: one per millisecond, not recorded."""
    return [(text, generation, start_ns + i * 1_000_000, 10**18 + i, -1)
            for i, text in enumerate(texts)]


def pipeline(spec: Any = None, clock: VirtualClock | None = None) -> tuple[Pipeline, list[Event]]:
    p = Pipeline(spec or generic.spec(url=URL), clock or VirtualClock())
    events: list[Event] = []
    p.on_event(events.append)
    p.open_generation(1)
    return p, events


# -- outcomes: one per message, counted --------------------------------------------------

OUTCOME_TABLE = [
    # (what arrives, the counters it moves)
    pytest.param([trade(1)], {"ok": 1}, id="a valid trade is one row"),
    pytest.param([trade(1), trade(1)], {"ok": 1, "duplicates": 1},
                 id="the same trade twice is a duplicate"),
    pytest.param(["{not json"], {"invalid": 1}, id="text that is not JSON is rejected"),
    pytest.param([trade(1, price="cheap")], {"invalid": 1},
                 id="a trade that fails its model is rejected"),
    pytest.param(['{"type": "nothing-known"}'], {"invalid": 1},
                 id="an unknown type is rejected"),
    pytest.param([trade(1, trade_id=2**64)], {"invalid": 1},
                 id="an int that no 64-bit column holds is rejected, not nulled"),
    pytest.param(['{"type": "subscribed"}'], {"control": 1}, id="an ack is control"),
    pytest.param(['{"type": "error", "message": "bad symbol"}'], {"exchange_errors": 1},
                 id="an exchange error report is counted as one"),
]


@pytest.mark.parametrize(("texts", "expected"), OUTCOME_TABLE)
def test_every_message_gets_one_counted_outcome(texts: list[str], expected: dict[str, int]) -> None:
    p, _ = pipeline()
    p.process(received(texts))
    counts = p.counts.as_dict()
    moved = {name: counts[name] for name in ("ok", "duplicates", "invalid", "control",
                                             "exchange_errors") if counts[name]}
    assert moved == expected
    assert counts["processed"] == len(texts)
    assert p.frame("trade").height == expected.get("ok", 0)


def test_rows_carry_their_receive_times_generation_and_exchange_time() -> None:
    p, _ = pipeline()
    p.process([(trade(1), 1, 5_000, 7_000, 42)])
    row = p.frame("trade").row(0, named=True)
    assert (row["recv_mono_ns"], row["recv_wall_ns"], row["generation"], row["frame_seq"]) == (
        5_000, 7_000, 1, 42)
    assert row["exchange_ns"] == 1_700_000_000_000_000_001


def test_an_exchange_error_is_reported_but_is_not_a_handler_error() -> None:
    p, events = pipeline()
    p.process(received(['{"type": "error", "message": "bad symbol"}']))
    errors = [e.error for e in events if isinstance(e, ErrorRaised)]
    assert len(errors) == 1 and isinstance(errors[0], ExchangeError)
    assert "bad symbol" in str(errors[0])
    assert p.counts.handler_errors == 0


# -- generations ---------------------------------------------------------------------------

def test_messages_of_a_replaced_connection_are_counted_and_never_parsed() -> None:
    p, events = pipeline()
    p.open_generation(2)
    batch = received([trade(1), trade(2)], generation=1) + received([trade(3)], generation=2)
    batch[0] = (*batch[0][:4], 17)  # recorded as seq 17
    p.process(batch)
    assert p.counts.old_generation == 2 and p.counts.processed == 1
    assert p.frame("trade")["seq"].to_list() == [3]
    assert [e for e in events if isinstance(e, Dropped)] == [
        Dropped(1, "old_generation", 17), Dropped(1, "old_generation", None)]


# -- sequences -------------------------------------------------------------------------------

@pytest.mark.parametrize(("resync", "seqs", "gaps", "missing"), [
    pytest.param(False, [1, 2, 3], 0, 0, id="in order: no gap"),
    pytest.param(False, [1, 2, 5], 1, 2, id="two numbers skipped: one gap of two"),
    pytest.param(True, [1, 4], 1, 2, id="a resync channel asks for one on its gap"),
])
def test_a_gap_is_counted_and_told_as_an_event(
    resync: bool, seqs: list[int], gaps: int, missing: int,
) -> None:
    spec = generic.spec(url=URL)
    if resync:
        spec = spec.with_resync("trade")
    p, events = pipeline(spec)
    p.process(received([trade(n) for n in seqs]))
    found = [e for e in events if isinstance(e, GapFound)]
    assert (p.counts.sequence_gaps, p.counts.sequence_missing) == (gaps, missing)
    assert len(found) == gaps
    assert all(e.resync is resync and e.channel == "trade" for e in found)
    assert p.gaps.height == gaps


# -- health ----------------------------------------------------------------------------------

def test_health_is_judged_on_the_pipeline_clock_and_told_as_events() -> None:
    clock = VirtualClock()
    p, events = pipeline(clock=clock)
    now = clock.monotonic_ns()
    p.process(received([trade(1)], start_ns=now))
    clock.advance(3.0)  # past the trade stream's 2 s threshold
    p.check_health()
    p.process(received([trade(2)], start_ns=clock.monotonic_ns()))
    changes = [(e.stream, e.healthy) for e in events if isinstance(e, HealthChanged)]
    assert ("trade", False) in changes and changes[-1] == ("trade", True)
    assert [t.stream for t in p.transitions if t.stream == "trade"] == ["trade", "trade"]


# -- errors and listeners ----------------------------------------------------------------------

def test_a_failing_extractor_costs_only_its_value_and_is_a_handler_error() -> None:
    spec = generic.spec(url=URL)

    def broken(message: Any) -> int:
        raise RuntimeError("no time here")

    spec = spec.replace(channels=[c.model_copy(update={"exchange_time": broken})
                                  if c.name == "trade" else c for c in spec.channels])
    p, events = pipeline(spec)
    p.process(received([trade(1)]))
    assert p.frame("trade")["exchange_ns"].to_list() == [None]
    assert p.counts.handler_errors == 1
    assert [str(e.error) for e in events if isinstance(e, ErrorRaised)] == ["no time here"]


def test_a_listener_that_raises_is_reported_and_the_others_still_hear() -> None:
    p, _ = pipeline()
    heard: list[Event] = []

    def bad(event: Event) -> None:
        if isinstance(event, GapFound):
            raise ValueError("listener bug")

    p.on_event(bad)
    p.on_event(heard.append)
    p.process(received([trade(1), trade(3)]))
    assert any(isinstance(e, GapFound) for e in heard)
    assert [str(e.error) for e in heard if isinstance(e, ErrorRaised)] == ["listener bug"]
    assert p.counts.handler_errors == 1


def test_an_error_listener_that_raises_is_counted_and_cannot_loop() -> None:
    p, _ = pipeline()
    calls: list[Event] = []

    def bad(event: Event) -> None:
        calls.append(event)
        if isinstance(event, ErrorRaised):
            raise ValueError("error listener bug")

    p.on_event(bad)
    p.report(RuntimeError("one"))
    assert len(calls) == 1
    assert p.counts.handler_errors == 2  # the error itself, and its failing listener
    assert [str(e) for e in p.errors] == ["one"]


def test_an_unsubscribed_listener_hears_nothing_more() -> None:
    p, _ = pipeline()
    heard: list[Event] = []
    stop = p.on_event(heard.append)
    p.report(RuntimeError("before"))
    stop()
    p.report(RuntimeError("after"))
    assert [str(e.error) for e in heard if isinstance(e, ErrorRaised)] == ["before"]


# -- determinism -----------------------------------------------------------------------------

texts = st.lists(
    st.one_of(
        st.builds(trade, st.integers(1, 30), st.integers(1, 10),
                  st.sampled_from(generic.SYMBOLS)),
        st.sampled_from(["{", "[]", '{"type": "subscribed"}', '{"type": "ticker"}']),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(texts=texts, cuts=st.lists(st.integers(0, 60), max_size=6))
def test_how_messages_are_cut_into_batches_changes_nothing(
    texts: list[str], cuts: list[int],
) -> None:
    batch = received(texts)
    whole, _ = pipeline()
    whole.process(batch)
    pieces, _ = pipeline()
    bounds = [0, *sorted(min(c, len(batch)) for c in cuts), len(batch)]
    for start, end in itertools.pairwise(bounds):
        pieces.process(batch[start:end])
    assert pieces.counts == whole.counts
    for name, frame in whole.frames.items():
        assert pieces.frame(name).equals(frame)
    assert pieces.gaps.equals(whole.gaps)


def test_a_pipeline_refuses_what_is_not_a_spec() -> None:
    with pytest.raises(TypeError, match="FeedSpec"):
        Pipeline("ws://127.0.0.1:1")  # type: ignore[arg-type]
