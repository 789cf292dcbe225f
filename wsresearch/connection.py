"""A WebSocket connection that survives what exchanges do to it.

:class:`WebSocketManager` wraps the ``websockets`` asyncio client (all protocol
work stays there) and adds the lifecycle a long-running feed needs:

* **single-flight connect**: concurrent :meth:`~WebSocketManager.connect`
  calls share one attempt and one socket;
* **generations**: every successful open increments
  :attr:`~WebSocketManager.generation`, and each inbound message carries the
  generation it arrived on, so late events from an old socket are recognisable;
* **close-code policy**: after each close, or each failed open, the manager asks
  its :class:`~wsresearch.policy.ReconnectPolicy` (pure, in :mod:`wsresearch.policy`)
  what to do, and does it: wait the delay on its clock and reopen, or halt. In
  short: each close is classified (:func:`classify_close_code`) and the category
  picks the policy: ``AUTH_FAILURE`` halts after ``max_auth_failure_attempts``
  with :class:`~wsresearch.errors.WebSocketAuthError`, ``RATE_LIMITED`` waits on
  ``rate_limit_backoff``, ``NORMAL`` and ``UNKNOWN`` on ``backoff``;
  ``max_attempts`` consecutive failures halt with
  :class:`~wsresearch.errors.MaxReconnectsExceededError`. The attempt counter
  resets only once a connection has stayed open for ``stable_after`` seconds
  (10 by default), so a server that accepts and closes at once, or sends one
  welcome or ack and then closes, walks up the backoff schedule instead of
  being hammered; rate-limit closes count their own attempts on their own
  schedule, and a requested reconnect (a resync) goes at once only after a
  stable connection;
* **close records**: every closed connection becomes a :class:`CloseInfo` (code,
  reason, category, and who closed it: this side, the server, or the network),
  held in :attr:`~WebSocketManager.last_close` before the close listeners run;
* **re-subscription**: ``on_connected`` hooks run on every open, before the
  messages queued by :meth:`~WebSocketManager.send` while disconnected;
* **heartbeat**: a WebSocket ping every ``interval`` (plus an optional
  app-level ping message); no pong within ``timeout``, counted from before the
  ping is written, means the peer is gone (half-open TCP) or has stopped
  reading, so the socket is dropped and the reconnect policy runs; a peer that
  lets more than :data:`MAX_UNSENT` bytes pile up unread (a ping flood whose
  pongs it never reads) is dropped at once;
* **flow control**: :meth:`~WebSocketManager.pause_reading` stops reading the
  socket, so backpressure reaches TCP instead of memory;
* **runs**: handlers registered with :meth:`~WebSocketManager.on_messages` get the
  messages one read of the socket brought as one list, without an ``await`` per
  message, each whole frame read ahead of websockets' parser
  (:mod:`wsresearch._client`); up to the room they say they have: the rest wait in
  websockets' buffer, with its flow control, and come after, in order.

Exceptions raised by user handlers are reported through ``on_error`` and never
reach the connection. Backoff sleeps and pong timeouts run on the injected
clock; only the TCP/TLS/HTTP handshake itself uses real time (``open_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import random
import ssl
import warnings
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from ._callbacks import notify, register
from ._client import MAX_UNSENT, GuardedConnection
from .clock import NS_PER_S, Clock, SystemClock
from .config import (
    CloseCategory,
    ConnectionConfig,
    HeartbeatConfig,
    ReconnectConfig,
    validate_ws_url,
)
from .errors import NotConnectedError, WebSocketError
from .policy import (
    _ABNORMAL,
    CLIENT_CLOSE_REASONS,
    END_OF_SESSION,
    Halt,
    ReconnectPolicy,
    Request,
    Retry,
    classify_close_code,
    describe_close,
)
from .redaction import MaskingLogger, SecretMask, masked_urls, redact_url, url_secrets

__all__ = [
    "CLIENT_CLOSE_REASONS",
    "END_OF_SESSION",
    "MAX_UNSENT",
    "CloseCategory",
    "CloseInfo",
    "CloseInitiator",
    "ConnectionConfig",
    "ConnectionState",
    "HeartbeatConfig",
    "ReconnectConfig",
    "WebSocketManager",
    "classify_close_code",
    "close_reason",
    "describe_close",
    "redact_url",
    "validate_ws_url",
]

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

# Messages read back-to-back before the reader yields to the loop: websockets
# hands over already-buffered frames without suspending, and the parser's
# worker must get a turn before a bounded queue overflows for no real reason.
_READ_BURST = 64
# Room for a run when no run handler says how much it has.
_NO_LIMIT = 1 << 62
# The longest close reason a close frame holds (125 bytes of payload, 2 for the code).
_MAX_CLOSE_REASON = 123
# Codes this side sends when it fails a connection because of what the peer sent.
_FAILED_BY_US = frozenset({1002, 1007, 1009})


class ConnectionState(StrEnum):
    """Where a :class:`WebSocketManager` is in its lifecycle."""

    DISCONNECTED = "DISCONNECTED"
    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    RECONNECTING = "RECONNECTING"


CloseInitiator = Literal["client", "server", "network"]
"""Who closed a connection: this side, the peer, or neither (see :class:`CloseInfo`)."""


@dataclass(frozen=True, slots=True)
class CloseInfo:
    """One closed connection: how it ended, who ended it, and when.

    Attributes
    ----------
    generation
        The connection's generation (:attr:`WebSocketManager.generation`).
    code
        The close code recorded (``None``: the connection ended without one).
    reason
        The close reason recorded: the peer's text, or this side's.
    category
        What :func:`classify_close_code` made of ``code``; it picked the policy.
    mono_ns
        When the close was recorded, on the manager's monotonic clock.
    initiator
        ``"client"`` when this side closed it: :meth:`~WebSocketManager.disconnect`,
        a heartbeat drop (``no pong``, ``peer stopped reading``), a requested
        reconnect or resync, or a connection this side failed with 1002, 1007 or
        1009 because of what the peer sent. ``"server"`` when the peer's close frame
        came first. ``"network"`` when no close frame was exchanged at all (a reset,
        an end of stream). A refused handshake never opened, so it is no close.
    """

    generation: int
    code: int | None
    reason: str
    category: CloseCategory
    mono_ns: int
    initiator: CloseInitiator


def _tls_context(url: str, config: ConnectionConfig, safe_url: str) -> ssl.SSLContext | None:
    """The TLS context to connect with: ``None`` keeps websockets' verified default.

    An unverifying context only when ``verify_tls=False`` was asked for, with a warning.
    """
    if config.verify_tls or not url.startswith("wss://"):
        return None
    message = (f"TLS certificate verification is off for {safe_url}: anyone on the path "
               "can read and alter this feed")
    warnings.warn(message, stacklevel=1)  # raised on connecting, in the manager's task
    log.warning("%s", message)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class WebSocketManager:
    """One logical connection to a feed, reopened per policy for as long as needed.

    Parameters
    ----------
    url
        The ``ws://`` or ``wss://`` URL (a spec's :attr:`~wsresearch.spec.FeedSpec.url`).
    config
        How to connect: reconnect and heartbeat policy, limits, headers
        (:class:`~wsresearch.config.ConnectionConfig`; its defaults when omitted).
    clock
        Time source for backoff sleeps, heartbeats and timestamps.
    rng
        Source of backoff jitter; seed it for a reproducible schedule.

    Examples
    --------
    >>> from wsresearch import Simulator
    >>> async def main():
    ...     async with Simulator() as sim:
    ...         ws = WebSocketManager(sim.url)
    ...         ws.on_connected(lambda: ws.send({"op": "subscribe", "channels": ["trade"]}))
    ...         got = []
    ...         ws.on_message(lambda data, generation: got.append(generation))
    ...         await ws.connect()
    ...         while not got:
    ...             await asyncio.sleep(0.01)
    ...         await ws.disconnect()
    ...         return ws.generation, got[0]
    >>> asyncio.run(main())
    (1, 1)
    """

    def __init__(
        self,
        url: str,
        config: ConnectionConfig | None = None,
        clock: Clock | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"WebSocketManager(url, config, clock): the URL comes first, as a "
                            f"string, got {type(url).__name__}")
        self._url = validate_ws_url(url)
        self.config = ConnectionConfig() if config is None else config
        """How to connect (see :class:`~wsresearch.config.ConnectionConfig`)."""
        self._safe_url = redact_url(url)
        # Only an explicit opt-out passes a TLS context: websockets' default verifies.
        # Made on the first connection attempt (with its warning), not here: a spec
        # replayed offline never connects.
        self._tls: dict[str, Any] | None = None
        self._secrets = SecretMask()
        self._secrets.add(*url_secrets(url, self.config.headers))
        self._ws_logger = MaskingLogger(logging.getLogger("websockets.client"), self._secrets)
        self._clock = clock or SystemClock()
        # The counts outlive every socket, so one policy serves the manager's whole life.
        self._policy = ReconnectPolicy(self.config.reconnect, self.config.close_codes, rng=rng)
        self._connected_url = url
        self._state = ConnectionState.DISCONNECTED
        self._generation = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._connect_waiters: list[asyncio.Future[None]] = []
        self._ws: ClientConnection | None = None
        self._outbox: deque[str] = deque()
        self._outbox_ready: asyncio.Event | None = None
        self._readable = asyncio.Event()
        self._readable.set()
        self._paused = False  # mirrors the event, read once per frame without a call
        self._user_closed = False
        self._drop_reason: str | None = None
        self._reconnect_now = False
        self._closing: set[asyncio.Task[None]] = set()
        self.last_close: CloseInfo | None = None
        """The most recent close, or ``None``; set before the close listeners run."""
        self.last_error: BaseException | None = None
        """The error that halted the manager, if it halted."""
        self.received = 0
        """Messages received over all generations."""
        self.closes: Counter[int | None] = Counter()
        """Connections closed, by close code (``None``: closed without one)."""
        self._on_connected: list[Callable[[], Awaitable[None] | None]] = []
        self._on_disconnected: list[Callable[[int | None, str, CloseCategory], None]] = []
        self._on_close: list[Callable[[CloseInfo], None]] = []
        # on_message and on_messages handlers, in the order registered: each sees a run in
        # turn, so one registered first (a feed's recorder) has it before those after.
        self._receivers: list[_Receiver] = []
        self._on_state_change: list[Callable[[ConnectionState], None]] = []
        self._on_error: list[Callable[[BaseException], None]] = []
        self._on_pong: list[Callable[[float], None]] = []
        self._on_reconnect: list[Callable[[int, float, CloseCategory], None]] = []
        self._on_sent: list[Callable[[str, int], None]] = []

    # -- read-only state --------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL this manager connects to."""
        return self._url

    @property
    def connected_url(self) -> str:
        """The URL of the current (or last) connection: :attr:`url`, or where a redirect led."""
        return self._connected_url

    @property
    def state(self) -> ConnectionState:
        """The current :class:`ConnectionState`."""
        return self._state

    @property
    def generation(self) -> int:
        """Successful opens so far: 0 before the first, +1 per (re)connect."""
        return self._generation

    @property
    def attempt(self) -> int:
        """Consecutive failures: failed opens, connections closed before ``stable_after``."""
        return self._policy.attempt

    @property
    def reading_paused(self) -> bool:
        """Whether :meth:`pause_reading` is in effect."""
        return self._paused

    # -- handlers ----------------------------------------------------------------

    def on_connected(self, fn: Callable[[], Awaitable[None] | None]) -> Callable[[], None]:
        """Run ``fn`` on every open, reconnects included, before queued sends go out.

        Use it to authenticate, subscribe and catch up. ``fn`` may be ``async``.
        Returns a callable that unregisters ``fn``.
        """
        return register(self._on_connected, fn)

    def on_disconnected(
        self, fn: Callable[[int | None, str, CloseCategory], None]
    ) -> Callable[[], None]:
        """Call ``fn(code, reason, category)`` whenever an open connection closes.

        By then :attr:`last_close` holds the same close as a :class:`CloseInfo`,
        with who closed it; :meth:`on_close` hands that over directly.
        """
        return register(self._on_disconnected, _sync_only(fn, "on_disconnected"))

    def on_close(self, fn: Callable[[CloseInfo], None]) -> Callable[[], None]:
        """Call ``fn(info)`` with the :class:`CloseInfo` of every connection that closes.

        It runs at the same moment as :meth:`on_disconnected` (just before those
        listeners), once :attr:`last_close` is ``info``. A failed open is no close.
        Returns a callable that unregisters ``fn``.
        """
        return register(self._on_close, _sync_only(fn, "on_close"))

    def on_message(self, fn: Callable[[str | bytes, int], None]) -> Callable[[], None]:
        """Call ``fn(data, generation)`` for every inbound message, in order.

        ``fn`` runs as the socket is read: keep it short (hand work to a queue).
        """
        return self._receive(_Receiver(_sync_only(fn, "on_message"), None, runs=False))

    def on_messages(
        self,
        fn: Callable[[list[str | bytes], int], None],
        *,
        room: Callable[[], int] | None = None,
    ) -> Callable[[], None]:
        """Call ``fn(messages, generation)`` with each run of inbound messages, in order.

        A run is the messages one read of the socket brought, taken as the read is
        parsed: one call and no ``await`` per read, where a ``recv()`` per message costs
        about a microsecond each. What cannot join the run waits in websockets' buffer
        and comes after it, in order, in runs of what waits there: a message of several
        frames, text that is not UTF-8 (websockets then closes the connection with
        1007, and nothing after it comes), what is read while :meth:`pause_reading`
        holds, what exceeds ``room``, and what is read behind any of those.

        Parameters
        ----------
        fn
            Called with the list of messages (text as ``str``, binary as ``bytes``)
            and the connection's generation. It must not keep the list and change it.
        room
            How many messages ``fn`` can take now, asked at each read; what does not
            fit stays in websockets' buffer (its flow control stops reading the socket
            once a few messages wait there) and comes once ``fn`` has taken what it
            holds. ``None``: as many as a read holds. With several handlers, the
            smallest room counts.

        The handlers, ``on_message`` and ``on_messages`` alike, see each run in the order
        they were registered: an ``on_message`` handler sees each of its messages in turn.
        Returns a callable that unregisters ``fn``.

        Raises
        ------
        TypeError
            If ``fn`` is an ``async def``. A ``room`` that raises, or returns anything
            but an ``int``, is reported through ``on_error`` and counts as no room.
        """
        return self._receive(_Receiver(_sync_only(fn, "on_messages"), room, runs=True))

    def _receive(self, receiver: _Receiver) -> Callable[[], None]:
        """Register ``receiver``; return a callable that unregisters it, even mid-run."""
        remove = register(self._receivers, receiver)

        def unregister() -> None:
            receiver.active = False
            remove()

        return unregister

    def on_state_change(self, fn: Callable[[ConnectionState], None]) -> Callable[[], None]:
        """Call ``fn(state)`` on every state change."""
        return register(self._on_state_change, _sync_only(fn, "on_state_change"))

    def on_error(self, fn: Callable[[BaseException], None]) -> Callable[[], None]:
        """Call ``fn(exc)`` for failed opens, handler errors and the halting error."""
        return register(self._on_error, _sync_only(fn, "on_error"))

    def on_pong(self, fn: Callable[[float], None]) -> Callable[[], None]:
        """Call ``fn(rtt_seconds)`` for every WebSocket pong."""
        return register(self._on_pong, _sync_only(fn, "on_pong"))

    def on_reconnect(self, fn: Callable[[int, float, CloseCategory], None]) -> Callable[[], None]:
        """Call ``fn(attempt, delay_seconds, category)`` when a retry is scheduled."""
        return register(self._on_reconnect, _sync_only(fn, "on_reconnect"))

    def on_sent(self, fn: Callable[[str, int], None]) -> Callable[[], None]:
        """Call ``fn(text, generation)`` for every message written to the socket."""
        return register(self._on_sent, _sync_only(fn, "on_sent"))

    def hide(self, *values: str) -> None:
        """Mask ``values`` (a key, a signature) wherever websockets' own log shows them.

        The URL's password and query values and the headers' values are masked
        from the start; :class:`~wsresearch.feed.Feed` adds the values of its
        spec's ``redact`` keys in every auth message it sends.
        """
        self._secrets.add(*values)

    # -- control -------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, or join the connection attempt already under way.

        Returns once a connection is open and its ``on_connected`` hooks have
        run. Failed attempts are retried per the reconnect policy.

        Raises
        ------
        WebSocketAuthError
            If authentication failed ``max_auth_failure_attempts`` times.
        MaxReconnectsExceededError
            If ``max_attempts`` attempts in a row failed.
        WebSocketError
            If the connection closed with reconnects disabled, or
            :meth:`disconnect` was called meanwhile.
        """
        self._user_closed = False
        if self._state is ConnectionState.CONNECTED:
            return
        if self._supervisor is None or self._supervisor.done():
            self.last_error = None
            self._supervisor = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"wsresearch-connection {self._safe_url}"
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._connect_waiters.append(waiter)
        await waiter

    async def disconnect(self) -> None:
        """Close the connection and cancel any pending reconnect; leave no task behind.

        The close frame goes out and reading goes on until the server answers it: the
        messages it sent before are handed to the ``on_message`` handlers, in order. A
        server that does not answer within ``close_timeout`` is dropped. Reading paused for
        backpressure (:meth:`pause_reading`) and not resumed holds the stop up to
        ``close_timeout`` too. If the caller gives up on ``disconnect()`` (a timeout around
        it), the socket is dropped at once and nothing more is handed on.
        """
        self._user_closed = True
        task, self._supervisor = self._supervisor, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._fail_waiters(WebSocketError("disconnect() was called while connecting"))
        self._set_state(ConnectionState.DISCONNECTED)

    async def wait_stopped(self) -> None:
        """Wait until the manager stops for good; raise the error that halted it, if any."""
        task = self._supervisor
        if task is not None:
            await asyncio.shield(task)
        if self.last_error is not None:
            raise self.last_error

    def reconnect(self, reason: str = "reconnect requested") -> None:
        """Drop the current connection and open a new one: at once after a stable one.

        Use it to resync after a sequence gap. If the connection was open for less
        than ``ReconnectConfig.stable_after`` seconds, the new one waits its backoff
        and counts as an attempt, so a resync that fails again and again cannot
        become a reconnect storm. The close sent carries ``reason`` (shortened to the
        123 bytes a close frame holds). Does nothing when not connected.
        """
        ws = self._ws
        if ws is None or ws.state is not State.OPEN or self._drop_reason is not None:
            return  # already closing: the peer's own close code must stay what it was
        if not reason.startswith(CLIENT_CLOSE_REASONS):
            reason = f"reconnect requested: {reason}"  # recognisably this side's close
        self._reconnect_now = True
        self._drop(ws, reason, graceful=True)

    def send(self, message: str | Mapping[str, Any] | list[Any]) -> None:
        """Send ``message`` now, or as soon as a connection is open.

        Non-string messages are serialised as compact JSON. Messages sent while
        disconnected are queued and go out, in order, after the next open's
        ``on_connected`` hooks.

        Raises
        ------
        NotConnectedError
            After :meth:`disconnect` (call :meth:`connect` first).
        TypeError
            If ``message`` cannot be serialised as JSON.
        """
        if self._user_closed:
            raise NotConnectedError("send() after disconnect(): call connect() first")
        text = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
        self._outbox.append(text)
        if self._outbox_ready is not None:
            self._outbox_ready.set()

    def pause_reading(self) -> None:
        """Stop reading the socket until :meth:`resume_reading` (backpressure)."""
        self._paused = True
        self._readable.clear()

    def resume_reading(self) -> None:
        """Resume reading the socket."""
        self._paused = False
        self._readable.set()

    # -- the supervisor --------------------------------------------------------------

    async def _supervise(self) -> None:
        """Open, serve, ask the policy, wait: until the policy halts or disconnect() ends it."""
        self._policy.start_session()
        state = ConnectionState.CONNECTING
        while True:
            self._set_state(state)
            state = ConnectionState.RECONNECTING
            decision = await self._attempt_once()
            if isinstance(decision, Halt):
                if decision.error is not None:
                    self._halt(decision.error)
                return
            if decision.attempt:  # attempt 0 is a resync after a good run: it goes at once
                self._announce(decision)
                await self._clock.sleep(decision.delay)
                if self._user_closed:
                    return  # disconnect() came and its cancellation was swallowed on the way

    def _requested(self) -> Request | None:
        """Why this side closed the connection that just ended, if it did (for the policy)."""
        if self._user_closed:
            return "disconnect"
        return "reconnect" if self._reconnect_now else None

    def _after_close(self, close: CloseInfo, open_for: float) -> Retry | Halt:
        requested, self._reconnect_now = self._requested(), False
        decision = self._policy.after_close(
            close.code, close.reason, open_for=open_for, requested=requested
        )
        if requested == "reconnect" and isinstance(decision, Retry) and decision.attempt:
            log.warning(
                "a reconnect (%r) was requested less than stable_after (%g s) after the "
                "connection opened: waiting %.2f s first (attempt %d), so repeated resyncs "
                "cannot become a reconnect storm", close.reason,
                self.config.reconnect.stable_after, decision.delay, decision.attempt)
        return decision

    def _announce(self, retry: Retry) -> None:
        log.info(
            "reconnecting to %s in %.2f s (attempt %d, %s)",
            self._safe_url, retry.delay, retry.attempt, retry.category.name,
        )
        self._set_state(ConnectionState.RECONNECTING)
        self._emit(self._on_reconnect, retry.attempt, retry.delay, retry.category)

    def _halt(self, exc: WebSocketError) -> None:
        self.last_error = exc
        log.error("%s", exc)
        self._emit(self._on_error, exc)
        self._fail_waiters(exc)
        self._set_state(ConnectionState.DISCONNECTED)

    async def _attempt_once(self) -> Retry | Halt:
        """Open one connection, serve it until it closes, and ask the policy what next."""
        if self._tls is None:  # decided on the first attempt: an offline replay never warns
            context = _tls_context(self._url, self.config, self._safe_url)
            self._tls = {} if context is None else {"ssl": context}
        connector = _Connect(
            self.url,
            on_redirect=self._redirected,
            subprotocols=[Subprotocol(p) for p in self.config.subprotocols] or None,
            additional_headers=self.config.headers or None,
            max_size=self.config.max_message_size,
            open_timeout=self.config.open_timeout,
            close_timeout=self.config.close_timeout,
            ping_interval=None,  # heartbeat is ours: on the injected clock, with on_pong
            compression="deflate",
            logger=self._ws_logger,
            create_connection=GuardedConnection,
            **self._tls,
        )
        try:
            ws = await connector
        except InvalidStatus as exc:
            status = exc.response.status_code
            self._report_open_failure(f"server answered HTTP {status}")
            return self._policy.after_failed_open(
                f"HTTP {status}", status=status, requested=self._requested())
        except Exception as exc:  # refused, DNS, TLS, timeout, bad redirect: all retryable
            self._report_open_failure(f"{type(exc).__name__}: {exc}")
            return self._policy.after_failed_open(str(exc), requested=self._requested())
        if self._user_closed:
            # disconnect() came while the handshake was finishing, and on Python 3.11
            # asyncio's timeout can swallow that cancellation: without this check the
            # new connection would be served, and disconnect() would wait on it forever.
            ws.transport.abort()
            raise asyncio.CancelledError
        self._connected_url = connector.uri
        assert isinstance(ws, GuardedConnection)  # made by create_connection
        close, open_for = await self._serve(ws)
        return self._after_close(close, open_for)

    def _redirected(self, old: str, new: str, cross_origin: bool) -> None:
        self._secrets.add(*url_secrets(new, {}))  # the server's URL may carry a token too
        if cross_origin:
            log.warning("%s redirected to %s, another origin: the connection's headers "
                        "are not sent there", redact_url(old), redact_url(new))
        else:
            log.info("%s redirected to %s", redact_url(old), redact_url(new))

    async def _serve(self, ws: GuardedConnection) -> tuple[CloseInfo, float]:
        """Serve ``ws`` until it closes: its :class:`CloseInfo`, and the seconds it was open."""
        self._generation += 1
        generation = self._generation
        opened = self._clock.monotonic_ns()
        self._ws = ws
        self._drop_reason = None
        self._reconnect_now = False  # a request made on an earlier connection is spent
        self._outbox_ready = asyncio.Event()
        queued, self._outbox = self._outbox, deque()  # hooks' sends go first
        loop = asyncio.get_running_loop()
        reader = loop.create_task(self._read(ws, generation), name="wsresearch-reader")
        ws.room = self._room
        ws.hand = functools.partial(self._hand, generation=generation)
        writer = loop.create_task(self._write(ws), name="wsresearch-writer")
        heartbeat = (
            loop.create_task(self._heartbeat(ws), name="wsresearch-heartbeat")
            if self.config.heartbeat.enabled
            else None
        )
        try:
            for hook in list(self._on_connected):
                try:
                    result = hook()
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    self._report(exc)
            if self._user_closed:
                # disconnect() came while a hook ran, and the hook (or a timeout inside
                # it) swallowed the cancellation: do not serve a connection nobody wants.
                raise asyncio.CancelledError
            self._outbox.extend(queued)
            self._outbox_ready.set()
            if not reader.done():
                log.info("connected to %s (generation %d)", redact_url(self._connected_url),
                         generation)
                self._set_state(ConnectionState.CONNECTED)
                self._resolve_waiters()
            # Shielded: a disconnect() cancels this task, not the reader (see below).
            await asyncio.shield(reader)
        finally:
            tasks = [t for t in (writer, heartbeat) if t is not None and not t.done()]
            for task in tasks:
                task.cancel()
            # The reader goes on while the connection closes. What the peer sent before
            # its close frame is read and handed on like any message, and the close frame
            # behind it is reached: a busy peer's frames fill websockets' buffer as soon
            # as nobody reads, and the closing handshake would then wait out close_timeout
            # and end as an abnormal 1006.
            timeout = self.config.close_timeout
            deadline = loop.time() + timeout
            try:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(1000, END_OF_SESSION), timeout)
                if ws.state is not State.CLOSED:
                    # The closing handshake timed out (a peer that no longer reads, say):
                    # drop the TCP connection rather than leave it half alive.
                    ws.transport.abort()
                # The messages read before the close are handed on: the reader ends once
                # websockets' buffer is empty. One paused for backpressure may be resumed
                # (a feed's queue drains) until close_timeout after the close began.
                await asyncio.wait([reader], timeout=max(0.0, deadline - loop.time())
                                   if self._paused else timeout)
            except BaseException:
                # Cancelled again (the caller of disconnect() gave up): the socket goes
                # now, and the reader with it, so no message is handed on after.
                ws.transport.abort()
                raise
            finally:
                ws.hand = None  # nothing is handed on from here
                reader.cancel()
                await asyncio.gather(reader, *tasks, return_exceptions=True)
            self._ws = None
            self._outbox_ready = None
            close = self._record_close(generation, *self._close_status(ws))
        return close, (self._clock.monotonic_ns() - opened) / NS_PER_S

    def _close_status(self, ws: ClientConnection) -> tuple[int | None, str, CloseInitiator]:
        """The close to record for ``ws``: code, reason, and who closed it."""
        stalled = getattr(ws, "stalled", None)
        if stalled is not None:
            reason = f"peer stopped reading: {stalled} bytes unsent (over {MAX_UNSENT})"
            return _ABNORMAL, reason, "client"
        if self._drop_reason is not None:
            # We dropped it: a reconnect request closes cleanly, a dead peer is abnormal.
            dropped = 1000 if self._reconnect_now else _ABNORMAL
            return dropped, close_reason(self._drop_reason), "client"
        protocol = ws.protocol
        sent, rcvd = protocol.close_sent, protocol.close_rcvd
        if rcvd is None and sent is not None and sent.code in _FAILED_BY_US:
            # We failed the connection (a protocol error such as an invalid close
            # code, bad UTF-8, a message over max_message_size): say so, not 1006.
            return int(sent.code), sent.reason, "client"
        if (self._user_closed and rcvd is None and sent is not None
                and (int(sent.code), sent.reason) == (1000, END_OF_SESSION)):
            # disconnect()'s close frame went unanswered (a peer that no longer reads, a
            # network gone): the handshake is abnormal, but it is still this side that
            # ended the session, and the reason says so (policy.ends_session).
            return _ABNORMAL, f"{END_OF_SESSION}: the peer did not answer the close", "client"
        code = ws.close_code  # websockets' CloseCode enum, or None
        if rcvd is not None and protocol.close_rcvd_then_sent is not False:
            initiator: CloseInitiator = "server"  # the peer's close frame came first
        elif sent is not None:
            initiator = "client"  # ours came first: disconnect(), or a failed connection
        else:
            initiator = "network"  # no close frame either way: a reset, an end of stream
        return (None if code is None else int(code)), ws.close_reason or "", initiator

    def _record_close(
        self, generation: int, code: int | None, reason: str, initiator: CloseInitiator
    ) -> CloseInfo:
        category = classify_close_code(code, self.config.close_codes)
        self.closes[code] += 1
        close = CloseInfo(
            generation, code, reason, category, self._clock.monotonic_ns(), initiator
        )
        # Set before any listener runs, so an on_disconnected listener can read it.
        self.last_close = close
        # A close we asked for is news; one the peer or the network imposed is a warning.
        level = logging.INFO if self._user_closed or self._reconnect_now else logging.WARNING
        log.log(  # the reason is the peer's text: quoted, so it cannot drive a terminal
            level, "connection to %s closed: code %s (%s) %r",
            self._safe_url, code, category.name, reason,
        )
        self._emit(self._on_close, close)
        self._emit(self._on_disconnected, code, reason, category)
        return close

    async def _read(self, ws: GuardedConnection, generation: int) -> None:
        """Hand on the messages that wait in websockets' buffer (those no run took)."""
        readable = self._readable
        hand = self._hand
        burst = 0
        try:
            while True:
                if self._paused:
                    # Paused for backpressure: websockets stops reading TCP once
                    # its own small buffer fills. Resume reads what it buffered.
                    await readable.wait()
                run = [await ws.recv()]
                ws.waiting -= 1
                # Those waiting behind it join its run: buffered, each comes without a wait.
                closed = False
                for _ in range(min(ws.waiting, self._room() - 1, _READ_BURST - 1 - burst)):
                    try:
                        run.append(await ws.recv())
                    except ConnectionClosed:  # websockets failed the connection for it
                        closed = True
                        break
                    ws.waiting -= 1
                hand(run, generation)
                if closed:
                    # What is left in websockets' buffer came after: not handed on (and a
                    # message cut short there, of too many fragments, cannot be read).
                    return
                burst += len(run)
                if burst >= _READ_BURST:
                    burst = 0
                    await asyncio.sleep(0)
        except ConnectionClosed:
            return

    def _room(self) -> int:
        """How many messages a run may take now: none while paused or without run handlers."""
        if self._paused:
            return 0
        room = None
        for receiver in self._receivers:
            if not receiver.runs:
                continue
            if receiver.room is None:
                room = _NO_LIMIT if room is None else room
                continue
            try:
                value = receiver.room()
                if type(value) is not int:
                    raise TypeError(f"on_messages(room=): room() must return an int, "
                                    f"got {type(value).__name__}")
            except Exception as exc:
                self._report(exc)
                return 0
            room = value if room is None else min(room, value)
        return 0 if room is None else room

    def _hand(self, messages: list[str | bytes], generation: int) -> None:
        """Hand ``messages`` on, in order, to each handler in the order registered."""
        self.received += len(messages)
        for receiver in list(self._receivers):  # one may unregister itself, or another
            fn = receiver.fn
            if receiver.runs:
                if receiver.active:
                    try:
                        fn(messages, generation)
                    except Exception as exc:
                        self._report(exc)
                continue
            for data in messages:
                if not receiver.active:
                    break
                try:
                    fn(data, generation)
                except Exception as exc:
                    self._report(exc)

    async def _write(self, ws: ClientConnection) -> None:
        ready = self._outbox_ready
        assert ready is not None
        generation = self._generation
        while True:
            await ready.wait()
            ready.clear()
            outbox = self._outbox
            while outbox:
                text = outbox[0]
                try:
                    await ws.send(text)
                except ConnectionClosed:
                    return  # unsent messages stay queued for the next connection
                outbox.popleft()
                self._emit(self._on_sent, text, generation)

    async def _heartbeat(self, ws: ClientConnection) -> None:
        config = self.config.heartbeat
        try:
            while True:
                await self._clock.sleep(config.interval)
                if config.ping_message is not None:
                    try:
                        message = config.ping_message
                        self.send(message() if callable(message) else message)
                    except Exception as exc:
                        self._report(exc)
                written = asyncio.Event()
                # The timer starts before the ping is written: websockets' ping()
                # waits for the write buffer to drain first, and a peer that stopped
                # reading never lets it, so the ping itself is part of the wait.
                rtt = await self._wait_on_clock(_ping(ws, written), config.timeout)
                if rtt is not None:
                    self._emit(self._on_pong, rtt)
                elif not written.is_set():
                    unsent = ws.transport.get_write_buffer_size()
                    log.warning(
                        "%s stopped reading: the ping could not be sent within %g s (the "
                        "write buffer did not drain; %d bytes unsent); dropping the "
                        "connection", self._safe_url, config.timeout, unsent,
                    )
                    self._drop(ws, f"peer stopped reading: {unsent} bytes unsent after "
                               f"{config.timeout:g} s", graceful=False)
                    return
                elif not self.reading_paused:
                    # While reading is paused the pong may sit unread in our own
                    # buffer: only an unpaused silence condemns the peer.
                    log.warning(
                        "no pong from %s within %g s: dropping the connection",
                        self._safe_url, config.timeout,
                    )
                    self._drop(ws, f"no pong within {config.timeout:g} s", graceful=False)
                    return
        except ConnectionClosed:
            return

    async def _wait_on_clock(self, future: Awaitable[float], limit: float) -> float | None:
        """Await ``future`` for at most ``limit`` seconds of the injected clock.

        Returns ``None`` on timeout; raises what ``future`` raised (``ConnectionClosed``).
        """
        pong = asyncio.ensure_future(future)
        timer = asyncio.ensure_future(self._clock.sleep(limit))
        try:
            await asyncio.wait({pong, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Neither is left behind: not on a timeout, nor when the heartbeat itself is
            # cancelled (the connection closing), when the ping would end unobserved.
            timer.cancel()
            if not pong.done():
                pong.cancel()
            elif not pong.cancelled():
                pong.exception()  # retrieved: raised below when it matters
        if pong.done() and not pong.cancelled():
            return pong.result()
        return None

    def _drop(self, ws: ClientConnection, reason: str, *, graceful: bool) -> None:
        if self._drop_reason is not None:
            return  # the first reason stands
        self._drop_reason = reason
        if graceful:
            task = asyncio.get_running_loop().create_task(ws.close(1000, close_reason(reason)))
            self._closing.add(task)  # owned until done, so it is never garbage-collected early
            task.add_done_callback(functools.partial(self._closed, ws))
        else:
            ws.transport.abort()

    def _closed(self, ws: ClientConnection, task: asyncio.Task[None]) -> None:
        """A graceful drop is done: if the close itself failed, the socket goes anyway."""
        self._closing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("closing %s failed (%s): dropping the connection", self._safe_url,
                        task.exception())
            ws.transport.abort()

    # -- helpers -------------------------------------------------------------------

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        self._state = state
        self._emit(self._on_state_change, state)

    def _emit(self, handlers: list[Callable[..., Any]], *args: Any) -> None:
        # A failing on_error handler is only logged: reporting it there again could loop.
        notify(handlers, *args, logger=log, what="an on_error handler",
               on_error=None if handlers is self._on_error else self._report)

    def _report(self, exc: BaseException) -> None:
        log.debug("handler raised %s: %s", type(exc).__name__, exc)
        if not self._on_error:
            log.error("handler raised %s: %s", type(exc).__name__, exc)
        self._emit(self._on_error, exc)

    def _report_open_failure(self, what: str) -> None:
        # websockets' errors may quote a URL (a redirect's target) or a header value.
        what = self._secrets.apply(masked_urls(what))
        log.warning("could not connect to %s: %s", self._safe_url, what)
        self._emit(self._on_error, WebSocketError(f"could not connect to {self._safe_url}: {what}"))

    def _resolve_waiters(self) -> None:
        waiters, self._connect_waiters = self._connect_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _fail_waiters(self, exc: BaseException) -> None:
        waiters, self._connect_waiters = self._connect_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)

    def __repr__(self) -> str:
        return (
            f"WebSocketManager(url={self._safe_url!r}, state={self._state.name}, "
            f"generation={self._generation})"
        )


def _sync_only(fn: F, name: str) -> F:
    if inspect.iscoroutinefunction(fn):
        raise TypeError(f"{name} handlers must be plain functions, not async def")
    return fn


def close_reason(text: str) -> str:
    """``text`` cut to the 123 UTF-8 bytes a close frame's reason may hold.

    A longer reason makes websockets refuse to send the close at all.

    Examples
    --------
    >>> len(close_reason("resync: " + "x" * 200).encode())
    123
    """
    data = text.encode("utf-8")
    if len(data) <= _MAX_CLOSE_REASON:
        return text
    return data[:_MAX_CLOSE_REASON].decode("utf-8", "ignore")  # never half a character


async def _ping(ws: ClientConnection, written: asyncio.Event) -> float:
    """Ping and wait for the pong: the round trip in seconds. ``written`` once it is sent."""
    pong = await ws.ping()
    written.set()
    return await pong


class _Connect(ws_connect):
    """websockets' ``connect``, with redirects that leak nothing and never halt the feed.

    * A redirect to a URL that is not ``ws://`` or ``wss://`` (an ``https://``
      maintenance page) is a failed open, retried on the backoff, with an error
      that says where the server pointed.
    * A redirect to another origin does not carry the connection's headers
      (websockets drops only ``Authorization`` and ``Cookie``; exchange keys travel
      in headers of their own, such as ``X-MBX-APIKEY``).
    * Every redirect is reported to ``on_redirect(old, new, cross_origin)``.
    """

    def __init__(
        self, uri: str, *, on_redirect: Callable[[str, str, bool], None], **kwargs: Any
    ) -> None:
        super().__init__(uri, **kwargs)
        self._on_redirect = on_redirect

    def process_redirect(self, exc: Exception) -> Exception | str:
        old = self.uri
        try:
            new = super().process_redirect(exc)
        except InvalidURI as bad:
            return WebSocketError(
                f"the server redirected to {redact_url(bad.uri)}, which is not a WebSocket "
                "URL (ws:// or wss://): retrying")
        if isinstance(new, str):
            was, now = parse_uri(old), parse_uri(new)
            cross = (was.secure, was.host, was.port) != (now.secure, now.host, now.port)
            if cross:
                self.additional_headers = None
            self._on_redirect(old, new, cross)
        return new


@dataclass(slots=True)
class _Receiver:
    """An ``on_message`` or ``on_messages`` handler, and the room a run handler has."""

    fn: Callable[..., None]
    room: Callable[[], int] | None
    runs: bool
    active: bool = True
