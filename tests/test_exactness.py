"""Exact values: no number loses precision silently, and tables give the exchange's decimals.

The reference here checks every decimal number of every real message with ``Decimal``,
with no length shortcut; the pipeline's check must find exactly the numbers it finds.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from wsresearch import Recording, quality_report, replay
from wsresearch.exactness import exact, inexact_numbers, may_be_inexact, may_be_inexact_batch
from wsresearch.exchanges import okx

DATA = Path(__file__).resolve().parent.parent / "data"
RECORDINGS = sorted((DATA / "recordings").iterdir())
DECIMAL = re.compile(r"\d+\.\d+")


def reference(text: str) -> list[str]:
    """Every decimal number in ``text`` whose nearest float reads back as another number."""
    return [n for n in DECIMAL.findall(text) if Decimal(n) != Decimal(repr(float(n)))]


def real_messages() -> list[str]:
    """Every line of every capture and documented example, and every recorded message."""
    messages: list[str] = []
    for path in sorted(DATA.glob("*/*.jsonl*")):
        raw = path.read_bytes()
        messages += (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode().splitlines()
    for path in RECORDINGS:
        messages += Recording.open(path).frames()["data"].to_list()
    return messages


def test_the_check_finds_what_a_full_decimal_comparison_finds_on_every_real_message() -> None:
    messages = real_messages()
    assert len(messages) > 60_000
    found = {i: inexact_numbers(m) for i, m in enumerate(messages)}
    expected = {i: reference(m) for i, m in enumerate(messages)}
    assert found == expected
    # The real data holds such numbers (OKX's 24-hour volumes and open interest, Kraken's
    # ticker volumes), each of more than the 15 significant digits a float64 keeps.
    flagged = [n for numbers in found.values() for n in numbers]
    assert {"2216113.01000000309", "166741046.22583129"} <= set(flagged)
    assert all(len(n.replace(".", "").strip("0")) > 15 for n in flagged)


@pytest.mark.parametrize("text", [
    '{"p": "64999.99000000", "q": "0.00100000"}',   # padded: 14 and 10 characters
    '{"time": "1618678123.481570"}',                 # 17 characters, kept exactly
    '{"E": 1723161255308123456, "id": "12345678901234567890"}',  # integers
    '{"price": 0.30000000000000004}',                # 17 digits that read back
])
def test_numbers_a_float_keeps_are_not_flagged(text: str) -> None:
    assert inexact_numbers(text) == []
    assert inexact_numbers(text.encode()) == []


@pytest.mark.parametrize(("text", "numbers"), [
    ('{"oi": "2216113.01000000309"}', ["2216113.01000000309"]),
    ('{"v": 0.100000000000000001}', ["0.100000000000000001"]),   # JSON number, 18 digits
    ('[["12345678901.234567", "1"]]', ["12345678901.234567"]),
])
def test_numbers_a_float_does_not_keep_are_flagged(text: str, numbers: list[str]) -> None:
    assert may_be_inexact(text)
    assert inexact_numbers(text) == numbers
    assert inexact_numbers(text.encode()) == numbers


def test_a_message_holding_one_is_kept_counted_and_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """OKX's tickers send 24-hour volumes of up to 18 digits: 42 of them in the capture."""
    capture = DATA / "okx" / "cryptofeed_2022-05-13_v5_public_tickers_trades_books.jsonl.gz"
    lines = gzip.decompress(capture.read_bytes()).decode().splitlines()
    spec = okx.spec(["BTC-USDT"], ["trades", "tickers", "books"])
    recording = Recording.from_frames(tmp_path / "rec", lines, spec=spec)
    with caplog.at_level(logging.WARNING, logger="wsresearch.pipeline"):
        result = replay(recording)
    assert result.rejects == []
    flagged = [line for line in lines if reference(line)]
    assert len(flagged) > 1 and all('"channel":"tickers"' in line for line in flagged)
    assert result.counts is not None and result.counts.inexact == len(flagged)
    assert result.stats["ok"] + result.stats["control"] == len(lines)  # kept, not refused
    warnings = [r.getMessage() for r in caplog.records if "float64 keeps" in r.getMessage()]
    assert len(warnings) == 1 and reference(flagged[0])[0] in warnings[0]
    # The row holds the nearest float; the recording keeps the exact text.
    text = reference(flagged[0])[0]
    assert float(text) in result.frames["tickers"]["vol_ccy_24h"].to_list()
    assert any(text in message for message in recording.frames()["data"])
    report = quality_report(recording, spec)
    assert any(f"{len(flagged)} message(s) hold a decimal number with more significant digits"
               in w for w in report.warnings)


def test_a_session_without_such_numbers_counts_none_and_its_report_says_nothing() -> None:
    recording = Recording.open(DATA / "recordings" / "binance_hftbacktest_2024-08-08_spot_btcusdt")
    assert replay(recording).counts.inexact == 0  # type: ignore[union-attr]
    assert not any("float64" in w for w in quality_report(recording).warnings)


def test_exact_columns_hold_the_decimals_the_exchange_sent() -> None:
    """Every Binance trade's price and amount, as Decimal, equals the text in its message."""
    recording = Recording.open(DATA / "recordings" / "binance_hftbacktest_2024-08-08_spot_btcusdt")
    trades = exact(replay(recording).normalized("trades"), ["price", "amount"])
    sent = [json.loads(text)["data"] for text in recording.frames()["data"]
            if '"e":"trade"' in text]
    assert trades.height == len(sent) > 1000
    assert trades["price_exact"].to_list() == [Decimal(m["p"]) for m in sent]
    assert trades["amount_exact"].to_list() == [Decimal(m["q"]) for m in sent]
    assert trades.schema["price_exact"] == pl.Decimal(38, 2)  # BTCUSDT's tick: 0.01
    # Decimal arithmetic does not drift: the sum of the amounts is the sum of the texts.
    assert trades["amount_exact"].sum() == sum(Decimal(m["q"]) for m in sent)


def test_exact_defaults_to_every_float_column_and_keeps_nulls() -> None:
    frame = pl.DataFrame({"price": [0.1, None, 3e-8], "n": [1, 2, 3], "f": [1.5, 2.0, 1e6]})
    out = exact(frame)
    assert out.columns == ["price", "n", "f", "price_exact", "f_exact"]
    assert out["price_exact"].to_list() == [Decimal("0.1"), None, Decimal("3E-8")]
    assert out.schema["price_exact"] == pl.Decimal(38, 8)
    assert out.schema["f_exact"] == pl.Decimal(38, 1)
    assert out.drop("price_exact", "f_exact").equals(frame)


def test_exact_refuses_what_it_cannot_convert_with_a_clear_error() -> None:
    frame = pl.DataFrame({"price": [1.0], "n": [1], "wide": [1e25], "bad": [float("inf")]})
    with pytest.raises(KeyError, match="no column 'nope'"):
        exact(frame, ["nope"])
    with pytest.raises(TypeError, match="'n' is Int64, not a float column"):
        exact(frame, ["n"])
    with pytest.raises(ValueError, match="'bad' holds inf"):
        exact(frame, ["bad"])
    with pytest.raises(ValueError, match="more than the 38"):
        exact(pl.DataFrame({"wide": [1e25, 1e-20]}))


def test_a_batch_is_scanned_once_and_only_batches_that_may_hold_one_are_checked() -> None:
    short = '{"p": "2000.52", "ts": 1700000000000000000}'  # a long integer: no point
    long_ = '{"oi": "2216113.01000000309"}'
    assert not may_be_inexact_batch([short, short])
    assert may_be_inexact_batch([short, long_, short])
    assert may_be_inexact_batch([short.encode(), long_.encode()])  # binary messages too
    assert not may_be_inexact_batch([])
    # The batch scan only says where to look: a padded price passes it, and the
    # message check then finds nothing.
    padded = '{"p": "64999.99000000"}'
    assert may_be_inexact_batch([padded]) and inexact_numbers(padded) == []


@pytest.mark.parametrize("number", ["1234567.890123456", "12345678.90123456",
                                    "0.1234567890123456", "123456789012345.6"])
def test_every_decimal_of_16_digits_passes_the_batch_scan(number: str) -> None:
    assert may_be_inexact_batch([f'{{"v": "{number}"}}'])
