"""A bare websockets server that floods each client with prebuilt trade frames.

Run in its own process by ``bench_pipeline.py`` so that generating and framing
the messages does not compete with the client being measured. On each
connection it waits for one message from the client (a subscribe, or "go"),
then writes ``N`` pre-serialised frames to the socket as fast as the client
reads them and closes with 1000.

With a rate (messages per second), it paces the frames instead, in slices
every 10 ms, for CPU-cost measurements at a realistic load.

Usage: python flood_server.py N [RATE]   (prints the port on stdout, then serves)
Benchmarks start it with :func:`running`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

from wsresearch.testing import generic_frames

_CHUNK = 256 * 1024


def frames(n: int) -> list[bytes]:
    """N unmasked text frames, serialised once, so sending costs the server nearly nothing."""
    return [Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
            for text in generic_frames(n, seed=7)]


def wire_bytes(n: int) -> bytes:
    """The N frames as one buffer."""
    return b"".join(frames(n))


async def main(n: int, rate: float | None = None) -> None:
    wire = wire_bytes(n) if rate is None else b""
    paced = frames(n) if rate is not None else []

    async def flood(ws: ServerConnection) -> None:
        await ws.recv()
        transport = ws.transport
        if rate is not None:
            loop = asyncio.get_running_loop()
            start, per_slice = loop.time(), max(1, round(rate / 100))
            for index in range(0, n, per_slice):
                await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
                transport.write(b"".join(paced[index : index + per_slice]))
                await ws.drain()
        else:
            for offset in range(0, len(wire), _CHUNK):
                transport.write(wire[offset : offset + _CHUNK])
                await ws.drain()  # flow control: wait while the client is behind
        await ws.close(1000, "done")

    # No compression: deflate on this side would make the server the bottleneck.
    async with serve(
        flood, "127.0.0.1", 0, ping_interval=None, max_queue=None, compression=None
    ) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()


@contextmanager
def running(messages: int, rate: float | None = None) -> Iterator[str]:
    """This server in its own process, pinned to another core than the caller; yields its URL.

    One core each, so neither side migrates mid-round or steals the other's. The caller
    gets its cores back afterwards: a later step (and every process it starts, which
    inherits the caller's cores) must not run on one core.
    """
    command = [sys.executable, __file__, str(messages)]
    if rate is not None:
        command.append(str(rate))
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:
        os.sched_setaffinity(server.pid, {cores[1]})
        os.sched_setaffinity(0, {cores[0]})
    try:
        assert server.stdout is not None
        yield f"ws://127.0.0.1:{server.stdout.readline().strip()}"
    finally:
        server.terminate()
        server.wait(10)
        os.sched_setaffinity(0, cores)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else None))
