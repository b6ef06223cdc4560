"""The estimate report: what the plan said when a job was sent, against what the provider reported.

Prompt tokens are counted with the provider's own recipe (jobs.formats.tokens), so on answered rows
they should match to the token; answers are expected from the trial run, or at their bound without
one, so they are checked rather than matched. The spend page shows the same per model.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q, Sum

from jobs.models import Job
from jobs.money import pricing

PROMPT, ANSWERS, COST = "prompt tokens", "answer tokens", "cost"

# What the answer tokens (and so the cost) were estimated as, in words for "…than ___".
EXPECTED = "expected"
BOUND = "the most allowed for"
MIXED = "planned"


@dataclass(frozen=True)
class Line:
    """One figure, as estimated and as reported."""

    what: str  # PROMPT, ANSWERS or COST
    estimated: int | Decimal | None
    reported: int | Decimal | None
    than: str = EXPECTED

    @property
    def is_money(self) -> bool:
        return self.what == COST

    @property
    def percent(self) -> float | None:
        """The reported figure's difference from the estimate, in percent of the estimate."""
        if self.estimated is None or self.reported is None or not self.estimated:
            return None
        return float((Decimal(self.reported) - Decimal(self.estimated)) * 100 / Decimal(self.estimated))

    @property
    def signed(self) -> str:
        """The difference as a signed percentage: "+8%", "−12%", "0%"; "–" when there is none to give."""
        percent = self.percent
        if percent is None:
            return "–"
        if self._size(percent) == "0":
            return "0%"
        return f"{'+' if percent > 0 else '−'}{self._size(percent)}%"

    @property
    def words(self) -> str:
        """The difference in words: "12% fewer answer tokens than expected", "3% more than expected"."""
        if self.estimated is None or self.reported is None:
            return "no price known" if self.is_money else "not known"
        if not self.estimated:
            return f"none {self.than}" if self.reported else f"none {self.than}, none reported"
        percent = self.percent
        noun = "" if self.is_money else f" {self.what}"
        if self.reported == self.estimated:
            return f"exactly as {'much' if self.is_money else 'many'}{noun} as {self.than}"
        size = self._size(percent)
        if size == "0":
            return f"within 0.1% of {self.than}"
        fewer = "less" if self.is_money else "fewer"
        return f"{size}% {'more' if percent > 0 else fewer}{noun} than {self.than}"

    @staticmethod
    def _size(percent: float) -> str:
        # Whole percents, but a small difference is not rounded away to "0%".
        size = abs(percent)
        return f"{size:.0f}" if size >= 1 else f"{size:.1f}".rstrip("0").rstrip(".")


@dataclass
class Report:
    lines: list[Line]
    basis: str  # how the answers were estimated, in words
    jobs: int = 1
    model: str = ""
    # Requests that came back without usage (failed, expired, not sent): in the estimate, not reported.
    unanswered: int = 0


def _than(bounded: int, jobs: int) -> str:
    """How `jobs` jobs estimated their answers, `bounded` of them at the bound (without a trial run)."""
    if not bounded:
        return EXPECTED
    return BOUND if bounded == jobs else MIXED


def _basis(than: str, jobs: int, embeddings: int) -> str:
    if embeddings == jobs:
        return "Embeddings have no answers."
    if than == BOUND:
        return (
            "Without a trial run, answers were estimated at the most allowed for "
            "(the longest answer a row may get)."
        )
    if than == MIXED:
        return "Answers were expected as long as in the trial runs, or at the most allowed for without one."
    return f"Answers were expected as long as in the trial run{'s' if jobs > 1 else ''}."


def for_job(job: Job, reported: pricing.Cost | None, unanswered: int = 0) -> Report | None:
    """A finished job's report, from what its plan kept at sending; None for a job without one."""
    if not job.is_finished or job.planned_prompt_tokens is None:
        return None
    than = BOUND if job.planned_answers_bounded else EXPECTED
    return Report(
        lines=[
            Line(PROMPT, job.planned_prompt_tokens, job.reported_input_tokens),
            Line(ANSWERS, job.planned_answer_tokens, job.output_tokens, than),
            Line(COST, job.planned_cost, reported.batch if reported else None, than),
        ],
        basis=_basis(than, 1, int(job.endpoint == Job.Endpoint.EMBEDDINGS)),
        model=job.model,
        unanswered=unanswered,
    )


def by_model(since: datetime) -> list[Report]:
    """The same over the finished jobs sent since `since`, per model (jobs without a kept plan left out)."""
    rows = (
        Job.objects.filter(started_at__gte=since, status__in=Job.FINISHED)
        .exclude(planned_prompt_tokens=None)
        .values("model")
        .annotate(
            jobs=Count("pk"),
            bounded=Count("pk", filter=Q(planned_answers_bounded=True)),
            unpriced=Count("pk", filter=Q(planned_cost__isnull=True)),
            embeddings=Count("pk", filter=Q(endpoint=Job.Endpoint.EMBEDDINGS)),
            planned_prompt=Sum("planned_prompt_tokens"),
            planned_answers=Sum("planned_answer_tokens"),
            planned_cost=Sum("planned_cost"),
            prompt=Sum("reported_input_tokens"),
            answers=Sum("output_tokens"),
            now_prompt=Sum("now_input_tokens", default=0),
            now_answers=Sum("now_output_tokens", default=0),
        )
        .order_by("model")
    )
    return list(_reports(rows, pricing.prices()))


def _reports(rows: Iterable[dict], prices: dict) -> Iterable[Report]:
    for row in rows:
        than = _than(row["bounded"], row["jobs"])
        reported = pricing.cost(prices.get(row["model"]), row["prompt"], row["answers"])
        # Rows Run now answered were billed at the normal price (as pricing.actual counts a job's).
        now = pricing.cost(prices.get(row["model"]), row["now_prompt"], row["now_answers"])
        if reported and now:
            reported = pricing.Cost(batch=reported.batch + now.saving, synchronous=reported.synchronous)
        # A job sent without a price has no estimated cost: the sum of the others would say too little.
        estimated_cost = None if row["unpriced"] else row["planned_cost"]
        yield Report(
            lines=[
                Line(PROMPT, row["planned_prompt"], row["prompt"]),
                Line(ANSWERS, row["planned_answers"], row["answers"], than),
                Line(COST, estimated_cost, reported.batch if reported else None, than),
            ],
            basis=_basis(than, row["jobs"], row["embeddings"]),
            jobs=row["jobs"],
            model=row["model"],
        )
