"""Stage 3, submit: batch `submitting → running` (or `done` when the provider refuses it or the job was
cancelled): upload the request file and create the remote batch, exactly once.
"""

import logging
from datetime import timedelta

from django.utils import timezone

from jobs import rawfiles
from jobs.models import Batch, Job
from jobs.pipeline.common import cancel_remote, fail_batch_rows, mark_not_sent, settle
from jobs.providers.client import AuthError, PermanentError, RetryableError, client_for

log = logging.getLogger(__name__)

METADATA_KEY = "batchdash_batch"


# How far back to look for a batch an earlier attempt may have created: our clock and
# the provider's may disagree by a little.
CLOCK_MARGIN = timedelta(minutes=5)


def submit_batch(batch_id: int) -> bool:
    """Upload the batch's request file and create the remote batch, exactly once.

    The scheduler released the batch (`queued → submitting`). Each run claims an attempt
    number with a conditional UPDATE, so two runs never work at once on the same
    attempt. A later attempt (task retry, redelivery or the sweeper) first looks at the
    provider for what an earlier one already made, by file name and by the token in
    the metadata. Raises RetryableError to be retried later; a permanent error fails
    the batch's rows, and a job cancelled before the batch went out leaves its rows not sent.
    True when this run settled the batch that way (no remote batch), so that the caller
    starts the results if it was the job's last part.
    """
    batch = Batch.objects.select_related("job__credential").get(pk=batch_id)
    if batch.status != Batch.Status.SUBMITTING:
        return False
    attempts = batch.submit_attempts
    started = batch.submit_started_at or timezone.now()
    if not Batch.objects.filter(pk=batch.pk, status=Batch.Status.SUBMITTING, submit_attempts=attempts).update(
        submit_attempts=attempts + 1, submit_started_at=started, updated_at=timezone.now()
    ):
        return False
    batch.submit_started_at = started
    recovering = attempts > 0
    job = batch.job
    client = client_for(job.credential)
    filename = f"batchdash-{batch.token}.jsonl"
    if job.cancel_requested_at and not recovering:
        return settle(batch, Batch.Status.SUBMITTING, mark_not_sent(batch))
    try:
        if not batch.remote_file_id:
            remote_file = client.find_file(filename) if recovering else None
            if remote_file is None:
                with rawfiles.plain_copy(batch.input_file) as fh:
                    remote_file = client.upload_batch_file(fh, filename)
            Batch.objects.filter(pk=batch.pk).update(remote_file_id=remote_file.id)
            batch.remote_file_id = remote_file.id
        remote = None
        if recovering:
            since = int((batch.submit_started_at - CLOCK_MARGIN).timestamp())
            remote = client.find_batch(METADATA_KEY, str(batch.token), since)
        if remote is None:
            # Still this run's turn? An upload can outlast STALLED_AFTER_SECONDS, and the sweeper then
            # starts another attempt, which makes the batch: this one must not make a second (whose
            # create might time out unseen, and run twice). The UPDATE also tells the sweeper this
            # run is alive for the create call, which ends within the provider timeout.
            if not Batch.objects.filter(
                pk=batch.pk, status=Batch.Status.SUBMITTING, submit_attempts=attempts + 1
            ).update(updated_at=timezone.now()):
                return False
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
        summary = fail_batch_rows(
            batch, exc.code or "submit_failed", f"The provider refused the batch: {exc.message}"
        )
        return settle(batch, Batch.Status.SUBMITTING, summary, error=exc.message)
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
            cancel_remote(client, remote.id)
        return False
    # The job may have been cancelled while this batch was being created.
    if Job.objects.filter(pk=job.pk, cancel_requested_at__isnull=False).exists():
        cancel_remote(client, remote.id)
    return False
