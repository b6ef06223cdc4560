"""Run every benchmark, each in a fresh process, and print its figures.

The last two start the whole embedded stack: bench.e2e (a million-row job end to end, about 25
minutes; BENCH_E2E_ROWS makes it smaller) and bench.poll_load (about 2 minutes).
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = [
    ["bench.prepare", "ours", "reviews"],
    ["bench.prepare", "reference", "reviews"],
    ["bench.prepare", "ours", "multi"],
    ["bench.prepare", "reference", "multi"],
    ["bench.prepare_cached"],
    ["bench.reconcile", "ours"],
    ["bench.reconcile", "reference"],
    ["bench.count", "ids"],
    ["bench.count", "plain"],
    ["bench.pages"],
    ["bench.e2e"],
    ["bench.poll_load"],
    ["bench.disk"],
]


def main() -> int:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="batchdash.settings")
    failed = 0
    for case in CASES:
        result = subprocess.run([sys.executable, "-m", *case], cwd=ROOT, env=env)
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
