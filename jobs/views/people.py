"""The admins' pages for people, teams with their budgets, and model prices (the Django admin stays
for edge cases)."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Count, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from jobs.models import ModelPrice, TeamBudget
from jobs.people_forms import PersonForm, PriceForm, TeamForm
from jobs.views.common import staff_only

User = get_user_model()


@staff_only
@require_http_methods(["GET", "POST"])
def people(request: HttpRequest) -> HttpResponse:
    """Everyone with their teams and role; adding a person shows their password once, on this answer."""
    form = PersonForm(request.POST or None, editor=request.user)
    added = password = None
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            added = form.save()
        password, form = form.new_password, PersonForm(editor=request.user)
    everyone = User.objects.prefetch_related(Prefetch("groups", Group.objects.order_by("name")))
    context = {
        "people": everyone.order_by("-is_active", "username"),
        "form": form,
        "added": added,
        "password": password,
    }
    return render(request, "jobs/people.html", context)


@staff_only
@require_http_methods(["GET", "POST"])
def person(request: HttpRequest, username: str) -> HttpResponse:
    found = get_object_or_404(User, username=username)
    form = PersonForm(request.POST or None, instance=found, editor=request.user)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
        changed = " Their password was changed." if form.new_password else ""
        messages.success(request, f"Saved {found.get_username()}.{changed}")
        return redirect("jobs:people")
    return render(request, "jobs/person.html", {"form": form, "person": found})


@staff_only
@require_http_methods(["GET", "POST"])
def teams(request: HttpRequest) -> HttpResponse:
    """Every team with its members and budget; a new one is made here."""
    return _team_form(request, None)


@staff_only
@require_http_methods(["GET", "POST"])
def team(request: HttpRequest, pk: int) -> HttpResponse:
    return _team_form(request, get_object_or_404(Group, pk=pk))


def _team_form(request: HttpRequest, found: Group | None) -> HttpResponse:
    form = TeamForm(request.POST or None, team=found)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            saved = form.save()
        messages.success(request, f"Saved the team “{saved.name}”.")
        return redirect("jobs:teams")
    if found is not None:
        return render(request, "jobs/team.html", {"form": form, "team": found})
    budgets = dict(TeamBudget.objects.values_list("team_id", "monthly_budget"))
    all_teams = list(Group.objects.annotate(size=Count("user")).order_by("name"))
    for each in all_teams:
        each.monthly_budget = budgets.get(each.pk)
    return render(request, "jobs/teams.html", {"form": form, "teams": all_teams})


@staff_only
@require_http_methods(["GET"])
def prices(request: HttpRequest) -> HttpResponse:
    return render(request, "jobs/prices.html", {"prices": ModelPrice.objects.all()})


@staff_only
@require_http_methods(["GET", "POST"])
def price(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Add a model's prices, or change them."""
    found = get_object_or_404(ModelPrice, pk=pk) if pk else None
    form = PriceForm(request.POST or None, instance=found)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Saved the prices of {saved.model}.")
        return redirect("jobs:prices")
    return render(request, "jobs/price_form.html", {"form": form, "price": found})
