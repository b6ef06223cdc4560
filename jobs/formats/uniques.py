"""Which columns could name each row: learned during the row count's one pass, in bounded memory.

A row ID column must hold a different value in every row. The count already reads every row, so it
also notes, for each column, the row where each value was first seen; the first value seen twice
settles that column (it cannot name the rows) and frees its memory. Most columns repeat a value
within a few rows; what stays is the columns still unique, the candidate IDs.

Memory is bounded by TRACKED_VALUES remembered values in all (a value costs about 110 bytes: its
64-bit hash and its row, in a dict), so some 110 MB at most. A column whose values are longer
than LONGEST_ID characters (free text, not an identifier) is not followed. When the bound is
reached, the column with the longest values is let go first (identifiers are short), so that
one ID column alone is followed through a million rows; a column let go is said to be unique up
to that row only, and the check after Prepare, which reads the chosen column alone, stays the
backstop for it.

Values are compared by their hash: two different values with the same 64-bit hash would be
taken for a repeat, a chance of about one in 10^7 for a million distinct values.
"""

from jobs.formats.text import one_line

TRACKED_VALUES = 1_000_000
LONGEST_ID = 100


class RowIds:
    """Fed every data row in order; `results()` says, for each column, what it can be as a row ID."""

    def __init__(self, columns: list[str], limit: int = TRACKED_VALUES, longest: int = LONGEST_ID):
        self.columns = columns
        self.limit = limit
        self.longest = longest
        self.first_rows: dict[int, dict[int, int]] = {i: {} for i in range(len(columns))}
        self.lengths = [0] * len(columns)  # each column's longest value so far
        self.repeats: dict[int, dict] = {}
        self.unchecked_after: dict[int, int] = {}
        self.tracked = 0

    def add(self, row: int, cells: list[str]) -> None:
        if not self.first_rows:
            return
        settled = []
        for position, seen in self.first_rows.items():
            value = cells[position]
            length = len(value)
            if length > self.lengths[position]:
                if length > self.longest:
                    self.unchecked_after[position] = row - 1
                    settled.append(position)
                    continue
                self.lengths[position] = length
            first = seen.setdefault(hash(value), row)
            if first != row:
                # Shown on the form, and kept as JSON (PostgreSQL refuses NUL): one line of text.
                self.repeats[position] = {"value": one_line(value), "rows": [first, row]}
                settled.append(position)
        for position in settled:
            self.tracked -= len(self.first_rows.pop(position))
        self.tracked += len(self.first_rows)
        while self.tracked > self.limit:
            position = max(self.first_rows, key=self.lengths.__getitem__)
            self.unchecked_after[position] = row
            self.tracked -= len(self.first_rows.pop(position))

    def results(self) -> dict[str, dict]:
        """{column: {"unique": true} | {"value", "rows"} of its first repeat | {"unique_until": row}}."""
        found: dict[str, dict] = {}
        for position, column in enumerate(self.columns):
            if position in self.repeats:
                found[column] = self.repeats[position]
            elif position in self.unchecked_after:
                found[column] = {"unique_until": self.unchecked_after[position]}
            else:
                found[column] = {"unique": True}
        return found


def refusal(column: str, check: dict | None) -> str:
    """Why `column` cannot be the row ID, from what the count found; empty when nothing was found."""
    if not check or "value" not in check:
        return ""
    first, again = check["rows"]
    what = f"its value “{check['value']}” is" if check["value"] else "it is empty"
    return (
        f"The column “{column}” cannot name the rows: {what} in row {first:,} and again in row "
        f"{again:,}. Choose a column whose values are all different, or let the rows be numbered."
    )
