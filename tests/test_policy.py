"""The reconnect policy as tables: every rule, with no socket, no event loop and no clock.

Each test feeds a :class:`ReconnectPolicy` the closes and failed opens a connection
would see (a close code, how long the connection stayed open, whether this side asked
for it) and checks the decisions. The socket tests (test_connection.py,
test_close_matrix.py, test_reconnect_policy.py) check that the manager obeys them.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from wsresearch.backoff import backoff_delay
from wsresearch.config import BackoffConfig, CloseCategory, ReconnectConfig
from wsresearch.errors import MaxReconnectsExceededError, WebSocketAuthError, WebSocketError
from wsresearch.policy import Halt, ReconnectPolicy, Request, Retry

AUTH, RATE = CloseCategory.AUTH_FAILURE, CloseCategory.RATE_LIMITED
NORMAL, UNKNOWN = CloseCategory.NORMAL, CloseCategory.UNKNOWN

BACKOFF = BackoffConfig(initial_delay=1.0, multiplier=2.0, max_delay=60.0, jitter=0.0)
RATE_LIMIT = BackoffConfig(initial_delay=10.0, multiplier=3.0, max_delay=300.0, jitter=0.0)
QUICK = 0.1  # seconds open: well under stable_after
STABLE = 60.0  # seconds open: well over stable_after

Event = Callable[[ReconnectPolicy], Retry | Halt]


def closed(code: int | None, open_for: float = QUICK, requested: Request | None = None) -> Event:
    """A connection that opened, stayed open ``open_for`` seconds and closed with ``code``."""
    return lambda policy: policy.after_close(
        code, f"reason {code}", open_for=open_for, requested=requested)


def refused(status: int | None = None) -> Event:
    """An open that failed: answered with HTTP ``status``, or not at all."""
    return lambda policy: policy.after_failed_open(
        "connection refused" if status is None else f"HTTP {status}", status=status)


def policy(**settings: object) -> ReconnectPolicy:
    """A policy on the jitter-free test schedules, with ``settings`` for ReconnectConfig."""
    config = {"backoff": BACKOFF, "rate_limit_backoff": RATE_LIMIT, "stable_after": 10.0,
              **settings}
    return ReconnectPolicy(ReconnectConfig(**config))  # type: ignore[arg-type]


def run(subject: ReconnectPolicy, events: list[Event]) -> list[Retry | Halt]:
    """Every decision, in order; nothing is asked after a halt."""
    decisions: list[Retry | Halt] = []
    for event in events:
        decisions.append(event(subject))
        if isinstance(decisions[-1], Halt):
            break
    return decisions


def retry(decision: Retry | Halt) -> Retry:
    assert isinstance(decision, Retry), decision
    return decision


def halt(decision: Retry | Halt) -> WebSocketError | None:
    assert isinstance(decision, Halt), decision
    return decision.error


# Every category, after a long or a short connection, closed by the peer or by a
# requested reconnect. Each row starts from two quick failures (attempt 2), so a
# reset shows as attempt 1 and an escalation as attempt 3.
@pytest.mark.parametrize(("code", "open_for", "requested", "expected"), [
    pytest.param(1000, QUICK, None, Retry(4.0, 3, NORMAL),
                 id="a normal close of a short connection escalates to attempt 3"),
    pytest.param(1000, STABLE, None, Retry(1.0, 1, NORMAL),
                 id="a normal close of a stable connection starts the schedule again"),
    pytest.param(1000, QUICK, "reconnect", Retry(4.0, 3, NORMAL),
                 id="a resync of a short connection escalates like any failure"),
    pytest.param(1000, STABLE, "reconnect", Retry(0.0, 0, NORMAL),
                 id="a resync of a stable connection goes at once, as no failure"),
    pytest.param(None, QUICK, None, Retry(4.0, 3, NORMAL),
                 id="no close frame at all is a normal close"),
    pytest.param(4000, QUICK, None, Retry(4.0, 3, UNKNOWN),
                 id="an unknown close of a short connection escalates on the normal backoff"),
    pytest.param(4000, STABLE, None, Retry(1.0, 1, UNKNOWN),
                 id="an unknown close of a stable connection starts the schedule again"),
    pytest.param(4000, STABLE, "reconnect", Retry(0.0, 0, UNKNOWN),
                 id="a resync of a stable connection goes at once whatever the code"),
    pytest.param(4429, QUICK, None, Retry(10.0, 3, RATE),
                 id="a rate limit of a short connection takes step 1 of its own schedule"),
    pytest.param(4429, STABLE, None, Retry(10.0, 1, RATE),
                 id="a rate limit of a stable connection also resets the attempt count"),
    pytest.param(1013, QUICK, "reconnect", Retry(10.0, 3, RATE),
                 id="a requested reconnect of a short connection closed as 1013 waits out the "
                    "rate limit"),
    pytest.param(4429, STABLE, "reconnect", Retry(0.0, 0, RATE),
                 id="a resync of a stable connection goes at once even as 4429"),
    pytest.param(4401, QUICK, None, Retry(4.0, 3, AUTH),
                 id="one auth failure retries on the normal backoff"),
    pytest.param(4401, STABLE, None, Retry(1.0, 1, AUTH),
                 id="an auth failure of a stable connection resets the attempts"),
    pytest.param(1008, QUICK, "reconnect", Retry(4.0, 3, AUTH),
                 id="a requested reconnect of a short connection closed as 1008 escalates"),
    pytest.param(4403, STABLE, "reconnect", Retry(0.0, 0, AUTH),
                 id="a resync of a stable connection goes at once even as 4403"),
])
def test_each_category_after_a_short_or_stable_connection_requested_or_not(
    code: int | None, open_for: float, requested: Request | None, expected: Retry,
) -> None:
    subject = policy()
    run(subject, [closed(1006), closed(1006)])
    assert subject.attempt == 2
    assert closed(code, open_for, requested)(subject) == expected
    assert subject.attempt == expected.attempt


@pytest.mark.parametrize("open_for", [QUICK, STABLE])
@pytest.mark.parametrize("code", [1000, 1006, 4000, 4401, 4429])
def test_a_disconnect_halts_with_no_error_and_counts_nothing(code: int, open_for: float) -> None:
    subject = policy()
    run(subject, [closed(1006), closed(4429), closed(4401, STABLE)])
    before = repr(subject)
    assert closed(code, open_for, "disconnect")(subject) == Halt(None)
    assert subject.after_failed_open("cancelled", requested="disconnect") == Halt(None)
    assert repr(subject) == before


@pytest.mark.parametrize(("events", "retries", "code"), [
    pytest.param([closed(1000)] * 4, 3, 1000, id="three quick closes retry and the fourth halts"),
    pytest.param([refused()] * 4, 3, 1006, id="three failed opens retry and the fourth halts"),
    pytest.param([closed(4429), refused(429), closed(1013), closed(4429)], 3, 4429,
                 id="rate limits spend the same budget as everything else"),
    pytest.param([closed(1000, requested="reconnect")] * 4, 3, 1000,
                 id="resyncs that fail at once spend the budget"),
    pytest.param([closed(1000), closed(1000), closed(1000, STABLE), closed(1000), closed(1000),
                  closed(4000)], 5, 4000,
                 id="a stable connection between gives a fresh budget"),
])
def test_max_attempts_consecutive_failures_halt_with_max_reconnects_exceeded(
    events: list[Event], retries: int, code: int,
) -> None:
    decisions = run(policy(max_attempts=3), events)
    assert len(decisions) == retries + 1
    assert all(isinstance(d, Retry) for d in decisions[:-1])
    error = halt(decisions[-1])
    assert isinstance(error, MaxReconnectsExceededError)
    assert (error.attempts, error.code) == (3, code)  # the code of the close that spent it


def test_with_max_attempts_none_the_policy_never_gives_up() -> None:
    subject = policy(max_attempts=None)
    decisions = run(subject, [closed(1006)] * 1000)
    assert len(decisions) == 1000 and subject.attempt == 1000
    assert retry(decisions[-1]).delay == BACKOFF.max_delay


@pytest.mark.parametrize(("events", "halts_at"), [
    pytest.param([closed(4401)] * 3, 3, id="three auth failures in a row halt at the third"),
    pytest.param([refused(401), refused(403), closed(1008)], 3,
                 id="HTTP 401 and 403 at the handshake and 1008 are auth failures too"),
    pytest.param([closed(4401), closed(1006), closed(4401), closed(4401)], 4,
                 id="a short connection closed otherwise between does not break the run"),
    pytest.param([closed(4401), closed(4401, STABLE), closed(4403)], 3,
                 id="an auth failure of a stable connection still counts"),
    pytest.param([closed(4401), closed(4401), closed(1000, STABLE), closed(4401), closed(4401),
                  closed(4401)], 6,
                 id="a stable connection closed otherwise starts the count again"),
    pytest.param([closed(4401), closed(4401), refused(), closed(1000, requested="reconnect"),
                  closed(4401)], 5,
                 id="failed opens and resyncs between leave the count alone"),
])
def test_auth_failures_halt_after_max_auth_failure_attempts(
    events: list[Event], halts_at: int,
) -> None:
    decisions = run(policy(max_auth_failure_attempts=3), events)
    assert len(decisions) == halts_at
    error = halt(decisions[-1])
    assert isinstance(error, WebSocketAuthError)
    assert "rejected 3 times in a row" in str(error)
    assert error.code in (4401, 4403, 1008)


def test_a_new_session_forgets_the_auth_failures_but_not_the_attempts() -> None:
    subject = policy(max_auth_failure_attempts=3)
    run(subject, [closed(4401), closed(4401)])
    assert (subject.auth_failures, subject.attempt) == (2, 2)
    subject.start_session()  # connect() after a halt: the key may have been fixed
    assert (subject.auth_failures, subject.attempt) == (0, 2)
    assert retry(closed(4401)(subject)) == Retry(4.0, 3, AUTH)


@pytest.mark.parametrize(("events", "expected"), [
    pytest.param([closed(4429), closed(1006), closed(4429), closed(1006)],
                 [(1, 10.0, RATE), (2, 2.0, NORMAL), (3, 30.0, RATE), (4, 8.0, NORMAL)],
                 id="rate limits and drops alternate, each on its own schedule, one count"),
    pytest.param([closed(4429), closed(1013), refused(429), closed(4429)],
                 [(1, 10.0, RATE), (2, 30.0, RATE), (3, 90.0, RATE), (4, 270.0, RATE)],
                 id="rate limits escalate by three from 10 s"),
    pytest.param([closed(4429), closed(4429), closed(1000, STABLE), closed(4429)],
                 [(1, 10.0, RATE), (2, 30.0, RATE), (1, 1.0, NORMAL), (2, 10.0, RATE)],
                 id="a stable connection starts the rate-limit schedule again too"),
])
def test_rate_limit_closes_count_their_own_steps_on_their_own_schedule(
    events: list[Event], expected: list[tuple[int, float, CloseCategory]],
) -> None:
    decisions = [retry(d) for d in run(policy(max_attempts=None), events)]
    assert [(d.attempt, d.delay, d.category) for d in decisions] == expected


@pytest.mark.parametrize(("open_for", "stable_after", "resets"), [
    pytest.param(9.999, 10.0, False, id="open just under stable_after is still a failure"),
    pytest.param(10.0, 10.0, True, id="open exactly stable_after is a success"),
    pytest.param(3600.0, 10.0, True, id="open an hour is a success"),
    pytest.param(0.0, 0.0, True, id="with stable_after 0 every connection that opened is one"),
])
def test_the_counts_reset_only_after_a_stable_connection(
    open_for: float, stable_after: float, resets: bool,
) -> None:
    subject = policy(stable_after=stable_after, max_attempts=None)
    run(subject, [refused(), refused(429), refused(429)])  # failed opens: never stable
    assert (subject.attempt, subject.rate_attempt) == (3, 2)
    closed(1000, open_for)(subject)
    assert (subject.attempt, subject.rate_attempt) == ((1, 0) if resets else (4, 2))


def test_a_failed_open_is_never_a_stable_connection() -> None:
    subject = policy(stable_after=0.0)
    run(subject, [refused(), refused()])
    assert retry(refused()(subject)) == Retry(4.0, 3, NORMAL)


@pytest.mark.parametrize(("events", "expected"), [
    pytest.param([closed(1000, STABLE, "reconnect")] * 3, [(0, 0.0)] * 3,
                 id="resyncs after good runs all go at once"),
    pytest.param([closed(1000, QUICK, "reconnect")] * 3, [(1, 1.0), (2, 2.0), (3, 4.0)],
                 id="resyncs right after opening back off like failures"),
    pytest.param([closed(1000), closed(1000), closed(1000, STABLE, "reconnect"),
                  closed(1000, QUICK, "reconnect")], [(1, 1.0), (2, 2.0), (0, 0.0), (1, 1.0)],
                 id="a resync after a good run clears the failures before it"),
])
def test_a_requested_reconnect_goes_at_once_only_after_a_stable_connection(
    events: list[Event], expected: list[tuple[int, float]],
) -> None:
    decisions = [retry(d) for d in run(policy(max_attempts=None), events)]
    assert [(d.attempt, d.delay) for d in decisions] == expected


@pytest.mark.parametrize("event", [
    pytest.param(closed(1000), id="a normal close"),
    pytest.param(closed(1000, STABLE), id="a normal close of a stable connection"),
    pytest.param(closed(1000, STABLE, "reconnect"), id="a resync after a good run"),
    pytest.param(closed(4429), id="a rate limit"),
    pytest.param(closed(4000), id="an unknown code"),
    pytest.param(closed(4401), id="a first auth failure"),
    pytest.param(refused(), id="a failed open"),
])
def test_with_reconnect_disabled_every_close_halts(event: Event) -> None:
    error = halt(event(policy(enabled=False)))
    assert type(error) is WebSocketError
    assert "reconnect is disabled" in str(error)


def test_with_reconnect_disabled_the_last_allowed_auth_failure_still_says_auth() -> None:
    error = halt(closed(4401)(policy(enabled=False, max_auth_failure_attempts=1)))
    assert isinstance(error, WebSocketAuthError)


@pytest.mark.parametrize(("status", "category", "code"), [
    pytest.param(401, AUTH, 4401, id="HTTP 401 is an auth failure, as 4401"),
    pytest.param(403, AUTH, 4403, id="HTTP 403 is an auth failure, as 4403"),
    pytest.param(429, RATE, 4429, id="HTTP 429 is a rate limit, as 4429"),
    pytest.param(500, NORMAL, 1006, id="HTTP 500 is a network failure, as 1006"),
    pytest.param(None, NORMAL, 1006, id="no HTTP answer at all is a network failure, as 1006"),
])
def test_a_refused_handshake_counts_as_the_close_it_amounts_to(
    status: int | None, category: CloseCategory, code: int,
) -> None:
    assert retry(refused(status)(policy())).category is category
    error = halt(refused(status)(policy(enabled=False)))
    assert error is not None and error.code == code


def test_exchange_close_codes_are_consulted_first() -> None:
    subject = ReconnectPolicy(ReconnectConfig(backoff=BACKOFF, rate_limit_backoff=RATE_LIMIT),
                              {4000: RATE, 1000: AUTH})
    assert retry(closed(4000)(subject)) == Retry(10.0, 1, RATE)
    assert retry(closed(1000)(subject)).category is AUTH


def test_the_delays_are_backoff_delay_of_the_attempt_with_the_seeded_rng() -> None:
    backoff = BackoffConfig(initial_delay=0.5, multiplier=2.0, max_delay=30.0, jitter=0.5)
    limited = BackoffConfig(initial_delay=5.0, multiplier=3.0, max_delay=200.0, jitter=0.3)
    codes = [1006, 4429, 1000, 4000, 1013, 4401, 4429, 1006, 1011, 4429] * 3
    subject = ReconnectPolicy(ReconnectConfig(max_attempts=None, max_auth_failure_attempts=99,
                                              backoff=backoff, rate_limit_backoff=limited),
                              rng=random.Random(7))
    decisions = [retry(closed(code)(subject)) for code in codes]
    reference = random.Random(7)
    expected, rate_step = [], 0
    for attempt, code in enumerate(codes, 1):
        if code in (4429, 1013):
            rate_step += 1
            expected.append(backoff_delay(rate_step, limited, reference))
        else:
            expected.append(backoff_delay(attempt, backoff, reference))
    assert [d.delay for d in decisions] == expected
    assert [d.attempt for d in decisions] == list(range(1, len(codes) + 1))


def test_the_policy_reads_plainly() -> None:
    subject = policy()
    run(subject, [closed(4429), closed(4401)])
    assert repr(subject) == "ReconnectPolicy(attempt=2, rate_attempt=1, auth_failures=1)"
    assert ReconnectPolicy().config == ReconnectConfig()
