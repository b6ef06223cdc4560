"""The audit log records who did what, and deleting a job removes its files here and at the provider."""

import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from jobs import tasks
from jobs.models import AuditEvent, Dataset, Job
from tests.test_pipeline import drive, new_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast(settings):
    settings.SIMULATOR_SPEED = 1_000_000


@pytest.fixture
def run_tasks_inline(monkeypatch):
    """Tasks the views enqueue run at once, here, instead of in a worker."""
    for name in (
        "delete_remote_files",
        "prepare_job",
        "schedule_batches",
        "cancel_job",
        "count_dataset_rows",
    ):
        task = getattr(tasks, name)
        monkeypatch.setattr(task, "delay_on_commit", lambda *args, task=task: task(*args))


def test_each_action_is_recorded_with_who_what_and_cost(client, alice, simulator_credential):
    client.force_login(alice)
    upload = SimpleUploadedFile("t.csv", b"Review Text\ngood\n", content_type="text/csv")
    client.post(reverse("jobs:upload"), {"file": upload})
    job = drive(new_job(alice, simulator_credential, content=b"Review Text\n[[simulate:server_error]] x\n"))
    client.get(reverse("jobs:download", args=[job.code, "results"]))
    client.post(reverse("jobs:retry", args=[job.code]))
    actions = list(AuditEvent.objects.order_by("at").values_list("actor_name", "action", "detail"))
    assert actions == [
        ("alice", "upload", "t.csv"),
        ("alice", "download", "results"),
        ("alice", "retry", "1 rows"),
    ]
    event = AuditEvent.objects.get(action="retry")
    assert (event.job, event.credential) == (job, simulator_credential)


def test_admins_filter_the_log_and_members_cannot_read_it(client, alice, django_user_model):
    root = django_user_model.objects.create_user("root", is_staff=True)
    AuditEvent.objects.create(actor=alice, actor_name="alice", action="upload", detail="a.csv")
    AuditEvent.objects.create(actor=root, actor_name="root", action="key_test", detail="worked")
    client.force_login(alice)
    assert client.get(reverse("jobs:audit")).status_code == 403
    client.force_login(root)
    page = client.get(reverse("jobs:audit"), {"action": "upload"}).content.decode()
    assert "a.csv" in page and "worked" not in page
    page = client.get(reverse("jobs:audit"), {"person": "roo"}).content.decode()
    assert "worked" in page and "a.csv" not in page


def test_deleting_a_job_removes_its_files_here_and_at_the_provider(
    client, alice, simulator_credential, sdk, settings, run_tasks_inline
):
    settings.DELETE_PROVIDER_FILES = False  # so that there is something left at the provider
    job = drive(new_job(alice, simulator_credential))
    batch = job.batches.get()
    stored = [job.results_file, job.xlsx_file, batch.input_file, batch.output_file, batch.outcomes_file]
    paths = [f.path for f in stored] + [job.dataset.file.path]
    assert len(list(sdk.files.list())) == 2
    client.force_login(alice)

    response = client.post(reverse("jobs:delete", args=[job.code]), follow=True)

    assert "Deleted “Reviews” and its files." in response.content.decode()
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not Dataset.objects.filter(pk=job.dataset_id).exists()
    assert not any(os.path.exists(path) for path in paths)
    assert list(sdk.files.list()) == []
    event = AuditEvent.objects.get(action="delete")
    assert (event.job, event.job_name, event.actor_name) == (None, "Reviews", "alice")


def test_a_running_job_is_not_deleted_and_a_shared_upload_stays(client, alice, simulator_credential):
    job = new_job(alice, simulator_credential)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
    client.force_login(alice)
    response = client.post(reverse("jobs:delete", args=[job.code]), follow=True)
    assert "Cancel the job first" in response.content.decode()
    assert Job.objects.filter(pk=job.pk).exists()

    finished = drive(new_job(alice, simulator_credential))
    Job.objects.create(
        owner=alice, dataset=finished.dataset, credential=simulator_credential, name="Same table", model="m"
    )
    client.post(reverse("jobs:delete", args=[finished.code]))
    assert Dataset.objects.filter(pk=finished.dataset_id).exists()
