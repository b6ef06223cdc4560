"""Timing and peak memory of one benchmark process, and of the processes it starts."""

import os
import resource
import threading
import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def stopwatch():
    result = {}
    start = time.perf_counter()
    yield result
    result["seconds"] = time.perf_counter() - start


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_kb(pid: str) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # ended meanwhile
        return 0
    _, _, rest = status.partition("VmRSS:")
    return int(rest.split()[0]) if rest else 0


def _children() -> list[str]:
    """This process's children, as each of its threads lists those it started (Linux 3.5 and later):
    a few small reads, where scanning /proc read a file per process of the machine (3 ms a sample,
    taken from the process being measured)."""
    found = []
    for thread in os.listdir("/proc/self/task"):
        try:
            found += Path(f"/proc/self/task/{thread}/children").read_text().split()
        except OSError:  # ended meanwhile
            continue
    return found


@contextmanager
def tree_peak_rss(interval: float = 0.1):
    """The peak of this process's resident memory plus its children's (a prepare pool and its resource
    tracker), summed at each sample every `interval` seconds; at least this process's own peak.
    """
    result = {}
    stop = threading.Event()

    def sample() -> None:
        peak = 0
        while not stop.wait(interval):
            peak = max(peak, _rss_kb("self") + sum(map(_rss_kb, _children())))
        result["mb"] = peak / 1024

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        stop.set()
        sampler.join()
        result["mb"] = max(result["mb"], peak_rss_mb())


def report(name: str, value: float, unit: str, digits: int = 0) -> None:
    print(f"bench: {name} = {value:.{digits}f} {unit}".rstrip(), flush=True)
