"""Request bodies sent with `Transfer-Encoding: chunked` and no Content-Length, as the OpenAI Node
SDK sends an `fs.createReadStream` upload: the simulator and the app's own views read them whole,
on the test server and on gunicorn, the production server."""

import io
import os
import re
import socket
import subprocess
import sys
import time

import httpx2 as httpx
import orjson
import pytest
from django.test import RequestFactory

from batchdash.chunked import ChunkedBodyMiddleware
from tests.conftest import ROOT, subprocess_database_url

pytestmark = pytest.mark.django_db(transaction=True)
LINE = orjson.dumps(
    {
        "custom_id": "row-1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
    }
)


def _pieces(data: bytes, size: int = 7):
    """A body in small pieces: httpx sends an iterator as chunks, with no Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _chunked_upload(client: httpx.Client, base: str, content: bytes) -> httpx.Response:
    form = httpx.Request(
        "POST", f"{base}/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", content)}
    )
    body = form.read()
    return client.post(
        f"{base}/files",
        content=_pieces(body, 100),
        headers={"content-type": form.headers["content-type"]},
    )


def _chunked_json(client: httpx.Client, url: str, data: dict) -> httpx.Response:
    return client.post(url, content=_pieces(orjson.dumps(data)), headers={"content-type": "application/json"})


def _check_simulator_reads_chunked_bodies(base: str) -> None:
    headers = {"Authorization": "Bearer sk-simulator"}
    with httpx.Client(headers=headers, timeout=30) as client:
        uploaded = _chunked_upload(client, base, LINE + b"\n")
        assert uploaded.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in uploaded.request.headers
        assert uploaded.status_code == 200, uploaded.text
        assert uploaded.json()["bytes"] == len(LINE) + 1
        assert client.get(f"{base}/files/{uploaded.json()['id']}/content").content == LINE + b"\n"
        batch = _chunked_json(
            client,
            f"{base}/batches",
            {
                "input_file_id": uploaded.json()["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
                "metadata": {"sent": "chunked"},
            },
        )
        assert batch.status_code == 200, batch.text
        assert batch.json()["metadata"] == {"sent": "chunked"}
        # The connection is still usable afterwards: nothing of the body was left on it.
        assert client.get(f"{base}/batches/{batch.json()['id']}").status_code == 200


def test_chunked_uploads_and_json_bodies_reach_the_simulator(simulator_url):
    _check_simulator_reads_chunked_bodies(simulator_url)


def test_a_chunked_form_reaches_the_apps_own_views(live_server, alice):
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        login_page = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
        form = f"csrfmiddlewaretoken={token}&username=alice&password=alice-password-1".encode()
        answer = client.post(
            "/login/",
            content=_pieces(form),
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "referer": f"{live_server.url}/login/",
            },
        )
        assert answer.request.headers.get("transfer-encoding") == "chunked"
        assert answer.status_code == 302, answer.text[:500]


def test_a_chunked_body_the_server_cannot_end_is_refused_and_one_too_big_too(settings):
    def view(request):
        raise AssertionError("the view must not run")

    middleware = ChunkedBodyMiddleware(view)
    request = RequestFactory().post(
        "/simulator/v1/batches", data=b"{}", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked"
    )
    del request.META["CONTENT_LENGTH"]
    refused = middleware(request)
    assert refused.status_code == 411 and orjson.loads(refused.content)["error"]["message"]
    settings.CHUNKED_BODY_MAX_BYTES = 1
    request.META["wsgi.input_terminated"] = True
    request.META["wsgi.input"] = io.BytesIO(b"{}")
    assert middleware(request).status_code == 413


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_gunicorn_hands_chunked_bodies_to_the_simulator(tmp_path):
    """The production server of the Procfile, on this test's database."""
    port = _free_port()
    env = dict(
        os.environ,
        DATABASE_URL=subprocess_database_url(),
        SIMULATOR_API_KEYS="sk-simulator",
        MEDIA_ROOT=str(tmp_path),
    )
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "batchdash.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/simulator/v1/models", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.2)
        _check_simulator_reads_chunked_bodies(f"http://127.0.0.1:{port}/simulator/v1")
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
