"""Stopping and removing: cancelling a job (`cancelling → cancelled` at once when nothing was sent;
otherwise queued batches `→ done` with their rows not sent), deleting a stopped job with its files
here and at the provider, and the periodic clean-up of files.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs import datasets
from jobs.models import Batch, Job, ProviderCredential
from jobs.pipeline import reuse
from jobs.pipeline.common import cancel_remote, delete_provider_files, mark_not_sent, settle
from jobs.providers.client import PermanentError, client_for


def cancel_unsent(job_id: int) -> bool:
    """End a cancelling job at once if none of it has gone to the provider; True if it ended.

    Its queued parts are done with, nothing failed, nothing to resend; there are no results to
    build (no row was answered). Only a few UPDATEs, no file and no provider call, so the cancel
    page does it itself. The parts are locked first, so that the scheduler cannot release one
    in the meantime (it releases only `queued` parts, and only of running jobs).
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.status != Job.Status.CANCELLING or job.results_file:
            return False  # results already exist: an earlier attempt's rows were sent
        statuses = set(Batch.objects.select_for_update().filter(job=job).values_list("status", flat=True))
        if statuses - {Batch.Status.QUEUED}:
            return False
        now = timezone.now()
        Batch.objects.filter(job=job, status=Batch.Status.QUEUED).update(
            status=Batch.Status.DONE, finished_at=now, next_poll_at=None, updated_at=now
        )
        return job.transition(
            Job.Status.CANCELLING,
            Job.Status.CANCELLED,
            rows_processed=0,
            rows_succeeded=0,
            rows_failed=0,
            rows_retryable=0,
            finished_at=now,
        )


def cancel_job(job_id: int) -> bool:
    """Stop a job: queued parts are never sent, running ones are cancelled at the provider.

    Parts that already have answers keep them; the rows of parts never sent are "not sent
    (cancelled)", not failures. Returns True when every part is done, so that the caller starts
    the results (which end the job `cancelled`) at once; otherwise the last part to end does.
    Safe to run again.
    """
    job = Job.objects.select_related("credential").get(pk=job_id)
    if job.status != Job.Status.CANCELLING or cancel_unsent(job_id):
        return False
    for batch in job.batches.filter(status=Batch.Status.QUEUED):
        settle(batch, Batch.Status.QUEUED, mark_not_sent(batch))
    client = client_for(job.credential)
    for batch in job.batches.filter(status=Batch.Status.RUNNING):
        if batch.remote_status not in Batch.REMOTE_TERMINAL + ("cancelling",):
            cancel_remote(client, batch.remote_batch_id)
        Batch.objects.filter(pk=batch.pk).update(next_poll_at=timezone.now())
    return not job.batches.exclude(status=Batch.Status.DONE).exists()


def delete_job(job: Job) -> list[str]:
    """Remove a job that is not running: its parts, its files here, and its upload if no other
    job uses it and the job's owner uploaded it. Returns the ids of its files still at the
    provider, for the caller to delete.

    A teammate's job on a shared upload (or an admin deleting that job) never removes the
    upload: it is its owner's, who may want it for the next job. Nor does a job whose table
    is still used by another job, or whose file another dataset still reads.
    """
    batches = list(job.batches.all())
    at_provider = [
        file_id
        for b in batches
        if not b.provider_files_deleted
        for file_id in (b.remote_file_id, b.remote_output_file_id, b.remote_error_file_id)
        if file_id
    ]
    files = [
        job.results_file,
        job.failures_file,
        job.xlsx_file,
        job.jsonl_file,
        job.skipped_file,
        job.reused_file,
        job.copies_file,
    ]
    files += [f for b in batches for f in (b.input_file, b.output_file, b.error_file, b.outcomes_file)]
    dataset = job.dataset
    with transaction.atomic():
        job.delete()
        if dataset.owner_id == job.owner_id and not dataset.jobs.exists():
            # A table read again while jobs used it has a second dataset on the same file.
            if not datasets.file_shared(dataset):
                files.append(dataset.file)
            dataset.delete()
    for field in files:
        if field.name:
            field.storage.delete(field.name)
    return at_provider


def discard_job(job_id: int) -> bool:
    """A plan its owner does not want: the job and its request files go at once. Only a planned job,
    so nothing was sent and nothing is at the provider; the upload stays, for the next job. True if
    this call discarded it (a Send that won the race leaves it running).
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id, status=Job.Status.PLANNED).first()
        if job is None:
            return False
        files = _plan_files(job)
        job.delete()
    _delete(files)
    return True


def prepare_without_reuse(job_id: int) -> bool:
    """ "Send them again anyway": a plan that took earlier answers is made again taking none, so every
    row is sent. Only a planned job; its plan's files go. True if this call moved it back to preparing.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id, status=Job.Status.PLANNED).first()
        if job is None:
            return False
        files = _plan_files(job)
        job.batches.all().delete()
        job.transition(
            Job.Status.PLANNED,
            Job.Status.PREPARING,
            send_again=True,
            **dict.fromkeys(("skipped_file", "reused_file", "copies_file"), ""),
            **dict.fromkeys(("rows_total", "input_tokens", "rows_skipped", "rows_reused", "rows_copied"), 0),
            estimated_cost=None,
            reuse_saving=0,
            reused_from=[],
        )
    _delete(files)
    return True


def _plan_files(job: Job) -> list:
    """The files a plan wrote: its request files and the rows it set aside."""
    return [job.skipped_file, job.reused_file, job.copies_file] + [b.input_file for b in job.batches.all()]


def _delete(files: list) -> None:
    for field in files:
        if field.name:
            field.storage.delete(field.name)


def delete_remote_files(credential_id: int, file_ids: list[str]) -> None:
    """Delete files at the provider; one already gone is fine."""
    client = client_for(ProviderCredential.objects.get(pk=credential_id))
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
            # Its answers were indexed from these files: they go with them.
            reuse.forget([batch.job_id])
