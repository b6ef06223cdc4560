"""Blocks of rendered rows → their request lines and prompt tokens, here or on other cores.

Pure, the worker half of requestfiles.write_batch_files. Counting tokens (bpe-openai: native, but it
holds the GIL) is most of the prepare step's work, so on a big table the reading process hands blocks
of rendered texts to a pool of other processes, which count them, and takes the counts back in the
order it sent them; it serialises each block itself meanwhile (cheaper here than sending the lines
back, a quarter of a pool process's time when they were made there). Whatever the number of
processes, every block goes through the same `Encoder`, so the files written are the same bytes. Every
step runs over a whole block in C loops (map, slice assignment), not once per row.

The pool's processes are spawned, not forked: the caller may be a Celery worker's child holding
database connections and threads, and a fresh interpreter inherits neither. Each loads only the
pure formats and its own tokenizer (about 70 MB, loaded at its first count); the reading process
then never loads one. At most IN_FLIGHT blocks per pool process are in flight, so memory stays bounded
however long the table, and the pool is shut down when the caller stops, early or not.

Also here, the test the reading process applies to every block before it is rendered: which rows
have text in the cells their prompt uses (`kept_rows`).
"""

import array
import contextlib
import gc
import itertools
import logging
import multiprocessing
import operator
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import process as mp_process
from multiprocessing.connection import Connection
from typing import Any

import orjson

log = logging.getLogger(__name__)

# Rows rendered per block: enough that a block's steps run in C with few messages between processes,
# few enough that a block's objects stay in the processor's caches (on the multilingual million,
# blocks of 500 and of 2,000 were both 5-10% slower than 1,000).
BLOCK = 1000
# A table is handed to a pool only past this many rows: below, starting processes and loading
# tokenizers costs more than it saves.
POOL_AFTER_ROWS = 10_000
# Blocks in flight per pool process, so that neither side waits on the other for long: about 10 MB
# of texts (32 were 2% faster and 10 MB more). Their counts, 4 bytes a row, fit a pipe's buffer, so a
# pool process never waits to answer while the reading process waits to send.
IN_FLIGHT = 16


@dataclass
class Block:
    """Rows read, in order: those to encode with their texts (`systems` is None when every row has the
    same instructions; `users` may be `joined`), those left out as empty on the way, and the texts'
    keys when earlier answers are looked up (RequestBuilder.text_keys).
    """

    rows: list[int] = field(default_factory=list)
    systems: list[str] | None = None
    users: list[str] | str = field(default_factory=list)
    empty: list[int] = field(default_factory=list)
    keys: list[int] | None = None
    # The texts to count when they are not `users`: rendered from the template the builder counts by.
    counted: list[str] | str | None = None

    def to_count(self) -> tuple[list[str] | str, bool]:
        """The user texts to count, and whether they are the shortened ones."""
        return (self.users, False) if self.counted is None else (self.counted, True)


@dataclass
class Encoded:
    """A block's request lines joined (each ending in a line break), the length of each and their
    prompt tokens. One bytes object rather than a line each, written in one piece.
    """

    data: bytes
    lengths: list[int]
    tokens: list[int]


def json_body(text: str) -> bytes:
    """A text as JSON writes it between its quotes."""
    return orjson.dumps(text)[1:-1]


def json_bodies(texts: list[str] | str, count: int | None = None) -> list[bytes]:
    """json_body() of each text (a list, or joined by NUL as `joined` gives them; `count` of them,
    when known), serialised in one call: the texts joined by NUL, which JSON writes as the escape
    \\u0000, and split there; each text serialised alone when one holds a NUL or the six characters
    of that escape (the split would miscount)."""
    together = joined(texts)
    if isinstance(together, str):
        bodies = orjson.dumps(together)[1:-1].split(b"\\u0000")
        if len(bodies) == (together.count(GAP) + 1 if count is None else count):
            return bodies
    return list(map(json_body, separate(texts)))


# What joins a block's texts into one string: JSON writes it as an escape, and no table holds it
# (a NUL makes a file binary; XML cannot hold one).
GAP = "\x00"


def joined(texts: list[str] | str) -> list[str] | str:
    """The texts as one string, joined by NUL, or as they are if one of them holds a NUL or there
    are none (or they are joined already): one object to send to another process and to keep
    meanwhile, not a thousand."""
    if isinstance(texts, str):
        return texts
    together = GAP.join(texts)
    return together if texts and together.count(GAP) == len(texts) - 1 else texts


def separate(texts: list[str] | str) -> list[str]:
    """The texts `joined` put together."""
    return texts.split(GAP) if isinstance(texts, str) else texts


def kept_rows(used: list[int], which: str) -> Callable[[list[list[str]]], list | None]:
    """For a block of rows' cells, which to keep (truthy) and which are empty, or None when all are
    kept: empty when all (or, with `which="any"`, any) of the cells the template uses are blank.
    """
    if not used:  # a prompt without columns: no cell is used, so all are blank and none is
        return lambda block: None if which == "any" else [False] * len(block)
    combine = all if which == "any" else any
    columns = [operator.itemgetter(column) for column in used]

    def kept(block: list[list[str]]) -> list | None:
        # The usual case, told by one C search over a column's cells joined: no cell of some used
        # column (of every one, with "any") is blank, so no row is empty.
        full = (_no_blank(list(map(column, block))) for column in columns)
        if combine(full):
            return None
        # A cell with text has text once stripped: one C loop per used column, none per row.
        texts = [list(map(str.strip, map(column, block))) for column in columns]
        keep = texts[0] if len(texts) == 1 else list(map(combine, zip(*texts, strict=True)))
        return None if all(keep) else keep

    return kept


def _no_blank(cells: list[str]) -> bool:
    """Whether none of the cells is empty or only white space (a cell holding a NUL may be taken for
    blank: then the row-by-row test decides)."""
    return _BLANK_CELL.search(f"{GAP}{GAP.join(cells)}{GAP}") is None


# A blank cell between the NULs that join a column's cells; \s is what str.strip() takes away.
_BLANK_CELL = re.compile(r"\x00\s*\x00")


class Encoder:
    """Turns a block's texts into lines and tokens; picklable, to be sent to a pool.

    `builder` is a requestfiles.RequestBuilder and `count_tokens` a function of (system, user), or a
    tokens.PromptCounter, whose `many` counts a block without a Python step per row; so are the lines
    made.
    """

    def __init__(self, builder: Any, count_tokens: Callable[[str, str], int] | None):
        self.builder = builder
        self.count_tokens = count_tokens

    def __call__(self, block: Block, tokens: list[int] | None = None) -> Encoded:
        """The block's lines, with its `tokens` when they were counted elsewhere."""
        users = json_bodies(block.users, len(block.rows))
        systems = json_bodies(block.systems, len(block.rows)) if block.systems is not None else None
        data, lengths = self.builder.lines(block.rows, users, systems)
        if tokens is None:
            tokens = self.count(block.systems, *block.to_count())
        return Encoded(data, lengths, tokens)

    def count(self, systems: list[str] | None, users: list[str] | str, shortened: bool = False) -> list[int]:
        """The prompt tokens of a block's rows (`users` as a list, or `joined`; `shortened`: rendered
        from the fixed text the builder counts by, RequestBuilder.counted_parts)."""
        count = self.count_tokens
        users = separate(users)
        if count is None:
            return [0] * len(users)
        if hasattr(count, "many"):
            taken = self.builder.taken if shortened else ()
            return count.many(self.builder.fixed_system, users, systems, taken)
        systems = systems or [self.builder.fixed_system or ""] * len(users)
        return [count(system, user) for system, user in zip(systems, users, strict=True)]


def encoded(encoder: Encoder, blocks: Iterable[Block], processes: int) -> Iterator[tuple[Block, Encoded]]:
    """Each block with what `encoder` makes of it, in order: in this process, or, when `processes` > 1
    and the table is longer than POOL_AFTER_ROWS, in `processes - 1` others while this one reads on.
    """
    blocks = iter(blocks)
    head: list[Block] = []
    rows = 0
    with _no_full_scans():
        if processes > 1:
            for block in blocks:
                head.append(block)
                rows += len(block.rows)
                if rows > POOL_AFTER_ROWS:
                    yield from _in_pool(encoder, itertools.chain(head, blocks), processes - 1)
                    return
        for block in itertools.chain(head, blocks):
            yield block, encoder(block)


@contextlib.contextmanager
def _no_full_scans() -> Iterator[None]:
    """The objects alive before the table is read left out of the garbage collector's scans.

    Reading a table makes millions of short-lived lists (a row's cells), and a block in flight keeps
    some alive long enough to reach the oldest generation, whose collections then walk every object
    of the process (Django's, the worker's): a quarter of the reading process's time on a big table.
    Frozen, they are not walked, and the youngest generation is collected less often; all is as it
    was when the table is done.
    """
    global _reading, _thresholds
    with _gc_lock:  # tables read at once in threads: the first sets, the last puts back
        if not _reading:
            _thresholds = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(100_000, *_thresholds[1:])
        _reading += 1
    try:
        yield
    finally:
        with _gc_lock:
            _reading -= 1
            if not _reading:
                gc.set_threshold(*_thresholds)
                gc.unfreeze()


_gc_lock = threading.Lock()
_reading = 0
_thresholds = gc.get_threshold()


def _serve(connection: Connection, encoder: Encoder) -> None:
    """A pool process: counts the tokens of each block it is sent, in order, until the pipe closes.

    A block comes as (systems, users) and its counts go back as an array, or the exception counting
    raised. Each process has a pipe of its own: no executor's threads, queues and futures on either
    side (a tenth of this process's time, and more of the reading process's, when there were).
    """
    # A pool process keeps nothing between blocks: its collections need not walk what it imported,
    # nor run every 700 lists it receives.
    gc.freeze()
    gc.set_threshold(100_000)
    while True:
        try:
            systems, users, shortened = connection.recv()
        except EOFError:  # the reading process is done, or gone
            return
        try:
            answer = array.array("I", encoder.count(systems, users, shortened))
        except Exception as exc:  # noqa: BLE001 (sent back, raised there)
            answer = exc
        connection.send(answer)


class _PoolBroke(Exception):
    """A pool process died (killed, out of memory, could not start)."""


def _in_pool(encoder: Encoder, blocks: Iterator[Block], workers: int) -> Iterator[tuple[Block, Encoded]]:
    # A Celery worker's children are billiard's processes, which multiprocessing takes for its own:
    # daemonic (it refuses to start processes from those, lest they outlive them), with a key of
    # billiard's type that it cannot send to a spawned process. While the pool lives, this process's
    # settings are those of a plain one. The pool cannot outlive it: it is stopped below, and a pool
    # process whose parent dies ends at once, as the pipe it reads its blocks from closes.
    current = multiprocessing.current_process()
    settings = current._config
    plain = {key: value for key, value in settings.items() if key != "daemon"}
    current._config = plain | {"authkey": mp_process.AuthenticationString(current.authkey)}
    context = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    processes = []
    # [block, the pipe its counts come back on], oldest first; a block leaves once they are back.
    waiting: deque[list] = deque()
    try:
        for _ in range(workers):
            ours, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs, encoder), daemon=True)
            process.start()
            theirs.close()
            pipes.append(ours)
            processes.append(process)
        log.info("Request lines made by %d more processes.", workers)
        turns = itertools.cycle(pipes)
        for block in blocks:
            # One object to send, and to keep until its count is back.
            block.users = joined(block.users)
            pipe = next(turns)
            waiting.append([block, pipe])  # before sending: if that fails, the block is made here
            _send(pipe, block)
            block.counted = None  # not kept: should the pool break, the whole texts are counted here
            if len(waiting) >= workers * IN_FLIGHT:
                yield _oldest(encoder, waiting)
        while waiting:
            yield _oldest(encoder, waiting)
    except _PoolBroke:
        # The blocks it had, and the rest, are made here: the same bytes, only slower.
        log.warning("The prepare pool broke; the rest of the table is prepared in one process.")
        for block in itertools.chain((block for block, _ in waiting), blocks):
            yield block, encoder(block)
    finally:
        # Stopped early (an error, a row over the size limit) or done: each pool process sees its
        # pipe close and ends.
        for pipe in pipes:
            pipe.close()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        current._config = settings


def _send(pipe: Connection, block: Block) -> None:
    try:
        texts, shortened = block.to_count()
        pipe.send((block.systems, joined(texts), shortened))
    except OSError as exc:  # its process is gone
        raise _PoolBroke from exc


def _oldest(encoder: Encoder, waiting: deque[list]) -> tuple[Block, Encoded]:
    block, pipe = waiting[0]
    try:
        answer = pipe.recv()
    except (EOFError, OSError) as exc:
        raise _PoolBroke from exc
    if isinstance(answer, Exception):
        raise answer
    waiting.popleft()
    return block, encoder(block, answer.tolist())
