"""The job page's polling fragment is cheap: nothing changed answers 204 without rendering, and a
render runs no query from inside its template."""

import re

import pytest
from django.db import connection
from django.template.backends.django import Template
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jobs import pipeline
from jobs.models import Job
from tests.test_pipeline import new_job

pytestmark = pytest.mark.django_db


def running_job(alice, credential) -> Job:
    job = new_job(alice, credential, max_output_tokens=10)
    pipeline.prepare_job(job.pk)
    assert pipeline.start_job(job.pk)
    job.refresh_from_db()
    return job


def test_a_poll_that_finds_nothing_changed_answers_204_and_a_change_redraws(
    client, alice, simulator_credential
):
    job = running_job(alice, simulator_credential)
    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    url = re.search(r'hx-get="([^"]*/progress/\?v=[^"]+)"', page).group(1)

    with CaptureQueriesContext(connection) as queries:
        unchanged = client.get(url)
    assert unchanged.status_code == 204 and unchanged.content == b""
    assert len([q for q in queries if "jobs_job" in q["sql"]]) == 1

    pipeline.refresh_job_counters(job.pk)  # the job moved on
    changed = client.get(url)
    assert changed.status_code == 200 and 'id="job-progress"' in changed.content.decode()


def test_a_part_that_moved_at_the_provider_redraws_the_fragment(client, alice, simulator_credential):
    from jobs.models import Batch

    job = running_job(alice, simulator_credential)
    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    url = re.search(r'hx-get="([^"]*/progress/\?v=[^"]+)"', page).group(1)
    assert client.get(url).status_code == 204

    [batch_id] = pipeline.release_queued_batches()
    pipeline.submit_batch(batch_id)  # the part is now at the provider; the job row itself is unchanged
    assert Batch.objects.get(pk=batch_id).status == Batch.Status.RUNNING

    redrawn = client.get(url)
    assert redrawn.status_code == 200 and "Validating" in redrawn.content.decode()


def test_the_fragment_runs_no_query_from_its_template_or_context_processors(
    client, alice, simulator_credential, monkeypatch
):
    job = running_job(alice, simulator_credential)
    client.force_login(alice)
    rendering = {"now": False}
    original = Template.render

    def render(self, context=None, request=None):
        rendering["now"] = True
        try:
            return original(self, context, request)
        finally:
            rendering["now"] = False

    monkeypatch.setattr(Template, "render", render)
    from_template = []

    def watch(execute, sql, params, many, context):
        if rendering["now"]:
            from_template.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        response = client.get(reverse("jobs:job_progress", args=[job.code]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert from_template == []
