"""The embedded exchange simulator: a local server, its market, and the dialects it speaks.

:mod:`~wsresearch.testing.sim.server` holds :class:`Simulator` and its faults,
:mod:`~wsresearch.testing.sim.market` the seeded market state every dialect
renders, and :mod:`~wsresearch.testing.sim.dialects` one module per exchange
(plus the simulator's own ``generic``). The names are gathered here and in
:mod:`wsresearch.testing`.
"""

from __future__ import annotations

from .dialects import DIALECTS, PROFILES, Dialect, Subscriber, dialect
from .dialects.generic import GenericDialect, generic_frames
from .market import Market
from .server import Fault, FaultKind, Simulator, parse_fault

__all__ = [
    "DIALECTS",
    "PROFILES",
    "Dialect",
    "Fault",
    "FaultKind",
    "GenericDialect",
    "Market",
    "Simulator",
    "Subscriber",
    "dialect",
    "generic_frames",
    "parse_fault",
]
