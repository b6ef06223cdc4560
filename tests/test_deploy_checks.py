"""What production must not run with is said by `manage.py check --deploy`, and what cannot work at
all stops start-up; the data folder and the secrets in it are private from the start."""

import os
import stat
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks

from tests.conftest import ROOT


def ours() -> set[str]:
    return {m.id for m in run_checks(include_deployment_checks=True) if m.id.startswith("batchdash.")}


@pytest.mark.django_db
def test_check_deploy_names_each_unsafe_choice_of_this_project(settings, django_user_model):
    settings.SIMULATOR_ENABLED = True
    settings.SECRET_KEY_GENERATED = True
    settings.FIELD_ENCRYPTION_KEYS_GENERATED = True
    settings.ALLOWED_HOSTS = ["batchdash.example.com", "*"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    django_user_model.objects.create_user("root", "", is_staff=True, is_superuser=True)
    assert ours() == {f"batchdash.W00{n}" for n in range(1, 7)}

    settings.SIMULATOR_ENABLED = False
    settings.SECRET_KEY_GENERATED = settings.FIELD_ENCRYPTION_KEYS_GENERATED = False
    settings.ALLOWED_HOSTS = ["batchdash.example.com"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert ours() == {"batchdash.W006"}  # the only admin has no email address
    django_user_model.objects.filter(username="root").update(email="root@example.com")
    assert ours() == set()


def run(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("FIELD_ENCRYPTION_KEYS", "SECRET_KEY")}
    environment |= {"DJANGO_SETTINGS_MODULE": "batchdash.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, cwd=ROOT
    )


@pytest.mark.parametrize("bad", ["not-a-fernet-key", "{good},c2hvcnQ="])
def test_a_field_encryption_key_that_is_not_a_fernet_key_stops_start_up_naming_the_variable(tmp_path, bad):
    value = bad.format(good=Fernet.generate_key().decode())
    result = run("import django; django.setup()", DATA_DIR=str(tmp_path), FIELD_ENCRYPTION_KEYS=value)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "FIELD_ENCRYPTION_KEYS" in result.stderr
    assert value.split(",")[-1] not in result.stderr  # the value itself is a secret


def test_the_data_folder_database_and_generated_secrets_are_created_private(tmp_path):
    data = tmp_path / "new" / "data"
    code = (
        "import os; os.umask(0o022); import django; django.setup(); "
        "from django.db import connection; "
        "connection.cursor().execute('create table t (x int)'); connection.close()"
    )
    result = run(code, DATA_DIR=str(data), DATABASE_URL="")
    assert result.returncode == 0, result.stderr

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(data) == 0o700
    assert mode(data / "batchdash.sqlite3") == 0o600
    for secret in ("secret_key", "field_encryption_key", "simulator_api_key"):
        assert mode(data / secret) == 0o600, secret
    assert [p.name for p in data.iterdir() if p.name.startswith(".")] == []  # no draft left behind
    for sidecar in data.glob("batchdash.sqlite3-*"):
        assert mode(sidecar) == 0o600, sidecar.name
