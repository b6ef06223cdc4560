"""Emails to a job's owner: when the job has finished, and when a part needs a look.

Sent through Django's email backend (the console in development). A failure to send
is logged and never stops the job's work.
"""

import logging
import smtplib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from jobs.formats.text import one_line
from jobs.models import Batch, Job, ProviderCredential

User = get_user_model()

log = logging.getLogger(__name__)


def greeting_name(user) -> str:
    """What an email calls a person: their first name, or their username when no name was given."""
    return user.first_name.strip() or user.get_username()


def _mail(people, subject: str, template: str, context: dict) -> None:
    """One email to each person with an address, greeting them by name."""
    # Subjects quote names people typed (a job's, a key's): whatever they hold, one line.
    subject = one_line(subject)
    for person in people:
        if not person.email:
            continue
        body = render_to_string(template, context | {"name": greeting_name(person)})
        try:
            send_mail(subject, body, None, [person.email])
        except (smtplib.SMTPException, OSError) as exc:
            log.warning("Could not send “%s”: %s", subject, exc)


def admins_with_email():
    """The admins an email can reach; none means approvals and refused keys are told to nobody."""
    return User.objects.filter(is_staff=True, is_active=True).exclude(email="")


def _job_url(job: Job) -> str:
    return settings.SITE_URL + reverse("jobs:job_detail", args=[job.code])


def _to_owner(job: Job, subject: str, template: str, **context) -> None:
    _mail([job.owner], subject, template, context | {"job": job, "url": _job_url(job)})


def job_finished(job: Job) -> None:
    verdict = {
        Job.Status.COMPLETED: "has finished",
        Job.Status.FAILED: "has finished without answers",
        Job.Status.CANCELLED: "was cancelled",
    }[job.status]
    subject = f"Batchdash: “{one_line(job.name)}” {verdict}"
    _to_owner(job, subject, "jobs/email/job_finished.txt", verdict=verdict)


def key_refused(credential: ProviderCredential) -> None:
    """Tell every admin; the key itself never appears, only its name and last four characters."""
    url = settings.SITE_URL + reverse("jobs:key_edit", args=[credential.code])
    subject = f"Batchdash: the provider refused the key “{one_line(credential.name)}”"
    _mail(admins_with_email(), subject, "jobs/email/key_refused.txt", {"credential": credential, "url": url})


def approval_needed(job: Job) -> None:
    """Ask the admins to approve a job above its key's cost threshold."""
    subject = f"Batchdash: “{one_line(job.name)}” waits for your approval"
    _mail(admins_with_email(), subject, "jobs/email/approval_needed.txt", {"job": job, "url": _job_url(job)})


def declined(job: Job) -> None:
    """Tell the owner an admin declined their job, and why."""
    _to_owner(
        job, f"Batchdash: “{job.name}” was not approved", "jobs/email/declined.txt", note=job.decline_note
    )


def part_slow(batch: Batch) -> None:
    job = batch.job
    subject = f"Batchdash: part {batch.index + 1} of “{one_line(job.name)}” is slower than usual"
    _to_owner(job, subject, "jobs/email/part_slow.txt", batch=batch)
