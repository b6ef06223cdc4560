"""A key the provider refused: its running jobs `running → needs_admin` until an admin enters a new one,
which moves them back to `running`.
"""

import logging

from django.utils import timezone

from jobs import notify
from jobs.models import Batch, Job, ProviderCredential

log = logging.getLogger(__name__)


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
