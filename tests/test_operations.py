"""What operators and users see of the recovery machinery: /metrics and the job page."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from jobs import pipeline
from jobs.models import Batch, Job, ModelPrice
from simulator import faults
from tests.test_pipeline import drive, new_job, send

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast(settings):
    settings.SIMULATOR_SPEED = 1_000_000


@pytest.fixture
def finished_job_with_failures(alice, simulator_credential):
    content = (
        b"Review Text\nfine\n[[simulate:server_error]] flaky\n"
        b"[[simulate:context_length_exceeded]] far too long\nalso fine\n"
    )
    return drive(new_job(alice, simulator_credential, content=content))


def test_metrics_need_the_token_or_an_admin(client, settings, alice):
    settings.METRICS_TOKEN = "scrape-secret"
    url = reverse("jobs:metrics")
    assert client.get(url).status_code == 403
    assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get(url, headers={"Authorization": "Bearer scrape-secret"}).status_code == 200
    client.force_login(alice)
    assert client.get(url).status_code == 403
    client.force_login(User.objects.create_user("root", is_staff=True))
    assert client.get(url).status_code == 200


def test_metrics_count_batches_rows_by_code_tokens_and_cost(client, settings, finished_job_with_failures):
    settings.METRICS_TOKEN = "scrape-secret"
    job = finished_job_with_failures
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million=1, output_per_million=2, as_of=timezone.now().date()),
    )
    expected = (job.input_tokens * 1 + job.output_tokens * 2) / 1_000_000 * 0.5
    text = client.get(reverse("jobs:metrics"), headers={"Authorization": "Bearer scrape-secret"}).text

    assert 'batchdash_jobs{status="completed"} 1.0' in text
    assert 'batchdash_batches{remote="completed",state="done"} 1.0' in text
    assert "batchdash_rows_succeeded_total 2.0" in text
    assert 'batchdash_rows_failed_total{code="server_error"} 1.0' in text
    assert 'batchdash_rows_failed_total{code="context_length_exceeded"} 1.0' in text
    assert f'batchdash_tokens_total{{kind="input",model="gpt-4o-mini"}} {float(job.input_tokens)}' in text
    assert f'batchdash_cost_dollars_total{{model="gpt-4o-mini"}} {expected}' in text
    assert 'batchdash_poll_latency_seconds{stat="max"}' in text


def test_the_job_page_offers_to_resend_only_the_retryable_rows(client, alice, finished_job_with_failures):
    job = finished_job_with_failures
    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "Send the 1 failed row again" in page

    response = client.post(reverse("jobs:retry", args=[job.code]), follow=True)
    assert "Sending 1 row again" in response.content.decode()
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING
    assert job.batches.filter(attempt=2).get().request_count == 1
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "(attempt 2)" in page

    # A second click while the retry runs changes nothing and says why.
    response = client.post(reverse("jobs:retry", args=[job.code]), follow=True)
    assert "Wait until the job has finished" in response.content.decode()
    assert job.batches.count() == 2


def test_a_stranger_cannot_retry_someone_elses_job(client, bob, finished_job_with_failures):
    client.force_login(bob)
    response = client.post(reverse("jobs:retry", args=[finished_job_with_failures.code]))
    assert response.status_code == 404
    assert finished_job_with_failures.batches.count() == 1


def test_the_job_page_flags_a_slow_part_and_names_rejected_rows(
    client, alice, simulator_credential, settings
):
    faults.arm("batches.create", "stuck_finalizing")
    job = new_job(alice, simulator_credential)
    [batch_id] = send(job)
    pipeline.submit_batch(batch_id)
    pipeline.poll_batch(batch_id)
    client.force_login(alice)
    progress = reverse("jobs:job_progress", args=[job.code])
    assert "Slower than usual" not in client.get(progress).content.decode()
    Batch.objects.filter(pk=batch_id).update(
        remote_status_since=timezone.now() - timezone.timedelta(minutes=settings.STUCK_FINALIZING_MINUTES + 1)
    )
    assert "Slower than usual" in client.get(progress).content.decode()

    faults.arm("batches.create", "validation_failure", code="invalid_request", message="Bad body", line=3)
    rejected = drive(new_job(alice, simulator_credential))
    page = client.get(reverse("jobs:job_detail", args=[rejected.code])).content.decode()
    assert "Row 3: Bad body" in page


def test_the_job_page_shows_parts_waiting_for_the_token_budget(client, alice, simulator_credential):
    simulator_credential.max_requests_per_batch = 2
    simulator_credential.enqueued_token_limit = 1
    simulator_credential.save()
    job = new_job(alice, simulator_credential)
    assert len(send(job)) == 1
    client.force_login(alice)
    page = client.get(reverse("jobs:job_progress", args=[job.code])).content.decode()
    assert page.count("<td>Queued") == 2
