"""Celery tasks: thin wrappers that call jobs.pipeline and enqueue the next step.

Tasks receive ids only (never keys or model objects). Retries live here, in the
decorators, and nowhere else: the SDK's own retries are off. Every task is safe to
run twice, which is what makes late acknowledgement and the sweeper safe.
"""

import functools
import logging
import random
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from jobs import datasets, pipeline
from jobs.models import Batch
from jobs.providers.client import AuthError, RetryableError

log = logging.getLogger(__name__)

MAX_RETRIES = 8


def provider_task(fn):
    """A task that talks to a provider: retried later when the provider says so or fails for a while.

    The wait is the provider's Retry-After when it sends one, otherwise an exponential
    backoff with jitter (5 s doubling up to 5 minutes). After the last retry the step is
    left for the sweeper, which starts it again once it has been still for a while.
    """

    @shared_task(bind=True, name=f"{__name__}.{fn.__name__}", max_retries=MAX_RETRIES)
    @functools.wraps(fn)
    def task(self, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AuthError as exc:
            pipeline.key_refused(exc.credential_id, exc.message)
        except RetryableError as exc:
            backoff = min(300, 5 * 2**self.request.retries) * random.uniform(0.5, 1)
            countdown = exc.retry_after if exc.retry_after else backoff
            log.info("%s will retry in %.0f s: %s", fn.__name__, countdown, exc.message)
            raise self.retry(exc=exc, countdown=countdown) from None

    return task


@shared_task
def count_dataset_rows(dataset_id: int) -> None:
    """Count every row of an upload in the background, with progress on the dataset."""
    datasets.count_rows(dataset_id)


@shared_task
def prepare_job(job_id: int) -> None:
    """Build the request files of a job; it then waits for its owner to send it."""
    pipeline.prepare_job(job_id)


def _results_if_all_done(job_id: int) -> None:
    """The job's last part is done: its results start now, not at the sweeper's next round."""
    if pipeline.start_results(job_id):
        build_results.delay(job_id)


@provider_task
def submit_batch(batch_id: int) -> None:
    """Upload and create one remote batch; idempotent through the batch's token."""
    if pipeline.submit_batch(batch_id):  # settled here: refused, or its job cancelled first
        _results_if_all_done(Batch.objects.values_list("job_id", flat=True).get(pk=batch_id))


@provider_task
def answer_now(batch_id: int) -> None:
    """Run now: answer a part's rows through the normal API, then reconcile it as any batch."""
    if pipeline.answer_now(batch_id):
        finish_batch.delay(batch_id)
    else:  # handed over to a cancel: every part may be done
        _results_if_all_done(Batch.objects.values_list("job_id", flat=True).get(pk=batch_id))


@shared_task
def schedule_batches() -> None:
    """Scheduled: send the queued batches the token budget allows; poll those that are due."""
    for batch_id in pipeline.release_queued_batches():
        submit_batch.delay(batch_id)
    for batch_id in pipeline.claim_due_batches():
        poll_batch.delay(batch_id)


@provider_task
def poll_batch(batch_id: int) -> None:
    if pipeline.poll_batch(batch_id):
        finish_batch.delay(batch_id)


@provider_task
def finish_batch(batch_id: int) -> None:
    """Download and reconcile an ended batch; the last one of a job starts the results."""
    if pipeline.finish_batch(batch_id):
        _results_if_all_done(Batch.objects.values_list("job_id", flat=True).get(pk=batch_id))


@shared_task
def build_results(job_id: int) -> None:
    """The results CSV, which ends the job; its Excel copy and JSON Lines file follow on their own."""
    if pipeline.build_results(job_id):
        write_other_formats.delay(job_id)


@shared_task
def write_other_formats(job_id: int) -> None:
    pipeline.write_other_formats(job_id)


@provider_task
def delete_remote_files(credential_id: int, file_ids: list[str]) -> None:
    """After a job was deleted: its files at the provider go too."""
    pipeline.delete_remote_files(credential_id, file_ids)


@shared_task
def resume_credential(credential_id: int) -> None:
    """After an admin replaced a refused key: its jobs go on."""
    for batch_id in pipeline.key_replaced(credential_id):
        submit_batch.delay(batch_id)


@shared_task
def clean_up_files() -> None:
    """Scheduled: provider copies not yet deleted, and raw files past their retention."""
    pipeline.clean_up_files()


@provider_task
def cancel_job(job_id: int) -> None:
    """Stop sending a job's parts and cancel the running ones at the provider."""
    if pipeline.cancel_job(job_id):
        _results_if_all_done(job_id)


@shared_task
def resume_stalled_work() -> None:
    """Scheduled: re-enqueue steps whose message was lost; each step ignores work already done."""
    stalled = pipeline.stalled_work(older_than=timedelta(seconds=settings.STALLED_AFTER_SECONDS))
    for job_id in stalled["prepare"]:
        prepare_job.delay(job_id)
    for batch_id in stalled["submit"]:
        submit_batch.delay(batch_id)
    for batch_id in stalled["finish"]:
        finish_batch.delay(batch_id)
    for batch_id in stalled["answer"]:
        answer_now.delay(batch_id)
    for job_id in stalled["cancel"]:
        cancel_job.delay(job_id)
    for job_id in stalled["results_ready"]:
        if pipeline.start_results(job_id):
            build_results.delay(job_id)
    for job_id in stalled["results"]:
        build_results.delay(job_id)
    for job_id in stalled["formats"]:
        write_other_formats.delay(job_id)
    if any(stalled.values()):
        log.info("Resumed stalled work: %s", {k: len(v) for k, v in stalled.items()})
