"""A long table's request lines made by a pool of processes: the same files, reports and errors as one."""

import csv
import io
import logging
import multiprocessing
import os
import signal

import orjson
import pytest

from bench.stack import wait_for
from jobs import pipeline, rawfiles, tasks
from jobs.formats import requestlines, tokens
from jobs.formats.requestfiles import CHAT, EMBEDDINGS, RequestBuilder, RequestSpec, write_batch_files
from jobs.models import Job
from tests.conftest import make_dataset

COLUMNS = ["Title", "Review", "Country"]
ROWS = requestlines.POOL_AFTER_ROWS + 5_000
PROMPT = "Title: {{ Title }}\nReview: {{ Review }}\nCountry: {{ Country }}"


def table():
    """Rows with every kind of case spread across blocks: empty, too long, repeated, answered before,
    and text in several scripts."""
    for row in range(1, ROWS + 1):
        if row % 997 == 0:
            yield row, ["", "", ""]
        elif row % 1999 == 0:
            yield row, ["long", "word " * 400, "FR"]
        elif row % 13 == 0:
            yield row, ["same", "the same review", "DE"]
        elif row == 4321:
            yield row, ["Très bien", "とても良い 🙂\r\nexcellent", "JP"]
        else:
            yield row, [f"title {row}", f"review {row}\nsecond line {row % 7}", "US"]


def prepare(
    tmp_path,
    processes,
    *,
    system="",
    max_bytes=10**9,
    max_prompt_tokens=300,
    answered_rows=(),
    model=None,
    rows=table,
):
    endpoint, model = (EMBEDDINGS, model) if model else (CHAT, "gpt-4o-mini")
    builder = RequestBuilder(
        RequestSpec(endpoint, model, system, PROMPT, 0 if endpoint == CHAT else None), COLUMNS
    )
    # Each kind of report goes to a file of its own (reuse.Answered): its order within the kind counts.
    reports = {"skip": [], "answered": [], "same_as": []}
    # The index answers these rows' requests, and holds the text key of another one.
    cells = dict(table())
    known = {builder.fingerprint(*builder.texts(cells[row])) for row in answered_rows}
    keys = {builder.text_key(builder.body(cells[row])) for row in answered_rows} | {12345}
    directory = tmp_path / f"with-{processes}"
    parts = write_batch_files(
        rows(),
        builder,
        directory,
        max_requests=4_000,
        max_bytes=max_bytes,
        count_tokens=tokens.prompt_counter(model, endpoint),
        skip=lambda row, code, prompt_tokens: reports["skip"].append((row, code, prompt_tokens)),
        skip_empty="all",
        max_prompt_tokens=max_prompt_tokens,
        lookup=lambda marks: {mark: f"answer to {mark}" for mark in marks if mark in known},
        known=lambda: keys,
        answered=lambda row, answer: reports["answered"].append((row, answer)),
        same_as=lambda row, first: reports["same_as"].append((row, first)),
        processes=processes,
    )
    files = [
        (p.path.name, p.first_row, p.last_row, p.request_count, p.bytes, p.input_tokens)
        for p in parts
    ]
    contents = {path.name: path.read_bytes() for path in sorted(directory.iterdir())}
    return files, contents, reports


@pytest.mark.parametrize("system", ["", "Answer with one word.", "About {{ Country }}: one word."])
def test_a_pool_of_processes_writes_the_same_bytes_and_reports_as_one_process(tmp_path, caplog, system):
    caplog.set_level(logging.INFO, logger="jobs.formats.requestlines")
    alone = prepare(tmp_path / "alone", 1, system=system, answered_rows=[2, 1500, 14_002])
    assert "more processes" not in caplog.text
    pooled = prepare(tmp_path / "pooled", 2, system=system, answered_rows=[2, 1500, 14_002])
    assert "Request lines made by 1 more processes." in caplog.text

    assert pooled == alone
    files, contents, reports = alone
    assert len(files) > 2 and sum(f[3] for f in files) > ROWS * 0.8
    assert {code for _, code, _ in reports["skip"]} == {"skipped_empty", "too_long"}
    assert len(reports["same_as"]) > 1000
    assert [row for row, _ in reports["answered"]] == [2, 1500, 14_002]
    # Reported in row order, whatever process made the lines.
    for kind in reports.values():
        assert kind == sorted(kind)


def test_an_embeddings_table_is_counted_in_a_pool_as_its_texts_alone_like_one_process(tmp_path):
    """The pool's processes receive the counter with its endpoint: an embeddings input has no framing."""
    alone = prepare(tmp_path / "alone", 1, model="text-embedding-3-small")
    assert prepare(tmp_path / "pooled", 2, model="text-embedding-3-small") == alone
    files, contents, _ = alone
    count = tokens.counter("text-embedding-3-small")
    inputs = [orjson.loads(line)["body"]["input"] for data in contents.values() for line in data.splitlines()]
    assert len(inputs) > ROWS * 0.8 and sum(f[5] for f in files) == sum(map(count, inputs))


@pytest.mark.parametrize("system", ["", "Answer with one word.", "About {{ Country }}: one word."])
@pytest.mark.parametrize("processes", [1, 2])
def test_the_tokens_counted_with_the_templates_words_taken_out_are_those_of_the_whole_requests(
    tmp_path, system, processes
):
    # PROMPT's "Title", "Review" and "Country" are counted once (tokens.Shortcuts), not in each row.
    files, contents, _ = prepare(tmp_path, processes, system=system, max_prompt_tokens=None)
    for name, _, _, requests, _, counted in files:
        bodies = [orjson.loads(line)["body"] for line in contents[name].splitlines()]
        assert len(bodies) == requests > 1000
        assert counted == sum(tokens.chat_tokens("gpt-4o-mini", body["messages"]) for body in bodies)


def test_a_request_over_the_size_limit_is_named_by_its_row_with_a_pool_too(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="jobs.formats.requestlines")
    alone, pooled = (
        pytest.raises(ValueError, prepare, tmp_path / str(n), n, max_bytes=1500, max_prompt_tokens=None)
        for n in (1, 2)
    )
    assert "Request lines made by 1 more processes." in caplog.text
    assert str(pooled.value) == str(alone.value)
    assert str(alone.value).startswith("Row 1999 makes a request of ")


def test_a_pool_process_that_dies_leaves_the_rest_to_this_one_and_the_files_are_the_same(
    tmp_path, caplog
):
    def killed_midway():
        for row, cells in table():
            if row == requestlines.POOL_AFTER_ROWS + 2_000:  # blocks are in flight
                for child in multiprocessing.active_children():
                    os.kill(child.pid, signal.SIGKILL)
            yield row, cells

    alone = prepare(tmp_path / "alone", 1)
    pooled = prepare(tmp_path / "pooled", 2, rows=killed_midway)
    assert "The prepare pool broke; the rest of the table is prepared in one process." in caplog.text
    assert pooled == alone
    assert not multiprocessing.active_children()


def refusing_count(system: str, user: str) -> int:
    if "refuse" in user:
        raise ValueError("This text cannot be counted.")
    return len(user)


def test_an_error_counting_in_a_pool_process_is_raised_here(tmp_path):
    builder = RequestBuilder(RequestSpec(CHAT, "gpt-4o-mini", "", PROMPT), COLUMNS)
    rows = ((row, ["t", "refuse" if row == 14_000 else "r", "c"]) for row in range(1, ROWS + 1))
    made = write_batch_files(
        rows,
        builder,
        tmp_path,
        max_requests=50_000,
        max_bytes=10**9,
        count_tokens=refusing_count,
        processes=2,
    )
    with pytest.raises(ValueError, match="This text cannot be counted."):
        list(made)
    assert not multiprocessing.active_children()


def test_a_short_table_is_made_in_this_process_whatever_the_setting(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="jobs.formats.requestlines")
    builder = RequestBuilder(RequestSpec(CHAT, "gpt-4o-mini", "", PROMPT), COLUMNS)
    short = ((row, ["t", "r", "c"]) for row in range(1, requestlines.POOL_AFTER_ROWS + 1))
    parts = list(
        write_batch_files(short, builder, tmp_path, max_requests=50_000, max_bytes=10**9, processes=8)
    )
    assert parts[0].request_count == requestlines.POOL_AFTER_ROWS
    assert "more processes" not in caplog.text


def test_a_lone_surrogate_is_counted_as_the_tokenizer_s_public_api_counts_it():
    import bpe_openai

    text = "broken \ud800 text"
    public = bpe_openai.get_encoding("o200k_base").encode_ordinary(text)
    assert tokens.counter("gpt-4o-mini")(text) == len(public)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_prepares_a_long_table_in_a_pool_into_the_same_files_as_one_process(
    alice, simulator_credential, worker_process, settings
):
    # The worker's pool children are forked by Celery; the prepare pool is spawned from one of them.
    worker_process.env["PREPARE_PROCESSES"] = "2"
    worker_process.start()
    text = io.StringIO()
    csv.writer(text).writerows([COLUMNS, *(cells for _, cells in table())])
    dataset = make_dataset(alice, text.getvalue().encode(), "long.csv")
    fields = dict(owner=alice, dataset=dataset, credential=simulator_credential, model="gpt-4o-mini")
    fields |= dict(user_prompt=PROMPT, temperature=0, empty_rows=Job.EmptyRows.ALL)
    pooled = Job.objects.create(name="In a pool", **fields)
    tasks.prepare_job.delay(pooled.pk)
    wait_for(lambda: Job.objects.get(pk=pooled.pk).status != Job.Status.PREPARING, message="the plan")
    settings.PREPARE_PROCESSES = 1
    alone = Job.objects.create(name="In one process", **fields)
    pipeline.prepare_job(alone.pk)

    def made(job):
        job.refresh_from_db()
        files = [job.skipped_file, job.copies_file] + [b.input_file for b in job.batches.order_by("index")]
        counts = (job.status, job.rows_total, job.input_tokens, job.rows_skipped, job.rows_copied)
        # Request files stored as one process stores them (gzip-compressed), the same once read back.
        assert all(f.name.endswith(rawfiles.SUFFIX) for f in files[2:])
        return counts, [b"".join(rawfiles.chunks(f)) if f else None for f in files]

    assert made(pooled) == made(alone)
    (status, rows, _, skipped, copied), files = made(alone)
    # The CSV's empty rows are blank lines, which the reader leaves out before prepare sees them.
    assert status == Job.Status.PLANNED and rows > 10_000 and copied > 1000 and all(files[1:])
    assert "Request lines made by 1 more processes." in worker_process.log_path.read_text()
