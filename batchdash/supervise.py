"""Keep one process of `make run` alive: restart it when it dies, stop it when asked.

honcho (the Procfile runner behind `make run`) stops every process as soon as one of them exits,
so one crash of the worker used to take the web server and the scheduler down with it. Each
Procfile line therefore runs its command under this supervisor:

    python -m batchdash.supervise worker -- celery -A batchdash worker ...

- SIGTERM or SIGINT (honcho stopping, Ctrl-C) is passed on to the command, and the supervisor
  exits once the command has;
- any other exit of the command is unexpected: it says so in the terminal and starts it again,
  after 1 s, doubling up to 30 s while it keeps dying quickly (back to 1 s once it has run a
  minute), so that a command that cannot start does not spin.

The command runs in its own process group, so that a signal reaches it once, from here (honcho
signals the whole group of each Procfile line, and a second SIGINT would make Celery stop at once
instead of finishing its tasks), and on Linux it is killed if the supervisor itself is killed, so
that it is never left running on its own.
"""

import contextlib
import ctypes
import os
import signal
import subprocess  # nosec B404
import sys
import time

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
# A command that ran this long before dying is restarted after FIRST_DELAY again.
HEALTHY_AFTER = 60.0
PR_SET_PDEATHSIG = 1
# subprocess (B404, B603 above and below) runs the Procfile's own commands, nothing from users.


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Not on Linux (no prctl): the command still gets every stop signal through the supervisor.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def say(name: str, message: str) -> None:
    print(f"[supervise {name}] {message}", flush=True)


class Supervisor:
    def __init__(self, name: str, command: list[str]):
        self.name = name
        self.command = command
        self.child: subprocess.Popen | None = None
        self.stopping: int | None = None  # the signal we were asked to stop with

    def _on_signal(self, signum, frame) -> None:
        self.stopping = signum
        if self.child is not None and self.child.poll() is None:
            # To the command only: its own children (Celery's pool, gunicorn's workers) are its to stop.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child.pid, signum)

    def _start(self) -> None:
        # The command line comes from the Procfile, never from a request.
        self.child = subprocess.Popen(  # nosec B603
            self.command, process_group=0, preexec_fn=_die_with_parent
        )

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        delay = FIRST_DELAY
        restarts = 0
        while True:
            started = time.monotonic()
            self._start()
            if self.stopping is not None:
                # Asked to stop while the command was starting: the handler may have missed it.
                self._on_signal(self.stopping, None)
            code = self.child.wait()
            if self.stopping is not None:
                return 0
            ran = time.monotonic() - started
            if ran >= HEALTHY_AFTER:
                delay = FIRST_DELAY
            restarts += 1
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
            say(
                self.name,
                f"{self.name} {how} after {ran:.0f} s; restarting it in {delay:.0f} s "
                f"(restart {restarts}). The other processes go on.",
            )
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                if self.stopping is not None:
                    return 0
                time.sleep(0.1)
            delay = min(delay * 2, MAX_DELAY)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m batchdash.supervise NAME -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    return Supervisor(argv[0], argv[2:]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
