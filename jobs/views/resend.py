"""Failed rows sent again with an edited prompt: the form, its preview of the first chosen row, the send."""

import dataclasses

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.views.decorators.http import require_http_methods, require_POST

from jobs import audit, pipeline, tasks
from jobs.formats.requestfiles import RequestBuilder
from jobs.formats.text import one_line
from jobs.forms.jobs import row_numbers
from jobs.models import AuditEvent, Job, RowFailure
from jobs.views.common import get_job, rate_limit

# The rows of the form's list: the first ones chosen are enough to recognise them.
ROWS_SHOWN = 5


def _chosen(request: HttpRequest, job: Job) -> tuple[QuerySet[RowFailure], str]:
    """The failed rows chosen (ticked, or every row of one error code), and the code.

    Raises ValidationError naming a value that is no row number.
    """
    data = request.POST if request.method == "POST" else request.GET
    code = one_line(data.get("code", ""))[:100]
    failures = job.row_failures.all()
    if code:
        return failures.filter(code=code), code
    return failures.filter(row__in=row_numbers(data.getlist("row"))), ""


def _rendered(job: Job, failure: RowFailure | None, system_prompt: str, user_prompt: str) -> dict:
    """What the edited prompt makes of a row's cells, or the error naming an unknown column."""
    if failure is None:
        return {}
    spec = pipeline.request_spec(job)
    spec = dataclasses.replace(spec, system_prompt=system_prompt, user_prompt=user_prompt)
    try:
        system, user = RequestBuilder(spec, job.dataset.columns).texts(failure.cells)
    except KeyError as exc:
        column = exc.args[0]
        return {"prompt_error": f"The prompt names the column “{column}”, which the table does not have."}
    return {"preview_row": failure.row, "preview_system": system, "preview_user": user}


@login_required
@rate_limit("RATE_LIMIT_SUBMITS")
@require_http_methods(["GET", "POST"])
def resend(request: HttpRequest, code) -> HttpResponse:
    """The form (GET, or POST from the ticked rows of the failures page), and the send (step=send)."""
    job = get_job(request, code, change=True)
    try:
        failures, error_code = _chosen(request, job)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
        return redirect("jobs:failures", job.code)
    shown, count = list(failures[:ROWS_SHOWN]), failures.count()
    if not count:
        messages.error(request, "Tick the rows to send with an edited prompt first.")
        return redirect("jobs:failures", job.code)
    sending = request.method == "POST" and request.POST.get("step") == "send"
    system_prompt = request.POST.get("system_prompt", job.system_prompt) if sending else job.system_prompt
    user_prompt = request.POST.get("user_prompt", job.user_prompt) if sending else job.user_prompt
    if sending:
        try:
            sent = pipeline.resend_with_prompt(
                job.pk,
                failures.values_list("row", flat=True).iterator(),
                system_prompt=system_prompt,
                user_prompt=user_prompt,
            )
        except pipeline.RetryRefused as exc:
            messages.error(request, str(exc))
        else:
            if sent:
                audit.record(
                    request,
                    AuditEvent.Action.RETRY,
                    job=job,
                    detail=f"{sent} rows with an edited prompt: {user_prompt}"[:500],
                )
                tasks.schedule_batches.delay_on_commit()
                messages.info(
                    request,
                    f"Sending {sent:,} row{pluralize(sent)} again with the edited prompt. "
                    "The results keep one line per row.",
                )
                return redirect("jobs:job_detail", job.code)
            messages.info(request, "None of these rows is failed any more: there was nothing to send.")
            return redirect("jobs:failures", job.code)
    context = {
        "job": job,
        "shown": shown,
        "count": count,
        "code": error_code,
        "rows": [] if error_code else request.POST.getlist("row") or request.GET.getlist("row"),
        "system_prompt": system_prompt,
        "user_prompt": user_prompt,
        **_rendered(job, shown[0] if shown else None, system_prompt, user_prompt),
    }
    return render(request, "jobs/resend.html", context)


@login_required
@require_POST
def resend_preview(request: HttpRequest, code) -> HttpResponse:
    """htmx: the edited prompt rendered for the first chosen row, as it is typed."""
    job = get_job(request, code, change=True)
    try:
        failures, _ = _chosen(request, job)
    except ValidationError as exc:
        return render(request, "jobs/resend.html#prompt_preview", {"prompt_error": exc.messages[0]})
    context = _rendered(
        job, failures.first(), request.POST.get("system_prompt", ""), request.POST.get("user_prompt", "")
    )
    return render(request, "jobs/resend.html#prompt_preview", context)
