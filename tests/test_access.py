"""Who may see what, and where secrets must never appear.

The URL walk introspects the URL configuration, so a view added later is walked too:
every pattern, filled with the ids of another user's objects, is requested as that
user's stranger and as an anonymous visitor, and must answer "no" without any data.
"""

import logging

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import URLPattern, URLResolver, get_resolver

from jobs import pipeline, tasks
from jobs.models import ProviderCredential, RowFailure
from jobs.providers import crypto
from jobs.providers.client import ProviderClient, scrub
from tests.conftest import ROOT
from tests.test_pipeline import drive, new_job

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_NAME = "Alice secret forecast"
# Pages anyone may open: the login pages, logging out, and the health check (which says only "ok").
PUBLIC = {"login/", "logout/", "health/", "admin/login/", "admin/logout/"}
# Pages every member has, showing only their own things: the job list, upload form and templates.
MEMBER_PAGES = {"", "upload/", "templates/"}
REFUSED = {401, 403, 404, 405}


def walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def fill(route: str, values: dict[str, str]) -> str:
    """A concrete path for a route such as jobs/<uuid:code>/rows/<int:row>/."""
    import re

    def value(match):
        converter, name = match.group(1) or "str", match.group(2)
        return values.get(name) or values.get(converter) or "1"

    path = re.sub(r"<(?:(\w+):)?(\w+)>", value, route)
    # Admin routes are regular expressions; give them a plain object id.
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "1", path).lstrip("^").rstrip("$").replace("\\", "")
    return "/" + path


@pytest.fixture
def alices_job(alice, bob, simulator_credential, settings):
    """Alice's job, shared with her team; Bob is a member of another team."""
    settings.SIMULATOR_SPEED = 1_000_000
    team_a, team_b = Group.objects.create(name="Team A"), Group.objects.create(name="Team B")
    alice.groups.add(team_a)
    bob.groups.add(team_b)
    content = b"Review Text\nAlice confidential text\n[[simulate:server_error]] Alice failing row\n"
    return drive(new_job(alice, simulator_credential, content=content, name=SECRET_NAME, team=team_a))


def test_every_url_refuses_strangers_and_anonymous_visitors(client, bob, alices_job):
    routes = sorted(set(walk(get_resolver().url_patterns)))
    assert len(routes) > 20  # the walk found the admin, the app and the simulator
    values = {
        "uuid": str(alices_job.code),
        "code": str(alices_job.code),
        "row": "2",
        "kind": "results",
        "path": "x",
    }
    secrets = [SECRET_NAME, "Alice confidential text", "Alice failing row", str(alices_job.dataset.name)]
    checked = 0
    failures = []
    for who in ("anonymous", "stranger"):
        for route in routes:
            path = fill(route, values)
            for method in ("get", "post"):
                if who == "stranger":
                    client.force_login(bob)  # again: a logout route ends the session
                response = getattr(client, method)(path)
                body = b"".join(response.streaming_content) if response.streaming else response.content
                text = body.decode("utf-8", "replace")
                for secret in secrets[:3]:
                    assert secret not in text, f"{who} {method.upper()} {path} shows {secret!r}"
                if route in PUBLIC or (who == "stranger" and route in MEMBER_PAGES):
                    continue
                location = response.get("Location", "")
                refused = response.status_code in REFUSED or (
                    response.status_code == 302 and "login" in location
                )
                if not refused:
                    failures.append(
                        f"{who} {method.upper()} {path} answered {response.status_code} {location}"
                    )
                checked += 1
    assert failures == [], "\n".join(failures)
    assert checked > 80


def test_rotation_re_encrypts_every_key_with_the_newest(settings, simulator_credential):
    old_keys = list(settings.FIELD_ENCRYPTION_KEYS)
    before = simulator_credential.api_key_encrypted
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, *old_keys]

    call_command("rotate_secrets")

    simulator_credential.refresh_from_db()
    assert simulator_credential.api_key_encrypted != before
    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old keys can now be dropped
    assert simulator_credential.api_key() == "sk-simulator"


def test_rotation_changes_nothing_when_a_secret_cannot_be_read(settings, simulator_credential):
    before = simulator_credential.api_key_encrypted
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("rotate_secrets")
    simulator_credential.refresh_from_db()
    assert simulator_credential.api_key_encrypted == before


def test_decryption_fails_closed(settings, simulator_credential):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.SecretUnavailable):
        ProviderClient(simulator_credential)


def test_a_key_never_leaves_in_pages_task_arguments_logs_or_stored_errors(
    client, alice, simulator_credential, caplog, settings, monkeypatch
):
    key = "sk-simulator"
    settings.SIMULATOR_SPEED = 1_000_000
    caplog.set_level(logging.DEBUG)
    sent = []
    for name in ("prepare_job", "submit_batch", "poll_batch", "finish_batch", "schedule_batches"):
        task = getattr(tasks, name)
        monkeypatch.setattr(task, "delay", lambda *a, **k: sent.append((a, k)))
        monkeypatch.setattr(task, "delay_on_commit", lambda *a, **k: sent.append((a, k)))
    content = b"Review Text\nfine\n[[simulate:server_error]] flaky\n"
    job = drive(new_job(alice, simulator_credential, content=content))
    client.force_login(alice)
    pages = [
        client.get(f"/jobs/{job.code}/").content,
        client.get(f"/jobs/{job.code}/progress/").content,
        client.get(f"/jobs/{job.code}/failures/").content,
        client.get(f"/jobs/{job.code}/rows/2/").content,
        client.get("/").content,
    ]
    client.post(f"/jobs/{job.code}/retry/")
    assert all(key.encode() not in page for page in pages)
    assert key not in repr(sent)
    assert key not in caplog.text
    stored = [job.error] + [b.error for b in job.batches.all()]
    stored += list(RowFailure.objects.values_list("message", flat=True))
    assert all(key not in text for text in stored)


def test_a_wrong_key_echoed_by_the_provider_is_scrubbed(simulator_credential):
    simulator_credential.set_api_key("sk-proj-ABCDEFwrongkey1234")
    simulator_credential.save()
    with pytest.raises(Exception) as raised:
        ProviderClient(simulator_credential).check()
    assert "ABCDEF" not in str(raised.value)
    assert "ABCDEF" not in scrub("Incorrect API key provided: sk-proj-ABCDEFwrongkey1234. See docs.")


def test_the_admin_never_shows_a_stored_key(client, simulator_credential, django_user_model):
    root = django_user_model.objects.create_user("root", is_staff=True, is_superuser=True)
    client.force_login(root)
    page = client.get(f"/admin/jobs/providercredential/{simulator_credential.pk}/change/").content
    assert b"sk-simulator" not in page
    assert simulator_credential.api_key_encrypted.encode() not in page
    assert "…ator".encode() in page


def test_pipeline_tasks_take_ids_only():
    import inspect

    for name in ("prepare_job", "submit_batch", "poll_batch", "finish_batch", "cancel_job", "build_results"):
        parameters = list(inspect.signature(getattr(pipeline, name)).parameters)
        assert parameters == [parameters[0]] and parameters[0].endswith("_id"), name
    assert ProviderCredential._meta.get_field("api_key_encrypted").editable is False


def test_production_settings_pass_the_deployment_checks(tmp_path):
    import os
    import secrets
    import subprocess
    import sys

    env = dict(
        os.environ,
        DEBUG="false",
        HTTPS="true",
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="batchdash.example.com",
        DATA_DIR=str(tmp_path),
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        SIMULATOR_ENABLED="false",
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        # A database of its own, empty: the check of admins' email addresses has no one to judge.
        DATABASE_URL="",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_pages_carry_a_policy_that_allows_no_inline_script(client, alice):
    client.force_login(alice)
    response = client.get("/")
    policy = dict(
        part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";") if part.strip()
    )
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_teammate_sees_and_downloads_a_shared_job_but_only_the_owner_changes_it(
    client, alices_job, django_user_model
):
    carol = django_user_model.objects.create_user("carol", "carol@example.com", "carol-password-1")
    carol.groups.add(alices_job.team)
    client.force_login(carol)
    assert SECRET_NAME in client.get("/").content.decode()
    assert client.get(f"/jobs/{alices_job.code}/").status_code == 200
    assert client.get(f"/jobs/{alices_job.code}/download/results/").status_code == 200
    assert client.post(f"/jobs/{alices_job.code}/retry/").status_code == 403
    assert client.post(f"/jobs/{alices_job.code}/cancel/").status_code == 403
    assert alices_job.batches.count() == 1


def test_a_key_kept_for_one_team_is_offered_only_to_its_members(alice, bob, simulator_credential):
    from jobs import access

    team = Group.objects.create(name="Research")
    simulator_credential.teams.add(team)
    assert list(access.usable_credentials(alice)) == []
    alice.groups.add(team)
    assert list(access.usable_credentials(alice)) == [simulator_credential]
    assert list(access.usable_credentials(bob)) == []
    bob.is_staff = True
    assert list(access.usable_credentials(bob)) == [simulator_credential]


@pytest.mark.parametrize("name", ["alice", "nobody-by-this-name"])
def test_repeated_failed_logins_lock_the_name_with_the_same_message_either_way(client, alice, name, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post("/login/", {"username": name, "password": "wrong"})
        assert response.status_code == 200
        assert "That user name and password do not match" in response.content.decode()
    locked = client.post("/login/", {"username": name, "password": "wrong"})
    assert locked.status_code == 429
    assert "Too many failed attempts" in locked.content.decode()
    # Locked: even the right password does not get in for a while.
    response = client.post("/login/", {"username": name, "password": "alice-password-1"})
    assert response.status_code == 429 and "Too many failed attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_good_password_before_the_limit_logs_in(client, alice):
    client.post("/login/", {"username": "alice", "password": "wrong"})
    response = client.post("/login/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 302


def test_behind_a_proxy_one_attackers_failures_lock_only_the_attacker(alice, settings):
    from django.test import Client

    from jobs.models import AuditEvent

    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"  # every request arrives from the proxy
    attacker, spoofing = Client(REMOTE_ADDR=proxy), Client(REMOTE_ADDR=proxy)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attacker.post(
            "/login/", {"username": "alice", "password": "wrong"}, HTTP_X_FORWARDED_FOR="203.0.113.9"
        )
    right = {"username": "alice", "password": "alice-password-1"}
    assert attacker.post("/login/", right, HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 429
    # Writing another address into the header does not help: the proxy appends the real one.
    forged = "198.51.100.7, 203.0.113.9"
    assert spoofing.post("/login/", right, HTTP_X_FORWARDED_FOR=forged).status_code == 429

    alice_browser = Client(REMOTE_ADDR=proxy)
    assert alice_browser.post("/login/", right, HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 302
    csv = SimpleUploadedFile("t.csv", b"Review Text\ngood\n", content_type="text/csv")
    alice_browser.post("/upload/", {"file": csv}, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert AuditEvent.objects.get(action="upload").address == "198.51.100.7"


def test_without_a_trusted_proxy_the_forwarded_header_is_ignored(alice, settings):
    from django.test import Client

    browser = Client(REMOTE_ADDR="192.0.2.10")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        browser.post(
            "/login/", {"username": "alice", "password": "wrong"}, HTTP_X_FORWARDED_FOR=f"203.0.113.{_}"
        )
    right = {"username": "alice", "password": "alice-password-1"}
    assert browser.post("/login/", right, HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 429


def test_uploads_and_submissions_are_rate_limited_per_user(client, alice, bob, settings):
    settings.RATE_LIMIT_UPLOADS = "2/h"

    def upload():
        csv = SimpleUploadedFile("t.csv", b"Review Text\ngood\n", content_type="text/csv")
        return client.post("/upload/", {"file": csv})

    client.force_login(alice)
    assert upload().status_code == 302
    assert upload().status_code == 302
    refused = upload()
    assert refused.status_code == 429
    assert "this action is limited per hour" in refused.content.decode()
    client.force_login(bob)
    assert upload().status_code == 302  # one user's limit is not another's
