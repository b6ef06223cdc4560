"""Run now in the browser, on a desktop and a phone: the plan offering it beside Send, the job page
answering now under a rate limit with its Switch to Batch, and the job completed; axe on each."""

from decimal import Decimal

import pytest

from jobs import pipeline
from jobs.models import Job, ModelPrice
from tests.conftest import make_dataset
from tests.test_browser import log_in
from tests.test_phone_and_access import VIEWPORTS, Inspector
from tests.test_run_now import EIGHT_ROWS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.browser]


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_owner_runs_a_small_table_now_then_switches_the_rest_to_batch_on_a_desktop_and_a_phone(
    page, live_server, simulator_credential, worker, settings, django_user_model, viewport
):
    settings.SIMULATOR_SPEED = 500
    # One answer every two seconds: the page is seen answering, a row at a time.
    settings.SIMULATOR_REQUESTS_PER_MINUTE = 30
    simulator_credential.requests_per_minute = 30
    simulator_credential.save()
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(
            input_per_million=Decimal("0.15"), output_per_million=Decimal("0.60"), as_of="2025-08-07"
        ),
    )
    page.set_viewport_size(VIEWPORTS[viewport])
    inspector = Inspector(page, viewport)
    zoe = log_in(page, live_server, django_user_model)
    job = Job.objects.create(
        owner=zoe,
        dataset=make_dataset(zoe, EIGHT_ROWS),
        credential=simulator_credential,
        name="Shoe reviews",
        model="gpt-4o-mini",
        user_prompt="Sentiment of: {{ Review Text }}",
        max_output_tokens=50,
    )
    pipeline.prepare_job(job.pk)
    page.goto(f"{live_server.url}/jobs/{job.code}/")
    offer = page.get_by_test_id("run-now-offer")
    offer.wait_for()
    assert "the normal price" in offer.inner_text() and "half the price" in offer.inner_text()
    inspector.look("run-now-plan")

    page.get_by_role("button", name="Run now: 8 rows").click()
    answering = page.get_by_test_id("run-now")
    answering.wait_for(timeout=30_000)
    answering.get_by_text("2 of 8 rows").wait_for(timeout=60_000)
    inspector.look("run-now-answering")

    page.get_by_role("button", name="Switch to Batch for the rest").click()
    page.get_by_role("link", name="See the results").wait_for(timeout=120_000)
    job.refresh_from_db()
    assert (job.status, job.rows_succeeded) == (Job.Status.COMPLETED, 8)
    assert job.batches.filter(synchronous=False).exists() and job.batches.filter(synchronous=True).exists()
    inspector.look("run-now-completed")
    assert inspector.problems == []
