"""The files people download: their original rows joined with the answers, and the failures.

Pure and streaming: the dataset's rows and the per-batch outcome files (each sorted
by row) are merged in one pass, so memory does not grow with the job. Every text
cell is made spreadsheet-safe (OWASP's advice on CSV injection): a cell that a
spreadsheet would run as a formula gets a leading apostrophe. CSV files are UTF-8
with a BOM so that Excel shows accents correctly.
"""

import csv
import heapq
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from jobs.reconcile import Outcome

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?")

RESULT_COLUMNS = ["answer", "status", "error_code", "error", "attempts", "input_tokens", "output_tokens"]
FAILURE_COLUMNS = ["row", "error_code", "error", "retryable", "attempts"]


def neutralize(value: str) -> str:
    """Prefix a cell that a spreadsheet would execute; plain numbers such as -5 stay as they are."""
    if not value:
        return value
    first = value[0]
    # Most cells start with a letter or digit: decide those without a regex.
    if first not in _TRIGGERS and not first.isspace():
        return value
    if _NUMBER.fullmatch(value):
        return value
    if first in _TRIGGERS or value.lstrip()[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


@dataclass
class Counts:
    rows: int = 0
    succeeded: int = 0
    failed: int = 0
    retryable: int = 0
    not_sent: int = 0


def latest_outcomes(streams: Iterable[Iterator[Outcome]]) -> Iterator[tuple[Outcome, int]]:
    """Merge outcome streams (given oldest attempt first) into the latest outcome per row.

    Yields (outcome, attempts) in row order. heapq.merge is stable, so among outcomes of
    the same row the one from the latest attempt comes last.
    """
    current: Outcome | None = None
    attempts = 0
    for outcome in heapq.merge(*streams, key=lambda o: o.row):
        if current is not None and outcome.row != current.row:
            yield current, attempts
            attempts = 0
        current = outcome
        attempts += 1
    if current is not None:
        yield current, attempts


def write_results(
    columns: list[str],
    rows: Iterable[tuple[int, list[str]]],
    outcomes: Iterable[tuple[Outcome, int]],
    results: IO[str],
    failures: IO[str],
) -> Counts:
    """Write every dataset row, in its original order, with its outcome; and the failed rows apart.

    `rows` yields (row number, cells) in file order; `outcomes` yields (outcome, attempts)
    sorted by row. Rows with no outcome were not sent (for example skipped as empty).
    """
    results.write("\ufeff")
    failures.write("\ufeff")
    result_writer = csv.writer(results)
    failure_writer = csv.writer(failures)
    safe_columns = [neutralize(c) for c in columns]
    result_writer.writerow(safe_columns + RESULT_COLUMNS)
    failure_writer.writerow(safe_columns + FAILURE_COLUMNS)
    counts = Counts()
    pending = iter(outcomes)
    next_outcome = next(pending, None)
    for row, cells in rows:
        while next_outcome is not None and next_outcome[0].row < row:
            next_outcome = next(pending, None)
        safe_cells = [neutralize(c) for c in cells]
        counts.rows += 1
        if next_outcome is None or next_outcome[0].row != row:
            counts.not_sent += 1
            result_writer.writerow(safe_cells + ["", "not sent", "", "", 0, "", ""])
            continue
        outcome, attempts = next_outcome
        if outcome.ok:
            counts.succeeded += 1
            result_writer.writerow(
                safe_cells
                + [
                    neutralize(outcome.answer),
                    "succeeded",
                    "",
                    "",
                    attempts,
                    outcome.input_tokens,
                    outcome.output_tokens,
                ]
            )
        else:
            counts.failed += 1
            counts.retryable += outcome.retryable
            message = neutralize(outcome.message)
            result_writer.writerow(safe_cells + ["", "failed", outcome.code, message, attempts, "", ""])
            failure_writer.writerow(
                safe_cells + [row, outcome.code, message, "yes" if outcome.retryable else "no", attempts]
            )
    return counts
