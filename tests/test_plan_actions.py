"""The plan's way back: Edit returns to the filled-in form and replaces the plan when prepared again;
Discard removes it at once. Neither sends, spends or fails anything, and the upload stays."""

import pytest
from django.urls import reverse

from jobs import pipeline
from jobs.models import AuditEvent, Dataset, Job
from tests.test_pipeline import new_job
from tests.test_templates import post_data

pytestmark = pytest.mark.django_db


def planned(alice, credential, **fields) -> Job:
    job = new_job(alice, credential, max_output_tokens=10, **fields)
    pipeline.prepare_job(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.PLANNED
    return job


def test_discard_removes_the_plan_at_once_and_keeps_the_upload(client, alice, simulator_credential):
    job = planned(alice, simulator_credential)
    request_files = [b.input_file.name for b in job.batches.all()]
    storage = job.batches.first().input_file.storage
    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "Discard" in page and "Edit" in page and "Don't send" not in page

    response = client.post(reverse("jobs:discard", args=[job.code]), follow=True)

    assert not Job.objects.filter(pk=job.pk).exists()
    assert not any(storage.exists(name) for name in request_files)
    assert Dataset.objects.filter(pk=job.dataset_id).exists()
    assert "Discarded “Reviews”: nothing was sent." in response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("jobs:new_job", args=[job.dataset.code])
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DELETE, detail__contains="discarded").exists()


def test_a_job_already_sent_cannot_be_discarded(client, alice, simulator_credential):
    job = planned(alice, simulator_credential)
    assert pipeline.start_job(job.pk)
    client.force_login(alice)
    response = client.post(reverse("jobs:discard", args=[job.code]), follow=True)
    assert "Only a plan that was not sent can be discarded." in response.content.decode()
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING


def test_edit_returns_to_the_filled_in_form_and_preparing_again_replaces_the_plan(
    client, alice, simulator_credential
):
    job = planned(alice, simulator_credential, name="October", system_prompt="Be brief.", empty_rows="any")
    client.force_login(alice)
    url = reverse("jobs:new_job", args=[job.dataset.code]) + f"?edit={job.code}"
    form = client.get(url).content.decode()
    assert 'value="October"' in form and "Be brief." in form and "Sentiment of: {{ Review Text }}" in form
    assert '<option value="any" selected>' in form
    assert f'name="replaces" value="{job.code}"' in form

    data = post_data(simulator_credential, name="October", user_prompt="Mood of: {{ Review Text }}")
    response = client.post(url, data | {"replaces": str(job.code)})

    assert response.status_code == 302
    assert not Job.objects.filter(pk=job.pk).exists()
    [replacement] = Job.objects.filter(dataset=job.dataset)
    assert replacement.user_prompt == "Mood of: {{ Review Text }}"


def test_someone_elses_plan_cannot_be_edited_into_or_discarded(client, alice, bob, simulator_credential):
    job = planned(alice, simulator_credential)
    client.force_login(bob)
    assert client.post(reverse("jobs:discard", args=[job.code])).status_code == 404
    assert Job.objects.filter(pk=job.pk).exists()
