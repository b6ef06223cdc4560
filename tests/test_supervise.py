"""The supervisor behind each Procfile line: it restarts a command that dies and stops it when asked."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.stack import wait_for

ROOT = Path(__file__).resolve().parent.parent

# A command that writes its pid, dies the first time it runs, and then stays up.
FLAKY = """
import os, sys, time
log = sys.argv[1]
runs = open(log).read().split() if os.path.exists(log) else []
open(log, "a").write(f"{os.getpid()}\\n")
if not runs:
    sys.exit(3)
time.sleep(600)
"""


def supervise(tmp_path: Path, script: str) -> tuple[subprocess.Popen, Path, Path]:
    pids = tmp_path / "pids"
    output = tmp_path / "output"
    with output.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "batchdash.supervise", "flaky", "--"]
            + [sys.executable, "-c", script, str(pids)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, pids, output


def started(pids: Path) -> list[int]:
    return [int(p) for p in pids.read_text().split()] if pids.exists() else []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too, only not yet reaped by its parent.
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] != "Z"


def test_a_command_that_dies_is_restarted_with_a_line_saying_so(tmp_path):
    process, pids, output = supervise(tmp_path, FLAKY)
    try:
        wait_for(lambda: len(started(pids)) == 2, timeout=20, message="the command to run twice")
        text = output.read_text()
        assert "[supervise flaky] flaky exited with code 3" in text
        assert "restarting it in 1 s (restart 1)" in text
        time.sleep(1.5)
        assert process.poll() is None
        assert len(started(pids)) == 2  # no restart while it stays up
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_sigterm_and_sigint_are_passed_on_and_the_supervisor_exits(tmp_path):
    for signum in (signal.SIGTERM, signal.SIGINT):
        folder = tmp_path / signum.name
        folder.mkdir()
        (folder / "pids").write_text("0\n")  # so the command stays up from its first run
        process, pids, output = supervise(folder, FLAKY)
        wait_for(lambda pids=pids: len(started(pids)) == 2, timeout=20, message="the command to start")
        child = started(pids)[-1]
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
        wait_for(lambda child=child: not alive(child), timeout=10, message="the command to stop")
        assert "restarting" not in output.read_text()


def test_the_command_does_not_outlive_a_killed_supervisor(tmp_path):
    (tmp_path / "pids").write_text("0\n")
    process, pids, _ = supervise(tmp_path, FLAKY)
    wait_for(lambda: len(started(pids)) == 2, timeout=20, message="the command to start")
    child = started(pids)[-1]
    process.kill()
    process.wait()
    wait_for(lambda: not alive(child), timeout=10, message="the command to die with its supervisor")
