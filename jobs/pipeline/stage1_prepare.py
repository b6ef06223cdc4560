"""Stage 1, prepare: job `preparing → planned` (or `failed` when nothing can be sent); batches `queued`.

Every row is rendered into request files within the key's limits, with its tokens counted, and the
rows that cannot be sent (empty, or longer than the model accepts) are set aside with the reason.
"""

import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from jobs import datasets
from jobs.formats import reconcile, tables, tokens
from jobs.formats.requestfiles import (
    RequestBuilder,
    write_batch_files,
)
from jobs.models import Batch, Job, ModelPrice
from jobs.money import plans
from jobs.pipeline import reuse
from jobs.pipeline.common import new_batches, request_spec


def prepare_job(job_id: int) -> list[int]:
    """Build the job's request files and its batches (queued); returns their ids.

    The job then waits, `planned`, for its owner to look at the plan and send it. The
    files are written outside any transaction; the batches and the move to `planned`
    are committed together, so a crash part-way leaves the job `preparing`
    and a rerun starts again from the same rows with the same bytes.
    """
    job = Job.objects.select_related("dataset", "credential").get(pk=job_id)
    if job.status != Job.Status.PREPARING or job.batches.exists():
        return []
    try:
        if job.id_column:
            _check_row_ids(job)
        batches = _first_batches(job)
    except (tables.TableError, ValueError) as exc:
        # Row IDs that repeat, a row the file's settings say stops the reading, or a request
        # over the size limit.
        job.transition(
            Job.Status.PREPARING,
            Job.Status.FAILED,
            error=f"Nothing was sent: {exc}",
            finished_at=timezone.now(),
        )
        return []
    if not batches and not (job.rows_reused or job.rows_copied):
        job.transition(
            Job.Status.PREPARING,
            Job.Status.FAILED,
            error="The file has no rows to send."
            if not job.rows_skipped
            else f"No row is left to send: all {job.rows_skipped:,} were left out (empty, or too long).",
            finished_at=timezone.now(),
        )
        return []
    with transaction.atomic():
        rows = sum(b.request_count for b in batches)
        prompt_tokens = sum(b.input_tokens for b in batches)
        estimate = plans.estimate(job, prompt_tokens, rows)
        won = job.transition(
            Job.Status.PREPARING,
            Job.Status.PLANNED,
            rows_total=rows,
            input_tokens=prompt_tokens,
            estimated_cost=estimate.batch if estimate else None,
            rows_skipped=job.rows_skipped,
            skipped_file=job.skipped_file.name,
            rows_reused=job.rows_reused,
            rows_copied=job.rows_copied,
            reused_file=job.reused_file.name,
            copies_file=job.copies_file.name,
            reuse_saving=job.reuse_saving,
            reused_from=job.reused_from,
        )
        if won:
            created = Batch.objects.bulk_create(batches)
    if not won:
        # Overtaken (cancelled meanwhile, or planned by another run): what this run stored goes.
        for field in [job.skipped_file, job.reused_file, job.copies_file, *(b.input_file for b in batches)]:
            if field.name:
                field.delete(save=False)
        return []
    return [b.pk for b in created]


def _check_row_ids(job: Job) -> None:
    """Raise ValueError naming the repeated values if the job's row-ID column is not unique."""
    duplicates, examples = datasets.duplicate_ids(job.dataset, job.id_column)
    if duplicates:
        named = "; ".join(f"“{value}” (rows {', '.join(map(str, rows[:5]))})" for value, rows in examples)
        raise ValueError(
            f"the column “{job.id_column}” cannot name the rows, because {duplicates:,} of its values "
            f"appear more than once: {named}. Choose another column, or let the rows be numbered."
        )


def _first_batches(job: Job) -> list[Batch]:
    """Render every row into request files within the key's limits; unsaved batches for them.

    Rows left out (empty, or longer than the model accepts) go into the job's skipped file
    as outcomes with the reason, so that the results say why they were not sent; rows answered
    before, or repeating an earlier row, are recorded by reuse.Answered and not sent either.
    """
    credential = job.credential
    builder = RequestBuilder(request_spec(job), job.dataset.columns)
    count_prompt = tokens.prompt_counter(job.model, job.endpoint)
    limit = prompt_limit(job)
    with (
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryFile() as skipped,
        datasets.rows(job.dataset) as rows,
        reuse.answered_rows(job, builder.spec_fingerprint) as answered,
    ):

        def skip(row: int, code: str, prompt_tokens: int) -> None:
            if code == "too_long":
                message = (
                    f"The prompt has {prompt_tokens:,} tokens; {job.model} takes at most {limit:,} "
                    "(its context window less the longest answer), so the row was not sent."
                )
            else:
                message = "The columns the prompt uses are empty in this row, so it was not sent."
            outcome = reconcile.Outcome(row, False, code=code, message=message, input_tokens=prompt_tokens)
            skipped.write(outcome.to_json() + b"\n")
            job.rows_skipped += 1

        job.rows_skipped = 0
        parts = write_batch_files(
            rows,
            builder,
            Path(tmp),
            max_requests=credential.max_requests_per_batch,
            max_bytes=credential.max_bytes_per_batch,
            count_tokens=count_prompt,
            skip=skip,
            skip_empty=None if job.empty_rows == Job.EmptyRows.SEND else job.empty_rows,
            max_prompt_tokens=limit,
            lookup=answered.lookup,
            known=answered.known,
            answered=answered.answered,
            same_as=answered.same_as,
            processes=settings.PREPARE_PROCESSES,
        )
        batches = new_batches(job, parts, attempt=1)
        answered.save()
        if job.rows_skipped:
            skipped.seek(0)
            job.skipped_file.save(f"{job.code}-skipped.jsonl", File(skipped), save=False)
    return batches


def prompt_limit(job: Job) -> int | None:
    """The most prompt tokens a row may have: the model's context window less the longest answer."""
    window = ModelPrice.objects.filter(model=job.model).values_list("context_window", flat=True).first()
    if not window:
        return None
    answer = 0 if job.endpoint == Job.Endpoint.EMBEDDINGS else job.max_output_tokens or 0
    return max(window - answer, 1)
