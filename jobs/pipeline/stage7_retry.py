"""Stage 7, retry: a finished job's failed rows sent again as a new attempt, job `→ running` (or
`→ awaiting_approval`) with new `queued` batches whose requests are copied from the latest ones
sent; parts a cancel or the budget kept from ever going out go back `done → queued` as they are.
Or chosen failed rows sent with an edited prompt, their requests rendered afresh from the dataset.
A resend spends money, so it passes the same gate as the first send.
"""

import dataclasses
import tempfile
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db.models import Max

from jobs import datasets
from jobs.formats import tokens
from jobs.formats.exports import latest_outcomes
from jobs.formats.reconcile import SKIPPED_CODES, resendable
from jobs.formats.requestfiles import RequestBuilder, write_batch_files
from jobs.models import Batch, Job
from jobs.money import gate, plans, pricing
from jobs.pipeline import reuse
from jobs.pipeline.common import (
    copy_requests,
    new_batches,
    outcome_streams,
    refresh_job_counters,
    request_spec,
    resume_unsent,
)


class RetryRefused(Exception):
    """A retry that cannot start; the message says why, in words for the user."""


def retry_job(job_id: int, rows: Iterable[int] | None = None) -> int:
    """Send a finished job's retryable failed rows again, as a new attempt, and the parts a cancel kept
    from being sent; returns how many rows.

    `rows` limits the retry to those failed rows (only the retryable among them). Each request is
    copied from the latest attempt that had its row, so it is the very one last sent (with the
    edited prompt, for a row resent with one).
    The job goes back to `running`, or waits for an admin when the resend costs more than the
    key's approval threshold; its results are rebuilt when the attempt ends, still one line per
    input row. Raises RetryRefused, with the gate's reason when the key or a budget says no.
    """
    job = Job.objects.select_related("credential", "owner").get(pk=job_id)
    if job.status not in Job.FINISHED:
        raise RetryRefused("Wait until the job has finished before retrying rows.")
    sources = list(job.batches.all())
    if any(not b.input_file.name for b in sources):
        raise RetryRefused("This job's request files were removed after the retention period.")
    # A row repeating an earlier row's request was never sent itself: sending that row answers it.
    chosen = None if rows is None else reuse.with_first_rows(job, set(rows))
    attempt = (job.batches.aggregate(last=Max("attempt"))["last"] or 0) + 1
    credential = job.credential
    with outcome_streams(job) as attempts:
        wanted = (
            outcome.row
            for outcome, tries in latest_outcomes(attempts)
            if resendable(outcome, tries) and (chosen is None or outcome.row in chosen)
        )
        parts = copy_requests(
            sources,
            wanted,
            max_requests=credential.max_requests_per_batch,
            max_bytes=credential.max_bytes_per_batch,
        )
        batches = new_batches(job, parts, attempt=attempt)
    # Never at the provider, and nothing of them answered or failed: the cancel came first.
    unsent = (
        list(job.batches.filter(status=Batch.Status.DONE, remote_file_id="", rows_succeeded=0, rows_failed=0))
        if chosen is None
        else []
    )
    return _send_again(job, batches, unsent)


def resend_with_prompt(job_id: int, rows: Iterable[int], *, system_prompt: str, user_prompt: str) -> int:
    """Send chosen failed rows of a finished job again with an edited prompt, as a new attempt; returns
    how many rows.

    Only rows whose latest attempt failed are sent (whatever the reason: an edited prompt may fix a
    refusal as well as a row that failed too often to be resent as it is). Their requests are
    rendered afresh from the dataset's rows with the job's settings and the edited prompt, and pass
    the same gate as every send. Raises RetryRefused naming an unknown column, or with the gate's
    reason.
    """
    job = Job.objects.select_related("credential", "owner", "dataset").get(pk=job_id)
    if job.status not in Job.FINISHED:
        raise RetryRefused("Wait until the job has finished before sending rows again.")
    spec = dataclasses.replace(request_spec(job), system_prompt=system_prompt, user_prompt=user_prompt)
    try:
        builder = RequestBuilder(spec, job.dataset.columns)
    except KeyError as exc:
        raise RetryRefused(
            f"The prompt names the column “{exc.args[0]}”, which the table does not have."
        ) from None
    chosen = set(rows)
    with outcome_streams(job) as attempts:
        failed = {
            outcome.row
            for outcome, _ in latest_outcomes(attempts)
            if outcome.row in chosen and not outcome.ok and outcome.code not in SKIPPED_CODES
        }
    if not failed:
        return 0
    attempt = (job.batches.aggregate(last=Max("attempt"))["last"] or 0) + 1
    credential = job.credential
    with tempfile.TemporaryDirectory() as tmp, datasets.rows(job.dataset) as all_rows:
        parts = write_batch_files(
            ((row, cells) for row, cells in all_rows if row in failed),
            builder,
            Path(tmp),
            max_requests=credential.max_requests_per_batch,
            max_bytes=credential.max_bytes_per_batch,
            count_tokens=tokens.prompt_counter(job.model, job.endpoint),
            processes=settings.PREPARE_PROCESSES,
        )
        try:
            batches = new_batches(job, parts, attempt=attempt)
        except ValueError as exc:  # one row's request over the key's size limit
            raise RetryRefused(str(exc)) from None
    return _send_again(job, batches, [])


def _send_again(job: Job, batches: list[Batch], unsent: list[Batch]) -> int:
    """Through the gate, the new attempt's batches are saved and the unsent parts queued again; the
    job runs again (or waits for an admin). Returns how many rows."""
    if not batches and not unsent:
        return 0
    rows_sent = sum(b.request_count for b in [*batches, *unsent])
    # Unsent parts of a job never cancelled were held back by its budget (as the job page tells them).
    added = [*batches, *([] if job.cancel_requested_at else unsent)]
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
                # Parts a cancel kept back were in the first plan already; the new attempt's and the
                # parts a short budget held back (left out of the plan sent) are added.
                **plans.added_when_resent(
                    job, sum(b.input_tokens for b in added), sum(b.request_count for b in added)
                ),
            )
            if not restarted:
                raise RetryRefused("The job changed while the retry was being prepared; try again.")
            Batch.objects.bulk_create(batches)
            for batch in unsent:
                resume_unsent(batch)
            refresh_job_counters(job.pk)
    except (gate.Refused, RetryRefused) as exc:
        for batch in batches:  # their request files were stored for nothing
            batch.input_file.delete(save=False)
        raise RetryRefused(str(exc)) from None
    return rows_sent
