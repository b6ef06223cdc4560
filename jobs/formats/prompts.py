"""Prompt templates: `{{ Column name }}` placeholders filled from a row, and nothing else.

User text is never handed to a template engine, nor used as a format string: a placeholder is
looked up literally by header name (spaces, accents and punctuation included) and
replaced in a single pass, so a cell that contains `{{ other }}` or `{0}` stays as it is.
A header that the plain form cannot hold (braces, quotes, backslashes, line breaks,
spaces at either end) is written quoted, as a JSON string: `{{ "{{x}}" }}`; `placeholder()` writes the
form every header needs, and the column buttons insert what it writes.
"""

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field

PLACEHOLDER = re.compile(r'\{\{\s*(?:"((?:[^"\\]|\\.)*)"|(.+?))\s*\}\}')
_NEEDS_QUOTES = re.compile(r'[{}"\\\x00-\x1f]|^\s|\s$|^$')


def placeholder(column: str) -> str:
    """The placeholder that names `column`: plain where it can be, quoted where it must."""
    if _NEEDS_QUOTES.search(column):
        return "{{ " + json.dumps(column, ensure_ascii=False) + " }}"
    return "{{ " + column + " }}"


def _name(match: re.Match) -> str:
    quoted, plain = match.groups()
    if quoted is None:
        return plain
    try:
        return json.loads(f'"{quoted}"')
    except ValueError:  # a stray backslash: the text is taken as it stands
        return quoted


@dataclass(frozen=True)
class CompiledTemplate:
    """A template split into literal text and column positions, ready for fast rendering."""

    parts: tuple[str, ...]
    columns: tuple[int, ...]
    # render(cells) -> text. Called once per row of files with millions of rows, so the usual shapes
    # get a function of their own with the literal parts bound, instead of a loop.
    render: Callable[[list[str]], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "render", _renderer(self.parts, self.columns))

    def render_joined(
        self, rows: list[list[str]], gap: str, *variants: tuple[str, ...]
    ) -> list[str | list[str]]:
        """render() of each row, the texts joined by `gap` (requestlines' form of a block's texts), or
        as a list when one of them holds `gap` (the join could not be undone); then the same for each
        variant of the template's literal parts (the same cells between other text).

        One str.join over the literal parts and the cells, which slice assignment puts in place: no
        Python step per row, and no format string (a cell is never read as one).
        """
        if not rows:
            return [[] for _ in range(1 + len(variants))]
        width = 2 * len(self.parts) - 1
        pieces = [""] * (width * len(rows))
        for slot, column in enumerate(self.columns):
            pieces[2 * slot + 1 :: width] = map(operator.itemgetter(column), rows)
        texts = []
        for parts in (self.parts, *variants):
            if len(parts) != len(self.parts):
                raise ValueError("A variant of a template has a literal part around each of its cells.")
            for slot, part in enumerate(parts[:-1]):
                pieces[2 * slot :: width] = [part] * len(rows)
            pieces[width - 1 :: width] = [parts[-1] + gap] * len(rows)
            pieces[-1] = parts[-1]  # no gap after the last text
            together = "".join(pieces)
            if together.count(gap) == len(rows) - 1:
                texts.append(together)
            else:
                render = self.render if parts is self.parts else _renderer(parts, self.columns)
                texts.append(list(map(render, rows)))
        return texts


def _renderer(parts: tuple[str, ...], columns: tuple[int, ...]) -> Callable[[list[str]], str]:
    if not columns:
        text = parts[0]
        return lambda cells: text
    if len(columns) == 1:
        (p0, p1), (a,) = parts, columns
        return lambda cells: p0 + cells[a] + p1
    if len(columns) == 2:
        (p0, p1, p2), (a, b) = parts, columns
        return lambda cells: f"{p0}{cells[a]}{p1}{cells[b]}{p2}"
    if len(columns) == 3:
        (p0, p1, p2, p3), (a, b, c) = parts, columns
        return lambda cells: f"{p0}{cells[a]}{p1}{cells[b]}{p2}{cells[c]}{p3}"
    pairs = tuple(zip(columns, parts[1:], strict=True))

    def render(cells: list[str]) -> str:
        out = [parts[0]]
        for column, after in pairs:
            out.append(cells[column])
            out.append(after)
        return "".join(out)

    return render


def placeholders(template: str) -> list[str]:
    """The column names a template refers to, in order of appearance."""
    return [_name(m) for m in PLACEHOLDER.finditer(template)]


def unknown_placeholders(template: str, columns: list[str]) -> list[str]:
    """Placeholders that match no column, each once, in order of appearance."""
    known = set(columns)
    seen: list[str] = []
    for name in placeholders(template):
        if name not in known and name not in seen:
            seen.append(name)
    return seen


def compile_template(template: str, columns: list[str]) -> CompiledTemplate:
    """Resolve placeholders to column positions; raises KeyError naming an unknown column."""
    index = {name: i for i, name in enumerate(columns)}
    parts: list[str] = []
    positions: list[int] = []
    last = 0
    for match in PLACEHOLDER.finditer(template):
        name = _name(match)
        if name not in index:
            raise KeyError(name)
        parts.append(template[last : match.start()])
        positions.append(index[name])
        last = match.end()
    parts.append(template[last:])
    return CompiledTemplate(tuple(parts), tuple(positions))
