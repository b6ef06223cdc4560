"""The analyst watches jobs that do not go straight: a part that expires and is followed up, failed rows
sent again, answers counted at the provider while a part runs, and a plan the budget cannot pay for
whole; on a desktop and on a phone, each page checked by axe-core.

The steps run in this process against the simulator (its clock moved by hand), as the worker would
run them; the browser reads the job page as its owner would.
"""

import shutil
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from jobs import pipeline
from jobs.models import Job, ModelPrice
from jobs.money import gate
from simulator import faults
from tests.test_browser import log_in
from tests.test_phone_and_access import VIEWPORTS, Inspector
from tests.test_pipeline import new_job, step

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

SHOTS = Path("/tmp/shots-progress")


def look(inspector: Inspector, name: str) -> None:
    inspector.look(name)
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(f"test-artifacts/{inspector.viewport}-{name}.png", SHOTS / f"{inspector.viewport}-{name}.png")


def sent(owner, credential, **fields) -> Job:
    job = new_job(owner, credential, max_output_tokens=10, **fields)
    pipeline.prepare_job(job.pk)
    assert pipeline.start_job(job.pk)
    return job


def run(job: Job, clock, until) -> Job:
    """Move the simulator's clock and the job's steps on until `until(job)`."""
    for _ in range(40):
        clock["t"] += 20
        step(job)
        job.refresh_from_db()
        if until(job):
            return job
    raise AssertionError(f"{job.name} did not get there: {job.status}")


def open_job(page, live_server, job: Job) -> None:
    page.goto(f"{live_server.url}/jobs/{job.code}/")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_analyst_follows_an_expired_part_a_resend_and_a_plan_over_budget(
    page, live_server, simulator_credential, moving_clock, speed, django_user_model, viewport
):
    page.set_viewport_size(VIEWPORTS[viewport])
    inspector = Inspector(page, viewport)
    zoe = log_in(page, live_server, django_user_model)
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million=1000, output_per_million=4000, as_of=timezone.now().date()),
    )

    # Answers counted at the provider while the only part is in progress.
    running = sent(zoe, simulator_credential, name="Counted as they come")
    run(running, moving_clock, lambda j: j.batches.filter(remote_status="validating").exists())
    moving_clock["t"] += 30 + 0.8  # validated, and 3 of the 5 requests done
    step(running)
    open_job(page, live_server, running)
    assert page.get_by_test_id("answered-at-provider").inner_text().startswith("3 answered at the provider")
    look(inspector, "answered-at-provider")

    # A part expires half done; the follow-up takes over its unfinished rows.
    faults.arm("batches.create", "expire", fraction=0.5)
    expiring = sent(zoe, simulator_credential, name="Expires once")
    run(expiring, moving_clock, lambda j: j.batches.filter(attempt=2).exists())
    open_job(page, live_server, expiring)
    assert "superseded by part 1 (attempt 2)" in page.get_by_test_id("superseded").inner_text()
    assert " 0 failed" in page.locator("#job-progress").inner_text()
    look(inspector, "expired-followed-up")
    run(expiring, moving_clock, lambda j: j.is_finished)
    page.reload()
    assert page.get_by_test_id("status").inner_text() == "Completed"
    look(inspector, "expired-completed")

    # Failed rows sent again: more work, the bar keeps what was done.
    faults.arm("batches.create", "expire", fraction=0.5)
    resent = sent(zoe, simulator_credential, name="Sent again", resubmit_expired=False)
    run(resent, moving_clock, lambda j: j.is_finished)
    open_job(page, live_server, resent)
    page.get_by_role("button", name="again").click()
    resent.refresh_from_db()
    assert resent.rows_resent and resent.rows_processed == 5
    assert "sent again" in page.get_by_test_id("processed").inner_text()
    look(inspector, "resent-running")
    run(resent, moving_clock, lambda j: j.is_finished)

    # A plan the budget cannot pay for whole offers its first rows.
    over = new_job(zoe, simulator_credential, name="Over budget", max_output_tokens=10)
    pipeline.prepare_job(over.pk)
    over.refresh_from_db()
    # Room for about three of its five rows, after what the jobs above spent or hold.
    simulator_credential.monthly_budget = Decimal(100)
    [key] = gate.budgets(simulator_credential, zoe, over)
    simulator_credential.monthly_budget = (key.used + over.estimated_cost * 3 / 5).quantize(
        Decimal("0.01"), rounding=ROUND_CEILING
    )
    simulator_credential.save()
    open_job(page, live_server, over)
    offer = page.get_by_role("button", name="Send only the first")
    assert offer.is_visible()
    look(inspector, "plan-first-rows")
    offer.click()
    over.refresh_from_db()
    assert over.status == Job.Status.RUNNING
    assert 0 < over.estimated_cost <= simulator_credential.monthly_budget - key.used
    run(over, moving_clock, lambda j: j.is_finished)
    page.reload()
    assert page.get_by_role("button", name="not sent").is_visible()
    assert "held back by the budget" in page.get_by_test_id("not-sent").inner_text()
    assert page.get_by_test_id("percent").inner_text() == "60%"  # 3 of 5: not all of it is done
    look(inspector, "rows-held-back")

    assert not inspector.problems, "\n".join(inspector.problems)
