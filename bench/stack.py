"""The embedded stack exactly as `make run` starts it, for the end-to-end benchmarks and the soak test.

The Procfile's own commands (web, simulator, a worker per queue, scheduler, each under
batchdash.supervise) through honcho, on free ports, with a fresh DATA_DIR: SQLite and the file
broker, whatever the environment says (CI points DATABASE_URL and CELERY_BROKER_URL at PostgreSQL
and Redis; these runs are about the embedded default). Beside it, an admin's session over HTTP
that posts the forms as a browser would.
"""

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "stack-admin-password-1"
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


def wait_for(predicate, timeout: float = 90, interval: float = 0.25, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout}s waiting for {message}")


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
    """`make run` in `data_dir`, on free ports, its output in `log`."""

    def __init__(self, data_dir: Path, log: Path, simulator_speed: float):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        self.env |= {
            "DATA_DIR": str(data_dir),
            "PORT": str(self.port),
            "SIMULATOR_PORT": str(free_port()),  # as `make run` exports it
            "SIMULATOR_SPEED": repr(simulator_speed),
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

    def wait_until_up(self) -> None:
        wait_for(self.healthy, timeout=90, message="the web server")
        wait_for(
            lambda: set(main_processes(self.honcho)) == PROCESSES,
            timeout=60,
            message=", ".join(sorted(PROCESSES)),
        )

    def healthy(self) -> bool:
        """The web server answers its health check; slow to answer is still starting (five processes
        start at once on two cores)."""
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", self.port)) != 0:
                return False
        try:
            return requests.get(self.url + "/health/", timeout=10).ok
        except requests.RequestException:
            return False

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
            with db:
                return db.execute(sql, params).fetchall()
        finally:
            db.close()


class Browser:
    """An admin's session over HTTP, as a browser would post the forms."""

    def __init__(self, url: str):
        self.url = url
        self.session = requests.Session()

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.url + path, timeout=kwargs.pop("timeout", 60), **kwargs)

    def post(self, path: str, data=None, files=None) -> requests.Response:
        token = self.session.cookies.get("csrftoken")
        return self.session.post(
            self.url + path,
            data={**(data or {}), "csrfmiddlewaretoken": token},
            files=files,
            headers={"Referer": self.url + path},
            allow_redirects=False,
            timeout=600,
        )

    def login(self) -> None:
        self.get("/login/", timeout=30).raise_for_status()
        response = self.post("/login/", {"username": "admin", "password": PASSWORD})
        assert response.status_code == 302, response.text[:500]
