"""A damaged recording: opening it raises RecordingFormatError or nothing; reading it,
replaying it and reporting on it never raise."""

import contextlib
import shutil
import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsresearch import Recording, RecordingFormatError, quality_report, replay
from wsresearch.exchanges import generic

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
