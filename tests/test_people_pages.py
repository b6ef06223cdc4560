"""Admins manage people, teams, team budgets and model prices in the app's own pages; prices
checked long ago are flagged where money is decided (the plan) and reported (the spend page)."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from jobs.models import AuditEvent, ModelPrice, TeamBudget
from tests.test_pipeline import drive, new_job
from tests.test_spend import planned

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def root(client, django_user_model):
    root = django_user_model.objects.create_user("root", "root@example.com", "root-password-1", is_staff=True)
    client.force_login(root)
    return root


def test_an_admin_adds_a_person_whose_generated_password_is_shown_once(client, root, django_user_model):
    team = Group.objects.create(name="Marketing")
    response = client.post(
        reverse("jobs:people"),
        {
            "first_name": "Maria",
            "last_name": "Lopez",
            "username": "maria",
            "email": "maria@example.com",
            "password": "",
            "role": "member",
            "teams": [str(team.pk)],
        },
    )
    page = response.content.decode()
    assert response.status_code == 200
    maria = django_user_model.objects.get(username="maria")
    assert not maria.is_staff and list(maria.groups.all()) == [team]
    shown = page.split('data-testid="new-password">')[1].split("<")[0]
    assert len(shown) >= 12 and maria.check_password(shown)
    listing = client.get(reverse("jobs:people")).content.decode()
    assert "Maria Lopez" in listing and "Marketing" in listing and shown not in listing


def test_a_typed_password_is_kept_and_a_weak_one_refused_in_words(client, root, django_user_model):
    fields = {"first_name": "Ben", "username": "ben", "email": "", "role": "admin"}
    refused = client.post(reverse("jobs:people"), fields | {"password": "123"}).content.decode()
    assert "too short" in refused and not django_user_model.objects.filter(username="ben").exists()
    client.post(reverse("jobs:people"), fields | {"password": "a-long-enough-secret"})
    ben = django_user_model.objects.get(username="ben")
    assert ben.is_staff and ben.check_password("a-long-enough-secret")


def test_an_admin_makes_a_member_an_admin_moves_teams_and_deactivates(client, root, alice):
    team = Group.objects.create(name="Sales")
    url = reverse("jobs:person", args=[alice.username])
    fields = {"first_name": "Alice", "last_name": "", "email": alice.email, "role": "admin"}
    assert client.post(url, fields | {"teams": [str(team.pk)], "is_active": "on"}).status_code == 302
    alice.refresh_from_db()
    assert alice.is_staff and alice.is_active and list(alice.groups.all()) == [team]
    client.post(url, fields | {"role": "member"})
    alice.refresh_from_db()
    assert not alice.is_staff and not alice.is_active and not alice.groups.exists()
    details = list(AuditEvent.objects.filter(action="person_save").values_list("detail", flat=True))
    assert details == ["alice: member, cannot log in, no team", "alice: admin, can log in, teams Sales"]


def test_an_admin_cannot_lock_themselves_out(client, root):
    url = reverse("jobs:person", args=[root.username])
    page = client.post(url, {"first_name": "", "email": root.email, "role": "member"}).content.decode()
    assert "cannot take away your own" in page
    root.refresh_from_db()
    assert root.is_staff and root.is_active


def test_an_admin_creates_renames_and_budgets_a_team(client, root, alice, bob):
    response = client.post(
        reverse("jobs:teams"), {"name": "Research", "monthly_budget": "250", "members": [str(alice.pk)]}
    )
    assert response.status_code == 302
    team = Group.objects.get(name="Research")
    assert team.budget.monthly_budget == Decimal("250") and list(team.user_set.all()) == [alice]
    url = reverse("jobs:team", args=[team.pk])
    client.post(url, {"name": "Insights", "monthly_budget": "", "members": [str(bob.pk)]})
    team.refresh_from_db()
    assert team.name == "Insights" and list(team.user_set.all()) == [bob]
    assert not TeamBudget.objects.filter(team=team).exists()  # empty: no limit
    assert AuditEvent.objects.filter(action="team_save", detail="Insights: 1 member, no limit").exists()
    listing = client.get(reverse("jobs:teams")).content.decode()
    assert "Insights" in listing and "no limit" in listing
    taken = client.post(reverse("jobs:teams"), {"name": "Insights"}).content.decode()
    assert "already a team called" in taken


def test_an_admin_edits_a_models_prices(client, root):
    price = ModelPrice.objects.create(
        model="gpt-4o-mini", input_per_million=1, output_per_million=2, as_of=datetime.date(2024, 1, 1)
    )
    fields = {
        "model": "gpt-4o-mini",
        "input_per_million": "0.15",
        "output_per_million": "0.6",
        "batch_discount": "0.5",
        "context_window": "128000",
        "max_output_tokens": "16384",
        "as_of": "2026-11-01",
    }
    assert client.post(reverse("jobs:price", args=[price.pk]), fields).status_code == 302
    price.refresh_from_db()
    assert price.input_per_million == Decimal("0.15") and price.as_of == datetime.date(2026, 11, 1)
    client.post(reverse("jobs:price_new"), fields | {"model": "gpt-4.1"})
    assert AuditEvent.objects.filter(
        action="price_save", detail="gpt-4.1: $0.15 in, $0.6 out per million, checked 2026-11-01"
    ).exists()
    assert ModelPrice.objects.filter(model="gpt-4.1", context_window=128000).exists()
    refused = client.post(reverse("jobs:price_new"), fields | {"input_per_million": "-1"}).content.decode()
    assert "Input per million" in refused and "greater than or equal to 0" in refused


def test_prices_checked_over_90_days_ago_are_flagged_on_the_prices_plan_and_spend_pages(
    client, root, alice, simulator_credential, settings
):
    settings.SIMULATOR_SPEED = 1_000_000
    old = timezone.now().date() - datetime.timedelta(days=91)
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini", defaults=dict(input_per_million=1, output_per_million=4, as_of=old)
    )
    flag = "checked more than 90 days ago"
    assert flag in client.get(reverse("jobs:prices")).content.decode()
    job = planned(alice, simulator_credential)
    assert flag in client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    drive(new_job(alice, simulator_credential))
    assert flag in client.get(reverse("jobs:spend")).content.decode()
    ModelPrice.objects.update(as_of=timezone.now().date())
    assert flag not in client.get(reverse("jobs:spend")).content.decode()
    assert flag not in client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()


def test_members_cannot_reach_the_people_team_or_price_pages(client, alice):
    client.force_login(alice)
    for name in ("people", "teams", "prices", "price_new"):
        assert client.get(reverse(f"jobs:{name}")).status_code == 403


@pytest.mark.parametrize("width, height", [(1440, 900), (390, 844)])
def test_an_admin_adds_a_person_and_a_team_and_tests_a_key_in_the_browser(
    page, live_server, django_user_model, simulator_credential, width, height
):
    from tests.conftest import screenshot
    from tests.test_browser import log_in

    page.set_viewport_size({"width": width, "height": height})
    log_in(page, live_server, django_user_model, "root")
    django_user_model.objects.filter(username="root").update(is_staff=True)
    page.goto(live_server.url + reverse("jobs:teams"))
    page.get_by_label("Name").fill("Marketing")
    page.get_by_label("Monthly budget (US dollars)").fill("300")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("link", name="Marketing").wait_for()
    screenshot(page, f"teams-{width}")
    page.goto(live_server.url + reverse("jobs:people"))
    page.get_by_label("First name").fill("Maria")
    page.get_by_label("Username (to log in)").fill("maria")
    page.get_by_label("Email address").fill("maria@example.com")
    page.get_by_label("Marketing").check()
    page.get_by_role("button", name="Add").click()
    password = page.get_by_test_id("new-password").inner_text()
    assert django_user_model.objects.get(username="maria").check_password(password)
    screenshot(page, f"people-{width}")
    page.get_by_role("link", name="Maria").click()
    page.get_by_label("Admin: everything").check()
    page.get_by_role("button", name="Save").click()
    assert django_user_model.objects.get(username="maria").is_staff
    page.goto(live_server.url + reverse("jobs:keys"))
    page.get_by_role("button", name=f"Test {simulator_credential.name}").click()
    assert "Last test passed" in page.get_by_test_id("last-test").inner_text()
    screenshot(page, f"keys-{width}")
    page.goto(live_server.url + reverse("jobs:prices"))
    screenshot(page, f"prices-{width}")


def test_an_owner_sees_old_prices_flagged_on_the_plan_in_the_browser(
    page, live_server, django_user_model, simulator_credential, settings
):
    from tests.conftest import screenshot
    from tests.test_browser import log_in

    settings.SIMULATOR_SPEED = 1_000_000
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million=1, output_per_million=4, as_of=datetime.date(2025, 8, 7)),
    )
    owner = log_in(page, live_server, django_user_model)
    job = planned(owner, simulator_credential)
    page.goto(live_server.url + reverse("jobs:job_detail", args=[job.code]))
    assert "checked more than 90 days ago" in page.get_by_test_id("plan-cost").inner_text()
    screenshot(page, "plan-old-prices")
