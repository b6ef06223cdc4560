"""Stage 2, release: job `planned → running` (or `→ awaiting_approval → running`) when its owner sends
it through the spending gate, whole or only its first rows when a budget cannot pay for the rest;
batches `queued → submitting` while the provider's queue for their key and model has room.
"""

import itertools
import tempfile
from pathlib import Path

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from jobs.formats import reconcile
from jobs.formats.requestparts import split_requests
from jobs.models import Batch, Job, ProviderCredential
from jobs.money import gate, plans
from jobs.pipeline.common import mark_not_sent, new_batch, refresh_job_counters, resume_unsent, settle


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


def start_first_rows(job_id: int, rows: int) -> bool:
    """The owner sends only the first `rows` rows of a plan (in row order), through the gate like any
    send, at the most they can cost; for when a budget cannot pay for the whole table. The part where
    they end is split in two; the rows after them are "not sent" (held back), and are sent later as
    the rows a cancel kept back are (stage7_retry: through the gate again). True if it runs now, False
    if it waits for an admin's approval (or was no longer planned). Raises gate.Refused, and
    ValueError for a number of rows that is not less than the plan's.
    """
    job = Job.objects.select_related("owner").get(pk=job_id)
    if job.status != Job.Status.PLANNED:
        return False
    parts = list(job.batches.filter(status=Batch.Status.QUEUED, attempt=1).order_by("index"))
    if not 0 < rows < sum(b.request_count for b in parts):
        raise ValueError(f"{rows} is not fewer than the plan's rows.")
    taken = cut = 0
    while taken + parts[cut].request_count <= rows:
        taken += parts[cut].request_count
        cut += 1
    sent_tokens = sum(b.input_tokens for b in parts[:cut])
    split = parts[cut] if taken < rows else None
    halves = _split(job, split, rows - taken) if split else []
    held_back = halves[1:] + parts[cut + 1 :] if split else parts[cut:]
    sent_tokens += sum(b.input_tokens for b in halves[:1])
    cost = plans.estimate(job, sent_tokens, rows)
    message = (
        f"The budget had room for the first {rows:,} rows only when the job was sent, so this row was "
        "not sent; it can be sent later from the job page."
    )
    moved = False
    try:
        with gate.spending(
            credential_id=job.credential_id,
            owner=job.owner,
            model=job.model,
            cost=cost.batch if cost else None,
            job=job,
        ) as verdict:
            target = Job.Status.AWAITING_APPROVAL if verdict.needs_approval else Job.Status.RUNNING
            moved = job.transition(
                Job.Status.PLANNED,
                target,
                decline_note="",
                estimated_cost=cost.batch if cost else None,
                # The rows held back are added to the kept plan when they are sent (stage7_retry).
                **plans.kept_when_sent(job, sent_tokens, rows),
                **({} if verdict.needs_approval else {"started_at": timezone.now()}),
            )
            if moved and split:
                split.delete()
                # Later parts move up one place for the held-back half, last first (index is unique).
                for batch in reversed(parts[cut + 1 :]):
                    Batch.objects.filter(pk=batch.pk).update(index=batch.index + 1)
                for batch in halves:
                    batch.save()
                transaction.on_commit(lambda: split.input_file.storage.delete(split.input_file.name))
            for batch in held_back if moved else []:
                batch.refresh_from_db()
                settle(batch, Batch.Status.QUEUED, mark_not_sent(batch, reconcile.HELD_BACK, message))
    except BaseException:
        moved = False  # rolled back
        raise
    finally:
        if not moved:  # refused, or sent by someone else meanwhile: the halves were stored for nothing
            for batch in halves:
                batch.input_file.delete(save=False)
    return moved and target == Job.Status.RUNNING


def _split(job: Job, batch: Batch, first: int) -> list[Batch]:
    """Two unsaved parts in place of `batch`: its first `first` rows, and the rest (the next index);
    their prompt tokens counted row by row, as the plan counted them."""
    # One pass over the file, a line at a time (a part may hold 200 MB): the first rows, then the rest.
    lines = plans.request_lines(batch, job)
    halves = []
    for index, block in ((batch.index, itertools.islice(lines, first)), (batch.index + 1, lines)):
        with tempfile.TemporaryDirectory() as tmp:
            # A subset of one part always fits in one part.
            [part] = split_requests(
                [block], Path(tmp), max_requests=batch.request_count, max_bytes=max(batch.input_bytes, 1)
            )
            halves.append(new_batch(job, part, attempt=1, index=index))
    return halves


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
    (a resend waiting for approval is approved or cancelled); when only its first rows were to go, the
    plan is whole again. True if this call moved it.
    """
    job = Job.objects.get(pk=job_id)
    if job.started_at is not None:
        return False
    with transaction.atomic():
        # Only its first rows were to go: the rows held back are part of the plan again, at its whole cost.
        held_back = list(job.batches.filter(status=Batch.Status.DONE))
        whole = {}
        if held_back:
            totals = job.batches.aggregate(tokens=Sum("input_tokens"), rows=Sum("request_count"))
            cost = plans.estimate(job, totals["tokens"], totals["rows"])
            whole = {"estimated_cost": cost.batch if cost else None}
        declined = job.transition(
            Job.Status.AWAITING_APPROVAL, Job.Status.PLANNED, decline_note=note.strip()[:2000], **whole
        )
        if declined and held_back:
            for batch in held_back:
                resume_unsent(batch)
            refresh_job_counters(job.pk)
    return declined


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
