"""Token counts with the model's own tokenizer, offline.

tiktoken downloads its BPE files at first use, which cannot work without internet;
bpe-openai bundles o200k_base and cl100k_base and gives the same tokens. Its native
tokenizer can count without building the token list, which is what the prepare step
needs for millions of rows.

Only its native module is loaded: importing the bpe_openai package reads the ranks of every
encoding it knows into Python dictionaries (about 65 MB and a second or more per process, in
each process that counts), which counting never uses.
"""

import importlib.machinery
import importlib.util
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from types import ModuleType

_NATIVE = "bpe_openai._bindings"


def _native() -> ModuleType:
    """bpe-openai's native module, loaded from its file without running the package's __init__.

    Registered under its own name, so that a later `import bpe_openai` uses this one: a native
    module can be initialised only once per process.
    """
    if _NATIVE not in sys.modules:
        package = importlib.util.find_spec("bpe_openai")  # finds it without importing it
        (path,) = Path(package.submodule_search_locations[0]).glob("_bindings*.so")
        loader = importlib.machinery.ExtensionFileLoader(_NATIVE, str(path))
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(_NATIVE, loader))
        loader.exec_module(module)
        sys.modules[_NATIVE] = module
    return sys.modules[_NATIVE]


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
def _native_count(name: str) -> Callable[[str], int]:
    return _native().tokenizer_for_encoding(name).count


@cache
def _counter(name: str) -> Callable[[str], int]:
    native = _native_count(name)

    def count(text: str) -> int:
        try:
            return native(text)
        except UnicodeEncodeError:
            # Lone surrogates, which UTF-8 cannot hold: replaced as bpe-openai's public API does.
            return native(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))

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


class PromptCounter:
    """Tokens of a row's (system, user) texts as a request to `endpoint` bills them: the texts, and for a
    chat or responses request the framing of a system message (when there is one) and a user message.

    Pickled as its model and endpoint alone, and the tokenizer (about 110 MB) is loaded, and the
    framing counted, at the first count: a process that hands its rows to a pool of others to count
    never loads one.
    """

    def __init__(self, model: str, endpoint: str):
        self.model = model
        self.endpoint = endpoint
        self._framed = endpoint not in UNFRAMED_ENDPOINTS
        self._count: Callable[[str], int] | None = None
        self._native: Callable[[str], int] | None = None
        self._user_framing = self._system_framing = 0
        # The instructions are usually the same for every row: counted once, not once per row.
        self._last_system: str | None = None
        self._last_system_tokens = 0

    def __reduce__(self):
        return PromptCounter, (self.model, self.endpoint)

    def __call__(self, system: str, user: str) -> int:
        count = self._count or self._load()
        if not self._framed:
            return count(user)
        total = count(user) + self._user_framing
        if system:
            if system is not self._last_system and system != self._last_system:
                self._last_system, self._last_system_tokens = system, count(system)
            total += self._last_system_tokens + self._system_framing
        return total

    def many(
        self,
        system: str | None,
        users: list[str],
        systems: list[str] | None = None,
        taken: Iterable[str] = (),
    ) -> list[int]:
        """The counts of many rows at once, the same as calling this for each: the rows share
        `system`, or each has its own in `systems`. Without a Python step per row when they share it.
        `taken`: text taken out of every user text (Shortcuts), whose tokens each row has too.
        """
        count = self._count or self._load()
        extra = sum(map(count, taken))
        if systems is not None:
            counts = list(map(self, systems, users))
        else:
            try:
                counts = list(map(self._native, users))
            except UnicodeEncodeError:  # a lone surrogate somewhere: each text through the careful count
                counts = list(map(count, users))
            if self._framed:  # the framing and the instructions, the same for every row
                extra += self(system or "", "")
        return list(map(extra.__add__, counts)) if extra else counts

    def _load(self) -> Callable[[str], int]:
        self._native = _native_count(encoding_name(self.model))
        count = counter(self.model)
        if self._framed:
            self._user_framing = REPLY_PRIMING + TOKENS_PER_MESSAGE + count("user")
            self._system_framing = TOKENS_PER_MESSAGE + count("system")
        self._count = count
        return count


def prompt_counter(model: str, endpoint: str) -> PromptCounter:
    """A function of (system, user) that counts a request's prompt tokens for `model` at `endpoint`."""
    return PromptCounter(model, endpoint)


# Punctuation that a token of its own starts with, whatever comes before it: ASCII, not the apostrophe
# (it joins the word before it, as in "it's") nor the slash (it joins a line break before it).
_SPLITS_BEFORE = frozenset("!\"#$%&()*+,-.:;<=>?@[\\]^_`{|}~")


class Shortcuts:
    """A prompt template's fixed text less the words whose tokens can be counted once, not once a row:
    the texts to count, rendered from `parts`, have the same tokens as the template's less those of
    `taken` (on the multilingual million, "Title", "Review" and "Country", a tenth of the counting).

    Exact by how the o200k and cl100k pre-tokenizers split a text before BPE, which never merges
    across their splits: a split always falls between a letter or digit and the punctuation above,
    and between a line break and a letter. So these are tokens of their own whatever the cells hold,
    and taking them out changes no other token:
    - the start of the template up to its last such split before the first cell ("Classify the
      sentiment of this review" of "Classify the sentiment of this review: {{ Review }}");
    - a word of letters after a line break and before such punctuation ("Review" of "\nReview: ").
    tests/test_tokens.py checks it against counting whole texts for every character of Unicode.
    """

    def __init__(self, parts: tuple[str, ...]):
        first = parts[0]
        cut = max((i for i in range(1, len(first)) if _split_before(first, i)), default=0)
        self.taken = [first[:cut]] if cut else []
        shorter = (first[cut:], *parts[1:])
        for part in shorter:
            self.taken += _WORD_AFTER_LINE_BREAK.findall(part)
        self.parts = tuple(_WORD_AFTER_LINE_BREAK.sub("", part) for part in shorter)


def _split_before(text: str, i: int) -> bool:
    """Whether the pre-tokenizers always split `text` before position `i`: a letter or digit, then
    punctuation that starts a token."""
    return text[i] in _SPLITS_BEFORE and unicodedata.category(text[i - 1])[0] in "LN"


# A word of letters (not digits nor the underscore) after a line break and before such punctuation.
_WORD_AFTER_LINE_BREAK = re.compile(
    r"(?<=[\r\n])[^\W\d_]+(?=[" + re.escape("".join(sorted(_SPLITS_BEFORE))) + "])"
)
