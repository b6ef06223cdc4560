"""Uploading a table and mapping it into a prompt: the upload, reading choices, the row count, the
new-job form with its live preview, pilot run and model comparison, and saved templates.
"""

import json

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HTMX_STOP_POLLING, trigger_client_event

from jobs import access, audit, comparison, datasets, pilot, pipeline, tasks
from jobs.formats import prompts, schema, tokens, uniques
from jobs.formats.requestfiles import RequestBuilder
from jobs.formats.text import one_line
from jobs.forms.comparison import ComparisonForm
from jobs.forms.jobs import JobForm, output_fields
from jobs.forms.uploads import ReadingForm, UploadForm
from jobs.models import AuditEvent, Dataset, Job, ModelPrice, PromptTemplate
from jobs.money import gate, plans, pricing
from jobs.views.common import get_dataset, parse_code, rate_limit

PREVIEW_ROWS = 3
# The form fields a saved template keeps (its structured fields come from the field builder), and its team.
TEMPLATE_FIELDS = (*(f for f in PromptTemplate.SETTINGS if f != "output_fields"), "team")


@login_required
@rate_limit("RATE_LIMIT_UPLOADS")
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    data, files = (request.POST, request.FILES) if request.method == "POST" else (None, None)
    # Read after the body was parsed: the size handler notes an upload it stopped (batchdash.uploads).
    refused = getattr(request, "upload_too_large", None)
    form = UploadForm(data, files, user=request.user, refused_size=refused)
    if request.method == "POST" and form.is_valid():
        dataset = datasets.create_from_upload(
            request.user, form.cleaned_data["file"], team=form.cleaned_data.get("team")
        )
        audit.record(request, AuditEvent.Action.UPLOAD, dataset=dataset, detail=dataset.name)
        if dataset.status == Dataset.Status.COUNTING:
            tasks.count_dataset_rows.delay_on_commit(dataset.pk)
        return redirect("jobs:new_job", dataset.code)
    context = {
        "form": form,
        "max_bytes": settings.UPLOAD_MAX_BYTES,
        "earlier": datasets.earlier(request.user),
    }
    return render(request, "jobs/upload.html", context)


@login_required
@require_POST
def reading(request: HttpRequest, code) -> HttpResponse:
    """Read the upload again with the encoding, separator and bad-row choices the user picked, or,
    for a workbook, another of its sheets. A table jobs already read is read again as a new one."""
    dataset = access.get_changeable(request.user, Dataset.objects.all(), code=code)
    form = ReadingForm(request.POST)
    if dataset.format == "xlsx" and "sheet" in request.POST:
        return _read_sheet(request, dataset, request.POST["sheet"])
    if dataset.format == "csv" and form.is_valid():
        dataset = datasets.for_rereading(dataset)
        dataset.long_rows = form.cleaned_data["long_rows"]
        dataset.short_rows = form.cleaned_data["short_rows"]
        datasets.analyse(
            dataset, encoding=form.cleaned_data["encoding"], delimiter=form.cleaned_data["delimiter"]
        )
        if dataset.status == Dataset.Status.COUNTING:
            tasks.count_dataset_rows.delay_on_commit(dataset.pk)
        messages.info(request, "The file was read again with your settings.")
    return redirect("jobs:new_job", dataset.code)


def _read_sheet(request: HttpRequest, dataset: Dataset, sheet: str) -> HttpResponse:
    if sheet == dataset.sheet:
        return redirect("jobs:new_job", dataset.code)
    reading = datasets.for_rereading(dataset)
    refused = datasets.read_sheet(reading, sheet)
    if refused:
        if reading.pk != dataset.pk:
            reading.delete()  # the copy made for the new reading; the file stays with the original
        messages.error(request, f"{refused} Still reading “{dataset.sheet}”.")
        return redirect("jobs:new_job", dataset.code)
    tasks.count_dataset_rows.delay_on_commit(reading.pk)
    messages.info(request, f"Read the sheet “{reading.sheet}”; its rows are being counted.")
    return redirect("jobs:new_job", reading.code)


@login_required
@require_GET
def dataset_count(request: HttpRequest, code) -> HttpResponse:
    """htmx: the row count, and its progress while the whole file is read."""
    dataset = get_dataset(request, code)
    response = render(request, "jobs/new_job.html#count", {"dataset": dataset})
    if dataset.status != Dataset.Status.COUNTING:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@rate_limit("RATE_LIMIT_SUBMITS")
@require_http_methods(["GET", "POST"])
def new_job(request: HttpRequest, code) -> HttpResponse:
    dataset = get_dataset(request, code)
    initial = {"name": dataset.name.rsplit(".", 1)[0], "team": dataset.team_id}
    templates = access.visible(request.user, PromptTemplate.objects.all())
    chosen = request.GET.get("template")
    template_note = ""
    if chosen:
        template = get_object_or_404(templates, code=parse_code(chosen, "template"))
        initial |= {field: getattr(template, field) for field in PromptTemplate.SETTINGS}
        initial["team"] = template.team_id
        template_note = datasets.template_misfit(template, dataset)
    # "Edit" on a plan: the form as it was filled in; the plan is replaced when this one is prepared.
    editing = _plan_to_edit(request, dataset, request.POST.get("replaces") or request.GET.get("edit"))
    if editing:
        initial |= {field: getattr(editing, field) for field in EDITABLE}
        initial |= {"credential": editing.credential_id, "team": editing.team_id}
    form = JobForm(
        request.POST or None,
        columns=dataset.columns,
        user=request.user,
        initial=initial,
        id_checks=dataset.id_checks,
    )
    if request.method == "POST" and dataset.status != Dataset.Status.INVALID and form.is_valid():
        job = form.save(commit=False)
        job.owner = request.user
        job.dataset = dataset
        with transaction.atomic():
            job.save()
            audit.record(request, AuditEvent.Action.PREPARE, job=job)
            tasks.prepare_job.delay_on_commit(job.pk)
        if editing:
            pipeline.discard_job(editing.pk)
        return redirect("jobs:job_detail", job.code)
    previews, preview_message, id_problem = _preview_requests(dataset, form)
    reading_form = ReadingForm(
        initial={
            "encoding": dataset.encoding,
            "delimiter": dataset.delimiter,
            "long_rows": dataset.long_rows,
            "short_rows": dataset.short_rows,
        }
    )
    context = {
        "dataset": dataset,
        "field_types": schema.TYPES.items(),
        "templates": templates,
        "chosen_template": chosen,
        "template_note": template_note,
        "editing": editing,
        "reading_form": reading_form,
        "form": form,
        "comparison_form": ComparisonForm(job_form=form),
        "previews": previews,
        "preview_message": preview_message,
        "id_problem": id_problem,
    }
    return render(request, "jobs/new_job.html", context)


# What "Edit" carries back from a plan into the form: everything the owner filled in (with the key and
# the team, by id).
EDITABLE = (*PromptTemplate.SETTINGS, "name", "pilot_output_tokens")


def _plan_to_edit(request: HttpRequest, dataset: Dataset, code: str | None) -> Job | None:
    """The user's own plan of this table, still unsent, that the form edits; None when there is none."""
    if not code:
        return None
    jobs = Job.objects.filter(dataset=dataset, owner=request.user, status=Job.Status.PLANNED)
    return jobs.filter(code=parse_code(code, "plan")).first()


def _preview_requests(dataset: Dataset, form: JobForm) -> tuple[list[dict], str, str]:
    """The exact requests the first rows will produce, with their tokens and cost, or why not yet;
    and why the chosen row ID column cannot name the rows, if the row count found a repeat.

    A form not yet posted (a template just applied, a plan being edited) previews what it shows.
    """
    data = form.data if form.is_bound else form.shown_values()
    column = data.get("id_column") or ""
    id_problem = uniques.refusal(column, dataset.id_checks.get(column))
    previews, message = _requests(dataset, data)
    return previews, message, id_problem


def _requests(dataset: Dataset, data) -> tuple[list[dict], str]:
    job = Job(
        endpoint=data.get("endpoint") or Job.Endpoint.CHAT,
        model=one_line(data.get("model") or "") or "(choose a model)",
        system_prompt=data.get("system_prompt", ""),
        user_prompt=data.get("user_prompt", ""),
        temperature=_number(data.get("temperature"), float),
        max_output_tokens=_number(data.get("max_output_tokens"), int),
    )
    try:
        job.output_fields = output_fields(data, job.endpoint)
        builder = RequestBuilder(pipeline.request_spec(job), dataset.columns)
    except KeyError as exc:
        return [], f"No column is called {prompts.placeholder(exc.args[0])}."
    except schema.FieldError as exc:
        return [], str(exc)
    if not job.user_prompt.strip():
        return [], "Write a prompt to see the requests it makes."
    count = tokens.prompt_counter(job.model, job.endpoint)
    price = ModelPrice.objects.filter(model=job.model).first()
    bound = plans.answer_bound(job)
    previews = []
    for number, cells in enumerate(dataset.preview[:PREVIEW_ROWS], start=1):
        system, user = builder.texts(cells)
        prompt_tokens = count(system, user)
        previews.append(
            {
                "row": number,
                "system": system,
                "user": user,
                "json": json.dumps(builder.body(cells), indent=2, ensure_ascii=False),
                "tokens": prompt_tokens,
                "cost": pricing.cost(price, prompt_tokens, bound.tokens),
                "bound": bound.source,
            }
        )
    return previews, ""


def _number(value, kind):
    try:
        return kind(value) if value not in (None, "") else None
    except ValueError:
        return None


@login_required
@require_POST
def preview(request: HttpRequest, code) -> HttpResponse:
    dataset = get_dataset(request, code)
    form = JobForm(request.POST, columns=dataset.columns, user=request.user)
    previews, preview_message, id_problem = _preview_requests(dataset, form)
    context = {"previews": previews, "preview_message": preview_message, "id_problem": id_problem}
    return render(request, "jobs/new_job.html#preview", context)


@login_required
@rate_limit("RATE_LIMIT_SUBMITS")
@require_POST
def pilot_run(request: HttpRequest, code) -> HttpResponse:
    """htmx: send the first rows now through the synchronous API and show the real answers."""
    dataset = get_dataset(request, code)
    form = JobForm(request.POST, columns=dataset.columns, user=request.user)
    if dataset.status == Dataset.Status.INVALID or not form.is_valid():
        problems = _named_errors(form, form.fields) or [dataset.error]
        return render(request, "jobs/new_job.html#pilot", {"problems": problems})
    job = form.save(commit=False)
    builder = RequestBuilder(pipeline.request_spec(job), dataset.columns)
    try:
        result = pilot.run(job, dataset, builder, request.user)
    except gate.Refused as exc:
        return render(request, "jobs/new_job.html#pilot", {"problems": [str(exc)]})
    audit.record(
        request,
        AuditEvent.Action.PILOT,
        dataset=dataset,
        credential=job.credential,
        cost=result.cost,
        detail=f"{len(result.trials)} rows of {job.model}",
    )
    simulated = job.credential.kind == job.credential.Kind.SIMULATOR
    context = {"pilot": result, "dataset": dataset, "simulated_provider": simulated}
    return render(request, "jobs/new_job.html#pilot", context)


@login_required
@rate_limit("RATE_LIMIT_SUBMITS")
@require_POST
def compare(request: HttpRequest, code) -> HttpResponse:
    """htmx: the first rows sent now to up to three models at once, their answers side by side."""
    dataset = get_dataset(request, code)
    form = JobForm(request.POST, columns=dataset.columns, user=request.user)
    choice = ComparisonForm(request.POST, job_form=form)
    problems = []
    if dataset.status == Dataset.Status.INVALID or not form.is_valid():
        problems = _named_errors(form, form.fields) or [dataset.error]
    if not choice.is_valid():
        problems += _named_errors(choice, choice.fields)
    if problems:
        return render(request, "jobs/_comparison.html", {"problems": problems})
    job = form.save(commit=False)
    models, rows = choice.cleaned_data["models"], choice.cleaned_data["compare_rows"]
    try:
        result = comparison.run(job, dataset, request.user, models, rows)
    except gate.Refused as exc:
        return render(request, "jobs/_comparison.html", {"problems": [str(exc)]})
    for run in result.runs:
        others = " and ".join(m for m in models if m != run.model)
        audit.record(
            request,
            AuditEvent.Action.PILOT,
            dataset=dataset,
            credential=job.credential,
            cost=run.cost,
            detail=f"{len(result.rows)} rows of {run.model}, compared with {others}",
        )
    simulated = job.credential.kind == job.credential.Kind.SIMULATOR
    context = {"comparison": result, "dataset": dataset, "simulated_provider": simulated}
    return render(request, "jobs/_comparison.html", context)


@login_required
@require_POST
def use_model(request: HttpRequest, code) -> HttpResponse:
    """htmx: "Use this model" in a comparison: the form's model field with that model chosen (or why it
    cannot be); the page then asks for a new preview of the requests."""
    dataset = get_dataset(request, code)
    data = request.POST.copy()
    data["model"] = request.POST.get("use_model", "")
    form = JobForm(data, columns=dataset.columns, user=request.user)
    response = render(request, "jobs/new_job.html#model_field", {"form": form})
    if not form.errors.get("model"):
        trigger_client_event(response, "model-chosen", after="settle")
    return response


def _named_errors(form: forms.Form, fields) -> list[str]:
    """The errors of these fields and the form's own, each naming its field: the fragments that
    show them list them away from the fields, and "Enter a number." alone says not which.
    """
    named = [f"{form[f].label}: {e}" for f in fields if f in form.fields for e in form.errors.get(f, [])]
    return named + list(form.errors.get(NON_FIELD_ERRORS, []))


@login_required
@require_POST
def save_template(request: HttpRequest, code) -> HttpResponse:
    """htmx: keep the prompt and its settings under a name, to reuse on other tables."""
    dataset = get_dataset(request, code)
    form = JobForm(request.POST, columns=dataset.columns, user=request.user)
    name = one_line(request.POST.get("template_name", ""))[:200]
    form.is_valid()
    # Every setting the template keeps must be valid (the job's name and key are not kept).
    problems = _named_errors(form, TEMPLATE_FIELDS)
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
@require_http_methods(["GET", "POST"])
def template_delete(request: HttpRequest, code) -> HttpResponse:
    """Asks first (a page of its own, so that it works without JavaScript), then deletes on POST."""
    template = access.get_changeable(request.user, PromptTemplate.objects.select_related("team"), code=code)
    if request.method == "GET":
        return render(request, "jobs/template_delete.html", {"template": template})
    template.delete()
    messages.info(request, f"Deleted the template “{template.name}”. Jobs that used it keep their copy.")
    return redirect("jobs:templates")
