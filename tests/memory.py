"""Peak memory of reading a table: the whole read (head, then every row) in a child process held to an
address-space limit, so that a file that would blow up memory kills only the child, and the growth is
the reader's own."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def reading_peak_mb(path: Path, name: str, limit_mb: int = 1024) -> tuple[int, str]:
    """Inspect and count the file `path` (uploaded as `name`); its peak RSS growth in MB, and the outcome."""
    code = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({limit_mb} * 1024**2, {limit_mb} * 1024**2))
        from jobs.formats import tables
        def peak():
            # VmHWM is this process's own high-water mark; getrusage's ru_maxrss would include
            # the test runner's, which the child was forked from.
            with open("/proc/self/status") as status:
                line = next(line for line in status if line.startswith("VmHWM:"))
            return int(line.split()[1]) // 1024
        baseline = peak()
        try:
            with open({str(path)!r}, "rb") as f:
                info = tables.inspect(f, {name!r})
                outcome = f"rows {{tables.count_rows(f, info).rows}}"
        except tables.TableError as exc:
            outcome = f"refused {{exc}}"
        print(peak() - baseline)
        print(outcome)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"the reader died ({done.returncode}): {done.stderr[-2000:]}"
    rss, outcome = done.stdout.strip().split("\n", 1)
    return int(rss), outcome
