"""Shared fixtures: people, the simulator served over real HTTP, providers, and a real worker."""

import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from wsgiref import simple_server

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.servers.basehttp import ServerHandler
from django.db import connection, connections
from django.test.testcases import QuietWSGIRequestHandler

from batchdash.chunked import is_chunked
from jobs import datasets
from jobs.models import ProviderCredential

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def plain_static_files(settings):
    """The test server serves static files from the source folders, not the hashed manifest."""
    settings.STORAGES = settings.STORAGES | {
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    }


@pytest.fixture(autouse=True)
def closed_provider_clients():
    """Each test's provider clients are closed after it: left open (a new credential each test), their
    kept-alive connections held as many live-server threads and PostgreSQL connections, past 100."""
    from jobs.providers.client import close_clients

    yield
    close_clients()


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Rate-limit counters live in the cache; each test starts with none."""
    from django.core.cache import cache

    cache.clear()


def _dechunk(stream) -> io.BytesIO:
    """The body of a `Transfer-Encoding: chunked` request, decoded; reads the trailers too."""
    body = io.BytesIO()
    while True:
        size = int(stream.readline(1024).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            break
        body.write(stream.read(size))
        stream.readline(1024)
    body.seek(0)
    return body


class _DecodedBodyHandler(ServerHandler):
    """Django's test-server handler for a body already read in full: no cut at CONTENT_LENGTH."""

    def __init__(self, stdin, stdout, stderr, environ, **kwargs):
        simple_server.ServerHandler.__init__(self, stdin, stdout, stderr, environ, **kwargs)


class GunicornLikeRequestHandler(QuietWSGIRequestHandler):
    """The test server's handler, but chunked bodies reach Django as gunicorn hands them over.

    Django's own test server reads a body only as far as its Content-Length, so a chunked body
    would be empty and its bytes left on the connection. Gunicorn, the production server,
    decodes the chunks and sets `wsgi.input_terminated` without a CONTENT_LENGTH: this does the
    same, so that the app's ChunkedBodyMiddleware is what the tests rely on.
    """

    def handle_one_request(self):
        # Django's WSGIRequestHandler.handle_one_request, choosing the handler by the body's framing.
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        environ = self.get_environ()
        if is_chunked(environ):
            environ["wsgi.input_terminated"] = True
            handler = _DecodedBodyHandler(_dechunk(self.rfile), self.wfile, self.get_stderr(), environ)
        else:
            handler = ServerHandler(self.rfile, self.wfile, self.get_stderr(), environ)
        handler.request_handler = self
        handler.run(self.server.get_app())


@pytest.fixture(scope="session")
def live_server(request):
    """pytest-django's live server, with GunicornLikeRequestHandler."""
    from pytest_django.live_server_helper import LiveServer

    server = LiveServer(request.config.getvalue("liveserver") or "localhost", start=False)
    thread = server.thread
    thread._create_server = lambda connections_override=None: thread.server_class(
        (thread.host, thread.port),
        GunicornLikeRequestHandler,
        allow_reuse_address=False,
        connections_override=connections_override,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user("alice", "alice@example.com", "alice-password-1")


@pytest.fixture
def bob(db) -> User:
    return User.objects.create_user("bob", "bob@example.com", "bob-password-1")


@pytest.fixture
def simulator_url(live_server, settings) -> str:
    """Base URL of the simulator, served by the live test server over real HTTP."""
    settings.SIMULATOR_API_KEYS = ["sk-simulator"]
    return f"{live_server.url}/simulator/v1"


@pytest.fixture
def sdk(simulator_url):
    """The real openai SDK pointed at the simulator (tests only; the app uses jobs.providers.client)."""
    import openai

    return openai.OpenAI(base_url=simulator_url, api_key="sk-simulator", max_retries=0)


@pytest.fixture
def moving_clock(monkeypatch):
    """The simulator's clock, moved by hand by the test, in real seconds."""
    from simulator import clock

    now = {"t": 1_800_000_000.0}
    monkeypatch.setattr(clock, "now", lambda: now["t"])
    return now


@pytest.fixture
def speed(settings):
    """Simulated time at the wall clock's pace, so that moving_clock's seconds are the batch's."""
    settings.SIMULATOR_SPEED = 1.0
    return settings


@pytest.fixture
def simulator_credential(simulator_url) -> ProviderCredential:
    credential = ProviderCredential(
        name="Simulator",
        kind=ProviderCredential.Kind.SIMULATOR,
        base_url=simulator_url,
        is_default=True,
        poll_min_seconds=0.2,
        poll_max_seconds=1,
    )
    credential.set_api_key("sk-simulator")
    credential.save()
    return credential


REVIEWS_CSV = (
    "Review Text,Stars,Reviewer\n"
    '"Great shoes, very comfy",5,Zoë\n'
    "Fell apart after a week,1,Bob\n"
    '"Okay, nothing special",3,Chloé\n'
    "Would buy again!,5,Ana\n"
    "Too small,2,Tom\n"
).encode()


# The first column of REVIEWS_CSV, in file order.
REVIEW_TEXTS = [
    "Great shoes, very comfy",
    "Fell apart after a week",
    "Okay, nothing special",
    "Would buy again!",
    "Too small",
]


def make_dataset(owner, content: bytes = REVIEWS_CSV, name: str = "reviews.csv"):
    return datasets.create_from_upload(owner, SimpleUploadedFile(name, content, content_type="text/csv"))


def subprocess_database_url() -> str:
    """The test database as a DATABASE_URL, for a subprocess that must see what the test writes."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class Worker:
    """A real Celery worker with its embedded scheduler, in a subprocess, on this test's database,
    consuming both queues (control and files) that `make run` gives a worker each.

    It reads the same settings as the test process, but with the test database's name, so
    what the test writes the worker sees, and the other way round. `kill()` is a SIGKILL
    of the worker and its pool, as when a machine dies; `start()` brings up a new one.
    """

    def __init__(self, log_path: Path, **env):
        self.env = dict(
            os.environ,
            DATABASE_URL=subprocess_database_url(),
            SCHEDULER_TICK_SECONDS="0.5",
            CELERY_BROKER_URL=django_settings.CELERY_BROKER_URL,
            **env,
        )
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "batchdash",
                    "worker",
                    "-B",
                    "-Q",
                    "control,files",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    "2",
                    "--schedule",
                    str(self.log_path.with_name("beat-schedule")),
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        # The worker's pool processes hold database connections too: stop the whole group,
        # so that the test database can be dropped.
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture
def worker_process(live_server, tmp_path):
    """A Worker not started yet, stopped at the end of the test."""
    from batchdash.celery import app

    app.control.purge()
    process = Worker(tmp_path / "worker.log", STALLED_AFTER_SECONDS="3")
    yield process
    process.stop()


@pytest.fixture
def worker(worker_process):
    worker_process.start()
    return worker_process


ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def page(live_server, monkeypatch):
    """A page in Debian's headless chromium, driven by Playwright (its browser download fails here)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        context.close()
        browser.close()
        # ORM calls made while Playwright's loop runs get their own connection; close it
        # so that the test database can be dropped at the end.
        connections.close_all()


def screenshot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
