import json
from collections.abc import Hashable
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, model_validator

from wsresearch import Channel, FeedSpec, Recording, VirtualClock, by_field
from wsresearch.lowlevel import MessageParser
from wsresearch.parser import OUTCOMES, REJECT_REASONS

from .conftest import SESSION, sized


class Trade(BaseModel):
    symbol: str
    id: int
    price: float


def type_of(message: object) -> str | None:
    return message.get("type") if isinstance(message, dict) else None  # type: ignore[return-value]


def trade(n: int, symbol: str = "BTC") -> str:
    return json.dumps({"type": "trade", "symbol": symbol, "id": n, "price": "1.5"})


def make(clock: VirtualClock | None = None, **kw: object) -> MessageParser:
    parser = MessageParser(type_of, clock=clock or VirtualClock(), **kw)  # type: ignore[arg-type]
    parser.register("trade", Trade, dedupe_key=lambda t: (t.symbol, t.id))
    parser.count_as_control(["pong"])
    return parser


def boom_key(trade: Trade) -> int:
    if trade.id < 0:
        raise RuntimeError("key broke")
    return trade.id


def test_every_outcome_is_counted_and_rejects_are_kept() -> None:
    parser = MessageParser(type_of, clock=VirtualClock())
    parser.register("trade", Trade, dedupe_key=lambda t: t.id)
    parser.register("boom", Trade, dedupe_key=boom_key)
    parser.count_as_control(["pong"])
    parser.count_texts_as_control(["pong"])
    parser.count_as_exchange_error(["error"])
    frames = {
        trade(1): "ok",
        trade(2).encode(): "ok",  # a binary frame holding UTF-8 JSON is parsed as text
        '{"type":"pong"}': "control",
        "pong": "control",
        '{"type":"error","msg":"no such symbol"}': "exchange_error",
        b"\xff\xfe": "invalid_utf8",
        "{nope": "invalid_json",
        '{"type":"mystery"}': "unknown_type",
        "[1,2]": "unknown_type",
        '{"type":"trade","symbol":"BTC","id":"x","price":1}': "schema_error",
        '{"type":"boom","symbol":"B","id":-1,"price":1}': "handler_error",
    }
    for raw, expected in frames.items():
        assert parser.parse(raw).status == expected, raw
    assert parser.parse(trade(1)).status == "duplicate"
    assert parser.counts == {"ok": 2, "duplicate": 1, "control": 2, "exchange_error": 1,
                             "invalid_utf8": 1, "invalid_json": 1, "unknown_type": 2,
                             "schema_error": 1, "handler_error": 1}
    assert parser.rejected == 6
    assert [r.reason for r in parser.rejects] == [
        "invalid_utf8", "invalid_json", "unknown_type", "unknown_type", "schema_error",
        "handler_error",
    ]
    unknown, shapeless = parser.rejects[2], parser.rejects[3]
    assert unknown.detail == "no model registered for type 'mystery'"
    assert shapeless.detail.startswith("the spec's type_of finds no type in it")  # "[1,2]"
    schema, key = parser.rejects[4], parser.rejects[5]
    assert schema.raw.startswith('{"type":"trade"') and "id" in schema.detail
    assert schema.channel == "trade"
    assert (key.channel, key.detail) == ("boom", "dedupe_key raised RuntimeError: key broke")


def test_outcomes_carry_the_type_name_and_what_the_caller_needs() -> None:
    parser = make()
    parser.count_as_exchange_error(["error"])
    outcome = parser.parse(trade(7))
    assert outcome.ok and outcome.type_name == "trade"
    assert outcome.message == Trade(symbol="BTC", id=7, price=1.5)
    assert tuple(parser.parse('{"type":"pong"}')) == ("control", "pong", {"type": "pong"})
    assert tuple(parser.parse('{"type":"error","msg":"x"}')) == (
        "exchange_error", "error", {"type": "error", "msg": "x"})
    assert tuple(parser.parse('{"type":"quote"}')) == ("unknown_type", None, None)
    assert parser.channels == ["trade"]


def test_a_schema_error_names_each_failing_field_in_one_line() -> None:
    parser = make()
    parser.parse('{"type":"trade","symbol":1,"id":"x","price":"y"}')
    assert parser.rejects[-1].detail == (
        "symbol: Input should be a valid string; id: Input should be a valid integer, unable "
        "to parse string as an integer; price: Input should be a valid number, unable to "
        "parse string as a number")
    parser.parse('{"type":"trade"}')
    assert parser.rejects[-1].detail.count("Field required") == 3


def test_dedupe_entries_expire_after_the_ttl_on_the_injected_clock() -> None:
    clock = VirtualClock()
    parser = make(clock, dedupe_ttl=10.0)
    assert parser.parse(trade(1)).status == "ok"
    clock.advance(9.999)
    assert parser.parse(trade(1)).status == "duplicate"
    clock.advance(0.002)  # 10.001 s after the key was stored
    assert parser.parse(trade(1)).status == "ok"
    assert (parser.counts["ok"], parser.counts["duplicate"]) == (2, 1)


def test_dedupe_cache_is_bounded_by_size_per_channel() -> None:
    parser = make(max_dedupe_size=3)
    parser.register("quote", Quote, dedupe_key=lambda q: q.symbol)
    for n in range(5):
        parser.parse(trade(n))
    assert parser.parse(quote("A")).status == "ok"  # trades do not push out quote keys
    assert parser.parse(trade(0)).status == "ok"  # pushed out by newer keys
    assert parser.parse(trade(4)).status == "duplicate"
    assert parser.parse(quote("A")).status == "duplicate"


def test_reject_buffer_is_bounded_and_raw_text_truncated() -> None:
    parser = make(max_rejects=3)
    for n in range(10):
        parser.parse(f"bad {n}")
    assert [r.raw for r in parser.rejects] == ["bad 7", "bad 8", "bad 9"]
    parser.parse("x" * 100_000)
    assert len(parser.rejects[-1].raw) < 5000
    assert parser.counts["invalid_json"] == 11


def test_type_of_that_raises_is_an_unknown_type() -> None:
    parser = MessageParser(lambda m: m["type"], clock=VirtualClock())
    parser.register("trade", Trade)
    assert parser.parse("[1]").status == "unknown_type"
    assert "type_of raised TypeError" in parser.rejects[-1].detail
    assert parser.parse('{"type": ["not", "hashable"]}').status == "unknown_type"


def test_registration_mistakes_are_refused() -> None:
    parser = make()
    with pytest.raises(ValueError, match="already registered"):
        parser.register("trade", Trade)
    with pytest.raises(ValueError, match="already registered"):
        parser.register("pong", Trade)
    with pytest.raises(TypeError, match="pydantic"):
        parser.register("x", dict)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="registered with a model"):
        parser.count_as_control(["trade"])
    parser.count_as_exchange_error(["error"])
    with pytest.raises(ValueError, match="already registered or control"):
        parser.count_as_exchange_error(["pong"])
    with pytest.raises(ValueError, match="registered with a model or as an error"):
        parser.count_as_control(["error"])
    with pytest.raises(ValueError, match="already registered"):
        parser.register("error", Trade)
    with pytest.raises(ValueError, match="dedupe_ttl"):
        MessageParser(type_of, dedupe_ttl=0)
    with pytest.raises(ValueError, match="max_dedupe_size"):
        MessageParser(type_of, max_dedupe_size=0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["type", "symbol", "id", "price", "x"]), children,
                      max_size=5),
    max_leaves=20,
)


@settings(max_examples=sized(120, 300), deadline=None)
@given(
    frame=st.one_of(
        st.text(),
        st.binary(),
        json_values.map(json.dumps),
        st.builds(
            lambda v: json.dumps({"type": "trade", "symbol": v, "id": v, "price": v}),
            json_values,
        ),
    )
)
def test_parser_never_raises_and_counts_every_frame(frame: str | bytes) -> None:
    parser = make()
    outcome = parser.parse(frame)
    assert outcome.status in OUTCOMES
    assert sum(parser.counts.values()) == 1
    if outcome.status in REJECT_REASONS:
        assert parser.rejects[-1].reason == outcome.status


class Quote(BaseModel):
    symbol: str
    bid: float
    ask: float


def quote(symbol: str) -> str:
    return json.dumps({"type": "quote", "symbol": symbol, "bid": 1, "ask": 2})


def both_routings() -> tuple[MessageParser, MessageParser]:
    """The same parser twice: routed by a plain function, and by ``by_field``."""
    parsers = []
    for route in (type_of, by_field("type")):
        parser = MessageParser(route, clock=VirtualClock())
        parser.register("trade", Trade, dedupe_key=lambda t: (t.symbol, t.id))
        parser.register("quote", Quote)
        parser.count_as_control(["pong"])
        parsers.append(parser)
    assert not parsers[0].single_call and parsers[1].single_call
    return parsers[0], parsers[1]


def outcome_of(parser: MessageParser, frame: str | bytes) -> tuple[object, ...]:
    status, kind, message = parser.parse(frame)
    dumped = message if message is None or isinstance(message, dict) else (
        type(message).__name__, message.model_dump())
    return status, kind, dumped


def test_by_field_gives_the_outcomes_of_the_equivalent_function() -> None:
    edge_cases: list[str | bytes] = [
        trade(1), trade(1), trade(2).encode(), '{"type":"pong"}', b"\xff", "{nope", "",
        '{"type":"mystery"}', '{"type":5}', '{"type":null}', '{"type":["trade"]}', "[1,2]",
        '"trade"', '{"symbol":"B","id":1,"price":1}',
        '{"type":"trade","symbol":"BTC","id":"x","price":1}',
        '{"type":"quote","symbol":"E","bid":"1.5","ask":2}',
        '{"type":"quote","symbol":"E","bid":"1.5"}',
        '{"type":"trade","symbol":"BTC","id":3,"price":"1e400"}',
        '{"type":"trade","symbol":"BTC","id":4,"price":1,"extra":{"nested":[1]}}',
    ]
    recorded = Recording.open(SESSION).events().filter(pl.col("kind") == "frame")["data"]
    plain, fast = both_routings()
    for frame in [*edge_cases, *recorded.to_list()]:
        assert outcome_of(plain, frame) == outcome_of(fast, frame), frame
    assert plain.counts == fast.counts
    assert [(r.reason, r.raw, r.detail, r.channel) for r in plain.rejects] == [
        (r.reason, r.raw, r.detail, r.channel) for r in fast.rejects
    ]


@settings(max_examples=200, deadline=None)
@given(
    frame=st.one_of(
        json_values.map(json.dumps),
        st.builds(
            lambda t, v: json.dumps({"type": t, "symbol": v, "id": v, "price": v, "bid": v,
                                     "ask": v}),
            st.sampled_from(["trade", "quote", "pong", "x"]),
            json_values,
        ),
    )
)
def test_by_field_agrees_with_the_function_on_any_json(frame: str) -> None:
    plain, fast = both_routings()
    assert outcome_of(plain, frame) == outcome_of(fast, frame)


def test_by_field_falls_back_when_models_are_shared_or_the_field_is_bad() -> None:
    parser = MessageParser(by_field("type"), clock=VirtualClock())
    parser.register("trade", Trade)
    assert parser.single_call
    parser.register("trade2", Trade)  # one model for two types: the class cannot name the route
    assert not parser.single_call
    assert parser.parse(trade(1)).type_name == "trade"
    with pytest.raises(ValueError, match="non-empty string"):
        by_field("")
    assert repr(by_field("e")) == "by_field('e')" and by_field("e") == by_field("e")


class Fussy(BaseModel):
    type: str
    n: int

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("n") == 13:
            raise TypeError("a validator that trips on odd input")
        return value


@pytest.mark.parametrize("type_of", [by_field("type"), lambda m: m.get("type")])
def test_a_model_validator_that_raises_is_a_schema_error_not_a_crash(type_of: Any) -> None:
    parser = MessageParser(type_of)
    parser.register("x", Fussy)
    assert parser.parse('{"type":"x","n":1}').status == "ok"
    outcome = parser.parse('{"type":"x","n":13}')
    assert outcome.status == "schema_error"
    assert parser.rejects[-1].detail == (
        "model validator raised TypeError: a validator that trips on odd input")


def batch_parsers() -> tuple[MessageParser, MessageParser]:
    """Two identical by_field parsers with a route without de-dup, an error type and a bad key."""
    parsers = []
    for _ in range(2):
        parser = MessageParser(by_field("type"), clock=VirtualClock(), max_dedupe_size=3,
                               dedupe_ttl=1.0)
        parser.register("trade", Trade, dedupe_key=lambda t: (t.symbol, t.id))
        parser.register("quote", Quote)
        parser.register("odd", Sparse, dedupe_key=lambda s: {"unhashable": s.id})
        parser.count_as_control(["pong"])
        parser.count_as_exchange_error(["error"])
        parsers.append(parser)
    return parsers[0], parsers[1]


class Sparse(BaseModel):
    id: int


BATCH_FRAMES: list[str | bytes] = [
    trade(1), trade(1), trade(2).encode(), trade(3), trade(4), trade(5), trade(1),
    '{"type":"pong"}', b"\xff", "{nope", '{"type":"error","msg":"bad"}',
    '{"type":"quote","symbol":"E","bid":"1.5","ask":2}',
    '{"type":"quote","symbol":"E","bid":"-1","ask":2}',
    '{"type":"odd","id":1}',  # the de-dup key cannot be hashed
    '{"type":"trade","symbol":"BTC","id":"x","price":1}', "[1]", "",
]


@settings(max_examples=200, deadline=None)
@given(
    order=st.lists(st.sampled_from(range(len(BATCH_FRAMES))), max_size=40),
    gaps=st.lists(st.integers(0, 800_000_000), min_size=40, max_size=40),
)
def test_parse_batch_gives_the_outcomes_of_parse_one_at_a_time(
    order: list[int], gaps: list[int]
) -> None:
    one, batch = batch_parsers()
    frames = [BATCH_FRAMES[i] for i in order]
    times = [sum(gaps[: n + 1]) for n in range(len(frames))]
    singles = [one.parse(frame, now) for frame, now in zip(frames, times, strict=True)]
    together = batch.parse_batch(frames, times)
    assert [(s, k, None if m is None else repr(m)) for s, k, m in singles] == [
        (s, k, None if m is None else repr(m)) for s, k, m in together
    ]
    assert one.counts == batch.counts
    assert [(r.reason, r.raw, r.detail, r.mono_ns, r.channel) for r in one.rejects] == [
        (r.reason, r.raw, r.detail, r.mono_ns, r.channel) for r in batch.rejects
    ]


def test_parse_batch_without_times_reads_the_clock_as_parse_does() -> None:
    one, batch = batch_parsers()
    frames = [trade(1), trade(2), trade(1)]
    singles = [one.parse(frame, None) for frame in frames]
    together = [*batch.parse_batch(frames[:1], [None]),  # type: ignore[list-item]
                *batch.parse_batch(frames[1:], [None, None])]  # type: ignore[list-item]
    assert [(s.status, s.type_name) for s in singles] == [
        (s.status, s.type_name) for s in together]
    assert one.counts == batch.counts


def test_parse_batch_refuses_times_of_another_length() -> None:
    with pytest.raises(ValueError, match=r"shorter|longer"):
        make().parse_batch([trade(1), trade(2)], [0])


def test_de_dup_times_are_the_frames_own_not_the_clock() -> None:
    clock = VirtualClock()
    parser = make(clock, dedupe_ttl=1.0)
    second = 1_000_000_000
    assert parser.parse(trade(1), now_ns=0).status == "ok"
    assert parser.parse(trade(1), now_ns=second - 1).status == "duplicate"
    assert parser.parse(trade(1), now_ns=second).status == "ok"  # the clock never moved
    assert clock.monotonic_ns() == 0


def test_refuse_moves_an_ok_frame_to_the_schema_errors() -> None:
    parser = make()
    outcome = parser.parse(trade(1), now_ns=5)
    assert outcome.ok
    refused = parser.refuse(trade(1), "trade", "id: 2**64 does not fit", now_ns=5)
    assert tuple(refused) == ("schema_error", "trade", None)
    assert (parser.counts["ok"], parser.counts["schema_error"]) == (0, 1)
    [reject] = parser.rejects
    assert (reject.reason, reject.channel, reject.detail, reject.mono_ns) == (
        "schema_error", "trade", "id: 2**64 does not fit", 5)


def test_from_spec_builds_the_parser_the_spec_describes() -> None:
    spec = FeedSpec(
        url="ws://127.0.0.1:9",
        type_of=by_field("type"),
        channels=[Channel(name="trade", model=Trade, dedupe_key=lambda t: t.id),
                  Channel(name="quote", model=Quote)],
        control=frozenset({"pong"}),
        control_texts=frozenset({"ping"}),
        error_types=frozenset({"error"}),
        dedupe_ttl=2.0,
        max_dedupe_size=2,
    )
    clock = VirtualClock()
    parser = MessageParser.from_spec(spec, clock)
    assert parser.channels == ["trade", "quote"] and parser.single_call
    frames = [trade(1), trade(1), quote("A"), quote("A"), '{"type":"pong"}', "ping",
              '{"type":"error"}', trade(2), trade(3), trade(1)]
    assert [parser.parse(f).status for f in frames] == [
        "ok", "duplicate", "ok", "ok", "control", "control", "exchange_error",
        "ok", "ok", "ok",  # two newer keys pushed the first out (max_dedupe_size=2)
    ]
    clock.advance(2.0)
    assert parser.parse(trade(3)).status == "ok"  # the TTL is the spec's, on the given clock
    assert parser.parse("pong").status == "invalid_json"  # only the declared text is control


@pytest.mark.parametrize("case", ["duplicate", "time steps back", "key raises", "unhashable"])
def test_parse_batch_asks_each_messages_de_dup_key_once(case: str) -> None:
    """Also when the batch's keys are then asked one by one: a key function may count."""
    asked: list[int] = []

    def key(t: Trade) -> Hashable:
        asked.append(t.id)
        if case == "key raises" and t.id == 3:
            raise LookupError("no key for 3")
        return {"unhashable": t.id} if case == "unhashable" and t.id == 3 else (t.symbol, t.id)

    parser = MessageParser(by_field("type"), clock=VirtualClock())
    parser.register("trade", Trade, dedupe_key=key)
    frames: list[str | bytes] = [trade(1), trade(2), trade(3), trade(4)]
    times = [0, 10, 20, 30]
    if case == "duplicate":
        frames.append(trade(2))
        times.append(40)
    if case == "time steps back":
        times[3] = 5
    outcomes = parser.parse_batch(frames, times)
    assert sorted(asked) == sorted(int(json.loads(f)["id"]) for f in frames)
    statuses = [o.status for o in outcomes]
    if case == "duplicate":
        assert statuses == ["ok"] * 4 + ["duplicate"]
    elif case in ("key raises", "unhashable"):
        assert statuses == ["ok", "ok", "handler_error", "ok"]
        assert parser.rejects[-1].reason == "handler_error"
        assert parser.rejects[-1].detail.startswith(
            "dedupe_key raised " + ("LookupError: no key for 3" if case == "key raises"
                                    else "TypeError"))
    else:
        assert statuses == ["ok"] * 4
