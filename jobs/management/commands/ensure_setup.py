"""First-start set-up for `make run`: an admin account and the simulator as the default provider.

Safe to run on every start: it only creates what is missing.
"""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from jobs.models import ProviderCredential
from jobs.providers.crypto import SecretUnavailable


def _accepted(credential: ProviderCredential) -> bool:
    """Whether the credential holds a key the simulator accepts."""
    try:
        return credential.api_key() in settings.SIMULATOR_API_KEYS
    except SecretUnavailable:
        return False


class Command(BaseCommand):
    help = "Create the first admin (if there are no users) and the simulator provider (if enabled)."

    def handle(self, *args, **options):
        User = get_user_model()
        if not User.objects.exists():
            password = os.environ.get("BATCHDASH_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            email = os.environ.get("BATCHDASH_ADMIN_EMAIL", "").strip()
            User.objects.create_superuser("admin", email, password)
            self.stdout.write(
                self.style.SUCCESS(
                    "\n  Created the first account.\n"
                    f"  Log in at http://127.0.0.1:{settings.PORT}/ as  admin  with password  {password}\n"
                )
            )
            if not email:
                # Refused keys and jobs waiting for approval are sent to the admins by email.
                self.stdout.write(
                    "  Add your email address under People, so that refused keys and jobs waiting "
                    "for your approval reach you.\n"
                )
        if settings.SIMULATOR_ENABLED:
            credential = ProviderCredential.objects.filter(kind=ProviderCredential.Kind.SIMULATOR).first()
            if credential is None:
                credential = ProviderCredential(
                    name="Built-in simulator",
                    kind=ProviderCredential.Kind.SIMULATOR,
                    is_default=not ProviderCredential.objects.filter(is_default=True).exists(),
                    poll_min_seconds=2,
                    poll_max_seconds=10,
                )
            if credential.pk is None or not _accepted(credential):
                # Follow the simulator's key too: an install from before the key was generated
                # holds the old public one, which the simulator no longer accepts.
                credential.set_api_key(settings.SIMULATOR_API_KEYS[0])
            # Follow PORT changes: the simulator has its own server (SIMULATOR_PORT, next to PORT).
            credential.base_url = settings.SIMULATOR_BASE_URL
            credential.save()
