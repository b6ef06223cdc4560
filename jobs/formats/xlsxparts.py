"""The pieces of an Excel workbook (.xlsx) that jobs.formats.xlsx streams, each within a bound.

Pure: the XML of a part as start events (a text longer than Excel allows is refused before it
is held), the shared texts packed, cell references, which number formats are dates, and a
cell's value as the user sees it.
"""

import re

# Only the element type and the pull parser's shell come from the standard library: every byte is
# parsed by defusedxml's parser, which refuses DTDs and entities (billion laughs, external entities).
import xml.etree.ElementTree as ET  # nosec B405
from array import array
from collections.abc import Iterator

from defusedxml.ElementTree import DefusedXMLParser

# A text of Excel's longest, 32,767 characters, is under 400 KB of XML even written as &#...;.
MAX_QUIET_BYTES = 1024**2

CELL_REFERENCE = re.compile(r"([A-Z]{1,3})(\d+)$")
BUILTIN_DATE_FORMATS = set(range(14, 23)) | set(range(27, 37)) | set(range(45, 48)) | set(range(50, 59))
TIME_ONLY_FORMATS = {18, 19, 20, 21, 45, 46, 47}
_FORMAT_LITERALS = re.compile(r'"[^"]*"|\[[^\]]*\]|\\.|_.|\*.')


class WorkbookError(Exception):
    """A workbook that cannot be read within the bounds; str(error) is the message to show."""


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# The tags read in the hot loop, by their qualified names (transitional and strict OOXML).
TAGS = {
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


def is_date_format(code: str) -> bool:
    bare = _FORMAT_LITERALS.sub("", code).lower()
    return any(ch in bare for ch in "dmyhs") and "general" not in bare


def is_time_format(code: str) -> bool:
    bare = _FORMAT_LITERALS.sub("", code).lower()
    return not any(ch in bare for ch in "dy")


class Texts:
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


def start_events(part, what: str) -> Iterator[ET.Element]:
    """Each element of the XML in `part` as it starts, the XML read in small pieces.

    The parser gathers a text whole before it shows its element's end, so a text of a gigabyte
    (a few KB compressed) would be held whole. Excel's texts are at most 32,767 characters, so a
    stretch of XML without a new element longer than MAX_QUIET_BYTES is refused as it is read.
    """
    safe = DefusedXMLParser(target=ET.TreeBuilder(), forbid_dtd=True, forbid_entities=True)
    parser = ET.XMLPullParser(events=("start",), _parser=safe)
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


def number_text(number: float) -> str:
    """A number as the user sees it: 3, not 3.0."""
    if number.is_integer():
        return str(int(number))
    return repr(number)


def text_of(element: ET.Element) -> str:
    """The text of a shared or inline string: its <t>, or the <t> of each run; not phonetic hints."""
    parts = []
    for child in element:
        name = local_name(child.tag)
        if name == "t":
            parts.append(child.text or "")
        elif name == "r":
            parts.extend(t.text or "" for t in child if local_name(t.tag) == "t")
    return "".join(parts)
