"""Stage 4, poll: batch `running → downloading` once the provider says it has ended; until then the
provider's counts and status are kept, and polls back off while nothing changes.
"""

import time
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jobs import notify
from jobs.models import Batch
from jobs.pipeline.common import refresh_job_counters
from jobs.providers.client import client_for


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
    remote = client_for(batch.job.credential).get_batch(batch.remote_batch_id)
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
