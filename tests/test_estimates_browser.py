"""The estimate reports in a real browser: a finished job's, and the spend page's per model, checked by
axe-core on a desktop and on a phone (screenshots in /tmp/shots-estimates/)."""

from pathlib import Path

import pytest
from django.urls import reverse

from tests.test_browser import log_in
from tests.test_estimates import priced  # noqa: F401 (a fixture)
from tests.test_phone_and_access import VIEWPORTS, Inspector
from tests.test_pipeline import drive, new_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

SHOTS = Path("/tmp/shots-estimates")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_estimate_reports_read_well_on_a_desktop_and_a_phone(
    page, live_server, simulator_credential, priced, django_user_model, viewport  # noqa: F811
):
    page.set_viewport_size(VIEWPORTS[viewport])
    root = log_in(page, live_server, django_user_model, "root")
    django_user_model.objects.filter(pk=root.pk).update(is_staff=True)
    job = new_job(root, simulator_credential, system_prompt="Answer in one word.", max_output_tokens=50)
    drive(job)
    drive(new_job(root, simulator_credential, pilot_output_tokens=20.0))
    inspector = Inspector(page, viewport)
    SHOTS.mkdir(exist_ok=True)

    page.goto(live_server.url + reverse("jobs:job_detail", args=[job.code]))
    report = page.get_by_test_id("job-estimates")
    report.get_by_role("heading", name="Estimate against reported").wait_for()
    assert report.get_by_role("row", name="Prompt tokens").inner_text().count("exactly as many") == 1
    inspector.look("estimates-job")
    page.screenshot(path=str(SHOTS / f"{viewport}-job.png"), full_page=True)

    page.goto(live_server.url + reverse("jobs:spend"))
    page.get_by_role("heading", name="Estimates against reported, per model").wait_for()
    assert "2 jobs" in page.get_by_role("heading", name="gpt-4o-mini").inner_text()
    inspector.look("estimates-spend")
    page.screenshot(path=str(SHOTS / f"{viewport}-spend.png"), full_page=True)

    assert inspector.problems == []
