"""The plan a user sees before sending a prepared job: parts, token budget, order, cost, worst case.

The provider lets a key keep only so many prompt tokens waiting per model, and each
batch may take up to its 24-hour window. So the parts go in waves that fit the budget
(after the work of other jobs already waiting for the same key and model), and in the
worst case each wave takes the whole window.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Sum
from django.utils import timezone

from jobs.formats import reconcile
from jobs.models import Batch, Job, ModelPrice
from jobs.money import pricing

COMPLETION_WINDOW = timedelta(hours=24)
MAX_EXAMPLES = 10


@dataclass(frozen=True)
class Part:
    number: int
    rows: int
    tokens: int
    wave: int
    share: float  # percent of the provider's queue for this key and model


@dataclass
class Plan:
    parts: list[Part]
    limit: int
    ahead: int  # tokens of other jobs' batches at the provider or queued before this job
    cost: pricing.Cost | None
    output_bounded: bool
    expected_cost: pricing.Cost | None = None  # at the pilot run's answer length
    prices_as_of: date | None = None
    skipped_empty: int = 0
    too_long: int = 0
    too_long_examples: list[tuple[int, int]] = field(default_factory=list)  # (row, prompt tokens)

    @property
    def tokens(self) -> int:
        return sum(p.tokens for p in self.parts)

    @property
    def headroom(self) -> int:
        return max(self.limit - self.ahead, 0)

    @property
    def waves(self) -> int:
        return max((p.wave for p in self.parts), default=0)

    @property
    def worst_case_finish(self) -> datetime:
        return timezone.now() + self.waves * COMPLETION_WINDOW


def plan_for(job: Job) -> Plan:
    credential = job.credential
    limit = credential.token_limit(job.model)
    unfinished = [Batch.Status.QUEUED, Batch.Status.SUBMITTING, Batch.Status.RUNNING]
    ahead = (
        Batch.objects.filter(job__credential=credential, job__model=job.model, status__in=unfinished)
        .exclude(job=job)
        .filter(job__created_at__lt=job.created_at)
        .aggregate(tokens=Sum("input_tokens", default=0))["tokens"]
    )
    parts = []
    wave, used = 1, ahead
    for batch in job.batches.filter(status=Batch.Status.QUEUED).order_by("attempt", "index"):
        # As the scheduler does: a part goes when it fits, or when nothing else is waiting.
        if used and used + batch.input_tokens > limit:
            wave, used = wave + 1, 0
        used += batch.input_tokens
        share = 100 * batch.input_tokens / limit if limit else 100.0
        parts.append(Part(batch.index + 1, batch.request_count, batch.input_tokens, wave, share))
    plan = Plan(
        parts=parts,
        limit=limit,
        ahead=ahead,
        cost=estimate(job, sum(p.tokens for p in parts), sum(p.rows for p in parts)),
        output_bounded=job.endpoint == Job.Endpoint.EMBEDDINGS or bool(job.max_output_tokens),
        prices_as_of=ModelPrice.objects.filter(model=job.model).values_list("as_of", flat=True).first(),
        expected_cost=expected(job, sum(p.tokens for p in parts), sum(p.rows for p in parts)),
    )
    if job.skipped_file:
        with job.skipped_file.open("rb") as stream:
            for outcome in reconcile.read_outcomes(stream):
                if outcome.code == "too_long":
                    plan.too_long += 1
                    if len(plan.too_long_examples) < MAX_EXAMPLES:
                        plan.too_long_examples.append((outcome.row, outcome.input_tokens))
                else:
                    plan.skipped_empty += 1
    return plan


def expected(job: Job, input_tokens: int, rows: int) -> pricing.Cost | None:
    """Exact prompt tokens, and answers as long as the pilot run's were; None without a pilot."""
    if job.pilot_output_tokens is None or job.endpoint == Job.Endpoint.EMBEDDINGS:
        return None
    answers = round(job.pilot_output_tokens * rows)
    return pricing.cost(pricing.prices().get(job.model), input_tokens, answers)


def estimate(job: Job, input_tokens: int, rows: int) -> pricing.Cost | None:
    """Exact prompt tokens, and the answers at their maximum length when the job sets one."""
    output_bound = 0 if job.endpoint == Job.Endpoint.EMBEDDINGS else (job.max_output_tokens or 0) * rows
    return pricing.cost(pricing.prices().get(job.model), input_tokens, output_bound)
