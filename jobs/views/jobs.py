"""The job pages: the list, a job with its live progress, sending, approving, cancelling, reviewing
and resending failed rows, deleting, and the downloads.
"""

import time

import orjson
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Max
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HTMX_STOP_POLLING

from jobs import access, audit, errors, notify, pipeline, rawfiles, tasks
from jobs.formats.reconcile import MAX_ATTEMPTS, RETRYABLE_CODES
from jobs.formats.text import one_line
from jobs.forms.jobs import row_numbers
from jobs.models import AuditEvent, Batch, Job, ModelPrice
from jobs.money import estimates, gate, plans, pricing
from jobs.views.common import XLSX_TYPE, get_job, rate_limit, staff_only

FAILURES_PER_PAGE = 50


JOBS_PER_PAGE = 25


# What the job page shows of each part: polling loads no more than this.
BATCH_DISPLAY_FIELDS = [
    "updated_at",
    "synchronous",
    "switch_requested_at",
    "throttled",
    "throttled_seconds",
    "job_id",
    "index",
    "attempt",
    "status",
    "remote_status",
    "remote_status_since",
    "remote_batch_id",
    "remote_errors",
    "first_row",
    "last_row",
    "request_count",
    "requests_completed",
    "requests_failed",
    "rows_succeeded",
    "rows_failed",
    "rows_superseded",
    "submitted_at",
    "finished_at",
    "error",
]


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The job list: filter by status, search by name, a page at a time."""
    jobs = access.visible(request.user, Job.objects.select_related("dataset", "owner"))
    status = request.GET.get("status", "")
    if status in Job.Status.values:
        jobs = jobs.filter(status=status)
    query = one_line(request.GET.get("q", ""))  # PostgreSQL refuses NUL even in a search
    if query:
        jobs = jobs.filter(name__icontains=query)
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    prices = pricing.prices()
    for job in page:
        job.actual_cost = pricing.actual(job, prices)
    context = {
        "page": page,
        "status": status,
        "query": query,
        "statuses": Job.Status.choices,
        "filtered": bool(status or query),
    }
    return render(request, "jobs/home.html", context)


@login_required
@require_GET
def job_row(request: HttpRequest, code) -> HttpResponse:
    """htmx: one line of the job list, polled while that job is moving."""
    job = get_job(request, code)
    job.actual_cost = pricing.actual(job, pricing.prices())
    response = render(request, "jobs/home.html#job_row", {"job": job})
    if not job.is_moving:
        response.status_code = HTMX_STOP_POLLING
    return response


def _version(job_changed, parts_changed) -> str:
    """What a polling fragment was drawn from: the last change of the job and of its parts (a part
    moves at the provider without the job changing), and the minute (for the time left)."""
    parts = parts_changed.timestamp() if parts_changed else 0
    return f"{job_changed.timestamp():.6f}-{parts:.6f}-{int(time.time() // 60)}"


def _job_context(job: Job) -> dict:
    """Everything the job page and its fragment show, evaluated here: the template runs no query."""
    plan = plans.plan_for(job) if job.status == Job.Status.PLANNED else None
    # What was billed: rows answered by Run now at the normal price, the others at the batch price.
    cost = pricing.actual(job, {p.model: p for p in ModelPrice.objects.filter(model=job.model)})
    batches = list(job.batches.only(*BATCH_DISPLAY_FIELDS))
    # A job waiting for approval when no admin can be emailed waits until someone looks by chance.
    unheard = job.status == Job.Status.AWAITING_APPROVAL and not notify.admins_with_email().exists()
    # The provider counts answers while a part runs; they reach the results when the part ends.
    at_provider = sum(b.requests_completed for b in batches if b.status == b.Status.RUNNING)
    return {
        "job": job,
        "batches": batches,
        "answered_at_provider": at_provider,
        "plan": plan,
        "cost": cost,
        "admins_unheard": unheard,
        "answering": next((b for b in batches if b.status == Batch.Status.ANSWERING), None),
        "version": _version(job.updated_at, max((b.updated_at for b in batches), default=None)),
    }


@login_required
@require_GET
def job_detail(request: HttpRequest, code) -> HttpResponse:
    job = get_job(request, code)
    context = _job_context(job)
    # Not in the polled fragment: a finished job's report is drawn with the page, from what it holds.
    # Rows of an expired part that its follow-up answered are not unanswered.
    unanswered = sum(b.rows_failed_here for b in context["batches"])
    context["estimates"] = estimates.for_job(job, context["cost"], unanswered)
    return render(request, "jobs/job_detail.html", context)


@login_required
@require_GET
def job_progress(request: HttpRequest, code) -> HttpResponse:
    """htmx: the progress fragment, polled while the job moves. A poll that finds nothing changed since
    the fragment it holds was drawn answers 204 at the cost of one small query, and htmx keeps it."""
    seen = request.GET.get("v")
    if seen:
        jobs = access.visible(request.user, Job.objects.filter(code=code))
        current = jobs.annotate(parts=Max("batches__updated_at")).values_list("updated_at", "parts").first()
        if current is not None and _version(*current) == seen:
            return HttpResponse(status=204)
    job = get_job(request, code)
    response = render(request, "jobs/job_detail.html#progress", _job_context(job))
    if job.is_finished and not job.formats_pending:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@rate_limit("RATE_LIMIT_SUBMITS")
@require_POST
def start(request: HttpRequest, code) -> HttpResponse:
    """The owner has seen the plan and sends the job through the gate (key, budgets, approval)."""
    job = get_job(request, code, change=True)
    try:
        started = pipeline.start_job(job.pk)
    except gate.Refused as exc:
        messages.error(request, str(exc))
        return redirect("jobs:job_detail", job.code)
    return _after_sending(
        request,
        job,
        started,
        sent="Sent. This page follows the job; you can close it and come back.",
        waiting="This job costs more than can be sent without an admin's approval. "
        "The admins have been asked; it starts as soon as one approves it.",
    )


def _after_sending(
    request, job: Job, started: bool, *, sent: str, waiting: str, detail: str = ""
) -> HttpResponse:
    """What follows a send through the gate: audited, then its parts scheduled (or, every row answered
    before, its results built) or the admins asked, and the owner told which."""
    job.refresh_from_db()
    if started or job.status == Job.Status.AWAITING_APPROVAL:
        audit.record(request, AuditEvent.Action.SUBMIT, job=job, cost=job.estimated_cost, detail=detail)
    if started:
        tasks.schedule_batches.delay_on_commit()
        if pipeline.start_results(job.pk):  # every row was answered before: nothing to send
            tasks.build_results.delay_on_commit(job.pk)
        messages.success(request, sent)
    elif job.status == Job.Status.AWAITING_APPROVAL:
        notify.approval_needed(job)
        messages.info(request, waiting)
    return redirect("jobs:job_detail", job.code)


@login_required
@rate_limit("RATE_LIMIT_SUBMITS")
@require_POST
def start_first(request: HttpRequest, code) -> HttpResponse:
    """Only the first rows of a plan a budget cannot pay for whole, through the same gate."""
    job = get_job(request, code, change=True)
    most = job.rows_total - 1
    try:
        rows = int(request.POST.get("rows", ""))
    except ValueError:
        rows = 0
    if not 0 < rows <= most:
        messages.error(
            request, f"Choose how many of the first rows to send: a whole number from 1 to {most:,}."
        )
        return redirect("jobs:job_detail", job.code)
    try:
        started = pipeline.start_first_rows(job.pk, rows)
    except gate.Refused as exc:
        messages.error(request, str(exc))
        return redirect("jobs:job_detail", job.code)
    return _after_sending(
        request,
        job,
        started,
        sent=f"Sent the first {rows:,} rows. The other {job.rows_total - rows:,} are not sent; they can be "
        "sent from this page once the budget has room.",
        waiting="The first rows cost more than can be sent without an admin's approval; the admins have "
        "been asked.",
        detail=f"first {rows} rows",
    )


@login_required
@rate_limit("RATE_LIMIT_SUBMITS")
@require_POST
def run_now(request: HttpRequest, code) -> HttpResponse:
    """The owner runs a small planned job now, through the normal API, at the normal price."""
    job = get_job(request, code, change=True)
    try:
        batch_id = pipeline.run_now(job.pk)
    except gate.Refused as exc:
        messages.error(request, str(exc))
        return redirect("jobs:job_detail", job.code)
    if batch_id:
        job.refresh_from_db()
        audit.record(request, AuditEvent.Action.SUBMIT, job=job, cost=job.estimated_cost)
        tasks.answer_now.delay_on_commit(batch_id)
        messages.success(request, "Running now. This page follows the answers as they come.")
    return redirect("jobs:job_detail", job.code)


@login_required
@require_POST
def switch_to_batch(request: HttpRequest, code) -> HttpResponse:
    """The owner sends the rows not answered yet through the Batch API instead, at half the price."""
    job = get_job(request, code, change=True)
    try:
        if pipeline.switch_to_batch(job.pk):
            messages.success(
                request, "Switching: the rows answered so far are kept, the rest go through the Batch API."
            )
    except gate.Refused as exc:
        messages.error(request, str(exc))
    return redirect("jobs:job_detail", job.code)


@staff_only
@require_POST
def approve(request: HttpRequest, code) -> HttpResponse:
    """An admin lets a costly job go (still within the key and the budgets as they stand now)."""
    job = get_job(request, code)
    try:
        if pipeline.approve_job(job.pk):
            audit.record(request, AuditEvent.Action.APPROVE, job=job, cost=job.estimated_cost)
            tasks.schedule_batches.delay_on_commit()
            messages.success(request, f"Approved: “{job.name}” is on its way.")
    except gate.Refused as exc:
        messages.error(request, str(exc))
    return redirect("jobs:job_detail", job.code)


@staff_only
@require_POST
def decline(request: HttpRequest, code) -> HttpResponse:
    """An admin sends a job waiting for approval back to its owner, with a note saying why."""
    job = get_job(request, code)
    note = request.POST.get("note", "").strip()
    if not note:
        messages.error(request, "Write a note for the owner: it is what they will read on the plan.")
    elif pipeline.decline_job(job.pk, note):
        job.refresh_from_db()
        audit.record(request, AuditEvent.Action.DECLINE, job=job, detail=note[:500])
        notify.declined(job)
        messages.info(request, f"Declined: “{job.name}” is back with its owner, with your note.")
    else:
        messages.error(request, "Only a job that was never sent can be declined; cancel a resend instead.")
    return redirect("jobs:job_detail", job.code)


@login_required
@require_POST
def cancel(request: HttpRequest, code) -> HttpResponse:
    job = get_job(request, code, change=True)
    if job.transition(Job.CANCELLABLE, Job.Status.CANCELLING, cancel_requested_at=timezone.now()):
        audit.record(request, AuditEvent.Action.CANCEL, job=job)
        # Nothing sent yet ("Don't send" on a plan, or parts still queued): it ends right here.
        if pipeline.cancel_unsent(job.pk):
            messages.info(request, "Cancelled. Nothing was sent, so nothing was spent.")
        else:
            tasks.cancel_job.delay_on_commit(job.pk)
            messages.info(request, "Cancelling. Rows that already have answers stay downloadable.")
    return redirect("jobs:job_detail", job.code)


@login_required
@require_GET
def failures(request: HttpRequest, code) -> HttpResponse:
    """The failed rows of a job, filterable by error code, a page at a time, to review and resend."""
    job = get_job(request, code)
    rows = job.row_failures.all()
    codes = [
        (c["code"], c["n"], errors.explain(c["code"], "")[0])
        for c in rows.values("code").annotate(n=Count("pk")).order_by("-n", "code")
    ]
    chosen = one_line(request.GET.get("code", ""))
    if chosen:
        rows = rows.filter(code=chosen)
    page = Paginator(rows, FAILURES_PER_PAGE).get_page(request.GET.get("page"))
    for failure in page:
        failure.what, failure.todo = errors.explain(failure.code, failure.message)
        if failure.attempts >= MAX_ATTEMPTS and failure.code in RETRYABLE_CODES:
            failure.todo = (
                f"It failed {failure.attempts} times for the same reason, so it is not offered again as it "
                "is: send it with an edited prompt, or download it and try another day."
            )
    context = {
        "job": job,
        "page": page,
        "codes": codes,
        "chosen": chosen,
        "chosen_count": next((n for value, n, _ in codes if value == chosen), 0),
        "max_attempts": MAX_ATTEMPTS,
    }
    return render(request, "jobs/failures.html", context)


@login_required
@require_GET
def row_detail(request: HttpRequest, code, row: int) -> HttpResponse:
    """htmx: the exact request sent for a row and the provider's answer, read from our copies."""
    job = get_job(request, code)
    sent, answer = pipeline.row_exchange(job, row)
    context = {"row": row, "sent": _pretty(sent), "answer": _pretty(answer)}
    return render(request, "jobs/_row_detail.html", context)


def _pretty(line: bytes | None) -> str:
    return orjson.dumps(orjson.loads(line), option=orjson.OPT_INDENT_2).decode() if line else ""


@login_required
@rate_limit("RATE_LIMIT_SUBMITS")
@require_POST
def retry(request: HttpRequest, code) -> HttpResponse:
    """Send the retryable failed rows (or the ones ticked) again, as a new attempt of the job."""
    job = get_job(request, code, change=True)
    chosen = None
    if request.POST.get("scope") == "selected":
        try:
            chosen = row_numbers(request.POST.getlist("row"))
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
            return redirect("jobs:failures", job.code)
        if not chosen:
            messages.error(request, "Tick the rows to send again first.")
            return redirect("jobs:failures", job.code)
    try:
        count = pipeline.retry_job(job.pk, chosen)
    except pipeline.RetryRefused as exc:
        messages.error(request, str(exc))
        return redirect("jobs:job_detail", job.code)
    if count:
        audit.record(request, AuditEvent.Action.RETRY, job=job, detail=f"{count} rows")
        tasks.schedule_batches.delay_on_commit()
        messages.info(
            request,
            f"Sending {count:,} row{pluralize(count)} again. The results keep one line per row.",
        )
    else:
        messages.info(request, "There was no failed row that sending again could fix.")
    return redirect("jobs:job_detail", job.code)


@login_required
@require_POST
def delete(request: HttpRequest, code) -> HttpResponse:
    """Delete a job that is not running, with its files here and at the provider."""
    job = get_job(request, code, change=True)
    if job.status not in (*Job.FINISHED, Job.Status.PLANNED):
        messages.error(request, "Cancel the job first; it can be deleted once it has stopped.")
        return redirect("jobs:job_detail", job.code)
    audit.record(request, AuditEvent.Action.DELETE, job=job, detail=job.name)
    credential_id, name = job.credential_id, job.name
    at_provider = pipeline.delete_job(job)
    if at_provider:
        tasks.delete_remote_files.delay_on_commit(credential_id, at_provider)
    messages.info(request, f"Deleted “{name}” and its files.")
    return redirect("jobs:home")


@login_required
@require_POST
def discard(request: HttpRequest, code) -> HttpResponse:
    """The owner does not want the plan: the job goes at once, nothing sent, nothing failed."""
    job = get_job(request, code, change=True)
    name, dataset_code = job.name, job.dataset.code
    if not pipeline.discard_job(job.pk):
        messages.error(request, "Only a plan that was not sent can be discarded.")
        return redirect("jobs:job_detail", job.code)
    audit.record(
        request, AuditEvent.Action.DELETE, dataset=job.dataset, detail=f"{name} (discarded before sending)"
    )
    messages.info(request, f"Discarded “{name}”: nothing was sent. Your table is still here for another job.")
    return redirect("jobs:new_job", dataset_code)


@login_required
@require_POST
def send_again(request: HttpRequest, code) -> HttpResponse:
    """ "Send them again anyway": the plan is made again without earlier answers, every row to be sent."""
    job = get_job(request, code, change=True)
    if pipeline.prepare_without_reuse(job.pk):
        tasks.prepare_job.delay_on_commit(job.pk)
        messages.info(request, "The plan is being made again; this time every row will be sent.")
    else:
        messages.error(request, "Only a plan that was not sent can be made again.")
    return redirect("jobs:job_detail", job.code)


@login_required
@require_GET
def download(request: HttpRequest, code, kind: str) -> HttpResponse:
    """The results (CSV, Excel or JSON Lines) or the failed rows (CSV), as an attachment."""
    job = get_job(request, code)
    if not job.results_file:
        raise Http404("The results are not ready yet.")
    # The job's name, as people named it, and the table's when it differs.
    table = job.dataset.name.rsplit(".", 1)[0]
    name = " ".join(job.name.split())[:120]
    stem = f"{name} ({table})" if name and name != table else table
    if kind == "jsonl" and not job.jsonl_file:
        # Not written yet (it follows the CSV), or a job from before it was: generated as it is sent.
        response = StreamingHttpResponse(pipeline.results_jsonl(job), content_type="application/jsonl")
        response["Content-Disposition"] = content_disposition_header(True, f"{stem} - results.jsonl")
    else:
        stored, filename, content_type = {
            "results": (job.results_file, f"{stem} - results.csv", "text/csv; charset=utf-8"),
            "failures": (job.failures_file, f"{stem} - failures.csv", "text/csv; charset=utf-8"),
            "xlsx": (job.xlsx_file, f"{stem} - results.xlsx", XLSX_TYPE),
            "jsonl": (job.jsonl_file, f"{stem} - results.jsonl", "application/jsonl"),
        }.get(kind, (None, "", ""))
        if not stored:
            raise Http404("There is no such file for this job.")
        if stored.name.endswith(rawfiles.SUFFIX):
            # Kept compressed: sent plain as it is read, whatever the client takes.
            response = StreamingHttpResponse(rawfiles.chunks(stored), content_type=content_type)
            response["Content-Disposition"] = content_disposition_header(True, filename)
        else:
            response = FileResponse(
                stored.open("rb"), as_attachment=True, filename=filename, content_type=content_type
            )
    response["Cache-Control"] = "private, no-store"
    audit.record(request, AuditEvent.Action.DOWNLOAD, job=job, detail=kind)
    return response
