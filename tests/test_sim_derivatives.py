"""The simulator's perpetual contracts: mark prices, funding and liquidations, live and replayed.

Binance USD-M (``markPrice``, ``forceOrder``), OKX swaps (``mark-price``, ``funding-rate``,
``open-interest``, ``index-tickers``, ``liquidation-orders``) and Bybit linear (``tickers``,
``allLiquidation``), each through its own adapter on loopback; frames in the shapes of the
exchanges' documented examples (``data/*/docs_examples_*.jsonl``); and drawn apart from the
streams that were there before, whose frames stay as they were.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import ExchangeError, Feed, Simulator, replay
from wsresearch.testing import DIALECTS, Market, Subscriber
from wsresearch.testing.sim.market import FUNDING_INTERVAL_NS, MAX_FUNDING_RATE

from .conftest import eventually, quick

DATA = Path(__file__).resolve().parent.parent / "data"
OKX_SWAPS = ["BTC-USDT-SWAP", "ETH-USDT-SWAP"]

# Each profile's symbols (None: its own) and channels: a trade channel, then its derivatives'.
CASES: dict[str, tuple[list[str] | None, list[str]]] = {
    "binance-usdm": (None, ["trade", "markPrice", "forceOrder"]),
    "okx": (OKX_SWAPS, ["trades", "mark-price", "funding-rate", "open-interest",
                        "liquidation-orders"]),
    "bybit": (None, ["publicTrade", "tickers", "allLiquidation"]),
}
RATES = {"trade": 40.0, "ticker": 20.0, "mark": 40.0, "liquidation": 20.0}
BAND = 0.01
"""How far a mark, index or liquidation price may be from the last trade, relatively."""


def last_trade(rows: pl.DataFrame, trades: pl.DataFrame) -> pl.DataFrame:
    """``rows`` with ``trade``, the price of their symbol's last trade received before them."""
    prices = trades.select("symbol", "local_time", trade="price").sort("local_time")
    return rows.sort("local_time").join_asof(prices, on="local_time", by="symbol",
                                             check_sortedness=False)  # sorted just above


def near_trades(rows: pl.DataFrame, trades: pl.DataFrame, column: str) -> None:
    """Every non-null ``column`` of ``rows`` is within :data:`BAND` of the last trade."""
    priced = last_trade(rows.filter(pl.col(column).is_not_null()), trades).drop_nulls("trade")
    assert priced.height >= 3, column
    off = priced.filter((pl.col(column) / pl.col("trade") - 1).abs() >= BAND)
    assert off.is_empty(), off.select("symbol", column, "trade")


def check_funding(tickers: pl.DataFrame, symbols: Iterable[str]) -> None:
    """Funding rates small and slow, per symbol; funding times the next 8-hour mark."""
    funded = tickers.filter(pl.col("funding_rate").is_not_null())
    assert set(funded["symbol"]) == set(symbols)
    assert funded["funding_rate"].abs().max() <= MAX_FUNDING_RATE  # type: ignore[operator]
    # Slow: each step of the walk is small, however long the feed ran.
    steps = funded.sort("exchange_time").group_by("symbol").agg(
        step=pl.col("funding_rate").diff().abs().max())
    assert steps["step"].max() < 2e-5  # type: ignore[operator]
    times = funded.select(funding=pl.col("funding_time").dt.epoch("ns"),
                          now=pl.col("exchange_time").dt.epoch("ns"))
    assert times.null_count().sum_horizontal().item() == 0
    assert (times["funding"] % FUNDING_INTERVAL_NS == 0).all()
    ahead = times["funding"] - times["now"]
    assert ahead.min() > 0 and ahead.max() <= FUNDING_INTERVAL_NS  # type: ignore[operator]


@pytest.mark.parametrize("profile", CASES)
async def test_marks_funding_and_liquidations_arrive_valid_sane_and_replay_alike(
        profile: str, tmp_path: Path) -> None:
    symbols, channels = CASES[profile]
    async with Simulator(profile, seed=3, rates=RATES, symbols=symbols) as sim:
        spec = sim.spec(channels=channels, connection=quick())
        async with Feed(spec, record_to=tmp_path / "rec") as feed:
            await eventually(lambda: all(feed.store.rows(c) >= 8 for c in channels),
                             what=f"rows on every channel of {channels}")
    assert feed.stats.invalid == 0 and feed.stats.exchange_errors == 0, feed.rejects[:3]
    assert feed.rejects == [] and feed.stats.duplicates == 0
    trades, tickers = feed.normalized("trades"), feed.normalized("derivative_ticker")
    # OKX's index tickers are of the index (BTC-USDT), not the swap: see the test below.
    for column in ("mark_price",) if profile == "okx" else ("mark_price", "index_price"):
        near_trades(tickers, trades, column)
    check_funding(tickers, [s.upper() for s in symbols or DIALECTS[profile].symbols])
    if profile != "binance-usdm":  # Binance's mark price stream has no open interest
        assert tickers["open_interest"].drop_nulls().min() > 0  # type: ignore[operator]
    liquidations = feed.normalized("liquidations")
    assert liquidations.height >= 8
    assert set(liquidations["side"]) <= {"buy", "sell"} and liquidations["amount"].min() > 0  # type: ignore[operator]
    near_trades(liquidations, trades, "price")
    replayed = replay(tmp_path / "rec")
    for kind in ("derivative_ticker", "liquidations"):
        assert_frame_equal(replayed.normalized(kind), feed.normalized(kind))


async def test_spot_binance_still_refuses_mark_prices() -> None:
    errors: list[ExchangeError] = []
    async with Simulator("binance", rates={"trade": 20.0}) as sim, Feed(
            sim.spec(channels=["trade"], connection=quick())) as feed:
        feed.on_error(lambda e: errors.append(e) if isinstance(e, ExchangeError) else None)
        feed.send({"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s"], "id": 9})
        await eventually(lambda: feed.stats.exchange_errors == 1, what="the error report")
    assert len(errors) == 1 and "unknown stream 'btcusdt@markPrice@1s'" in str(errors[0])


def subscribed(profile: str, market: Market, requests: Iterable[Any]) -> tuple[Subscriber,
                                                                                  list[str]]:
    """A connection of ``profile`` that sent ``requests``, and the replies it got."""
    client, replies = Subscriber(0), []
    for request in requests:
        text = request if isinstance(request, str) else json.dumps(request)
        replies += DIALECTS[profile].on_request(client, text, market)
    return client, replies


@pytest.mark.parametrize(("profile", "request_", "words"), [
    ("binance", {"method": "SUBSCRIBE", "params": ["btcusdt@trade", "btcusdt@forceOrder"],
                 "id": 1}, "unknown stream 'btcusdt@forceOrder'"),
    ("binance-usdm", {"method": "SUBSCRIBE", "params": ["nosuchusdt@markPrice"], "id": 1},
     "unknown stream 'nosuchusdt@markPrice'"),
    ("okx", {"op": "subscribe", "args": [{"channel": "funding-rate", "instId": "BTC-USDT"}]},
     "channel:funding-rate,instId:BTC-USDT doesn't exist"),
    ("okx", {"op": "subscribe", "args": [{"channel": "liquidation-orders", "instType": "SWAP"}]},
     "channel:liquidation-orders,instType:SWAP doesn't exist"),
    ("bybit", {"op": "subscribe", "args": ["allLiquidation.NOPEUSDT"]},
     "handler not found,topic:allLiquidation.NOPEUSDT"),
], ids=["binance-spot", "binance-usdm", "okx-spot-funding", "okx-no-swaps", "bybit"])
def test_derivative_channels_are_refused_where_the_market_has_no_such_contract(
        profile: str, request_: dict[str, Any], words: str) -> None:
    market = Market(DIALECTS[profile].symbols, random.Random(0), lambda: 0)
    _, replies = subscribed(profile, market, [request_])
    assert len(replies) == 1 and words in replies[0], replies


def play(profile: str, seed: int, streams: Iterable[str],
         clock: Callable[[], int] | None = None) -> list[tuple[str, list[str]]]:
    """``(stream, frames)`` of each event of ``streams`` for one connection of ``profile``.

    The connection subscribed to the channels of :data:`CASES`, and the old ones.
    """
    dialect, (symbols, channels) = DIALECTS[profile], CASES[profile]
    symbols = symbols or list(dialect.symbols)
    ticks = itertools.count(1_700_000_000_000_000_000, 1_000_003)
    market = Market(symbols, random.Random(seed), clock or ticks.__next__, consistent=True)
    old = dialect.spec("ws://127.0.0.1:1", symbols).channels
    spec = dialect.spec("ws://127.0.0.1:1", symbols, channels=[
        *channels, *(c.name for c in old if c.name not in channels)])
    client, replies = subscribed(profile, market, spec.subscribe)
    return [("subscribe", replies)] + [
        (stream, dialect.render(client, stream, *market.event(stream))) for stream in streams]


OLD = ("trade", "ticker", "book") * 30
MIXED = ("trade", "mark", "ticker", "liquidation", "book", "mark") * 30


@pytest.mark.parametrize("profile", CASES)
def test_a_seed_gives_the_same_derivative_frames(profile: str) -> None:
    first = play(profile, 1, MIXED)
    assert first == play(profile, 1, MIXED) != play(profile, 2, MIXED)
    sent = {stream for stream, frames in first if frames}
    assert {"mark", "liquidation"} <= sent


@pytest.mark.parametrize("profile", CASES)
def test_derivative_events_leave_the_other_streams_frames_as_they_were(profile: str) -> None:
    # One time for every event: the derivatives' events do not move the others' clock.
    mixed = [(s, f) for s, f in play(profile, 7, MIXED, clock=lambda: 1_700_000_000 * 10**9)
             if s not in ("mark", "liquidation")]
    alone = play(profile, 7, OLD, clock=lambda: 1_700_000_000 * 10**9)
    assert mixed == alone


def shape(value: Any) -> Any:
    """A JSON value's keys, in order, and leaf types: what two messages of one kind share."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return type(value).__name__


def documented(path: str) -> Any:
    return json.loads((DATA / path).read_text("utf-8").splitlines()[0])


def sent(profile: str, marker: str) -> Any:
    """The first market frame of :func:`play` that has ``marker`` in it, as JSON."""
    return json.loads(next(frame for stream, frames in play(profile, 1, MIXED)
                           if stream != "subscribe" for frame in frames if marker in frame))


@pytest.mark.parametrize(("profile", "marker", "example"), [
    ("binance-usdm", "markPriceUpdate", "binance/docs_examples_markPrice.jsonl"),
    ("binance-usdm", '"forceOrder"', "binance/docs_examples_forceOrder.jsonl"),
    ("okx", '"funding-rate"', "okx/docs_examples_funding-rate.jsonl"),
    ("okx", '"mark-price"', "okx/docs_examples_mark-price.jsonl"),
    ("okx", '"open-interest"', "okx/docs_examples_open-interest.jsonl"),
    ("okx", '"liquidation-orders"', "okx/docs_examples_liquidation-orders.jsonl"),
    ("bybit", "allLiquidation", "bybit/docs_examples_allLiquidation.jsonl"),
])
def test_frames_have_the_documented_shape(profile: str, marker: str, example: str) -> None:
    frame, expected = sent(profile, marker), documented(example)
    if profile.startswith("binance"):  # the examples are the payloads, unwrapped
        assert list(frame) == ["stream", "data"]
        frame = frame["data"]
    expected.pop("id", None)  # the docs' example carries an "id" the adapter never asks for
    assert shape(frame) == shape(expected)


def test_okx_index_tickers_are_of_the_swaps_index() -> None:
    market = Market(OKX_SWAPS, random.Random(1), lambda: 1_700_000_000 * 10**9)
    request = {"op": "subscribe", "args": [{"channel": "index-tickers", "instId": "BTC-USDT"},
                                           {"channel": "index-tickers",
                                            "instId": "BTC-USDT-SWAP"}]}
    client, replies = subscribed("okx", market, [request])
    assert [json.loads(r)["event"] for r in replies] == ["subscribe", "error"]
    frames = [f for _ in range(20) for f in DIALECTS["okx"].render(
        client, "mark", *market.event("mark"))]
    assert frames and {json.loads(f)["arg"]["instId"] for f in frames} == {"BTC-USDT"}
    expected = documented("okx/docs_examples_index-tickers.jsonl")
    assert shape(json.loads(frames[0])) == shape(expected)


def test_bybit_marks_are_ticker_deltas_of_the_documented_fields() -> None:
    delta, snapshot = sent("bybit", '"delta"'), documented("bybit/docs_examples_tickers.jsonl")
    assert [key for key, _ in shape(delta)] == [key for key, _ in shape(snapshot)]
    documented_fields = dict(shape(snapshot["data"]))
    assert {key: documented_fields.get(key) for key, _ in shape(delta["data"])} == dict(
        shape(delta["data"]))
    assert set(delta["data"]) == {"symbol", "markPrice", "indexPrice", "openInterest",
                                  "openInterestValue", "nextFundingTime", "fundingRate"}


def test_okx_swaps_trade_and_liquidate_in_whole_contracts() -> None:
    # OKX sends a swap's sizes in contracts (BTC-USDT-SWAP: 0.01 BTC each), not in BTC.
    sizes = [item["sz"] if "sz" in item else detail["sz"]
             for stream, frames in play("okx", 1, MIXED) if stream in ("trade", "liquidation")
             for frame in frames for item in json.loads(frame)["data"]
             for detail in item.get("details", [item])]
    assert len(sizes) >= 30 and all(size.isdigit() and int(size) >= 1 for size in sizes)


async def test_a_bybit_ticker_silence_quiets_its_channel_marks_and_all() -> None:
    # Bybit sends its marks as deltas on the tickers channel: a silence of the ticker
    # stream must quiet them too, or the channel a health monitor watches never goes quiet.
    rates = {"trade": 100.0, "ticker": 20.0, "book": 1.0, "mark": 20.0, "liquidation": 0.01}
    async with Simulator("bybit", seed=2, rates=rates) as sim:
        spec = sim.spec(channels=["publicTrade", "tickers"], connection=quick())
        async with Feed(spec) as feed:
            await eventually(lambda: feed.store.rows("tickers") >= 10, what="tickers")
            sim.silence("ticker", 3.0)
            await eventually(lambda: feed.store.rows("publicTrade") >= 1, what="a trade")
            quiet, trades = feed.store.rows("tickers"), feed.store.rows("publicTrade")
            # Well inside the silence: 30 more trades at 100 a second.
            await eventually(lambda: feed.store.rows("publicTrade") >= trades + 30,
                             what="30 more trades")
            assert feed.store.rows("tickers") == quiet


async def test_okx_swap_books_and_quotes_are_in_whole_contracts_and_check_out() -> None:
    # The levels, the checksum over them and the ticker's sizes are all in contracts.
    async with Simulator("okx", seed=4, rates=RATES | {"book": 100.0},
                         symbols=OKX_SWAPS) as sim:
        spec = sim.spec(channels=["tickers", "books"], connection=quick())
        async with Feed(spec) as feed:
            def checked() -> bool:
                books = feed.pipeline.books
                return books is not None and all(
                    s in books.books and books.books[s].valid
                    and books.books[s].stats.checksums_ok >= 5 for s in OKX_SWAPS)

            await eventually(checked, what="checked swap books")
            books = {s: feed.book(s) for s in OKX_SWAPS}
            tickers = feed.frame("tickers")
    assert feed.stats.invalid == 0
    for book in books.values():
        assert book.stats.checksums_failed == 0
        sizes = [amount for side in ("bid", "ask") for _, amount in book.side(side)]
        assert sizes and all(amount >= 1 and amount.is_integer() for amount in sizes)
    quoted = tickers["ask_size"].append(tickers["bid_size"])
    assert quoted.len() and (quoted >= 1).all() and (quoted == quoted.round()).all()
