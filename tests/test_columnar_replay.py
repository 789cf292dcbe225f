"""The columnar replay gives exactly what the per-message replay gives, on real Binance data.

Channels with a layout (Binance ``bookTicker``, ``trade``, ``aggTrade``) are read into
columns a chunk at a time where the outcome is provably the per-message one; everything
else goes through the models. These tests replay the same recordings both ways
(``columnar=False`` puts every message through its model) and compare every output:
frames (values and dtypes), counters, rejects, gaps, sequence counts, health transitions
and the books. The recordings are real frames from ``data/``, and the same frames with
what real sessions bring mixed in by hypothesis: duplicates, lost and swapped messages,
reconnects, silences long enough to go stale, clocks that step back, binary, garbled and
re-spaced messages, and numbers too long to be exact.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import warnings
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from pydantic import BaseModel

import wsresearch._columnar as columnar_module
import wsresearch.book as book_module
from wsresearch import (
    BackoffConfig,
    Channel,
    ConnectionConfig,
    Feed,
    FeedSpec,
    Layout,
    ReconnectConfig,
    Recording,
    StreamConfig,
    by_field,
    replay,
)
from wsresearch.book import DISCONNECTED, Book, BookRule, Books, level_lists
from wsresearch.exchanges import binance
from wsresearch.recording.writer import Captured, write_events
from wsresearch.replay import ReplayResult, replay_in_chunks, spec_for
from wsresearch.sequence import Chain
from wsresearch.testing import Simulator

from .conftest import eventually, sized

DATA = Path(__file__).resolve().parent.parent / "data" / "recordings"
SPOT = DATA / "binance_hftbacktest_2024-08-08_spot_btcusdt"
USDM = DATA / "binance_hftbacktest_2024-08-08_usdm_btcusdt"


def values(frame: pl.DataFrame) -> str:
    """Every value as Python writes it: equal only if every value is (``-0.0`` is not 0.0).

    Not the Arrow bytes: a column built in polars may carry a validity bitmap with no null
    in it where one built from Python values has none, the same values either way.
    """
    return repr(frame.rows())


def assert_same(columns: ReplayResult, models: ReplayResult) -> None:
    """Every output of the two replays is the same."""
    assert columns.frames.keys() == models.frames.keys()
    for name, frame in models.frames.items():
        assert_frame_equal(columns.frames[name], frame, check_exact=True)
        assert values(columns.frames[name]) == values(frame), name
    assert columns.stats == models.stats
    assert columns.counts == models.counts
    assert columns.rejects == models.rejects
    assert_frame_equal(columns.gaps, models.gaps)
    assert columns.sequence_by_channel == models.sequence_by_channel
    assert columns.health_transitions == models.health_transitions
    assert columns.errors == models.errors
    if models.books is not None:
        assert columns.books is not None
        assert_frame_equal(columns.books.frame(), models.books.frame())
        for table in ("quotes", "snapshots", "transition_frame"):
            found, expected = (getattr(b, table)() for b in (columns.books, models.books))
            assert_frame_equal(found, expected, check_exact=True)
            assert values(found) == values(expected), table
        assert [book_state(b) for b in columns.books] == [book_state(b) for b in models.books]


def record_like(source: Path, path: Path, events: list[Captured]) -> Path:
    """``events`` written to ``path`` as a recording made with ``source``'s spec."""
    spec = Recording.open(source).spec
    assert spec is not None
    write_events(path, events, source_url=spec.url, origin=spec.origin)
    return path


def book_state(book: Book) -> tuple[Any, ...]:
    """Everything a book holds: its levels, their texts, its ids, times and counts."""
    return (book.symbol, repr(book.bids.items()), repr(book.asks.items()), book._texts,
            book.valid, book.reason, book.last_id, book.bridged, list(book.pending),
            book.exchange_ns, book.recv_mono_ns, book.recv_wall_ns, book.stats,
            book.invalid_ns())


@functools.lru_cache(maxsize=6)
def _through_models(path: str, mode: Any, files: tuple[tuple[str, int, int], ...]
                    ) -> ReplayResult:
    """The replay of ``path`` through the models, in one chunk, once per recording (its
    ``files`` as they are) and mode. Nothing a test here changes (the at-once path's switch,
    a spy on it) reaches the models' replay."""
    return replay(Recording.open(path), mode=mode, chunk_events=10**9, columnar=False)


def both(path: Path, chunk_events: int, mode: Any = "complete") -> tuple[ReplayResult,
                                                                        ReplayResult]:
    """``path`` replayed in columns, in chunks of ``chunk_events``, and through the models.

    The replay through the models is made once per recording and mode (a few kept), in
    one chunk: what it gives does not depend on the chunks (``test_streaming`` holds every
    recording's replays alike at every chunk size), so each chunk size in columns is
    checked against the same one.
    """
    files = tuple(sorted((str(file), file.stat().st_size, file.stat().st_mtime_ns)
                         for file in Path(path).rglob("*") if file.is_file()))
    return (replay(Recording.open(path), chunk_events=chunk_events, mode=mode),
            _through_models(str(path), mode, files))


@pytest.mark.parametrize("path", sorted(DATA.glob("binance_*")), ids=lambda p: p.name)
@pytest.mark.parametrize("chunk_events", [97, 1000, 20_000])
def test_every_binance_recording_replays_alike_in_columns_and_through_models(
        path: Path, chunk_events: int) -> None:
    columns, models = both(path, chunk_events)
    assert_same(columns, models)
    assert models.read_in_columns == 0


@pytest.mark.parametrize("chunk_events", [50, 333, 20_000])
def test_the_simulated_session_with_faults_replays_alike_in_columns(chunk_events: int) -> None:
    # Generic trades and tickers, with duplicates, malformed messages, a gap, six
    # connections and a stale spell: the golden-file session.
    columns, models = both(DATA.parent / "sessions" / "sim-faults", chunk_events)
    assert_same(columns, models)
    assert models.stats["duplicates"] and models.stats["sequence_gaps"]
    if chunk_events < 1000:  # most chunks hold no connection's opening
        assert columns.read_in_columns > 1000


def test_a_short_recording_is_read_in_columns_from_its_connections_opening() -> None:
    # One chunk holds the whole session, opening included: what follows the opening is
    # taken, sequenced trades included (their first number starts afresh, as the first
    # number of a connection always does), and the book's depth diffs from the REST
    # snapshot on (those before it wait for it, one by one).
    columns, models = both(SPOT, 20_000)
    assert_same(columns, models)
    events = Recording.open(SPOT).events()
    rest = events["kind"].to_list().index("rest")
    after = events.slice(rest).filter(pl.col("kind") == "frame")["data"].str.contains(
        "@depth").sum()
    assert 500 < after < models.frames["depth"].height
    assert columns.read_in_columns == (models.frames["bookTicker"].height
                                       + models.frames["trade"].height + after)


def test_the_real_spot_and_usdm_captures_are_mostly_read_in_columns() -> None:
    for path in (SPOT, USDM):
        columns, models = both(path, 500)
        assert_same(columns, models)
        messages = columns.stats["frames"]
        book = columns.frames["depth"].height
        assert columns.read_in_columns >= 0.7 * (messages - book), path.name


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each :meth:`Books.apply_changes` answered: levels applied at once, or left."""
    found: list[bool] = []
    real = Books.apply_changes

    def spy(self: Books, *args: Any, **kwargs: Any) -> bool:
        found.append(real(self, *args, **kwargs))
        return found[-1]

    monkeypatch.setattr(Books, "apply_changes", spy)
    return found


@pytest.fixture
def at_once(answers: list[bool], monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """:func:`answers`, with every stretch applied at once however few its rows.

    :data:`AT_ONCE_ROWS` is 0: what is checked is that path's outcome, not its choice.
    """
    monkeypatch.setattr(book_module, "AT_ONCE_ROWS", 0)
    return answers


def test_the_spot_depth_diffs_are_read_in_columns_once_the_book_is_synced(
        at_once: list[bool]) -> None:
    # The chunk holding the REST snapshot goes through the models (the snapshot changes
    # the book among its messages); after it, each diff follows the last, so the diffs
    # are read in columns and applied to the book as they are committed.
    columns, models = both(SPOT, 97)
    assert_same(columns, models)
    depth = models.frames["depth"].height
    assert columns.read_in_columns > columns.stats["frames"] - 10 > depth
    book = columns.book("BTCUSDT")
    assert book.valid and book.stats.updates == depth and len(book.bids) > 100
    assert columns.books is not None and columns.books.quotes().height > 100
    assert len(at_once) > 5 and all(at_once)  # the diffs' levels all at once


def _depth_diffs(ids: list[tuple[int, int]], futures: bool) -> tuple[pl.DataFrame, list[Any]]:
    """Depth diffs of these ``(U, u)``, as the rows a replay takes and as the models."""
    messages, previous = [], 0
    for index, (first, final) in enumerate(ids):
        messages.append(binance.Depth.model_validate({
            "s": "BTCUSDT", "U": first, "u": final, "pu": previous if futures else None,
            "b": [[100.0 - index, 1.0 + index]], "a": [[101.0 + index, 0.0 if index else 2.0]],
            "E": 1_000 + index}))
        previous = final
    rows = pl.DataFrame([{**m.model_dump(), "recv_mono_ns": 10 * i, "recv_wall_ns": 10 * i}
                         for i, m in enumerate(messages)],
                        schema_overrides={"bids": pl.List(pl.Array(pl.Float64, 2)),
                                          "asks": pl.List(pl.Array(pl.Float64, 2))})
    return rows, messages


def _joined(futures: bool) -> Books:
    """A book whose snapshot (last update id 100) no diff has joined yet."""
    books = Books(binance.BookSync(["BTCUSDT"], futures), snapshot_interval=None)
    books.rest("https://x/depth?symbol=BTCUSDT",
               json.dumps({"lastUpdateId": 100, "bids": [["99.5", "3"]], "asks": [["101", "1"]]}),
               0, 0)
    return books


@pytest.mark.parametrize("futures", [False, True])
@pytest.mark.parametrize(("ids", "taken"), [
    ([(90, 95), (96, 101), (102, 105)], True),  # held by the snapshot, joins it, follows
    ([(96, 101), (102, 105)], True),  # joins it at once
    ([(90, 95), (92, 99)], False),  # all held: the book stays unjoined
    ([(96, 101), (90, 95)], False),  # a diff the snapshot holds after the one that joins it
    ([(102, 105)], False),  # past the snapshot: the book goes invalid
])
def test_diffs_that_join_a_snapshot_are_applied_in_columns_as_one_by_one(
        futures: bool, ids: list[tuple[int, int]], taken: bool) -> None:
    if futures:  # USD-M joins at U <= lastUpdateId <= u, and holds u < lastUpdateId
        ids = [(first, final - 1) if final == 101 else (first, final) for first, final in ids]
    rows, messages = _depth_diffs(ids, futures)
    columns, models = _joined(futures), _joined(futures)
    assert columns.sync.takes_rows(columns, "depth", rows) is taken
    if not taken:
        return
    columns.apply_rows("depth", rows, _raise)
    for index, message in enumerate(messages):
        models.apply("depth", message, 10 * index, 10 * index)
    assert book_state(columns.book("BTCUSDT")) == book_state(models.book("BTCUSDT"))
    assert_frame_equal(columns.quotes(), models.quotes())
    assert columns.book("BTCUSDT").bridged and columns.book("BTCUSDT").valid


def _raise(error: Exception) -> None:
    raise error


def test_a_commit_of_only_diffs_a_snapshot_holds_leaves_the_book_unjoined(
        tmp_path: Path, at_once: list[bool]) -> None:
    # A REST snapshot holds the next two diffs, the third joins it; the depth stream goes
    # stale between the first two, so the take after the snapshot is committed in two
    # parts, the first holding one diff the snapshot holds, which joins nothing.
    events, _ = _base(SPOT, 700)
    depth = [i for i, e in enumerate(events) if isinstance(e.data, str) and "@depth" in e.data[:40]]
    diffs = [json.loads(str(events[depth[40 + k]].data))["data"] for k in range(3)]
    assert diffs[1]["U"] == diffs[0]["u"] + 1 and diffs[2]["U"] == diffs[1]["u"] + 1
    rest = next(e for e in events if e.kind == "rest")
    body = {**json.loads(str(rest.data)), "lastUpdateId": diffs[1]["u"]}
    at, silence = depth[40], 60 * 10**9  # past the depth stream's 30 s threshold
    changed = [*events[:at], Captured("rest", events[at].wall_ns, json.dumps(body), rest.url),
               events[at], *(e._replace(wall_ns=e.wall_ns + silence) for e in events[at + 1:])]
    for chunk_events in (333, 20_000):
        columns, models = both(record_like(SPOT, tmp_path / f"r{chunk_events}", changed),
                               chunk_events)
        assert_same(columns, models)
        assert columns.read_in_columns > 500
    assert all(at_once)


def test_a_stretch_of_few_rows_a_book_is_applied_one_at_a_time(answers: list[bool]) -> None:
    # Ten products' books: in chunks of 97 events a stretch is a few rows a book, which
    # one at a time applies faster; one chunk is about a thousand rows a book.
    for chunk_events, applied in ((97, False), (20_000, True)):
        answers.clear()
        assert_same(*both(COINBASE, chunk_events))
        assert answers and set(answers) == {applied}




@pytest.mark.parametrize("chunk_events", [97, 20_000])
def test_a_spec_of_the_book_channel_alone_replays_alike_in_columns(chunk_events: int) -> None:
    # Depth is the spec's only channel with a layout: a chunk holding the REST snapshot
    # has no channel it may take before the snapshot (none at all, not an error); after
    # it, the diffs are taken, the first joining the snapshot.
    recording = Recording.open(SPOT)
    spec = binance.spec(["btcusdt"], ["depth"], depth_speed="100ms")
    columns, models = (replay(recording, spec, chunk_events=chunk_events, columnar=columnar)
                       for columnar in (True, False))
    assert_same(columns, models)
    assert models.book("BTCUSDT").valid and models.frames["depth"].height > 500
    assert columns.read_in_columns > 500


def _depth_positions(events: list[Captured]) -> list[int]:
    return [i for i, e in enumerate(events)
            if isinstance(e.data, str) and '@depth' in e.data[:40]]


def _with_snapshot_before(events: list[Captured], n: int,
                          bids: list[list[str]] | None = None) -> list[Captured]:
    """``events`` with a REST snapshot just before the ``n``-th diff, which joins it.

    The capture's own snapshot, its ``lastUpdateId`` moved (and its bids, if given).
    """
    at = _depth_positions(events)[n]
    rest = next(e for e in events if e.kind == "rest")
    body = json.loads(str(rest.data))
    body["lastUpdateId"] = json.loads(str(events[at].data))["data"]["U"] - 1
    if bids is not None:
        body["bids"] = bids
    snapshot = Captured("rest", events[at].wall_ns, json.dumps(body), rest.url)
    return [*events[:at], snapshot, *events[at:]]


def test_a_lost_diff_and_a_later_snapshot_keep_the_models_book(tmp_path: Path) -> None:
    # A diff lost mid-session makes the book invalid (a gap); the diffs after it wait
    # for a snapshot, which a later REST response brings; the book follows again. Every
    # step is the models' in columns too, at chunk sizes that put the loss, the
    # snapshot and the diffs after each in chunks of their own and together.
    changed = _with_snapshot_before(list(BASE), 30)  # the 31st diff joins it
    del changed[_depth_positions(changed)[20]]
    record_like(SPOT, tmp_path / "r", changed)
    for chunk_events in (7, 60, 333, 20_000):
        columns, models = both(tmp_path / "r", chunk_events)
        assert_same(columns, models)
        book = models.book("BTCUSDT")
        assert book.valid and book.stats.gaps == 1 and book.stats.snapshots == 2
        assert [valid for _, _, valid, _ in models.books.transitions] == [  # type: ignore[union-attr]
            True, False, True]
    assert columns.read_in_columns > 0


def test_a_snapshot_while_the_book_is_synced_comes_between_the_diffs(tmp_path: Path) -> None:
    # A REST snapshot taken while the book is whole (the 31st diff joins it): the book is
    # reloaded between two diffs, so a chunk holding it cannot apply its diffs at commit.
    events = _with_snapshot_before(list(BASE), 30, [["1.5", "2"]])  # unlike the diffs' book
    record_like(SPOT, tmp_path / "r", events)
    for chunk_events in (60, 333, 20_000):
        columns, models = both(tmp_path / "r", chunk_events)
        assert_same(columns, models)
        book = models.book("BTCUSDT")
        assert book.valid and book.stats.snapshots == 2 and 1.5 in book.bids
    assert columns.read_in_columns > 0


def test_a_repeated_or_reordered_diff_keeps_the_models_book(tmp_path: Path) -> None:
    # A diff sent twice (a duplicate, dropped by de-dup) and two diffs swapped (a gap,
    # then old news): the chunks holding them go through the models.
    events = list(BASE)
    depth = _depth_positions(events)
    events.insert(depth[30] + 1, events[depth[30]])
    a, b = depth[45] + 1, depth[46] + 1
    events[a], events[b] = events[b]._replace(wall_ns=events[a].wall_ns), \
        events[a]._replace(wall_ns=events[b].wall_ns)
    record_like(SPOT, tmp_path / "r", events)
    for chunk_events in (11, 97, 20_000):
        columns, models = both(tmp_path / "r", chunk_events)
        assert_same(columns, models)
    assert models.stats["duplicates"] == 1 and not models.book("BTCUSDT").valid


# -- the same frames with what real sessions bring ------------------------------------


def _base(path: Path = SPOT, events: int = 700) -> tuple[list[Captured], int]:
    """A capture's first events as :class:`Captured`, and where the frames start."""
    recording = Recording.open(path)
    head = recording.events().head(events)
    captured: list[Captured] = []
    rest = recording.rest()
    for row in head.iter_rows(named=True):
        if row["kind"] == "open":
            captured.append(Captured("open", row["wall_ns"], row["data"]))
        elif row["kind"] == "rest":
            body = rest.filter(pl.col("seq") == row["seq"])
            captured.append(Captured("rest", row["wall_ns"], body["body"][0], body["url"][0]))
        elif row["kind"] == "frame":
            captured.append(Captured("frame", row["wall_ns"], row["data"]))
    first = next(i for i, event in enumerate(captured) if event.kind == "frame")
    return captured, first


BASE, FIRST = _base()


def test_a_message_its_layout_does_not_read_keeps_its_channel_out_only_until_it(
        tmp_path: Path) -> None:
    # A bookTicker written with spaces early in a chunk (the model reads it, the layout
    # does not) goes through the model at its place; the bookTickers after it, in the
    # same chunk, are still read in columns, from the state it left.
    events = list(BASE)
    at = next(i for i in range(FIRST + 20, len(events)) if isinstance(events[i].data, str)
              and "@bookTicker" in events[i].data)
    events[at] = events[at]._replace(data=json.dumps(json.loads(str(events[at].data))))
    record_like(SPOT, tmp_path / "r", events)
    columns, models = both(tmp_path / "r", 20_000)  # one chunk
    assert_same(columns, models)
    tickers = models.frames["bookTicker"].height
    assert columns.read_in_columns >= models.frames["trade"].height + tickers - 25 > 300


def test_each_connection_of_a_chunk_is_read_in_columns(tmp_path: Path) -> None:
    # Two reconnects in one chunk: the messages of each connection, the first's included,
    # are read in columns, each from its opening to the next (what was taken before an
    # opening committed before it), each key's first number starting afresh.
    events = mutate(BASE, [("reconnect", 150, 0), ("reconnect", 400, 0)])
    record_like(SPOT, tmp_path / "r", events)
    columns, models = both(tmp_path / "r", 20_000)  # one chunk
    assert_same(columns, models)
    assert models.stats["generations"] == 3
    taken = models.frames["trade"].height + models.frames["bookTicker"].height
    assert columns.read_in_columns >= taken - 10 > 300


@pytest.mark.parametrize("fault", ["duplicate", "jump", "swap"])
def test_a_duplicate_or_a_gap_keeps_only_itself_from_being_read_in_columns(
        tmp_path: Path, fault: str) -> None:
    # One chunk of the whole capture, early in it a bookTicker sent twice (a duplicate), a
    # trade whose id jumps (a gap) or two trades swapped: the rows before the fault are
    # read in columns and committed before it goes through the models, and those after it
    # (more than a thousand) are read in columns from the state it left.
    events, _ = _base(SPOT, 6_000)
    stream = "@bookTicker" if fault == "duplicate" else "@trade"
    at = [i for i, e in enumerate(events) if isinstance(e.data, str)
          and f'{stream}"' in e.data][20]
    if fault == "duplicate":
        events.insert(at + 1, events[at])
    elif fault == "jump":
        events = mutate(events, [("jump", at, 3)], 0)
    else:
        after = next(i for i in range(at + 1, len(events)) if isinstance(events[i].data, str)
                     and '@trade"' in str(events[i].data))
        events[at], events[after] = (events[at]._replace(data=events[after].data),
                                     events[after]._replace(data=events[at].data))
    record_like(SPOT, tmp_path / "r", events)
    columns, models = both(tmp_path / "r", 20_000)  # one chunk
    assert_same(columns, models)
    assert (models.stats["duplicates"] if fault == "duplicate"
            else models.stats["sequence_gaps"]) == 1
    taken = models.frames["trade"].height + models.frames["bookTicker"].height
    assert columns.read_in_columns >= taken - 5 > 5000


def test_a_burst_of_duplicates_is_read_in_columns(tmp_path: Path) -> None:
    # Every other bookTicker, depth diff and trade sent twice for a stretch (as a second
    # connection's copy would come): each duplicate is counted and dropped in columns, and
    # health hears it, as through the models; no message goes one by one.
    events, _ = _base(SPOT, 6_000)
    frames = [i for i, e in enumerate(events) if isinstance(e.data, str) and e.kind == "frame"
              and '"stream"' in e.data]
    for at in reversed(frames[10:5_000:2]):
        events.insert(at + 1, events[at])
    record_like(SPOT, tmp_path / "r", events)
    columns, models = both(tmp_path / "r", 20_000)  # one chunk
    assert_same(columns, models)
    assert models.stats["duplicates"] > 2_000
    ok = sum(frame.height for frame in models.frames.values())
    # All but the depth diffs before the book's snapshot (the book rule's, one by one).
    assert columns.read_in_columns > ok + models.stats["duplicates"] - 30


def test_a_burst_of_keys_remembered_afresh_goes_through_the_models_after_a_few_retakes(
        tmp_path: Path) -> None:
    # The de-dup cache holds 50 keys; for a stretch, every other bookTicker is followed by
    # a copy of the one 100 tickers back, forgotten for room: each copy is remembered
    # afresh, an ok row. Where its first came in the same take, only the models judge it
    # (a take's keys are judged in arrays only as repeats or new), so a take ends about
    # every 100 tickers. After eight quick retakes the channel goes one by one for the
    # chunk: without that limit, the stretch's 2,900 tickers would be taken too.
    events, _ = _base(SPOT, 6_000)
    tickers = [i for i, e in enumerate(events) if isinstance(e.data, str)
               and '@bookTicker"' in e.data]
    for at in reversed(tickers[110:3_000:2]):
        events.insert(at + 1, events[at]._replace(data=events[tickers[tickers.index(at) - 100]]
                                                  .data))
    record_like(SPOT, tmp_path / "r", events)
    recording = Recording.open(tmp_path / "r")
    assert recording.spec is not None
    spec = recording.spec.model_copy(update={"max_dedupe_size": 50})
    columns, models = (replay(recording, spec, chunk_events=20_000, columnar=columnar)
                       for columnar in (True, False))  # one chunk
    assert_same(columns, models)
    assert models.stats["duplicates"] == 0
    assert models.frames["bookTicker"].height > len(tickers) + 1_000
    taken = models.frames["trade"].height + models.frames["depth"].height  # all but tickers
    assert taken + 500 < columns.read_in_columns < taken + 1_500


@pytest.mark.parametrize("fault", ["none", "drop", "chain", "repeat"])
def test_the_usdm_depth_diffs_follow_their_chain_in_columns_as_through_models(
        tmp_path: Path, fault: str) -> None:
    # USD-M diffs chain by pu (the last diff's u), not by U: a lost diff, one whose pu
    # names another, and one sent twice each break or bend the chain, and the books,
    # gaps and counts stay the models' at every chunk size; a whole chain is read in
    # columns once the book is synced.
    events, _ = _base(USDM, 2_000)
    depth = _depth_positions(events)
    target = depth[len(depth) // 2]
    if fault == "drop":
        del events[target]
    elif fault == "chain":
        message = json.loads(str(events[target].data))
        message["data"]["pu"] += 1  # as if a diff between were lost: U and u say nothing
        events[target] = Captured("frame", events[target].wall_ns,
                                  json.dumps(message, separators=(",", ":")))
    elif fault == "repeat":
        events.insert(target + 1, events[target])
    record_like(USDM, tmp_path / "r", events)
    for chunk_events in (29, 97, 20_000):
        columns, models = both(tmp_path / "r", chunk_events)
        assert_same(columns, models)
        book = models.book("BTCUSDT")
        assert book.valid == (fault in ("none", "repeat"))
        assert book.stats.gaps == models.stats["sequence_gaps"] == (fault in ("drop", "chain"))
        assert models.stats["duplicates"] == (fault == "repeat")
        if chunk_events == 97 and book.valid:  # all but the chunk of the snapshot, and a
            # few where the repeat is (the diffs after a gap wait for a snapshot instead)
            assert models.frames["depth"].height > 100
            assert columns.read_in_columns > models.stats["frames"] - 97

OPERATIONS = ("duplicate", "drop", "swap", "spaces", "binary", "garble", "reconnect",
              "silence", "step_back", "inexact", "jump")


def mutate(events: list[Captured], operations: list[tuple[str, int, int]],
           first: int = FIRST) -> list[Captured]:
    """``events`` with each operation applied at its place among the frames (from ``first``)."""
    events = list(events)
    for name, where, amount in operations:
        at = first + where % (len(events) - first)
        event = events[at]
        text = event.data if isinstance(event.data, str) else None
        if name == "duplicate":
            events.insert(min(len(events), at + 1 + amount % 7), event)
        elif name == "drop" and len(events) - first > 10:
            del events[at]
        elif name == "swap" and at + 1 < len(events):
            events[at], events[at + 1] = events[at + 1]._replace(wall_ns=event.wall_ns), \
                event._replace(wall_ns=events[at + 1].wall_ns)
        elif name == "spaces" and text is not None and event.kind == "frame":
            try:
                decoded = json.loads(text)
            except ValueError:  # garbled by an operation before: no JSON to respace
                continue
            events[at] = event._replace(data=json.dumps(decoded))
        elif name == "binary" and text is not None and event.kind == "frame":
            events[at] = event._replace(data=text.encode())
        elif name == "garble" and text is not None and event.kind == "frame":
            events[at] = event._replace(data=text[: len(text) // 2])
        elif name == "reconnect":
            events.insert(at, Captured("open", event.wall_ns, "wss://stream.binance.com/stream"))
        elif name == "silence":
            gap = (1 + amount % 90) * 1_000_000_000
            events[at:] = [e._replace(wall_ns=e.wall_ns + gap) if e.wall_ns is not None else e
                           for e in events[at:]]
        elif name == "step_back" and event.wall_ns is not None:
            events[at] = event._replace(wall_ns=event.wall_ns - (1 + amount % 50) * 1_000_000)
        elif name == "inexact" and text is not None and event.kind == "frame":
            events[at] = event._replace(
                data=re.sub(r'"([pbBaAq])":"(\d+)\.(\d+)"', r'"\1":"\2.\g<3>0000000000001"',
                            text, count=1))
        elif name == "jump":  # the next trade's id jumps: a gap, and ids run on from it
            trade = next((i for i in range(at, len(events))
                          if isinstance(events[i].data, str) and "@trade" in events[i].data),
                         None)
            if trade is not None:
                step = 1 + amount
                events[trade] = events[trade]._replace(data=re.sub(
                    r'"t":(\d+)', lambda m, step=step: f'"t":{int(m[1]) + step}',
                    str(events[trade].data), count=1))
    return events


@settings(max_examples=sized(8, 60), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(operations=st.lists(st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 10_000),
                                     st.integers(0, 1_000)), max_size=12),
       chunk_events=st.integers(40, 800), faithful=st.booleans())
def test_a_session_with_faults_replays_alike_in_columns_and_through_models(
        tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, int, int]],
        chunk_events: int, faithful: bool) -> None:
    path = tmp_path_factory.mktemp("faults") / "recording"
    record_like(SPOT, path, mutate(BASE, operations))
    columns, models = both(path, chunk_events, "faithful" if faithful else "complete")
    assert_same(columns, models)


@settings(max_examples=sized(8, 80), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(copies=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 300)), max_size=60),
       operations=st.lists(st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 10_000),
                                     st.integers(0, 1_000)), max_size=4),
       size=st.integers(1, 200), ttl=st.sampled_from([0.05, 0.5, 5.0, 60.0]),
       chunk_events=st.integers(40, 800))
def test_copies_of_earlier_messages_replay_alike_in_columns_whatever_the_cache(
        tmp_path_factory: pytest.TempPathFactory, copies: list[tuple[int, int]],
        operations: list[tuple[str, int, int]], size: int, ttl: float,
        chunk_events: int) -> None:
    # Copies of messages from up to 300 frames back, with a de-dup cache small and short
    # enough that some are repeats and some were forgotten for room or expired: each
    # copy's outcome (duplicate, or ok remembered afresh) is the models'.
    events = mutate(BASE, operations)
    for where, back in copies:
        at = FIRST + where % (len(events) - FIRST)
        source = events[max(FIRST, at - back)]
        if source.kind == "frame":
            events.insert(at + 1, events[at]._replace(data=source.data))
    path = tmp_path_factory.mktemp("copies") / "recording"
    record_like(SPOT, path, events)
    recording = Recording.open(path)
    assert recording.spec is not None
    spec = recording.spec.model_copy(update={"max_dedupe_size": size, "dedupe_ttl": ttl})
    columns, models = (replay(recording, spec, chunk_events=chunk_events, columnar=columnar)
                       for columnar in (True, False))
    assert_same(columns, models)


def test_each_kind_of_fault_keeps_its_outcome_and_the_rest_is_still_read_in_columns(
        tmp_path: Path) -> None:
    # One of each, spread over the session: every fault gets the outcome the models give
    # it, and the channels go on being read in columns in the chunks without one.
    operations = [(name, 37 * (i + 1), 200 + i) for i, name in enumerate(OPERATIONS)]
    record_like(SPOT, tmp_path / "r", mutate(BASE, operations))
    columns, models = both(tmp_path / "r", 60)
    assert_same(columns, models)
    assert models.stats["duplicates"] and models.stats["invalid"] and models.counts.inexact
    assert models.stats["generations"] > 1 and models.stats["sequence_gaps"]
    assert columns.read_in_columns > 100


@pytest.mark.parametrize("chunk_events", [3, 97])
def test_a_message_without_a_receive_time_replays_alike_in_columns(
        tmp_path: Path, chunk_events: int) -> None:
    # The reader leaves out an event without its mono_ns (tests/test_recording.py), but
    # the chunks handed to replay_in_chunks may hold one: here the first trade's and the
    # first ticker's. The check points go on from the time before each, both go through
    # the models (alone in a take of their channel, too), and both paths give them the
    # same outcome.
    record_like(SPOT, tmp_path / "r", BASE)
    recording = Recording.open(tmp_path / "r")
    events = recording.events().with_row_index("i")
    damaged = [events.filter(pl.col("data").str.contains(f'{stream}"', literal=True))["i"][0]
               for stream in ("@trade", "@bookTicker")]
    events = events.with_columns(mono_ns=pl.when(pl.col("i").is_in(damaged)).then(None)
                                 .otherwise(pl.col("mono_ns"))).drop("i")

    def replayed(size: int, columnar: bool) -> ReplayResult:
        return replay_in_chunks(
            recording, spec_for(recording, None), "complete", None, size, None,
            chunks=[events.slice(row, size) for row in range(0, events.height, size)],
            columnar=columnar)

    columns, models = replayed(chunk_events, True), replayed(events.height, False)
    assert_same(columns, models)
    assert models.stats["ok"] == models.stats["frames"] == events.filter(
        pl.col("kind") == "frame").height > 600
    assert columns.read_in_columns > 0


def test_a_stale_stream_recovers_at_the_same_moment_in_columns(tmp_path: Path) -> None:
    # 40 s without bookTicker (its stale threshold is 30 s) while depth and trades go on:
    # the stream goes stale at a check, and recovers at its next message.
    events, shift = [], 0
    for i, event in enumerate(BASE):
        text = event.data if isinstance(event.data, str) else ""
        if i > FIRST + 200 and "@bookTicker" in text and i < FIRST + 400:
            continue  # the silence
        if i == FIRST + 400:
            shift = 40_000_000_000
        events.append(event._replace(wall_ns=event.wall_ns + shift)
                      if event.wall_ns is not None else event)
    record_like(SPOT, tmp_path / "r", events)
    columns, models = both(tmp_path / "r", 50)
    assert_same(columns, models)
    assert [t.stream for t in models.health_transitions].count("bookTicker") >= 2
    assert columns.read_in_columns > 0


def test_the_books_and_normalized_tables_are_those_of_the_models() -> None:
    columns, models = both(SPOT, 300)
    for kind in ("trades", "quotes", "book_changes"):
        assert_frame_equal(columns.normalized(kind), models.normalized(kind))
    assert columns.book("BTCUSDT").valid
    assert columns.read_in_columns > 0


def test_an_adapter_spec_without_layouts_is_replayed_through_its_models() -> None:
    # A spec built by hand from the adapter's channels, layouts removed: nothing is
    # read in columns, and the result is the same.
    recording = Recording.open(SPOT)
    spec = recording.spec
    assert spec is not None
    plain = spec.replace(channels=[c.model_copy(update={"layout": None})
                                   for c in spec.channels])
    without = replay(recording, plain, chunk_events=300)
    assert without.read_in_columns == 0
    assert_same(replay(recording, spec, chunk_events=300), without)


def test_the_layouts_are_those_of_the_market() -> None:
    spot = binance.spec(["btcusdt"], ["trade", "bookTicker"])
    usdm = binance.spec(["btcusdt"], ["trade", "bookTicker"], market="usdm")
    assert spot.channel("bookTicker").layout == binance.LAYOUTS["spot"]["bookTicker"]
    assert usdm.channel("bookTicker").layout == binance.LAYOUTS["usdm"]["bookTicker"]
    # The depth diffs have a layout per market and update speed (the stream name is in
    # the text; USD-M's also hold T and pu).
    assert binance.spec(["btcusdt"], ["depth"]).channel("depth").layout == \
        binance.depth_layout("@depth")
    assert binance.spec(["btcusdt"], ["depth"], depth_speed="100ms").channel(
        "depth").layout == binance.depth_layout("@depth@100ms")
    assert binance.spec(["btcusdt"], ["depth"], market="usdm", depth_speed="0ms").channel(
        "depth").layout == binance.depth_layout("@depth@0ms", "usdm")
    with pytest.raises(ValueError, match="market must be one of"):
        binance.depth_layout("@depth", "coin-m")


# -- specs built by hand: each way a layout or a channel can differ from the adapters' ----


class Tick(BaseModel):
    venue: str | None = None
    symbol: str
    first: int
    price: float
    note: str
    ts: int


TICK = Layout('{"type":"tick","symbol":<symbol:str>,"first":<first:int>,'
              '"price":<price:float>,"note":<note:str>,"ts":<ts:int>}')


def ticks(count: int, *, price: str = "1.5") -> list[str]:
    return [f'{{"type":"tick","symbol":"S{i % 2}","first":{i // 2 + 1},"price":{price},'
            f'"note":"n","ts":{i}}}' for i in range(count)]


def hand_built(tmp_path: Path, texts: list[str], health: bool = True,
               **channel: Any) -> tuple[ReplayResult, ReplayResult]:
    fields = {"name": "tick", "model": Tick, "layout": TICK} | channel
    spec = FeedSpec(url="ws://127.0.0.1:9", type_of=by_field("type"),
                    channels=[Channel(**fields),
                              Channel(name="other", model=Tick, stream="other")],
                    health={"tick": StreamConfig(expected_interval=1, stale_threshold=60)}
                    if health else {})
    recording = Recording.from_frames(tmp_path / "r", texts, spec=spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a layout not used says so; that is tested below
        columns = replay(recording, spec, chunk_events=40)
    models = replay(recording, spec, chunk_events=40, columnar=False)
    assert_same(columns, models)
    return columns, models


def test_a_chain_of_numbers_is_followed_in_columns_to_the_last_int64(tmp_path: Path) -> None:
    # Each tick names the last one's ts in first: a chain. The first tick's first is the
    # largest Int64, so it covers a number past it, which the models report (nothing is
    # expected yet, and no tick before it to compare with: only the wrap could hide it).
    texts = [f'{{"type":"tick","symbol":"S","first":{i - 1},"price":1.5,"note":"n",'
             f'"ts":{i}}}' for i in range(1, 300)]
    texts[0] = texts[0].replace('"first":0', f'"first":{2**63 - 1}')
    columns, models = hand_built(tmp_path, texts, sequence=Chain("first", "ts"))
    assert models.errors and "cannot end before it starts" in models.errors[0]
    assert models.stats["sequence_gaps"] == 0 and columns.read_in_columns > 200


def test_a_stream_without_health_settings_is_never_stale_in_columns(tmp_path: Path) -> None:
    columns, _ = hand_built(tmp_path, ticks(300), health=False, dedupe_key=("symbol", "first"))
    assert columns.read_in_columns > 200


def test_keys_left_out_of_the_layout_are_none_in_columns_too(tmp_path: Path) -> None:
    # venue is not in the layout: every key holds None, as the model gives it.
    columns, models = hand_built(tmp_path, ticks(300), dedupe_key=("venue", "ts"),
                                 sequence="ts", sequence_key="venue")
    assert columns.read_in_columns > 200
    assert models.frames["tick"]["venue"].null_count() == 300


@pytest.mark.parametrize("fault", ["duplicate", "gap", "every key none"])
def test_keys_left_out_of_the_layout_are_none_where_a_fault_is_looked_for(
        tmp_path: Path, fault: str) -> None:
    # The first faulty row is found on the same columns the rows are checked on, venue
    # (left out) None in each: a duplicate, a gap, or a key of venue alone (None in every
    # row: each row after the first a duplicate).
    texts = ticks(300)
    if fault == "duplicate":
        texts.insert(101, texts[100])
    elif fault == "gap":
        del texts[100]
    key: Any = "venue" if fault == "every key none" else ("venue", "ts")
    _, models = hand_built(tmp_path, texts, dedupe_key=key, sequence="ts",
                           sequence_key="venue")
    assert models.stats["duplicates"] + models.stats["sequence_gaps"] > 0


def test_a_sequence_key_named_like_an_aggregate_is_counted_in_columns(tmp_path: Path) -> None:
    columns, _ = hand_built(tmp_path, ticks(300), sequence="ts", sequence_key="first")
    assert columns.read_in_columns > 200


@pytest.mark.parametrize("channel", [{"exchange_time": "note"}, {"sequence": "price"},
                                     {"sequence": "note"}])
def test_extractors_on_fields_that_are_not_ints_keep_the_per_message_path(
        tmp_path: Path, channel: dict[str, str]) -> None:
    # The model path reports each such value; no column path could say the same.
    columns, models = hand_built(tmp_path, ticks(120), **channel)
    assert columns.read_in_columns == 0
    assert models.counts.handler_errors > 0


def test_a_float_written_as_minus_zero_is_the_models_zero(tmp_path: Path) -> None:
    columns, models = hand_built(tmp_path, ticks(120, price="-0"))
    assert models.frames["tick"]["price"].to_list()[0] == 0.0
    assert values(columns.frames["tick"]) == values(models.frames["tick"])


def test_a_layout_that_matches_another_channels_messages_is_not_used(tmp_path: Path) -> None:
    # The type is a placeholder: "other" messages would match too.
    loose = Layout('{"type":<_:str>,"symbol":<symbol:str>,"first":<first:int>,'
                   '"price":<price:float>,"note":<note:str>,"ts":<ts:int>}')
    texts = [t.replace('"tick"', '"other"') if i % 3 == 0 else t
             for i, t in enumerate(ticks(120))]
    with pytest.warns(UserWarning, match="'tick': its layout is not used .* routed to"):
        replay(Recording.from_frames(tmp_path / "w", texts), FeedSpec(
            url="ws://127.0.0.1:9", type_of=by_field("type"),
            channels=[Channel(name="tick", model=Tick, layout=loose),
                      Channel(name="other", model=Tick, stream="other")]), chunk_events=40)
    columns, models = hand_built(tmp_path, texts, layout=loose)
    assert columns.read_in_columns == 0
    assert models.frames["other"].height == 40


def test_a_layout_is_checked_once_a_process_and_a_bad_one_warned_of_at_every_replay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[Layout] = []  # each check of a layout against its model, as made
    check_layout = columnar_module.check_layout

    def counted(layout: Layout, model: type[BaseModel], texts: list[str]) -> list[str]:
        checked.append(layout)
        return check_layout(layout, model, texts)

    columnar_module._read_alike.cache_clear()  # none made before this test
    monkeypatch.setattr(columnar_module, "check_layout", counted)
    loose = Layout('{"type":<_:str>,"symbol":<symbol:str>,"first":<first:int>,'
                   '"price":<price:float>,"note":<note:str>,"ts":<ts:int>}')
    recording = Recording.from_frames(tmp_path / "w", ticks(120))

    def spec(layout: Layout) -> FeedSpec:  # a new spec and channel, as each call builds
        return FeedSpec(url="ws://127.0.0.1:9", type_of=by_field("type"), channels=[
            Channel(name="tick", model=Tick, layout=Layout(layout.template)),
            Channel(name="other", model=Tick, stream="other")])

    for _ in range(3):
        with pytest.warns(UserWarning, match="'tick': its layout is not used .* routed to"):
            replay(recording, spec(loose), chunk_events=40)
    assert len(checked) == 1  # its check against the model: once
    # Another layout is another check; the good one is used.
    good = Layout(loose.template.replace('"type":<_:str>', '"type":"tick"'))
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert replay(recording, spec(good), chunk_events=40).read_in_columns == 120
    assert [layout.template for layout in checked] == [loose.template, good.template]


# -- a book rule of one's own, with a columnar path --------------------------------------


class Diff(BaseModel):
    symbol: str
    seq: int
    bids: list[tuple[float, float]]
    ts: int


DIFF = Layout('{"type":"diff","symbol":<symbol:str>,"seq":<seq:int>,"bids":<bids:levels>,'
              '"ts":<ts:int>}')


class Unlucky(BookRule):
    """Every diff is applied to its symbol's book, valid from the first; a level priced
    13 makes the rule raise, in both paths, after the levels before it are set."""

    channels = frozenset({"diff"})

    def apply(self, books: Books, channel: str, message: Any, mono_ns: int,
              wall_ns: int) -> None:
        book = books.book(message.symbol)
        if not book.valid:
            book.mark_valid(mono_ns)
        self._levels(book, message.bids)
        book.touched(mono_ns, wall_ns, message.ts)

    def takes_rows(self, books: Books, channel: str, rows: pl.DataFrame) -> bool:
        return all(symbol in books.books and books.books[symbol].valid
                   for symbol in rows["symbol"].unique().to_list())

    def apply_rows(self, books: Books, channel: str, rows: pl.DataFrame,
                   report: Any) -> None:
        prices, amounts, ends = level_lists(rows["bids"])

        def change(book: Book, i: int) -> None:
            start = ends[i - 1] if i else 0
            self._levels(book, list(zip(prices[start:ends[i]], amounts[start:ends[i]],
                                        strict=True)))

        books.apply_each(rows, "symbol", "ts", change, report)

    @staticmethod
    def _levels(book: Book, levels: list[tuple[float, float]]) -> None:
        for price, amount in levels:
            if price == 13:
                raise ValueError(f"{book.symbol}: unlucky level {price}")
            book.set("bid", price, amount)


def _diff_spec(rule: BookRule) -> FeedSpec:
    return FeedSpec(url="ws://127.0.0.1:9", type_of=by_field("type"), book_sync=rule,
                    snapshot_interval=0.05,
                    channels=[Channel(name="diff", model=Diff, layout=DIFF, sequence="seq",
                                      sequence_key="symbol", exchange_time="ts")])


def _diffs(count: int) -> list[str]:
    return [f'{{"type":"diff","symbol":"S{i % 2}","seq":{i // 2 + 1},'
            f'"bids":[["{100 + i % 7}","{i % 3}"],["{200 + i % 5}","1.5"]],"ts":{i}}}'
            for i in range(count)]


def test_a_rule_of_ones_own_is_read_in_columns_and_its_errors_are_reported_per_row(
        tmp_path: Path) -> None:
    texts = _diffs(400)
    texts[250] = texts[250].replace('"bids":[', '"bids":[["13","1"],')  # raises, in a chunk
    recording = Recording.from_frames(tmp_path / "r", texts, spec=_diff_spec(Unlucky()))
    spec = _diff_spec(Unlucky())
    columns = replay(recording, spec, chunk_events=40)
    models = replay(recording, spec, chunk_events=40, columnar=False)
    assert_same(columns, models)
    assert columns.read_in_columns > 300
    assert models.errors == ["ValueError: S0: unlucky level 13.0"]
    assert columns.books is not None and columns.books.snapshots().height > 10


class HalfDone(Unlucky):
    """A rule that says yes to rows but cannot apply them: never asked."""

    apply_rows = BookRule.apply_rows  # type: ignore[assignment]


class Gapped(Unlucky):
    """A rule that reacts to other channels' gaps: its books may change among its rows."""

    def on_gap(self, books: Books, channel: str, mono_ns: int) -> None:
        for book in books:
            book.mark_invalid("a gap", mono_ns)


@pytest.mark.parametrize("rule", [HalfDone, Gapped])
def test_a_rule_without_a_whole_columnar_path_keeps_the_per_message_path(
        tmp_path: Path, rule: type[BookRule]) -> None:
    recording = Recording.from_frames(tmp_path / "r", _diffs(200), spec=_diff_spec(rule()))
    columns = replay(recording, _diff_spec(rule()), chunk_events=40)
    assert columns.read_in_columns == 0
    assert_same(columns, replay(recording, _diff_spec(rule()), chunk_events=40,
                                columnar=False))


class TwoChannels(Unlucky):
    """A rule whose books another channel changes too: a snapshot clears its symbol's book.

    Its ``apply_rows`` (Unlucky's) reads every row as a diff: right only while ``snap`` has
    no layout, so that its messages always go through ``apply``.
    """

    channels = frozenset({"diff", "snap"})

    def apply(self, books: Books, channel: str, message: Any, mono_ns: int,
              wall_ns: int) -> None:
        if channel == "snap":
            books.book(message.symbol).clear()
        super().apply(books, channel, message, mono_ns, wall_ns)


def test_a_rule_of_two_channels_is_read_in_columns_after_the_others_last_message(
        tmp_path: Path) -> None:
    # A snapshot (no layout: per message) among a chunk's diffs: the diffs before it must
    # reach the book before it clears the book, as they do one by one.
    texts = _diffs(200)
    for at in (130, 46, 45):
        snap = texts[at].replace('"type":"diff"', '"type":"snap"').replace(
            '"bids":[', '"bids":[["999","1"],')
        texts.insert(at, snap)
    spec = _diff_spec(TwoChannels())
    spec = spec.model_copy(update={"channels": (*spec.channels,
                                                Channel(name="snap", model=Diff))})
    recording = Recording.from_frames(tmp_path / "r", texts, spec=spec)
    columns = replay(recording, spec, chunk_events=40)
    models = replay(recording, spec, chunk_events=40, columnar=False)
    assert_same(columns, models)
    assert models.frames["snap"].height == 3
    # Two of the five chunks of 40 hold a snapshot: their diffs before it go one by one,
    # those after it are read in columns once the snapshot has cleared the book.
    assert 200 - 2 * 38 < columns.read_in_columns < 200


# -- Kraken Futures: a book of one level per message, its snapshots a sibling channel ------


KRAKEN_FUTURES = DATA / "kraken_cryptofeed_2021-07-22_futures_v1_book_trade_ticker"
KRAKEN_BASE, KRAKEN_FIRST = _base(KRAKEN_FUTURES, 3_000)


@pytest.mark.parametrize("chunk_events", [97, 1000, 20_000])
def test_the_kraken_futures_book_levels_are_read_in_columns_as_through_models(
        chunk_events: int, at_once: list[bool]) -> None:
    # Ten products' books: a snapshot each (book_snapshot, per message), then one level a
    # message (book, with a layout). The levels after a chunk's last snapshot are taken in
    # columns and applied to the books at commit.
    columns, models = both(KRAKEN_FUTURES, chunk_events)
    assert_same(columns, models)
    assert models.read_in_columns == 0
    levels = models.frames["book"].height
    assert levels > 7000 and all(book.valid for book in models.books or ())
    assert columns.read_in_columns > 0.95 * levels  # one chunk too: after the snapshots
    assert at_once and all(at_once)  # the levels all at once


def _level_positions(events: list[Captured], product: str | None = None) -> list[int]:
    return [i for i, e in enumerate(events) if isinstance(e.data, str)
            and e.data.startswith('{"feed":"book",')
            and (product is None or f'"product_id":"{product}"' in e.data)]


@pytest.mark.parametrize("fault", ["drop", "repeat", "swap", "snapshot", "reconnect"])
def test_a_kraken_futures_book_with_a_fault_keeps_the_models_book(
        tmp_path: Path, fault: str) -> None:
    # A lost level (a gap: the book waits for a snapshot), one sent twice (de-dup), two
    # swapped (a gap, then old news), a snapshot again mid-stream (the levels before it in
    # its chunk must reach the book before it reloads the book), a new connection.
    events = list(KRAKEN_BASE)
    product = "PI_ETHUSD"
    levels = _level_positions(events, product)
    target = levels[len(levels) // 2]
    if fault == "drop":
        del events[target]
    elif fault == "repeat":
        events.insert(target + 1, events[target])
    elif fault == "swap":
        after = levels[len(levels) // 2 + 1]
        events[target], events[after] = (events[after]._replace(wall_ns=events[target].wall_ns),
                                         events[target]._replace(wall_ns=events[after].wall_ns))
    elif fault == "snapshot":  # the first snapshot again, numbered to join the next level
        events = _snapshot_again(events, len(levels) // 2, product)
    elif fault == "reconnect":
        events.insert(target, Captured("open", events[target].wall_ns,
                                       "wss://futures.kraken.com/ws/v1"))
    record_like(KRAKEN_FUTURES, tmp_path / "r", events)
    for chunk_events in (29, 97, 20_000):
        columns, models = both(tmp_path / "r", chunk_events)
        assert_same(columns, models)
        book = models.book(product)
        assert book.valid == (fault in ("repeat", "snapshot"))
        assert book.stats.snapshots == 1 + (fault == "snapshot")
        assert models.stats["duplicates"] == (fault == "repeat")
        if chunk_events == 97 and fault != "reconnect":  # the others' levels still go in
            # columns (a new connection leaves every book waiting for a snapshot)
            others = models.frames["book"].filter(pl.col("product_id") != product).height
            assert columns.read_in_columns > 0.8 * others


FAULTS = st.lists(st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 10_000),
                            st.integers(0, 1_000)), max_size=12)
"""Operations of :func:`mutate`, for the other exchanges' sessions."""
PLACES = st.lists(st.integers(0, 10_000), max_size=3)
"""Where among a session's messages to change one (modulo their count)."""
FUZZED = settings(max_examples=sized(4, 40), deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZED
@given(operations=FAULTS, snapshots=PLACES,
       inexact=PLACES,
       chunk_events=st.integers(20, 600))
def test_a_kraken_futures_session_with_faults_replays_alike_in_columns(
        tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, int, int]],
        snapshots: list[int], inexact: list[int], chunk_events: int) -> None:
    # Snapshots again mid-stream (a resync's), prices too long to be exact, levels lost,
    # swapped and repeated, reconnects, silences: the books and every count stay the
    # models'.
    events = list(KRAKEN_BASE)
    for where in snapshots:
        events = _snapshot_again(events, where)
    levels = _level_positions(events)
    for where in inexact:  # a price of 17 significant digits, which a float keeps inexactly
        at = levels[where % len(levels)]
        events[at] = events[at]._replace(data=re.sub(
            r'"price":(\d+)(?:\.(\d+))?,', _seventeen_digits, str(events[at].data), count=1))
    assert_alike_with_faults(tmp_path_factory.mktemp("kraken-faults"), KRAKEN_FUTURES,
                             mutate(events, operations, KRAKEN_FIRST), chunk_events)


def assert_alike_with_faults(folder: Path, source: Path, events: list[Captured],
                             chunk_events: int) -> None:
    """``events``, recorded as ``source`` was, replay alike in columns and through models."""
    record_like(source, folder / "recording", events)
    assert_same(*both(folder / "recording", chunk_events))


def _seventeen_digits(price: re.Match[str]) -> str:
    """A ``"price":<number>,`` with its number made 17 significant digits long (a 1 last)."""
    whole, fraction = price[1], price[2] or ""
    fraction = fraction + "0" * max(0, 16 - len(whole) - len(fraction)) + "1"
    return f'"price":{whole}.{fraction},'


def _snapshot_again(events: list[Captured], where: int,
                    product: str | None = None) -> list[Captured]:
    """``events`` with a product's first snapshot sent again before one of its levels.

    Numbered to join that level (as a resync's snapshot is), with the book as it was; the
    level is the ``where``-th of all (modulo their count), or of ``product``'s.
    """
    levels = _level_positions(events, product)
    at = levels[where % len(levels)]
    level = json.loads(str(events[at].data))
    first = next(e for e in events if isinstance(e.data, str)
                 and e.data.startswith('{"feed":"book_snapshot"')
                 and f'"product_id":"{level["product_id"]}"' in e.data)
    snapshot = json.loads(str(first.data)) | {"seq": level["seq"] - 1}
    return [*events[:at], Captured("frame", events[at].wall_ns,
                                   json.dumps(snapshot, separators=(",", ":"))), *events[at:]]


# -- Coinbase Exchange: level changes tagged with their side, ISO times ---------------------


COINBASE = DATA / "coinbase_cryptofeed_2021-04-17_exchange_level2_ticker_matches"


@pytest.mark.parametrize("chunk_events", [97, 1000, 20_000])
def test_the_coinbase_level2_updates_are_read_in_columns_as_through_models(
        chunk_events: int, at_once: list[bool]) -> None:
    # Ten products' books: a snapshot each (per message), then l2update changes (a layout
    # of side-tagged changes and an ISO time), applied to the books at commit.
    columns, models = both(COINBASE, chunk_events)
    assert_same(columns, models)
    updates = models.frames["l2update"].height
    assert updates > 9000 and all(book.valid for book in models.books or ())
    assert columns.read_in_columns > 0.95 * updates  # one chunk too: after the snapshots
    assert at_once and all(at_once)  # the changes all at once


def _coinbase_snapshot_again(events: list[Captured], where: int) -> list[Captured]:
    """``events`` with a product's snapshot sent again before one of its updates."""
    updates = [i for i, e in enumerate(events) if isinstance(e.data, str)
               and e.data.startswith('{"type":"l2update"')]
    at = updates[where % len(updates)]
    product = json.loads(str(events[at].data))["product_id"]
    snapshot = next(e for e in events if isinstance(e.data, str)
                    and e.data.startswith('{"type":"snapshot"')
                    and f'"product_id":"{product}"' in e.data)
    return [*events[:at], snapshot._replace(wall_ns=events[at].wall_ns), *events[at:]]


COINBASE_BASE, COINBASE_FIRST = _base(COINBASE, 2_000)


@FUZZED
@given(operations=FAULTS, snapshots=PLACES,
       unknown=PLACES,
       chunk_events=st.integers(20, 600))
def test_a_coinbase_session_with_faults_replays_alike_in_columns(
        tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, int, int]],
        snapshots: list[int], unknown: list[int], chunk_events: int) -> None:
    # Snapshots again mid-stream (the updates before one, in its chunk, must reach the
    # book before it reloads it), updates of a product with no book, updates lost, swapped,
    # repeated and garbled, reconnects, silences: the books and every count stay the
    # models'.
    events = list(COINBASE_BASE)
    for where in snapshots:
        events = _coinbase_snapshot_again(events, where)
    for where in unknown:
        at = COINBASE_FIRST + where % (len(events) - COINBASE_FIRST)
        text = events[at].data
        if isinstance(text, str) and text.startswith('{"type":"l2update"'):
            events[at] = events[at]._replace(
                data=re.sub(r'"product_id":"[^"]*"', '"product_id":"NEW-USD"', text))
    assert_alike_with_faults(tmp_path_factory.mktemp("coinbase-faults"), COINBASE,
                             mutate(events, operations, COINBASE_FIRST), chunk_events)


def test_a_coinbase_snapshot_again_mid_stream_comes_after_the_updates_before_it(
        tmp_path: Path) -> None:
    # Its chunk goes through the models; the chunks around it are still read in columns.
    events = _coinbase_snapshot_again(list(COINBASE_BASE), 1_000)
    for chunk_events in (29, 97):
        assert_alike_with_faults(tmp_path / str(chunk_events), COINBASE, events, chunk_events)
    columns, models = both(tmp_path / "97" / "recording", 97)
    assert models.frames["snapshot"].height == 11
    assert columns.read_in_columns > 0.8 * models.frames["l2update"].height


@pytest.fixture(scope="module")
def books_with_closes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Live recordings of the simulator's books, each over three connections, each closed
    by the server once every book is valid: the books go invalid at each close, and sync
    afresh on each new connection (Binance from its REST snapshot, Kraken Futures from
    its in-band one)."""
    fast = ConnectionConfig(reconnect=ReconnectConfig(
        backoff=BackoffConfig(initial_delay=0.05, max_delay=0.1, jitter=0.0)))
    channels = {"binance": ["bookTicker", "depth", "trade"],
                "kraken-futures": ["book", "trade"]}
    made = {}

    async def record(profile: str, wanted: list[str], path: Path) -> None:
        rates = {"trade": 40.0, "ticker": 40.0, "book": 200.0}
        async with Simulator(profile, seed=37, rates=rates) as sim, Feed(
                sim.spec(channels=wanted, connection=fast), record_to=path) as feed:
            for generation in (1, 2, 3):
                await eventually(lambda generation=generation: (
                    feed.generation == generation and feed.books.height == 2
                    and bool(feed.books["valid"].all())
                    and int(feed.books["updates"].min()) > 150 * generation),  # type: ignore[operator]
                    within=20.0, what=f"connection {generation}, its books valid")
                if generation < 3:
                    await sim.disconnect()

    for profile, wanted in channels.items():
        path = made[profile] = tmp_path_factory.mktemp(profile) / "recording"
        asyncio.run(record(profile, wanted, path))
    return made


@pytest.mark.parametrize("profile", ["binance", "kraken-futures"])
@pytest.mark.parametrize("chunk_events", [50, 20_000])
def test_books_closed_with_their_connections_replay_alike_in_columns(
        books_with_closes: dict[str, Path], profile: str, chunk_events: int) -> None:
    columns, models = both(books_with_closes[profile], chunk_events)
    assert_same(columns, models)
    assert models.books is not None
    changes = models.books.transition_frame()
    assert changes.filter(reason=DISCONNECTED).height == 2 * 2  # two books, two closes
    books = set(models.books.sync.channels)
    others = sum(frame.height for name, frame in models.frames.items() if name not in books)
    assert columns.read_in_columns > others  # book rows too, between the closes
