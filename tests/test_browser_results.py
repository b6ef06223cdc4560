"""In the browser, with a real worker: the results on screen, and a refused row sent again with an
edited prompt. Screenshots at desktop and phone sizes go to test-artifacts/.
"""

import pytest

from bench.stack import wait_for
from jobs.models import Job
from tests.conftest import screenshot
from tests.test_browser import log_in, sent_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.browser]

MIXED = (
    "Review Text,Reviewer\n"
    "Great shoes,Zoë\n"
    "[[simulate:content_policy_violation]] Rude words,Bob\n"
    "Would buy again,Tom\n"
    "[[simulate:server_error]] The box was damaged,Ana\n"
).encode()


def test_a_person_reads_the_answers_then_resends_a_refused_row_with_an_edited_prompt(
    page, live_server, simulator_credential, worker, settings, django_user_model
):
    settings.SIMULATOR_SPEED = 500
    zoe = log_in(page, live_server, django_user_model)
    job = sent_job(zoe, simulator_credential, content=MIXED, name="Shoe reviews")
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=120, message="the job to finish")

    page.goto(f"{live_server.url}/jobs/{job.code}/")
    page.get_by_role("link", name="See the results").click()
    table = page.get_by_role("table")
    table.get_by_text("Great shoes").wait_for()
    assert table.get_by_text("Failed").count() == 2
    page.get_by_text("Request and answer").first.click()
    page.get_by_text("What was sent for row 1").wait_for()
    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        screenshot(page, f"30-results-view-{width}")
    page.set_viewport_size({"width": 1440, "height": 900})

    page.get_by_label("Text in any cell").fill("buy again")
    page.locator("#results-table").get_by_text("Would buy again").wait_for()
    wait_for(lambda: page.locator("#results-table").get_by_text("Great shoes").count() == 0, timeout=10)
    page.get_by_label("Text in any cell").fill("")
    page.get_by_label("Status").select_option("failed")
    page.locator("#results-table").get_by_text("Rude words").wait_for()
    wait_for(lambda: page.locator("#results-table").get_by_text("Great shoes").count() == 0, timeout=10)

    page.goto(f"{live_server.url}/jobs/{job.code}/failures/")
    page.get_by_label("Select row 2").check()
    page.get_by_role("button", name="Edit the prompt and send the ticked rows").click()
    page.get_by_text("What row 2 will send").wait_for()
    page.get_by_label("Prompt", exact=True).fill("Greet {{ Reviewer }}")
    page.locator("#prompt-preview").get_by_text("Greet Bob").wait_for()
    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        screenshot(page, f"31-resend-with-edited-prompt-{width}")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_role("button", name="Send 1 row with this prompt").click()
    page.get_by_text("Sending 1 row again with the edited prompt").wait_for()
    wait_for(
        lambda: Job.objects.get(pk=job.pk).is_finished and Job.objects.get(pk=job.pk).rows_succeeded == 3,
        timeout=120,
        message="the resent row to succeed",
    )
    page.goto(f"{live_server.url}/jobs/{job.code}/results/?status=failed")
    page.locator("#results-table").get_by_text("The box was damaged").wait_for()
    assert page.locator("#results-table").get_by_text("Rude words").count() == 0
    page.goto(f"{live_server.url}/jobs/{job.code}/failures/")
    screenshot(page, "32-failures-after-edited-resend-1440")
