"""Test rigs: a simulated exchange, a faulty network, and golden-file replay tests.

As ``trio.testing`` sits beside trio, these sit beside the product: what a
researcher needs to try a feed offline and to pin a parser's output, kept out
of the product's namespace.

:class:`Simulator` (:mod:`~wsresearch.testing.sim`)
    A local exchange on 127.0.0.1 that streams seeded market data in its own
    dialect or an exchange's (:data:`PROFILES`, :data:`DIALECTS`), and injects
    the faults exchanges inflict (:class:`Fault`, :func:`parse_fault`).
    :func:`generic_frames` makes its frames with no server at all.
:class:`FaultProxy` (:mod:`~wsresearch.testing.proxy`)
    A TCP proxy that injects the network's faults: half-open links, resets,
    latency, throttling, frames split into pieces.
:func:`assert_replay_matches` (:mod:`~wsresearch.testing.golden`)
    Replays a recording through a spec and compares it with committed
    snapshots. The pytest plugin (:mod:`~wsresearch.testing.plugin`,
    installed with the package) adds ``--update-snapshots`` and the
    ``replay_snapshot`` fixture.

The names are imported on first use: reading :func:`assert_replay_matches`
does not start importing the simulator, and ``import wsresearch.testing``
imports neither pytest nor websockets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _lazy_namespace

if TYPE_CHECKING:
    from .golden import UPDATE_ENV, assert_replay_matches, frame_differences
    from .proxy import FaultProxy
    from .sim import (
        DIALECTS,
        PROFILES,
        Dialect,
        Fault,
        FaultKind,
        GenericDialect,
        Market,
        Simulator,
        Subscriber,
        generic_frames,
        parse_fault,
    )

_lazy_namespace(__name__, {
    "Simulator": ".sim.server",
    "Fault": ".sim.server",
    "FaultKind": ".sim.server",
    "parse_fault": ".sim.server",
    "PROFILES": ".sim.dialects",
    "DIALECTS": ".sim.dialects",
    "Dialect": ".sim.dialects",
    "Subscriber": ".sim.dialects",
    "GenericDialect": ".sim.dialects.generic",
    "generic_frames": ".sim.dialects.generic",
    "Market": ".sim.market",
    "FaultProxy": ".proxy",
    "UPDATE_ENV": ".golden",
    "assert_replay_matches": ".golden",
    "frame_differences": ".golden",
})

__all__ = [
    "DIALECTS",
    "Dialect",
    "Fault",
    "FaultKind",
    "FaultProxy",
    "GenericDialect",
    "Market",
    "PROFILES",
    "Simulator",
    "Subscriber",
    "UPDATE_ENV",
    "assert_replay_matches",
    "frame_differences",
    "generic_frames",
    "parse_fault",
]
