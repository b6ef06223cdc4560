"""A text table is read within bounds: cells per row, characters per cell and per line.

Each bound is met in the head that the upload page reads and in the full pass that counts
and sends the rows, and each refusal names the line. The bombs run in a child process under
an address-space limit, so that a regression fails the test instead of the machine.
"""

import io
from pathlib import Path

import pytest

from jobs.formats import tables, textfiles
from tests.memory import reading_peak_mb
from tests.test_line_ends import prepared_prompts

ROOT = Path(__file__).resolve().parent.parent
# Enough ordinary rows that what follows lies beyond the head the upload page reads.
PAST_THE_HEAD = b"a,b\n" + b"1,2\n" * 300_000


def read_all(data: bytes) -> tables.RowCount:
    info = tables.inspect(io.BytesIO(data), "t.csv")
    return tables.count_rows(io.BytesIO(data), info)


def test_it_refuses_a_line_of_sixty_million_commas_in_the_full_pass_naming_the_line(tmp_path):
    path = tmp_path / "commas.csv"
    path.write_bytes(PAST_THE_HEAD + b"," * 60_000_000 + b"\n1,2\n")
    rss, outcome = reading_peak_mb(path, "t.csv")
    assert outcome.startswith("refused Line 300002 has more than 1,000 cells")
    assert rss < 100, f"peak RSS grew by {rss} MB"


def test_it_refuses_a_line_of_commas_in_the_head_naming_the_line():
    with pytest.raises(tables.TableError, match="Line 2 has more than 1,000 cells"):
        tables.inspect(io.BytesIO(b"a,b\n" + b"," * 500_000 + b"\n1,2\n"), "t.csv")


def test_a_header_of_sixty_million_commas_is_refused_from_the_head(tmp_path):
    path = tmp_path / "header.csv"
    path.write_bytes(b"," * 60_000_000 + b"\n1,2\n")
    rss, outcome = reading_peak_mb(path, "t.csv")
    assert outcome.startswith("refused Line 1 has more than 1,000 cells")
    assert rss < 100, f"peak RSS grew by {rss} MB"


def test_separators_inside_quoted_cells_do_not_count_as_cells():
    essay = '"' + "word, " * 5000 + '"'
    count = read_all(f"text,n\n{essay},1\n{essay},2\n".encode())
    assert (count.rows, count.problem_total) == (2, 0)


def test_a_quoted_cell_with_many_separators_over_several_lines_is_one_cell():
    essay = '"first line\n' + "word, " * 5000 + '\nlast line"'
    info = tables.inspect(io.BytesIO(f"n,text\n1,{essay}\n".encode()), "t.csv")
    assert info.preview[0][1].startswith("first line\nword, word,")


def test_a_cell_over_the_size_limit_is_refused_by_the_line_it_starts_on():
    data = PAST_THE_HEAD + b'3,"' + b"x" * (textfiles.MAX_CELL_CHARS + 10) + b'"\n'
    with pytest.raises(
        tables.TableError, match="The cell that starts on line 300002 is longer than 4,194,304"
    ):
        read_all(data)


def test_a_quote_never_closed_is_refused_where_it_opens_not_read_as_one_huge_cell():
    data = PAST_THE_HEAD + b'3,"never closed\n' + b"4,5\n" * 1_500_000
    with pytest.raises(tables.TableError, match="starts on line 300002 .* If a quote"):
        read_all(data)


def test_a_line_too_long_to_be_a_row_is_refused_naming_the_line():
    data = PAST_THE_HEAD + b"x" * (textfiles.MAX_LINE_CHARS + 10) + b"\n"
    with pytest.raises(tables.TableError, match="Line 300002 is longer than 8,388,608 characters"):
        read_all(data)


@pytest.mark.parametrize("line", [b",,,,", b",", b" , ,", b",,,,,,,,", b'"",,"",,'])
def test_a_line_of_only_separators_is_blank_not_a_row(line):
    data = b"a,b,c,d,e\n1,2,3,4,5\n" + line + b"\n6,7,8,9,10\n"
    info = tables.inspect(io.BytesIO(data), "t.csv")
    assert info.preview == [["1", "2", "3", "4", "5"], ["6", "7", "8", "9", "10"]]
    count = tables.count_rows(io.BytesIO(data), info)
    assert count.rows == 2
    assert [(p.kind, p.line, p.message) for p in count.problems] == [
        ("blank_line", 3, "Line 3 is blank and was skipped.")
    ]


def test_lines_of_only_separators_before_the_header_are_blank():
    info = tables.inspect(io.BytesIO(b",,,\n,,,\nname,n\nA,1\n"), "t.csv")
    assert (info.columns, info.preview) == (["name", "n"], [["A", "1"]])


@pytest.mark.django_db
def test_a_line_of_only_separators_is_reported_with_the_blank_lines_and_never_sent(alice):
    content = b"Review Text,Stars\ngood,5\n,\n\n,,,,\nbad,1\n"
    dataset, job, prompts = prepared_prompts(alice, content, "Sentiment of: {{ Review Text }}")
    assert dataset.row_count == 2
    assert [p["message"] for p in dataset.problems] == [
        "Line 3 is blank and was skipped.",
        "Line 4 is blank and was skipped.",
        "Line 5 is blank and was skipped.",
    ]
    assert (job.rows_total, job.rows_skipped) == (2, 0)
    assert prompts == ["Sentiment of: good", "Sentiment of: bad"]
