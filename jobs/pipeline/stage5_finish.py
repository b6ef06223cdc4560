"""Stage 5, finish: batch `downloading → done` with one outcome per row (or back to `queued` when the
provider's queue was full); an expired batch's unfinished rows go into a follow-up batch.
"""

import contextlib
import logging
import tempfile
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs import rawfiles
from jobs.formats import reconcile
from jobs.models import Batch, Job
from jobs.pipeline.common import (
    copy_requests,
    delete_provider_files,
    expected_rows,
    fail_batch_rows,
    new_batch,
    refresh_job_counters,
    settle,
)
from jobs.providers.client import ProviderClient, client_for

log = logging.getLogger(__name__)

# Rows of an expired batch that never ran, sent again in a follow-up batch.
FOLLOW_UP_CODES = frozenset({"batch_expired", "lost"})


# After this many "queue full" answers for one batch, its rows fail (retryable) instead.
MAX_REQUEUES = 20


def finish_batch(batch_id: int) -> bool:
    """Download the ended batch's files and reconcile them into one outcome per row.

    A batch refused because the provider's queue was full goes back to our queue. The
    unfinished rows of an expired batch go into a follow-up batch, created in the same
    transaction that closes this one. True when this was the job's last unfinished
    batch, so the results can be built.
    """
    batch = Batch.objects.select_related("job__credential").get(pk=batch_id)
    if batch.status != Batch.Status.DOWNLOADING:
        return False
    job = batch.job
    client = client_for(job.credential)
    _download(client, batch, batch.remote_output_file_id, "output_file")
    _download(client, batch, batch.remote_error_file_id, "error_file")
    follow_up: list[Batch] = []
    if batch.remote_status == "failed":
        if _queue_was_full(batch) and batch.requeues < MAX_REQUEUES and not job.cancel_requested_at:
            _requeue(batch)
            return False
        summary = _validation_failure(batch)
        error = "; ".join(e["message"] for e in batch.remote_errors[:3]) or "The provider rejected the batch."
    else:
        with contextlib.ExitStack() as stack, tempfile.TemporaryFile() as out:
            streams = [
                stack.enter_context(rawfiles.lines(field))
                for field in (batch.output_file, batch.error_file)
                if field.name
            ]
            summary = reconcile.reconcile(expected_rows(batch), streams, job.endpoint, out)
            out.seek(0)
            rawfiles.save(batch.outcomes_file, f"{batch.token}-outcomes.jsonl", out)
        error = ""
        if batch.remote_status == "expired" and _follows_up(job, batch):
            follow_up = _follow_up_batches(batch)
    superseded = sum(b.request_count for b in follow_up)
    with transaction.atomic():
        if not settle(batch, Batch.Status.DOWNLOADING, summary, error=error, superseded=superseded):
            return False
        Batch.objects.bulk_create(follow_up)
        if follow_up:  # settle counted before the follow-up existed: its rows are waiting, not failed
            refresh_job_counters(job.pk)
    if settings.DELETE_PROVIDER_FILES and not summary.lost:
        delete_provider_files(batch)
    return not job.batches.exclude(status=Batch.Status.DONE).exists()


def _download(client: ProviderClient, batch: Batch, remote_id: str, field: str) -> None:
    """Store a provider file locally, once; the local copy is what every later step reads."""
    if not remote_id or getattr(batch, field).name:
        return
    with tempfile.TemporaryFile() as tmp:
        for chunk in client.download_file(remote_id):
            tmp.write(chunk)
        tmp.seek(0)
        rawfiles.save(getattr(batch, field), f"{batch.token}-{field}.jsonl", tmp)
    Batch.objects.filter(pk=batch.pk).update(**{field: getattr(batch, field).name})


def _queue_was_full(batch: Batch) -> bool:
    return any(e.get("code") == "token_limit_exceeded" for e in batch.remote_errors)


def _requeue(batch: Batch) -> None:
    """Back to our queue, to be sent again later under a new token (the old remote batch failed)."""
    delay = settings.TOKEN_LIMIT_BACKOFF_SECONDS * 2 ** min(batch.requeues, 5)
    batch.transition(
        Batch.Status.DOWNLOADING,
        Batch.Status.QUEUED,
        token=uuid.uuid4(),
        remote_batch_id=None,
        remote_status="",
        remote_status_since=None,
        remote_output_file_id="",
        remote_error_file_id="",
        requests_completed=0,
        requests_failed=0,
        submit_attempts=0,
        submit_started_at=None,
        submitted_at=None,
        next_poll_at=None,
        not_before=timezone.now() + timedelta(seconds=delay),
        requeues=F("requeues") + 1,
        error="The provider's queue for this model was full; the part waits its turn and goes again.",
    )
    log.info("Batch %s requeued: the provider's token queue was full", batch.pk)


def _follows_up(job: Job, batch: Batch) -> bool:
    return job.resubmit_expired and not job.cancel_requested_at and batch.attempt < settings.MAX_AUTO_ATTEMPTS


def _follow_up_batches(batch: Batch) -> list[Batch]:
    """Unsaved batches, of the next attempt, for the rows of `batch` that never ran."""
    with rawfiles.lines(batch.outcomes_file) as fh:
        rows = [o.row for o in reconcile.read_outcomes(fh) if not o.ok and o.code in FOLLOW_UP_CODES]
    if not rows:
        return []
    # The same part number in the next attempt; a subset of one batch always fits in one.
    parts = copy_requests(
        [batch], rows, max_requests=batch.request_count, max_bytes=max(batch.input_bytes, 1)
    )
    return [new_batch(batch.job, part, attempt=batch.attempt + 1, index=batch.index) for part in parts]


def _validation_failure(batch: Batch) -> reconcile.Summary:
    """A batch the provider rejected: rows named by a line get that line's error, the rest the general one.

    The lines are the provider's data: one that is no line of the file (not a number, or past its end)
    makes its error a general one, which says which line the provider named.
    """
    rows = expected_rows(batch)
    line_errors = {}
    general = []
    named = []
    for error in batch.remote_errors:
        message = error.get("message") or "Rejected by the provider."
        line = _line_number(error.get("line"), len(rows))
        details = [f"field: {error['param']}"] if error.get("param") else []
        if error.get("line") not in (None, "") and line is None:
            details.append(f"the provider named line “{error['line']}”, which is no line number")
        if details:
            message = f"{message} ({'; '.join(details)})"
        if line is not None:
            line_errors[line] = (error.get("code") or "invalid_request", message)
            named.append(error | {"row": rows[line - 1]})
        else:
            general.append((error.get("code") or "batch_failed", message))
            named.append(error)
    code, message = (
        general[0] if general else ("batch_rejected", "The provider rejected another line of this batch.")
    )
    if line_errors:
        # Name the row of each line for the job page; the file's lines are its rows in order.
        batch.remote_errors = named
        Batch.objects.filter(pk=batch.pk).update(remote_errors=named)
    return fail_batch_rows(batch, code, message, line_errors)


def _line_number(value, lines: int) -> int | None:
    """The 1-based line of the request file an error names, or None if it names none of them."""
    if isinstance(value, bool):
        return None
    try:
        line = int(value)
    except (TypeError, ValueError):
        return None
    return line if 0 < line <= lines else None
