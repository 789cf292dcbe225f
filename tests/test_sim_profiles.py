"""Each exchange adapter against the simulator speaking that exchange: the whole live stack."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import polars as pl
import pytest

from wsresearch import ExchangeError, Feed, HeartbeatConfig, Simulator
from wsresearch.testing import DIALECTS, Dialect, Market, Subscriber

from .conftest import eventually, quick

PROFILES = sorted(p for p in DIALECTS if p != "generic")  # the exchanges' dialects

# A subscription each exchange refuses, in its own request format, and a word of its reply.
BAD_SUBSCRIBE: dict[str, tuple[Any, str]] = {
    "binance": ({"method": "SUBSCRIBE", "params": ["nosuchusdt@trade"], "id": 9},
                "unknown stream 'nosuchusdt@trade'"),
    "binance-usdm": ({"method": "SUBSCRIBE", "params": ["btcusdt@nosuch"], "id": 9},
                     "unknown stream 'btcusdt@nosuch'"),
    "coinbase-exchange": ({"type": "subscribe", "product_ids": ["NOPE-USD"],
                           "channels": ["ticker"]}, "NOPE-USD is not a valid product"),
    "kraken-v1": ({"event": "subscribe", "pair": ["NOPE/USD"], "subscription": {"name": "trade"}},
                  "Currency pair not supported NOPE/USD"),
    "kraken-futures": ({"event": "subscribe", "feed": "trade", "product_ids": ["PI_NOPEUSD"]},
                       "Invalid product id"),
    "coinbase": ({"type": "subscribe", "product_ids": ["NOPE-USD"], "channel": "ticker"},
                 "NOPE-USD is not a valid product"),
    "kraken": ({"method": "subscribe", "params": {"channel": "trade", "symbol": ["NOPE/USD"]}},
               "Currency pair not supported NOPE/USD"),
    "bybit": ({"op": "subscribe", "args": ["publicTrade.NOPEUSDT"]},
              "handler not found,topic:publicTrade.NOPEUSDT"),
    "okx": ({"op": "subscribe", "args": [{"channel": "trades", "instId": "NOPE-USDT"}]},
            "instId:NOPE-USDT doesn't exist"),
}
APP_PING = {"kraken": '{"method":"ping"}', "bybit": '{"op":"ping"}', "okx": "ping"}


# Channels that need not have rows: an empty trade snapshot, the acks of Coinbase.
MAY_BE_EMPTY = {"trade_snapshot", "subscriptions"}
SEQUENCED = [p for p in PROFILES if any(
    c.sequence is not None
    for c in DIALECTS[p].spec("ws://127.0.0.1:1", DIALECTS[p].symbols).channels)]


def fast(profile: str) -> dict[str, float]:
    return {stream: rate * 10 for stream, rate in DIALECTS[profile].rates.items()}


@pytest.mark.parametrize("profile", PROFILES)
async def test_every_channel_arrives_valid_and_survives_a_disconnect(profile: str) -> None:
    async with Simulator(profile, seed=4, rates=fast(profile), keep_sent=True) as sim:
        feed = Feed(sim.spec(connection=quick()))
        channels = [c.name for c in feed.spec.channels if c.name not in MAY_BE_EMPTY]
        async with feed:
            await eventually(lambda: all(feed.store.rows(c) >= 1 for c in channels)
                             and feed.stats.ok >= 30, what=f"rows on every channel of {channels}")
            subscribes = list(sim.received)
            await sim.disconnect()
            await eventually(lambda: feed.generation == 2, what="the reconnect")
            await eventually(lambda: all(
                feed.frame(c).filter(generation=2).height >= 1 for c in channels),
                what="rows on every channel after resubscribing")
    stats = feed.stats
    assert stats.invalid == 0 and stats.exchange_errors == 0, feed.rejects[:3]
    # A new connection's messages are new, whatever they count. The one exception is
    # right: Coinbase's last_match on resubscribing repeats the last trade already seen.
    repeats = len(DIALECTS[profile].symbols) if profile == "coinbase-exchange" else 0
    assert stats.duplicates <= repeats
    assert stats.handler_errors == 0, list(feed.errors)
    def requests(sent: list[str]) -> list[Any]:
        return [json.loads(m) for m in sent if m not in APP_PING.values()]

    first, second = requests(subscribes), requests(sim.received[len(subscribes):])
    assert first == second == list(feed.spec.subscribe)  # sent again on the new connection


def test_every_profile_but_kraken_v1_tracks_sequences() -> None:
    assert sorted(set(PROFILES) - set(SEQUENCED)) == ["kraken-v1"]  # v1 has no numbers


@pytest.mark.parametrize("profile", SEQUENCED)
async def test_an_injected_sequence_gap_is_found(profile: str) -> None:
    dialect = DIALECTS[profile]
    async with Simulator(profile, seed=5, rates=fast(profile),
                         symbols=dialect.symbols[:1]) as sim:
        feed = Feed(sim.spec(connection=quick()))
        tracked = [c.name for c in feed.spec.channels if c.sequence is not None]
        async with feed:
            await eventually(lambda: feed.sequences.counts["in_order"] >= 5,
                             what=f"in-order messages on {tracked}")
            assert feed.stats.sequence_gaps == 0
            sim.sequence_gap(3)
            await eventually(lambda: feed.stats.sequence_gaps == 1, what="the gap")
            await eventually(lambda: feed.sequences.counts["in_order"] >= 10, what="more")
    assert feed.stats.sequence_missing == 3
    assert feed.gaps["missing"].to_list() == [3]


@pytest.mark.parametrize("profile", PROFILES)
async def test_app_level_pings_are_answered(profile: str) -> None:
    async with Simulator(profile, rates=fast(profile)) as sim:
        connection = quick(HeartbeatConfig(interval=0.05, timeout=1.0))
        async with Feed(sim.spec(connection=connection)) as feed:
            await eventually(lambda: feed.stats.pongs >= 3, what="WebSocket pongs")
            if profile in APP_PING:
                await eventually(lambda: sim.received.count(APP_PING[profile]) >= 3,
                                 what="app-level pings")
                control = feed.stats.control
                await eventually(lambda: feed.stats.control >= control + 2,
                                 what="their answers, counted as control")
    assert feed.stats.invalid == 0


@pytest.mark.parametrize("profile", PROFILES)
async def test_a_rejected_subscription_reaches_on_error_in_the_exchanges_words(
    profile: str,
) -> None:
    request, words = BAD_SUBSCRIBE[profile]
    errors: list[ExchangeError] = []
    async with Simulator(profile, rates=fast(profile)) as sim, Feed(
        sim.spec(connection=quick())
    ) as feed:
        feed.on_error(lambda e: errors.append(e) if isinstance(e, ExchangeError) else None)
        feed.send(request)
        await eventually(lambda: feed.stats.exchange_errors == 1, what="the error report")
    assert len(errors) == 1 and words in str(errors[0]), errors
    assert feed.stats.invalid == 0
    assert feed.state.name == "DISCONNECTED" and feed.stats.generation == 1


def played(profile: str, seed: int) -> list[str]:
    """What one connection of ``profile`` gets for its subscription and 60 events, no socket."""
    dialect = DIALECTS[profile]
    ticks = itertools.count(1_700_000_000_000_000_000, 1_000_003)
    market = Market(dialect.symbols, random.Random(seed), ticks.__next__)
    client = Subscriber(0)
    frames = []
    for message in dialect.spec("ws://127.0.0.1:1", dialect.symbols).subscribe:
        text = message if isinstance(message, str) else json.dumps(message)
        frames += dialect.on_request(client, text, market)
    streams = list(dialect.rates)
    for i in range(60):
        stream = streams[i % len(streams)]
        frames += dialect.render(client, stream, *market.event(stream))
    return frames


@pytest.mark.parametrize("profile", list(DIALECTS))
def test_every_dialect_is_sans_io_and_a_seed_gives_the_same_frames(profile: str) -> None:
    assert isinstance(DIALECTS[profile], Dialect) and DIALECTS[profile].name == profile
    first = played(profile, seed=1)
    assert len(first) > 30
    assert first == played(profile, seed=1) != played(profile, seed=2)


@pytest.mark.parametrize("profile", ["binance", "binance-usdm"])
def test_a_new_bookticker_subscriber_gets_the_top_once_the_book_changes(profile: str) -> None:
    """Binance pushes ``bookTicker`` when the book changes: a connection made after the last
    change gets nothing until the next one, so a reconnect never repeats an update id."""
    dialect, symbol = DIALECTS[profile], DIALECTS[profile].symbols[0]
    ticks = itertools.count(1_700_000_000_000_000_000, 1_000_003)
    market = Market([symbol], random.Random(3), ticks.__next__, consistent=True)
    request = json.dumps({"method": "SUBSCRIBE", "params": [f"{symbol}@bookTicker"], "id": 1})

    def subscribed(index: int) -> Subscriber:
        client = Subscriber(index)
        assert dialect.on_request(client, request, market) == ['{"result":null,"id":1}']
        return client

    def update_ids(*clients: Subscriber) -> list[list[int]]:
        """The ids of the tops each client is sent for three ticker events."""
        events = [market.event("ticker") for _ in range(3)]
        return [[json.loads(frame)["data"]["u"] for event in events
                 for frame in dialect.render(client, "ticker", *event)] for client in clients]

    first = subscribed(0)
    assert update_ids(first) == [[]]  # no change yet
    market.event("book")
    assert update_ids(first) == [[1]]
    second = subscribed(1)  # the reconnect, after the last change
    assert update_ids(first, second) == [[], []]
    market.event("book")
    assert update_ids(first, second) == [[2], [2]]


def test_unknown_profiles_and_streams_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown simulator profile 'ftx'"):
        Simulator("ftx")
    with pytest.raises(ValueError, match="binance streams"):
        Simulator("binance", rates={"order": 1.0})


async def test_a_book_snapshot_agrees_with_the_updates_before_it() -> None:
    async with Simulator("bybit", seed=6, rates={"book": 300.0, "trade": 0.1, "ticker": 0.1},
                         symbols=["BTCUSDT"]) as sim:
        spec = sim.spec(channels=["orderbook"], connection=quick())
        async with Feed(spec) as early:
            await eventually(lambda: early.store.rows("orderbook") >= 30, what="book updates")
            async with Feed(spec) as late:
                await eventually(lambda: late.store.rows("orderbook") >= 1, what="a snapshot")
            later = late.frame("orderbook").row(0, named=True)
            await eventually(lambda: early.frame("orderbook")["update_id"].max()
                             >= later["update_id"], what="the early feed to catch up")
    book = early.frame("orderbook")
    first = book.row(0, named=True)
    assert first["type"] == later["type"] == "snapshot"
    levels = {("b", p): q for p, q in first["bids"]} | {("a", p): q for p, q in first["asks"]}
    for row in book.slice(1).filter(pl.col("update_id") <= later["update_id"]).iter_rows(
            named=True):
        for side, changes in (("b", row["bids"]), ("a", row["asks"])):
            for price, size in changes:
                if size:
                    levels[(side, price)] = size
                else:
                    levels.pop((side, price), None)
    expected = {("b", p): q for p, q in later["bids"]} | {("a", p): q for p, q in later["asks"]}
    assert levels == expected
    assert early.stats.sequence_gaps == 0


async def test_resync_on_a_book_gap_reconnects_and_the_new_snapshot_restarts_the_count() -> None:
    async with Simulator("bybit", seed=8, rates={"book": 200.0, "trade": 1.0, "ticker": 1.0},
                         symbols=["BTCUSDT"]) as sim:
        spec = sim.spec(channels=["orderbook"], connection=quick()).with_resync()
        assert spec.channel("orderbook").resync_on_gap and spec.origin is not None
        async with Feed(spec) as feed:
            await eventually(lambda: feed.sequences.counts["in_order"] >= 10, what="deltas")
            sim.sequence_gap(2)
            await eventually(lambda: feed.generation == 2, what="the resync")
            await eventually(lambda: feed.frame("orderbook").filter(generation=2).height >= 10,
                             what="a fresh snapshot and deltas")
    book = feed.frame("orderbook").filter(generation=2)
    assert book["type"][0] == "snapshot"
    assert feed.stats.sequence_gaps == 1  # the new snapshot set a new baseline


def test_with_resync_refuses_channels_without_numbers() -> None:
    spec = DIALECTS["bybit"].spec("ws://127.0.0.1:1", ["BTCUSDT"])
    with pytest.raises(ValueError, match="'tickers' has no sequence numbers"):
        spec.with_resync("tickers")
    assert spec.with_resync("orderbook").channel("publicTrade").resync_on_gap is False
