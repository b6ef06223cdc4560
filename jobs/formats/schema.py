"""Structured output: the fields a user wants from each answer, as the JSON schema the provider
enforces, and the values read back out of an answer, one column per field.
"""

import re
from typing import Any

import orjson

TYPES = {
    "text": "Text",
    "number": "Number",
    "integer": "Whole number",
    "boolean": "Yes or no",
    "label": "One of some labels",
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class FieldError(ValueError):
    """A field the user described cannot become part of a schema; the message says which and why."""


def clean_fields(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check and normalise the user's fields: names usable as JSON keys, unique, labels where needed."""
    seen: set[str] = set()
    cleaned = []
    for number, field in enumerate(fields, start=1):
        name = (field.get("name") or "").strip()
        kind = field.get("type") or "text"
        labels = [label.strip() for label in field.get("labels", []) if label.strip()]
        if not _NAME.match(name):
            raise FieldError(
                f"Field {number}: “{name}” cannot be a field name. Use letters, digits and _ only, "
                "starting with a letter (for example sentiment or star_rating)."
            )
        if name in seen:
            raise FieldError(f"Field {number}: there is already a field called “{name}”.")
        if kind not in TYPES:
            raise FieldError(f"Field {number}: choose what kind of value “{name}” holds.")
        if kind == "label" and len(labels) < 2:
            raise FieldError(f"Field {number}: give “{name}” at least two labels, separated by commas.")
        # The fields are stored as JSON, which PostgreSQL refuses with a NUL anywhere in it.
        if "\x00" in (field.get("description") or "") + "".join(labels):
            raise FieldError(f"Field {number}: the meaning or labels of “{name}” hold a null character.")
        seen.add(name)
        cleaned.append(
            {
                "name": name,
                "type": kind,
                "description": (field.get("description") or "").strip(),
                "labels": labels if kind == "label" else [],
            }
        )
    return cleaned


def json_schema(fields: list[dict[str, Any]]) -> dict[str, Any]:
    """The strict JSON schema of an object with exactly these fields, all required."""
    properties = {}
    for field in fields:
        if field["type"] == "label":
            prop: dict[str, Any] = {"type": "string", "enum": field["labels"]}
        else:
            prop = {"type": "string" if field["type"] == "text" else field["type"]}
        if field["description"]:
            prop["description"] = field["description"]
        properties[field["name"]] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": [f["name"] for f in fields],
        "additionalProperties": False,
    }


def values(answer: str, names: list[str]) -> list[str]:
    """The answer's value for each field, as text for a cell; empty where the answer has none."""
    try:
        parsed = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return [""] * len(names)
    if not isinstance(parsed, dict):
        return [""] * len(names)
    cells = []
    for name in names:
        value = parsed.get(name)
        if value is None:
            cells.append("")
        elif isinstance(value, bool):
            cells.append("yes" if value else "no")
        elif isinstance(value, str):
            cells.append(value)
        else:
            cells.append(orjson.dumps(value).decode())
    return cells
