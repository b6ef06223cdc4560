"""In the browser, with a real worker: reviewing failed rows and resending them, and cancelling.

Each test saves screenshots in test-artifacts/ for a person to look at.
"""

import pytest

from bench.stack import wait_for
from jobs import pipeline
from jobs.models import Job
from tests.conftest import screenshot
from tests.test_pipeline import new_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.browser]

MIXED = (
    "Review Text,Reviewer\n"
    "Great shoes,Zoë\n"
    "[[simulate:server_error]] The box was damaged,Bob\n"
    "[[simulate:context_length_exceeded]] A very long review,Chloé\n"
    "[[simulate:rate_limit_exceeded]] Arrived late,Ana\n"
    "Would buy again,Tom\n"
).encode()


def log_in(page, live_server, django_user_model, name: str = "zoe"):
    user = django_user_model.objects.create_user(name, f"{name}@example.com", f"{name}-password-1")
    page.goto(live_server.url)
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(f"{name}-password-1")
    page.get_by_role("button", name="Log in").click()
    return user


def sent_job(owner, credential, **fields) -> Job:
    """A job prepared and sent, as if its owner had clicked Send on the plan."""
    job = new_job(owner, credential, **fields)
    pipeline.prepare_job(job.pk)
    pipeline.start_job(job.pk)
    return job


def test_a_person_finds_the_failed_rows_understands_them_and_sends_some_again(
    page, live_server, simulator_credential, worker, settings, django_user_model
):
    settings.SIMULATOR_SPEED = 500
    zoe = log_in(page, live_server, django_user_model)
    job = sent_job(zoe, simulator_credential, content=MIXED, name="Shoe reviews")
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=120, message="the job to finish")

    page.goto(f"{live_server.url}/jobs/{job.code}/")
    page.get_by_role("link", name="Review the 3 failed rows").click()
    table = page.get_by_role("table")
    table.get_by_text("The text is longer than the model accepts.").wait_for()
    assert table.get_by_text("Shorten the text in this row").is_visible()
    assert table.get_by_text("The provider had an internal error on this row.").is_visible()
    # The exchange with the provider, fetched when asked for.
    page.get_by_text("The provider's words, the request and the response").first.click()
    page.get_by_text("What was sent for row 2").wait_for()
    screenshot(page, "10-failed-rows-review")

    page.get_by_label("Filter failed rows").get_by_label("Show").select_option("rate_limit_exceeded")
    page.get_by_role("button", name="Filter").click()
    assert page.get_by_text("Arrived late").is_visible()
    assert page.get_by_text("The box was damaged").count() == 0

    page.get_by_label("Select row 4").check()
    page.get_by_role("button", name="Send the ticked rows again").click()
    page.get_by_text("Sending 1 row again").wait_for()
    page.locator("#job-progress").get_by_text("Completed").wait_for(timeout=120_000)
    assert page.get_by_text("(attempt 2)").is_visible()
    screenshot(page, "11-after-resending-a-row")
    job.refresh_from_db()
    assert job.batches.filter(attempt=2).get().request_count == 1
    assert job.row_failures.get(row=4).attempts == 2


def test_a_person_cancels_a_running_job_and_keeps_what_arrived(
    page, live_server, simulator_credential, worker, settings, django_user_model
):
    settings.SIMULATOR_SPEED = 2  # slow enough to cancel while it runs
    simulator_credential.max_requests_per_batch = 2
    simulator_credential.save()
    zoe = log_in(page, live_server, django_user_model)
    job = sent_job(zoe, simulator_credential, name="To be stopped")

    page.goto(f"{live_server.url}/jobs/{job.code}/")
    page.get_by_text("Validating").first.wait_for(timeout=60_000)
    screenshot(page, "12-running-before-cancel")
    page.get_by_text("Cancel job…").click()
    page.get_by_role("button", name="Yes, cancel the job").click()
    page.get_by_text("Cancelling. Rows that already have answers stay downloadable.").wait_for()
    page.get_by_role("link", name="Download results (CSV)").wait_for(timeout=120_000)
    assert page.locator("#progress-heading").inner_text() == "Cancelled"
    screenshot(page, "13-cancelled")
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    # Every row accounted for: answered before the cancel reached it, stopped at the provider, or never sent.
    assert job.rows_succeeded + job.rows_failed + job.rows_not_sent == 5
    assert job.row_failures.filter(code="batch_cancelled").count() == job.rows_failed
