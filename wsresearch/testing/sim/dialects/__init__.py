"""How the simulator speaks each exchange: requests it accepts, replies, and message shapes.

A :class:`Dialect` turns the simulator's market events (trades, tickers, book
updates, heartbeats, in one generic shape) into one exchange's frames, for
the subscriptions each connection made in that exchange's own request format.
It acknowledges subscriptions as the exchange does, rejects unknown channels
and symbols with the exchange's error frame, answers its app-level ping, and
sends a book snapshot before the first update where the exchange does.
Sequence fields count per symbol (per connection for Coinbase's
``sequence_num``), so a ``sequence_gap`` fault shows up exactly as a real gap.

One module per exchange, plus :mod:`~wsresearch.testing.sim.dialects.generic`,
the simulator's own. A dialect's module (and its exchange adapter's models) is
imported when that profile is first used, so a simulator speaking one dialect
does not build every exchange's models.

Only what the simulator needs is modelled: no auth on the exchanges, no
unsubscribe, and book checksums are not computed (they are sent as 0).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator, Mapping

from ...._catalog import DIALECT_CLASSES as _WHERE
from ...._catalog import PROFILES
from ._base import Dialect, Subscriber

__all__ = ["DIALECTS", "PROFILES", "Dialect", "Subscriber", "dialect"]


@functools.cache
def dialect(profile: str) -> Dialect:
    """The dialect of ``profile``, its module imported on first use.

    Raises
    ------
    ValueError
        For a profile the simulator does not speak, listing those it does.
    """
    try:
        module, name = _WHERE[profile]
    except (KeyError, TypeError):
        raise ValueError(f"unknown simulator profile {profile!r}; choose from "
                         f"{list(PROFILES)}") from None
    made: Dialect = getattr(importlib.import_module(f"{__name__}.{module}"), name)()
    return made


class _Dialects(Mapping[str, Dialect]):
    """Every dialect by profile name; a dialect is made when first looked up."""

    def __getitem__(self, profile: str) -> Dialect:
        if profile not in _WHERE:
            raise KeyError(profile)
        return dialect(profile)

    def __iter__(self) -> Iterator[str]:
        return iter(PROFILES)

    def __len__(self) -> int:
        return len(PROFILES)

    def __repr__(self) -> str:
        return f"<simulator dialects: {', '.join(PROFILES)}>"


DIALECTS: Mapping[str, Dialect] = _Dialects()
"""The simulator's dialects by profile name (:data:`PROFILES`), made on first lookup."""
