"""The one gate that everything which spends money passes: sending a job, approving it, resending rows,
and the pilot run.

At the moment of spending (not when a form was drawn) it checks that the key is still enabled, not
refused by the provider, and usable by the job's owner; that the cost fits what is left of the key's
monthly budget and of the budget of every team the owner belongs to (a job is charged to its owner's
teams whatever it is shared with: a person in two teams with budgets spends from both, so neither can
be walked around); and whether an admin must approve it first. The budget rows stay locked until the
caller has moved the job on, so two sends cannot both fit in the last of a budget.
"""

import contextlib
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from jobs import access
from jobs.models import Job, PilotRun, ProviderCredential, TeamBudget
from jobs.money import pricing
from jobs.templatetags.money import dollars

ZERO = Decimal(0)


class Refused(Exception):
    """Spending is not allowed now; the message says why, with the figures, in words for the user."""


@dataclass(frozen=True)
class Verdict:
    needs_approval: bool


def month_start(now=None):
    now = timezone.localtime(now or timezone.now())
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def teams_charged(owner) -> list[TeamBudget]:
    """The team budgets a person's spending counts against: every team they belong to that has one."""
    return list(TeamBudget.objects.filter(team__user=owner).select_related("team").order_by("team__name"))


def committed(jobs: QuerySet, pilots: QuerySet, prices: dict) -> Decimal:
    """This month's spend: jobs (unfinished ones at their estimate if larger) and pilot runs."""
    total = ZERO
    for job in jobs.filter(started_at__gte=month_start()):
        actual = pricing.actual(job, prices)
        spent = actual.batch if actual else ZERO
        if job.status not in Job.FINISHED:
            spent = max(spent, job.estimated_cost or ZERO)
        total += spent
    for cost in pilots.filter(at__gte=month_start()).values_list("cost", flat=True):
        total += cost
    return total


def check_key(credential_id: int, owner) -> ProviderCredential:
    """The key as it is now, if the owner may still spend with it; raises Refused otherwise."""
    credential = ProviderCredential.objects.get(pk=credential_id)
    if not credential.is_active:
        raise Refused(
            f"The key “{credential.name}” has been disabled by an admin; nothing can be sent with it."
        )
    if credential.refused_at:
        raise Refused(f"The provider refused the key “{credential.name}”; an admin has to replace it.")
    if credential.last_test_ok is False and not owner.is_staff:
        raise Refused(
            f"The key “{credential.name}” failed an admin's last test of it; nothing is sent with it "
            "until a test passes: ask an admin."
        )
    if not access.usable_credentials(owner).filter(pk=credential.pk).exists():
        raise Refused(
            f"The key “{credential.name}” is no longer open to {owner.get_username()}: ask an admin."
        )
    return credential


def _lock(credential_id: int, budgets: list[TeamBudget]) -> None:
    # A write, not a SELECT … FOR UPDATE: it takes the row lock on PostgreSQL and the database's write
    # lock on SQLite (where FOR UPDATE does nothing), so a second send waits and then sees the first.
    ProviderCredential.objects.filter(pk=credential_id).update(monthly_budget=F("monthly_budget"))
    TeamBudget.objects.filter(pk__in=[b.pk for b in budgets]).update(monthly_budget=F("monthly_budget"))


@dataclass(frozen=True)
class Budget:
    who: str  # "the key “Main”", "the team “Research”"
    limit: Decimal
    used: Decimal  # spent or committed this month, without the job in question

    @property
    def left(self) -> Decimal:
        return max(self.limit - self.used, ZERO)


def budgets(credential: ProviderCredential, owner, job: Job | None = None) -> list[Budget]:
    """The budgets a spend with this key by this person is checked against, with what is left."""
    other_jobs = Job.objects.exclude(pk=job.pk) if job else Job.objects.all()
    limits = []
    if credential.monthly_budget is not None:
        limits.append(
            (
                f"the key “{credential.name}”",
                credential.monthly_budget,
                other_jobs.filter(credential=credential),
                PilotRun.objects.filter(credential=credential),
            )
        )
    for budget in teams_charged(owner):
        members = Q(owner__groups=budget.team)
        limits.append(
            (
                f"the team “{budget.team.name}”",
                budget.monthly_budget,
                other_jobs.filter(members).distinct(),
                PilotRun.objects.filter(members).distinct(),
            )
        )
    prices = pricing.prices()
    return [Budget(who, limit, committed(jobs, pilots, prices)) for who, limit, jobs, pilots in limits]


def _check_budgets(
    credential: ProviderCredential, owner, model: str, cost: Decimal | None, job: Job | None
) -> None:
    limits = budgets(credential, owner, job)
    if not limits:
        return
    if cost is None:
        raise Refused(
            f"{model} has no price in the price table, so the cost cannot be checked against the "
            f"budget of {limits[0].who}. An admin can add the price."
        )
    for budget in limits:
        if cost > budget.left:
            raise Refused(
                f"This is estimated at {dollars(cost)}, but {budget.who} has {dollars(budget.left)} left of "
                f"its {dollars(budget.limit)} monthly budget ({dollars(budget.used)} spent or committed "
                "this month). Send fewer rows, set a shorter longest answer, or ask an admin."
            )


@dataclass(frozen=True)
class Outlook:
    """What Send would do now, for the plan: go, wait for an admin, or be refused (and why)."""

    refusal: str
    needs_approval: bool
    budgets: list[Budget]
    # When a budget is what refuses: the most that can be spent now (the least left of the budgets).
    room: Decimal | None = None


def outlook(job: Job) -> Outlook:
    """The gate's answer for a planned job, without locking or changing anything."""
    return outlook_at(job, job.estimated_cost)


def outlook_at(job: Job, cost: Decimal | None) -> Outlook:
    """The gate's answer for spending `cost` on a planned job (Run now: its normal price)."""
    try:
        credential = check_key(job.credential_id, job.owner)
    except Refused as exc:
        credential = ProviderCredential.objects.get(pk=job.credential_id)
        return Outlook(str(exc), False, budgets(credential, job.owner, job))
    try:
        _check_budgets(credential, job.owner, job.model, cost, job)
    except Refused as exc:
        limits = budgets(credential, job.owner, job)
        room = min(b.left for b in limits) if cost is not None else None
        return Outlook(str(exc), False, limits, room)
    threshold = credential.approval_above
    approval = threshold is not None and (cost is None or cost > threshold)
    return Outlook("", approval, budgets(credential, job.owner, job))


@contextlib.contextmanager
def spending(
    *,
    credential_id: int,
    owner,
    model: str,
    cost: Decimal | None,
    job: Job | None = None,
    commitment: Decimal | None = None,
):
    """Check the key and the budgets for spending `cost`, and hold the budgets locked while the caller
    records the spend. For a job, `commitment` is all it will have cost with this spend (a resend adds
    to what the job spent before; the default is `cost`). Yields a Verdict (whether an admin must
    approve `cost` first). Raises Refused.
    """
    with transaction.atomic():
        _lock(credential_id, teams_charged(owner))
        credential = check_key(credential_id, owner)
        _check_budgets(credential, owner, model, cost if commitment is None else commitment, job)
        threshold = credential.approval_above
        yield Verdict(needs_approval=threshold is not None and (cost is None or cost > threshold))


def charged_to(job: Job) -> str:
    """Who pays, in words for the plan: the key, and the owner's teams with a budget."""
    teams = [b.team.name for b in teams_charged(job.owner)]
    where = f"the key “{job.credential.name}”"
    if teams:
        where += " and the budget of " + ", ".join(f"“{t}”" for t in teams)
    return where
