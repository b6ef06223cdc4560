"""Rows → JSONL request lines → batch files that each fit the provider's limits.

Pure: takes rows and a request spec, writes files into a directory, returns what it
wrote. Every line gets a deterministic custom_id from its row number, so the same
rows always produce the same bytes, and results can be joined back to rows whatever
order the provider returns them in.
"""

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from jobs.prompts import CompiledTemplate, compile_template

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"


def custom_id(row: int) -> str:
    return f"row-{row}"


def row_of(custom_id_value: str) -> int | None:
    """The row number a custom_id stands for, or None if it is not one of ours."""
    prefix, _, number = custom_id_value.partition("-")
    if prefix != "row" or not number.isdigit():
        return None
    return int(number)


@dataclass(frozen=True)
class RequestSpec:
    """Everything that turns a row into a request body, frozen with the job."""

    endpoint: str
    model: str
    system_prompt: str = ""
    user_prompt: str = ""
    temperature: float | None = None
    max_output_tokens: int | None = None


class RequestBuilder:
    """Builds the body of one request from one row's cells."""

    def __init__(self, spec: RequestSpec, columns: list[str]):
        self.spec = spec
        self.url = spec.endpoint
        self._system = compile_template(spec.system_prompt, columns) if spec.system_prompt else None
        self._user: CompiledTemplate = compile_template(spec.user_prompt, columns)
        # The parameters every body shares, built once rather than per row.
        self._params: dict[str, Any] = {"model": spec.model}
        if spec.endpoint != EMBEDDINGS:
            if spec.temperature is not None:
                self._params["temperature"] = spec.temperature
            if spec.max_output_tokens:
                key = "max_output_tokens" if spec.endpoint == RESPONSES else "max_completion_tokens"
                self._params[key] = spec.max_output_tokens

    def texts(self, cells: list[str]) -> tuple[str, str]:
        """The system and user text a row produces."""
        system = self._system.render(cells) if self._system else ""
        return system, self._user.render(cells)

    def body(self, cells: list[str]) -> dict[str, Any]:
        system, user = self.texts(cells)
        body = dict(self._params)
        if self.spec.endpoint == EMBEDDINGS:
            body["input"] = user
        elif self.spec.endpoint == RESPONSES:
            if system:
                body["instructions"] = system
            body["input"] = user
        else:
            messages = [{"role": "system", "content": system}] if system else []
            messages.append({"role": "user", "content": user})
            body["messages"] = messages
        return body

    def line(self, row: int, cells: list[str]) -> bytes:
        return orjson.dumps(
            {"custom_id": custom_id(row), "method": "POST", "url": self.url, "body": self.body(cells)}
        )


@dataclass
class BatchFile:
    """One written request file: which rows it holds and how big it is."""

    path: Path
    first_row: int
    last_row: int
    request_count: int = 0
    bytes: int = 0
    input_tokens: int = 0
    sha256: str = ""


def write_batch_files(
    rows: Iterable[tuple[int, list[str]]],
    builder: RequestBuilder,
    directory: Path,
    *,
    max_requests: int,
    max_bytes: int,
    count_tokens=None,
) -> Iterator[BatchFile]:
    """Write rows as JSONL request files of at most `max_requests` lines and `max_bytes` bytes.

    Yields each file once it is closed, so the caller can store it while the next one is
    written; memory stays flat whatever the number of rows. `count_tokens(system, user)`,
    when given, adds up the prompt tokens of each file.
    Raises ValueError if a single request is larger than `max_bytes`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    index = 0
    current: BatchFile | None = None
    handle = None
    digest = None

    def close() -> BatchFile:
        handle.close()
        current.sha256 = digest.hexdigest()
        return current

    for row, cells in rows:
        line = builder.line(row, cells) + b"\n"
        if len(line) > max_bytes:
            raise ValueError(
                f"Row {row} makes a request of {len(line):,} bytes, over the limit of {max_bytes:,}."
            )
        if current and (current.request_count >= max_requests or current.bytes + len(line) > max_bytes):
            yield close()
            current = None
        if current is None:
            path = directory / f"part-{index:05d}.jsonl"
            index += 1
            current = BatchFile(path=path, first_row=row, last_row=row)
            handle = path.open("wb")
            digest = hashlib.sha256()
        handle.write(line)
        digest.update(line)
        current.last_row = row
        current.request_count += 1
        current.bytes += len(line)
        if count_tokens:
            current.input_tokens += count_tokens(*builder.texts(cells))
    if current:
        yield close()
