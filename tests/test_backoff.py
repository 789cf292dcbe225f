import random

import pytest
from pydantic import ValidationError

from wsresearch import BackoffConfig
from wsresearch.lowlevel import DEFAULT_BACKOFF, RATE_LIMIT_BACKOFF, backoff_delay


def test_exponential_growth_without_jitter() -> None:
    cfg = BackoffConfig(initial_delay=0.5, max_delay=10.0, multiplier=3.0, jitter=0.0)
    assert [backoff_delay(n, cfg) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10.0, 10.0]


def test_jitter_is_deterministic_with_a_seeded_rng() -> None:
    a = [backoff_delay(n, DEFAULT_BACKOFF, random.Random(42)) for n in range(1, 10)]
    b = [backoff_delay(n, DEFAULT_BACKOFF, random.Random(42)) for n in range(1, 10)]
    c = [backoff_delay(n, DEFAULT_BACKOFF, random.Random(43)) for n in range(1, 10)]
    assert a == b
    assert a != c


def test_jitter_stays_within_its_band_and_the_cap() -> None:
    cfg = BackoffConfig(initial_delay=1.0, max_delay=8.0, multiplier=2.0, jitter=0.25)
    rng = random.Random(7)
    for attempt in range(1, 12):
        base = min(8.0, 2.0 ** (attempt - 1))
        for _ in range(200):
            d = backoff_delay(attempt, cfg, rng)
            assert base * 0.75 - 1e-9 <= d <= min(8.0, base * 1.25) + 1e-9


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert backoff_delay(10**9, BackoffConfig(jitter=0.0)) == DEFAULT_BACKOFF.max_delay


def test_rate_limit_schedule_is_slower_at_every_attempt() -> None:
    for attempt in range(1, 8):
        slow = backoff_delay(attempt, RATE_LIMIT_BACKOFF.model_copy(update={"jitter": 0.0}))
        fast = backoff_delay(attempt, DEFAULT_BACKOFF.model_copy(update={"jitter": 0.0}))
        assert slow > fast or slow == RATE_LIMIT_BACKOFF.max_delay


def test_bad_input_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="attempt must be >= 1"):
        backoff_delay(0)
    with pytest.raises(ValidationError, match="initial_delay"):
        BackoffConfig(initial_delay=0)
    with pytest.raises(ValidationError, match="jitter"):
        BackoffConfig(jitter=1.5)
    with pytest.raises(ValidationError, match="max_delay"):
        BackoffConfig(initial_delay=5, max_delay=1)
    with pytest.raises(ValidationError, match="extra"):
        BackoffConfig(initial_delay_ms=5)  # type: ignore[call-arg]


def test_config_is_frozen_and_readable() -> None:
    with pytest.raises(ValidationError):
        DEFAULT_BACKOFF.initial_delay = 3  # type: ignore[misc]
    assert "initial_delay=1.0" in repr(DEFAULT_BACKOFF)
