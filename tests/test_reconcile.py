import io

import orjson

from jobs.formats import reconcile
from jobs.formats.requestfiles import CHAT, EMBEDDINGS, RESPONSES


def chat_ok(row, text, prompt=10, completion=3):
    return orjson.dumps(
        {
            "id": f"batch_req_{row}",
            "custom_id": f"row-{row}",
            "response": {
                "status_code": 200,
                "request_id": "req_1",
                "body": {
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    },
                },
            },
            "error": None,
        }
    )


def http_error(row, status, code, message):
    return orjson.dumps(
        {
            "id": f"batch_req_{row}",
            "custom_id": f"row-{row}",
            "response": {
                "status_code": status,
                "request_id": "req_2",
                "body": {
                    "error": {
                        "message": message,
                        "type": "invalid_request_error",
                        "param": None,
                        "code": code,
                    }
                },
            },
            "error": None,
        }
    )


def expired(row):
    return orjson.dumps(
        {
            "id": "x",
            "custom_id": f"row-{row}",
            "response": None,
            "error": {"code": "batch_expired", "message": "This request could not be executed."},
        }
    )


def run(expected, *files, endpoint=CHAT):
    out = io.BytesIO()
    streams = [io.BytesIO(b"\n".join(lines) + b"\n") for lines in files]
    summary = reconcile.reconcile(expected, streams, endpoint, out)
    out.seek(0)
    return summary, list(reconcile.read_outcomes(out))


def test_it_joins_by_custom_id_not_by_line_order():
    summary, outcomes = run([1, 2, 3], [chat_ok(3, "three"), chat_ok(1, "one"), chat_ok(2, "two")])
    assert [(o.row, o.answer) for o in outcomes] == [(1, "one"), (2, "two"), (3, "three")]
    assert summary.succeeded == 3
    assert summary.input_tokens == 30 and summary.output_tokens == 9


def test_an_http_error_with_a_null_error_field_is_a_failure():
    message = "This model's maximum context length is 128000 tokens."
    summary, outcomes = run(
        [1, 2], [chat_ok(1, "fine")], [http_error(2, 400, "context_length_exceeded", message)]
    )
    assert outcomes[1].ok is False
    assert outcomes[1].code == "context_length_exceeded"
    assert outcomes[1].message == message
    assert outcomes[1].retryable is False
    assert (summary.succeeded, summary.failed) == (1, 1)


def test_rate_limits_server_errors_and_expiry_are_retryable():
    _, outcomes = run(
        [1, 2, 3],
        [http_error(1, 429, "rate_limit_exceeded", "slow"), http_error(2, 500, None, "oops"), expired(3)],
    )
    assert [(o.code, o.retryable) for o in outcomes] == [
        ("rate_limit_exceeded", True),
        ("http_500", True),
        ("batch_expired", True),
    ]


def test_a_row_missing_from_both_files_is_lost_and_retryable():
    summary, outcomes = run([1, 2], [chat_ok(1, "one")])
    assert outcomes[1].code == "lost" and outcomes[1].retryable
    assert summary.lost == 1


def test_unknown_blank_and_broken_lines_are_ignored_and_counted():
    summary, outcomes = run([1], [b"", b"not json", chat_ok(99, "stranger"), chat_ok(1, "one")])
    assert [o.answer for o in outcomes] == ["one"]
    assert summary.unknown_lines == 2


def test_a_success_wins_over_a_duplicate_failure():
    _, outcomes = run([1], [http_error(1, 500, None, "x"), chat_ok(1, "one")])
    assert outcomes[0].ok and outcomes[0].answer == "one"


def test_responses_and_embeddings_answers():
    responses_line = orjson.dumps(
        {
            "custom_id": "row-1",
            "error": None,
            "response": {
                "status_code": 200,
                "body": {
                    "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hi!"}]}],
                    "usage": {"input_tokens": 4, "output_tokens": 2},
                },
            },
        }
    )
    _, outcomes = run([1], [responses_line], endpoint=RESPONSES)
    assert (outcomes[0].answer, outcomes[0].input_tokens, outcomes[0].output_tokens) == ("Hi!", 4, 2)
    embedding_line = orjson.dumps(
        {
            "custom_id": "row-1",
            "error": None,
            "response": {
                "status_code": 200,
                "body": {"data": [{"embedding": [0.5, -0.25]}], "usage": {"prompt_tokens": 3}},
            },
        }
    )
    _, outcomes = run([1], [embedding_line], endpoint=EMBEDDINGS)
    assert orjson.loads(outcomes[0].answer) == [0.5, -0.25]


def test_expected_rows_reads_our_input_files():
    lines = b'{"custom_id":"row-5","method":"POST"}\n{"method":"POST","custom_id":"row-9"}\n'
    assert reconcile.expected_rows(io.BytesIO(lines)) == [5, 9]
