"""The garbage collector's pauses: counted across callers and threads, left as found."""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
import weakref
from collections.abc import Iterator

import pytest

from wsresearch._collector import Collector, paused

ROUNDS = 100_000


@contextlib.contextmanager
def collector(on: bool) -> Iterator[None]:
    """The collector switched ``on`` (or off) for a test, and put back as it was."""
    was = gc.isenabled()
    (gc.enable if on else gc.disable)()
    try:
        yield
    finally:
        (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("on", [True, False])
def test_a_paused_call_runs_with_the_collector_off_and_leaves_it_as_it_was(on: bool) -> None:
    seen: list[bool] = []
    with collector(on):
        paused(lambda item: seen.append(gc.isenabled()))(None)
        assert gc.isenabled() is on
    assert seen == [False]


def test_a_paused_call_that_raises_turns_the_collector_back_on() -> None:
    def take(item: object) -> None:
        raise RuntimeError("a handler failed")

    with collector(True):
        with pytest.raises(RuntimeError, match="a handler failed"):
            paused(take)(None)
        assert gc.isenabled()


def test_a_replay_begun_inside_a_batch_and_entered_after_it_leaves_the_collector_on() -> None:
    """Its pause is counted when it begins, not when its collector object is made."""
    made: list[Collector] = []
    with collector(True):
        paused(lambda item: made.append(Collector()))(None)
        with made[0]:
            assert not gc.isenabled()
        assert gc.isenabled()


def test_a_replay_that_outlasts_a_batch_keeps_the_collector_off_until_it_ends() -> None:
    with collector(True), contextlib.ExitStack() as replay:
        paused(lambda item: replay.enter_context(Collector()))(None)
        assert not gc.isenabled(), "the replay's pause goes on after the batch"
        replay.close()
        assert gc.isenabled()


def test_pauses_in_two_threads_leave_the_collector_on() -> None:
    """Batches in one thread, replays in another, switching as often as the interpreter can."""
    errors: list[BaseException] = []

    def batches() -> None:
        try:
            take = paused(lambda item: None)
            for _ in range(ROUNDS):
                take(None)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def replays() -> None:
        try:
            for _ in range(ROUNDS):
                with Collector():
                    pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with collector(True):
            threads = [threading.Thread(target=batches), threading.Thread(target=replays)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert not any(thread.is_alive() for thread in threads)
            assert gc.isenabled()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []


class _Cycle:
    """An object that refers to itself: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.mark.parametrize("on", [True, False])
def test_a_replay_runs_the_collector_between_chunks_only_if_it_was_on(on: bool) -> None:
    collected: list[int] = []
    with collector(on):
        with Collector() as paused_for_a_replay:
            weakref.finalize(_Cycle(), collected.append, 1)
            objects = [[] for _ in range(150_000)]  # past the count at which it runs
            paused_for_a_replay.between_chunks()
            assert collected == ([1] if on else [])
            del objects
        assert gc.isenabled() is on
        gc.collect()
    assert collected == [1]
