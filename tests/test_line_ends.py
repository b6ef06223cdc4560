"""A lone carriage return inside a cell is text when the file's lines end in LF or CRLF.

Tweets exported by pandas hold lone CRs inside unquoted cells. The preview (the head), the
full count and the requests prepared for the provider must all see one row per record, with
the CR kept in its cell; a file whose only line ends are CRs (old Macs) is still read.
"""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs import datasets, pipeline, rawfiles
from jobs.formats import tables
from jobs.models import Dataset, Job, ProviderCredential

TWEETS = [
    ["1", "first part\rsecond part", "en"],
    ["2", "quoted\rwith a CR", "fr"],
    ["3", "plain", "de"],
    ["4", "ends with a CR\r", "es"],
]


def tweets_file(line_end: str) -> bytes:
    rows = [
        "id,text,lang",
        "1,first part\rsecond part,en",
        '2,"quoted\rwith a CR",fr',
        "3,plain,de",
        '4,"ends with a CR\r",es',
    ]
    return (line_end.join(rows) + line_end).encode()


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_a_lone_cr_is_text_in_the_preview_and_in_the_full_count(line_end):
    data = tweets_file(line_end)
    info = tables.inspect(io.BytesIO(data), "tweets.csv")
    assert info.columns == ["id", "text", "lang"]
    assert info.preview == TWEETS
    assert info.problems == []
    count = tables.count_rows(io.BytesIO(data), info)
    assert (count.rows, count.problem_total) == (4, 0)
    assert [cells for _, cells in tables.iter_rows(io.BytesIO(data), info)] == TWEETS


def test_a_quoted_crlf_inside_a_cell_of_an_lf_file_is_kept():
    data = b'id,text\n1,"two\r\nlines"\n2,next\n'
    info = tables.inspect(io.BytesIO(data), "t.csv")
    assert info.preview == [["1", "two\r\nlines"], ["2", "next"]]


def test_a_file_whose_lines_end_in_cr_only_is_still_read_by_lines():
    data = b"id,text\r1,one\r2,two\r"
    info = tables.inspect(io.BytesIO(data), "mac.csv")
    assert info.preview == [["1", "one"], ["2", "two"]]
    assert tables.count_rows(io.BytesIO(data), info).rows == 2


def test_lone_crs_deep_in_a_long_file_are_text_in_the_full_pass():
    data = b"id,text\n" + b"1,ok\n" * 300_000 + b"2,a\rb\n3,c\n"
    info = tables.inspect(io.BytesIO(data), "t.csv")
    rows = list(tables.iter_rows(io.BytesIO(data), info))
    assert len(rows) == 300_002
    assert rows[-2:] == [(300_001, ["2", "a\rb"]), (300_002, ["3", "c"])]


def prepared_prompts(owner, content: bytes, prompt: str) -> tuple[Dataset, Job, list[str]]:
    """Upload `content`, count it as the worker does, prepare a job on it; the user prompts sent."""
    dataset = datasets.create_from_upload(owner, SimpleUploadedFile("upload.csv", content))
    datasets.count_rows(dataset.pk)
    dataset.refresh_from_db()
    credential = ProviderCredential(name="Local", kind=ProviderCredential.Kind.SIMULATOR, is_default=True)
    credential.set_api_key("sk-simulator")
    credential.save()
    job = Job.objects.create(
        owner=owner,
        dataset=dataset,
        credential=credential,
        name="Job",
        model="gpt-4o-mini",
        user_prompt=prompt,
    )
    pipeline.prepare_job(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.PLANNED, job.error
    prompts = []
    for batch in job.batches.order_by("index"):
        with rawfiles.lines(batch.input_file) as fh:
            prompts += [json.loads(line)["body"]["messages"][-1]["content"] for line in fh]
    return dataset, job, prompts


@pytest.mark.django_db
@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_the_prepared_requests_hold_one_request_per_record_with_its_cr(alice, line_end):
    dataset, job, prompts = prepared_prompts(alice, tweets_file(line_end), "Language of: {{ text }}")
    assert (dataset.row_count, len(dataset.preview)) == (4, 4)
    assert job.rows_total == 4
    assert prompts == [f"Language of: {row[1]}" for row in TWEETS]


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_a_long_file_is_read_the_same_across_its_chunks_with_each_problem_naming_its_line(line_end):
    from jobs.formats.textfiles import CHUNK_CHARS

    # Lines of about 50 characters: the file spans several chunks of CHUNK_CHARS.
    count = 3 * CHUNK_CHARS // 50
    lines = ["id,text,lang"] + [f"{n},review number {n} with some words in it,en" for n in range(1, count)]
    lines[count // 3] = f'{count // 3},"a quoted cell{line_end}over two lines",fr'  # straddles a line end
    lines[count // 2] = f"{count // 2},a lone\rCR,de"
    lines[count - 5] = "short row"
    data = (line_end.join(lines) + line_end).encode()
    log = tables.ProblemLog()
    info = tables.inspect(io.BytesIO(data), "long.csv")
    rows = dict(tables.iter_rows(io.BytesIO(data), info, short_rows="skip", problems=log))

    assert len(rows) == count - 2  # the short row left out
    assert rows[count // 3] == [str(count // 3), f"a quoted cell{line_end}over two lines", "fr"]
    assert rows[count // 2] == [str(count // 2), "a lone\rCR", "de"]
    assert rows[count - 5] == [str(count - 4), f"review number {count - 4} with some words in it", "en"]
    # The quoted cell takes two physical lines: the short row is one line further down.
    assert [p.message for p in log.items] == [
        f"Line {count - 5 + 2} has 1 cells but the header has 3; the row was skipped."
    ]
