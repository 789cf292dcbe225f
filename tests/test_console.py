"""The terminal views (wsresearch.console): no secret shown, no server text read as markup."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

from rich.console import Console
from websockets.asyncio.server import ServerConnection

from wsresearch import Feed, Simulator
from wsresearch.console import FeedMonitor
from wsresearch.exchanges import raw

from .conftest import RATES, eventually, loopback_server, quick

SECRETS = ("PASSWORD123456", "SECRET123456", "SECRETBARE123456")


def shown(monitor: FeedMonitor) -> str:
    """Everything the three views print, as plain text on a wide console."""
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(monitor.render())
    console.print(monitor.summary())
    console.print(monitor.progress_line(), markup=False)
    return console.export_text()


async def test_the_views_mask_every_credential_of_the_url() -> None:
    async with Simulator(rates=RATES, seed=4) as sim:
        port = urlsplit(sim.url).port
        url = f"ws://user:PASSWORD123456@127.0.0.1:{port}/?token=SECRET123456&SECRETBARE123456"
        feed = Feed(sim.spec(url=url, connection=quick()), max_rows=0)
        monitor = FeedMonitor(feed)
        async with feed:
            await eventually(lambda: feed.store.added("trade") >= 10, what="trades")
            await sim.disconnect(1001, "going away")
            await eventually(lambda: feed.generation == 2, what="the reconnect")
            monitor.sample()
            live = shown(monitor)
        text = shown(monitor)
    assert "127.0.0.1" in live and "going away" in text  # the views do show the URL, the close
    for secret in SECRETS:
        assert secret not in live, secret
        assert secret not in text, secret


async def test_rows_are_rows_received_when_none_are_kept_in_memory() -> None:
    async with Simulator(rates=RATES, seed=5) as sim:
        feed = Feed(sim.spec(connection=quick()), max_rows=0)
        monitor = FeedMonitor(feed)
        async with feed:
            await eventually(lambda: feed.store.added("trade") >= 20, what="trades")
        assert feed.store.rows("trade") == 0
        added = feed.store.added("trade")
        text = shown(monitor)
    assert any(line.split() == ["rows:", "trade", str(added)]
               for line in text.replace("│", " ").splitlines()), text


async def test_server_text_is_shown_as_sent_never_as_markup() -> None:
    reason = "[/bold] maintenance [link=file:///etc]x[/link] :smile: \x1b[31m"

    async def handler(ws: ServerConnection) -> None:
        await ws.send('{"type":"[/oops]"}')
        await ws.close(4000, reason)

    async with loopback_server(handler) as (_, url):
        feed = Feed(raw.spec(url, connection=quick()))
        monitor = FeedMonitor(feed)
        async with feed:
            await eventually(lambda: len(monitor.closes) >= 1, what="the server's close")
        text = shown(monitor)  # a console with markup on: the views must not rely on it off
    assert "application code (4000), UNKNOWN: [/bold] maintenance [link=file:///etc]x[/link] " \
           ":smile: \\x1b[31m" in text
    assert "\x1b" not in text
