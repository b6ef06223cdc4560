"""Text people typed, made safe for where it goes: one line for headers, names and searches."""

import unicodedata


def one_line(text: str) -> str:
    """Control characters (newlines and NUL among them) become spaces, and runs of spaces one.

    A header holding a newline makes Django refuse the whole email (BadHeaderError), and
    PostgreSQL refuses NUL in text, so names and searches go through here where they are typed.
    """
    return " ".join("".join(" " if unicodedata.category(c) == "Cc" else c for c in text).split())
