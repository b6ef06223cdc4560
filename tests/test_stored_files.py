"""What a job keeps in file storage, and how: raw request and provider files and outcomes
gzip-compressed and read back as lines wherever they are read, files stored before compression
still read, and a default retention for the raw files that keeps outcomes and results.
"""

import gzip

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from jobs import pipeline
from jobs.models import Batch, Job
from jobs.pipeline.common import expected_rows
from tests.test_pipeline import drive, new_job, read_csv

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 30
CONTENT = ("Review Text\n" + "".join(f"Review number {i}: quite good\n" for i in range(1, ROWS + 1))).encode()


@pytest.fixture
def fast_simulator(settings):
    settings.SIMULATOR_SPEED = 1_000_000


def stored_bytes(field) -> bytes:
    with field.storage.open(field.name, "rb") as fh:
        return fh.read()


def test_request_provider_and_outcome_files_are_stored_gzip_compressed_and_read_back_as_lines(
    alice, simulator_credential, fast_simulator
):
    simulator_credential.max_requests_per_batch = 10
    simulator_credential.save()
    job = drive(new_job(alice, simulator_credential, content=CONTENT))
    assert job.status == Job.Status.COMPLETED
    batches = list(job.batches.order_by("index"))
    assert len(batches) == 3
    for batch in batches:
        for field in (batch.input_file, batch.output_file, batch.outcomes_file):
            assert field.name.endswith(".gz"), field.name
            lines = gzip.decompress(stored_bytes(field)).splitlines()
            assert len(lines) == 10, field.name
        request_lines = gzip.decompress(stored_bytes(batch.input_file)).splitlines()
        assert all(line.startswith(b'{"custom_id":"row-') for line in request_lines)
        # The request file is much smaller compressed than what was sent.
        assert batch.input_file.size * 2 < batch.input_bytes
    # The results too, the CSV in blocks that its pages are read from, both read back plain.
    assert job.results_file.name.endswith(".gz") and job.jsonl_file.name.endswith(".gz")
    table = read_csv(job.results_file)
    assert [r[0] for r in table[1:]] == [f"Review number {i}: quite good" for i in range(1, ROWS + 1)]
    assert {r[2] for r in table[1:]} == {"succeeded"}
    # The review page reads the row's request and answer from the compressed copies.
    sent, answer = pipeline.row_exchange(job, 17)
    assert b'"custom_id":"row-17"' in sent and b"row-17" in answer


def test_request_files_stored_before_compression_are_still_read(alice, simulator_credential, fast_simulator):
    """Files of jobs from before compression (plain JSONL) are read as they are: nothing is lost."""
    job = drive(new_job(alice, simulator_credential, content=CONTENT))
    batch = job.batches.get()
    plain = gzip.decompress(stored_bytes(batch.input_file))
    batch.input_file.delete(save=False)
    batch.input_file.save("old.jsonl", ContentFile(plain), save=False)
    Batch.objects.filter(pk=batch.pk).update(input_file=batch.input_file.name)
    assert not batch.input_file.name.endswith(".gz")

    sent, _ = pipeline.row_exchange(job, 3)
    assert b'"custom_id":"row-3"' in sent
    assert expected_rows(batch) == list(range(1, ROWS + 1))


def test_raw_files_are_kept_thirty_days_by_default_while_outcomes_and_results_stay(
    alice, simulator_credential, fast_simulator
):
    from django.conf import settings

    job = drive(new_job(alice, simulator_credential, content=CONTENT))
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timezone.timedelta(days=29))
    pipeline.clean_up_files()
    assert job.batches.get().input_file.name, "kept: not thirty days old yet"

    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timezone.timedelta(days=31))
    pipeline.clean_up_files()
    batch = job.batches.get()
    assert (batch.input_file.name, batch.output_file.name) == ("", "")
    assert batch.outcomes_file.name
    assert len(read_csv(job.results_file)) == ROWS + 1
    assert settings.RAW_FILE_RETENTION_DAYS == 30
