"""What every page's frame says, and the pages around the journey: styled error pages, the simulated-
answers banner, the admins' approval queue with Decline, and progress in words."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs import pipeline
from jobs.models import AuditEvent, Job, ModelPrice, ProviderCredential
from tests.test_pipeline import new_job

pytestmark = pytest.mark.django_db


def test_a_missing_page_is_styled_and_offers_a_way_back(client, alice, settings):
    settings.DEBUG = False
    client.force_login(alice)
    response = client.get("/jobs/00000000-0000-0000-0000-000000000000/")
    text = response.content.decode()
    assert response.status_code == 404
    assert "This page does not exist" in text and 'href="/"' in text and "Log out" in text


def test_a_refusal_is_styled_and_says_why(client, alice):
    client.force_login(alice)
    response = client.get(reverse("jobs:spend"))
    text = response.content.decode()
    assert response.status_code == 403
    assert "You cannot do this" in text and "Only admins can do this." in text and "Back to your jobs" in text


def test_the_server_error_page_needs_no_context(client, alice):
    from django.template.loader import render_to_string

    text = render_to_string("500.html")
    assert "Something went wrong on our side" in text and "Nothing you uploaded or sent is lost" in text


def test_answers_are_labelled_simulated_when_the_simulator_is_the_only_provider(client, alice):
    ProviderCredential.objects.create(
        name="Simulator", kind=ProviderCredential.Kind.SIMULATOR, key_last4="ator"
    )
    client.force_login(alice)
    assert 'data-testid="simulated-banner"' in client.get(reverse("jobs:home")).content.decode()

    ProviderCredential.objects.create(name="OpenAI", kind=ProviderCredential.Kind.OPENAI, key_last4="abcd")
    assert 'data-testid="simulated-banner"' not in client.get(reverse("jobs:home")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_an_admin_finds_the_job_in_the_queue_and_declines_it_with_a_note_the_owner_reads(
    client, alice, simulator_credential, django_user_model, mailoutbox
):
    alice.email = "alice@example.com"
    alice.save()
    root = django_user_model.objects.create_user("root", "root@example.com", is_staff=True)
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million=1000, output_per_million=4000, as_of=timezone.now().date()),
    )
    simulator_credential.approval_above = Decimal("0.000001")
    simulator_credential.save()
    job = new_job(alice, simulator_credential, max_output_tokens=10)
    pipeline.prepare_job(job.pk)
    assert pipeline.start_job(job.pk) is False

    client.force_login(root)
    home = client.get(reverse("jobs:home")).content.decode()
    assert "Approvals" in home and '>1<span class="visually-hidden"> waiting' in home
    queue = client.get(reverse("jobs:approvals")).content.decode()
    assert job.name in queue and "alice" in queue
    assert (
        "Write a note" in client.post(reverse("jobs:decline", args=[job.code]), follow=True).content.decode()
    )
    client.post(reverse("jobs:decline", args=[job.code]), {"note": "Try 100 rows first."})

    job.refresh_from_db()
    assert job.status == Job.Status.PLANNED and job.decline_note == "Try 100 rows first."
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DECLINE, job=job).exists()
    declined = [m for m in mailoutbox if m.to == ["alice@example.com"]]
    assert declined and "Try 100 rows first." in declined[0].body
    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "Not approved." in page and "Try 100 rows first." in page


def test_time_left_is_said_in_words_and_never_about_zero_minutes(alice, simulator_credential):
    job = new_job(alice, simulator_credential)
    job.status, job.rows_total, job.rows_processed = Job.Status.RUNNING, 1000, 999
    job.started_at = timezone.now() - timedelta(seconds=30)
    assert job.time_left_text == "less than a minute left"
    job.rows_processed = 100
    job.started_at = timezone.now() - timedelta(minutes=1)
    assert job.time_left_text == "about 9 minutes left"


def test_a_job_completed_with_failures_says_how_many_in_amber(client, alice, simulator_credential):
    job = new_job(alice, simulator_credential)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.COMPLETED, rows_total=10, rows_succeeded=4, rows_failed=6
    )
    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "Completed · 6 failed" in page and "text-bg-warning" in page


@pytest.mark.django_db(transaction=True)
def test_downloads_are_named_after_the_job_and_its_table(client, alice, simulator_credential, settings):
    from tests.test_pipeline import drive

    settings.SIMULATOR_SPEED = 1_000_000
    job = drive(new_job(alice, simulator_credential, name="October\nsentiment"))
    client.force_login(alice)
    response = client.get(reverse("jobs:download", args=[job.code, "xlsx"]))
    assert 'filename="October sentiment (reviews) - results.xlsx"' in response["Content-Disposition"]
