"""A provider key never appears on a debug page, in an error email or in the audit log."""

import sys

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.views.debug import ExceptionReporter

from jobs.models import AuditEvent, ProviderCredential
from jobs.providers.client import ProviderClient
from tests.test_key_pages import add_key

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-live-0123456789abcdefSECRET"


def test_a_crash_while_building_a_client_shows_no_key_on_the_debug_page_or_in_the_email(
    settings, monkeypatch
):
    import openai

    def refuse(**options):
        raise RuntimeError("The SDK could not be set up")

    monkeypatch.setattr(openai, "OpenAI", refuse)
    settings.DEBUG = True
    credential = ProviderCredential(name="Live", kind=ProviderCredential.Kind.OPENAI)
    credential.set_api_key(KEY)
    credential.save()
    request = RequestFactory().get("/")
    try:
        ProviderClient(credential)
    except RuntimeError:
        exc_info = sys.exc_info()
    reporter = ExceptionReporter(request, *exc_info)
    page, email = reporter.get_traceback_html(), reporter.get_traceback_text()
    assert "ProviderClient" in email  # the frame is there…
    assert KEY not in page and KEY not in email  # …but not the key
    assert "0123456789" not in page and "0123456789" not in email


def test_key_changes_and_tests_are_audited_without_the_key(client, django_user_model, simulator_url):
    root = django_user_model.objects.create_user("root", is_staff=True)
    client.force_login(root)
    credential = add_key(client, name="Live", base_url=simulator_url, api_key=KEY)
    client.post(reverse("jobs:key_test", args=[credential.code]))
    events = list(AuditEvent.objects.order_by("at").values_list("action", "detail"))
    assert [action for action, _ in events] == ["key_save", "key_test"]
    assert all(KEY not in detail and "0123456789" not in detail for _, detail in events)
    page = client.get(reverse("jobs:audit")).content.decode()
    assert KEY not in page and "…CRET" in page


def test_result_downloads_are_attachments_never_sniffed_or_cached(
    client, alice, simulator_credential, settings
):
    from tests.test_pipeline import drive, new_job

    settings.SIMULATOR_SPEED = 1_000_000
    job = drive(new_job(alice, simulator_credential))
    client.force_login(alice)
    for kind in ("results", "failures", "xlsx", "jsonl"):
        response = client.get(reverse("jobs:download", args=[job.code, kind]))
        assert response["Content-Disposition"].startswith("attachment"), kind
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "no-store" in response["Cache-Control"]
