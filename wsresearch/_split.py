"""One long recording exported by several processes, split where its connections begin.

An export's rows after a new connection depend on what came before it through one thing
only: the de-dup caches (a message repeated across a reconnect is a duplicate). Sequence
expectations are forgotten at a new connection, and every order book waits for the new
connection's snapshot. So a recording splits at ``open`` events into parts of about equal
length, and each part is replayed in its own process:

- first the messages of the ``2 * dedupe_ttl`` before its first ``open`` (a *warm-up*,
  whose rows are let go), which fill the caches as the whole replay had them at that point
  in all but contrived cases;
- then its own events, whose rows are staged as a one-process export stages them.

Whether the warm-up got the caches right is then checked, not assumed: each part reports
its caches' state (:meth:`~wsresearch.dedupe.DedupeCache.state`) when its own events begin,
and the part before it reports its state when they end. Where the two differ, the part is
replayed again from the state handed over, one part after the other. The dataset is then
the one a single process writes, file for file (``tests/test_split.py``).

So are its warnings. A part's process would print them to its own standard error, which a
notebook never shows and the caller's filters never see: each part records them and hands
them back, and the parent warns of each once (:func:`_told`), as the serial export does.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ._catalog import process_pool
from ._rows import HeldRows
from ._warn import held, warn
from .clock import NS_PER_S
from .errors import DamagedSegmentWarning, NothingKeptWarning
from .exchanges import rebuild
from .normalize import is_stateful
from .pipeline import Pipeline, QuoteSource
from .recording import Recording
from .replay import Garbled, Kept, replay_in_chunks
from .spec import KEPT_FIELDS, FeedSpec, SpecOrigin

__all__ = ["Part", "plan", "run_part", "run_parts", "splittable"]

log = logging.getLogger(__name__)

State = dict[str, list[tuple[Hashable, int | float]]]


@dataclass(frozen=True)
class Part:
    """A part of a recording: its own events ``[start, end)`` by ``seq``, replayed from ``warm``."""

    warm: int
    start: int
    end: int | None  # None: to the end of the recording


@dataclass
class _Done:
    """What a part's process hands back."""

    rows: dict[str, int]
    kinds: dict[str, int]
    partitions: list[Any]
    timeline: HeldRows
    state_at_start: State
    state_at_end: State
    events: int
    """Its own events, a damaged segment's incomplete ones left out (the warm-up's not)."""
    head: list[str | None]
    """Its first events' data (up to 16): the parts' in order begin the recording's (its id)."""
    kept: Kept
    """What its own events kept and rejected (the warm-up's not): the parts' sum is the
    serial replay's."""
    garbled: Garbled
    """Its own messages a damaged segment garbled (the warm-up's are the part before's)."""
    warnings: list[Warning]


def whole_origin(spec: FeedSpec) -> SpecOrigin:
    """``spec``'s origin, with every kept field as ``spec`` has it (``KEPT_FIELDS``).

    A part rebuilds from it exactly the spec the parent exports, whichever way those fields
    were set: by ``replace`` (which the origin keeps already), by pydantic's ``model_copy``
    or by the constructor (which it does not).
    """
    assert spec.origin is not None  # checked by splittable()
    fields = {name: getattr(spec, name) for name in KEPT_FIELDS if name != "book_sync"}
    if spec.book_sync is None:
        fields["book_sync"] = None
    return spec.origin.with_replaced(fields)


def splittable(spec: FeedSpec, normalized: bool) -> str | None:
    """Why ``spec``'s export cannot be split, or ``None`` when it can.

    A part's process rebuilds the spec from its origin (a spec holds functions, which do
    not cross processes); a normalizer that carries state (:func:`~wsresearch.normalize.stateful`)
    needs all its channel's rows in one process.
    """
    if spec.origin is None:
        return "its spec was built or changed by hand (no adapter origin to rebuild it from)"
    if normalized and any(is_stateful(n) for c in spec.channels for n in c.normalized.values()):
        return "a normalized table of its spec carries state from row to row"
    return None


def plan(recording: Recording, parts: int, ttl_s: float) -> list[Part]:
    """Split ``recording`` at ``open`` events into at most ``parts`` parts of about equal events.

    Each part begins at the ``open`` nearest to its share of the events.

    Two passes over the ``seq``, ``kind`` and ``mono_ns`` columns of each segment: the opens
    and the count, then where each part's warm-up begins (the first event whose running maximum
    receive time reaches ``2 * ttl_s`` before the part's first ``open``).
    """
    total = 0
    opens: list[tuple[int, int, int]] = []  # (event index, seq, mono_ns)
    for chunk in recording.columns(["kind", "mono_ns"]):
        opened = chunk.with_row_index("i").filter(pl.col("kind") == "open")
        opens += [(total + i, seq, mono) for i, seq, mono in
                  opened.select("i", "seq", "mono_ns").iter_rows()]
        total += chunk.height
    chosen: list[tuple[int, int]] = []  # (seq, mono) of each part's first open
    inner = [o for o in opens if o[0] > 0]
    for k in range(1, parts):
        target = total * k // parts
        if not inner:
            break
        nearest = min(inner, key=lambda o: abs(o[0] - target))
        if not chosen or nearest[1] > chosen[-1][0]:
            chosen.append((nearest[1], nearest[2]))
    if not chosen:
        return [Part(warm=0, start=0, end=None)]
    window = round(2 * ttl_s * NS_PER_S)
    warm: list[int | None] = [None] * len(chosen)
    reach: int | None = None
    for chunk in recording.columns(["kind", "mono_ns"]):
        maxima = chunk["mono_ns"].cum_max()
        if reach is not None:
            maxima = maxima.clip(lower_bound=reach)
        reach = int(maxima[-1])
        for k, (_, mono) in enumerate(chosen):
            if warm[k] is None:
                hits = chunk.filter(maxima >= mono - window)
                if hits.height:
                    warm[k] = int(hits["seq"][0])
        if all(w is not None for w in warm):
            break
    starts = [seq for seq, _ in chosen]
    found: list[Part] = [Part(warm=0, start=0, end=starts[0])]
    for k, start in enumerate(starts):
        begin = warm[k]
        found.append(Part(warm=start if begin is None else min(begin, start), start=start,
                          end=starts[k + 1] if k + 1 < len(starts) else None))
    return found


def _pieces(recording: Recording, part: Part, chunk_events: int) -> Iterator[pl.DataFrame]:
    """The events of ``part`` from its warm-up on, each chunk cut at its ``start``."""
    seq = pl.col("seq")
    for chunk in recording.chunks(chunk_events, start=part.warm):
        if part.end is not None and chunk["seq"][0] >= part.end:
            return  # in seq order: nothing later is this part's
        if part.end is not None:
            chunk = chunk.filter(seq < part.end)
        chunk = chunk.filter(seq >= part.warm)
        before, after = chunk.filter(seq < part.start), chunk.filter(seq >= part.start)
        if before.height:
            yield before
        if after.height:
            yield after


def run_part(path: str, origin: SpecOrigin, url: str, normalized: bool, chunk_events: int,
             part: Part, state: State | None, staging: str, root: str,
             quotes: QuoteSource | None) -> _Done:
    """Replay and stage one part (in a process of its own); ``state``: caches handed over.

    The spec is its ``origin``'s, pointed at ``url``, with the fields the origin keeps as
    replaced (:attr:`~wsresearch.spec.SpecOrigin.replaced`). Its warnings are not shown
    but handed back, every one, for the parent to show.
    """
    with warnings.catch_warnings(record=True, action="always") as caught:
        done = _run_part(path, origin, url, normalized, chunk_events, part, state, staging,
                         root, quotes)
    done.warnings = [_portable(w.message, w.category) for w in caught]
    return done


def _portable(message: Warning | str, category: type[Warning]) -> Warning:
    """A recorded warning that crosses to the parent process as it is, or as its text."""
    if isinstance(message, DamagedSegmentWarning | NothingKeptWarning):
        return message  # pickled by what it says, not its text
    try:
        return category(str(message))
    except Exception:  # a category that takes no text: its text all the same
        return UserWarning(str(message))


def _told(found: list[Warning]) -> list[Warning]:
    """The parts' warnings, each once, in the order first given.

    Parts read the same segment file where it straddles their boundary or their warm-up
    reaches back into it, and a part that stops inside a file has read only its first
    pieces: of a damaged file's warnings, the one that counts the most left out is the
    count of the whole file (the part that reads its last event reads all of it), which
    is what the serial export says.
    """
    kept: dict[object, Warning] = {}
    for message in found:
        if isinstance(message, DamagedSegmentWarning):
            before = kept.get(message.file)
            if not isinstance(before, DamagedSegmentWarning) or (
                    message.left_out > before.left_out):
                kept[message.file] = message
        else:
            kept.setdefault((type(message), str(message)), message)
    return list(kept.values())


def _run_part(path: str, origin: SpecOrigin, url: str, normalized: bool, chunk_events: int,
              part: Part, state: State | None, staging: str, root: str,
              quotes: QuoteSource | None) -> _Done:
    """:func:`run_part`, its warnings shown."""
    from .export import _Export

    with held():  # let go: what the listing skips, the parent's open told of
        recording = Recording.open(path)
    spec = rebuild(origin, url, source=path)
    export = _Export(Path(root), recording, spec, normalized, Path(staging), quotes=quotes)
    start_state: State = {}
    kept_before = Kept()  # what the warm-up kept
    replayed: list[Pipeline] = []
    pieces = _pieces(recording, part, chunk_events)
    first = next(pieces, None)

    def begin(pipeline: Pipeline) -> None:
        nonlocal start_state
        replayed.append(pipeline)
        if first is not None and first["kind"][0] != "open":
            # The warm-up starts inside a connection the whole replay opened earlier: its
            # messages are that connection's, not old ones.
            pipeline.open_generation(int(first["generation"][0]))
        if state is not None:
            pipeline.parser.load_dedupe_state(state)
        start_state = pipeline.parser.dedupe_state()

    def take(pipeline: Pipeline, events: pl.DataFrame) -> None:
        nonlocal start_state, kept_before
        if int(events["seq"][-1]) < part.start:  # warm-up: its rows are the part before's
            pipeline.take()
            start_state = pipeline.parser.dedupe_state()
            kept_before = Kept.of(pipeline.counts)
            return
        export.take(pipeline, events)

    garbled = Garbled(since=part.start)
    replay_in_chunks(recording, spec, "complete", None, chunk_events, take,
                     chunks=itertools.chain([] if first is None else [first], pieces),
                     before=begin, garbled=garbled, tell_kept=False)
    pipeline = replayed[0]
    return _Done(export.rows, export.kinds, export.staging.partitions, export.timeline,
                 start_state, pipeline.parser.dedupe_state(), export.events, export.head,
                 Kept.of(pipeline.counts).since(kept_before), garbled, [])


def run_parts(recording: Recording, spec: FeedSpec, normalized: bool, chunk_events: int,
              parts: list[Part], staging: Path, root: Path, workers: int,
              quotes: QuoteSource | None) -> list[_Done]:
    """Every part, ``workers`` at a time, then checked and mended in order."""
    path = str(recording.path)
    origin = whole_origin(spec)
    jobs = [(path, origin, spec.url, normalized, chunk_events, part, None, str(staging),
             str(root), quotes) for part in parts]
    with process_pool(workers) as pool:
        futures = [pool.submit(run_part, *job) for job in jobs]
        try:
            done = [future.result() for future in futures]
        except BaseException:  # a part failed, or Ctrl-C: start no other part
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    for k in range(1, len(parts)):
        handed = done[k - 1].state_at_end
        if done[k].state_at_start != handed:  # the warm-up missed: again, from the hand-over
            log.info("part %d of %s: its warm-up missed the de-dup state handed over; "
                     "replayed again from it", k + 1, path)
            redo = Part(warm=parts[k].start, start=parts[k].start, end=parts[k].end)
            done[k] = run_part(path, origin, spec.url, normalized, chunk_events, redo,
                               handed, str(staging), str(root), quotes)
    for message in _told([w for part in done for w in part.warnings]):
        warn(message)
    Garbled(flags_lost=sum(part.garbled.flags_lost for part in done),
            garbled=sum(part.garbled.garbled for part in done)).tell(path)
    sum((part.kept for part in done), Kept()).tell(recording, spec)
    return done
