"""Blocks of rendered rows → their request lines, prompt tokens and fingerprints, here or on other cores.

Pure, the worker half of requestfiles.write_batch_files. Counting tokens (bpe-openai: native, but it
holds the GIL) is about half of the prepare step, so on a big table the reading process hands blocks
of rendered texts to a pool of other processes, which count, serialise and fingerprint them, and
takes the results back in the order it sent them. Whatever the number of processes, every block goes
through the same `Encoder`, so the files written are the same bytes.

The pool's processes are spawned, not forked: the caller may be a Celery worker's child holding
database connections and threads, and a fresh interpreter inherits neither. Each loads only the
pure formats and its own tokenizer (about 70 MB, loaded at its first count); the reading process
then never loads one. At most two blocks per pool process are in flight, so memory stays bounded
however long the table, and the pool is shut down when the caller stops, early or not.

Also here, the test the reading process applies to every row before it goes into a block: whether
the cells its prompt uses are blank (`blank_test`).
"""

import itertools
import logging
import multiprocessing
import operator
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import process as mp_process
from typing import Any

log = logging.getLogger(__name__)

# Rows rendered per block: fewer switches and messages per row, little memory per block.
BLOCK = 1000
# A table is handed to a pool only past this many rows: below, starting processes and loading
# tokenizers costs more than it saves.
POOL_AFTER_ROWS = 10 * BLOCK
# Blocks in flight per pool process: one being worked on, one waiting, so no process idles.
IN_FLIGHT = 2


@dataclass
class Block:
    """Rows read, in order: those to encode with their texts (`systems` is None when every row has the
    same instructions), and those left out as empty on the way.
    """

    rows: list[int] = field(default_factory=list)
    systems: list[str] | None = None
    users: list[str] = field(default_factory=list)
    empty: list[int] = field(default_factory=list)


@dataclass
class Encoded:
    """A block's request lines (each ending in a line break), prompt tokens and, when asked, fingerprints."""

    lines: list[bytes]
    tokens: list[int]
    marks: list[str] | None


def blank_test(used: list[int], which: str) -> Callable[[list[str]], bool]:
    """Whether all (or, with `which="any"`, any) of the cells a template uses are blank."""
    if not used:  # a prompt without columns: no cell is used, so all are blank and none is
        return lambda cells: which != "any"
    # Once per row: the cells are taken and tested by C code (itemgetter, join, map), no Python loop.
    cells_of = operator.itemgetter(*used) if len(used) > 1 else lambda cells: (cells[used[0]],)
    if which == "any":
        return lambda cells: "" in (values := cells_of(cells)) or any(map(str.isspace, values))
    # All blank exactly when their text put together is empty or only spaces.
    return lambda cells: not (text := "".join(cells_of(cells))) or text.isspace()


class Encoder:
    """Turns a block's texts into lines, tokens and fingerprints; picklable, to be sent to a pool.

    `builder` is a requestfiles.RequestBuilder and `count_tokens` a function of (system, user).
    """

    def __init__(self, builder: Any, count_tokens: Callable[[str, str], int] | None, fingerprints: bool):
        self.builder = builder
        self.count_tokens = count_tokens
        self.fingerprints = fingerprints

    def __call__(self, rows: list[int], systems: list[str] | None, users: list[str]) -> Encoded:
        builder = self.builder
        line = builder.line
        if systems is None:
            systems = [builder.fixed_system or ""] * len(users)
        texts = list(zip(systems, users, strict=True))
        lines = [line(row, system, user) + b"\n" for row, (system, user) in zip(rows, texts, strict=True)]
        count = self.count_tokens
        tokens = [count(system, user) for system, user in texts] if count else [0] * len(rows)
        mark = builder.fingerprint
        marks = [mark(system, user) for system, user in texts] if self.fingerprints else None
        return Encoded(lines, tokens, marks)


def encoded(encoder: Encoder, blocks: Iterable[Block], processes: int) -> Iterator[tuple[Block, Encoded]]:
    """Each block with what `encoder` makes of it, in order: in this process, or, when `processes` > 1
    and the table is longer than POOL_AFTER_ROWS, in `processes - 1` others while this one reads on.
    """
    blocks = iter(blocks)
    head: list[Block] = []
    rows = 0
    if processes > 1:
        for block in blocks:
            head.append(block)
            rows += len(block.rows)
            if rows > POOL_AFTER_ROWS:
                yield from _in_pool(encoder, itertools.chain(head, blocks), processes - 1)
                return
    for block in itertools.chain(head, blocks):
        yield block, encoder(block.rows, block.systems, block.users)


# The encoder of a pool process, set once when it starts rather than sent with every block.
_encoder: Encoder | None = None


def _start(encoder: Encoder) -> None:
    global _encoder
    _encoder = encoder


def _encode(rows: list[int], systems: list[str] | None, users: list[str]) -> Encoded:
    return _encoder(rows, systems, users)


def _in_pool(encoder: Encoder, blocks: Iterator[Block], workers: int) -> Iterator[tuple[Block, Encoded]]:
    # A Celery worker's children are billiard's processes, which multiprocessing takes for its own:
    # daemonic (it refuses to start processes from those, lest they outlive them), with a key of
    # billiard's type that it cannot send to a spawned process. While the pool lives, this process's
    # settings are those of a plain one. The pool cannot outlive it: it is shut down below, and a pool
    # process whose parent dies ends at once, as the pipe it reads its blocks from closes.
    current = multiprocessing.current_process()
    settings = current._config
    plain = {key: value for key, value in settings.items() if key != "daemon"}
    current._config = plain | {"authkey": mp_process.AuthenticationString(current.authkey)}
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start, initargs=(encoder,)
    )
    # [block, its future], oldest first; a block leaves only once its result is in hand.
    waiting: deque[list] = deque()
    log.info("Request lines made by %d more processes.", workers)
    try:
        for block in blocks:
            waiting.append([block, None])
            waiting[-1][1] = pool.submit(_encode, block.rows, block.systems, block.users)
            if len(waiting) >= workers * IN_FLIGHT:
                yield _oldest(waiting)
        while waiting:
            yield _oldest(waiting)
    except BrokenProcessPool:
        # A pool process died (killed, out of memory, could not start): the blocks it had, and the
        # rest, are made here, the same bytes, only slower.
        log.warning("The prepare pool broke; the rest of the table is prepared in one process.")
        for block in itertools.chain((block for block, _ in waiting), blocks):
            yield block, encoder(block.rows, block.systems, block.users)
    finally:
        # Stopped early (an error, a row over the size limit) or done: nothing more is worked on.
        pool.shutdown(wait=True, cancel_futures=True)
        current._config = settings


def _oldest(waiting: deque[list]) -> tuple[Block, Encoded]:
    block, future = waiting[0]
    done = future.result()
    waiting.popleft()
    return block, done
