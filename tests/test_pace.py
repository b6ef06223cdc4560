"""The pacing arithmetic (jobs.formats.pace) that Run now and the simulator's rate limit share: pure."""

import pytest

from jobs.formats import pace


def test_requests_under_a_limit_without_burst_go_one_interval_apart():
    tat, waits = 0.0, []
    for _ in range(4):
        slot = pace.admit(tat, now=100.0, cost=1, per_minute=120)
        waits.append(slot.wait)
        tat = slot.tat
    assert waits == [0.0, 0.5, 1.0, 1.5]


def test_a_burst_lets_a_seconds_worth_go_at_once_and_then_asks_to_wait():
    tat, waits = 0.0, []
    for _ in range(4):
        slot = pace.admit(tat, now=100.0, cost=1, per_minute=120, burst=1.0)
        if slot.wait == 0:
            tat = slot.tat
        waits.append(slot.wait)
    assert waits == [0.0, 0.0, 0.0, 0.5]


def test_a_request_larger_than_the_limit_goes_from_idle_and_leaves_the_limit_in_debt():
    slot = pace.admit(0.0, now=100.0, cost=5_000, per_minute=1_000)
    assert slot.wait == 0 and slot.tat == pytest.approx(400.0)
    assert pace.admit(slot.tat, now=100.0, cost=1, per_minute=1_000).wait == pytest.approx(300.0)


def test_tokens_given_back_shorten_the_wait_but_never_reach_back_before_now():
    assert pace.give_back(130.0, now=100.0, unused=500, per_minute=1_000) == pytest.approx(100.0)
    assert pace.give_back(130.0, now=100.0, unused=100, per_minute=1_000) == pytest.approx(124.0)
    assert pace.remaining(100.5, now=100.0, per_minute=120, burst=1.0) == 1
