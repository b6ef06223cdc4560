"""Our request files read back: a line's row and prompt tokens, and the lines of chosen rows copied
from earlier files (to resend them as first sent, or as the latest attempt sent them).

Pure, like requestfiles, whose lines these are.
"""

import heapq
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator
from typing import IO

import orjson

from jobs.formats.requestfiles import row_of

_CUSTOM_ID_PREFIX = b'{"custom_id":"'


def line_row(line: bytes) -> int | None:
    """The row number of one of our request lines, read without parsing the whole line."""
    if line.startswith(_CUSTOM_ID_PREFIX):
        end = line.index(b'"', len(_CUSTOM_ID_PREFIX))
        return row_of(line[len(_CUSTOM_ID_PREFIX) : end].decode())
    return row_of(orjson.loads(line).get("custom_id", ""))  # not in our usual key order


def line_prompt_tokens(line: bytes, count_prompt: Callable[[str, str], int]) -> int:
    """The prompt tokens of one of our request lines, counted from its texts as prepare counted them
    (tokens.prompt_counter): the per-row figure a request file does not keep."""
    body = orjson.loads(line)["body"]
    if "messages" in body:
        texts = {m["role"]: m["content"] for m in body["messages"]}
        return count_prompt(texts.get("system", ""), texts["user"])
    return count_prompt(body.get("instructions", ""), body["input"])


def select_requests(
    sources: Iterable[tuple[IO[bytes], int, float]], rows: Iterable[int]
) -> Iterator[tuple[int, bytes, int]]:
    """The request lines of the given rows, copied from earlier request files.

    `sources` are (request file, its last row, prompt tokens per line) in row order and
    `rows` is sorted, so one pass over both is enough, and a file holding none of the
    rows is not read. A resent request is byte for byte the one first sent, whatever
    happened to the template since. Tokens per line are the source file's average.
    """
    wanted = iter(rows)
    target = next(wanted, None)
    for stream, last_row, tokens_per_line in sources:
        if target is None:
            return
        if target > last_row:
            continue
        for line in stream:
            row = line_row(line)
            if row is None:
                continue
            while target is not None and target < row:
                target = next(wanted, None)
            if row == target:
                yield row, line if line.endswith(b"\n") else line + b"\n", round(tokens_per_line)
                target = next(wanted, None)
            if target is None or target > last_row:
                break


def latest_requests(
    attempts: list[list[tuple[IO[bytes], int, float]]], rows: Iterable[int]
) -> Iterator[tuple[int, bytes, int]]:
    """The request lines of the given rows, each as the latest attempt that had it sent it.

    `attempts` holds, oldest first, each attempt's request files as select_requests takes them
    (an attempt's parts never share a row). Every file is read once, merged by row: heapq.merge is
    stable, so of a row's lines the latest attempt's comes last. A row resent with an edited prompt
    is sent again with that prompt.
    """
    merged = heapq.merge(*(_request_lines(sources) for sources in attempts), key=operator.itemgetter(0))
    wanted = iter(rows)
    target = next(wanted, None)
    for row, group in itertools.groupby(merged, key=operator.itemgetter(0)):
        while target is not None and target < row:
            target = next(wanted, None)
        if target is None:
            return
        if row == target:
            *_, latest = group
            yield latest
            target = next(wanted, None)


def _request_lines(sources: Iterable[tuple[IO[bytes], int, float]]) -> Iterator[tuple[int, bytes, int]]:
    for stream, _, tokens_per_line in sources:
        for line in stream:
            row = line_row(line)
            if row is not None:
                yield row, line if line.endswith(b"\n") else line + b"\n", round(tokens_per_line)
