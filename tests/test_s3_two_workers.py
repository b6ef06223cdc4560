"""More machines than one: two workers that share only PostgreSQL, Redis and an S3 bucket finish a job
together, and when one of them dies mid-job (SIGKILL) the other finishes it.

The S3 API is moto's real server on a free port; each worker has its own DATA_DIR and temporary
folder, so a file one of them wrote locally would be invisible to the other: every file goes
through Django's storage API (django-storages' S3Storage). Needs PostgreSQL and Redis, as CI runs.
"""

import gzip
import os
import socket

import boto3
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.urls import reverse

from bench.stack import wait_for
from jobs import pipeline, tasks
from jobs.models import Batch, Job
from tests.conftest import Worker
from tests.test_pipeline import new_job, read_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

ROWS = 60
PER_PART = 10
CONTENT = ("Review Text\n" + "".join(f"Review number {i}: quite good\n" for i in range(1, ROWS + 1))).encode()
BUCKET = "batchdash-test"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def shared_stack():
    if connection.vendor != "postgresql" or not django_settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip(
            "two machines share a PostgreSQL database and a Redis broker: set DATABASE_URL=postgres://... "
            "and CELERY_BROKER_URL=redis://... (as .ci/run does)"
        )


@pytest.fixture
def s3(shared_stack, settings, monkeypatch):
    """moto's S3 server on a free port, a bucket, and this process's files stored there too."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = KEYS | {
        "FILE_STORAGE": "storages.backends.s3.S3Storage",
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_S3_REGION_NAME": "us-east-1",
    }
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=env["AWS_S3_ENDPOINT_URL"], region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    settings.AWS_STORAGE_BUCKET_NAME = BUCKET
    settings.AWS_S3_ENDPOINT_URL = env["AWS_S3_ENDPOINT_URL"]
    settings.AWS_S3_REGION_NAME = "us-east-1"
    settings.STORAGES = settings.STORAGES | {"default": {"BACKEND": env["FILE_STORAGE"]}}
    yield client, env
    server.stop()


def stored_names(bucket) -> set[str]:
    pages = bucket.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def local_files(folder) -> list[str]:
    """Files a worker left in its own data folder, other than its scheduler's and its secrets."""
    return [
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if not name.startswith(("beat-schedule", "celerybeat"))
    ]


def test_two_workers_sharing_only_postgresql_redis_and_s3_finish_a_job_when_one_is_killed_mid_job(
    alice, simulator_credential, s3, live_server, tmp_path, settings, client
):
    bucket, env = s3

    from batchdash.celery import app

    app.control.purge()
    # A part takes about ten seconds: the job outlives the first submit.
    settings.SIMULATOR_SPEED = 5
    simulator_credential.max_requests_per_batch = PER_PART
    simulator_credential.save()
    job = new_job(alice, simulator_credential, content=CONTENT, name="Two machines")
    assert job.dataset.file.name in stored_names(bucket)  # the upload went to the bucket

    workers = {}
    for name in ("first", "second"):
        data, tmp = tmp_path / name / "data", tmp_path / name / "tmp"
        tmp.mkdir(parents=True)
        workers[name] = Worker(
            tmp_path / name / "worker.log",
            STALLED_AFTER_SECONDS="3",
            DATA_DIR=str(data),
            TMPDIR=str(tmp),
            # Shared by every machine of an install, as the README says: the key's API key is
            # encrypted with these.
            SECRET_KEY=django_settings.SECRET_KEY,
            FIELD_ENCRYPTION_KEYS=",".join(django_settings.FIELD_ENCRYPTION_KEYS),
            **env,
        )
    try:
        for worker in workers.values():
            worker.start()
        logs = [tmp_path / name / "worker.log" for name in workers]
        wait_for(lambda: all("ready" in p.read_text() for p in logs), timeout=120, message="both workers")
        tasks.prepare_job.delay(job.pk)  # the upload read from the bucket, request files written to it
        wait_for(
            lambda: Job.objects.get(pk=job.pk).status == Job.Status.PLANNED,
            timeout=120,
            message="a worker to prepare the job",
        )
        assert pipeline.start_job(job.pk)
        wait_for(
            lambda: job.batches.exclude(remote_batch_id=None).exists(),
            timeout=120,
            message="the job's first part to be submitted",
        )
        unfinished = job.batches.exclude(status=Batch.Status.DONE).count()
        workers["first"].kill()
        assert unfinished, "the job had finished before a worker was killed"
        wait_for(
            lambda: Job.objects.get(pk=job.pk).is_finished,
            timeout=240,
            message="the other worker to finish the job",
        )
    finally:
        for worker in workers.values():
            worker.stop()

    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED, job.error
    assert (job.rows_succeeded, job.rows_failed) == (ROWS, 0)
    table = read_csv(job.results_file)  # read from the bucket
    assert [r[0] for r in table[1:]] == [f"Review number {i}: quite good" for i in range(1, ROWS + 1)]
    assert {r[table[0].index("status")] for r in table[1:]} == {"succeeded"}

    client.force_login(alice)
    # The results page reads its page from the compressed CSV in the bucket, from the index.
    page = client.get(reverse("jobs:results", args=[job.code]), {"page": 2}).content.decode()
    assert "Review number 51: quite good" in page and "Review number 50: quite good" not in page

    names = stored_names(bucket)
    assert job.results_file.name in names
    for batch in job.batches.all():
        assert {batch.input_file.name, batch.output_file.name, batch.outcomes_file.name} <= names
        raw = bucket.get_object(Bucket=BUCKET, Key=batch.output_file.name)["Body"].read()
        assert gzip.decompress(raw).count(b"\n") == batch.request_count
    # Nothing of the job was kept on either machine's own disk.
    for name in ("first", "second"):
        assert not local_files(tmp_path / name / "data" / "files"), name
