"""The simulator through the real openai SDK over HTTP: it must look like the real API to it."""

import io

import openai
import orjson
import pytest
from django.core.management import call_command

from simulator import faults

pytestmark = pytest.mark.django_db(transaction=True)


def jsonl(*records) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def chat(i, text="Hello", model="gpt-4o-mini", **body):
    return {
        "custom_id": f"row-{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}], **body},
    }


def upload(sdk, content: bytes, name="input.jsonl"):
    return sdk.files.create(file=(name, io.BytesIO(content)), purpose="batch")


def run_batch(sdk, moving_clock, content: bytes, endpoint="/v1/chat/completions", seconds=100_000):
    f = upload(sdk, content)
    batch = sdk.batches.create(input_file_id=f.id, endpoint=endpoint, completion_window="24h")
    moving_clock["t"] += seconds
    return sdk.batches.retrieve(batch.id)


def lines(sdk, file_id) -> list[dict]:
    return [orjson.loads(line) for line in sdk.files.content(file_id).read().splitlines() if line]


def test_files_upload_retrieve_content_list_and_delete(sdk):
    content = jsonl(chat(1))
    created = upload(sdk, content)
    assert created.id.startswith("file-") and created.purpose == "batch" and created.bytes == len(content)
    assert created.status == "processed" and created.expires_at == created.created_at + 30 * 86400
    assert sdk.files.retrieve(created.id).filename == "input.jsonl"
    assert sdk.files.content(created.id).read() == content
    assert [f.id for f in sdk.files.list(purpose="batch")] == [created.id]
    assert sdk.files.delete(created.id).deleted is True
    with pytest.raises(openai.NotFoundError) as exc:
        sdk.files.retrieve(created.id)
    assert exc.value.param == "id" and exc.value.request_id.startswith("req_")


def test_file_list_pagination_walks_every_page(sdk):
    ids = {upload(sdk, jsonl(chat(i)), f"f{i}.jsonl").id for i in range(5)}
    assert {f.id for f in sdk.files.list(limit=2)} == ids
    first_page = sdk.files.list(limit=2, order="asc")
    assert len(first_page.data) == 2 and first_page.has_more


def test_a_batch_upload_must_be_jsonl(sdk):
    with pytest.raises(openai.BadRequestError, match="Must be .jsonl"):
        upload(sdk, b"a,b\n", "table.csv")


def test_batch_list_pagination_walks_every_page(sdk):
    f = upload(sdk, jsonl(chat(1)))
    created = [
        sdk.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h").id
        for _ in range(5)
    ]
    assert [b.id for b in sdk.batches.list(limit=2)] == list(reversed(created))


def test_the_lifecycle_moves_with_time_and_counts_rise(sdk, moving_clock, speed):
    f = upload(sdk, jsonl(*[chat(i, f"text {i}") for i in range(1, 41)]))
    batch = sdk.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"job": "7"}
    )
    assert batch.status == "validating" and batch.request_counts.total == 0
    assert batch.expires_at == batch.created_at + 86400 and batch.in_progress_at is None
    moving_clock["t"] += 35
    running = sdk.batches.retrieve(batch.id)
    assert running.status == "in_progress" and running.request_counts.total == 40
    assert 0 < running.request_counts.completed < 40
    moving_clock["t"] += 5
    assert sdk.batches.retrieve(batch.id).request_counts.completed > running.request_counts.completed
    moving_clock["t"] += 8
    assert sdk.batches.retrieve(batch.id).status == "finalizing"
    moving_clock["t"] += 30
    done = sdk.batches.retrieve(batch.id)
    assert done.status == "completed" and done.completed_at and done.metadata == {"job": "7"}
    assert done.request_counts.completed == 40 and done.error_file_id is None
    assert done.usage.input_tokens > 0 and done.model == "gpt-4o-mini"
    output = lines(sdk, done.output_file_id)
    assert sorted(int(o["custom_id"][4:]) for o in output) == list(range(1, 41))
    assert [o["custom_id"] for o in output] != [f"row-{i}" for i in range(1, 41)], "output should be shuffled"
    assert sdk.files.retrieve(done.output_file_id).purpose == "batch_output"


@pytest.mark.parametrize(
    "line, code, param",
    [
        (b"{not json", "invalid_json_line", None),
        (
            orjson.dumps({"method": "POST", "url": "/v1/chat/completions", "body": {}}),
            "missing_required_parameter",
            "custom_id",
        ),
        (orjson.dumps(chat(2) | {"url": "/v1/embeddings"}), "invalid_url", "url"),
        (orjson.dumps(chat(1)), "duplicate_custom_id", "custom_id"),
        (orjson.dumps(chat(2, model="gpt-4o")), "model_mismatch", "body.model"),
        (orjson.dumps(chat(2, stream=True)), "streaming_unsupported", "body.stream"),
        (orjson.dumps(chat(2) | {"body": {"messages": []}}), "invalid_request", "body.model"),
    ],
)
def test_validation_failures_name_the_line(sdk, moving_clock, speed, line, code, param):
    batch = run_batch(sdk, moving_clock, jsonl(chat(1)) + line + b"\n")
    assert batch.status == "failed" and batch.failed_at
    [error] = batch.errors.data
    assert (error.code, error.line, error.param) == (code, 2, param)
    assert batch.output_file_id is None and batch.error_file_id is None


def test_unknown_models_empty_files_and_too_many_requests_fail_validation(sdk, moving_clock, speed):
    assert (
        run_batch(sdk, moving_clock, jsonl(chat(1, model="gpt-nope"))).errors.data[0].code
        == "model_not_found"
    )
    assert run_batch(sdk, moving_clock, b"").errors.data[0].code == "empty_file"
    big = jsonl(*[chat(i, "x") for i in range(50_001)])
    assert run_batch(sdk, moving_clock, big).errors.data[0].code == "too_many_tasks"


def test_the_enqueued_token_limit_fails_the_batch(sdk, moving_clock, speed, settings):
    settings.SIMULATOR_ENQUEUED_TOKEN_LIMIT = 10
    batch = run_batch(sdk, moving_clock, jsonl(chat(1, "a long enough prompt to go over ten tokens, surely")))
    assert batch.errors.data[0].code == "token_limit_exceeded" and batch.errors.data[0].line is None


def test_rows_that_fail_go_to_the_error_file_with_the_error_in_the_body(sdk, moving_clock, speed):
    content = jsonl(chat(1, "fine"), chat(2, "x " * 130_000), chat(3, "[[simulate:server_error]]"))
    batch = run_batch(sdk, moving_clock, content)
    assert batch.status == "completed"
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 2)
    errors = {e["custom_id"]: e for e in lines(sdk, batch.error_file_id)}
    assert errors["row-2"]["error"] is None
    assert errors["row-2"]["response"]["status_code"] == 400
    assert errors["row-2"]["response"]["body"]["error"]["code"] == "context_length_exceeded"
    assert errors["row-3"]["response"]["status_code"] == 500


def test_an_all_failed_batch_has_no_output_file(sdk, moving_clock, speed):
    batch = run_batch(sdk, moving_clock, jsonl(chat(1, "[[simulate:invalid_request]]")))
    assert batch.status == "completed" and batch.output_file_id is None and batch.error_file_id


def test_cancel_keeps_what_finished_and_a_finished_batch_cannot_be_cancelled(sdk, moving_clock, speed):
    f = upload(sdk, jsonl(*[chat(i) for i in range(1, 101)]))
    batch = sdk.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    moving_clock["t"] += 40
    cancelling = sdk.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    moving_clock["t"] += 60
    cancelled = sdk.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at
    done = lines(sdk, cancelled.output_file_id)
    not_run = lines(sdk, cancelled.error_file_id)
    assert 0 < len(done) < 100 and len(done) + len(not_run) == 100
    assert {e["error"]["code"] for e in not_run} == {"batch_cancelled"}
    assert sdk.batches.cancel(batch.id).status == "cancelled"
    finished = run_batch(sdk, moving_clock, jsonl(chat(1)))
    with pytest.raises(openai.ConflictError, match="Cannot cancel a batch with status 'completed'"):
        sdk.batches.cancel(finished.id)


def test_an_expired_batch_keeps_partial_output_and_marks_the_rest(sdk, moving_clock, speed):
    faults.arm("batches.create", "expire", fraction=0.5)
    batch = run_batch(sdk, moving_clock, jsonl(*[chat(i) for i in range(1, 21)]))
    assert batch.status == "expired" and batch.expired_at
    expired = lines(sdk, batch.error_file_id)
    assert len(lines(sdk, batch.output_file_id)) == 10 and len(expired) == 10
    assert expired[0]["response"] is None and expired[0]["error"]["code"] == "batch_expired"


def test_a_wrong_key_is_refused_with_a_masked_echo(simulator_url):
    client = openai.OpenAI(base_url=simulator_url, api_key="sk-wrong-key-1234", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        client.models.list()
    assert exc.value.code == "invalid_api_key"
    assert "sk-wrong-key-1234" not in str(exc.value) and "sk-***34" in str(exc.value)


def test_synchronous_endpoints_answer_deterministically(sdk):
    first = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Sentiment: great"}]
    )
    again = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Sentiment: great"}]
    )
    assert first.choices[0].message.content == again.choices[0].message.content == "positive"
    assert first.usage.prompt_tokens > 0
    response = sdk.responses.create(model="gpt-4.1-mini", input="Summarise: the shoes fit")
    assert response.output_text
    embedding = sdk.embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=64)
    assert [len(d.embedding) for d in embedding.data] == [64, 64]
    assert abs(sum(v * v for v in embedding.data[0].embedding) - 1) < 1e-3
    assert {m.id for m in sdk.models.list()} >= {"gpt-4o-mini", "text-embedding-3-large"}


def test_json_schema_answers_fit_the_schema(sdk):
    schema = {
        "type": "object",
        "required": ["label", "score", "tags"],
        "properties": {
            "label": {"type": "string", "enum": ["positive", "negative"]},
            "score": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    answer = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Classify: nice"}],
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
    )
    value = orjson.loads(answer.choices[0].message.content)
    assert value["label"] in ("positive", "negative") and isinstance(value["score"], int)
    assert all(isinstance(t, str) for t in value["tags"])


def test_armed_http_faults_reach_the_sdk_with_retry_after(sdk):
    call_command("simulator_fault", "models", "http_error", "status=429", "retry_after=7")
    with pytest.raises(openai.RateLimitError) as exc:
        sdk.models.list()
    assert exc.value.response.headers["retry-after"] == "7"
    assert sdk.models.list().data


def test_commit_then_error_creates_the_batch_although_the_call_failed(sdk):
    f = upload(sdk, jsonl(chat(1)))
    faults.arm("batches.create", "commit_then_error", status=500)
    with pytest.raises(openai.InternalServerError):
        sdk.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert len(sdk.batches.list().data) == 1


def test_a_dropped_line_is_missing_from_both_files(sdk, moving_clock, speed):
    faults.arm("batches.create", "drop_line", index=1)
    batch = run_batch(sdk, moving_clock, jsonl(chat(1), chat(2), chat(3)))
    assert sorted(o["custom_id"] for o in lines(sdk, batch.output_file_id)) == ["row-1", "row-3"]


def test_a_stuck_batch_stays_in_finalizing(sdk, moving_clock, speed):
    faults.arm("batches.create", "stuck_finalizing")
    assert run_batch(sdk, moving_clock, jsonl(chat(1)), seconds=80_000).status == "finalizing"
