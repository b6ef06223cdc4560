"""Rows left out before sending: empty ones (by choice) and ones longer than the model accepts."""

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs import pipeline
from jobs.models import Job, ModelPrice
from tests.test_pipeline import drive, new_job, read_csv

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = ("Review Text,Stars\ngood,5\n,3\n" + "very long review " * 40 + ",1\nfine,4\n").encode()


@pytest.fixture(autouse=True)
def small_context(settings):
    settings.SIMULATOR_SPEED = 1_000_000
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(
            input_per_million=1, output_per_million=1, as_of=timezone.now().date(), context_window=100
        ),
    )


def test_empty_and_too_long_rows_are_left_out_and_explained(client, alice, simulator_credential):
    job = new_job(alice, simulator_credential, content=CONTENT, max_output_tokens=10)
    pipeline.prepare_job(job.pk)
    job.refresh_from_db()
    assert (job.rows_total, job.rows_skipped) == (2, 2)

    client.force_login(alice)
    plan = " ".join(client.get(reverse("jobs:job_detail", args=[job.code])).content.decode().split())
    assert "1 row longer than gpt-4o-mini accepts, which would only fail: row 3 (" in plan
    assert "1 row whose columns used by the prompt are empty" in plan

    drive(job)
    assert job.status == Job.Status.COMPLETED
    assert (job.rows_succeeded, job.rows_failed) == (2, 0)
    table = read_csv(job.results_file)
    status, code, error = (table[0].index(c) for c in ("status", "error_code", "error"))
    assert [(row[status], row[code]) for row in table[1:]] == [
        ("succeeded", ""),
        ("not sent", "skipped_empty"),
        ("not sent", "too_long"),
        ("succeeded", ""),
    ]
    assert "takes at most 90" in table[3][error]
    assert job.row_failures.count() == 0


def test_empty_rows_can_be_sent_anyway(alice, simulator_credential):
    content = b"Review Text,Stars\ngood,5\n,3\n"
    job = drive(new_job(alice, simulator_credential, content=content, empty_rows=Job.EmptyRows.SEND))
    assert (job.rows_total, job.rows_skipped, job.rows_succeeded) == (2, 0, 2)


def test_a_job_with_every_row_left_out_says_so(alice, simulator_credential):
    job = new_job(alice, simulator_credential, content=b"Review Text,Stars\n,5\n,3\n")
    pipeline.prepare_job(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "all 2 were left out" in job.error


def test_a_row_id_column_must_be_unique_and_names_the_duplicates(alice, simulator_credential):
    content = b"sku,Review Text\nA1,good\nB2,bad\nA1,again\nC3,fine\nB2,more\n"
    job = new_job(alice, simulator_credential, content=content, id_column="sku")
    pipeline.prepare_job(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "the column “sku” cannot name the rows" in job.error
    assert "“A1” (rows 1, 3)" in job.error and "“B2” (rows 2, 5)" in job.error
    assert not job.batches.exists()


def test_a_unique_row_id_travels_with_the_results(client, alice, simulator_credential):
    import orjson

    content = b"sku,Review Text\nA1,good\nB2,bad\n"
    job = drive(new_job(alice, simulator_credential, content=content, id_column="sku"))
    client.force_login(alice)
    response = client.get(reverse("jobs:download", args=[job.code, "jsonl"]))
    lines = [orjson.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [line["id"] for line in lines] == ["A1", "B2"]


def test_the_empty_row_rule_can_leave_out_rows_where_any_used_column_is_empty(alice, simulator_credential):
    content = b"Subject,Message,Note\nHello,Body one,a\nNo body,,b\n,,c\n,Only a body,d\n"
    prompt = "Subject: {{ Subject }} Message: {{ Message }}"
    every = drive(new_job(alice, simulator_credential, content=content, user_prompt=prompt))
    assert (every.rows_total, every.rows_skipped) == (3, 1)  # "all": only the row with both empty

    any_empty = new_job(alice, simulator_credential, content=content, user_prompt=prompt, empty_rows="any")
    any_empty = drive(any_empty)
    assert (any_empty.rows_total, any_empty.rows_skipped) == (1, 3)
    rows = {row[0]: row for row in read_csv(any_empty.results_file)[1:]}
    assert rows["No body"][4] == "not sent" and rows["Hello"][4] == "succeeded"
