"""In the browser: the plan says which rows were answered before, and Send them again anyway.

Screenshots go to test-artifacts/ for a person to look at, wide and narrow.
"""

import pytest
from django.utils import timezone

from jobs import pipeline
from jobs.models import Job, ModelPrice
from tests.conftest import REVIEWS_CSV, screenshot
from tests.test_browser import log_in
from tests.test_pipeline import drive, new_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_a_person_sees_the_rows_answered_before_on_the_plan_and_sends_them_again_anyway(
    page, live_server, simulator_credential, settings, django_user_model
):
    settings.SIMULATOR_SPEED = 1_000_000
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million=150, output_per_million=600, as_of=timezone.now().date()),
    )
    zoe = log_in(page, live_server, django_user_model)
    drive(new_job(zoe, simulator_credential, temperature=0, name="October reviews"))
    more = REVIEWS_CSV + b"Brand new review,4,Kim\nBrand new review,4,Kim\n"
    job = new_job(zoe, simulator_credential, temperature=0, content=more, name="November reviews")
    pipeline.prepare_job(job.pk)

    page.goto(f"{live_server.url}/jobs/{job.code}/")
    line = page.get_by_test_id("plan-reused")
    line.get_by_text("5 rows were answered before").wait_for()
    assert "(in ‘October reviews’): not sent, $" in line.inner_text()
    assert "1 row repeats the request of an earlier row: sent once" in line.inner_text()
    assert page.get_by_role("button", name="Send 1 row", exact=True).is_visible()
    page.set_viewport_size({"width": 1440, "height": 900})
    screenshot(page, "30-plan-with-reused-rows")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "31-plan-with-reused-rows-narrow")

    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_role("button", name="Send them again anyway").click()
    page.get_by_text("this time every row will be sent").wait_for()
    pipeline.prepare_job(job.pk)  # the worker's part
    page.reload()
    page.get_by_role("button", name="Send 6 rows").wait_for()
    assert "answered before" not in page.get_by_test_id("plan").inner_text()
    assert Job.objects.get(pk=job.pk).send_again

    # The form asks about reuse under "Advanced".
    page.goto(f"{live_server.url}/datasets/{job.dataset.code}/new-job/")
    page.get_by_text("Advanced: endpoint, temperature").click()
    box = page.get_by_label("Reuse earlier answers to identical requests")
    assert box.is_visible() and not box.is_checked()
    screenshot(page, "32-new-job-advanced-reuse")
