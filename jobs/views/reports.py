"""The admins' pages: jobs waiting for their approval, spend by month, team, user and model, the audit log."""

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from jobs.formats.text import one_line
from jobs.models import AuditEvent, Job, ModelPrice
from jobs.money import estimates, gate, pricing, spend
from jobs.views.common import staff_only


@staff_only
@require_GET
def spend_report(request: HttpRequest) -> HttpResponse:
    """Admins: spend by month, team, user and model over the last year, with the saving, and the
    estimates against the reported usage per model."""
    since = gate.month_start(timezone.now() - timezone.timedelta(days=365))
    lines = spend.report(since)
    used = ModelPrice.objects.filter(model__in={line.model for line in lines})
    stale = [price for price in used if pricing.is_stale(price.as_of)]
    context = {
        "lines": lines,
        "totals": spend.totals(lines),
        "stale_prices": stale,
        "estimates": estimates.by_model(since),
    }
    return render(request, "jobs/spend.html", context)


@staff_only
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    """Admins: who did what, newest first, filtered by action and person."""
    events = AuditEvent.objects.all()
    action = request.GET.get("action", "")
    if action in AuditEvent.Action.values:
        events = events.filter(action=action)
    person = one_line(request.GET.get("person", ""))  # PostgreSQL refuses NUL even in a search
    if person:
        events = events.filter(actor_name__icontains=person)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    context = {"page": page, "action": action, "person": person, "actions": AuditEvent.Action.choices}
    return render(request, "jobs/audit.html", context)


@staff_only
@require_GET
def approvals(request: HttpRequest) -> HttpResponse:
    """The jobs waiting for an admin's approval, oldest first, each with what it sends and costs."""
    waiting = Job.objects.filter(status=Job.Status.AWAITING_APPROVAL).select_related("owner", "credential")
    return render(request, "jobs/approvals.html", {"jobs": waiting.order_by("updated_at")})
