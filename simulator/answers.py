"""Deterministic, plausible answers: the same request always gets the same answer.

Chat, Responses and legacy Completions answers are short texts that visibly reflect
the prompt (a sentiment word when the prompt asks for one, otherwise a summary line),
JSON that fits a requested schema, a call of the function that `tool_choice` forces
(arguments that fit its schema), embeddings of the requested size as floats or base64,
and moderation results. A prompt longer than the model's context window fails as the
real API does, and a row can ask for a specific failure with a `[[simulate:<code>]]`
marker.
"""

import base64
import hashlib
import re
import struct
import time
from functools import lru_cache, partial
from typing import Any

import orjson

from jobs.formats import tokens
from simulator import moderation
from simulator.catalog import DEFAULT_MODERATION_MODEL, MODELS

MARKER = re.compile(r"\[\[simulate:([a-z_]+)\]\]")
MARKER_STATUS = {"rate_limit_exceeded": 429, "server_error": 500, "timeout": 500}
POSITIVE = {
    "great",
    "good",
    "love",
    "loved",
    "excellent",
    "comfy",
    "perfect",
    "happy",
    "best",
    "nice",
    "again",
    "recommend",
    "amazing",
    "fine",
}
NEGATIVE = {
    "bad",
    "broke",
    "hate",
    "hated",
    "terrible",
    "awful",
    "worst",
    "never",
    "poor",
    "small",
    "slow",
    "apart",
    "return",
    "disappointed",
    "expensive",
}


STREAM_KEYS = ("stream", "stream_options")


class RequestFailed(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param

    def body(self) -> dict:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        if self.status == 429:
            kind = "requests"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def _seed(*parts: Any) -> bytes:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).digest()


def _texts(endpoint: str, body: dict) -> list[str]:
    """The text a request sends, for counting tokens and looking for markers."""
    if endpoint == "/v1/embeddings":
        value = body.get("input")
        return [value] if isinstance(value, str) else [str(v) for v in value or []]
    if endpoint == "/v1/completions":
        value = body.get("prompt")
        return [value] if isinstance(value, str) else [str(v) for v in value or []]
    if endpoint == "/v1/moderations":
        return moderation.texts(body)
    if endpoint == "/v1/responses":
        value = body.get("input")
        texts = [body.get("instructions") or ""]
        if isinstance(value, str):
            return texts + [value]
        return texts + [str(part.get("content", "")) for part in value or [] if isinstance(part, dict)]
    texts = []
    for message in body.get("messages") or []:
        content = message.get("content")
        texts.append(content if isinstance(content, str) else orjson.dumps(content).decode())
    return texts


def _messages(endpoint: str, body: dict) -> list[dict[str, str]]:
    """A chat or responses request as the text messages the model reads (instructions as a system one)."""
    if endpoint == "/v1/responses":
        value = body.get("input")
        messages = [{"role": "system", "content": body["instructions"]}] if body.get("instructions") else []
        if isinstance(value, str):
            return [*messages, {"role": "user", "content": value}]
        parts = [part for part in value or [] if isinstance(part, dict)]
        return messages + [{"role": p.get("role", "user"), "content": p.get("content", "")} for p in parts]
    fields = ("role", "content", "name")
    return [
        {key: message[key] for key in fields if key in message}
        for message in body.get("messages") or []
        if isinstance(message, dict)
    ]


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def prompt_tokens(endpoint: str, body: dict) -> int:
    """Counted as the provider bills them, with the same recipe as the plan (jobs.formats.tokens)."""
    model = body.get("model", "")
    count = partial(_count, model)
    if endpoint in tokens.UNFRAMED_ENDPOINTS:
        return sum(count(t) for t in _texts(endpoint, body))
    messages = [{key: _plain(value) for key, value in m.items()} for m in _messages(endpoint, body)]
    return tokens.chat_tokens(model, messages, count)


@lru_cache(maxsize=256)
def _count(model: str, text: str) -> int:
    """Kept for the texts a batch repeats on every line (its instructions): counted once, not once a
    line, validating a file of 50,000 multilingual requests takes about a quarter less time."""
    return tokens.counter(model)(text)


def check(endpoint: str, body: dict) -> int:
    """Raise RequestFailed for a request the model would refuse; return its prompt tokens."""
    text = "\n".join(_texts(endpoint, body))
    marker = MARKER.search(text)
    if marker:
        code = marker.group(1)
        status = MARKER_STATUS.get(code, 400)
        raise RequestFailed(status, code, f"Simulated failure: {code.replace('_', ' ')}.")
    used = prompt_tokens(endpoint, body)
    limit = MODELS.get(body.get("model"), {}).get("context", 128_000)
    if used > limit:
        raise RequestFailed(
            400,
            "context_length_exceeded",
            f"This model's maximum context length is {limit} tokens. However, your messages resulted in "
            f"{used} tokens. Please reduce the length of the messages.",
            {"/v1/chat/completions": "messages", "/v1/completions": "prompt"}.get(endpoint, "input"),
        )
    return used


def _reply_text(prompt: str, seed: bytes) -> str:
    words = set(re.findall(r"[a-z']+", prompt.lower()))
    if words & {"sentiment", "positive", "negative"}:
        score = len(words & POSITIVE) - len(words & NEGATIVE)
        return "positive" if score > 0 else "negative" if score < 0 else "neutral"
    last_line = prompt.strip().splitlines()[-1] if prompt.strip() else ""
    excerpt = " ".join(last_line.split()[:12])
    openers = ["In short:", "Summary:", "Answer:", "Here is my take:"]
    return f"{openers[seed[0] % len(openers)]} {excerpt}".strip()


def _fit_schema(schema: dict, seed: bytes, path: str = "", root: dict | None = None) -> Any:
    """A value that validates against a (simple) JSON schema, chosen from the seed.

    Follows local `$ref`s and takes the first non-null branch of `anyOf`/`oneOf`, as pydantic
    writes them for nested models and optional fields. A part of the schema that is not what JSON
    Schema allows there is read as empty, so an odd schema gets an odd answer rather than a crash.
    """
    schema = schema if isinstance(schema, dict) else {}
    root = schema if root is None else root
    pick = _seed(seed.hex(), path)[0]
    if isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#/"):
        target = root
        for part in schema["$ref"][2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _fit_schema(target, seed, path, root)
    for key in ("anyOf", "oneOf", "allOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            usable = [b for b in branches if isinstance(b, dict) and b.get("type") != "null"] or branches
            return _fit_schema(usable[0], seed, path, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][pick % len(schema["enum"])]
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    minimum = schema.get("minimum", 0)
    minimum = minimum if isinstance(minimum, int | float) and abs(minimum) < 1e15 else 0
    if kind == "object":
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        return {name: _fit_schema(sub, seed, f"{path}.{name}", root) for name, sub in props.items()}
    if kind == "array":
        items = schema.get("items", {})
        return [_fit_schema(items, seed, f"{path}[{i}]", root) for i in range(1 + pick % 3)]
    if kind == "integer":
        return int(minimum) + pick % 10
    if kind == "number":
        return round(float(minimum) + pick / 25.5, 2)
    if kind == "boolean":
        return bool(pick % 2)
    return f"{path.rsplit('.', 1)[-1] or 'value'} {pick % 100}"


def _limit_tokens(text: str, model: str, limit: int | None) -> tuple[str, int, str]:
    count = tokens.counter(model)
    used = count(text)
    if limit and used > limit:
        words = text.split()
        while words and count(" ".join(words)) > limit:
            words.pop()
        return " ".join(words), count(" ".join(words)), "length"
    return text, used, "stop"


def _schema_of(endpoint: str, body: dict) -> dict | None:
    if endpoint == "/v1/responses":
        fmt = (body.get("text") or {}).get("format") or {}
        return fmt.get("schema") if fmt.get("type") == "json_schema" else None
    fmt = body.get("response_format") or {}
    return (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None


def _forced_tool(endpoint: str, body: dict) -> dict | None:
    """The function tool that `tool_choice` forces (a named function or "required"), if any.

    Returns {"name", "parameters"}; chat nests a tool under "function", Responses does not.
    """
    choice = body.get("tool_choice")
    if choice in (None, "auto", "none"):
        return None
    nested = endpoint == "/v1/chat/completions"
    tools = [
        (tool.get("function") or {}) if nested else tool
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and tool.get("type") == "function"
    ]
    if not body.get("tools"):
        raise RequestFailed(
            400,
            "invalid_value",
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            "tool_choice",
        )
    if choice == "required":
        return tools[0] if tools else None
    if isinstance(choice, dict) and choice.get("type") == "function":
        wanted = (choice.get("function") or {}).get("name") if nested else choice.get("name")
        if not isinstance(wanted, str):
            param = "tool_choice.function.name" if nested else "tool_choice.name"
            raise RequestFailed(
                400, "missing_required_parameter", f"Missing required parameter: '{param}'.", param
            )
        for tool in tools:
            if tool.get("name") == wanted:
                return tool
        raise RequestFailed(
            400,
            "invalid_value",
            f"Invalid value for 'tool_choice': no function named '{wanted}' was specified in 'tools'.",
            "tool_choice",
        )
    return None


def answer(endpoint: str, body: dict) -> tuple[dict, int, int]:
    """The response body for a request, with its input and output tokens. Raises RequestFailed."""
    if endpoint == "/v1/moderations":
        body = {"model": DEFAULT_MODERATION_MODEL} | body
    model = body.get("model", "")
    used = check(endpoint, body)
    # A streamed request gets the same answer as the same request unstreamed.
    seed = _seed(endpoint, {key: value for key, value in body.items() if key not in STREAM_KEYS})
    created = int(time.time())
    if endpoint == "/v1/embeddings":
        return _embeddings(body, model, used, seed), used, 0
    if endpoint == "/v1/moderations":
        return moderation.answer(body, model, seed), used, 0
    if endpoint == "/v1/completions":
        return _completion(body, model, used, seed, created)
    tool = _forced_tool(endpoint, body)
    schema = _schema_of(endpoint, body)
    texts = _texts(endpoint, body)
    call = None
    if tool is not None:
        arguments = _fit_schema(tool.get("parameters") or {"type": "object", "properties": {}}, seed)
        call = {"name": tool.get("name", ""), "arguments": orjson.dumps(arguments).decode()}
        text, out_tokens, finish = "", tokens.counter(model)(call["arguments"]), "tool_calls"
    elif schema is not None:
        text = orjson.dumps(_fit_schema(schema, seed)).decode()
        out_tokens, finish = tokens.counter(model)(text), "stop"
    else:
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
        text, out_tokens, finish = _limit_tokens(_reply_text(texts[-1] if texts else "", seed), model, limit)
    if endpoint == "/v1/responses":
        return _response(body, model, used, out_tokens, seed, created, text, call), used, out_tokens
    message = {"role": "assistant", "content": text, "refusal": None}
    if call is not None:
        message = {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [{"id": f"call_{seed.hex()[:24]}", "type": "function", "function": call}],
        }
    return (
        {
            "id": f"chatcmpl-{seed.hex()[:24]}",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": used,
                "completion_tokens": out_tokens,
                "total_tokens": used + out_tokens,
            },
            "service_tier": "default",
            "system_fingerprint": "fp_simulator",
        },
        used,
        out_tokens,
    )


def _response(body, model, used, out_tokens, seed, created, text, call) -> dict:
    """A Responses API answer: a message, or the forced function call."""
    if call is not None:
        output = {
            "type": "function_call",
            "id": f"fc_{seed.hex()[24:48]}",
            "call_id": f"call_{seed.hex()[:24]}",
            "status": "completed",
        } | call
    else:
        output = {
            "type": "message",
            "id": f"msg_{seed.hex()[24:48]}",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    return {
        "id": f"resp_{seed.hex()[:24]}",
        "object": "response",
        "created_at": created,
        "status": "completed",
        "model": model,
        "output": [output],
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "temperature": body.get("temperature"),
        "top_p": None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "metadata": body.get("metadata") or {},
        "usage": {
            "input_tokens": used,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": out_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": used + out_tokens,
        },
    }


def _completion(body: dict, model: str, used: int, seed: bytes, created: int) -> tuple[dict, int, int]:
    """A legacy /v1/completions answer: one choice per prompt."""
    choices, out_total = [], 0
    for index, prompt in enumerate(_texts("/v1/completions", body)):
        text, out_tokens, finish = _limit_tokens(
            " " + _reply_text(prompt, _seed(seed.hex(), index)), model, body.get("max_tokens") or 16
        )
        out_total += out_tokens
        choices.append({"text": text, "index": index, "logprobs": None, "finish_reason": finish})
    return (
        {
            "id": f"cmpl-{seed.hex()[:24]}",
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": {
                "prompt_tokens": used,
                "completion_tokens": out_total,
                "total_tokens": used + out_total,
            },
            "system_fingerprint": "fp_simulator",
        },
        used,
        out_total,
    )


def _embeddings(body: dict, model: str, used: int, seed: bytes) -> dict:
    """Unit vectors of the model's size (or `dimensions`), as floats or as base64 float32s."""
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
    native = MODELS.get(model, {}).get("dimensions", 1536)
    size = body.get("dimensions")
    if size is not None and model == "text-embedding-ada-002":
        raise RequestFailed(
            400, "invalid_value", "This model does not support specifying dimensions.", "dimensions"
        )
    if size is not None and not (isinstance(size, int) and 1 <= size <= native):
        raise RequestFailed(
            400,
            "invalid_value",
            f"Invalid 'dimensions': must be an integer between 1 and {native} for {model}.",
            "dimensions",
        )
    size = size or native
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise RequestFailed(
            400,
            "invalid_value",
            f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
            "encoding_format",
        )
    data = []
    for i, text in enumerate(inputs):
        raw = hashlib.shake_256(_seed(model, text)).digest(size * 2)
        values = [v - 32767.5 for v in struct.unpack(f"<{size}H", raw)]
        norm = sum(v * v for v in values) ** 0.5 or 1.0
        vector = [round(v / norm, 6) for v in values]
        if encoding == "base64":
            # What the API sends for base64: the float32 values, little-endian, base64-encoded.
            vector = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": used, "total_tokens": used},
    }
