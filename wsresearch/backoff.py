"""Exponential backoff with jitter for reconnect schedules.

The delay for attempt ``n`` (1-based) is
``min(max_delay, initial_delay * multiplier ** (n - 1))``, then spread by
``± jitter`` of itself so that many clients dropped at once do not reconnect
in lockstep. Jitter draws from the ``rng`` passed in, so a seeded
:class:`random.Random` gives the same schedule every run.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DEFAULT_BACKOFF", "RATE_LIMIT_BACKOFF", "BackoffConfig", "backoff_delay"]


class BackoffConfig(BaseModel):
    """Exponential backoff with jitter; delays in seconds.

    Parameters
    ----------
    initial_delay
        Delay before the first retry.
    max_delay
        Upper bound on any delay, jitter included.
    multiplier
        Growth factor per attempt (``>= 1``).
    jitter
        Relative spread in ``[0, 1]``: ``0.1`` gives delays within ±10 %.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    initial_delay: float = Field(1.0, gt=0, le=86_400)
    max_delay: float = Field(60.0, gt=0, le=86_400)
    multiplier: float = Field(2.0, ge=1, le=1_000)
    jitter: float = Field(0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _check_bounds(self) -> BackoffConfig:
        if self.max_delay < self.initial_delay:
            raise ValueError(
                f"max_delay ({self.max_delay}) must be >= initial_delay ({self.initial_delay})"
            )
        return self


DEFAULT_BACKOFF = BackoffConfig()
"""Backoff for ordinary drops: 1 s doubling to 60 s, ±10 %."""

RATE_LIMIT_BACKOFF = BackoffConfig(initial_delay=5.0, max_delay=300.0, multiplier=3.0, jitter=0.2)
"""Backoff after a rate-limit close (4429, 1013): starts at 5 s, triples to 5 min, ±20 %."""


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
