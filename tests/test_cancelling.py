"""Cancelling settles at once, and rows never sent are "not sent (cancelled)", never failures.

Through the pipeline's functions (and the cancel page) with the real simulator over HTTP. Seen
before: "Don't send" left a job "Cancelling" for ten minutes, until the sweeper, and it then ended
"Cancelled · 200 failed", each unsent row a retryable failure offered for resending.
"""

import orjson
import pytest
from django.urls import reverse
from django.utils import timezone

from bench.stack import wait_for
from jobs import pipeline, tasks
from jobs.models import Batch, Job
from tests.test_pipeline import drive, new_job, read_csv

pytestmark = pytest.mark.django_db(transaction=True)

STATUS, ERROR_CODE = 4, 5  # columns of the results CSV after the three of REVIEWS_CSV and the answer


@pytest.fixture
def three_parts(simulator_credential, settings):
    """Five rows in three parts (2, 2, 1); only one part at the provider at a time."""
    settings.SIMULATOR_SPEED = 1_000_000
    simulator_credential.max_requests_per_batch = 2
    simulator_credential.enqueued_token_limit = 1
    simulator_credential.save()
    return simulator_credential


def request_cancel(job: Job) -> None:
    assert job.transition(Job.CANCELLABLE, Job.Status.CANCELLING, cancel_requested_at=timezone.now())


def assert_nothing_failed(job: Job) -> None:
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert (job.rows_failed, job.rows_retryable) == (0, 0)
    assert not job.row_failures.exists()
    assert not Batch.objects.filter(job=job, rows_failed__gt=0).exists()


def test_dont_send_on_a_plan_ends_cancelled_at_once(client, alice, three_parts, sdk):
    job = new_job(alice, three_parts)
    pipeline.prepare_job(job.pk)
    client.force_login(alice)

    response = client.post(reverse("jobs:cancel", args=[job.code]), follow=True)

    assert_nothing_failed(job)  # no worker ran: the page itself settled it
    assert job.finished_at is not None
    assert not job.batches.exclude(status=Batch.Status.DONE).exists()
    assert "Nothing was sent" in response.content.decode()
    assert "5 not sent (cancelled first)" in response.content.decode()
    assert list(sdk.batches.list()) == []


def test_cancelling_a_sent_job_before_its_parts_left_settles_at_once(alice, three_parts, sdk):
    job = new_job(alice, three_parts)
    pipeline.prepare_job(job.pk)
    assert pipeline.start_job(job.pk)
    request_cancel(job)

    pipeline.cancel_job(job.pk)

    assert_nothing_failed(job)
    assert list(sdk.batches.list()) == []


def test_a_part_released_just_before_the_cancel_is_not_sent_and_the_job_ends(
    alice, three_parts, sdk, monkeypatch
):
    built = []
    monkeypatch.setattr(tasks.build_results, "delay", built.append)
    job = new_job(alice, three_parts)
    pipeline.prepare_job(job.pk)
    assert pipeline.start_job(job.pk)
    [released] = pipeline.release_queued_batches()
    request_cancel(job)
    tasks.cancel_job(job.pk)  # the two parts still queued
    assert built == []  # one part is still on its way

    tasks.submit_batch(released)  # the submit task finds the job cancelled: nothing goes out

    assert built == [job.pk]  # and it starts the results itself, without waiting for the sweeper
    pipeline.build_results(job.pk)
    assert_nothing_failed(job)
    assert list(sdk.batches.list()) == []
    table = read_csv(job.results_file)[1:]
    assert {(row[STATUS], row[ERROR_CODE]) for row in table} == {("not sent", "cancelled")}


def test_a_job_partly_sent_then_cancelled_keeps_its_answers_and_the_rest_is_not_sent(
    alice, three_parts, monkeypatch
):
    built = []
    monkeypatch.setattr(tasks.build_results, "delay", built.append)
    job = new_job(alice, three_parts)
    pipeline.prepare_job(job.pk)
    assert pipeline.start_job(job.pk)
    [first] = pipeline.release_queued_batches()
    pipeline.submit_batch(first)
    wait_for(lambda: pipeline.poll_batch(first), timeout=30, message="the first part to end")
    pipeline.finish_batch(first)
    assert Batch.objects.get(pk=first).rows_succeeded == 2
    request_cancel(job)

    tasks.cancel_job(job.pk)

    assert built == [job.pk]  # every part is settled: the results start at once
    pipeline.build_results(job.pk)
    job.refresh_from_db()
    assert (job.status, job.rows_succeeded, job.rows_failed, job.rows_retryable) == (
        Job.Status.CANCELLED,
        2,
        0,
        0,
    )
    assert not job.row_failures.exists()
    table = read_csv(job.results_file)[1:]
    assert [(row[STATUS], row[ERROR_CODE]) for row in table] == [("succeeded", "")] * 2 + [
        ("not sent", "cancelled")
    ] * 3
    assert all(row[3] for row in table[:2])  # the answers that arrived are kept
    records = [orjson.loads(line) for chunk in pipeline.results_jsonl(job) for line in chunk.splitlines()]
    assert [r["status"] for r in records] == ["succeeded"] * 2 + ["not sent"] * 3
    assert {r.get("error_code") for r in records[2:]} == {"cancelled"}
    # Not failures, but not lost either: the rows the cancel kept back can go later, through the gate.
    assert pipeline.retry_job(job.pk) == 3
    job = drive(job)
    assert (job.status, job.rows_succeeded, job.rows_failed) == (Job.Status.COMPLETED, 5, 0)


def test_a_resend_cancelled_before_it_went_leaves_the_earlier_failure_in_place(alice, three_parts):
    content = b"Review Text\nGood\n[[simulate:server_error]] Bad\nFine\n"
    job = new_job(alice, three_parts, content=content)
    drive(job)
    assert (job.status, job.rows_failed, job.rows_retryable) == (Job.Status.COMPLETED, 1, 1)
    assert pipeline.retry_job(job.pk) == 1
    request_cancel(job)

    assert pipeline.cancel_job(job.pk) is True  # the resend's part settles as not sent
    assert pipeline.start_results(job.pk)
    pipeline.build_results(job.pk)

    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert (job.rows_succeeded, job.rows_failed, job.rows_retryable) == (2, 1, 1)  # still resendable
    table = read_csv(job.results_file)[1:]
    assert [(row[2], row[3]) for row in table] == [
        ("succeeded", ""),
        ("failed", "server_error"),
        ("succeeded", ""),
    ]


def test_rows_a_cancel_kept_back_are_sent_later_only_through_the_gate(client, alice, three_parts, sdk):
    from decimal import Decimal

    from django.utils import timezone as tz

    from jobs.models import ModelPrice

    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million=1000, output_per_million=4000, as_of=tz.now().date()),
    )
    job = new_job(alice, three_parts, max_output_tokens=10)
    pipeline.prepare_job(job.pk)
    client.force_login(alice)
    client.post(reverse("jobs:cancel", args=[job.code]))
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "Send the 5 rows not sent" in page

    three_parts.monthly_budget = Decimal("0.00")
    three_parts.save()
    refused = client.post(reverse("jobs:retry", args=[job.code]), {"scope": "all"}, follow=True)
    assert "has $0.00 left of its $0.00 monthly budget" in refused.content.decode()
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED

    three_parts.monthly_budget = None
    three_parts.save()
    client.post(reverse("jobs:retry", args=[job.code]), {"scope": "all"})
    job = drive(Job.objects.get(pk=job.pk))
    assert (job.status, job.rows_succeeded, job.rows_failed) == (Job.Status.COMPLETED, 5, 0)
    assert [row[STATUS] for row in read_csv(job.results_file)[1:]] == ["succeeded"] * 5
