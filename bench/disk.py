"""Disk kept per upload: a 100,000-row job of the multilingual table run through the whole pipeline.

A fresh SQLite database and a fresh MEDIA_ROOT; the simulator answers over real HTTP from a
thread of this process, through the openai SDK as the app always reaches a provider. Once the
job has finished and its Excel and JSON Lines copies are written, every file the app keeps for
it (the upload, request files, provider output, outcomes, results in each format) is measured in
storage and divided by the upload's size: `disk_per_upload_ratio`; then again once the raw request
and provider files have passed their retention (`disk_per_upload_after_retention_ratio`). The
simulator's own files are the provider's, not ours (and deleted there once stored here), so they
are left out.
"""

import os
import shutil
import tempfile
import threading
import time

from bench.data import ROOT, multi_csv
from bench.measure import report
from bench.prepare import MODEL, MULTI_PROMPT, MULTI_SYSTEM

ROWS = 100_000
WORK = ROOT / "disk"
SIMULATOR_KEY = "sk-bench-disk"


def serve_simulator():
    """The simulator's own WSGI application on a free port, in a daemon thread; returns its base URL."""
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    from batchdash.simulator_wsgi import application

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), Quiet)
    server.set_app(application)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/simulator/v1"


def run_job(base_url: str):
    from django.contrib.auth.models import User
    from django.core.files import File

    from jobs import datasets, pipeline
    from jobs.models import Batch, Job, ProviderCredential

    user = User.objects.create_user("bench", "bench@example.com", "bench-password-1")
    credential = ProviderCredential(
        name="Simulator",
        kind=ProviderCredential.Kind.SIMULATOR,
        base_url=base_url,
        is_default=True,
        poll_min_seconds=0.2,
        poll_max_seconds=1,
    )
    credential.set_api_key(SIMULATOR_KEY)
    credential.save()
    with multi_csv(ROWS).open("rb") as upload:
        dataset = datasets.create_from_upload(user, File(upload, name="multi.csv"))
    job = Job.objects.create(
        owner=user,
        dataset=dataset,
        credential=credential,
        name="Disk",
        model=MODEL,
        system_prompt=MULTI_SYSTEM,
        user_prompt=MULTI_PROMPT,
    )
    pipeline.prepare_job(job.pk)
    assert pipeline.start_job(job.pk), Job.objects.get(pk=job.pk).error
    # What the scheduler and the worker do, in this process, until the job has finished.
    while not Job.objects.get(pk=job.pk).is_finished:
        for batch_id in pipeline.release_queued_batches():
            pipeline.submit_batch(batch_id)
        for batch in job.batches.filter(status=Batch.Status.RUNNING):
            pipeline.poll_batch(batch.pk)
        for batch in job.batches.filter(status=Batch.Status.DOWNLOADING):
            pipeline.finish_batch(batch.pk)
        if pipeline.start_results(job.pk):
            pipeline.build_results(job.pk)
        time.sleep(0.2)
    pipeline.write_other_formats(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED and job.rows_succeeded == ROWS, (job.status, job.error)
    return job


def stored_bytes(media) -> int:
    """Bytes of every file under MEDIA_ROOT but the simulator's."""
    return sum(
        (path.stat().st_size)
        for path in media.rglob("*")
        if path.is_file() and path.relative_to(media).parts[0] != "simulator"
    )


def gzip_speed(job) -> float:
    """What compression costs: the job's results CSV compressed again as build_results does, in MB of
    plain text per second of CPU."""
    from jobs import rawfiles

    with tempfile.TemporaryFile() as plain:
        with rawfiles.lines(job.results_file) as stored:
            shutil.copyfileobj(stored, plain)
        size = plain.tell()
        plain.seek(0)
        start = time.process_time()
        with rawfiles.compressed(plain):
            return size / 1e6 / (time.process_time() - start)


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    media = WORK / "files"
    os.environ.update(
        DATABASE_URL=f"sqlite:///{WORK / 'disk.sqlite3'}",
        MEDIA_ROOT=str(media),
        FILE_STORAGE="django.core.files.storage.FileSystemStorage",
        SIMULATOR_API_KEYS=SIMULATOR_KEY,
        SIMULATOR_SPEED="1000000",
    )
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # not the console

    call_command("migrate", verbosity=0)
    job = run_job(serve_simulator())
    upload = job.dataset.file.size
    kept = stored_bytes(media)
    report("disk_upload_mb", upload / 1e6, "MB", digits=1)
    report("disk_kept_mb", kept / 1e6, "MB", digits=1)
    report("disk_per_upload_ratio", kept / upload, "ratio", digits=2)
    report("disk_results_gzip_mb_per_s", gzip_speed(job), "MB/s")
    # And once the raw request and provider files have passed RAW_FILE_RETENTION_DAYS.
    from django.utils import timezone

    from jobs import pipeline
    from jobs.models import Job

    past = timezone.now() - timezone.timedelta(days=settings.RAW_FILE_RETENTION_DAYS + 1)
    Job.objects.filter(pk=job.pk).update(finished_at=past)
    pipeline.clean_up_files()
    report("disk_per_upload_after_retention_ratio", stored_bytes(media) / upload, "ratio", digits=2)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
