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

from jobs.models import Batch, Job, ProviderCredential

User = get_user_model()

log = logging.getLogger(__name__)


def _send(job: Job, subject: str, template: str, **context) -> None:
    if not job.owner.email:
        return
    context |= {"job": job, "url": settings.SITE_URL + reverse("jobs:job_detail", args=[job.code])}
    try:
        send_mail(subject, render_to_string(template, context), None, [job.owner.email])
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("Could not email the owner of job %s: %s", job.pk, exc)


def job_finished(job: Job) -> None:
    verdict = {
        Job.Status.COMPLETED: "has finished",
        Job.Status.FAILED: "has finished without answers",
        Job.Status.CANCELLED: "was cancelled",
    }[job.status]
    _send(job, f"Batchdash: “{job.name}” {verdict}", "jobs/email/job_finished.txt", verdict=verdict)


def key_refused(credential: ProviderCredential) -> None:
    """Tell every admin with an email address; the key itself never appears, only its name."""
    admins = [u.email for u in User.objects.filter(is_staff=True, is_active=True).exclude(email="")]
    if not admins:
        return
    url = settings.SITE_URL + reverse("admin:jobs_providercredential_change", args=[credential.pk])
    body = render_to_string("jobs/email/key_refused.txt", {"credential": credential, "url": url})
    try:
        send_mail(f"Batchdash: the provider refused the key “{credential.name}”", body, None, admins)
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("Could not email the admins about credential %s: %s", credential.pk, exc)


def approval_needed(job: Job) -> None:
    """Ask the admins to approve a job above its key's cost threshold."""
    admins = [u.email for u in User.objects.filter(is_staff=True, is_active=True).exclude(email="")]
    if not admins:
        return
    url = settings.SITE_URL + reverse("jobs:job_detail", args=[job.code])
    body = render_to_string("jobs/email/approval_needed.txt", {"job": job, "url": url})
    try:
        send_mail(f"Batchdash: “{job.name}” waits for your approval", body, None, admins)
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("Could not ask the admins to approve job %s: %s", job.pk, exc)


def part_slow(batch: Batch) -> None:
    job = batch.job
    subject = f"Batchdash: part {batch.index + 1} of “{job.name}” is slower than usual"
    _send(job, subject, "jobs/email/part_slow.txt", batch=batch)
