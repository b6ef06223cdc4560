"""The pages bench's jobs, made small, so that `make bench` cannot rot unseen (its figures are its own)."""

import pytest
from django.urls import reverse

from bench import pages


@pytest.mark.django_db
def test_the_pages_bench_makes_its_jobs_and_their_pages_answer(monkeypatch, client):
    monkeypatch.setattr(pages, "JOBS", 20)
    user, job = pages.populate()
    assert (job.batches.count(), type(job).objects.count()) == (pages.PARTS, 20)
    client.force_login(user)
    progress = client.get(reverse("jobs:job_progress", args=[job.code]), headers={"HX-Request": "true"})
    assert progress.status_code == client.get(reverse("jobs:home")).status_code == 200
