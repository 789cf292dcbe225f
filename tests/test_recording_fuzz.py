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


@settings(max_examples=sized(35, 120), deadline=None, derandomize=True,
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


@settings(max_examples=sized(20, 100), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(holes=st.lists(st.tuples(st.sampled_from(SEGMENTS), st.floats(0, 1),
                                st.sampled_from(list(EVENT_SCHEMA))), min_size=1, max_size=6))
def test_events_without_a_required_value_are_left_out_never_raised(
    holes: list[tuple[Path, float, str]],
) -> None:  # the session is of version 1: a lost closed_by is lost from nothing
    """A value lost from any column: the event goes where it was a required one's, and
    reading, replaying, reporting on and exporting the rest never raise."""
    with tempfile.TemporaryDirectory(prefix="wsr-fuzz-") as folder:
        copy = Path(folder) / "rec"
        shutil.copytree(SESSION, copy)
        lost: set[int] = set()  # the seq of each event that lost a required value
        for which, where, column in holes:
            table = pl.read_parquet(copy / which)
            if column not in table.columns:
                continue
            row = min(int(where * table.height), table.height - 1)
            if column in REQUIRED:
                lost.add(table["seq"][row])
            table.with_columns(pl.when(pl.int_range(pl.len()) == row).then(None)
                               .otherwise(pl.col(column)).alias(column)).write_parquet(
                copy / which)
        recording = Recording.open(copy)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            events = recording.events()
        kept = sorted(set(Recording.open(SESSION).events()["seq"].to_list()) - lost)
        assert events["seq"].to_list() == kept
        assert events.select(REQUIRED).null_count().sum_horizontal().item() == 0
        assert bool(lost) == any("without a value of" in str(w.message) for w in caught)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # what went is said as above
            chunked = pl.concat(list(Recording.open(copy).chunks(7)))
            assert chunked.equals(events)
            assert pl.concat(list(recording.columns(["kind"])))["seq"].sort().to_list() == kept
            replay(recording, SPEC)
            quality_report(recording, SPEC).summary()
            export_parquet(recording, SPEC, Path(folder) / "out")
