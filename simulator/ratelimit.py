"""The simulator's rate limits on the synchronous endpoints, per key as OpenAI's are per organisation:
SIMULATOR_REQUESTS_PER_MINUTE and SIMULATOR_TOKENS_PER_MINUTE (0: no limit).

As OpenAI does, a per-minute limit is enforced over short periods (here one second's worth may go at
once), a request over it is answered 429 with `retry-after` (whole seconds, rounded up),
`retry-after-ms` and the `x-ratelimit-*` headers, and a refused request counts for nothing. A request's
tokens are its prompt and its answer. The state is one database row per key (RatePace), so every
process of the simulator's server sees the same.
"""

import math
import time

from django.conf import settings
from django.db import transaction

from jobs.formats import pace
from simulator.models import RatePace

BURST_SECONDS = 1.0


class Limited(Exception):
    def __init__(self, which: str, wait: float, headers: dict[str, str]):
        super().__init__(which)
        self.which, self.wait, self.headers = which, wait, headers


def _reset(seconds: float) -> str:
    return f"{seconds:.3f}s"


def take(project: str, tokens: int) -> dict[str, str]:
    """Count one request of `tokens` against the key's limits: its x-ratelimit-* headers, or Limited."""
    limits = {
        "requests": (settings.SIMULATOR_REQUESTS_PER_MINUTE, 1),
        "tokens": (settings.SIMULATOR_TOKENS_PER_MINUTE, tokens),
    }
    limits = {name: pair for name, pair in limits.items() if pair[0]}
    if not limits:
        return {}
    with transaction.atomic():
        state, _ = RatePace.objects.select_for_update().get_or_create(project=project)
        now = time.time()
        slots = {
            name: pace.admit(getattr(state, f"{name}_at"), now, cost, limit, BURST_SECONDS)
            for name, (limit, cost) in limits.items()
        }
        headers = {}
        for name, (limit, _) in limits.items():
            at = getattr(state, f"{name}_at")
            headers[f"x-ratelimit-limit-{name}"] = str(limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(pace.remaining(at, now, limit, BURST_SECONDS))
            headers[f"x-ratelimit-reset-{name}"] = _reset(max(0.0, at - now))
        waits = {name: slot.wait for name, slot in slots.items() if slot.wait > 0}
        if waits:
            which = max(waits, key=waits.get)
            wait = waits[which]
            raise Limited(
                which,
                wait,
                headers
                | {"retry-after": str(math.ceil(wait)), "retry-after-ms": str(math.ceil(wait * 1000))},
            )
        for name, slot in slots.items():
            setattr(state, f"{name}_at", slot.tat)
        state.save()
    return headers
