"""The pipeline's steps called directly, against the real database and the simulator over HTTP."""

import csv
import io

import pytest
from django.db.models import F
from django.utils import timezone

from bench.stack import wait_for
from jobs import pipeline, rawfiles
from jobs.formats import reconcile
from jobs.models import Batch, Job
from jobs.providers.client import ProviderClient
from tests.conftest import REVIEW_TEXTS, make_dataset

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast_simulator(settings):
    settings.SIMULATOR_SPEED = 1_000_000


def new_job(owner, credential, **fields) -> Job:
    dataset = make_dataset(owner, fields.pop("content")) if "content" in fields else make_dataset(owner)
    defaults = dict(name="Reviews", model="gpt-4o-mini", user_prompt="Sentiment of: {{ Review Text }}")
    return Job.objects.create(owner=owner, dataset=dataset, credential=credential, **(defaults | fields))


def send(job: Job) -> list[int]:
    """Prepare the job, send it, and let the scheduler release what the token budget allows."""
    pipeline.prepare_job(job.pk)
    assert pipeline.start_job(job.pk)
    return pipeline.release_queued_batches()


def step(job: Job, other_formats: bool = True) -> None:
    """One round of what the worker and the scheduler do, in this process; `other_formats=False`
    stops after the results CSV, before the follow-up that writes the Excel and JSON Lines files."""
    for batch_id in pipeline.release_queued_batches():
        pipeline.submit_batch(batch_id)
    for batch in job.batches.filter(status=Batch.Status.RUNNING):
        pipeline.poll_batch(batch.pk)
    pipeline.cancel_job(job.pk)
    for batch in job.batches.filter(status=Batch.Status.DOWNLOADING):
        pipeline.finish_batch(batch.pk)
    if pipeline.start_results(job.pk) and pipeline.build_results(job.pk) and other_formats:
        pipeline.write_other_formats(job.pk)


def drive(job: Job, timeout: float = 60, other_formats: bool = True) -> Job:
    """Run the job's steps until it has finished."""
    pipeline.prepare_job(job.pk)  # each step does nothing when already done
    pipeline.start_job(job.pk)

    def finished() -> bool:
        step(job, other_formats)
        job.refresh_from_db()
        return job.is_finished

    wait_for(finished, timeout=timeout, message="the job to finish")
    return job


def read_csv(field) -> list[list[str]]:
    with rawfiles.lines(field) as fh:
        text = fh.read().decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_a_csv_goes_all_the_way_to_a_results_file(alice, simulator_credential, fast_simulator):
    job = drive(new_job(alice, simulator_credential))
    assert job.status == Job.Status.COMPLETED
    assert (job.rows_total, job.rows_succeeded, job.rows_failed) == (5, 5, 0)
    table = read_csv(job.results_file)
    assert table[0] == [
        "Review Text",
        "Stars",
        "Reviewer",
        "answer",
        "status",
        "error_code",
        "error",
        "attempts",
        "input_tokens",
        "output_tokens",
        "cost_usd",
    ]
    assert [row[0] for row in table[1:]] == REVIEW_TEXTS
    assert [row[2] for row in table[1:]] == ["Zoë", "Bob", "Chloé", "Ana", "Tom"]
    assert all(row[3] and row[4] == "succeeded" for row in table[1:])
    assert all(int(row[8]) > 0 for row in table[1:])


def test_a_job_larger_than_one_batch_is_split_and_joined_back(alice, simulator_credential, fast_simulator):
    simulator_credential.max_requests_per_batch = 2
    simulator_credential.save()
    job = drive(new_job(alice, simulator_credential))
    assert job.batches.count() == 3
    assert [(b.first_row, b.last_row) for b in job.batches.all()] == [(1, 2), (3, 4), (5, 5)]
    assert [row[4] for row in read_csv(job.results_file)[1:]] == ["succeeded"] * 5


def test_a_row_over_the_size_limit_fails_the_prepare_and_leaves_none_of_its_parts_stored(
    alice, simulator_credential, settings, tmp_path, monkeypatch
):
    from django.core.files.storage import FileSystemStorage, default_storage

    settings.MEDIA_ROOT = tmp_path / "files"  # this test's own storage: nothing else writes there
    deleted = []
    delete = FileSystemStorage.delete

    def recorded(storage, name):
        deleted.append(name)
        delete(storage, name)

    monkeypatch.setattr(FileSystemStorage, "delete", recorded)
    simulator_credential.max_requests_per_batch = 2
    simulator_credential.max_bytes_per_batch = 1_000
    simulator_credential.save()
    content = b"Review Text\n" + b"".join(b"short %d\n" % n for n in range(1, 5)) + b"x" * 2_000 + b"\n"
    job = new_job(alice, simulator_credential, content=content)
    pipeline.prepare_job(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error.startswith("Nothing was sent: Row 5 makes a request of ")
    # The part of rows 1-2 was stored before row 5 was met: it is gone again.
    assert len(deleted) == 1 and deleted[0].startswith("batches/")
    assert default_storage.listdir("batches") == ([], []) and not job.batches.exists()


def test_a_prepare_overtaken_by_a_cancel_leaves_none_of_its_files_stored(
    alice, simulator_credential, settings, tmp_path, monkeypatch
):
    from django.core.files.storage import default_storage

    from jobs.pipeline import stage1_prepare

    settings.MEDIA_ROOT = tmp_path / "files"
    simulator_credential.max_requests_per_batch = 2
    simulator_credential.save()
    content = b"id,Review Text\n" + b"".join(b"%d,review %d\n" % (n, n) for n in range(1, 6)) + b"6,\n"
    job = new_job(alice, simulator_credential, content=content, empty_rows=Job.EmptyRows.ALL)
    first_batches = stage1_prepare._first_batches

    def cancelled_meanwhile(job):
        made = first_batches(job)
        Job.objects.filter(pk=job.pk).update(status=Job.Status.CANCELLED)  # the owner cancelled meanwhile
        return made

    monkeypatch.setattr(stage1_prepare, "_first_batches", cancelled_meanwhile)
    assert pipeline.prepare_job(job.pk) == []
    # The three parts and the skipped rows' file were stored, then deleted again.
    assert default_storage.listdir("batches") == ([], [])
    assert default_storage.listdir("results") == ([], [])
    assert not Batch.objects.filter(job=job).exists()


def test_rows_the_model_rejects_are_reported_with_their_error(alice, simulator_credential, fast_simulator):
    content = b"Review Text\nfine\n[[simulate:context_length_exceeded]] far too long\nalso fine\n"
    job = drive(new_job(alice, simulator_credential, content=content))
    assert (job.status, job.rows_succeeded, job.rows_failed) == (Job.Status.COMPLETED, 2, 1)
    failures = read_csv(job.failures_file)
    assert len(failures) == 2
    assert failures[1][1:3] == ["2", "context_length_exceeded"]
    assert failures[1][4] == "no"


def test_a_batch_the_provider_rejects_fails_its_rows_with_the_reason(
    alice, simulator_credential, fast_simulator
):
    job = drive(new_job(alice, simulator_credential, model="no-such-model"))
    assert job.status == Job.Status.FAILED
    assert job.rows_failed == 5
    failures = read_csv(job.failures_file)
    assert {row[4] for row in failures[1:]} == {"model_not_found"}
    assert "no-such-model" in failures[1][5]


def test_submitting_twice_creates_one_remote_batch(alice, simulator_credential, sdk):
    job = new_job(alice, simulator_credential)
    [batch_id] = send(job)
    pipeline.submit_batch(batch_id)
    pipeline.submit_batch(batch_id)
    assert len(list(sdk.batches.list())) == 1
    assert Batch.objects.get(pk=batch_id).status == Batch.Status.RUNNING


def test_a_restart_after_create_adopts_the_batch_instead_of_creating_another(
    alice, simulator_credential, sdk
):
    """The worker died after the provider created the batch but before we saved its id."""
    job = new_job(alice, simulator_credential)
    [batch_id] = send(job)
    batch = Batch.objects.get(pk=batch_id)
    client = ProviderClient(simulator_credential)
    with rawfiles.plain_copy(batch.input_file) as fh:
        remote_file = client.upload_batch_file(fh, f"batchdash-{batch.token}.jsonl")
    remote = client.create_batch(remote_file.id, job.endpoint, {pipeline.METADATA_KEY: str(batch.token)})
    Batch.objects.filter(pk=batch_id).update(submit_attempts=1, submit_started_at=timezone.now())

    pipeline.submit_batch(batch_id)

    batch.refresh_from_db()
    assert batch.remote_batch_id == remote.id
    assert batch.remote_file_id == remote_file.id
    assert len(list(sdk.batches.list())) == 1
    assert len(list(sdk.files.list(purpose="batch"))) == 1


def test_an_attempt_overtaken_while_it_uploads_leaves_the_batch_to_the_newer_one(
    alice, simulator_credential, sdk, monkeypatch
):
    """A long upload outlives STALLED_AFTER_SECONDS: the sweeper starts another attempt meanwhile, which
    makes the batch. The older one, its upload done, must not create a second: that would run twice."""
    job = new_job(alice, simulator_credential)
    [batch_id] = send(job)
    upload = ProviderClient.upload_batch_file

    def overtaken(client, stream, filename):
        uploaded = upload(client, stream, filename)
        # The sweeper's attempt claims the batch while this upload is still going.
        Batch.objects.filter(pk=batch_id).update(submit_attempts=F("submit_attempts") + 1)
        return uploaded

    monkeypatch.setattr(ProviderClient, "upload_batch_file", overtaken)
    assert pipeline.submit_batch(batch_id) is False
    assert list(sdk.batches.list()) == []
    assert Batch.objects.get(pk=batch_id).status == Batch.Status.SUBMITTING  # left to the newer attempt


def test_finishing_twice_does_nothing_the_second_time(alice, simulator_credential, fast_simulator):
    job = new_job(alice, simulator_credential)
    [batch_id] = send(job)
    pipeline.submit_batch(batch_id)
    wait_for(lambda: pipeline.poll_batch(batch_id), timeout=30)
    assert pipeline.finish_batch(batch_id) is True
    assert pipeline.finish_batch(batch_id) is False
    assert pipeline.start_results(job.pk) is True
    assert pipeline.start_results(job.pk) is False


def test_cancelling_before_submission_sends_nothing_and_ends_cancelled(alice, simulator_credential, sdk):
    simulator_credential.max_requests_per_batch = 2
    simulator_credential.save()
    job = new_job(alice, simulator_credential)
    pipeline.prepare_job(job.pk)
    assert job.transition(Job.CANCELLABLE, Job.Status.CANCELLING, cancel_requested_at=timezone.now())

    assert pipeline.cancel_job(job.pk) is False  # no results to build: nothing was sent

    assert set(job.batches.values_list("status", flat=True)) == {Batch.Status.DONE}
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert (job.rows_succeeded, job.rows_failed) == (0, 0)
    assert list(sdk.batches.list()) == []


def test_cancelling_a_running_job_cancels_at_the_provider_and_keeps_what_finished(
    alice, simulator_credential, sdk, settings
):
    settings.SIMULATOR_SPEED = 0.001  # the batch stays in progress until cancelled
    job = new_job(alice, simulator_credential)
    [batch_id] = send(job)
    pipeline.submit_batch(batch_id)
    job.transition(Job.CANCELLABLE, Job.Status.CANCELLING, cancel_requested_at=timezone.now())

    pipeline.cancel_job(job.pk)

    remote = sdk.batches.retrieve(Batch.objects.get(pk=batch_id).remote_batch_id)
    assert remote.status in ("cancelling", "cancelled")
    settings.SIMULATOR_SPEED = 1_000_000
    wait_for(lambda: pipeline.poll_batch(batch_id), timeout=30, message="the cancel to finish")
    pipeline.finish_batch(batch_id)
    assert pipeline.start_results(job.pk)
    pipeline.build_results(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert job.rows_succeeded + job.rows_failed == 5


def test_the_sweeper_resumes_work_whose_message_was_lost(alice, simulator_credential, fast_simulator):
    """A broker restart lost every message: the sweeper alone takes the job to its end."""
    from datetime import timedelta

    job = new_job(alice, simulator_credential)
    assert pipeline.stalled_work(timedelta(0))["prepare"] == [job.pk]
    pipeline.prepare_job(job.pk)
    [batch] = job.batches.all()
    assert pipeline.stalled_work(timedelta(0))["submit"] == []  # queued batches wait for the scheduler
    pipeline.start_job(job.pk)
    pipeline.release_queued_batches()
    assert pipeline.stalled_work(timedelta(0))["submit"] == [batch.pk]
    assert pipeline.stalled_work(timedelta(hours=1)) == {k: [] for k in pipeline.stalled_work(timedelta(0))}
    pipeline.submit_batch(batch.pk)
    wait_for(lambda: pipeline.poll_batch(batch.pk), timeout=30)
    assert pipeline.stalled_work(timedelta(0))["finish"] == [batch.pk]
    pipeline.finish_batch(batch.pk)
    assert pipeline.stalled_work(timedelta(0))["results_ready"] == [job.pk]


def test_the_sweeper_task_enqueues_each_kind_of_lost_work(alice, simulator_credential, monkeypatch):
    from datetime import timedelta

    from jobs import tasks

    sent = []
    for name in ("prepare_job", "submit_batch", "finish_batch", "cancel_job", "build_results"):
        monkeypatch.setattr(getattr(tasks, name), "delay", lambda pk, name=name: sent.append((name, pk)))
    job = new_job(alice, simulator_credential)
    Job.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(minutes=11))

    tasks.resume_stalled_work()

    assert sent == [("prepare_job", job.pk)]


def test_a_rejection_naming_a_line_that_is_no_line_number_fails_the_rows_with_a_clear_message(
    alice, simulator_credential, fast_simulator
):
    """The provider's errors are its data: a line such as "2a" must not stop the task that reads them."""
    job = new_job(alice, simulator_credential, model="no-such-model")
    [batch_id] = send(job)
    pipeline.submit_batch(batch_id)
    wait_for(lambda: pipeline.poll_batch(batch_id), timeout=30)
    crafted = [
        {"code": "invalid_request", "message": "Bad body.", "param": "body", "line": "2a"},
        {"code": "invalid_model", "message": "Bad model.", "param": None, "line": "3"},
    ]
    Batch.objects.filter(pk=batch_id).update(remote_errors=crafted)

    assert pipeline.finish_batch(batch_id) is True

    batch = Batch.objects.get(pk=batch_id)
    with rawfiles.lines(batch.outcomes_file) as fh:
        outcomes = {o.row: o for o in reconcile.read_outcomes(fh)}
    assert (outcomes[3].code, outcomes[3].message) == ("invalid_model", "Bad model.")
    assert outcomes[1].code == "invalid_request"
    named = "the provider named line “2a”, which is no line number"
    assert outcomes[1].message == f"Bad body. (field: body; {named})"
    assert [e.get("row") for e in batch.remote_errors] == [None, 3]
