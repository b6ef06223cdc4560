"""For machines: the health check for load balancers, and Prometheus metrics."""

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.http import require_GET

from batchdash.celery import app as celery_app
from jobs import metrics as jobs_metrics


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
