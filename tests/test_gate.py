"""Nothing is spent without passing the same gate: resends, the pilot run, a job shared with no one,
an empty longest answer, a key changed since the form was drawn, and two sends racing for one budget."""

import threading
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from jobs import pipeline
from jobs.models import AuditEvent, Batch, Job, ModelPrice, PilotRun, TeamBudget
from jobs.money import gate, plans
from tests.test_pipeline import drive, new_job

pytestmark = pytest.mark.django_db(transaction=True)

RETRYABLE = b"Review Text\nfine\n[[simulate:server_error]] busy\nalso fine\n"


@pytest.fixture(autouse=True)
def prices(settings):
    settings.SIMULATOR_SPEED = 1_000_000
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(
            input_per_million=1000,
            output_per_million=4000,
            max_output_tokens=16_384,
            as_of=timezone.now().date(),
        ),
    )


def planned(owner, credential, **fields) -> Job:
    job = new_job(owner, credential, **fields)
    pipeline.prepare_job(job.pk)
    job.refresh_from_db()
    return job


def with_a_retryable_failure(owner, credential) -> Job:
    job = drive(new_job(owner, credential, content=RETRYABLE, max_output_tokens=10))
    assert (job.status, job.rows_failed, job.rows_retryable) == (Job.Status.COMPLETED, 1, 1)
    return job


def test_resending_failed_rows_over_the_keys_budget_is_refused_and_sends_nothing(
    client, alice, simulator_credential
):
    job = with_a_retryable_failure(alice, simulator_credential)
    simulator_credential.monthly_budget = Decimal("0.00")
    simulator_credential.save()
    batches = job.batches.count()

    client.force_login(alice)
    response = client.post(reverse("jobs:retry", args=[job.code]), {"scope": "all"}, follow=True)

    assert "the key “Simulator” has $0.00 left of its $0.00 monthly budget" in response.content.decode()
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED and job.batches.count() == batches
    assert pipeline.release_queued_batches() == []


def test_a_resend_above_the_approval_threshold_waits_for_an_admin(client, alice, simulator_credential):
    job = with_a_retryable_failure(alice, simulator_credential)
    simulator_credential.approval_above = Decimal("0.000001")
    simulator_credential.save()

    client.force_login(alice)
    client.post(reverse("jobs:retry", args=[job.code]), {"scope": "all"})

    job.refresh_from_db()
    assert job.status == Job.Status.AWAITING_APPROVAL
    assert pipeline.release_queued_batches() == []
    assert pipeline.approve_job(job.pk)
    assert drive(job).rows_failed == 1  # the simulated fault fails again, but it went through the gate


def test_resending_on_a_key_disabled_since_is_refused(client, alice, simulator_credential):
    job = with_a_retryable_failure(alice, simulator_credential)
    simulator_credential.is_active = False
    simulator_credential.save()
    client.force_login(alice)
    response = client.post(reverse("jobs:retry", args=[job.code]), {"scope": "all"}, follow=True)
    assert "has been disabled by an admin" in response.content.decode()
    assert Job.objects.get(pk=job.pk).status == Job.Status.COMPLETED


def test_sending_on_a_key_restricted_to_another_team_since_the_plan_is_refused(
    client, alice, simulator_credential
):
    job = planned(alice, simulator_credential, max_output_tokens=10)
    simulator_credential.teams.add(Group.objects.create(name="Finance"))
    client.force_login(alice)
    response = client.post(reverse("jobs:start", args=[job.code]), follow=True)
    assert "is no longer open to alice" in response.content.decode()
    assert Job.objects.get(pk=job.pk).status == Job.Status.PLANNED


def test_a_job_shared_with_no_one_is_still_charged_to_its_owners_team(client, alice, simulator_credential):
    team = Group.objects.create(name="Research")
    alice.groups.add(team)
    TeamBudget.objects.create(team=team, monthly_budget=Decimal("0.00"))
    job = planned(alice, simulator_credential, team=None, max_output_tokens=10)

    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "Charged to" in page and "the budget of “Research”" in page
    response = client.post(reverse("jobs:start", args=[job.code]), follow=True)

    assert "the team “Research” has $0.00 left" in response.content.decode()
    assert Job.objects.get(pk=job.pk).status == Job.Status.PLANNED


def test_an_empty_longest_answer_is_counted_at_the_models_longest_answer(client, alice, simulator_credential):
    simulator_credential.approval_above = Decimal("1.00")
    simulator_credential.save()
    job = planned(alice, simulator_credential, max_output_tokens=None)

    # Five rows at 16,384 answer tokens each, at $4,000 per million and half price: $163.84 and the prompts.
    assert job.estimated_cost > Decimal("163.84")
    client.force_login(alice)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "the longest answer gpt-4o-mini can give, 16,384 tokens" in page
    client.post(reverse("jobs:start", args=[job.code]))
    assert Job.objects.get(pk=job.pk).status == Job.Status.AWAITING_APPROVAL


def test_without_a_known_longest_answer_the_bound_is_said_on_the_plan(alice, simulator_credential):
    ModelPrice.objects.filter(model="gpt-4o-mini").update(max_output_tokens=None)
    job = planned(alice, simulator_credential, max_output_tokens=None)
    bound = plans.answer_bound(job)
    assert bound.tokens == plans.DEFAULT_ANSWER_BOUND and "no longest answer is known" in bound.source
    job.pilot_output_tokens = 12.5
    assert plans.answer_bound(job).tokens == 50


def test_the_pilot_run_is_checked_against_the_budget_and_recorded_as_spend(
    client, alice, simulator_credential, django_user_model
):
    dataset_job = new_job(alice, simulator_credential)
    form = {
        "name": "Try",
        "credential": simulator_credential.pk,
        "endpoint": Job.Endpoint.CHAT,
        "model": "gpt-4o-mini",
        "user_prompt": "Sentiment of: {{ Review Text }}",
        "max_output_tokens": 20,
    }
    url = reverse("jobs:pilot", args=[dataset_job.dataset.code])
    client.force_login(alice)

    simulator_credential.monthly_budget = Decimal("0.00")
    simulator_credential.save()
    refused = client.post(url, form).content.decode()
    assert "has $0.00 left of its $0.00 monthly budget" in refused
    assert not PilotRun.objects.exists()

    simulator_credential.monthly_budget = Decimal("100.00")
    simulator_credential.save()
    answered = client.post(url, form).content.decode()
    assert "simulated" in answered.lower() or "answer" in answered.lower()
    [run] = PilotRun.objects.all()
    assert run.owner == alice and run.rows == 5 and run.output_tokens > 0 and run.cost > 0
    event = AuditEvent.objects.get(action=AuditEvent.Action.PILOT)
    assert event.cost == run.cost and event.credential == simulator_credential

    # It counts against what is left: the next job's budget check sees it.
    assert gate.committed(Job.objects.none(), PilotRun.objects.all(), {}) == run.cost
    root = django_user_model.objects.create_user("root", is_staff=True)
    client.force_login(root)
    assert "gpt-4o-mini (pilot runs)" in client.get(reverse("jobs:spend")).content.decode()


def test_two_sends_racing_for_the_last_of_a_budget_let_exactly_one_through(alice, simulator_credential):
    first = planned(alice, simulator_credential, max_output_tokens=10)
    second = planned(alice, simulator_credential, max_output_tokens=10)
    simulator_credential.monthly_budget = (first.estimated_cost * Decimal("1.5")).quantize(
        Decimal("0.000001")
    )
    simulator_credential.save()
    barrier = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def send(job_id: int) -> None:
        barrier.wait()
        try:
            outcomes[job_id] = "sent" if pipeline.start_job(job_id) else "not sent"
        except gate.Refused:
            outcomes[job_id] = "refused"
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(job.pk,)) for job in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes.values()) == ["refused", "sent"]
    assert Job.objects.filter(status=Job.Status.RUNNING).count() == 1
    assert Batch.objects.filter(job__status=Job.Status.PLANNED).exists()


def test_the_plan_says_what_send_will_do_before_it_is_pressed(client, alice, simulator_credential):
    job = planned(alice, simulator_credential, max_output_tokens=10)
    client.force_login(alice)
    url = reverse("jobs:job_detail", args=[job.code])

    simulator_credential.monthly_budget = Decimal("50.00")
    simulator_credential.save()
    page = client.get(url).content.decode()
    assert "The key “Simulator”: $50.00 left of $50.00 this month." in page
    assert 'data-testid="send-refusal"' not in page and "disabled" not in page

    simulator_credential.approval_above = Decimal("0.000001")
    simulator_credential.save()
    page = client.get(url).content.decode()
    assert 'data-testid="needs-approval"' in page and "Ask an admin to approve 5 rows" in page

    simulator_credential.monthly_budget = Decimal("0.00")
    simulator_credential.save()
    page = client.get(url).content.decode()
    assert "This cannot be sent now." in page and "has $0.00 left of its $0.00 monthly budget" in page
    assert 'disabled aria-describedby="send-refusal"' in page
