"""The results CSV and its link come first; the Excel copy and the JSON Lines file follow.

A job is complete, with its CSV downloadable, as soon as the CSV is written; a follow-up task on the
files queue writes the Excel copy and the JSON Lines file (and indexes the answers for reuse), and
the page says "Excel: being written…" (and keeps polling) until they are there, never a link to a
file that does not exist yet.
"""

from datetime import timedelta

import orjson
import pytest
from django.urls import reverse
from django_htmx.http import HTMX_STOP_POLLING

from jobs import pipeline, tasks
from jobs.models import Job, ReusableAnswer
from tests.conftest import REVIEW_TEXTS
from tests.test_pipeline import drive, new_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_simulator(settings):
    settings.SIMULATOR_SPEED = 1_000_000


def _jsonl(response) -> list[dict]:
    return [orjson.loads(line) for line in b"".join(response.streaming_content).splitlines()]


def test_the_job_completes_with_its_csv_before_the_excel_and_json_lines_files_exist(
    client, alice, simulator_credential
):
    job = drive(new_job(alice, simulator_credential), other_formats=False)
    assert job.status == Job.Status.COMPLETED and job.results_file
    assert (job.xlsx_file.name, job.jsonl_file.name, job.formats_pending) == ("", "", True)
    client.force_login(alice)

    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "Excel: being written…" in page
    assert reverse("jobs:download", args=[job.code, "xlsx"]) not in page
    assert 'hx-trigger="every 2s"' in page  # the page follows until the Excel copy is there
    assert client.get(reverse("jobs:job_progress", args=[job.code])).status_code == 200
    assert client.get(reverse("jobs:download", args=[job.code, "results"])).status_code == 200
    streamed = _jsonl(client.get(reverse("jobs:download", args=[job.code, "jsonl"])))
    assert [line["input"]["Review Text"] for line in streamed] == REVIEW_TEXTS
    assert client.get(reverse("jobs:download", args=[job.code, "xlsx"])).status_code == 404

    pipeline.write_other_formats(job.pk)

    job.refresh_from_db()
    assert job.xlsx_file and job.jsonl_file and not job.formats_pending
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "being written" not in page and 'hx-trigger="every 2s"' not in page
    assert reverse("jobs:download", args=[job.code, "xlsx"]) in page
    progress = client.get(reverse("jobs:job_progress", args=[job.code]))
    assert progress.status_code == HTMX_STOP_POLLING
    assert client.get(reverse("jobs:download", args=[job.code, "xlsx"])).status_code == 200
    stored = client.get(reverse("jobs:download", args=[job.code, "jsonl"]))
    assert job.jsonl_file.name.endswith(".gz")  # the stored file, kept compressed, sent plain
    assert _jsonl(stored) == streamed


def test_an_old_job_without_a_stored_json_lines_file_still_downloads_it(client, alice, simulator_credential):
    job = drive(new_job(alice, simulator_credential))
    job.jsonl_file.delete(save=False)
    Job.objects.filter(pk=job.pk).update(jsonl_file="")
    client.force_login(alice)
    lines = _jsonl(client.get(reverse("jobs:download", args=[job.code, "jsonl"])))
    assert [line["input"]["Review Text"] for line in lines] == REVIEW_TEXTS
    assert all(line["status"] == "succeeded" for line in lines)


def test_the_results_task_sends_the_other_formats_after_it_and_the_sweeper_sends_them_again(
    alice, simulator_credential, monkeypatch
):
    sent = []
    monkeypatch.setattr(tasks.write_other_formats, "delay", sent.append)
    job = drive(new_job(alice, simulator_credential), other_formats=False)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FINISHING)
    tasks.build_results(job.pk)
    assert sent == [job.pk]
    # Its message lost (a killed worker): once the job has been still for a while, it is sent again.
    assert pipeline.stalled_work(timedelta(hours=1))["formats"] == []
    assert pipeline.stalled_work(timedelta(0))["formats"] == [job.pk]
    Job.objects.filter(pk=job.pk).update(updated_at=job.updated_at - timedelta(hours=1))
    tasks.resume_stalled_work()
    assert sent == [job.pk, job.pk]


def test_the_other_formats_follow_the_latest_results_and_are_written_once(alice, simulator_credential):
    job = drive(new_job(alice, simulator_credential), other_formats=False)
    first_results = job.results_file.name
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FINISHING)
    pipeline.build_results(job.pk)  # as after a resend: new results, whose follow-up is to come
    job.refresh_from_db()
    assert job.results_file.name != first_results and job.formats_pending
    pipeline.write_other_formats(job.pk)
    job.refresh_from_db()
    written = (job.xlsx_file.name, job.jsonl_file.name)
    assert all(written) and not job.formats_pending
    pipeline.write_other_formats(job.pk)  # a second delivery of the task: nothing more
    job.refresh_from_db()
    assert (job.xlsx_file.name, job.jsonl_file.name) == written


def test_the_answers_are_indexed_for_reuse_after_the_csv_not_before_it(alice, simulator_credential):
    """Indexing a million answers takes minutes: the CSV and its link never wait for it."""
    job = drive(new_job(alice, simulator_credential), other_formats=False)
    assert job.status == Job.Status.COMPLETED and job.results_file
    assert not ReusableAnswer.objects.filter(job=job).exists()
    pipeline.write_other_formats(job.pk)
    indexed = ReusableAnswer.objects.filter(job=job)
    assert sorted(indexed.values_list("row", flat=True)) == list(range(1, len(REVIEW_TEXTS) + 1))
    pipeline.write_other_formats(job.pk)  # a second delivery indexes nothing twice
    assert indexed.count() == len(REVIEW_TEXTS)


@pytest.mark.browser
def test_the_page_says_excel_is_being_written_and_shows_its_link_by_itself_once_written(
    page, live_server, django_user_model, simulator_credential
):
    from tests.conftest import screenshot
    from tests.test_browser import log_in

    owner = log_in(page, live_server, django_user_model)
    job = drive(new_job(owner, simulator_credential), other_formats=False)
    page.goto(f"{live_server.url}/jobs/{job.code}/")
    page.get_by_role("link", name="Download results (CSV)").wait_for()
    assert page.get_by_test_id("xlsx-pending").inner_text() == "Excel: being written…"
    assert page.get_by_role("link", name="Excel").count() == 0
    screenshot(page, "results-first-excel-pending")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "results-first-excel-pending-narrow")
    page.set_viewport_size({"width": 1440, "height": 900})

    pipeline.write_other_formats(job.pk)

    page.get_by_role("link", name="Excel").wait_for(timeout=10_000)  # the polling brought it
    assert page.get_by_test_id("xlsx-pending").count() == 0
    screenshot(page, "results-first-excel-ready")
