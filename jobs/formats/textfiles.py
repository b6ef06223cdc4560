"""Reading delimited text: which encoding and separator a file uses, and its records, bounded.

Pure, and the lower half of jobs.formats.tables: `detect_encoding` and `sniff_delimiter`
learn the file's settings from its head; `records` splits it into records for the csv
module, checking each physical line before the csv module splits it (the cell cap), and
keeping a lone CR as text when the file's lines end in LF.
"""

import codecs
import csv
import io
import itertools
import re
from collections.abc import Iterator

from charset_normalizer import from_bytes

MAX_COLUMNS = 1000

# About a million tokens: more than any model reads at once, so a longer cell is a broken file
# (most often a quote that is never closed), not a prompt.
MAX_CELL_CHARS = 4 * 1024 * 1024
# A physical line is read whole before anything can look at it, so it is capped too.
MAX_LINE_CHARS = 2 * MAX_CELL_CHARS
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
# Stands in for a lone CR while the csv module splits a line (it would end the record there).
_CR = "\uffff"
_LONE_CR = re.compile(r"\r(?!\n)")

csv.field_size_limit(MAX_CELL_CHARS)

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


def sniff_binary(head: bytes, encoding: str | None = None) -> None:
    """Refuse a file that is not text (by its magic bytes, or NULs that are not UTF-16's), by name."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise TableError(f"This is {what}, not a table. Save it as CSV or Excel (.xlsx) and upload that.")
    if head.startswith(_ZIP):
        raise TableError(
            "This is a ZIP archive, not a table. Upload the CSV or Excel (.xlsx) file inside it."
        )
    utf16 = is_utf16(encoding) or head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if b"\x00" in head and not utf16:
        if not utf16_byte_order(head):
            raise TableError(
                "This file contains binary data, not text. Save it as CSV or Excel (.xlsx) and upload "
                "that; if it is text saved as UTF-16 (“Unicode text”), choose UTF-16 under “Characters”."
            )
        if encoding:
            raise TableError(
                f"This file is UTF-16 text (“Unicode text”), not {encoding}: choose UTF-16 under "
                "“Characters”, or save it as CSV UTF-8 and upload that."
            )


def is_xlsx(head: bytes) -> bool:
    return head.startswith(_ZIP) and (b"xl/" in head or b"[Content_Types].xml" in head)


def is_utf16(encoding: str | None) -> bool:
    return bool(encoding) and encoding.lower().replace("_", "-").startswith("utf-16")


def utf16_byte_order(head: bytes) -> str | None:
    """The byte order, "utf-16-le" or "utf-16-be", of UTF-16 text without a byte-order mark.

    Judged by its NUL bytes: text in UTF-16 has a NUL beside every ASCII character (digits,
    separators, line ends), on the odd bytes in little-endian order, on the even ones in
    big-endian; binary data has NULs scattered on both sides.
    """
    sample = head[:65536]
    sample = sample[: len(sample) - len(sample) % 2]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    pairs = len(sample) // 2
    for nuls, other, order in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        # Line ends, separators and digits are ASCII even in a table of Chinese text, so some NULs
        # are on one side; on the other, only the rare character whose code ends in 00.
        if nuls >= pairs * 0.05 and other <= nuls * 0.1:
            try:
                text = codecs.getincrementaldecoder(order)().decode(sample, final=False)
            except UnicodeDecodeError:
                continue
            if "\n" in text or "\r" in text:  # a table has a line end; binary data seldom has one
                return order
    return None


def detect_encoding(head: bytes) -> str:
    """The encoding of a file from its first bytes; BOMs first, then charset-normalizer."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head and (order := utf16_byte_order(head)):
        return order
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
        sniffed = csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        sniffed = None
    if sniffed and _columns_with(sample, sniffed) != 1:
        return sniffed  # consistent columns, or ragged rows to report: the sniffer's choice stands
    # The sniffer gave up, or chose a separator that makes one column: a separator that gives
    # every line the same number of columns, more than one, is the right one.
    if better := other_delimiter(sample, sniffed or ""):
        return better[0]
    if sniffed:
        return sniffed
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    if not lines:
        return ","
    if not any(d in lines[0] for d in DELIMITERS):
        # A header of one column, whose cells may hold commas: a separator that keeps every line whole.
        for candidate in DELIMITERS:
            if _columns_with(sample, candidate) == 1:
                return candidate

    # Fallback: the candidate that appears most often on the header line and as often on the others.
    def score(d: str) -> tuple[int, int]:
        counts = [line.count(d) for line in lines]
        return (sum(1 for c in counts if c == counts[0] and c > 0), counts[0])

    return max(DELIMITERS, key=score)


def lf_line_ends(text: str) -> bool:
    """Whether a file's lines end in LF (or CRLF), so that a lone CR in it is text.

    Judged by count: a file of CR lines (old Macs) may hold an LF inside a quoted cell, and a
    file of LF lines may hold lone CRs inside its cells; the line ends are the more numerous.
    """
    lf = text.count("\n")
    return lf > 0 and lf >= text.count("\r") - text.count("\r\n")


def _columns_with(sample: str, delimiter: str) -> int | None:
    """The number of columns if every non-blank record of the sample has the same, else None."""
    if lf_line_ends(sample):
        # Lines end in LF, so a lone CR is text (see records); the last line of a head may be cut.
        sample = _LONE_CR.sub(" ", sample[: sample.rfind("\n") + 1])
    try:
        widths = {
            len(cells)
            for cells in itertools.islice(
                csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter), 50
            )
            if any(c.strip() for c in cells)
        }
    except csv.Error:
        return None
    return widths.pop() if len(widths) == 1 else None


def other_delimiter(sample: str, delimiter: str) -> tuple[str, int] | None:
    """Another separator that gives every line of the sample the same columns, more than one."""
    for candidate in DELIMITERS:
        if candidate != delimiter and candidate in sample:
            columns = _columns_with(sample, candidate)
            if columns and columns > 1:
                return candidate, columns
    return None


def separator_advice(sample: str | None, delimiter: str) -> str:
    better = other_delimiter(sample, delimiter) if sample else None
    if better:
        name = DELIMITER_NAMES[better[0]]
        return (
            f"Separated by {name}s instead, every line has {better[1]} columns: choose "
            f"“{name.capitalize()}” under “Columns separated by” and read the file again."
        )
    return "Check the separator under “Columns separated by”, or fix those rows in the file."


def no_rows_reason(kinds: set[str], width: int, delimiter: str | None, sample: str | None = None) -> str:
    """Why a file with a header has no row, in words that point at the likely cause."""
    if "long_row" in kinds and delimiter:
        return (
            f"No row could be read: every row has more cells than the header's {width} when columns "
            f"are separated by {DELIMITER_NAMES.get(delimiter, delimiter)}s. "
            + separator_advice(sample, delimiter)
        )
    if "short_row" in kinds:
        return "No row could be read: every row has fewer cells than the header, and such rows are skipped."
    return "The file has a header but no rows."


class _Reading:
    """Where the line reader is: the first line of the record csv.reader is reading (set by `records`
    before each, from the reader's count of lines; None when read in blocks), and whether a lone CR
    was swapped out of it."""

    __slots__ = ("start", "had_cr")

    def __init__(self, start: int | None = 1):
        self.start = start
        self.had_cr = False


class _RecordByRecord(Exception):
    """A check in block reading that needs to know where a record starts."""


# Characters read at a time from a file whose lines end in LF, checked in one go: few enough that a
# chunk of a narrow table holds fewer than MAX_COLUMNS separators, so its lines need no count.
CHUNK_CHARS = 1 << 14


def _lines(text_stream, delimiter: str, lf: bool, at: _Reading) -> Iterator[str]:
    """The physical lines csv.reader asks for, checked before it splits them.

    A file whose lines end in LF is read a chunk at a time and each chunk checked whole: one with
    no lone CR and no line long enough to hold MAX_COLUMNS separators, the usual case, is handed
    over as a StringIO, whose lines csv.reader takes without a step of Python per line. Other
    chunks, and files read by CR lines, are checked line by line.
    """
    if not lf:
        lines = iter(lambda: text_stream.readline(MAX_LINE_CHARS), "")
        return (_checked(line, number, delimiter, lf, at) for number, line in enumerate(lines, 1))
    return itertools.chain.from_iterable(_lf_chunks(text_stream, delimiter, at))


def _lf_chunks(text_stream, delimiter: str, at: _Reading) -> Iterator[Iterator[str]]:
    """The lines of a file whose lines end in LF, a chunk of whole lines at a time (see _lines)."""
    number = 0  # lines handed over so far
    tail = ""
    while chunk := text_stream.read(CHUNK_CHARS):
        text = tail + chunk
        end = text.rfind("\n") + 1
        text, tail = text[:end], text[end:]
        # A CR only before an LF (Windows line ends) is no lone CR.
        lone_cr = "\r" in text and text.count("\r") != text.count("\r\n")
        # A chunk of few separators has no line of too many; the lines of the others are counted.
        lines = text.split("\n")[:-1] if text.count(delimiter) >= MAX_COLUMNS else None
        many = lines is not None and max(map(str.count, lines, itertools.repeat(delimiter))) >= MAX_COLUMNS
        if lone_cr or len(text) >= MAX_LINE_CHARS or many:
            lines = lines if lines is not None else text.split("\n")[:-1]
            numbered = enumerate(lines, number + 1)
            yield (_checked(line + "\n", at_line, delimiter, True, at) for at_line, line in numbered)
            number += len(lines)
        elif text:
            yield io.StringIO(text)
            number += text.count("\n")
        if len(tail) >= MAX_LINE_CHARS:  # the next line has no end in sight: its head is checked
            _checked(tail[:MAX_LINE_CHARS], number + 1, delimiter, True, at)
    if tail:
        yield iter([_checked(tail, number + 1, delimiter, True, at)])


def _checked(line: str, number: int, delimiter: str, lf: bool, at: _Reading) -> str:
    """One physical line, number `number`, checked; a lone CR in it swapped for csv.reader."""
    if lf and "\r" in line:
        end = 2 if line.endswith("\r\n") else 1 if line.endswith("\n") else 0
        body = line[: len(line) - end]
        if "\r" in body:
            line = body.replace("\r", _CR) + line[len(body) :]
            at.had_cr = True
    # The csv module would build a list of every cell first: a 60 MB line of commas is
    # sixty million of them. Count on the raw line (cheap) and refuse before that.
    if line.count(delimiter) >= MAX_COLUMNS and at.start is None:
        raise _RecordByRecord  # read in blocks, where a record starts is not known: see record_blocks
    continuing = number != at.start  # inside a quoted cell: only a quote carries a record over a line end
    if line.count(delimiter) >= MAX_COLUMNS and _cells_on_line(line, delimiter, continuing):
        raise TableError(
            f"Line {number} has more than {MAX_COLUMNS:,} cells; a table may have at most "
            f"{MAX_COLUMNS:,} columns. Check the separator, or fix that line in the file."
        )
    if len(line.rstrip("\r\n") if lf else line) >= MAX_LINE_CHARS and (lf or not line.endswith(("\n", "\r"))):
        _too_long(number)
    return line


def _too_long(number: int) -> None:
    raise TableError(
        f"Line {number} is longer than {MAX_LINE_CHARS:,} characters, more than a row of a "
        "table can be. Check that the file is a table, or split that line."
    )


def _cells_on_line(line: str, delimiter: str, in_quote: bool) -> bool:
    """Whether a line holds more than MAX_COLUMNS cells, quoted separators not counted.

    Follows the csv module: a quote opens a quoted cell only at the start of a cell, and "" inside
    one is a quote. Jumps from quote to separator, and stops as soon as the cap is passed.
    """
    count, i = 1, 0
    if not in_quote and line.startswith('"'):
        in_quote, i = True, 1
    while True:
        if in_quote:
            j = line.find('"', i)
            if j < 0:
                return False
            if line.startswith('"', j + 1):
                i = j + 2
                continue
            in_quote, i = False, j + 1
        j = line.find(delimiter, i)
        if j < 0:
            return False
        count += 1
        if count > MAX_COLUMNS:
            return True
        i = j + 1
        if line.startswith('"', i):
            in_quote, i = True, i + 1


def records(text_stream, delimiter: str, lf: bool) -> Iterator[tuple[int, list[str]]]:
    """Each record as (its last line, its cells), within the bounds of the module docstring."""
    lines = _Reading()
    reader = csv.reader(_lines(text_stream, delimiter, lf, lines), delimiter=delimiter, strict=False)
    while True:
        lines.start = reader.line_num + 1
        if lines.had_cr:
            lines.had_cr = False
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise TableError(
                    f"The cell that starts on line {lines.start} is longer than {MAX_CELL_CHARS:,} "
                    'characters, more than a model reads. If a quote (") opens it and is never '
                    "closed, close it; otherwise shorten that cell."
                ) from exc
            near = reader.line_num
            raise TableError(f"The file cannot be read as a table near line {near}: {exc}.") from exc
        if cells is None:
            return
        if len(cells) > MAX_COLUMNS:  # over several lines of a quoted cell
            raise TableError(
                f"Line {reader.line_num} has {len(cells):,} cells; a table may have at most {MAX_COLUMNS:,} "
                "columns. Check the separator, or fix that line in the file."
            )
        if lines.had_cr:
            cells = [cell.replace(_CR, "\r") for cell in cells]
        yield reader.line_num, cells


# Records per block of record_blocks.
BLOCK_RECORDS = 500


def record_blocks(text_stream, delimiter: str, lf: bool) -> Iterator[tuple[int, list[list[str]]]]:
    """The records of `records`, a block at a time: (the last line of the block, its records).

    csv.reader's records are taken by islice, with no step of Python per record, the loop of every
    full pass over a table; a record's own line, when a message needs it, is counted back from the
    block's last line (record_lines). What needs to know where each record starts (a line of
    MAX_COLUMNS separators, and csv's errors, whose messages name the line a cell starts on) sends
    the reading back to the start of the file to go on record by record from where the blocks
    stopped: the same records, the same messages. A file read by CR lines is read record by record.
    """
    if not lf:
        yield from ((line, [cells]) for line, cells in records(text_stream, delimiter, lf))
        return
    at = _Reading(start=None)
    reader = csv.reader(_lines(text_stream, delimiter, lf, at), delimiter=delimiter, strict=False)
    done = 0
    try:
        while block := list(itertools.islice(reader, BLOCK_RECORDS)):
            if max(map(len, block)) > MAX_COLUMNS:
                raise _RecordByRecord
            if at.had_cr:
                at.had_cr = False
                block = [[cell.replace(_CR, "\r") for cell in cells] for cells in block]
            done += len(block)
            yield reader.line_num, block
        return
    except (csv.Error, _RecordByRecord):
        text_stream.seek(0)
    again = records(text_stream, delimiter, lf)
    for _ in itertools.islice(again, done):
        pass
    yield from ((line, [cells]) for line, cells in again)


def record_lines(block: list[list[str]], last_line: int) -> list[int]:
    """The last line of each record of a block that ends on `last_line`: a record takes one line and
    one more for each line break inside its cells (csv keeps them, and only they carry a record on)."""
    lines = []
    for cells in reversed(block):
        lines.append(last_line)
        last_line -= 1 + sum(map(str.count, cells, itertools.repeat("\n")))
    lines.reverse()
    return lines
