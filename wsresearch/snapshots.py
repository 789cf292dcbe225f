"""REST book snapshots for a live feed: fetched with ``httpx``, retried on backoff, recorded.

Some exchanges' books start from a REST snapshot taken beside the stream (Binance). When
the order books say a symbol waits for one (:meth:`~wsresearch.book.Books.wanting`), the
feed asks a :class:`SnapshotFetcher`: one request per symbol at a time, with the
connection's open timeout; a failure (an error status, a timeout, a refused connection)
is logged and retried after a backoff delay (the rate-limit backoff after 429 and 418,
Binance's "too many requests" and "banned"), and the delays grow until the symbol's book
is whole again, so a broken symbol cannot make a storm of requests. Each response, error
statuses included, is handed back (:class:`~wsresearch.events.RestReceived`) to be
recorded and applied in receive order; secrets in URLs are masked in logs.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import httpx

from .backoff import backoff_delay
from .config import DEFAULT_BACKOFF, RATE_LIMIT_BACKOFF, BackoffConfig
from .redaction import redact_url

__all__ = ["RATE_LIMITED", "SnapshotFetcher"]

log = logging.getLogger(__name__)

RATE_LIMITED = frozenset({418, 429})
"""Statuses that mean "slow down" (Binance: 429 too many requests, 418 banned for it)."""


class SnapshotFetcher:
    """Fetches REST snapshots for one feed (see the module docs).

    Parameters
    ----------
    on_response
        Called on the event loop with ``(symbol, url, status, body)`` for every response.
    timeout
        Seconds a request may take, connecting included.
    backoff, rate_limit_backoff
        Delays before a retry, after a failure and after 429 or 418.
    rng
        Jitter's source (a seeded one in tests).
    """

    def __init__(
        self,
        on_response: Callable[[str, str, int, str], None],
        *,
        timeout: float = 10.0,
        backoff: BackoffConfig = DEFAULT_BACKOFF,
        rate_limit_backoff: BackoffConfig = RATE_LIMIT_BACKOFF,
        rng: random.Random | None = None,
    ) -> None:
        self._on_response = on_response
        self._timeout = timeout
        self._backoff = backoff
        self._rate_limit_backoff = rate_limit_backoff
        self._rng = rng or random.Random()
        self._client: httpx.AsyncClient | None = None
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._failures: dict[str, int] = {}
        self._limited: set[str] = set()
        self.failed = 0
        """Requests that failed: an error, or a status other than 200."""
        self.last_failure: str | None = None
        """The last failure, for people: what went wrong and the URL (secrets masked)."""

    def want(self, symbol: str, url: str) -> None:
        """Fetch a snapshot of ``symbol`` from ``url``, unless one is on its way already."""
        if symbol in self._busy:
            return
        task = asyncio.get_running_loop().create_task(self._fetch(symbol, url))
        self._busy[symbol] = task
        task.add_done_callback(lambda _: self._busy.pop(symbol, None))

    def settled(self, symbol: str) -> None:
        """``symbol``'s book is whole: its next request goes without waiting."""
        self._failures.pop(symbol, None)
        self._limited.discard(symbol)

    async def aclose(self) -> None:
        """Cancel requests on their way and close the connection pool."""
        tasks = list(self._busy.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _failed(self, what: str, symbol: str, url: str) -> None:
        """Count a failed request and keep it in words, the URL's secrets masked."""
        self.failed += 1
        masked = redact_url(url)
        self.last_failure = f"{what} ({symbol} from {masked})"
        log.warning("book snapshot of %s from %s failed: %s", symbol, masked, what)

    async def _fetch(self, symbol: str, url: str) -> None:
        failures = self._failures.get(symbol, 0)
        if failures:  # after a failure, or a snapshot the book could not use
            config = (self._rate_limit_backoff if symbol in self._limited
                      else self._backoff)
            await asyncio.sleep(backoff_delay(failures, config, self._rng))
        # Counted as a failure until the book is whole (settled): a snapshot the book
        # cannot join waits longer before the next, as an error does.
        self._failures[symbol] = failures + 1
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        try:
            response = await self._client.get(url)
        except httpx.HTTPError as exc:
            self._failed(f"{type(exc).__name__}: {exc}", symbol, url)
            return
        if response.status_code != 200:
            if response.status_code in RATE_LIMITED:
                self._limited.add(symbol)
            self._failed(f"HTTP {response.status_code}", symbol, url)
        self._on_response(symbol, url, response.status_code, response.text)
