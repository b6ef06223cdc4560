"""Checking a batch input file the way the Batch API does after create.

Errors come back as the API reports them in `errors.data`: a code, a message, a dotted
param and the 1-based line. Each bad line gets one error; the first MAX_ERRORS are kept.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from simulator import answers
from simulator.catalog import DEFAULT_MODERATION_MODEL, ENDPOINT_KINDS, MODELS

MAX_REQUESTS = 50_000
MAX_EMBEDDING_INPUTS = 50_000
MAX_ERRORS = 1000


@dataclass
class Checked:
    """What validation learned: errors, or the facts the lifecycle needs."""

    errors: list[dict] = field(default_factory=list)
    total: int = 0
    model: str = ""
    input_tokens: int = 0
    failing: list[int] = field(default_factory=list)


def _error(code: str, message: str, line: int | None, param: str | None = None) -> dict:
    return {"code": code, "message": message, "param": param, "line": line}


def _line_error(record, endpoint: str, line: int, seen: set[str]) -> dict | None:
    if not isinstance(record, dict):
        return _error("invalid_json_line", "This line is not parseable as valid JSON.", line)
    for key in ("custom_id", "method", "url", "body"):
        if key not in record:
            return _error("missing_required_parameter", f"Missing required parameter: '{key}'.", line, key)
    if record["method"] != "POST":
        return _error("invalid_request", "Only the POST method is supported.", line, "method")
    if record["url"] != endpoint:
        return _error(
            "invalid_url", "The URL provided for this request does not match the batch endpoint.", line, "url"
        )
    if record["custom_id"] in seen:
        return _error(
            "duplicate_custom_id",
            "The custom ID for this request is a duplicate of the custom ID in another request.",
            line,
            "custom_id",
        )
    body = record["body"]
    if not isinstance(body, dict):
        return _error("invalid_request", "The request body must be an object.", line, "body")
    if body.get("stream"):
        return _error(
            "streaming_unsupported",
            "Chat Completions: Streaming is not supported in the Batch API.",
            line,
            "body.stream",
        )
    if endpoint == "/v1/moderations":
        # A moderation request may leave the model out; the API then uses its default.
        body.setdefault("model", DEFAULT_MODERATION_MODEL)
    model = body.get("model")
    if not model:
        return _error("invalid_request", "Model parameter is required.", line, "body.model")
    if MODELS.get(model, {}).get("kind") != ENDPOINT_KINDS.get(endpoint):
        return _error(
            "model_not_found",
            f"The provided model '{model}' is not supported by the Batch API.",
            line,
            "body.model",
        )
    if endpoint == "/v1/chat/completions" and not body.get("messages"):
        return _error("invalid_request", "Messages parameter is required.", line, "body.messages")
    if endpoint == "/v1/completions" and not body.get("prompt"):
        return _error("invalid_request", "Prompt parameter is required.", line, "body.prompt")
    if endpoint not in ("/v1/chat/completions", "/v1/completions") and not body.get("input"):
        return _error("invalid_request", "Input parameter is required.", line, "body.input")
    return None


def check_file(lines: Iterable[bytes], endpoint: str) -> Checked:
    """Validate every line; for a valid file also count tokens and decide which requests fail."""
    result = Checked()
    seen: set[str] = set()
    embedding_inputs = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        result.total += 1
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            record = None
        error = _line_error(record, endpoint, number, seen)
        if error is None:
            seen.add(record["custom_id"])
            body = record["body"]
            if result.model and body["model"] != result.model:
                error = _error(
                    "model_mismatch",
                    "Each input file can only include requests to a single model; "
                    f"this line uses '{body['model']}' and an earlier one '{result.model}'.",
                    number,
                    "body.model",
                )
            result.model = result.model or body["model"]
        if error:
            if len(result.errors) < MAX_ERRORS:
                result.errors.append(error)
            continue
        if endpoint == "/v1/embeddings":
            value = body.get("input")
            embedding_inputs += 1 if isinstance(value, str) else len(value)
        try:
            result.input_tokens += answers.check(endpoint, body)
        except answers.RequestFailed:
            result.failing.append(result.total - 1)
    if result.total == 0:
        result.errors.append(
            _error(
                "empty_file",
                "The input file is empty. Please ensure that the batch contains at least one request.",
                None,
            )
        )
    if result.total > MAX_REQUESTS:
        result.errors.insert(
            0,
            _error(
                "too_many_tasks",
                f"The batch input file has {result.total} requests; the limit is {MAX_REQUESTS}.",
                None,
            ),
        )
    if embedding_inputs > MAX_EMBEDDING_INPUTS:
        result.errors.insert(
            0,
            _error(
                "too_many_tasks",
                f"The batch has {embedding_inputs} embedding inputs; the limit is {MAX_EMBEDDING_INPUTS}.",
                None,
            ),
        )
    return result
