"""Stopping and removing: cancelling a job (`cancelling → cancelled`, queued batches `→ done`), deleting
a stopped job with its files here and at the provider, and the periodic clean-up of files.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.models import Batch, Job, ProviderCredential
from jobs.pipeline.common import (
    CANCELLED_MESSAGE,
    cancel_remote,
    delete_provider_files,
    fail_batch_rows,
    settle,
)
from jobs.providers.client import PermanentError, client_for


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
        summary = fail_batch_rows(batch, "batch_cancelled", CANCELLED_MESSAGE)
        settle(batch, Batch.Status.QUEUED, summary)
    client = client_for(job.credential)
    for batch in job.batches.filter(status=Batch.Status.RUNNING):
        if batch.remote_status not in Batch.REMOTE_TERMINAL + ("cancelling",):
            cancel_remote(client, batch.remote_batch_id)
        Batch.objects.filter(pk=batch.pk).update(next_poll_at=timezone.now())


def delete_job(job: Job) -> list[str]:
    """Remove a job that is not running: its parts, its files here, and its upload if no other
    job uses it and the job's owner uploaded it. Returns the ids of its files still at the
    provider, for the caller to delete.

    A teammate's job on a shared upload (or an admin deleting that job) never removes the
    upload: it is its owner's, who may want it for the next job.
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
        if dataset.owner_id == job.owner_id and not dataset.jobs.exists():
            files.append(dataset.file)
            dataset.delete()
    for field in files:
        if field.name:
            field.storage.delete(field.name)
    return at_provider


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
