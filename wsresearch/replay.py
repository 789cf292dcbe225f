"""Deterministic replay of a recording through the live pipeline's own parts.

:func:`replay` feeds a recording's frames, in ``seq`` order, through the same
parser, health monitor and frame store a live :class:`~wsresearch.feed.Feed`
uses, on a :class:`~wsresearch.clock.VirtualClock` set from the recorded
timestamps. Nothing reads the wall clock or draws unseeded randomness, and
nothing depends on machine speed, so two replays of one recording with one spec
give byte-identical frames, the same health transitions and the same counters.

Health is checked at the recorded timeline's check points: every
``spec.check_interval`` seconds from the session's first event, just as the live
monitor's timer did, each check run before the first frame received after it.

``mode="complete"`` processes every recorded frame. ``mode="faithful"`` skips the
frames the live session discarded (queue overflow, stale generation), recorded
as ``drop`` events, so its frames equal the live feed's.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from .clock import VirtualClock
from .feed import Feed
from .health import HealthTransition
from .parser import CONTROL, DUPLICATE, OK, REJECT_REASONS, Reject
from .recording import Recording
from .spec import FeedSpec

__all__ = ["ReplayResult", "replay"]

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class ReplayResult:
    """What a replay produced.

    Attributes
    ----------
    frames
        One DataFrame per channel, as ``Feed.frame`` gives them.
    health_transitions
        Every health change, on the recorded timeline.
    stats
        Counters: ``frames``, ``replayed``, ``skipped`` (faithful drops), ``ok``,
        ``duplicates``, ``control``, ``invalid``, ``rejects`` (by reason),
        ``stale``, ``generations``.
    rejects
        The rejected frames, with raw text and reason.
    """

    frames: dict[str, pl.DataFrame]
    health_transitions: list[HealthTransition]
    stats: dict[str, Any] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)


def replay(
    recording: Recording | str | os.PathLike[str],
    spec: FeedSpec,
    mode: Literal["complete", "faithful"] = "complete",
) -> ReplayResult:
    """Replay ``recording`` through ``spec``'s pipeline; a pure function of both.

    Parameters
    ----------
    recording
        A :class:`~wsresearch.recording.Recording` or its directory.
    spec
        The spec that decides how frames become rows (usually the one recorded with).
    mode
        ``"complete"``: every frame; ``"faithful"``: skip what the live session dropped.

    Returns
    -------
    ReplayResult

    Raises
    ------
    ValueError
        For an unknown ``mode``.
    RecordingFormatError
        If ``recording`` is not a readable recording.

    Examples
    --------
    >>> result = replay("data/sessions/sim-faults", spec)          # doctest: +SKIP
    >>> result.frames["trade"].height
    """
    if mode not in ("complete", "faithful"):
        raise ValueError(f"mode must be 'complete' or 'faithful', got {mode!r}")
    if not isinstance(recording, Recording):
        recording = Recording.open(recording)
    events = recording.events()
    skip: set[int] = set()
    if mode == "faithful":
        drops = events.filter(pl.col("kind") == "drop")["ref_seq"].drop_nulls()
        skip = set(drops.to_list())

    clock = VirtualClock(mono_ns=0, wall_ns=0)
    feed = Feed(spec, clock=clock)
    health = feed.health
    interval = round(spec.check_interval * _NS_PER_S)
    started = False
    next_check = 0
    frames = replayed = skipped = generations = 0

    columns = ("seq", "generation", "mono_ns", "wall_ns", "kind", "data", "binary")
    for seq, generation, mono, wall, kind, data, binary in events.select(columns).iter_rows():
        if not started:
            clock.set(mono, wall)
            health.reset()
            next_check = mono + interval
            started = True
        while next_check <= mono:  # the checks the live timer made before this event
            clock.set(max(clock.monotonic_ns(), next_check))
            health.check()
            next_check += interval
        clock.set(max(clock.monotonic_ns(), mono), wall)
        if kind == "open":
            generations += 1
            feed._current_generation = generation
        elif kind == "frame":
            frames += 1
            if seq in skip:
                skipped += 1
                continue
            replayed += 1
            payload: str | bytes = base64.b64decode(data) if binary else data
            feed._process((payload, generation, mono, wall, seq))

    counts = feed.parser.counts
    stats: dict[str, Any] = {
        "frames": frames,
        "replayed": replayed,
        "skipped": skipped,
        "ok": counts[OK],
        "duplicates": counts[DUPLICATE],
        "control": counts[CONTROL],
        "invalid": sum(counts[r] for r in REJECT_REASONS),
        "rejects": {r: counts[r] for r in REJECT_REASONS},
        "stale": feed._stale,
        "generations": generations,
    }
    return ReplayResult(
        frames=feed.frames,
        health_transitions=list(health.transitions),
        stats=stats,
        rejects=feed.rejects,
    )
