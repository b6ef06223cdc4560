import csv
import io

import pytest

from jobs.formats.exports import latest_outcomes, neutralize, write_results, write_xlsx
from jobs.formats.reconcile import Outcome


@pytest.mark.parametrize("value", ["=1+2", "+cmd|' /C calc'!A0", "@SUM(1)", "-1+1", "\t=1", "\r=1", " =1"])
def test_formulas_are_neutralized(value):
    assert neutralize(value).startswith("'")


@pytest.mark.parametrize("value", ["", "plain text", "-5", "+3.5", "1e5", "-0,5", "héllo"])
def test_plain_values_are_kept(value):
    assert neutralize(value) == value


def test_latest_outcomes_keeps_the_last_attempt_and_counts_attempts():
    first = [Outcome(1, True, "a"), Outcome(2, False, code="lost"), Outcome(3, True, "c")]
    second = [Outcome(2, True, "b")]
    merged = [(o.row, o.answer, n) for o, n in latest_outcomes([[iter(first)], [iter(second)]])]
    assert merged == [(1, "a", 1), (2, "b", 2), (3, "c", 1)]


def test_results_keep_original_order_and_columns_and_list_failures_apart():
    rows = [(1, ["Ünï", "=cmd"]), (2, ["b", "x"]), (3, ["c", "y"])]
    outcomes = [
        (Outcome(1, True, "yes", input_tokens=5, output_tokens=1), 1),
        (Outcome(3, False, code="context_length_exceeded", message="too long"), 1),
    ]
    results, failures = io.StringIO(), io.StringIO()
    counts = write_results(["name", "formula"], rows, iter(outcomes), results, failures)
    assert (counts.rows, counts.succeeded, counts.failed, counts.not_sent) == (3, 1, 1, 1)
    assert results.getvalue().startswith("\ufeff")
    table = list(csv.reader(io.StringIO(results.getvalue()[1:])))
    assert table[0][:3] == ["name", "formula", "answer"]
    assert table[1][:4] == ["Ünï", "'=cmd", "yes", "succeeded"]
    assert table[2][3] == "not sent"
    assert table[3][3:6] == ["failed", "context_length_exceeded", "too long"]
    failed = list(csv.reader(io.StringIO(failures.getvalue()[1:])))
    assert failed[1][:4] == ["b", "x", "2", "not_sent"] and failed[1][-1] == "not sent"
    assert failed[2][:5] == ["c", "y", "3", "context_length_exceeded", "too long"]


def test_rows_never_sent_are_in_the_failures_file_with_their_reason_marked_not_sent():
    rows = [(1, ["a"]), (2, [""]), (3, ["c"])]
    outcomes = [
        (Outcome(1, True, "yes"), 1),
        (Outcome(2, False, code="skipped_empty", message="The columns the prompt uses are empty."), 1),
        (Outcome(3, False, code="server_error", message="boom", retryable=True), 2),
    ]
    results, failures = io.StringIO(), io.StringIO()
    counts = write_results(["text"], rows, outcomes, results, failures)
    failures.seek(0)
    lines = list(csv.reader(failures))
    assert lines[0][1:] == ["row", "error_code", "error", "retryable", "attempts", "status"]
    assert lines[1] == [
        "",
        "2",
        "skipped_empty",
        "The columns the prompt uses are empty.",
        "no",
        "0",
        "not sent",
    ]
    assert lines[2] == ["c", "3", "server_error", "boom", "yes", "2", "failed"]
    assert (counts.failed, counts.not_sent) == (1, 1)


def test_an_excel_cell_over_its_limit_is_cut_alone_marked_and_noted_while_the_row_keeps_its_cells():
    long_text = "word " * 10_000  # 50,000 characters
    rows = [(1, [long_text, "after"])]
    book = _workbook(
        ["text", "more"], rows, [(Outcome(1, True, "the answer", input_tokens=3, output_tokens=4), 1)]
    )

    header, row = book.get_sheet_by_name("Job").to_python()[:2]
    cell = row[0]
    assert len(cell) == 32_767 and cell.startswith("word word") and "cut here: 50,000 characters" in cell
    named = dict(zip(header, row, strict=True))
    assert (named["more"], named["answer"], named["status"]) == ("after", "the answer", "succeeded")
    details = book.get_sheet_by_name("Details").to_python()
    assert details[0] == ["row", "error_code", "attempts", "input_tokens", "output_tokens"]
    assert details[1][2:] == [1, 3, 4]
    notes = book.get_sheet_by_name("Notes").to_python()
    assert notes[2] == [2, "text", 50_000]


def _workbook(columns, rows, outcomes, **options):
    from python_calamine import CalamineWorkbook

    results, failures = io.StringIO(), io.StringIO()
    write_results(columns, rows, outcomes, results, failures, **options)
    results.seek(0)
    workbook = io.BytesIO()
    write_xlsx(results, workbook, sheet="Job")
    return CalamineWorkbook.from_filelike(io.BytesIO(workbook.getvalue()))


def test_the_excel_copy_stores_numbers_as_numbers_and_text_without_apostrophes():
    rows = [(1, ["00123", "42", "3.5", "=SUM(A1)", "+33 6 12", "12345678901234567890"])]
    outcomes = [(Outcome(1, True, "-x", input_tokens=7, output_tokens=2), 1)]
    book = _workbook(
        ["zip", "count", "price", "formula", "phone", "long"], rows, outcomes, token_prices=(0.5, 1.0)
    )

    header, row = book.get_sheet_by_name("Job").to_python()[:2]
    named = dict(zip(header, row, strict=True))
    assert (
        named["zip"] == "00123" and named["phone"] == "+33 6 12" and named["long"] == "12345678901234567890"
    )
    assert named["count"] == 42 and named["price"] == 3.5
    assert named["formula"] == "=SUM(A1)" and named["answer"] == "-x"  # text, not a formula, no apostrophe
    assert named["cost_usd"] == 5.5
    assert "input_tokens" not in named and "attempts" not in named


def test_the_excel_copy_has_a_frozen_filtered_header_sized_columns_and_wrapped_long_text():
    import zipfile

    rows = [(1, ["short", "a long review " * 20]), (2, ["x", "y"])]
    results, failures = io.StringIO(), io.StringIO()
    write_results(["id", "review"], rows, [(Outcome(1, True, "ok"), 1)], results, failures)
    results.seek(0)
    workbook = io.BytesIO()
    write_xlsx(results, workbook, sheet="Job")

    with zipfile.ZipFile(workbook) as xlsx:
        sheet = xlsx.read("xl/worksheets/sheet1.xml").decode()
        styles = xlsx.read("xl/styles.xml").decode()
    assert '<autoFilter ref="A1:' in sheet and 'state="frozen"' in sheet
    assert '<col min="2" max="2" width="60.' in sheet  # the long column at the widest
    assert 'wrapText="1"' in styles
