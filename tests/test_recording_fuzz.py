"""A damaged recording: opening it raises RecordingFormatError or nothing; reading it,
replaying it and reporting on it never raise."""

import contextlib
import shutil
import tempfile
import warnings
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsresearch import Recording, RecordingFormatError, export_parquet, quality_report, replay
from wsresearch.exchanges import generic
from wsresearch.recording.format import EVENT_SCHEMA

from .conftest import SESSION, sized

FILES = sorted(p.relative_to(SESSION) for p in SESSION.rglob("*") if p.is_file())
EVENTS = Recording.open(SESSION).events().height
SPEC = generic.spec(url="ws://127.0.0.1:1")  # the session's own adapter


@settings(max_examples=sized(15, 120), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(FILES),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=8),
)
def test_a_truncated_or_corrupted_file_is_refused_or_skipped_never_raised(
    which: Path, cut: float, flips: list[tuple[float, int]]
) -> None:
    with tempfile.TemporaryDirectory(prefix="wsr-fuzz-") as folder:
        copy = Path(folder) / "rec"
        shutil.copytree(SESSION, copy)
        target = copy / which
        data = bytearray(target.read_bytes())
        data = data[: int(len(data) * cut)] if flips == [] else data
        for where, mask in flips:
            if data:
                data[min(int(where * len(data)), len(data) - 1)] ^= mask
        target.write_bytes(bytes(data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a skipped segment is reported as a warning
            try:
                recording = Recording.open(copy)
            except RecordingFormatError:
                return  # the documented refusal: a damaged manifest
            events = recording.events()
            recording.frames()
            repr(recording)
            with contextlib.suppress(RecordingFormatError):  # documented: a spec not rebuilt
                recording.spec  # noqa: B018
            # What a user does next with it: replay it, report on it.
            replay(recording, SPEC)
            quality_report(recording, SPEC).summary()
        assert events.height <= EVENTS  # damage can lose a segment, never invent events


SEGMENTS = [f for f in FILES if f.suffix == ".parquet"]
REQUIRED = ("seq", "generation", "mono_ns", "wall_ns", "kind")
"""The columns an event is read only with a value in."""


@settings(max_examples=sized(10, 120), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(holes=st.lists(st.tuples(st.sampled_from(SEGMENTS), st.floats(0, 1),
                                st.sampled_from(list(EVENT_SCHEMA)), st.booleans()),
                      min_size=1, max_size=6))
def test_events_without_a_required_value_are_left_out_never_raised(
    holes: list[tuple[Path, float, str, bool]],
) -> None:
    """Values lost from any column (at a row, or all of a file's): each event that lost a
    required one is left out, each file is warned of with its count and columns, those
    that lost only others (data, binary, a close's code...) are kept; and reading,
    replaying, reporting on and exporting the rest never raise. (The session is of
    version 1: it has no closed_by to lose.)"""
    with tempfile.TemporaryDirectory(prefix="wsr-fuzz-") as folder:
        copy = Path(folder) / "rec"
        shutil.copytree(SESSION, copy)
        nulled: dict[Path, dict[str, set[int]]] = {}  # per file, per column, the rows
        for which, where, column, whole in holes:
            table = pl.read_parquet(copy / which)
            if column in table.columns:
                rows = (set(range(table.height)) if whole
                        else {min(int(where * table.height), table.height - 1)})
                nulled.setdefault(which, {}).setdefault(column, set()).update(rows)
        lost: set[int] = set()  # the seq of each event that lost a required value
        expected = []  # the warning of each file that lost one
        for which, columns in nulled.items():
            table = pl.read_parquet(copy / which)
            gone = set().union(*(rows for c, rows in columns.items() if c in REQUIRED))
            lost.update(table["seq"][row] for row in gone)
            if gone:
                names = ", ".join(c for c in REQUIRED if c in columns)
                expected.append(f"{which.name}: skipping {len(gone)} event(s) without a "
                                f"value of {names} (a damaged segment)")
            table.with_columns(
                pl.when(pl.int_range(pl.len()).is_in(sorted(rows))).then(None)
                .otherwise(pl.col(column)).alias(column)
                for column, rows in columns.items()).write_parquet(copy / which)
        recording = Recording.open(copy)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            events = recording.events()
        kept = sorted(set(Recording.open(SESSION).events()["seq"].to_list()) - lost)
        assert events["seq"].to_list() == kept
        assert events.select(REQUIRED).null_count().sum_horizontal().item() == 0
        said = [str(w.message).split("/")[-1] for w in caught]
        assert sorted(m for m in said if "skipping" in m) == sorted(expected)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # what went is said as above
            chunked = pl.concat(list(Recording.open(copy).chunks(7)))
            assert chunked.equals(events)
            assert pl.concat(list(recording.columns(["kind"])))["seq"].sort().to_list() == kept
            replay(recording, SPEC)
            quality_report(recording, SPEC).summary()
            export_parquet(recording, SPEC, Path(folder) / "out")
