"""The results view: a job's rows with their answers on screen, a page at a time, before any download."""

import re

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from jobs import rawfiles
from jobs.formats.resultpages import read_page
from jobs.formats.text import one_line
from jobs.views.common import get_job

ROWS_PER_PAGE = 50
# Checked by pattern: str.isdigit() also takes digits int() refuses, such as '²'.
_PAGE = re.compile(r"[1-9][0-9]{0,7}")
# The status filter's values in the address, and the status cell each stands for.
STATUSES = {"succeeded": "succeeded", "failed": "failed", "not_sent": "not sent"}


def _page_number(value: str) -> int:
    """The page asked for; anything that is not a sensible page number is the first page."""
    return int(value) if _PAGE.fullmatch(value) else 1


@login_required
@require_GET
def results(request: HttpRequest, code) -> HttpResponse:
    """The original rows with their answers (each structured field a column), filtered by status and
    searched for text in any cell; each row's request and answer open on demand. htmx asks for the
    table alone."""
    job = get_job(request, code)
    status = request.GET.get("status", "")
    status = status if status in STATUSES else ""
    query = one_line(request.GET.get("q", "")).strip()[:200]
    number = _page_number(request.GET.get("page", ""))
    columns = job.dataset.columns
    fields = [f["name"] for f in job.output_fields]
    status_at = len(columns) + 1 + len(fields)
    # What is shown of each line: the row's cells, then the answer or its fields.
    shown_at = [*range(len(columns)), *(range(len(columns) + 1, status_at) if fields else [len(columns)])]
    page = None
    if job.results_file:
        with rawfiles.pages(job.results_file) as stream:
            page = read_page(
                stream,
                job.results_offsets,
                start=(number - 1) * ROWS_PER_PAGE,
                size=ROWS_PER_PAGE,
                status_at=status_at,
                status=STATUSES.get(status, ""),
                query=query,
            )
        page.rows = [
            (row, [cells[i] for i in shown_at], cells[status_at], cells[status_at + 2])
            for row, cells in page.rows
        ]
    context = {
        "job": job,
        "page": page,
        "number": number,
        "pages": -(-(job.rows_total + job.rows_skipped) // ROWS_PER_PAGE) if not (status or query) else None,
        "status": status,
        "query": query,
        "statuses": [("succeeded", "Succeeded"), ("failed", "Failed"), ("not_sent", "Not sent")],
        "headers": [*columns, *(fields or ["Answer"])],
    }
    template = "jobs/results.html#results_table" if request.htmx else "jobs/results.html"
    return render(request, template, context)
