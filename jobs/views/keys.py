"""The admins' key pages: list, add or edit, test, enable or disable, delete."""

from django.contrib import messages
from django.db import transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs import audit, notify, tasks
from jobs import keys as credentials
from jobs.forms.keys import CredentialForm
from jobs.models import AuditEvent, ProviderCredential
from jobs.views.common import rate_limit, staff_only


def _get_key(code) -> ProviderCredential:
    return get_object_or_404(ProviderCredential, code=code)


@staff_only
@require_GET
def keys(request: HttpRequest) -> HttpResponse:
    credentials = ProviderCredential.objects.prefetch_related("teams").annotate(job_count=Count("jobs"))
    context = {"credentials": credentials, "admins_unheard": not notify.admins_with_email().exists()}
    return render(request, "jobs/keys.html", context)


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
@rate_limit("RATE_LIMIT_KEY_TESTS")
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
