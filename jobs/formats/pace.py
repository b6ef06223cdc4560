"""Pacing by a per-minute limit: the generic cell rate algorithm (GCRA), pure arithmetic.

One number per limit holds its whole state: the theoretical arrival time `tat`, the moment the limit
would be back to idle if nothing else were sent. A request costing `cost` units (one request, or its
tokens) may go once `tat` is no more than `burst` seconds ahead of now, and moves `tat` on by its cost
at the limit's pace. A request larger than the burst is let through from idle and leaves the limit in
debt, so it never waits forever. Both sides use it: Batchdash to pace its own calls under a key's
limits (jobs.providers.pace), the simulator to refuse calls over its configured limit with a 429.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    wait: float  # seconds to wait before the request may go
    tat: float  # the limit's theoretical arrival time once it has gone


def admit(tat: float, now: float, cost: float, per_minute: float, burst: float = 0.0) -> Slot:
    """When a request of `cost` units may go under `per_minute`, and the limit's state after it."""
    interval = 60.0 / per_minute
    wait = max(0.0, tat - burst - now)
    return Slot(wait=wait, tat=max(tat, now + wait) + cost * interval)


def give_back(tat: float, now: float, unused: float, per_minute: float) -> float:
    """The state after a request used `unused` units fewer than it reserved (never back before now)."""
    return max(now, tat - unused * 60.0 / per_minute) if unused > 0 else tat


def remaining(tat: float, now: float, per_minute: float, burst: float) -> int:
    """Units that could go at once now: the x-ratelimit-remaining-* figure."""
    return max(0, int((now + burst - max(tat, now)) * per_minute / 60.0))
