"""Re-encrypt every stored provider key with the newest of FIELD_ENCRYPTION_KEYS.

Rotation: put a new key first in FIELD_ENCRYPTION_KEYS (keeping the old ones after it),
restart, run this command, then remove the old keys. Fails closed: if any secret cannot
be decrypted with the configured keys, nothing is changed.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from jobs.models import ProviderCredential
from jobs.providers import crypto


class Command(BaseCommand):
    help = "Re-encrypt every stored provider key with the newest FIELD_ENCRYPTION_KEYS key."

    def handle(self, *args, **options):
        with transaction.atomic():
            credentials = list(ProviderCredential.objects.select_for_update())
            for credential in credentials:
                try:
                    credential.api_key_encrypted = crypto.rotate(credential.api_key_encrypted)
                except crypto.SecretUnavailable as exc:
                    raise CommandError(
                        f"The key of credential “{credential.name}” cannot be decrypted with "
                        "FIELD_ENCRYPTION_KEYS; nothing was changed."
                    ) from exc
            ProviderCredential.objects.bulk_update(credentials, ["api_key_encrypted"])
        self.stdout.write(f"Re-encrypted {len(credentials)} provider key(s) with the newest key.")
