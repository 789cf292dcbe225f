"""TLS: verified by default for wss://; off only when asked for, and then with a warning."""

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.frames import Close, Frame, Opcode

from wsresearch import (
    ConnectionConfig,
    HeartbeatConfig,
    MaxReconnectsExceededError,
    ReconnectConfig,
)
from wsresearch.lowlevel import CloseInfo, WebSocketManager

from .conftest import FAST, eventually, loopback_server

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="needs the openssl command to make a test certificate")


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


async def hello(ws: ServerConnection) -> None:
    await ws.send("hello")
    await ws.wait_closed()


def config(**kw: object) -> ConnectionConfig:
    return ConnectionConfig(heartbeat=HeartbeatConfig(enabled=False),
                            reconnect=ReconnectConfig(max_attempts=1, backoff=FAST), **kw)  # type: ignore[arg-type]


async def test_an_unverifiable_certificate_is_refused_by_default(
    self_signed: ssl.SSLContext,
) -> None:
    errors: list[BaseException] = []
    async with loopback_server(hello, ssl=self_signed) as (_, url):
        manager = WebSocketManager(url.replace("ws://", "wss://"), config())
        manager.on_error(errors.append)
        with pytest.raises(MaxReconnectsExceededError):
            await manager.connect()
    assert manager.generation == 0  # never connected
    assert any("CERTIFICATE_VERIFY_FAILED" in str(e) for e in errors), errors


async def test_verification_is_off_only_when_asked_and_then_it_warns(
    self_signed: ssl.SSLContext,
) -> None:
    got: list[str | bytes] = []
    async with loopback_server(hello, ssl=self_signed) as (_, url):
        secure = url.replace("ws://", "wss://")
        manager = WebSocketManager(secure, config(verify_tls=False))
        manager.on_message(lambda data, generation: got.append(data))
        with pytest.warns(UserWarning, match="verification is off"):  # when it connects
            await manager.connect()
        await eventually(lambda: got == ["hello"], what="the greeting over TLS")
        await manager.disconnect()


def test_plain_ws_and_the_default_never_warn(recwarn: pytest.WarningsRecorder) -> None:
    WebSocketManager("ws://127.0.0.1:1", config(verify_tls=False))
    WebSocketManager("wss://127.0.0.1:1", config())
    assert not [w for w in recwarn if "verification" in str(w.message)]


@pytest.mark.parametrize("runs", [False, True], ids=["on_message", "on_messages, room 1"])
async def test_a_last_read_over_tls_loses_nothing_when_the_stream_ends_with_it(
    self_signed: ssl.SSLContext, runs: bool,
) -> None:
    # The server writes its messages and a close frame, then ends the TLS stream: the
    # client's last read brings them with the end. A TLS transport hands on the end in
    # the same read, reading paused or not; the rest of a read held for room must reach
    # websockets before it.
    wire = b"".join(Frame(Opcode.TEXT, f"m{i}".encode()).serialize(mask=False, extensions=[])
                    for i in range(5))
    wire += Frame(Opcode.CLOSE, Close(1001, "bye").serialize()).serialize(
        mask=False, extensions=[])
    go = asyncio.Event()

    async def burst(ws: ServerConnection) -> None:
        await go.wait()
        ws.transport.write(wire)
        ws.transport.close()
        await ws.wait_closed()

    got: list[str | bytes] = []
    closes: list[CloseInfo] = []
    async with loopback_server(burst, ssl=self_signed) as (_, url):
        manager = WebSocketManager(url.replace("ws://", "wss://"), config(verify_tls=False))
        if runs:
            manager.on_messages(lambda messages, generation: got.extend(messages),
                                room=lambda: 1)
        else:
            manager.on_message(lambda data, generation: got.append(data))
        manager.on_close(closes.append)
        with pytest.warns(UserWarning, match="verification is off"):
            await manager.connect()
        go.set()
        await eventually(lambda: bool(closes), what="the server's close")
        await eventually(lambda: len(got) == 5, what="every message")
        await manager.disconnect()
    assert got == [f"m{i}" for i in range(5)]
    assert closes[0].code == 1001
