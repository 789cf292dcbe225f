"""Bounded inbound queue between the socket reader and the parser.

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

Workers run on the event loop that first calls :meth:`MessageQueue.put`.
A synchronous handler is called directly; an ``async def`` handler is awaited,
with ``concurrency`` of them in flight at once. Workers hand the loop back
every few hundred messages so the reader is never starved. With ``batches=True``
a synchronous handler is called once per turn with every message waiting (up
to a few hundred, in order): the per-message cost of a Python call is paid
once per batch, which is how :class:`~wsresearch.feed.Feed` drains its queue.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar, cast

from ._callbacks import report
from .config import OverflowPolicy, QueueConfig
from .errors import QueueClosedError, QueueFullError

__all__ = ["MessageQueue", "OverflowPolicy", "QueueConfig"]

T = TypeVar("T")
log = logging.getLogger(__name__)

# Messages a worker handles before yielding to the loop, so a long backlog
# cannot starve the socket reader or a notebook cell.
_YIELD_EVERY = 256


class MessageQueue(Generic[T]):
    """A bounded FIFO with worker tasks and an overflow policy.

    Parameters
    ----------
    handler
        Called once per message, in order (with ``concurrency=1``). May be a
        plain function or an ``async def``.
    max_size
        Capacity in messages.
    concurrency
        Number of worker tasks.
    overflow
        What to do when full; see :class:`OverflowPolicy`.
    on_drop
        Called with the number of messages just dropped.
    on_dropped
        Called with each dropped message itself (to record which one went).
    on_error
        Called with any exception the handler raises; the worker goes on.
        Without it, handler errors are logged.
    on_pressure
        Called with ``True`` when a ``BLOCK`` queue fills and ``False`` once
        it has drained to half its capacity.
    batches
        Call a synchronous ``handler`` with a list of the messages waiting (at
        most 256, in order) instead of one message. An exception it raises
        counts as one error; the handler itself must not lose the rest of its
        batch to one bad message.

    Examples
    --------
    >>> import asyncio
    >>> seen = []
    >>> async def main():
    ...     q = MessageQueue(seen.append, max_size=2, overflow=OverflowPolicy.DROP_OLDEST)
    ...     for n in range(3):
    ...         q.put(n)
    ...     await q.join()
    ...     q.close()
    ...     await q.wait_closed()
    ...     return q.dropped
    >>> asyncio.run(main()), seen
    (1, [1, 2])
    """

    def __init__(
        self,
        handler: Callable[[T], Awaitable[None] | None] | Callable[[list[T]], None],
        max_size: int = 1000,
        concurrency: int = 1,
        overflow: OverflowPolicy | str = OverflowPolicy.DROP_OLDEST,
        on_drop: Callable[[int], None] | None = None,
        *,
        on_error: Callable[[BaseException], None] | None = None,
        on_pressure: Callable[[bool], None] | None = None,
        on_dropped: Callable[[T], None] | None = None,
        batches: bool = False,
    ) -> None:
        config = QueueConfig(max_size=max_size, overflow=OverflowPolicy(overflow))
        if not (isinstance(concurrency, int) and concurrency >= 1):
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        self._handler = handler
        self._is_async = inspect.iscoroutinefunction(handler)
        if batches and self._is_async:
            raise ValueError("batches=True needs a synchronous handler")
        self._batches = batches
        self._max = config.max_size
        self._low_water = max(0, config.max_size // 2)
        self._concurrency = concurrency
        self._policy = config.overflow
        self._blocking = config.overflow is OverflowPolicy.BLOCK
        self._on_drop = on_drop
        self._on_dropped = on_dropped
        self._on_error = on_error
        self._on_pressure = on_pressure
        self._items: deque[T] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._workers: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._pressured = False
        self._closed = False
        self.dropped = 0
        """Messages discarded by the overflow policy."""
        self.processed = 0
        """Messages the handler has finished (errors included)."""
        self.errors = 0
        """Messages whose handler raised."""

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
        """Messages waiting (not counting those being handled)."""
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
            With ``BLOCK``, when the queue is full: use :meth:`put_wait`.
        QueueClosedError
            After :meth:`close`.
        """
        items = self._items
        if self._closed or len(items) >= self._max:
            return self._put_full(msg)
        items.append(msg)
        if self._getters:
            self._wake(self._getters)
        elif not self._workers:
            self._start_workers()
        if self._blocking and len(items) >= self._max and not self._pressured:
            self._set_pressure(True)
        return True

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
                "await put_wait() to wait for room"
            )
        self._drop(self._items.popleft())
        self._items.append(msg)
        return True

    async def put_wait(self, msg: T) -> None:
        """Enqueue ``msg``, waiting for room first when the queue is full.

        With a drop policy this never waits: it behaves like :meth:`put`.

        Raises
        ------
        QueueClosedError
            After :meth:`close`, including while waiting.
        """
        while self._policy is OverflowPolicy.BLOCK and len(self._items) >= self._max:
            if self._closed:
                raise QueueClosedError("put_wait() on a closed MessageQueue")
            future = asyncio.get_running_loop().create_future()
            self._putters.append(future)
            await future
        self.put(msg)

    async def join(self) -> None:
        """Wait until every queued message has been handled."""
        if not self._items and self._in_flight == 0:
            return
        future = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(future)
        await future

    def clear(self) -> int:
        """Discard every queued message (not counted as drops); return how many."""
        n = len(self._items)
        self._items.clear()
        self._after_take()
        self._check_idle()
        return n

    def close(self) -> None:
        """Refuse further messages and cancel the workers; await :meth:`wait_closed` after.

        Messages still queued are discarded. To handle them first, ``await
        join()`` before closing.
        """
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            worker.cancel()
        for waiters in (self._putters, self._getters):
            self._wake(waiters, everyone=True)
        self._items.clear()
        self._in_flight = 0
        if self._pressured:
            self._set_pressure(False)  # whatever was paused for this queue may go on
        self._check_idle()

    async def wait_closed(self) -> None:
        """Wait for the workers cancelled by :meth:`close` to finish."""
        workers, self._workers = self._workers, []
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)

    # -- internals -----------------------------------------------------------

    def _start_workers(self) -> None:
        loop = asyncio.get_running_loop()
        self._workers = [
            loop.create_task(self._work(), name=f"wsresearch-queue-worker-{n}")
            for n in range(self._concurrency)
        ]

    async def _work(self) -> None:
        if self._is_async:
            await self._work_async()
        else:
            await self._work_sync()

    async def _wait_for_items(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._getters.append(future)
        await future

    async def _work_sync(self) -> None:
        # The hot path: drain up to _YIELD_EVERY messages per turn of the loop, with
        # bookkeeping per turn rather than per message, one message or one batch a call.
        items = self._items
        run = self._run_batch if self._batches else self._run_each
        while True:
            if not items:
                await self._wait_for_items()
                continue
            self._in_flight += 1
            n = 0
            try:
                n = run(min(len(items), _YIELD_EVERY))
            finally:
                self._in_flight -= 1
                self.processed += n
            if items:
                await asyncio.sleep(0)  # let the reader and other tasks run
            else:
                self._check_idle()

    def _run_each(self, n: int) -> int:
        """Hand up to ``n`` waiting messages to the handler one by one; return how many."""
        items, popleft = self._items, self._items.popleft
        handler = cast(Callable[[T], object], self._handler)
        done = 0
        while items and done < n:  # the handler may clear() or close() the queue
            msg = popleft()
            done += 1
            try:
                handler(msg)
            except Exception as exc:  # a user handler must never kill the worker
                self.errors += 1
                self._report(exc)
            if self._pressured or self._putters:
                self._after_take()
        return done

    def _run_batch(self, n: int) -> int:
        """Hand ``n`` waiting messages to the handler as one list; return ``n``."""
        popleft = self._items.popleft
        batch = [popleft() for _ in range(n)]
        if self._pressured or self._putters:
            self._after_take()
        try:
            cast(Callable[[list[T]], object], self._handler)(batch)
        except Exception as exc:  # a user handler must never kill the worker
            self.errors += 1
            self._report(exc)
        return n

    async def _work_async(self) -> None:
        items = self._items
        handler = cast(Callable[[T], Awaitable[None]], self._handler)
        while True:
            if not items:
                await self._wait_for_items()
                continue
            msg = items.popleft()
            self._in_flight += 1
            self._after_take()
            try:
                await handler(msg)
            except Exception as exc:  # a user handler must never kill the worker
                self.errors += 1
                self._report(exc)
            finally:
                self._in_flight -= 1
                self.processed += 1
            if not items and self._in_flight == 0:
                self._check_idle()

    def _after_take(self) -> None:
        """Release waiting producers and BLOCK pressure once there is room."""
        if self._putters and len(self._items) < self._max:
            self._wake(self._putters)
        if self._pressured and len(self._items) <= self._low_water:
            self._set_pressure(False)

    def _check_idle(self) -> None:
        if self._idle_waiters and not self._items and self._in_flight == 0:
            waiters, self._idle_waiters = self._idle_waiters, []
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    def _drop(self, msg: T) -> None:
        self.dropped += 1
        try:
            if self._on_dropped is not None:
                self._on_dropped(msg)
            if self._on_drop is not None:
                self._on_drop(1)
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

    @staticmethod
    def _wake(waiters: deque[asyncio.Future[None]], everyone: bool = False) -> None:
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)
                if not everyone:
                    return

    def __repr__(self) -> str:
        return (
            f"MessageQueue(size={self.size}, max_size={self._max}, "
            f"overflow={self._policy.name}, processed={self.processed}, dropped={self.dropped})"
        )
