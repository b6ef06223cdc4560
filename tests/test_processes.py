"""What `make run` starts besides the web server: a worker per queue, and the simulator's own server.

Short control work (the scheduler's ticks, polls, submits, cancels) and long file work (prepare,
finish, results, counting an upload) go to separate queues, each consumed by its own worker, so
that a tick never waits behind a prepare; the simulator answers from its own process, at the
address the built-in credential holds.
"""

import io
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from django.core.management import call_command

from batchdash.celery import app
from jobs import tasks
from jobs.models import ProviderCredential
from tests.conftest import subprocess_database_url

ROOT = Path(__file__).resolve().parent.parent

CONTROL = [
    tasks.schedule_batches,
    tasks.poll_batch,
    tasks.submit_batch,
    tasks.cancel_job,
    tasks.resume_stalled_work,
    tasks.resume_credential,
    tasks.delete_remote_files,
]
FILES = [
    tasks.prepare_job,
    tasks.count_dataset_rows,
    tasks.finish_batch,
    tasks.build_results,
    tasks.write_other_formats,
    tasks.clean_up_files,
    tasks.answer_now,
]


def _queue(task) -> str:
    queue = app.amqp.router.route({}, task.name)["queue"]
    assert queue.routing_key == queue.name  # bound by its own key, so that it gets only its messages
    return queue.name


def test_control_tasks_go_to_the_control_queue_and_file_tasks_to_the_files_queue():
    assert {t.name: _queue(t) for t in CONTROL} == {t.name: "control" for t in CONTROL}
    assert {t.name: _queue(t) for t in FILES} == {t.name: "files" for t in FILES}
    # Every task of the app is in one of the two lists: a new one is placed on purpose.
    ours = {name for name in app.tasks if name.startswith("jobs.")}
    assert ours == {t.name for t in CONTROL + FILES}


def test_the_schedulers_ticks_go_to_the_control_queue():
    schedule = app.conf.beat_schedule
    for entry in ("schedule-batches", "resume-stalled-work"):
        assert _queue(app.tasks[schedule[entry]["task"]]) == "control", entry


def _waiting(queue: str) -> int:
    with app.connection_for_write() as connection:
        return connection.default_channel.queue_declare(queue, passive=True).message_count


def test_a_task_sent_through_the_broker_lands_in_its_queue():
    app.control.purge()
    tasks.schedule_batches.delay()
    tasks.prepare_job.delay(0)
    tasks.build_results.delay(0)
    try:
        assert (_waiting("control"), _waiting("files")) == (1, 2)
    finally:
        app.control.purge()


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


def test_make_run_starts_a_worker_for_each_queue_and_the_simulator_on_its_own_port():
    procfile = _procfile()
    assert set(procfile) == {"web", "simulator", "control", "files", "scheduler"}
    for name, command in procfile.items():
        assert command.startswith(f".venv/bin/python -m batchdash.supervise {name} -- "), name
    assert re.search(r"worker .*-Q control\b", procfile["control"])
    assert re.search(r"worker .*-Q files\b", procfile["files"])
    assert "batchdash.simulator_wsgi" in procfile["simulator"]
    assert "${SIMULATOR_PORT}" in procfile["simulator"]
    assert "batchdash.wsgi" in procfile["web"] and "${PORT}" in procfile["web"]


def _settings_of(**env) -> str:
    script = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'batchdash.settings'; django.setup(); "
        "from django.conf import settings; print(settings.SIMULATOR_BASE_URL)"
    )
    # `make test` exports the web server's ports (as `make run` does): the child must not inherit them.
    unset = ("PORT", "WEB_PORT", "SIMULATOR_PORT", "SIMULATOR_BASE_URL", "SITE_URL")
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    result = subprocess.run(
        [sys.executable, "-c", script], env=environment | env, capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_simulator_is_reached_on_the_port_after_the_web_servers_by_default():
    assert _settings_of(PORT="9000") == "http://127.0.0.1:9001/simulator/v1"
    assert _settings_of(PORT="9000", SIMULATOR_PORT="9500") == "http://127.0.0.1:9500/simulator/v1"
    assert _settings_of(SIMULATOR_BASE_URL="http://sim.internal/v1") == "http://sim.internal/v1"


@pytest.mark.django_db
def test_the_built_in_simulator_credential_points_at_the_simulators_own_server(settings):
    settings.SIMULATOR_BASE_URL = "http://127.0.0.1:8001/simulator/v1"
    call_command("ensure_setup", stdout=io.StringIO())
    credential = ProviderCredential.objects.get(kind=ProviderCredential.Kind.SIMULATOR)
    assert credential.base_url == "http://127.0.0.1:8001/simulator/v1"
    settings.SIMULATOR_BASE_URL = "http://127.0.0.1:9001/simulator/v1"  # PORT changed
    call_command("ensure_setup", stdout=io.StringIO())
    credential.refresh_from_db()
    assert credential.base_url == "http://127.0.0.1:9001/simulator/v1"


@pytest.mark.django_db(transaction=True)
def test_the_simulators_own_server_answers_the_simulators_urls_and_nothing_of_the_app(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, DATABASE_URL=subprocess_database_url(), SIMULATOR_API_KEYS="sk-own")
    command = ["gunicorn", "batchdash.simulator_wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    with (tmp_path / "simulator.log").open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", *command], cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                models = httpx.get(f"{url}/simulator/v1/models", headers={"Authorization": "Bearer sk-own"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (tmp_path / "simulator.log").read_text()
                time.sleep(0.2)
        assert models.status_code == 200 and models.json()["data"]
        for page in ("/", "/login/", "/health/", "/admin/", "/metrics"):
            response = httpx.get(url + page)
            assert (response.status_code, response.text) == (
                404,
                "Only the simulator is served here, under /simulator/v1/.",
            ), page
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.mark.django_db
def test_the_first_admin_gets_the_email_address_given_or_is_told_to_add_one(monkeypatch):
    from django.contrib.auth.models import User

    out = io.StringIO()
    call_command("ensure_setup", stdout=out)
    assert User.objects.get(username="admin").email == ""
    assert "Add your email address under People" in out.getvalue()

    User.objects.all().delete()
    monkeypatch.setenv("BATCHDASH_ADMIN_EMAIL", "ops@example.com")
    out = io.StringIO()
    call_command("ensure_setup", stdout=out)
    assert User.objects.get(username="admin").email == "ops@example.com"
    assert "Add your email address" not in out.getvalue()
