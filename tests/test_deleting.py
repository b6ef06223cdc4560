"""Deleting a job never takes away a table that someone else uploaded."""

import os

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from jobs.models import Dataset, Job
from tests.conftest import make_dataset
from tests.test_pipeline import drive

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shared_upload(alice, bob, settings):
    """Alice's upload, shared with the team she and Bob are in."""
    settings.SIMULATOR_SPEED = 1_000_000
    team = Group.objects.create(name="Research")
    alice.groups.add(team)
    bob.groups.add(team)
    dataset = make_dataset(alice)
    dataset.team = team
    dataset.save()
    return dataset


def job_on(dataset, owner, credential) -> Job:
    return drive(
        Job.objects.create(
            owner=owner,
            dataset=dataset,
            credential=credential,
            team=dataset.team,
            name=f"{owner.username}'s job",
            model="gpt-4o-mini",
            user_prompt="Sentiment of: {{ Review Text }}",
        )
    )


def test_a_teammate_deleting_his_only_job_on_a_shared_upload_leaves_the_upload(
    client, bob, simulator_credential, shared_upload
):
    job = job_on(shared_upload, bob, simulator_credential)
    client.force_login(bob)

    response = client.post(reverse("jobs:delete", args=[job.code]))

    assert response.status_code == 302 and not Job.objects.filter(pk=job.pk).exists()
    assert Dataset.objects.filter(pk=shared_upload.pk).exists()
    assert os.path.exists(shared_upload.file.path)


def test_an_admin_deleting_a_teammates_job_leaves_the_owners_upload(
    client, bob, simulator_credential, shared_upload, django_user_model
):
    job = job_on(shared_upload, bob, simulator_credential)
    client.force_login(django_user_model.objects.create_user("root", is_staff=True, is_superuser=True))
    client.post(reverse("jobs:delete", args=[job.code]))
    assert not Job.objects.filter(pk=job.pk).exists()
    assert Dataset.objects.filter(pk=shared_upload.pk).exists()


def test_the_owner_deleting_her_last_job_removes_her_upload(
    client, alice, simulator_credential, shared_upload
):
    job = job_on(shared_upload, alice, simulator_credential)
    path = shared_upload.file.path
    client.force_login(alice)
    client.post(reverse("jobs:delete", args=[job.code]))
    assert not Dataset.objects.filter(pk=shared_upload.pk).exists()
    assert not os.path.exists(path)


def test_the_owner_deleting_her_job_keeps_an_upload_a_teammate_reused(
    client, alice, bob, simulator_credential, shared_upload
):
    hers = job_on(shared_upload, alice, simulator_credential)
    job_on(shared_upload, bob, simulator_credential)  # Bob picked her earlier upload for his job
    client.force_login(alice)
    client.post(reverse("jobs:delete", args=[hers.code]))
    assert not Job.objects.filter(pk=hers.pk).exists()
    assert Dataset.objects.filter(pk=shared_upload.pk).exists()
    assert os.path.exists(shared_upload.file.path)


def test_a_table_read_again_after_a_job_used_it_is_a_new_table_on_the_same_kept_file(
    client, alice, simulator_credential, shared_upload
):
    job = job_on(shared_upload, alice, simulator_credential)
    client.force_login(alice)
    choices = {"encoding": "utf-8", "delimiter": ";", "long_rows": "skip", "short_rows": "pad"}
    client.post(reverse("jobs:reading", args=[shared_upload.code]), choices)

    shared_upload.refresh_from_db()
    assert shared_upload.delimiter == ","  # the job's table is read as it was
    again = Dataset.objects.exclude(pk=shared_upload.pk).get()
    assert (again.delimiter, again.file.name) == (";", shared_upload.file.name)

    client.post(reverse("jobs:delete", args=[job.code]))
    assert not Dataset.objects.filter(pk=shared_upload.pk).exists()
    assert os.path.exists(again.file.path)
