"""The audit log: who uploaded, sent, cancelled, resent, downloaded or deleted what, and who
changed which provider key, with the key's name and the cost where there is one.

One line per action, written by the view that did it. It names keys by their name and
last four characters, never more, and holds no row content.
"""

from decimal import Decimal

from batchdash.proxies import client_address
from jobs.models import AuditEvent


def record(
    request,
    action: str,
    *,
    job=None,
    dataset=None,
    credential=None,
    cost: Decimal | None = None,
    detail: str = "",
) -> AuditEvent:
    user = request.user if request.user.is_authenticated else None
    return AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username() if user else "",
        action=action,
        job=job,
        job_name=job.name if job else "",
        dataset=dataset or (job.dataset if job else None),
        credential=credential or (job.credential if job else None),
        cost=cost,
        detail=detail,
        address=client_address(request),
    )
