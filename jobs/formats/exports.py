"""The files people download: their original rows joined with the answers, and the failures.

CSV is written first, in one streaming pass; the Excel copy is converted from it.

Pure and streaming: the dataset's rows and the per-batch outcome files (each sorted
by row) are merged in one pass, so memory does not grow with the job. Every text
cell is made spreadsheet-safe (OWASP's advice on CSV injection): a cell that a
spreadsheet would run as a formula gets a leading apostrophe. CSV files are UTF-8
with a BOM so that Excel shows accents correctly.
"""

import contextlib
import csv
import heapq
import itertools
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO

import orjson
import xlsxwriter

from jobs.formats import schema
from jobs.formats.reconcile import SKIPPED_CODES, Outcome

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?")

RESULT_COLUMNS = [
    "answer",
    "status",
    "error_code",
    "error",
    "attempts",
    "input_tokens",
    "output_tokens",
    "cost_usd",
]
FAILURE_COLUMNS = ["row", "error_code", "error", "retryable", "attempts"]


# A cell can only be dangerous if it starts with a trigger or with space before one.
_RISKY_FIRST = frozenset(_TRIGGERS) | frozenset(c for c in map(chr, range(0x3001)) if c.isspace())


def neutralize(value: str) -> str:
    """Prefix a cell that a spreadsheet would execute; plain numbers such as -5 stay as they are."""
    if not value or value[0] not in _RISKY_FIRST:
        return value
    if _NUMBER.fullmatch(value):
        return value
    if value[0] in _TRIGGERS or value.lstrip()[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


@dataclass
class Counts:
    rows: int = 0
    succeeded: int = 0
    failed: int = 0
    retryable: int = 0
    not_sent: int = 0


def latest_outcomes(attempts: Iterable[Iterable[Iterator[Outcome]]]) -> Iterator[tuple[Outcome, int]]:
    """The latest outcome of each row, with how many attempts it took, in row order.

    `attempts` holds, oldest first, each attempt's outcome streams in row order (an
    attempt's parts never share a row). Parts of one attempt are simply chained; only
    when there are several attempts are they merged, and heapq.merge is stable, so among
    outcomes of the same row the latest attempt's comes last.
    """
    streams = [itertools.chain.from_iterable(parts) for parts in attempts]
    if len(streams) == 1:
        for outcome in streams[0]:
            yield outcome, 1
        return
    current: Outcome | None = None
    count = 0
    for outcome in heapq.merge(*streams, key=operator.attrgetter("row")):
        if current is not None and outcome.row != current.row:
            yield current, count
            count = 0
        elif current is not None and outcome.code in SKIPPED_CODES:
            # A later attempt cancelled before this row went out: what happened before stands.
            continue
        current = outcome
        count += 1
    if current is not None:
        yield current, count


def write_results(
    columns: list[str],
    rows: Iterable[tuple[int, list[str]]],
    outcomes: Iterable[tuple[Outcome, int]],
    results: IO[str],
    failures: IO[str],
    *,
    token_prices: tuple[float, float] | None = None,
    on_failure: Callable[[int, list[str], Outcome, int], None] | None = None,
    fields: list[str] | None = None,
) -> Counts:
    """Write every dataset row, in its original order, with its outcome; and the failed rows apart.

    `rows` yields (row number, cells) in file order; `outcomes` yields (outcome, attempts)
    sorted by row. Rows with no outcome were not sent (for example skipped as empty).
    `token_prices` (dollars per input and per output token) fills the cost column;
    `on_failure(row, cells, outcome, attempts)` is called for each failed row. With
    structured output, each of `fields` gets a column after the answer.
    """
    results.write("\ufeff")
    failures.write("\ufeff")
    result_writer = csv.writer(results)
    failure_writer = csv.writer(failures)
    safe_columns = [neutralize(c) for c in columns]
    fields = fields or []
    field_columns = [neutralize(f) for f in fields]
    result_writer.writerow(safe_columns + RESULT_COLUMNS[:1] + field_columns + RESULT_COLUMNS[1:])
    # The answer and field cells of a row without an answer.
    no_answer = ("",) * (1 + len(fields))
    failure_writer.writerow(safe_columns + FAILURE_COLUMNS)
    write_result, write_failure = result_writer.writerow, failure_writer.writerow
    risky = _RISKY_FIRST
    input_price, output_price = token_prices or (0.0, 0.0)
    rows_seen = succeeded = failed = retryable = 0
    pending = iter(outcomes)
    outcome, attempts = next(pending, (None, 0))
    for row, cells in rows:
        while outcome is not None and outcome.row < row:
            outcome, attempts = next(pending, (None, 0))
        rows_seen += 1
        # Most cells start with a letter or a digit: those skip the function call.
        line = [neutralize(c) if c and c[0] in risky else c for c in cells]
        if outcome is None or outcome.row != row:
            line += no_answer
            line += ("not sent", "", "", 0, "", "", "")
            write_result(line)
        elif outcome.ok:
            succeeded += 1
            answer = outcome.answer
            if answer and answer[0] in risky:
                answer = neutralize(answer)
            tokens_in, tokens_out = outcome.input_tokens, outcome.output_tokens
            cost = f"{tokens_in * input_price + tokens_out * output_price:.6f}" if token_prices else ""
            line.append(answer)
            if fields:
                line += [neutralize(v) for v in schema.values(outcome.answer, fields)]
            line += ("succeeded", "", "", attempts, tokens_in, tokens_out, cost)
            write_result(line)
        elif outcome.code in SKIPPED_CODES:
            line += no_answer
            line += ("not sent", outcome.code, neutralize(outcome.message), 0, "", "", "")
            write_result(line)
        else:
            failed += 1
            retryable += outcome.retryable
            message = neutralize(outcome.message)
            failure = line + [row, outcome.code, message, "yes" if outcome.retryable else "no", attempts]
            line += no_answer
            line += ("failed", outcome.code, message, attempts, "", "", "")
            write_result(line)
            write_failure(failure)
            if on_failure:
                on_failure(row, cells, outcome, attempts)
    counts = Counts(
        rows=rows_seen,
        succeeded=succeeded,
        failed=failed,
        retryable=retryable,
        not_sent=rows_seen - succeeded - failed,
    )
    return counts


def iter_jsonl(
    columns: list[str],
    rows: Iterable[tuple[int, list[str]]],
    outcomes: Iterable[tuple[Outcome, int]],
    *,
    embeddings: bool = False,
    token_prices: tuple[float, float] | None = None,
    id_column: int | None = None,
    structured: bool = False,
) -> Iterator[bytes]:
    """Every dataset row with its outcome as one JSON object per line, generated as it is read.

    The row's own cells go under "input", keyed by column, so that no column name can clash
    with the outcome's keys; the job's row ID, when it has one, is repeated as "id".
    Values are not neutralised: JSON is not opened by spreadsheets.
    """
    input_price, output_price = token_prices or (0.0, 0.0)
    pending = iter(outcomes)
    outcome, attempts = next(pending, (None, 0))
    for row, cells in rows:
        while outcome is not None and outcome.row < row:
            outcome, attempts = next(pending, (None, 0))
        record = {"row": row, "input": dict(zip(columns, cells, strict=False))}
        if id_column is not None:
            record["id"] = cells[id_column]
        if outcome is None or outcome.row != row:
            record["status"] = "not sent"
        elif outcome.ok:
            record["status"] = "succeeded"
            answer = outcome.answer
            if (embeddings or structured) and answer:
                # An answer that is not JSON after all is kept as the text the model wrote.
                with contextlib.suppress(orjson.JSONDecodeError):
                    answer = orjson.loads(answer)
            record["answer"] = answer
            record["attempts"] = attempts
            record["input_tokens"], record["output_tokens"] = outcome.input_tokens, outcome.output_tokens
            if token_prices:
                cost = outcome.input_tokens * input_price + outcome.output_tokens * output_price
                record["cost_usd"] = round(cost, 6)
        elif outcome.code in SKIPPED_CODES:
            record.update(status="not sent", error_code=outcome.code, error=outcome.message)
        else:
            record.update(status="failed", error_code=outcome.code, error=outcome.message, attempts=attempts)
            record["retryable"] = outcome.retryable
        yield orjson.dumps(record) + b"\n"


# Excel's sheet holds 1,048,576 rows, one of them the header.
XLSX_MAX_ROWS = 1_048_575
_SHEET_NAME_UNSAFE = re.compile(r"[\[\]:*?/\\]")


def write_xlsx(results_csv: IO[str], out: IO[bytes], *, sheet: str = "Results") -> None:
    """Copy a results CSV (as written above, already neutralised) into an Excel workbook.

    Constant-memory mode writes each row out as it comes; every cell is stored as text,
    never as a formula or a link.
    """
    workbook = xlsxwriter.Workbook(
        out,
        {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False},
    )
    name = _SHEET_NAME_UNSAFE.sub(" ", sheet).strip()[:31] or "Results"
    worksheet = workbook.add_worksheet(name)
    bold = workbook.add_format({"bold": True})
    reader = csv.reader(results_csv)
    header = next(reader)
    header[0] = header[0].removeprefix("\ufeff")
    worksheet.write_row(0, 0, header, bold)
    worksheet.freeze_panes(1, 0)
    write_row = worksheet.write_row
    for index, row in enumerate(reader, start=1):
        write_row(index, 0, row)
    workbook.close()
