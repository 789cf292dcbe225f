"""Run wsresearch's coroutines from synchronous code, in a notebook or a plain script.

wsresearch is asyncio all the way down. In Jupyter that needs nothing extra: the
kernel's event loop runs between cells, so ``await feed.start()`` returns once
connected and the feed keeps receiving while you run other cells, until
``await feed.stop()``.

Synchronous code (a script, a library function, a cell that should not
``await``) uses :func:`run`, or the conveniences built on it such as
:meth:`Feed.collect <wsresearch.feed.Feed.collect>`:

- with no event loop running (a script), :func:`run` drives one long-lived loop
  of its own, so objects started in one call (a feed, a server) are still valid
  in the next;
- with a loop already running (a notebook cell), it makes that loop re-entrant
  with ``nest-asyncio2``, applied the first time it is needed and only then, and
  runs the coroutine on it;
- called from inside a coroutine, it refuses with a message pointing to
  ``await``: blocking a running coroutine on another would stall every task.
  It judges by its immediate caller: a synchronous helper called from a coroutine
  is let through (a notebook cell without ``await`` is such a helper: ipykernel
  runs every cell from a coroutine), and blocks that coroutine until done.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import sys
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

__all__ = ["run"]

T = TypeVar("T")

_COROUTINE_FLAGS = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE

_runner: asyncio.Runner | None = None


def run(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to completion from synchronous code and return its result.

    Parameters
    ----------
    awaitable
        A coroutine (or any awaitable), e.g. ``feed.run_for(5)``.

    Returns
    -------
    T
        What it returned.

    Raises
    ------
    RuntimeError
        When called from inside a coroutine: ``await`` the awaitable there.
    TypeError
        If ``awaitable`` is not awaitable.

    Examples
    --------
    >>> import asyncio
    >>> async def answer():
    ...     await asyncio.sleep(0)
    ...     return 42
    >>> run(answer())
    42
    """
    if not inspect.isawaitable(awaitable):
        raise TypeError(f"run() needs a coroutine or awaitable, got {type(awaitable).__name__}")
    caller = _first_caller_outside_wsresearch()
    if caller is not None:
        if inspect.iscoroutine(awaitable):
            awaitable.close()  # never started: no "was never awaited" warning
        raise RuntimeError(
            f"wsresearch.notebook.run() was called from inside the coroutine {caller}(); "
            "blocking it would stall the event loop. Use `await` there instead "
            "(e.g. `await feed.run_for(5)` rather than `feed.collect(5)`)."
        )
    coroutine = _as_coroutine(awaitable)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return _own_runner().run(coroutine)
    _make_reentrant(loop)
    return loop.run_until_complete(coroutine)


def _first_caller_outside_wsresearch() -> str | None:
    """The name of the coroutine function calling into wsresearch, if it is one."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("wsresearch."):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is not None and frame.f_code.co_flags & _COROUTINE_FLAGS:
        return frame.f_code.co_name
    return None


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _as_coroutine(awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    return awaitable if inspect.iscoroutine(awaitable) else _await(awaitable)


def _own_runner() -> asyncio.Runner:
    """The long-lived loop for scripts: one per process, closed at exit."""
    global _runner
    if _runner is None:
        _runner = asyncio.Runner()
        atexit.register(_runner.close)
    return _runner


def _make_reentrant(loop: asyncio.AbstractEventLoop) -> None:
    import nest_asyncio2  # only when a running loop must be re-entered

    nest_asyncio2.apply(loop)  # idempotent: a patched loop is marked and left as it is
