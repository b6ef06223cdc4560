"""Stage 7, retry: a finished job's failed rows sent again as a new attempt, job `→ running` (or
`→ awaiting_approval`) with new `queued` batches whose requests are copied from the first attempt's
files; parts a cancel kept from ever going out go back `done → queued` as they are. A resend spends
money, so it passes the same gate as the first send.
"""

import uuid
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Max

from jobs.formats.exports import latest_outcomes
from jobs.models import Batch, Job
from jobs.money import gate, plans, pricing
from jobs.pipeline import reuse
from jobs.pipeline.common import copy_requests, new_batch, outcome_streams, refresh_job_counters


class RetryRefused(Exception):
    """A retry that cannot start; the message says why, in words for the user."""


def retry_job(job_id: int, rows: Iterable[int] | None = None) -> int:
    """Send a finished job's retryable failed rows again, as a new attempt, and the parts a cancel kept
    from being sent; returns how many rows.

    `rows` limits the retry to those failed rows (only the retryable among them). The requests
    are copied from the first attempt's files, so they are the very ones first sent.
    The job goes back to `running`, or waits for an admin when the resend costs more than the
    key's approval threshold; its results are rebuilt when the attempt ends, still one line per
    input row. Raises RetryRefused, with the gate's reason when the key or a budget says no.
    """
    job = Job.objects.select_related("credential", "owner").get(pk=job_id)
    if job.status not in Job.FINISHED:
        raise RetryRefused("Wait until the job has finished before retrying rows.")
    sources = list(job.batches.filter(attempt=1).order_by("index"))
    if any(not b.input_file.name for b in sources):
        raise RetryRefused("This job's request files were removed after the retention period.")
    # A row repeating an earlier row's request was never sent itself: sending that row answers it.
    chosen = None if rows is None else reuse.with_first_rows(job, set(rows))
    attempt = (job.batches.aggregate(last=Max("attempt"))["last"] or 0) + 1
    credential = job.credential
    with outcome_streams(job) as attempts:
        wanted = (
            outcome.row
            for outcome, _ in latest_outcomes(attempts)
            if not outcome.ok and outcome.retryable and (chosen is None or outcome.row in chosen)
        )
        batches = [
            new_batch(job, part, attempt=attempt, index=index)
            for index, part in enumerate(
                copy_requests(
                    sources,
                    wanted,
                    max_requests=credential.max_requests_per_batch,
                    max_bytes=credential.max_bytes_per_batch,
                )
            )
        ]
    # Never at the provider, and nothing of them answered or failed: the cancel came first.
    unsent = (
        list(job.batches.filter(status=Batch.Status.DONE, remote_file_id="", rows_succeeded=0, rows_failed=0))
        if chosen is None
        else []
    )
    if not batches and not unsent:
        return 0
    rows_sent = sum(b.request_count for b in [*batches, *unsent])
    cost = plans.estimate(job, sum(b.input_tokens for b in [*batches, *unsent]), rows_sent)
    spent = pricing.actual(job, pricing.prices())
    commitment = None if cost is None else cost.batch + (spent.batch if spent else 0)
    try:
        with gate.spending(
            credential_id=job.credential_id,
            owner=job.owner,
            model=job.model,
            cost=cost.batch if cost else None,
            job=job,
            commitment=commitment,
        ) as verdict:
            target = Job.Status.AWAITING_APPROVAL if verdict.needs_approval else Job.Status.RUNNING
            restarted = job.transition(
                Job.FINISHED,
                target,
                finished_at=None,
                error="",
                cancel_requested_at=None,
                estimated_cost=commitment,
            )
            if not restarted:
                raise RetryRefused("The job changed while the retry was being prepared; try again.")
            Batch.objects.bulk_create(batches)
            for batch in unsent:
                _resume(batch)
            refresh_job_counters(job.pk)
    except (gate.Refused, RetryRefused) as exc:
        for batch in batches:  # their request files were stored for nothing
            batch.input_file.delete(save=False)
        raise RetryRefused(str(exc)) from None
    return rows_sent


def _resume(batch: Batch) -> None:
    """A part that never went out goes back to the queue as it is, under a new idempotency token."""
    stale = batch.outcomes_file.name
    resumed = batch.transition(
        Batch.Status.DONE,
        Batch.Status.QUEUED,
        token=uuid.uuid4(),
        outcomes_file="",
        failure_codes={},
        submit_attempts=0,
        submit_started_at=None,
        finished_at=None,
        error="",
    )
    if resumed and stale:
        # After the commit: a rollback must find the file still there.
        transaction.on_commit(lambda: batch.outcomes_file.storage.delete(stale))
