"""Values are stored exactly, or refused with a reason; never a null, never a poisoned channel.

F9: one sequence number >= 2**63 (a mangled Binance trade id) made replay, report and
export of the whole recording die, and ``feed.gaps`` raise. F17: one naive datetime
among aware ones made ``frame()`` raise forever. F18: ints beyond 64 bits, decimals
beyond ``Decimal(38, 18)`` and exchange times beyond 64 bits became nulls or zeros,
counted as ``ok``.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import polars as pl
from pydantic import BaseModel, Field

from wsresearch import Channel, FeedSpec, Recording, quality_report, replay
from wsresearch.cli import main
from wsresearch.export import export_parquet
from wsresearch.parser import by_field

from .test_exchange_data import CAPTURES, adapter_spec, lines


class Row(BaseModel):
    type: str
    id: int
    uid: Annotated[int, Field(ge=0)] = 0  # an unsigned id: a UInt64 column
    ids: list[int] = []
    amount: Decimal = Decimal(0)
    at: dt.datetime | None = None
    ns: int = 0


def spec(**channel: object) -> FeedSpec:
    return FeedSpec(url="ws://127.0.0.1:1", type_of=by_field("type"),
                    channels=[Channel(name="row", model=Row, **channel)])  # type: ignore[arg-type]


def frame(**fields: object) -> str:
    body = {"type": "row", "id": 1} | fields
    return json.dumps({k: str(v) if isinstance(v, Decimal) else v for k, v in body.items()})


def test_values_beyond_their_column_are_refused_with_the_field_never_nulled(
    tmp_path: Path,
) -> None:
    frames = [
        frame(id=1),
        frame(id=2**63 + 5),  # a uint64 id in a signed column
        frame(id=3, uid=2**64 - 1),  # fits the unsigned column exactly
        frame(id=4, uid=2**64),
        frame(id=-(2**70)),
        frame(id=6, ids=[1, 2**64]),
        frame(id=7, amount=Decimal("123456789012345678901.5")),  # 21 digits before the point
        frame(id=8, amount=Decimal("1.234E-19")),  # 19 places
        frame(id=9, amount=Decimal("1.500000000000000000000000")),  # exact with 18
        frame(id=10),
    ]
    recording = Recording.from_frames(tmp_path / "rec", frames)
    result = replay(recording, spec())
    rows = result.frames["row"]
    assert rows["id"].to_list() == [1, 3, 9, 10]  # every kept value exact, nothing null
    assert rows["uid"].dtype == pl.UInt64 and rows["uid"][1] == 2**64 - 1
    assert rows["amount"].to_list()[2] == Decimal("1.5")
    assert result.stats["ok"] == 4
    assert result.stats["rejects"]["schema_error"] == 6
    details = [reject.detail for reject in result.rejects]
    assert details == [
        "id: 9223372036854775813 does not fit a 64-bit int column",
        "uid: 18446744073709551616 does not fit an unsigned 64-bit int column",
        f"id: {-(2**70)} does not fit a 64-bit int column",
        "ids[]: 18446744073709551616 does not fit a 64-bit int column",
        "amount: 123456789012345678901.5 does not fit Decimal(38, 18) (at most 20 digits "
        "before the point and 18 after)",
        "amount: 1.234E-19 does not fit Decimal(38, 18) (at most 20 digits before the point "
        "and 18 after)",
    ]


def test_one_naive_datetime_among_aware_ones_is_taken_as_utc(tmp_path: Path) -> None:
    frames = [frame(id=n, at=f"2024-01-01T00:00:0{n}Z") for n in range(5)]
    frames.insert(2, frame(id=9, at="2024-01-01T00:00:09"))  # naive
    frames.append(frame(id=10, at="2024-01-01T02:00:10+02:00"))  # another zone
    result = replay(Recording.from_frames(tmp_path / "rec", frames), spec())
    at = result.frames["row"]["at"]
    assert at.dtype == pl.Datetime("us", "UTC")
    assert at.to_list()[2] == dt.datetime(2024, 1, 1, 0, 0, 9, tzinfo=dt.UTC)
    assert at.to_list()[-1] == dt.datetime(2024, 1, 1, 0, 0, 10, tzinfo=dt.UTC)
    assert result.stats["ok"] == 7


def test_an_exchange_time_beyond_64_bits_is_reported_and_the_row_kept(tmp_path: Path) -> None:
    # The field fits; the time an extractor makes of it (ms to ns, say) does not.
    frames = [frame(id=1, ns=5), frame(id=2, uid=2**64 - 1)]
    result = replay(Recording.from_frames(tmp_path / "rec", frames),
                    spec(exchange_time=lambda row: row.uid or row.ns))
    assert result.frames["row"]["exchange_ns"].to_list() == [5, None]
    assert any("exchange time 18446744073709551615 ns does not fit 64 bits" in error
               for error in result.errors)


def test_a_mangled_trade_id_beyond_64_bits_leaves_the_recording_usable(
    tmp_path: Path, capsys: object,
) -> None:
    # The attack's repro: real Binance frames, one trade's "t" set to 2**64 + 12345.
    capture = next(c for c in CAPTURES if "spot_btcusdt_depth100ms" in c.file)
    frames = lines(capture)[:2000]
    index = next(i for i, f in enumerate(frames) if '"e":"trade"' in f)
    message = json.loads(frames[index])
    message["data"]["t"] = 2**64 + 12345
    frames[index] = json.dumps(message)
    folder = tmp_path / "rec"
    Recording.from_frames(folder, frames, spec=adapter_spec(capture))
    result = replay(folder)
    assert result.stats["rejects"]["schema_error"] == 1
    assert "trade_id: 18446744073709563961 does not fit" in result.rejects[0].detail
    assert result.gaps["first"].dtype == pl.Int64  # the gap table builds
    assert quality_report(folder).summary().height > 0
    export_parquet(folder, None, tmp_path / "ds")
    assert main(["replay", str(folder)]) == 0
    assert main(["report", str(folder)]) == 0
