"""What operators and users see of the recovery machinery: /metrics and the job page."""

from decimal import ROUND_HALF_UP, Decimal

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
    assert page.count(">Queued</td>") == 2


def test_a_prepared_job_waits_for_its_owner_and_shows_the_plan(client, alice, simulator_credential, sdk):
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million=1000, output_per_million=2000, as_of=timezone.now().date()),
    )
    simulator_credential.max_requests_per_batch = 2
    simulator_credential.save()
    job = new_job(alice, simulator_credential, max_output_tokens=10)
    pipeline.prepare_job(job.pk)
    parts = list(job.batches.order_by("index"))
    simulator_credential.enqueued_token_limit = parts[0].input_tokens + parts[1].input_tokens
    simulator_credential.save()

    assert pipeline.release_queued_batches() == []  # nothing goes before the owner says so
    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "Ready to send" in page
    assert "5 in 3 parts" in page
    assert "go in 2 waves" in page
    assert "in wave 2, when earlier parts are done" in page
    assert "hx-trigger" not in page  # nothing moves until the owner sends it
    tokens = sum(p.input_tokens for p in parts)
    batch_cost = Decimal(tokens * 1000 + 5 * 10 * 2000) / 1_000_000 / 2
    batch_cost = batch_cost.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert f"<strong>at most ${batch_cost:,.2f}</strong>" in page

    client.post(reverse("jobs:start", args=[job.code]))
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING
    assert len(pipeline.release_queued_batches()) == 2
    assert (
        client.post(reverse("jobs:start", args=[job.code])).status_code == 302
    )  # a second click is harmless


def test_the_plan_counts_other_jobs_already_waiting_for_the_same_queue(alice, simulator_credential):
    from jobs.money import plans

    first = new_job(alice, simulator_credential)
    send(first)
    second = new_job(alice, simulator_credential)
    pipeline.prepare_job(second.pk)
    simulator_credential.enqueued_token_limit = first.batches.get().input_tokens + 1
    simulator_credential.save()
    plan = plans.plan_for(second)
    assert plan.ahead == first.batches.get().input_tokens
    assert plan.headroom == 1
    assert [p.wave for p in plan.parts] == [2]


def test_dont_send_discards_a_planned_job_without_contacting_the_provider(
    client, alice, simulator_credential, sdk
):
    job = new_job(alice, simulator_credential)
    pipeline.prepare_job(job.pk)
    client.force_login(alice)
    client.post(reverse("jobs:cancel", args=[job.code]))
    drive(job)
    assert job.status == Job.Status.CANCELLED
    assert list(sdk.batches.list()) == []


def test_the_owner_hears_once_about_a_slow_part(alice, simulator_credential, settings, mailoutbox):
    faults.arm("batches.create", "stuck_finalizing")
    job = new_job(alice, simulator_credential)
    [batch_id] = send(job)
    pipeline.submit_batch(batch_id)
    pipeline.poll_batch(batch_id)
    assert mailoutbox == []
    Batch.objects.filter(pk=batch_id).update(
        remote_status_since=timezone.now() - timezone.timedelta(minutes=settings.STUCK_FINALIZING_MINUTES + 1)
    )
    pipeline.poll_batch(batch_id)
    pipeline.poll_batch(batch_id)
    [mail] = mailoutbox
    assert "slower than usual" in mail.subject
    assert Batch.objects.get(pk=batch_id).remote_batch_id in mail.body
