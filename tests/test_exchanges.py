"""Exchange adapters: the registry, argument checks, rebuilding, error reports, exact times."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from wsresearch import Recording, RecordingFormatError, replay
from wsresearch.exchanges import (
    ADAPTERS,
    EXCHANGES,
    adapter,
    binance,
    bybit,
    coinbase,
    kraken,
    okx,
    rebuild,
)
from wsresearch.exchanges._common import NsFromIso, NsFromMs, NsFromSeconds
from wsresearch.spec import SpecOrigin

URL = "ws://127.0.0.1:9/feed"


def test_the_registry_imports_no_adapter_until_one_is_looked_up() -> None:
    code = ("import sys, wsresearch.exchanges as e; "
            "loaded = lambda: sorted(n for n in e.ADAPTERS if f'wsresearch.exchanges.{n}' in "
            "sys.modules); print(loaded()); e.adapter('okx'); print(loaded())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[:2] == ["[]", "['okx']"]


@pytest.mark.parametrize("name", ADAPTERS)
def test_each_record_states_what_its_spec_function_takes(name: str) -> None:
    record = adapter(name)
    assert record.spec is importlib.import_module(record.module).spec
    parameters = inspect.signature(record.spec).parameters
    named = [p.name for p in parameters.values() if p.default is not p.empty
             and p.name not in ("symbols", "channels", "url", "connection")]
    assert list(record.options) == named
    if record.api_option is not None:
        # None: the API that serves the channels (OKX's candles are on another endpoint).
        assert parameters[record.api_option].default in (record.default_api, None)
        assert record.api_option in record.options
    for api, found in record.apis.items():
        options = {} if record.api_option is None else {record.api_option: api}
        assert record.channels(options) == found.channels
    default = record.api()
    if name in EXCHANGES:  # every channel of the default API is accepted, at its own URL
        built = record.spec(channels=list(default.channels))
        assert built.url == default.url
        assert built.origin is not None and built.origin.adapter == name
        # Every API's channels with the other defaults (symbols, depths): what `export
        # --exchange NAME --option api=...` builds for a recording of another adapter.
        for api, found in record.apis.items():
            options = {} if record.api_option is None else {record.api_option: api}
            with warnings.catch_warnings():  # Binance USD-M: two endpoints, said once
                warnings.simplefilter("ignore")
                assert record.spec(channels=list(found.channels), **options).origin is not None
    assert default is record.apis[record.default_api]


def test_an_unknown_adapter_or_api_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"no adapter 'ftx'; wsresearch has \['binance'"):
        adapter("ftx")
    with pytest.raises(ValueError, match=r"unknown kraken api 'v9'; choose from \['v2'"):
        adapter("kraken").channels({"api": "v9"})
    assert EXCHANGES == ("binance", "coinbase", "kraken", "bybit", "okx")


@pytest.mark.parametrize("name", ADAPTERS)
def test_rebuild_makes_the_same_spec_from_its_origin(name: str) -> None:
    spec = adapter(name).spec(url=URL)
    assert spec.origin is not None
    rebuilt = rebuild(spec.origin, URL)
    assert (rebuilt.url, rebuilt.channel_names, rebuilt.subscribe, rebuilt.description,
            rebuilt.origin) == (spec.url, spec.channel_names, spec.subscribe, spec.description,
                                spec.origin)


def test_fields_replaced_on_an_adapters_spec_are_kept_in_its_origin_and_rebuilt() -> None:
    made = adapter("okx").spec(url=URL, symbols=["BTC-USDT"], channels=["tickers", "books"])
    assert made.origin is not None and made.origin.replaced == {}
    assert "replaced" not in made.origin.model_dump_json()  # manifests as they were
    changed = made.replace(quotes="channel", snapshot_interval=None, exchange="okx-eu")
    changed = changed.replace(snapshot_depth=3)  # kept beside the others
    assert changed.origin is not None and changed.origin.replaced == {
        "quotes": "channel", "snapshot_interval": None, "exchange": "okx-eu",
        "snapshot_depth": 3}
    assert changed.origin.arguments == made.origin.arguments
    rebuilt = rebuild(changed.origin, URL)
    assert rebuilt.origin == changed.origin
    assert [(s.quotes, s.snapshot_interval, s.snapshot_depth, s.exchange)
            for s in (rebuilt, changed)] == [("channel", None, 3, "okx-eu")] * 2
    # An adapter's keyword overrides are kept the same way.
    told = adapter("okx").spec(url=URL, symbols=["BTC-USDT"], channels=["tickers", "books"],
                               quotes="channel")
    assert told.origin is not None and told.origin.replaced == {"quotes": "channel"}
    # Books taken away: kept as none, with their quotes.
    bookless = made.replace(book_sync=None)
    assert bookless.origin is not None
    assert bookless.origin.replaced == {"quotes": None, "book_sync": None}
    assert rebuild(bookless.origin, URL).book_sync is None
    # A book rule or a function of one's own cannot be rebuilt: the origin goes.
    assert made.replace(book_sync=made.book_sync).origin is None
    assert made.replace(control_sequence=lambda message: None).origin is None
    assert made.replace(error_text=str).origin is None
    assert made.replace(description="mine").origin == made.origin  # not of the rows
    assert made.replace(quotes="book", exchange="okx").origin == made.origin  # as they were


def test_an_origins_replaced_fields_are_checked_as_data() -> None:
    arguments = {"symbols": ["BTC-USDT"], "channels": ["tickers"], "api": "public"}
    with pytest.raises(ValueError, match=r"an origin keeps only the fields \['quotes'.*"
                                         r"not \['channels'\]"):
        SpecOrigin(adapter="okx", arguments=arguments, replaced={"channels": ["trades"]})
    with pytest.raises(ValueError, match="keeps book_sync only as None"):
        SpecOrigin(adapter="okx", arguments=arguments, replaced={"book_sync": "mine"})
    for replaced in ({"quotes": "book"}, {"quotes": "ticker"}, {"snapshot_depth": 0}):
        with pytest.raises(RecordingFormatError, match=r"^r1: cannot set \{'(quotes|snapshot_"
                                                       r"depth)'.* on the 'okx' spec"):
            rebuild(SpecOrigin(adapter="okx", arguments=arguments, replaced=replaced), URL,
                    source="r1")


def test_rebuild_refuses_what_a_manifest_must_not_decide() -> None:
    with pytest.raises(RecordingFormatError, match="adapter 'nowhere', which this wsresearch"):
        rebuild(SpecOrigin(adapter="nowhere"), URL, source="r1")
    with pytest.raises(RecordingFormatError, match=r"r1: .* argument\(s\) \['health'\] it does"):
        rebuild(SpecOrigin(adapter="okx", arguments={"health": {}}), URL, source="r1")
    with pytest.raises(RecordingFormatError, match="cannot rebuild the 'okx' spec of r1: "
                                                   "ValueError: unknown OKX channel"):
        rebuild(SpecOrigin(adapter="okx", arguments={"channels": ["nope"]}), URL, source="r1")


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: binance.spec(["btcusdt"], ["trades"]), ValueError,
         "unknown Binance channel(s) ['trades']; choose from ['trade', 'aggTrade'"),
        (lambda: binance.spec(["BTC-USDT"]), ValueError, "symbols look like 'btcusdt'"),
        (lambda: binance.spec(["btcusdt"], market="coinm"), ValueError,
         "unknown Binance market 'coinm'; choose from ['spot', 'usdm']"),
        (lambda: binance.spec(["btcusdt"], ["depth"], depth_speed="0ms"), ValueError,
         "spot depth speed '0ms'; choose from ['100ms', '1000ms']"),
        (lambda: binance.spec([f"s{i}usdt" for i in range(300)], market="usdm"), ValueError,
         "at most 200 per connection"),
        (lambda: binance.spec("btcusdt"), TypeError, "must be a list"),
        (lambda: coinbase.spec(["BTC-USD"], ["matches"]), ValueError,
         "unknown Coinbase Advanced Trade channel(s) ['matches']"),
        (lambda: coinbase.spec(["BTCUSD"]), ValueError, "look like 'BTC-USD'"),
        (lambda: coinbase.spec(["BTC-USD"], api="pro"), ValueError, "unknown Coinbase API"),
        (lambda: kraken.spec(["BTC/USD"], ["spread"]), ValueError,
         "unknown Kraken v2 channel(s) ['spread']; choose from ['trade', 'ticker', 'book', "
         "'ohlc', 'instrument']"),
        (lambda: kraken.spec(["XBTUSD"], api="v1"), ValueError, "look like 'XBT/USD'"),
        (lambda: kraken.spec(["PI_XBTUSD"], ["book"], api="futures", book_depth=7), ValueError,
         "book depth 7"),
        (lambda: bybit.spec(["BTCUSDT"], ["trade"]), ValueError, "choose from ['publicTrade'"),
        (lambda: bybit.spec(["BTC/USDT"]), ValueError, "look like 'BTCUSDT'"),
        (lambda: bybit.spec(["BTCUSDT"], category="option", book_depth=50), ValueError,
         "option book depth 50; choose from (25, 100)"),
        (lambda: okx.spec(["BTC-USDT"], ["bookz"]), ValueError,
         "unknown OKX channel(s) ['bookz']; choose from ['trades', 'tickers', 'books', 'books5']"),
        (lambda: okx.spec(["BTCUSDT"]), ValueError, "look like 'BTC-USDT'"),
        (lambda: okx.spec([]), ValueError, "no OKX symbol given"),
        (lambda: okx.spec(["BTC-USDT"], []), ValueError, "no OKX channel given"),
    ],
)
def test_bad_arguments_fail_at_spec_with_the_choices(build: Any, error: type, message: str,
                                                      ) -> None:
    with pytest.raises(error) as info:
        build()
    assert message in str(info.value)


@pytest.mark.parametrize("name", EXCHANGES)
def test_a_recording_rebuilds_the_adapters_spec(name: str, tmp_path: Path) -> None:
    spec = adapter(name).spec(url=URL)
    recording = Recording.from_frames(tmp_path / "r", [], spec=spec)
    rebuilt = recording.spec
    assert rebuilt is not None
    assert (rebuilt.url, rebuilt.channel_names, rebuilt.subscribe, rebuilt.description) == (
        spec.url, spec.channel_names, spec.subscribe, spec.description)
    assert rebuilt.origin == spec.origin


def test_every_model_documents_itself() -> None:
    for name in ADAPTERS:
        module = importlib.import_module(adapter(name).module)
        assert module.__doc__ and module.spec.__doc__
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == (
                    module.__name__):
                assert obj.__doc__, f"{name}.{obj.__name__}"


# Error reports in each exchange's documented shape, and the message the Feed must show.
ERROR_REPORTS = [
    (binance.spec(), '{"error":{"code":2,"msg":"Invalid request: unknown variant"},"id":1}',
     "Invalid request: unknown variant (code 2)"),
    (binance.spec(), '{"code":1,"msg":"Invalid value type: expected Boolean"}',
     "Invalid value type: expected Boolean (code 1)"),
    (coinbase.spec(api="exchange"),
     '{"type":"error","message":"Failed to subscribe","reason":"XYZ-USD is not a valid product"}',
     "Failed to subscribe: XYZ-USD is not a valid product"),
    (coinbase.spec(), '{"type":"error","message":"failure to subscribe"}',
     "failure to subscribe"),
    (kraken.spec(), '{"error":"Currency pair not supported XYZ/USD","method":"subscribe",'
     '"success":false,"time_in":"2023-01-01T00:00:00.000000Z"}',
     "Currency pair not supported XYZ/USD"),
    (kraken.spec(["XBT/USD"], api="v1"),
     '{"errorMessage":"Currency pair not in ISO 4217-A3 format XBTUSD",'
     '"event":"subscriptionStatus","pair":"XBTUSD","status":"error",'
     '"subscription":{"name":"ticker"}}', "Currency pair not in ISO 4217-A3 format XBTUSD"),
    (kraken.spec(["PI_XBTUSD"], ["book"], api="futures"),
     '{"event":"error","message":"Invalid product id"}', "Invalid product id"),
    (bybit.spec(), '{"success":false,"ret_msg":"error:handler not found,topic:x",'
     '"conn_id":"c1","op":"subscribe"}', "error:handler not found,topic:x"),
    (okx.spec(), '{"event":"error","code":"60012","msg":"Invalid request: {\\"op\\": \\"x\\"}",'
     '"connId":"a4d3ae55"}', 'Invalid request: {"op": "x"} (code 60012)'),
]


@pytest.mark.parametrize(("spec", "frame", "message"), ERROR_REPORTS,
                         ids=[f"{s.origin.adapter}-{i}" for i, (s, _, _) in
                              enumerate(ERROR_REPORTS)])  # type: ignore[union-attr]
def test_exchange_error_reports_are_counted_with_their_message(
    spec: Any, frame: str, message: str, tmp_path: Path,
) -> None:
    result = replay(Recording.from_frames(tmp_path / "r", [frame], spec=spec))
    assert result.stats["exchange_errors"] == 1
    assert result.stats["invalid"] == 0
    assert result.errors == [f"ExchangeError: {message}"]


class Times(BaseModel):
    ms: NsFromMs
    seconds: NsFromSeconds
    iso: NsFromIso


def test_times_become_exact_nanoseconds() -> None:
    times = Times(ms="1652459223003", seconds="1618678123.481570",
                  iso="2023-02-09T20:30:37.167359596Z")
    assert times.ms == 1_652_459_223_003_000_000
    assert times.seconds == 1_618_678_123_481_570_000
    assert times.iso == 1_675_974_637_167_359_596
    assert Times(ms=1, seconds=2, iso="1970-01-01T00:00:01Z").model_dump() == {
        "ms": 1_000_000, "seconds": 2_000_000_000, "iso": 1_000_000_000}
    with pytest.raises(ValueError, match="not an ISO 8601"):
        Times(ms=1, seconds=1, iso="yesterday")
    with pytest.raises(ValueError, match="not a number"):
        Times(ms="soon", seconds=1, iso="1970-01-01T00:00:01Z")
