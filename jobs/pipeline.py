"""The steps of a job, each safe to run twice: prepare → submit → poll → finish → results.

Celery tasks in jobs.tasks call these and decide what to enqueue next; the steps
themselves never enqueue. Each step starts by claiming its row with a conditional
UPDATE and returns quietly if another run got there first. Remote side effects are
recorded as soon as they exist, and no provider call happens inside a transaction.
"""

import logging
import tempfile
from datetime import timedelta
from pathlib import Path

from django.core.files import File
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from jobs import datasets, reconcile, tokens
from jobs.batchfiles import RequestBuilder, RequestSpec, write_batch_files
from jobs.exports import latest_outcomes, write_results
from jobs.models import Batch, Job
from jobs.openai_client import PermanentError, ProviderClient, ProviderError, RetryableError

log = logging.getLogger(__name__)

METADATA_KEY = "batchdash_batch"
CANCELLED_MESSAGE = "The job was cancelled before this row was sent."
# How far back to look for a batch an earlier attempt may have created: our clock and
# the provider's may disagree by a little.
CLOCK_MARGIN = timedelta(minutes=5)


def request_spec(job: Job) -> RequestSpec:
    return RequestSpec(
        endpoint=job.endpoint,
        model=job.model,
        system_prompt=job.system_prompt,
        user_prompt=job.user_prompt,
        temperature=job.temperature,
        max_output_tokens=job.max_output_tokens,
    )


def prepare_job(job_id: int) -> list[int]:
    """Build the job's request files and its batches; returns the ids of batches to submit.

    The files are written outside any transaction; the batches and the move to
    `running` are committed together, so a crash part-way leaves the job `preparing`
    and a rerun starts again from the same rows with the same bytes.
    """
    job = Job.objects.select_related("dataset", "credential").get(pk=job_id)
    if job.status != Job.Status.PREPARING or job.batches.exists():
        return []
    credential = job.credential
    builder = RequestBuilder(request_spec(job), job.dataset.columns)
    count_prompt = tokens.prompt_counter(job.model)
    batches: list[Batch] = []
    with tempfile.TemporaryDirectory() as tmp, datasets.rows(job.dataset) as rows:
        for index, part in enumerate(
            write_batch_files(
                rows,
                builder,
                Path(tmp),
                max_requests=credential.max_requests_per_batch,
                max_bytes=credential.max_bytes_per_batch,
                count_tokens=count_prompt,
            )
        ):
            batch = Batch(
                job=job,
                index=index,
                first_row=part.first_row,
                last_row=part.last_row,
                request_count=part.request_count,
                input_bytes=part.bytes,
                input_tokens=part.input_tokens,
                input_sha256=part.sha256,
            )
            with part.path.open("rb") as fh:
                batch.input_file.save(f"{job.code}-{index}.jsonl", File(fh), save=False)
            part.path.unlink()
            batches.append(batch)
    if not batches:
        job.transition(
            Job.Status.PREPARING,
            Job.Status.FAILED,
            error="The file has no rows to send.",
            finished_at=timezone.now(),
        )
        return []
    with transaction.atomic():
        won = job.transition(
            Job.Status.PREPARING,
            Job.Status.RUNNING,
            rows_total=sum(b.request_count for b in batches),
            input_tokens=sum(b.input_tokens for b in batches),
        )
        if not won:
            return []
        created = Batch.objects.bulk_create(batches)
    return [b.pk for b in created]


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
        error=error,
        finished_at=timezone.now(),
        next_poll_at=None,
    )
    if won:
        refresh_job_counters(batch.job_id)
    return won


def submit_batch(batch_id: int) -> None:
    """Upload the batch's request file and create the remote batch, exactly once.

    The first run claims `queued → submitting`. A rerun (task retry, redelivery or the
    sweeper) finds the batch in `submitting` and first looks at the provider for what
    an earlier run already made, by file name and by the token in the metadata.
    Raises RetryableError to be retried later; a permanent error fails the batch's rows.
    """
    batch = Batch.objects.select_related("job__credential").get(pk=batch_id)
    now = timezone.now()
    if batch.status == Batch.Status.QUEUED:
        if not batch.transition(
            Batch.Status.QUEUED,
            Batch.Status.SUBMITTING,
            submit_started_at=now,
            submit_attempts=F("submit_attempts") + 1,
        ):
            return
        recovering = False
    elif batch.status == Batch.Status.SUBMITTING:
        recovering = True
    else:
        return
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
    # The job may have been cancelled while this batch was being created.
    if adopted and Job.objects.filter(pk=job.pk, cancel_requested_at__isnull=False).exists():
        _cancel_remote(client, remote.id)


def _cancel_remote(client: ProviderClient, remote_batch_id: str) -> None:
    try:
        client.cancel_batch(remote_batch_id)
    except ProviderError as exc:
        # 409: the batch ended before the cancel arrived; its results are collected as usual.
        if exc.status != 409:
            raise


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
            .filter(status=Batch.Status.RUNNING, next_poll_at__lte=now)
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
    remote = ProviderClient(batch.job.credential).get_batch(batch.remote_batch_id)
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
        poll_interval=batch.poll_interval,
        next_poll_at=batch.next_poll_at,
        updated_at=timezone.now(),
    )
    if remote.is_terminal:
        fields["status"] = Batch.Status.DOWNLOADING
    Batch.objects.filter(pk=batch.pk, status=Batch.Status.RUNNING).update(**fields)
    if progressed:
        refresh_job_counters(batch.job_id)
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

    True when this was the job's last unfinished batch, so the results can be built.
    """
    batch = Batch.objects.select_related("job__credential").get(pk=batch_id)
    if batch.status != Batch.Status.DOWNLOADING:
        return False
    job = batch.job
    client = ProviderClient(job.credential)
    _download(client, batch, batch.remote_output_file_id, "output_file")
    _download(client, batch, batch.remote_error_file_id, "error_file")
    if batch.remote_status == "failed":
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
    if not _settle(batch, Batch.Status.DOWNLOADING, summary, error=error):
        return False
    return not job.batches.exclude(status=Batch.Status.DONE).exists()


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
    return _fail_batch_rows(batch, code, message, line_errors)


def refresh_job_counters(job_id: int) -> None:
    """Recompute the job's progress counters from its batches (one aggregate query)."""
    done = Q(status=Batch.Status.DONE)
    totals = Batch.objects.filter(job_id=job_id).aggregate(
        succeeded=Sum("rows_succeeded", filter=done, default=0),
        failed=Sum("rows_failed", filter=done, default=0),
        running=Sum(F("requests_completed") + F("requests_failed"), filter=~done, default=0),
        output_tokens=Sum("output_tokens", default=0),
    )
    Job.objects.filter(pk=job_id).update(
        rows_succeeded=totals["succeeded"],
        rows_failed=totals["failed"],
        rows_processed=totals["succeeded"] + totals["failed"] + totals["running"],
        output_tokens=totals["output_tokens"],
        updated_at=timezone.now(),
    )


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
    batches = list(job.batches.exclude(outcomes_file="").order_by("attempt", "index"))
    streams = [b.outcomes_file.open("rb") for b in batches]
    try:
        with (
            tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as results,
            tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as failures,
            datasets.rows(job.dataset) as rows,
        ):
            counts = write_results(
                job.dataset.columns,
                rows,
                latest_outcomes(reconcile.read_outcomes(s) for s in streams),
                results,
                failures,
            )
            results.seek(0)
            failures.seek(0)
            job.results_file.save(f"{job.code}-results.csv", File(results.buffer), save=False)
            job.failures_file.save(f"{job.code}-failures.csv", File(failures.buffer), save=False)
    finally:
        for stream in streams:
            stream.close()
    if job.cancel_requested_at:
        final = Job.Status.CANCELLED
    else:
        final = Job.Status.COMPLETED if counts.succeeded else Job.Status.FAILED
    job.transition(
        Job.Status.FINISHING,
        final,
        results_file=job.results_file.name,
        failures_file=job.failures_file.name,
        rows_succeeded=counts.succeeded,
        rows_failed=counts.failed,
        rows_processed=counts.succeeded + counts.failed,
        error=""
        if counts.succeeded or job.cancel_requested_at
        else "No row got an answer; see the failures file.",
        finished_at=timezone.now(),
    )


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
        "submit": list(
            stale_batches.filter(status__in=[Batch.Status.QUEUED, Batch.Status.SUBMITTING]).values_list(
                "pk", flat=True
            )
        ),
        "finish": list(stale_batches.filter(status=Batch.Status.DOWNLOADING).values_list("pk", flat=True)),
    }
