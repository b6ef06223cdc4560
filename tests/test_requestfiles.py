import random

import orjson
import pytest

from jobs.formats import requestlines
from jobs.formats.requestfiles import (
    CHAT,
    EMBEDDINGS,
    RESPONSES,
    RequestBuilder,
    RequestSpec,
    custom_id,
    row_of,
    write_batch_files,
)

COLUMNS = ["Review Text", "id"]


def rows(n):
    return ((i, [f"review number {i}", str(i)]) for i in range(1, n + 1))


def test_custom_ids_round_trip_to_row_numbers():
    assert row_of(custom_id(12345)) == 12345
    assert row_of("something-else") is None
    assert row_of("row-x") is None


def test_chat_lines_carry_the_contract_fields():
    builder = RequestBuilder(
        RequestSpec(CHAT, "gpt-4o-mini", "Be brief.", "Rate: {{ Review Text }}", 0.0, 50), COLUMNS
    )
    line = orjson.loads(builder.line(7, *builder.texts(["nice", "7"])))
    assert line == {
        "custom_id": "row-7",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "gpt-4o-mini",
            "temperature": 0.0,
            "max_completion_tokens": 50,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Rate: nice"},
            ],
        },
    }


def test_responses_and_embeddings_bodies():
    responses = RequestBuilder(RequestSpec(RESPONSES, "gpt-4.1-mini", "Sys", "{{ id }}", None, 20), COLUMNS)
    assert responses.body(["a", "1"]) == {
        "model": "gpt-4.1-mini",
        "max_output_tokens": 20,
        "instructions": "Sys",
        "input": "1",
    }
    embeddings = RequestBuilder(
        RequestSpec(EMBEDDINGS, "text-embedding-3-small", "", "{{ Review Text }}", 1.0, 5), COLUMNS
    )
    assert embeddings.body(["hello", "1"]) == {"model": "text-embedding-3-small", "input": "hello"}


def test_it_splits_by_request_count_and_keeps_every_row_once(tmp_path):
    builder = RequestBuilder(RequestSpec(CHAT, "gpt-4o-mini", "", "{{ Review Text }}"), COLUMNS)
    parts = list(write_batch_files(rows(25), builder, tmp_path, max_requests=10, max_bytes=10**9))
    assert [(p.first_row, p.last_row, p.request_count) for p in parts] == [
        (1, 10, 10),
        (11, 20, 10),
        (21, 25, 5),
    ]
    ids = [orjson.loads(line)["custom_id"] for p in parts for line in p.path.read_bytes().splitlines()]
    assert ids == [f"row-{i}" for i in range(1, 26)]
    for p in parts:
        assert p.bytes == p.path.stat().st_size


def test_it_splits_by_bytes(tmp_path):
    builder = RequestBuilder(RequestSpec(CHAT, "gpt-4o-mini", "", "{{ Review Text }}"), COLUMNS)
    line_size = len(builder.line(1, *builder.texts(["review number 1", "1"]))) + 1
    parts = list(
        write_batch_files(rows(9), builder, tmp_path, max_requests=1000, max_bytes=line_size * 3 + 5)
    )
    assert all(p.bytes <= line_size * 3 + 5 for p in parts)
    assert sum(p.request_count for p in parts) == 9


def test_the_same_rows_give_the_same_bytes(tmp_path):
    builder = RequestBuilder(RequestSpec(CHAT, "gpt-4o-mini", "", "{{ Review Text }}"), COLUMNS)
    first = [
        p.path.read_bytes()
        for p in write_batch_files(rows(30), builder, tmp_path / "a", max_requests=7, max_bytes=10**9)
    ]
    second = [
        p.path.read_bytes()
        for p in write_batch_files(rows(30), builder, tmp_path / "b", max_requests=7, max_bytes=10**9)
    ]
    assert first == second


def test_a_request_larger_than_the_limit_names_its_row(tmp_path):
    builder = RequestBuilder(RequestSpec(CHAT, "gpt-4o-mini", "", "{{ Review Text }}"), COLUMNS)
    with pytest.raises(ValueError, match="Row 3"):
        list(write_batch_files([(3, ["x" * 500, "3"])], builder, tmp_path, max_requests=10, max_bytes=100))


def test_it_counts_prompt_tokens_per_file(tmp_path):
    builder = RequestBuilder(RequestSpec(CHAT, "gpt-4o-mini", "", "{{ Review Text }}"), COLUMNS)
    parts = list(
        write_batch_files(
            rows(4),
            builder,
            tmp_path,
            max_requests=2,
            max_bytes=10**9,
            count_tokens=lambda system, user: len(user),
        )
    )
    assert [p.input_tokens for p in parts] == [30, 30]


@pytest.mark.parametrize(("which", "left_out"), [("all", [2, 3]), ("any", [2, 3, 4, 5]), (None, [])], ids=str)
def test_rows_whose_used_cells_are_blank_are_left_out_as_the_setting_says(tmp_path, which, left_out):
    builder = RequestBuilder(RequestSpec(CHAT, "gpt-4o-mini", "", "{{ a }} and {{ c }}"), ["a", "b", "c"])
    table = [["x", "", "y"], ["", "x", ""], [" \t", "x", "\n"], ["x", "", ""], ["", "", " y"]]
    skipped = []
    parts = write_batch_files(
        enumerate(table, start=1),
        builder,
        tmp_path,
        max_requests=10,
        max_bytes=10**6,
        skip=lambda row, code, tokens: skipped.append((row, code)),
        skip_empty=which,
    )
    assert sum(part.request_count for part in parts) == len(table) - len(left_out)
    assert skipped == [(row, "skipped_empty") for row in left_out]


@pytest.mark.parametrize(
    "texts",
    [
        ["plain", "é ü 配送", 'quote " and backslash \\', "line\nbreak\ttab"],
        ["a NUL \x00 inside", "next"],
        ["the escape \\u0000 written out", "next"],
        ["ends with a backslash \\", "\\u0000 starts with one"],
        ["one"],
        [],
    ],
)
def test_a_block_of_texts_serialised_in_one_call_is_each_text_serialised_alone(texts):
    alone = [orjson.dumps(text)[1:-1] for text in texts]
    assert requestlines.json_bodies(texts) == alone
    assert requestlines.json_bodies(requestlines.joined(texts)) == alone
    assert requestlines.separate(requestlines.joined(texts)) == texts


@pytest.mark.parametrize("which", ["all", "any"])
@pytest.mark.parametrize("used", [[0], [0, 2], [2, 1, 0]], ids=str)
def test_the_blank_test_over_a_block_keeps_the_rows_a_row_by_row_test_keeps(which, used):
    # White space of every kind str.strip() takes, NULs (which join a column's cells for its one
    # search), text: blocks where no used cell is blank, where some are, where all are.
    texts = ["x", " y ", "\x00", "\x00 \x00", "z\x00"]
    blanks = ["", " ", "\t\n", "\u00a0", "\u3000", "\x1c", "\x85"]
    rng = random.Random(which + str(used))
    kept = requestlines.kept_rows(used, which)
    combine = all if which == "any" else any
    for blank_share in (0, 0.05, 0.5, 1):
        for _ in range(20):
            block = [
                [rng.choice(blanks if rng.random() < blank_share else texts) for _ in range(3)]
                for _ in range(rng.randint(1, 40))
            ]
            expected = [combine(cells[column].strip() for column in used) for cells in block]
            got = kept(block)
            assert (got is None and all(expected)) or list(map(bool, got)) == expected
