"""The sweep for stalled work: jobs and batches whose task message may have been lost."""

from datetime import timedelta

from django.utils import timezone

from jobs.models import Batch, Job


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
        # Ended, but its Excel and JSON Lines files were never written.
        "formats": list(stale_jobs.filter(formats_pending=True).values_list("pk", flat=True)),
        # Every part is done, but the step that starts the results never ran.
        "results_ready": list(
            stale_jobs.filter(status__in=[Job.Status.RUNNING, Job.Status.CANCELLING], batches__isnull=False)
            .exclude(batches__status__in=unfinished)
            .distinct()
            .values_list("pk", flat=True)
        ),
        "submit": list(stale_batches.filter(status=Batch.Status.SUBMITTING).values_list("pk", flat=True)),
        "finish": list(stale_batches.filter(status=Batch.Status.DOWNLOADING).values_list("pk", flat=True)),
        # Run now whose worker died: started again, from the rows its output file already holds.
        "answer": list(stale_batches.filter(status=Batch.Status.ANSWERING).values_list("pk", flat=True)),
    }
