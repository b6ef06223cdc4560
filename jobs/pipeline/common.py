"""What the stages share: a job's request settings, new batches from request files, settling a
batch with its outcomes, the job's counters, and reading every attempt's outcomes.
"""

import contextlib
import itertools
import logging
import operator
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from jobs import rawfiles
from jobs.formats import reconcile, schema
from jobs.formats.requestfiles import RequestSpec
from jobs.formats.requestparts import BatchFile, split_requests
from jobs.formats.requestreads import latest_requests, select_requests
from jobs.models import Batch, Job
from jobs.providers.client import ProviderClient, ProviderError, client_for

log = logging.getLogger(__name__)

CANCELLED_MESSAGE = "The job was cancelled before this row was sent."


def request_spec(job: Job) -> RequestSpec:
    return RequestSpec(
        endpoint=job.endpoint,
        model=job.model,
        system_prompt=job.system_prompt,
        user_prompt=job.user_prompt,
        temperature=job.temperature,
        max_output_tokens=job.max_output_tokens,
        output_schema=schema.json_schema(job.output_fields) if job.output_fields else None,
    )


def new_batch(job: Job, part: BatchFile, *, attempt: int, index: int) -> Batch:
    """An unsaved batch for a written request file, whose content is moved into storage."""
    batch = Batch(
        job=job,
        attempt=attempt,
        index=index,
        first_row=part.first_row,
        last_row=part.last_row,
        request_count=part.request_count,
        input_bytes=part.bytes,
        input_tokens=part.input_tokens,
    )
    with part.path.open("rb") as fh:
        rawfiles.save(batch.input_file, f"{job.code}-{attempt}-{index}.jsonl", fh)
    part.path.unlink()
    return batch


def new_batches(job: Job, parts: Iterable[BatchFile], *, attempt: int) -> list[Batch]:
    """new_batch() of each part as it is written, in order (index from 0).

    Each part is stored (compressed, uploaded) in a thread while the next is written: zlib and the
    storage's upload let go of the interpreter, so a big table's compression runs beside its prepare
    rather than after it. A part's file is first moved into a folder of this function's own, since
    the writer's may go once the last is written; a part waits there only until the one before it is
    stored (so at most two are on local disk, and a storage error stops the writing at the next
    part). Should anything fail (a row over the size limit, the storage), the parts stored before
    are deleted from the storage and the error raised.
    """
    with (
        tempfile.TemporaryDirectory() as folder,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-parts") as storing,
    ):
        stored = []
        try:
            for index, part in enumerate(parts):
                if stored:
                    stored[-1].result()
                part.path = Path(shutil.move(part.path, Path(folder) / part.path.name))
                stored.append(storing.submit(new_batch, job, part, attempt=attempt, index=index))
            return [future.result() for future in stored]
        except BaseException:  # a worker shut down mid-way too: nothing half-made is left stored
            for future in stored:
                with contextlib.suppress(Exception):  # a part that failed to store left nothing
                    future.result().input_file.delete(save=False)
            raise


def store_outcomes(batch: Batch, outcomes) -> reconcile.Summary:
    with tempfile.TemporaryFile() as out:
        summary = reconcile.write_outcomes(outcomes, out)
        out.seek(0)
        rawfiles.save(batch.outcomes_file, f"{batch.token}-outcomes.jsonl", out)
    return summary


def expected_rows(batch: Batch) -> list[int]:
    with rawfiles.lines(batch.input_file) as fh:
        return reconcile.expected_rows(fh)


def fail_batch_rows(
    batch: Batch, code: str, message: str, line_errors: dict[int, tuple[str, str]] | None = None
) -> reconcile.Summary:
    """Every row of the batch ends failed; a row whose line the provider named gets that line's error."""
    line_errors = line_errors or {}
    outcomes = [
        reconcile.failure(row, *line_errors.get(line, (code, message)))
        for line, row in enumerate(expected_rows(batch), start=1)
    ]
    return store_outcomes(batch, sorted(outcomes, key=lambda o: o.row))


def mark_not_sent(
    batch: Batch, code: str = reconcile.CANCELLED_BEFORE_SENDING, message: str = CANCELLED_MESSAGE
) -> reconcile.Summary:
    """This batch never goes out (its job was cancelled first, or the budget held it back): every row
    is "not sent", with the reason; it can be sent later (stage7_retry)."""
    outcomes = [reconcile.not_sent(row, code, message) for row in sorted(expected_rows(batch))]
    return store_outcomes(batch, outcomes)


def settle(
    batch: Batch, from_status: str, summary: reconcile.Summary, error: str = "", superseded: int = 0
) -> bool:
    """The batch is done with these outcomes; `superseded` of its failed rows went into a follow-up."""
    won = batch.transition(
        from_status,
        Batch.Status.DONE,
        outcomes_file=batch.outcomes_file.name,
        rows_succeeded=summary.succeeded,
        rows_failed=summary.failed,
        output_tokens=summary.output_tokens,
        reported_input_tokens=summary.input_tokens,
        failure_codes=dict(summary.codes),
        rows_superseded=superseded,
        error=error,
        finished_at=timezone.now(),
        next_poll_at=None,
    )
    if won:
        refresh_job_counters(batch.job_id)
    return won


def resume_unsent(batch: Batch) -> None:
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


def refresh_job_counters(job_id: int) -> None:
    """Recompute the job's progress counters from its batches (one aggregate query).

    A row is sent again only after it failed, so successes add up across attempts, and
    a row counts as failed when it is neither a success nor waiting in an unfinished batch
    nor never sent. A done batch answers or fails every row it sent, so what it counts as
    neither was not sent (its job was cancelled first); in a later attempt such a row keeps
    the failure of the attempt before, so only the first attempt's are left out.

    The work is every row once plus each row sent again, and what is done of it only grows: a
    resend adds to the work; rows of an expired part that a follow-up took over (superseded)
    are neither work done nor failures, as the follow-up's rows are the same rows.
    """
    done = Q(status=Batch.Status.DONE)
    totals = Batch.objects.filter(job_id=job_id).aggregate(
        # Before the aggregates named like these fields, which they would otherwise refer to.
        now_in=Sum("reported_input_tokens", filter=Q(synchronous=True), default=0),
        now_out=Sum("output_tokens", filter=Q(synchronous=True), default=0),
        succeeded=Sum("rows_succeeded", filter=done, default=0),
        waiting=Sum("request_count", filter=~done, default=0),
        not_sent=Sum(
            F("request_count") - F("rows_succeeded") - F("rows_failed"), filter=done & Q(attempt=1), default=0
        ),
        ended=Sum(F("rows_succeeded") + F("rows_failed") - F("rows_superseded"), filter=done, default=0),
        moving=Sum(F("requests_completed") + F("requests_failed"), filter=~done, default=0),
        resent=Sum("request_count", filter=Q(attempt__gt=1), default=0),
        superseded=Sum("rows_superseded", default=0),
        input_tokens=Sum("input_tokens", default=0),
        reported_input_tokens=Sum("reported_input_tokens", default=0),
        output_tokens=Sum("output_tokens", default=0),
    )
    Job.objects.filter(pk=job_id).update(
        rows_succeeded=totals["succeeded"],
        rows_failed=F("rows_total") - totals["succeeded"] - totals["waiting"] - totals["not_sent"],
        rows_processed=totals["ended"] + totals["moving"],
        # An expired part is settled a moment before its follow-up is saved (in one transaction).
        rows_resent=max(0, totals["resent"] - totals["superseded"]),
        input_tokens=totals["input_tokens"],
        reported_input_tokens=totals["reported_input_tokens"],
        output_tokens=totals["output_tokens"],
        now_input_tokens=totals["now_in"],
        now_output_tokens=totals["now_out"],
        updated_at=timezone.now(),
    )


def copy_requests(sources: list[Batch], rows: Iterable[int], *, max_requests: int, max_bytes: int):
    """Written request files holding the lines of `rows` (sorted), copied from `sources`; when the
    sources span several attempts, each row's line is the latest attempt's."""
    sources = sorted(sources, key=operator.attrgetter("attempt", "first_row"))
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        attempts = [
            [
                (
                    stack.enter_context(rawfiles.lines(b.input_file)),
                    b.last_row,
                    b.input_tokens / max(b.request_count, 1),
                )
                for b in group
            ]
            for _, group in itertools.groupby(sources, key=operator.attrgetter("attempt"))
        ]
        # One attempt: only the files holding the rows are read.
        lines = select_requests(attempts[0], rows) if len(attempts) == 1 else latest_requests(attempts, rows)
        # A caller stores each part (new_batch) or moves it out (new_batches) before asking for the next:
        # this folder goes once the last is written.
        yield from split_requests([lines], Path(tmp), max_requests=max_requests, max_bytes=max_bytes)


@contextlib.contextmanager
def outcome_streams(job: Job):
    """Every batch's outcomes, grouped by attempt (oldest first), in row order: what latest_outcomes takes."""
    batches = job.batches.exclude(outcomes_file="").order_by("attempt", "first_row")
    with contextlib.ExitStack() as stack:
        attempts = [
            [reconcile.read_outcomes(stack.enter_context(rawfiles.lines(b.outcomes_file))) for b in group]
            for _, group in itertools.groupby(batches, key=operator.attrgetter("attempt"))
        ]
        for unsent in (job.skipped_file, job.reused_file):
            if unsent:
                # Rows never sent: the oldest "attempt", which no later one overrides.
                attempts.insert(0, [reconcile.read_outcomes(stack.enter_context(unsent.open("rb")))])
        yield attempts


def cancel_remote(client: ProviderClient, remote_batch_id: str) -> None:
    try:
        client.cancel_batch(remote_batch_id)
    except ProviderError as exc:
        # 409: the batch ended before the cancel arrived; its results are collected as usual.
        if exc.status != 409:
            raise


def delete_provider_files(batch: Batch) -> None:
    """Remove our request and result files from the provider once they are stored here.

    Best effort: a failure is logged and tried again by the hourly clean-up.
    """
    client = client_for(batch.job.credential)
    try:
        for file_id in (batch.remote_file_id, batch.remote_output_file_id, batch.remote_error_file_id):
            if file_id:
                client.delete_file(file_id)
    except ProviderError as exc:
        log.warning("Could not delete the files of batch %s at the provider: %s", batch.pk, exc.message)
        return
    Batch.objects.filter(pk=batch.pk).update(provider_files_deleted=True)
