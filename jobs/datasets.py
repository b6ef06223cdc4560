"""Uploaded datasets: store the file first, then learn its shape, then count its rows.

The upload is saved before anything reads it, so a file that cannot be read is
never lost: the dataset keeps it with a human message, and the user can change the
encoding or delimiter and try again. Reading goes through jobs.formats.tables.
"""

import contextlib
import re
import unicodedata
import uuid
from collections.abc import Iterator

from django.core.files.uploadedfile import UploadedFile

from jobs import access
from jobs.formats import tables, uniques
from jobs.models import Dataset, PromptTemplate

HEAD_ONLY = {"renamed_header", "separator"}
# The earlier tables the upload page offers to use again, newest first.
EARLIER_SHOWN = 20
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069/\\]")


def display_name(filename: str) -> str:
    """The user's file name, safe to show: no path, no control or direction-changing characters."""
    name = unicodedata.normalize("NFC", filename).rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    name = _UNSAFE_NAME.sub("", name).strip() or "upload"
    return name[:255]


def create_from_upload(owner, uploaded: UploadedFile, team=None) -> Dataset:
    """Keep the uploaded file and inspect its head (status `counting`, or `invalid` with a message)."""
    dataset = Dataset(
        owner=owner, team=team, name=display_name(uploaded.name or "upload"), size_bytes=uploaded.size or 0
    )
    dataset.file.save(dataset.name, uploaded, save=False)
    analyse(dataset)
    return dataset


def analyse(dataset: Dataset, *, encoding: str | None = None, delimiter: str | None = None) -> Dataset:
    """Read the head of the file and record columns, preview and problems; saves the dataset."""
    try:
        info = _inspect(dataset, encoding=encoding, delimiter=delimiter)
    except tables.TableError as exc:
        dataset.status = Dataset.Status.INVALID
        dataset.error = str(exc)
        # Keep what the user chose, so that the page shows what was tried.
        dataset.encoding = encoding or dataset.encoding
        dataset.delimiter = delimiter or dataset.delimiter
        dataset.save()
        return dataset
    return _record(dataset, info)


def read_sheet(dataset: Dataset, sheet: str) -> str:
    """Read another sheet of a workbook (to be counted again); saves the dataset.

    Returns why that sheet cannot be read (empty, not in the workbook), in which case the sheet
    read so far stays as it was: picking a wrong sheet never loses a good one.
    """
    try:
        info = _inspect(dataset, sheet=sheet)
    except tables.TableError as exc:
        return str(exc)
    _record(dataset, info)
    return ""


def _inspect(dataset: Dataset, **choices) -> tables.TableInfo:
    with dataset.file.open("rb") as stream:
        return tables.inspect(stream, dataset.name, **choices, **_policies(dataset))


def _record(dataset: Dataset, info: tables.TableInfo) -> Dataset:
    """What the head showed, on the dataset, which is now to be counted."""
    dataset.format = info.format
    dataset.encoding = info.encoding or ""
    dataset.delimiter = info.delimiter or ""
    dataset.sheet = info.sheet or ""
    dataset.sheets = info.sheets
    dataset.columns = info.columns
    dataset.preview = info.preview
    dataset.problems = _problems(info.problems)
    dataset.problem_total = len(info.problems)
    dataset.column_stats = info.column_stats
    dataset.count_progress = 0
    dataset.status = Dataset.Status.COUNTING
    dataset.error = ""
    dataset.row_count = None
    dataset.id_checks = {}
    dataset.save()
    return dataset


def for_rereading(dataset: Dataset) -> Dataset:
    """The dataset to read again with other choices: itself, or, when jobs already read it as it is,
    a new dataset on the same stored file, so that those jobs (their resends, their results) keep
    the rows they were made from.
    """
    if not dataset.jobs.exists():
        return dataset
    copy = Dataset.objects.get(pk=dataset.pk)
    copy.pk = None
    copy.code = uuid.uuid4()
    copy.save()
    return copy


def file_shared(dataset: Dataset) -> bool:
    """Whether another dataset reads the same stored file (a table read again while jobs used it)."""
    return Dataset.objects.filter(file=dataset.file.name).exclude(pk=dataset.pk).exists()


def table_info(dataset: Dataset) -> tables.TableInfo:
    return tables.TableInfo(
        format=dataset.format,
        encoding=dataset.encoding or None,
        delimiter=dataset.delimiter or None,
        columns=dataset.columns,
        preview=dataset.preview,
        problems=[],
        column_stats=[],
        sheet=dataset.sheet or None,
    )


@contextlib.contextmanager
def rows(dataset: Dataset) -> Iterator[Iterator[tuple[int, list[str]]]]:
    """Every data row as (row number, cells), streamed from storage."""
    with dataset.file.open("rb") as stream:
        all_rows = tables.iter_rows(stream, table_info(dataset), **_policies(dataset))
        try:
            yield all_rows
        finally:
            # A caller that stopped early (the pilot run): finish the reader while its file is open.
            all_rows.close()


def _policies(dataset: Dataset) -> dict:
    """What to do with rows that have more, or fewer, cells than the header."""
    return {"long_rows": dataset.long_rows, "short_rows": dataset.short_rows}


def _problems(problems: list[tables.Problem]) -> list[dict]:
    return [{"kind": p.kind, "message": p.message, "line": p.line} for p in problems]


def duplicate_ids(
    dataset: Dataset, column: str, examples: int = 5
) -> tuple[int, list[tuple[str, list[int]]]]:
    """Values of `column` found in more than one row: how many, and the first few with their rows."""
    position = dataset.columns.index(column)
    first_row: dict[str, int] = {}
    repeated: dict[str, list[int]] = {}
    with rows(dataset) as all_rows:
        for row, cells in all_rows:
            value = cells[position]
            seen = first_row.setdefault(value, row)
            if seen != row:
                repeated.setdefault(value, [seen]).append(row)
    found = list(repeated.items())
    return len(found), found[:examples]


def count_rows(dataset_id: int) -> None:
    """Count every row in one pass, with its progress on the dataset, every problem on the way, and
    which columns could be the row ID (the form refuses one with a repeated value)."""
    dataset = Dataset.objects.get(pk=dataset_id)
    if dataset.status != Dataset.Status.COUNTING:
        return
    pending = Dataset.objects.filter(pk=dataset.pk, status=Dataset.Status.COUNTING)

    def progress(done: int, total: int) -> None:
        pending.update(count_progress=min(99, int(100 * done / max(total, 1))))

    row_ids = uniques.RowIds(dataset.columns)
    try:
        with dataset.file.open("rb") as stream:
            result = tables.count_rows(
                stream, table_info(dataset), progress=progress, row_ids=row_ids, **_policies(dataset)
            )
    except tables.TableError as exc:
        pending.update(status=Dataset.Status.INVALID, error=str(exc))
        return
    pending.update(
        status=Dataset.Status.READY if result.rows else Dataset.Status.INVALID,
        row_count=result.rows,
        count_progress=100,
        # The full pass sees every row: its problems replace those the head showed, except
        # the header's own (renamed columns, a separator that leaves one), which only the head reads.
        problems=[p for p in dataset.problems if p["kind"] in HEAD_ONLY] + _problems(result.problems),
        problem_total=result.problem_total,
        error=result.empty_reason,
        id_checks=row_ids.results(),
    )


def template_misfit(template: PromptTemplate, dataset: Dataset) -> str:
    """What of a template this table cannot take, said plainly; empty when it all fits."""
    if template.id_column and template.id_column not in dataset.columns:
        return (
            f"The template “{template.name}” names the row ID column “{template.id_column}”, which this "
            "table does not have: the rows will be numbered unless you choose another column under Advanced."
        )
    return ""


def earlier(user) -> list[Dataset]:
    """The tables this person may use again without uploading them: their own and their teams',
    newest first, leaving out those that could not be read."""
    readable = Dataset.objects.exclude(status=Dataset.Status.INVALID).select_related("owner", "team")
    readable = readable.defer("preview", "problems", "column_stats", "id_checks")
    return list(access.visible(user, readable)[:EARLIER_SHOWN])
