"""Server time of the pages people keep open: the job page's polling fragment and the job list.

A fresh SQLite database (the embedded default) gets a job of 20 parts and 10,000 jobs of
one user; requests go through Django's full stack (middleware, session, templates) in
this process, so the time measured is the server's. Figures are medians: the poll when something
changed (a redraw) and when nothing did (204).
"""

import os
import re
import statistics
import time

from bench.data import ROOT

DATABASE = ROOT / "pages.sqlite3"
PARTS = 20
JOBS = 10_000


def median_ms(client, url: str, runs: int, status: int = 200) -> float:
    client.get(url)  # warm up: templates compiled, connections open
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == status, response.status_code
    return statistics.median(timings)


def populate():
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils import timezone

    from jobs import datasets
    from jobs.models import Batch, Job, ProviderCredential

    user = User.objects.create_user("bench", "bench@example.com", "bench-password-1")
    credential = ProviderCredential(name="Bench", kind=ProviderCredential.Kind.SIMULATOR)
    credential.set_api_key("sk-bench")
    credential.save()
    dataset = datasets.create_from_upload(
        user, SimpleUploadedFile("reviews.csv", b"Review Text\ngood\n", content_type="text/csv")
    )
    common = dict(owner=user, dataset=dataset, credential=credential, model="gpt-4o-mini")
    Job.objects.bulk_create(
        Job(name=f"Job {i}", status=Job.Status.COMPLETED, rows_total=1000, **common) for i in range(JOBS - 1)
    )
    job = Job.objects.create(
        name="Twenty parts",
        status=Job.Status.RUNNING,
        rows_total=PARTS * 50_000,
        started_at=timezone.now(),
        **common,
    )
    states = ["validating", "in_progress", "finalizing"]
    Batch.objects.bulk_create(
        Batch(
            job=job,
            index=i,
            status=Batch.Status.RUNNING if i % 4 else Batch.Status.DONE,
            remote_status=states[i % 3] if i % 4 else "completed",
            remote_batch_id=f"batch_{i}",
            first_row=i * 50_000 + 1,
            last_row=(i + 1) * 50_000,
            request_count=50_000,
            requests_completed=20_000,
            rows_succeeded=49_000 if i % 4 == 0 else 0,
            rows_failed=1_000 if i % 4 == 0 else 0,
            input_file=f"batches/{i}.jsonl",
        )
        for i in range(PARTS)
    )
    return user, job


def main() -> None:
    DATABASE.unlink(missing_ok=True)
    os.environ["DATABASE_URL"] = f"sqlite:///{DATABASE}"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from django.urls import reverse

    from bench.measure import report

    setup_test_environment()
    settings.STORAGES = settings.STORAGES | {
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    }
    call_command("migrate", verbosity=0)
    user, job = populate()
    client = Client()
    client.force_login(user)
    # The page's polls come from htmx, which says so: fragments are drawn without the page's frame.
    poller = Client(headers={"HX-Request": "true"})
    poller.force_login(user)

    progress = reverse("jobs:job_progress", args=[job.code])
    report("poll_ms", median_ms(poller, progress, 200), "ms", digits=1)
    with CaptureQueriesContext(connection) as queries:
        poller.get(progress)
    report("poll_queries", len(queries), "")
    # What most polls are: the fragment drawn (its address says from what) finds nothing changed.
    unchanged = re.search(r'hx-get="([^"]+)"', poller.get(progress).content.decode()).group(1)
    report(
        "poll_unchanged_ms",
        median_ms(poller, unchanged.replace("&amp;", "&"), 200, status=204),
        "ms",
        digits=1,
    )
    report("job_list_ms", median_ms(client, reverse("jobs:home"), 30), "ms", digits=1)


if __name__ == "__main__":
    main()
