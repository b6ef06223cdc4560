"""The steps of a job, each safe to run twice: prepare → release → submit → poll → finish → results.

Celery tasks in jobs.tasks call these and decide what to enqueue next; the steps
themselves never enqueue. Each step starts by claiming its row with a conditional
UPDATE and returns quietly if another run got there first. Remote side effects are
recorded as soon as they exist, and no provider call happens inside a transaction.
"""

import contextlib
import itertools
import logging
import operator
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import F, Max, Q, Sum
from django.utils import timezone

from jobs import datasets, notify, plans, pricing, reconcile, schema, tables, tokens
from jobs.batchfiles import (
    BatchFile,
    RequestBuilder,
    RequestSpec,
    line_row,
    select_requests,
    split_requests,
    write_batch_files,
)
from jobs.batchfiles import custom_id as custom_id_of
from jobs.exports import XLSX_MAX_ROWS, iter_jsonl, latest_outcomes, write_results, write_xlsx
from jobs.models import Batch, Job, ModelPrice, ProviderCredential, RowFailure
from jobs.openai_client import AuthError, PermanentError, ProviderClient, ProviderError, RetryableError

log = logging.getLogger(__name__)

METADATA_KEY = "batchdash_batch"
CANCELLED_MESSAGE = "The job was cancelled before this row was sent."
# How far back to look for a batch an earlier attempt may have created: our clock and
# the provider's may disagree by a little.
CLOCK_MARGIN = timedelta(minutes=5)
# Rows of an expired batch that never ran, sent again in a follow-up batch.
FOLLOW_UP_CODES = frozenset({"batch_expired", "lost"})
# After this many "queue full" answers for one batch, its rows fail (retryable) instead.
MAX_REQUEUES = 20


class RetryRefused(Exception):
    """A retry that cannot start; the message says why, in words for the user."""


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


def prepare_job(job_id: int) -> list[int]:
    """Build the job's request files and its batches (queued); returns their ids.

    The job then waits, `planned`, for its owner to look at the plan and send it. The
    files are written outside any transaction; the batches and the move to `planned`
    are committed together, so a crash part-way leaves the job `preparing`
    and a rerun starts again from the same rows with the same bytes.
    """
    job = Job.objects.select_related("dataset", "credential").get(pk=job_id)
    if job.status != Job.Status.PREPARING or job.batches.exists():
        return []
    try:
        if job.id_column:
            _check_row_ids(job)
        batches = _first_batches(job)
    except (tables.TableError, ValueError) as exc:
        # Row IDs that repeat, a row the file's settings say stops the reading, or a request
        # over the size limit.
        job.transition(
            Job.Status.PREPARING,
            Job.Status.FAILED,
            error=f"Nothing was sent: {exc}",
            finished_at=timezone.now(),
        )
        return []
    if not batches:
        job.transition(
            Job.Status.PREPARING,
            Job.Status.FAILED,
            error="The file has no rows to send."
            if not job.rows_skipped
            else f"No row is left to send: all {job.rows_skipped:,} were left out (empty, or too long).",
            finished_at=timezone.now(),
        )
        return []
    with transaction.atomic():
        rows = sum(b.request_count for b in batches)
        prompt_tokens = sum(b.input_tokens for b in batches)
        estimate = plans.estimate(job, prompt_tokens, rows)
        won = job.transition(
            Job.Status.PREPARING,
            Job.Status.PLANNED,
            rows_total=rows,
            input_tokens=prompt_tokens,
            estimated_cost=estimate.batch if estimate else None,
            rows_skipped=job.rows_skipped,
            skipped_file=job.skipped_file.name,
        )
        if not won:
            return []
        created = Batch.objects.bulk_create(batches)
    return [b.pk for b in created]


def _check_row_ids(job: Job) -> None:
    """Raise ValueError naming the repeated values if the job's row-ID column is not unique."""
    duplicates, examples = datasets.duplicate_ids(job.dataset, job.id_column)
    if duplicates:
        named = "; ".join(f"“{value}” (rows {', '.join(map(str, rows[:5]))})" for value, rows in examples)
        raise ValueError(
            f"the column “{job.id_column}” cannot name the rows, because {duplicates:,} of its values "
            f"appear more than once: {named}. Choose another column, or let the rows be numbered."
        )


def _first_batches(job: Job) -> list[Batch]:
    """Render every row into request files within the key's limits; unsaved batches for them.

    Rows left out (empty, or longer than the model accepts) go into the job's skipped file
    as outcomes with the reason, so that the results say why they were not sent.
    """
    credential = job.credential
    builder = RequestBuilder(request_spec(job), job.dataset.columns)
    count_prompt = tokens.prompt_counter(job.model)
    limit = prompt_limit(job)
    with (
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryFile() as skipped,
        datasets.rows(job.dataset) as rows,
    ):

        def skip(row: int, code: str, prompt_tokens: int) -> None:
            if code == "too_long":
                message = (
                    f"The prompt has {prompt_tokens:,} tokens; {job.model} takes at most {limit:,} "
                    "(its context window less the longest answer), so the row was not sent."
                )
            else:
                message = "The columns the prompt uses are empty in this row, so it was not sent."
            outcome = reconcile.Outcome(row, False, code=code, message=message, input_tokens=prompt_tokens)
            skipped.write(outcome.to_json() + b"\n")
            job.rows_skipped += 1

        job.rows_skipped = 0
        parts = write_batch_files(
            rows,
            builder,
            Path(tmp),
            max_requests=credential.max_requests_per_batch,
            max_bytes=credential.max_bytes_per_batch,
            count_tokens=count_prompt,
            skip=skip,
            skip_empty=job.skip_empty_rows,
            max_prompt_tokens=limit,
        )
        batches = [_new_batch(job, part, attempt=1, index=index) for index, part in enumerate(parts)]
        if job.rows_skipped:
            skipped.seek(0)
            job.skipped_file.save(f"{job.code}-skipped.jsonl", File(skipped), save=False)
    return batches


def prompt_limit(job: Job) -> int | None:
    """The most prompt tokens a row may have: the model's context window less the longest answer."""
    window = ModelPrice.objects.filter(model=job.model).values_list("context_window", flat=True).first()
    if not window:
        return None
    answer = 0 if job.endpoint == Job.Endpoint.EMBEDDINGS else job.max_output_tokens or 0
    return max(window - answer, 1)


def _new_batch(job: Job, part: BatchFile, *, attempt: int, index: int) -> Batch:
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
        input_sha256=part.sha256,
    )
    with part.path.open("rb") as fh:
        batch.input_file.save(f"{job.code}-{attempt}-{index}.jsonl", File(fh), save=False)
    part.path.unlink()
    return batch


def start_job(job_id: int) -> bool:
    """The owner sends a planned job: its queued batches may now be released."""
    return Job.objects.get(pk=job_id).transition(
        Job.Status.PLANNED, Job.Status.RUNNING, started_at=timezone.now()
    )


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


def _store_outcomes(batch: Batch, outcomes) -> reconcile.Summary:
    with tempfile.TemporaryFile() as out:
        summary = reconcile.write_outcomes(outcomes, out)
        out.seek(0)
        batch.outcomes_file.save(f"{batch.token}-outcomes.jsonl", File(out), save=False)
    return summary


def _expected_rows(batch: Batch) -> list[int]:
    with batch.input_file.open("rb") as fh:
        return reconcile.expected_rows(fh)


def _fail_batch_rows(
    batch: Batch, code: str, message: str, line_errors: dict[int, tuple[str, str]] | None = None
) -> reconcile.Summary:
    """Every row of the batch ends failed; a row whose line the provider named gets that line's error."""
    line_errors = line_errors or {}
    outcomes = [
        reconcile.failure(row, *line_errors.get(line, (code, message)))
        for line, row in enumerate(_expected_rows(batch), start=1)
    ]
    return _store_outcomes(batch, sorted(outcomes, key=lambda o: o.row))


def _settle(batch: Batch, from_status: str, summary: reconcile.Summary, error: str = "") -> bool:
    won = batch.transition(
        from_status,
        Batch.Status.DONE,
        outcomes_file=batch.outcomes_file.name,
        rows_succeeded=summary.succeeded,
        rows_failed=summary.failed,
        output_tokens=summary.output_tokens,
        reported_input_tokens=summary.input_tokens,
        failure_codes=dict(summary.codes),
        error=error,
        finished_at=timezone.now(),
        next_poll_at=None,
    )
    if won:
        refresh_job_counters(batch.job_id)
    return won


def submit_batch(batch_id: int) -> None:
    """Upload the batch's request file and create the remote batch, exactly once.

    The scheduler released the batch (`queued → submitting`). Each run claims an attempt
    number with a conditional UPDATE, so two runs never work at once on the same
    attempt. A later attempt (task retry, redelivery or the sweeper) first looks at the
    provider for what an earlier one already made, by file name and by the token in
    the metadata. Raises RetryableError to be retried later; a permanent error fails
    the batch's rows.
    """
    batch = Batch.objects.select_related("job__credential").get(pk=batch_id)
    if batch.status != Batch.Status.SUBMITTING:
        return
    attempts = batch.submit_attempts
    started = batch.submit_started_at or timezone.now()
    if not Batch.objects.filter(pk=batch.pk, status=Batch.Status.SUBMITTING, submit_attempts=attempts).update(
        submit_attempts=attempts + 1, submit_started_at=started, updated_at=timezone.now()
    ):
        return
    batch.submit_started_at = started
    recovering = attempts > 0
    job = batch.job
    client = ProviderClient(job.credential)
    filename = f"batchdash-{batch.token}.jsonl"
    if job.cancel_requested_at and not recovering:
        _settle(batch, Batch.Status.SUBMITTING, _fail_batch_rows(batch, "batch_cancelled", CANCELLED_MESSAGE))
        return
    try:
        if not batch.remote_file_id:
            remote_file = client.find_file(filename) if recovering else None
            if remote_file is None:
                with batch.input_file.open("rb") as fh:
                    remote_file = client.upload_batch_file(fh, filename)
            Batch.objects.filter(pk=batch.pk).update(remote_file_id=remote_file.id)
            batch.remote_file_id = remote_file.id
        remote = None
        if recovering:
            since = int((batch.submit_started_at - CLOCK_MARGIN).timestamp())
            remote = client.find_batch(METADATA_KEY, str(batch.token), since)
        if remote is None:
            remote = client.create_batch(
                batch.remote_file_id,
                job.endpoint,
                {METADATA_KEY: str(batch.token), "batchdash_job": str(job.code)},
            )
    except AuthError:
        raise  # not this batch's fault: the key's jobs wait for an admin (see key_refused)
    except PermanentError as exc:
        if "cannot find file" in exc.message.lower():
            # The provider sometimes needs a moment before a fresh upload is visible.
            raise RetryableError(exc.message, code="file_not_ready", status=exc.status) from None
        summary = _fail_batch_rows(
            batch, exc.code or "submit_failed", f"The provider refused the batch: {exc.message}"
        )
        _settle(batch, Batch.Status.SUBMITTING, summary, error=exc.message)
        return
    credential = job.credential
    adopted = Batch.objects.filter(
        pk=batch.pk, status=Batch.Status.SUBMITTING, remote_batch_id__isnull=True
    ).update(
        remote_batch_id=remote.id,
        remote_status=remote.status,
        status=Batch.Status.RUNNING,
        submitted_at=timezone.now(),
        poll_interval=credential.poll_min_seconds,
        next_poll_at=timezone.now() + timedelta(seconds=credential.poll_min_seconds),
        updated_at=timezone.now(),
    )
    if not adopted:
        # Another run saved a different remote batch first (this run was presumed lost and
        # overtaken): the one made here is a duplicate, cancelled before it costs anything.
        saved = Batch.objects.filter(pk=batch.pk).values_list("remote_batch_id", flat=True).first()
        if saved and saved != remote.id:
            log.warning("Batch %s: cancelling duplicate remote batch %s", batch.pk, remote.id)
            _cancel_remote(client, remote.id)
        return
    # The job may have been cancelled while this batch was being created.
    if Job.objects.filter(pk=job.pk, cancel_requested_at__isnull=False).exists():
        _cancel_remote(client, remote.id)


def _cancel_remote(client: ProviderClient, remote_batch_id: str) -> None:
    try:
        client.cancel_batch(remote_batch_id)
    except ProviderError as exc:
        # 409: the batch ended before the cancel arrived; its results are collected as usual.
        if exc.status != 409:
            raise


def key_refused(credential_id: int, message: str) -> None:
    """The provider refused a key: its running jobs wait for an admin, and admins are told once.

    Nothing is retried with the refused key (the scheduler skips it), so a revoked key
    causes no storm of failing calls; jobs on other keys go on. Replacing the key
    resumes the jobs (see key_replaced).
    """
    first = ProviderCredential.objects.filter(pk=credential_id, refused_at=None).update(
        refused_at=timezone.now(), refused_message=message
    )
    Job.objects.filter(credential_id=credential_id, status=Job.Status.RUNNING).update(
        status=Job.Status.NEEDS_ADMIN, updated_at=timezone.now()
    )
    if first:
        log.warning("Provider key %s was refused: %s", credential_id, message)
        notify.key_refused(ProviderCredential.objects.get(pk=credential_id))


def key_replaced(credential_id: int) -> list[int]:
    """An admin entered a new key: its waiting jobs go on. Returns the batches to submit again."""
    ProviderCredential.objects.filter(pk=credential_id).update(refused_at=None, refused_message="")
    Job.objects.filter(credential_id=credential_id, status=Job.Status.NEEDS_ADMIN).update(
        status=Job.Status.RUNNING, updated_at=timezone.now()
    )
    # Submissions cut short by the refusal resume as recoveries; polls and queued parts
    # are picked up by the scheduler's next tick.
    return list(
        Batch.objects.filter(job__credential_id=credential_id, status=Batch.Status.SUBMITTING).values_list(
            "pk", flat=True
        )
    )


def cancel_job(job_id: int) -> None:
    """Stop a job: queued parts are never sent, running ones are cancelled at the provider.

    Parts that already have answers keep them; the results are built from whatever ends up
    done, and the job ends `cancelled`. Safe to run again.
    """
    job = Job.objects.select_related("credential").get(pk=job_id)
    if job.status != Job.Status.CANCELLING:
        return
    if not job.batches.exists():
        job.transition(Job.Status.CANCELLING, Job.Status.CANCELLED, finished_at=timezone.now())
        return
    for batch in job.batches.filter(status=Batch.Status.QUEUED):
        summary = _fail_batch_rows(batch, "batch_cancelled", CANCELLED_MESSAGE)
        _settle(batch, Batch.Status.QUEUED, summary)
    client = ProviderClient(job.credential)
    for batch in job.batches.filter(status=Batch.Status.RUNNING):
        if batch.remote_status not in Batch.REMOTE_TERMINAL + ("cancelling",):
            _cancel_remote(client, batch.remote_batch_id)
        Batch.objects.filter(pk=batch.pk).update(next_poll_at=timezone.now())


def claim_due_batches(limit: int = 100) -> list[int]:
    """Batches whose next poll is due, pushed forward so that no other scheduler takes them too."""
    now = timezone.now()
    with transaction.atomic():
        due = list(
            Batch.objects.select_for_update(skip_locked=True)
            .filter(status=Batch.Status.RUNNING, next_poll_at__lte=now, job__credential__refused_at=None)
            .order_by("next_poll_at")
            .values_list("pk", flat=True)[:limit]
        )
        # A lease: if the poll task is lost, the batch becomes due again in a minute.
        Batch.objects.filter(pk__in=due).update(next_poll_at=now + timedelta(seconds=60))
    return due


def poll_batch(batch_id: int) -> bool:
    """Ask the provider how the batch is doing; True when it has ended and needs finishing."""
    batch = Batch.objects.select_related("job__credential").get(pk=batch_id)
    if batch.status != Batch.Status.RUNNING:
        return batch.status == Batch.Status.DOWNLOADING
    started = time.perf_counter()
    remote = ProviderClient(batch.job.credential).get_batch(batch.remote_batch_id)
    poll_ms = (time.perf_counter() - started) * 1000
    progressed = (remote.status, remote.completed, remote.failed) != (
        batch.remote_status,
        batch.requests_completed,
        batch.requests_failed,
    )
    batch.schedule_next_poll(progressed)
    fields = dict(
        remote_status=remote.status,
        requests_completed=remote.completed,
        requests_failed=remote.failed,
        remote_output_file_id=remote.output_file_id or "",
        remote_error_file_id=remote.error_file_id or "",
        remote_errors=remote.errors,
        last_poll_ms=poll_ms,
        poll_interval=batch.poll_interval,
        next_poll_at=batch.next_poll_at,
        updated_at=timezone.now(),
    )
    if remote.status != batch.remote_status:
        fields["remote_status_since"] = timezone.now()
    if remote.is_terminal:
        fields["status"] = Batch.Status.DOWNLOADING
    Batch.objects.filter(pk=batch.pk, status=Batch.Status.RUNNING).update(**fields)
    if progressed:
        refresh_job_counters(batch.job_id)
    batch.refresh_from_db()
    # A slow part is watched, never sent again; its owner is told once.
    first_flag = batch.looks_stuck and Batch.objects.filter(pk=batch.pk, flagged_at=None).update(
        flagged_at=timezone.now()
    )
    if first_flag:
        notify.part_slow(batch)
    return remote.is_terminal


def _download(client: ProviderClient, batch: Batch, remote_id: str, field: str) -> None:
    """Store a provider file locally, once; the local copy is what every later step reads."""
    if not remote_id or getattr(batch, field).name:
        return
    with tempfile.TemporaryFile() as tmp:
        for chunk in client.download_file(remote_id):
            tmp.write(chunk)
        tmp.seek(0)
        getattr(batch, field).save(f"{batch.token}-{field}.jsonl", File(tmp), save=False)
    Batch.objects.filter(pk=batch.pk).update(**{field: getattr(batch, field).name})


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
    client = ProviderClient(job.credential)
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
        streams = [
            getattr(batch, f).open("rb") for f in ("output_file", "error_file") if getattr(batch, f).name
        ]
        try:
            with tempfile.TemporaryFile() as out:
                summary = reconcile.reconcile(_expected_rows(batch), streams, job.endpoint, out)
                out.seek(0)
                batch.outcomes_file.save(f"{batch.token}-outcomes.jsonl", File(out), save=False)
        finally:
            for stream in streams:
                stream.close()
        error = ""
        if batch.remote_status == "expired" and _follows_up(job, batch):
            follow_up = _follow_up_batches(batch)
    with transaction.atomic():
        if not _settle(batch, Batch.Status.DOWNLOADING, summary, error=error):
            return False
        Batch.objects.bulk_create(follow_up)
    if settings.DELETE_PROVIDER_FILES and not summary.lost:
        delete_provider_files(batch)
    return not job.batches.exclude(status=Batch.Status.DONE).exists()


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
    with batch.outcomes_file.open("rb") as fh:
        rows = [o.row for o in reconcile.read_outcomes(fh) if not o.ok and o.code in FOLLOW_UP_CODES]
    if not rows:
        return []
    # The same part number in the next attempt; a subset of one batch always fits in one.
    parts = _copy_requests(
        [batch], rows, max_requests=batch.request_count, max_bytes=max(batch.input_bytes, 1)
    )
    return [_new_batch(batch.job, part, attempt=batch.attempt + 1, index=batch.index) for part in parts]


def _copy_requests(sources: list[Batch], rows: Iterable[int], *, max_requests: int, max_bytes: int):
    """Written request files holding the lines of `rows` (sorted), copied from `sources`."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        streams = [
            (
                stack.enter_context(b.input_file.open("rb")),
                b.last_row,
                b.input_tokens / max(b.request_count, 1),
            )
            for b in sources
        ]
        # Each part is moved into storage by _new_batch before the directory goes away.
        yield from split_requests(
            [select_requests(streams, rows)], Path(tmp), max_requests=max_requests, max_bytes=max_bytes
        )


def delete_provider_files(batch: Batch) -> None:
    """Remove our request and result files from the provider once they are stored here.

    Best effort: a failure is logged and tried again by the hourly clean-up.
    """
    client = ProviderClient(batch.job.credential)
    try:
        for file_id in (batch.remote_file_id, batch.remote_output_file_id, batch.remote_error_file_id):
            if file_id:
                client.delete_file(file_id)
    except ProviderError as exc:
        log.warning("Could not delete the files of batch %s at the provider: %s", batch.pk, exc.message)
        return
    Batch.objects.filter(pk=batch.pk).update(provider_files_deleted=True)


def _validation_failure(batch: Batch) -> reconcile.Summary:
    """A batch the provider rejected: rows named by a line get that line's error, the rest the general one."""
    line_errors = {}
    general = []
    for error in batch.remote_errors:
        message = error.get("message") or "Rejected by the provider."
        if error.get("param"):
            message = f"{message} (field: {error['param']})"
        if error.get("line"):
            line_errors[int(error["line"])] = (error.get("code") or "invalid_request", message)
        else:
            general.append((error.get("code") or "batch_failed", message))
    code, message = (
        general[0] if general else ("batch_rejected", "The provider rejected another line of this batch.")
    )
    if line_errors:
        # Name the row of each line for the job page; the file's lines are its rows in order.
        rows = _expected_rows(batch)
        batch.remote_errors = [
            e | {"row": rows[int(e["line"]) - 1]} if 0 < int(e.get("line") or 0) <= len(rows) else e
            for e in batch.remote_errors
        ]
        Batch.objects.filter(pk=batch.pk).update(remote_errors=batch.remote_errors)
    return _fail_batch_rows(batch, code, message, line_errors)


def refresh_job_counters(job_id: int) -> None:
    """Recompute the job's progress counters from its batches (one aggregate query).

    A row is sent again only after it failed, so successes add up across attempts, and
    a row counts as failed when it is neither a success nor waiting in an unfinished batch.
    """
    done = Q(status=Batch.Status.DONE)
    totals = Batch.objects.filter(job_id=job_id).aggregate(
        succeeded=Sum("rows_succeeded", filter=done, default=0),
        waiting=Sum("request_count", filter=~done, default=0),
        moving=Sum(F("requests_completed") + F("requests_failed"), filter=~done, default=0),
        input_tokens=Sum("input_tokens", default=0),
        reported_input_tokens=Sum("reported_input_tokens", default=0),
        output_tokens=Sum("output_tokens", default=0),
    )
    Job.objects.filter(pk=job_id).update(
        rows_succeeded=totals["succeeded"],
        rows_failed=F("rows_total") - totals["succeeded"] - totals["waiting"],
        rows_processed=F("rows_total") - totals["waiting"] + totals["moving"],
        input_tokens=totals["input_tokens"],
        reported_input_tokens=totals["reported_input_tokens"],
        output_tokens=totals["output_tokens"],
        updated_at=timezone.now(),
    )


def retry_job(job_id: int, rows: Iterable[int] | None = None) -> int:
    """Send a finished job's retryable failed rows again, as a new attempt; returns how many.

    `rows` limits the retry to those rows (only the retryable among them). The requests
    are copied from the first attempt's files, so they are the very ones first sent.
    The job goes back to `running`; its results are rebuilt when the attempt ends, still
    one line per input row.
    """
    job = Job.objects.select_related("credential").get(pk=job_id)
    if job.status not in Job.FINISHED:
        raise RetryRefused("Wait until the job has finished before retrying rows.")
    sources = list(job.batches.filter(attempt=1).order_by("index"))
    if any(not b.input_file.name for b in sources):
        raise RetryRefused("This job's request files were removed after the retention period.")
    chosen = None if rows is None else set(rows)
    attempt = (job.batches.aggregate(last=Max("attempt"))["last"] or 0) + 1
    credential = job.credential
    with _outcome_streams(job) as attempts:
        wanted = (
            outcome.row
            for outcome, _ in latest_outcomes(attempts)
            if not outcome.ok and outcome.retryable and (chosen is None or outcome.row in chosen)
        )
        batches = [
            _new_batch(job, part, attempt=attempt, index=index)
            for index, part in enumerate(
                _copy_requests(
                    sources,
                    wanted,
                    max_requests=credential.max_requests_per_batch,
                    max_bytes=credential.max_bytes_per_batch,
                )
            )
        ]
    if not batches:
        return 0
    with transaction.atomic():
        restarted = job.transition(
            Job.FINISHED, Job.Status.RUNNING, finished_at=None, error="", cancel_requested_at=None
        )
        if not restarted:
            raise RetryRefused("The job changed while the retry was being prepared; try again.")
        Batch.objects.bulk_create(batches)
        refresh_job_counters(job.pk)
    return sum(b.request_count for b in batches)


@contextlib.contextmanager
def _outcome_streams(job: Job):
    """Every batch's outcomes, grouped by attempt (oldest first), in row order: what latest_outcomes takes."""
    batches = job.batches.exclude(outcomes_file="").order_by("attempt", "first_row")
    with contextlib.ExitStack() as stack:
        attempts = [
            [reconcile.read_outcomes(stack.enter_context(b.outcomes_file.open("rb"))) for b in group]
            for _, group in itertools.groupby(batches, key=operator.attrgetter("attempt"))
        ]
        if job.skipped_file:
            # Rows never sent: the oldest "attempt", which no later one overrides.
            attempts.insert(0, [reconcile.read_outcomes(stack.enter_context(job.skipped_file.open("rb")))])
        yield attempts


def start_results(job_id: int) -> bool:
    """Claim `running → finishing` once every batch is done; True if this caller won."""
    job = Job.objects.get(pk=job_id)
    if job.batches.exclude(status=Batch.Status.DONE).exists():
        return False
    return job.transition([Job.Status.RUNNING, Job.Status.CANCELLING], Job.Status.FINISHING)


def build_results(job_id: int) -> None:
    """Write the results and failures files from the dataset and every batch's outcomes."""
    job = Job.objects.select_related("dataset").get(pk=job_id)
    if job.status != Job.Status.FINISHING:
        return
    replaced = [f.name for f in (job.results_file, job.failures_file, job.xlsx_file) if f.name]
    failed_rows: list[RowFailure] = []

    def keep_failure(row: int, cells: list[str], outcome: reconcile.Outcome, attempts: int) -> None:
        failed_rows.append(
            RowFailure(
                job=job,
                row=row,
                code=outcome.code,
                message=outcome.message,
                retryable=outcome.retryable,
                attempts=attempts,
                cells=cells,
            )
        )
        if len(failed_rows) >= 2000:
            RowFailure.objects.bulk_create(failed_rows)
            failed_rows.clear()

    RowFailure.objects.filter(job=job).delete()  # from an earlier attempt, or a run cut short
    with (
        _outcome_streams(job) as attempts,
        tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as results,
        tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as failures,
        datasets.rows(job.dataset) as rows,
    ):
        counts = write_results(
            job.dataset.columns,
            rows,
            latest_outcomes(attempts),
            results,
            failures,
            token_prices=pricing.per_token(pricing.prices().get(job.model)),
            on_failure=keep_failure,
            fields=[f["name"] for f in job.output_fields],
        )
        RowFailure.objects.bulk_create(failed_rows)
        results.seek(0)
        failures.seek(0)
        job.results_file.save(f"{job.code}-results.csv", File(results.buffer), save=False)
        job.failures_file.save(f"{job.code}-failures.csv", File(failures.buffer), save=False)
        job.xlsx_file = ""  # Excel holds at most XLSX_MAX_ROWS rows: larger results are CSV only
        if counts.rows < XLSX_MAX_ROWS:
            results.seek(0)
            with tempfile.TemporaryFile() as workbook:
                write_xlsx(results, workbook, sheet=job.name)
                workbook.seek(0)
                job.xlsx_file.save(f"{job.code}-results.xlsx", File(workbook), save=False)
    if job.cancel_requested_at:
        final = Job.Status.CANCELLED
    else:
        final = Job.Status.COMPLETED if counts.succeeded else Job.Status.FAILED
    finished = job.transition(
        Job.Status.FINISHING,
        final,
        results_file=job.results_file.name,
        failures_file=job.failures_file.name,
        xlsx_file=job.xlsx_file.name,
        rows_succeeded=counts.succeeded,
        rows_failed=counts.failed,
        rows_retryable=counts.retryable,
        rows_processed=counts.succeeded + counts.failed,
        error=""
        if counts.succeeded or job.cancel_requested_at
        else "No row got an answer; see the failures file.",
        finished_at=timezone.now(),
    )
    # The files of an earlier attempt's results, now superseded.
    for name in replaced:
        job.results_file.storage.delete(name)
    if finished:
        notify.job_finished(job)


def results_jsonl(job: Job) -> Iterator[bytes]:
    """The results as JSON Lines, generated while they are sent: the same merge as the CSV."""
    with _outcome_streams(job) as attempts, datasets.rows(job.dataset) as rows:
        yield from iter_jsonl(
            job.dataset.columns,
            rows,
            latest_outcomes(attempts),
            embeddings=job.endpoint == Job.Endpoint.EMBEDDINGS,
            token_prices=pricing.per_token(pricing.prices().get(job.model)),
            id_column=job.dataset.columns.index(job.id_column) if job.id_column else None,
            structured=bool(job.output_fields),
        )


def delete_job(job: Job) -> list[str]:
    """Remove a job that is not running: its parts, its files here, and its upload if no other
    job uses it. Returns the ids of its files still at the provider, for the caller to delete.
    """
    batches = list(job.batches.all())
    at_provider = [
        file_id
        for b in batches
        if not b.provider_files_deleted
        for file_id in (b.remote_file_id, b.remote_output_file_id, b.remote_error_file_id)
        if file_id
    ]
    files = [job.results_file, job.failures_file, job.xlsx_file, job.skipped_file]
    files += [f for b in batches for f in (b.input_file, b.output_file, b.error_file, b.outcomes_file)]
    dataset = job.dataset
    with transaction.atomic():
        job.delete()
        unused = not dataset.jobs.exists()
        if unused:
            files.append(dataset.file)
            dataset.delete()
    for field in files:
        if field.name:
            field.storage.delete(field.name)
    return at_provider


def delete_remote_files(credential_id: int, file_ids: list[str]) -> None:
    """Delete files at the provider; one already gone is fine."""
    client = ProviderClient(ProviderCredential.objects.get(pk=credential_id))
    for file_id in file_ids:
        try:
            client.delete_file(file_id)
        except PermanentError as exc:
            if exc.status != 404:
                raise


def clean_up_files(limit: int = 500) -> None:
    """Provider copies whose deletion failed earlier, and local raw files past their retention."""
    if settings.DELETE_PROVIDER_FILES:
        pending = (
            Batch.objects.filter(status=Batch.Status.DONE, provider_files_deleted=False)
            .exclude(remote_file_id="")
            .exclude(failure_codes__has_key="lost")
            .select_related("job__credential")
        )
        for batch in pending[:limit]:
            delete_provider_files(batch)
    if settings.RAW_FILE_RETENTION_DAYS:
        cutoff = timezone.now() - timedelta(days=settings.RAW_FILE_RETENTION_DAYS)
        expired = Batch.objects.filter(job__status__in=Job.FINISHED, job__finished_at__lt=cutoff).exclude(
            input_file=""
        )
        for batch in expired[:limit]:
            for field in (batch.input_file, batch.output_file, batch.error_file):
                if field.name:
                    field.storage.delete(field.name)
            Batch.objects.filter(pk=batch.pk).update(input_file="", output_file="", error_file="")


def stalled_work(older_than: timedelta) -> dict[str, list[int]]:
    """Work whose task message may have been lost (a broker restart, a killed worker)."""
    cutoff = timezone.now() - older_than
    stale_jobs = Job.objects.filter(updated_at__lt=cutoff)
    stale_batches = Batch.objects.filter(updated_at__lt=cutoff)
    unfinished = [s for s in Batch.Status if s != Batch.Status.DONE]
    return {
        "prepare": list(stale_jobs.filter(status=Job.Status.PREPARING).values_list("pk", flat=True)),
        "results": list(stale_jobs.filter(status=Job.Status.FINISHING).values_list("pk", flat=True)),
        "cancel": list(stale_jobs.filter(status=Job.Status.CANCELLING).values_list("pk", flat=True)),
        # Every part is done, but the step that starts the results never ran.
        "results_ready": list(
            stale_jobs.filter(status__in=[Job.Status.RUNNING, Job.Status.CANCELLING], batches__isnull=False)
            .exclude(batches__status__in=unfinished)
            .distinct()
            .values_list("pk", flat=True)
        ),
        "submit": list(stale_batches.filter(status=Batch.Status.SUBMITTING).values_list("pk", flat=True)),
        "finish": list(stale_batches.filter(status=Batch.Status.DOWNLOADING).values_list("pk", flat=True)),
    }


def row_exchange(job: Job, row: int) -> tuple[bytes | None, bytes | None]:
    """The request we sent for a row and the provider's answer line, from the latest attempt that had it.

    Read on demand from our copies of the files, newest attempt first.
    """
    candidates = job.batches.filter(first_row__lte=row, last_row__gte=row).order_by("-attempt")
    for batch in candidates:
        if not batch.input_file.name:
            continue
        with batch.input_file.open("rb") as fh:
            request = next((line for line in fh if line_row(line) == row), None)
        if request is None:
            continue
        custom_id = f'"custom_id":"{custom_id_of(row)}"'.encode()
        for field in (batch.output_file, batch.error_file):
            if field.name:
                with field.open("rb") as fh:
                    answer = next((line for line in fh if custom_id in line.replace(b'": "', b'":"')), None)
                if answer is not None:
                    return request, answer
        return request, None
    return None, None
