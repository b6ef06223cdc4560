"""The plan a user sees before sending a prepared job: parts, token budget, order, cost, worst case.

The provider lets a key keep only so many prompt tokens waiting per model, and each
batch may take up to its 24-hour window. So the parts go in waves that fit the budget
(after the work of other jobs already waiting for the same key and model), and in the
worst case each wave takes the whole window.
"""

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import F, Sum
from django.utils import timezone

from jobs import rawfiles
from jobs.formats import reconcile, tokens
from jobs.formats.requestreads import line_prompt_tokens, line_row
from jobs.models import Batch, Job, ModelPrice
from jobs.money import gate, pricing

COMPLETION_WINDOW = timedelta(hours=24)
MAX_EXAMPLES = 10
# Without a longest answer set by the job or known for the model, a row's answer is bounded by a
# few times the trial run's, capped here; with no trial either, by this.
DEFAULT_ANSWER_BOUND = 4_096
PILOT_MARGIN = 4
# Run now sends one request after another: a typical answer's time, when no rate limit is slower.
SECONDS_PER_REQUEST = 2.0


@dataclass(frozen=True)
class AnswerBound:
    tokens: int  # per row
    source: str  # which bound, in words for the plan


def answer_bound(job: Job) -> AnswerBound:
    """The longest answer a row can cost: an empty "Longest answer" is never free."""
    if job.endpoint == Job.Endpoint.EMBEDDINGS:
        return AnswerBound(0, "embeddings have no answer")
    if job.max_output_tokens:
        tokens = job.max_output_tokens
        return AnswerBound(tokens, f"the longest answer you set, {tokens:,} tokens")
    model_max = ModelPrice.objects.filter(model=job.model).values_list("max_output_tokens", flat=True).first()
    if model_max:
        return AnswerBound(model_max, f"the longest answer {job.model} can give, {model_max:,} tokens")
    if job.pilot_output_tokens:
        tokens = min(DEFAULT_ANSWER_BOUND, max(1, round(job.pilot_output_tokens * PILOT_MARGIN)))
        return AnswerBound(tokens, f"{PILOT_MARGIN} times your trial run's answers, {tokens:,} tokens")
    return AnswerBound(
        DEFAULT_ANSWER_BOUND,
        f"{DEFAULT_ANSWER_BOUND:,} tokens, as no longest answer is known for {job.model}",
    )


@dataclass(frozen=True)
class Part:
    number: int
    rows: int
    tokens: int
    wave: int
    share: float  # percent of the provider's queue for this key and model


@dataclass(frozen=True)
class FirstRows:
    """The first rows of a plan that fit what a budget has left, at the most they can cost."""

    rows: int
    tokens: int  # their prompt tokens, counted exactly
    cost: Decimal
    rest: int = 0  # the rows after them, held back


@dataclass(frozen=True)
class RunNow:
    """Run now, offered beside Send for a small table: the normal price, answers within minutes."""

    cost: pricing.Cost | None
    minutes: float  # at most, at the key's rate limits
    outlook: gate.Outlook

    @property
    def minutes_text(self) -> str:
        return "about a minute" if self.minutes <= 1.5 else f"about {round(self.minutes)} minutes"


def run_now_offer(job: Job) -> RunNow | None:
    """Run now when the job's one waiting part would be answered within RUN_NOW_MAX_MINUTES: one request
    after another, at the key's requests and tokens per minute (each answer counted at its longest);
    None otherwise.
    """
    parts = list(
        job.batches.filter(status=Batch.Status.QUEUED).values_list("request_count", "input_tokens")[:2]
    )
    if len(parts) != 1 or not parts[0][0] or not rawfiles.local_paths():
        return None
    rows, tokens = parts[0]
    credential = job.credential
    minutes = rows * SECONDS_PER_REQUEST / 60
    if credential.requests_per_minute:
        minutes = max(minutes, rows / credential.requests_per_minute)
    if credential.tokens_per_minute:
        minutes = max(minutes, (tokens + answer_bound(job).tokens * rows) / credential.tokens_per_minute)
    if minutes > settings.RUN_NOW_MAX_MINUTES:
        return None
    cost = estimate(job, tokens, rows)
    return RunNow(cost, minutes, gate.outlook_at(job, cost.synchronous if cost else None))


@dataclass
class Plan:
    parts: list[Part]
    limit: int
    ahead: int  # tokens of other jobs' batches at the provider or queued before this job
    cost: pricing.Cost | None
    answer_bound: AnswerBound
    charged_to: str = ""
    outlook: gate.Outlook | None = None  # what Send would do now
    first_rows: FirstRows | None = None  # when a budget is short: the most rows it can pay for
    expected_cost: pricing.Cost | None = None  # at the pilot run's answer length
    prices_as_of: date | None = None
    skipped_empty: int = 0
    too_long: int = 0
    too_long_examples: list[tuple[int, int]] = field(default_factory=list)  # (row, prompt tokens)
    run_now: RunNow | None = None

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
        answer_bound=answer_bound(job),
        charged_to=gate.charged_to(job),
        outlook=gate.outlook(job),
        prices_as_of=ModelPrice.objects.filter(model=job.model).values_list("as_of", flat=True).first(),
        expected_cost=expected(job, sum(p.tokens for p in parts), sum(p.rows for p in parts)),
        run_now=run_now_offer(job),
    )
    if plan.outlook.room is not None:
        plan.first_rows = first_rows(job, plan.outlook.room)
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


def kept_when_sent(job: Job, input_tokens: int, rows: int, *, synchronous: bool = False) -> dict:
    """The job's fields that keep what the plan says of these rows, for the estimate report: the answers
    expected from the trial run, or every answer at its bound without one (embeddings have none); at
    the Batch API's price, or the normal one for Run now."""
    if job.endpoint == Job.Endpoint.EMBEDDINGS or job.pilot_output_tokens is not None:
        answers, bounded = round((job.pilot_output_tokens or 0) * rows), False
    else:
        answers, bounded = answer_bound(job).tokens * rows, True
    cost = pricing.cost(pricing.prices().get(job.model), input_tokens, answers)
    return {
        "planned_prompt_tokens": input_tokens,
        "planned_answer_tokens": answers,
        "planned_answers_bounded": bounded,
        "planned_cost": (cost.synchronous if synchronous else cost.batch) if cost else None,
    }


def added_when_resent(job: Job, input_tokens: int, rows: int) -> dict:
    """As kept_when_sent, added to what the earlier sends kept (which stays unknown if it was)."""
    fields = kept_when_sent(job, input_tokens, rows)
    cost = fields["planned_cost"]
    return {
        "planned_prompt_tokens": F("planned_prompt_tokens") + fields["planned_prompt_tokens"],
        "planned_answer_tokens": F("planned_answer_tokens") + fields["planned_answer_tokens"],
        "planned_answers_bounded": job.planned_answers_bounded or fields["planned_answers_bounded"],
        "planned_cost": None if cost is None else F("planned_cost") + cost,
    }


def estimate(job: Job, input_tokens: int, rows: int) -> pricing.Cost | None:
    """The most the rows can cost: exact prompt tokens, and every answer at its bound (answer_bound)."""
    return pricing.cost(pricing.prices().get(job.model), input_tokens, answer_bound(job).tokens * rows)


def request_lines(batch: Batch, job: Job) -> Iterator[tuple[int, bytes, int]]:
    """(row, request line, prompt tokens) of a part's request file, in row order."""
    count = tokens.prompt_counter(job.model, job.endpoint)
    with rawfiles.lines(batch.input_file) as stream:
        for line in stream:
            row = line_row(line)
            if row is not None:
                yield row, line if line.endswith(b"\n") else line + b"\n", line_prompt_tokens(line, count)


def first_rows(job: Job, room: Decimal) -> FirstRows | None:
    """The most rows, from the first in row order, whose most-possible cost (what the gate reserves:
    exact prompt tokens, every answer at its bound) fits in `room`. Whole parts are added from their
    counts; only the part where the room runs out is read, a row at a time. None when not even the
    first row fits, or every row does.
    """
    price = pricing.prices().get(job.model)
    bound = answer_bound(job).tokens
    best = None
    rows = prompt = 0

    def fits(more_rows: int, more_tokens: int) -> Decimal | None:
        cost = pricing.cost(price, prompt + more_tokens, bound * (rows + more_rows))
        return cost.batch if cost is not None and cost.batch <= room else None

    for batch in job.batches.filter(status=Batch.Status.QUEUED, attempt=1).order_by("index"):
        whole = fits(batch.request_count, batch.input_tokens)
        if whole is not None:
            rows, prompt = rows + batch.request_count, prompt + batch.input_tokens
            best = FirstRows(rows, prompt, whole)
            continue
        for _, _, line_tokens in request_lines(batch, job):
            cost = fits(1, line_tokens)
            if cost is None:
                break
            rows, prompt = rows + 1, prompt + line_tokens
            best = FirstRows(rows, prompt, cost)
        break
    if best is None or best.rows >= job.rows_total:
        return None
    return dataclasses.replace(best, rest=job.rows_total - best.rows)
