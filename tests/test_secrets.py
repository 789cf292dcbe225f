"""Credentials never reach a recording, a log line, a repr, the manifest or the dashboard."""

import logging
import os
import stat
from pathlib import Path

import pytest

from wsresearch import ConnectionConfig, Feed, Recording, Simulator, quality_report
from wsresearch.exchanges import generic, raw

from .conftest import eventually, quick

KEY = "KEY-d41d8cd98f00b204"
TOKEN = "TOKEN-e9800998ecf8427e"
HEADER = "HEADER-5eb63bbbe01eeed0"
SECRETS = (KEY, TOKEN, HEADER)


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


async def test_credentials_reach_no_recording_log_repr_manifest_or_dashboard(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    folder = tmp_path / "rec"
    async with Simulator(seed=1) as sim:
        url = f"{sim.url}/ws?token={TOKEN}&x=1"
        connection = quick().model_copy(update={"headers": {"X-Api-Key": HEADER}})
        spec = generic.spec(url=url, api_key=KEY, connection=connection)
        feed = Feed(spec, record_to=folder)
        async with feed:
            await eventually(lambda: feed.store.rows("trade") >= 5, what="trades")
            await sim.disconnect()  # a reconnect: auth and subscribe are sent again
            await eventually(lambda: feed.generation == 2, what="the reconnect")
            await eventually(lambda: feed.frame("trade").filter(generation=2).height >= 1,
                             what="trades after the reconnect")
            feed.mark("a note")
            views = [repr(feed), str(feed.stats), repr(feed.manager), repr(feed.recorder),
                     repr(feed.spec.connection), str(feed.errors), feed.connections.__repr__(),
                     repr(quality_report(feed)), repr(feed.spec), str(feed.spec)]
            try:
                dashboard = feed.dashboard()
            except ImportError:  # the notebook extra is not installed
                pass
            else:
                dashboard.refresh()
                views += [dashboard.header.value, dashboard.counters.value,
                          dashboard.streams_html.value, repr(dashboard)]
                dashboard.close()
        assert [m for m in sim.received if KEY in m]  # the key did go to the server
    recording = Recording.open(folder)
    events = recording.events()
    recorded = "\n".join(str(v) for column in events.columns for v in events[column].to_list())
    manifest = (folder / "manifest.json").read_text()
    # The client's logs, websockets' own debug log of the handshake and frames included
    # (the test's server, standing in for the exchange, logs what it received).
    logs = "\n".join(r.getMessage() for r in caplog.records if r.name != "websockets.server")
    assert any(r.name == "websockets.client" for r in caplog.records)
    assert leaks(recorded) == [] and leaks(manifest) == [] and leaks(logs) == []
    assert leaks(repr(recording)) == [] and leaks("\n".join(views)) == []
    assert "token=" in manifest  # the URL is kept, its credentials masked
    assert events.filter(kind="sent")["data"].str.contains('"op":"auth"').sum() == 2
    for path in (p for p in folder.rglob("*") if p.is_file()):
        assert KEY.encode() not in path.read_bytes()


async def test_recordings_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    async with Simulator(seed=2) as sim, Feed(sim.spec(), record_to=folder) as feed:
        await eventually(lambda: feed.store.rows("trade") >= 1, what="a trade")
    paths = [folder, *folder.rglob("*")]
    assert len(paths) > 3
    for path in paths:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def test_a_connection_config_repr_masks_the_url() -> None:
    config = ConnectionConfig(headers={"Authorization": HEADER})
    assert leaks(repr(config)) == [] and leaks(str(config)) == []


def test_a_spec_shows_its_credentials_masked() -> None:
    url = f"ws://127.0.0.1:9/ws?token={TOKEN}"
    spec = raw.spec(url, subscribe=[{"op": "subscribe", "signature": KEY}])
    assert leaks(spec.description) == [] and leaks(repr(spec)) == []
    assert "token=***" in spec.description
    spec = generic.spec(url=url, api_key=KEY)
    assert leaks(repr(spec)) == [] and "'key': '***'" in repr(spec)
    assert spec.auth == {"op": "auth", "key": KEY}  # masked when shown, not when sent


# The real auth shapes of the exchanges, and URL credentials websockets turns into
# headers of its own (F14, F15, F16).
BARE = "BAREQUERYTOKEN77abc"  # ws://host/ws?BAREQUERYTOKEN77abc
PASSWORD = "Sup3rSecretPw9"  # ws://alice:Sup3rSecretPw9@host/: websockets sends Basic auth
BASIC = "YWxpY2U6U3VwM3JTZWNyZXRQdzk="  # base64("alice:Sup3rSecretPw9"), what it logs
LISTEN_KEY = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a"  # Binance user data
BYBIT_KEY, BYBIT_SIG = "BYBITKEY7f3a9c", "BYBITSIG0e4d8b2a"  # {"op":"auth","args":[...]}
JWT = "eyJhbGciOiJFUzI1NiJ9.COINBASEJWT.sig"  # Coinbase Advanced Trade subscribe
KRAKEN_TOKEN = "KRAKENWSTOKEN5d2e"  # Kraken v2 params.token
CLIENT_SECRET = "DERIBITSECRET8c1f"  # Deribit params.client_secret
OKX_SIGN = "OKXSIGNATURE3b7a"  # OKX login args[0].sign
EVERY = (*SECRETS, BARE, PASSWORD, BASIC, LISTEN_KEY, BYBIT_KEY, BYBIT_SIG, JWT, KRAKEN_TOKEN,
         CLIENT_SECRET, OKX_SIGN)


def leaks_any(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [secret for secret in EVERY if secret.encode() in data]


def every_byte(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


async def test_every_auth_shape_and_url_credential_stays_out_of_every_output(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    import asyncio

    from rich.console import Console

    from wsresearch.cli import main
    from wsresearch.console import FeedMonitor
    from wsresearch.export import export_parquet

    caplog.set_level(logging.DEBUG)
    folder = tmp_path / "rec"
    async with Simulator(seed=3) as sim:
        host = sim.url.removeprefix("ws://")
        url = f"ws://alice:{PASSWORD}@{host}/ws/{LISTEN_KEY}?{BARE}&token={TOKEN}"
        connection = quick().model_copy(update={"headers": {"X-MBX-APIKEY": HEADER}})
        spec = generic.spec(url=url, api_key=KEY, connection=connection).replace(
            auth={"op": "auth", "key": KEY, "args": [BYBIT_KEY, 1_700_000_000, BYBIT_SIG]},
            subscribe=[{"op": "subscribe", "channels": ["trade", "ticker"], "jwt": JWT,
                        "params": {"token": KRAKEN_TOKEN, "client_secret": CLIENT_SECRET},
                        "args": [{"sign": OKX_SIGN, "apiKey": KEY}]}])
        feed = Feed(spec, record_to=folder)
        monitor = FeedMonitor(feed)
        async with feed:
            await eventually(lambda: feed.store.rows("trade") >= 5, what="trades")
            await sim.disconnect()  # auth and subscribe go out again
            await eventually(lambda: feed.generation == 2, what="the reconnect")
            await eventually(lambda: feed.frame("trade").filter(generation=2).height >= 1,
                             what="trades after the reconnect")
            console = Console(record=True, width=250)
            monitor.sample()
            console.print(monitor.render())
            console.print(monitor.summary())
            console.print(monitor.progress_line())
            live = quality_report(feed)
            views = [repr(feed), str(feed.stats), repr(feed.manager), repr(feed.recorder),
                     repr(feed.spec), str(feed.spec), str(feed.errors), repr(live),
                     live._repr_html_(), console.export_text(), repr(feed.connections)]
        received = "\n".join(sim.received)
        assert BYBIT_SIG in received and JWT in received  # they did reach the server
        # The command line, on the same server: record, then report, replay, export.
        cli_record = tmp_path / "cli_rec"
        assert await asyncio.to_thread(
            main, ["record", url, "--out", str(cli_record), "--seconds", "1"]) == 0
    report = quality_report(folder)
    html = report.to_html(tmp_path / "report.html").read_bytes()
    dataset = tmp_path / "ds"
    export_parquet(folder, None, dataset)
    for command in (["report", str(folder), "--html", str(tmp_path / "cli.html")],
                    ["replay", str(folder)], ["export", str(folder), "--out", str(dataset)]):
        assert await asyncio.to_thread(main, command) == 0
    printed = capsys.readouterr()
    logs = "\n".join(r.getMessage() for r in caplog.records if r.name != "websockets.server")
    assert any(r.name == "websockets.client" and "Authorization" in r.getMessage()
               for r in caplog.records)  # the handshake was logged, masked
    assert leaks_any(every_byte(folder)) == []
    assert leaks_any(every_byte(cli_record)) == []
    assert leaks_any(every_byte(dataset)) == []  # exported Parquet
    assert leaks_any(html) == [] and leaks_any((tmp_path / "cli.html").read_bytes()) == []
    assert leaks_any(repr(report)) == []
    assert leaks_any(logs) == []
    assert leaks_any(printed.out + printed.err) == []
    assert leaks_any("\n".join(views)) == []
    manifest = (folder / "manifest.json").read_text()
    assert f"ws://***:***@{host}/ws/***?***&token=***" in manifest  # what stays is useful
    sent = Recording.open(folder).events().filter(kind="sent")["data"].to_list()
    assert '{"op":"auth","key":"***","args":["***",1700000000,"***"]}' in sent


async def test_an_auth_message_with_nothing_to_mask_is_warned_about() -> None:
    async with Simulator(seed=4) as sim:
        spec = generic.spec(url=sim.url, connection=quick()).replace(
            auth={"op": "login", "credential": "SOMESECRETVALUE"})
        with pytest.warns(UserWarning, match="the auth message has no value under the spec's"):
            async with Feed(spec):
                pass


async def test_an_auth_message_that_is_not_json_is_secret_as_a_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "AUTH sk_live_abcdef123456"
    async with Simulator(seed=4) as sim:
        spec = generic.spec(url=sim.url, connection=quick()).replace(auth=token)
        async with Feed(spec, record_to=tmp_path / "rec") as feed:
            await eventually(lambda: feed.store.rows("trade") >= 1, what="a trade")
        assert token in sim.received  # it was sent
    sent = Recording.open(tmp_path / "rec").events().filter(kind="sent")["data"].to_list()
    assert sent[0] == "***"
    logs = "\n".join(r.getMessage() for r in caplog.records if r.name != "websockets.server")
    assert "sk_live_abcdef123456" not in logs and "sk_live" not in repr(spec)
