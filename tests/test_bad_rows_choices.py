"""Rows with too many cells and rows with too few are separate choices, each doing what it says.

The file below has a row with one cell too many (line 3) and one with a cell too few (line 4).
Each choice on “Read the file again” is checked by what the preview, the count, the problems
and the summary above the form then say.
"""

import html

import pytest
from django.urls import reverse

from jobs import datasets
from jobs.models import Dataset
from tests.test_upload_pages import upload

pytestmark = pytest.mark.django_db

CONTENT = b"Review Text,Stars\ngood,5\nbad,1,extra\nshort\nok,3\n"


@pytest.fixture
def logged_in(client, alice):
    client.force_login(alice)
    return client


def choose(client, long_rows: str, short_rows: str) -> tuple[Dataset, str]:
    _, dataset = upload(client, CONTENT)
    choices = {"encoding": "utf-8", "delimiter": ",", "long_rows": long_rows, "short_rows": short_rows}
    client.post(reverse("jobs:reading", args=[dataset.code]), choices)
    datasets.count_rows(dataset.pk)
    dataset.refresh_from_db()
    page = client.get(reverse("jobs:new_job", args=[dataset.code])).content.decode()
    return dataset, " ".join(html.unescape(page).split())


@pytest.mark.parametrize(
    "long_rows, short_rows, rows, messages, summary",
    [
        (
            "skip",
            "pad",
            [["good", "5"], ["short", ""], ["ok", "3"]],
            [
                "Line 3 has 3 cells but the header has 2; the row was skipped.",
                "Line 4 has 1 cells but the header has 2; the missing ones are empty.",
            ],
            "rows with more cells than the header skipped, rows with fewer kept with their missing cells "
            "empty",
        ),
        (
            "cut",
            "skip",
            [["good", "5"], ["bad", "1"], ["ok", "3"]],
            [
                "Line 3 has 3 cells but the header has 2; the cells after the first 2 were left out.",
                "Line 4 has 1 cells but the header has 2; the row was skipped.",
            ],
            "rows with more cells than the header cut to the header's columns, rows with fewer skipped",
        ),
        (
            "skip",
            "skip",
            [["good", "5"], ["ok", "3"]],
            [
                "Line 3 has 3 cells but the header has 2; the row was skipped.",
                "Line 4 has 1 cells but the header has 2; the row was skipped.",
            ],
            "rows with more cells than the header skipped, rows with fewer skipped",
        ),
    ],
)
def test_each_choice_for_long_and_short_rows_does_what_its_label_says(
    logged_in, long_rows, short_rows, rows, messages, summary
):
    dataset, page = choose(logged_in, long_rows, short_rows)
    assert dataset.status == Dataset.Status.READY
    assert dataset.preview == rows
    assert dataset.row_count == len(rows)
    assert [p["message"] for p in dataset.problems] == messages
    for message in messages:
        assert message in page
    assert summary in page
    with datasets.rows(dataset) as all_rows:
        assert [cells for _, cells in all_rows] == rows


def test_stopping_at_a_long_row_does_not_stop_at_a_short_one(logged_in):
    dataset, page = choose(logged_in, "stop", "pad")
    assert dataset.status == Dataset.Status.INVALID
    assert "Line 3 has 3 cells but the header has 2." in page
    assert "rows with more cells than the header stop the reading" in page


def test_stopping_at_a_short_row_does_not_stop_at_a_long_one(logged_in):
    dataset, page = choose(logged_in, "skip", "stop")
    assert dataset.status == Dataset.Status.INVALID
    assert "Line 4 has 1 cells but the header has 2." in page
    assert "rows with fewer stop the reading" in page


def test_the_form_offers_each_case_its_own_choices_in_words(logged_in):
    _, page = choose(logged_in, "skip", "pad")
    assert "Rows with more cells than the header" in page
    assert "Keep the row's first cells, one per column, and leave out the rest" in page
    assert "Rows with fewer cells than the header" in page
    assert "Keep the row; its missing cells are empty" in page
