"""A workbook of several sheets: the page names the sheet read and offers the others; picking one
reads it again (the same streaming reader, the same bounds), counts it and shows its columns."""

import io

import pytest
import xlsxwriter
from django.urls import reverse

from jobs import datasets
from jobs.formats import tables
from jobs.models import Dataset
from tests.test_upload_pages import upload

pytestmark = pytest.mark.django_db


def workbook() -> bytes:
    """An empty sheet first, then Orders, a hidden Lookup, and Customers."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    book.add_worksheet("Notes")
    sheets = {
        "Orders": [["Order", "Item"], ["A-1", "shoes"], ["A-2", "socks"], ["A-3", "hat"]],
        "Lookup": [["Code", "Meaning"], ["x", "unknown"]],
        "Customers": [["Name", "City"], ["Zoë", "Lyon"], ["Tom", "Leeds"]],
    }
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        for r, row in enumerate(rows):
            sheet.write_row(r, 0, row)
        if name == "Lookup":
            sheet.hide()
    book.close()
    return buffer.getvalue()


def test_the_first_visible_sheet_with_cells_is_read_and_every_sheet_is_listed():
    info = tables.inspect(io.BytesIO(workbook()), "orders.xlsx")
    assert (info.sheet, info.columns) == ("Orders", ["Order", "Item"])
    assert info.sheets == [
        {"name": "Notes", "hidden": False},
        {"name": "Orders", "hidden": False},
        {"name": "Lookup", "hidden": True},
        {"name": "Customers", "hidden": False},
    ]


@pytest.fixture
def orders(client, alice):
    client.force_login(alice)
    page, dataset = upload(client, workbook(), "orders.xlsx")
    return page, dataset


def test_the_page_names_the_sheet_read_and_offers_the_others(orders):
    page, dataset = orders
    assert "Read sheet “Orders” (2 of 4)" in page
    for other in ("Notes", "Lookup (hidden in Excel)", "Customers"):
        assert f">{other}</option>" in page


def test_picking_another_sheet_reads_it_again_and_counts_it(client, orders):
    _, dataset = orders
    response = client.post(reverse("jobs:reading", args=[dataset.code]), {"sheet": "Customers"}, follow=True)
    dataset.refresh_from_db()
    assert (dataset.sheet, dataset.columns, dataset.status) == ("Customers", ["Name", "City"], "counting")
    assert "Read the sheet “Customers”" in response.content.decode()
    datasets.count_rows(dataset.pk)
    dataset.refresh_from_db()
    assert (dataset.status, dataset.row_count) == (Dataset.Status.READY, 2)
    page = client.get(reverse("jobs:new_job", args=[dataset.code])).content.decode()
    assert "Read sheet “Customers” (4 of 4)" in page and "Zoë" in page


def test_an_empty_sheet_is_refused_by_name_and_the_sheet_read_stays(client, orders):
    _, dataset = orders
    response = client.post(reverse("jobs:reading", args=[dataset.code]), {"sheet": "Notes"}, follow=True)
    dataset.refresh_from_db()
    assert (dataset.sheet, dataset.status, dataset.row_count) == ("Orders", Dataset.Status.READY, 3)
    text = response.content.decode()
    assert "The sheet “Notes” is empty: it has no cells." in text
    assert "Still reading “Orders”." in text


def test_a_hidden_sheet_can_be_read_and_says_it_is_hidden(client, orders):
    _, dataset = orders
    page = client.post(reverse("jobs:reading", args=[dataset.code]), {"sheet": "Lookup"}, follow=True)
    assert "Read sheet “Lookup” (3 of 4), hidden in Excel" in page.content.decode()


def test_a_sheet_the_workbook_does_not_have_is_refused_by_name(client, orders):
    _, dataset = orders
    page = client.post(reverse("jobs:reading", args=[dataset.code]), {"sheet": "Nope\x00"}, follow=True)
    assert "The workbook has no sheet called “Nope”." in page.content.decode()
    dataset.refresh_from_db()
    assert dataset.sheet == "Orders"
