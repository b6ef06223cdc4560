"""Timing and peak memory of one benchmark process."""

import resource
import time
from contextlib import contextmanager


@contextmanager
def stopwatch():
    result = {}
    start = time.perf_counter()
    yield result
    result["seconds"] = time.perf_counter() - start


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(name: str, value: float, unit: str, digits: int = 0) -> None:
    print(f"bench: {name} = {value:.{digits}f} {unit}".rstrip(), flush=True)
