"""A page of a results file (written by jobs.formats.exports) for the results view: found by its
index, or by one streaming pass when searching or filtering, so memory holds one page whatever the
number of rows.

Rows are numbered 1, 2, … in file order (jobs.formats.tables numbers the rows it keeps), so a
result line's row number is its position plus one.
"""

import csv
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from jobs.formats.exports import INDEX_STEP, unneutralized

STATUSES = ("succeeded", "failed", "not sent")


@dataclass
class Page:
    rows: list[tuple[int, list[str]]]  # (row number, cells as they were before the CSV's apostrophes)
    has_next: bool


def read_page(
    stream: IO[bytes],
    offsets: list[int],
    *,
    start: int,
    size: int,
    status_at: int,
    status: str = "",
    query: str = "",
) -> Page:
    """`size` rows from the `start`-th (0-based) of those matching `status` (a cell of column
    `status_at`) and `query` (text in any cell, whatever its case).

    Without a filter the read starts at the index entry before `start`; with one, the whole file
    may be read, a line at a time. `offsets` is the index written with the file; a file written
    without one is read from its start.
    """
    filtered = bool(status or query)
    first = 0 if filtered else min(start // INDEX_STEP, len(offsets) - 1) if offsets else 0
    stream.seek(offsets[first] if offsets else 0)
    reader = _lines(stream, header=not offsets)
    lines: Iterator[list[str]] = reader
    position = first * INDEX_STEP
    if not filtered:
        lines = itertools.islice(reader, start - position, None)
        position = start
    needle = " ".join(query.split()).casefold()
    matching = (
        (row, cells)
        for row, cells in enumerate(lines, start=position + 1)
        if (not status or (len(cells) > status_at and cells[status_at] == status))
        and (not needle or any(needle in cell.casefold() for cell in cells))
    )
    if filtered:
        matching = itertools.islice(matching, start, None)
    found = list(itertools.islice(matching, size + 1))
    reader.close()  # detaches from the stream now, not when collected
    rows = [(row, [unneutralized(cell) for cell in cells]) for row, cells in found[:size]]
    return Page(rows=rows, has_next=len(found) > size)


def _lines(stream: IO[bytes], *, header: bool) -> Iterator[list[str]]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(text)
        if header:
            next(reader, None)
        yield from reader
    finally:
        text.detach()  # the caller's stream stays open
