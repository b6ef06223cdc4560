"""Soak: the embedded stack exactly as `make run` starts it stays up under several jobs at once.

The Procfile's own commands (web, simulator, a worker per queue, scheduler, each under
batchdash.supervise) through honcho, on free ports, with a fresh DATA_DIR: SQLite and the file
broker, whatever the environment says
(CI points DATABASE_URL and CELERY_BROKER_URL at PostgreSQL and Redis; this test is about the
embedded default). Jobs are uploaded and sent over HTTP in waves while the stack runs for at least
SOAK_SECONDS (120 by default). Then: no process died or was restarted, every job finished with
every row accounted for, its results file has every row, and nothing was written into the work tree.
"""

import contextlib
import csv
import io
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import wait_for

pytestmark = [pytest.mark.soak, pytest.mark.worker]

ROOT = Path(__file__).resolve().parent.parent
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "120"))
# Rows per job in each wave; one row in 25 asks the simulator for a failure, so some rows fail.
WAVES = [(40, 700, 250), (120, 1, 400), (60, 300, 90), (500, 25, 200)]
WAVE_EVERY = 20.0
PASSWORD = "soak-admin-password-1"
PROCESSES = {"web", "simulator", "control", "files", "scheduler"}
# Variables that would take the stack off the embedded default, or point it elsewhere.
NOT_INHERITED = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CACHE_URL",
    "MEDIA_ROOT",
    "FILE_STORAGE",
    "SIMULATOR_BASE_URL",
    "SIMULATOR_PORT",
    "SITE_URL",
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEYS",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def table(rows: int, name: str) -> bytes:
    lines = ["Review Text,Stars"]
    for i in range(1, rows + 1):
        text = f"Review {i} of {name}" + (" [[simulate:server_error]]" if i % 25 == 0 else "")
        lines.append(f"{text},{i % 5 + 1}")
    return ("\n".join(lines) + "\n").encode()


def descendants(pid: int) -> dict[int, tuple[int, str]]:
    """Every live process below `pid`: its parent and its command line."""
    found: dict[int, tuple[int, str]] = {}
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            try:
                found[child] = (
                    parent,
                    Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(),
                )
            except OSError:
                continue
            pending.append(child)
    return found


def main_processes(honcho: subprocess.Popen) -> dict[str, int]:
    """The pid of each Procfile command itself: the process its supervisor started."""
    tree = descendants(honcho.pid)
    mains = {}
    for pid, (parent, _cmd) in tree.items():
        if parent in tree and "batchdash.supervise" in tree[parent][1]:
            name = tree[parent][1].split("batchdash.supervise", 1)[1].split()[0]
            mains[name] = pid
    return mains


class Stack:
    def __init__(self, data_dir: Path, port: int, simulator_port: int, log: Path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        self.env |= {
            "DATA_DIR": str(data_dir),
            "PORT": str(port),
            "SIMULATOR_PORT": str(simulator_port),  # as `make run` exports it
            "SIMULATOR_SPEED": "50",
            "BATCHDASH_ADMIN_PASSWORD": PASSWORD,
            "PYTHONUNBUFFERED": "1",
        }
        self.honcho: subprocess.Popen | None = None
        self.database = data_dir / "batchdash.sqlite3"

    def manage(self, *args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True, timeout=300)

    def start(self) -> None:
        # What `make run` does before honcho (the venv is already installed).
        self.manage("migrate", "--noinput", "--verbosity", "0")
        self.manage("collectstatic", "--noinput", "--verbosity", "0")
        self.manage("ensure_setup")
        with self.log.open("w") as out:
            self.honcho = subprocess.Popen(
                [sys.executable, "-m", "honcho", "--procfile", "Procfile", "start", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.honcho is None:
            return
        leftovers = descendants(self.honcho.pid)
        if self.honcho.poll() is None:
            self.honcho.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                self.honcho.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.honcho.pid, signal.SIGKILL)
                self.honcho.wait()
        for pid in leftovers:  # anything that outlived honcho, so that nothing keeps running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def query(self, sql: str, *params):
        db = sqlite3.connect(self.database, timeout=30)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()


class Browser:
    """An admin's session over HTTP, as a browser would post the forms."""

    def __init__(self, url: str):
        self.url = url
        self.session = requests.Session()

    def post(self, path: str, data=None, files=None) -> requests.Response:
        token = self.session.cookies.get("csrftoken")
        return self.session.post(
            self.url + path,
            data={**(data or {}), "csrfmiddlewaretoken": token},
            files=files,
            headers={"Referer": self.url + path},
            allow_redirects=False,
            timeout=60,
        )

    def login(self) -> None:
        self.session.get(self.url + "/login/", timeout=30).raise_for_status()
        response = self.post("/login/", {"username": "admin", "password": PASSWORD})
        assert response.status_code == 302, response.text[:500]

    def send_job(self, name: str, rows: int, credential_id: int) -> str:
        upload = self.post("/upload/", files={"file": (f"{name}.csv", table(rows, name), "text/csv")})
        assert upload.status_code == 302, upload.text[:500]
        created = self.post(
            upload.headers["Location"],
            {
                "name": name,
                "credential": credential_id,
                "endpoint": "/v1/chat/completions",
                "model": "gpt-4o-mini",
                "user_prompt": "Is this review positive? {{ Review Text }}",
            },
        )
        assert created.status_code == 302, created.text[:2000]
        code = re.search(r"/jobs/([0-9a-f-]{36})/", created.headers["Location"]).group(1)
        return code

    def results(self, code: str) -> list[list[str]]:
        response = self.session.get(f"{self.url}/jobs/{code}/download/results/", timeout=60)
        response.raise_for_status()
        return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


@pytest.fixture
def stack(tmp_path):
    running = Stack(tmp_path / "data", free_port(), free_port(), tmp_path / "honcho.log")
    yield running
    running.stop()


def test_the_embedded_stack_runs_several_jobs_at_once_without_a_process_dying(stack):
    before = set(os.listdir(ROOT))
    started_at = time.monotonic()
    stack.start()
    wait_for(lambda: _healthy(stack), timeout=90, message="the web server")
    wait_for(
        lambda: set(main_processes(stack.honcho)) == PROCESSES,
        timeout=60,
        message=", ".join(sorted(PROCESSES)),
    )
    first = main_processes(stack.honcho)
    [(credential_id, base_url)] = stack.query("SELECT id, base_url FROM jobs_providercredential")
    assert base_url == f"http://127.0.0.1:{stack.env['SIMULATOR_PORT']}/simulator/v1"
    browser = Browser(stack.url)
    browser.login()

    jobs: dict[str, tuple[str, int]] = {}  # name → (code, rows)
    planned: set[str] = set()
    for wave, sizes in enumerate(WAVES):
        if wave:
            time.sleep(max(0.0, started_at + wave * WAVE_EVERY - time.monotonic()))
        for n, rows in enumerate(sizes):
            name = f"soak-{wave}-{n}"
            jobs[name] = (browser.send_job(name, rows, credential_id), rows)
        # Send every job whose plan is ready (the rest go in the next round).
        _send_planned(stack, browser, jobs, planned)

    def all_finished() -> bool:
        _send_planned(stack, browser, jobs, planned)
        statuses = stack.query("SELECT status FROM jobs_job")
        return len(statuses) == len(jobs) and all(
            s in ("completed", "failed", "cancelled") for (s,) in statuses
        )

    wait_for(all_finished, timeout=max(120, SOAK_SECONDS), interval=1, message="every job to finish")
    time.sleep(max(0.0, started_at + SOAK_SECONDS - time.monotonic()))  # the stack stays up this long

    output = stack.output()
    assert stack.honcho.poll() is None, output[-3000:]
    assert "restarting it" not in output, output[-3000:]
    assert "Unrecoverable error" not in output
    assert main_processes(stack.honcho) == first  # the same processes, none restarted
    # The provider's work ran in the simulator's own server, none of it in the app's.
    web_log = [line for line in output.splitlines() if re.match(r"\S+ web\.1 +\|", line)]
    assert web_log and not [line for line in web_log if "/simulator/" in line]
    for name, (code, rows) in jobs.items():
        [(status, total, succeeded, failed)] = stack.query(
            "SELECT status, rows_total, rows_succeeded, rows_failed FROM jobs_job WHERE name = ?", name
        )
        assert (status, total) == ("completed", rows), name
        assert succeeded + failed == total, name
        assert failed == rows // 25, name  # exactly the rows that asked to fail
        results = browser.results(code)[1:]
        assert [row[0].split(" [[")[0] for row in results] == [
            f"Review {i} of {name}" for i in range(1, rows + 1)
        ]
        assert {row[3] for row in results} <= {"succeeded", "failed"}
    stack.stop()
    # Everything went under DATA_DIR (staticfiles/ is collectstatic's, as with `make run`).
    assert set(os.listdir(ROOT)) - before - {"staticfiles"} == set()
    assert (Path(stack.env["DATA_DIR"]) / "broker" / "control" / "celery.exchange").exists()


def _healthy(stack: Stack) -> bool:
    """The web server answers its health check; slow to answer is still starting (five processes
    start at once on two cores)."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", stack.port)) != 0:
            return False
    try:
        return requests.get(stack.url + "/health/", timeout=10).ok
    except requests.RequestException:
        return False


def _send_planned(stack: Stack, browser: Browser, jobs, planned: set[str]) -> None:
    for name, status in stack.query("SELECT name, status FROM jobs_job"):
        if status == "planned" and name not in planned:
            code, _ = jobs[name]
            response = browser.post(f"/jobs/{code}/start/")
            assert response.status_code == 302
            planned.add(name)
