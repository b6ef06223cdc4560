"""Stage 6, results: job `running` or `cancelling → finishing → completed`, `failed` or `cancelled`:
the user's rows joined with every batch's outcomes, as the files people download.

The results CSV (and the failures CSV) come first and complete the job; its JSON Lines file and its
Excel copy are written right after, and its answers indexed for reuse, by a follow-up task
(`write_other_formats`), so that they never hold the job's completion or its CSV link back: on a
million rows Excel alone takes minutes, and so does the index.
"""

import csv
import io
import tempfile
from collections.abc import Iterator
from typing import IO

from django.core.files import File
from django.utils import timezone

from jobs import datasets, notify, rawfiles
from jobs.formats import reconcile
from jobs.formats.exports import XLSX_MAX_ROWS, iter_jsonl, latest_outcomes, write_results, write_xlsx
from jobs.models import Batch, Job, RowFailure
from jobs.money import pricing
from jobs.pipeline import reuse
from jobs.pipeline.common import outcome_streams


def start_results(job_id: int) -> bool:
    """Claim `running → finishing` once every batch is done; True if this caller won."""
    job = Job.objects.get(pk=job_id)
    if job.batches.exclude(status=Batch.Status.DONE).exists():
        return False
    return job.transition([Job.Status.RUNNING, Job.Status.CANCELLING], Job.Status.FINISHING)


def build_results(job_id: int) -> bool:
    """Write the results and failures files from the dataset and every batch's outcomes, and end the
    job; True if this call ended it, and so the Excel and JSON Lines files are to be written next."""
    job = Job.objects.select_related("dataset").get(pk=job_id)
    if job.status != Job.Status.FINISHING:
        return False
    replaced = [
        f.name for f in (job.results_file, job.failures_file, job.xlsx_file, job.jsonl_file) if f.name
    ]
    failed_rows: list[RowFailure] = []

    def keep_failure(row: int, cells: list[str], outcome: reconcile.Outcome, attempts: int) -> None:
        failed_rows.append(
            RowFailure(
                job=job,
                row=row,
                code=outcome.code,
                message=outcome.message,
                retryable=reconcile.resendable(outcome, attempts),
                attempts=attempts,
                cells=cells,
            )
        )
        if len(failed_rows) >= 2000:
            RowFailure.objects.bulk_create(failed_rows)
            failed_rows.clear()

    RowFailure.objects.filter(job=job).delete()  # from an earlier attempt, or a run cut short
    with (
        outcome_streams(job) as attempts,
        tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as results,
        tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as failures,
        datasets.rows(job.dataset) as rows,
    ):
        counts = write_results(
            job.dataset.columns,
            rows,
            reuse.with_copies(job, latest_outcomes(attempts)),
            results,
            failures,
            token_prices=pricing.per_token(pricing.prices().get(job.model)),
            on_failure=keep_failure,
            fields=[f["name"] for f in job.output_fields],
        )
        RowFailure.objects.bulk_create(failed_rows)
        results.seek(0)
        failures.seek(0)
        # Compressed in blocks at the index's rows: a page is still read from near where it starts.
        offsets = rawfiles.save_blocks(
            job.results_file, f"{job.code}-results.csv", results.buffer, counts.offsets
        )
        job.failures_file.save(f"{job.code}-failures.csv", File(failures.buffer), save=False)
    answered = counts.succeeded + counts.reused
    if job.cancel_requested_at:
        final = Job.Status.CANCELLED
    else:
        final = Job.Status.COMPLETED if answered else Job.Status.FAILED
    finished = job.transition(
        Job.Status.FINISHING,
        final,
        results_file=job.results_file.name,
        results_offsets=offsets,
        failures_file=job.failures_file.name,
        xlsx_file="",
        xlsx_cut_cells=0,
        jsonl_file="",
        formats_pending=True,
        rows_succeeded=counts.succeeded,
        rows_failed=counts.failed,
        rows_retryable=counts.retryable,
        error="" if answered or job.cancel_requested_at else "No row got an answer; see the failures file.",
        finished_at=timezone.now(),
    )
    # The files of an earlier attempt's results, now superseded.
    for name in replaced:
        job.results_file.storage.delete(name)
    if finished:
        notify.job_finished(job)
    return finished


def write_other_formats(job_id: int) -> None:
    """After the results CSV: the JSON Lines file, then the Excel copy (up to XLSX_MAX_ROWS rows:
    larger results have none), each kept as soon as it is written, then the answers indexed for reuse.

    Each is stored only if the job still has the results it was written from: results built again
    meanwhile (a resend) have their own follow-up, and a second delivery of this task finds nothing
    pending. A delivery cut short leaves them pending, so the sweeper sends it again; it writes only
    what is missing, and the index again from the start.
    """
    job = Job.objects.select_related("dataset", "credential").get(pk=job_id)
    if not job.formats_pending:
        return
    current = Job.objects.filter(pk=job.pk, formats_pending=True, results_file=job.results_file.name)
    if not job.jsonl_file:  # an earlier delivery may have written it before it stopped
        with tempfile.TemporaryFile() as jsonl:
            for chunk in results_jsonl(job):
                jsonl.write(chunk)
            jsonl.seek(0)
            with rawfiles.compressed(jsonl) as packed:
                name = job.jsonl_file.storage.save(
                    job.jsonl_file.field.generate_filename(job, f"{job.code}-results.jsonl.gz"), File(packed)
                )
        if not current.update(jsonl_file=name, updated_at=timezone.now()):
            job.jsonl_file.storage.delete(name)
            return
    if not job.xlsx_file and not _write_xlsx(job, current):
        return
    if not current.exists():
        return
    with outcome_streams(job) as attempts:
        reuse.index_answers(job, attempts)
    current.update(formats_pending=False, updated_at=timezone.now())


def _write_xlsx(job: Job, current) -> bool:
    """The Excel copy of the results, if they fit a sheet, kept at once; False if the job has other
    results by now."""
    xlsx, cut = "", 0
    with rawfiles.lines(job.results_file) as stored, io.TextIOWrapper(stored, "utf-8", newline="") as results:
        if _fits_excel(results):
            with tempfile.TemporaryFile() as workbook:
                cut = write_xlsx(results, workbook, sheet=job.name)
                workbook.seek(0)
                xlsx = job.xlsx_file.storage.save(
                    job.xlsx_file.field.generate_filename(job, f"{job.code}-results.xlsx"), File(workbook)
                )
    kept = current.update(xlsx_file=xlsx, xlsx_cut_cells=cut, updated_at=timezone.now())
    if xlsx and not kept:
        job.xlsx_file.storage.delete(xlsx)
    return bool(kept)


def _fits_excel(results: IO[str]) -> bool:
    """Whether a results CSV has fewer rows than Excel's sheet holds; leaves the file at its start.
    Lines are quick to count and at least one a row; rows are parsed only when that is not enough."""
    fits = sum(1 for _ in results) <= XLSX_MAX_ROWS
    results.seek(0)
    if not fits:
        fits = sum(1 for _ in csv.reader(results)) <= XLSX_MAX_ROWS
        results.seek(0)
    return fits


def results_jsonl(job: Job) -> Iterator[bytes]:
    """The results as JSON Lines, generated while they are sent: the same merge as the CSV."""
    with outcome_streams(job) as attempts, datasets.rows(job.dataset) as rows:
        yield from iter_jsonl(
            job.dataset.columns,
            rows,
            reuse.with_copies(job, latest_outcomes(attempts)),
            embeddings=job.endpoint == Job.Endpoint.EMBEDDINGS,
            token_prices=pricing.per_token(pricing.prices().get(job.model)),
            id_column=job.dataset.columns.index(job.id_column) if job.id_column else None,
            structured=bool(job.output_fields),
        )
