"""Provider error codes in plain words: what happened to a row, and what the user can do.

The provider's own message is kept beside it; this adds the sentence a non-engineer
needs, with the figures pulled out of messages such as the context-length one.
"""

import re

_CONTEXT = re.compile(r"maximum context length is (\d+) tokens.*?(\d+) tokens", re.S)

_PLAIN = {
    "context_length_exceeded": (
        "The text is longer than the model accepts.",
        "Shorten the text in this row, or choose a model with a larger context window.",
    ),
    "rate_limit_exceeded": ("The provider was too busy to answer this row.", "Send it again."),
    "server_error": ("The provider had an internal error on this row.", "Send it again."),
    "timeout": ("The provider took too long on this row.", "Send it again."),
    "request_timeout": ("The provider took too long on this row.", "Send it again."),
    "batch_expired": (
        "The provider's 24-hour window ran out before it reached this row.",
        "Send it again.",
    ),
    "batch_cancelled": ("The job was cancelled before this row was answered.", "Send it again."),
    "lost": ("The provider returned no result for this row.", "Send it again."),
    "token_limit_exceeded": (
        "The provider's queue for this model stayed full.",
        "Send it again later, or ask an admin to raise the key's limit.",
    ),
    "content_policy_violation": (
        "The provider's content filter refused this row's text.",
        "Change the text or the prompt; sending it unchanged will fail again.",
    ),
    "content_filter": (
        "The provider's content filter refused this row's text.",
        "Change the text or the prompt; sending it unchanged will fail again.",
    ),
    "model_not_found": (
        "The model does not exist, or this key may not use it.",
        "Choose another model, or ask an admin about the key.",
    ),
    "invalid_request": (
        "The provider refused the request as invalid.",
        "Check the prompt and the model's settings (temperature, answer length).",
    ),
}


def explain(code: str, message: str) -> tuple[str, str]:
    """(What happened, what to do) for an error code and the provider's message."""
    what, todo = _PLAIN.get(code, ("The provider could not answer this row.", ""))
    if code == "context_length_exceeded" and (found := _CONTEXT.search(message or "")):
        limit, used = int(found.group(1)), int(found.group(2))
        what = f"The text is longer than the model accepts: {used:,} tokens, limit {limit:,}."
    elif code not in _PLAIN and code.startswith("invalid"):
        what, todo = _PLAIN["invalid_request"]
    return what, todo
