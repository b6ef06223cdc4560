"""Money: what has been spent or committed this month, budgets, approval, and the spend report.

Spend is the Batch API price of the usage the provider reported (jobs.money.pricing). For a job
still under way, what it is committed to is the larger of its estimate and what it has
reported so far, so that two large jobs sent on the same day cannot both squeeze under a
budget. A job counts in the month it was sent.
"""

import contextlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from jobs.models import Job, ProviderCredential, TeamBudget
from jobs.money import pricing
from jobs.templatetags.money import dollars

ZERO = Decimal(0)


class BudgetRefused(Exception):
    """Sending the job would go over a budget; the message has the figures."""


def month_start(now: datetime | None = None) -> datetime:
    now = timezone.localtime(now or timezone.now())
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def committed(jobs: QuerySet, prices: dict) -> Decimal:
    """This month's spend of these jobs, counting unfinished ones at their estimate if larger."""
    total = ZERO
    for job in jobs.filter(started_at__gte=month_start()):
        actual = pricing.actual(job, prices)
        spent = actual.batch if actual else ZERO
        if job.status not in Job.FINISHED:
            spent = max(spent, job.estimated_cost or ZERO)
        total += spent
    return total


def check_budgets(job: Job) -> None:
    """Raise BudgetRefused when sending `job` would take its key or its team over their monthly budget."""
    limits = []
    credential = job.credential
    if credential.monthly_budget is not None:
        others = Job.objects.filter(credential=credential).exclude(pk=job.pk)
        limits.append((f"the key “{credential.name}”", credential.monthly_budget, others))
    budget = TeamBudget.objects.filter(team_id=job.team_id).first() if job.team_id else None
    if budget:
        others = Job.objects.filter(team_id=job.team_id).exclude(pk=job.pk)
        limits.append((f"the team “{budget.team.name}”", budget.monthly_budget, others))
    if not limits:
        return
    if job.estimated_cost is None:
        raise BudgetRefused(
            f"{job.model} has no price in the price table, so this job's cost cannot be checked "
            f"against the budget of {limits[0][0]}. An admin can add the price."
        )
    prices = pricing.prices()
    for who, limit, others in limits:
        used = committed(others, prices)
        left = max(limit - used, ZERO)
        if job.estimated_cost > left:
            raise BudgetRefused(
                f"This job is estimated at {dollars(job.estimated_cost)}, but {who} has "
                f"{dollars(left)} left of its {dollars(limit)} monthly budget ({dollars(used)} spent "
                "or committed this month). Send fewer rows, set a shorter maximum answer, or ask an admin."
            )


@contextlib.contextmanager
def within_budget(job: Job):
    """Check the budgets, and hold them locked until the caller has moved the job on, so that
    two jobs sent at the same moment cannot both fit in what is left. Raises BudgetRefused.
    """
    with transaction.atomic():
        list(ProviderCredential.objects.select_for_update().filter(pk=job.credential_id))
        list(TeamBudget.objects.select_for_update().filter(team_id=job.team_id))
        check_budgets(job)
        yield


def needs_approval(job: Job) -> bool:
    threshold = job.credential.approval_above
    if threshold is None:
        return False
    return job.estimated_cost is None or job.estimated_cost > threshold


@dataclass
class SpendLine:
    month: datetime
    key: str
    team: str
    user: str
    model: str
    jobs: int
    input_tokens: int
    output_tokens: int
    batch: Decimal
    synchronous: Decimal

    @property
    def saving(self) -> Decimal:
        return self.synchronous - self.batch


def report(since: datetime) -> list[SpendLine]:
    """Spend by month, key, team, user and model, from the usage reported since `since`."""
    rows = (
        Job.objects.filter(started_at__gte=since)
        .annotate(month=TruncMonth("started_at"))
        .values("month", "credential__name", "team__name", "owner__username", "model")
        .annotate(
            input_tokens=Sum("reported_input_tokens"),
            output_tokens=Sum("output_tokens"),
            jobs=Count("pk"),
        )
        .order_by("-month", "credential__name", "team__name", "owner__username", "model")
    )
    prices = pricing.prices()
    lines = []
    for row in rows:
        cost = pricing.cost(prices.get(row["model"]), row["input_tokens"], row["output_tokens"])
        lines.append(
            SpendLine(
                month=row["month"],
                key=row["credential__name"],
                team=row["team__name"] or "–",
                user=row["owner__username"],
                model=row["model"],
                jobs=row["jobs"],
                input_tokens=row["input_tokens"],
                output_tokens=row["output_tokens"],
                batch=cost.batch if cost else ZERO,
                synchronous=cost.synchronous if cost else ZERO,
            )
        )
    return lines


def totals(lines: list[SpendLine]) -> dict[str, Decimal]:
    summed: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for line in lines:
        summed["batch"] += line.batch
        summed["synchronous"] += line.synchronous
    summed["saving"] = summed["synchronous"] - summed["batch"]
    return dict(summed)
