"""Exponential backoff with jitter for reconnect schedules.

The delay for attempt ``n`` (1-based) is
``min(max_delay, initial_delay * multiplier ** (n - 1))``, then spread by
``± jitter`` of itself so that many clients dropped at once do not reconnect
in lockstep. Jitter draws from the ``rng`` passed in, so a seeded
:class:`random.Random` gives the same schedule every run.
"""

from __future__ import annotations

import random

from .config import DEFAULT_BACKOFF, RATE_LIMIT_BACKOFF, BackoffConfig

__all__ = ["DEFAULT_BACKOFF", "RATE_LIMIT_BACKOFF", "BackoffConfig", "backoff_delay"]


def backoff_delay(
    attempt: int, config: BackoffConfig = DEFAULT_BACKOFF, rng: random.Random | None = None
) -> float:
    """Return the delay in seconds before retry number ``attempt``.

    Parameters
    ----------
    attempt
        1 for the first retry, 2 for the second, and so on.
    config
        The schedule.
    rng
        Source of jitter. Pass a seeded :class:`random.Random` for a
        reproducible schedule; ``None`` uses the module's shared generator.

    Returns
    -------
    float
        Seconds to wait, within ``[0, config.max_delay]``.

    Raises
    ------
    ValueError
        If ``attempt`` is less than 1.

    Examples
    --------
    >>> cfg = BackoffConfig(initial_delay=1.0, multiplier=2.0, jitter=0.0)
    >>> [backoff_delay(n, cfg) for n in (1, 2, 3)]
    [1.0, 2.0, 4.0]
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    # Cap the exponent first so huge attempt numbers cannot overflow a float.
    exponent = min(attempt - 1, 1024)
    try:
        base = config.initial_delay * config.multiplier**exponent
    except OverflowError:
        base = config.max_delay
    base = min(config.max_delay, base)
    if config.jitter:
        draw = (rng or random).uniform(-1.0, 1.0)
        base *= 1.0 + config.jitter * draw
    return max(0.0, min(config.max_delay, base))
