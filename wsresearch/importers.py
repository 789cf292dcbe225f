"""Captures made by other tools, imported as recordings with their own receive times.

:func:`import_capture` reads a capture file of another recorder and writes it as a
recording: every connect an ``open`` (one connection generation each), every sent
message a ``sent`` event, every message a ``frame`` at the time that tool received
it, and every REST response taken beside the feed (a depth snapshot) a ``rest``
event. The manifest says the receive times were ``"imported"``: they are real, but
the other tool's clock. Formats (``format=``, found from the file when not given):

``hftbacktest``
    hftbacktest's collector: ``<local_ts_ns> <message>`` per line. A line whose
    message starts with ``{"lastUpdateId"`` is the REST depth snapshot the collector
    fetched: a ``rest`` event.
``cryptofeed``
    cryptofeed's JSON-lines capture (format 2): a ``header`` record, then
    ``connect`` (``conn``, ``addr``, ``ts``), ``send`` (``data``), ``recv``
    (``data``, or ``b64`` for a binary message) and ``http`` (``url``, ``data``)
    records, times in seconds. A capture of several WebSocket connections at once
    is imported one connection at a time (``connection=``).
``tardis``
    tardis-machine's ``/replay`` output, ``{"localTimestamp": "<ISO 8601>",
    "message": {...}}`` per line, or the HTTP API's ``<ISO 8601> <message>`` lines;
    an empty line is a disconnect, so the next message opens a new connection.
``side-files``
    ``X.jsonl`` (one message per line) with ``X.events.jsonl`` beside it:
    ``connect`` (``addr``, ``ts``), ``send`` (``ts``, ``sent_line`` of
    ``X.sent.jsonl``), ``recv`` (``ts`` in seconds or ``local_ts_ns``, ``line`` of
    ``X.jsonl``) and ``rest_depth_snapshot`` (``local_ts_ns``, ``rest_index``)
    records; REST bodies in ``X.rest_snapshot.jsonl``, their URL and time in
    ``X.rest_snapshot.meta.jsonl``.
``lines``
    One message per line and no times at all: they are invented (1 ms apart from
    the epoch) and the manifest says so. Never chosen unless asked for.

Files may be gzip-compressed (and zstd-compressed, with pyarrow installed).
Anything else is refused with a one-line :class:`ValueError` naming the file and
line. Parsing is kept apart from writing: the readers yield
:class:`~wsresearch.recording.writer.Captured` events, and
:func:`~wsresearch.recording.writer.write_events` writes them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import gzip
import io
import json
import os
import re
import warnings
import zlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import polars as pl

from ._catalog import FORMATS, ImportFormat
from .clock import NS_PER_S, iso_ns, scaled_ns
from .recording import Recording
from .recording.writer import Captured, write_events
from .redaction import DEFAULT_REDACT
from .spec import FeedSpec

__all__ = ["FORMATS", "ImportFormat", "capture_events", "detect_format", "import_capture"]


_DEFAULT_URL = "ws://127.0.0.1/"
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_HFT_LINE = re.compile(r"(\d{1,19}) (.*)", re.DOTALL)
_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]00:?00)")
_TARDIS_LINE = re.compile(_ISO.pattern + r" (.*)", re.DOTALL)
_TARDIS_HEAD = '{"localTimestamp":"'
_TARDIS_MIDDLE = '","message":'
_SNAPSHOT_HEAD = '{"lastUpdateId"'
_CRYPTOFEED_RECORDS = frozenset({"header", "connect", "send", "recv", "http"})


def import_capture(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    format: ImportFormat | None = None,
    spec: FeedSpec | None = None,
    source_url: str | None = None,
    description: str = "",
    connection: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Recording:
    r"""Import another tool's capture as a recording, with the receive times it took.

    The capture is read as it is written, a segment at a time: the memory an import
    needs does not grow with the capture (side files aside, which are read whole).

    Parameters
    ----------
    source
        The capture file (for ``side-files``, the messages file ``X.jsonl``).
    out_dir
        A new (or empty) directory for the recording.
    format
        One of :data:`FORMATS`; found from the file when ``None``
        (:func:`detect_format`). ``"lines"`` (no times) is never guessed.
    spec
        The spec the messages belong to: its channels and origin go into the
        manifest, so :attr:`Recording.spec` rebuilds it for replay, and its
        ``redact`` keys mask sent messages.
    source_url
        The URL to record; by default the capture's first connect URL, else the
        spec's.
    description
        What the capture is; by default its file name and format.
    connection
        For a cryptofeed capture of several WebSocket connections: the one to
        import (its ``conn`` id, e.g. ``BINANCE.ws.1``).
    progress
        Called with ``(bytes of the file read, its size)`` as it is read (every 4 MB,
        and at its end; compressed bytes for a compressed file). An exception it raises
        stops the import: nothing is left at ``out_dir``.

    Returns
    -------
    Recording
        The recording written. Its manifest's ``receive_times`` is ``"imported"``
        (``"invented"`` for ``lines``).

    Raises
    ------
    ValueError
        If the file is none of the formats, or a line of it is damaged (the error
        names the file and line); nothing is left at ``out_dir``.
    RecordingError
        If ``out_dir`` holds a recording or cannot be written.
    OSError
        If ``source`` cannot be read.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "btcusdt.raw").write_text(
    ...     '1723161253937085768 {"stream":"btcusdt@trade","data":{}}\n'
    ...     '1723161254036059768 {"stream":"btcusdt@trade","data":{}}\n')
    >>> recording = import_capture(folder / "btcusdt.raw", folder / "rec")
    >>> recording.manifest.receive_times, recording.frames()["recv_wall_ns"].to_list()
    ('imported', [1723161253937085768, 1723161254036059768])
    """
    path = Path(source)
    found = format if format is not None else detect_format(path)
    if found not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {found!r}")
    url = source_url or _first_url(path, found, connection) or (
        spec.url if spec is not None else _DEFAULT_URL)
    meter = _METER.set(None if progress is None else _Meter(path, progress))
    try:
        _write(path, found, url, connection, out_dir, description, spec)
    finally:
        _METER.reset(meter)
    recording = Recording.open(out_dir)
    if spec is not None:
        for problem in _not_the_spec(recording, spec):
            warnings.warn(problem, stacklevel=2)
    return recording


def _write(path: Path, found: ImportFormat, url: str, connection: str | None,
           out_dir: str | os.PathLike[str], description: str, spec: FeedSpec | None) -> None:
    """The capture at ``path``, in format ``found``, written as a recording at ``out_dir``."""
    what = spec.description if spec is not None and spec.description else "messages"
    write_events(
        Path(out_dir),
        capture_events(path, found, url=url, connection=connection),
        source_url=url,
        description=description or f"{what}, imported from the {found} capture {path.name}",
        channels=spec.channel_names if spec is not None else (),
        redact=spec.redact if spec is not None else DEFAULT_REDACT,
        origin=spec.origin if spec is not None else None,
    )


def _not_the_spec(recording: Recording, spec: FeedSpec, sample: int = 5_000) -> list[str]:
    """Lines saying where ``recording``'s first messages are not what ``spec`` subscribes to.

    One when none of them is of any of the spec's channels (another exchange's capture,
    say: every message would be rejected). Otherwise one for each channel with a layout
    that none of its messages match: such a channel still replays, through its model,
    only slower; but its messages are not what the spec says it subscribes to, which
    usually means an option given on import is not the capture's (a Binance
    ``depth_speed``: the stream name, such as ``btcusdt@depth@100ms``, is part of each
    message). The recording's first ``sample`` events are looked at.
    """
    from .parser import MessageParser

    chunk = next(iter(recording.chunks(sample)), None)
    if chunk is None:
        return []
    texts = chunk.filter((pl.col("kind") == "frame") & ~pl.col("binary"))["data"].to_list()
    route = MessageParser.from_spec(spec).route
    routes = [route(text) for text in texts]
    names = set(spec.channel_names)
    if texts and not names.intersection(routes):
        adapter = f"the {spec.origin.adapter} spec" if spec.origin is not None else "the spec"
        return [f"none of the capture's first {len(texts):,} messages is of a channel of "
                f"{adapter} ({', '.join(spec.channel_names)}): they would all be rejected; "
                "is the spec (--exchange, --option) the capture's?"]
    problems = []
    for channel in spec.channels:
        if channel.layout is None:
            continue
        own = pl.Series([t for t, r in zip(texts, routes, strict=True) if r == channel.name],
                        dtype=pl.String)
        if len(own) and not channel.layout.matches(own).any():
            problems.append(
                f"channel {channel.name!r}: none of its {len(own)} messages in the capture's "
                f"first {sample} events is in the shape its layout expects "
                f"({channel.layout.anchor!r}): they replay through the model, slower, and "
                "the spec may not be the capture's (a Binance depth: is depth_speed the "
                "speed in the stream names?)")
    return problems


def detect_format(source: str | os.PathLike[str]) -> ImportFormat:
    r"""Which capture format ``source`` is in, from its side files and first line.

    Raises
    ------
    ValueError
        If it is none that carries receive times (the error names the line, and
        says how to import messages without times).

    Examples
    --------
    >>> import tempfile
    >>> file = Path(tempfile.mkdtemp()) / "capture.jsonl"
    >>> _ = file.write_text('{"localTimestamp":"2024-01-01T00:00:00.1234567Z","message":{}}\n')
    >>> detect_format(file)
    'tardis'
    """
    path = Path(source)
    if _side_file(path, "events").is_file():
        return "side-files"
    number, line = 0, ""
    for number, line in _lines(path):  # noqa: B007 - both are used after the loop
        if line.strip():
            break
    else:
        raise ValueError(f"{path} is empty: no capture to import")
    if _HFT_LINE.fullmatch(line) and line.split(" ", 1)[1].lstrip()[:1] in ("{", "["):
        return "hftbacktest"
    if _TARDIS_LINE.fullmatch(line):
        return "tardis"
    record = _json_or_none(line)
    if isinstance(record, dict):
        if record.get("t") in _CRYPTOFEED_RECORDS and ("ts" in record or "format" in record):
            return "cryptofeed"
        if "localTimestamp" in record and "message" in record:
            return "tardis"
    raise ValueError(
        f"{path} line {number}: not a capture with receive times this wsresearch reads "
        f"(hftbacktest '<ns> <message>', cryptofeed JSON lines, tardis-machine "
        f"'localTimestamp' lines, or X.jsonl with X.events.jsonl); to import messages "
        f"without times (they get invented times), choose the format 'lines'")


def capture_events(
    source: str | os.PathLike[str],
    format: ImportFormat,
    *,
    url: str = _DEFAULT_URL,
    connection: str | None = None,
) -> Iterator[Captured]:
    """The events of a capture, in order, as :func:`~.recording.writer.write_events` takes them.

    Lazy: the file is read as the events are taken (side files are read whole).

    Parameters
    ----------
    source
        The capture file.
    format
        Its format (:data:`FORMATS`).
    url
        Where a connection the capture does not name opened (a tardis reconnect).
    connection
        For cryptofeed: the WebSocket connection to take.

    Raises
    ------
    ValueError
        For a line the format does not allow, naming the file and line.
    """
    path = Path(source)
    readers: dict[str, Callable[[], Iterator[Captured]]] = {
        "hftbacktest": lambda: _hftbacktest(path),
        "cryptofeed": lambda: _cryptofeed(path, connection),
        "tardis": lambda: _tardis(path, url),
        "side-files": lambda: _side_files(path),
        "lines": lambda: _plain(path),
    }
    if format not in readers:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if connection is not None and format != "cryptofeed":
        raise ValueError("connection= chooses a connection of a cryptofeed capture only")
    return readers[format]()


# -- the readers --------------------------------------------------------------------------


def _hftbacktest(path: Path) -> Iterator[Captured]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        match = _HFT_LINE.fullmatch(line)
        if match is None:
            raise ValueError(f"{path} line {number}: not an hftbacktest line "
                             f"'<local_ts_ns> <message>': {line[:60]!r}")
        wall, text = int(match[1]), match[2]
        _check_json(text, path, number)
        if text.startswith(_SNAPSHOT_HEAD):
            yield Captured("rest", wall, text)
        else:
            yield Captured("frame", wall, text)


def _cryptofeed(path: Path, connection: str | None) -> Iterator[Captured]:
    chosen = connection
    for number, line in _lines(path):
        if not line.strip():
            continue
        record = _record(line, path, number)
        kind = record.get("t")
        if kind == "header":
            continue
        if kind not in _CRYPTOFEED_RECORDS:
            raise ValueError(f"{path} line {number}: not a cryptofeed capture record "
                             f"(its 't' is {kind!r}; one of connect, send, recv, http)")
        wall = _seconds(record.get("ts"), path, number)
        if kind == "http":
            yield Captured("rest", wall, _payload(record, path, number), _str(
                record.get("url"), "url", path, number))
            continue
        conn = record.get("conn")
        if chosen is None and conn is not None:
            chosen = conn
        elif conn != chosen and connection is None:
            raise ValueError(
                f"{path} line {number}: the capture holds more than one WebSocket "
                f"connection ({chosen}, {conn}); import one at a time: connection={conn!r}")
        if conn != chosen:
            continue
        if kind == "connect":
            yield Captured("open", wall, _str(record.get("addr"), "addr", path, number))
        elif kind == "send":
            sent = _payload(record, path, number)
            yield Captured("sent", wall, sent if isinstance(sent, str) else sent.decode(
                "utf-8", "replace"))
        else:
            yield Captured("frame", wall, _payload(record, path, number))


def _tardis(path: Path, url: str) -> Iterator[Captured]:
    reconnect = False
    started = False
    for number, line in _lines(path):
        if not line.strip():
            reconnect = started  # a disconnect: the next message is on a new connection
            continue
        match = _TARDIS_LINE.fullmatch(line)
        if match is not None:
            wall, text = iso_ns(line.partition(" ")[0]), match[9]
            _check_json(text, path, number)
        else:
            wall, text = _tardis_replay_line(line, path, number)
        if reconnect:
            yield Captured("open", wall, url)
            reconnect = False
        started = True
        yield Captured("frame", wall, text)


def _tardis_replay_line(line: str, path: Path, number: int) -> tuple[int, str]:
    """``(wall_ns, message text)`` of one ``/replay`` line, the message's text as served."""
    record = _record(line, path, number)
    stamp, message = record.get("localTimestamp"), record.get("message")
    if not isinstance(stamp, str) or "message" not in record:
        raise ValueError(f"{path} line {number}: not a tardis-machine line "
                         "(an object with 'localTimestamp' and 'message')")
    match = _ISO.fullmatch(stamp)
    if match is None:
        raise ValueError(f"{path} line {number}: localTimestamp {stamp!r} is not an ISO 8601 "
                         "time in UTC")
    # tardis-machine writes the message as the exchange sent it: keep that text.
    head = f"{_TARDIS_HEAD}{stamp}{_TARDIS_MIDDLE}"
    if line.startswith(head) and line.rstrip().endswith("}"):
        return iso_ns(stamp), line.rstrip()[len(head):-1]
    text = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
    return iso_ns(stamp), text


def _side_files(path: Path) -> Iterator[Captured]:
    messages = [line for _, line in _lines(path)]
    events_file = _side_file(path, "events")
    sent_file = _side_file(path, "sent")
    sent = [line for _, line in _lines(sent_file)] if sent_file.is_file() else []
    bodies_file = _side_file(path, "rest_snapshot")
    bodies = [line for _, line in _lines(bodies_file)] if bodies_file.is_file() else []
    meta_file = _side_file(path, "rest_snapshot.meta")
    meta = {}
    if meta_file.is_file():
        for number, line in _lines(meta_file):
            if line.strip():
                record = _record(line, meta_file, number)
                meta[_index(record.get("rest_index"), "rest_index", meta_file, number)] = (
                    record, number)
    # Snapshots the events file does not place go where their own time puts them.
    placed = set()
    for number, line in _lines(events_file):
        if line.strip():
            record = _record(line, events_file, number)
            if record.get("t") == "rest_depth_snapshot":
                placed.add(record.get("rest_index"))
    pending = sorted(
        (_seconds(record.get("ts"), meta_file, number), index, record.get("url"))
        for index, (record, number) in meta.items() if index not in placed)

    def body(index: int, where: Path, number: int) -> str:
        if not 0 <= index < len(bodies):
            raise ValueError(f"{where} line {number}: REST snapshot {index} is not in "
                             f"{bodies_file.name} ({len(bodies)} lines)")
        return bodies[index]

    for number, line in _lines(events_file):
        if not line.strip():
            continue
        record = _record(line, events_file, number)
        kind = record.get("t")
        wall = _side_time(record, events_file, number)
        while pending and pending[0][0] <= wall:
            at, index, url = pending.pop(0)
            yield Captured("rest", at, body(index, meta_file, meta[index][1]), url)
        if kind == "connect":
            yield Captured("open", wall, _str(record.get("addr"), "addr", events_file, number))
        elif kind == "send":
            index = _index(record.get("sent_line"), "sent_line", events_file, number)
            yield Captured("sent", wall, _line_of(sent, index, sent_file, events_file, number))
        elif kind == "recv":
            index = _index(record.get("line"), "line", events_file, number)
            yield Captured("frame", wall, _line_of(messages, index, path, events_file, number))
        elif kind == "rest_depth_snapshot":
            index = _index(record.get("rest_index"), "rest_index", events_file, number)
            url = meta[index][0].get("url") if index in meta else None
            yield Captured("rest", wall, body(index, events_file, number), url)
        else:
            raise ValueError(f"{events_file} line {number}: unknown event {kind!r} (connect, "
                             "send, recv or rest_depth_snapshot)")
    for at, index, url in pending:
        yield Captured("rest", at, body(index, meta_file, meta[index][1]), url)


def _plain(path: Path) -> Iterator[Captured]:
    for _, line in _lines(path):
        if line.strip():
            yield Captured("frame", None, line)


# -- reading files ------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    r"""``(number, text)`` of each line, numbered from 1, without its line end.

    Only ``\n`` ends a line: a message may hold other line separators (U+2028).
    """
    with _open(path) as (stream, damaged):
        lines = enumerate(stream, 1)
        number = 0
        while True:
            try:
                number, raw = next(lines)
            except StopIteration:
                return
            except damaged as exc:  # the decompressor's: not a progress callback's
                raise ValueError(f"{path} after line {number}: cannot be read: {exc} (a "
                                 "compressed file damaged or cut short?)") from None
            if raw.endswith(b"\n"):
                raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path} line {number}: not UTF-8 text ({exc.reason} at "
                                 f"byte {exc.start})") from None


_NOT_COMPRESSED: tuple[type[BaseException], ...] = ()
_GZIP_DAMAGED = (gzip.BadGzipFile, EOFError, zlib.error)
_ZSTD_DAMAGED = (OSError,)  # pyarrow's decompression errors are OSErrors


@contextlib.contextmanager
def _open(path: Path) -> Iterator[tuple[IO[bytes], tuple[type[BaseException], ...]]]:
    """``path`` for reading, decompressed (gzip, or zstd through pyarrow), closed after.

    With the stream, the errors that reading it raises when the compressed data is
    damaged or cut short (none for a file that is not compressed).
    """
    damaged = _NOT_COMPRESSED
    with contextlib.ExitStack() as held:
        stream: IO[bytes] = held.enter_context(open(path, "rb"))
        magic = stream.read(4)
        stream.seek(0)
        meter = _METER.get()
        if meter is not None and meter.path == path:  # the capture itself, not a side file
            stream = io.BufferedReader(_Counted(stream, meter))
        if magic.startswith(_GZIP):
            unpacked = gzip.GzipFile(fileobj=stream, mode="rb")
            stream = held.enter_context(unpacked)  # type: ignore[arg-type]
            damaged = _GZIP_DAMAGED
        elif magic == _ZSTD:
            try:
                import pyarrow as pa  # type: ignore[import-untyped]
            except ModuleNotFoundError:
                raise ModuleNotFoundError(
                    f"{path} is zstd-compressed: reading it needs pyarrow "
                    "(pip install 'wsresearch[dataset]'), or decompress it first (zstd -d)"
                ) from None
            stream = held.enter_context(io.BufferedReader(pa.input_stream(stream,
                                                                          compression="zstd")))
            damaged = _ZSTD_DAMAGED
        yield stream, damaged


class _Meter:
    """The bytes of a capture read so far, told to a progress callback as they come."""

    def __init__(self, path: Path, progress: Callable[[int, int], None]) -> None:
        self.path, self.progress = path, progress
        self.size = path.stat().st_size
        self.read = self.told = 0

    def add(self, count: int) -> None:
        self.read += count
        if self.read - self.told >= _TELL_EVERY or (count == 0 and self.read > self.told):
            self.told = self.read
            self.progress(min(self.read, self.size), self.size)


_TELL_EVERY = 4 * 2**20
_METER: contextvars.ContextVar[_Meter | None] = contextvars.ContextVar("import_meter",
                                                                       default=None)
"""The import in progress in this context, whose capture's reads are counted (a context
variable: the readers are generators, run where :func:`import_capture` runs them)."""


class _Counted(io.RawIOBase):
    """A file read through, its bytes counted on a :class:`_Meter` (0 read: its end)."""

    def __init__(self, raw: IO[bytes], meter: _Meter) -> None:
        self._raw, self._meter = raw, meter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        self._meter.add(count)
        return int(count)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _side_file(path: Path, kind: str) -> Path:
    """``X.<kind>.jsonl`` beside the messages file ``X.jsonl`` (or ``X.jsonl.gz``)."""
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(f"{name}.{kind}.jsonl")


def _line_of(lines: list[str], index: int, file: Path, where: Path, number: int) -> str:
    if not 0 <= index < len(lines):
        raise ValueError(f"{where} line {number}: line {index} is not in {file.name} "
                         f"({len(lines)} lines)")
    return lines[index]


# -- fields -------------------------------------------------------------------------------


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError:
        return None


def _record(line: str, path: Path, number: int) -> dict[str, Any]:
    record = _json_or_none(line)
    if not isinstance(record, dict):
        raise ValueError(f"{path} line {number}: not a JSON object: {line[:60]!r}")
    return record


def _check_json(text: str, path: Path, number: int) -> None:
    try:
        json.loads(text)
    except ValueError:
        raise ValueError(f"{path} line {number}: the message is not JSON: {text[:60]!r}") from None


def _seconds(value: object, path: Path, number: int) -> int:
    """Nanoseconds since the epoch from seconds (``1633998512.0633569``), digit for digit."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise ValueError(f"{path} line {number}: 'ts' must be seconds since the epoch, "
                         f"got {value!r}")
    try:
        ns = scaled_ns(value, NS_PER_S)  # a float by its shortest text: the digits written
    except (ValueError, OverflowError):
        raise ValueError(f"{path} line {number}: 'ts' {value!r} is not a time") from None
    if not 0 <= ns < 2**63:
        raise ValueError(f"{path} line {number}: 'ts' {value!r} is out of range")
    return ns


def _side_time(record: dict[str, Any], path: Path, number: int) -> int:
    if "local_ts_ns" in record:
        value = record["local_ts_ns"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            raise ValueError(f"{path} line {number}: 'local_ts_ns' must be ns since the "
                             f"epoch, got {value!r}")
        return value
    return _seconds(record.get("ts"), path, number)


def _index(value: object, name: str, path: Path, number: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{path} line {number}: {name!r} must be a line number (>= 0), "
                         f"got {value!r}")
    return value


def _str(value: object, name: str, path: Path, number: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{path} line {number}: {name!r} must be text, got {value!r}")
    return value


def _payload(record: dict[str, Any], path: Path, number: int) -> str | bytes:
    """A cryptofeed record's payload: ``data`` (text) or ``b64`` (a binary message)."""
    if "b64" in record:
        try:
            return base64.b64decode(_str(record["b64"], "b64", path, number), validate=True)
        except binascii.Error:
            raise ValueError(f"{path} line {number}: 'b64' is not base64") from None
    data = record.get("data")
    if isinstance(data, str):
        return data
    if data is None:
        raise ValueError(f"{path} line {number}: the record has no 'data' nor 'b64'")
    # A payload stored as JSON rather than as its text: written back compactly.
    return json.dumps(data, separators=(",", ":"), default=str)


def _first_url(path: Path, format: ImportFormat, connection: str | None) -> str | None:
    """The URL the capture first connected to, where it names one."""
    if format == "side-files":
        events = _side_file(path, "events")
        lines = _lines(events)
    elif format == "cryptofeed":
        lines = _lines(path)
    else:
        return None
    for number, line in lines:
        record = _json_or_none(line)
        if isinstance(record, dict) and record.get("t") == "connect" and (
                connection is None or record.get("conn") == connection):
            addr = record.get("addr")
            return addr if isinstance(addr, str) else None
        if number > 1000:  # the connect comes first, if there is one
            break
    return None
