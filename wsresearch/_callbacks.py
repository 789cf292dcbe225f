"""Registering and calling user callbacks, one way everywhere.

Every component that calls code it does not own (listeners, alert sinks, drop
counters) follows the same rules: a registration (:func:`register`) returns a
callable that undoes it; listeners are called through :func:`notify`, in the order
registered, on a copy of the list (a listener may unsubscribe itself); and an
exception raised by a callback goes to the component's ``on_error`` (or the log,
:func:`report`) and never stops the component or the other listeners.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

__all__ = ["notify", "register", "report"]

T = TypeVar("T")


def register(handlers: list[T], fn: T) -> Callable[[], None]:
    """Append ``fn`` to ``handlers``; return a callable that removes it (twice is harmless)."""
    handlers.append(fn)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            handlers.remove(fn)

    return unsubscribe


def report(
    exc: BaseException,
    on_error: Callable[[BaseException], object] | None,
    logger: logging.Logger,
    what: str,
) -> None:
    """Hand ``exc`` to ``on_error``, or log it as ``what raised ...`` when there is none.

    An ``on_error`` that raises in turn is logged, never propagated.
    """
    if on_error is None:
        logger.error("%s raised %s: %s", what, type(exc).__name__, exc)
        return
    try:
        on_error(exc)
    except Exception:
        logger.exception("on_error handler raised")


def notify(
    listeners: list[Callable[..., object]],
    *args: object,
    on_error: Callable[[BaseException], object] | None = None,
    logger: logging.Logger | None = None,
    what: str = "a listener",
) -> None:
    """Call every listener with ``args``; report what one raises and go on to the next.

    Errors go to ``on_error`` (see :func:`report`; logged with ``logger`` when there
    is none, or when ``on_error`` raises in turn).
    """
    for listener in list(listeners):
        try:
            listener(*args)
        except Exception as exc:
            report(exc, on_error, logger or logging.getLogger("wsresearch"), what)
