"""A replay's columnar path: the messages of channels with a layout, a chunk at a time.

For each chunk of a recording, :meth:`Columnar.take` decodes the messages that match a
channel's :class:`~wsresearch.layout.Layout` into that channel's columns, in native code,
and takes the channel's messages out of the per-message path when it can prove the
outcome is the same: every message of the channel in the chunk matches its layout (those
that do not are routed as the parser would route them), each de-dup key is new or a
duplicate the cache still remembers (:meth:`DedupeCache.repeats
<wsresearch.dedupe.DedupeCache.repeats>`), the sequence numbers of the others run on from
where each key expects, and no message holds a number long enough to be inexact. Those
are the messages that would each be ``ok`` or a duplicate, without a gap, an error or an
event. A channel that fails any of it keeps the per-message path for the chunk. A message
that keeps a channel out of a chunk (one of its own that its layout does not match, or a
sibling's: below) keeps it out only up to that message: the replay processes the chunk to
there, and takes the channel's messages after its last such message from the state they
left (:attr:`Taking.later`).

What is taken is committed in order, per channel (:class:`Taken`): the de-dup keys at
once (:meth:`DedupeCache.remember <wsresearch.dedupe.DedupeCache.remember>`), the
sequence runs per key (:meth:`SequenceTracker.observe_runs
<wsresearch.sequence.SequenceTracker.observe_runs>`), the rows as one column chunk
(:meth:`FrameStore.extend_frame <wsresearch.frames.FrameStore.extend_frame>`), and a book
channel's rows to the books (:meth:`BookRule.apply_rows
<wsresearch.book.BookRule.apply_rows>`). Health hears each interval between two stops of
the replay as the per-message path would tell it. Only state no other message of the
chunk reads is touched, so the order of commits among channels does not matter: a
channel's health stream and sequence group are its own, or shared only with the other
book channels of its rule (a Kraken Futures ``book_snapshot`` and its ``book`` levels
share all three, and the books), and then it is taken only after the last of their
messages in the chunk; a book channel, only where its rule reacts to no other channel's gap
and no REST response comes among its rows. Only a channel's own per-message fall-back
(its stream was stale) needs its commits before it, which :meth:`Taken.commit` gives.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Hashable, Iterable, Set
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl
from pydantic import BaseModel

from ._limits import INT64_MAX
from ._warn import warn
from .book import BookRule
from .frames import META_COLUMNS, polars_schema
from .layout import Layout, check_layout
from .parser import DUPLICATE, OK
from .pipeline import Pipeline
from .sequence import Numbers
from .spec import CONNECTION_GROUP, Channel, FeedSpec

__all__ = ["Columnar", "Decoded", "Taken", "Taking"]

_SPLIT_MIN = 1_000
"""Rows of a channel after a faulty message in a chunk for the replay to take them after it
(a take costs a few milliseconds; through the models, a message some µs)."""

_QUICK = 8
"""Takes after a faulty message a channel gets per chunk where fewer than
:data:`_SPLIT_MIN` of its rows came before the message: past them, a burst of faults goes
through the models (after one with :data:`_SPLIT_MIN` rows or more before it, a take
always comes)."""


_CHUNK = (
    pl.int_range(pl.len(), dtype=pl.Int64).alias("__position"),
    pl.col("generation").alias("__generation"), pl.col("mono_ns").alias("__mono"),
    pl.col("wall_ns").alias("__wall"), pl.col("seq").alias("__seq"), pl.col("data"),
    (~pl.col("binary") & pl.col("data").is_not_null() & pl.col("generation").is_not_null()
     & pl.col("mono_ns").is_not_null()).alias("__plain"))
"""A chunk's messages as :meth:`Columnar.decode`'s queries read them (those a damaged file
left without a connection or a receive time are left to the models)."""
_KEEP = ("__position", "__generation", "__mono", "__wall", "__seq")
"""The columns of :data:`_CHUNK` a decoded row keeps beside its values."""


class Decoded:
    """One channel's messages of a chunk that its layout read, with what judging them needs.

    All of it reads no replay state, so :meth:`Columnar.decode` makes it in the read-ahead
    thread, beside the chunk before; a take picks the part it may take (:meth:`between`)
    and judges it against the state, with a few array steps and no polars query.

    Attributes
    ----------
    rows
        A row per message as the channel's frames hold it: the model's fields (those the
        layout leaves out null, as the model's default ``None``) and :data:`META_COLUMNS`.
    positions
        Each row's message: its index among the chunk's messages, ascending.
    generations
        Each message's connection.
    mono
        Each message's receive time (monotonic ns).
    keys
        Each row's de-dup key (``None``: the channel has none).
    earlier
        For each row, the last row before it among these with the same de-dup key (-1:
        none); ``None`` where that is not known (no key, or a key with a field whose
        equality polars and Python might judge otherwise, such as a float's -0.0).
    numbers
        The rows' sequence numbers (``None``: the channel has none, or they are not
        ``Int64``, which the models judge).
    """

    __slots__ = ("earlier", "generations", "keys", "mono", "numbers", "positions", "rows")

    def __init__(self, rows: pl.DataFrame, positions: npt.NDArray[np.int64],
                 generations: npt.NDArray[np.int64], keys: list[Hashable] | None,
                 numbers: Numbers | None,
                 earlier: npt.NDArray[np.int64] | None = None) -> None:
        self.rows, self.positions, self.generations = rows, positions, generations
        self.mono: npt.NDArray[np.int64] = rows["recv_mono_ns"].to_numpy()
        self.keys, self.numbers, self.earlier = keys, numbers, earlier

    @classmethod
    def of(cls, channel: Channel, frame: pl.DataFrame) -> Decoded:
        """From the query :meth:`Columnar.decode` collects for ``channel``."""
        rows = frame.drop("__position", "__generation")
        keyed = channel.dedupe_key is not None
        return cls(rows, frame["__position"].to_numpy(), frame["__generation"].to_numpy(),
                   _keys(channel, rows) if keyed else None,
                   None if channel.sequence is None else Numbers.of(
                       rows, _sequence_key(channel), *channel.sequence_bounds()),
                   _earlier(rows, channel.field_names["dedupe_key"]) if keyed else None)

    @property
    def height(self) -> int:
        """Its rows."""
        return self.rows.height

    def part(self, index: slice | npt.NDArray[np.intp]) -> Decoded:
        """The rows at ``index``: a slice, or positions ascending."""
        keys, earlier = self.keys, self.earlier
        if isinstance(index, slice):
            start, stop, _ = index.indices(self.height)
            rows = self.rows.slice(start, max(stop - start, 0))
            keys = None if keys is None else keys[index]
            if earlier is not None:  # a row's earlier twin outside the slice is no twin
                earlier = earlier[start:stop]
                earlier = np.where(earlier >= start, earlier - start, -1)
        else:
            rows = self.rows[pl.Series(index, dtype=pl.Int64)]
            keys = None if keys is None else [keys[i] for i in index.tolist()]
            earlier = None  # a twin left out may hide an earlier one kept: not known
        return Decoded(rows, self.positions[index], self.generations[index], keys,
                       None if self.numbers is None else self.numbers.part(index), earlier)

    def between(self, start: int, end: int, generation: int) -> Decoded:
        """The rows of messages ``start`` to ``end - 1`` of connection ``generation``."""
        low, high = np.searchsorted(self.positions, (start, end)).tolist()
        mine = self.generations[low:high] == generation
        if mine.all():
            return self.part(slice(low, high))
        return self.part(low + np.flatnonzero(mine))

    def head(self, count: int) -> Decoded:
        """The first ``count`` rows."""
        return self.part(slice(0, count))

    def ascending(self) -> bool:
        """Whether the receive times never go back."""
        return bool((np.diff(self.mono) >= 0).all())


class Taken:
    """One channel's messages of one chunk, decoded, committed to the pipeline in order.

    Each is ``ok`` or, where ``repeats`` flags it, a duplicate: counted at its commit and
    heard by health, with no row, number or book change.

    Attributes
    ----------
    channel
        The channel.
    positions
        Each row's message: its index among the chunk's messages, ascending.
    recv_mono
        Each row's receive time (monotonic ns), for health.
    """

    def __init__(self, pipeline: Pipeline, channel: Channel, found: Decoded,
                 books: bool, repeats: npt.NDArray[np.bool_] | None,
                 kept: Decoded | None) -> None:
        self.pipeline = pipeline
        self.channel = channel
        self.books = books
        """Whether its rows change the order books (applied as they are committed)."""
        self.stream = channel.stream_name
        self.positions: list[int] = found.positions.tolist()
        self.recv_mono: list[int] = found.mono.tolist()
        self.position_array, self.mono_array = found.positions, found.mono
        """:attr:`positions` and :attr:`recv_mono` as arrays, for judging many at once."""
        # The rows that are not duplicates (``kept``; None: all), and their places among
        # all: health hears every message, a duplicate too; the cache, the numbers, the
        # frames and the books only these.
        self._kept = None if repeats is None else np.flatnonzero(~repeats)
        ok = found if kept is None else kept
        self._rows, self._keys, self._numbers = ok.rows, ok.keys, ok.numbers
        self._times = self.recv_mono if kept is None else ok.mono.tolist()
        self.done = 0  # rows committed, or handed to the per-message path
        self.due = 0  # rows whose interval has passed: to commit before the channel is used

    def commit(self) -> None:
        """Commit the rows whose interval has passed and that are not committed yet.

        A duplicate among them is counted; the others are ``ok``.
        """
        low, high = self.done, self.due
        if high <= low:
            return
        self.done = high
        pipeline, channel = self.pipeline, self.channel
        if self._kept is not None:
            kept_low, kept_high = np.searchsorted(self._kept, (low, high)).tolist()
            pipeline.parser.counts[DUPLICATE] += (high - low) - (kept_high - kept_low)
            low, high = kept_low, kept_high
            if high == low:
                return
        if self._keys is not None:
            cache = pipeline.parser.cache(channel.name)
            assert cache is not None  # a channel with a dedupe_key has its cache
            cache.remember(self._keys[low:high], self._times[low:high])
        rows = self._rows.slice(low, high - low)
        names = channel.field_names
        if channel.sequence is not None:
            # A channel's rows are taken only where their numbers are (Columnar._first_break).
            assert self._numbers is not None
            numbers = self._numbers.part(slice(low, high))
            assert numbers is not None  # some rows: high > low
            found = list(numbers.runs().iter_rows())
            pipeline.sequences.observe_runs(
                channel.sequence_group_name, {k: (first, last) for k, first, last, _, _ in found},
                pipeline.generation,
                {k: n for k, _, _, n, _ in found} if len(names["sequence"]) > 1 else None)
        pipeline.parser.counts[OK] += high - low
        pipeline.store.extend_frame(channel.name, rows)
        if self.books:
            books = pipeline.books
            assert books is not None  # a book channel's pipeline keeps books
            books.apply_rows(channel.name, rows, pipeline.report)  # each row's error reported

    def skip_to(self, row: int) -> None:
        """Rows before ``row`` went through the per-message path: nothing to commit."""
        self.done = self.due = row


class Taking(NamedTuple):
    """What :meth:`Columnar.take` took of a chunk, and what it may take later."""

    taken: dict[str, Taken]
    """Per channel taken, its rows."""
    later: dict[int, set[str]]
    """Per message position, the channels that may be taken from the message after it
    (:meth:`Columnar.take` with ``start`` one past it and ``only`` them), once the
    replay has processed it: the last message of the chunk that keeps them out, or the
    first that would not be ``ok``."""
    until: dict[str, int]
    """Per channel taken up to a message that would be neither ``ok`` nor a duplicate
    judged in columns (a key remembered afresh, a sequence gap), that message's position:
    the channel's rows are to be committed before it, which goes through the per-message
    path."""


class Columnar:
    """Which channels of a pipeline's spec a replay can take in columns, and taking them.

    A channel qualifies when it has a layout, every extractor it has is a field name
    (``exchange_time`` a single one, ``sequence`` one or a range's two), and no other
    channel shares its health stream or sequence group. A book channel qualifies where
    its exchange's rule has a columnar path (:meth:`BookRule.takes_rows
    <wsresearch.book.BookRule.takes_rows>`): its rows are taken only where the rule
    accepts them, and applied to the books as they are committed. It may share its
    stream, sequence group and books with the rule's other channels (a Kraken Futures
    ``book`` with its ``book_snapshot``): these are its *siblings*, and it is taken only
    after the last of their messages in a chunk.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        spec = pipeline.spec
        sync = spec.book_sync
        self.book_channels = frozenset() if sync is None else frozenset(sync.channels)
        # A rule's books may be changed at commit only where nothing else changes them
        # among its rows: no gap of another channel reaching them; its other channels are
        # siblings (take() keeps them apart), REST responses and new connections the
        # driver keeps apart.
        columnar_books = (sync is not None
                          and type(sync).takes_rows is not BookRule.takes_rows
                          and type(sync).apply_rows is not BookRule.apply_rows
                          and not sync.acts_on_gaps())
        every = {c.name: _siblings(c, spec, self.book_channels) for c in spec.channels}
        self.channels = {c.name: c for c in spec.channels
                         if (c.name not in self.book_channels or columnar_books)
                         and _own_state(c, spec, self.book_channels, every[c.name])
                         and _holds_its_promise(c, pipeline)}
        self._queries = {name: self._query(c) for name, c in self.channels.items()}
        siblings = {name: every[name] for name in self.channels}
        self.siblings = siblings
        """Per channel taken in columns, the channels whose messages keep it out of a chunk
        up to the last of them."""
        # Per channel of the spec (and book channel of the rule), the channels its messages
        # keep out of a chunk up to the last of them: itself (its messages the layout did
        # not match) and those whose sibling it is.
        self._ruled_out = {name: frozenset({name} | {taken for taken, theirs in siblings.items()
                                                      if name in theirs})
                           for name in {*spec.channel_names, *self.book_channels}}
        self.monitored = frozenset(pipeline.health.streams)
        """The health streams judged; a stream not among them is never stale."""
        self._quick: dict[str, int] = {}  # per channel, this chunk's quick retakes

    def stale(self, stream: str) -> bool:
        """Whether ``stream`` is stale now (its next message makes it recover)."""
        return stream in self.monitored and not self.pipeline.health.is_stream_healthy(stream)

    def __bool__(self) -> bool:
        return bool(self.channels)

    def decode(self, messages: pl.DataFrame) -> dict[str, Decoded]:
        """Each channel's messages in a chunk that its layout matches, decoded.

        Work on the chunk alone, in native code, that reads no state: it may run in
        another thread while the chunk before is processed
        (:func:`~wsresearch.replay.replay_in_chunks`), and :meth:`take` picks from it what
        the state allows.

        Parameters
        ----------
        messages
            The chunk's messages, in order: ``generation``, ``mono_ns``, ``wall_ns``,
            ``seq``, ``data`` (text) and ``binary``.

        Returns
        -------
        dict[str, Decoded]
            Per channel, its messages that its layout matches (those of a known
            connection), as rows and what a take judges them by.
        """
        chunk = messages.select(_CHUNK).lazy()
        # The layouts' regular expressions run together, a core each.
        found = pl.collect_all([query(chunk) for query in self._queries.values()])
        return {name: Decoded.of(self.channels[name], frame)
                for name, frame in zip(self._queries, found, strict=True)}

    def _query(self, channel: Channel) -> Callable[[pl.LazyFrame], pl.LazyFrame]:
        """How :meth:`decode` reads ``channel``'s messages of a chunk (:data:`_CHUNK`).

        Its expressions are built once, here: a chunk's query costs less to plan than they
        do to build.
        """
        layout = channel.layout
        assert layout is not None
        mine = pl.col("__plain") & pl.col("data").str.contains(layout.anchor, literal=True)
        decode = layout._decoder("data", _KEEP, exact=True)
        matched = pl.col(next(iter(layout.fields))).is_not_null()
        time = channel.field_names.get("exchange_time")
        # The rows as the frames hold them: the model's fields (those the layout leaves
        # out, the model's None) and the metadata; generation, the message's own (only
        # messages of the pipeline's connection are taken).
        meta = {
            "recv_wall_ns": pl.col("__wall"),
            "recv_mono_ns": pl.col("__mono"),
            "generation": pl.col("__generation"),
            "exchange_ns": (pl.col(time[0]) if time and time[0] in layout.fields
                            else pl.lit(None)),
            "frame_seq": pl.when(pl.col("__seq") >= 0).then(pl.col("__seq")),
        }
        columns = [
            "__position", "__generation",
            *(pl.col(field) if field in layout.fields
              else pl.lit(None, dtype=dtype).alias(field)
              for field, dtype in polars_schema(channel.model).items()),
            *(meta[column].cast(dtype).alias(column)
              for column, dtype in META_COLUMNS.items())]
        return lambda chunk: decode(chunk.filter(mine)).filter(matched).select(columns)

    def take(self, messages: pl.DataFrame, payload: Callable[[int], str | bytes],
             start: int = 0, books: bool = True,
             decoded: dict[str, Decoded] | None = None,
             only: Set[str] | None = None, end: int | None = None) -> Taking:
        """The channels taken in columns for one chunk, with their rows.

        Parameters
        ----------
        messages
            The chunk's messages to process, in order, as for :meth:`decode`.
        payload
            The payload of the message at a position, as the per-message path gets it
            (only those the layouts do not match are asked for, to route them).
        start
            The first message to take: those before it have been processed (the rest of
            a chunk after a connection in it opened, or after the message
            :attr:`Taking.later` named).
        end
            One past the last message to take (``None``: the chunk's end). No connection
            may open among the messages taken, ``start`` to ``end``: the generation and
            every sequence expectation change there, so they end where the next opens.
        books
            Whether book channels may be taken: not where anything else changes the
            books among the messages (a REST snapshot), since their rows are applied
            to the books only as they are committed.
        decoded
            :meth:`decode` of ``messages``, if done already.
        only
            The channels to take (``None``: every channel that can be).

        Returns
        -------
        Taking
            Per channel taken, its rows (up to its first faulty message, if it has one:
            :attr:`Taking.until`); and the channels that can be taken only after a
            message that keeps them out (their sibling's, or one their layout did not
            read) or after a faulty one. A channel in none keeps the per-message path
            from ``start`` to ``end``.
        """
        pipeline = self.pipeline
        generation = pipeline.generation
        if start == 0:  # a chunk's first take
            self._quick.clear()
        if decoded is None:
            decoded = self.decode(messages)
        count = messages.height
        end = count if end is None else end
        found = {name: rows.between(start, end, generation) for name, rows in decoded.items()
                 if books or name not in self.book_channels}
        if not found:  # only book channels, which may not be taken here
            return Taking({}, {}, {})
        # The messages of a book channel left out are unmatched, but their channel is known:
        # its layout matched them (as for the rows it takes), so they need no routing below.
        known = {} if books else {
            position: name for name, rows in decoded.items() if name in self.book_channels
            for position in rows.between(start, end, generation).positions.tolist()}
        # A book channel left out: its messages are unmatched, the per-message path takes them.
        matches = np.bincount(np.concatenate([f.positions for f in found.values()]),
                              minlength=count)
        if (matches > 1).any():  # two layouts match a message: the parser says whose it is
            found = {name: rows.part(np.flatnonzero(matches[rows.positions] == 1))
                     for name, rows in found.items()}
        current = np.zeros(count, dtype=bool)
        current[start:end] = (messages["generation"].slice(start, end - start) == generation
                              ).fill_null(False).to_numpy()
        unmatched = np.flatnonzero(current & (matches != 1))  # matched twice: routed too
        present = {name for name, rows in found.items() if rows.height}
        candidates = present if only is None else present & only
        # A channel can be taken only after the last message that keeps it out of a chunk:
        # a sibling's message its layout matches, or (routed, the last first) any message
        # whose channel's state it shares, its own that its layout did not match included.
        kept_out = {name: max(int(found[s].positions[-1]) for s in self.siblings[name] & present)
                    for name in candidates if self.siblings[name] & present}
        last = dict(kept_out)
        route, ruled_out = pipeline.parser.route, self._ruled_out
        waiting = set(candidates)  # no routed message found yet that keeps them out

        def floor() -> int:  # the lowest position that can still raise a waiting channel's
            # last: below it, each is kept out by a sibling's message later on, and the scan stops
            return min((kept_out.get(name, -1) for name in waiting), default=-1)

        below = floor()
        for position in reversed(unmatched.tolist()):
            if not waiting or position < below:
                break
            name = known.get(position) or route(payload(position))
            if name is None:
                continue
            hit = ruled_out.get(name, {name}) & waiting
            if hit:
                for channel in hit:
                    last[channel] = max(last.get(channel, -1), position)
                waiting -= hit
                below = floor()
        taken = {}
        later: dict[int, set[str]] = {}
        until: dict[str, int] = {}
        for name in candidates:
            rows = found[name]
            after = last.get(name)
            if after is None:
                made, fault = self._taken_to_fault(self.channels[name], rows)
                if made is not None:
                    taken[name] = made
                if fault is not None:
                    after = int(rows.positions[fault])
                    if made is not None:
                        until[name] = after
                    # Again after it, where enough follow, and either enough came before
                    # or the chunk's few quick retakes are not spent: a burst of faults
                    # goes one by one, not a take each.
                    if rows.height - fault - 1 >= _SPLIT_MIN and (
                            fault >= _SPLIT_MIN or self._quick.get(name, 0) < _QUICK):
                        if fault < _SPLIT_MIN:
                            self._quick[name] = self._quick.get(name, 0) + 1
                        later.setdefault(after, set()).add(name)
            elif rows.positions[-1] > after:
                later.setdefault(after, set()).add(name)
        return Taking(taken, later, until)

    def _taken_to_fault(self, channel: Channel,
                        found: Decoded) -> tuple[Taken | None, int | None]:
        """``channel``'s rows as a :class:`Taken`, up to the first that :meth:`_judge` leaves out.

        The rows before that one (all of them where there is none) are each ``ok`` or a
        duplicate, and are taken if they can be committed at once (:meth:`_taken`: not
        where their receive times step back, or the book rule refuses them). Returns the
        :class:`Taken` (``None``: none) and that row (``None``: none).
        """
        repeats, kept, fault = self._judge(channel, found)
        if fault is not None:
            found = found.head(fault)
        return (self._taken(channel, found, repeats, kept) if found.height else None), fault

    def _judge(self, channel: Channel, found: Decoded
               ) -> tuple[npt.NDArray[np.bool_] | None, Decoded | None, int | None]:
        """Which of ``found``'s rows are duplicates, up to the first whose outcome is left out.

        That row is the first whose key :meth:`DedupeCache.repeats
        <wsresearch.dedupe.DedupeCache.repeats>` does not judge (one the cache would
        remember afresh though it came before, having expired or been forgotten for room;
        or, where it judges none, as when the receive times step back, the first key held
        or given before), or the first of the others that breaks its key's run of sequence
        numbers (a duplicate is never a number's).

        Returns
        -------
        tuple
            A flag per row before that one, set for each duplicate (``None``: none is
            one); the rows before it that are not duplicates (``None``: all of them); and
            that row (``None``: there is none).
        """
        repeats, kept, fault = None, None, None
        cache = self.pipeline.parser.cache(channel.name)
        if found.keys is not None and cache is not None:
            repeats, fault = cache.repeats(found.keys, found.mono, found.earlier)
            if repeats is not None:
                kept = found.part(np.flatnonzero(~repeats))
        if channel.sequence is not None:
            broken = self._first_break(channel, found if kept is None else kept)
            if broken is not None and repeats is not None:  # among the kept: its place
                broken, before = int(np.flatnonzero(~repeats)[broken]), broken
                if fault is None or broken < fault:  # the kept rows before it stay
                    assert kept is not None  # made with repeats
                    repeats, kept = ((repeats[:broken], kept.head(before))
                                     if repeats[:broken].any() else (None, None))
            if broken is not None and (fault is None or broken < fault):
                fault = broken
        return repeats, kept, fault

    def _first_break(self, channel: Channel, found: Decoded) -> int | None:
        """The first row whose numbers do not run on from where its key expects them.

        ``None``: every key's numbers run on by one, from where the key expects. Before
        the tracker has judged a number of this connection, every key starts afresh: the
        first number judged clears what the last connection left, whoever's. That holds
        because (1) observe() clears only once it has a number to judge, (2)
        old-generation messages are never judged, and (3) this channel's group is its
        own, not the connection group of control messages (_own_state): so nothing
        judged in this connection reads what the last one left, whichever comes first.
        """
        numbers = found.numbers
        if numbers is None:  # a null number, or not an Int64 (no layout's int gives one):
            return 0 if found.height else None  # the models judge the rows
        breaks = np.flatnonzero(numbers.breaks())[:1].tolist()
        sequences = self.pipeline.sequences
        if sequences.generation == self.pipeline.generation:  # not afresh
            group = channel.sequence_group_name
            for key_value, number, row in numbers.heads():
                expected = sequences.expected(group, key_value)
                if expected is not None and expected != number:
                    breaks.append(row)
        if channel.sequence_chained:  # previous + 1 past an Int64: the models report it
            previous = found.rows[channel.field_names["sequence"][0]].to_numpy()
            breaks.extend(np.flatnonzero(previous == INT64_MAX)[:1].tolist())
        return min(breaks) if breaks else None

    def _taken(self, channel: Channel, found: Decoded, repeats: npt.NDArray[np.bool_] | None,
               kept: Decoded | None) -> Taken | None:
        """``channel``'s rows as a :class:`Taken`, or ``None`` if they cannot be committed at once.

        For rows :meth:`_judge` judged up to the first it leaves out: ``repeats`` flags
        the duplicates among them (``None``: none), and the rest, ``kept``, are ``ok``.
        The keys of those are remembered at once where the times allow
        (:meth:`DedupeCache.takes <wsresearch.dedupe.DedupeCache.takes>`), and a book
        channel's go to the books where its rule takes them.
        """
        pipeline = self.pipeline
        if found.keys is not None:
            cache = pipeline.parser.cache(channel.name)
            if (cache is None or not found.ascending()
                    or not cache.takes(int(found.mono[0]))):
                return None
        book = channel.name in self.book_channels
        if book:
            books = pipeline.books
            rows = (found if kept is None else kept).rows
            if books is None or (rows.height and not books.sync.takes_rows(
                    books, channel.name, rows)):
                return None
        return Taken(pipeline, channel, found, book, repeats, kept)


def _keys(channel: Channel, found: pl.DataFrame) -> list[Hashable]:
    """Each row's de-dup key: its one field's value, or a tuple of its fields' values."""
    columns = [_values(found[n]) for n in channel.field_names["dedupe_key"]]
    return list(columns[0]) if len(columns) == 1 else list(zip(*columns, strict=True))


def _values(column: pl.Series) -> Iterable[Any]:
    """A column's values; one text throughout (a chunk's symbol, often) as one object."""
    if (column.dtype == pl.String and column.len() > 1 and not column.null_count()
            and column.n_unique() == 1):
        return itertools.repeat(column[0], column.len())
    return column.to_list()


def _earlier(rows: pl.DataFrame, names: tuple[str, ...]) -> npt.NDArray[np.int64] | None:
    """For each row, the last row before it with the same values of ``names`` (-1: none).

    What a set of the rows' key tuples would find, from one sort: only for fields whose
    values polars and Python compare alike (integers, text, booleans; a null equals a null,
    as ``None`` does in a tuple). A float field is left to Python: -0.0 equals 0.0 there.
    """
    if not all(rows.schema[name].is_integer() or rows.schema[name] in (pl.String, pl.Boolean)
               for name in names):
        return None
    if _distinct(rows, names):  # as almost always
        return np.full(rows.height, -1, np.int64)
    order = rows.select(pl.arg_sort_by(list(names), maintain_order=True)).to_series()
    same = rows.select(names)[order].select(pl.all_horizontal(
        (pl.col(name) == pl.col(name).shift(1))
        | (pl.col(name).is_null() & pl.col(name).shift(1).is_null())
        for name in names).fill_null(False)).to_series().to_numpy()
    if same.size:
        same[0] = False  # the first in order has none before it (a null key's shift is null)
    ranked = order.cast(pl.Int64).to_numpy()
    earlier = np.full(ranked.size, -1, np.int64)
    earlier[ranked[same]] = np.roll(ranked, 1)[same]
    return earlier


def _distinct(rows: pl.DataFrame, names: tuple[str, ...]) -> bool:
    """Whether no two rows have the same values of ``names`` (integers, texts, booleans).

    At a glance where an integer field only rises (a channel's update id): no two keys can
    then be equal; else counted.
    """
    for name in names:
        column = rows[name]
        if column.dtype.is_integer() and not column.null_count():
            values = column.to_numpy()
            if bool((values[1:] > values[:-1]).all()):
                return True
    return bool(rows.select(pl.struct(names).n_unique()).item() == rows.height)


def _sequence_key(channel: Channel) -> pl.Expr:
    """The column a channel's sequence numbers count under (``None``: one counter)."""
    names = channel.field_names.get("sequence_key")
    return pl.col(names[0]) if names else pl.lit(None)


def _holds_its_promise(channel: Channel, pipeline: Pipeline) -> bool:
    """Whether ``channel``'s layout checks out against its model and the feed's routing.

    Its example messages, with every type name of the feed in its text placeholders, must
    each be routed to the channel and read by the model as the layout reads them. A
    layout that does not is not used (with a warning): its messages go through the model.
    """
    layout = channel.layout
    assert layout is not None
    spec = pipeline.spec
    words = [*spec.channel_names, *spec.control, *spec.error_types, *spec.control_texts]
    examples = tuple(layout.examples(words))
    problems = list(_read_alike(layout.template, channel.model, channel.name, examples))
    routed = {pipeline.parser.route(text) for text in examples}
    if routed != {channel.name}:
        problems.append(f"its messages are routed to {sorted(map(str, routed))}")
    if problems:
        warn(f"channel {channel.name!r}: its layout is not used ({problems[0]}); "
             "its messages go through the model")
    return not problems


@functools.lru_cache(maxsize=1_024)
def _read_alike(template: str, model: type[BaseModel], name: str,
                examples: tuple[str, ...]) -> tuple[str, ...]:
    """What keeps ``model`` from reading ``examples`` as the layout ``template`` does.

    Empty if nothing. Found once per template, model, channel name and examples in a
    process, then kept: a layout is a value (its template says all of it), and so is a
    model class. Checking takes a few polars queries and model validations a channel, a
    millisecond or two, which a replay of a small recording would otherwise pay for each
    channel every time.
    """
    layout = Layout(template)
    try:
        layout.check_model(model, name)
        return tuple(check_layout(layout, model, list(examples)))
    except ValueError as exc:
        return (str(exc),)


def _own_state(channel: Channel, spec: FeedSpec, book_channels: frozenset[str],
               siblings: frozenset[str]) -> bool:
    """Whether ``channel`` can be taken in columns: a layout, and state of its own.

    Or state shared with its ``siblings`` (:func:`_siblings`) only where all of them are
    book channels of one rule: the book's snapshots and its changes. Two channels of one health
    stream both taken from a chunk would tell it their times out of order.
    """
    if channel.layout is None or channel.explode is not None:
        return False
    names = channel.field_names
    for extractor in ("dedupe_key", "sequence", "sequence_key", "exchange_time"):
        if getattr(channel, extractor) is None:
            continue
        if extractor not in names:
            return False  # a callable: it needs the message object
        if extractor not in ("dedupe_key", "sequence") and len(names[extractor]) > 1:
            return False  # a tuple, which the per-message path refuses or keys by
    kinds = channel.layout.fields
    if channel.sequence is not None and any(kinds.get(n) != "int"
                                            for n in names["sequence"]):
        return False  # left out (always None), or not an int: the model path judges it
    if channel.exchange_time is not None and kinds.get(
            names["exchange_time"][0], "ms") not in ("int", "ms", "iso"):
        return False  # not an int: the per-message path reports it
    # Control messages count in the connection's sequence, and are no channel's.
    if (channel.sequence is not None and spec.control_sequence is not None
            and channel.sequence_group_name == CONNECTION_GROUP):
        return False
    return not siblings or (channel.name in book_channels and siblings <= book_channels)


def _siblings(channel: Channel, spec: FeedSpec, book_channels: frozenset[str]) -> frozenset[str]:
    """The channels that share state with ``channel``.

    That is its health stream, its sequence group, or (a book channel) its rule's books.
    Their messages among a chunk's would read or change that state between ``channel``'s
    messages, which are committed together: ``channel`` is taken only after the last of
    them in a chunk.
    """
    found = {c.name for c in spec.channels if c.stream_name == channel.stream_name}
    if channel.sequence is not None:
        group = channel.sequence_group_name
        found |= {c.name for c in spec.channels
                  if c.sequence is not None and c.sequence_group_name == group}
    if channel.name in book_channels:
        found |= book_channels
    return frozenset(found - {channel.name})
