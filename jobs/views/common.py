"""What every page group shares: access helpers (a stranger's id answers 404), admins-only, rate limits."""

import functools
import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django_ratelimit.decorators import ratelimit

from jobs import access
from jobs.models import Dataset, Job

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def staff_only(view):
    """Admins only; everyone else gets 403 (the pages hold no one else's data to hide)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only admins can do this.")
        return view(request, *args, **kwargs)

    return login_required(wrapper)


def get_job(request: HttpRequest, code, *, change: bool = False) -> Job:
    # The dataset's preview and problems are large and never shown on job pages.
    jobs = Job.objects.select_related("dataset", "credential", "owner").defer(
        "dataset__preview", "dataset__problems"
    )
    get = access.get_changeable if change else access.get_visible
    return get(request.user, jobs, code=code)


def parse_code(value: str, what: str) -> uuid.UUID:
    """An object's code from a query parameter; anything else is no such object (404), not a crash."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Http404(f"There is no {what} with this code.") from None


def get_dataset(request: HttpRequest, code) -> Dataset:
    return access.get_visible(request.user, Dataset.objects.all(), code=code)


def rate_limit(setting: str):
    """At most the setting's rate of POSTs per user (django-ratelimit); over it, rate_limited answers."""
    return ratelimit(key="user", rate=lambda group, request: getattr(settings, setting), method="POST")


def rate_limited(request: HttpRequest, exception) -> HttpResponse:
    return render(request, "rate_limited.html", status=429)
