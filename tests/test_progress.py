"""The job's progress as its owner reads it: never backwards when rows are sent again, an expired part
that was followed up shown as superseded (its rows never counted as failed), and answers counted as
the provider reports them while a part is still in progress.

The steps run in this process against the simulator over real HTTP, as in tests/test_pipeline.py.
"""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from bench.stack import wait_for
from jobs import pipeline
from jobs.models import Job
from simulator import faults
from tests.test_pipeline import new_job, send, step

pytestmark = pytest.mark.django_db(transaction=True)


def follow(job: Job, until) -> list[tuple[int, int, int, int]]:
    """Step the job until `until(job)`; (processed, work, failed, percent) after every step."""
    seen = []

    def done() -> bool:
        step(job)
        job.refresh_from_db()
        seen.append((job.rows_processed, job.rows_total + job.rows_resent, job.rows_failed, job.percent_done))
        return until(job)

    wait_for(done, timeout=60, message="the job to move on")
    return seen


def never_drops(values) -> bool:
    return all(a <= b for a, b in zip(values, values[1:], strict=False))


def test_an_expired_part_that_was_followed_up_is_superseded_and_its_rows_never_count_as_failed(
    client, alice, simulator_credential, settings
):
    settings.SIMULATOR_SPEED = 1_000_000
    faults.arm("batches.create", "expire", fraction=0.5)
    job = new_job(alice, simulator_credential)
    for batch_id in send(job):
        pipeline.submit_batch(batch_id)
    followed_up = follow(job, lambda j: j.batches.filter(attempt=2).exists())
    expired = job.batches.get(attempt=1)
    assert expired.remote_status == "expired" and expired.rows_superseded == expired.rows_failed > 0

    # Until the follow-up ends, its rows are work to do, not failures.
    job.refresh_from_db()
    assert job.rows_failed == 0 and job.rows_total + job.rows_resent == 5
    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "superseded by part 1 (attempt 2)" in page
    assert f"{expired.rows_failed} failed" not in page and " 0 failed" in page

    finished = follow(job, lambda j: j.is_finished)
    assert job.status == Job.Status.COMPLETED and job.rows_failed == 0 and job.status_text == "Completed"
    steps = followed_up + finished
    assert never_drops([processed for processed, _, _, _ in steps])
    assert never_drops([percent for _, _, _, percent in steps])
    assert {work for _, work, _, _ in steps} == {5}  # a follow-up continues the same rows
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "superseded by part 1 (attempt 2)" in page
    # The estimate report does not call the follow-up's rows unanswered either.
    assert "Estimate against reported" in page and "came back without usage" not in page


def test_rows_sent_again_add_to_the_work_and_what_was_done_never_drops(alice, simulator_credential, settings):
    settings.SIMULATOR_SPEED = 1_000_000
    faults.arm("batches.create", "expire", fraction=0.5)
    job = new_job(alice, simulator_credential, resubmit_expired=False)
    for batch_id in send(job):
        pipeline.submit_batch(batch_id)
    follow(job, lambda j: j.is_finished)
    failed = job.rows_failed
    assert job.rows_processed == 5 and failed > 0 and job.rows_resent == 0

    assert pipeline.retry_job(job.pk) == failed
    job.refresh_from_db()
    # The resent rows are more work: the done part stays done, the bar does not go back to the start.
    assert job.rows_processed == 5 and job.rows_resent == failed
    assert job.percent_done == int(100 * 5 / (5 + failed))
    steps = follow(job, lambda j: j.is_finished)
    assert never_drops([processed for processed, _, _, _ in steps])
    assert job.status == Job.Status.COMPLETED and job.rows_processed == 5 + failed


def test_answers_reported_by_the_provider_show_while_a_part_is_in_progress(
    client, alice, simulator_credential, moving_clock, speed
):
    job = new_job(alice, simulator_credential)
    for batch_id in send(job):
        pipeline.submit_batch(batch_id)
    [batch] = job.batches.all()
    moving_clock["t"] += 30 + 0.005 + 0.8  # validated, and 3 of the 5 requests done
    pipeline.poll_batch(batch.pk)
    batch.refresh_from_db()
    assert batch.remote_status == "in_progress" and batch.requests_completed == 3

    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "3 answered at the provider" in page and "results arrive when a part finishes" in page


def test_time_left_counts_the_rows_sent_again(alice, simulator_credential):
    job = new_job(alice, simulator_credential)
    job.status, job.rows_total, job.rows_processed, job.rows_resent = Job.Status.RUNNING, 100, 100, 100
    job.started_at = timezone.now() - timedelta(minutes=10)
    assert job.time_left_text == "about 10 minutes left"
    job.rows_processed, job.started_at = 199, timezone.now() - timedelta(minutes=90)
    assert job.time_left_text == "less than a minute left"
    job.rows_processed, job.started_at = 40, timezone.now() - timedelta(minutes=37)
    assert job.time_left_text == "about 2 hours left"  # 148 minutes, never "about 1 hours"
    job.rows_processed = 200
    assert job.time_left_text == ""  # nothing left to do: no guess
