"""Server-sent events for `stream: true` on chat completions, as OpenAI sends them.

The answer is computed whole (it is deterministic) and then cut into `chat.completion.chunk`
events: the role first, the content word by word (or a tool call's arguments piece by piece), the
finish reason, a usage chunk when `stream_options.include_usage` asks for it, and `data: [DONE]`.
"""

import re
from collections.abc import Iterator

import orjson

PIECE = re.compile(r"\s*\S+|\s+")
ARGUMENT_PIECE = 16


def _event(data) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def chat_chunks(answer: dict, include_usage: bool) -> Iterator[bytes]:
    """The events of a chat.completion answer (one choice), ending with [DONE]."""
    base = {
        "id": answer["id"],
        "object": "chat.completion.chunk",
        "created": answer["created"],
        "model": answer["model"],
        "service_tier": answer.get("service_tier"),
        "system_fingerprint": answer.get("system_fingerprint"),
    }
    # With include_usage every chunk carries "usage": null, and only the last one the figures.
    usage = {"usage": None} if include_usage else {}

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _event(base | {"choices": [choice]} | usage)

    choice = answer["choices"][0]
    message = choice["message"]
    calls = message.get("tool_calls") or []
    yield chunk({"role": "assistant", "content": None if calls else "", "refusal": None})
    for index, call in enumerate(calls):
        arguments = call["function"]["arguments"]
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        for start in range(0, len(arguments), ARGUMENT_PIECE):
            piece = arguments[start : start + ARGUMENT_PIECE]
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    for piece in PIECE.findall(message.get("content") or ""):
        yield chunk({"content": piece})
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        yield _event(base | {"choices": [], "usage": answer["usage"]})
    yield b"data: [DONE]\n\n"
