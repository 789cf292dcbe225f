"""Captures of other tools imported with their receive times: every format, the CLI, the samples.

The captures are written here from a shipped recording (real Kraken messages with the
times cryptofeed received them), once per format, so every import can be compared with
the same truth: the same messages, at the same nanosecond, on the same connections.
"""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from wsresearch import Recording, replay
from wsresearch.exchanges import kraken
from wsresearch.importers import FORMATS, capture_events, detect_format, import_capture
from wsresearch.quality import quality_report
from wsresearch.recording.format import EVENT_KINDS, RecordingManifest, parse_manifest
from wsresearch.recording.writer import Captured, write_events

from .conftest import run_here

DATA = Path(__file__).resolve().parent.parent / "data"
RECORDINGS = DATA / "recordings"
TRADE = RECORDINGS / "kraken_cryptofeed_2021-04-17_v1_trade"
NS = 1_000_000_000

# Each shipped recording: the capture in data/ it was made from, and what it holds.
SHIPPED = {
    "binance_hftbacktest_2024-08-08_spot_btcusdt": (
        "binance/hftbacktest_2024-08-08_spot_btcusdt_depth100ms_bookTicker_trade_first6000"
        ".jsonl", 1),
    "binance_hftbacktest_2024-08-08_usdm_btcusdt": (
        "binance/hftbacktest_2024-08-08_usdm_btcusdt_depth0ms_bookTicker_trade_first4000"
        ".jsonl.gz", 1),
    "binance_cryptofeed_2021-10-12_spot_combined": (
        "binance/cryptofeed_2021-10-12_spot_combined_depth_bookTicker_kline_aggTrade.jsonl.gz",
        4),
    "binance_cryptofeed_2021-10-12_binanceus_combined": (
        "binance/cryptofeed_2021-10-12_binanceus_combined.jsonl.gz", 4),
    "binance_cryptofeed_2021-07-22_usdm_futures_combined": (
        "binance/cryptofeed_2021-07-22_usdm_futures_combined.jsonl.gz", 4),
    "coinbase_cryptofeed_2021-04-17_exchange_level2_ticker_matches": (
        "coinbase/cryptofeed_2021-04-17_exchange_level2_ticker_matches.jsonl.gz", 0),
    "kraken_cryptofeed_2021-04-17_v1_book1000": (
        "kraken/cryptofeed_2021-04-17_v1_book1000.jsonl.gz", 0),
    "kraken_cryptofeed_2021-04-17_v1_ticker": (
        "kraken/cryptofeed_2021-04-17_v1_ticker.jsonl.gz", 0),
    "kraken_cryptofeed_2021-04-17_v1_trade": ("kraken/cryptofeed_2021-04-17_v1_trade.jsonl.gz", 0),
    "kraken_cryptofeed_2021-07-22_futures_v1_book_trade_ticker": (
        "kraken/cryptofeed_2021-07-22_futures_v1_book_trade_ticker.jsonl.gz", 0),
    "okx_cryptofeed_2022-05-13_v5_public_tickers_trades_books": (
        "okx/cryptofeed_2022-05-13_v5_public_tickers_trades_books.jsonl.gz", 0),
}


def truth() -> tuple[str, list[tuple[int, str]], list[tuple[int, str]]]:
    """The Kraken trade session: its URL, its sent messages and its messages, timed."""
    events = Recording.open(TRADE).events()
    url = events.filter(kind="open")["data"][0]
    sent = events.filter(kind="sent").select("wall_ns", "data").rows()
    frames = events.filter(kind="frame").select("wall_ns", "data").rows()
    return url, sent, frames


def seconds(ns: int) -> str:
    return f"{ns // NS}.{ns % NS:09d}"


def iso(ns: int) -> str:
    import datetime as dt

    whole = dt.datetime.fromtimestamp(ns // NS, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{ns % NS:09d}Z"


def timed(recording: Recording) -> list[tuple[int, int, str]]:
    return recording.frames().select("generation", "recv_wall_ns", "data").rows()


# -- each format, against the same truth -----------------------------------------------------


def test_a_cryptofeed_capture_imports_with_its_connects_sends_and_times(tmp_path: Path) -> None:
    url, sent, frames = truth()
    conn = "KRAKEN.ws.1"
    records = [{"t": "header", "format": 2, "exchange": "KRAKEN", "config": {}}]
    records.append({"t": "connect", "conn": conn, "addr": url, "ts": sent[0][0] / NS - 0.4})
    records += [{"t": "send", "conn": conn, "addr": url, "ts": t / NS, "data": d}
                for t, d in sent]
    records.append({"t": "http", "conn": "KRAKEN.http.0", "ts": frames[3][0] / NS,
                    "url": "https://api.kraken.com/0/public/Depth?pair=XBTUSD", "data": "{}"})
    lines = [json.dumps(r) for r in records]
    # The receive times exactly, digit for digit, as the text of a JSON number.
    body = [f'{{"t": "recv", "conn": "{conn}", "ts": {seconds(t)}, "data": {json.dumps(d)}}}'
            for t, d in frames]
    head, http = lines[:2 + len(sent)], lines[2 + len(sent):]
    file = tmp_path / "KRAKEN.jsonl.gz"
    file.write_bytes(gzip.compress("\n".join([*head, *body[:5], *http, *body[5:]]).encode()))
    assert detect_format(file) == "cryptofeed"
    recording = import_capture(file, tmp_path / "rec",
                               spec=kraken.spec(["XBT/USD"], ["trade"], api="v1"))
    assert recording.manifest.receive_times == "imported"
    assert recording.manifest.source_url == url
    assert timed(recording) == [(1, t, d) for t, d in frames]
    events = recording.events()
    assert events["kind"].to_list()[:3] == ["open", "sent", "frame"]
    assert events.filter(kind="sent")["data"].to_list() == [d for _, d in sent]
    rest = recording.rest()
    assert rest.select("url", "body").rows() == [
        ("https://api.kraken.com/0/public/Depth?pair=XBTUSD", "{}")]  # what was asked
    assert rest["wall_ns"][0] == frames[3][0] // 1000 * 1000  # microseconds, as written
    assert replay(recording).frames["trade"].height == 10


def test_a_cryptofeed_capture_of_two_connections_is_imported_one_at_a_time(
    tmp_path: Path,
) -> None:
    _, _, frames = truth()
    file = tmp_path / "capture.jsonl"
    lines = [json.dumps({"t": "connect", "conn": f"K.ws.{i}", "addr": f"wss://k/{i}",
                         "ts": 1.0 + i}) for i in (1, 2)]
    lines += [json.dumps({"t": "recv", "conn": f"K.ws.{1 + i % 2}", "ts": t / NS, "data": d})
              for i, (t, d) in enumerate(frames[:6])]
    lines.append(json.dumps({"t": "recv", "conn": "K.ws.1", "ts": 2e9,
                             "b64": base64.b64encode(b"\x00\x01").decode()}))
    file.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"line 2: the capture holds more than one WebSocket "
                       r"connection \(K.ws.1, K.ws.2\); import one at a time"):
        import_capture(file, tmp_path / "both")
    assert not (tmp_path / "both").exists()
    second = import_capture(file, tmp_path / "two", connection="K.ws.2")
    assert second.manifest.source_url == "wss://k/2"
    assert [d for _, _, d in timed(second)] == [d for _, d in frames[1:6:2]]
    first = import_capture(file, tmp_path / "one", connection="K.ws.1")
    assert first.frames()["binary"].to_list() == [False, False, False, True]


def test_a_tardis_machine_replay_keeps_the_message_text_and_each_reconnect(
    tmp_path: Path,
) -> None:
    _, _, frames = truth()
    lines = [f'{{"localTimestamp":"{iso(t)}","message":{d}}}' for t, d in frames]
    lines.insert(20, "")  # a disconnect: the next message comes on a new connection
    file = tmp_path / "replay.ndjson"
    file.write_text("\n".join(lines) + "\n")
    assert detect_format(file) == "tardis"
    recording = import_capture(file, tmp_path / "rec", source_url="wss://ws.kraken.com")
    assert timed(recording) == [(1 + (i >= 20), t, d) for i, (t, d) in enumerate(frames)]
    opens = recording.events().filter(kind="open")
    assert opens.select("generation", "wall_ns").rows() == [(1, frames[0][0]),
                                                          (2, frames[20][0])]
    # The HTTP API's raw lines read the same.
    raw = tmp_path / "raw.txt"
    raw.write_text("".join(f"{iso(t)} {d}\n" for t, d in frames))
    assert timed(import_capture(raw, tmp_path / "raw")) == [(1, t, d) for t, d in frames]


def test_hftbacktest_lines_with_a_rest_snapshot(tmp_path: Path) -> None:
    _, _, frames = truth()
    snapshot = '{"lastUpdateId":5123107852948,"bids":[["61800.20","2.909"]],"asks":[]}'
    lines = [f"{t} {d}" for t, d in frames]
    lines.insert(2, f"{frames[2][0] - 5} {snapshot}")
    file = tmp_path / "xbtusd_20210417.gz"
    file.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert detect_format(file) == "hftbacktest"
    recording = import_capture(file, tmp_path / "rec")
    assert timed(recording) == [(1, t, d) for t, d in frames]
    assert recording.rest().select("wall_ns", "url", "body").rows() == [
        (frames[2][0] - 5, None, snapshot)]
    assert recording.events()["kind"].to_list()[:4] == ["open", "frame", "frame", "rest"]


def test_side_files_give_connects_sends_messages_and_rest_snapshots(tmp_path: Path) -> None:
    url, sent, frames = truth()
    (tmp_path / "x.jsonl").write_text("".join(d + "\n" for _, d in frames))
    (tmp_path / "x.sent.jsonl").write_text("".join(d + "\n" for _, d in sent))
    events = [{"t": "connect", "ts": (sent[0][0] - NS) / NS, "addr": url}]
    events += [{"t": "send", "ts": t / NS, "addr": url, "sent_line": i}
               for i, (t, _) in enumerate(sent)]
    events += [{"t": "recv", "local_ts_ns": t, "line": i} for i, (t, _) in enumerate(frames)]
    events.insert(5, {"t": "rest_depth_snapshot", "local_ts_ns": frames[3][0] + 1,
                      "rest_index": 0, "before_line": 4})
    (tmp_path / "x.events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (tmp_path / "x.rest_snapshot.jsonl").write_text('{"lastUpdateId":1}\n{"lastUpdateId":2}\n')
    (tmp_path / "x.rest_snapshot.meta.jsonl").write_text(
        json.dumps({"rest_index": 0, "url": "https://a/depth?symbol=A", "ts": 1.0}) + "\n"
        + json.dumps({"rest_index": 1, "url": "https://a/depth?symbol=B",
                      "ts": frames[-1][0] / NS + 1}) + "\n")
    assert detect_format(tmp_path / "x.jsonl") == "side-files"
    recording = import_capture(tmp_path / "x.jsonl", tmp_path / "rec")
    assert timed(recording) == [(1, t, d) for t, d in frames]
    assert recording.rest().select("wall_ns", "url", "body").rows() == [
        (frames[3][0] + 1, "https://a/depth?symbol=A", '{"lastUpdateId":1}'),
        (frames[-1][0] + NS, "https://a/depth?symbol=B",
         '{"lastUpdateId":2}')]  # placed by its own time: after the rest
    assert recording.manifest.ended_wall_ns == frames[-1][0] + NS
    assert recording.events().filter(kind="sent")["data"].to_list() == [d for _, d in sent]


def test_sent_secrets_are_masked_as_a_recorder_masks_them(tmp_path: Path) -> None:
    key, signature = "KEY1234567890", "SIG0987654321abc"
    lines = [
        json.dumps({"t": "connect", "conn": "B.ws.1", "addr": "wss://x/?token=abcdef123456",
                    "ts": 1.7e9}),
        json.dumps({"t": "send", "conn": "B.ws.1", "ts": 1.7e9 + 1,
                    "data": json.dumps({"op": "auth", "args": [key, 1, signature]})}),
        json.dumps({"t": "send", "conn": "B.ws.1", "ts": 1.7e9 + 2,
                    "data": json.dumps({"op": "ping", "note": signature, "apiKey": "x"})}),
        json.dumps({"t": "recv", "conn": "B.ws.1", "ts": 1.7e9 + 3, "data": "{}"}),
    ]
    (tmp_path / "c.jsonl").write_text("\n".join(lines))
    recording = import_capture(tmp_path / "c.jsonl", tmp_path / "rec")
    events = recording.events()
    text = " ".join(events["data"].drop_nulls().to_list()) + recording.manifest.source_url
    assert key not in text and signature not in text and "abcdef123456" not in text
    assert events.filter(kind="sent")["data"].to_list() == [
        '{"op":"auth","args":["***",1,"***"]}', '{"op":"ping","note":"***","apiKey":"***"}']


def test_a_rest_request_keeps_what_it_asked_and_loses_its_secrets(tmp_path: Path) -> None:
    # A snapshot's symbol= says which book it is for: kept, as a recorder keeps it; a
    # signature and user info are masked.
    url = "https://user:pw@api.x.com/depth?symbol=ETHUSDT&limit=100&signature=SIG0987654321"
    write_events(tmp_path / "rec", [Captured("frame", 1, "{}"),
                                    Captured("rest", 2, '{"lastUpdateId":1}', url)],
                 source_url="wss://x/ws")
    assert Recording.open(tmp_path / "rec").rest()["url"].to_list() == [
        "https://***:***@api.x.com/depth?symbol=ETHUSDT&limit=100&signature=***"]
    # A secret an auth message sent before is masked in a request's URL too, whatever
    # its key there.
    token = "T0KEN1234567890abcdef"
    write_events(tmp_path / "auth", [
        Captured("sent", 1, json.dumps({"op": "auth", "args": [token]})),
        Captured("rest", 2, "{}", f"https://api.x.com/depth?symbol=ETHUSDT&session={token}")],
        source_url="wss://x/ws")
    assert Recording.open(tmp_path / "auth").rest()["url"].to_list() == [
        "https://api.x.com/depth?symbol=ETHUSDT&session=***"]


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "format", "message"), [
    ('{"type":"trade"}\n', None, r"line 1: not a capture with receive times .* choose the "
                                 r"format 'lines'"),
    ("\n\nhello\n", None, "line 3: not a capture"),
    ("1723161253937085768 {}\nnot a line\n", "hftbacktest", "line 2: not an hftbacktest line"),
    ("1723161253937085768 {oops\n", "hftbacktest", "line 1: the message is not JSON"),
    ('{"t":"recv","ts":"soon","data":"{}"}\n', "cryptofeed", "line 1: 'ts' must be seconds"),
    ('{"t":"header","format":2}\n{"t":"bye","ts":1}\n', "cryptofeed",
     "line 2: not a cryptofeed capture record"),
    ('{"localTimestamp":"yesterday","message":{}}\n', "tardis",
     "line 1: localTimestamp 'yesterday' is not an ISO 8601 time"),
    ("", None, "is empty"),
])
def test_a_file_of_no_known_format_is_refused_in_one_line_naming_it(
    tmp_path: Path, text: str, format: str | None, message: str,
) -> None:
    file = tmp_path / "capture.jsonl"
    file.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        import_capture(file, tmp_path / "rec", format=format)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value) and str(file) in str(caught.value)
    assert not (tmp_path / "rec").exists()


def test_side_files_that_point_past_the_messages_are_refused(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text("{}\n")
    (tmp_path / "x.events.jsonl").write_text('{"t": "recv", "ts": 1.5, "line": 3}\n')
    with pytest.raises(ValueError, match=r"x.events.jsonl line 1: line 3 is not in x.jsonl "
                       r"\(1 lines\)"):
        import_capture(tmp_path / "x.jsonl", tmp_path / "rec")


def test_capture_events_takes_a_connection_for_cryptofeed_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cryptofeed capture only"):
        capture_events(tmp_path / "x", "tardis", connection="A.ws.1")
    with pytest.raises(ValueError, match="format must be one of"):
        capture_events(tmp_path / "x", "pcap")  # type: ignore[arg-type]
    assert FORMATS == ("hftbacktest", "cryptofeed", "tardis", "side-files", "lines")


# -- the manifest and the reports ---------------------------------------------------------------


def test_lines_get_invented_times_and_every_report_says_so(tmp_path: Path) -> None:
    lines = gzip.decompress((DATA / SHIPPED["kraken_cryptofeed_2021-04-17_v1_trade"][0])
                            .read_bytes()).decode().splitlines()
    file = tmp_path / "trade.jsonl"
    file.write_text("\n".join(lines) + "\n")
    recording = import_capture(file, tmp_path / "rec", format="lines",
                               spec=kraken.spec(["XBT/USD"], ["trade"], api="v1"))
    assert recording.manifest.receive_times == "invented"
    assert "receive times invented" in repr(recording)
    report = quality_report(recording)
    assert report.receive_times_invented
    assert dict(report.summary().iter_rows())["receive times"] == (
        "invented on import: not measured")


def test_times_invented_at_a_plausible_date_are_still_flagged(tmp_path: Path) -> None:
    # A manifest that says "invented" is believed, whatever the times look like.
    recording = Recording.from_frames(tmp_path / "rec", [(1_700_000_000 * NS, '{"x":1}')])
    manifest = json.loads((tmp_path / "rec/manifest.json").read_text())
    assert manifest["receive_times"] == "imported"
    manifest["receive_times"] = "invented"
    (tmp_path / "rec/manifest.json").write_text(json.dumps(manifest))
    report = quality_report(tmp_path / "rec")
    assert report.receive_times_invented and report.receive_times == "invented"
    assert report.warnings[0].startswith("Receive times start at 2023-11-14 22:13:20 UTC: "
                                         "they were invented on import (the recording's "
                                         "manifest says so")
    assert recording.manifest.receive_times == "imported"


def test_imported_times_are_measurements_of_another_clock(tmp_path: Path) -> None:
    report = quality_report(RECORDINGS / "kraken_cryptofeed_2021-04-17_v1_trade")
    assert report.receive_times == "imported" and not report.receive_times_invented
    summary = dict(report.summary().iter_rows())
    assert summary["receive times"] == "imported: the capturing tool's clock, not this wsresearch's"
    assert summary["latency p50 / p99"].endswith(" ms")


def test_manifests_without_the_field_read_as_recorded(tmp_path: Path) -> None:
    raw = json.loads((DATA / "sessions/sim-faults/manifest.json").read_text())
    assert "receive_times" not in raw
    assert parse_manifest(raw, tmp_path).receive_times == "recorded"
    assert "receive times" not in dict(quality_report(DATA / "sessions/sim-faults")
                                       .summary().iter_rows())
    with pytest.raises(ValueError, match="receive_times"):
        parse_manifest({**raw, "receive_times": "guessed"}, tmp_path)
    assert "rest" in EVENT_KINDS
    assert RecordingManifest.model_fields["receive_times"].default == "recorded"


# -- the samples shipped as recordings ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_shipped_recordings_hold_the_captures_with_their_times(name: str) -> None:
    capture, snapshots = SHIPPED[name]
    recording = Recording.open(RECORDINGS / name)
    raw = (DATA / capture).read_bytes()
    lines = (gzip.decompress(raw) if capture.endswith(".gz") else raw).decode().splitlines()
    frames = recording.frames()
    assert frames["data"].to_list() == lines  # the capture's messages, byte for byte
    assert recording.manifest.receive_times == "imported" and recording.manifest.complete
    received = frames["recv_wall_ns"]
    assert received.min() > 1_600_000_000 * NS and received.is_sorted()  # type: ignore[operator]
    assert recording.rest().height == snapshots
    assert recording.spec is not None


@pytest.mark.parametrize("name", sorted(n for n, (_, snapshots) in SHIPPED.items() if snapshots))
def test_each_snapshot_of_a_shipped_recording_syncs_its_own_book(name: str) -> None:
    # Every symbol's REST snapshot is placed by its URL's symbol= on that symbol's book,
    # and every book comes out synced, with the depth diffs read at the speed recorded.
    recording = Recording.open(RECORDINGS / name)
    assert recording.spec is not None and recording.spec.origin is not None
    symbols = [s.upper() for s in recording.spec.origin.arguments["symbols"]]
    result = replay(recording)
    assert result.books is not None
    assert sorted(b.symbol for b in result.books) == sorted(symbols)
    assert all(b.valid and b.stats.snapshots == 1 for b in result.books)
    assert not result.rejects and not result.errors


# -- the command line -------------------------------------------------------------------


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wsresearch.cli", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_import_command_says_what_it_imported(tmp_path: Path) -> None:
    _, _, frames = truth()
    file = tmp_path / "replay.ndjson"
    file.write_text("".join(f'{{"localTimestamp":"{iso(t)}","message":{d}}}\n'
                            for t, d in frames))
    out = tmp_path / "rec"
    result = run("import", str(file), "--out", str(out), "--exchange", "kraken",
                 "--symbols", "XBT/USD", "--channels", "trade", "--option", "api=v1")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"{file} -> {out}: 49 messages over 1 connection(s)"
    first, last = iso(frames[0][0]), iso(frames[-1][0])
    span = (frames[-1][0] - frames[0][0]) / NS
    assert lines[1] == (f"{span:.1f} s, {first[:10]} {first[11:23]} UTC to {last[:10]} "
                        f"{last[11:23]} UTC; receive times imported from the capture (the "
                        "capturing tool's clock)")
    recording = Recording.open(out)
    assert recording.spec is not None and recording.spec.channel_names == ["trade"]
    report = run("report", str(out))
    assert "imported: the capturing tool's clock" in report.stdout


def _spot_capture(tmp_path: Path) -> Path:
    """The Binance spot capture's messages (depth@100ms among them) as hftbacktest lines."""
    frames = Recording.open(RECORDINGS / "binance_hftbacktest_2024-08-08_spot_btcusdt").frames()
    file = tmp_path / "btcusdt.raw"
    file.write_text("".join(f"{t} {d}\n" for t, d in frames.select("recv_wall_ns", "data")
                            .head(600).iter_rows()))
    return file


def test_an_import_whose_spec_is_not_the_captures_says_so(tmp_path: Path) -> None:
    # The capture's depth streams are @depth@100ms: a spec without that speed expects
    # @depth, so the diffs would replay through the model; the import warns, once.
    from wsresearch.exchanges import binance

    capture = _spot_capture(tmp_path)
    wrong = binance.spec(["btcusdt"], ["trade", "bookTicker", "depth"])
    with pytest.warns(UserWarning, match=r"channel 'depth': none of its \d+ messages") as seen:
        import_capture(capture, tmp_path / "wrong", spec=wrong)
    assert len(seen) == 1 and "depth_speed" in str(seen[0].message)
    right = binance.spec(["btcusdt"], ["trade", "bookTicker", "depth"], depth_speed="100ms")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recording = import_capture(capture, tmp_path / "right", spec=right)
    assert replay(recording).read_in_columns > 0


def test_an_import_with_another_exchange_s_spec_says_so(tmp_path: Path) -> None:
    # An OKX capture with a Binance spec: no message is of any of its channels.
    from wsresearch.exchanges import binance, okx

    capture = DATA / "okx" / "cryptofeed_2022-05-13_v5_public_tickers_trades_books.jsonl.gz"
    wrong = binance.spec(["btcusdt"], ["trade"])
    with pytest.warns(UserWarning, match=r"none of the capture's first [\d,]+ messages is of "
                      r"a channel of the binance spec \(trade\): they would all be rejected"
                      ) as seen:
        import_capture(capture, tmp_path / "wrong", format="lines", spec=wrong)
    assert len(seen) == 1
    right = okx.spec(["BTC-USDT"], ["trades", "tickers", "books"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import_capture(capture, tmp_path / "right", format="lines", spec=right)


def test_the_import_command_shows_a_warning_as_one_line_of_its_own(tmp_path: Path) -> None:
    done = run("import", str(_spot_capture(tmp_path)), "--out", str(tmp_path / "rec"),
               "--exchange", "binance", "--symbols", "btcusdt",
               "--channels", "trade,bookTicker,depth")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()  # the warning alone: no file, line or source shown
    assert len(lines) == 1, lines
    assert lines[0].startswith("wsresearch import: warning: channel 'depth': none of its")


def test_the_documented_import_of_a_usdm_capture_warns_of_no_endpoint(tmp_path: Path) -> None:
    # kline and aggTrade are served on another USD-M endpoint than depth and bookTicker: a
    # live feed of all four would miss two; an import connects nowhere (data/SOURCES.md).
    frames = Recording.open(RECORDINGS / "binance_cryptofeed_2021-07-22_usdm_futures_combined"
                            ).frames()
    capture = tmp_path / "usdm.raw"
    capture.write_text("".join(f"{t} {d}\n" for t, d in
                               frames.select("recv_wall_ns", "data").iter_rows()))
    done = run("import", str(capture), "--out", str(tmp_path / "rec"),
               "--exchange", "binance", "--symbols", "sushiusdt,akrousdt,keepusdt,ctkusdt",
               "--channels", "depth,bookTicker,kline,aggTrade", "--option", "market=usdm",
               "--option", "depth_speed=100ms")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "1535 messages" in done.stdout


def test_the_import_command_refuses_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "plain.jsonl"
    file.write_text('{"type":"trade"}\n')
    code, _, err = run_here(capsys, "import", str(file), "--out", str(tmp_path / "rec"))
    assert code == 1
    assert err.count("\n") == 1 and "line 1: not a capture" in err
    code, out, err = run_here(capsys, "import", str(file), "--out", str(tmp_path / "rec"),
                              "--format", "lines")
    assert code == 0, err
    assert "receive times invented" in out
    code, _, err = run_here(capsys, "import", str(file), "--out", str(tmp_path / "r2"),
                            "--channels", "trade")
    assert code == 1 and "go with --exchange" in err
    code, _, err = run_here(capsys, "import", str(file), "--out", str(tmp_path / "r3"),
                            "--format", "pcap")
    assert code == 2 and "invalid choice" in err


def hftbacktest_capture(path: Path, lines: int, compress: str = "") -> Path:
    """``lines`` trades in hftbacktest's ``<local_ts_ns> <message>`` lines (``gzip`` or
    ``zstd`` if asked)."""
    text = "".join(f"{1_723_161_253_937_085_768 + i * NS} "
                   f'{{"stream":"btcusdt@trade","data":{{"t":{i},"p":"{60_000 + i % 97}.5"}}}}\n'
                   for i in range(lines)).encode()
    if compress == "zstd":
        pa = pytest.importorskip("pyarrow", reason="a zstd capture is read through pyarrow")
        with pa.output_stream(str(path), compression="zstd") as out:
            out.write(text)
    else:
        path.write_bytes(gzip.compress(text) if compress == "gzip" else text)
    return path


@pytest.mark.parametrize("compress", ["", "gzip", "zstd"], ids=["plain", "gzip", "zstd"])
def test_an_import_tells_the_bytes_it_has_read(tmp_path: Path, compress: str) -> None:
    # Plain, 10 MB: told at 4 and 8 MB and at the end; compressed, smaller than 4 MB.
    lines = 40_000 if compress else 120_000
    source = hftbacktest_capture(tmp_path / "btcusdt.raw", lines, compress)
    size = source.stat().st_size
    told: list[tuple[int, int]] = []
    recording = import_capture(source, tmp_path / "rec", format="hftbacktest",
                               progress=lambda done, total: told.append((done, total)))
    assert recording.frames().height == lines
    assert len(told) >= (3 if not compress else 1)  # every 4 MB of the file, and its end
    assert told[-1] == (size, size)
    assert [done for done, _ in told] == sorted({done for done, _ in told})
    assert {total for _, total in told} == {size}


def test_an_import_stopped_by_its_progress_leaves_nothing(tmp_path: Path) -> None:
    source = hftbacktest_capture(tmp_path / "btcusdt.raw", 60_000)  # 5 MB: told at 4 MB

    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        import_capture(source, tmp_path / "rec", format="hftbacktest", progress=stop)
    assert not (tmp_path / "rec").exists()
    # Nothing was held over: the same import without a stop goes through.
    assert import_capture(source, tmp_path / "rec", format="hftbacktest").event_count > 0


def _damaged(tmp_path: Path, how: str) -> Path:
    """The Kraken trade capture, gzipped, cut short or with a byte of it changed."""
    data = (DATA / "kraken/cryptofeed_2021-04-17_v1_trade.jsonl.gz").read_bytes()
    if how == "cut short":
        data = data[:len(data) // 2]
    elif how == "a byte changed":  # inside the compressed blocks
        middle = len(data) // 2
        data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
    else:  # the checksum at its end
        data = data[:-8] + bytes([data[-8] ^ 0x01]) + data[-7:]
    file = tmp_path / "capture.jsonl.gz"
    file.write_bytes(data)
    return file


@pytest.mark.parametrize("how", ["cut short", "a byte changed", "its checksum wrong"])
def test_a_damaged_gzip_capture_is_refused_in_one_line_naming_it(tmp_path: Path,
                                                                  how: str) -> None:
    file = _damaged(tmp_path, how)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no unclosed file left behind
        with pytest.raises(ValueError, match=r"capture\.jsonl\.gz after line \d+: cannot be "
                                             r"read: .* \(a compressed file damaged or cut "
                                             r"short\?\)"):
            import_capture(file, tmp_path / "rec", format="lines")
    assert not (tmp_path / "rec").exists()
    result = run("import", str(file), "--out", str(tmp_path / "rec"), "--format", "lines")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "cannot be read" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("compressed", [False, True])
def test_a_progress_callbacks_error_is_its_own_not_a_damaged_file(tmp_path: Path,
                                                                  compressed: bool) -> None:
    # A TimeoutError is an OSError, as gzip's damage is: it passes through as raised.
    lines = "".join(f'{{"n":{n}}}\n' for n in range(200_000)).encode()
    file = tmp_path / ("c.jsonl.gz" if compressed else "c.jsonl")
    file.write_bytes(gzip.compress(lines) if compressed else lines)

    def give_up(done: int, total: int) -> None:
        raise TimeoutError("gave up")

    with pytest.raises(TimeoutError, match=r"^gave up$"):
        import_capture(file, tmp_path / "rec", format="lines", progress=give_up)
