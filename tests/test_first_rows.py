"""A plan the budget cannot pay for whole offers to send only its first rows that fit, through the same
gate; the others are "not sent" and can be sent later, through the gate again."""

import threading
from decimal import ROUND_CEILING, Decimal

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from jobs import pipeline
from jobs.formats import tokens
from jobs.models import Batch, Job, ModelPrice
from jobs.money import gate, plans
from jobs.templatetags.money import dollars
from tests.conftest import REVIEW_TEXTS
from tests.test_pipeline import drive, new_job, read_csv

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def prices(settings):
    settings.SIMULATOR_SPEED = 1_000_000
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million=1000, output_per_million=4000, as_of=timezone.now().date()),
    )


def cost_of_first(job: Job, rows: int) -> Decimal:
    """What the gate reserves for the first rows: their exact prompt tokens, every answer at its longest."""
    count = tokens.prompt_counter(job.model, job.endpoint)
    prompt = sum(count("", f"Sentiment of: {text}") for text in REVIEW_TEXTS[:rows])
    return plans.estimate(job, prompt, rows).batch


def planned_over_budget(alice, credential, fits: int) -> Job:
    """A five-row plan in parts of two rows, with a key budget that pays for `fits` rows and not one more."""
    credential.max_requests_per_batch = 2
    credential.save()
    job = new_job(alice, credential, max_output_tokens=10)
    pipeline.prepare_job(job.pk)
    job.refresh_from_db()
    assert job.estimated_cost == cost_of_first(job, 5)
    # Budgets are in cents; a row costs more than a cent here.
    credential.monthly_budget = cost_of_first(job, fits).quantize(Decimal("0.01"), rounding=ROUND_CEILING)
    assert credential.monthly_budget < cost_of_first(job, fits + 1)
    credential.save()
    return job


def test_a_plan_over_the_budget_offers_the_first_rows_that_fit_and_sends_only_them(
    client, alice, simulator_credential
):
    job = planned_over_budget(alice, simulator_credential, fits=3)
    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    cost = cost_of_first(job, 3)
    assert "This cannot be sent now." in page
    assert f"Send only the first 3 rows ({dollars(cost)})" in page

    response = client.post(reverse("jobs:start_first", args=[job.code]), {"rows": "3"}, follow=True)
    assert "Sent the first 3 rows" in response.content.decode()
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING and job.estimated_cost == cost
    assert job.planned_cost == cost  # the estimate report compares what was sent, not the whole table
    sent = job.batches.filter(status=Batch.Status.QUEUED).order_by("index")
    assert [(b.first_row, b.last_row) for b in sent] == [(1, 2), (3, 3)]
    kept = job.batches.filter(status=Batch.Status.DONE).order_by("index")
    assert [(b.first_row, b.last_row, b.index) for b in kept] == [(4, 4, 2), (5, 5, 3)]

    drive(job)
    assert (job.status, job.rows_succeeded, job.rows_failed) == (Job.Status.COMPLETED, 3, 0)
    table = read_csv(job.results_file)
    status = table[0].index("status")
    assert [row[status] for row in table[1:]] == ["succeeded"] * 3 + ["not sent"] * 2
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "Send the 2 rows not sent" in page and "did not fit the budget" in page

    # The rest waits for room in the budget: refused while there is none, sent once there is.
    simulator_credential.monthly_budget = Decimal("0.01")
    simulator_credential.save()
    response = client.post(reverse("jobs:retry", args=[job.code]), {"scope": "all"}, follow=True)
    assert "monthly budget" in response.content.decode()
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED
    simulator_credential.monthly_budget = Decimal(10)
    simulator_credential.save()
    client.post(reverse("jobs:retry", args=[job.code]), {"scope": "all"})
    drive(job)
    assert (job.status, job.rows_succeeded, job.rows_failed) == (Job.Status.COMPLETED, 5, 0)
    assert job.planned_cost == cost_of_first(job, 5)  # the held-back rows joined the plan when sent


def test_more_rows_than_fit_are_refused_by_the_gate_and_nothing_is_sent(client, alice, simulator_credential):
    job = planned_over_budget(alice, simulator_credential, fits=3)
    client.force_login(alice)
    response = client.post(reverse("jobs:start_first", args=[job.code]), {"rows": "4"}, follow=True)
    assert "monthly budget" in response.content.decode()
    job.refresh_from_db()
    assert job.status == Job.Status.PLANNED
    assert [(b.first_row, b.last_row, b.status) for b in job.batches.order_by("index")] == [
        (1, 2, "queued"),
        (3, 4, "queued"),
        (5, 5, "queued"),
    ]
    for rows in ("0", "5", "three"):
        response = client.post(reverse("jobs:start_first", args=[job.code]), {"rows": rows}, follow=True)
        assert "Choose how many of the first rows to send: a whole number from 1 to 4." in (
            response.content.decode()
        )
    assert pipeline.release_queued_batches() == []


def test_when_not_even_the_first_row_fits_nothing_is_offered(client, alice, simulator_credential):
    job = planned_over_budget(alice, simulator_credential, fits=0)
    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "This cannot be sent now." in page and "Send only the first" not in page


def test_first_rows_above_the_approval_threshold_wait_for_an_admin_and_a_decline_restores_the_plan(
    client, alice, simulator_credential
):
    job = planned_over_budget(alice, simulator_credential, fits=3)
    whole = job.estimated_cost
    simulator_credential.approval_above = Decimal("0.000001")
    simulator_credential.save()
    client.force_login(alice)
    client.post(reverse("jobs:start_first", args=[job.code]), {"rows": "3"})
    job.refresh_from_db()
    assert job.status == Job.Status.AWAITING_APPROVAL and job.estimated_cost == cost_of_first(job, 3)
    assert pipeline.release_queued_batches() == []

    assert pipeline.decline_job(job.pk, "Wait for next month.")
    job.refresh_from_db()
    # Back to the plan as it was: every row to send, at the whole cost.
    assert job.status == Job.Status.PLANNED and job.estimated_cost == whole
    assert set(job.batches.values_list("status", flat=True)) == {Batch.Status.QUEUED}
    assert sum(job.batches.values_list("request_count", flat=True)) == 5
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "Send only the first 3 rows" in page


def test_two_first_rows_sends_racing_for_the_last_of_a_budget_let_exactly_one_through(
    alice, simulator_credential
):
    first = planned_over_budget(alice, simulator_credential, fits=3)
    second = new_job(alice, simulator_credential, max_output_tokens=10)
    pipeline.prepare_job(second.pk)
    barrier = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def send(job_id: int) -> None:
        barrier.wait()
        try:
            outcomes[job_id] = "sent" if pipeline.start_first_rows(job_id, 3) else "not sent"
        except gate.Refused:
            outcomes[job_id] = "refused"
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(job.pk,)) for job in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes.values()) == ["refused", "sent"]
    [refused] = [job for job in (first, second) if outcomes[job.pk] == "refused"]
    # The refused plan is as it was: no part split, none held back, nothing sent.
    assert [(b.first_row, b.last_row, b.status) for b in refused.batches.order_by("index")] == [
        (1, 2, "queued"),
        (3, 4, "queued"),
        (5, 5, "queued"),
    ]
    assert Job.objects.get(pk=refused.pk).status == Job.Status.PLANNED
