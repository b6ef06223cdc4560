"""Provider keys as admins and members meet them: testing one with a cheap call, in words an admin can
act on, and the models a key offers."""

from urllib.parse import urlsplit

from django.core.cache import cache
from django.utils import timezone

from jobs.models import ProviderCredential
from jobs.providers.client import AuthError, ProviderError, RetryableError, client_for
from jobs.providers.crypto import SecretUnavailable


def _host(base_url: str) -> str:
    """Where the key was tried, for the admin: host and port only, never a user:password@ in the URL."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        return "api.openai.com"
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname


def test(credential: ProviderCredential) -> tuple[bool, str]:
    """Call the provider's model list with the key, and keep the result on the key (a key that failed
    is not offered to members until it passes); (worked, what to tell the admin)."""
    worked, message = _try(credential)
    # update(), not save(): the key's updated_at names its cached model list, which a test leaves as is.
    ProviderCredential.objects.filter(pk=credential.pk).update(
        last_test_ok=worked, last_tested_at=timezone.now(), last_test_message=message
    )
    return worked, message


def _try(credential: ProviderCredential) -> tuple[bool, str]:
    where = _host(credential.base_url)
    try:
        client_for(credential).check()
    except SecretUnavailable:
        return False, "The stored key cannot be decrypted with FIELD_ENCRYPTION_KEYS; enter it again."
    except AuthError:
        return False, f"{where} refused this key: it is wrong, revoked, or lacks access. Enter a valid key."
    except RetryableError as exc:
        if exc.code == "connection_error":
            return False, f"Could not reach {where}: check the base URL and this server's network."
        if exc.code == "timeout":
            return False, f"{where} did not answer in time; try again in a moment."
        return False, f"{where} is busy or failing right now ({exc.message}); try again later."
    except ProviderError as exc:
        if exc.status == 404:
            return False, f"Nothing at {where} answers like an OpenAI API: check the base URL."
        return False, f"{where} answered with an error: {exc.message}"
    return True, f"The key works: {where} answered."


# The model list changes rarely; asking once in a while keeps the new-job form and its live preview fast.
MODELS_CACHE_SECONDS = 600


def model_ids(credential: ProviderCredential) -> list[str] | None:
    """The models the key's provider lists for it, or None when it does not answer (cached)."""
    key = f"models:{credential.pk}:{credential.updated_at.timestamp() if credential.updated_at else 0}"
    cached = cache.get(key)
    if cached is not None:
        return cached or None
    try:
        ids = client_for(credential).model_ids()
    except (ProviderError, SecretUnavailable):
        ids = []
    cache.set(key, ids, MODELS_CACHE_SECONDS)
    return ids or None
