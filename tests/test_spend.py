"""Budgets refuse what would go over them, costly jobs wait for approval, and admins see the spend."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from jobs import pipeline
from jobs.models import AuditEvent, Job, ModelPrice, PilotRun, TeamBudget
from jobs.money import gate, pricing, spend
from jobs.templatetags.money import dollars
from tests.test_pipeline import drive, new_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def prices(settings):
    settings.SIMULATOR_SPEED = 1_000_000
    # Dear enough that five short rows cost cents.
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million=1000, output_per_million=4000, as_of=timezone.now().date()),
    )


def planned(owner, credential, **fields) -> Job:
    job = new_job(owner, credential, max_output_tokens=10, **fields)
    pipeline.prepare_job(job.pk)
    job.refresh_from_db()
    return job


def test_sending_over_the_keys_monthly_budget_is_refused_with_the_figures(
    client, alice, simulator_credential
):
    first = drive(new_job(alice, simulator_credential, max_output_tokens=10))
    spent = gate.committed(Job.objects.filter(pk=first.pk), PilotRun.objects.none(), pricing.prices())
    assert spent > 0
    job = planned(alice, simulator_credential)
    simulator_credential.monthly_budget = (spent + job.estimated_cost / 2).quantize(Decimal("0.01"))
    simulator_credential.save()

    client.force_login(alice)
    response = client.post(reverse("jobs:start", args=[job.code]), follow=True)

    text = response.content.decode()
    assert f"This is estimated at {dollars(job.estimated_cost)}" in text
    assert f"of its {dollars(simulator_credential.monthly_budget)} monthly budget" in text
    assert f"({dollars(spent)} spent or committed this month)" in text
    job.refresh_from_db()
    assert job.status == Job.Status.PLANNED

    simulator_credential.monthly_budget += job.estimated_cost
    simulator_credential.save()
    client.post(reverse("jobs:start", args=[job.code]))
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING


def test_a_teams_budget_counts_every_key_its_jobs_use(client, alice, simulator_credential):
    team = Group.objects.create(name="Research")
    alice.groups.add(team)
    TeamBudget.objects.create(team=team, monthly_budget=Decimal("0.00"))
    job = planned(alice, simulator_credential, team=team)
    client.force_login(alice)
    response = client.post(reverse("jobs:start", args=[job.code]), follow=True)
    assert "the team “Research” has $0.00 left" in response.content.decode()


def test_a_budgeted_key_refuses_a_model_without_a_price(client, alice, simulator_credential):
    ModelPrice.objects.all().delete()
    simulator_credential.monthly_budget = Decimal("100")
    simulator_credential.save()
    job = planned(alice, simulator_credential)
    client.force_login(alice)
    response = client.post(reverse("jobs:start", args=[job.code]), follow=True)
    assert "gpt-4o-mini has no price in the price table" in response.content.decode()


def test_a_costly_job_waits_for_an_admins_approval(
    client, alice, simulator_credential, django_user_model, mailoutbox
):
    root = django_user_model.objects.create_user("root", "root@example.com", is_staff=True)
    simulator_credential.approval_above = Decimal("0.001")
    simulator_credential.save()
    job = planned(alice, simulator_credential)
    client.force_login(alice)

    response = client.post(reverse("jobs:start", args=[job.code]), follow=True)

    assert "The admins have been asked" in response.content.decode()
    job.refresh_from_db()
    assert job.status == Job.Status.AWAITING_APPROVAL
    assert pipeline.release_queued_batches() == []
    [mail] = mailoutbox
    assert mail.to == ["root@example.com"] and "waits for your approval" in mail.subject
    assert client.post(reverse("jobs:approve", args=[job.code])).status_code == 403

    client.force_login(root)
    assert "Approve and send" in client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    client.post(reverse("jobs:approve", args=[job.code]))
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING
    assert AuditEvent.objects.get(action="approve").actor_name == "root"
    assert drive(job).status == Job.Status.COMPLETED


def test_the_spend_page_adds_up_by_team_user_and_model_with_the_saving(
    client, alice, simulator_credential, django_user_model
):
    job = drive(new_job(alice, simulator_credential))
    cost = spend.pricing.actual(job, spend.pricing.prices())
    root = django_user_model.objects.create_user("root", is_staff=True)
    client.force_login(root)
    page = client.get(reverse("jobs:spend")).content.decode()
    assert dollars(cost.batch) in page
    assert dollars(cost.saving) in page
    assert "alice" in page and "gpt-4o-mini" in page and simulator_credential.name in page
    client.force_login(alice)
    assert client.get(reverse("jobs:spend")).status_code == 403
