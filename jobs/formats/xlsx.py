"""Reading an Excel workbook (.xlsx) row by row, within a memory bound.

An .xlsx file is a zip of XML parts. A 1.6 KB workbook can declare a cell at XFD1048576,
and a reader that builds the sheet as a dense grid then asks for hundreds of gigabytes. So
this reader never builds a grid: it checks each part's declared and uncompressed size, the
sheet's declared extent (`<dimension ref>`), and then streams the sheet's XML, keeping one
row at a time and only the cells within the columns asked for. Missing rows and columns are
never materialised; a cell far to the right costs nothing but a flag.

Pure: takes a binary stream, returns plain strings; raises WorkbookError with a message for
people. Memory is bounded by the shared strings (the workbook's table of texts, which every
reader must hold; its size is capped) plus one row.
"""

import datetime
import re
import xml.etree.ElementTree as ET
import zipfile
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from jobs.formats.textfiles import MAX_COLUMNS

MAX_ROWS = 1_048_576  # Excel's own last row
LAST_COLUMN = 16_384  # XFD, Excel's own last column
# The sheet's XML is streamed, so its size bounds time, not memory: a worker reads some 10 MB
# of it a second (a 1,048,575-row sheet of 5 columns is 250 MB), so 2 GB is a few minutes.
MAX_SHEET_XML_BYTES = 2 * 1024**3
# The shared strings are held in memory (a cell names its text by index), so they are capped.
MAX_SHARED_STRINGS_BYTES = 256 * 1024**2
MAX_SMALL_PART_BYTES = 32 * 1024**2
# A text of Excel's longest, 32,767 characters, is under 400 KB of XML even written as &#...;.
MAX_QUIET_BYTES = 1024**2

_REF = re.compile(r"([A-Z]{1,3})(\d+)$")
_BUILTIN_DATE_FORMATS = set(range(14, 23)) | set(range(27, 37)) | set(range(45, 48)) | set(range(50, 59))
_TIME_ONLY_FORMATS = {18, 19, 20, 21, 45, 46, 47}
_FORMAT_LITERALS = re.compile(r'"[^"]*"|\[[^\]]*\]|\\.|_.|\*.')
_RELATIONSHIP = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


# What zipfile and zlib raise for a damaged archive: a bad CRC or header, a truncated or corrupt
# deflate stream, an encrypted or unsupported entry; ValueError for a damaged number in the XML.
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError, ValueError)


class WorkbookError(Exception):
    """A workbook that cannot be read within the bounds; str(error) is the message to show."""


@dataclass
class Row:
    """One row present in the sheet: its number in the sheet, its cells from column A up to the
    last non-empty one within `width`, and whether a non-empty cell lies beyond `width`."""

    number: int
    cells: list[str]
    beyond: bool


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# The tags read in the hot loop, by their qualified names (transitional and strict OOXML).
_NAMES = {
    f"{{{namespace}}}{name}": name
    for namespace in (
        "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
        "http://purl.oclc.org/ooxml/spreadsheetml/main",
    )
    for name in ("c", "row", "sheetData", "dimension", "v", "is", "si")
}


def column_number(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - 64
    return number


def column_letters(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _is_date_format(code: str) -> bool:
    bare = _FORMAT_LITERALS.sub("", code).lower()
    return any(ch in bare for ch in "dmyhs") and "general" not in bare


def _is_time_format(code: str) -> bool:
    bare = _FORMAT_LITERALS.sub("", code).lower()
    return not any(ch in bare for ch in "dy")


class Workbook:
    """An open .xlsx: its sheets in order, its texts and which styles are dates."""

    def __init__(self, stream: BinaryIO):
        try:
            self.zip = zipfile.ZipFile(stream)
            self.parts = {info.filename: info for info in self.zip.infolist()}
            self.sheets = self._sheets()
            self.date1904, self.date_styles, self.time_styles = self._styles()
        except (*_DAMAGED, ET.ParseError, KeyError) as exc:
            raise WorkbookError(
                "This Excel file cannot be opened; it may be damaged or password-protected."
            ) from exc
        self._strings: _Texts | None = None

    def _xml(self, name: str, cap: int = MAX_SMALL_PART_BYTES) -> ET.Element:
        info = self.parts[name]
        if info.file_size > cap:
            raise WorkbookError(
                f"Part “{name}” of this Excel file is {info.file_size:,} bytes once unpacked; "
                f"at most {cap:,} are read. Copy the table into a new workbook, or save it as CSV."
            )
        return ET.fromstring(self._checked(self.zip.read(name), name))

    @staticmethod
    def _checked(head: bytes, name: str) -> bytes:
        # Excel never writes a DTD; one here can only be an attempt at an entity bomb.
        if b"<!DOCTYPE" in head[:4096] or b"<!ENTITY" in head[:4096]:
            raise WorkbookError(f"Part “{name}” of this Excel file is not what Excel writes; save it again.")
        return head

    def _check_head(self, name: str) -> None:
        with self.zip.open(name) as part:
            self._checked(part.read(4096), name)

    def _sheets(self) -> list[tuple[str, str]]:
        book = self._xml("xl/workbook.xml")
        rels = self._xml("xl/_rels/workbook.xml.rels")
        targets = {
            rel.get("Id"): rel.get("Target", "") for rel in rels if rel.get("Type", "").endswith("/worksheet")
        }
        self.strings_part = "xl/sharedStrings.xml"
        for rel in rels:
            if rel.get("Type", "").endswith("/sharedStrings"):
                target = rel.get("Target", "")
                self.strings_part = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        sheets = []
        for element in book.iter():
            if _local(element.tag) == "sheet" and element.get(_RELATIONSHIP) in targets:
                target = targets[element.get(_RELATIONSHIP)]
                path = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
                if path in self.parts:
                    sheets.append((element.get("name", ""), path))
        self._date1904_flag = any(
            _local(e.tag) == "workbookPr" and e.get("date1904") in ("1", "true") for e in book.iter()
        )
        return sheets

    def _styles(self) -> tuple[bool, set[int], set[int]]:
        if "xl/styles.xml" not in self.parts:
            return self._date1904_flag, set(), set()
        styles = self._xml("xl/styles.xml")
        custom = {
            int(e.get("numFmtId", -1)): e.get("formatCode", "")
            for e in styles.iter()
            if _local(e.tag) == "numFmt"
        }
        dates, times = set(), set()
        for child in styles:
            if _local(child.tag) != "cellXfs":
                continue
            for index, xf in enumerate(child):
                fmt = int(xf.get("numFmtId", 0))
                if fmt in _BUILTIN_DATE_FORMATS or (fmt in custom and _is_date_format(custom[fmt])):
                    dates.add(index)
                    if fmt in _TIME_ONLY_FORMATS or (fmt in custom and _is_time_format(custom[fmt])):
                        times.add(index)
        return self._date1904_flag, dates, times

    def strings(self) -> "_Texts":
        """The shared strings, read from their XML as far as the cells read so far need.

        Excel numbers its texts in the order it first meets them, so the head of a sheet needs
        the head of the table: the upload page reads a few texts, not a million.
        """
        if self._strings is None:
            name = self.strings_part
            if name not in self.parts:
                self._strings = _Texts(iter(()))
                return self._strings
            info = self.parts[name]
            if info.file_size > MAX_SHARED_STRINGS_BYTES:
                raise WorkbookError(
                    f"The texts of this Excel file take {info.file_size / 1024**2:,.0f} MB once "
                    f"unpacked; at most {MAX_SHARED_STRINGS_BYTES // 1024**2} MB are read. "
                    "Save it as CSV and upload that, or split it."
                )
            self._check_head(name)
            self._strings = _Texts(self._read_strings(name))
        return self._strings

    def _read_strings(self, name: str) -> Iterator[str]:
        with self.zip.open(name) as part:
            # As for rows: when a text starts, the one before it is complete.
            table = previous = None
            for element in _start_events(part, "The texts of this Excel file"):
                if table is None:
                    table = element
                elif _NAMES.get(element.tag) == "si":
                    if previous is not None:
                        yield _text_of(previous)
                    table.clear()
                    previous = element
            if previous is not None:
                yield _text_of(previous)

    def first_sheet_with_cells(self) -> str:
        for name, _ in self.sheets:
            if next(self.rows(name, MAX_COLUMNS, header=True), None) is not None:
                return name
        raise WorkbookError("The Excel file is empty: none of its sheets has any cells.")

    def rows(self, sheet: str, width: int, *, header: bool = False) -> Iterator[Row]:
        """The rows of `sheet` that have a non-empty cell, in order, each cut at `width` columns.

        `header=True` refuses a non-empty cell beyond `width` (the column cap) instead of flagging it.
        """
        path = dict(self.sheets)[sheet]
        info = self.parts[path]
        if info.file_size > MAX_SHEET_XML_BYTES:
            raise WorkbookError(
                f"The sheet “{sheet}” is {info.file_size / 1024**3:,.1f} GB once unpacked; at most "
                f"{MAX_SHEET_XML_BYTES // 1024**3} GB are read. Split it into smaller files."
            )
        try:
            self._check_head(path)
            with self.zip.open(path) as part:
                yield from self._stream(sheet, part, width, header, self.strings)
        except ET.ParseError as exc:
            raise WorkbookError(f"The sheet “{sheet}” cannot be read: its XML is damaged ({exc}).") from exc
        except _DAMAGED as exc:
            raise WorkbookError(f"The sheet “{sheet}” cannot be read: the file is damaged.") from exc

    def _stream(self, sheet: str, part, width: int, header: bool, strings) -> Iterator[Row]:
        # Only start events, half as many as start and end: when a row starts, the one before
        # it is complete, so it is read then, and the rows read so far are dropped from the tree.
        sheet_data = row = None
        row_number = cell_count = 0
        for element in _start_events(part, f"The sheet “{sheet}”"):
            name = _NAMES.get(element.tag)
            if name == "c":
                cell_count += 1
                if cell_count > LAST_COLUMN:  # more cells than a row can have: kept none of them
                    raise WorkbookError(
                        f"Row {row_number:,} of the sheet “{sheet}” has more than {LAST_COLUMN:,} cells, "
                        "Excel's most. Save the sheet again from Excel."
                    )
            elif name == "row":
                if row is not None and (done := self._row(row, row_number, sheet, width, header, strings)):
                    yield done
                if sheet_data is not None:
                    sheet_data.clear()
                row, cell_count, previous = element, 0, row_number
                row_number = int(element.get("r") or row_number + 1)
                # Excel writes rows in order; a row repeated would let a small file take hours.
                if row_number <= previous:
                    raise WorkbookError(
                        f"The sheet “{sheet}” lists row {row_number:,} after row {previous:,}; "
                        "it may be damaged. Save it again from Excel."
                    )
                if row_number > MAX_ROWS:
                    raise WorkbookError(
                        f"The sheet “{sheet}” has a row numbered {row_number:,}; Excel stops at "
                        f"{MAX_ROWS:,}. Save the sheet again from Excel."
                    )
            elif name == "sheetData":
                sheet_data = element
            elif name == "dimension":
                _check_dimension(sheet, element.get("ref", ""))
        if row is not None and (done := self._row(row, row_number, sheet, width, header, strings)):
            yield done

    def _row(self, row: ET.Element, number: int, sheet: str, width: int, header: bool, strings) -> Row | None:
        """The cells of a complete <row> within `width`, or None for a row without text."""
        cells: dict[int, str] = {}
        beyond = False
        column = 0
        for cell in row:
            if _NAMES.get(cell.tag) != "c":
                continue
            ref = cell.get("r")
            match = _REF.match(ref) if ref else None
            previous, column = column, column_number(match.group(1)) if match else column + 1
            if column <= previous:
                raise WorkbookError(
                    f"The sheet “{sheet}” lists cell {ref} after {column_letters(previous)}{number}; "
                    "it may be damaged. Save it again from Excel."
                )
            if column > LAST_COLUMN:
                raise WorkbookError(
                    f"Row {number:,} of the sheet “{sheet}” has a cell beyond column XFD, "
                    "Excel's last. Save the sheet again from Excel."
                )
            text = self._value(cell, strings, sheet, number, column)
            if not text.strip():
                continue
            if column <= width:
                cells[column] = text
            elif header:
                raise WorkbookError(
                    f"The first row of the sheet “{sheet}” has a cell in column "
                    f"{column_letters(column)}; at most {MAX_COLUMNS:,} columns are supported. "
                    "Remove the columns you do not need and upload again."
                )
            else:
                beyond = True
        if cells:
            return Row(number, [cells.get(c, "") for c in range(1, max(cells) + 1)], beyond)
        return Row(number, [], True) if beyond else None

    def _value(self, cell: ET.Element, strings, sheet: str, row: int, column: int) -> str:
        kind = cell.get("t", "n")
        value = None
        for child in cell:
            name = _NAMES.get(child.tag)
            if name == "v":
                value = child.text or ""
            elif name == "is":
                return _text_of(child)
        if value is None:
            return ""
        if kind == "s":
            table = strings()
            try:
                return table[int(value)]
            except (ValueError, IndexError):
                raise WorkbookError(
                    f"Cell {column_letters(column)}{row} of the sheet “{sheet}” refers to a text the "
                    "file does not have; it may be damaged. Save it again from Excel."
                ) from None
        if kind == "b":
            return "TRUE" if value.strip() == "1" else "FALSE"
        if kind == "d":
            return value.removesuffix("T00:00:00")
        if kind in ("str", "e", "inlineStr"):
            return value
        try:
            number = float(value)
        except ValueError:
            return value
        style = int(cell.get("s") or 0)
        if style in self.date_styles:
            return self._date(number, time_only=style in self.time_styles) or _number_text(number)
        return _number_text(number)

    def _date(self, serial: float, *, time_only: bool) -> str | None:
        if time_only and 0 <= serial < 1:
            seconds = round(serial * 86400)
            return (datetime.datetime.min + datetime.timedelta(seconds=seconds)).time().isoformat()
        if self.date1904:
            base = datetime.datetime(1904, 1, 1)
        else:
            # Excel counts a 29 February 1900 that never was; serials before it start a day later.
            base = datetime.datetime(1899, 12, 31 if serial < 60 else 30)
        try:
            moment = base + datetime.timedelta(milliseconds=round(serial * 86_400_000))
        except OverflowError:
            return None
        return moment.isoformat().removesuffix("T00:00:00")


class _Texts:
    """The shared strings, read on demand from `source` and packed in a few large strings with an
    array of offsets.

    As a list, a table of millions of two-letter texts would cost some 60 bytes a text; packed,
    it costs its characters and 4 bytes a text.
    """

    BATCH = 4096

    def __init__(self, source: Iterator[str]):
        self.source: Iterator[str] | None = source
        self.chunks: list[str] = []
        self.starts = array("I")
        self.batch: list[str] = []
        self.position = 0

    def _read_to(self, index: int) -> None:
        while self.source is not None and index >= len(self.starts):
            text = next(self.source, None)
            if text is None:
                self.source = None
                break
            self.starts.append(self.position)
            self.position += len(text)
            self.batch.append(text)
            if len(self.batch) == self.BATCH:
                self.chunks.append("".join(self.batch))
                self.batch, self.position = [], 0

    def __getitem__(self, index: int) -> str:
        self._read_to(index)
        if not 0 <= index < len(self.starts):
            raise IndexError(index)
        if index // self.BATCH == len(self.chunks):  # in the batch not yet packed
            return self.batch[index % self.BATCH]
        chunk = self.chunks[index // self.BATCH]
        following = index + 1
        end = (
            self.starts[following] if following % self.BATCH and following < len(self.starts) else len(chunk)
        )
        return chunk[self.starts[index] : end]


def _start_events(part, what: str) -> Iterator[ET.Element]:
    """Each element of the XML in `part` as it starts, the XML read in small pieces.

    The parser gathers a text whole before it shows its element's end, so a text of a gigabyte
    (a few KB compressed) would be held whole. Excel's texts are at most 32,767 characters, so a
    stretch of XML without a new element longer than MAX_QUIET_BYTES is refused as it is read.
    """
    parser = ET.XMLPullParser(events=("start",))
    quiet = 0
    while chunk := part.read(1 << 16):
        parser.feed(chunk)
        quiet += len(chunk)
        for _, element in parser.read_events():
            quiet = 0
            yield element
        if quiet > MAX_QUIET_BYTES:
            raise WorkbookError(
                f"{what} has a text longer than Excel allows (32,767 characters); it may be damaged. "
                "Save it again from Excel, or save it as CSV."
            )
    parser.close()
    for _, element in parser.read_events():
        yield element


def _number_text(number: float) -> str:
    """A number as the user sees it: 3, not 3.0."""
    if number.is_integer():
        return str(int(number))
    return repr(number)


def _text_of(element: ET.Element) -> str:
    """The text of a shared or inline string: its <t>, or the <t> of each run; not phonetic hints."""
    parts = []
    for child in element:
        name = _local(child.tag)
        if name == "t":
            parts.append(child.text or "")
        elif name == "r":
            parts.extend(t.text or "" for t in child if _local(t.tag) == "t")
    return "".join(parts)


def _check_dimension(sheet: str, ref: str) -> None:
    """Refuse a sheet that declares an absurd extent before reading any of its rows."""
    last = ref.split(":")[-1].replace("$", "").upper()
    match = _REF.match(last)
    if not match:
        return
    columns, rows = column_number(match.group(1)), int(match.group(2))
    if columns > MAX_COLUMNS:
        raise WorkbookError(
            f"The sheet “{sheet}” says it reaches column {match.group(1)} ({columns:,} columns); at most "
            f"{MAX_COLUMNS:,} columns are read. Delete the columns to the right of your table, or copy "
            "the table into a new workbook, and upload again."
        )
    if rows > MAX_ROWS:
        raise WorkbookError(
            f"The sheet “{sheet}” says it has {rows:,} rows; Excel stops at {MAX_ROWS:,}. "
            "Save the sheet again from Excel."
        )
