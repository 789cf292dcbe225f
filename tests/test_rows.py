"""HeldRows: a table's rows gathered over a replay's chunks, read back as one frame."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from wsresearch._rows import HeldRows

SCHEMA = {"seq": pl.Int64(), "kind": pl.String(), "code": pl.Int32(), "ok": pl.Boolean()}


def test_rows_come_back_in_the_order_added_with_the_schemas_types() -> None:
    held = HeldRows(SCHEMA)
    assert len(held) == 0
    assert_frame_equal(held.frame(), pl.DataFrame(schema=SCHEMA))
    first = pl.DataFrame({"extra": [1, 2], "ok": [True, None], "code": [None, 1000],
                          "kind": ["open", "close"], "seq": [5, 9]},
                         schema_overrides={"code": pl.Int32})
    held.add(first)
    held.add(first.head(0))
    later = HeldRows(SCHEMA)
    later.add(first.reverse())
    held.extend(later)
    expected = pl.concat([first, first.reverse()]).select(list(SCHEMA))
    assert len(held) == 4
    assert_frame_equal(held.frame(), expected)
