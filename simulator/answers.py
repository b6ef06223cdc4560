"""Deterministic, plausible answers: the same request always gets the same answer.

Chat and Responses answers are short texts that visibly reflect the prompt (a
sentiment word when the prompt asks for one, otherwise a summary line), JSON that
fits a requested schema, and embeddings of the requested size. A prompt longer
than the model's context window fails as the real API does, and a row can ask for
a specific failure with a `[[simulate:<code>]]` marker.
"""

import hashlib
import re
import struct
import time
from typing import Any

import orjson

from jobs.formats import tokens
from simulator.catalog import MODELS

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


def prompt_tokens(endpoint: str, body: dict) -> int:
    count = tokens.counter(body.get("model", ""))
    texts = _texts(endpoint, body)
    overhead = 0 if endpoint == "/v1/embeddings" else 3 * len(texts) + 3
    return sum(count(t) for t in texts) + overhead


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
            "messages" if endpoint == "/v1/chat/completions" else "input",
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


def _fit_schema(schema: dict, seed: bytes, path: str = "") -> Any:
    """A value that validates against a (simple) JSON schema, chosen from the seed.

    A part of the schema that is not what JSON Schema allows there is read as empty, so an odd
    schema gets an odd answer rather than a crash.
    """
    pick = _seed(seed.hex(), path)[0]
    schema = schema if isinstance(schema, dict) else {}
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
        return {name: _fit_schema(sub, seed, f"{path}.{name}") for name, sub in props.items()}
    if kind == "array":
        return [_fit_schema(schema.get("items", {}), seed, f"{path}[{i}]") for i in range(1 + pick % 3)]
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


def answer(endpoint: str, body: dict) -> tuple[dict, int, int]:
    """The response body for a request, with its input and output tokens. Raises RequestFailed."""
    model = body.get("model", "")
    used = check(endpoint, body)
    seed = _seed(endpoint, body)
    created = int(time.time())
    if endpoint == "/v1/embeddings":
        return _embeddings(body, model, used, seed), used, 0
    schema = _schema_of(endpoint, body)
    texts = _texts(endpoint, body)
    if schema is not None:
        text = orjson.dumps(_fit_schema(schema, seed)).decode()
        out_tokens, finish = tokens.counter(model)(text), "stop"
    else:
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
        text, out_tokens, finish = _limit_tokens(_reply_text(texts[-1] if texts else "", seed), model, limit)
    if endpoint == "/v1/responses":
        return (
            {
                "id": f"resp_{seed.hex()[:24]}",
                "object": "response",
                "created_at": created,
                "status": "completed",
                "model": model,
                "output": [
                    {
                        "type": "message",
                        "id": f"msg_{seed.hex()[24:48]}",
                        "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}],
                    }
                ],
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "temperature": body.get("temperature"),
                "top_p": None,
                "error": None,
                "incomplete_details": None,
                "instructions": body.get("instructions"),
                "metadata": {},
                "usage": {
                    "input_tokens": used,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": out_tokens,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": used + out_tokens,
                },
            },
            used,
            out_tokens,
        )
    return (
        {
            "id": f"chatcmpl-{seed.hex()[:24]}",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
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


def _embeddings(body: dict, model: str, used: int, seed: bytes) -> dict:
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
    size = body.get("dimensions") or MODELS.get(model, {}).get("dimensions", 1536)
    data = []
    for i, text in enumerate(inputs):
        raw = hashlib.shake_256(_seed(model, text)).digest(size * 2)
        values = [v - 32767.5 for v in struct.unpack(f"<{size}H", raw)]
        norm = sum(v * v for v in values) ** 0.5 or 1.0
        data.append({"object": "embedding", "index": i, "embedding": [round(v / norm, 6) for v in values]})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": used, "total_tokens": used},
    }
