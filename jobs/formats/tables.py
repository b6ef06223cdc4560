"""Reading the user's table: CSV, TSV or XLSX, whatever tool made it.

Pure: takes binary streams, returns plain data. `inspect` reads only the head of the
file (so a 1 GB upload is inspected at once) and learns the format, encoding,
delimiter, header and a preview; `iter_rows` streams every row with flat memory;
`count_rows` makes one full pass for the row count and the problems.

Nothing is guessed away silently: problems come back as human messages naming the
line, and anything that stops reading raises TableError with such a message.

Policies, each reported with its line: rows with more cells than the header are skipped,
cut to the header's width, or stop the reading (`long_rows`); rows with fewer cells are
padded with empty cells, skipped, or stop it (`short_rows`). A line whose cells are all
empty (`,,,,` included) is blank: skipped and reported, never a row. A NUL byte makes the
file binary, unless the file is UTF-16, where every other byte of plain text is NUL.

Bounds, so that no file can exhaust a worker (jobs.formats.textfiles): at most MAX_COLUMNS
cells a row and MAX_LINE_CHARS characters a line, both checked on the raw line before the
csv module splits it, and at most MAX_CELL_CHARS characters a cell. An Excel sheet is
streamed by jobs.formats.xlsx within its own bounds.

Line ends: when a file's lines end in LF or CRLF, a lone CR is text (tweets exported by
pandas hold them, unquoted); a file whose lone CRs outnumber its LFs is read by CR lines
(old Macs), an LF inside a quoted cell kept.
"""

import codecs
import io
import itertools
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from jobs.formats import textfiles, uniques, xlsx
from jobs.formats.text import one_line
from jobs.formats.textfiles import (
    DELIMITER_NAMES,
    MAX_COLUMNS,
    TableError,
    detect_encoding,
    is_utf16,
    is_xlsx,
    lf_line_ends,
    no_rows_reason,
    other_delimiter,
    separator_advice,
    sniff_binary,
    sniff_delimiter,
    utf16_byte_order,
)

HEAD_BYTES = 1 << 20
MAX_REPORTED_PROBLEMS = 100


@dataclass
class Problem:
    kind: str
    message: str
    line: int | None = None


@dataclass
class TableInfo:
    format: str
    encoding: str | None
    delimiter: str | None
    columns: list[str]
    preview: list[list[str]]
    problems: list[Problem] = field(default_factory=list)
    column_stats: list[dict] = field(default_factory=list)
    sheet: str | None = None
    # A workbook's sheets, [{name, hidden}], in order.
    sheets: list[dict] = field(default_factory=list)


@dataclass
class RowCount:
    rows: int
    problems: list[Problem]
    problem_total: int
    # Why there is no row, when there is none.
    empty_reason: str = ""


class ProblemLog:
    """Problems found while streaming: the first ones kept, all of them counted."""

    def __init__(self, limit: int = MAX_REPORTED_PROBLEMS):
        self.limit = limit
        self.items: list[Problem] = []
        self.total = 0

    def add(self, problem: Problem) -> None:
        self.total += 1
        if len(self.items) < self.limit:
            self.items.append(problem)


def _header(raw: list[str], problems: list[Problem]) -> list[str]:
    """Header names made non-blank and unique, each change reported."""
    if len(raw) > MAX_COLUMNS:
        raise TableError(
            f"The first row has {len(raw):,} columns; at most {MAX_COLUMNS:,} are supported. "
            "Remove the columns you do not need and upload again."
        )
    names: list[str] = []
    seen: set[str] = set()
    for position, original in enumerate(raw, start=1):
        name = original.strip()
        if not name:
            name = f"column_{position}"
            problems.append(
                Problem("renamed_header", f"Column {position} has no name; it is called “{name}”.", 1)
            )
        if name in seen:
            suffix = 2
            while f"{name}_{suffix}" in seen:
                suffix += 1
            renamed = f"{name}_{suffix}"
            problems.append(
                Problem(
                    "renamed_header",
                    f"Column {position} is called “{name}” like an earlier one; it is called “{renamed}”.",
                    1,
                )
            )
            name = renamed
        seen.add(name)
        names.append(name)
    return names


def _stats(columns: list[str], preview: list[list[str]]) -> list[dict]:
    return [
        {
            "empty": sum(1 for row in preview if not row[i].strip()),
            "longest": max((len(row[i]) for row in preview), default=0),
        }
        for i in range(len(columns))
    ]


def inspect(
    stream: BinaryIO,
    filename: str,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    preview_rows: int = 20,
    long_rows: str = "skip",
    short_rows: str = "pad",
    sheet: str | None = None,
) -> TableInfo:
    """Learn a table's shape from the head of the file only.

    `encoding` and `delimiter`, when given, override detection; the preview follows `long_rows`
    and `short_rows` as the full pass will; `sheet` picks a workbook's sheet (else the first
    visible one with cells). Raises TableError for a file that cannot be read as a table
    (empty, binary, no rows, too many columns, an empty or missing sheet).
    """
    head = stream.read(HEAD_BYTES)
    stream.seek(0)
    if not head.strip(b" \t\r\n\xef\xbb\xbf\xff\xfe\x00"):
        raise TableError("The file is empty.")
    if is_xlsx(head):
        return _inspect_xlsx(stream, preview_rows, sheet)
    sniff_binary(head, encoding)
    encoding = _byte_order(encoding, head) or detect_encoding(head)
    try:
        text = (
            head.decode(encoding, errors="strict") if len(head) < HEAD_BYTES else _decode_head(head, encoding)
        )
    except (UnicodeDecodeError, LookupError) as exc:
        raise TableError(f"The file cannot be read as {encoding}. Choose another encoding.") from exc
    if delimiter is None:
        delimiter = sniff_delimiter(text[:65536])
    problems: list[Problem] = []
    log = ProblemLog()
    lf = lf_line_ends(text)
    records = textfiles.records(io.StringIO(text, newline="\n" if lf else ""), delimiter, lf)
    raw_header = next(_skip_blank(records, ProblemLog()), None)
    if raw_header is None:
        raise TableError("The file is empty.")
    columns = _header(raw_header[1], problems)
    preview: list[list[str]] = []
    for _, cells in _rows(records, len(columns), log, long_rows, short_rows):
        preview.append(cells)
        if len(preview) >= preview_rows:
            break
    if not preview and len(head) < HEAD_BYTES:
        raise TableError(no_rows_reason({p.kind for p in log.items}, len(columns), delimiter, text))
    if len(columns) == 1 and other_delimiter(text[:65536], delimiter):
        problems.append(
            Problem(
                "separator",
                f"The header has a single column when separated by {DELIMITER_NAMES[delimiter]}s. "
                + separator_advice(text[:65536], delimiter),
                1,
            )
        )
    problems.extend(log.items)
    return TableInfo("csv", encoding, delimiter, columns, preview, problems, _stats(columns, preview))


def _byte_order(encoding: str | None, head: bytes) -> str | None:
    """The user's encoding; for UTF-16 without a byte-order mark, the byte order its NULs show."""
    if is_utf16(encoding) and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return utf16_byte_order(head) or "utf-16-le"
    return encoding


def _decode_head(head: bytes, encoding: str) -> str:
    """Decode the head of a longer file, dropping the last, possibly cut, line."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    text = decoder.decode(head, final=False)
    return text[: text.rfind("\n" if lf_line_ends(text) else "\r") + 1] or text


def _is_blank(cells: list[str]) -> bool:
    return not any(cell.strip() for cell in cells)


def _skip_blank(records, log: ProblemLog) -> Iterator[tuple[int, list[str]]]:
    for line, cells in records:
        if _is_blank(cells):
            log.add(Problem("blank_line", f"Line {line} is blank and was skipped.", line))
            continue
        yield line, cells


def _rows(
    records, width: int, log: ProblemLog, long_rows: str, short_rows: str, number: int = 0
) -> Iterator[tuple[int, list[str]]]:
    """Data rows as (row number, cells of exactly `width`), numbered on from `number` over the rows kept."""
    for line, cells in records:
        count = len(cells)
        if count == width and (cells[0].strip() or not _is_blank(cells)):
            number += 1
            yield number, cells
            continue
        if _is_blank(cells):
            log.add(Problem("blank_line", f"Line {line} is blank and was skipped.", line))
            continue
        if count > width:
            if _is_blank(cells[width:]):
                cells = cells[:width]  # trailing empty cells, as spreadsheets often write: harmless
            elif long_rows == "cut":
                log.add(
                    _misfit(
                        "long_row", line, count, width, f"the cells after the first {width} were left out"
                    )
                )
                cells = cells[:width]
            else:
                _stop_or_skip(long_rows, "long_row", line, count, width, log)
                continue
        elif count < width:
            if short_rows == "pad":
                log.add(_misfit("short_row", line, count, width, "the missing ones are empty"))
                cells = cells + [""] * (width - count)
            else:
                _stop_or_skip(short_rows, "short_row", line, count, width, log)
                continue
        number += 1
        yield number, cells


def _misfit(kind: str, line: int, count: int, width: int, outcome: str) -> Problem:
    return Problem(
        kind,
        f"Line {line} has {count} cells but the header has {width}; {outcome}.",
        line,
    )


def _stop_or_skip(policy: str, kind: str, line: int, count: int, width: int, log: ProblemLog) -> None:
    if policy == "stop":
        raise TableError(f"Line {line} has {count} cells but the header has {width}.")
    log.add(_misfit(kind, line, count, width, "the row was skipped"))


def iter_rows(
    stream: BinaryIO,
    info: TableInfo,
    *,
    long_rows: str = "skip",
    short_rows: str = "pad",
    problems: ProblemLog | None = None,
) -> Iterator[tuple[int, list[str]]]:
    """Every data row as (row number, cells), streamed; row numbers are stable for a given file.

    Rows that do not fit the header are handled as `long_rows` and `short_rows` say (the
    module docstring) and recorded in `problems`; "stop" raises TableError at the first one.
    """
    log = problems if problems is not None else ProblemLog()
    if info.format == "xlsx":
        return _xlsx_rows(stream, info, log)
    return _Rows.from_iterable(_csv_row_blocks(stream, info, log, long_rows, short_rows))


class _Rows(itertools.chain):
    """Blocks of rows put end to end by C code, with no step of Python per row between the reader
    and the caller; closed as a generator is (the file's reader finished while its file is open).
    A caller working a block at a time takes `blocks` instead: (row numbers, their cells) each."""

    @classmethod
    def from_iterable(cls, blocks):
        rows = super().from_iterable(itertools.starmap(zip, blocks))
        rows.blocks = blocks
        return rows

    def close(self) -> None:
        self.blocks.close()


def _csv_row_blocks(
    stream: BinaryIO, info: TableInfo, log: ProblemLog, long_rows: str, short_rows: str
) -> Iterator[tuple[Sequence[int], list[list[str]]]]:
    """iter_rows of a CSV file, a block of rows at a time: their numbers and their cells.

    A block whose records all have the header's width and text in their first cell, the usual case,
    is numbered whole; the others go through _rows, record by record, with their lines.
    """
    encoding = info.encoding or "utf-8"
    lf = _has_lf(stream, encoding)
    text = io.TextIOWrapper(stream, encoding=encoding, errors="strict", newline="\n" if lf else "")
    width = len(info.columns)
    number = 0
    header = True
    try:
        for last_line, records in textfiles.record_blocks(text, info.delimiter or ",", lf):
            lines = None
            if header:  # the first record with text is the header
                lines = textfiles.record_lines(records, last_line)
                first = next((i for i, cells in enumerate(records) if not _is_blank(cells)), None)
                if first is None:
                    continue
                header = False
                records, lines = records[first + 1 :], lines[first + 1 :]
            firsts = map(operator.itemgetter(0), records)
            if all(map(width.__eq__, map(len, records))) and all(map(str.strip, firsts)):
                yield range(number + 1, number + len(records) + 1), records
                number += len(records)
                continue
            lines = lines or textfiles.record_lines(records, last_line)
            # A row at a time, so that those before a row that stops the reading are had first.
            for row in _rows(zip(lines, records, strict=True), width, log, long_rows, short_rows, number):
                number = row[0]
                yield [number], [row[1]]
    except UnicodeDecodeError as exc:
        line = _line_of_bad_bytes(stream, encoding)
        raise TableError(
            f"Line {line} has characters that are not valid {info.encoding}. "
            "Choose another encoding, or save the file again as UTF-8."
        ) from exc
    finally:
        text.detach()


def _has_lf(stream: BinaryIO, encoding: str) -> bool:
    """Whether the file's lines end in LF (or CRLF), judged on its head as inspect judges it."""
    head = stream.read(HEAD_BYTES)
    stream.seek(0)
    return lf_line_ends(codecs.getincrementaldecoder(encoding)(errors="ignore").decode(head, final=False))


def _line_of_bad_bytes(stream: BinaryIO, encoding: str) -> int | str:
    """The physical line of the first byte that does not decode (a second pass, on the error path only)."""
    try:
        stream.seek(0)
    except (OSError, ValueError):
        return "?"
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    line = 1
    while chunk := stream.read(1 << 20):
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            return line + chunk.count(b"\n", 0, max(exc.start, 0))
        line += chunk.count(b"\n")
    return line


def count_rows(
    stream: BinaryIO,
    info: TableInfo,
    *,
    long_rows: str = "skip",
    short_rows: str = "pad",
    progress: Callable[[int, int], None] | None = None,
    row_ids: uniques.RowIds | None = None,
) -> RowCount:
    """One full pass: the number of data rows and the problems met on the way; `row_ids`, when
    given, is fed every row to learn which columns could name the rows."""
    stream.seek(0, io.SEEK_END)
    total = stream.tell()
    stream.seek(0)
    log = ProblemLog()
    rows = 0
    for rows, cells in iter_rows(stream, info, long_rows=long_rows, short_rows=short_rows, problems=log):
        if row_ids is not None:
            row_ids.add(rows, cells)
        if progress and rows % 100_000 == 0:
            progress(stream.tell(), total)
    if progress:
        progress(total, total)
    reason = "" if rows else no_rows_reason({p.kind for p in log.items}, len(info.columns), info.delimiter)
    return RowCount(rows, log.items, log.total, reason)


# --- XLSX -------------------------------------------------------------------------


def _workbook(stream: BinaryIO) -> xlsx.Workbook:
    try:
        return xlsx.Workbook(stream)
    except xlsx.WorkbookError as exc:
        raise TableError(str(exc)) from exc


def _inspect_xlsx(stream: BinaryIO, preview_rows: int, sheet: str | None) -> TableInfo:
    try:
        book = _workbook(stream)
        name = _chosen_sheet(book, sheet) if sheet is not None else book.first_sheet_with_cells()
        header = next(book.rows(name, MAX_COLUMNS, header=True))
    except xlsx.WorkbookError as exc:
        raise TableError(str(exc)) from exc
    problems: list[Problem] = []
    columns = _header(header.cells, problems)
    info = TableInfo("xlsx", None, None, columns, [], problems, sheet=name, sheets=book.listing())
    log = ProblemLog()
    for _, cells in _xlsx_rows(stream, info, log, book):
        info.preview.append(cells)
        if len(info.preview) >= preview_rows:
            break
    stream.seek(0)
    if not info.preview and any(p.kind == "long_row" for p in log.items):
        raise TableError(
            "No row could be read: the rows after the header have text only to the right of its last "
            f"named column, {xlsx.column_letters(len(columns))}. Name those columns in the first row."
        )
    if not info.preview:
        raise TableError("The file has a header but no rows.")
    info.column_stats = _stats(columns, info.preview)
    return info


def _chosen_sheet(book: xlsx.Workbook, sheet: str) -> str:
    """The sheet the user picked, if the workbook has it and it has cells."""
    if sheet not in dict(book.sheets):
        raise TableError(f"The workbook has no sheet called “{one_line(sheet)[:100]}”.")
    if not book.has_cells(sheet):
        raise TableError(f"The sheet “{sheet}” is empty: it has no cells. Choose another sheet.")
    return sheet


def _xlsx_rows(
    stream: BinaryIO, info: TableInfo, log: ProblemLog, book: xlsx.Workbook | None = None
) -> Iterator[tuple[int, list[str]]]:
    """The sheet's data rows, streamed: rows after the header that have a cell with text.

    The reading choices are for text files. In a sheet, short rows are normal (empty cells at
    the end of a row are not written), so they are padded silently; cells beyond the last named
    column are left out and reported, and a row with nothing else is skipped.
    """
    if book is None:
        stream.seek(0)
        book = _workbook(stream)
    width = len(info.columns)
    number = 0
    previous = None
    try:
        for row in book.rows(info.sheet or book.first_sheet_with_cells(), width):
            if previous is None:  # the header
                previous = row.number
                continue
            if row.number > previous + 1:
                gap = (row.number - 1 - previous, previous + 1, row.number - 1)
                where = f"Row {gap[1]}" if gap[0] == 1 else f"Rows {gap[1]:,} to {gap[2]:,}"
                verb = "is blank and was" if gap[0] == 1 else "are blank and were"
                log.add(Problem("blank_line", f"{where} of the sheet {verb} skipped.", gap[1]))
            previous = row.number
            if row.beyond:
                outcome = "they were left out" if row.cells else "the row was skipped"
                log.add(
                    Problem(
                        "long_row",
                        f"Row {row.number} has cells beyond the last named column; {outcome}.",
                        row.number,
                    )
                )
                if not row.cells:
                    continue
            cells = row.cells + [""] * (width - len(row.cells))
            number += 1
            yield number, cells
    except xlsx.WorkbookError as exc:
        raise TableError(str(exc)) from exc
