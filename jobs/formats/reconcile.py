"""Provider output and error files → one outcome per input row, joined by custom_id.

Pure: reads JSONL streams, writes an outcomes file sorted by row. Never trusts line
order. A line is a success only if `error` is null and the HTTP status is 2xx;
otherwise the message comes from `error` or from `response.body.error`. Rows that
appear in neither file are reported as lost, which is retryable.
Memory is bounded by the size of one batch (at most 50,000 requests).
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from jobs.formats.requestfiles import CHAT, EMBEDDINGS
from jobs.formats.requestreads import line_row

# Failures worth sending again as they are; anything else needs the user to change something.
RETRYABLE_CODES = frozenset(
    {
        "batch_expired",
        "batch_cancelled",
        "request_timeout",
        "rate_limit_exceeded",
        "server_error",
        "lost",
        "timeout",
        "token_limit_exceeded",
    }
)
# A row that failed this many times is not offered the same resend again: only an edited prompt.
MAX_ATTEMPTS = 3


def resendable(outcome: "Outcome", attempts: int) -> bool:
    """Whether sending a failed row again as it is could help: a passing failure, not yet tried too often."""
    return not outcome.ok and outcome.retryable and attempts < MAX_ATTEMPTS


# The job was cancelled before the row was sent.
CANCELLED_BEFORE_SENDING = "cancelled"
# Only the rows before it were sent: the budget left room for them and not for the rest.
HELD_BACK = "over_budget"
# Rows never sent, so neither answered nor failed (nor offered for resending): those prepare left
# out, those of a job cancelled first, and those held back by the budget. The results say "not sent"
# with the code as the reason.
SKIPPED_CODES = frozenset({"skipped_empty", "too_long", CANCELLED_BEFORE_SENDING, HELD_BACK})
# A row answered without being sent: by an earlier answer to the identical request, or by the answer
# to an earlier row of the same job whose request is identical. A success; the message says where from.
REUSED = "reused"


@dataclass(slots=True)
class Outcome:
    row: int
    ok: bool
    answer: str = ""
    code: str = ""
    message: str = ""
    retryable: bool = False
    input_tokens: int = 0
    output_tokens: int = 0

    def to_json(self) -> bytes:
        return orjson.dumps(
            (
                self.row,
                self.ok,
                self.answer,
                self.code,
                self.message,
                self.retryable,
                self.input_tokens,
                self.output_tokens,
            )
        )


@dataclass
class Summary:
    succeeded: int = 0
    failed: int = 0
    not_sent: int = 0
    lost: int = 0
    unknown_lines: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    codes: Counter = field(default_factory=Counter)


def expected_rows(input_stream: IO[bytes]) -> list[int]:
    """The row numbers of the requests in one of our input files, in file order."""
    return [row for row in map(line_row, input_stream) if row is not None]


def answer_of(endpoint: str, body: dict[str, Any]) -> str:
    if endpoint == CHAT:
        choices = body.get("choices")
        if not choices:
            return ""
        message = choices[0].get("message") or {}
        return message.get("content") or message.get("refusal") or ""
    if endpoint == EMBEDDINGS:
        data = body.get("data") or []
        return orjson.dumps(data[0].get("embedding", [])).decode() if data else ""
    return "".join(
        part.get("text", "")
        for item in body.get("output") or []
        for part in item.get("content") or []
        if part.get("type") == "output_text"
    )


def usage_of(body: dict[str, Any]) -> tuple[int, int]:
    usage = body.get("usage")
    if not usage:
        return 0, 0
    if "prompt_tokens" in usage:  # chat completions and embeddings
        return usage["prompt_tokens"] or 0, usage.get("completion_tokens") or 0
    return usage.get("input_tokens") or 0, usage.get("output_tokens") or 0  # responses


def parse_line(line: bytes, endpoint: str) -> Outcome | None:
    """One result line → an Outcome, or None when the line is not about one of our rows."""
    try:
        record = orjson.loads(line)
        cid = record["custom_id"]
        number = cid[4:]
        if cid[:4] != "row-" or not number.isdigit():
            return None
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    row = int(number)
    error = record.get("error")
    response = record.get("response") or {}
    status = response.get("status_code") or 0
    body = response.get("body") or {}
    if not error and 200 <= status < 300:
        tokens_in, tokens_out = usage_of(body)
        return Outcome(row, True, answer_of(endpoint, body), "", "", False, tokens_in, tokens_out)
    if not error:
        error = (body.get("error") if isinstance(body, dict) else None) or {}
    code = str(error.get("code") or (f"http_{status}" if status else "unknown_error"))
    message = error.get("message") or f"The provider answered with status {status}."
    retryable = code in RETRYABLE_CODES or status == 429 or status >= 500
    return Outcome(row, False, code=code, message=message, retryable=retryable)


def failure(row: int, code: str, message: str) -> Outcome:
    return Outcome(row, False, code=code, message=message, retryable=code in RETRYABLE_CODES)


def not_sent(row: int, code: str, message: str) -> Outcome:
    """A row that never went to the provider: no answer, no failure, nothing to resend."""
    return Outcome(row, False, code=code, message=message, retryable=False)


def write_outcomes(outcomes: Iterable[Outcome], out: IO[bytes]) -> Summary:
    """Write outcomes (already sorted by row) and add them up."""
    summary = Summary()
    succeeded = input_tokens = output_tokens = 0
    lines: list[bytes] = []
    for outcome in outcomes:
        if outcome.ok:
            succeeded += 1
        elif outcome.code in SKIPPED_CODES:
            summary.not_sent += 1
        else:
            summary.codes[outcome.code] += 1
        input_tokens += outcome.input_tokens
        output_tokens += outcome.output_tokens
        lines.append(outcome.to_json())
        if len(lines) >= 1000:
            out.write(b"\n".join(lines) + b"\n")
            lines.clear()
    if lines:
        out.write(b"\n".join(lines) + b"\n")
    summary.succeeded = succeeded
    summary.failed = summary.codes.total()
    summary.lost = summary.codes["lost"]
    summary.input_tokens, summary.output_tokens = input_tokens, output_tokens
    return summary


def reconcile(
    expected: Iterable[int], result_streams: Iterable[IO[bytes]], endpoint: str, out: IO[bytes]
) -> Summary:
    """Join result lines to the expected rows and write one outcome per row, sorted by row.

    A row that appears twice keeps its first success; a row that appears nowhere is lost.
    Lines about rows we did not send are counted and ignored.
    """
    wanted = set(expected)
    found: dict[int, Outcome] = {}
    unknown = 0
    parse = parse_line
    for stream in result_streams:
        for line in stream:
            if line.isspace():
                continue
            outcome = parse(line, endpoint)
            if outcome is None or outcome.row not in wanted:
                unknown += 1
                continue
            previous = found.get(outcome.row)
            if previous is None or (outcome.ok and not previous.ok):
                found[outcome.row] = outcome
    lost = "The provider returned no result for this row."
    summary = write_outcomes((found.get(row) or failure(row, "lost", lost) for row in sorted(wanted)), out)
    summary.unknown_lines = unknown
    return summary


def read_outcomes(stream: IO[bytes]) -> Iterator[Outcome]:
    loads = orjson.loads
    for line in stream:
        if not line.isspace():
            yield Outcome(*loads(line))
