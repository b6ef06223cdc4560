"""Provider faults, the token queue, follow-ups and retries: the final state of every row.

Each fault is armed in the simulator and reaches our code through the real SDK over
HTTP; the pipeline's steps run in this process (tests/test_chaos.py runs a real worker).
"""

import pytest
from django.utils import timezone

from jobs import pipeline
from jobs.models import Batch, Job
from jobs.providers.client import RetryableError
from simulator import faults
from tests.conftest import REVIEW_TEXTS
from tests.test_pipeline import drive, new_job, read_csv, send

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast(settings):
    settings.SIMULATOR_SPEED = 1_000_000
    settings.TOKEN_LIMIT_BACKOFF_SECONDS = 0


def split_in_parts(credential, size: int = 2) -> None:
    credential.max_requests_per_batch = size
    credential.save()


def outcomes(job: Job) -> dict[str, tuple[str, str, str]]:
    """Review text → (status, error code, attempts), from the results file."""
    table = read_csv(job.results_file)
    header = table[0]
    status, code, attempts = (header.index(c) for c in ("status", "error_code", "attempts"))
    return {row[0]: (row[status], row[code], row[attempts]) for row in table[1:]}


def test_only_as_many_tokens_as_the_budget_allows_wait_at_the_provider(alice, simulator_credential):
    split_in_parts(simulator_credential)
    job = new_job(alice, simulator_credential)
    pipeline.prepare_job(job.pk)
    pipeline.start_job(job.pk)
    first, second, third = job.batches.order_by("index")
    simulator_credential.enqueued_token_limit = first.input_tokens + second.input_tokens
    simulator_credential.save()

    assert pipeline.release_queued_batches() == [first.pk, second.pk]
    assert pipeline.release_queued_batches() == []
    third.refresh_from_db()
    assert third.display_state == "queued"

    pipeline.submit_batch(first.pk)
    pipeline.submit_batch(second.pk)
    drive(job)
    assert job.status == Job.Status.COMPLETED
    # The third part went only once the first two had left the provider's queue.
    third.refresh_from_db()
    assert third.submitted_at >= max(b.finished_at for b in job.batches.filter(index__lt=2))


def test_a_model_can_have_its_own_budget(alice, simulator_credential):
    split_in_parts(simulator_credential)
    job = new_job(alice, simulator_credential)
    pipeline.prepare_job(job.pk)
    pipeline.start_job(job.pk)
    simulator_credential.model_token_limits = {"gpt-4o-mini": 1}
    simulator_credential.save()
    # Nothing is in flight, so one part goes even though it is over the budget; only one.
    assert len(pipeline.release_queued_batches()) == 1
    for batch_id in Batch.objects.filter(status=Batch.Status.SUBMITTING).values_list("pk", flat=True):
        pipeline.submit_batch(batch_id)
    drive(job)
    assert job.rows_succeeded == 5


def test_a_full_provider_queue_sends_the_batch_back_to_ours_and_the_job_goes_on(
    alice, simulator_credential, sdk
):
    faults.arm("batches.create", "token_limit")
    job = new_job(alice, simulator_credential)
    [batch_id] = send(job)
    pipeline.submit_batch(batch_id)
    first_token = Batch.objects.get(pk=batch_id).token
    # As with OpenAI, the create call answers at once; the limit is found by the check after it.
    assert Batch.objects.get(pk=batch_id).remote_status == "validating"
    assert pipeline.poll_batch(batch_id)  # the provider failed it with token_limit_exceeded
    assert not pipeline.finish_batch(batch_id)

    batch = Batch.objects.get(pk=batch_id)
    assert (batch.status, batch.requeues, batch.remote_batch_id) == (Batch.Status.QUEUED, 1, None)
    assert batch.token != first_token
    assert "queue" in batch.error

    drive(job)
    assert job.status == Job.Status.COMPLETED
    assert job.rows_succeeded == 5
    assert sorted(b.status for b in sdk.batches.list()) == ["completed", "failed"]


def test_cannot_find_file_straight_after_upload_is_retried_and_makes_one_batch(
    alice, simulator_credential, sdk
):
    faults.arm("batches.create", "file_not_ready")
    job = new_job(alice, simulator_credential)
    [batch_id] = send(job)
    with pytest.raises(RetryableError):
        pipeline.submit_batch(batch_id)
    pipeline.submit_batch(batch_id)  # what the task's retry does

    assert Batch.objects.get(pk=batch_id).status == Batch.Status.RUNNING
    assert len(list(sdk.batches.list())) == 1
    assert len(list(sdk.files.list(purpose="batch"))) == 1


@pytest.mark.parametrize("status", [429, 500])
def test_a_create_that_fails_after_the_provider_made_the_batch_is_adopted(
    alice, simulator_credential, sdk, status
):
    faults.arm("batches.create", "commit_then_error", status=status)
    job = new_job(alice, simulator_credential)
    [batch_id] = send(job)
    with pytest.raises(RetryableError):
        pipeline.submit_batch(batch_id)
    pipeline.submit_batch(batch_id)

    assert len(list(sdk.batches.list())) == 1
    drive(job)
    assert job.rows_succeeded == 5


def test_an_expired_batch_keeps_its_answers_and_sends_the_rest_in_a_follow_up(alice, simulator_credential):
    faults.arm("batches.create", "expire", fraction=0.5)
    job = drive(new_job(alice, simulator_credential))

    assert job.status == Job.Status.COMPLETED
    assert job.rows_succeeded == 5
    first, follow_up = job.batches.order_by("attempt")
    assert first.remote_status == "expired"
    assert (follow_up.attempt, follow_up.index) == (2, 0)
    assert 0 < follow_up.request_count < 5
    table = outcomes(job)
    assert set(table) == set(REVIEW_TEXTS)
    assert {status for status, _, _ in table.values()} == {"succeeded"}
    assert sorted(attempts for _, _, attempts in table.values()).count("2") == follow_up.request_count


def test_follow_ups_can_be_switched_off_and_the_expired_rows_retried_later(alice, simulator_credential, sdk):
    faults.arm("batches.create", "expire", fraction=0.5)
    job = drive(new_job(alice, simulator_credential, resubmit_expired=False))

    expired = [text for text, (_, code, _) in outcomes(job).items() if code == "batch_expired"]
    assert expired and job.batches.count() == 1
    assert job.rows_retryable == len(expired)

    assert pipeline.retry_job(job.pk) == len(expired)
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING
    drive(job)

    table = outcomes(job)
    assert len(table) == 5
    assert all(status == "succeeded" for status, _, _ in table.values())
    assert {text: attempts for text, (_, _, attempts) in table.items() if attempts == "2"}.keys() == set(
        expired
    )
    assert job.rows_retryable == 0
    assert len(list(sdk.batches.list())) == 2


def test_retry_sends_only_retryable_rows_and_keeps_one_result_line_per_row(alice, simulator_credential):
    content = (
        b"Review Text\nfine\n[[simulate:server_error]] flaky\n"
        b"[[simulate:context_length_exceeded]] far too long\nalso fine\n"
    )
    job = drive(new_job(alice, simulator_credential, content=content))
    assert (job.rows_succeeded, job.rows_failed, job.rows_retryable) == (2, 2, 1)

    assert pipeline.retry_job(job.pk) == 1
    drive(job)

    table = outcomes(job)
    assert len(table) == 4
    assert table["[[simulate:server_error]] flaky"] == ("failed", "server_error", "2")
    assert table["[[simulate:context_length_exceeded]] far too long"] == (
        "failed",
        "context_length_exceeded",
        "1",
    )
    assert table["fine"] == ("succeeded", "", "1")
    assert (job.rows_succeeded, job.rows_failed) == (2, 2)
    assert len(read_csv(job.failures_file)) == 3


def test_retry_of_chosen_rows_and_of_nothing(alice, simulator_credential):
    content = b"Review Text\n[[simulate:server_error]] a\n[[simulate:server_error]] b\nfine\n"
    job = drive(new_job(alice, simulator_credential, content=content))
    assert pipeline.retry_job(job.pk, rows=[2, 3]) == 1  # row 3 succeeded: nothing to send for it
    [retry] = job.batches.filter(attempt=2)
    assert (retry.first_row, retry.last_row) == (2, 2)
    drive(job)
    assert pipeline.retry_job(job.pk, rows=[3]) == 0
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED


def test_a_running_job_cannot_be_retried(alice, simulator_credential):
    job = new_job(alice, simulator_credential)
    send(job)
    with pytest.raises(pipeline.RetryRefused, match="finished"):
        pipeline.retry_job(job.pk)


def test_validation_errors_name_the_row_of_the_line(alice, simulator_credential):
    faults.arm(
        "batches.create",
        "validation_failure",
        code="invalid_request",
        message="Bad body",
        line=2,
        param="body",
    )
    job = drive(new_job(alice, simulator_credential))
    failures = read_csv(job.failures_file)
    by_row = {row[3]: row for row in failures[1:]}
    assert "Bad body" in by_row["2"][5]
    assert by_row["2"][4] == "invalid_request"
    assert job.rows_failed == 5


def test_a_row_missing_from_both_files_is_lost_and_retryable(alice, simulator_credential, sdk):
    faults.arm("batches.create", "drop_line", index=1)
    job = drive(new_job(alice, simulator_credential))
    assert outcomes(job)[REVIEW_TEXTS[1]][1] == "lost"
    assert job.rows_retryable == 1
    # Something is missing: the provider's copies stay for a person to look at.
    assert not job.batches.get().provider_files_deleted
    assert len(list(sdk.files.list())) == 2


def test_provider_files_are_deleted_once_stored_here(alice, simulator_credential, sdk, settings):
    job = drive(new_job(alice, simulator_credential))
    batch = job.batches.get()
    assert batch.provider_files_deleted
    assert batch.output_file.name
    assert list(sdk.files.list()) == []

    settings.DELETE_PROVIDER_FILES = False
    job = drive(new_job(alice, simulator_credential))
    assert not job.batches.get().provider_files_deleted
    assert len(list(sdk.files.list())) == 2


def test_a_batch_stuck_in_finalizing_is_flagged_not_resubmitted(alice, simulator_credential, sdk, settings):
    faults.arm("batches.create", "stuck_finalizing")
    job = new_job(alice, simulator_credential)
    [batch_id] = send(job)
    pipeline.submit_batch(batch_id)
    pipeline.poll_batch(batch_id)
    batch = Batch.objects.get(pk=batch_id)
    assert batch.remote_status == "finalizing"
    assert not batch.looks_stuck

    Batch.objects.filter(pk=batch_id).update(
        remote_status_since=timezone.now() - timezone.timedelta(minutes=settings.STUCK_FINALIZING_MINUTES + 1)
    )
    pipeline.poll_batch(batch_id)
    batch.refresh_from_db()
    assert batch.looks_stuck
    assert batch.status == Batch.Status.RUNNING
    assert len(list(sdk.batches.list())) == 1


def test_raw_files_past_retention_are_removed_but_results_stay(alice, simulator_credential, settings):
    job = drive(new_job(alice, simulator_credential))
    settings.RAW_FILE_RETENTION_DAYS = 7
    pipeline.clean_up_files()
    assert job.batches.get().input_file.name  # not old enough yet

    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timezone.timedelta(days=8))
    pipeline.clean_up_files()
    batch = job.batches.get()
    assert (batch.input_file.name, batch.output_file.name) == ("", "")
    assert batch.outcomes_file.name
    assert len(read_csv(job.results_file)) == 6
    with pytest.raises(pipeline.RetryRefused, match="retention"):
        pipeline.retry_job(job.pk)
