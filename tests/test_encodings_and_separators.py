"""UTF-16 without a byte-order mark is read, and a wrong separator is named as the cause.

On the upload page and under “Read the file again”: choosing UTF-16 reads the file again as
UTF-16 (not as binary data), and a separator that leaves no row, or a single column where
another separator gives consistent columns, says so instead of “a header but no rows”.
"""

import html
import io

import pytest
from django.urls import reverse

from jobs import datasets
from jobs.formats import tables
from jobs.models import Dataset
from tests.test_upload_pages import upload

TEXT = "Review Text\tStars\nTrès bien\t5\nNul\t1\n"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_it_detects_utf16_without_a_byte_order_mark_from_its_nul_bytes(encoding):
    data = TEXT.encode(encoding)
    info = tables.inspect(io.BytesIO(data), "t.txt")
    assert (info.encoding, info.delimiter, info.columns) == (encoding, "\t", ["Review Text", "Stars"])
    assert list(tables.iter_rows(io.BytesIO(data), info)) == [(1, ["Très bien", "5"]), (2, ["Nul", "1"])]


def test_utf16_of_a_language_without_latin_letters_is_detected():
    data = "名前,説明\n田中,とても良い\n佐藤,悪い\n".encode("utf-16-le")
    info = tables.inspect(io.BytesIO(data), "t.csv")
    assert (info.encoding, info.columns) == ("utf-16-le", ["名前", "説明"])


def test_binary_data_is_still_refused_with_how_to_save_the_file():
    with pytest.raises(tables.TableError, match="binary data.*choose UTF-16 under “Characters”"):
        tables.inspect(io.BytesIO(b"name,price\nab\x00cd\x00\x00\x01,1\n"), "t.csv")


def test_choosing_utf16_reads_a_file_without_a_byte_order_mark():
    data = TEXT.encode("utf-16-le")
    info = tables.inspect(io.BytesIO(data), "t.txt", encoding="utf-16", delimiter="\t")
    assert (info.encoding, info.preview[0]) == ("utf-16-le", ["Très bien", "5"])


@pytest.fixture
def logged_in(client, alice):
    client.force_login(alice)
    return client


def read_again(client, dataset, **choices) -> str:
    data = {"encoding": "utf-8", "delimiter": ",", "long_rows": "skip", "short_rows": "pad"} | choices
    client.post(reverse("jobs:reading", args=[dataset.code]), data)
    dataset.refresh_from_db()
    if dataset.status == Dataset.Status.COUNTING:
        datasets.count_rows(dataset.pk)
        dataset.refresh_from_db()
    return html.unescape(client.get(reverse("jobs:new_job", args=[dataset.code])).content.decode())


@pytest.mark.django_db
def test_choosing_utf16_under_read_the_file_again_reads_it_again(logged_in):
    _, dataset = upload(logged_in, TEXT.encode("utf-16-le"), "reviews.txt")
    assert dataset.encoding == "utf-16-le"
    read_again(logged_in, dataset, encoding="latin-1", delimiter="\t")
    assert dataset.status == Dataset.Status.INVALID
    assert "This file is UTF-16 text (“Unicode text”), not latin-1: choose UTF-16" in dataset.error
    page = read_again(logged_in, dataset, encoding="utf-16", delimiter="\t")
    assert dataset.status == Dataset.Status.READY, dataset.error
    assert (dataset.encoding, dataset.row_count, dataset.preview[0]) == ("utf-16-le", 2, ["Très bien", "5"])
    assert "Très bien" in page


@pytest.mark.django_db
def test_a_wrong_separator_chosen_by_the_user_is_named_not_a_header_without_rows(logged_in):
    _, dataset = upload(logged_in, "name;note\nZoë;good, really\nAna;bad, very\n".encode())
    assert dataset.delimiter == ";"
    page = read_again(logged_in, dataset, delimiter=",")
    assert dataset.status == Dataset.Status.INVALID
    assert "header but no rows" not in dataset.error
    assert (
        "every row has more cells than the header's 1 when columns are separated by commas" in dataset.error
    )
    assert "Separated by semicolons instead, every line has 2 columns" in dataset.error
    assert "Separated by semicolons instead" in page


@pytest.mark.django_db
def test_a_wrong_separator_found_only_by_the_full_count_is_named(logged_in):
    content = "name;note\n" + "Zoë;good\n" * 200_000 + "Ana;bad, very\n" * 100_000
    _, dataset = upload(logged_in, content.encode())
    page = read_again(logged_in, dataset, delimiter=",")
    assert dataset.status == Dataset.Status.READY and dataset.row_count == 200_000
    content = "name;note\n" + "Ana;bad, very\n" * 100_000
    _, dataset = upload(logged_in, content.encode())
    page = read_again(logged_in, dataset, delimiter=",")
    assert dataset.status == Dataset.Status.INVALID
    assert "No row could be read: every row has more cells than the header's 1" in page


@pytest.mark.django_db
def test_a_single_column_where_another_separator_fits_is_pointed_out(logged_in):
    _, dataset = upload(logged_in, b"name;stars\nZoe;5\nAna;3\n")
    page = read_again(logged_in, dataset, delimiter=",")
    assert dataset.status == Dataset.Status.READY
    assert "The header has a single column when separated by commas." in page
    assert "Separated by semicolons instead, every line has 2 columns" in page


def test_a_one_column_file_whose_cells_hold_commas_is_one_column():
    data = b"text\nhello, world\nbye, now\n"
    info = tables.inspect(io.BytesIO(data), "t.csv")
    assert (info.columns, info.preview) == (["text"], [["hello, world"], ["bye, now"]])
    assert tables.count_rows(io.BytesIO(data), info).rows == 2
