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
from dataclasses import dataclass, field
from typing import IO

import orjson
import xlsxwriter

from jobs.formats import schema
from jobs.formats.reconcile import REUSED, SKIPPED_CODES, Outcome, resendable

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
# `status` tells rows that failed from rows never sent (left out before sending, or stopped by a cancel).
FAILURE_COLUMNS = ["row", "error_code", "error", "retryable", "attempts", "status"]
NOT_SENT_MESSAGE = "This row was not sent."


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


# The results file's index: the byte offset of every INDEX_STEP-th row, so that a page far in is read
# from near where it starts (jobs.formats.resultpages).
INDEX_STEP = 1000


@dataclass
class Counts:
    rows: int = 0
    succeeded: int = 0
    failed: int = 0
    retryable: int = 0
    not_sent: int = 0
    offsets: list[int] = field(default_factory=list)
    # Answered without being sent (reconcile.REUSED): neither succeeded here nor failed.
    reused: int = 0


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
    structured output, each of `fields` gets a column after the answer. The counts hold the
    results file's index: where every INDEX_STEP-th row starts (`results.tell()`, bytes in a file).
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
    rows_seen = succeeded = failed = retryable = reused = 0
    offsets: list[int] = []
    pending = iter(outcomes)
    outcome, attempts = next(pending, (None, 0))
    for row, cells in rows:
        while outcome is not None and outcome.row < row:
            outcome, attempts = next(pending, (None, 0))
        if not rows_seen % INDEX_STEP:
            offsets.append(results.tell())
        rows_seen += 1
        # Most cells start with a letter or a digit: those skip the function call.
        line = [neutralize(c) if c and c[0] in risky else c for c in cells]
        if outcome is None or outcome.row != row:
            write_failure(line + [row, "not_sent", NOT_SENT_MESSAGE, "no", 0, "not sent"])
            line += no_answer
            line += ("not sent", "not_sent", NOT_SENT_MESSAGE, 0, "", "", "")
            write_result(line)
        elif outcome.ok:
            answer = outcome.answer
            if answer and answer[0] in risky:
                answer = neutralize(answer)
            tokens_in, tokens_out = outcome.input_tokens, outcome.output_tokens
            line.append(answer)
            if fields:
                line += [neutralize(v) for v in schema.values(outcome.answer, fields)]
            if outcome.code == REUSED:
                # Paid for once, where the answer came from: nothing here.
                reused += 1
                cost = "0.000000" if token_prices else ""
                line += (REUSED, REUSED, neutralize(outcome.message), 0, tokens_in, tokens_out, cost)
            else:
                succeeded += 1
                cost = f"{tokens_in * input_price + tokens_out * output_price:.6f}" if token_prices else ""
                line += ("succeeded", "", "", attempts, tokens_in, tokens_out, cost)
            write_result(line)
        elif outcome.code in SKIPPED_CODES:
            message = neutralize(outcome.message)
            write_failure(line + [row, outcome.code, message, "no", 0, "not sent"])
            line += no_answer
            line += ("not sent", outcome.code, message, 0, "", "", "")
            write_result(line)
        else:
            failed += 1
            retryable += resendable(outcome, attempts)
            message = neutralize(outcome.message)
            retry = "yes" if resendable(outcome, attempts) else "no"
            failure = line + [row, outcome.code, message, retry, attempts, "failed"]
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
        not_sent=rows_seen - succeeded - failed - reused,
        offsets=offsets,
        reused=reused,
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
            if outcome.code == REUSED:
                record.update(status=REUSED, reused_from=outcome.message)
            answer = outcome.answer
            if (embeddings or structured) and answer:
                # An answer that is not JSON after all is kept as the text the model wrote.
                with contextlib.suppress(orjson.JSONDecodeError):
                    answer = orjson.loads(answer)
            record["answer"] = answer
            record["attempts"] = attempts
            record["input_tokens"], record["output_tokens"] = outcome.input_tokens, outcome.output_tokens
            if token_prices:
                paid = outcome.code != REUSED
                cost = paid * (outcome.input_tokens * input_price + outcome.output_tokens * output_price)
                record["cost_usd"] = round(cost, 6)
        elif outcome.code in SKIPPED_CODES:
            record.update(status="not sent", error_code=outcome.code, error=outcome.message)
        else:
            record.update(status="failed", error_code=outcome.code, error=outcome.message, attempts=attempts)
            record["retryable"] = resendable(outcome, attempts)
        yield orjson.dumps(record) + b"\n"


# Excel's sheet holds 1,048,576 rows, one of them the header.
XLSX_MAX_ROWS = 1_048_575
_SHEET_NAME_UNSAFE = re.compile(r"[\[\]:*?/\\]")


# Excel refuses a longer cell; such a cell is cut there, marked, and listed on a Notes sheet.
XLSX_MAX_CELL = 32_767
_CUT_MARK = " [… cut here: {} characters in all; the CSV and JSON Lines files hold the whole text]"
# Columns people rarely read go to a second sheet, beside the row number.
DETAIL_COLUMNS = ("error_code", "attempts", "input_tokens", "output_tokens")
_ALWAYS_NUMBERS = frozenset({"attempts", "input_tokens", "output_tokens", "cost_usd"})
# A cell of the user's table becomes a number only when nothing is lost: no leading zero (zip codes,
# ids), no plus sign (phone numbers), at most 15 digits (Excel's precision).
_PLAIN_NUMBER = re.compile(r"-?(0|[1-9]\d{0,14})(\.\d{1,15})?")
_WIDTH_SAMPLE = 200
_WIDEST = 60


def unneutralized(value: str) -> str:
    """The cell as it was before neutralize() prefixed it for CSV: Excel stores text as text, never as a
    formula, so the apostrophe would only show. (An original value that starts with an apostrophe
    followed by a formula sign loses that apostrophe here; the CSV keeps it.)"""
    if value[:1] == "'" and neutralize(value[1:]) == value:
        return value[1:]
    return value


def write_xlsx(results_csv: IO[str], out: IO[bytes], *, sheet: str = "Results") -> int:
    """Copy a results CSV (as written above) into an Excel workbook as an Excel user expects it:
    numbers stored as numbers, columns sized, the header frozen with a filter, long text wrapped, the
    technical columns on a second sheet, no apostrophes. Returns how many cells were longer than
    Excel allows and were cut (only those cells: the rest of their row is kept), listed on a Notes
    sheet.

    Constant-memory mode writes each row out as it comes; text is stored as text, never as a formula
    or a link.
    """
    workbook = xlsxwriter.Workbook(
        out,
        {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False},
    )
    name = _SHEET_NAME_UNSAFE.sub(" ", sheet).strip()[:31] or "Results"
    main = workbook.add_worksheet(name)
    details = workbook.add_worksheet("Details" if name != "Details" else "Row details")
    bold = workbook.add_format({"bold": True, "bg_color": "#F2F2F2", "bottom": 1})
    wrapped = workbook.add_format({"text_wrap": True, "valign": "top"})
    top = workbook.add_format({"valign": "top"})
    money = workbook.add_format({"num_format": "0.000000", "valign": "top"})

    reader = csv.reader(results_csv)
    header = next(reader)
    header[0] = header[0].removeprefix("\ufeff")
    header = [unneutralized(h) for h in header]
    detail_at = [i for i, h in enumerate(header) if h in DETAIL_COLUMNS]
    main_at = [i for i in range(len(header)) if i not in detail_at]
    numeric_always = {i for i, h in enumerate(header) if h in _ALWAYS_NUMBERS}

    # Widths from the header and the first rows; rows are read once, these first ones kept aside.
    first = list(itertools.islice(reader, _WIDTH_SAMPLE))
    widths = [max([len(header[i])] + [len(r[i]) for r in first if i < len(r)]) for i in range(len(header))]
    wide = {i for i, w in enumerate(widths) if w > _WIDEST}
    for position, i in enumerate(main_at):
        main.set_column(
            position, position, min(max(widths[i], 6) + 2, _WIDEST), wrapped if i in wide else top
        )
    details.set_column(0, len(detail_at), 14)

    main.write_row(0, 0, [header[i] for i in main_at], bold)
    details.write_row(0, 0, ["row"] + [header[i] for i in detail_at], bold)
    main.freeze_panes(1, 0)
    details.freeze_panes(1, 1)
    cut: list[tuple[int, str, int]] = []  # (spreadsheet row, column, full length)
    index = 0
    for index, row in enumerate(itertools.chain(first, reader), start=1):
        cells = []
        for i in range(len(header)):
            value = unneutralized(row[i]) if i < len(row) else ""
            if len(value) > XLSX_MAX_CELL:
                cut.append((index + 1, header[i], len(value)))
                mark = _CUT_MARK.format(f"{len(value):,}")
                value = value[: XLSX_MAX_CELL - len(mark)] + mark
            elif value and (i in numeric_always or _PLAIN_NUMBER.fullmatch(value)):
                with contextlib.suppress(ValueError):  # a technical column left empty stays text
                    value = float(value) if "." in value else int(value)
            cells.append(value)
        for position, i in enumerate(main_at):
            value = cells[i]
            if isinstance(value, str):
                main.write_string(index, position, value)
            else:
                main.write_number(index, position, value, money if header[i] == "cost_usd" else None)
        details.write_row(index, 0, [index] + [cells[i] for i in detail_at])
    main.autofilter(0, 0, index, len(main_at) - 1)
    details.autofilter(0, 0, index, len(detail_at))
    if cut:
        notes = workbook.add_worksheet("Notes")
        notes.write_row(0, 0, ["Cells longer than Excel's 32,767 characters were cut in this file:"], bold)
        notes.write_row(1, 0, ["Spreadsheet row", "Column", "Characters in all"], bold)
        for line, (row_number, column, length) in enumerate(cut[:10_000], start=2):
            notes.write_row(line, 0, [row_number, column, length])
    workbook.close()
    return len(cut)
