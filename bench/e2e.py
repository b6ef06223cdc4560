"""A million-row job end to end on the embedded stack, driven through the app's pages.

The stack is `make run`'s (bench.stack: the Procfile's web server, simulator, workers and scheduler,
SQLite and the file broker, a fresh DATA_DIR) with the simulator at full speed: its batches end a moment
after they are created, so what is timed is ours (and the simulator's file handling, which stands
in for the provider's). The provider's queue is sized for the whole job, in the credential and in
the simulator, as at a high usage tier, so that every part is sent at once.

An admin logs in, uploads the `multi` table (bench.data), maps it into a prompt (a system prompt and
three columns), waits for the plan and presses Send, as a browser posts the forms; a viewer keeps
the job page open, its fragment polled as htmx polls it. Times come from the database the app
writes (the server's clock):
- plan_1m_s: the mapping form sent → the plan ready (the job `planned`: read, rendered, counted,
  its request files compressed into storage);
- submit_1m_s: Send pressed (`Job.started_at`) → the last part created at the provider
  (`Batch.submitted_at`);
- finish_1m_s: the provider's answer that the last part had ended, its files written (the poll
  that saw it: `Batch.remote_status_since`) → the results CSV downloadable (`Job.finished_at`);
- results_1m_s: the same start → every download ready: the poll that first showed the Excel link
  on the job page (up to one 2 s poll late; JSON Lines is written before it);
beside them finish_1m_page_s, the same start → the poll that first showed the CSV link on the page
(up to one 2 s poll late), and prepare_reference_1m_s, the reference prepare (bench.prepare's
tutorial way) on the same rows, measured first in this process. The job's files are then
downloaded through the pages and their rows counted.

BENCH_E2E_ROWS sets the rows (1,000,000 by default: about 25 minutes on two busy cores).
"""

import csv
import io
import os
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import data
from bench.measure import report, stopwatch
from bench.prepare import MODEL, MULTI_PROMPT, MULTI_SYSTEM, reference
from bench.stack import Browser, Stack, wait_for
from bench.viewer import Viewer

ROWS = int(os.environ.get("BENCH_E2E_ROWS", "1000000"))
# Simulated seconds per real second: a part of 50,000 requests ends some 1.3 s after it was created,
# before the first poll, yet not inside the create call (where the simulator would write its answers
# while we wait, which the provider never does).
FULL_SPEED = 10_000
# Prompt tokens the provider's queue holds: a whole million-row job and more.
QUEUE_TOKENS = 10**12
TERMINAL = ("completed", "failed", "cancelled")


def run(rows: int, work: Path, folder: Path = data.ROOT) -> dict[str, float]:
    """Every figure of one run on `rows` rows (the table made in `folder`); the stack lives in `work`."""
    table = data.multi_csv(rows, folder)
    with tempfile.TemporaryDirectory() as tmp, stopwatch() as timing:
        reference(table, Path(tmp), MULTI_SYSTEM, MULTI_PROMPT)
    figures = {"prepare_reference_s": timing["seconds"]}
    stack = Stack(work / "data", work / "honcho.log", simulator_speed=FULL_SPEED)
    stack.env["SIMULATOR_ENQUEUED_TOKEN_LIMIT"] = str(QUEUE_TOKENS)
    try:
        stack.start()
        stack.wait_until_up()
        stack.query("UPDATE jobs_providercredential SET enqueued_token_limit = ?", QUEUE_TOKENS)
        figures |= _drive(stack, table, rows)
    except BaseException:
        sys.stderr.write(stack.output()[-5000:])
        raise
    finally:
        stack.stop()
    return figures


def plan_job(stack: Stack, browser: Browser, table: Path, patience: float) -> tuple[str, float]:
    """Upload `table`, map it into the multilingual prompt and wait for the plan; the job's code and
    the seconds from the mapping sent to the plan (the job planned, looked for every 0.1 s)."""
    [(credential_id,)] = stack.query("SELECT id FROM jobs_providercredential")
    with table.open("rb") as upload:
        uploaded = browser.post("/upload/", files={"file": (table.name, upload, "text/csv")})
    assert uploaded.status_code == 302, uploaded.text[:500]
    sent = time.monotonic()
    mapped = browser.post(
        uploaded.headers["Location"],
        {
            "name": table.stem,
            "credential": credential_id,
            "endpoint": "/v1/chat/completions",
            "model": MODEL,
            "system_prompt": MULTI_SYSTEM,
            "user_prompt": MULTI_PROMPT,
        },
    )
    assert mapped.status_code == 302, mapped.text[:2000]
    code = re.search(r"/jobs/([0-9a-f-]{36})/", mapped.headers["Location"]).group(1)
    wait_for(lambda: status(stack, code) != "preparing", timeout=patience, interval=0.1, message="the plan")
    planned = time.monotonic() - sent
    assert status(stack, code) == "planned", stack.query("SELECT status, error FROM jobs_job")
    return code, planned


def _drive(stack: Stack, table: Path, rows: int) -> dict[str, float]:
    browser = Browser(stack.url)
    browser.login()
    patience = 300 + rows / 1000  # generous: two cores shared with other work
    code, planned = plan_job(stack, browser, table, patience)
    viewer = Viewer(stack.url, code, browser.session.cookies.get_dict())
    sent = browser.post(f"/jobs/{code}/start/")
    assert sent.status_code == 302, sent.text[:500]
    watching = viewer.start(until=time.time() + 3 * patience)
    wait_for(lambda: status(stack, code) in TERMINAL, timeout=patience, interval=1, message="the results")
    watching.join(timeout=patience)
    assert not viewer.errors, viewer.errors

    [(final, started, finished, total)] = stack.query(
        "SELECT status, started_at, finished_at, rows_total FROM jobs_job WHERE code = ?",
        code.replace("-", ""),
    )
    assert (final, total) == ("completed", rows)
    # A part created after its end (a small one) was never seen running: it ended when it was sent.
    [(submitted, ended)] = stack.query(
        "SELECT max(submitted_at), max(coalesce(remote_status_since, submitted_at)) FROM jobs_batch"
    )
    ended = _when(ended)
    _check_downloads(browser, code, rows)
    return {
        "plan_s": planned,
        "submit_s": (_when(submitted) - _when(started)).total_seconds(),
        "finish_s": (_when(finished) - ended).total_seconds(),
        "finish_page_s": viewer.csv_link_at - ended.timestamp(),
        "results_s": viewer.every_link_at - ended.timestamp(),
    }


def status(stack: Stack, code: str) -> str:
    return stack.query("SELECT status FROM jobs_job WHERE code = ?", code.replace("-", ""))[0][0]


def _when(stored: str) -> datetime:
    """A time as Django keeps it in SQLite (UTC, without its zone)."""
    return datetime.fromisoformat(stored).replace(tzinfo=UTC)


def _check_downloads(browser: Browser, code: str, rows: int) -> None:
    """Every file downloads through the pages; the CSV and the JSON Lines have a line per row."""
    with browser.get(f"/jobs/{code}/download/results/", stream=True) as response:
        response.raise_for_status()
        response.raw.auto_close = False  # io.TextIOWrapper reads on to the end, where urllib3 would close
        lines = io.TextIOWrapper(response.raw, encoding="utf-8-sig", newline="")
        assert sum(1 for _ in csv.reader(lines)) == rows + 1
    with browser.get(f"/jobs/{code}/download/jsonl/", stream=True) as response:
        response.raise_for_status()
        assert sum(1 for _ in response.iter_lines()) == rows
    with browser.get(f"/jobs/{code}/download/xlsx/", stream=True) as response:
        response.raise_for_status()
        assert next(response.iter_content(4)) == b"PK\x03\x04"  # a zip: the workbook


def main() -> None:
    label = "1m" if ROWS == 1_000_000 else f"{ROWS}"
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as work:
        figures = run(ROWS, Path(work))
    for name in ("plan", "submit", "finish", "finish_page", "results", "prepare_reference"):
        report(f"{name}_{label}_s", figures[f"{name}_s"], "s", digits=1)


if __name__ == "__main__":
    main()
