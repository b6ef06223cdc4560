"""The whole journey on the real stack: a real Celery worker and scheduler, the simulator over HTTP."""

import csv
import io

import pytest
from django.urls import reverse

from bench.stack import wait_for
from jobs.models import Job
from tests.conftest import REVIEW_TEXTS, REVIEWS_CSV, screenshot
from tests.test_browser import log_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_real_worker_takes_an_uploaded_csv_to_the_downloaded_results(
    client, alice, simulator_credential, worker, settings
):
    settings.SIMULATOR_SPEED = 500
    client.force_login(alice)
    response = client.post(reverse("jobs:upload"), {"file": _upload("reviews.csv", REVIEWS_CSV)})
    assert response.status_code == 302
    response = client.post(
        response["Location"],
        {
            "name": "Sentiment",
            "credential": simulator_credential.pk,
            "endpoint": "/v1/chat/completions",
            "model": "gpt-4o-mini",
            "user_prompt": "Is this review positive? {{ Review Text }}",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.get()
    wait_for(lambda: Job.objects.get(pk=job.pk).status == Job.Status.PLANNED, message="the plan")
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "Ready to send" in page and "Send 5 rows" in page
    assert not job.batches.exclude(status="queued").exists()  # nothing goes before the owner says so
    client.post(reverse("jobs:start", args=[job.code]))

    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=120, message="the job to finish")

    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED
    assert (job.rows_succeeded, job.rows_failed) == (5, 0)
    download = client.get(reverse("jobs:download", args=[job.code, "results"]))
    assert download["Content-Disposition"].startswith("attachment")
    text = b"".join(download.streaming_content).decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert [row[0] for row in table[1:]] == REVIEW_TEXTS
    assert all(row[3] for row in table[1:])


def _upload(name, content):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type="text/csv")


@pytest.mark.browser
def test_a_person_does_the_whole_journey_in_a_browser(
    page, live_server, simulator_credential, worker, settings, tmp_path, django_user_model
):
    settings.SIMULATOR_SPEED = 200
    django_user_model.objects.create_user("zoe", password="zoe-password-1")
    csv_path = tmp_path / "product reviews.csv"
    csv_path.write_bytes(REVIEWS_CSV)

    page.goto(live_server.url)
    page.get_by_label("User name").fill("zoe")
    page.get_by_label("Password").fill("zoe-password-1")
    page.get_by_role("button", name="Log in").click()
    screenshot(page, "01-empty-job-list")

    page.get_by_role("link", name="Start a new job").click()
    page.get_by_label("Your table").set_input_files(str(csv_path))
    page.get_by_role("button", name="Upload and continue").click()

    page.get_by_label("Model", exact=True).select_option("gpt-4o-mini")
    page.get_by_label("Prompt for each row").fill("Is this review positive or negative? ")
    page.get_by_role("button", name="{{ Review Text }}").click()  # inserts the column at the cursor
    assert page.get_by_label("Prompt for each row").input_value() == (
        "Is this review positive or negative? {{ Review Text }}"
    )
    preview = page.locator("#request-preview")
    preview.get_by_test_id("preview-prompt").get_by_text(
        "Is this review positive or negative? Great shoes, very comfy"
    ).first.wait_for()
    page.get_by_role("button", name="Try the first 5 rows").click()
    page.get_by_test_id("pilot-trial").nth(4).wait_for()
    screenshot(page, "02-mapping-with-preview-and-pilot")

    page.get_by_role("button", name="Prepare and show the plan").click()
    plan = page.get_by_test_id("plan")
    plan.wait_for(timeout=60_000)
    assert "5 in 1 part" in plan.inner_text()
    screenshot(page, "03-plan-before-sending")
    page.get_by_role("button", name="Send 5 rows").click()
    progress = page.locator("#job-progress")
    progress.get_by_text("Completed").wait_for(timeout=120_000)
    assert page.get_by_test_id("percent").inner_text() == "100%"
    # Polling stops once the Excel and JSON Lines copies (written after the CSV) are ready: the
    # finished fragment then carries no trigger.
    page.get_by_role("link", name="Excel").wait_for(timeout=60_000)
    wait_for(lambda: progress.get_attribute("hx-get") is None, timeout=10, message="polling to stop")
    screenshot(page, "04-job-completed")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download results (CSV)").click()
    downloaded = download_info.value.path().read_bytes().decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(downloaded)))
    assert table[0][:4] == ["Review Text", "Stars", "Reviewer", "answer"]
    assert [row[2] for row in table[1:]] == ["Zoë", "Bob", "Chloé", "Ana", "Tom"]
    assert all(row[3] for row in table[1:])


@pytest.mark.browser
def test_a_file_chosen_before_the_page_s_script_ran_is_still_checked_for_size(
    page, live_server, settings, tmp_path, django_user_model
):
    """On a slow connection the file can be chosen before upload.js has loaded: its change event
    then goes unheard, and the size is checked when the script starts."""
    settings.UPLOAD_MAX_BYTES = 100
    log_in(page, live_server, django_user_model)
    held = []
    page.route("**/upload*.js", lambda route: held.append(route))
    page.get_by_role("link", name="Start a new job").click()
    page.get_by_label("Your table").wait_for()
    big = tmp_path / "big.csv"
    big.write_bytes(b"Review Text\n" + b"x" * 200 + b"\n")
    page.get_by_label("Your table").set_input_files(str(big))
    assert len(held) == 1 and not page.get_by_text("This file is larger than 100").count()
    held[0].continue_()
    page.get_by_text("This file is larger than 100").wait_for()


@pytest.mark.browser
def test_upload_says_at_once_when_a_file_is_too_big_or_empty(
    page, live_server, settings, tmp_path, django_user_model
):
    settings.UPLOAD_MAX_BYTES = 100
    log_in(page, live_server, django_user_model)
    page.get_by_role("link", name="Start a new job").click()

    big = tmp_path / "big.csv"
    big.write_bytes(b"Review Text\n" + b"x" * 200 + b"\n")
    page.get_by_label("Your table").set_input_files(str(big))
    page.get_by_text("This file is larger than 100").wait_for()
    screenshot(page, "05-upload-too-big")

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    page.get_by_label("Your table").set_input_files(str(empty))
    page.get_by_role("button", name="Upload and continue").click()
    page.get_by_text("The file is empty.").wait_for()
    assert page.url.endswith("/upload/")
