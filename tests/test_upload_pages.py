"""Every bad-file case shows its message on the page, at the row or column where it happens,
and the user can change how the file is read (encoding, separator, what to do with bad rows).
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from jobs import datasets
from jobs.models import Dataset

pytestmark = pytest.mark.django_db


def upload(client, content: bytes, name: str = "table.csv"):
    """Upload as a person would; returns the page they land on, and the dataset."""
    response = client.post(reverse("jobs:upload"), {"file": SimpleUploadedFile(name, content)}, follow=True)
    dataset = Dataset.objects.order_by("-pk").first()
    if dataset is not None and dataset.status == Dataset.Status.COUNTING:
        datasets.count_rows(dataset.pk)  # what the worker does in the background
        dataset.refresh_from_db()
        response = client.get(reverse("jobs:new_job", args=[dataset.code]))
    return response.content.decode(), dataset


@pytest.fixture
def logged_in(client, alice):
    client.force_login(alice)
    return client


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "The file is empty."),
        (b"Review Text,Stars\n", "The file has a header but no rows."),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "not a table"),
        (b"PK\x03\x04" + b"\x00" * 64, "ZIP archive"),
        (b"Review Text,Stars\ngood,5\nbad,1,extra,cells\nok,3\n", "Line 3 has 4 cells but the header has 2"),
        (
            b"Review Text,Stars\ngood\nok,3\n",
            "Line 2 has 1 cells but the header has 2; the missing ones are empty",
        ),
        (b"text,text,\ngood,5,x\n", "it is called “text_2”"),
        (b"text,text,\ngood,5,x\n", "Column 3 has no name; it is called “column_3”"),
        (b"Review Text\ngood\n\nok\n", "Line 3 is blank and was skipped."),
    ],
)
def test_each_bad_file_says_what_is_wrong_on_the_page(logged_in, content, message):
    page, _ = upload(logged_in, content)
    assert message in page
    assert "Traceback" not in page


def test_quoted_cells_keep_their_commas_and_line_breaks(logged_in):
    page, dataset = upload(logged_in, b'Review Text,Stars\n"Big, comfy\nand warm",5\n')
    assert dataset.preview == [["Big, comfy\nand warm", "5"]]
    assert dataset.row_count == 1


@pytest.mark.parametrize(
    "content, encoding",
    [
        ("Review Text;Stars\nTrès bien;5\n".encode("utf-8-sig"), "utf-8-sig"),
        ("Review Text\tStars\nTrès bien\t5\n".encode("utf-16"), "utf-16"),
        ("Review Text|Stars\nTrès bien|5\n".encode("cp1252"), "cp1252"),
    ],
)
def test_the_detected_encoding_and_separator_are_shown(logged_in, content, encoding):
    page, dataset = upload(logged_in, content)
    assert dataset.preview == [["Très bien", "5"]]
    assert f"Read as {encoding}" in page
    assert dataset.delimiter_name in page


def test_the_user_reads_the_file_again_with_other_settings(logged_in):
    _, dataset = upload(logged_in, "name;note\nZoë;ab\n".encode())
    response = logged_in.post(
        reverse("jobs:reading", args=[dataset.code]),
        {"encoding": "latin-1", "delimiter": ",", "long_rows": "skip", "short_rows": "pad"},
        follow=True,
    )
    dataset.refresh_from_db()
    assert (dataset.encoding, dataset.delimiter) == ("latin-1", ",")
    assert dataset.columns == ["name;note"]
    assert "The file was read again with your settings." in response.content.decode()


def test_stopping_at_a_bad_row_names_its_line(logged_in):
    _, dataset = upload(logged_in, b"Review Text,Stars\ngood,5\nbad,1,extra\n")
    logged_in.post(
        reverse("jobs:reading", args=[dataset.code]),
        {"encoding": "utf-8", "delimiter": ",", "long_rows": "stop", "short_rows": "pad"},
    )
    datasets.count_rows(dataset.pk)
    page = logged_in.get(reverse("jobs:new_job", args=[dataset.code])).content.decode()
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.INVALID
    assert "Line 3 has 3 cells but the header has 2." in page


def test_the_count_streams_in_with_its_progress(logged_in, alice):
    dataset = datasets.create_from_upload(alice, SimpleUploadedFile("t.csv", b"a\n1\n2\n3\n"))
    url = reverse("jobs:dataset_count", args=[dataset.code])
    fragment = logged_in.get(url)
    assert fragment.status_code == 200 and "counting the rows… 0%" in fragment.content.decode()
    datasets.count_rows(dataset.pk)
    fragment = logged_in.get(url)
    assert fragment.status_code == 286  # htmx stops polling
    assert "3 rows" in fragment.content.decode()


def test_a_stranger_cannot_change_how_someone_elses_file_is_read(client, alice, bob):
    dataset = datasets.create_from_upload(alice, SimpleUploadedFile("t.csv", b"a\n1\n"))
    client.force_login(bob)
    data = {"encoding": "latin-1", "delimiter": ",", "long_rows": "skip", "short_rows": "pad"}
    assert client.post(reverse("jobs:reading", args=[dataset.code]), data).status_code == 404
    assert client.get(reverse("jobs:dataset_count", args=[dataset.code])).status_code == 404


def test_an_upload_over_the_limit_is_stopped_while_it_streams_never_stored_whole(
    logged_in, settings, monkeypatch
):
    from django.core.files.uploadhandler import TemporaryFileUploadHandler

    settings.UPLOAD_MAX_BYTES = 1_000_000
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000  # anything bigger would go to a temporary file
    stored = []
    original = TemporaryFileUploadHandler.receive_data_chunk
    monkeypatch.setattr(
        TemporaryFileUploadHandler,
        "receive_data_chunk",
        lambda self, raw, start: stored.append(len(raw)) or original(self, raw, start),
    )
    big = SimpleUploadedFile("big.csv", b"Review Text\n" + b"x" * 3_000_000 + b"\n", content_type="text/csv")

    response = logged_in.post(reverse("jobs:upload"), {"file": big})

    text = response.content.decode()
    assert response.status_code == 200
    assert "This file is 2.9\xa0MB; the largest file accepted is 976.6\xa0KB" in text
    assert sum(stored) == 0  # refused from its declared length, before a byte was written
    assert not Dataset.objects.exists()


def test_an_upload_whose_length_was_not_declared_is_stopped_at_the_limit(settings):
    from django.core.files.uploadhandler import StopUpload
    from django.test import RequestFactory

    from batchdash.uploads import SizeLimitedUploadHandler

    settings.UPLOAD_MAX_BYTES = 100
    request = RequestFactory().post("/upload/")
    handler = SizeLimitedUploadHandler(request)
    handler.handle_raw_input(None, {}, None, b"x")
    handler.new_file("file", "big.csv", "text/csv", None)
    assert handler.receive_data_chunk(b"a" * 64, 0) == b"a" * 64
    with pytest.raises(StopUpload):
        handler.receive_data_chunk(b"a" * 64, 64)
    assert request.upload_too_large == 128
