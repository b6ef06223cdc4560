"""A text table read a block of records at a time gives what reading it record by record gives.

The full pass takes csv's records in blocks (textfiles.record_blocks) and numbers a block of
well-formed rows whole; a block with something to report goes record by record, its lines counted
back from the block's end. Each case here lies beyond the first blocks, among multi-line cells, so
that a line counted wrong would show.
"""

import io
import random

import pytest

from jobs.formats import tables, textfiles

HEADER = b"id,text,country\n"


def record_by_record(data: bytes, **policies):
    """The rows and problems of the reading as it was before blocks: one record at a time."""
    info = tables.inspect(io.BytesIO(data), "t.csv")
    text = io.TextIOWrapper(io.BytesIO(data), encoding=info.encoding or "utf-8", newline="\n")
    records = textfiles.records(text, info.delimiter, True)
    next(tables._skip_blank(records, tables.ProblemLog()))  # the header
    log = tables.ProblemLog(limit=10**6)
    rows = list(tables._rows(records, len(info.columns), log, **policies))
    return rows, [(p.kind, p.line, p.message) for p in log.items]


def in_blocks(data: bytes, **policies):
    info = tables.inspect(io.BytesIO(data), "t.csv")
    log = tables.ProblemLog(limit=10**6)
    rows = list(tables.iter_rows(io.BytesIO(data), info, problems=log, **policies))
    return rows, [(p.kind, p.line, p.message) for p in log.items]


def messy_table(seed: int) -> bytes:
    """Thousands of records of every shape: cells over several lines (LF and CRLF inside quotes),
    blank lines, lines of only separators, short and long rows, lone CRs, quotes inside cells."""
    rng = random.Random(seed)
    lines = [HEADER]
    for n in range(1, 6000):
        shape = rng.random()
        if shape < 0.05:
            lines.append(b"\n")
        elif shape < 0.07:
            lines.append(b",,\n")
        elif shape < 0.10:
            lines.append(b"%d,short\n" % n)
        elif shape < 0.13:
            lines.append(b"%d,long,row,with,more\n" % n)
        elif shape < 0.25:
            breaks = b"\r\n" if rng.random() < 0.5 else b"\n"
            lines.append(b'%d,"first%ssecond%sthird",FR\n' % (n, breaks, breaks))
        elif shape < 0.28:
            lines.append(b"%d,lone\rcarriage return,DE\n" % n)
        elif shape < 0.30:
            lines.append(b'%d,"a ""quoted"" word",US\n' % n)
        else:
            lines.append(b"%d,review %d,JP\n" % (n, n))
    return b"".join(lines)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("short_rows", ["pad", "skip"])
def test_a_messy_table_gives_the_same_rows_lines_and_problems_in_blocks_as_record_by_record(seed, short_rows):
    data = messy_table(seed)
    expected = record_by_record(data, long_rows="skip", short_rows=short_rows)
    assert len(expected[0]) > 4 * textfiles.BLOCK_RECORDS and len(expected[1]) > 500
    assert in_blocks(data, short_rows=short_rows) == expected


def test_the_header_after_more_blank_lines_than_a_block_is_found():
    data = b"\n" * (textfiles.BLOCK_RECORDS + 7) + HEADER + b"1,a,FR\n2,b,DE\n"
    rows, problems = in_blocks(data)
    assert rows == [(1, ["1", "a", "FR"]), (2, ["2", "b", "DE"])] and problems == []


def ordinary_rows(count: int) -> bytes:
    return b"".join(b'%d,"line one\nline two",FR\n' % n for n in range(1, count + 1))


def test_a_quoted_cell_with_a_line_of_many_separators_beyond_the_first_blocks_is_one_cell():
    """Only where the record starts tells whether those separators are inside a cell: the reading
    goes back to take the records one by one, and gives the same rows."""
    essay = b'"notes\n' + b"word, " * 1500 + b'\nend"'
    data = HEADER + ordinary_rows(2000) + b"2001," + essay + b",DE\n" + b"2002,after,JP\n"
    rows, problems = in_blocks(data)
    assert problems == [] and len(rows) == 2002
    assert rows[2000][1][1].startswith("notes\nword, word,")
    assert rows[2001] == (2002, ["2002", "after", "JP"])
    assert (rows, problems) == record_by_record(data, long_rows="skip", short_rows="pad")


def test_a_line_of_many_separators_beyond_the_first_blocks_is_refused_naming_its_line():
    data = HEADER + ordinary_rows(2000) + b"," * 1500 + b"\n2002,after,JP\n"
    info = tables.inspect(io.BytesIO(data), "t.csv")
    with pytest.raises(tables.TableError, match="^Line 4002 has more than 1,000 cells"):
        list(tables.iter_rows(io.BytesIO(data), info))


def test_rows_before_one_that_stops_the_reading_are_had_first():
    data = HEADER + ordinary_rows(30) + b"31,a,b,c,d\n" + ordinary_rows(5)
    info = tables.inspect(io.BytesIO(data), "t.csv")
    rows = tables.iter_rows(io.BytesIO(data), info, long_rows="stop")
    assert [number for number, _ in (next(rows) for _ in range(30))] == list(range(1, 31))
    with pytest.raises(tables.TableError, match="^Line 62 has 5 cells but the header has 3"):
        next(rows)


def test_a_quoted_cell_of_many_separators_on_one_line_beyond_the_first_blocks_is_one_cell():
    essay = b'"' + b"word, " * 1500 + b'"'
    data = HEADER + ordinary_rows(2000) + b"2001," + essay + b",DE\n" + b"2002,after,JP\n"
    rows, problems = in_blocks(data)
    assert problems == [] and len(rows) == 2002 and rows[2000][1][2] == "DE"
