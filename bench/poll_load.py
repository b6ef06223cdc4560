"""100 people with one running job's page open: its fragment polled every 2 s each, for 30 s.

The server is `make run`'s (bench.stack), the simulator at its default speed so that the job (a
`multi` table of BENCH_POLL_ROWS rows, 5,000 by default) keeps running, its counts rising at each of
the scheduler's polls, for the whole load: most polls find nothing changed (204), some redraw. The
viewers (bench.viewer) start spread over the first 2 s, all with the admin's session, as htmx
polls. Prints poll_load_p95_ms (the time a poll takes as the viewer sees it, over every poll) and
poll_load_errors (polls that failed or answered anything but 200, 204 or 286). About 2 minutes.
"""

import collections
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import data
from bench.e2e import plan_job, status
from bench.measure import report
from bench.stack import Browser, Stack, wait_for
from bench.viewer import POLL_EVERY, Viewer

ROWS = int(os.environ.get("BENCH_POLL_ROWS", "5000"))
VIEWERS = 100
SECONDS = 30.0
SPEED = 20.0  # the simulator's default: a 5,000-request part runs for about a minute


def run(rows: int, work: Path, folder: Path = data.ROOT, viewers: int = VIEWERS, seconds: float = SECONDS):
    """The viewers' poll times (ms), their errors, and whether the job was still running at the end."""
    stack = Stack(work / "data", work / "honcho.log", simulator_speed=SPEED)
    try:
        stack.start()
        stack.wait_until_up()
        browser = Browser(stack.url)
        browser.login()
        code, _ = plan_job(stack, browser, data.multi_csv(rows, folder), patience=300)
        assert browser.post(f"/jobs/{code}/start/").status_code == 302
        wait_for(
            lambda: stack.query("SELECT count(*) FROM jobs_batch WHERE status = 'running'")[0][0],
            timeout=120,
            message="the job's part at the provider",
        )
        until = time.time() + seconds
        cookies = browser.session.cookies.get_dict()
        people = [Viewer(stack.url, code, cookies) for _ in range(viewers)]
        threads = [v.start(until, first_delay=i * POLL_EVERY / viewers) for i, v in enumerate(people)]
        for thread in threads:
            thread.join(timeout=seconds + 60)
        running = status(stack, code) == "running"
    finally:
        stack.stop()
    timings = [t for v in people for t in v.timings_ms]
    errors = [e for v in people for e in v.errors]
    return timings, errors, running


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as work:
        timings, errors, running = run(ROWS, Path(work))
    assert running, "the job ended before the load did: give it more rows (BENCH_POLL_ROWS)"
    report("poll_load_p95_ms", statistics.quantiles(timings, n=20)[18], "ms", digits=1)
    report("poll_load_median_ms", statistics.median(timings), "ms", digits=1)
    report("poll_load_polls", len(timings), "")
    report("poll_load_errors", len(errors), "")
    if errors:  # what they were, for whoever reads the figures
        print("poll_load errors:", dict(collections.Counter(errors)), file=sys.stderr)


if __name__ == "__main__":
    main()
