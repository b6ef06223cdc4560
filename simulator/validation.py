"""Checking a batch input file the way the Batch API does after create.

Errors come back as the API reports them in `errors.data`: a code, a message, a dotted
param and the 1-based line. Each bad line gets one error; the first MAX_ERRORS are kept.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from simulator import answers
from simulator.catalog import DEFAULT_MODERATION_MODEL, ENDPOINT_KINDS, MODELS

MAX_REQUESTS = 50_000
MAX_EMBEDDING_INPUTS = 50_000
MAX_ERRORS = 1000
# The range of an uploaded file's expires_after.seconds: one hour to thirty days.
EXPIRY_MIN_S, EXPIRY_MAX_S = 3600, 30 * 24 * 3600


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


def _kind(value) -> str:
    """A JSON value's type in the words of OpenAI's invalid_type messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    for python, words in ((str, "a string"), (int, "an integer"), (float, "a decimal")):
        if isinstance(value, python):
            return words
    return "an array" if isinstance(value, list) else "an object"


def _typed(param: str, value, expected: str) -> tuple[str, str, str]:
    message = f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead."
    return param, message, "invalid_type"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _format_problem(param: str, fmt) -> tuple[str, str, str] | None:
    """A response format (chat's response_format, the responses API's text.format) and its schema."""
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        return _typed(param, fmt, "an object")
    json_schema = fmt.get("json_schema", fmt) if param == "response_format" else fmt
    if not isinstance(json_schema, dict):
        return _typed(f"{param}.json_schema", json_schema, "an object")
    schema = json_schema.get("schema")
    if schema is not None and not isinstance(schema, dict):
        where = f"{param}.json_schema.schema" if param == "response_format" else f"{param}.schema"
        return _typed(where, schema, "an object")
    return None


def body_problem(endpoint: str, body: dict) -> tuple[str, str, str] | None:
    """The first parameter present with a type or value the API refuses, as (param, message, code).

    Checked before anything reads the body, so that a wrong type is a 400 (or a line error in a
    batch file) rather than a crash while answering. Missing parameters are the callers' to check.
    """
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        return _typed("model", model, "a string")
    for param in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(param)
        if value is None:
            continue
        if not _is_int(value):
            return _typed(param, value, "an integer")
        if value < 1:
            message = f"Invalid '{param}': integer below minimum value. Expected a value >= 1, got {value}."
            return param, message, "integer_below_min_value"
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or isinstance(temperature, bool):
            return _typed("temperature", temperature, "a decimal")
        if not 0 <= temperature <= 2:
            message = f"Invalid 'temperature': expected a value between 0 and 2, but got {temperature}."
            return "temperature", message, "invalid_value"
    if endpoint == "/v1/chat/completions":
        messages = body.get("messages")
        if messages is not None and not isinstance(messages, list):
            return _typed("messages", messages, "an array of objects")
        for index, message in enumerate(messages or []):
            if not isinstance(message, dict):
                return _typed(f"messages[{index}]", message, "an object")
        return _format_problem("response_format", body.get("response_format"))
    if endpoint == "/v1/completions":
        prompt = body.get("prompt")
        if prompt is not None and not (
            isinstance(prompt, str) or (isinstance(prompt, list) and all(isinstance(p, str) for p in prompt))
        ):
            return _typed("prompt", prompt, "a string or an array of strings")
        return None
    value = body.get("input")
    if value is not None and not isinstance(value, str | list):
        return _typed("input", value, "a string or an array")
    if endpoint == "/v1/responses":
        instructions = body.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            return _typed("instructions", instructions, "a string")
        text = body.get("text")
        if text is not None and not isinstance(text, dict):
            return _typed("text", text, "an object")
        return _format_problem("text.format", (text or {}).get("format"))
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if not _is_int(dimensions):
            return _typed("dimensions", dimensions, "an integer")
        largest = MODELS.get(model, {}).get("dimensions", 3072)
        if not 1 <= dimensions <= largest:
            message = f"Invalid 'dimensions': expected a value between 1 and {largest}, but got {dimensions}."
            return "dimensions", message, "invalid_value"
    return None


# What a file may be uploaded for, and what files may be listed by (the API writes batch_output).
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
LISTED_PURPOSES = (*PURPOSES, "batch_output")
# Our ids are short: anything longer, or holding a NUL, is no id of ours.
ID_MAX_LENGTH = 40


def plausible_id(value) -> bool:
    """Could this be one of our ids? Anything else is looked up nowhere: a NUL or an over-long
    string would make PostgreSQL refuse the query rather than find nothing.
    """
    return isinstance(value, str) and 0 < len(value) <= ID_MAX_LENGTH and value.isprintable()


def purpose_problem(purpose: str, *, listing: bool) -> tuple[str, str, str] | None:
    allowed = LISTED_PURPOSES if listing else PURPOSES
    if purpose in allowed:
        return None
    supported = ", ".join(f"'{p}'" for p in allowed)
    message = f"Invalid value for 'purpose': '{purpose[:64]}'. Supported values are: {supported}."
    return "purpose", message, "invalid_value"


def expiry_problem(anchor: str | None, seconds: str | None) -> tuple[str, str, str] | None:
    """What is wrong with an upload's expires_after[anchor] and [seconds] form fields, if anything."""
    if anchor not in (None, "", "created_at"):
        message = f"Invalid value for 'expires_after.anchor': '{anchor[:64]}'. Supported: 'created_at'."
        return "expires_after.anchor", message, "invalid_value"
    if not seconds:
        return None
    # ASCII digits only: int() refuses some characters str.isdigit() takes, such as '²'.
    if not re.fullmatch(r"-?[0-9]{1,12}", seconds):
        message = f"Invalid type for 'expires_after.seconds': expected an integer, but got '{seconds[:64]}'."
        return "expires_after.seconds", message, "invalid_type"
    if not EXPIRY_MIN_S <= int(seconds) <= EXPIRY_MAX_S:
        message = (
            f"Invalid 'expires_after.seconds': expected a value between {EXPIRY_MIN_S} and {EXPIRY_MAX_S}, "
            f"but got {int(seconds)}."
        )
        return "expires_after.seconds", message, "invalid_value"
    return None


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
    if not isinstance(record["custom_id"], str):
        param, message, _ = _typed("custom_id", record["custom_id"], "a string")
        return _error("invalid_request", message, line, param)
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
    problem = body_problem(endpoint, body)
    if problem:
        param, message, _ = problem
        return _error("invalid_request", message, line, f"body.{param}")
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


# OpenAI's bounds for output_expires_after.seconds: an hour to 30 days.
OUTPUT_TTL_RANGE = (3600, 2_592_000)


def shown(value) -> str:
    """A value as a message quotes it: JSON, so that a missing one reads null, not 'None'."""
    return f"'{value}'" if isinstance(value, str) else orjson.dumps(value).decode()


def output_ttl_problem(policy) -> tuple[str, str, str] | None:
    """What is wrong with a batch's `output_expires_after`, which its output and error files get."""
    if policy is None:
        return None
    if not isinstance(policy, dict):
        return _typed("output_expires_after", policy, "an object")
    if policy.get("anchor") != "created_at":
        message = f"Invalid value: {shown(policy.get('anchor'))}. Supported values are: 'created_at'."
        return "output_expires_after.anchor", message, "invalid_value"
    seconds = policy.get("seconds")
    if not _is_int(seconds):
        return _typed("output_expires_after.seconds", seconds, "an integer")
    low, high = OUTPUT_TTL_RANGE
    if not low <= seconds <= high:
        message = (
            f"Invalid 'output_expires_after.seconds': expected a value between {low} and {high}, "
            f"but got {seconds} instead."
        )
        return "output_expires_after.seconds", message, "invalid_value"
    return None


def metadata_problem(metadata) -> tuple[str, str, str] | None:
    """What is wrong with a batch's metadata: at most 16 string values, keys of 64 characters, values 512."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        return _typed("metadata", metadata, "an object")
    if len(metadata) > 16:
        return "metadata", "Invalid 'metadata': at most 16 keys.", "invalid_value"
    for key, value in metadata.items():
        if not isinstance(value, str):
            return _typed(f"metadata.{key}", value, "a string")
        if len(key) > 64 or len(value) > 512 or "\x00" in key + value:
            message = (
                f"Invalid 'metadata.{key[:64]}': keys are at most 64 characters, values 512, neither NUL."
            )
            return f"metadata.{key}", message, "invalid_value"
    return None
