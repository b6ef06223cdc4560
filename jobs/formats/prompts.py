"""Prompt templates: `{{ Column name }}` placeholders filled from a row, and nothing else.

User text is never handed to a template engine or to str.format: a placeholder is
looked up literally by header name (spaces, accents and punctuation included) and
replaced in a single pass, so a cell that contains `{{ other }}` stays as it is.
A header that the plain form cannot hold (braces, quotes, backslashes, line breaks,
spaces at either end) is written quoted, as a JSON string: `{{ "{{x}}" }}`; `placeholder()` writes the
form every header needs, and the column buttons insert what it writes.
"""

import json
import re
from dataclasses import dataclass

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

    def render(self, cells: list[str]) -> str:
        if len(self.columns) == 1:  # the usual template, rendered for every row of large files
            return self.parts[0] + cells[self.columns[0]] + self.parts[1]
        parts = self.parts
        out = [parts[0]]
        for i, column in enumerate(self.columns):
            out.append(cells[column])
            out.append(parts[i + 1])
        return "".join(out)


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
