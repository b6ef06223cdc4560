"""Rows → JSONL request lines → batch files (written by requestparts) that each fit the provider's limits.

Pure: takes rows and a request spec, writes files into a directory, returns what it
wrote. Every line gets a deterministic custom_id from its row number, so the same
rows always produce the same bytes, and results can be joined back to rows whatever
order the provider returns them in.
"""

import functools
import hashlib
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from zlib import crc32

import orjson

from jobs.formats import requestlines, tokens
from jobs.formats.prompts import CompiledTemplate, compile_template
from jobs.formats.requestparts import BatchFile, Lines, split_requests

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


def canonical(url: str, body: dict[str, Any]) -> bytes:
    """A request as the fingerprint sees it: endpoint and body, keys sorted, 1.0 written as 1."""
    return orjson.dumps({"url": url, "body": _normal(body)}, option=orjson.OPT_SORT_KEYS)


def fingerprint(url: str, body: dict[str, Any]) -> str:
    """The fingerprint of a request: identical requests, and only they, share it."""
    return hashlib.blake2b(canonical(url, body), digest_size=16).hexdigest()


def _normal(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _normal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normal(item) for item in value]
    return value


@dataclass(frozen=True)
class RequestSpec:
    """Everything that turns a row into a request body, frozen with the job."""

    endpoint: str
    model: str
    system_prompt: str = ""
    user_prompt: str = ""
    temperature: float | None = None
    max_output_tokens: int | None = None
    # Structured output: the JSON schema every answer must follow (chat and responses only).
    output_schema: dict[str, Any] | None = None


class RequestBuilder:
    """Builds the body of one request from one row's cells."""

    def __init__(self, spec: RequestSpec, columns: list[str]):
        self.spec = spec
        self.columns = columns
        self.url = spec.endpoint
        self._system = compile_template(spec.system_prompt, columns) if spec.system_prompt else None
        self._user: CompiledTemplate = compile_template(spec.user_prompt, columns)
        # The user text as its tokens are counted: less the fixed words that every row's text has the
        # tokens of, `taken`, counted once (tokens.Shortcuts).
        shortcuts = tokens.Shortcuts(self._user.parts)
        self.taken = shortcuts.taken
        self.counted_parts = shortcuts.parts if self.taken else None
        # Instructions that use no column are the same for every row: rendered and serialised once.
        self.fixed_system = spec.system_prompt if self._system and not self._system.columns else None
        # The positions of the columns the prompts use: a row is "empty" if all of these are.
        self.used_columns = sorted(
            set(self._user.columns) | set(self._system.columns if self._system else ())
        )
        # The parameters every body shares, built once rather than per row.
        self._params: dict[str, Any] = {"model": spec.model}
        if spec.endpoint != EMBEDDINGS:
            if spec.temperature is not None:
                self._params["temperature"] = spec.temperature
            if spec.max_output_tokens:
                key = "max_output_tokens" if spec.endpoint == RESPONSES else "max_completion_tokens"
                self._params[key] = spec.max_output_tokens
            if spec.output_schema:
                if spec.endpoint == RESPONSES:
                    self._params["text"] = {
                        "format": {
                            "type": "json_schema",
                            "name": "row_answer",
                            "strict": True,
                            "schema": spec.output_schema,
                        }
                    }
                else:
                    self._params["response_format"] = {
                        "type": "json_schema",
                        "json_schema": {"name": "row_answer", "strict": True, "schema": spec.output_schema},
                    }

    def __reduce__(self):
        # Rebuilt from its settings in another process (its compiled renderers do not pickle).
        return RequestBuilder, (self.spec, self.columns)

    def texts(self, cells: list[str]) -> tuple[str, str]:
        """The system and user text a row produces."""
        system = self._system.render(cells) if self._system else ""
        return system, self._user.render(cells)

    def body(self, cells: list[str]) -> dict[str, Any]:
        return self.body_from_texts(*self.texts(cells))

    def body_from_texts(self, system: str, user: str) -> dict[str, Any]:
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

    def line(self, row: int, system: str, user: str) -> bytes:
        """The JSONL request line of a row, from the texts it rendered to."""
        data, _ = self.lines([row], [requestlines.json_body(user)], [requestlines.json_body(system)])
        return data[:-1]

    def lines(
        self, rows: list[int], users: list[bytes], systems: list[bytes] | None
    ) -> tuple[bytes, list[int]]:
        """The request lines of rows, each ending in a line break, joined, and the length of each, from
        their texts as JSON string bodies (requestlines.json_bodies; `systems` None when the
        instructions are the same for all).

        Only the row number and the texts differ between lines: the rest was serialised once, and the
        pieces are put together by C loops (slice assignment, map), with no Python step per row.
        """
        parts = self._line_parts
        ids = list(map(str.encode, map(str, rows)))
        texts = [ids, users] if len(parts) == 3 else [ids, systems, users]
        # Per row: parts[0], id, parts[1], text, ..., the last part and a line break.
        row_pieces = [piece for part in parts[:-1] for piece in (part, b"")] + [parts[-1] + b"\n"]
        pieces = row_pieces * len(rows)
        for slot, values in enumerate(texts):
            pieces[2 * slot + 1 :: len(row_pieces)] = values
        fixed = sum(map(len, parts)) + 1
        lengths = map(fixed.__add__, map(sum, zip(*(map(len, values) for values in texts), strict=True)))
        return b"".join(pieces), list(lengths)

    def fingerprint(self, system: str, user: str) -> str:
        """fingerprint(url, body) of a row's request, from the texts it rendered to, without building it."""
        return self.fingerprints([requestlines.json_body(user)], [requestlines.json_body(system)])[0]

    def fingerprints(self, users: list[bytes], systems: list[bytes] | None) -> list[str]:
        """fingerprint() of many rows, from their texts as for lines()."""
        parts, user_first = self._canonical_frame
        if len(parts) == 2:
            texts = map(operator.add, map(parts[0].__add__, users), itertools.repeat(parts[1]))
        else:
            first, second = (users, systems) if user_first else (systems, users)
            start, middle, end = map(itertools.repeat, parts)
            texts = map(b"".join, zip(start, first, middle, second, end, strict=False))
        return list(map(_HEX, map(_DIGEST, texts)))

    def text_keys(self, users: list[str], systems: list[str] | None) -> list[int]:
        """A key of each row's texts (the user's, and the instructions' when `systems` gives them by
        row, as for lines()): their CRC-32, and their length above it. Requests of these settings with
        different keys are different, and two different ones share a key about once in 4 billion
        times the number of lengths. A few times cheaper than a fingerprint, so prepare takes one of
        every row and fingerprints only those whose key the index holds.
        """
        crcs = map(crc32, _utf8(users))
        lengths = map(len, users)
        if systems is not None and self.url != EMBEDDINGS:  # an embedding's request holds no instructions
            crcs = map(crc32, _utf8(systems), crcs)
            lengths = map(operator.add, lengths, map(len, systems))
        return list(map(operator.or_, map(operator.lshift, lengths, itertools.repeat(32)), crcs))

    def text_key(self, body: dict[str, Any]) -> int:
        """text_keys() of the row whose request has this body."""
        system, user = self.texts_of(body)
        return self.text_keys([user], [system] if self.fixed_system is None and self._system else None)[0]

    def texts_of(self, body: dict[str, Any]) -> tuple[str, str]:
        """The system and user text of a body made by body_from_texts()."""
        if self.spec.endpoint == EMBEDDINGS:
            return "", body["input"]
        if self.spec.endpoint == RESPONSES:
            return body.get("instructions", ""), body["input"]
        messages = body["messages"]
        return (messages[0]["content"] if len(messages) > 1 else ""), messages[-1]["content"]

    @cached_property
    def spec_fingerprint(self) -> str:
        """What the requests of these settings share (endpoint, model, parameters, schema, fixed text)."""
        return hashlib.blake2b(b"\0".join(self._canonical_parts[0]), digest_size=16).hexdigest()

    @cached_property
    def _canonical_parts(self) -> tuple[list[bytes], bool]:
        """canonical() of a body serialised once around markers, split where the texts go, and whether
        the user's text comes first (sorted keys put `input` before `instructions`).
        """
        system = self.fixed_system or (_MARK + "system" if self._system else "")
        text = canonical(self.url, self.body_from_texts(system, _MARK + "user"))
        # Embeddings take no system text: then only the user's is in the body.
        markers = [m for m in (orjson.dumps(_MARK + "user"), orjson.dumps(_MARK + "system")) if m in text]
        markers.sort(key=text.index)
        parts = []
        for marker in markers:
            before, _, text = text.partition(marker)
            parts.append(before)
        parts.append(text)
        return parts, markers[0] == orjson.dumps(_MARK + "user")

    @cached_property
    def _canonical_frame(self) -> tuple[list[bytes], bool]:
        """_canonical_parts with the quotes around the texts in them, to put JSON string bodies between."""
        parts, user_first = self._canonical_parts
        inner = [b'"' + part + b'"' for part in parts[1:-1]]
        return [parts[0] + b'"', *inner, b'"' + parts[-1]], user_first

    @cached_property
    def _line_parts(self) -> list[bytes]:
        """The line serialised once around markers, split where the row's own values go.

        Only the row number and the rendered texts differ between lines, so the rest is
        serialised once; the result is byte-for-byte what serialising each line whole gives.
        """
        system = self.fixed_system or (_MARK + "system" if self._system else "")
        line = orjson.dumps(
            {
                "custom_id": custom_id(0).replace("0", _MARK + "row"),
                "method": "POST",
                "url": self.url,
                "body": self.body_from_texts(system, _MARK + "user"),
            }
        )
        parts = []
        for marker in (b"row", b"system", b"user") if system.startswith(_MARK) else (b"row", b"user"):
            # The row number sits inside the custom_id string, and each text inside its quotes.
            before, _, line = line.partition(orjson.dumps(_MARK + marker.decode())[1:-1])
            parts.append(before)
        parts.append(line)
        return parts


# A character that cannot appear in the constant parts of a request, to find where values go.
_MARK = "\x00batchdash:"
# A fingerprint's hash of canonical bytes, as C callables map() can run.
_DIGEST = functools.partial(hashlib.blake2b, digest_size=16)
_HEX = operator.methodcaller("hexdigest")


def _utf8(texts: list[str]) -> list[bytes]:
    """The texts' UTF-8; a lone surrogate, which UTF-8 cannot hold, kept as its code unit (twice as slow
    for all, so only when one is met)."""
    try:
        return list(map(str.encode, texts))
    except UnicodeEncodeError:
        return list(map(operator.methodcaller("encode", "utf-8", "surrogatepass"), texts))


def write_batch_files(
    rows: Iterable[tuple[int, list[str]]],
    builder: RequestBuilder,
    directory: Path,
    *,
    max_requests: int,
    max_bytes: int,
    count_tokens: Callable[[str, str], int] | None = None,
    skip: Callable[[int, str, int], None] | None = None,
    skip_empty: str | None = None,
    max_prompt_tokens: int | None = None,
    lookup: Callable[[list[str]], dict[str, Any]] | None = None,
    known: Callable[[], AbstractSet[int]] | None = None,
    answered: Callable[[int, Any], None] | None = None,
    same_as: Callable[[int, int], None] | None = None,
    processes: int = 1,
) -> Iterator[BatchFile]:
    """Write rows as JSONL request files of at most `max_requests` lines and `max_bytes` bytes.

    Yields each file once it is closed, so the caller can store it while the next one is
    written; memory stays flat whatever the number of rows. `count_tokens(system, user)`,
    when given, adds up the prompt tokens of each file. Rows whose used columns are all
    empty (`skip_empty="all"`) or any of them empty (`skip_empty="any"`), and rows whose
    prompt is over `max_prompt_tokens`, are left out and reported as
    `skip(row, "skipped_empty" or "too_long", tokens)`, in row order.
    With `lookup(fingerprints)` and `known()`, the set of the text keys (RequestBuilder.text_keys) of
    the requests it may know (asked for once the first block's lines are made, so that it may be
    loaded meanwhile), the rows whose key is among them are fingerprinted and looked up, once per
    block that has any; a row whose fingerprint it returns an earlier answer for is not written
    but reported as `answered(row, that answer)`;
    with `same_as`, a row whose request is identical to an earlier row's is not written but
    reported as `same_as(row, that row)`.
    With `processes` > 1, a long table's lines are made and counted by that many processes
    (requestlines; `count_tokens` must then be picklable, as tokens.prompt_counter's is): the
    same bytes, the same reports.
    Raises ValueError if a single request is larger than `max_bytes`.

    Rows are taken a block at a time and each step runs over the whole block in C (map, compress,
    str.join), not once per row in Python: this is the loop of tables with millions of rows.
    """
    system_by_row = builder._system if builder._system and builder.fixed_system is None else None
    # A PromptCounter counts the user's texts less the template's words it can count once.
    counted_parts = builder.counted_parts if hasattr(count_tokens, "many") else None
    kept_rows = requestlines.kept_rows(builder.used_columns, skip_empty) if skip_empty else None

    # Rows already seen, by a key standing for their texts: within one job every request has the same
    # settings, so its texts alone tell it apart. A keyed 64-bit hash of them beside their CRC-32
    # (text_keys; 96 bits, a false match beyond any table's reach) is five times cheaper than a
    # fingerprint.
    first_row: dict[int, int] | None = {} if same_as else None

    def blocks() -> Iterator[requestlines.Block]:
        """The rows to send, rendered, in blocks; repeats reported as they are met."""
        for numbers, cells in _in_blocks(rows):
            empty: list[int] = []
            keep = kept_rows(cells) if kept_rows else None
            if keep is not None:
                empty = list(itertools.compress(numbers, map(operator.not_, keep)))
                numbers, cells = _kept(numbers, keep), _kept(cells, keep)
            # A block's texts are one string (requestlines.joined) as far as they can be.
            if counted_parts:
                users, counted = builder._user.render_joined(cells, requestlines.GAP, counted_parts)
            else:
                (users,), counted = builder._user.render_joined(cells, requestlines.GAP), None
            systems = None
            if system_by_row:
                systems = requestlines.separate(system_by_row.render_joined(cells, requestlines.GAP)[0])
            keys = None
            if first_row is not None or lookup:
                each = requestlines.separate(users)
                keys = builder.text_keys(each, systems)
            if first_row is not None:
                texts = map(hash, zip(systems, each, strict=True)) if systems else map(hash, each)
                hashes = map(operator.lshift, texts, itertools.repeat(32))
                firsts = list(map(first_row.setdefault, map(operator.xor, hashes, keys), numbers))
                if firsts != numbers:
                    keep = list(map(operator.eq, firsts, numbers))
                    for row, first in zip(numbers, firsts, strict=True):
                        if row != first:
                            same_as(row, first)
                    numbers, users, keys = _kept(numbers, keep), _kept(each, keep), _kept(keys, keep)
                    systems = _kept(systems, keep) if systems is not None else None
                    counted = _kept(requestlines.separate(counted), keep) if counted is not None else None
            yield requestlines.Block(numbers, systems, users, empty, keys if lookup else None, counted)

    def answered_before(block: requestlines.Block) -> dict[int, Any]:
        """lookup's answers for rows of the block, by their position in it: only the rows whose text
        key the index holds, usually none, are fingerprinted and looked up."""
        index = known()
        if index.isdisjoint(block.keys):
            return {}
        found = index.intersection(block.keys)
        worth = list(itertools.compress(range(len(block.keys)), map(found.__contains__, block.keys)))
        users, systems = requestlines.separate(block.users), block.systems
        prints = builder.fingerprints(
            [requestlines.json_body(users[i]) for i in worth],
            None if systems is None else [requestlines.json_body(systems[i]) for i in worth],
        )
        answers = lookup(prints)
        return {i: answers[mark] for i, mark in zip(worth, prints, strict=True) if mark in answers}

    def to_write(block: requestlines.Block, done: requestlines.Encoded) -> Lines:
        """The block's lines to write; the rows left out of it (empty, too long, answered) reported."""
        lines = Lines(block.rows, done.data, done.lengths, done.tokens)
        limit = max_prompt_tokens
        too_long = limit and done.tokens and max(done.tokens) > limit
        earlier = answered_before(block) if lookup else {}
        if not (too_long or earlier):
            for row in block.empty:
                skip(row, "skipped_empty", 0)
            return lines
        empty = iter(block.empty)
        next_empty = next(empty, None)
        kept = []
        for index, row in enumerate(block.rows):
            while next_empty is not None and next_empty < row:
                skip(next_empty, "skipped_empty", 0)
                next_empty = next(empty, None)
            tokens = done.tokens[index]
            if too_long and tokens > limit:
                skip(row, "too_long", tokens)
            elif index in earlier:
                answered(row, earlier[index])
            else:
                kept.append(index)
        for row in itertools.chain([next_empty] if next_empty is not None else [], empty):
            skip(row, "skipped_empty", 0)
        return lines.only(kept)

    encoder = requestlines.Encoder(builder, count_tokens)
    made = requestlines.encoded(encoder, blocks(), processes)
    return split_requests(
        itertools.starmap(to_write, made), directory, max_requests=max_requests, max_bytes=max_bytes
    )


def _in_blocks(rows: Iterable[tuple[int, list[str]]]) -> Iterator[tuple[list[int], list[list[str]]]]:
    """The rows' numbers and cells, about requestlines.BLOCK at a time: joined from the blocks of a
    table read in blocks (tables.iter_rows), or taken a block at a time from any other rows."""
    if hasattr(rows, "blocks"):
        numbers: list[int] = []
        cells: list[list[str]] = []
        for block_numbers, block_cells in rows.blocks:
            numbers += block_numbers
            cells += block_cells
            if len(numbers) >= requestlines.BLOCK:
                yield numbers, cells
                numbers, cells = [], []
        if numbers:
            yield numbers, cells
        return
    rows = iter(rows)
    while taken := list(itertools.islice(rows, requestlines.BLOCK)):
        numbers, cells = map(list, zip(*taken, strict=True))
        yield numbers, cells


def _kept(values: list, keep: list) -> list:
    return list(itertools.compress(values, keep))
