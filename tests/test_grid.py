"""on_grid: several exchanges' series sampled on one time grid, checked row by row.

The reference is a plain loop: for each grid time and series, the last row whose time is
at or before it, found by bisection over that series' own rows.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
import warnings
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from wsresearch import on_grid
from wsresearch.export import export_parquet, load_dataset, load_normalized
from wsresearch.grid import MAX_GRID_ROWS
from wsresearch.replay import replay

RECORDINGS = Path(__file__).resolve().parent.parent / "data" / "recordings"
SPOT = RECORDINGS / "binance_hftbacktest_2024-08-08_spot_btcusdt"
USDM = RECORDINGS / "binance_hftbacktest_2024-08-08_usdm_btcusdt"
UTC = dt.UTC


@pytest.fixture(scope="module")
def quotes() -> pl.DataFrame:
    """The spot and USD-M BTCUSDT quotes, one table (the trial's basis question)."""
    return pl.concat([replay(SPOT).normalized("quotes"), replay(USDM).normalized("quotes")])


def _reference(table: pl.DataFrame, times: pl.Series, keys: list[str], values: list[str],
               time: str = "local_time", max_age: dt.timedelta | None = None) -> pl.DataFrame:
    """For each time and series, its last row at or before the time, in whole ns."""
    grid = times.dt.epoch("ns").to_list()
    limit = None if max_age is None else max_age // dt.timedelta(microseconds=1) * 1000
    parts = []
    timed = table.filter(pl.col(time).is_not_null())  # a row with no time is no sample
    for key, rows in timed.partition_by(keys, as_dict=True, maintain_order=True).items():
        stamps = rows[time].dt.epoch("ns").to_list()
        picked = []
        for t in grid:
            at = bisect.bisect_right(stamps, t) - 1
            fresh = at >= 0 and (limit is None or t - stamps[at] <= limit)
            picked.append(at if fresh else None)
        index = pl.DataFrame({"time": times, "_i": pl.Series(picked, dtype=pl.UInt32)})
        found = index.join(rows.select(values).with_row_index("_i"), on="_i", how="left")
        parts.append(found.select("time", *(pl.lit(k, table.schema[n]).alias(n)
                                            for n, k in zip(keys, key, strict=True)), *values))
    return pl.concat(parts).sort(["time", *keys], maintain_order=True)


def _sorted(grid: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return grid.sort(["time", *keys], maintain_order=True)


def test_two_markets_on_a_second_grid_are_each_ones_last_quote(quotes: pl.DataFrame) -> None:
    values = ["bid_price", "ask_price", "local_time"]
    grid = on_grid(quotes, "1s", columns=values)
    # Where both are quoted: from the later first quote to the earlier last one.
    spans = quotes.group_by("exchange").agg(pl.col("local_time").min().alias("a"),
                                            pl.col("local_time").max().alias("b"))
    low, high = spans["a"].max(), spans["b"].min()
    times = grid["time"].unique(maintain_order=True)
    assert times[0] >= low > times[0] - dt.timedelta(seconds=1)
    assert times[-1] <= high < times[-1] + dt.timedelta(seconds=1)
    assert (times.dt.epoch("ns") % 10**9 == 0).all() and times.dtype == quotes["local_time"].dtype
    assert len(times) > 10 and grid.height == 2 * len(times)
    expected = _reference(quotes, times, ["exchange", "symbol"], values)
    assert_frame_equal(_sorted(grid, ["exchange", "symbol"]), expected)
    assert grid.null_count().sum_horizontal().item() == 0  # every series quoted throughout
    basis = grid.with_columns(mid=(pl.col("bid_price") + pl.col("ask_price")) / 2).pivot(
        on="exchange", index="time", values="mid")
    assert set(basis.columns) == {"time", "binance", "binance-usdm"}


def test_a_span_given_before_the_first_row_is_null_there_and_max_age_drops_old_values(
        quotes: pl.DataFrame) -> None:
    first = quotes["local_time"].min()
    start = first - dt.timedelta(seconds=2)  # type: ignore[operator]
    end = first + dt.timedelta(seconds=5)  # type: ignore[operator]
    grid = on_grid(quotes, "250ms", columns=["bid_price", "local_time"], start=start, end=end,
                   max_age="100ms")
    times = grid["time"].unique(maintain_order=True)
    assert times[0] >= start and times[-1] <= end
    expected = _reference(quotes, times, ["exchange", "symbol"], ["bid_price", "local_time"],
                          max_age=dt.timedelta(milliseconds=100))
    assert_frame_equal(_sorted(grid, ["exchange", "symbol"]), expected)
    assert 0 < grid["bid_price"].null_count() < grid.height  # some quotes were too old
    before = grid.filter(pl.col("time") < first)
    assert before.height and before["bid_price"].null_count() == before.height
    # int ns since the epoch and a timedelta give the same grid
    same = on_grid(quotes, dt.timedelta(milliseconds=250), columns=["bid_price", "local_time"],
                   start=int(start.timestamp()) * 10**9 + start.microsecond * 1000,
                   end=end, max_age=dt.timedelta(milliseconds=100))
    assert_frame_equal(same, grid)


def test_exchange_time_and_a_dataset_read_lazily(quotes: pl.DataFrame, tmp_path: Path) -> None:
    export_parquet(SPOT, None, tmp_path / "ds", normalized=True)
    export_parquet(USDM, None, tmp_path / "ds", normalized=True)
    lazy = load_normalized(tmp_path / "ds", "quotes")
    with pytest.warns(UserWarning, match="BTCUSDT"):  # spot's bookTicker has no exchange time
        grid = on_grid(lazy, "2s", columns=["bid_price"], time="exchange_time")
    loaded = lazy.collect().sort("exchange_time", maintain_order=True)
    times = grid["time"].unique(maintain_order=True)
    assert_frame_equal(_sorted(grid, ["exchange", "symbol"]),
                       _reference(loaded, times, ["exchange", "symbol"], ["bid_price"],
                                  time="exchange_time"))


def test_a_series_with_no_time_in_any_row_is_named_in_a_warning(quotes: pl.DataFrame) -> None:
    """Binance spot quotes have no exchange time: left out, and said so, naming the venue."""
    with pytest.warns(UserWarning, match="left out of the grid") as caught:
        grid = on_grid(quotes, "1s", columns=["bid_price"], time="exchange_time")
    assert [str(w.message) for w in caught] == [
        "1 series has no exchange_time in any row and is left out of the grid: binance "
        "BTCUSDT; sample it by time='local_time', or fill its exchange_time"]
    assert grid["exchange"].unique().to_list() == ["binance-usdm"]
    # A series with some times keeps them, quietly; one that lacks them everywhere is named.
    t0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
    table = pl.DataFrame({"exchange": ["a", "a", "b"] + [f"c{i}" for i in range(7)],
                          "exchange_time": [t0, None, t0] + [None] * 7, "x": list(range(10))})
    with pytest.warns(UserWarning, match=r"^7 series have .*: c0, c1, c2, c3, c4, and 2 more;"):
        assert on_grid(table, "1s", columns=["x"], time="exchange_time").rows() == [
            (t0, "a", 0), (t0, "b", 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert on_grid(table.head(3), "1s", columns=["x"], time="exchange_time").height == 2
    with pytest.raises(ValueError, match="no row with a time in 'exchange_time'"):
        on_grid(table.tail(7), "1s", time="exchange_time")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Bad input is refused as such, before any warning; a row with neither a key nor
        # a time names no series and is left out unsaid, as any row with no time.
        coarse = table.with_columns(pl.col("exchange_time").dt.cast_time_unit("ms"))
        with pytest.raises(ValueError, match="not a whole number of ms"):
            on_grid(coarse, "500us", time="exchange_time")
        keyless = pl.DataFrame({"exchange": [None], "exchange_time": [None], "x": [10]},
                               schema=table.schema)
        assert on_grid(pl.concat([table.head(3), keyless]), "1s", columns=["x"],
                       time="exchange_time").height == 2


def test_one_series_without_exchange_or_symbol_columns() -> None:
    t0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
    table = pl.DataFrame({"local_time": [t0, t0 + dt.timedelta(seconds=3)], "x": [1, 2]})
    grid = on_grid(table, "1s")  # each row also tells when its value was received
    assert grid.columns == ["time", "local_time", "x"]
    assert grid.rows() == [(t0 + dt.timedelta(seconds=s), t0 + dt.timedelta(seconds=r), x)
                           for s, r, x in ((0, 0, 1), (1, 0, 1), (2, 0, 1), (3, 3, 2))]


def test_bad_input_is_refused_in_one_line(quotes: pl.DataFrame) -> None:
    first = quotes["local_time"].min()
    cases = [
        (dict(every="1s", columns=["bid"]), "no column(s) ['bid']"),
        (dict(every="1s", by=["venue"]), "no column(s) ['venue']"),
        (dict(every="1s", time="bid_price"), "not a Datetime column"),
        (dict(every="1x"), "every '1x' is not a duration"),
        (dict(every="0s"), "every must be a positive duration"),
        (dict(every=5), "every must be a duration"),
        (dict(every="1s", max_age="-1s"), "max_age must be a positive duration"),
        (dict(every="1s", start=first, end=first - dt.timedelta(seconds=1)),  # type: ignore[operator]
         "is after end"),
        (dict(every="1ns"), f"over {MAX_GRID_ROWS:,}"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=r"^.*" + pl.escape_regex(message)):
            on_grid(quotes, **options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nothing to sample"):
        on_grid(quotes.clear(), "1s")
    with pytest.raises(TypeError, match=r"^on_grid takes a polars DataFrame or LazyFrame, got "
                                        r"builtins.dict$"):
        on_grid(quotes.to_dict(), "1s")  # type: ignore[arg-type]
    t0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
    apart = pl.DataFrame({"exchange": ["a", "b"], "local_time": [t0, t0 + dt.timedelta(hours=1)],
                          "x": [1, 2]})
    with pytest.raises(ValueError, match=r"do not overlap.*give start= and end="):
        on_grid(apart, "1s")
    # a's only row carried an hour past it: right, and what a span past the data gives.
    with pytest.warns(UserWarning, match=r"^1 series \(a\) ends before end 2024-01-01 "
                                         r"01:00:00\.000 UTC \(the first at 2024-01-01 "
                                         r"00:00:00\.000 UTC\): past its last row the grid "
                                         r"carries its last value forward; max_age= leaves "
                                         r"values that old null$"):
        spanned = on_grid(apart, "30m", start=t0, end=t0 + dt.timedelta(hours=1), columns=["x"])
    with warnings.catch_warnings():  # with max_age, nothing is carried past it: no warning
        warnings.simplefilter("error")
        aged = on_grid(apart, "30m", start=t0, end=t0 + dt.timedelta(hours=1), columns=["x"],
                       max_age="40m")
    assert aged["x"].to_list() == [1, None, 1, None, None, 2]
    assert spanned.rows() == [
        (t0, "a", 1), (t0, "b", None), (t0 + dt.timedelta(minutes=30), "a", 1),
        (t0 + dt.timedelta(minutes=30), "b", None), (t0 + dt.timedelta(hours=1), "a", 1),
        (t0 + dt.timedelta(hours=1), "b", 2)]


def test_span_ends_are_exact_to_the_nanosecond() -> None:
    base = 1_700_000_000 * 10**9
    ns = pl.Datetime("ns", "UTC")
    table = pl.DataFrame({"exchange": ["a", "b", "a", "b"],
                          "local_time": pl.Series([base, base + 1_000_000_500, base + 3 * 10**9,
                                                   base + 3 * 10**9]).cast(ns),
                          "x": [1, 2, 3, 4]})
    # b begins 500 ns after a whole second: that second is before it, so not on the grid.
    grid = on_grid(table, "1s", columns=["x"])
    assert grid["time"].dt.epoch("ns").unique().to_list() == [base + 2 * 10**9, base + 3 * 10**9]
    assert grid["x"].null_count() == 0
    # start and end inclusive, to the ns, on a ns grid
    tight = on_grid(table, "100ns", columns=["x"], start=base + 250, end=base + 650)
    assert tight["time"].dt.epoch("ns").unique().to_list() == [base + 300, base + 400,
                                                                base + 500, base + 600]


def test_other_time_units_and_zones() -> None:
    t0 = dt.datetime(2024, 1, 1, 9, 30)
    table = pl.DataFrame({"symbol": ["X", "X"], "local_time": [t0, t0 + dt.timedelta(seconds=2)],
                          "x": [1, 2]}).with_columns(pl.col("local_time").cast(pl.Datetime("ms"))
                                                     .dt.replace_time_zone("Asia/Kolkata"))
    grid = on_grid(table, "1s", columns=["x"])
    assert grid.schema["time"] == pl.Datetime("ms", "Asia/Kolkata")
    assert grid["x"].to_list() == [1, 1, 2]
    with pytest.raises(ValueError, match=r"every '1500us' is not a whole number of ms"):
        on_grid(table, "1500us")
    naive = table.with_columns(pl.col("local_time").dt.replace_time_zone(None))
    assert on_grid(naive, "1s", columns=["x"], start=t0, end=t0 + dt.timedelta(seconds=1))[
        "x"].to_list() == [1, 1]  # naive times are read as UTC, like start and end


def test_what_is_not_a_series_or_collides_is_refused(quotes: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"1 row\(s\) have a null exchange or symbol"):
        on_grid(quotes.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(None)
                                    .otherwise(pl.col("symbol")).alias("symbol")), "1s")
    with pytest.raises(ValueError, match="a column 'time'"):
        on_grid(quotes.with_columns(time=pl.col("local_time")), "1s")
    # one name, not a list of names, is taken as one column
    one = on_grid(quotes, "1s", by="exchange", columns="bid_price")
    assert one.columns == ["time", "exchange", "bid_price"]



def test_a_pandas_table_is_refused_with_the_way_to_convert_it(quotes: pl.DataFrame) -> None:
    pandas = pytest.importorskip("pandas", reason="pandas is not installed")
    table = pandas.DataFrame({"local_time": quotes["local_time"].to_list()})
    with pytest.raises(TypeError, match=r"got pandas\..*DataFrame \(polars.from_pandas\(table\) "
                                        r"converts it\)$"):
        on_grid(table, "1s")


@pytest.mark.parametrize(("given", "unit"), [
    (1_723_161_260, r"seconds \(times 10\*\*9 for ns\)"),
    (1_723_161_260_000, r"milliseconds \(times 10\*\*6 for ns\)"),
    (1_723_161_260_000_000, r"microseconds \(times 10\*\*3 for ns\)"),
])
def test_an_int_time_in_another_unit_than_ns_is_told_of(
    quotes: pl.DataFrame, tmp_path: Path, given: int, unit: str,
) -> None:
    # Seconds for ns read as January 1970: the grid, the dataset's filters find nothing or
    # everything, silently; each says what it read and what the number looks like.
    told = rf"^start={given} is read as ns since the epoch \(1970-01-.*\); it looks like {unit}$"
    with pytest.warns(UserWarning, match="is read as ns since the epoch") as caught:
        on_grid(quotes, "1s", columns=["bid_price"], start=given, end=given + 5)
    assert [str(w.message).partition("=")[0] for w in caught] == ["start", "end"]
    assert re.match(told, str(caught[0].message))
    export_parquet(SPOT, None, tmp_path / "ds", normalized=True)
    with pytest.warns(UserWarning, match=told):
        load_normalized(tmp_path / "ds", "trades", start=given)
    with pytest.warns(UserWarning, match=told):
        load_dataset(tmp_path / "ds", "trade", start=given)
    with pytest.warns(UserWarning, match=rf"^end={given} is read as ns"):
        load_dataset(tmp_path / "ds", "trade", end=given)
    with pytest.raises(ValueError, match=r"^not a time .*: True$"):  # an int to Python
        load_dataset(tmp_path / "ds", "trade", start=True)
    # ns, datetimes, and 0 (the epoch, as "from the beginning"): nothing to tell.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(tmp_path / "ds", "trade", start=0, end=1_723_161_260 * 10**9)
        load_normalized(tmp_path / "ds", "trades", start=dt.datetime(2024, 8, 8))
