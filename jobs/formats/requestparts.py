"""Request lines, given in row order and in blocks, → the files of a job's parts, each within the
provider's limits (requests per file, bytes per file), with their rows, sizes and prompt tokens.
Pure: writes files into a directory and returns what it wrote.
"""

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class BatchFile:
    """One written request file: which rows it holds and how big it is."""

    path: Path
    first_row: int
    last_row: int
    request_count: int = 0
    bytes: int = 0
    input_tokens: int = 0


@dataclass
class Lines:
    """Request lines ready to write, in row order: their rows, the lines joined (each ending in a line
    break), the length of each and their prompt tokens. split_requests writes a block that fits the
    current file in one go.
    """

    rows: list[int]
    data: bytes
    lengths: list[int]
    tokens: list[int]

    def __iter__(self) -> Iterator[tuple[int, bytes, int]]:
        ends = list(itertools.accumulate(self.lengths))
        lines = map(self.data.__getitem__, itertools.starmap(slice, zip([0, *ends][:-1], ends, strict=True)))
        return zip(self.rows, lines, self.tokens, strict=True)

    def only(self, indexes: list[int]) -> "Lines":
        """The lines at these positions."""
        lines = list(self)
        kept = [lines[index] for index in indexes]
        return Lines(
            [row for row, _, _ in kept],
            b"".join(line for _, line, _ in kept),
            [len(line) for _, line, _ in kept],
            [tokens for _, _, tokens in kept],
        )


def split_requests(
    blocks: Iterable[Iterable[tuple[int, bytes, int]]], directory: Path, *, max_requests: int, max_bytes: int
) -> Iterator[BatchFile]:
    """Write (row, request line, prompt tokens), given in blocks, into files within the provider's limits."""
    directory.mkdir(parents=True, exist_ok=True)
    index = 0
    part: BatchFile | None = None
    # Per-row work is kept to local variables and lines are written in blocks: this loop
    # runs once per row of files with millions of rows.
    buffer: list[bytes] = []
    count = size = tokens = last_row = 0

    def flush() -> None:
        block = b"".join(buffer)
        handle.write(block)
        buffer.clear()

    def close() -> BatchFile:
        flush()
        handle.close()
        part.last_row, part.request_count, part.bytes, part.input_tokens = last_row, count, size, tokens
        return part

    for block in blocks:
        if isinstance(block, Lines) and part is not None and count + len(block.rows) <= max_requests:
            # The usual case: a whole block of lines fits the file being written.
            data = block.data
            if size + len(data) <= max_bytes:
                buffer.append(data)
                flush()
                if block.rows:
                    last_row = block.rows[-1]
                count += len(block.rows)
                size += len(data)
                tokens += sum(block.tokens)
                continue
        for row, line, line_tokens in block:
            length = len(line)
            if length > max_bytes:
                raise ValueError(
                    f"Row {row} makes a request of {length:,} bytes, over the limit of {max_bytes:,}."
                )
            if part is not None and (count >= max_requests or size + length > max_bytes):
                yield close()
                part = None
            if part is None:
                part = BatchFile(path=directory / f"part-{index:05d}.jsonl", first_row=row, last_row=row)
                index += 1
                handle = part.path.open("wb")
                count = size = tokens = 0
            buffer.append(line)
            if len(buffer) >= 1000:
                flush()
            last_row = row
            count += 1
            size += length
            tokens += line_tokens
    if part is not None:
        yield close()
