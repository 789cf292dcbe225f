"""Bounded inbound queue between the socket reader and the pipeline.

A socket reader must never wait on a slow parser (the exchange would see a
slow consumer and the kernel buffers would fill), and a slow parser must never
grow memory without bound. :class:`MessageQueue` sits between them with a
fixed capacity and an explicit overflow policy:

``DROP_OLDEST``
    Make room by discarding the oldest queued message (the freshest data wins:
    right for tickers and books that are re-sent anyway).
``DROP_NEWEST``
    Refuse the incoming message (what is queued wins).
``BLOCK``
    Drop nothing. The queue reports pressure through ``on_pressure`` when it
    fills and again when it has drained to half; :class:`~wsresearch.feed.Feed`
    wires that to :meth:`WebSocketManager.pause_reading`, so the socket stops
    being read and backpressure reaches TCP and the exchange.

One worker task, started on the event loop that first calls
:meth:`MessageQueue.put`, drains the queue into a synchronous handler, in
batches: each call gets a list of every message waiting, in order, up to a few
hundred. The Python call per pipeline step (parse, de-dup, store, health) is
then paid once per batch rather than once per message, and the worker hands
the loop back between batches so the reader is never starved. The handler runs
on the loop, so it needs no locks; it must not block.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from ._callbacks import report
from .config import OverflowPolicy, QueueConfig
from .errors import QueueClosedError, QueueFullError

__all__ = ["MessageQueue", "OverflowPolicy", "QueueConfig"]

T = TypeVar("T")
log = logging.getLogger(__name__)

# Messages handed over per batch, at most; the worker yields to the loop after
# each, so a long backlog cannot starve the socket reader or a notebook cell.
_YIELD_EVERY = 256


class MessageQueue(Generic[T]):
    """A bounded FIFO drained in batches by one worker task, with an overflow policy.

    Parameters
    ----------
    handler
        Called with a list of the messages waiting (at most 256, in order). It
        must be synchronous. An exception it raises counts as one error and the
        worker goes on; the handler itself must not lose the rest of its batch
        to one bad message.
    max_size
        Capacity in messages.
    overflow
        What to do when full; see :class:`OverflowPolicy`.
    on_error
        Called with any exception the handler or a callback raises. Without it,
        they are logged.
    on_pressure
        Called with ``True`` when a ``BLOCK`` queue fills and ``False`` once
        it has drained to half its capacity (or is closed).
    on_dropped
        Called with each message the overflow policy drops (to record which one
        went).

    Raises
    ------
    TypeError
        If ``handler`` is an ``async def``.
    ValueError
        If ``max_size`` is below 1 or ``overflow`` names no policy.

    Examples
    --------
    >>> import asyncio
    >>> batches = []
    >>> async def main():
    ...     q = MessageQueue(batches.append, max_size=2, overflow=OverflowPolicy.DROP_OLDEST)
    ...     for n in range(3):
    ...         q.put(n)
    ...     await q.join()
    ...     q.close()
    ...     await q.wait_closed()
    ...     return q.dropped
    >>> asyncio.run(main()), batches
    (1, [[1, 2]])
    """

    def __init__(
        self,
        handler: Callable[[list[T]], object],
        *,
        max_size: int = 1000,
        overflow: OverflowPolicy | str = OverflowPolicy.DROP_OLDEST,
        on_error: Callable[[BaseException], None] | None = None,
        on_pressure: Callable[[bool], None] | None = None,
        on_dropped: Callable[[T], None] | None = None,
    ) -> None:
        if inspect.iscoroutinefunction(handler):
            raise TypeError("MessageQueue needs a synchronous handler; it runs on the loop")
        config = QueueConfig(max_size=max_size, overflow=OverflowPolicy(overflow))
        self._handler = handler
        self._max = config.max_size
        self._low_water = config.max_size // 2
        self._policy = config.overflow
        self._blocking = config.overflow is OverflowPolicy.BLOCK
        self._on_dropped = on_dropped
        self._on_error = on_error
        self._on_pressure = on_pressure
        self._items: deque[T] = deque()
        # The worker, once started, and the future it waits on when the queue is empty.
        self._worker: asyncio.Task[None] | None = None
        self._waiting: asyncio.Future[None] | None = None
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._in_flight = False
        self._pressured = False
        self._closed = False
        self.dropped = 0
        """Messages discarded by the overflow policy."""
        self.processed = 0
        """Messages the handler has been given (those of failed batches included)."""
        self.failed_batches = 0
        """Batches whose handler raised."""

    @property
    def max_size(self) -> int:
        """Capacity in messages."""
        return self._max

    @property
    def overflow(self) -> OverflowPolicy:
        """The overflow policy."""
        return self._policy

    @property
    def size(self) -> int:
        """Items waiting (not counting those being handled).

        The few items of :meth:`put_control` count too, and may take it past
        :attr:`max_size` while they wait.
        """
        return len(self._items)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def put(self, msg: T) -> bool:
        """Enqueue ``msg`` without waiting.

        Returns
        -------
        bool
            ``True`` if ``msg`` was queued, ``False`` if ``DROP_NEWEST``
            discarded it. ``DROP_OLDEST`` always queues ``msg`` (and drops the
            oldest instead).

        Raises
        ------
        QueueFullError
            With ``BLOCK``, when the queue is full: the producer should have
            paused when ``on_pressure(True)`` was called.
        QueueClosedError
            After :meth:`close`.
        """
        items = self._items
        if self._closed or len(items) >= self._max:
            return self._put_full(msg)
        items.append(msg)
        self._queued()
        return True

    def put_many(self, msgs: list[T]) -> int:
        """Enqueue ``msgs`` in order without waiting; return how many were queued.

        The same as :meth:`put` for each in turn, in one step where they all fit.

        Raises
        ------
        QueueFullError
            With ``BLOCK``, at the first that does not fit (those before it are queued).
        QueueClosedError
            After :meth:`close`.
        """
        items = self._items
        if self._closed or len(items) + len(msgs) > self._max:
            return sum(self.put(msg) for msg in msgs)
        if not msgs:
            return 0
        items.extend(msgs)
        self._queued()
        return len(msgs)

    def put_control(self, msg: T) -> None:
        """Enqueue ``msg`` whatever the bound and the policy: an item that orders the rest.

        For the rare items that must reach the handler in their place among the messages
        (the feed's REST responses and closes): none is refused when the queue is full,
        and none makes the queue drop a message. ``DROP_OLDEST`` may still drop it as the
        oldest item, everything before it being dropped already (``on_dropped`` is told).

        Raises
        ------
        QueueClosedError
            After :meth:`close`.
        """
        if self._closed:
            raise QueueClosedError("put_control() on a closed MessageQueue")
        self._items.append(msg)
        self._queued()

    def _queued(self) -> None:
        """Wake the worker (or start it) for what was just queued; under pressure if full."""
        waiting = self._waiting
        if waiting is not None:
            self._waiting = None
            if not waiting.done():
                waiting.set_result(None)
        elif self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name="wsresearch-queue-worker")
        if self._blocking and len(self._items) >= self._max and not self._pressured:
            self._set_pressure(True)

    def _put_full(self, msg: T) -> bool:
        if self._closed:
            raise QueueClosedError("put() on a closed MessageQueue")
        policy = self._policy
        if policy is OverflowPolicy.DROP_NEWEST:
            self._drop(msg)
            return False
        if policy is OverflowPolicy.BLOCK:
            raise QueueFullError(
                f"queue is full ({self._max} messages) and its policy is BLOCK; "
                "pause the producer when on_pressure(True) is called"
            )
        self._drop(self._items.popleft())
        self._items.append(msg)
        return True

    async def join(self) -> None:
        """Wait until every queued message has been handled."""
        if not self._items and not self._in_flight:
            return
        future = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(future)
        await future

    def close(self) -> None:
        """Refuse further messages and cancel the worker; await :meth:`wait_closed` after.

        Messages still queued are discarded. To handle them first, ``await
        join()`` before closing.
        """
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
        self._items.clear()
        self._in_flight = False
        if self._pressured:
            self._set_pressure(False)  # whatever was paused for this queue may go on
        self._check_idle()

    async def wait_closed(self) -> None:
        """Wait for the worker cancelled by :meth:`close` to finish."""
        worker, self._worker = self._worker, None
        if worker is not None:
            await asyncio.gather(worker, return_exceptions=True)

    # -- internals -----------------------------------------------------------

    async def _work(self) -> None:
        # The hot path: one batch of up to _YIELD_EVERY messages per turn of the loop,
        # with bookkeeping per batch rather than per message.
        items = self._items
        loop = asyncio.get_running_loop()
        while True:
            if not items:
                self._waiting = future = loop.create_future()
                await future
                continue
            self._in_flight = True
            n = 0
            try:
                n = self._run_batch(min(len(items), _YIELD_EVERY))
            finally:
                self._in_flight = False
                self.processed += n
            if items:
                await asyncio.sleep(0)  # let the reader and other tasks run
            else:
                self._check_idle()

    def _run_batch(self, n: int) -> int:
        """Hand ``n`` waiting messages to the handler as one list; return ``n``."""
        popleft = self._items.popleft
        batch = [popleft() for _ in range(n)]
        if self._pressured and len(self._items) <= self._low_water:
            self._set_pressure(False)
        try:
            self._handler(batch)
        except Exception as exc:  # a user handler must never kill the worker
            self.failed_batches += 1
            self._report(exc)
        return n

    def _check_idle(self) -> None:
        if self._idle_waiters and not self._items and not self._in_flight:
            waiters, self._idle_waiters = self._idle_waiters, []
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    def _drop(self, msg: T) -> None:
        self.dropped += 1
        if self._on_dropped is not None:
            try:
                self._on_dropped(msg)
            except Exception as exc:
                self._report(exc)

    def _set_pressure(self, on: bool) -> None:
        self._pressured = on
        if self._on_pressure is not None:
            try:
                self._on_pressure(on)
            except Exception as exc:
                self._report(exc)

    def _report(self, exc: BaseException) -> None:
        report(exc, self._on_error, log, "message handler")

    def __repr__(self) -> str:
        return (
            f"MessageQueue(size={self.size}, max_size={self._max}, "
            f"overflow={self._policy.name}, processed={self.processed}, dropped={self.dropped})"
        )
