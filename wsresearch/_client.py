"""The websockets client connection a :class:`~wsresearch.connection.WebSocketManager` serves.

websockets does all the protocol work; this subclass of its asyncio ``ClientConnection``
changes three things about how a busy feed's bytes reach the manager:

**Whole data frames, read ahead of websockets' parser.** websockets parses frames with
generators, about 2.8 µs a frame in Python, most of a bare ``recv()`` loop's cost. The
common frame of a market-data feed is one whole message: FIN set, no reserved bit (not
compressed), text or binary, unmasked, within the size limit, and not inside a fragmented
message. Each read is scanned for such frames, which cost about 0.6 µs each to cut out and
decode; the bytes of every other frame (control frames, fragments, compressed messages, a
masked or malformed frame, one over the size limit) go to websockets' parser in order, whole
or in part, so it always sees frame boundaries and does everything else as it does without
this: pongs, closes, decompression, failing the connection for a protocol error. Nothing is
scanned before the handshake's response has ended, and nothing once websockets has stopped
parsing frames (a close received, or the connection failed: it then discards the rest).

**Runs.** A message taken ahead, or parsed by websockets, joins the read's run while the
manager serves the connection (``hand`` set) and the run has room (``room()``); the run is
handed on once the read is done, without a ``recv()`` per message. A message goes to
websockets' buffer, and so to ``recv()``, when the run cannot take it: one of several
frames, text that is not UTF-8 (whose ``recv()`` fails the connection with 1007, as
websockets does), or messages already waiting there, which must come first. Those of a read
that follow its run are put there after the run is handed on.

**The rest of a read, held for room.** When a run that had room runs out of it, the rest
of the read is kept as bytes, unparsed, and reading is paused until the loop's next turn, when the
run's taker (a feed's queue worker) has had its turn: the rest then makes a run of the room
there is then, and so on. If no room came in a turn, the rest goes to websockets' buffer
as above, whose own flow control pauses reading when it fills, so a taker that never makes
room cannot stall the connection; a read that starts with no room is not held at all. A
read that comes while the rest is held (websockets resumes reading when its buffer drains,
and a TLS transport reads on while paused) waits behind it; if the stream ends or the
connection is lost while the rest is held, websockets' buffer gets the rest first.

**A peer that stops reading.** websockets answers every ping with a pong at once, and
writes it whether or not the peer reads: a server that floods pings and never reads would
grow this side's write buffer without bound. Past :data:`MAX_UNSENT` bytes the connection
is aborted (recorded as 1006, ``peer stopped reading``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.frames import DATA_OPCODES, Frame, Opcode
from websockets.protocol import State

__all__ = ["MAX_UNSENT", "GuardedConnection"]

MAX_UNSENT = 8 * 1024 * 1024
"""Bytes this side may have waiting to be written to a peer. Only our own sends (which
wait for the buffer to drain) and automatic pongs fill it; past this much, the peer has
stopped reading and the connection is dropped."""

_END_OF_HEAD = b"\r\n\r\n"
_TEXT, _BINARY = 1, 2
_OPCODES = (Opcode.CONT, Opcode.TEXT, Opcode.BINARY)


class GuardedConnection(ClientConnection):
    """A client connection that reads whole data frames ahead and hands on runs.

    See the module's description. The manager sets :attr:`hand` and :attr:`room` while it
    serves the connection, and counts :attr:`waiting` down as ``recv()`` takes messages.
    """

    stalled: int | None = None
    """The bytes unsent when the peer was dropped for not reading, or ``None``."""
    hand: Callable[[list[str | bytes]], None] | None = None
    """Takes each run; set while the manager serves the connection."""
    room: Callable[[], int] = staticmethod(lambda: 0)
    """How many messages the next run may take."""
    waiting = 0
    """Whole messages in websockets' buffer, not yet taken by ``recv()``."""
    _run: list[str | bytes] | None = None
    _left = 0
    _later: list[Frame]
    # Reading ahead: on once the handshake's response has ended, while websockets' parser
    # (the generator it had then) parses frames; the bytes of an unfinished frame held
    # back; the bytes websockets is owed of a frame it has begun; the end of the response
    # read so far (its last bytes, where the blank line may begin).
    _ahead = False
    _parser: object = None
    _held = bytearray()  # never changed in place while empty: the shared default stays so
    _owed = 0
    _head = b""
    # The rest of a read waits for room (reading paused) until the loop's next turn;
    # on that turn, with no room yet, it goes to websockets' buffer instead.
    _holding = False
    _no_hold = False

    def data_received(self, data: bytes) -> None:
        if self._holding:  # a read while the rest of the last one is held: after it
            self._held += data  # not the shared default: it holds the rest of a read
            return
        try:
            self._receive(data)
        finally:
            if self._holding:
                self.transport.pause_reading()
                self.loop.call_soon(self._release)

    def _release(self) -> None:
        """Read on from the held rest of a read, now that the run's taker has had a turn."""
        if not self._holding:
            return  # the stream ended meanwhile, and the rest was handed on then
        self._holding = False
        try:
            self._receive(b"")
        except BaseException:
            # As when a read's handling fails: the transport is aborted, and websockets
            # gets the rest first, so nothing held is lost (recv() still returns it).
            self._receive(b"", room=0)
            self.transport.abort()
            raise
        finally:
            if self._holding:  # there was room, and the rest fills it again
                self.loop.call_soon(self._release)
            elif not self.recv_messages.paused and not self.transport.is_closing():
                self.transport.resume_reading()

    def eof_received(self) -> None:
        # A TLS transport reads on while paused, and may end the stream with the read:
        # websockets must see what is held before the end.
        self._hand_over()
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._hand_over()
        finally:
            super().connection_lost(exc)

    def _hand_over(self) -> None:
        """Give the held rest of a read, if any, to websockets' buffer, as a read with no room."""
        if self._holding:
            self._holding = False
            self._receive(b"", room=0)

    def _receive(self, data: bytes, room: int | None = None) -> None:
        """Take a read: ahead of websockets' parser where it can, else through it.

        With no room for a run at its start (``room``, else :attr:`room`'s), nothing of
        it is held: what a run cannot take goes to websockets' buffer.
        """
        hand = self.hand
        if room is None:
            room = 0 if hand is None else self.room()
        left = room
        self._no_hold = left <= 0
        run: list[str | bytes] = []
        later: list[Frame] = []
        self._run, self._left, self._later = run, left, later
        try:
            if self._ahead:
                self._read_ahead(data)
            elif self.protocol.state is State.CONNECTING:
                self._read_head(data)
            else:
                super().data_received(data)
        finally:
            self._run, self._no_hold = None, False
            try:
                if run:
                    hand(run)  # type: ignore[misc]  # not None: a run needs room
            finally:
                for frame in later:  # woken after the run's taker, behind its messages
                    super().process_event(frame)
        unsent = self.transport.get_write_buffer_size()
        if unsent > MAX_UNSENT and self.stalled is None:
            self.stalled = unsent
            self.transport.abort()

    def process_event(self, event: Any) -> None:
        """Take a whole message websockets parsed into the run, or pass ``event`` on."""
        if type(event) is not Frame or event.opcode not in DATA_OPCODES:
            super().process_event(event)  # the handshake's response, a control frame
        elif not (event.fin and event.opcode is not Opcode.CONT
                  and self._take(event.opcode is Opcode.TEXT, event.data)):
            self._buffer(event)

    def _take(self, text: bool, data: bytes | bytearray | memoryview) -> bool:
        """Add a whole message to the read's run, if it can join it; whether it did."""
        run = self._run
        if run is None or self._left <= 0 or self.waiting or self._later:
            return False
        if text:
            try:
                run.append(str(data, "utf-8"))
            except UnicodeDecodeError:
                return False  # websockets' recv() fails the connection for it
        else:
            run.append(data if type(data) is bytes else bytes(data))
        self._left -= 1
        return True

    def _buffer(self, frame: Frame) -> None:
        """Put a data frame in websockets' buffer, for ``recv()``: after the run, if any."""
        self.waiting += frame.fin
        if self._run is not None:
            self._later.append(frame)
        else:
            super().process_event(frame)

    def _read_head(self, data: bytes) -> None:
        """Give websockets the handshake's response; read ahead from the frames after it."""
        seen = self._head + data
        end = seen.find(_END_OF_HEAD)
        if end < 0:
            self._head = seen[-3:]
            super().data_received(data)
            return
        cut = end + len(_END_OF_HEAD) - len(self._head)
        self._head = b""
        super().data_received(data[:cut])
        protocol = self.protocol
        if protocol.state is State.OPEN:
            # websockets has just begun parsing frames, with nothing left in its buffer:
            # it stands at a frame's start, and every frame after is read here first.
            self._ahead, self._parser = True, protocol.parser
            if cut < len(data):
                self._read_ahead(data[cut:])
        elif cut < len(data):
            super().data_received(data[cut:])

    def _read_ahead(self, data: bytes) -> None:
        """Take the whole data frames of ``data``; give websockets every other frame's bytes."""
        owed = self._owed
        if owed:  # the rest of a frame websockets has begun
            self._owed = max(0, owed - len(data))
            super().data_received(data[:owed])
            data = data[owed:]
            if not data:
                return
        held = self._held
        if held:
            held += data
            buffer: bytes | bytearray = held
        else:
            buffer = data
        protocol = self.protocol
        limit = protocol.max_message_size
        if protocol.max_fragment_size is not None:
            limit = min(limit or protocol.max_fragment_size, protocol.max_fragment_size)
        end, pos = len(buffer), 0
        start = 0  # websockets is given [start, pos) before anything is taken
        # websockets' state changes only where it is given bytes (or between reads, where
        # recv() fails the connection): read here, and again after each hand-off. Once it
        # has stopped parsing frames (a close came, or it failed the connection), it is
        # given the rest, which it discards.
        stopped = protocol.parser is not self._parser
        inside = protocol.current_size is not None  # a fragmented message under way
        while not stopped and end - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            length, header = second & 0x7F, 2
            if length == 126:
                if end - pos < 4:
                    break
                length, header = int.from_bytes(buffer[pos + 2:pos + 4]), 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, header = int.from_bytes(buffer[pos + 2:pos + 10]), 10
            if second & 0x80:
                header += 4  # a masking key: websockets refuses the frame from a server
            stop = pos + header + length
            opcode = first & 0x0F
            whole = (first & 0xF0 == 0x80 and not second & 0x80
                     and opcode in (_TEXT, _BINARY)
                     and (limit is None or length <= limit))
            if whole:
                if stop > end:
                    break  # the rest of the message comes with a later read
                if start < pos:  # first, what websockets is to parse before it
                    super().data_received(bytes(buffer[start:pos]))
                    start = pos
                    stopped = protocol.parser is not self._parser
                    inside = protocol.current_size is not None
                    if stopped:
                        break
                whole = not inside
            if not whole:  # websockets parses it, in order with the rest
                if stop > end:
                    self._owed = stop - end
                    pos = end
                    break
                pos = stop
                continue
            if (self._left <= 0 and not self._no_hold
                    and not self.waiting and not self._later):
                self._holding = True  # the rest waits for room, unparsed
                break
            payload = buffer[pos + header:stop]
            if not self._take(opcode == _TEXT, payload):
                self._buffer(Frame(_OPCODES[opcode], bytes(payload)))
            start = pos = stop
        if stopped:
            self._ahead = False
            pos = end
        if start < pos:
            super().data_received(bytes(buffer[start:pos]))
        if pos >= end:
            if held:
                self._held = bytearray()
        elif buffer is held:
            del held[:pos]
        else:
            self._held = bytearray(buffer[pos:])

    def send_data(self) -> None:
        """Write what the protocol has to send, each run of frames in one write.

        The pongs answering a burst of pings go out together, not one write each.
        On Python 3.12 and 3.13, asyncio sums every piece still in a socket's write
        buffer at each write (CPython gh-146507): with a peer that stopped reading,
        a write per pong made a ping flood quadratic, and the cut-off at
        :data:`MAX_UNSENT` came only after many seconds of a busy loop.
        """
        run: list[bytes] = []
        for data in self.protocol.data_to_send():
            if data:
                run.append(data)
                continue
            self._write(run)
            run = []
            # An empty chunk ends the stream: half-close, as websockets does.
            if self.transport.can_write_eof():
                if self.debug:
                    self.logger.debug("x half-closing TCP connection")
                with contextlib.suppress(Exception):  # write_eof() documents no exceptions
                    self.transport.write_eof()
            else:  # TLS: no half-close
                if self.debug:
                    self.logger.debug("x closing TCP connection")
                self.transport.close()
        self._write(run)

    def _write(self, run: list[bytes]) -> None:
        if run:
            self.transport.write(run[0] if len(run) == 1 else b"".join(run))
