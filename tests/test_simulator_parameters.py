"""The simulator refuses malformed parameters as OpenAI does: a 400 invalid_request_error naming the
param, never a 500; in a batch file, a line error naming the line and the param.
"""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from simulator import clock

pytestmark = pytest.mark.django_db

KEY = {"HTTP_AUTHORIZATION": "Bearer sk-simulator"}


@pytest.fixture
def api(settings):
    """The simulator through Django's test client; a 500 is a status here, not a raised error."""
    settings.SIMULATOR_API_KEYS = ["sk-simulator"]
    settings.SIMULATOR_SPEED = 1_000_000
    return Client(raise_request_exception=False)


def upload(api, content: bytes = b"{}\n", **fields):
    data = {"file": SimpleUploadedFile("in.jsonl", content), "purpose": "batch"} | fields
    return api.post("/simulator/v1/files", data, **KEY)


def refused(response, param: str) -> dict:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param in error["message"]
    return error


@pytest.mark.parametrize("seconds", ["abc", "²", "1.5", "-1", "10", "99999999999999999999", "\x00"])
def test_an_upload_whose_expiry_is_not_a_number_of_seconds_in_range_is_refused(api, seconds):
    refused(upload(api, **{"expires_after[seconds]": seconds}), "expires_after.seconds")


def test_an_upload_expires_when_asked_and_only_from_its_creation(api, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: 1_800_000_000.0)
    kept = upload(api, **{"expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"})
    assert kept.status_code == 200 and kept.json()["expires_at"] == 1_800_003_600
    refused(upload(api, **{"expires_after[anchor]": "last_used"}), "expires_after.anchor")


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    "path, body, param",
    [
        ("chat/completions", CHAT | {"model": ["gpt-4o-mini"]}, "model"),
        ("chat/completions", CHAT | {"messages": "hi"}, "messages"),
        ("chat/completions", CHAT | {"messages": ["hi"]}, "messages[0]"),
        ("chat/completions", CHAT | {"max_completion_tokens": "5"}, "max_completion_tokens"),
        ("chat/completions", CHAT | {"max_tokens": 0}, "max_tokens"),
        ("chat/completions", CHAT | {"temperature": "hot"}, "temperature"),
        ("chat/completions", CHAT | {"temperature": 10**30}, "temperature"),
        ("chat/completions", CHAT | {"response_format": "json"}, "response_format"),
        (
            "chat/completions",
            CHAT | {"response_format": {"type": "json_schema", "json_schema": {"schema": "x"}}},
            "response_format.json_schema.schema",
        ),
        ("responses", {"model": "gpt-4o-mini", "input": 5}, "input"),
        ("responses", {"model": "gpt-4o-mini", "input": "hi", "instructions": ["x"]}, "instructions"),
        ("responses", {"model": "gpt-4o-mini", "input": "hi", "text": "x"}, "text"),
        (
            "responses",
            {"model": "gpt-4o-mini", "input": "hi", "max_output_tokens": True},
            "max_output_tokens",
        ),
        ("embeddings", {"model": "text-embedding-3-small", "input": True}, "input"),
        ("embeddings", {"model": "text-embedding-3-small", "input": "hi", "dimensions": "8"}, "dimensions"),
        ("embeddings", {"model": "text-embedding-3-small", "input": "hi", "dimensions": -1}, "dimensions"),
        # Not a crash, nor gigabytes of numbers: the model's largest size is the limit.
        ("embeddings", {"model": "text-embedding-3-small", "input": "hi", "dimensions": 10**9}, "dimensions"),
    ],
)
def test_a_request_with_a_parameter_of_the_wrong_type_or_range_is_refused(api, path, body, param):
    response = api.post(f"/simulator/v1/{path}", json.dumps(body), content_type="application/json", **KEY)
    refused(response, param)


def test_an_odd_schema_gets_an_answer_not_a_crash(api):
    schema = {
        "type": "object",
        "properties": {"a": {"enum": []}, "b": "x", "c": {"type": "integer", "minimum": "abc"}},
    }
    body = CHAT | {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}
    response = api.post(
        "/simulator/v1/chat/completions", json.dumps(body), content_type="application/json", **KEY
    )
    assert response.status_code == 200


def line(custom_id="row-1", **body) -> bytes:
    request = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": CHAT | body}
    return json.dumps(request).encode() + b"\n"


@pytest.mark.parametrize(
    "bad, param",
    [
        (line(custom_id=["row-2"]), "custom_id"),
        (line("row-2", model={"a": 1}), "body.model"),
        (line("row-2", messages="hi"), "body.messages"),
        (line("row-2", max_completion_tokens="5"), "body.max_completion_tokens"),
    ],
)
def test_a_batch_line_of_the_wrong_type_fails_validation_on_its_line(api, bad, param):
    file_id = upload(api, line() + bad).json()["id"]
    batch = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    created = api.post("/simulator/v1/batches", batch, content_type="application/json", **KEY)
    assert created.status_code == 200, created.content
    assert created.json()["status"] == "validating", "the create call answers before checking the file"
    failed = api.get(f"/simulator/v1/batches/{created.json()['id']}", **KEY)
    [error] = failed.json()["errors"]["data"]
    assert (error["line"], error["param"]) == (2, param)


def test_ids_and_purposes_that_cannot_be_ours_are_refused_before_any_lookup(api):
    # A NUL or a string longer than any id would make PostgreSQL refuse the query itself.
    for path in ("files/file-%00", "batches/batch_%00", f"files/{'x' * 5000}"):
        response = api.get(f"/simulator/v1/{path}", **KEY)
        assert response.status_code == 404 and response.json()["error"]["type"] == "invalid_request_error"
    batch = {"input_file_id": "x" * 5000, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    response = api.post("/simulator/v1/batches", batch, content_type="application/json", **KEY)
    refused(response, "input_file_id")
    refused(upload(api, purpose="x" * 5000), "purpose")
    refused(api.get("/simulator/v1/files", {"purpose": "\x00"}, **KEY), "purpose")
    assert api.get("/simulator/v1/files", {"purpose": "batch_output"}, **KEY).status_code == 200
    batch |= {"input_file_id": "file-abc", "metadata": {"k": "\x00"}}
    refused(api.post("/simulator/v1/batches", batch, content_type="application/json", **KEY), "metadata.k")
