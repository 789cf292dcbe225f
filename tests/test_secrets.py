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
        connection = quick(url).model_copy(update={"headers": {"X-Api-Key": HEADER}})
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
    config = ConnectionConfig(url=f"wss://example.com/ws?token={TOKEN}",
                              headers={"Authorization": HEADER})
    assert leaks(repr(config)) == [] and leaks(str(config)) == []


def test_a_spec_shows_its_credentials_masked() -> None:
    url = f"ws://127.0.0.1:9/ws?token={TOKEN}"
    spec = raw.spec(url, subscribe=[{"op": "subscribe", "signature": KEY}])
    assert leaks(spec.description) == [] and leaks(repr(spec)) == []
    assert "token=***" in spec.description
    spec = generic.spec(url=url, api_key=KEY)
    assert leaks(repr(spec)) == [] and "'key': '***'" in repr(spec)
    assert spec.auth == {"op": "auth", "key": KEY}  # masked when shown, not when sent
