"""A key's pace for the synchronous API: its requests and tokens per minute, shared by every worker
process through one database row per key (jobs.models.KeyPace), with the arithmetic of
jobs.formats.pace.

`reserve` books the next slot and says how long to wait for it; the caller waits outside any
transaction and then sends. Requests go evenly (no burst), so that a key used at its limit by Run now
does not draw the provider's 429s; those that come anyway (another program on the same key, a limit
set too high) are waited out by the caller as the provider's Retry-After says.
"""

import time

from django.db import transaction
from django.db.models import F

from jobs.formats import pace
from jobs.models import KeyPace, ProviderCredential


def reserve(credential: ProviderCredential, tokens: int) -> float:
    """Book one request of `tokens` under the key's limits; the seconds to wait before sending it."""
    rpm, tpm = credential.requests_per_minute, credential.tokens_per_minute
    if not rpm and not tpm:
        return 0.0
    KeyPace.objects.get_or_create(credential=credential)
    with transaction.atomic():
        # A write first: the row lock on PostgreSQL, the database's write lock on SQLite (where FOR
        # UPDATE does nothing), so two workers never book the same slot.
        KeyPace.objects.filter(credential=credential).update(requests_at=F("requests_at"))
        state = KeyPace.objects.get(credential=credential)
        now = time.time()
        limits = [
            (f, cost, limit)
            for f, cost, limit in (("requests_at", 1, rpm), ("tokens_at", tokens, tpm))
            if limit
        ]
        # Both limits book the same moment: the later of the two.
        wait = max(pace.admit(getattr(state, f), now, cost, limit).wait for f, cost, limit in limits)
        booked = {f: pace.admit(getattr(state, f), now + wait, cost, limit).tat for f, cost, limit in limits}
        KeyPace.objects.filter(pk=state.pk).update(**booked)
    return wait


def give_back(credential: ProviderCredential, unused_tokens: int) -> None:
    """A request used fewer tokens than were booked for it (its answer was shorter than its bound)."""
    tpm = credential.tokens_per_minute
    if not tpm or unused_tokens <= 0:
        return
    with transaction.atomic():
        KeyPace.objects.filter(credential=credential).update(tokens_at=F("tokens_at"))
        state = KeyPace.objects.filter(credential=credential).first()
        if state is not None:
            state.tokens_at = pace.give_back(state.tokens_at, time.time(), unused_tokens, tpm)
            state.save(update_fields=["tokens_at"])
