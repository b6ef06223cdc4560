"""Token counts with the model's own tokenizer, offline.

tiktoken downloads its BPE files at first use, which cannot work without internet;
bpe-openai bundles o200k_base and cl100k_base and gives the same tokens. Its native
tokenizer can count without building the token list, which is what the prepare step
needs for millions of rows.
"""

from collections.abc import Callable
from functools import cache

import bpe_openai
from bpe_openai import _bindings

# Models before GPT-4o use cl100k_base; everything newer uses o200k_base.
_CL100K_PREFIXES = ("gpt-4-", "gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")


def encoding_name(model: str) -> str:
    if model.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if model.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return "o200k_base"


@cache
def _counter(name: str) -> Callable[[str], int]:
    native = _bindings.tokenizer_for_encoding(name).count
    encode = bpe_openai.get_encoding(name).encode_ordinary

    def count(text: str) -> int:
        try:
            return native(text)
        except UnicodeEncodeError:  # lone surrogates: the public API cleans them first
            return len(encode(text))

    return count


def counter(model: str) -> Callable[[str], int]:
    """A function that counts the tokens of a text for `model`."""
    return _counter(encoding_name(model))


# OpenAI's published recipe for chat models ("How to count tokens with tiktoken" in its cookbook, checked
# there against the API for gpt-3.5-turbo, gpt-4, gpt-4o and gpt-4o-mini): each message costs 3 framing
# tokens plus the tokens of every field (role, content, name), a name 1 more, and the reply is primed
# with 3. An embeddings input is its text alone.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
UNFRAMED_ENDPOINTS = ("/v1/embeddings", "/v1/completions", "/v1/moderations")


def chat_tokens(model: str, messages: list[dict[str, str]], count: Callable[[str], int] | None = None) -> int:
    """The prompt tokens of a chat request's text messages, as the provider bills them (`count`: the
    model's counter, or one that remembers texts seen before)."""
    count = count or counter(model)
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            total += count(value)
            if key == "name":
                total += TOKENS_PER_NAME
    return total


def prompt_counter(model: str, endpoint: str) -> Callable[[str, str], int]:
    """Tokens of a row's (system, user) texts as a request to `endpoint` bills them: the texts, and for a
    chat or responses request the framing of a system message (when there is one) and a user message."""
    count = counter(model)
    if endpoint in UNFRAMED_ENDPOINTS:
        return lambda system, user: count(user)
    user_framing = REPLY_PRIMING + TOKENS_PER_MESSAGE + count("user")
    system_framing = TOKENS_PER_MESSAGE + count("system")
    # The instructions are usually the same for every row: counted once, not once per row.
    last_system: list = [None, 0]

    def count_prompt(system: str, user: str) -> int:
        total = count(user) + user_framing
        if system:
            if system is not last_system[0] and system != last_system[0]:
                last_system[0], last_system[1] = system, count(system)
            total += last_system[1] + system_framing
        return total

    return count_prompt
