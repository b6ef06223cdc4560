"""The project's own system checks, reported beside Django's: deployment checks by `manage.py check
--deploy`, and the check that an admin can be emailed at every start-up (migrate, runserver, check).

Django checks its own settings; these are the ways this project in particular is unsafe or
quietly broken in production: the simulator served to anyone, secrets generated next to the
data they protect, any host accepted, emails printed instead of sent, and no admin to send
the emails that need one.
"""

from django.conf import settings
from django.core.checks import Tags, Warning, register
from django.db import DatabaseError, connection

EMAIL_PRINTED = "django.core.mail.backends.console.EmailBackend"


@register(Tags.security, deploy=True)
def check_settings(app_configs=None, **kwargs) -> list[Warning]:
    warnings = []
    if settings.SIMULATOR_ENABLED:
        warnings.append(
            Warning(
                "The built-in simulator is served at /simulator/v1 to anyone who reaches the server.",
                hint="Set SIMULATOR_ENABLED=false in production.",
                id="batchdash.W001",
            )
        )
    if settings.SECRET_KEY_GENERATED:
        warnings.append(
            Warning(
                "SECRET_KEY is not set: the key generated into DATA_DIR/secret_key is used, and is "
                "lost or differs with another DATA_DIR.",
                hint="Set SECRET_KEY in the environment.",
                id="batchdash.W002",
            )
        )
    if settings.FIELD_ENCRYPTION_KEYS_GENERATED:
        warnings.append(
            Warning(
                "FIELD_ENCRYPTION_KEYS is not set: provider keys are encrypted with a key generated "
                "into DATA_DIR, kept next to the data it protects.",
                hint="Set FIELD_ENCRYPTION_KEYS in the environment and keep it apart from the database.",
                id="batchdash.W003",
            )
        )
    if "*" in settings.ALLOWED_HOSTS:
        warnings.append(
            Warning(
                "ALLOWED_HOSTS contains '*': any Host header is accepted, and so can end up in links.",
                hint="List the site's host names in ALLOWED_HOSTS.",
                id="batchdash.W004",
            )
        )
    if settings.EMAIL_BACKEND == EMAIL_PRINTED:
        warnings.append(
            Warning(
                "EMAIL_BACKEND is the console: notifications are printed in the log, never sent.",
                hint="Set EMAIL_BACKEND (and its EMAIL_* settings) to a real mail server.",
                id="batchdash.W005",
            )
        )
    return warnings


# Not deploy-only: an installation under `make run` is as stuck when approvals reach nobody.
@register(Tags.security)
def check_admins_reachable(app_configs=None, **kwargs) -> list[Warning]:
    """Refused keys, approvals and stuck parts are emailed to admins: someone must get them."""
    from jobs import notify  # the models are not ready when this module is imported

    try:
        if notify.User._meta.db_table not in connection.introspection.table_names():
            return []  # not migrated yet: nothing to say about its people
        reachable = notify.admins_with_email().exists()
    except DatabaseError:
        return []  # no database to ask (yet); Django's own checks and migrate say so
    if reachable:
        return []
    return [
        Warning(
            "No active admin has an email address (admins are staff users): refused keys, jobs waiting for "
            "approval and stuck parts are told to nobody.",
            hint="Give at least one admin an email address (People, in the app's menu).",
            id="batchdash.W006",
        )
    ]
