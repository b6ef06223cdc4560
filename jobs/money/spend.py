"""The spend report: what was spent by month, key, team, user and model, with the saving.

Spend is the Batch API price of the usage the provider reported (jobs.money.pricing), plus pilot
runs at the synchronous price. A job counts in the month it was sent, and for the teams its owner
belongs to, as budgets charge it (jobs.money.gate).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Count, Sum
from django.db.models.functions import TruncMonth

from jobs.models import Job, PilotRun
from jobs.money import pricing

ZERO = Decimal(0)


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
    # What the rows answered from earlier answers would have cost through the Batch API.
    reused: Decimal = ZERO

    @property
    def saving(self) -> Decimal:
        return self.synchronous - self.batch


def _teams_of_owners() -> dict[int, str]:
    """Each person's teams, named as the report shows them."""
    names: dict[int, list[str]] = defaultdict(list)
    memberships = get_user_model().groups.through.objects.order_by("group__name")
    for user_id, team in memberships.values_list("user_id", "group__name"):
        names[user_id].append(team)
    return {user_id: ", ".join(teams) for user_id, teams in names.items()}


def report(since: datetime) -> list[SpendLine]:
    """Spend by month, key, team, user and model: jobs from the usage reported since `since`, and pilot
    runs (each counted as spend of its own, at the synchronous price).
    """
    jobs = (
        Job.objects.filter(started_at__gte=since)
        .annotate(month=TruncMonth("started_at"))
        .values("month", "credential__name", "owner_id", "owner__username", "model")
        .annotate(
            input_tokens=Sum("reported_input_tokens"),
            output_tokens=Sum("output_tokens"),
            jobs=Count("pk"),
            reused=Sum("reuse_saving"),
        )
    )
    pilots = (
        PilotRun.objects.filter(at__gte=since)
        .annotate(month=TruncMonth("at"))
        .values("month", "credential__name", "owner_id", "owner__username", "model")
        .annotate(input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"), cost=Sum("cost"))
    )
    prices = pricing.prices()
    teams = _teams_of_owners()

    def line(row, jobs: int, batch: Decimal, synchronous: Decimal, kind: str = "") -> SpendLine:
        return SpendLine(
            month=row["month"],
            key=row["credential__name"] or "(deleted key)",
            team=teams.get(row["owner_id"], "–"),
            user=row["owner__username"],
            model=row["model"] + kind,
            jobs=jobs,
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            batch=batch,
            synchronous=synchronous,
            reused=row.get("reused") or ZERO,
        )

    lines = []
    for row in jobs:
        cost = pricing.cost(prices.get(row["model"]), row["input_tokens"], row["output_tokens"])
        lines.append(line(row, row["jobs"], cost.batch if cost else ZERO, cost.synchronous if cost else ZERO))
    # A pilot run is billed at the synchronous price: it saves nothing.
    lines += [line(row, 0, row["cost"], row["cost"], " (pilot runs)") for row in pilots]
    lines.sort(key=lambda x: (-x.month.timestamp(), x.key, x.team, x.user, x.model))
    return lines


def totals(lines: list[SpendLine]) -> dict[str, Decimal]:
    summed: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for line in lines:
        summed["batch"] += line.batch
        summed["synchronous"] += line.synchronous
        summed["reused"] += line.reused
    summed["saving"] = summed["synchronous"] - summed["batch"]
    return dict(summed)
