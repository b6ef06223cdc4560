"""The simulator answers as OpenAI does where clients were seen to notice (issue 15), through the
official Python SDK: embeddings in base64, streamed chat, forced tool calls, moderations and
legacy completions, every batch endpoint served or refused, OpenAI's 404 for unknown paths and
cursors, output_expires_after, and metadata that is always an object."""

import asyncio
import base64
import struct
import typing

import openai
import orjson
import pytest
from openai.types import Batch, Completion, ModerationCreateResponse
from openai.types.batch_create_params import BatchCreateParams
from openai.types.chat import ChatCompletion

from tests.test_simulator import chat, jsonl, lines, run_batch, upload

pytestmark = pytest.mark.django_db(transaction=True)
CLASSIFY = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative"]},
        "score": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "detail": {"anyOf": [{"$ref": "#/$defs/Detail"}, {"type": "null"}]},
    },
    "required": ["label", "score", "tags", "detail"],
    "$defs": {"Detail": {"type": "object", "properties": {"why": {"type": "string"}}, "required": ["why"]}},
}
TOOLS = [{"type": "function", "function": {"name": "classify", "parameters": CLASSIFY}}]
MESSAGES = [{"role": "user", "content": "Sentiment: great"}]


def _fits(arguments: str) -> dict:
    value = orjson.loads(arguments)
    assert value["label"] in ("positive", "negative") and isinstance(value["score"], int)
    assert all(isinstance(tag, str) for tag in value["tags"]) and isinstance(value["detail"]["why"], str)
    return value


def _floats(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def test_embeddings_answer_base64_when_asked_with_the_models_size(sdk):
    raw = sdk.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["a"], encoding_format="base64"
    )
    encoded = orjson.loads(raw.content)["data"][0]["embedding"]
    assert isinstance(encoded, str) and raw.headers["x-request-id"].startswith("req_")
    floats = sdk.embeddings.create(model="text-embedding-3-small", input=["a"], encoding_format="float")
    assert _floats(encoded) == pytest.approx(floats.data[0].embedding, abs=1e-6)
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    default = sdk.embeddings.create(model="text-embedding-3-large", input="a")
    assert len(default.data[0].embedding) == 3072 and any(default.data[0].embedding)
    assert (
        len(sdk.embeddings.create(model="text-embedding-3-large", input="a", dimensions=8).data[0].embedding)
        == 8
    )
    with pytest.raises(openai.BadRequestError, match="does not support specifying dimensions"):
        sdk.embeddings.create(model="text-embedding-ada-002", input="a", dimensions=8)


def test_embedding_batches_honour_encoding_format(sdk, moving_clock, speed):
    line = {
        "custom_id": "e-1",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "text-embedding-3-small", "input": "a", "encoding_format": "base64"},
    }
    floats = line | {"custom_id": "e-2", "body": line["body"] | {"encoding_format": "float"}}
    batch = run_batch(sdk, moving_clock, jsonl(line, floats), endpoint="/v1/embeddings")
    bodies = {o["custom_id"]: o["response"]["body"] for o in lines(sdk, batch.output_file_id)}
    encoded = bodies["e-1"]["data"][0]["embedding"]
    assert isinstance(encoded, str) and len(_floats(encoded)) == 1536
    assert _floats(encoded) == pytest.approx(bodies["e-2"]["data"][0]["embedding"], abs=1e-6)


def test_chat_streams_server_sent_events_with_a_usage_chunk(sdk):
    prompt = [{"role": "user", "content": "Summarise: the shoes fit well and look good"}]
    whole = sdk.chat.completions.create(model="gpt-4o-mini", messages=prompt)
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=prompt, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == whole.choices[0].message.content
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    plain = list(sdk.chat.completions.create(model="gpt-4o-mini", messages=prompt, stream=True))
    assert all(c.usage is None for c in plain) and plain[-1].choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError, match="stream"):
        sdk.responses.create(model="gpt-4.1-mini", input="hi", stream=True)


def test_the_async_client_streams_pages_and_runs_a_batch(simulator_url, moving_clock, speed):
    asyncio.run(_async_client_checks(simulator_url, moving_clock))


async def _async_client_checks(simulator_url, moving_clock):
    client = openai.AsyncOpenAI(base_url=simulator_url, api_key="sk-simulator", max_retries=0)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "positive"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("gpt-nope")
    assert (await client.models.retrieve("gpt-4o-mini")).id == "gpt-4o-mini"
    created = [
        (await client.files.create(file=(f"f{i}.jsonl", jsonl(chat(i))), purpose="batch")).id
        for i in range(3)
    ]
    assert {f.id async for f in client.files.list(limit=2)} == set(created)
    batch = await client.batches.create(
        input_file_id=created[0], endpoint="/v1/chat/completions", completion_window="24h"
    )
    moving_clock["t"] += 1  # listed newest first
    other = await client.batches.create(
        input_file_id=created[1], endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert (await client.batches.cancel(other.id)).status == "cancelling"
    moving_clock["t"] += 100_000
    done = await client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.metadata == {}
    [line] = (await client.files.content(done.output_file_id)).content.splitlines()
    assert orjson.loads(line)["custom_id"] == "row-0"
    assert [b.id async for b in client.batches.list(limit=1)] == [other.id, batch.id]
    assert (await client.batches.retrieve(other.id)).status == "cancelled"
    await client.close()


def test_a_forced_tool_call_answers_with_arguments_that_fit(sdk):
    named = {"type": "function", "function": {"name": "classify"}}
    first = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS, tool_choice=named
    )
    again = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS, tool_choice=named
    )
    [call] = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "classify"
    assert _fits(call.function.arguments) == _fits(again.choices[0].message.tool_calls[0].function.arguments)
    required = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS, tool_choice="required"
    )
    _fits(required.choices[0].message.tool_calls[0].function.arguments)
    with pytest.raises(openai.BadRequestError, match="no function named 'nope'"):
        sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    streamed = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS, tool_choice=named, stream=True
    )
    pieces = [c.choices[0].delta.tool_calls for c in streamed if c.choices and c.choices[0].delta.tool_calls]
    assert "".join(p[0].function.arguments or "" for p in pieces) == call.function.arguments
    response = sdk.responses.create(
        model="gpt-4.1-mini",
        input="Sentiment: great",
        tools=[{"type": "function", "name": "classify", "parameters": CLASSIFY, "strict": False}],
        tool_choice={"type": "function", "name": "classify"},
    )
    [function_call] = response.output
    assert function_call.type == "function_call" and function_call.name == "classify"
    _fits(function_call.arguments)


def test_forced_tool_calls_in_a_batch(sdk, moving_clock, speed):
    line = chat(
        1, "Sentiment: great", tools=TOOLS, tool_choice={"type": "function", "function": {"name": "classify"}}
    )
    batch = run_batch(sdk, moving_clock, jsonl(line))
    [output] = lines(sdk, batch.output_file_id)
    answer = ChatCompletion.model_validate(output["response"]["body"])
    assert answer.choices[0].finish_reason == "tool_calls"
    _fits(answer.choices[0].message.tool_calls[0].function.arguments)


def test_moderations_are_served_sync_and_in_batches(sdk, moving_clock, speed):
    result = sdk.moderations.create(input=["I will attack you", "lovely weather"])
    assert result.model == "omni-moderation-latest" and [r.flagged for r in result.results] == [True, False]
    assert result.results[0].categories.violence and result.results[0].category_scores.violence > 0.5
    line = {"custom_id": "m-1", "method": "POST", "url": "/v1/moderations", "body": {"input": "kill"}}
    batch = run_batch(sdk, moving_clock, jsonl(line), endpoint="/v1/moderations")
    assert batch.status == "completed" and batch.model == "omni-moderation-latest"
    [output] = lines(sdk, batch.output_file_id)
    assert ModerationCreateResponse.model_validate(output["response"]["body"]).results[0].flagged


def test_legacy_completions_are_served_sync_and_in_batches(sdk, moving_clock, speed):
    answer = sdk.completions.create(model="gpt-3.5-turbo-instruct", prompt="Sentiment: great")
    assert answer.object == "text_completion" and answer.choices[0].text.strip() == "positive"
    line = {
        "custom_id": "c-1",
        "method": "POST",
        "url": "/v1/completions",
        "body": {"model": "gpt-3.5-turbo-instruct", "prompt": "Sentiment: great"},
    }
    batch = run_batch(sdk, moving_clock, jsonl(line), endpoint="/v1/completions")
    [output] = lines(sdk, batch.output_file_id)
    assert Completion.model_validate(output["response"]["body"]).choices[0].text.strip() == "positive"


SERVED = {"/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/completions", "/v1/moderations"}


# Every endpoint the SDK's BatchCreateParams lets a client name.
SDK_BATCH_ENDPOINTS = typing.get_args(
    typing.get_args(typing.get_type_hints(BatchCreateParams, include_extras=True)["endpoint"])[0]
)


@pytest.mark.parametrize("endpoint", SDK_BATCH_ENDPOINTS)
def test_every_batch_endpoint_of_the_sdk_is_served_or_refused(sdk, endpoint):
    f = upload(sdk, jsonl(chat(1)))
    if endpoint in SERVED:
        assert (
            sdk.batches.create(input_file_id=f.id, endpoint=endpoint, completion_window="24h").endpoint
            == endpoint
        )
        return
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.batches.create(input_file_id=f.id, endpoint=endpoint, completion_window="24h")
    assert (refused.value.code, refused.value.param) == ("invalid_value", "endpoint")
    assert f"Invalid value: '{endpoint}'" in refused.value.message


def test_unknown_paths_answer_openais_404_and_wrong_methods_a_405(sdk):
    for method, call in (("GET", sdk.get), ("POST", sdk.post), ("DELETE", sdk.delete)):
        with pytest.raises(openai.NotFoundError) as missing:
            call("/nowhere/at/all", cast_to=object)
        assert missing.value.body["message"] == f"Invalid URL ({method} /v1/nowhere/at/all)"
        assert missing.value.request_id.startswith("req_")
    with pytest.raises(openai.APIStatusError) as wrong:
        sdk.delete("/batches", cast_to=object)
    assert wrong.value.status_code == 405 and wrong.value.request_id.startswith("req_")
    assert sdk.models.retrieve("text-embedding-3-small").id == "text-embedding-3-small"
    with pytest.raises(openai.NotFoundError) as model:
        sdk.models.retrieve("gpt-nope")
    assert model.value.code == "model_not_found"


def test_output_expires_after_sets_the_result_files_expiry(sdk, moving_clock, speed):
    f = upload(sdk, jsonl(chat(1), chat(2, "[[simulate:server_error]]")))
    batch = sdk.batches.create(
        input_file_id=f.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        output_expires_after={"anchor": "created_at", "seconds": 7200},
    )
    moving_clock["t"] += 100_000
    done = sdk.batches.retrieve(batch.id)
    for file_id in (done.output_file_id, done.error_file_id):
        stored = sdk.files.retrieve(file_id)
        assert stored.expires_at == stored.created_at + 7200
    for bad, param in (
        ({"anchor": "now", "seconds": 7200}, "anchor"),
        ({"anchor": "created_at", "seconds": 60}, "seconds"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.batches.create(
                input_file_id=f.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                output_expires_after=bad,
            )
        assert refused.value.param == f"output_expires_after.{param}"


def test_an_after_cursor_naming_no_object_is_a_404_not_the_first_page(sdk):
    f = upload(sdk, jsonl(chat(1)))
    sdk.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError) as batches:
        sdk.batches.list(after="batch_gone")
    assert batches.value.param == "after"
    with pytest.raises(openai.NotFoundError):
        sdk.files.list(after="file-gone")


def test_metadata_is_always_an_object_and_messages_hold_no_python_repr(sdk):
    f = upload(sdk, jsonl(chat(1)))
    batch = sdk.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    raw = sdk.batches.with_raw_response.retrieve(batch.id)
    assert orjson.loads(raw.content)["metadata"] == {}
    assert orjson.loads(sdk.batches.with_raw_response.list().content)["data"][0]["metadata"] == {}
    refusals = [
        {"input_file_id": f.id, "endpoint": "/v1/chat/completions"},
        {"input_file_id": f.id, "completion_window": "24h"},
        {"input_file_id": f.id, "endpoint": "/v1/chat/completions", "completion_window": None},
        {
            "input_file_id": f.id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "metadata": {"a": None},
        },
    ]
    for body in refusals:
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.post("/batches", body=body, cast_to=Batch)
        assert "None" not in refused.value.message
    assert (
        refused.value.body["message"]
        == "Invalid type for 'metadata.a': expected a string, but got null instead."
    )
