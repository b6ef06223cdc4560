"""Pages and htmx fragments. Views stay thin: they check access, validate, and hand off.

Every object a user reaches goes through jobs.access (via `_get_job` and `_get_dataset`),
so a stranger's id answers 404. Progress fragments read only our tables.
"""

import functools
import json

import orjson
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import DatabaseError, connection, transaction
from django.db.models import Count
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HTMX_STOP_POLLING
from django_ratelimit.decorators import ratelimit

from batchdash.celery import app as celery_app
from jobs import (
    access,
    audit,
    credentials,
    datasets,
    errors,
    notify,
    pilot,
    pipeline,
    plans,
    pricing,
    schema,
    spend,
    tasks,
    tokens,
)
from jobs import metrics as jobs_metrics
from jobs.batchfiles import RequestBuilder
from jobs.forms import SUGGESTED_MODELS, CredentialForm, JobForm, ReadingForm, UploadForm, output_fields
from jobs.models import AuditEvent, Dataset, Job, ModelPrice, PromptTemplate, ProviderCredential

PREVIEW_ROWS = 3
FAILURES_PER_PAGE = 50
JOBS_PER_PAGE = 25
# What the job page shows of each part: polling loads no more than this.
BATCH_DISPLAY_FIELDS = [
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
    "submitted_at",
    "finished_at",
    "error",
]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def staff_only(view):
    """Admins only; everyone else gets 403 (the pages hold no one else's data to hide)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only admins can do this.")
        return view(request, *args, **kwargs)

    return login_required(wrapper)


def _get_job(request: HttpRequest, code, *, change: bool = False) -> Job:
    # The dataset's preview and problems are large and never shown on job pages.
    jobs = Job.objects.select_related("dataset").defer("dataset__preview", "dataset__problems")
    get = access.get_changeable if change else access.get_visible
    return get(request.user, jobs, code=code)


def _get_dataset(request: HttpRequest, code) -> Dataset:
    return access.get_visible(request.user, Dataset.objects.all(), code=code)


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """For load balancers and monitoring: can we reach the database and the broker?"""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except DatabaseError:
        checks["database"] = "unreachable"
    try:
        with celery_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=3)
        checks["broker"] = "ok"
    except Exception:  # kombu raises transport-specific errors
        checks["broker"] = "unreachable"
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unhealthy", **checks}, status=200 if healthy else 503
    )


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics: for a scraper holding METRICS_TOKEN, or for a signed-in admin."""
    token = settings.METRICS_TOKEN
    bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    allowed = (token and constant_time_compare(bearer, token)) or request.user.is_staff
    if not allowed:
        return HttpResponse("Metrics need METRICS_TOKEN as a bearer token or an admin login.\n", status=403)
    return HttpResponse(jobs_metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The job list: filter by status, search by name, a page at a time."""
    jobs = access.visible(request.user, Job.objects.select_related("dataset", "owner"))
    status = request.GET.get("status", "")
    if status in Job.Status.values:
        jobs = jobs.filter(status=status)
    query = request.GET.get("q", "").strip()
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
    job = _get_job(request, code)
    job.actual_cost = pricing.actual(job, pricing.prices())
    response = render(request, "jobs/home.html#job_row", {"job": job})
    if not job.is_moving:
        response.status_code = HTMX_STOP_POLLING
    return response


def _limit(setting: str):
    """At most the setting's rate of POSTs per user (django-ratelimit); over it, rate_limited answers."""
    return ratelimit(key="user", rate=lambda group, request: getattr(settings, setting), method="POST")


def rate_limited(request: HttpRequest, exception) -> HttpResponse:
    return render(request, "rate_limited.html", status=429)


@login_required
@_limit("RATE_LIMIT_UPLOADS")
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        dataset = datasets.create_from_upload(
            request.user, form.cleaned_data["file"], team=form.cleaned_data.get("team")
        )
        audit.record(request, AuditEvent.Action.UPLOAD, dataset=dataset, detail=dataset.name)
        if dataset.status == Dataset.Status.COUNTING:
            tasks.count_dataset_rows.delay_on_commit(dataset.pk)
        return redirect("jobs:new_job", dataset.code)
    return render(request, "jobs/upload.html", {"form": form, "max_bytes": settings.UPLOAD_MAX_BYTES})


def _preview_requests(dataset: Dataset, form: JobForm) -> tuple[list[dict], str]:
    """The exact requests the first rows will produce, with their tokens and cost, or why not yet."""
    data = form.data
    job = Job(
        endpoint=data.get("endpoint") or Job.Endpoint.CHAT,
        model=data.get("model") or "(choose a model)",
        system_prompt=data.get("system_prompt", ""),
        user_prompt=data.get("user_prompt", ""),
        temperature=_number(data.get("temperature"), float),
        max_output_tokens=_number(data.get("max_output_tokens"), int),
    )
    try:
        job.output_fields = output_fields(data, job.endpoint)
        builder = RequestBuilder(pipeline.request_spec(job), dataset.columns)
    except KeyError as exc:
        return [], f"No column is called {{{{ {exc.args[0]} }}}}."
    except schema.FieldError as exc:
        return [], str(exc)
    if not job.user_prompt.strip():
        return [], "Write a prompt to see the requests it makes."
    count = tokens.prompt_counter(job.model)
    price = ModelPrice.objects.filter(model=job.model).first()
    answer_bound = 0 if job.endpoint == Job.Endpoint.EMBEDDINGS else job.max_output_tokens or 0
    previews = []
    for number, cells in enumerate(dataset.preview[:PREVIEW_ROWS], start=1):
        system, user = builder.texts(cells)
        prompt_tokens = count(system, user)
        previews.append(
            {
                "row": number,
                "json": json.dumps(builder.body(cells), indent=2, ensure_ascii=False),
                "tokens": prompt_tokens,
                "cost": pricing.cost(price, prompt_tokens, answer_bound),
                "bounded": bool(answer_bound) or job.endpoint == Job.Endpoint.EMBEDDINGS,
            }
        )
    return previews, ""


def _number(value, kind):
    try:
        return kind(value) if value not in (None, "") else None
    except ValueError:
        return None


@login_required
@_limit("RATE_LIMIT_SUBMITS")
@require_http_methods(["GET", "POST"])
def new_job(request: HttpRequest, code) -> HttpResponse:
    dataset = _get_dataset(request, code)
    initial = {"name": dataset.name.rsplit(".", 1)[0], "team": dataset.team_id}
    templates = access.visible(request.user, PromptTemplate.objects.all())
    chosen = request.GET.get("template")
    if chosen:
        template = get_object_or_404(templates, code=chosen)
        initial |= {field: getattr(template, field) for field in PromptTemplate.SETTINGS}
    form = JobForm(request.POST or None, columns=dataset.columns, user=request.user, initial=initial)
    if request.method == "POST" and dataset.status != Dataset.Status.INVALID and form.is_valid():
        job = form.save(commit=False)
        job.owner = request.user
        job.dataset = dataset
        with transaction.atomic():
            job.save()
            audit.record(request, AuditEvent.Action.PREPARE, job=job)
            tasks.prepare_job.delay_on_commit(job.pk)
        return redirect("jobs:job_detail", job.code)
    previews, preview_message = _preview_requests(dataset, form)
    reading_form = ReadingForm(
        initial={"encoding": dataset.encoding, "delimiter": dataset.delimiter, "bad_rows": dataset.bad_rows}
    )
    context = {
        "dataset": dataset,
        "field_types": schema.TYPES.items(),
        "templates": templates,
        "chosen_template": chosen,
        "reading_form": reading_form,
        "form": form,
        "previews": previews,
        "preview_message": preview_message,
        "suggested_models": sorted({m for models in SUGGESTED_MODELS.values() for m in models}),
    }
    return render(request, "jobs/new_job.html", context)


@login_required
@require_POST
def preview(request: HttpRequest, code) -> HttpResponse:
    dataset = _get_dataset(request, code)
    form = JobForm(request.POST, columns=dataset.columns, user=request.user)
    previews, preview_message = _preview_requests(dataset, form)
    return render(
        request, "jobs/new_job.html#preview", {"previews": previews, "preview_message": preview_message}
    )


def _job_context(job: Job) -> dict:
    plan = plans.plan_for(job) if job.status == Job.Status.PLANNED else None
    cost = pricing.cost(
        ModelPrice.objects.filter(model=job.model).first(), job.reported_input_tokens, job.output_tokens
    )
    return {"job": job, "batches": job.batches.only(*BATCH_DISPLAY_FIELDS), "plan": plan, "cost": cost}


@login_required
@require_POST
def save_template(request: HttpRequest, code) -> HttpResponse:
    """htmx: keep the prompt and its settings under a name, to reuse on other tables."""
    dataset = _get_dataset(request, code)
    form = JobForm(request.POST, columns=dataset.columns, user=request.user)
    name = request.POST.get("template_name", "").strip()[:200]
    form.is_valid()
    problems = [e for f in ("user_prompt", "system_prompt", "model") for e in form.errors.get(f, [])]
    if not name:
        problems.insert(0, "Give the template a name.")
    if problems:
        return render(request, "jobs/new_job.html#template_saved", {"problems": problems})
    values = {field: form.cleaned_data.get(field) for field in PromptTemplate.SETTINGS}
    values["output_fields"] = form.instance.output_fields
    template, created = PromptTemplate.objects.update_or_create(
        owner=request.user, name=name, defaults=values | {"team": form.cleaned_data.get("team")}
    )
    return render(request, "jobs/new_job.html#template_saved", {"template": template, "created": created})


@login_required
@require_GET
def templates(request: HttpRequest) -> HttpResponse:
    """The saved templates this user can see, their own and their teams'."""
    visible = access.visible(request.user, PromptTemplate.objects.select_related("owner", "team"))
    return render(request, "jobs/templates.html", {"templates": visible})


@login_required
@require_POST
def template_delete(request: HttpRequest, code) -> HttpResponse:
    template = access.get_changeable(request.user, PromptTemplate.objects.all(), code=code)
    template.delete()
    messages.info(request, f"Deleted the template “{template.name}”. Jobs that used it keep their copy.")
    return redirect("jobs:templates")


@login_required
@require_POST
def reading(request: HttpRequest, code) -> HttpResponse:
    """Read the upload again with the encoding, separator and bad-row choice the user picked."""
    dataset = access.get_changeable(request.user, Dataset.objects.all(), code=code)
    form = ReadingForm(request.POST)
    if dataset.format == "csv" and form.is_valid():
        dataset.bad_rows = form.cleaned_data["bad_rows"]
        datasets.analyse(
            dataset, encoding=form.cleaned_data["encoding"], delimiter=form.cleaned_data["delimiter"]
        )
        if dataset.status == Dataset.Status.COUNTING:
            tasks.count_dataset_rows.delay_on_commit(dataset.pk)
        messages.info(request, "The file was read again with your settings.")
    return redirect("jobs:new_job", dataset.code)


@login_required
@require_GET
def dataset_count(request: HttpRequest, code) -> HttpResponse:
    """htmx: the row count, and its progress while the whole file is read."""
    dataset = _get_dataset(request, code)
    response = render(request, "jobs/new_job.html#count", {"dataset": dataset})
    if dataset.status != Dataset.Status.COUNTING:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@_limit("RATE_LIMIT_SUBMITS")
@require_POST
def pilot_run(request: HttpRequest, code) -> HttpResponse:
    """htmx: send the first rows now through the synchronous API and show the real answers."""
    dataset = _get_dataset(request, code)
    form = JobForm(request.POST, columns=dataset.columns, user=request.user)
    if dataset.status == Dataset.Status.INVALID or not form.is_valid():
        problems = [e for errors in form.errors.values() for e in errors] or [dataset.error]
        return render(request, "jobs/new_job.html#pilot", {"problems": problems})
    job = form.save(commit=False)
    builder = RequestBuilder(pipeline.request_spec(job), dataset.columns)
    result = pilot.run(job, dataset, builder)
    return render(request, "jobs/new_job.html#pilot", {"pilot": result, "dataset": dataset})


@login_required
@require_GET
def job_detail(request: HttpRequest, code) -> HttpResponse:
    job = _get_job(request, code)
    return render(request, "jobs/job_detail.html", _job_context(job))


@login_required
@require_GET
def job_progress(request: HttpRequest, code) -> HttpResponse:
    job = _get_job(request, code)
    response = render(request, "jobs/job_detail.html#progress", _job_context(job))
    if job.is_finished:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@_limit("RATE_LIMIT_SUBMITS")
@require_POST
def start(request: HttpRequest, code) -> HttpResponse:
    """The owner has seen the plan and sends the job: within budget, and approved if it costs a lot."""
    job = _get_job(request, code, change=True)
    if job.status != Job.Status.PLANNED:
        return redirect("jobs:job_detail", job.code)
    try:
        with spend.within_budget(job):
            audit.record(request, AuditEvent.Action.SUBMIT, job=job, cost=job.estimated_cost)
            if spend.needs_approval(job):
                if job.transition(Job.Status.PLANNED, Job.Status.AWAITING_APPROVAL):
                    notify.approval_needed(job)
                    messages.info(
                        request,
                        "This job costs more than can be sent without an admin's approval. "
                        "The admins have been asked; it starts as soon as one approves it.",
                    )
            elif pipeline.start_job(job.pk):
                tasks.schedule_batches.delay_on_commit()
                messages.success(request, "Sent. This page follows the job; you can close it and come back.")
    except spend.BudgetRefused as exc:
        messages.error(request, str(exc))
    return redirect("jobs:job_detail", job.code)


@staff_only
@require_POST
def approve(request: HttpRequest, code) -> HttpResponse:
    """An admin lets a costly job go (still within the budgets as they stand now)."""
    job = _get_job(request, code)
    try:
        with spend.within_budget(job):
            if job.transition(Job.Status.AWAITING_APPROVAL, Job.Status.RUNNING, started_at=timezone.now()):
                audit.record(request, AuditEvent.Action.APPROVE, job=job, cost=job.estimated_cost)
                tasks.schedule_batches.delay_on_commit()
                messages.success(request, f"Approved: “{job.name}” is on its way.")
    except spend.BudgetRefused as exc:
        messages.error(request, str(exc))
    return redirect("jobs:job_detail", job.code)


@staff_only
@require_GET
def spend_report(request: HttpRequest) -> HttpResponse:
    """Admins: spend by month, team, user and model over the last year, with the saving."""
    since = spend.month_start(timezone.now() - timezone.timedelta(days=365))
    lines = spend.report(since)
    return render(request, "jobs/spend.html", {"lines": lines, "totals": spend.totals(lines)})


@login_required
@require_POST
def cancel(request: HttpRequest, code) -> HttpResponse:
    job = _get_job(request, code, change=True)
    if job.transition(Job.CANCELLABLE, Job.Status.CANCELLING, cancel_requested_at=timezone.now()):
        audit.record(request, AuditEvent.Action.CANCEL, job=job)
        tasks.cancel_job.delay_on_commit(job.pk)
        messages.info(request, "Cancelling. Rows that already have answers stay downloadable.")
    return redirect("jobs:job_detail", job.code)


@login_required
@require_GET
def failures(request: HttpRequest, code) -> HttpResponse:
    """The failed rows of a job, filterable by error code, a page at a time, to review and resend."""
    job = _get_job(request, code)
    rows = job.row_failures.all()
    codes = [
        (c["code"], c["n"], errors.explain(c["code"], "")[0])
        for c in rows.values("code").annotate(n=Count("pk")).order_by("-n", "code")
    ]
    chosen = request.GET.get("code", "")
    if chosen:
        rows = rows.filter(code=chosen)
    page = Paginator(rows, FAILURES_PER_PAGE).get_page(request.GET.get("page"))
    for failure in page:
        failure.what, failure.todo = errors.explain(failure.code, failure.message)
    context = {"job": job, "page": page, "codes": codes, "chosen": chosen}
    return render(request, "jobs/failures.html", context)


@login_required
@require_GET
def row_detail(request: HttpRequest, code, row: int) -> HttpResponse:
    """htmx: the exact request sent for a row and the provider's answer, read from our copies."""
    job = _get_job(request, code)
    sent, answer = pipeline.row_exchange(job, row)
    context = {"row": row, "sent": _pretty(sent), "answer": _pretty(answer)}
    return render(request, "jobs/_row_detail.html", context)


def _pretty(line: bytes | None) -> str:
    return orjson.dumps(orjson.loads(line), option=orjson.OPT_INDENT_2).decode() if line else ""


@login_required
@_limit("RATE_LIMIT_SUBMITS")
@require_POST
def retry(request: HttpRequest, code) -> HttpResponse:
    """Send the retryable failed rows (or the ones ticked) again, as a new attempt of the job."""
    job = _get_job(request, code, change=True)
    chosen = None
    if request.POST.get("scope") == "selected":
        chosen = [int(r) for r in request.POST.getlist("row") if r.isdigit()]
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
    job = _get_job(request, code, change=True)
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


@staff_only
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    """Admins: who did what, newest first, filtered by action and person."""
    events = AuditEvent.objects.all()
    action = request.GET.get("action", "")
    if action in AuditEvent.Action.values:
        events = events.filter(action=action)
    person = request.GET.get("person", "").strip()
    if person:
        events = events.filter(actor_name__icontains=person)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    context = {"page": page, "action": action, "person": person, "actions": AuditEvent.Action.choices}
    return render(request, "jobs/audit.html", context)


@login_required
@require_GET
def download(request: HttpRequest, code, kind: str) -> HttpResponse:
    """The results (CSV, Excel or JSON Lines) or the failed rows (CSV), as an attachment."""
    job = _get_job(request, code)
    if not job.results_file:
        raise Http404("The results are not ready yet.")
    stem = job.dataset.name.rsplit(".", 1)[0]
    if kind == "jsonl":
        response = StreamingHttpResponse(pipeline.results_jsonl(job), content_type="application/jsonl")
        response["Content-Disposition"] = content_disposition_header(True, f"{stem} - results.jsonl")
    else:
        stored, filename, content_type = {
            "results": (job.results_file, f"{stem} - results.csv", "text/csv; charset=utf-8"),
            "failures": (job.failures_file, f"{stem} - failures.csv", "text/csv; charset=utf-8"),
            "xlsx": (job.xlsx_file, f"{stem} - results.xlsx", XLSX_TYPE),
        }.get(kind, (None, "", ""))
        if not stored:
            raise Http404("There is no such file for this job.")
        response = FileResponse(
            stored.open("rb"), as_attachment=True, filename=filename, content_type=content_type
        )
    response["Cache-Control"] = "private, no-store"
    audit.record(request, AuditEvent.Action.DOWNLOAD, job=job, detail=kind)
    return response


def _get_key(code) -> ProviderCredential:
    return get_object_or_404(ProviderCredential, code=code)


@staff_only
@require_GET
def keys(request: HttpRequest) -> HttpResponse:
    credentials = ProviderCredential.objects.prefetch_related("teams").annotate(job_count=Count("jobs"))
    return render(request, "jobs/keys.html", {"credentials": credentials})


@staff_only
@require_http_methods(["GET", "POST"])
def key_form(request: HttpRequest, code=None) -> HttpResponse:
    """Add a key, or change one (a new key replaces the stored one; empty keeps it)."""
    credential = _get_key(code) if code else None
    form = CredentialForm(request.POST or None, instance=credential)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            credential = form.save()
            detail = f"{credential.name} ({credential.masked_key})"
            if form.cleaned_data.get("api_key"):
                detail += ", new key entered"
            audit.record(request, AuditEvent.Action.KEY_SAVE, credential=credential, detail=detail)
            if form.resumes_jobs:
                tasks.resume_credential.delay_on_commit(credential.pk)
        messages.success(request, f"Saved “{credential.name}” (key {credential.masked_key}).")
        return redirect("jobs:keys")
    return render(request, "jobs/key_form.html", {"form": form, "credential": credential})


@staff_only
@_limit("RATE_LIMIT_KEY_TESTS")
@require_POST
def key_test(request: HttpRequest, code) -> HttpResponse:
    credential = _get_key(code)
    worked, message = credentials.test(credential)
    audit.record(
        request, AuditEvent.Action.KEY_TEST, credential=credential, detail="worked" if worked else message
    )
    (messages.success if worked else messages.error)(request, f"{credential.name}: {message}")
    return redirect("jobs:keys")


@staff_only
@require_POST
def key_toggle(request: HttpRequest, code) -> HttpResponse:
    credential = _get_key(code)
    ProviderCredential.objects.filter(pk=credential.pk).update(is_active=not credential.is_active)
    detail = f"{credential.name} {'disabled' if credential.is_active else 'enabled'}"
    audit.record(request, AuditEvent.Action.KEY_TOGGLE, credential=credential, detail=detail)
    state = "can no longer be chosen for new jobs" if credential.is_active else "can be chosen again"
    messages.info(request, f"“{credential.name}” {state}.")
    return redirect("jobs:keys")


@staff_only
@require_POST
def key_delete(request: HttpRequest, code) -> HttpResponse:
    credential = _get_key(code)
    used = credential.jobs.count()
    if used:
        messages.error(
            request,
            f"“{credential.name}” is used by {used:,} job{pluralize(used)}, whose history needs it: "
            "disable it instead.",
        )
    else:
        detail = f"{credential.name} ({credential.masked_key})"
        audit.record(request, AuditEvent.Action.KEY_DELETE, credential=credential, detail=detail)
        credential.delete()
        messages.info(request, f"Deleted “{credential.name}”.")
    return redirect("jobs:keys")
