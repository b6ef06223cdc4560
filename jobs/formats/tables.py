"""Reading the user's table: CSV, TSV or XLSX, whatever tool made it.

Pure: takes binary streams, returns plain data. `inspect` reads only the head of the
file (so a 1 GB upload is inspected at once) and learns the format, encoding,
delimiter, header and a preview; `iter_rows` streams every row with flat memory;
`count_rows` makes one full pass for the row count and the problems.

Nothing is guessed away silently: problems come back as human messages naming the
line, and anything that stops reading raises TableError with such a message.

Policies: rows with fewer cells than the header are padded with empty cells and
reported; rows with more cells are skipped and reported (or stop the reading, if the
caller asks); blank lines are skipped and reported; a NUL byte makes the file binary.
"""

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from charset_normalizer import from_bytes

HEAD_BYTES = 1 << 20
MAX_COLUMNS = 1000
MAX_CELL_BYTES = 16 * 1024 * 1024
MAX_REPORTED_PROBLEMS = 100
DELIMITERS = [",", ";", "\t", "|"]
_WESTERN = {
    "ascii",
    "cp1250",
    "cp1252",
    "cp1254",
    "cp1257",
    "latin_1",
    "iso8859_15",
    "iso8859_2",
    "mac_roman",
}
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

csv.field_size_limit(MAX_CELL_BYTES)

_MAGIC = [
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "a program"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) or Office file"),
    (b"SQLite format 3", "a SQLite database"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
]
_ZIP = b"PK\x03\x04"


class TableError(Exception):
    """A problem that stops reading; str(error) is the message to show."""


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


@dataclass
class RowCount:
    rows: int
    problems: list[Problem]
    problem_total: int


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


def _sniff_binary(head: bytes) -> None:
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise TableError(f"This is {what}, not a table. Save it as CSV or Excel (.xlsx) and upload that.")
    if head.startswith(_ZIP):
        raise TableError(
            "This is a ZIP archive, not a table. Upload the CSV or Excel (.xlsx) file inside it."
        )
    if not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and b"\x00" in head:
        raise TableError(
            "This file contains binary data, not text. Save it as CSV or Excel (.xlsx) and upload that."
        )


def _is_xlsx(head: bytes) -> bool:
    return head.startswith(_ZIP) and (b"xl/" in head or b"[Content_Types].xml" in head)


def detect_encoding(head: bytes) -> str:
    """The encoding of a file from its first bytes; BOMs first, then charset-normalizer."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        # Cut at the last newline so a multi-byte character split by the head is not an error.
        head[: head.rfind(b"\n") + 1 or len(head)].decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(head).best()
    if _decodes(head, "cp1252") and (best is None or best.coherence == 0 or best.encoding in _WESTERN):
        # Windows-1252 is what Excel writes in Western locales, and on short samples
        # charset-normalizer often names a neighbour (cp1250) or, with no language
        # detected at all, an East Asian code page. A language it did detect wins.
        return "cp1252"
    if best is None:
        raise TableError(
            "This file does not look like text. Save it as CSV or Excel (.xlsx) and upload that."
        )
    return best.encoding


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


def sniff_delimiter(sample: str) -> str:
    """The delimiter among , ; tab | that splits the sample's lines most consistently."""
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        pass
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    if not lines:
        return ","

    # Fallback: the candidate that appears most often on the header line and as often on the others.
    def score(d: str) -> tuple[int, int]:
        counts = [line.count(d) for line in lines]
        return (sum(1 for c in counts if c == counts[0] and c > 0), counts[0])

    return max(DELIMITERS, key=score)


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
) -> TableInfo:
    """Learn a table's shape from the head of the file only.

    `encoding` and `delimiter`, when given, override detection. Raises TableError for a file
    that cannot be read as a table (empty, binary, no rows, too many columns).
    """
    head = stream.read(HEAD_BYTES)
    stream.seek(0)
    if not head.strip(b" \t\r\n\xef\xbb\xbf\xff\xfe\x00"):
        raise TableError("The file is empty.")
    if _is_xlsx(head):
        return _inspect_xlsx(stream, preview_rows)
    _sniff_binary(head)
    encoding = encoding or detect_encoding(head)
    try:
        text = (
            head.decode(encoding, errors="strict") if len(head) < HEAD_BYTES else _decode_head(head, encoding)
        )
    except (UnicodeDecodeError, LookupError) as exc:
        raise TableError(f"The file cannot be read as {encoding}. Choose another encoding.") from exc
    if delimiter is None:
        delimiter = sniff_delimiter(text[:65536])
    problems: list[Problem] = []
    reader = _reader(io.StringIO(text, newline=""), delimiter)
    try:
        raw_header = next(_skip_blank(reader, ProblemLog()), None)
        if raw_header is None:
            raise TableError("The file is empty.")
        columns = _header(raw_header[1], problems)
        preview: list[list[str]] = []
        log = ProblemLog()
        for _, cells in _rows(reader, len(columns), log, "skip"):
            preview.append(cells)
            if len(preview) >= preview_rows:
                break
    except csv.Error as exc:
        raise TableError(f"The file cannot be read as a table near line {reader.line_num}: {exc}.") from exc
    if not preview and len(head) < HEAD_BYTES:
        raise TableError("The file has a header but no rows.")
    problems.extend(log.items)
    return TableInfo("csv", encoding, delimiter, columns, preview, problems, _stats(columns, preview))


def _decode_head(head: bytes, encoding: str) -> str:
    """Decode the head of a longer file, dropping the last, possibly cut, line."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    text = decoder.decode(head, final=False)
    return text[: text.rfind("\n") + 1] or text


def _reader(text_stream, delimiter: str):
    return csv.reader(text_stream, delimiter=delimiter, strict=False)


def _skip_blank(reader, log: ProblemLog) -> Iterator[tuple[int, list[str]]]:
    for cells in reader:
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            log.add(
                Problem("blank_line", f"Line {reader.line_num} is blank and was skipped.", reader.line_num)
            )
            continue
        yield reader.line_num, cells


def _rows(reader, width: int, log: ProblemLog, bad_rows: str) -> Iterator[tuple[int, list[str]]]:
    """Data rows as (row number, cells of exactly `width`), numbered from 1 over the rows kept.

    The hot loop of every full pass, so blank lines are handled here rather than through
    _skip_blank, and a row of the right width costs one length check.
    """
    number = 0
    for cells in reader:
        count = len(cells)
        if count == width:
            number += 1
            yield number, cells
            continue
        line = reader.line_num
        if count == 0 or (count == 1 and not cells[0].strip()):
            log.add(Problem("blank_line", f"Line {line} is blank and was skipped.", line))
            continue
        if count > width:
            if any(c.strip() for c in cells[width:]):
                if bad_rows == "stop":
                    raise TableError(f"Line {line} has {count} cells but the header has {width}.")
                log.add(
                    Problem(
                        "long_row",
                        f"Line {line} has {count} cells but the header has {width}; the row was skipped.",
                        line,
                    )
                )
                continue
            cells = cells[:width]  # trailing empty cells, as spreadsheets often write: harmless
        else:
            if bad_rows == "stop":
                raise TableError(f"Line {line} has {count} cells but the header has {width}.")
            log.add(
                Problem(
                    "short_row",
                    f"Line {line} has {count} cells but the header has {width}; the missing ones are empty.",
                    line,
                )
            )
            cells = cells + [""] * (width - count)
        number += 1
        yield number, cells


def iter_rows(
    stream: BinaryIO, info: TableInfo, *, bad_rows: str = "skip", problems: ProblemLog | None = None
) -> Iterator[tuple[int, list[str]]]:
    """Every data row as (row number, cells), streamed; row numbers are stable for a given file.

    Rows that do not fit the header are handled as the module docstring says and recorded
    in `problems`; bad_rows="stop" raises TableError at the first one instead.
    """
    log = problems if problems is not None else ProblemLog()
    if info.format == "xlsx":
        yield from _xlsx_rows(stream, info, log)
        return
    text = io.TextIOWrapper(stream, encoding=info.encoding or "utf-8", errors="strict", newline="")
    reader = _reader(text, info.delimiter or ",")
    try:
        rows = _skip_blank(reader, ProblemLog())
        next(rows, None)  # the header
        yield from _rows(reader, len(info.columns), log, bad_rows)
    except UnicodeDecodeError as exc:
        line = _line_of_bad_bytes(stream, info.encoding or "utf-8")
        raise TableError(
            f"Line {line} has characters that are not valid {info.encoding}. "
            "Choose another encoding, or save the file again as UTF-8."
        ) from exc
    except csv.Error as exc:
        raise TableError(f"The file cannot be read as a table near line {reader.line_num}: {exc}.") from exc
    finally:
        text.detach()


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
    bad_rows: str = "skip",
    progress: Callable[[int, int], None] | None = None,
) -> RowCount:
    """One full pass: the number of data rows and the problems met on the way."""
    stream.seek(0, io.SEEK_END)
    total = stream.tell()
    stream.seek(0)
    log = ProblemLog()
    rows = 0
    for rows, _ in iter_rows(stream, info, bad_rows=bad_rows, problems=log):
        if progress and rows % 100_000 == 0:
            progress(stream.tell(), total)
    if progress:
        progress(total, total)
    return RowCount(rows, log.items, log.total)


# --- XLSX -------------------------------------------------------------------------


def _cell_text(value) -> str:
    """A spreadsheet cell as the user sees it: 3 not 3.0, dates in ISO form, TRUE/FALSE."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if hasattr(value, "isoformat"):
        text = value.isoformat()
        return text.removesuffix("T00:00:00")
    return str(value)


def _open_sheet(stream: BinaryIO):
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_filelike(stream)
    except Exception as exc:  # calamine raises its own error types for broken files
        raise TableError(
            "This Excel file cannot be opened; it may be damaged or password-protected."
        ) from exc
    for name in workbook.sheet_names:
        sheet = workbook.get_sheet_by_name(name)
        if sheet.height and sheet.width:
            return name, sheet
    raise TableError("The Excel file is empty: none of its sheets has any cells.")


def _inspect_xlsx(stream: BinaryIO, preview_rows: int) -> TableInfo:
    name, sheet = _open_sheet(stream)
    stream.seek(0)
    rows = sheet.iter_rows()
    problems: list[Problem] = []
    header = next(rows, None)
    columns = _header([_cell_text(v) for v in header], problems)
    info = TableInfo("xlsx", None, None, columns, [], problems, sheet=name)
    for _, cells in _xlsx_rows(stream, info, ProblemLog()):
        info.preview.append(cells)
        if len(info.preview) >= preview_rows:
            break
    stream.seek(0)
    if not info.preview:
        raise TableError("The file has a header but no rows.")
    info.column_stats = _stats(columns, info.preview)
    return info


def _xlsx_rows(stream: BinaryIO, info: TableInfo, log: ProblemLog) -> Iterator[tuple[int, list[str]]]:
    _, sheet = _open_sheet(stream)
    width = len(info.columns)
    number = 0
    for line, values in enumerate(sheet.iter_rows(), start=1):
        if line == 1:
            continue
        cells = [_cell_text(v) for v in values]
        if not any(c.strip() for c in cells):
            log.add(Problem("blank_line", f"Row {line} of the sheet is blank and was skipped.", line))
            continue
        if len(cells) > width:
            if any(c.strip() for c in cells[width:]):
                log.add(
                    Problem(
                        "long_row",
                        f"Row {line} has cells beyond the last named column; they were left out.",
                        line,
                    )
                )
            cells = cells[:width]
        elif len(cells) < width:
            cells += [""] * (width - len(cells))
        number += 1
        yield number, cells
