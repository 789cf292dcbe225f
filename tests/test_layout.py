"""Layouts: exact message text read into typed columns, held to the channel's model.

A layout promises that every message it matches is a message of its channel that the
model validates to exactly the decoded values. These tests hold the template syntax, the
regex it compiles to, the model checks, every Binance layout (on the real frames in
``data/recordings`` and on generated ones) and :meth:`MessageParser.route` to that.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)

from wsresearch import Channel, FeedSpec, Recording, by_field
from wsresearch.clock import iso_ns
from wsresearch.exactness import SUSPECT_PATTERN
from wsresearch.exchanges import binance, coinbase, kraken
from wsresearch.exchanges._common import NsFromIso, NsFromMs
from wsresearch.frames import polars_schema
from wsresearch.layout import KINDS, Layout, check_layout
from wsresearch.lowlevel import MessageParser

from .conftest import sized

DATA = Path(__file__).resolve().parent.parent / "data" / "recordings"
BINANCE_RECORDINGS = sorted(DATA.glob("binance_*"))
MAX_MS = (2**63 - 1) // 1_000_000  # the most ms whose ns an Int64 holds
MAX_INT = 2**63 - 1
# The documented syntax: <field:kind>, or <field:str(a|b)> for one of the texts listed.
PLACEHOLDER = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*):([a-z]+)(?:\(([^()<>]*)\))?>")
CONTROLS = "".join(map(chr, range(0x20)))
ROUTED = {"ok", "duplicate", "schema_error", "handler_error"}  # outcomes naming a channel
LAYOUT_CHANNELS = ["trade", "bookTicker", "aggTrade"]
SPECS = {market: binance.spec(["btcusdt"], LAYOUT_CHANNELS, url="ws://127.0.0.1:9",
                              market=market)
         for market in binance.LAYOUTS}
MODELS = {channel.name: channel.model for channel in SPECS["spot"].channels}


class AllKinds(BaseModel):
    """A model with a field of every kept kind."""

    i: int
    f: float
    d: float
    s: str
    b: bool
    t: NsFromMs
    side: Literal["buy", "sell"]
    levels: list[tuple[float, float]]
    changes: list[coinbase.L2Change]
    at: NsFromIso
    note: str | None = None  # left out of the layout: defaults to None


SPOT_TRADE = binance.LAYOUTS["spot"]["trade"].template
ALL_KINDS = Layout('{"n":"<_:name>","i":<i:int>,"f":<f:float>,"d":<d:decimal>,"s":<s:str>,'
                   '"b":<b:bool>,"t":<t:ms>,"side":<side:str(buy|sell)>,"x":<_:str(a|b.c)>,'
                   '"levels":<levels:levels>,"changes":<changes:changes>,"at":<at:iso>}')
ALL_KINDS_TEXT = ('{"n":"x","i":-12,"f":1.25,"d":"61837.63000000","s":"héllo wörld",'
                  '"b":true,"t":1700000000123,"side":"sell","x":"b.c",'
                  '"levels":[["61837.63000000","0.00000000"],["-1","2.5"]],'
                  '"changes":[["buy","0.00001306","660.5"],["sell","1","0.0"]],'
                  '"at":"2021-04-17T16:43:37.075687Z"}')
LEVELS = [[61837.63, 0.0], [-1.0, 2.5]]
CHANGES = [{"side": "buy", "price": 1.306e-05, "size": 660.5},
           {"side": "sell", "price": 1.0, "size": 0.0}]
AT = 1_618_677_817_075_687_000


def decode_one(layout: Layout, text: str | None) -> dict[str, Any]:
    return layout.decode(pl.Series([text], dtype=pl.String)).row(0, named=True)


# --- construction ---------------------------------------------------------------------------

@pytest.mark.parametrize(("template", "error", "match"), [
    ('{"a":<a:integer>}', ValueError, r"unknown placeholder kind 'integer' in <a:integer>"),
    ('{"a":<a:int>,"b":<a:str>}', ValueError, r"field 'a' appears twice"),
    ('{"stream":"<sym:name>@trade","a":<a:int>}', ValueError,
     r"<sym:name>: a name placeholder is not kept; write <_:name>"),
    ('{"a":1,"b":"x"}', ValueError, r"at least one <field:kind> placeholder"),
    ("", ValueError, r"at least one <field:kind> placeholder"),
    (b'{"a":<a:int>}', TypeError, r"template is text, got bytes"),
    (None, TypeError, r"template is text, got NoneType"),
    ("<x:int(1|2)>", ValueError, r"<x:int\(1\|2\)>: only str takes a list of texts"),
    ("<x:str()>", ValueError, r"only str takes a list of texts, each without"),
    ("<x:str(a|)>", ValueError, r"only str takes a list of texts, each without"),
    ('<x:str(a"b)>', ValueError, r"only str takes a list of texts, each without"),
    ("<x:str(a\\b)>", ValueError, r"only str takes a list of texts, each without"),
    ("<x:str(a|b)> <x:int>", ValueError, r"field 'x' appears twice"),
    ("<x:name(a|b)>", ValueError, r"only str takes a list of texts"),
])
def test_a_malformed_template_is_refused_with_the_reason(
        template: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Layout(template)


def test_unkept_placeholders_may_repeat_and_only_kept_fields_are_listed_in_order() -> None:
    layout = Layout('["<_:name>",<_:int>,<_:int>,<b:bool>,<a:int>]')
    assert layout.fields == {"b": "bool", "a": "int"}
    assert decode_one(layout, '["x",1,2,false,3]') == {"b": False, "a": 3}
    assert layout == Layout(layout.template) and hash(layout) == hash(Layout(layout.template))
    assert layout != Layout('["<_:name>",<_:int>,<b:bool>,<a:int>]')
    assert layout.anchor == '["'  # the (first) longest literal text
    assert Layout('{"a":<a:int>,"bbbb":<b:str(x|y)>,"c":<c:int>}').anchor == ',"bbbb":'


def test_a_str_placeholder_with_texts_matches_only_those_texts_literally() -> None:
    layout = Layout('{"side":<side:str(buy|sell|a.b+)>,"n":<n:int>}')
    assert layout.fields == {"side": "str", "n": "int"}
    assert layout.choices == {"side": ("buy", "sell", "a.b+")}
    texts = ['{"side":"buy","n":1}', '{"side":"sell","n":2}', '{"side":"a.b+","n":3}',
             '{"side":"hold","n":4}', '{"side":"buysell","n":5}', '{"side":"buy|sell","n":6}',
             '{"side":"axbb","n":7}', '{"side":"","n":8}', '{"side":buy,"n":9}']
    assert layout.decode(pl.Series(texts)).rows() == [
        ("buy", 1), ("sell", 2), ("a.b+", 3), *[(None, None)] * 6]


def test_a_template_keeping_no_field_is_refused() -> None:
    with pytest.raises(ValueError, match="keeps a field"):
        Layout('{"stream":"<_:name>","id":<_:int>}')


@pytest.mark.parametrize("template", ['{"a":<a:int>,"b":<b:Int>}', '{"a":<a:int>,"b":<1b:int>}',
                                      '{"a":<a:int>,"b":<b:str(x(y)>}'])
def test_text_that_looks_like_a_placeholder_but_is_not_one_is_refused(template: str) -> None:
    with pytest.raises(ValueError, match="is not a placeholder"):
        Layout(template)


# --- decode ---------------------------------------------------------------------------------

def test_a_matching_text_decodes_to_typed_values_of_every_kind() -> None:
    decoded = ALL_KINDS.decode(pl.Series([ALL_KINDS_TEXT,
                                          ALL_KINDS_TEXT.replace("true", "false")]))
    assert decoded.schema == pl.Schema({"i": pl.Int64, "f": pl.Float64, "d": pl.Float64,
                                        "s": pl.String, "b": pl.Boolean, "t": pl.Int64,
                                        "side": pl.String,
                                        "levels": pl.List(pl.Array(pl.Float64, 2)),
                                        "changes": polars_schema(AllKinds)["changes"],
                                        "at": pl.Int64})
    assert decoded.to_dicts() == [
        {"i": -12, "f": 1.25, "d": 61837.63, "s": "héllo wörld", "b": True,
         "t": 1_700_000_000_123_000_000, "side": "sell", "levels": LEVELS, "changes": CHANGES,
         "at": AT},
        {"i": -12, "f": 1.25, "d": 61837.63, "s": "héllo wörld", "b": False,
         "t": 1_700_000_000_123_000_000, "side": "sell", "levels": LEVELS, "changes": CHANGES,
         "at": AT},
    ]
    assert ALL_KINDS.matches(pl.Series([ALL_KINDS_TEXT, "{}"])).to_list() == [True, False]


def test_the_widest_admitted_numbers_decode_exactly() -> None:
    layout = Layout("<i:int> <f:float> <d:decimal> <t:ms>")
    text = ('-9223372036854775808 -9999999999999999.9999999999999999 '
            '"1234567890123456.0000000000000001" -9223372036854')
    assert decode_one(layout, text) == {
        "i": -(2**63), "f": -9999999999999999.9999999999999999,
        "d": 1234567890123456.0, "t": -9_223_372_036_854_000_000}
    text = '9223372036854775807 0.5 "-0.0000000000000001" 9223372036854'
    assert decode_one(layout, text) == {
        "i": MAX_INT, "f": 0.5, "d": -1e-16, "t": 9_223_372_036_854_000_000}
    assert decode_one(layout, '-0 -0.0 "0.0" -0') == {"i": 0, "f": -0.0, "d": 0.0, "t": 0}
    # JSON's -0 is the integer 0 to the model (0.0 in a float field) but -0.0 to polars:
    # not admitted as a float.
    assert decode_one(layout, '-0 -0 "0.0" -0') == dict.fromkeys(layout.fields)


@pytest.mark.parametrize("text", [
    ALL_KINDS_TEXT.replace('"i":-12,', '"i": -12,'),  # whitespace
    " " + ALL_KINDS_TEXT,
    ALL_KINDS_TEXT.replace('"i":-12,"f":1.25', '"f":1.25,"i":-12'),  # another key order
    ALL_KINDS_TEXT.replace("héllo", 'hé\\"llo'),  # escapes in a string
    ALL_KINDS_TEXT.replace("héllo", "hé\\nllo"),
    ALL_KINDS_TEXT.replace("héllo", "hé\\u0041llo"),
    ALL_KINDS_TEXT.replace("héllo", "hé\nllo"),  # a raw control character
    ALL_KINDS_TEXT.replace("héllo", "hé\tllo"),
    ALL_KINDS_TEXT.replace('"n":"x"', '"n":"a\\\\b"'),
    ALL_KINDS_TEXT.replace('"n":"x"', '"n":"a@b"'),  # a name holds no @
    ALL_KINDS_TEXT.replace("1.25", "1.25e3"),  # exponents
    ALL_KINDS_TEXT.replace("1.25", "1E5"),
    ALL_KINDS_TEXT.replace("61837.63000000", "6.1e4"),
    ALL_KINDS_TEXT.replace("-12", "9223372036854775808"),  # more than an Int64 holds
    ALL_KINDS_TEXT.replace("-12", "-9223372036854775809"),
    ALL_KINDS_TEXT.replace("-12", "9999999999999999999"),
    ALL_KINDS_TEXT.replace("-12", "12345678901234567890"),  # 20 digits
    ALL_KINDS_TEXT.replace("1700000000123", "17000000001230"),  # 14 digits of ms
    ALL_KINDS_TEXT.replace("1.25", "12345678901234567.5"),  # 17 digits before the point
    ALL_KINDS_TEXT.replace("1.25", "1.12345678901234567"),  # 17 after
    ALL_KINDS_TEXT.replace("-12", "01"),  # leading zeros
    ALL_KINDS_TEXT.replace("-12", "-012"),
    ALL_KINDS_TEXT.replace("61837.63000000", "061837.63"),
    ALL_KINDS_TEXT.replace("1700000000123", "01700000000123"),
    ALL_KINDS_TEXT.replace("1.25", ".25"),  # numbers JSON does not write
    ALL_KINDS_TEXT.replace("1.25", "1."),
    ALL_KINDS_TEXT.replace("-12", "+12"),
    ALL_KINDS_TEXT.replace("-12", "-12.0"),
    ALL_KINDS_TEXT.replace("1.25", "NaN"),
    ALL_KINDS_TEXT.replace('"61837.63000000"', "61837.63"),  # a decimal not in quotes
    ALL_KINDS_TEXT.replace("1.25", '"1.25"'),  # a float in quotes
    ALL_KINDS_TEXT.replace('"héllo wörld"', "null"),
    ALL_KINDS_TEXT.replace("true", "True"),
    ALL_KINDS_TEXT.replace("true", "1"),
    ALL_KINDS_TEXT.replace('"sell"', '"hold"'),  # not one of the texts listed
    ALL_KINDS_TEXT.replace('"b.c"', '"bxc"'),
    ALL_KINDS_TEXT.replace('"0.00000000"]', '"0.00000000"],'),  # levels: a trailing comma
    ALL_KINDS_TEXT.replace('["-1","2.5"]', '["-1","2.5","3"]'),  # three values
    ALL_KINDS_TEXT.replace('["-1","2.5"]', '["-1"]'),  # one
    ALL_KINDS_TEXT.replace('["-1","2.5"]', '[-1,2.5]'),  # numbers, not texts
    ALL_KINDS_TEXT.replace('["-1","2.5"]', '["-1", "2.5"]'),  # whitespace
    ALL_KINDS_TEXT.replace('["-1","2.5"]', '["-1","2.5e1"]'),  # an exponent
    ALL_KINDS_TEXT.replace('["-1","2.5"]', '["-1",null]'),
    ALL_KINDS_TEXT.replace('["-1","2.5"]', '{"p":"-1","q":"2.5"}'),
    ALL_KINDS_TEXT.replace('[["61837.63000000","0.00000000"],["-1","2.5"]]', 'null'),
    ALL_KINDS_TEXT + "x",  # trailing garbage
    ALL_KINDS_TEXT + "\n",
    ALL_KINDS_TEXT + " ",
    ALL_KINDS_TEXT[:-1],
    "",
    None,
])
def test_a_text_that_does_not_match_exactly_gives_a_row_of_nulls(text: str | None) -> None:
    decoded = ALL_KINDS.decode(pl.Series([ALL_KINDS_TEXT, text], dtype=pl.String))
    assert decoded.row(0)[0] == -12  # the exact text still decodes next to it
    assert decoded.row(1, named=True) == dict.fromkeys(ALL_KINDS.fields)
    assert ALL_KINDS.matches(pl.Series([text], dtype=pl.String)).to_list() == [False]


@pytest.mark.parametrize("i", [MAX_INT + 1, -(2**63) - 1, 10**19])
def test_an_int_beyond_64_bits_makes_the_whole_row_null_wherever_it_is(i: int) -> None:
    layout = Layout('{"a":<a:int>,"b":<b:int>,"s":<s:str>}')
    texts = [f'{{"a":{i},"b":1,"s":"x"}}', f'{{"a":1,"b":{i},"s":"x"}}',
             f'{{"a":1,"b":{MAX_INT},"s":"x"}}']
    assert layout.decode(pl.Series(texts)).rows() == [
        (None, None, None), (None, None, None), (1, MAX_INT, "x")]


@pytest.mark.parametrize(("ms", "ns"), [
    (MAX_MS, MAX_MS * 1_000_000),
    (-MAX_MS, -MAX_MS * 1_000_000),
    (MAX_MS + 1, None),
    (-MAX_MS - 1, None),
    (9_999_999_999_999, None),
])
def test_ms_whose_ns_do_not_fit_64_bits_make_the_whole_row_null(ms: int, ns: int | None) -> None:
    text = ALL_KINDS_TEXT.replace("1700000000123", str(ms))
    row = decode_one(ALL_KINDS, text)
    if ns is None:
        assert row == dict.fromkeys(ALL_KINDS.fields)
        assert decode_one(Layout(ALL_KINDS.template.replace("<t:ms>", "<_:ms>")), text)["i"] == -12
    else:
        assert row["t"] == ns and row["i"] == -12
    # The model reads it either way: the layout only leaves it to the model.
    assert AllKinds.model_validate_json(text).t == ms * 1_000_000
    assert check_layout(ALL_KINDS, AllKinds, [text]) == []


@pytest.mark.parametrize("char", list(".+*?()|[]{}^$#&-~ \\/%=\""))
def test_regex_metacharacters_in_the_template_are_matched_literally(char: str) -> None:
    layout = Layout(f"a{char}b<x:int>")
    texts = [f"a{char}b7", "aXb7", "ab7", "aab7", "abb7", f"a{char}{char}b7", "b7", "a\nb7",
             f"a{char}7", "7"]
    assert layout.decode(pl.Series(texts))["x"].to_list() == [7] + [None] * (len(texts) - 1)


literal_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=16)


@settings(max_examples=200, deadline=None)
@given(literal_text, literal_text)
def test_any_literal_text_around_a_placeholder_matches_itself_only(
        before: str, after: str) -> None:
    template = f"{before}<x:int>{after}"
    if [m.group() for m in PLACEHOLDER.finditer(template)] != ["<x:int>"]:
        return  # the surrounding text holds placeholders of its own
    layout = Layout(template)
    texts = [f"{before}42{after}", f"{before}42{after}!", f"!{before}42{after}",
             f"{before} 42{after}"]
    assert layout.decode(pl.Series(texts))["x"].to_list() == [42, None, None, None]


# --- check_model, check_layout and Channel --------------------------------------------------

@pytest.mark.parametrize(("template", "match"), [
    (SPOT_TRADE.replace("<trade_id:int>", "<trade_no:int>"),
     r"channel 'trade': layout field 'trade_no' is not a field of Trade"),
    (SPOT_TRADE.replace("<price:decimal>", "<price:int>"),
     r"channel 'trade': layout field 'price' is <int>, a Int64 column, but Trade.price is a "
     r"Float64 column"),
    (SPOT_TRADE.replace("<symbol:str>", "<symbol:bool>"), r"Trade.symbol is a String column"),
    (SPOT_TRADE.replace("<trade_time_ns:ms>", "<trade_time_ns:str>"),
     r"'trade_time_ns' is <str>, a String column, but Trade.trade_time_ns is a Int64"),
    (SPOT_TRADE.replace("<trade_id:int>", "<_:int>"),
     r"channel 'trade': the layout leaves out Trade.trade_id, which does not default to None"),
])
def test_check_model_refuses_a_layout_that_does_not_fit_the_model(
        template: str, match: str) -> None:
    binance.LAYOUTS["spot"]["trade"].check_model(binance.Trade, "trade")
    with pytest.raises(ValueError, match=match):
        Layout(template).check_model(binance.Trade, "trade")
    with pytest.raises(ValueError, match=match.removeprefix("channel 'trade': ")):
        Channel(name="trade", model=binance.Trade, layout=Layout(template))


def test_a_field_left_out_must_default_to_none_not_to_another_value() -> None:
    class WithDefault(BaseModel):
        a: int
        b: int = 0
        c: str | None = None

    with pytest.raises(ValueError, match=r"leaves out WithDefault.b, which does not default"):
        Layout('{"a":<a:int>}').check_model(WithDefault)
    Layout('{"a":<a:int>,"b":<b:int>}').check_model(WithDefault)  # c may be left out
    assert Layout('{"a":<a:int>,"b":<b:int>}').left_out(WithDefault) == ["c"]
    assert binance.LAYOUTS["spot"]["bookTicker"].left_out(binance.BookTicker) == [
        "event_time_ns", "transaction_time_ns"]


class Guarded(BaseModel):
    bounded: int = Field(le=1000)
    checked: str
    doubled: Annotated[int, BeforeValidator(lambda v: 2 * int(v))]
    at: NsFromMs
    side: Literal["buy", "sell"]
    maybe_side: Literal["buy", "sell"] | None = None

    @field_validator("checked")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


GUARDED = ('{"bounded":<bounded:int>,"checked":<checked:str>,"doubled":<doubled:int>,'
           '"at":<at:ms>,"side":<side:str(buy|sell)>}')


@pytest.mark.parametrize(("template", "match"), [
    (GUARDED, r"Guarded.bounded has validators or constraints a layout cannot apply"),
    (GUARDED.replace("<bounded:int>", "1"), r"Guarded.checked has validators or constraints"),
    (GUARDED.replace("<bounded:int>", "1").replace("<checked:str>", '"x"'),
     r"Guarded.doubled has validators or constraints"),
    (GUARDED.replace("<bounded:int>", "1").replace("<checked:str>", '"x"')
     .replace("<doubled:int>", "1").replace("<at:ms>", "<at:int>"),
     r"Guarded.at has validators or constraints"),
    (GUARDED.replace("<bounded:int>", "1").replace("<checked:str>", '"x"')
     .replace("<doubled:int>", "1").replace("str(buy|sell)", "str"),
     r"Guarded.side admits only \['buy', 'sell'\]: write <side:str\(buy\|sell\)>"),
    (GUARDED.replace("<bounded:int>", "1").replace("<checked:str>", '"x"')
     .replace("<doubled:int>", "1").replace("buy|sell", "buy|hold"),
     r"Guarded.side admits only"),
    (GUARDED.replace("<bounded:int>", "1").replace("<checked:str>", '"x"')
     .replace("<doubled:int>", "1")[:-1] + ',"m":<maybe_side:str>}',
     r"Guarded.maybe_side admits only"),
])
def test_check_model_refuses_fields_whose_validators_a_layout_cannot_apply(
        template: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Layout(template).check_model(Guarded)


def test_check_model_accepts_ms_fields_and_literal_fields_given_their_texts() -> None:
    # An ms placeholder takes the one before-validator of NsFromMs; a Literal, its texts.
    class Plain(BaseModel):
        at: NsFromMs
        side: Literal["buy", "sell"]
        maybe_side: Literal["buy", "sell"] | None = None

    Layout('{"at":<at:ms>,"side":<side:str(buy|sell)>}').check_model(Plain)
    Layout('{"at":<at:ms>,"side":<side:str(sell)>,"m":<maybe_side:str(buy)>}').check_model(Plain)
    layout = Layout('{"at":<at:ms>,"side":<side:str(buy|sell)>}')
    assert check_layout(layout, Plain, ['{"at":5,"side":"buy"}', '{"at":5,"side":"x"}']) == []
    ALL_KINDS.check_model(AllKinds)


@pytest.mark.parametrize(("layout", "model", "text"), [
    (Layout(SPOT_TRADE.replace("<trade_id:int>", "<trade_id:ms>")), binance.Trade,
     '{"stream":"x@trade","data":{"e":"trade","E":1,"s":"B","t":5,"p":"1","q":"1","T":2,'
     '"m":true,"M":true}}'),
    (Layout('{"s":<symbol:str>,"p":<mark_price:decimal>,"T":<next_funding_time_ns:ms>,'
            '"E":<event_time_ns:ms>}'), binance.MarkPrice, '{"s":"X","p":"1","T":0,"E":1}'),
])
def test_check_model_refuses_an_ms_placeholder_for_a_field_that_is_not_ns_from_ms(
        layout: Layout, model: type[BaseModel], text: str) -> None:
    assert check_layout(layout, model, [text]) != []  # the layout does break its promise
    with pytest.raises(ValueError, match="validators"):
        layout.check_model(model)


@pytest.mark.parametrize("text", [
    "2021-04-17T16:43:37.075687Z", "2021-04-17T16:43:37Z", "2021-04-17T16:43:37.1Z",
    "2021-04-17T16:43:37.123456789Z", "2020-02-29T23:59:59.999999999Z", "1970-01-01T00:00:00Z",
    "2259-12-31T23:59:59.999999999Z",
    # Not matched: no such day or time (polars reads a leap second as the next second, and
    # 24:00 as the next day), out of range, or another shape; the model refuses or reads
    # each otherwise.
    "2021-02-29T00:00:00Z", "2021-04-31T00:00:00Z", "2021-13-01T00:00:00Z",
    "2021-00-10T00:00:00Z", "2021-01-00T00:00:00Z", "2016-12-31T23:59:60Z",
    "2021-01-01T24:00:00Z", "2021-01-01T23:60:00Z", "1969-12-31T23:59:59Z",
    "2260-01-01T00:00:00Z", "2021-04-17T16:43:37.1234567891Z", "2021-04-17T16:43:37.Z",
    "2021-04-17T16:43:37+00:00", "2021-04-17 16:43:37Z", "2021-04-17T16:43Z",
    "2021-4-7T1:2:3Z", " 2021-04-17T16:43:37Z", "2100-02-29T00:00:00Z",
])
def test_an_iso_time_decodes_to_the_models_ns_or_is_not_matched(text: str) -> None:
    class Stamped(BaseModel):
        at: NsFromIso

    message = json.dumps({"at": text}, separators=(",", ":"))
    decoded = decode_one(Layout('{"at":<at:iso>}'), message)["at"]
    try:
        expected: int | None = Stamped.model_validate_json(message).at
    except ValidationError:
        expected = None
    shape = re.fullmatch(r"(\d{4})-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", text)
    if shape is not None and 1970 <= int(shape[1]) <= 2259 and expected is not None:
        assert decoded == expected
    else:  # the model refuses it, or reads a shape the kind leaves to it
        assert decoded is None


class Positive(BaseModel):
    side: Literal["buy", "sell"]
    price: Annotated[float, Field(gt=0)]
    size: float


class BuysOnly(BaseModel):
    side: Literal["buy"]
    price: float
    size: float


class Rounded(BaseModel):
    side: str
    price: float
    size: float

    @field_validator("price")
    @classmethod
    def _rounded(cls, value: float) -> float:
        return round(value, 2)


@pytest.mark.parametrize(("items", "kind", "problem"), [
    (list[Positive], "changes", "Positive.price has validators"),
    (list[BuysOnly], "changes", "does not admit both buy and sell"),
    (list[Rounded], "changes", "Rounded reshapes or validates"),
    (list[tuple[Annotated[float, Field(gt=0)], float]], "levels", "is a None column"),
])
def test_check_model_refuses_changes_and_levels_whose_items_the_kind_cannot_read(
        items: Any, kind: str, problem: str) -> None:
    # The column's dtype is the same either way: only the items' own rules differ, and a
    # layout would decode what the model refuses or reads otherwise.
    model = create_model("Batch", product_id=(str, ...), changes=(items, ...))
    layout = Layout(f'{{"p":<product_id:str>,"c":<changes:{kind}>}}')
    with pytest.raises(ValueError, match=problem):
        layout.check_model(model)
    if kind == "changes":
        text = '{"p":"X","c":[["sell","-1.234","2"]]}'
        assert check_layout(layout, model, [text]) != []  # the promise does break
    coinbase.EXCHANGE_L2UPDATE_LAYOUT.check_model(coinbase.ExchangeL2Update)  # plain items


def test_check_model_takes_an_iso_placeholder_for_ns_from_iso_fields_only() -> None:
    class Stamped(BaseModel):
        at: NsFromIso
        ms: NsFromMs

    Layout('{"at":<at:iso>,"ms":<ms:ms>}').check_model(Stamped)
    for template in ('{"at":<at:ms>,"ms":<ms:ms>}', '{"at":<at:iso>,"ms":<ms:iso>}'):
        with pytest.raises(ValueError, match="NsFromIso"):
            Layout(template).check_model(Stamped)
    text = '{"at":"2021-04-17T16:43:37.075687Z","ms":"2021-04-17T16:43:37Z"}'
    assert check_layout(Layout('{"at":<at:iso>,"ms":<ms:iso>}'), Stamped, [text]) != []


class Fill(BaseModel):
    price: float
    qty: float


class Batch(BaseModel):
    symbol: str
    fills: list[Fill]


def test_a_channel_with_a_layout_cannot_explode() -> None:
    Channel(name="batch", model=Batch, explode="fills")  # fine without a layout
    layout = Layout('{"symbol":<symbol:str>}')
    with pytest.raises(ValueError, match=r"batch: a layout gives one row per message; an "
                                         r"exploded channel cannot have one"):
        Channel(name="batch", model=Batch, layout=layout, explode="fills")


def test_with_layout_checks_the_layout_as_the_constructor_does() -> None:
    plain = Channel(name="trade", model=binance.Trade, dedupe_key=("symbol", "trade_id"))
    layout = binance.LAYOUTS["spot"]["trade"]
    given = plain.with_layout(layout)
    assert (given.layout, given.dedupe_key, plain.layout) == (layout, plain.dedupe_key, None)
    assert given.with_layout(None).layout is None
    with pytest.raises(ValueError, match="is <int>, a Int64 column"):
        plain.with_layout(Layout(SPOT_TRADE.replace("<price:decimal>", "<price:int>")))
    with pytest.raises(ValueError, match="an exploded channel cannot have one"):
        Channel(name="batch", model=Batch, explode="fills").with_layout(
            Layout('{"symbol":<symbol:str>}'))


def test_check_layout_names_each_field_the_model_reads_otherwise() -> None:
    # Two placeholders of the same column dtype swapped pass check_model (it cannot know
    # which key holds which field); check_layout compares with the model and names them.
    swapped = Layout(SPOT_TRADE.replace("<price:decimal>", "<QTY:decimal>")
                     .replace("<qty:decimal>", "<price:decimal>").replace("QTY", "qty"))
    swapped.check_model(binance.Trade, "trade")
    unit = Layout(SPOT_TRADE.replace("<trade_id:int>", "<trade_id:ms>"))  # the wrong unit
    text = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":5,'
            '"p":"100.5","q":"0.25","T":2,"m":true,"M":true}}')
    assert check_layout(binance.LAYOUTS["spot"]["trade"], binance.Trade, [text]) == []
    problems = check_layout(swapped, binance.Trade, [text])
    assert len(problems) == 2
    assert "price decodes to 0.25, the model gives 100.5" in problems[0]
    assert "qty decodes to 100.5, the model gives 0.25" in problems[1]
    assert check_layout(unit, binance.Trade, [text]) == [
        f"{text[:120]!r}: trade_id decodes to 5000000, the model gives 5"]
    # A layout matching text the model refuses, and texts it does not match (skipped).
    refused = check_layout(Layout('{"i":<i:int>}'), AllKinds, ['{"i":1}', '{"i":"1"}'])
    assert len(refused) == 1 and "the model refuses it" in refused[0]
    assert check_layout(ALL_KINDS, AllKinds, ["{}", "nope"]) == []

    # Equal values of another type are a disagreement too (check_layout does not rely on
    # check_model, which would refuse these layouts).
    class Floats(BaseModel):
        x: float
        flag: int

    assert check_layout(Layout('{"x":<x:int>,"flag":<flag:bool>}'), Floats,
                        ['{"x":1,"flag":true}']) == [
        """'{"x":1,"flag":true}': x decodes to 1, the model gives 1.0""",
        """'{"x":1,"flag":true}': flag decodes to True, the model gives 1"""]


def test_a_stream_name_holding_an_at_sign_is_not_matched_as_it_routes_elsewhere() -> None:
    layout = binance.LAYOUTS["spot"]["bookTicker"]
    data = '"data":{"u":9,"s":"BTCUSDT","b":"1.5","B":"2","a":"1.6","A":"3"}}'
    texts = ['{"stream":"btcusdt@bookTicker",' + data, '{"stream":"btc@trade@bookTicker",' + data]
    parser = MessageParser.from_spec(SPECS["spot"])
    assert [parser.route(text) for text in texts] == ["bookTicker", "trade"]
    assert layout.matches(pl.Series(texts)).to_list() == [True, False]


def test_binance_spec_attaches_each_market_layout_to_its_channel_only() -> None:
    for market, layouts in binance.LAYOUTS.items():
        assert set(layouts) == set(LAYOUT_CHANNELS)
        spec = binance.spec(["btcusdt", "ethusdt"], ["depth", *LAYOUT_CHANNELS, "kline"],
                            url="ws://127.0.0.1:9", market=market)
        depth = binance.depth_layout("@depth", market)
        assert {c.name: c.layout for c in spec.channels} == {
            "depth": depth, "kline": None, **layouts}
        for channel in spec.channels:
            if channel.layout is not None:
                channel.layout.check_model(channel.model, channel.name)
    assert binance.LAYOUTS["spot"]["trade"] != binance.LAYOUTS["usdm"]["trade"]


# --- every Binance layout on the real frames ------------------------------------------------

@functools.cache
def _recorded() -> list[tuple[str, Any, MessageParser, list[str], list[str | None]]]:
    """Each Binance recording: its market, spec, a parser, its texts and their routes."""
    out = []
    for path in BINANCE_RECORDINGS:
        recording = Recording.open(path)
        frames = recording.frames().filter(~pl.col("binary"))
        spec = recording.spec
        parser = MessageParser.from_spec(spec)
        texts = frames["data"].to_list()
        out.append((spec.origin.arguments["market"], spec, parser, texts,
                    [parser.route(text) for text in texts]))
    return out


def test_a_decode_as_a_query_is_the_decode_of_the_column() -> None:
    # decode_lazy (what a replay runs, the layouts together) and decode give the same
    # columns, the rows kept beside them, on every real Binance frame.
    layouts = [*(layout for by_name in binance.LAYOUTS.values() for layout in by_name.values()),
               *DEPTH_LAYOUTS.values()]
    texts = pl.Series("data", [t for *_, found, _ in _recorded() for t in found],
                      dtype=pl.String)
    frame = pl.DataFrame({"row": pl.int_range(len(texts), eager=True), "data": texts})
    matched = 0
    for layout in layouts:
        queried = layout.decode_lazy(frame.lazy(), "data", ["row"]).collect()
        assert_frame_equal(queried, pl.concat([frame.select("row"), layout.decode(texts)],
                                              how="horizontal"))
        matched += len(texts) - queried[next(iter(layout.fields))].null_count()
    assert matched > 0.9 * len(texts)  # not vacuous: most frames are some layout's


def test_every_binance_layout_agrees_with_its_model_on_every_real_frame() -> None:
    assert len(BINANCE_RECORDINGS) >= 5
    recorded = _recorded()
    decoded: dict[tuple[str, str], int] = {}
    present: set[tuple[str, str]] = set()
    for market, spec, _parser, texts, routes in recorded:
        channels = {c.name: c for c in spec.channels}
        for name, layout in binance.LAYOUTS[market].items():
            if name in channels:  # the recording's spec attaches the market's layout
                assert channels[name].layout == layout
        for name in set(routes) - {None}:
            if name in binance.LAYOUTS[market]:
                present.add((market, name))
        for layout_market, layouts in binance.LAYOUTS.items():
            for name, layout in layouts.items():
                own = [t for t, r in zip(texts, routes, strict=True) if r == name]
                others = pl.Series([t for t, r in zip(texts, routes, strict=True)
                                    if r != name], dtype=pl.String)
                assert check_layout(layout, MODELS[name], own) == [], (spec.description, name)
                # Never a message of another channel, or a control message.
                assert layout.matches(others).sum() == 0, (spec.description, name)
                if layout_market == market:
                    hits = int(layout.matches(pl.Series(own, dtype=pl.String)).sum())
                    decoded[market, name] = decoded.get((market, name), 0) + hits
    # Not vacuous: the data holds every layout's channel, and each layout reads its frames.
    assert present >= {(m, c) for m in ("spot", "usdm") for c in LAYOUT_CHANNELS}
    assert {key: n for key, n in decoded.items() if key in present and n == 0} == {}
    assert decoded["spot", "bookTicker"] > 1000 and decoded["usdm", "trade"] > 100


def test_route_gives_the_channel_parse_gives_on_every_real_frame() -> None:
    for _market, spec, router, texts, routes in _recorded():
        parser = MessageParser.from_spec(spec)
        before = dict(router.counts)
        assert [router.route(t) for t in texts] == routes  # and routes count nothing
        assert dict(router.counts) == before and sum(before.values()) == 0
        for text, route in zip(texts, routes, strict=True):
            outcome = parser.parse(text)
            assert route == (outcome.type_name if outcome.status in ROUTED else None), text
        assert parser.counts["ok"] > 0


# --- generated messages for every Binance layout --------------------------------------------

NUMBER = st.builds(lambda minus, whole, fraction: f"{minus}{whole}{fraction and '.' + fraction}",
                   st.sampled_from(["", "-"]), st.integers(0, 10**16 - 1),
                   st.text("0123456789", max_size=16))
TEXTS: dict[str, st.SearchStrategy[str]] = {
    "int": st.one_of(st.integers(-(2**63), MAX_INT), st.integers(MAX_INT - 3, 10**19 - 1),
                     st.integers(-(10**19) + 1, -(2**63) + 3)).map(str) | st.just("-0"),
    "float": NUMBER,
    "decimal": NUMBER,
    "str": st.text(st.characters(exclude_categories=("Cs",),
                                 exclude_characters='"\\' + CONTROLS), max_size=24),
    "bool": st.sampled_from(["true", "false"]),
    "ms": st.one_of(st.integers(-MAX_MS, MAX_MS), st.integers(MAX_MS - 3, MAX_MS + 3),
                    st.integers(-MAX_MS - 3, -MAX_MS + 3),
                    st.integers(MAX_MS + 1, 10**13 - 1), st.integers(-(10**13 - 1), -MAX_MS),
                    st.just(0)).map(str),
    "name": st.text(st.characters(exclude_categories=("Cs",),
                                  exclude_characters='"\\@' + CONTROLS), max_size=24),
    "levels": st.lists(st.tuples(NUMBER, NUMBER), max_size=6).map(
        lambda pairs: "[" + ",".join(f'["{p}","{q}"]' for p, q in pairs) + "]"),
    "changes": st.lists(st.tuples(st.sampled_from(["buy", "sell"]), NUMBER, NUMBER),
                        max_size=6).map(
        lambda triples: "[" + ",".join(f'["{s}","{p}","{q}"]' for s, p, q in triples) + "]"),
    # Every day of the admitted years and a few past them, the 29th to the 31st of any
    # month (not every one a day), any time of day, 0 to 9 fractional digits; and one past
    # each field's end (month 13, day 32, 24:00, minute 60, the leap second 60), and 0.
    "iso": st.builds(
        lambda year, month, day, h, m, sec, fraction: (
            f'"{year:04d}-{month:02d}-{day:02d}T{h:02d}:{m:02d}:{sec:02d}'
            f'{fraction and "." + fraction}Z"'),
        st.integers(1965, 2265), st.integers(0, 13), st.integers(0, 32), st.integers(0, 24),
        st.integers(0, 60), st.integers(0, 60), st.text("0123456789", max_size=9)),
}


def _iso(text: str) -> int | None:
    """``iso_ns`` of a generated time (quoted), or ``None`` if it is no day or out of range."""
    try:
        ns = iso_ns(json.loads(text))
    except ValueError:
        return None
    return ns if 1970 <= int(text[1:5]) <= 2259 else None


def test_the_generated_texts_cover_every_kind() -> None:
    assert set(TEXTS) == set(KINDS)


def _value(kind: str, text: str) -> Any:
    """What a placeholder's text decodes to, by the module's table."""
    return {"int": int, "float": float, "decimal": float, "str": str,
            "bool": lambda t: t == "true", "ms": lambda t: int(t) * 1_000_000,
            "levels": lambda t: [[float(p), float(q)] for p, q in json.loads(t)],
            "changes": lambda t: [{"side": s, "price": float(p), "size": float(q)}
                                  for s, p, q in json.loads(t)],
            "iso": _iso,
            }[kind](text)


@st.composite
def messages(draw: st.DrawFn, template: str) -> tuple[str, dict[str, Any], bool]:
    """A message in ``template``'s shape, its kept values, and whether they fit 64 bits."""
    text, values, fits, end = "", {}, True, 0
    for found in PLACEHOLDER.finditer(template):
        name, kind, options = found.groups()
        strategy = TEXTS[kind] if options is None else st.sampled_from(options.split("|"))
        value = draw(strategy, label=name)
        text += template[end:found.start()]
        text += f'"{value}"' if kind in ("decimal", "str") else value
        end = found.end()
        if name != "_":
            values[name] = _value(kind, value)
            fits = fits and (kind != "ms" or abs(int(value)) <= MAX_MS)
            fits = fits and (kind != "int" or -(2**63) <= int(value) <= MAX_INT)
            fits = fits and (kind != "float" or value != "-0")  # 0 to the model, -0.0 to polars
            fits = fits and (kind != "iso" or values[name] is not None)  # a day, in range
    return text + template[end:], values, fits


def _holds_its_promise(layout: Layout, model: type[BaseModel], spec: FeedSpec | None,
                       channel: str, generated: tuple[str, dict[str, Any], bool]) -> None:
    text, values, fits = generated
    row = decode_one(layout, text)
    assert row == (values if fits else dict.fromkeys(layout.fields)), text
    assert layout.anchor in text
    assert check_layout(layout, model, [text]) == []
    try:
        found = model.model_validate_json(text).__dict__
    except ValidationError:  # a time that is no day: not matched, and refused by the model
        assert not fits and any(kind == "iso" for kind in layout.fields.values()), text
        return
    if spec is not None:
        parser = MessageParser.from_spec(spec)
        assert parser.route(text) == channel
        outcome = parser.parse(text)
        if fits:
            assert (outcome.status, outcome.type_name) == ("ok", channel)
            assert outcome.message.__dict__ == found
    if fits:
        for name, value in found.items():
            expected = row.get(name)  # None for a field the layout leaves out
            if isinstance(value, list):  # levels: the model's tuples, a column's arrays;
                # changes: the model's models, a column's structs
                value = [item.__dict__ if isinstance(item, BaseModel) else list(item)
                         for item in value]
            assert (repr(expected), type(expected)) == (repr(value), type(value)), (name, text)


@pytest.mark.parametrize(("market", "channel"), [
    (market, channel) for market, layouts in binance.LAYOUTS.items() for channel in layouts])
def test_every_binance_layout_decodes_generated_messages_as_its_model_does(
        market: str, channel: str) -> None:
    layout = binance.LAYOUTS[market][channel]
    model = MODELS[channel]

    @settings(max_examples=sized(60, 150), deadline=None)
    @given(messages(layout.template))
    def holds(generated: tuple[str, dict[str, Any], bool]) -> None:
        _holds_its_promise(layout, model, SPECS[market], channel, generated)

    holds()


@settings(max_examples=sized(80, 200), deadline=None)
@given(messages(ALL_KINDS.template))
def test_a_layout_of_every_kind_decodes_generated_messages_as_its_model_does(
        generated: tuple[str, dict[str, Any], bool]) -> None:
    _holds_its_promise(ALL_KINDS, AllKinds, None, "", generated)


NUMBERS = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),  # 1e+16, 5e-324...
    st.decimals(allow_nan=False, allow_infinity=False).map(str),  # 1E+5, 0E-7...
)
ANY_TEXT = st.builds(  # any text, most often holding a character JSON or a kind treats apart
    lambda before, special, after: before + special + after,
    st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
    st.sampled_from(["", "@", '"', "\\", "\n", "\x00", "\x1f", "\x7f", "é", "\u2028"]),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=6))
LOOSE: dict[str, st.SearchStrategy[str]] = {
    "int": NUMBERS,
    "float": NUMBERS,
    "decimal": NUMBERS.map(lambda n: f'"{n}"'),
    "str": st.builds(lambda text, ascii: json.dumps(text, ensure_ascii=ascii),
                     ANY_TEXT, st.booleans()),  # escapes: \", \\, \n, \u00e9...
    "bool": st.sampled_from(["true", "false"]),
    "ms": NUMBERS,
    "name": ANY_TEXT.map(lambda text: json.dumps(text)[1:-1]),
    "levels": st.lists(st.lists(NUMBERS.map(lambda n: f'"{n}"') | NUMBERS, max_size=3),
                       max_size=3).map(  # numbers as texts or not, in lists of any length
        lambda levels: "[" + ",".join("[" + ",".join(level) + "]" for level in levels) + "]"),
    "changes": st.lists(st.lists(st.sampled_from(['"buy"', '"sell"', '"bid"'])
                                 | NUMBERS.map(lambda n: f'"{n}"') | NUMBERS, max_size=4),
                        max_size=3).map(
        lambda changes: "[" + ",".join("[" + ",".join(c) + "]" for c in changes) + "]"),
    # Times in other shapes: a zone, a space, no seconds, a comma; any text too.
    "iso": st.sampled_from(['"2021-04-17T16:43:37+00:00"', '"2021-04-17 16:43:37Z"',
                            '"2021-04-17T16:43Z"', '"2021-04-17T16:43:37,5Z"',
                            '"2021-04-17T16:43:37.1234567891Z"', '"2021-04-17T16:43:37"',
                            '"2021-04-17t16:43:37z"', '"2016-12-31T23:59:60Z"',
                            '"2021-01-01T24:00:00Z"']) | ANY_TEXT.map(json.dumps),
}


@st.composite
def near_misses(draw: st.DrawFn, template: str) -> str:
    """Valid JSON in the template's shape, one value (or none) any JSON of its type."""
    found = list(PLACEHOLDER.finditer(template))
    loose = draw(st.integers(-1, len(found) - 1))
    text, end = "", 0
    for i, placeholder in enumerate(found):
        name, kind, options = placeholder.groups()
        if i == loose:
            value = draw(LOOSE[kind] if options is None else LOOSE["str"], label=name)
        else:
            value = draw(TEXTS[kind] if options is None
                         else st.sampled_from(options.split("|")), label=name)
            value = f'"{value}"' if kind in ("decimal", "str") else value
        text += template[end:placeholder.start()] + value
        end = placeholder.end()
    return text + template[end:]


@pytest.mark.parametrize(("market", "channel"), [
    (market, channel) for market, layouts in binance.LAYOUTS.items() for channel in layouts])
def test_whatever_a_binance_layout_matches_the_model_reads_alike_and_routes_to_it(
        market: str, channel: str) -> None:
    layout = binance.LAYOUTS[market][channel]

    @settings(max_examples=sized(40, 80), deadline=None)
    @given(near_misses(layout.template))
    def holds(text: str) -> None:
        assert check_layout(layout, MODELS[channel], [text]) == []
        if layout.matches(pl.Series([text])).item():
            parser = MessageParser.from_spec(SPECS[market])
            assert parser.route(text) == channel
            assert (parser.parse(text).status, parser.counts["ok"]) == ("ok", 1)

    holds()


@settings(max_examples=sized(60, 150), deadline=None)
@given(near_misses(ALL_KINDS.template))
def test_whatever_a_layout_of_every_kind_matches_the_model_reads_alike(text: str) -> None:
    assert check_layout(ALL_KINDS, AllKinds, [text]) == []


# --- the depth diffs' layouts -----------------------------------------------------------------

# (market, depth speed): the speeds of the captures in data/, and each market's default.
DEPTH_SPEEDS = [("spot", None), ("spot", "100ms"), ("usdm", None), ("usdm", "100ms"),
                ("usdm", "0ms")]
DEPTH_LAYOUTS = {f"{market}{speed or ''}": binance.depth_layout(
    "@depth" if speed is None else f"@depth@{speed}", market) for market, speed in DEPTH_SPEEDS}
DEPTH_SPECS = {f"{market}{speed or ''}": binance.spec(
    ["btcusdt"], ["depth", "trade"], url="ws://127.0.0.1:9", market=market, depth_speed=speed)
    for market, speed in DEPTH_SPEEDS}


def test_the_depth_layouts_agree_with_the_model_on_every_real_frame() -> None:
    matched: dict[str, int] = dict.fromkeys(DEPTH_LAYOUTS, 0)
    for _market, spec, _parser, texts, routes in _recorded():
        own = [t for t, r in zip(texts, routes, strict=True) if r == "depth"]
        others = pl.Series([t for t, r in zip(texts, routes, strict=True) if r != "depth"],
                           dtype=pl.String)
        for name, layout in DEPTH_LAYOUTS.items():
            assert check_layout(layout, binance.Depth, own) == [], spec.description
            assert layout.matches(others).sum() == 0  # never another channel's message
            matched[name] += int(layout.matches(pl.Series(own, dtype=pl.String)).sum())
    # Not vacuous: each market's diffs at the speeds captured are read, and only by the
    # layout of their market and speed.
    # data/'s spot diffs: 530 + 177 + 336; USD-M's: 764 (cryptofeed) and 313 (hftbacktest).
    assert matched == {"spot": 0, "spot100ms": 1043, "usdm": 0, "usdm100ms": 764,
                       "usdm0ms": 313}


@pytest.mark.parametrize("suffix", list(DEPTH_LAYOUTS))
def test_the_depth_layouts_decode_generated_messages_as_the_model_does(suffix: str) -> None:
    @settings(max_examples=sized(60, 150), deadline=None)
    @given(messages(DEPTH_LAYOUTS[suffix].template))
    def holds(generated: tuple[str, dict[str, Any], bool]) -> None:
        _holds_its_promise(DEPTH_LAYOUTS[suffix], binance.Depth, DEPTH_SPECS[suffix], "depth",
                           generated)

    holds()


@pytest.mark.parametrize("suffix", list(DEPTH_LAYOUTS))
def test_whatever_a_depth_layout_matches_the_model_reads_alike(suffix: str) -> None:
    layout = DEPTH_LAYOUTS[suffix]

    @settings(max_examples=sized(40, 80), deadline=None)
    @given(near_misses(layout.template))
    def holds(text: str) -> None:
        assert check_layout(layout, binance.Depth, [text]) == []
        if layout.matches(pl.Series([text])).item():
            parser = MessageParser.from_spec(DEPTH_SPECS[suffix])
            assert parser.route(text) == "depth"
            assert (parser.parse(text).status, parser.counts["ok"]) == ("ok", 1)

    holds()


# --- route ----------------------------------------------------------------------------------

SPOT_MESSAGES = {
    "trade": ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":5,'
              '"p":"100.5","q":"0.25","T":2,"m":true,"M":true}}'),
    "bookTicker": ('{"stream":"btcusdt@bookTicker","data":{"u":9,"s":"BTCUSDT","b":"1.5",'
                   '"B":"2","a":"1.6","A":"3"}}'),
    "aggTrade": ('{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT",'
                 '"a":7,"p":"100.5","q":"0.25","f":5,"l":6,"T":2,"m":false,"M":true}}'),
}


def _assert_route_agrees(parser: MessageParser,
                         cases: list[tuple[Any, tuple[str, str | None]]]) -> None:
    """``route`` counts nothing and gives the channel of ``parse``'s outcome for each case."""
    for raw, (status, channel) in cases:
        counts, rejects = dict(parser.counts), len(parser.rejects)
        routed = parser.route(raw)
        assert (dict(parser.counts), len(parser.rejects)) == (counts, rejects), raw
        outcome = parser.parse(raw)
        assert outcome.status == status, raw
        assert routed == channel, raw
        assert routed == (outcome.type_name if outcome.status in ROUTED else None), raw


def test_route_agrees_with_parse_on_each_kind_of_binance_message() -> None:
    parser = MessageParser.from_spec(SPECS["spot"])
    assert not parser.single_call
    trade = SPOT_MESSAGES["trade"]
    _assert_route_agrees(parser, [
        *[(text, ("ok", name)) for name, text in SPOT_MESSAGES.items()],
        # The route before each parse left the de-dup cache alone: the second is a duplicate.
        (trade, ("duplicate", "trade")),
        (trade.replace('"t":5', '"t":6').encode(), ("ok", "trade")),  # UTF-8 bytes
        (trade.replace('"t":5', '"t":"x"'), ("schema_error", "trade")),
        ('{"stream":"btcusdt@trade","data":{}}', ("schema_error", "trade")),
        (b"\xff\xfe{", ("invalid_utf8", None)),
        ('{"stream":"btcusdt@trade"', ("invalid_json", None)),
        ('{"result":null,"id":1}', ("control", None)),
        ('{"error":{"code":2,"msg":"Invalid request"},"id":1}', ("exchange_error", None)),
        ('{"stream":"btcusdt@depth","data":{}}', ("unknown_type", None)),  # not in the spec
        ('{"stream":"btcusdt@nothing","data":{}}', ("unknown_type", None)),
        ('{"stream":5,"data":{}}', ("unknown_type", None)),
        ("[1,2]", ("unknown_type", None)),
    ])


def test_parse_and_route_agree_on_text_that_is_not_unicode() -> None:
    parser = MessageParser.from_spec(SPECS["spot"])
    assert parser.route("\ud800") is None
    assert parser.parse("\ud800").status == "invalid_utf8"


class Tick(BaseModel):
    id: int
    price: float


class Quote(BaseModel):
    bid: float = Field(alias="b")


def test_route_agrees_with_parse_on_the_single_call_path() -> None:
    spec = FeedSpec(url="ws://127.0.0.1:9", type_of=by_field("type"),
                    channels=[Channel(name="tick", model=Tick, dedupe_key="id"),
                              Channel(name="quote", model=Quote)],
                    control=frozenset({"pong"}), error_types=frozenset({"error"}))
    parser = MessageParser.from_spec(spec)
    assert parser.single_call
    tick = '{"type":"tick","id":1,"price":2.5}'
    _assert_route_agrees(parser, [
        (tick, ("ok", "tick")),
        (tick, ("duplicate", "tick")),
        (bytearray(tick.replace('"id":1', '"id":2').encode()), ("ok", "tick")),
        ('{"type":"quote","b":1}', ("ok", "quote")),
        ('{"type":"tick","id":"x","price":2.5}', ("schema_error", "tick")),
        ('{"type":"pong"}', ("control", None)),
        ('{"type":"error","msg":"no"}', ("exchange_error", None)),
        ('{"type":"other"}', ("unknown_type", None)),
        ('{"type":[1]}', ("unknown_type", None)),  # an unhashable type name
        ("not json", ("invalid_json", None)),
        (b"\x80", ("invalid_utf8", None)),
    ])
    assert parser.parse(tick).status == "duplicate"


@pytest.mark.parametrize("setting", [{"strict": True}, {"str_strip_whitespace": True},
                                     {"str_to_upper": True}, {"coerce_numbers_to_str": True}])
def test_check_model_refuses_a_model_configured_to_read_values_otherwise(
        setting: dict[str, bool]) -> None:
    # Strict mode refuses "1.5" for a float; the string settings change the text: either
    # way the model reads otherwise than the layout.
    class Configured(BaseModel):
        model_config = ConfigDict(**setting)  # type: ignore[typeddict-item]
        s: str
        price: float

    layout = Layout('{"s":<s:str>,"p":<price:decimal>}')
    with pytest.raises(ValueError, match="model_config sets"):
        layout.check_model(Configured)

    class Plain(BaseModel):
        s: str
        price: float

    layout.check_model(Plain)


# -- Kraken Futures book levels -------------------------------------------------------------

KRAKEN_FUTURES_SPEC = kraken.spec(["PI_XBTUSD"], ["book"], api="futures", url="ws://127.0.0.1:9")


def test_the_kraken_futures_book_layout_agrees_with_its_model_on_every_real_frame() -> None:
    recording = Recording.open(DATA / "kraken_cryptofeed_2021-07-22_futures_v1_book_trade_ticker")
    spec = recording.spec
    assert spec is not None
    assert next(c for c in spec.channels if c.name == "book").layout == kraken.FUTURES_BOOK_LAYOUT
    texts = recording.events().filter(pl.col("kind") == "frame")["data"].to_list()
    router = MessageParser.from_spec(spec)
    routes = [router.route(t) for t in texts]
    own = [t for t, r in zip(texts, routes, strict=True) if r == "book"]
    others = pl.Series([t for t, r in zip(texts, routes, strict=True) if r != "book"],
                       dtype=pl.String)
    layout = kraken.FUTURES_BOOK_LAYOUT
    assert check_layout(layout, kraken.FuturesBook, own) == []
    assert layout.matches(others).sum() == 0  # snapshots, trades, tickers, replies
    assert int(layout.matches(pl.Series(own, dtype=pl.String)).sum()) == len(own) > 7000


def test_the_kraken_futures_book_layout_decodes_generated_messages_as_its_model_does() -> None:
    @settings(max_examples=sized(60, 150), deadline=None)
    @given(messages(kraken.FUTURES_BOOK_LAYOUT.template))
    def holds(generated: tuple[str, dict[str, Any], bool]) -> None:
        _holds_its_promise(kraken.FUTURES_BOOK_LAYOUT, kraken.FuturesBook,
                           KRAKEN_FUTURES_SPEC, "book", generated)

    holds()


def test_whatever_the_kraken_futures_book_layout_matches_the_model_reads_alike() -> None:
    layout = kraken.FUTURES_BOOK_LAYOUT

    @settings(max_examples=sized(40, 80), deadline=None)
    @given(near_misses(layout.template))
    def holds(text: str) -> None:
        assert check_layout(layout, kraken.FuturesBook, [text]) == []
        if layout.matches(pl.Series([text])).item():
            parser = MessageParser.from_spec(KRAKEN_FUTURES_SPEC)
            assert parser.route(text) == "book"
            assert (parser.parse(text).status, parser.counts["ok"]) == ("ok", 1)

    holds()


# -- Coinbase Exchange: level changes, tickers and matches ---------------------------------

COINBASE_SPEC = coinbase.spec(["BTC-USD"], ["level2", "ticker", "matches"], api="exchange",
                              url="ws://127.0.0.1:9")
COINBASE_LAYOUTS = {
    "l2update": (coinbase.EXCHANGE_L2UPDATE_LAYOUT, coinbase.ExchangeL2Update),
    "ticker": (coinbase.EXCHANGE_TICKER_LAYOUT, coinbase.ExchangeTicker),
    "match": (coinbase.EXCHANGE_MATCH_LAYOUT, coinbase.ExchangeMatch),
}


@pytest.mark.parametrize(("channel", "least"), [("l2update", 9000), ("ticker", 100),
                                                ("match", 100)])
def test_each_coinbase_layout_agrees_with_its_model_on_every_real_frame(
        channel: str, least: int) -> None:
    recording = Recording.open(
        DATA / "coinbase_cryptofeed_2021-04-17_exchange_level2_ticker_matches")
    spec = recording.spec
    assert spec is not None
    layout, model = COINBASE_LAYOUTS[channel]
    assert next(c for c in spec.channels if c.name == channel).layout == layout
    texts = recording.events().filter(pl.col("kind") == "frame")["data"].to_list()
    router = MessageParser.from_spec(spec)
    routes = [router.route(t) for t in texts]
    own = [t for t, r in zip(texts, routes, strict=True) if r == channel]
    others = pl.Series([t for t, r in zip(texts, routes, strict=True) if r != channel],
                       dtype=pl.String)
    assert check_layout(layout, model, own) == []
    assert layout.matches(others).sum() == 0  # the other channels', and replies
    assert int(layout.matches(pl.Series(own, dtype=pl.String)).sum()) == len(own) >= least


@pytest.mark.parametrize("channel", list(COINBASE_LAYOUTS))
def test_each_coinbase_layout_decodes_generated_messages_as_its_model_does(
        channel: str) -> None:
    layout, model = COINBASE_LAYOUTS[channel]

    @settings(max_examples=sized(60, 150), deadline=None)
    @given(messages(layout.template))
    def holds(generated: tuple[str, dict[str, Any], bool]) -> None:
        _holds_its_promise(layout, model, COINBASE_SPEC, channel, generated)

    holds()


@pytest.mark.parametrize("channel", list(COINBASE_LAYOUTS))
def test_whatever_a_coinbase_layout_matches_the_model_reads_alike(channel: str) -> None:
    layout, model = COINBASE_LAYOUTS[channel]

    @settings(max_examples=sized(40, 80), deadline=None)
    @given(near_misses(layout.template))
    def holds(text: str) -> None:
        assert check_layout(layout, model, [text]) == []
        if layout.matches(pl.Series([text])).item():
            parser = MessageParser.from_spec(COINBASE_SPEC)
            assert parser.route(text) == channel
            assert (parser.parse(text).status, parser.counts["ok"]) == ("ok", 1)

    holds()


# --- numbers too long to be exact -----------------------------------------------------------

DIGITS_AND_POINTS = st.text("0123456789.", min_size=15, max_size=24)
EXACT_LAYOUTS = [
    ALL_KINDS,
    *(layout for layouts in binance.LAYOUTS.values() for layout in layouts.values()),
    Layout('{"a":<a:int>.<_:int>,"f":<f:float>}'),  # a bare value beside a point
    Layout('{"a":<a:int><_:name>}'),  # two values side by side
    Layout('{"p":12345678.123456789,"a":<a:int>}'),  # a long number in the text
    Layout('12345678.1<a:int>'),  # ... which a value extends
]


@st.composite
def digit_heavy(draw: st.DrawFn, template: str) -> str:
    """A message in ``template``'s shape, its texts and numbers often long runs of digits."""
    text, end = "", 0
    for found in PLACEHOLDER.finditer(template):
        _, kind, options = found.groups()
        if options is not None:
            value = draw(st.sampled_from(options.split("|")))
        elif kind in ("str", "name"):
            value = draw(DIGITS_AND_POINTS | TEXTS[kind])
        else:
            value = draw(TEXTS[kind])
        text += template[end:found.start()] + (f'"{value}"' if kind in ("decimal", "str")
                                               else value)
        end = found.end()
    return text + template[end:]


@pytest.mark.parametrize("layout", EXACT_LAYOUTS, ids=lambda layout: layout.template[:40])
def test_an_exact_decode_leaves_out_the_messages_holding_an_inexact_number(
        layout: Layout) -> None:
    # Only messages with a long value are searched, where the template allows: the
    # messages left out must be exactly those whose whole text holds such a number.
    @settings(max_examples=sized(30, 60), deadline=None)
    @given(digit_heavy(layout.template))
    def holds(text: str) -> None:
        frame = pl.LazyFrame({"data": [text]}, schema={"data": pl.String})
        first = next(iter(layout.fields))  # not null in a row that matches
        rows = [row for row in layout.decode_lazy(frame, "data", exact=True).collect().to_dicts()
                if row[first] is not None]
        inexact = re.search(SUSPECT_PATTERN, text) is not None
        matched = decode_one(layout, text)
        assert rows == ([] if inexact or matched[first] is None else [matched])

    holds()
