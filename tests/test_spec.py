import pytest
from pydantic import BaseModel, ValidationError

from wsresearch import (
    Channel,
    ConnectionConfig,
    FeedSpec,
    HeartbeatConfig,
    QueueConfig,
    StreamConfig,
    UnknownChannelError,
)
from wsresearch.exchanges import generic


class Trade(BaseModel):
    id: int


def type_of(m: object) -> str | None:
    return m.get("type") if isinstance(m, dict) else None  # type: ignore[return-value]


def spec(**kw: object) -> FeedSpec:
    fields: dict[str, object] = {
        "url": "ws://127.0.0.1:9", "channels": [Channel(name="trade", model=Trade)],
        "type_of": type_of,
    }
    return FeedSpec(**(fields | kw))  # type: ignore[arg-type]


def test_the_url_lives_on_the_spec_alone() -> None:
    s = spec(connection=ConnectionConfig(heartbeat=HeartbeatConfig(interval=3)))
    assert s.url == "ws://127.0.0.1:9" and "url" not in type(s.connection).model_fields
    assert s.connection.heartbeat.interval == 3
    moved = s.with_url("ws://127.0.0.1:10")
    assert moved.url == "ws://127.0.0.1:10"
    assert moved.connection.heartbeat.interval == 3
    # The old place of the URL is ignored, with a warning that says where it went.
    with pytest.warns(DeprecationWarning, match="FeedSpec.url"):
        legacy = ConnectionConfig(url="ws://elsewhere:1")  # type: ignore[call-arg]
    assert spec(connection=legacy).url == "ws://127.0.0.1:9"
    with pytest.raises(ValidationError, match="expected ws:// or wss://"):
        spec(url="http://127.0.0.1:9")
    assert s.replace(queue=QueueConfig(max_size=5)).queue.max_size == 5


def test_channel_lookup_and_streams() -> None:
    s = spec(channels=[Channel(name="trade", model=Trade),
                       Channel(name="trade_v2", model=Trade, stream="trade")])
    assert s.channel("trade_v2").stream_name == "trade"
    assert s.streams == ["trade"]
    with pytest.raises(UnknownChannelError, match="trade_v2"):
        s.channel("quote")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"url": "https://x"}, "ws://"),
        ({"channels": []}, "channels"),
        ({"channels": [Channel(name="a", model=Trade), Channel(name="a", model=Trade)]},
         "unique"),
        ({"health": {"nope": StreamConfig(expected_interval=1, stale_threshold=2)}},
         "unknown stream"),
        ({"control": frozenset({"trade"})}, "both channels and control"),
        ({"dedupe_ttl": 0}, "dedupe_ttl"),
        ({"typo": 1}, "typo"),
    ],
)
def test_bad_specs_are_refused_naming_the_problem(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**changes)


def test_channel_model_must_not_clash_with_metadata_columns() -> None:
    class Bad(BaseModel):
        recv_wall_ns: int

    with pytest.raises(ValidationError, match=r"channel 'bad'.*clash"):
        Channel(name="bad", model=Bad)


def test_channel_explode_must_name_a_list_of_models() -> None:
    class Fill(BaseModel):
        price: float

    class Fills(BaseModel):
        symbol: str
        fills: list[Fill]

    assert Channel(name="fills", model=Fills, explode="fills").explode == "fills"
    with pytest.raises(ValidationError, match=r"list\[<model>\]"):
        Channel(name="fills", model=Fills, explode="symbol")


def test_generic_adapter_builds_a_spec() -> None:
    s = generic.spec(["BTC-USD"], ["trade", "order"], url="ws://127.0.0.1:1", api_key="k",
                     app_ping=True)
    assert s.channel_names == ["trade", "order"]
    assert s.health["order"].allow_silence
    assert s.subscribe == ({"op": "subscribe", "channels": ["trade", "order"],
                            "symbols": ["BTC-USD"]},)
    assert s.auth == {"op": "auth", "key": "k"}
    assert s.connection.heartbeat.ping_message == {"op": "ping"}
    with pytest.raises(ValueError, match="unknown generic channel"):
        generic.spec(channels=["candles"], url="ws://127.0.0.1:1")
    with pytest.raises(ValueError, match="pass url="):
        generic.spec()


def test_extractors_given_as_field_names_read_those_fields_and_say_so() -> None:
    from operator import attrgetter

    from wsresearch.exchanges import generic

    named = Channel(name="trade", model=generic.Trade, dedupe_key=("symbol", "trade_id"),
                    sequence="seq", sequence_key="symbol", exchange_time="ts")
    assert named.field_names == {"dedupe_key": ("symbol", "trade_id"), "sequence": ("seq",),
                                 "sequence_key": ("symbol",), "exchange_time": ("ts",)}
    trade = generic.Trade(symbol="BTC-USD", seq=3, trade_id=7, price=1.0, size=1.0,
                          side="buy", ts=11)
    assert named.dedupe_key is not None and named.sequence is not None
    assert named.dedupe_key(trade) == ("BTC-USD", 7)
    assert named.sequence(trade) == 3
    assert isinstance(named.exchange_time, attrgetter)  # no Python frame per message
    by_hand = Channel(name="trade", model=generic.Trade, dedupe_key=lambda m: m.trade_id)
    assert by_hand.field_names == {}  # a callable stays a callable


@pytest.mark.parametrize(("given", "message"), [
    ({"dedupe_key": ("symbol", "nope")}, r"dedupe_key names \['nope'\], not fields of Trade"),
    ({"sequence": ()}, "field names must be non-empty strings"),
    ({"exchange_time": ("ts", 3)}, "field names must be non-empty strings"),
    ({"field_names": {"sequence": ("seq",)}}, "field_names is derived"),
])
def test_field_names_that_are_not_the_model_s_are_refused(given: dict[str, object],
                                                          message: str) -> None:
    from wsresearch.exchanges import generic

    with pytest.raises(ValueError, match=message):
        Channel(name="trade", model=generic.Trade, **given)  # type: ignore[arg-type]


def test_every_adapter_declares_its_plain_keys_as_field_names() -> None:
    from wsresearch.exchanges import binance

    spec = binance.spec(["btcusdt"], ["trade", "depth"])
    assert spec.channel("trade").field_names["dedupe_key"] == ("symbol", "trade_id")
    assert spec.channel("depth").field_names["sequence"] == (  # spot: U..u, a range
        "first_update_id", "final_update_id")
    usdm = binance.spec(["btcusdt"], ["depth"], market="usdm").channel("depth")
    assert usdm.field_names["sequence"] == ("prev_final_update_id", "final_update_id")
    assert usdm.sequence_chained  # pu..u: a chain
    assert not spec.channel("depth").sequence_chained


def test_a_sequence_given_as_two_field_names_is_a_range() -> None:
    from wsresearch import Seq
    from wsresearch.exchanges import generic

    ranged = Channel(name="trade", model=generic.Trade, sequence=("seq", "trade_id"))
    trade = generic.Trade(symbol="BTC-USD", seq=3, trade_id=7, price=1.0, size=1.0,
                          side="buy", ts=11)
    assert ranged.sequence is not None and ranged.sequence(trade) == Seq(3, 7)
    assert ranged.field_names == {"sequence": ("seq", "trade_id")}
    with pytest.raises(ValueError, match=r"one field name .* or two"):
        Channel(name="trade", model=generic.Trade, sequence=("seq", "trade_id", "ts"))


def test_a_sequence_given_as_a_chain_follows_the_last_number_named() -> None:
    from wsresearch import Seq
    from wsresearch.exchanges import generic
    from wsresearch.sequence import Chain

    chained = Channel(name="trade", model=generic.Trade, sequence=Chain("seq", "trade_id"))
    trade = generic.Trade(symbol="BTC-USD", seq=3, trade_id=7, price=1.0, size=1.0,
                          side="buy", ts=11)
    assert chained.sequence is not None and chained.sequence(trade) == Seq(4, 7)
    assert chained.field_names == {"sequence": ("seq", "trade_id")}
    assert chained.sequence_chained and repr(chained.sequence) == "sequence chain"
    no_number = generic.Trade.model_construct(seq=None, trade_id=7)  # no previous number
    assert chained.sequence(no_number) is None
    with pytest.raises(ValueError, match="a Chain names two fields"):
        Channel(name="trade", model=generic.Trade, sequence=Chain("", "trade_id"))
    with pytest.raises(ValueError, match=r"names \['nope'\], not fields of Trade"):
        Channel(name="trade", model=generic.Trade, sequence=Chain("nope", "trade_id"))


def test_each_declared_sequence_form_gives_its_bounds_over_columns() -> None:
    import polars as pl

    from wsresearch.exchanges import generic
    from wsresearch.sequence import Chain

    rows = pl.DataFrame({"seq": [3, 7], "trade_id": [7, 9]})
    for sequence, bounds in (("seq", [(3, 3), (7, 7)]), (("seq", "trade_id"), [(3, 7), (7, 9)]),
                             (Chain("seq", "trade_id"), [(4, 7), (8, 9)])):
        channel = Channel(name="trade", model=generic.Trade, sequence=sequence)
        first, last = channel.sequence_bounds()
        assert rows.select(first.alias("f"), last.alias("l")).rows() == bounds
    with pytest.raises(ValueError, match="not declared by field names"):
        Channel(name="trade", model=generic.Trade, sequence=lambda m: m.seq).sequence_bounds()


def test_field_names_may_come_as_a_list() -> None:
    from wsresearch.exchanges import generic

    named = Channel(name="trade", model=generic.Trade,
                    dedupe_key=["symbol", "trade_id"])  # type: ignore[arg-type]
    assert named.field_names == {"dedupe_key": ("symbol", "trade_id")}
