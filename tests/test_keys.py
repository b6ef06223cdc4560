"""A key the provider refuses mid-job: its jobs wait for an admin, others go on, nothing storms."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from jobs import pipeline, tasks
from jobs.models import Batch, Job, ProviderCredential
from tests.test_pipeline import drive, new_job, send

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast(settings):
    settings.SIMULATOR_SPEED = 1_000_000


def test_a_revoked_key_parks_its_jobs_tells_the_admins_once_and_resumes_when_replaced(
    client, alice, simulator_credential, simulator_url, mailoutbox
):
    User.objects.create_user("root", "root@example.com", "root-password-1", is_staff=True)
    other = ProviderCredential(
        name="Other key", kind=ProviderCredential.Kind.SIMULATOR, base_url=simulator_url
    )
    other.set_api_key("sk-simulator")
    other.save()
    job = new_job(alice, simulator_credential)
    [batch_id] = send(job)
    pipeline.submit_batch(batch_id)
    waiting = new_job(alice, simulator_credential, name="Queued behind")
    pipeline.prepare_job(waiting.pk)
    pipeline.start_job(waiting.pk)

    simulator_credential.set_api_key("sk-revoked-1234")
    simulator_credential.save()
    tasks.poll_batch.apply(args=[batch_id])  # the provider answers 401

    job.refresh_from_db()
    assert job.status == Job.Status.NEEDS_ADMIN
    assert Job.objects.get(pk=waiting.pk).status == Job.Status.NEEDS_ADMIN
    simulator_credential.refresh_from_db()
    assert simulator_credential.refused_at is not None
    # Nothing more is tried with the refused key, however long it waits.
    Batch.objects.filter(pk=batch_id).update(next_poll_at=None)
    assert pipeline.claim_due_batches() == []
    assert pipeline.release_queued_batches() == []
    tasks.poll_batch.apply(args=[batch_id])  # a poll already on its way
    [mail] = mailoutbox
    assert mail.to == ["root@example.com"]
    assert "refused the key “Simulator”" in mail.subject
    assert "sk-revoked" not in mail.body and "1234" in mail.body

    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "The provider refused the API key this job uses" in page
    assert "sk-revoked" not in page

    # Jobs on another key are not held up.
    assert drive(new_job(alice, other)).status == Job.Status.COMPLETED

    simulator_credential.set_api_key("sk-simulator")
    simulator_credential.save()
    pipeline.key_replaced(simulator_credential.pk)
    assert drive(job).status == Job.Status.COMPLETED
    assert drive(waiting).status == Job.Status.COMPLETED
    assert job.rows_succeeded == 5


def test_a_key_refused_while_submitting_fails_no_row(alice, simulator_credential, mailoutbox):
    job = new_job(alice, simulator_credential)
    [batch_id] = send(job)
    simulator_credential.set_api_key("sk-wrong")
    simulator_credential.save()
    tasks.submit_batch.apply(args=[batch_id])

    batch = Batch.objects.get(pk=batch_id)
    assert (batch.status, batch.rows_failed) == (Batch.Status.SUBMITTING, 0)
    assert Job.objects.get(pk=job.pk).status == Job.Status.NEEDS_ADMIN

    simulator_credential.set_api_key("sk-simulator")
    simulator_credential.save()
    assert pipeline.key_replaced(simulator_credential.pk) == [batch_id]
    pipeline.submit_batch(batch_id)
    assert drive(job).rows_succeeded == 5
