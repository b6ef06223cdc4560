"""Run now: a small table answered at once through the normal API, at the normal price, under the
key's rate limits and the provider's 429s, with the same results as a batch job; and a switch to the
Batch API half-way. Real SDK over HTTP to the simulator, real database."""

import threading
import time
from decimal import Decimal

import openai
import pytest
from django.db import connections
from django.utils import timezone

from jobs import pipeline, rawfiles
from jobs.formats import reconcile
from jobs.models import Batch, Job, ModelPrice
from jobs.money import gate, plans
from tests.test_pipeline import drive, new_job, read_csv, step

pytestmark = pytest.mark.django_db(transaction=True)

TEXTS = [f"Review number {n}: {'good' if n % 2 else 'bad'} shoes" for n in range(1, 9)]
EIGHT_ROWS = ("Review Text,Stars\n" + "".join(f"{t},{n % 5 + 1}\n" for n, t in enumerate(TEXTS))).encode()


@pytest.fixture
def fast_simulator(settings):
    settings.SIMULATOR_SPEED = 1_000_000


def planned(owner, credential) -> Job:
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(
            input_per_million=Decimal("0.15"), output_per_million=Decimal("0.60"), as_of="2025-08-07"
        ),
    )
    job = new_job(owner, credential, content=EIGHT_ROWS, max_output_tokens=50)
    pipeline.prepare_job(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.PLANNED
    return job


def finish(job: Job) -> Job:
    """What the worker does after Run now: finish each part as any batch's, then the results."""
    for _ in range(200):
        step(job)
        job.refresh_from_db()
        if job.is_finished:
            return job
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


def outcomes(batch: Batch) -> list[reconcile.Outcome]:
    with rawfiles.lines(batch.outcomes_file) as fh:
        return list(reconcile.read_outcomes(fh))


def test_the_simulator_refuses_a_call_over_its_rate_limit_with_retry_after_and_rate_limit_headers(
    sdk, settings
):
    settings.SIMULATOR_REQUESTS_PER_MINUTE = 60
    ask = dict(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}])
    first = sdk.chat.completions.with_raw_response.create(**ask)
    assert first.headers["x-ratelimit-limit-requests"] == "60"
    sdk.chat.completions.create(**ask)
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(**ask)
    headers = refused.value.response.headers
    assert refused.value.code == "rate_limit_exceeded"
    assert 0 < int(headers["retry-after-ms"]) <= 1000
    assert headers["retry-after"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"


def test_run_now_answers_every_row_under_a_rate_limit_waiting_out_the_429s_with_a_batch_jobs_results(
    alice, simulator_credential, settings, fast_simulator
):
    # The key says 600 a minute, the provider allows 120 (two a second, three at once): it answers 429.
    simulator_credential.requests_per_minute = 600
    simulator_credential.save()
    settings.SIMULATOR_REQUESTS_PER_MINUTE = 120
    job = planned(alice, simulator_credential)
    offer = plans.plan_for(job).run_now
    assert offer is not None and offer.cost.synchronous == 2 * offer.cost.batch
    started = time.monotonic()
    batch_id = pipeline.run_now(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING
    assert abs(job.estimated_cost - offer.cost.synchronous) < Decimal("0.000001")
    # The estimate report compares the normal price Run now was planned at.
    assert abs(job.planned_cost - offer.cost.synchronous) < Decimal("0.000001")
    assert pipeline.answer_now(batch_id)
    elapsed = time.monotonic() - started
    batch = Batch.objects.get(pk=batch_id)
    # Each 429 was waited out as long as it asked, so the row then went through: at most one 429 a row
    # (asking again at the key's pace instead would draw several).
    assert 0 < batch.throttled <= 8 and batch.throttled_seconds > 0
    # Eight rows at two a second after the first three: the waits were kept.
    assert elapsed >= 2.4
    assert (batch.requests_completed, batch.requests_failed) == (8, 0)
    job = finish(job)
    assert (job.status, job.rows_succeeded, job.rows_failed) == (Job.Status.COMPLETED, 8, 0)
    assert job.now_input_tokens == job.reported_input_tokens > 0
    settings.SIMULATOR_REQUESTS_PER_MINUTE = 0
    batched = drive(new_job(alice, simulator_credential, content=EIGHT_ROWS, max_output_tokens=50))
    now_rows, batch_rows = read_csv(job.results_file), read_csv(batched.results_file)
    assert now_rows[0] == batch_rows[0]
    answer = now_rows[0].index("answer")
    # The same request gets the same answer through the normal API and through a batch.
    assert [r[answer] for r in now_rows[1:]] == [r[answer] for r in batch_rows[1:]]
    assert [r[0] for r in now_rows[1:]] == TEXTS
    assert job.xlsx_file and job.jsonl_file


def test_a_switch_to_batch_mid_run_sends_the_rest_through_the_batch_api_each_row_once_in_order(
    alice, simulator_credential, settings, fast_simulator
):
    settings.SIMULATOR_REQUESTS_PER_MINUTE = 120
    simulator_credential.requests_per_minute = 120
    simulator_credential.save()
    job = planned(alice, simulator_credential)
    batch_id = pipeline.run_now(job.pk)
    job.refresh_from_db()
    sync_reservation = job.estimated_cost
    result = {}

    def run():
        result["moved"] = pipeline.answer_now(batch_id)
        connections.close_all()

    runner = threading.Thread(target=run)
    runner.start()
    batch = Batch.objects.get(pk=batch_id)
    for _ in range(400):
        batch.refresh_from_db()
        if batch.requests_completed >= 3:
            break
        time.sleep(0.02)
    assert pipeline.switch_to_batch(job.pk)
    runner.join(timeout=60)
    assert result["moved"]
    batch.refresh_from_db()
    answered = batch.request_count
    assert 3 <= answered < 8 and batch.status == Batch.Status.DOWNLOADING
    rest = job.batches.exclude(pk=batch_id).get()
    assert (rest.status, rest.synchronous, rest.request_count) == (Batch.Status.QUEUED, False, 8 - answered)
    job.refresh_from_db()
    # The reservation at the normal price is released for the rows that go the batch way.
    assert job.estimated_cost < sync_reservation
    job = finish(job)
    assert (job.status, job.rows_succeeded, job.rows_failed) == (Job.Status.COMPLETED, 8, 0)
    rest.refresh_from_db()
    assert rest.remote_batch_id
    batch.refresh_from_db()
    now_rows = [o.row for o in outcomes(batch)]
    batch_rows = [o.row for o in outcomes(rest)]
    assert now_rows == list(range(1, answered + 1))
    assert batch_rows == list(range(answered + 1, 9))
    table = read_csv(job.results_file)
    assert [r[0] for r in table[1:]] == TEXTS
    assert 0 < job.now_input_tokens < job.reported_input_tokens


def test_the_gate_refuses_run_now_over_budget_at_the_normal_price_while_send_still_fits(
    alice, simulator_credential
):
    job = planned(alice, simulator_credential)
    # A dear model, so that the two prices are dollars apart.
    ModelPrice.objects.filter(model="gpt-4o-mini").update(input_per_million=1000, output_per_million=4000)
    offer = plans.plan_for(job).run_now
    simulator_credential.monthly_budget = ((offer.cost.batch + offer.cost.synchronous) / 2).quantize(
        Decimal("0.01")
    )
    simulator_credential.save()
    plan = plans.plan_for(job)
    assert not plan.outlook.refusal
    assert "monthly budget" in plan.run_now.outlook.refusal
    with pytest.raises(gate.Refused, match="monthly budget"):
        pipeline.run_now(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.PLANNED
    assert job.batches.get().status == Batch.Status.QUEUED


def test_a_table_too_slow_for_the_keys_rate_limit_is_offered_send_only(alice, simulator_credential, settings):
    simulator_credential.requests_per_minute = 1
    simulator_credential.save()
    settings.RUN_NOW_MAX_MINUTES = 5
    job = planned(alice, simulator_credential)
    assert plans.plan_for(job).run_now is None
    with pytest.raises(gate.Refused, match="too large"):
        pipeline.run_now(job.pk)


def test_a_run_stopped_half_way_starts_again_from_its_output_file_without_asking_twice(
    alice, simulator_credential, settings
):
    settings.SIMULATOR_REQUESTS_PER_MINUTE = 120
    job = planned(alice, simulator_credential)
    batch_id = pipeline.run_now(job.pk)
    result = {}

    def run():
        result["moved"] = pipeline.answer_now(batch_id)
        connections.close_all()

    runner = threading.Thread(target=run)
    runner.start()
    batch = Batch.objects.get(pk=batch_id)
    for _ in range(400):
        batch.refresh_from_db()
        if batch.requests_completed >= 3:
            break
        time.sleep(0.02)
    # As the sweeper does for a part whose worker died: another run claims it, and the first stops.
    Batch.objects.filter(pk=batch_id).update(submit_attempts=batch.submit_attempts + 1)
    runner.join(timeout=60)
    assert result["moved"] is False
    with open(batch.output_file.path, "rb") as fh:
        first_lines = fh.read()
    with open(batch.output_file.path, "ab") as fh:
        fh.write(b'{"custom_id":"row-')  # the half line a kill can leave
    assert pipeline.answer_now(batch_id)
    with open(batch.output_file.path, "rb") as fh:
        everything = fh.read()
    assert everything.startswith(first_lines)
    ids = [line.split(b'"custom_id":"')[1].split(b'"')[0] for line in everything.splitlines()]
    assert ids == [f"row-{n}".encode() for n in range(1, 9)]


def test_run_now_paced_at_the_keys_own_limit_draws_no_429(alice, simulator_credential, settings):
    settings.SIMULATOR_REQUESTS_PER_MINUTE = 120
    simulator_credential.requests_per_minute = 120
    simulator_credential.save()
    job = planned(alice, simulator_credential)
    batch_id = pipeline.run_now(job.pk)
    assert pipeline.answer_now(batch_id)
    batch = Batch.objects.get(pk=batch_id)
    assert (batch.requests_completed, batch.throttled) == (8, 0)


def test_a_cancel_while_running_now_keeps_the_answers_and_leaves_the_rest_not_sent(
    alice, simulator_credential, settings
):
    settings.SIMULATOR_REQUESTS_PER_MINUTE = 120
    job = planned(alice, simulator_credential)
    batch_id = pipeline.run_now(job.pk)
    result = {}

    def run():
        result["moved"] = pipeline.answer_now(batch_id)
        connections.close_all()

    runner = threading.Thread(target=run)
    runner.start()
    batch = Batch.objects.get(pk=batch_id)
    for _ in range(400):
        batch.refresh_from_db()
        if batch.requests_completed >= 3:
            break
        time.sleep(0.02)
    job.refresh_from_db()
    assert job.transition(Job.CANCELLABLE, Job.Status.CANCELLING, cancel_requested_at=timezone.now())
    runner.join(timeout=60)
    assert result["moved"]
    job = finish(job)
    batch.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert job.rows_succeeded == batch.request_count >= 3
    assert job.rows_not_sent == 8 - batch.request_count and job.rows_failed == 0
