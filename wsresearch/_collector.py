"""Python's cyclic garbage collector, kept out of the way of work that makes no cycles.

Taking a batch of messages allocates thousands of short-lived objects (decoded
messages, models, rows, de-dup keys) that hold no reference cycles. Left to itself,
the collector runs every 700 of them that are alive at once, walking them for
nothing; what survives a few of those runs is promoted, and an old generation grown
by a quarter makes the next run walk every object the process holds (the modules of
polars, pydantic and numpy alone are about 60,000). Reference counting frees these
objects anyway: pausing the collector while they live, and letting it run after,
takes that work away and loses nothing, as any cycles made meanwhile are collected
then.

:class:`Collector` pauses it for a whole replay and runs it between chunks;
:func:`paused` pauses it for one call, the live feed's batch. Both leave the
collector as they found it and never run it where it was disabled.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TypeVar

__all__ = ["Collector", "paused"]

_T = TypeVar("_T")

YOUNG = 100_000
"""New objects the collector tracks past which :class:`Collector` runs it, between two chunks."""


class Collector:
    """Python's cyclic garbage collector, paused for a replay and run between its chunks.

    The collector is paused from the first chunk to the last, and run here between two
    chunks once :data:`YOUNG` new objects are tracked: the young generation, and an older
    one where the collector's own thresholds would (``gc.get_threshold()``). Reference
    counting frees objects as usual; whatever cycles the chunks made are collected then,
    so memory stays bounded.
    """

    def __init__(self) -> None:
        self.enabled = gc.isenabled()

    def __enter__(self) -> Collector:
        gc.disable()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.enabled:
            gc.enable()

    def between_chunks(self) -> None:
        """Run the collector if enough new objects are tracked (and it was enabled)."""
        young, middle, old = gc.get_count()
        young_after, middle_after, old_after = gc.get_threshold()
        if not self.enabled or not young_after or young < YOUNG:
            return  # disabled, by gc.disable() or a threshold of 0, or not due
        gc.collect(2 if old > old_after else 1 if middle > middle_after else 0)


def paused(take: Callable[[_T], None]) -> Callable[[_T], None]:
    """``take``, called with the collector paused, which then runs as its thresholds say.

    For a call that allocates many objects and lets go of nearly all of them before it
    returns: what it keeps is seen by the collector's next run, right after it (the
    collector counts objects alive, not objects made). Where the collector is disabled
    when the call starts, it is left so.
    """
    def run(item: _T) -> None:
        if not gc.isenabled():
            take(item)
            return
        gc.disable()
        try:
            take(item)
        finally:
            gc.enable()
    return run
