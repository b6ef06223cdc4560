"""The results view: the rows with their answers on screen, paged, searchable, filterable by status."""

import contextlib
import gzip
import tempfile

import pytest
from django.urls import reverse

from jobs.formats import reconcile
from jobs.formats.blockgzip import BlockReader, compress_blocks
from jobs.formats.exports import INDEX_STEP, write_results
from jobs.formats.resultpages import read_page
from jobs.models import Job
from tests.conftest import make_dataset
from tests.test_pipeline import drive, new_job
from tests.test_structured import job_data

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = (
    "Review Text,Reviewer\n"
    "fine,Zoë\n"
    "[[simulate:content_policy_violation]] rude,=cmd|' /C calc'!A0\n"
    ",Nobody\n"
    "great,Ana\n"
).encode()


@pytest.fixture(autouse=True)
def fast(settings):
    settings.SIMULATOR_SPEED = 1_000_000


@pytest.fixture
def job(alice, simulator_credential):
    return drive(new_job(alice, simulator_credential, content=CONTENT, name="Mixed", empty_rows="all"))


@contextlib.contextmanager
def results_file(rows: int):
    """A results file of `rows` rows as the pipeline writes it: every third failed, every seventh not sent."""
    outcomes = []
    for row in range(1, rows + 1):
        if row % 7 == 0:
            continue
        if row % 3 == 0:
            outcomes.append((reconcile.failure(row, "server_error", f"broke on {row}"), 1))
        else:
            outcomes.append((reconcile.Outcome(row, True, answer=f"answer {row}"), 1))
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as results,
        tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as failures,
    ):
        counts = write_results(
            ["text"], ((row, [f"text {row}"]) for row in range(1, rows + 1)), outcomes, results, failures
        )
        results.flush()
        yield results.buffer, counts


def test_a_far_page_is_read_from_the_index_and_filters_go_through_the_file():
    with results_file(2 * INDEX_STEP + 500) as (stream, counts):
        far_page_and_filters(stream, counts)


def test_a_results_file_compressed_in_blocks_is_read_from_its_index_as_the_plain_one():
    with results_file(2 * INDEX_STEP + 500) as (plain, counts), tempfile.TemporaryFile() as packed:
        plain_size = plain.seek(0, 2)
        counts.offsets = compress_blocks(plain, packed, counts.offsets)
        assert packed.tell() * 3 < plain_size
        packed.seek(0)
        assert gzip.decompress(packed.read()).startswith(b"\xef\xbb\xbftext,answer")  # one gzip file
        far_page_and_filters(BlockReader(packed), counts)


def far_page_and_filters(stream, counts):
    assert len(counts.offsets) == 3
    page = read_page(stream, counts.offsets, start=2 * INDEX_STEP + 100, size=50, status_at=2)
    assert [row for row, _ in page.rows] == list(range(2101, 2151))
    assert page.rows[0][1][:3] == ["text 2101", "answer 2101", "succeeded"]
    assert page.has_next
    last = read_page(stream, counts.offsets, start=2 * INDEX_STEP + 450, size=50, status_at=2)
    assert len(last.rows) == 50 and not last.has_next
    beyond = read_page(stream, counts.offsets, start=10**9, size=50, status_at=2)
    assert beyond.rows == [] and not beyond.has_next

    failed = read_page(stream, counts.offsets, start=50, size=50, status_at=2, status="failed")
    assert all(cells[2] == "failed" for _, cells in failed.rows)
    assert failed.rows[0][0] == [r for r in range(1, 3000) if r % 3 == 0 and r % 7][50]
    found = read_page(stream, counts.offsets, start=0, size=50, status_at=2, query="TEXT 1999")
    assert [row for row, _ in found.rows] == [1999]
    # A file written before the index existed is read from its start.
    old = read_page(stream, [], start=10, size=2, status_at=2)
    assert [row for row, _ in old.rows] == [11, 12]


def test_the_results_view_shows_rows_with_their_answers_and_filters_them(client, alice, job):
    client.force_login(alice)
    url = reverse("jobs:results", args=[job.code])
    page = client.get(url).content.decode()
    assert "Zoë" in page and "great" in page
    assert "=cmd|&#x27; /C calc&#x27;!A0" in page  # as the user wrote it, without the CSV's apostrophe
    assert "Not sent" in page and "Failed" in page and "Succeeded" in page
    assert reverse("jobs:row_detail", args=[job.code, 4]) in page
    assert reverse("jobs:row_detail", args=[job.code, 3]) not in page  # never sent: nothing to show

    failed = client.get(url, {"status": "failed"}).content.decode()
    assert "rude" in failed and "Zoë" not in failed
    not_sent = client.get(url, {"status": "not_sent"}).content.decode()
    assert "Nobody" in not_sent and "rude" not in not_sent
    found = client.get(url, {"q": "zoë"}).content.decode()
    assert "Zoë" in found and "great" not in found
    assert "No row matches" in client.get(url, {"q": "zzz"}).content.decode()
    # The table alone, for htmx.
    fragment = client.get(url, {"q": "great"}, headers={"HX-Request": "true"}).content.decode()
    assert "great" in fragment and "<html" not in fragment

    detail = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert url in detail


def test_structured_fields_are_columns_of_their_own(client, alice, simulator_credential):
    dataset = make_dataset(alice)
    client.force_login(alice)
    client.post(reverse("jobs:new_job", args=[dataset.code]), job_data(simulator_credential))
    job = drive(Job.objects.get())
    page = client.get(reverse("jobs:results", args=[job.code])).content.decode()
    assert '<th scope="col">sentiment</th>' in page and '<th scope="col">stars_guess</th>' in page
    assert '<th scope="col">Answer</th>' not in page


def test_no_results_yet_and_strangers(client, alice, bob, job, simulator_credential):
    client.force_login(alice)
    running = new_job(alice, simulator_credential)
    page = client.get(reverse("jobs:results", args=[running.code])).content.decode()
    assert "The results appear here when the job has finished" in page
    client.force_login(bob)
    assert client.get(reverse("jobs:results", args=[job.code])).status_code == 404
