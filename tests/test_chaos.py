"""Kill the worker (SIGKILL, pool and scheduler with it) while jobs run, and restart it.

Whatever the moment, each part of a job must exist exactly once at the provider, every
row must end with one outcome, and the results must be those of an undisturbed run.
Runs on whatever database and broker the suite runs on: PostgreSQL and Redis in CI.
"""

import random
import time

import pytest

from bench.stack import wait_for
from jobs import pipeline
from jobs.models import Batch, Job
from simulator import faults
from simulator.models import SimBatch
from tests.test_pipeline import drive, new_job, read_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

ROWS = 40
CONTENT = ("Review Text\n" + "".join(f"Review number {i}: quite good\n" for i in range(1, ROWS + 1))).encode()


def remote_batches_per_part(job: Job) -> list[int]:
    tokens = [str(t) for t in job.batches.values_list("token", flat=True)]
    made = [b.metadata.get("batchdash_batch") for b in SimBatch.objects.all() if b.metadata]
    return [made.count(token) for token in tokens]


def test_killing_the_worker_at_random_moments_loses_and_duplicates_nothing(
    alice, simulator_credential, worker_process, settings
):
    seed = random.randrange(1_000_000)
    print(f"chaos seed: {seed}")
    chaos = random.Random(seed)
    settings.SIMULATOR_SPEED = 1_000_000
    simulator_credential.max_requests_per_batch = 4
    simulator_credential.save()

    undisturbed = drive(new_job(alice, simulator_credential, content=CONTENT, name="undisturbed"))
    SimBatch.objects.all().delete()

    settings.SIMULATOR_SPEED = 40  # slow enough for the kills to land in every step
    job = new_job(alice, simulator_credential, content=CONTENT, name="chaos")
    pipeline.prepare_job(job.pk)
    pipeline.start_job(job.pk)  # from here on, only the worker's scheduler moves the job
    for _ in range(4):
        worker_process.start()
        time.sleep(chaos.uniform(0.5, 4))
        worker_process.kill()
    worker_process.start()
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=240, message="the job to finish")

    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED
    assert job.batches.count() == ROWS // 4
    assert remote_batches_per_part(job) == [1] * (ROWS // 4)
    assert SimBatch.objects.count() == ROWS // 4
    assert (job.rows_succeeded, job.rows_failed) == (ROWS, 0)
    assert read_csv(job.results_file) == read_csv(undisturbed.results_file)


def test_a_worker_killed_between_batch_created_and_id_saved_leaves_one_remote_batch(
    alice, simulator_credential, worker_process, settings
):
    settings.SIMULATOR_SPEED = 1_000_000
    # The provider creates the batch, then takes its time to answer: the worker dies waiting.
    faults.arm("batches.create", "commit_then_delay", seconds=20)
    job = new_job(alice, simulator_credential)
    pipeline.prepare_job(job.pk)
    pipeline.start_job(job.pk)  # from here on, only the worker's scheduler moves the job
    worker_process.start()
    wait_for(lambda: SimBatch.objects.exists(), timeout=60, message="the provider to create the batch")
    worker_process.kill()
    batch = job.batches.get()
    assert batch.remote_batch_id is None  # created there, not yet saved here

    worker_process.start()
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=120, message="the job to finish")

    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED
    assert SimBatch.objects.count() == 1
    assert Batch.objects.get(pk=batch.pk).remote_batch_id == SimBatch.objects.get().id


def test_provider_failures_on_every_kind_of_call_still_end_with_every_row_accounted_for(
    alice, simulator_credential, worker_process, settings, sdk
):
    """Slow answers, timeouts, 429 with Retry-After and 500s, each met by the worker's retries."""
    settings.SIMULATOR_SPEED = 1_000_000
    worker_process.env["PROVIDER_TIMEOUT_SECONDS"] = "2"
    faults.arm("files.create", "http_error", status=500)
    faults.arm("batches.create", "commit_then_delay", seconds=4)  # created, but the answer times out
    faults.arm("batches.retrieve", "http_error", times=2, status=429, retry_after=1)
    faults.arm("batches.retrieve", "delay", seconds=3)  # a poll that times out
    faults.arm("files.content", "http_error", times=2, status=503)
    content = b"Review Text\nfine\n[[simulate:rate_limit_exceeded]] busy\nalso fine\n"
    job = new_job(alice, simulator_credential, content=content)
    pipeline.prepare_job(job.pk)
    pipeline.start_job(job.pk)

    worker_process.start()
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=180, message="the job to finish")

    job.refresh_from_db()
    assert not faults.Fault.objects.exists()  # every fault was met
    assert job.status == Job.Status.COMPLETED
    assert SimBatch.objects.count() == 1
    table = read_csv(job.results_file)
    assert [(row[0], row[2]) for row in table[1:]] == [
        ("fine", "succeeded"),
        ("[[simulate:rate_limit_exceeded]] busy", "failed"),
        ("also fine", "succeeded"),
    ]
    assert table[2][3] == "rate_limit_exceeded"
    assert job.rows_retryable == 1
