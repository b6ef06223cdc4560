"""Emails reach people where they are: links at the address people use, greetings by name, and a
warning wherever no admin can be told anything (at start-up, on the keys page, on a waiting job)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import WARNING, run_checks
from django.urls import reverse

from jobs import notify
from jobs.models import Job
from tests.conftest import make_dataset

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent


def test_every_process_of_make_run_links_emails_to_the_web_servers_port(tmp_path):
    # honcho gives each process of the Procfile its own PORT (the web's, +100, +200): the worker
    # that sends the emails must still link to the web server.
    procfile = tmp_path / "Procfile"
    code = "import django; django.setup(); from django.conf import settings; print(settings.SITE_URL)"
    show = f"{sys.executable} -c '{code}'"
    procfile.write_text(f"web: {show}; sleep 4\nworker: {show}; sleep 4\n")
    scratch = tmp_path / "show.mk"
    honcho = f"$(BIN)/honcho --procfile {procfile} --app-root {ROOT} start --port $(PORT)"
    scratch.write_text(f"show:\n\t{honcho}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "WEB_PORT", "SITE_URL")}
    env |= {"DJANGO_SETTINGS_MODULE": "batchdash.settings", "DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        ["make", "-s", "-f", "Makefile", "-f", str(scratch), "show", "PORT=8321"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    urls = sorted(line.split("| ", 1)[1].strip() for line in result.stdout.splitlines() if "http://" in line)
    assert urls == ["http://127.0.0.1:8321"] * 2, result.stdout + result.stderr


@pytest.fixture
def waiting_job(alice, simulator_credential):
    return Job.objects.create(
        owner=alice,
        dataset=make_dataset(alice),
        credential=simulator_credential,
        name="Survey",
        model="gpt-4o-mini",
        status=Job.Status.AWAITING_APPROVAL,
    )


def test_emails_greet_people_by_their_first_name_or_else_their_username(
    mailoutbox, alice, django_user_model, waiting_job
):
    alice.first_name = "Alice"
    alice.save()
    django_user_model.objects.create_user("root", "root@example.com", is_staff=True, first_name="Rosa")
    django_user_model.objects.create_user("ops", "ops@example.com", is_staff=True)
    waiting_job.decline_note = "Too many rows."
    notify.declined(waiting_job)
    notify.approval_needed(waiting_job)
    greetings = {mail.to[0]: mail.body.splitlines()[0] for mail in mailoutbox}
    assert greetings == {
        "alice@example.com": "Hello Alice,",
        "root@example.com": "Hello Rosa,",
        "ops@example.com": "Hello ops,",
    }


NOBODY = "No active admin has an email address"


def test_start_up_warns_when_no_active_admin_has_an_email_address(django_user_model):
    django_user_model.objects.create_user("root", "", is_staff=True)
    django_user_model.objects.create_user("gone", "gone@example.com", is_staff=True, is_active=False)
    warned = [m for m in run_checks() if m.id == "batchdash.W006"]  # every start-up, not only --deploy
    assert [m.level for m in warned] == [WARNING] and NOBODY in warned[0].msg
    django_user_model.objects.create_user("ops", "ops@example.com", is_staff=True)
    assert not [m for m in run_checks() if m.id == "batchdash.W006"]


def test_the_keys_page_warns_when_no_admin_can_be_emailed(client, django_user_model):
    root = django_user_model.objects.create_user("root", "", is_staff=True)
    client.force_login(root)
    assert NOBODY in client.get(reverse("jobs:keys")).content.decode()
    root.email = "root@example.com"
    root.save()
    assert NOBODY not in client.get(reverse("jobs:keys")).content.decode()


def test_the_owner_of_a_waiting_job_is_told_when_no_admin_can_be_notified(
    client, alice, django_user_model, waiting_job
):
    root = django_user_model.objects.create_user("root", "", is_staff=True)
    client.force_login(alice)
    told = "no admin has an email address"
    assert told in client.get(reverse("jobs:job_detail", args=[waiting_job.code])).content.decode()
    root.email = "root@example.com"
    root.save()
    assert told not in client.get(reverse("jobs:job_detail", args=[waiting_job.code])).content.decode()
