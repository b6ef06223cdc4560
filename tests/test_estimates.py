"""The estimate report: a finished job's plan (kept when it was sent) against the usage the provider
reported, on the job page and per model on the spend page."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs import pipeline
from jobs.models import Job, ModelPrice
from jobs.money import estimates, gate, pricing
from jobs.money.estimates import ANSWERS, BOUND, COST, PROMPT, Line
from jobs.templatetags.money import dollars
from tests.test_pipeline import drive, new_job
from tests.test_resend import CONTENT

ROWS = 5  # in tests.conftest.REVIEWS_CSV


@pytest.fixture
def priced(settings):
    settings.SIMULATOR_SPEED = 1_000_000
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million=1000, output_per_million=4000, as_of=timezone.now().date()),
    )


@pytest.mark.parametrize(
    "line, signed, words",
    [
        (Line(ANSWERS, 100, 88), "−12%", "12% fewer answer tokens than expected"),
        (Line(COST, Decimal("1.00"), Decimal("1.08")), "+8%", "8% more than expected"),
        (Line(PROMPT, 1000, 1000), "0%", "exactly as many prompt tokens as expected"),
        (Line(PROMPT, 1000, 1003), "+0.3%", "0.3% more prompt tokens than expected"),
        (Line(ANSWERS, 500, 120, BOUND), "−76%", "76% fewer answer tokens than the most allowed for"),
        (Line(ANSWERS, 0, 0), "–", "none expected, none reported"),
        (Line(COST, None, Decimal(1)), "–", "no price known"),
    ],
)
def test_a_difference_is_given_signed_and_in_words(line, signed, words):
    assert (line.signed, line.words) == (signed, words)


@pytest.mark.django_db(transaction=True)
def test_a_finished_job_shows_what_its_plan_estimated_against_what_the_provider_reported(
    client, alice, simulator_credential, priced
):
    job = drive(
        new_job(alice, simulator_credential, system_prompt="Answer in one word.", max_output_tokens=50)
    )
    # Counted as the provider counts them, the prompt tokens the plan kept match to the token.
    assert job.planned_prompt_tokens == job.reported_input_tokens > 0
    assert (job.planned_answer_tokens, job.planned_answers_bounded) == (50 * ROWS, True)
    price = pricing.prices()["gpt-4o-mini"]
    assert job.planned_cost == pricing.cost(price, job.input_tokens, 50 * ROWS).batch

    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()

    report = page[page.index('data-testid="job-estimates"') :]
    assert "Estimate against reported" in report
    assert "exactly as many prompt tokens as expected" in report
    fewer = round(100 * (50 * ROWS - job.output_tokens) / (50 * ROWS))
    assert f"−{fewer}%" in report and f"{fewer}% fewer answer tokens than the most allowed for" in report
    assert dollars(job.planned_cost) in report
    assert dollars(pricing.actual(job, pricing.prices()).batch) in report
    assert "Without a trial run, answers were estimated at the most allowed for" in report


@pytest.mark.django_db(transaction=True)
def test_with_a_trial_run_the_answers_are_compared_with_what_it_led_to_expect(
    client, alice, simulator_credential, priced
):
    job = drive(new_job(alice, simulator_credential, pilot_output_tokens=20.0))
    assert (job.planned_answer_tokens, job.planned_answers_bounded) == (20 * ROWS, False)

    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()

    report = page[page.index('data-testid="job-estimates"') :]
    assert job.output_tokens < 20 * ROWS  # the simulator's answers are shorter than this trial's
    fewer = round(100 * (20 * ROWS - job.output_tokens) / (20 * ROWS))
    assert f"−{fewer}%" in report and f"{fewer}% fewer answer tokens than expected" in report
    assert re.search(r"\d+% less than expected", report)  # the cost
    assert "Answers were expected as long as in the trial run." in report


@pytest.mark.django_db(transaction=True)
def test_a_job_keeps_its_plan_when_sent_and_shows_no_report_before_it_has_finished(
    client, alice, simulator_credential, priced
):
    job = new_job(alice, simulator_credential)
    pipeline.prepare_job(job.pk)
    pipeline.start_job(job.pk)
    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert 'data-testid="job-estimates"' not in page
    job.refresh_from_db()
    assert job.planned_prompt_tokens == job.input_tokens > 0


@pytest.mark.django_db(transaction=True)
def test_the_spend_page_compares_estimates_with_reported_usage_per_model_over_its_period(
    client, alice, simulator_credential, priced, django_user_model
):
    bounded = drive(new_job(alice, simulator_credential, max_output_tokens=50))
    tried = drive(new_job(alice, simulator_credential, max_output_tokens=50, pilot_output_tokens=4.0))
    old = drive(new_job(alice, simulator_credential, max_output_tokens=50))
    Job.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(days=800))

    [report] = estimates.by_model(gate.month_start(timezone.now() - timedelta(days=365)))

    assert (report.model, report.jobs) == ("gpt-4o-mini", 2)
    prompt, answers, cost = report.lines
    assert prompt.estimated == prompt.reported == bounded.reported_input_tokens + tried.reported_input_tokens
    assert answers.estimated == 50 * ROWS + 4 * ROWS and answers.than == "planned"
    assert answers.reported == bounded.output_tokens + tried.output_tokens
    assert cost.estimated == bounded.planned_cost + tried.planned_cost

    root = django_user_model.objects.create_user("root", is_staff=True)
    client.force_login(root)
    page = client.get(reverse("jobs:spend")).content.decode()
    section = page[page.index("Estimates against reported, per model") :]
    assert "gpt-4o-mini" in section and "2 jobs" in section
    assert "exactly as many prompt tokens as expected" in section
    assert f"{answers.words}" in section and cost.words in section
    client.force_login(alice)
    assert client.get(reverse("jobs:spend")).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_a_resend_adds_its_estimate_and_the_report_counts_the_requests_that_reported_nothing(
    client, alice, simulator_credential, priced
):
    job = drive(new_job(alice, simulator_credential, content=CONTENT, max_output_tokens=50))
    first_plan = job.planned_prompt_tokens
    assert pipeline.retry_job(job.pk) == 1  # the row the provider failed for a reason that can pass
    job.refresh_from_db()
    [resent] = job.batches.filter(attempt=2)
    assert job.planned_prompt_tokens == first_plan + resent.input_tokens
    assert job.planned_answer_tokens == 50 * (job.rows_total + 1)

    job = drive(job)
    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()

    unanswered = sum(b.rows_failed for b in job.batches.all())
    assert unanswered > job.rows_failed  # a row failed in both attempts
    assert f"{unanswered} requests came back without usage (failed, expired or not sent)" in page


@pytest.mark.django_db(transaction=True)
def test_an_embeddings_job_estimates_its_inputs_exactly_and_no_answers(client, alice, simulator_credential):
    ModelPrice.objects.update_or_create(
        model="text-embedding-3-small",
        defaults=dict(input_per_million=1000, output_per_million=0, as_of=timezone.now().date()),
    )
    embeddings = dict(endpoint=Job.Endpoint.EMBEDDINGS, model="text-embedding-3-small")
    job = drive(new_job(alice, simulator_credential, **embeddings))
    # An embeddings input is its text's tokens alone, without a chat message's framing.
    assert job.planned_prompt_tokens == job.reported_input_tokens > 0
    assert (job.planned_answer_tokens, job.output_tokens) == (0, 0)

    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()

    report = page[page.index('data-testid="job-estimates"') :]
    assert "Embeddings have no answers." in report and "none expected, none reported" in report
    assert "exactly as much as expected" in report  # the cost
