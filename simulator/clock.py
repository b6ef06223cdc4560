"""The simulator's clock, behind one function so that tests can move time."""

import time


def now() -> float:
    return time.time()
