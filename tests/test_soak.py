"""Soak: the embedded stack exactly as `make run` starts it stays up under several jobs at once.

The stack is bench.stack's (the Procfile through honcho, free ports, a fresh DATA_DIR, SQLite and
the file broker). Jobs are uploaded and sent over HTTP in waves while the stack runs for at least
SOAK_SECONDS (120 by default). Then: no process died or was restarted, every job finished with
every row accounted for, its results file has every row, and nothing was written into the work tree.
"""

import csv
import io
import os
import re
import time
from pathlib import Path

import pytest

from bench.stack import ROOT, Browser, Stack, main_processes, wait_for

pytestmark = [pytest.mark.soak, pytest.mark.worker]

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "120"))
# Rows per job in each wave; one row in 25 asks the simulator for a failure, so some rows fail.
WAVES = [(40, 700, 250), (120, 1, 400), (60, 300, 90), (500, 25, 200)]
WAVE_EVERY = 20.0


def table(rows: int, name: str) -> bytes:
    lines = ["Review Text,Stars"]
    for i in range(1, rows + 1):
        text = f"Review {i} of {name}" + (" [[simulate:server_error]]" if i % 25 == 0 else "")
        lines.append(f"{text},{i % 5 + 1}")
    return ("\n".join(lines) + "\n").encode()


def send_job(browser: Browser, name: str, rows: int, credential_id: int) -> str:
    upload = browser.post("/upload/", files={"file": (f"{name}.csv", table(rows, name), "text/csv")})
    assert upload.status_code == 302, upload.text[:500]
    created = browser.post(
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
    return re.search(r"/jobs/([0-9a-f-]{36})/", created.headers["Location"]).group(1)


def results(browser: Browser, code: str) -> list[list[str]]:
    response = browser.get(f"/jobs/{code}/download/results/")
    response.raise_for_status()
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


@pytest.fixture
def stack(tmp_path):
    running = Stack(tmp_path / "data", tmp_path / "honcho.log", simulator_speed=50)
    yield running
    running.stop()


def test_the_embedded_stack_runs_several_jobs_at_once_without_a_process_dying(stack):
    before = set(os.listdir(ROOT))
    started_at = time.monotonic()
    stack.start()
    stack.wait_until_up()
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
            jobs[name] = (send_job(browser, name, rows, credential_id), rows)
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
        rows_out = results(browser, code)[1:]
        assert [row[0].split(" [[")[0] for row in rows_out] == [
            f"Review {i} of {name}" for i in range(1, rows + 1)
        ]
        assert {row[3] for row in rows_out} <= {"succeeded", "failed"}
    stack.stop()
    # Everything went under DATA_DIR (staticfiles/ is collectstatic's, as with `make run`).
    assert set(os.listdir(ROOT)) - before - {"staticfiles"} == set()
    assert (Path(stack.env["DATA_DIR"]) / "broker" / "control" / "celery.exchange").exists()


def _send_planned(stack: Stack, browser: Browser, jobs, planned: set[str]) -> None:
    for name, status in stack.query("SELECT name, status FROM jobs_job"):
        if status == "planned" and name not in planned:
            code, _ = jobs[name]
            response = browser.post(f"/jobs/{code}/start/")
            assert response.status_code == 302
            planned.add(name)
