"""The order book at any moment of a recording: at one time, or at many in one pass.

A dataset's ``book_snapshots`` are the books on a grid (``snapshot_interval``, to
``snapshot_depth`` levels); a backtest asks for the book as it was when a trade printed,
between two points of the grid, or at full depth. :func:`books_at` replays the recording
once and reads every book at each time asked, inside the replay, as the grid's snapshots
are taken (:class:`~wsresearch.book.Readings`): the book after every message received at
or before that time (its receive time, ``wall_ns``), in the order the events were
recorded, as a strategy running live had it then. A time costs a row per book, not a
step of the replay, so a time per trade of a long recording is cheap. :func:`book_at` is
one time and one symbol, as a :class:`~wsresearch.book.Book`: a replay that stops there.
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
from collections.abc import Callable, Iterable, Iterator, Sequence

import polars as pl

from ._warn import warn
from .book import LEVELS, Book, Readings
from .clock import Time, ns_since_epoch, utc_text
from .pipeline import Pipeline
from .recording import Recording
from .recording.reader import CHUNK_EVENTS, check_chunk_events
from .replay import replay_in_chunks, spec_for
from .spec import FeedSpec

__all__ = ["BOOKS_AT_SCHEMA", "book_at", "books_at"]

_TIME = pl.Datetime("ns", "UTC")

BOOKS_AT_SCHEMA: dict[str, pl.DataType] = {
    "time": _TIME, "symbol": pl.String(), "valid": pl.Boolean(), "exchange_time": _TIME,
    "local_time": _TIME, "bids": LEVELS, "asks": LEVELS}
"""The columns of :func:`books_at`: the time asked, the book's symbol, whether it was
valid (synced, no gap since), the exchange's time and the receive time of the last
message applied to it, and its best levels, best first."""


def books_at(
    recording: Recording | str | os.PathLike[str],
    times: Iterable[Time] | pl.Series,
    spec: FeedSpec | None = None,
    *,
    symbols: Sequence[str] | None = None,
    depth: int | None = 10,
    chunk_events: int = CHUNK_EVENTS,
    progress: Callable[[int, int], None] | None = None,
    columnar: bool = True,
) -> pl.DataFrame:
    """Every book of ``recording`` as it was at each of ``times``: one replay for them all.

    The books are read inside the replay, as its snapshot grid is taken: a time costs a
    row per book, so times as dense as the trades of a long recording cost little more
    than the replay itself.

    Parameters
    ----------
    recording
        A :class:`~wsresearch.recording.Recording` or its directory.
    times
        When to read the books: datetimes (naive means UTC), dates or ns since the epoch,
        or a polars Series of a datetime type or of ints (ns). Taken sorted, each once.
    spec
        The spec to replay with (``None``: the recording's own), one that keeps books.
    symbols
        Only these symbols' books (default: every book the replay keeps).
    depth
        Levels per side, best first; ``None``: every level the book holds.
    chunk_events, progress, columnar
        As for :func:`~wsresearch.replay.replay` (the same books either way).

    Returns
    -------
    pl.DataFrame
        :data:`BOOKS_AT_SCHEMA`: a row per time and per book that existed then (a
        symbol's book exists from its first message or snapshot), in the order of the
        times, then of the symbols. The book after every message received at or before
        the time; an invalid book (no snapshot yet, a gap) has its levels as they were
        held, and ``valid`` false. A time is judged on the receive times of what changes
        a book (its messages, REST snapshots, reconnects, gaps the rule acts on) as they
        run: where the clock stepped back, a message received at or before a time already
        passed is applied after it, as live.

    Raises
    ------
    ValueError
        If the spec keeps no order books, a time is not one, ``depth`` is not a
        positive int or ``None``, a symbol of ``symbols`` has no book in the recording,
        or as :func:`~wsresearch.replay.replay` raises.
    RecordingFormatError
        If ``recording`` is not a readable recording.

    Warns
    -----
    UserWarning
        Of times before the recording's first event (no book then) or after its last
        (the books as it ended): right, but what a mistaken time gives too.

    Examples
    --------
    >>> from datetime import datetime
    >>> at = [datetime(2024, 8, 8, 23, 54, 30), datetime(2024, 8, 8, 23, 55)]
    >>> found = books_at("data/recordings/binance_hftbacktest_2024-08-08_spot_btcusdt", at,
    ...                  depth=1)
    >>> found.select("symbol", "valid", pl.col("bids").list.len()).rows()
    [('BTCUSDT', True, 1), ('BTCUSDT', True, 1)]
    """
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int)
                              or depth < 1):
        raise ValueError(f"depth must be a positive int or None, got {depth!r}")
    check_chunk_events(chunk_events)
    if isinstance(symbols, str):
        raise ValueError(f"symbols is a list of symbols (symbols=[{symbols!r}]), not a string")
    moments, hint = _moments(times)
    recording, spec = _with_books(recording, spec)
    if not moments:  # nothing asked: no replay
        return pl.DataFrame(schema=BOOKS_AT_SCHEMA)
    readings = Readings(moments, depth, None if symbols is None else frozenset(symbols))
    kept: list[Pipeline] = []

    def begin(pipeline: Pipeline) -> None:
        assert pipeline.books is not None  # the spec keeps books (_with_books)
        pipeline.books.read_at(readings)
        kept.append(pipeline)

    span = _Span(hint)

    def after(pipeline: Pipeline, events: pl.DataFrame) -> None:
        span.add(events)
        _take(pipeline, events)

    replay_in_chunks(recording, spec, "complete", progress, chunk_events, after, before=begin,
                     columnar=columnar)
    books = kept[0].books
    assert books is not None
    missing = [symbol for symbol in symbols or () if symbol not in books.books]
    if missing:
        raise ValueError(f"no book of {', '.join(map(repr, missing))} in the recording; its "
                         f"books: {sorted(books.books)}")
    span.tell(moments)
    books.read_rest()
    return readings.frame().rename({"exchange_ns": "exchange_time",
                                    "recv_wall_ns": "local_time"}).cast(
                                        pl.Schema(BOOKS_AT_SCHEMA))


def book_at(
    recording: Recording | str | os.PathLike[str],
    time: Time,
    symbol: str,
    spec: FeedSpec | None = None,
    *,
    chunk_events: int = CHUNK_EVENTS,
) -> Book:
    """``symbol``'s order book as it was at ``time``: after every event received by then.

    A replay of the recording up to ``time`` (see :func:`books_at` for many times).

    Parameters
    ----------
    recording
        A :class:`~wsresearch.recording.Recording` or its directory.
    time
        A datetime (naive means UTC), a date (its midnight, UTC) or ns since the epoch.
    symbol
        The book's symbol, as the exchange spells it (``"BTCUSDT"``).
    spec
        The spec to replay with (``None``: the recording's own), one that keeps books.
    chunk_events
        As for :func:`~wsresearch.replay.replay`.

    Returns
    -------
    Book
        The whole book (:class:`~wsresearch.book.Book`: ``best_bid``, ``top(n)``,
        ``valid``...).

    Raises
    ------
    ValueError
        If the spec keeps no order books, or no book of ``symbol`` existed by ``time``.

    Warns
    -----
    UserWarning
        Of a time after the recording's last event: the book as it ended is given.

    Examples
    --------
    >>> from datetime import datetime
    >>> book = book_at("data/recordings/binance_hftbacktest_2024-08-08_spot_btcusdt",
    ...                datetime(2024, 8, 8, 23, 55), "BTCUSDT")
    >>> book.valid, book.best_bid
    (True, (61831.99, 3.3161))
    """
    (moment,), hint = _moments([time])
    recording, spec = _with_books(recording, spec)
    kept: list[Pipeline] = []
    span = _Span(hint)
    cut = _until(recording.chunks(chunk_events), moment, span)
    replay_in_chunks(recording, spec, "complete", None, chunk_events, _take,
                     chunks=cut, before=kept.append)
    books = kept[0].books
    found = None if books is None else books.books.get(symbol)
    if found is None:
        if span.first is not None and moment < span.first:
            raise ValueError(f"no book of {symbol!r} by {utc_text(moment)}: that is before "
                             f"the recording's first event ({utc_text(span.first, 3)})"
                             + (f"; {hint}" if hint else ""))
        seen = [] if books is None else sorted(books.books)
        raise ValueError(f"no book of {symbol!r} by {utc_text(moment)}; books then: {seen}")
    span.tell([moment])
    return found


class _Span:
    """The receive times of a recording's first and last events, to tell of times past them.

    A time after the last event gets the books as the recording ended, and one before the
    first gets none: right, and what a mistake gives too (a local time taken for UTC, ns
    taken for seconds), so each is told of in a warning.
    """

    def __init__(self, hint: str) -> None:
        self.hint = f" ({hint})" if hint else ""
        """How the times asked were read, where a mistake could hide (:func:`_moments`)."""
        self.first: int | None = None
        self.last: int | None = None

    def add(self, events: pl.DataFrame) -> None:
        """Events replayed, in ``seq`` order."""
        if events.height:
            walls = events["wall_ns"]
            low, high = int(walls.min()), int(walls.max())  # type: ignore[arg-type]
            self.first = low if self.first is None else min(self.first, low)
            self.last = high if self.last is None else max(self.last, high)

    def tell(self, moments: list[int]) -> None:
        """Warn of the ``moments`` (sorted) before the first event or after the last."""
        if self.first is None or self.last is None:
            return
        before = bisect.bisect_left(moments, self.first)
        after = len(moments) - bisect.bisect_right(moments, self.last)
        if before:
            warn(f"{_times(before, len(moments))} before the recording's first event "
                 f"({utc_text(self.first, 3)}): no book existed then{self.hint}")
        if after:
            warn(f"{_times(after, len(moments))} after the recording's last event "
                 f"({utc_text(self.last, 3)}): the books as it ended are given{self.hint}")


def _times(count: int, total: int) -> str:
    """``"the time is"``, ``"3 of the 10 times are"``: the subject of a warning."""
    if total == 1:
        return "the time is"
    return f"{count} of the {total} times {'is' if count == 1 else 'are'}"


def _with_books(recording: Recording | str | os.PathLike[str], spec: FeedSpec | None
                ) -> tuple[Recording, FeedSpec]:
    """``recording``, opened, and the spec to replay it with, one that keeps books.

    Raises
    ------
    ValueError
        If the spec keeps no order books, or as :func:`~wsresearch.replay.spec_for` raises.
    """
    if not isinstance(recording, Recording):
        recording = Recording.open(recording)
    found = spec_for(recording, spec)
    if found.book_sync is None:
        raise ValueError("this spec keeps no order books: it subscribes no book channel of "
                         "an exchange with a book rule")
    return recording, found


def _take(pipeline: Pipeline, events: pl.DataFrame) -> None:
    pipeline.take()  # only the books are wanted


def _moments(times: Iterable[Time] | pl.Series) -> tuple[list[int], str]:
    """``times`` as ns since the epoch, sorted, each once; and how they were read.

    The second is for messages about times outside a recording: what a mistake could
    hide behind (``"an int is ns since the epoch; a naive datetime is UTC"``), said only
    of the kinds of time given, and empty for times in a zone, which are what they say.
    """
    if isinstance(times, pl.Series):
        if isinstance(times.dtype, pl.Datetime):  # naive means UTC; a zone, its instant
            series = times.dt.cast_time_unit("ns").dt.epoch("ns")
            read = {"naive" if times.dtype.time_zone is None else "zoned"}
        elif times.dtype.is_integer():
            series = times.cast(pl.Int64)
            read = {"int"}
        else:
            raise ValueError(f"times must be datetimes or ints (ns), got a {times.dtype} Series")
        if series.null_count():
            raise ValueError("times hold a null")
        return sorted(set(series.to_list())), _read_as(read)
    if isinstance(times, dt.date | int | str):
        raise ValueError(f"times is a list of times (for one: [{times!r}], or book_at), "
                         f"not {type(times).__name__}")
    given = list(times)
    moments = sorted({ns_since_epoch(time) for time in given})
    return moments, _read_as({_kind_of_time(time) for time in given})


_READ_AS = {"int": "an int is ns since the epoch", "naive": "a naive datetime is UTC",
            "date": "a date is its midnight UTC"}


def _kind_of_time(time: object) -> str:
    """``"int"``, ``"naive"``, ``"date"`` or ``"zoned"``: what :data:`_READ_AS` tells of."""
    if isinstance(time, dt.datetime):
        return "zoned" if time.tzinfo else "naive"
    return "date" if isinstance(time, dt.date) else "int"


def _read_as(kinds: set[str]) -> str:
    """How times of these kinds are read, in :data:`_READ_AS`'s order; "" for none."""
    return "; ".join(text for kind, text in _READ_AS.items() if kind in kinds)


def _until(chunks: Iterable[pl.DataFrame], moment: int, span: _Span
           ) -> Iterator[pl.DataFrame]:
    """The events up to the last received at or before ``moment`` (its running maximum).

    ``span`` is told of the events read, the first after ``moment`` included.
    """
    reach: int | None = None
    for chunk in chunks:
        running = _running(chunk, reach)
        end = int(running.search_sorted(moment, side="right"))
        span.add(chunk.slice(0, end + 1))
        if end < chunk.height:
            if end:
                yield chunk.slice(0, end)
            return
        reach = int(running[-1]) if chunk.height else reach
        yield chunk


def _running(chunk: pl.DataFrame, reach: int | None) -> pl.Series:
    """``chunk``'s receive times as they run: their running maximum, from ``reach`` on.

    Where a replay is cut for a time: a wall clock stepping back moves no cut before an
    event already passed.
    """
    running = chunk["wall_ns"].cum_max()
    return running if reach is None else running.clip(lower_bound=reach)
