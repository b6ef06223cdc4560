"""Reviewing failed rows, resending some, and downloading results in every format."""

import io
import zipfile

import orjson
import pytest
from django.urls import reverse
from django.utils import timezone
from python_calamine import CalamineWorkbook

from jobs import errors, pipeline
from jobs.models import Job, ModelPrice
from tests.test_pipeline import drive, new_job

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = (
    "Review Text,Reviewer\n"
    "fine,Zoë\n"
    "[[simulate:server_error]] flaky,=cmd|' /C calc'!A0\n"
    "[[simulate:context_length_exceeded]] far too long,Bob\n"
    "[[simulate:rate_limit_exceeded]] busy,Ana\n"
).encode()


@pytest.fixture(autouse=True)
def fast(settings):
    settings.SIMULATOR_SPEED = 1_000_000


@pytest.fixture
def job(alice, simulator_credential):
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million=1, output_per_million=2, as_of=timezone.now().date()),
    )
    return drive(new_job(alice, simulator_credential, content=CONTENT, name="Mixed"))


def get(client, name, job, **query):
    response = client.get(reverse(f"jobs:{name}", args=[job.code]), query)
    assert response.status_code == 200
    return response.content.decode()


def test_failed_rows_are_listed_with_their_cells_in_plain_words(client, alice, job):
    client.force_login(alice)
    page = get(client, "failures", job)
    assert "3 of 4 rows" in page
    assert "The provider had an internal error on this row." in page
    assert "The text is longer than the model accepts." in page
    assert "Shorten the text in this row" in page
    assert "[[simulate:context_length_exceeded]] far too long" in page
    # Every failed row can be ticked (for an edited prompt); sent as it is, only rows that can pass go.
    assert 'value="2"' in page and 'value="4"' in page and 'value="3"' in page
    assert "Send the ticked rows again as they are" in page

    filtered = get(client, "failures", job, code="context_length_exceeded")
    assert "far too long" in filtered and "flaky" not in filtered
    assert "1 row" in filtered


def test_the_exchange_of_a_row_is_shown_on_demand(client, alice, job):
    client.force_login(alice)
    response = client.get(reverse("jobs:row_detail", args=[job.code, 3]))
    text = response.content.decode()
    assert "What was sent for row 3" in text
    assert "far too long" in text
    assert "context_length_exceeded" in text
    assert client.get(reverse("jobs:row_detail", args=[job.code, 99])).status_code == 200


def test_a_stranger_sees_neither_the_failures_nor_a_row(client, bob, job):
    client.force_login(bob)
    assert client.get(reverse("jobs:failures", args=[job.code])).status_code == 404
    assert client.get(reverse("jobs:row_detail", args=[job.code, 2])).status_code == 404


def test_ticked_rows_are_sent_again_and_only_those(client, alice, job):
    client.force_login(alice)
    response = client.post(reverse("jobs:retry", args=[job.code]), {"scope": "selected", "row": ["4"]})
    assert response.status_code == 302
    [retry] = job.batches.filter(attempt=2)
    assert (retry.first_row, retry.last_row, retry.request_count) == (4, 4, 1)

    response = client.post(
        reverse("jobs:retry", args=[job.code]), {"scope": "selected", "row": ["2"]}, follow=True
    )
    assert "Wait until the job has finished" in response.content.decode()


def test_ticking_nothing_says_so(client, alice, job):
    client.force_login(alice)
    response = client.post(reverse("jobs:retry", args=[job.code]), {"scope": "selected"}, follow=True)
    assert "Tick the rows to send again first." in response.content.decode()
    assert job.batches.count() == 1


def test_excel_download_keeps_formula_like_cells_as_plain_text_and_a_cost(client, alice, job):
    client.force_login(alice)
    response = client.get(reverse("jobs:download", args=[job.code, "xlsx"]))
    assert response["Content-Disposition"].startswith("attachment")
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    content = b"".join(response.streaming_content)
    sheet = CalamineWorkbook.from_filelike(io.BytesIO(content))
    rows = sheet.get_sheet_by_index(0).to_python()
    assert rows[0][:4] == ["Review Text", "Reviewer", "answer", "status"]
    assert rows[0][-1] == "cost_usd"
    assert rows[1][1] == "Zoë"
    # Stored as text, never as a formula, so Excel needs no apostrophe (the CSV keeps one).
    assert rows[2][1] == "=cmd|' /C calc'!A0"
    with zipfile.ZipFile(io.BytesIO(content)) as xlsx:
        assert "<f>" not in xlsx.read("xl/worksheets/sheet1.xml").decode()
    assert [r[3] for r in rows[1:]] == ["succeeded", "failed", "failed", "failed"]
    assert float(rows[1][-1]) > 0


def test_jsonl_download_streams_one_object_per_row(client, alice, job):
    client.force_login(alice)
    response = client.get(reverse("jobs:download", args=[job.code, "jsonl"]))
    assert response.streaming
    lines = [orjson.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [line["row"] for line in lines] == [1, 2, 3, 4]
    assert lines[0]["input"] == {"Review Text": "fine", "Reviewer": "Zoë"}
    assert lines[0]["status"] == "succeeded" and lines[0]["answer"]
    assert lines[0]["cost_usd"] > 0
    assert lines[1]["input"]["Reviewer"] == "=cmd|' /C calc'!A0"  # JSON is not a spreadsheet
    assert (lines[2]["error_code"], lines[2]["retryable"]) == ("context_length_exceeded", False)


def test_unknown_download_kinds_and_unfinished_jobs_answer_404(client, alice, job, simulator_credential):
    client.force_login(alice)
    assert client.get(reverse("jobs:download", args=[job.code, "pdf"])).status_code == 404
    running = new_job(alice, simulator_credential)
    assert client.get(reverse("jobs:download", args=[running.code, "jsonl"])).status_code == 404


def test_costs_estimated_before_and_reported_after(job):
    assert job.estimated_cost is not None and job.estimated_cost > 0
    assert job.reported_input_tokens > 0
    prices = {p.model: p for p in ModelPrice.objects.all()}
    from jobs.money import pricing

    actual = pricing.actual(job, prices)
    assert actual.batch == actual.synchronous / 2 > 0


def test_a_rejected_rows_message_names_its_figures():
    what, todo = errors.explain(
        "context_length_exceeded",
        "This model's maximum context length is 128000 tokens. However, your messages resulted "
        "in 140210 tokens. Please reduce the length of the messages.",
    )
    assert what == "The text is longer than the model accepts: 140,210 tokens, limit 128,000."
    assert "Shorten" in todo
    assert errors.explain("invalid_value", "x")[0] == "The provider refused the request as invalid."
    assert errors.explain("something_new", "x")[0] == "The provider could not answer this row."


def test_time_left_comes_from_the_observed_rate(job):
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING,
        started_at=timezone.now() - timezone.timedelta(minutes=10),
        rows_total=100,
        rows_processed=25,
    )
    job.refresh_from_db()
    assert 29 <= job.time_left.total_seconds() / 60 <= 31
    assert pipeline.start_job(job.pk) is False


def test_the_owner_is_emailed_when_the_job_finishes(mailoutbox, job, settings):
    [mail] = mailoutbox
    assert mail.to == ["alice@example.com"]
    assert mail.subject == "Batchdash: “Mixed” has finished"
    assert "1 of 4 rows got an answer; 3 failed (2 of them can be sent again as they are)" in mail.body
    assert f"{settings.SITE_URL}/jobs/{job.code}/" in mail.body


def test_the_job_page_shows_the_estimate_and_what_was_spent(client, alice, job):
    client.force_login(alice)
    page = get(client, "job_detail", job)
    assert "Estimated before sending" in page
    assert "as the provider reported them" in page
    assert "so you saved" in page
    assert "Review the 3 failed rows" in page


def test_the_job_list_filters_searches_and_pages(client, alice, bob, job, simulator_credential):
    for index in range(30):
        new_job(alice, simulator_credential, name=f"Batch {index:02d}")
    new_job(bob, simulator_credential, name="Bob's private job")
    client.force_login(alice)
    page = client.get(reverse("jobs:home")).content.decode()
    assert "31 jobs · page 1 of 2" in page
    assert "Bob&#x27;s private job" not in page
    assert page.count('hx-trigger="every 3s"') == 25  # the preparing ones poll; the finished one would not
    finished = client.get(reverse("jobs:home"), {"status": "completed"}).content.decode()
    assert "1 job" in finished and "Mixed" in finished and "Batch 01" not in finished
    assert 'hx-trigger="every 3s"' not in finished
    found = client.get(reverse("jobs:home"), {"q": "batch 2"}).content.decode()
    assert "Batch 20" in found and "Batch 19" not in found
    nothing = client.get(reverse("jobs:home"), {"q": "zzz"}).content.decode()
    assert "No job matches" in nothing


def test_a_job_row_stops_polling_when_its_job_stops_moving(client, alice, job, simulator_credential):
    client.force_login(alice)
    assert client.get(reverse("jobs:job_row", args=[job.code])).status_code == 286
    moving = new_job(alice, simulator_credential)
    response = client.get(reverse("jobs:job_row", args=[moving.code]))
    assert response.status_code == 200
    assert 'hx-trigger="every 3s"' in response.content.decode()
