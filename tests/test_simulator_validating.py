"""The simulator's create call answers at once and validates afterwards, as OpenAI's does.

Through the real openai SDK over HTTP: the batch is `validating` when created whatever its
file holds; line errors and the enqueued-token limit show up later, as a `failed` batch.
"""

import gc
import io
import time

import orjson
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def chat(i, text="Hello"):
    return {
        "custom_id": f"row-{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
    }


def create(sdk, content: bytes):
    f = sdk.files.create(file=("input.jsonl", io.BytesIO(content)), purpose="batch")
    return sdk.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")


def test_the_create_call_answers_before_validating_and_a_bad_line_fails_the_batch_later(
    sdk, moving_clock, speed
):
    rows = 50_000
    content = b"".join(orjson.dumps(chat(i, f"text number {i}, " * 8)) + b"\n" for i in range(1, rows))
    content += b"{not json\n"
    gc.collect()  # not during the timed call
    started = time.perf_counter()
    batch = create(sdk, content)
    create_s = time.perf_counter() - started
    assert batch.status == "validating" and batch.errors is None and batch.request_counts.total == 0
    assert sdk.batches.retrieve(batch.id).status == "validating"
    moving_clock["t"] += 100
    started = time.perf_counter()
    failed = sdk.batches.retrieve(batch.id)
    validate_s = time.perf_counter() - started
    assert failed.status == "failed" and failed.failed_at and failed.in_progress_at is None
    [error] = failed.errors.data
    assert (error.code, error.line) == ("invalid_json_line", rows)
    # The work of checking every line happens after the create call answered, not inside it:
    # a ratio measured in the same run, so that the machine's load cancels out. Before, the
    # create call took several times as long as this read.
    assert create_s * 2 < validate_s, (create_s, validate_s)


def test_the_enqueued_token_limit_is_checked_when_validation_ends_not_at_create(sdk, moving_clock, speed):
    batch = create(sdk, orjson.dumps(chat(1, "a long enough prompt to go over ten tokens, surely")) + b"\n")
    assert batch.status == "validating"
    speed.SIMULATOR_ENQUEUED_TOKEN_LIMIT = 10
    moving_clock["t"] += 100_000
    failed = sdk.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.request_counts.total == 0
    [error] = failed.errors.data
    assert error.code == "token_limit_exceeded" and error.line is None and "gpt-4o-mini" in error.message


def test_a_batch_created_while_another_holds_the_enqueued_tokens_fails_with_token_limit_exceeded(
    sdk, moving_clock, speed
):
    speed.SIMULATOR_ENQUEUED_TOKEN_LIMIT = 1500
    long = "word " * 1000
    first = create(sdk, orjson.dumps(chat(1, long)) + b"\n")
    moving_clock["t"] += 1
    second = create(sdk, orjson.dumps(chat(2, long)) + b"\n")
    assert (first.status, second.status) == ("validating", "validating")
    moving_clock["t"] += 100_000
    # Read the later batch first: the earlier one's tokens still count, being enqueued before it.
    refused = sdk.batches.retrieve(second.id)
    assert refused.status == "failed" and refused.errors.data[0].code == "token_limit_exceeded"
    assert sdk.batches.retrieve(first.id).status == "completed"
    third = create(sdk, orjson.dumps(chat(3, long)) + b"\n")
    moving_clock["t"] += 100_000
    assert sdk.batches.retrieve(third.id).status == "completed", "the first batch no longer holds its tokens"


def test_a_batch_with_a_bad_line_cancelled_while_validating_ends_cancelled_with_no_files(
    sdk, moving_clock, speed
):
    batch = create(sdk, orjson.dumps(chat(1)) + b"\n{not json\n")
    assert sdk.batches.cancel(batch.id).status == "cancelling"
    moving_clock["t"] += 100_000
    cancelled = sdk.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at
    assert (cancelled.output_file_id, cancelled.error_file_id) == (None, None)
    assert cancelled.request_counts.completed == cancelled.request_counts.failed == 0


def test_a_batch_stuck_finalizing_for_days_still_holds_its_enqueued_tokens(sdk, moving_clock, speed):
    from simulator import faults

    speed.SIMULATOR_ENQUEUED_TOKEN_LIMIT = 1500
    long = "word " * 1000
    faults.arm("batches.create", "stuck_finalizing")
    stuck = create(sdk, orjson.dumps(chat(1, long)) + b"\n")
    moving_clock["t"] += 5 * 24 * 3600
    assert sdk.batches.retrieve(stuck.id).status == "finalizing"
    later = create(sdk, orjson.dumps(chat(2, long)) + b"\n")
    moving_clock["t"] += 100
    refused = sdk.batches.retrieve(later.id)
    assert refused.status == "failed" and refused.errors.data[0].code == "token_limit_exceeded"


def test_the_enqueued_token_check_reads_only_the_batches_that_can_still_be_enqueued(
    sdk, moving_clock, speed, monkeypatch
):
    """Batches that ended before the 24-hour window of a new one could reach cannot hold tokens: the
    check does not read them, however many a project has made."""
    from simulator import lifecycle

    for i in range(5):
        old = create(sdk, orjson.dumps(chat(i)) + b"\n")
        moving_clock["t"] += 1000
        assert sdk.batches.retrieve(old.id).status == "completed"
    moving_clock["t"] += 3 * 24 * 3600
    recent = create(sdk, orjson.dumps(chat(6)) + b"\n")
    moving_clock["t"] += 1000
    assert sdk.batches.retrieve(recent.id).status == "completed"
    read = []
    state = lifecycle.state

    def reading(batch, now=None):
        read.append(batch.id)
        return state(batch, now)

    monkeypatch.setattr(lifecycle, "state", reading)
    new = create(sdk, orjson.dumps(chat(7)) + b"\n")
    moving_clock["t"] += 100
    assert sdk.batches.retrieve(new.id).status == "completed"
    assert old.id not in read and recent.id in read
