"""Reading an Excel workbook (.xlsx) row by row, within a memory bound.

An .xlsx file is a zip of XML parts. A 1.6 KB workbook can declare a cell at XFD1048576,
and a reader that builds the sheet as a dense grid then asks for hundreds of gigabytes. So
this reader never builds a grid: it checks each part's declared and uncompressed size, the
sheet's declared extent (`<dimension ref>`), and then streams the sheet's XML, keeping one
row at a time and only the cells within the columns asked for. Missing rows and columns are
never materialised; a cell far to the right costs nothing but a flag.

Pure: takes a binary stream, returns plain strings; raises WorkbookError with a message for
people. Memory is bounded by the shared strings (the workbook's table of texts, read as far
as the cells need, packed, its size capped) plus one row; the pieces it streams are in
jobs.formats.xlsxparts.
"""

import datetime

# Only types and errors come from the standard library's ElementTree: every byte is parsed by
# defusedxml, which refuses DTDs and entities (billion laughs, external entities).
import xml.etree.ElementTree as ET  # nosec B405
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import defusedxml.ElementTree as defused
from defusedxml import DefusedXmlException

from jobs.formats.textfiles import MAX_COLUMNS
from jobs.formats.xlsxparts import (
    BUILTIN_DATE_FORMATS,
    CELL_REFERENCE,
    TAGS,
    TIME_ONLY_FORMATS,
    Texts,
    WorkbookError,
    column_letters,
    column_number,
    is_date_format,
    is_time_format,
    local_name,
    number_text,
    start_events,
    text_of,
)

MAX_ROWS = 1_048_576  # Excel's own last row
LAST_COLUMN = 16_384  # XFD, Excel's own last column
# The sheet's XML is streamed, so its size bounds time, not memory: a worker reads some 10 MB
# of it a second (a 1,048,575-row sheet of 5 columns is 250 MB), so 2 GB is a few minutes.
MAX_SHEET_XML_BYTES = 2 * 1024**3
# The shared strings are held in memory (a cell names its text by index), so they are capped.
MAX_SHARED_STRINGS_BYTES = 256 * 1024**2
MAX_SMALL_PART_BYTES = 32 * 1024**2
# The list of sheets and their relationships are read as trees: a workbook of hundreds of
# sheets lists them in under 1 MB.
MAX_LIST_PART_BYTES = 4 * 1024**2

# The parts of styles.xml, each read and let go in turn.
_STYLE_SECTIONS = {
    "numFmts",
    "fonts",
    "fills",
    "borders",
    "cellStyleXfs",
    "cellXfs",
    "cellStyles",
    "dxfs",
    "tableStyles",
    "colors",
    "extLst",
}
_RELATIONSHIP = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


# What zipfile and zlib raise for a damaged archive: a bad CRC or header, a truncated or corrupt
# deflate stream, an encrypted or unsupported entry; ValueError for a damaged number in the XML.
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError, ValueError)


@dataclass
class Row:
    """One row present in the sheet: its number in the sheet, its cells from column A up to the
    last non-empty one within `width`, and whether a non-empty cell lies beyond `width`."""

    number: int
    cells: list[str]
    beyond: bool


class Workbook:
    """An open .xlsx: its sheets in order, its texts and which styles are dates."""

    def __init__(self, stream: BinaryIO):
        try:
            self.zip = zipfile.ZipFile(stream)
            self.parts = {info.filename: info for info in self.zip.infolist()}
            self.sheets = self._sheets()
            self.date1904, self.date_styles, self.time_styles = self._styles()
        except (*_DAMAGED, ET.ParseError, DefusedXmlException, KeyError) as exc:
            raise WorkbookError(
                "This Excel file cannot be opened; it may be damaged or password-protected."
            ) from exc
        self._strings: Texts | None = None

    def _check_size(self, name: str, cap: int) -> None:
        size = self.parts[name].file_size
        if size > cap:
            raise WorkbookError(
                f"Part “{name}” of this Excel file is {size:,} bytes once unpacked; "
                f"at most {cap:,} are read. Copy the table into a new workbook, or save it as CSV."
            )

    def _xml(self, name: str, cap: int = MAX_LIST_PART_BYTES) -> ET.Element:
        """A small part (the list of sheets, their relationships) as a tree."""
        self._check_size(name, cap)
        return defused.fromstring(self._checked(self.zip.read(name), name), forbid_dtd=True)

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
        # Hidden ("hidden" or "veryHidden") sheets are offered last resort and marked as such.
        self.hidden: set[str] = set()
        for element in book.iter():
            if local_name(element.tag) == "sheet" and element.get(_RELATIONSHIP) in targets:
                target = targets[element.get(_RELATIONSHIP)]
                path = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
                if path in self.parts:
                    sheets.append((element.get("name", ""), path))
                    if element.get("state", "visible") != "visible":
                        self.hidden.add(element.get("name", ""))
        self._date1904_flag = any(
            local_name(e.tag) == "workbookPr" and e.get("date1904") in ("1", "true") for e in book.iter()
        )
        return sheets

    def _styles(self) -> tuple[bool, set[int], set[int]]:
        """Which cell formats (by index) show dates, and which of those times only.

        Streamed, keeping nothing but those indexes: a style table of millions of entries is
        a few MB of XML and would be hundreds of MB as a tree.
        """
        name = "xl/styles.xml"
        dates: set[int] = set()
        times: set[int] = set()
        if name not in self.parts:
            return self._date1904_flag, dates, times
        self._check_size(name, MAX_SMALL_PART_BYTES)
        self._check_head(name)
        custom: dict[int, str] = {}
        section, index = "", 0
        root = parent = None
        with self.zip.open(name) as part:
            for element in start_events(part, "The styles of this Excel file"):
                tag = local_name(element.tag)
                if root is None:
                    root = element
                elif tag in _STYLE_SECTIONS:
                    section, parent = tag, element
                    root.clear()  # the sections read so far: keep none of them
                elif tag == "numFmt":
                    custom[int(element.get("numFmtId", -1))] = element.get("formatCode", "")
                elif tag == "xf" and section == "cellXfs":
                    fmt = int(element.get("numFmtId", 0))
                    if fmt in BUILTIN_DATE_FORMATS or (fmt in custom and is_date_format(custom[fmt])):
                        dates.add(index)
                        if fmt in TIME_ONLY_FORMATS or (fmt in custom and is_time_format(custom[fmt])):
                            times.add(index)
                    index += 1
                if parent is not None and len(parent) > 100:
                    parent.clear()  # the entries read so far: keep none of them
        return self._date1904_flag, dates, times

    def strings(self) -> "Texts":
        """The shared strings, read from their XML as far as the cells read so far need.

        Excel numbers its texts in the order it first meets them, so the head of a sheet needs
        the head of the table: the upload page reads a few texts, not a million.
        """
        if self._strings is None:
            name = self.strings_part
            if name not in self.parts:
                self._strings = Texts(iter(()))
                return self._strings
            info = self.parts[name]
            if info.file_size > MAX_SHARED_STRINGS_BYTES:
                raise WorkbookError(
                    f"The texts of this Excel file take {info.file_size / 1024**2:,.0f} MB once "
                    f"unpacked; at most {MAX_SHARED_STRINGS_BYTES // 1024**2} MB are read. "
                    "Save it as CSV and upload that, or split it."
                )
            self._check_head(name)
            self._strings = Texts(self._read_strings(name))
        return self._strings

    def _read_strings(self, name: str) -> Iterator[str]:
        with self.zip.open(name) as part:
            # As for rows: when a text starts, the one before it is complete.
            table = previous = None
            for element in start_events(part, "The texts of this Excel file"):
                if table is None:
                    table = element
                elif TAGS.get(element.tag) == "si":
                    if previous is not None:
                        yield text_of(previous)
                    table.clear()
                    previous = element
            if previous is not None:
                yield text_of(previous)

    def first_sheet_with_cells(self) -> str:
        """The sheet read unless the user picks another: the first visible one with cells, else hidden."""
        ordered = sorted(self.sheets, key=lambda sheet: sheet[0] in self.hidden)
        for name, _ in ordered:
            if self.has_cells(name):
                return name
        raise WorkbookError("The Excel file is empty: none of its sheets has any cells.")

    def has_cells(self, sheet: str) -> bool:
        return next(self.rows(sheet, MAX_COLUMNS, header=True), None) is not None

    def listing(self) -> list[dict]:
        """Every sheet in the workbook's order, and whether Excel hides it."""
        return [{"name": name, "hidden": name in self.hidden} for name, _ in self.sheets]

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
        except (ET.ParseError, DefusedXmlException) as exc:
            raise WorkbookError(f"The sheet “{sheet}” cannot be read: its XML is damaged ({exc}).") from exc
        except _DAMAGED as exc:
            raise WorkbookError(f"The sheet “{sheet}” cannot be read: the file is damaged.") from exc

    def _stream(self, sheet: str, part, width: int, header: bool, strings) -> Iterator[Row]:
        # Only start events, half as many as start and end: when a row starts, the one before
        # it is complete, so it is read then, and the rows read so far are dropped from the tree.
        sheet_data = row = None
        row_number = cell_count = 0
        for element in start_events(part, f"The sheet “{sheet}”"):
            name = TAGS.get(element.tag)
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
            if TAGS.get(cell.tag) != "c":
                continue
            ref = cell.get("r")
            match = CELL_REFERENCE.match(ref) if ref else None
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
            name = TAGS.get(child.tag)
            if name == "v":
                value = child.text or ""
            elif name == "is":
                return text_of(child)
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
            return self._date(number, time_only=style in self.time_styles) or number_text(number)
        return number_text(number)

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


def _check_dimension(sheet: str, ref: str) -> None:
    """Refuse a sheet that declares an absurd extent before reading any of its rows."""
    last = ref.split(":")[-1].replace("$", "").upper()
    match = CELL_REFERENCE.match(last)
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
