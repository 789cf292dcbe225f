import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsresearch import ExchangeError, Feed, Recording, Seq, SequenceGap, Simulator
from wsresearch.lowlevel import SequenceTracker
from wsresearch.sequence import GAP_SCHEMA

from .conftest import RATES, eventually, quick


def outcomes(values: list[int | Seq], generation: int = 1) -> list[str]:
    tracker = SequenceTracker()
    return [tracker.observe("g", "c", None, v, generation, 0)[0] for v in values]


def test_each_message_gets_one_outcome() -> None:
    assert outcomes([5, 6, 7]) == ["reset", "in_order", "in_order"]
    assert outcomes([1, 4, 2, 3, 3, 5]) == [
        "reset", "gap", "out_of_order", "out_of_order", "repeat", "in_order"]
    assert outcomes([1, 2, 2, 1]) == ["reset", "in_order", "repeat", "repeat"]


def test_ranges_links_and_snapshots() -> None:
    # Binance spot depth: U..u; the first diff after a snapshot may overlap it.
    assert outcomes([Seq(0, 10, reset=True), Seq(5, 12), Seq(13, 20), Seq(25, 30)]) == [
        "reset", "in_order", "in_order", "gap"]
    # OKX: Seq(prevSeqId + 1, seqId); a snapshot restarts wherever it is.
    assert outcomes([Seq(0, 100, reset=True), Seq(101, 104), Seq(105, 109),
                     Seq(0, 3, reset=True), Seq(4, 7)]) == [
        "reset", "in_order", "in_order", "reset", "in_order"]


def test_gaps_are_counted_per_key_and_group_and_kept() -> None:
    tracker = SequenceTracker()
    for key, n in [("A", 1), ("B", 1), ("A", 2), ("B", 5), ("A", 3)]:
        tracker.observe("trade", "trade", key, n, 1, 100 + n)
    tracker.observe("book", "book", "A", 9, 1, 0)  # another group: its own baseline
    assert tracker.counts["gap"] == 1 and tracker.counts["missing"] == 3
    assert list(tracker.gaps) == [SequenceGap("trade", "trade", "B", 2, 5, 1, 105)]
    frame = tracker.frame()
    assert frame.schema == GAP_SCHEMA
    assert frame.select("key", "expected", "first", "missing").rows() == [("B", 2, 5, 3)]


def test_a_new_generation_forgets_expectations() -> None:
    tracker = SequenceTracker()
    tracker.observe("g", "c", None, 10, 1, 0)
    assert tracker.observe("g", "c", None, 50, 2, 0) == ("reset", None)
    assert tracker.observe("g", "c", None, 51, 2, 0) == ("in_order", None)


def test_bad_values_are_refused() -> None:
    tracker = SequenceTracker()
    with pytest.raises(TypeError, match="int or a Seq"):
        tracker.observe("g", "c", None, "7", 1, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="end before it starts"):
        tracker.observe("g", "c", None, Seq(5, 4), 1, 0)


@given(st.integers(3, 200).flatmap(
    lambda n: st.tuples(st.just(n), st.sets(st.integers(1, n - 2), max_size=n - 2))))
def test_deleted_numbers_are_exactly_the_missing_ones(case: tuple[int, set[int]]) -> None:
    n, deleted = case  # the first and the last are kept, so every deletion is visible
    tracker = SequenceTracker()
    for value in range(n):
        if value not in deleted:
            tracker.observe("g", "c", None, value, 1, 0)
    assert tracker.counts["missing"] == len(deleted)
    runs = sum(1 for v in deleted if v - 1 not in deleted)
    assert tracker.counts["gap"] == runs


async def test_a_feed_finds_an_injected_gap_records_it_and_calls_on_gap(tmp_path) -> None:
    found: list[SequenceGap] = []
    async with Simulator(rates={"trade": 200.0}, seed=2) as sim:
        feed = Feed(sim.spec(channels=["trade"], connection=quick()),
                    record_to=tmp_path / "rec")
        feed.on_gap(found.append)
        async with feed:
            await eventually(lambda: feed.store.rows("trade") >= 20, what="trades")
            assert feed.stats.sequence_gaps == 0
            sim.sequence_gap(4)
            await eventually(lambda: feed.stats.sequence_gaps == 1, what="the gap")
    assert [(g.channel, g.missing) for g in found] == [("trade", 4)]
    assert feed.stats.sequence_missing == 4
    assert feed.gaps.select("channel", "missing").rows() == [("trade", 4)]
    events = Recording.open(tmp_path / "rec").events()
    gap = events.filter(kind="gap").row(0, named=True)
    assert gap["stream"] == "trade"
    assert json.loads(gap["data"])["first"] - json.loads(gap["data"])["expected"] == 4
    revealing = events.filter(seq=gap["ref_seq"]).row(0, named=True)
    assert json.loads(revealing["data"])["seq"] == json.loads(gap["data"])["first"]


async def test_resync_on_gap_reconnects_and_the_new_generation_starts_afresh() -> None:
    async with Simulator(rates={"trade": 200.0}, seed=2) as sim:
        spec = sim.spec(channels=["trade"], connection=quick())
        spec = spec.replace(channels=[spec.channel("trade").model_copy(
            update={"resync_on_gap": True})])
        async with Feed(spec) as feed:
            await eventually(lambda: feed.store.rows("trade") >= 10, what="trades")
            sim.sequence_gap(2)
            await eventually(lambda: feed.generation == 2, what="the resync")
            close = feed.stats.last_close
            assert close is not None and close.reason.startswith("resync: sequence gap on trade")
            await eventually(lambda: feed.store.rows("trade") >= 30, what="more trades")
    assert feed.stats.sequence_gaps == 1  # the new generation set a new baseline


async def test_exchange_error_reports_reach_on_error_with_their_own_message() -> None:
    seen: list[BaseException] = []
    async with Simulator(rates=RATES) as sim, Feed(sim.spec(connection=quick())) as feed:
        feed.on_error(seen.append)
        feed.send({"op": "frobnicate"})
        await eventually(lambda: feed.stats.exchange_errors == 1, what="the error report")
    assert [(type(e), str(e), e.error_type) for e in seen if isinstance(e, ExchangeError)] == [
        (ExchangeError, "unknown request", "error")]
    stats = feed.stats
    assert stats.invalid == 0 and stats.handler_errors == 0
