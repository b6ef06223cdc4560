"""The admins' pages for people, teams with their budgets, and model prices (the Django admin stays
for edge cases)."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Count, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.views.decorators.http import require_http_methods

from jobs import audit
from jobs.forms.people import PersonForm, PriceForm, TeamForm
from jobs.models import AuditEvent, ModelPrice, TeamBudget
from jobs.views.common import staff_only

User = get_user_model()


def _person_detail(person) -> str:
    role = "admin" if person.is_staff else "member"
    login = "can log in" if person.is_active else "cannot log in"
    teams = ", ".join(person.groups.order_by("name").values_list("name", flat=True))
    return f"{person.get_username()}: {role}, {login}, {'teams ' + teams if teams else 'no team'}"


@staff_only
@require_http_methods(["GET", "POST"])
def people(request: HttpRequest) -> HttpResponse:
    """Everyone with their teams and role; adding a person shows their password once, on this answer."""
    form = PersonForm(request.POST or None, editor=request.user)
    added = password = None
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            added = form.save()
            audit.record(request, AuditEvent.Action.PERSON_SAVE, detail=_person_detail(added))
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
            detail = _person_detail(found) + (", new password" if form.new_password else "")
            audit.record(request, AuditEvent.Action.PERSON_SAVE, detail=detail)
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
            members, budget = saved.user_set.count(), form.cleaned_data["monthly_budget"]
            limit = "no limit" if budget is None else f"${budget}/month"
            detail = f"{saved.name}: {members} member{pluralize(members)}, {limit}"
            audit.record(request, AuditEvent.Action.TEAM_SAVE, detail=detail)
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
        with transaction.atomic():
            saved = form.save()
            detail = (
                f"{saved.model}: ${saved.input_per_million.normalize()} in, "
                f"${saved.output_per_million.normalize()} out per million, checked {saved.as_of}"
            )
            audit.record(request, AuditEvent.Action.PRICE_SAVE, detail=detail)
        messages.success(request, f"Saved the prices of {saved.model}.")
        return redirect("jobs:prices")
    return render(request, "jobs/price_form.html", {"form": form, "price": found})
