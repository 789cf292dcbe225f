"""Python's cyclic garbage collector, kept out of the way of work that makes no cycles.

Taking a batch of messages allocates thousands of short-lived objects (decoded
messages, models, rows, de-dup keys) that hold no reference cycles. Left to itself,
the collector runs every 700 of them that are alive at once, walking them for
nothing; what survives a few of those runs is promoted, and an old generation grown
by a quarter makes the next run walk every object the process holds (about 60,000
in a process that imported wsresearch, most of them polars', pydantic's and numpy's).
Reference counting frees these objects anyway: pausing the collector while they
live, and letting it run after, takes that work away and loses nothing, as any
cycles made meanwhile are collected then.

:class:`Collector` pauses it for a whole replay and runs it between chunks;
:func:`paused` pauses it for one call, the live feed's batch. The collector's switch
is one for the whole process, so pauses are counted across threads (a replay in a
worker thread while a feed runs): the first to begin turns the collector off, the
last to end turns it back on, if it was on when the first began. What the code a
pause runs does to the switch itself (``gc.disable()`` in a handler) is undone when
the last pause ends; so is a change made meanwhile by a thread that does not pause
through here.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["Collector", "paused"]

_T = TypeVar("_T")

YOUNG = 100_000
"""New objects the collector tracks past which :class:`Collector` runs it, between two chunks."""

_lock = threading.Lock()
_pauses = 0  # pauses begun and not yet ended, in every thread
_was_enabled = False  # whether the collector was on when the first of them began


def _pause() -> None:
    """Begin a pause: the first one turns the collector off, noting whether it was on."""
    global _pauses, _was_enabled
    with _lock:
        if not _pauses:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1


def _resume() -> None:
    """End a pause: the last one turns the collector back on, if it was on before."""
    global _pauses
    with _lock:
        _pauses -= 1
        if not _pauses and _was_enabled:
            gc.enable()


def enabled() -> bool:
    """Whether the collector is on, or would be but for the pauses of this module."""
    with _lock:
        return _was_enabled if _pauses else gc.isenabled()


class Collector:
    """Python's cyclic garbage collector, paused for a replay and run between its chunks.

    The collector is paused from the first chunk to the last, and run here between two
    chunks once :data:`YOUNG` new objects are tracked: the young generation, and an older
    one where the collector's own thresholds would (``gc.get_threshold()``). Reference
    counting frees objects as usual; whatever cycles the chunks made are collected then,
    so memory stays bounded. Where the collector was off, it is not run.
    """

    def __enter__(self) -> Collector:
        _pause()
        return self

    def __exit__(self, *exc_info: object) -> None:
        _resume()

    def between_chunks(self) -> None:
        """Run the collector if enough new objects are tracked (and it was enabled)."""
        young, middle, old = gc.get_count()
        young_after, middle_after, old_after = gc.get_threshold()
        if not young_after or young < YOUNG or not enabled():
            return  # disabled, by gc.disable() or a threshold of 0, or not due
        gc.collect(2 if old > old_after else 1 if middle > middle_after else 0)


def paused(take: Callable[[_T], None]) -> Callable[[_T], None]:
    """``take``, called with the collector paused, which then runs as its thresholds say.

    For a call that allocates many objects and lets go of nearly all of them before it
    returns: what it keeps is seen by the collector's next run, right after it (the
    collector counts objects alive, not objects made). Where the collector is off when
    the call starts, it stays off.
    """
    def run(item: _T) -> None:
        with Collector():
            take(item)
    return run
