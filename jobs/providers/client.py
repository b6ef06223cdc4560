"""The one door to a provider: every call to an OpenAI-compatible API goes through here.

Nothing else imports `openai`. SDK objects and exceptions are translated into small
dataclasses and into RetryableError / PermanentError. Everything a provider says that we
store, log or show (error messages, batch errors, downloaded result files, synchronous
answers) leaves this module scrubbed of the credential's own key, by its exact value,
and of anything shaped like a key: providers echo keys, whole or in part, in their errors,
and from here the text would reach pages, the audit log, the worker log and emails.

Retries happen in one layer only: the Celery tasks. Calls that create something
(upload, create batch) run with the SDK's own retries off, because the SDK sends no
idempotency key and a retried create can make a second, billed batch.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import openai
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from jobs.models import ProviderCredential

# Azure's generally available API version with the Batch API, used when none is set.
AZURE_API_VERSION = "2024-10-21"
REDACTED = "[redacted key]"
# The shapes of keys, whole or masked (providers echo "sk-ab***cd"): OpenAI and alike (sk-,
# rk-, pk-, key-), Groq (gsk_), xAI (xai-), Hugging Face (hf_), Perplexity (pplx-), NVIDIA
# (nvapi-), GitHub tokens, Google (AIza…), and Azure OpenAI's 32 hexadecimal digits.
_KEY_PATTERN = re.compile(
    r"\b(?:sk|rk|pk|key|xai|pplx|nvapi)-[A-Za-z0-9_\-*.]{3,}"
    r"|\b(?:gsk|hf|ghp|gho|github_pat)_[A-Za-z0-9_\-*.]{3,}"
    r"|\bAIza[A-Za-z0-9_\-]{20,}"
    r"|\b[0-9a-fA-F]{32}\b"
)
# Whatever follows "Bearer" is a token, whatever its shape.
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{12,}")
# Shorter secrets are not looked for by value: replacing every "abc" would garble the text
# and such a key protects nothing anyway.
_MIN_SECRET_LENGTH = 8


def scrub(text: str, secret: str | None = None) -> str:
    """Remove `secret` (the key in use) by its exact value, and anything shaped like a key."""
    text = text or ""
    if secret and len(secret) >= _MIN_SECRET_LENGTH:
        text = text.replace(secret, REDACTED)
    return _BEARER.sub(r"\1" + REDACTED, _KEY_PATTERN.sub(REDACTED, text))


class ProviderError(Exception):
    """A provider call failed; `message` is safe to show and store."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(scrub(message))
        self.message = scrub(message)
        self.code = code
        self.status = status
        self.retry_after = retry_after


class RetryableError(ProviderError):
    """Worth trying again later: rate limits, server errors, timeouts, no connection."""


class PermanentError(ProviderError):
    """Trying again will not help until someone changes something."""


class AuthError(PermanentError):
    """The key was refused (401/403): an admin has to act. Carries the credential's id."""

    credential_id: int | None = None


@dataclass(frozen=True)
class RemoteFile:
    id: str
    filename: str
    bytes: int


@dataclass(frozen=True)
class RemoteBatch:
    id: str
    status: str
    total: int
    completed: int
    failed: int
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    metadata: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_terminal(self) -> bool:
        return self.status in ("completed", "failed", "expired", "cancelled")


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """The wait the provider asked for, in seconds: `retry-after-ms` when sent (OpenAI's own, exact),
    else `retry-after` in seconds."""
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return float(headers[name]) / scale
        except (KeyError, ValueError):
            continue
    return None


def _translate(exc: Exception) -> ProviderError:
    if isinstance(exc, openai.APITimeoutError):
        return RetryableError("The provider did not answer in time.", code="timeout")
    if isinstance(exc, openai.APIConnectionError):
        return RetryableError(
            "Could not reach the provider (network or wrong address).", code="connection_error"
        )
    if isinstance(exc, openai.APIStatusError):
        message = exc.message
        status = exc.status_code
        if status in (401, 403):
            return AuthError(message, code=exc.code or "invalid_api_key", status=status)
        if status in (408, 409, 429) or status >= 500:
            return RetryableError(message, code=exc.code, status=status, retry_after=_retry_after(exc))
        return PermanentError(message, code=exc.code, status=status)
    return PermanentError(str(exc))


def _remote_batch(batch: Any, secret: str) -> RemoteBatch:
    counts = batch.request_counts
    errors = []
    if batch.errors and batch.errors.data:
        errors = [
            {"code": e.code, "message": scrub(e.message or "", secret), "param": e.param, "line": e.line}
            for e in batch.errors.data
        ]
    return RemoteBatch(
        id=batch.id,
        status=(batch.status or "").lower(),
        total=counts.total if counts else 0,
        completed=counts.completed if counts else 0,
        failed=counts.failed if counts else 0,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        created_at=batch.created_at,
        metadata=dict(batch.metadata or {}),
        errors=errors,
    )


# One client per credential per process, reused: building one makes a new connection pool and SSL
# context (about 90 ms), and a worker makes thousands of calls. Keyed by the credential's version,
# so that a replaced key or address takes effect at once.
_CLIENTS: dict[tuple, "ProviderClient"] = {}
_MAX_CLIENTS = 64


def client_for(credential: ProviderCredential) -> "ProviderClient":
    """The process's client for this credential as it is now (see _CLIENTS)."""
    key = (credential.pk, credential.updated_at, credential.api_key_encrypted)
    client = _CLIENTS.get(key)
    if client is None:
        if len(_CLIENTS) >= _MAX_CLIENTS:
            _CLIENTS.clear()
        client = _CLIENTS[key] = ProviderClient(credential)
    return client


def close_clients() -> None:
    """Close and forget every client of this process. A client dropped without closing keeps its
    kept-alive connections open until it is collected, and the server at the other end a thread
    (and, for the tests' simulator, a database connection) for each: the tests, which make a new
    credential each, close them between tests."""
    while _CLIENTS:
        _CLIENTS.popitem()[1].close()


class ProviderClient:
    """The calls Batchdash makes, named after what they are for. Thread-safe (the SDK's client is)."""

    # Keeps the decrypted key off debug pages and out of error emails if building the client fails.
    @sensitive_variables("common")
    def __init__(self, credential: ProviderCredential):
        self._credential_id = credential.pk
        common = dict(api_key=credential.api_key(), timeout=settings.PROVIDER_TIMEOUT_SECONDS, max_retries=0)
        if credential.kind == ProviderCredential.Kind.AZURE:
            self._sdk = openai.AzureOpenAI(
                azure_endpoint=credential.base_url,
                api_version=credential.api_version or AZURE_API_VERSION,
                **common,
            )
        else:
            self._sdk = openai.OpenAI(
                base_url=credential.base_url or None,
                organization=credential.organization or None,
                project=credential.project or None,
                **common,
            )

    def close(self) -> None:
        self._sdk.close()

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except openai.OpenAIError as exc:
            raise self._error(exc) from None

    @property
    def _secret(self) -> str:
        return self._sdk.api_key or ""

    def _error(self, exc: openai.OpenAIError) -> ProviderError:
        error = _translate(exc)
        error.message = scrub(error.message, self._secret)
        error.args = (error.message,)
        if isinstance(error, AuthError):
            error.credential_id = self._credential_id
        return error

    def check(self) -> None:
        """A cheap call that proves the key and the address work."""
        self._call(self._sdk.models.list)

    def model_ids(self) -> list[str]:
        """The ids of the models this key may use, as the provider lists them."""
        return sorted(model.id for model in self._call(self._sdk.models.list))

    def upload_batch_file(self, stream: IO[bytes], filename: str) -> RemoteFile:
        # Large uploads need more than the default timeout: allow ~1 MB/s plus a minute.
        timeout = settings.PROVIDER_TIMEOUT_SECONDS + 3600
        f = self._call(self._sdk.files.create, file=(filename, stream), purpose="batch", timeout=timeout)
        return RemoteFile(id=f.id, filename=f.filename, bytes=f.bytes)

    def find_file(self, filename: str) -> RemoteFile | None:
        """An uploaded batch file by name, for recovering from an upload whose answer was lost."""
        page = self._call(self._sdk.files.list, purpose="batch", order="desc", limit=1000)
        for f in page.data:
            if f.filename == filename:
                return RemoteFile(id=f.id, filename=f.filename, bytes=f.bytes)
        return None

    def create_batch(self, input_file_id: str, endpoint: str, metadata: dict[str, str]) -> RemoteBatch:
        batch = self._call(
            self._sdk.batches.create,
            input_file_id=input_file_id,
            endpoint=endpoint,
            completion_window="24h",
            metadata=metadata,
        )
        return _remote_batch(batch, self._secret)

    def find_batch(self, key: str, value: str, created_after: int) -> RemoteBatch | None:
        """The batch whose metadata[key] == value, looking back to `created_after` (unix s).

        The list endpoint has no filter, so this pages newest-first and stops once the
        batches are older than the time our own attempt started.
        """
        after = None
        while True:
            kwargs = {"limit": 100} | ({"after": after} if after else {})
            page = self._call(self._sdk.batches.list, **kwargs)
            for batch in page.data:
                if (batch.metadata or {}).get(key) == value:
                    return _remote_batch(batch, self._secret)
            if not page.data or not page.has_more or page.data[-1].created_at < created_after:
                return None
            after = page.data[-1].id

    def get_batch(self, batch_id: str) -> RemoteBatch:
        return _remote_batch(self._call(self._sdk.batches.retrieve, batch_id), self._secret)

    def cancel_batch(self, batch_id: str) -> RemoteBatch:
        return _remote_batch(self._call(self._sdk.batches.cancel, batch_id), self._secret)

    def download_file(self, file_id: str) -> Iterator[bytes]:
        """The file's bytes in chunks, streamed rather than held in memory.

        A row's error in the file is shown and stored like any other provider message, so the
        key is taken out here too, by value only (key shapes could be in legitimate answers).
        """
        try:
            with self._sdk.files.with_streaming_response.content(
                file_id, timeout=settings.PROVIDER_TIMEOUT_SECONDS + 3600
            ) as response:
                yield from _without(response.iter_bytes(1 << 20), self._secret)
        except openai.OpenAIError as exc:
            raise self._error(exc) from None

    def delete_file(self, file_id: str) -> None:
        self._call(self._sdk.files.delete, file_id)

    def complete(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """One synchronous request (the pilot run, Run now), answered as the batch line's body would be."""
        path = endpoint.removeprefix("/v1")
        response = self._call(self._sdk.post, path, body=body, cast_to=object)
        if not isinstance(response, dict):
            return {}
        secret = self._secret
        if len(secret) >= _MIN_SECRET_LENGTH and secret in json.dumps(response):
            # Keys hold no character that JSON escapes, so the replacement keeps it valid.
            response = json.loads(json.dumps(response).replace(secret, REDACTED))
        return response


def _without(chunks: Iterator[bytes], secret: str) -> Iterator[bytes]:
    """The chunks with every occurrence of `secret` replaced, even one split across two chunks."""
    if len(secret) < _MIN_SECRET_LENGTH:
        yield from chunks
        return
    needle, keep = secret.encode(), len(secret) - 1
    carry = b""
    for chunk in chunks:
        data = (carry + chunk).replace(needle, REDACTED.encode())
        # The tail could be the start of the key, completed by the next chunk.
        carry, data = data[-keep:], data[:-keep]
        if data:
            yield data
    if carry:
        yield carry
