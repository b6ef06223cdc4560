"""An Excel upload is read within a memory bound, whatever the workbook declares or hides.

The bombs are built here by hand, as a zip of minimal XML parts, the way an attacker would:
a few kilobytes that name a cell at XFD1048576, or a sheet sparse enough that a dense grid
of it would need gigabytes. Memory is measured in a child process (its peak RSS, VmHWM),
under an address-space limit, so that a regression fails the test instead of the machine.
"""

import datetime
import html
import io
import itertools
import zipfile

import pytest

from jobs.formats import tables, xlsx
from jobs.models import Dataset
from tests.memory import reading_peak_mb
from tests.test_tables import xlsx_bytes

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="xl/workbook.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
    "</Relationships>"
)
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="worksheets/sheet1.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"/>'
    "</Relationships>"
)


def cell(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def workbook(
    rows_xml: str, dimension: str | None = None, strings: bytes | None = None, styles: bytes | None = None
) -> bytes:
    """A minimal .xlsx whose only sheet holds `rows_xml` inside its <sheetData>."""
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        + (f'<dimension ref="{dimension}"/>' if dimension else "")
        + f"<sheetData>{rows_xml}</sheetData></worksheet>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
        if strings is not None:
            archive.writestr("xl/sharedStrings.xml", strings)
        if styles is not None:
            archive.writestr("xl/styles.xml", styles)
    return buffer.getvalue()


def corner_bomb(dimension: str | None) -> bytes:
    """A header at A1 and one cell at Excel's last: XFD1048576."""
    return workbook(
        f'<row r="1">{cell("A1", "text")}</row><row r="1048576">{cell("XFD1048576", "x")}</row>',
        dimension,
    )


def peak_rss_mb(data: bytes, tmp_path, limit_mb: int = 1024) -> tuple[int, str]:
    """Inspect and count `data` as an uploaded workbook, in a child process held to `limit_mb`."""
    path = tmp_path / "upload.xlsx"
    path.write_bytes(data)
    return reading_peak_mb(path, "upload.xlsx", limit_mb)


def test_it_refuses_a_sheet_that_declares_columns_up_to_xfd_before_reading_it():
    data = corner_bomb("A1:XFD1048576")
    assert len(data) < 2000  # the 1.6 KB bomb of the issue
    with pytest.raises(tables.TableError, match=r"reaches column XFD \(16,384 columns\); at most 1,000"):
        tables.inspect(io.BytesIO(data), "bomb.xlsx")


def test_it_reads_the_corner_bomb_without_a_dimension_in_bounded_memory(tmp_path):
    # No <dimension> to refuse on: the far cell must cost nothing but a note.
    rss, outcome = peak_rss_mb(corner_bomb(None), tmp_path)
    assert outcome == (
        "refused No row could be read: the rows after the header have text only to the right of its "
        "last named column, A. Name those columns in the first row."
    )
    assert rss < 50, f"peak RSS {rss} MB"


def test_it_reads_the_corner_bomb_with_a_dimension_in_bounded_memory(tmp_path):
    rss, outcome = peak_rss_mb(corner_bomb("A1:XFD1048576"), tmp_path)
    assert "16,384 columns" in outcome
    assert rss < 50, f"peak RSS {rss} MB"


def test_a_sparse_sheet_is_never_expanded_into_a_grid(tmp_path):
    # Cells at A1 and ALL20000 (1,000 columns × 20,000 rows): 20 million cells as a dense grid.
    data = workbook(
        f'<row r="1">{cell("A1", "text")}{cell("ALL1", "last")}</row>'
        f'<row r="20000">{cell("A20000", "a")}{cell("ALL20000", "b")}</row>',
        "A1:ALL20000",
    )
    rss, outcome = peak_rss_mb(data, tmp_path)
    assert outcome == "rows 1"
    assert rss < 50, f"peak RSS {rss} MB"
    info = tables.inspect(io.BytesIO(data), "sparse.xlsx")
    assert (info.columns[0], info.columns[-1], len(info.columns)) == ("text", "last", 1000)
    log = tables.ProblemLog()
    rows = list(tables.iter_rows(io.BytesIO(data), info, problems=log))
    assert rows == [(1, ["a"] + [""] * 998 + ["b"])]
    assert [p.message for p in log.items] == ["Rows 2 to 19,999 of the sheet are blank and were skipped."]
    gap = workbook(f'<row r="1">{cell("A1", "text")}</row><row r="3">{cell("A3", "x")}</row>')
    log = tables.ProblemLog()
    list(tables.iter_rows(io.BytesIO(gap), tables.inspect(io.BytesIO(gap), "gap.xlsx"), problems=log))
    assert [p.message for p in log.items] == ["Row 2 of the sheet is blank and was skipped."]


def test_a_header_cell_beyond_the_column_cap_is_refused_by_its_column():
    data = workbook(f'<row r="1">{cell("A1", "text")}{cell("ALM1", "one too many")}</row>')
    with pytest.raises(tables.TableError, match="has a cell in column ALM; at most 1,000 columns"):
        tables.inspect(io.BytesIO(data), "wide.xlsx")


def test_a_row_numbered_beyond_excel_is_refused():
    data = workbook(f'<row r="1">{cell("A1", "text")}</row><row r="2000000">{cell("A2000000", "x")}</row>')
    with pytest.raises(tables.TableError, match="a row numbered 2,000,000; Excel stops at 1,048,576"):
        tables.inspect(io.BytesIO(data), "tall.xlsx")


def test_a_row_of_cells_far_to_the_right_keeps_only_the_named_columns():
    far = "".join(cell(f"{xlsx.column_letters(c)}2", "x") for c in range(3, 16_001))
    data = workbook(
        f'<row r="1">{cell("A1", "a")}{cell("B1", "b")}</row><row r="2">{cell("A2", "1")}{far}</row>'
    )
    info = tables.inspect(io.BytesIO(data), "far.xlsx")
    log = tables.ProblemLog()
    assert list(tables.iter_rows(io.BytesIO(data), info, problems=log)) == [(1, ["1", ""])]
    assert log.items[0].message == "Row 2 has cells beyond the last named column; they were left out."


def test_an_oversized_sheet_is_refused_by_its_unpacked_size(monkeypatch):
    monkeypatch.setattr(xlsx, "MAX_SHEET_XML_BYTES", 1000)
    data = workbook("".join(f'<row r="{r}">{cell(f"A{r}", "word")}</row>' for r in range(1, 100)))
    with pytest.raises(tables.TableError, match="once unpacked; at most 0 GB"):
        tables.inspect(io.BytesIO(data), "big.xlsx")


def test_an_entity_bomb_in_the_sheet_is_refused():
    data = workbook(f'<row r="1">{cell("A1", "text")}</row>')
    bomb = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(bomb, "w") as target:
        for item in source.infolist():
            part = source.read(item)
            if item.filename.endswith("sheet1.xml"):
                part = part.replace(b"?>", b'?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>', 1)
            target.writestr(item, part)
    with pytest.raises(tables.TableError, match="not what Excel writes"):
        tables.inspect(io.BytesIO(bomb.getvalue()), "entities.xlsx")


def test_millions_of_tiny_shared_texts_are_held_packed_in_bounded_memory(tmp_path):
    # A million two-letter texts: some 60 MB as a list of str, a few MB packed.
    count = 1_000_000
    strings = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        + b"".join(b"<si><t>%02d</t></si>" % (i % 100) for i in range(count))
        + b"</sst>"
    )
    data = workbook(
        f'<row r="1">{cell("A1", "text")}</row>'
        f'<row r="2"><c r="A2" t="s"><v>{count - 1}</v></c></row>'
        '<row r="3"><c r="A3" t="s"><v>12</v></c></row>',
        strings=strings,
    )
    rss, outcome = peak_rss_mb(data, tmp_path)
    assert outcome == "rows 2"
    assert rss < 30, f"peak RSS {rss} MB"
    info = tables.inspect(io.BytesIO(data), "texts.xlsx")
    assert info.preview == [["99"], ["12"]]


def test_a_cell_naming_a_text_the_file_does_not_have_is_refused_by_its_cell():
    strings = (
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>a</t></si></sst>'
    )
    data = workbook(
        f'<row r="1">{cell("A1", "text")}</row><row r="2"><c r="A2" t="s"><v>7</v></c></row>', strings=strings
    )
    with pytest.raises(
        tables.TableError, match="Cell A2 of the sheet “Data” refers to a text the file does not have"
    ):
        tables.inspect(io.BytesIO(data), "broken.xlsx")


@pytest.mark.parametrize("maker", ["by hand", "xlsxwriter"])
def test_a_damaged_workbook_gets_a_message_never_a_crash(maker):
    if maker == "by hand":
        good = workbook("".join(f'<row r="{r}">{cell(f"A{r}", f"word {r}")}</row>' for r in range(1, 200)))
    else:
        good = xlsx_bytes(
            [["text", "n", "when"]]
            + [[f"word {r}", r, datetime.date(2026, 1, r % 28 + 1)] for r in range(200)]
        )
    damaged = [good[:n] for n in range(100, len(good), 97)]
    damaged += [good[:n] + bytes([good[n] ^ 0xFF]) + good[n + 1 :] for n in range(30, len(good), 13)]
    for data in damaged:
        try:
            info = tables.inspect(io.BytesIO(data), "damaged.xlsx")
            tables.count_rows(io.BytesIO(data), info)
        except tables.TableError as exc:
            assert str(exc)


@pytest.mark.django_db
def test_the_upload_page_shows_the_refusal_of_a_bomb_and_keeps_the_upload(client, alice):
    from tests.test_upload_pages import upload

    client.force_login(alice)
    page, dataset = upload(client, corner_bomb("A1:XFD1048576"), "bomb.xlsx")
    assert dataset.status == Dataset.Status.INVALID
    assert "says it reaches column XFD (16,384 columns); at most 1,000 columns are read" in html.unescape(
        page
    )
    assert dataset.file.size == len(corner_bomb("A1:XFD1048576"))  # kept, so it can be looked at
    page, dataset = upload(
        client, xlsx_bytes([["Review Text", "Stars"], ["Great", 5], ["Bad", 1]]), "ok.xlsx"
    )
    assert (dataset.status, dataset.row_count, dataset.preview) == (
        Dataset.Status.READY,
        2,
        [["Great", "5"], ["Bad", "1"]],
    )


@pytest.mark.parametrize(
    "rows_xml, message",
    [
        (
            '<row r="1"><c r="A1" t="inlineStr"><is><t>a</t></is></c></row>' + '<row r="1"/>' * 10,
            "row 1 after row 1",
        ),
        ('<row r="1"><c r="B1" t="inlineStr"><is><t>a</t></is></c><c r="A1"/></row>', "cell A1 after B1"),
    ],
)
def test_rows_and_cells_out_of_order_are_refused_so_a_sheet_cannot_repeat_itself_forever(rows_xml, message):
    with pytest.raises(tables.TableError, match=f"lists {message}; it may be damaged"):
        tables.inspect(io.BytesIO(workbook(rows_xml)), "repeat.xlsx")


def shared_strings(texts) -> bytes:
    return (
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        + b"".join(f"<si><t>{text}</t></si>".encode() for text in texts)
        + b"</sst>"
    )


def test_shared_texts_are_found_across_the_packed_batches():
    texts = [f"text {i} " + "x" * (i % 7) for i in range(10_000)]
    order = [0, 4095, 4096, 4097, 8191, 8192, 9999, 5, 4095]
    rows = "".join(
        f'<row r="{r}"><c r="A{r}" t="s"><v>{i}</v></c></row>' for r, i in enumerate(order, start=2)
    )
    data = workbook(f'<row r="1">{cell("A1", "text")}</row>{rows}', strings=shared_strings(texts))
    info = tables.inspect(io.BytesIO(data), "texts.xlsx")
    assert [cells for _, cells in tables.iter_rows(io.BytesIO(data), info)] == [[texts[i]] for i in order]


def test_the_head_of_a_sheet_reads_only_the_head_of_its_texts():
    texts = [f"review {i}" for i in range(200_000)]
    rows = "".join(f'<row r="{r}"><c r="A{r}" t="s"><v>{r - 1}</v></c></row>' for r in range(2, 30))
    data = workbook(f'<row r="1"><c r="A1" t="s"><v>0</v></c></row>{rows}', strings=shared_strings(texts))
    book = xlsx.Workbook(io.BytesIO(data))
    assert [row.cells for row in itertools.islice(book.rows("Data", 1), 3)] == [
        ["review 0"],
        ["review 1"],
        ["review 2"],
    ]
    assert len(book.strings().starts) < 10_000


@pytest.mark.parametrize("where", ["sheet", "shared texts"])
def test_a_text_longer_than_excel_allows_is_refused_before_it_is_held(where, tmp_path):
    # 200 MB of one letter compresses to 200 KB; held whole, it would be hundreds of MB of strings.
    huge = "a" * 200_000_000
    if where == "sheet":
        data = workbook(f'<row r="1">{cell("A1", "text")}</row><row r="2">{cell("A2", huge)}</row>')
    else:
        data = workbook(
            f'<row r="1">{cell("A1", "text")}</row><row r="2"><c r="A2" t="s"><v>1</v></c></row>',
            strings=shared_strings(["first", huge]),
        )
    rss, outcome = peak_rss_mb(data, tmp_path)
    assert "longer than Excel allows" in outcome
    assert rss < 50, f"peak RSS {rss} MB"


def test_a_style_table_of_millions_of_entries_is_read_in_bounded_memory(tmp_path):
    # 1.5 million cell formats in 27 MB: a tree of them would take some 400 MB.
    styles = (
        b'<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/></numFmts>'
        b'<cellStyleXfs count="1"><xf numFmtId="14"/></cellStyleXfs><cellXfs>'
        + b'<xf numFmtId="0"/>'
        * 1_500_000
        + b'<xf numFmtId="164"/><xf numFmtId="20"/></cellXfs>'
        b'<cellStyles count="1"><cellStyle xfId="0"/></cellStyles></styleSheet>'
    )
    data = workbook(
        f'<row r="1">{cell("A1", "when")}{cell("B1", "time")}{cell("C1", "n")}</row>'
        '<row r="2"><c r="A2" s="1500000"><v>46024</v></c><c r="B2" s="1500001"><v>0.5</v></c>'
        '<c r="C2" s="0"><v>14</v></c></row>',
        styles=styles,
    )
    rss, outcome = peak_rss_mb(data, tmp_path)
    assert outcome == "rows 1"
    assert rss < 50, f"peak RSS {rss} MB"
    assert tables.inspect(io.BytesIO(data), "styles.xlsx").preview == [["2026-01-02", "12:00:00", "14"]]
