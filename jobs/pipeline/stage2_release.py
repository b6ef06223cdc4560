"""Stage 2, release: job `planned → running` (or `→ awaiting_approval → running`) when its owner sends
it through the spending gate; batches `queued → submitting` while the provider's queue for their key
and model has room.
"""

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from jobs.models import Batch, Job, ProviderCredential
from jobs.money import gate, plans


def start_job(job_id: int) -> bool:
    """The owner sends a planned job through the gate: True if it runs now, False if it waits for an
    admin's approval (or was no longer planned). Raises gate.Refused with the reason.
    """
    job = Job.objects.select_related("owner").get(pk=job_id)
    if job.status != Job.Status.PLANNED:
        return False
    # What the plan says now is what the estimate report compares the provider's figures with.
    plan = plans.kept_when_sent(job, job.input_tokens, job.rows_total)
    with gate.spending(
        credential_id=job.credential_id, owner=job.owner, model=job.model, cost=job.estimated_cost, job=job
    ) as verdict:
        if verdict.needs_approval:
            job.transition(Job.Status.PLANNED, Job.Status.AWAITING_APPROVAL, decline_note="", **plan)
            return False
        return job.transition(
            Job.Status.PLANNED, Job.Status.RUNNING, started_at=timezone.now(), decline_note="", **plan
        )


def approve_job(job_id: int) -> bool:
    """An admin lets a job waiting for approval go, if the key and the budgets still allow it as they
    stand now. True if this call moved it. Raises gate.Refused.
    """
    job = Job.objects.select_related("owner").get(pk=job_id)
    if job.status != Job.Status.AWAITING_APPROVAL:
        return False
    with gate.spending(
        credential_id=job.credential_id, owner=job.owner, model=job.model, cost=job.estimated_cost, job=job
    ):
        # A resend keeps the month the job was first sent in.
        return job.transition(
            Job.Status.AWAITING_APPROVAL, Job.Status.RUNNING, started_at=job.started_at or timezone.now()
        )


def decline_job(job_id: int, note: str) -> bool:
    """An admin declines a job waiting for approval: it goes back to its plan, with the admin's note for
    its owner, who can change it, discard it or send it again. Only a job never sent can be declined
    (a resend waiting for approval is approved or cancelled). True if this call moved it.
    """
    job = Job.objects.get(pk=job_id)
    if job.started_at is not None:
        return False
    return job.transition(Job.Status.AWAITING_APPROVAL, Job.Status.PLANNED, decline_note=note.strip()[:2000])


def release_queued_batches(now=None) -> list[int]:
    """Let queued batches go to the provider while each key's queue for each model has room.

    The provider limits the prompt tokens of all unfinished batches per model; a batch
    sent over that limit fails. So batches go in order (oldest job first, then part by
    part) while the tokens in flight stay under the credential's limit, and the rest
    wait here, visibly "queued". The lock on the credential row makes two schedulers
    agree on the headroom. A batch alone larger than the limit still goes when nothing
    else is in flight, so it cannot wait forever.
    """
    now = now or timezone.now()
    ready = Batch.objects.filter(
        status=Batch.Status.QUEUED, job__status=Job.Status.RUNNING, job__credential__refused_at=None
    ).filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
    released: list[int] = []
    for credential_id, model in ready.values_list("job__credential_id", "job__model").distinct():
        with transaction.atomic():
            credential = ProviderCredential.objects.select_for_update().get(pk=credential_id)
            same_queue = Batch.objects.filter(job__credential_id=credential_id, job__model=model)
            in_flight = same_queue.filter(
                status__in=[Batch.Status.SUBMITTING, Batch.Status.RUNNING]
            ).aggregate(tokens=Sum("input_tokens", default=0))["tokens"]
            limit = credential.token_limit(model)
            candidates = (
                ready.filter(job__credential_id=credential_id, job__model=model)
                .order_by("job__created_at", "job_id", "attempt", "index")
                .values_list("pk", "input_tokens")[:500]
            )
            for batch_id, batch_tokens in candidates:
                if in_flight and in_flight + batch_tokens > limit:
                    break
                if Batch.objects.filter(pk=batch_id, status=Batch.Status.QUEUED).update(
                    status=Batch.Status.SUBMITTING, submit_attempts=0, updated_at=timezone.now()
                ):
                    in_flight += batch_tokens
                    released.append(batch_id)
    return released
