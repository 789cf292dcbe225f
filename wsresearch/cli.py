"""The ``wsresearch`` command line.

Commands:

``demo``
    Start the embedded simulator with a fault script, run a feed against it
    with a live view, and end with a summary. Offline, no configuration.
``simulate``
    Serve the simulator on a local port for other programs, optionally with
    scripted faults.
``record``
    Record an exchange through its adapter (``binance:btcusdt``), or any JSON
    WebSocket feed (a URL), to a recording directory.
``replay``
    Replay a recording through the pipeline and summarise it, or serve it over
    a local WebSocket.
``report``
    Print a recording's feed-quality summary, and write it as an HTML page.
``export``
    Write recordings' rows into one Hive-partitioned Parquet dataset.
``import``
    Import another tool's capture (hftbacktest, cryptofeed, tardis-machine, or
    messages with side files) as a recording, with the receive times it took.

Every error a user can cause ends in one line on stderr and a non-zero exit
status (2 for bad arguments, 1 for anything else), never a traceback.

Every command stops the same way on SIGINT (Ctrl-C), SIGTERM and SIGHUP: the
running command is cancelled, a feed stops cleanly (its recording flushed and
closed, the manifest complete), a replay, report, export, import or compaction at
its next step (what it writes left as it was), a line says which signal came, and
the exit status is 128 + the signal's number (130, 143, 129). A second signal ends
the process at once. A signal the process was started ignoring (``nohup``) stays
ignored.

Output does not depend on the terminal's width when it is not a terminal: lines
are never wrapped and tables are never squeezed, so logs and tests read the same
everywhere. Nothing that came from outside the program (server strings, paths,
arguments) is read as rich markup.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.table import Table
from rich.text import Text

# Only light modules here: the parser, --help and a bad argument's error need nothing
# more, and a worker process of export or report imports this module before its job.
# Each command imports what it runs.
from . import __version__
from ._allocator import one_arena
from ._catalog import (
    ADAPTERS,
    CHUNK_EVENTS,
    EXCHANGES,
    FORMATS,
    MANIFEST,
    PROFILES,
    RECORDED_SEGMENT_EVENTS,
    SEGMENT_EVENTS,
    process_pool,
    read_manifest,
    unknown_adapter,
)
from ._ports import check_port
from ._text import printable
from .clock import NS_PER_S, utc_text
from .errors import NothingKeptWarning, RecordingFormatError, WsResearchError

if TYPE_CHECKING:
    import polars as pl

    from .config import ConnectionConfig
    from .console import FeedMonitor
    from .export import ExportSummary
    from .feed import Feed
    from .pipeline import Pipeline
    from .recording import Recording
    from .spec import FeedSpec
    from .testing.sim import Fault

__all__ = ["demo_faults", "main"]

_T = TypeVar("_T")

_DEMO_SCRIPT: tuple[tuple[float, dict[str, Any]], ...] = (
    # (fraction of the run, fault): a tour of what exchanges do to connections.
    (0.10, {"kind": "duplicate", "count": 5}),
    (0.15, {"kind": "malformed", "count": 6}),
    (0.20, {"kind": "disconnect"}),  # abrupt: the client sees 1006
    (0.26, {"kind": "silence", "stream": "ticker", "duration": 3.5}),  # stale, then back
    (0.28, {"kind": "burst", "count": 2000}),
    (0.32, {"kind": "sequence_gap", "count": 3}),
    (0.40, {"kind": "reject_auth", "count": 1}),
    (0.40, {"kind": "disconnect", "code": 1001}),  # reconnect is rejected once with 4401
    (0.58, {"kind": "no_pong", "duration": 3.0}),  # half-open: heartbeat must notice
    (0.80, {"kind": "rate_limit", "code": 4429}),
)


_BOOK_SCRIPT: tuple[tuple[float, dict[str, Any]], ...] = (
    # For the exchanges' order books: a resync of one symbol through a failing snapshot
    # (where the exchange serves one), and a wrong checksum (where it sends them).
    (0.44, {"kind": "bad_snapshot", "status": 429}),
    (0.45, {"kind": "sequence_gap", "count": 2}),
    (0.50, {"kind": "bad_checksum"}),
)


_CHECKSUMMED = frozenset({"kraken-v1", "kraken", "okx"})
"""The simulator's profiles whose books carry checksums."""


def demo_faults(seconds: float, profile: str = "generic") -> list[Fault]:
    """The demo's fault script, spread over a run of ``seconds`` (durations stay as they are).

    An exchange profile drops ``reject_auth`` (its feeds are public) and adds the order
    books' faults it has: a failing REST snapshot where books start from one (Binance) and
    a wrong checksum where books carry one (Kraken v1 and v2, OKX).
    """
    from .testing.sim import DIALECTS, Fault

    script = list(_DEMO_SCRIPT)
    if profile != "generic":
        script = [s for s in script if s[1]["kind"] != "reject_auth"]
        book = DIALECTS[profile]
        from_rest = book.serves_rest and not book.snapshots_in_band
        script += [s for s in _BOOK_SCRIPT
                   if (s[1]["kind"] != "bad_snapshot" or from_rest)
                   and (s[1]["kind"] != "bad_checksum" or profile in _CHECKSUMMED)]
    return sorted((Fault(at=fraction * seconds, **fields) for fraction, fields in script),
                  key=lambda fault: fault.at)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {printable(message)} (see --help)\n")


def _add_type_field(command: argparse.ArgumentParser, default: str | None = "type") -> None:
    command.add_argument("--type-field", default=default,
                         help="JSON field naming each message's type (default: type"
                         + (")" if default else "; for a recording made with an exchange "
                            "adapter, that adapter's channels)"))


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wsresearch", description="Exchange WebSocket feeds for research.")
    parser.add_argument("--version", action="version", version=f"wsresearch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log connection events")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = commands.add_parser(
        "demo", help="run a feed against the embedded simulator with injected faults",
        description="Start the simulator with a fault script (disconnects, an auth rejection, "
        "a rate-limit close, silence, duplicates, malformed messages, a burst, a half-open "
        "socket), run a feed against it with a live view, and print a summary.",
    )
    demo.add_argument("--seconds", type=_positive, default=20.0, help="run time (default 20)")
    demo.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    script = demo.add_mutually_exclusive_group()
    script.add_argument("--no-faults", action="store_true", help="run without the fault script")
    script.add_argument("--fault", action="append", default=[], type=_fault, metavar="FAULT",
                        help="a fault of your own instead of the script, as for simulate, e.g. "
                        "'rate_limit@5' (repeatable)")
    demo.add_argument("--exchange", choices=PROFILES[1:], default=None,
                      help="speak this exchange's dialect, through its adapter "
                      "(default: the simulator's own)")
    where = demo.add_mutually_exclusive_group()
    where.add_argument("--record", metavar="DIR", default=None,
                       help="record the session here (default: recordings/demo-<time>)")
    where.add_argument("--no-record", action="store_true", help="do not record the session")

    record = commands.add_parser(
        "record", help="record an exchange or any JSON WebSocket feed",
        description="Record every message and connection event to --out until --seconds pass "
        "or Ctrl-C. TARGET is EXCHANGE:SYMBOL[,SYMBOL...] (e.g. binance:btcusdt, "
        "coinbase:BTC-USD), recorded through that exchange's adapter, which subscribes to "
        "--channels on every connect; or a ws:// URL of any JSON feed, sent each --subscribe "
        "message on every connect.",
    )
    record.add_argument("target", metavar="TARGET", help="EXCHANGE:SYMBOLS or a ws:// URL")
    record.add_argument("--out", required=True, metavar="DIR", help="a new recording directory")
    record.add_argument("--seconds", type=_positive, default=None, help="stop after this long")
    record.add_argument("--channels", default=None, metavar="A,B",
                        help="exchange channels (default: the adapter's)")
    record.add_argument("--url", default=None,
                        help="connect here instead of the exchange (a simulator, a proxy)")
    record.add_argument("--rest-url", default=None, metavar="URL",
                        help="fetch order book snapshots here instead of the exchange's REST "
                        "API (the one `wsresearch simulate` prints)")
    record.add_argument("--option", action="append", default=[], type=_option,
                        metavar="KEY=VALUE",
                        help="an adapter option, e.g. market=usdm or api=exchange (repeatable)")
    record.add_argument("--subscribe", action="append", default=[], type=_json_message,
                        metavar="JSON", help="a message to send on connect, for a URL "
                        "(repeatable)")
    record.add_argument("--segment-events", type=_whole_number(1),
                        default=RECORDED_SEGMENT_EVENTS, metavar="N",
                        help="events a segment file grows to, flush by flush (default "
                        f"{RECORDED_SEGMENT_EVENTS:,}; 1: a file a flush, a second)")
    record.add_argument("--compact", action="store_true",
                        help="once stopped, compact the recording (its files as a few large "
                        "ones, as `wsresearch compact` does); a second Ctrl-C stops that, "
                        "leaving it as recorded")
    _add_type_field(record)

    replay_cmd = commands.add_parser(
        "replay", help="replay a recording, or serve it over a local WebSocket",
        description="Replay DIR through the pipeline and print what it holds, or with "
        "--serve play it to WebSocket clients, one recorded connection per connection.",
    )
    replay_cmd.add_argument("dir", help="a recording directory")
    _add_type_field(replay_cmd, default=None)
    replay_cmd.add_argument("--serve", action="store_true", help="serve it over a WebSocket")
    replay_cmd.add_argument("--port", type=_port, default=0,
                            help="port for --serve (default: free)")
    replay_cmd.add_argument("--speed", type=_positive, default=None,
                            help="playback speed for --serve (default: as fast as possible)")
    replay_cmd.add_argument("--seconds", type=_positive, default=None,
                            help="stop serving after this long")
    _add_chunk_events(replay_cmd)

    report = commands.add_parser(
        "report", help="summarise a recording's feed quality",
        description="Replay DIR through the spec it was recorded with and print what the "
        "feed was like: connections and closes, downtime, silences, duplicates, rejects, "
        "sequence gaps, latency. --html writes the full report with plots.",
    )
    report.add_argument("dirs", nargs="+", metavar="DIR", help="recording directories")
    report.add_argument("--html", metavar="FILE", default=None,
                        help="also write a self-contained HTML report (needs matplotlib); "
                             "with several DIRs, a folder for <recording id>.html each")
    report.add_argument("--workers", type=_workers, default=1, metavar="N",
                        help="report on N recordings at a time, each in its own process "
                             "(default 1; the same reports, printed in the order given)")
    _add_chunk_events(report)

    export = commands.add_parser(
        "export", help="write recordings into a Parquet dataset",
        description="Replay each DIR through its spec (the adapter it was recorded with, or "
        "--exchange NAME) and write its rows into the dataset --out, partitioned by channel "
        "and date. Exporting a recording again replaces its files.",
    )
    export.add_argument("dirs", nargs="+", metavar="DIR", help="recording directories")
    export.add_argument("--out", required=True, metavar="DATASET", help="the dataset directory")
    export.add_argument("--exchange", choices=EXCHANGES, default=None,
                        help="the adapter for recordings that do not name theirs")
    export.add_argument("--channels", default=None, metavar="A,B",
                        help="with --exchange: its channels (default: all of them)")
    export.add_argument("--normalized", action="store_true",
                        help="also write the normalized tables (trades, quotes, book_changes...) "
                             "as kind=<kind>/exchange=<exchange>/date=<day>")
    export.add_argument("--quotes", choices=("channel", "book"), default=None,
                        help="with --normalized: take the quotes from the order books (a row "
                             "each time a book's top changes), or from the channels (a ticker) "
                             "only (default: the spec's choice, the books' where it keeps "
                             "them, but on Binance, whose bookTicker tells every change)")
    export.add_argument("--option", action="append", default=[], type=_option,
                        metavar="KEY=VALUE", help="with --exchange: an adapter option")
    export.add_argument("--workers", type=_workers, default=1, metavar="N",
                        help="export N recordings at a time, each in its own process; one "
                             "recording is split where its connections begin (default 1; "
                             "the dataset is the same)")
    export.add_argument("--report", metavar="FOLDER", default=None,
                        help="also write each recording's quality report (HTML, needs "
                             "matplotlib) as FOLDER/<recording>.html, and its outages into "
                             "the dataset, from the same replay")
    _add_chunk_events(export)

    compact = commands.add_parser(
        "compact", help="rewrite finished recordings' small segments as a few large ones",
        description="Rewrite each finished recording DIR's segments (a live recording has a "
        "file a flush, a second by default) as files of up to --segment-events events: the "
        "same events, read much faster. Each new file is read back and compared before the "
        "old ones are replaced; a crash leaves the recording readable, and running the "
        "command again finishes the compaction.",
    )
    compact.add_argument("dirs", nargs="+", metavar="DIR", help="recording directories")
    compact.add_argument("--segment-events", type=_whole_number(1), default=SEGMENT_EVENTS,
                         metavar="N", help="events per segment file at most (default "
                         f"{SEGMENT_EVENTS:,})")

    import_cmd = commands.add_parser(
        "import", help="import another tool's capture as a recording",
        description="Write the capture SOURCE (hftbacktest '<ns> <message>' lines, cryptofeed "
        "JSON lines, tardis-machine /replay output, or X.jsonl with X.events.jsonl beside it) "
        "as the recording --out, with the receive times the capturing tool took: connects "
        "become connections, sent messages sent events, REST snapshots rest events.",
    )
    import_cmd.add_argument("source", metavar="SOURCE", help="the capture file")
    import_cmd.add_argument("--out", required=True, metavar="DIR",
                            help="a new recording directory")
    import_cmd.add_argument("--format", choices=FORMATS, default=None,
                            help="the capture's format (default: found from the file; "
                                 "'lines' imports messages without times)")
    import_cmd.add_argument("--exchange", choices=EXCHANGES, default=None,
                            help="the adapter the messages belong to, named in the manifest")
    import_cmd.add_argument("--symbols", default=None, metavar="A,B",
                            help="with --exchange: the symbols the capture subscribed to")
    import_cmd.add_argument("--channels", default=None, metavar="A,B",
                            help="with --exchange: its channels (default: all of them)")
    import_cmd.add_argument("--option", action="append", default=[], type=_option,
                            metavar="KEY=VALUE", help="with --exchange: an adapter option")
    import_cmd.add_argument("--connection", default=None, metavar="ID",
                            help="for a cryptofeed capture of several WebSocket "
                                 "connections: the one to import")

    simulate = commands.add_parser(
        "simulate", help="serve the simulator on a local port",
        description="Serve the embedded exchange simulator until interrupted or --seconds "
        "pass. Faults: KIND@SECONDS[:key=value,...], e.g. 'disconnect@5:code=1001' or "
        "'silence@9:stream=ticker,duration=4'.",
    )
    simulate.add_argument("--port", type=_port, default=0, help="port (default: a free one)")
    simulate.add_argument("--profile", choices=PROFILES, default="generic",
                          help="the dialect to speak (default: generic)")
    simulate.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    simulate.add_argument("--seconds", type=_positive, default=None, help="stop after this long")
    simulate.add_argument(
        "--fault", action="append", default=[], type=_fault, metavar="FAULT",
        help="a scripted fault (repeatable)",
    )
    return parser


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _add_chunk_events(command: argparse.ArgumentParser) -> None:
    command.add_argument("--chunk-events", type=_chunk_events, default=CHUNK_EVENTS,
                         metavar="N", help="events replayed at a time: what bounds the "
                         f"memory a long recording needs (default {CHUNK_EVENTS:,})")


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argument type: a whole number from ``low`` (to ``high``), or a one-line error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if high is None and value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low} to {high}, got {text}")
        return value
    return parse


_chunk_events = _whole_number(1)
_workers = _whole_number(1, 64)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    try:
        return check_port(port)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _json_message(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r} ({exc})") from None


def _option(text: str) -> tuple[str, Any]:
    key, eq, value = text.partition("=")
    if not eq or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"not KEY=VALUE: {text!r}")
    try:
        parsed: Any = json.loads(value)  # numbers and booleans as such
    except ValueError:
        parsed = value
    return key.strip(), parsed


def _fault(text: str) -> Fault:
    from .testing.sim import parse_fault

    try:
        return parse_fault(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _demo_connection() -> ConnectionConfig:
    """Quick schedules so a 20-second demo shows several reconnects.

    The tour packs a day's faults into seconds: a connection that lasted one
    second counts as stable here (``stable_after``, 10 s by default), so the
    backoff starts afresh after each fault instead of walking up across them.
    """
    from .config import BackoffConfig, ConnectionConfig, HeartbeatConfig, ReconnectConfig

    return ConnectionConfig(
        reconnect=ReconnectConfig(
            max_attempts=20,
            stable_after=1.0,
            backoff=BackoffConfig(initial_delay=0.3, max_delay=3.0, jitter=0.1),
            rate_limit_backoff=BackoffConfig(initial_delay=1.5, max_delay=10.0, jitter=0.1),
        ),
        heartbeat=HeartbeatConfig(interval=0.5, timeout=1.0),
    )


async def _demo(args: argparse.Namespace, console: Console) -> int:
    from .console import FeedMonitor
    from .feed import Feed
    from .testing.sim import Simulator

    profile = args.exchange or "generic"
    faults = args.fault or ([] if args.no_faults else demo_faults(args.seconds, profile))
    if profile != "generic":  # exchange feeds are public: no auth to reject
        faults = [fault for fault in faults if fault.kind != "reject_auth"]
    record_to = None
    if not args.no_record:
        record_to = Path(args.record or f"recordings/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    async with Simulator(profile, faults=faults, seed=args.seed) as sim:
        options: dict[str, Any] = {"api_key": "demo-key"} if profile == "generic" else {}
        spec = sim.spec(connection=_demo_connection(), **options)
        feed = Feed(spec, record_to=record_to)
        monitor = FeedMonitor(feed)
        _say(console, f"simulator ({profile}) at {sim.url}; running a feed for "
             f"{args.seconds:g} s with {len(faults)} scripted faults")
        try:
            await _run_feed(feed, args.seconds, monitor, console, live=True)
        except asyncio.CancelledError:  # a signal: say what the session was, then stop
            _demo_end(console, monitor, record_to)
            raise
        _demo_end(console, monitor, record_to)
        ending = _ending(feed)
    if not (feed.stats.generation >= 1 and feed.manager.last_error is None):
        _say(console, "the feed did not survive the faults", "bold red")
        return 1
    _say(console, "feed survived every fault", "bold green", f" ({ending})")
    return 0


def _demo_end(console: Console, monitor: FeedMonitor, record_to: Path | None) -> None:
    console.print(monitor.summary())
    if record_to is not None:
        _say(console, f"session recorded to {record_to} (replay it: wsresearch replay "
             f"{record_to})")


def _ending(feed: Feed) -> str:
    """How a stopped feed's session ended, in words: never "healthy" when it ended disconnected.

    A session can end between connections (rate-limited and waiting out the
    backoff, say); its streams then last looked healthy only because nothing was
    checked since. Say so, with the close that ended the last connection.
    """
    from .connection import ConnectionState
    from .policy import describe_close

    ended = feed.stopped_while
    if ended is not None and ended is not ConnectionState.CONNECTED:
        close = feed.stats.last_close
        after = "" if close is None else f" after {describe_close(close.code, close.category)}"
        return f"ended disconnected ({ended.name}){after}"
    if feed.health.is_healthy():
        return "all streams healthy at the end"
    return "some streams stale at the end"


async def _run_feed(
    feed: Feed, seconds: float, monitor: FeedMonitor, console: Console, *, live: bool,
) -> None:
    """Run ``feed`` for ``seconds``, showing it; stop it cleanly if this is cancelled.

    With ``live`` and a terminal: a live view four times a second. Otherwise a
    progress line a second (a log, a pipe, a days-long ``record``).

    Raises
    ------
    asyncio.CancelledError
        When cancelled (a signal), after the feed stopped and its recording closed.
    WebSocketError
        If the feed halted, or no connection opened within ``seconds``.
    """
    run = asyncio.ensure_future(feed.run_for(seconds))
    try:
        if live and console.is_terminal:
            with Live(monitor.render(), console=console, refresh_per_second=4) as view:
                while not run.done():
                    await asyncio.wait({run}, timeout=0.25)
                    monitor.sample()
                    view.update(monitor.render())
        else:
            while not run.done():
                await asyncio.wait({run}, timeout=1.0)
                monitor.sample()
                if not run.done():
                    _say(console, monitor.progress_line())
        await run
    finally:
        if not run.done():
            await _stop_run(run, feed, console)


_CLOSE_NOTE_AFTER = 0.5
"""Seconds a stop may take before saying that the closing handshake is being waited for."""


async def _stop_run(run: asyncio.Future[Feed], feed: Feed, console: Console) -> None:
    """Cancel a feed's ``run_for`` and wait until the feed stopped (its recording closed).

    A peer that ignores the close frame makes the closing handshake last up to
    ``close_timeout``: a line says so, so the wait does not look like a hang.
    """
    from .connection import ConnectionState

    run.cancel()
    await asyncio.wait({run}, timeout=_CLOSE_NOTE_AFTER)
    if not run.done() and feed.state is ConnectionState.CONNECTED:
        _say(console, f"closing the connection (up to "
             f"{feed.spec.connection.close_timeout:g} s)\N{HORIZONTAL ELLIPSIS}")
    await asyncio.gather(run, return_exceptions=True)
    await feed.stop()


async def _simulate(args: argparse.Namespace, console: Console) -> int:
    from .testing.sim import Simulator

    async with Simulator(args.profile, faults=args.fault, seed=args.seed, port=args.port) as sim:
        _say(console, f"simulator ({args.profile}) listening at {sim.url} (Ctrl-C to stop)")
        if sim.rest_url is not None:
            _say(console, f"its REST book snapshots at {sim.rest_url} (record --rest-url)")
        console.file.flush()
        if args.seconds is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(args.seconds)
        _say(console, f"served {sim.connections} connection(s), sent {sim.sent} messages")
    return 0


async def _record(args: argparse.Namespace, console: Console) -> int:
    from .console import FeedMonitor
    from .feed import Feed
    from .redaction import redact_url

    spec = _record_spec(args)
    # The folders the recorder will make (it needs a new or empty one), innermost first.
    made = await asyncio.to_thread(_missing_folders, Path(args.out))
    # Rows on disk only: a recorder that runs for days must not grow with every row.
    feed = Feed(spec, record_to=args.out, max_rows=0, segment_events=args.segment_events)
    monitor = FeedMonitor(feed)
    source = redact_url(spec.url)
    if spec.origin is not None and spec.origin.adapter != "raw" and spec.description:
        source = f"{spec.description} from {source}"
    _say(console, f"recording {source} to {args.out} (Ctrl-C to stop)")
    rest = _rest_elsewhere(args, spec)
    if rest is not None:
        _say(console, f"note: the order books' REST snapshots, where they need one, are asked "
             f"of {rest}, not of --url; --rest-url points them elsewhere (a "
             "simulator's or replay server's, as it prints)")
    console.file.flush()
    try:
        await _run_feed(feed, args.seconds or float("inf"), monitor, console, live=False)
    except asyncio.CancelledError:  # a signal: the recording is closed; say what it holds
        await _record_end(args, console, monitor, feed, made, signalled=True)
        raise
    except WsResearchError:  # no connection opened in time, or the connection halted
        await asyncio.to_thread(_forget_if_never_connected, feed, made, console)
        raise
    await _record_end(args, console, monitor, feed, made)
    return 0


async def _record_end(args: argparse.Namespace, console: Console, monitor: FeedMonitor,
                      feed: Feed, made: list[Path], *, signalled: bool = False) -> None:
    """What a stopped ``record`` says it holds; then, with ``--compact``, its compaction.

    After a signal (``signalled``), a second Ctrl-C stops the compaction at its next file;
    another signal ends the process at once: the recording is readable either way.
    """
    console.print(monitor.summary())
    recorder = feed.recorder
    assert recorder is not None
    if await asyncio.to_thread(_forget_if_never_connected, feed, made, console):
        return
    _say(console, f"recorded {recorder.events} events to {args.out}")
    if args.compact:
        if signalled and threading.current_thread() is threading.main_thread():
            # The first signal gave every stop signal its default action back; Ctrl-C's
            # is Python's here, so that it stops the compaction at its next file.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        await _compact_one(args.out, SEGMENT_EVENTS, console)


def _forget_if_never_connected(feed: Feed, made: list[Path], console: Console) -> bool:
    """Remove a stopped feed's recording if no connection ever opened; whether it did.

    Such a recording holds nothing of the feed, only the failed attempts (said on the
    terminal already), and would make the same ``--out`` refused on the next try. Only
    the recorder's own files go, its segments first and its manifest last (cut short,
    what is left still reads as a recording), then the folders ``record`` made
    (``made``, innermost first) where they are empty. A removal that fails is said, not
    raised: the error that ended the session is the one to tell.
    """
    from .recording.format import LOCK, SEGMENTS

    recorder = feed.recorder
    if recorder is None or not recorder.started or feed.generation > 0:
        return False  # (not started: it refused the folder, which is then not its own)
    path = recorder.path
    try:
        if (path / SEGMENTS).is_dir() and not (path / SEGMENTS).is_symlink():
            shutil.rmtree(path / SEGMENTS)
        for name in (LOCK, MANIFEST):
            (path / name).unlink(missing_ok=True)
        for folder in made:
            if any(folder.iterdir()):
                break
            folder.rmdir()
    except OSError as exc:
        _say(console, f"no connection opened: nothing recorded, but {path} could not be "
             f"removed ({exc})")
        return True
    gone = bool(made) and not path.exists()
    _say(console, f"no connection opened: nothing recorded, {path} "
         f"{'removed' if gone else 'emptied'}")
    return True


def _missing_folders(path: Path) -> list[Path]:
    """``path`` and its parents that do not exist yet, innermost first."""
    missing = []
    while not path.exists() and not path.is_symlink() and path.parent != path:
        missing.append(path)
        path = path.parent
    return missing


def _record_spec(args: argparse.Namespace) -> FeedSpec:
    """The spec for ``record``: an adapter's for ``EXCHANGE:SYMBOLS``, the raw one for a URL."""
    from .exchanges import raw

    target: str = args.target
    if target.startswith(("ws://", "wss://")):
        if args.channels or args.option or args.url or args.rest_url:
            raise ValueError("--channels, --option, --url and --rest-url go with "
                             "EXCHANGE:SYMBOLS, not a URL")
        return raw.spec(target, type_field=args.type_field, subscribe=args.subscribe)
    name, colon, symbols = target.partition(":")
    if not colon or name not in EXCHANGES or not symbols:
        raise ValueError(f"TARGET {target!r} is neither a ws:// or wss:// URL nor "
                         f"EXCHANGE:SYMBOLS "
                         f"with EXCHANGE one of {list(EXCHANGES)}")
    if args.subscribe:
        raise ValueError("--subscribe goes with a URL; an exchange's adapter subscribes itself")
    spec = _adapter_spec(name, args, url=args.url,
                         symbols=[s for s in symbols.split(",") if s], every_channel=False)
    return spec if args.rest_url is None else spec.replace(rest_url=args.rest_url)


def _rest_elsewhere(args: argparse.Namespace, spec: FeedSpec) -> str | None:
    """Where the books' REST snapshots go when ``--url`` points the feed elsewhere alone.

    A simulator or a replay server serves its snapshots on a port of its own, which
    ``--url`` does not name: without ``--rest-url`` they are asked of the exchange.
    """
    rule = spec.book_sync
    if args.url is None or args.rest_url is not None or rule is None:
        return None
    symbol = str(args.target).partition(":")[2].split(",")[0]
    url = rule.snapshot_url(symbol, spec.rest_url)
    return None if url is None else "{0.scheme}://{0.netloc}".format(urlsplit(url))


def _adapter_spec(
    name: str, args: argparse.Namespace, *, url: str | None, symbols: list[str] | None = None,
    every_channel: bool = True,
) -> FeedSpec:
    """The ``name`` adapter's spec from ``--option`` and ``--channels``.

    Without ``--channels``: every channel of the API the options choose
    (``every_channel``: exporting and importing, where rows of any channel may be
    in the recording), or the adapter's default channels (recording a feed).
    """
    from .exchanges import adapter

    found = adapter(name)
    options: dict[str, Any] = dict(args.option)
    unknown = sorted(set(options) - set(found.options))
    if unknown:
        raise ValueError(f"{name} has no option {unknown[0]!r}; its options: "
                         f"{list(found.options)}")
    if args.channels:
        options["channels"] = [c.strip() for c in args.channels.split(",") if c.strip()]
    elif every_channel:
        options["channels"] = list(found.channels(options))
    try:
        spec: FeedSpec = found.spec(*([symbols] if symbols is not None else []), url=url,
                                    **options)
    except TypeError as exc:  # an option value of the wrong kind
        raise ValueError(f"{name}: {exc}") from None
    return spec


async def _replay(args: argparse.Namespace, console: Console) -> int:
    import polars as pl

    from .exchanges import raw
    from .parser import describe_rejects
    from .recording import Recording
    from .replay import ReplayServer, replay_in_chunks

    recording = Recording.open(args.dir)
    _say(console, repr(recording))
    if args.serve:
        async with ReplayServer(recording, speed=args.speed, port=args.port) as server:
            _say(console, f"serving {server.generations} recorded connection(s) at "
                 f"{server.url} (Ctrl-C to stop)")
            if server.rest_responses:
                _say(console, f"its {server.rest_responses} recorded REST response(s) at "
                     f"{server.rest_url} (record --rest-url)")
            console.file.flush()
            if args.seconds is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(args.seconds)
            _say(console, f"served {server.connections} connection(s)")
        return 0
    spec = recording.spec if args.type_field is None else None
    type_field = args.type_field or "type"
    if spec is None:
        spec = raw.spec(recording.manifest.source_url or "ws://127.0.0.1:1",
                        type_field=type_field)
    by_channel = spec.origin is not None and spec.origin.adapter != "raw"
    rows: dict[str, int] = dict.fromkeys(spec.channel_names, 0)
    types: list[pl.DataFrame] = []

    def count(pipeline: Pipeline, events: pl.DataFrame) -> None:
        """Count each chunk's rows, and let them go: the memory stays one chunk's."""
        for channel, frame in pipeline.take()[0].items():
            rows[channel] += frame.height
            if not by_channel:
                types.append(frame.group_by(type_field).len())

    result = await _in_thread(console, "replaying", lambda step: replay_in_chunks(
        recording, spec, "complete", step, args.chunk_events, count))
    table = _table(f"replay of {args.dir}")
    if by_channel:
        table.add_column("channel")
        table.add_column("rows", justify="right")
        for channel, n in rows.items():
            table.add_row(Text(channel), Text(str(n)))
    else:
        table.add_column(Text(type_field))
        table.add_column("messages", justify="right")
        counts = (pl.concat(types).group_by(type_field, maintain_order=True)
                  .agg(pl.col("len").sum()).sort("len", descending=True, maintain_order=True)
                  if types else pl.DataFrame())
        for kind, n in counts.iter_rows():
            table.add_row(Text(printable(str(kind))), Text(str(n)))
    console.print(table)
    stats = result.stats
    _say(console,
         f"{stats['frames']} messages over {stats['generations']} connection(s); "
         f"{stats['ok']} valid, {stats['control']} control, {stats['invalid']} rejected "
         f"({describe_rejects(stats['rejects'])}); "
         f"{stats['sequence_gaps']} sequence gap(s), {stats['exchange_errors']} exchange "
         "error(s)")
    return 0


def _export_spec(args: argparse.Namespace, recording: Recording) -> FeedSpec | None:
    """The spec to export ``recording`` with: ``--exchange`` if given, else its own."""
    if args.exchange is None:
        if args.channels or args.option:
            raise ValueError("--channels and --option go with --exchange")
        if recording.spec is None:
            raise ValueError(_no_adapter(recording.path))
        return None
    return _adapter_spec(args.exchange, args, url=recording.manifest.source_url or None,
                         symbols=_recorded_symbols(args, recording))


def _recorded_symbols(args: argparse.Namespace, recording: Recording) -> list[str] | None:
    """The symbols ``recording`` subscribed, where ``--exchange`` and its API made it.

    So the spec (and a report's symbols table) names them, not the adapter's default
    symbol; ``None`` (the default) for a recording of another adapter or API, whose
    symbols need not be spelled as this one's.
    """
    from .exchanges import adapter

    origin = recording.manifest.spec_origin
    if origin is None or origin.adapter != args.exchange:
        return None
    found = adapter(args.exchange)
    if found.api_option is not None:
        chosen = dict(args.option).get(found.api_option, found.default_api)
        if origin.arguments.get(found.api_option, found.default_api) != chosen:
            return None
    symbols = origin.arguments.get("symbols")
    return symbols if isinstance(symbols, list) else None


async def _report(args: argparse.Namespace, console: Console) -> int:
    if len(args.dirs) == 1:  # one recording: with its progress bar, straight to the console
        folder = args.dirs[0]
        if args.html is not None:  # refused before the work, not after it, and made
            await asyncio.to_thread(read_manifest, Path(folder))  # for a recording only
            await asyncio.to_thread(_html_file, args.html)
        await _in_thread(console, f"analysing {escape(str(folder))}", functools.partial(
            _print_report, console, folder, args.chunk_events, args.html))
        return 0
    # Every recording refused before any is replayed, as export does (_check_recordings).
    opened = await asyncio.to_thread(_check_manifests, args)
    html = None if args.html is None else await asyncio.to_thread(_report_folder, args.html)
    jobs = [(folder, args.chunk_events, html, console.width) for folder in args.dirs]
    if opened is not None:
        for job, recording in zip(jobs, opened, strict=True):
            text = await _in_thread(console, f"analysing {escape(str(job[0]))}",
                                    functools.partial(_report_job, *job, recording=recording))
            console.print(text, end="", markup=False, highlight=False)
        return 0
    _say(console, f"reporting on {len(jobs)} recordings, {args.workers} at a time")
    labels = [f"analysing {escape(str(folder))}" for folder in args.dirs]
    async for text in _in_processes(args.workers, _report_job, jobs, console, labels,
                                    "report"):
        console.print(text, end="", markup=False, highlight=False)
    return 0


async def _in_processes(workers: int, job: Callable[..., _T], jobs: Sequence[tuple[Any, ...]],
                        console: Console, labels: Sequence[str],
                        command: str) -> AsyncIterator[_T]:
    """``job(*arguments, progress=...)`` for each of ``jobs``, ``workers`` processes at a time.

    The results come in the order of ``jobs``, each as soon as it and those before it are
    done. The processes are fresh interpreters (:func:`~wsresearch._catalog.process_pool`),
    each importing only what its job needs. Meanwhile each running job has a progress bar,
    labelled from ``labels``: the workers send ``(job, done, total)`` through a queue, which
    a thread here puts on the bars (in a terminal; a log gets only the results) for as
    long as any worker lives, so no worker ever waits on a full queue, even after a job
    failed or the command was interrupted. A worker's warnings show as ``wsresearch
    <command>: warning: ...`` lines, as this process's do.
    """
    import multiprocessing
    import queue as queues

    context = multiprocessing.get_context("spawn")
    reports = context.Queue()
    halt = context.Event()  # set when the command is stopped: each job stops at its next step
    shown: dict[int, TaskID] = {}
    ended: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def show() -> None:
        """The workers' progress onto the bars, until the workers are gone."""
        while not stop.is_set():
            try:
                index, done, total = reports.get(timeout=0.1)
            except queues.Empty:
                continue
            with lock:
                if index in ended:  # its result is in: a late report is no news
                    continue
                if index not in shown:
                    shown[index] = bar.add_task(labels[index], total=total)
                bar.update(shown[index], completed=done, total=total)

    def finished(index: int, _: object) -> None:
        with lock:
            ended.add(index)
            if index in shown:
                bar.remove_task(shown.pop(index))

    loop = asyncio.get_running_loop()
    with _bars(console) as bar:
        watcher = threading.Thread(target=show, name="wsresearch-progress", daemon=True)
        watcher.start()
        try:
            with process_pool(workers, _start_worker, (reports, command, halt)) as pool:
                with _workers_ignore_ctrl_c():
                    futures = [loop.run_in_executor(pool, _run_job, job, index, *arguments)
                               for index, arguments in enumerate(jobs)]
                for index, future in enumerate(futures):
                    future.add_done_callback(functools.partial(finished, index))
                try:
                    for future in futures:
                        yield await future
                except (asyncio.CancelledError, KeyboardInterrupt):  # a signal: start no
                    halt.set()  # other job, and stop those running (the pool waits for them)
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
                except BaseException:  # a job failed: start no other; those running finish
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
        finally:  # the pool has shut down: its workers have exited, nothing more comes
            stop.set()
            watcher.join()
            reports.close()


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start the processes made meanwhile ignoring SIGINT, from their first instruction.

    Ctrl-C in a terminal reaches every process of the group; a worker still importing
    (before :func:`_start_worker` runs) would print a ``KeyboardInterrupt`` traceback. A
    signal ignored stays ignored across ``exec``, and Python leaves an ignored SIGINT as
    it is; the parent ignores it only while it starts them (a Ctrl-C in that instant is
    lost, the parent's own handler back right after).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


_to_parent: Any = None
"""In a worker process of :func:`_in_processes`: the queue its jobs' progress goes to."""
_halted: Any = None
"""In a worker process of :func:`_in_processes`: the event set when the command stops."""


def _start_worker(reports: Any, command: str, halt: Any) -> None:
    """A worker's initializer: keep the parent's progress queue and stop event.

    They can only come now. Its warnings show as the command's own lines, as the
    parent's do. It ignores SIGINT: Ctrl-C in a terminal reaches every process of the
    group, and the parent stops its jobs (``halt``), each at its next step, cleaning up
    as it goes.
    """
    global _to_parent, _halted
    _to_parent, _halted = reports, halt
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reports.cancel_join_thread()  # at exit, never wait for reports nobody will read
    _warn_as(command)


def _run_job(job: Callable[..., _T], index: int, *arguments: Any) -> _T:
    """``job(*arguments)`` in a worker, its progress sent to the parent as ``(index, ...)``.

    A first report as it starts puts its bar up before any event is replayed.
    """
    reports = _to_parent
    if reports is None:  # not in a worker of _in_processes
        return job(*arguments)

    def progress(done: int, total: int | None) -> None:
        if _halted.is_set():
            raise _Stopped
        reports.put((index, done, total))

    progress(0, None)
    return job(*arguments, progress=progress)


def _report_job(folder: str, chunk_events: int, html: Path | None, width: int,
                progress: Callable[[int, int], None] | None = None, *,
                recording: Recording | None = None) -> str:
    """One recording's report as the console would show it (in a worker process, or not).

    ``recording``: ``folder`` opened already (its warnings told once).
    """
    import io

    from .export import recording_id
    from .recording import Recording

    if recording is None:
        recording = Recording.open(folder)
    out = Console(file=io.StringIO(), width=width, color_system=None, soft_wrap=True)
    target = None if html is None else str(html / f"{recording_id(recording)}.html")
    _print_report(out, folder, chunk_events, target, progress, recording)
    assert isinstance(out.file, io.StringIO)
    return out.file.getvalue()


def _print_report(console: Console, folder: str, chunk_events: int, html: str | None,
                  progress: Callable[[int, int], None] | None,
                  recording: Recording | None = None) -> None:
    """Replay ``folder`` for its report; print its summary and connections; write the HTML.

    ``recording``: ``folder`` opened already.
    """
    from .quality import quality_report

    report = quality_report(folder if recording is None else recording, progress=progress,
                            chunk_events=chunk_events)
    table = _table(f"feed quality: {folder}")
    table.add_column("metric")
    table.add_column("value")
    for metric, value in report.summary().iter_rows():
        table.add_row(Text(str(metric)), Text(printable(str(value))))
    console.print(table)
    columns = ("generation", "code", "category", "reason", "connected_s", "downtime_after_s")
    closes = _table("connections")
    for column in columns:
        closes.add_column(column)
    for row in report.connections.iter_rows(named=True):
        closes.add_row(*(Text("" if row[c] is None else f"{row[c]:.2f}"
                              if isinstance(row[c], float) else printable(str(row[c])))
                         for c in columns))
    console.print(closes)
    if html:
        path = report.to_html(html)
        _say(console, f"report written to {path}")


def _bars(console: Console) -> Progress:
    """Progress bars that vanish when done, or none where the output is not interactive.

    A log (or a dumb terminal) would get nothing of them but the blank line rich leaves
    where they were.
    """
    return Progress(console=console, transient=True, disable=not console.is_interactive)


@contextlib.contextmanager
def _progress(console: Console, label: str) -> Iterator[Callable[[int, int], None]]:
    """One bar for one long step: yields the ``(done, total)`` callback that moves it."""
    with _bars(console) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


async def _in_thread(console: Console, label: str,
                     work: Callable[[Callable[[int, int], None]], _T]) -> _T:
    """``work(progress)`` in a thread, under a progress bar labelled ``label``.

    When the command is cancelled (a signal: :func:`_until_signalled`), the work's next
    call of ``progress`` raises :class:`_Stopped`, and the cancellation waits for the
    work to end, so that what it cleans up on the way out (an export's staging folder)
    is gone before the process ends. A thread cannot be stopped otherwise: without this,
    the interpreter would wait for the work to finish before exiting.
    """
    stop = threading.Event()
    with _progress(console, label) as advance:

        def step(done: int, total: int) -> None:
            if stop.is_set():
                raise _Stopped
            advance(done, total)

        running = asyncio.ensure_future(asyncio.to_thread(work, step))
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            stop.set()
            try:
                await running  # it stops at its next step (a chunk, a file)
            except (_Stopped, KeyboardInterrupt):  # stopped (a split export's parts: Ctrl-C)
                pass
            else:  # its last step was behind it: what it wrote is whole
                _say(console, f"{Text.from_markup(label).plain}: done before the stop "
                     "reached it")
            raise


async def _export(args: argparse.Namespace, console: Console) -> int:
    opened = await asyncio.to_thread(_check_recordings, args)
    reports = None if args.report is None else await asyncio.to_thread(
        _report_folder, args.report)
    if opened is None:  # the workers import what exports
        return await _export_in_parallel(args, reports, console)
    from .export import export_parquet, export_with_report

    for folder, recording in zip(args.dirs, opened, strict=True):
        spec = _export_spec(args, recording)
        label = f"exporting {escape(str(folder))}"
        if reports is None:
            summary = await _in_thread(console, label, functools.partial(
                _export_to, export_parquet, recording, spec, args,
                workers=args.workers))  # one recording: split where connections begin
        else:  # one replay for both
            summary, report = await _in_thread(console, label, functools.partial(
                _export_to, export_with_report, recording, spec, args))
        _say(console, _exported(folder, summary, args.out))
        if reports is not None:
            written = await asyncio.to_thread(report.to_html,
                                              reports / f"{summary.recording}.html")
            _say(console, f"{folder}: quality report -> {written}")
    return 0


def _export_to(export: Callable[..., _T], recording: Recording, spec: FeedSpec | None,
               args: argparse.Namespace, progress: Callable[[int, int], None] | None,
               **options: Any) -> _T:
    """``export(recording, ...)`` into ``--out``, as the arguments say.

    ``export``: :func:`export_parquet` or :func:`export_with_report`.
    """
    return export(recording, spec, args.out, normalized=args.normalized, progress=progress,
                  chunk_events=args.chunk_events, quotes=args.quotes, **options)


def _check_recordings(args: argparse.Namespace) -> list[Recording] | None:
    """Refuse, before any recording is replayed, what would stop ``export`` at one of them.

    :func:`_check_manifests`, and without ``--exchange`` each recording must name the
    adapter it was recorded with (one this version has), and its spec must be rebuilt.

    Returns
    -------
    list of Recording or None
        Each recording, opened, for a run in this process; ``None`` for a parallel run.

    Raises
    ------
    RecordingFormatError, ValueError
        What the first such recording's manifest or spec says.
    """
    if args.exchange is None and (args.channels or args.option):
        raise ValueError("--channels and --option go with --exchange")
    if args.quotes is not None and not args.normalized:
        raise ValueError("--quotes goes with --normalized")
    opened = _check_manifests(args, adapters=args.exchange is None)
    for recording in opened or ():
        spec = _export_spec(args, recording) or recording.spec
        if args.quotes == "book" and spec is not None and spec.book_sync is None:
            raise ValueError(f"{recording.path}: --quotes book, but its spec keeps no order "
                             "books to take quotes from")
        _check_readable(recording)
    return opened


def _check_readable(recording: Recording) -> None:
    """Refuse to export a recording none of whose events can be read (its files damaged).

    Exported, it would write no rows and exit 0 beside a warning, easy to miss in a batch
    job; a recording that held no events is exported as it is.

    Raises
    ------
    ValueError
        Naming the recording and how many events its manifest counts.
    """
    promised = recording.manifest.events
    if promised and recording.event_count == 0:
        raise ValueError(f"{recording.path}: none of its {promised} events can be read: its "
                         "segment files are damaged or missing")


def _check_manifests(args: argparse.Namespace, *,
                     adapters: bool = False) -> list[Recording] | None:
    """Refuse every DIR that would stop the command, before any is replayed.

    Each manifest is read and checked with nothing but ``json`` (not a recording, a
    newer format version; with ``adapters``, no adapter named, or one this version does
    not have), so a bad one in the list writes nothing, with one process or several. A
    run in this process, which loads the data libraries anyway, then opens each
    recording too (every field of its manifest checked). A parallel run's parent leaves
    that to the workers and loads none of them: a manifest damaged in another field
    stops its own worker, and recordings already under way in others are still written.

    Returns
    -------
    list of Recording or None
        Each recording, opened, when ``--workers 1`` or one DIR; else ``None``.

    Raises
    ------
    RecordingFormatError, ValueError
        What the first recording refused says.
    """
    for folder in args.dirs:
        raw = read_manifest(Path(folder))
        origin = raw.get("spec_origin")
        if adapters and origin is None:
            raise ValueError(_no_adapter(folder))
        if adapters and isinstance(origin, dict) and origin.get("adapter") not in ADAPTERS:
            raise RecordingFormatError(unknown_adapter(folder, origin.get("adapter")))
    if args.workers > 1 and len(args.dirs) > 1:
        return None
    from .recording import Recording

    return [Recording.open(folder) for folder in args.dirs]


def _no_adapter(folder: object) -> str:
    return (f"{folder} does not name the adapter it was recorded with; say which with "
            f"--exchange ({', '.join(EXCHANGES)})")


async def _export_in_parallel(args: argparse.Namespace, reports: Path | None,
                              console: Console) -> int:
    """``export --workers N``: a process per recording at a time, lines in the given order.

    Each worker opens, replays and writes its recording alone (the dataset's files are
    per recording, so none is written by two), and builds its spec from the arguments:
    a spec holds functions, which do not cross processes.
    """
    options = {key: value for key, value in vars(args).items() if key != "dirs"}
    _say(console, f"exporting {len(args.dirs)} recordings, {args.workers} at a time")
    jobs = [(folder, options, reports) for folder in args.dirs]
    labels = [f"exporting {escape(str(folder))}" for folder in args.dirs]
    async for lines in _in_processes(args.workers, _export_job, jobs, console, labels,
                                     "export"):
        for line in lines:
            _say(console, line)
    return 0


def _export_job(folder: str, options: dict[str, Any], reports: Path | None,
                progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Export one recording (in a worker process); the lines to say about it."""
    from .export import export_parquet, export_with_report
    from .recording import Recording

    args = argparse.Namespace(dirs=[folder], **options)
    recording = Recording.open(folder)
    spec = _export_spec(args, recording)
    _check_readable(recording)
    if reports is None:
        summary = _export_to(export_parquet, recording, spec, args, progress)
        return [_exported(folder, summary, args.out)]
    summary, report = _export_to(export_with_report, recording, spec, args, progress)
    written = report.to_html(reports / f"{summary.recording}.html")
    return [_exported(folder, summary, args.out), f"{folder}: quality report -> {written}"]


def _exported(folder: str, summary: ExportSummary, out: str) -> str:
    """What ``export`` says of one recording it wrote."""
    rows = ", ".join(f"{name} {n}" for name, n in summary.rows.items() if n) or "no rows"
    kinds = ", ".join(f"{kind} {n}" for kind, n in summary.normalized.items() if n)
    if kinds:  # --normalized: the tables written too
        rows = f"{rows}; normalized {kinds}"
    again = f", replacing {summary.replaced} earlier file(s)" if summary.replaced else ""
    parts = f", by {summary.parts} processes" if summary.parts > 1 else ""
    return f"{folder}: {rows} -> {out} as {summary.recording}{again}{parts}"


def _html_file(path: str) -> None:
    """Make sure ``report --html FILE`` can be written: its folder made if needed."""
    file = Path(path)
    if file.is_dir():
        raise ValueError(f"--html {path} is a folder; with one recording it names the HTML file")
    if file.parent.exists() and not file.parent.is_dir():
        raise ValueError(f"--html {path}: {file.parent} is a file, not a folder")
    file.parent.mkdir(parents=True, exist_ok=True)


def _report_folder(path: str) -> Path:
    """The folder ``export --report`` writes into, made if needed; a file there is an error."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--report {path} is a file; it names a folder for the reports")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class _Stopped(Exception):
    """Raised in a command's work at its next step, once the command was stopped.

    In a thread of :func:`_in_thread`, or a job of :func:`_in_processes`.
    """


async def _compact(args: argparse.Namespace, console: Console) -> int:
    """Compact each DIR; the others still, where one is refused (being recorded, say)."""
    refused = 0
    for folder in args.dirs:
        try:
            await _compact_one(folder, args.segment_events, console)
        except WsResearchError as exc:
            refused += 1
            print(f"wsresearch compact: error: {_one_line(exc)}", file=sys.stderr)
    if refused and len(args.dirs) > 1:
        print(f"wsresearch compact: {refused} of {len(args.dirs)} recordings not compacted",
              file=sys.stderr)
    return 1 if refused else 0


async def _compact_one(folder: str, segment_events: int, console: Console) -> None:
    """Compact one recording, with its progress bar and a line saying what it did."""
    from .recording import compact_recording

    # Stopped (Ctrl-C), the compaction stops at its next file, the recording as it was.
    done = await _in_thread(console, f"compacting {escape(str(folder))}", lambda step: (
        compact_recording(folder, segment_events=segment_events, progress=step)))
    files = f"{done.files_before:,} segment file{'s' * (done.files_before != 1)}"
    if done.folders_rewritten:
        _say(console, f"{folder}: {files} -> {done.files_after:,} ({done.events:,} "
             f"events), {done.bytes_before / 1e6:,.1f} MB -> {done.bytes_after / 1e6:,.1f} MB")
    else:
        _say(console, f"{folder}: already compact ({files}, {done.events:,} events)")


async def _import(args: argparse.Namespace, console: Console) -> int:
    from .importers import import_capture

    spec = None
    if args.exchange is not None:
        symbols = None if args.symbols is None else [
            s.strip() for s in args.symbols.split(",") if s.strip()]
        with warnings.catch_warnings():  # an import connects nowhere: which endpoint a
            # live feed of these channels would reach (Binance USD-M) is not its concern
            warnings.filterwarnings("ignore", message=".*one connection reaches one of them")
            spec = _adapter_spec(args.exchange, args, url=None, symbols=symbols)
    elif args.channels or args.option or args.symbols:
        raise ValueError("--symbols, --channels and --option go with --exchange")
    recording = await _in_thread(console, f"importing {escape(str(args.source))}", lambda step: (
        import_capture(args.source, args.out, format=args.format, spec=spec,
                       connection=args.connection, progress=step)))
    manifest = recording.manifest
    kinds: dict[str, int] = {}
    for part in recording.columns(["kind"]):  # not the messages: one column, a file at a time
        for kind, count in part["kind"].value_counts().iter_rows():
            kinds[kind] = kinds.get(kind, 0) + count
    start = utc_text(manifest.started_wall_ns, 3)
    end = utc_text(manifest.ended_wall_ns or manifest.started_wall_ns, 3)
    span = ((manifest.ended_wall_ns or manifest.started_wall_ns)
            - manifest.started_wall_ns) / NS_PER_S
    rest = f", {kinds['rest']} REST snapshot(s)" if kinds.get("rest") else ""
    sent = f", {kinds['sent']} sent message(s)" if kinds.get("sent") else ""
    _say(console, f"{args.source} -> {args.out}: {kinds.get('frame', 0)} messages over "
         f"{kinds.get('open', 0)} connection(s){sent}{rest}")
    times = {"imported": "imported from the capture (the capturing tool's clock)",
             "invented": "invented (the capture has none: 1 ms apart from the epoch)",
             "recorded": "recorded"}[manifest.receive_times]
    _say(console, f"{span:.1f} s, {start} to {end}; receive times {times}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    one_arena()  # before polars is imported (wsresearch._allocator)
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.CRITICAL,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    console = _console()
    command = {"demo": _demo, "simulate": _simulate, "record": _record, "replay": _replay,
               "report": _report, "export": _export, "compact": _compact,
               "import": _import}[args.command]
    running = command(args, console)
    # A signal stops a command cleanly: a feed stops and closes its recording; a replay,
    # report, export, import or compaction stops at its next step (_in_thread), leaving
    # what it writes as it was.
    running = _until_signalled(running, console)
    try:
        with warnings.catch_warnings():  # a library's warning, as the command's own line
            _warn_as(args.command)
            return asyncio.run(running)
    except KeyboardInterrupt:
        return 130
    except (WsResearchError, OSError, ValueError, ImportError,  # and ValidationError
            NothingKeptWarning) as exc:
        unwritten = (" Nothing of it was written." if isinstance(exc, NothingKeptWarning)
                     and args.command == "export" else "")
        print(f"wsresearch {args.command}: error: {_one_line(exc)}{unwritten}", file=sys.stderr)
        return 1


def _warn_as(command: str) -> None:
    """Show warnings as ``command``'s lines; ``export`` stops at a replay that kept nothing.

    An export through the wrong spec rejects every message: its dataset would gain a
    recording with no rows, and a batch job would see success. Raised as an error, it
    stops the export before anything of that recording is written (and the command exits
    1); ``replay`` and ``report`` show what was rejected, as a warning.
    """
    warnings.showwarning = functools.partial(_show_warning, command)
    if command == "export":
        warnings.simplefilter("error", NothingKeptWarning)


def _table(title: str) -> Table:
    """A table whose ``title`` (a path, say) is shown whole, not wrapped to the table's width."""
    text = Text(printable(title))
    return Table(title=text, min_width=text.cell_len)


def _say(console: Console, text: str, style: str = "", rest: str = "") -> None:
    """Print ``text`` (in ``style``) and ``rest`` as one line: never markup, never wrapped.

    Control characters (in a path, a URL) are shown escaped: one cannot break the
    line or drive the terminal.
    """
    console.print(Text.assemble((printable(text), style), printable(rest)), soft_wrap=True)


def _console() -> Console:
    """The console every command prints to.

    Markup and emoji codes are off, so text from outside (a server's strings,
    a path) prints as it is. When the output is not a terminal, the width is
    not the terminal's (or ``COLUMNS``'): tables are not squeezed and nothing
    wraps, so a log reads the same whatever window it was made in.
    """
    console = Console(markup=False, emoji=False, highlight=False)
    if not console.is_terminal:
        console.width = _PIPED_WIDTH
    return console


_PIPED_WIDTH = 10_000
"""Columns when the output is not a terminal: wider than any table the commands print."""

_STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


async def _until_signalled(command: Coroutine[Any, Any, int], console: Console) -> int:
    """Run ``command``; on SIGINT, SIGTERM or SIGHUP cancel it and return 128 + the signal.

    The command's own cleanup (``finally``, ``async with``) runs as for Ctrl-C:
    the feed stops, its recording is flushed, closed and marked complete. The
    first signal cancels, and gives each signal its default action back: a second
    one ends the process at once (a stop stuck on a disk that does not answer must
    not need SIGKILL). A signal the process was started ignoring (``nohup``) stays
    ignored. The handlers are removed when the command ends.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    caught: list[signal.Signals] = []

    def stop(signum: signal.Signals) -> None:
        if caught:
            return
        caught.append(signum)
        _say(console, f"{signum.name} received: stopping (again to quit at once)")
        for installed_signal in installed:  # a second signal: its default action, which
            loop.remove_signal_handler(installed_signal)  # for Ctrl-C is not Python's
            signal.signal(installed_signal, signal.SIG_DFL)  # (that waits for threads)
        installed.clear()
        task.cancel()

    installed: list[signal.Signals] = []
    previous: dict[signal.Signals, Any] = {}  # put back when the command ends
    # The event loop's signal handlers exist on Unix only, and in the main thread only
    # (main() run from a thread, as a library call: the caller owns the signals).
    unix_main = sys.platform != "win32" and threading.current_thread() is threading.main_thread()
    for name in _STOP_SIGNALS if unix_main else ():
        signum = getattr(signal, name, None)
        if signum is None or signal.getsignal(signum) is signal.SIG_IGN:
            continue
        previous[signum] = signal.getsignal(signum)
        loop.add_signal_handler(signum, stop, signum)
        installed.append(signum)
    try:
        return await command
    except asyncio.CancelledError:
        if not caught:
            raise
        task.uncancel()
        return 128 + caught[0].value
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _show_warning(command: str, message: Warning | str, category: type[Warning],
                  filename: str, lineno: int, file: Any = None, line: str | None = None) -> None:
    """A warning on stderr as one line of the command's: what happened, not where in the code."""
    text = printable(" ".join(str(message).split()))
    print(f"wsresearch {command}: warning: {text}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    from pydantic import ValidationError

    from .errors import first_error

    text = first_error(exc) if isinstance(exc, ValidationError) else str(exc)
    return printable(" ".join(text.split())) or type(exc).__name__


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
