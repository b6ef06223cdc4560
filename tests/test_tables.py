import codecs
import io

import pytest
import xlsxwriter

from jobs.formats import tables


def inspect(data: bytes, name: str = "table.csv", **kwargs) -> tables.TableInfo:
    return tables.inspect(io.BytesIO(data), name, **kwargs)


def all_rows(data: bytes, **kwargs):
    info = inspect(data)
    log = tables.ProblemLog()
    rows = list(tables.iter_rows(io.BytesIO(data), info, problems=log, **kwargs))
    return rows, log


def test_it_reads_utf8_with_a_bom_without_a_stray_character_in_the_first_header():
    info = inspect(codecs.BOM_UTF8 + "name,price\nZoë,3\n".encode())
    assert (info.encoding, info.columns, info.preview) == ("utf-8-sig", ["name", "price"], [["Zoë", "3"]])


def test_it_detects_utf16_tab_delimited_as_excel_unicode_text_writes_it():
    info = inspect("name\tprice\nZoë\t3\n".encode("utf-16"))
    assert (info.encoding, info.delimiter, info.preview) == ("utf-16", "\t", [["Zoë", "3"]])
    rows, _ = all_rows("name\tprice\nZoë\t3\nAna\t4\n".encode("utf-16-be").join([codecs.BOM_UTF16_BE, b""]))
    assert rows == [(1, ["Zoë", "3"]), (2, ["Ana", "4"])]


def test_it_detects_windows_1252_with_accents_and_smart_quotes():
    info = inspect("name,note\nRené,“très bien”\n".encode("cp1252"))
    assert info.encoding == "cp1252"
    assert info.preview == [["René", "“très bien”"]]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_it_sniffs_the_delimiter(delimiter):
    text = delimiter.join(["id", "Review Text", "price"]) + "\n" + delimiter.join(["1", "good", "3,5"]) + "\n"
    if delimiter == ",":
        text = 'id,Review Text,price\n1,good,"3,5"\n'
    info = inspect(text.encode())
    assert info.delimiter == delimiter
    assert info.columns == ["id", "Review Text", "price"]
    assert info.preview[0][2] == "3,5"


def test_user_choices_override_detection():
    info = inspect(b"a;b\n1;2\n", delimiter=",")
    assert info.columns == ["a;b"]


def test_quoted_cells_keep_delimiters_quotes_and_line_breaks():
    rows, _ = all_rows(b'text,n\r\n"one, two",1\r\n"say ""hi""\nnext line",2\r\n')
    assert rows == [(1, ["one, two", "1"]), (2, ['say "hi"\nnext line', "2"])]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "The file is empty."),
        (codecs.BOM_UTF8, "The file is empty."),
        (b"  \n\n ", "The file is empty."),
        (b"name,price\n", "header but no rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "PNG image"),
        (b"%PDF-1.7\n", "PDF document"),
        (b"PK\x03\x04\x14\x00\x00\x00", "ZIP archive"),
        (b"\x1f\x8b\x08\x00", "gzip archive"),
        (b"MZ\x90\x00", "Windows program"),
        (b"SQLite format 3\x00", "SQLite database"),
        (b"name,price\nab\x00cd,1\n", "binary data"),
    ],
)
def test_bad_files_get_a_plain_message(data, message):
    with pytest.raises(tables.TableError, match=message):
        inspect(data)


def test_blank_and_duplicate_headers_are_renamed_visibly():
    info = inspect(b"text,,text,text\n1,2,3,4\n")
    assert info.columns == ["text", "column_2", "text_2", "text_3"]
    assert [p.kind for p in info.problems] == ["renamed_header"] * 3
    assert "column_2" in info.problems[0].message


def test_ragged_rows_are_reported_with_their_line_numbers():
    data = b"a,b,c\n1,2,3\n1,2,3,4\n1\n\n5,6,7\n"
    rows, log = all_rows(data)
    assert rows == [(1, ["1", "2", "3"]), (2, ["1", "", ""]), (3, ["5", "6", "7"])]
    assert [(p.kind, p.line) for p in log.items] == [("long_row", 3), ("short_row", 4), ("blank_line", 5)]
    assert log.items[0].message == "Line 3 has 4 cells but the header has 3; the row was skipped."


def test_ragged_rows_can_stop_the_reading():
    with pytest.raises(tables.TableError, match="Line 3 has 4 cells"):
        all_rows(b"a,b,c\n1,2,3\n1,2,3,4\n", long_rows="stop")


def test_trailing_empty_cells_are_not_a_problem():
    rows, log = all_rows(b"a,b\n1,2,,\n")
    assert rows == [(1, ["1", "2"])] and log.total == 0


def test_an_invalid_byte_deep_in_the_file_names_the_line():
    data = b"a,b\n" + b"x,1\n" * 400_000 + b"caf\xe9,2\n"
    info = inspect(data)
    assert info.encoding == "utf-8"
    with pytest.raises(tables.TableError, match="Line 400002 has characters that are not valid utf-8"):
        list(tables.iter_rows(io.BytesIO(data), info))


def test_too_many_columns_is_refused_clearly():
    header = ",".join(f"c{i}" for i in range(1001)).encode()
    with pytest.raises(tables.TableError, match="Line 1 has more than 1,000 cells"):
        inspect(header + b"\n" + b"1" * 1001 + b"\n")


def test_column_stats_over_the_preview():
    info = inspect(b"a,b\nxx,\nyyyy,\n")
    assert info.column_stats == [{"empty": 0, "longest": 4}, {"empty": 2, "longest": 0}]


def test_counting_rows_reports_progress_and_problems():
    data = b"a,b\n" + b"1,2\n" * 250_000 + b"1\n"
    info = inspect(data)
    seen = []
    result = tables.count_rows(
        io.BytesIO(data), info, progress=lambda done, total: seen.append((done, total))
    )
    assert result.rows == 250_001
    assert result.problem_total == 1
    assert seen[-1] == (len(data), len(data))


def xlsx_bytes(rows) -> bytes:
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    empty = workbook.add_worksheet("Empty")
    del empty
    sheet = workbook.add_worksheet("Reviews")
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if hasattr(value, "isoformat"):
                sheet.write_datetime(r, c, value, date_format)
            elif value is not None:
                sheet.write(r, c, value)
    workbook.close()
    return buffer.getvalue()


def test_it_reads_the_first_non_empty_sheet_of_an_xlsx_whatever_its_name():
    import datetime

    data = xlsx_bytes(
        [
            ["Review Text", "Stars", "Date", "Ok"],
            ["Great", 5, datetime.date(2026, 1, 2), True],
            ["Bad", 1.5, None, False],
        ]
    )
    info = inspect(data, name="renamed.csv")
    assert (info.format, info.sheet, info.columns) == (
        "xlsx",
        "Reviews",
        ["Review Text", "Stars", "Date", "Ok"],
    )
    rows = list(tables.iter_rows(io.BytesIO(data), info))
    assert rows == [(1, ["Great", "5", "2026-01-02", "TRUE"]), (2, ["Bad", "1.5", "", "FALSE"])]


def test_an_xlsx_with_only_a_header_is_refused():
    with pytest.raises(tables.TableError, match="header but no rows"):
        inspect(xlsx_bytes([["a", "b"]]))
