"""policy.decide: what follows one attempt, as a pure function (no clock, no I/O)."""

import pytest

from eslhook.delivery.policy import (
    DELIVER, DISABLED_FOR_FAILURES, DISABLED_FOR_GONE, GIVE_UP, HEALTHY, INTERNAL_ERROR,
    REFUSED, RETRY, Attempt, DisablePolicy, HookHealth, Outcome, Policies, RetryPolicy,
    decide)
from eslhook.hooks.model import Hook

NOW = 1_000_000.0
POLICIES = Policies(RetryPolicy(schedule_seconds=(5.0, 30.0, 300.0), jitter=0.0),
                    DisablePolicy(after_seconds=60.0, after_failures=3))


def hook(retries: int = 3) -> Hook:
    return Hook(id="0123456789abcdef0123456789abcdef",
                account_id="4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5", name="t",
                uri="http://127.0.0.1:9/", hook="all", retries=retries)


def failed(status=None, reason="bad response code", **kw) -> Outcome:
    return Outcome(status, reason, **kw)


@pytest.mark.parametrize("outcome, number, retries, action, delay, left", [
    (Outcome(200, "success"), 1, 3, DELIVER, None, 0),
    (Outcome(204, "success"), 4, 3, DELIVER, None, 0),          # even on the last try
    (failed(500), 1, 3, RETRY, 5.0, 3),
    (failed(500), 2, 3, RETRY, 30.0, 2),
    (failed(502), 3, 3, RETRY, 300.0, 1),
    (failed(500), 4, 3, GIVE_UP, None, 0),                       # budget spent: 1 + 3 tries
    (failed(503), 1, 0, GIVE_UP, None, 0),                       # retries 0: one try
    (failed(None, "timeout"), 1, 3, RETRY, 5.0, 3),
    (failed(None, "connection refused"), 2, 3, RETRY, 30.0, 2),
    (failed(429, retry_after=7.0), 1, 3, RETRY, 7.0, 3),         # Retry-After wins
    (failed(503, retry_after=86400.0), 1, 3, RETRY, 3600.0, 3),  # ... capped at an hour
    (failed(500, retry_after=1.0), 1, 3, RETRY, 5.0, 3),         # ... only on 429/503
    (failed(400), 1, 3, GIVE_UP, None, 0),
    (failed(404), 1, 3, GIVE_UP, None, 0),
    (failed(410), 1, 3, GIVE_UP, None, 0),
    (failed(422), 1, 3, GIVE_UP, None, 0),
    (failed(None, REFUSED), 1, 3, GIVE_UP, None, 0),
    (failed(None, "invalid payload"), 1, 3, GIVE_UP, None, 0),
    (failed(None, "invalid request"), 1, 3, GIVE_UP, None, 0),
    (failed(None, INTERNAL_ERROR), 1, 3, GIVE_UP, None, 0),
])
def test_decide_table(outcome, number, retries, action, delay, left):
    decision = decide(outcome, Attempt(number), hook(retries), POLICIES, NOW, rand=0.5)
    assert (decision.action, decision.delay, decision.retries_left) == (action, delay, left)
    assert decision.retry_at == (None if delay is None else NOW + delay)


def test_decide_jitter_comes_from_the_injected_rand():
    policies = Policies(RetryPolicy(schedule_seconds=(10.0,), jitter=0.2), POLICIES.disable)
    delays = [decide(failed(500), Attempt(1), hook(), policies, NOW, rand=r).delay
              for r in (0.0, 0.5, 0.999999)]
    assert delays == pytest.approx([8.0, 10.0, 12.0], abs=1e-4)


def test_decide_a_success_resets_the_hooks_health():
    sick = HookHealth(NOW - 100, (NOW - 50, NOW - 10))
    assert decide(Outcome(200, "success"), Attempt(1, sick), hook(), POLICIES, NOW,
                  0.5).health == HEALTHY


def test_decide_410_disables_at_once_and_gives_up():
    decision = decide(failed(410), Attempt(1), hook(), POLICIES, NOW, 0.5)
    assert (decision.action, decision.disable) == (GIVE_UP, DISABLED_FOR_GONE)


def test_decide_disables_after_the_silence_and_the_failures_and_still_retries():
    # failing since 61 s, two failures in the window so far: this third one disables
    sick = HookHealth(NOW - 61, (NOW - 30, NOW - 20))
    decision = decide(failed(500), Attempt(1, sick), hook(), POLICIES, NOW, 0.5)
    assert (decision.action, decision.disable) == (RETRY, DISABLED_FOR_FAILURES)
    assert decision.health == HookHealth(NOW - 61, (NOW - 30, NOW - 20, NOW))


@pytest.mark.parametrize("health", [
    HookHealth(NOW - 59, (NOW - 30, NOW - 20)),        # not silent for 60 s yet
    HookHealth(NOW - 61, (NOW - 90, NOW - 20)),        # one of the failures is too old
])
def test_decide_does_not_disable_short_of_either_rule(health):
    assert decide(failed(500), Attempt(1, health), hook(), POLICIES, NOW, 0.5).disable is None


def test_decide_an_internal_error_does_not_count_against_the_hook():
    sick = HookHealth(NOW - 61, (NOW - 30, NOW - 20))   # one more failure would disable
    decision = decide(failed(None, INTERNAL_ERROR), Attempt(1, sick), hook(), POLICIES,
                      NOW, 0.5)
    assert (decision.action, decision.disable, decision.health) == (GIVE_UP, None, sick)


def test_decide_a_refusal_counts_against_the_hook():
    decision = decide(failed(None, REFUSED), Attempt(1), hook(), POLICIES, NOW, 0.5)
    assert decision.health == HookHealth(NOW, (NOW,))
