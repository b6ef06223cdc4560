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
import sys
from collections.abc import Callable
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
def _counter(name: str) -> Callable[[str], int]:
    native = _native().tokenizer_for_encoding(name).count

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


class PromptCounter:
    """Tokens of a (system, user) pair as a chat request bills them: text plus per-message overhead.

    Pickled as its model's name alone, and the tokenizer (about 110 MB) is loaded at the first count:
    a process that hands its rows to a pool of others to count never loads one.
    """

    def __init__(self, model: str):
        self.model = model
        self._count: Callable[[str], int] | None = None
        # The instructions are usually the same for every row: counted once, not once per row.
        self._last_system: str | None = None
        self._last_system_tokens = 0

    def __reduce__(self):
        return PromptCounter, (self.model,)

    def __call__(self, system: str, user: str) -> int:
        count = self._count or self._load()
        # Each message costs 3 framing tokens and the reply is primed with 3 more
        # (OpenAI's published counting recipe for chat models).
        total = count(user) + 3 + 3
        if system:
            if system is not self._last_system and system != self._last_system:
                self._last_system, self._last_system_tokens = system, count(system)
            total += self._last_system_tokens + 3
        return total

    def _load(self) -> Callable[[str], int]:
        self._count = counter(self.model)
        return self._count


def prompt_counter(model: str) -> PromptCounter:
    """A function of (system, user) that counts a chat request's prompt tokens for `model`."""
    return PromptCounter(model)
