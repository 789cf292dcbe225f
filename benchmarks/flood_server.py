"""A bare websockets server that floods each client with prebuilt trade frames.

Run in its own process by ``bench_pipeline.py`` so that generating and framing
the messages does not compete with the client being measured. On each
connection it waits for one message from the client (a subscribe, or "go"),
then writes ``N`` pre-serialised frames to the socket as fast as the client
reads them and closes with 1000.

Usage: python flood_server.py N   (prints the port on stdout, then serves)
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

from wsresearch.sim import generic_frames

_CHUNK = 256 * 1024


def wire_bytes(n: int) -> bytes:
    """N unmasked text frames, serialised once, so sending costs the server nearly nothing."""
    return b"".join(
        Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
        for text in generic_frames(n, seed=7)
    )


async def main(n: int) -> None:
    wire = wire_bytes(n)

    async def flood(ws: ServerConnection) -> None:
        await ws.recv()
        transport = ws.transport
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


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
