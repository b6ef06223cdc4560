"""The pilot run: the first few rows sent at once through the synchronous API, to see real
answers before paying for every row. It costs a few requests at the normal price, so it is spend:
it passes the gate (key, budgets, approval) with its most possible cost reserved as a PilotRun
before any call, which is then settled at the usage the provider reported.
"""

import itertools
from dataclasses import dataclass
from decimal import Decimal

from jobs import datasets
from jobs.errors import explain
from jobs.formats import reconcile, tokens
from jobs.formats.requestfiles import RequestBuilder
from jobs.models import Dataset, Job, PilotRun
from jobs.money import gate, plans, pricing
from jobs.providers.client import AuthError, ProviderError, client_for

PILOT_ROWS = 5


@dataclass
class Trial:
    row: int
    prompt: str
    answer: str = ""
    error: str = ""
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class Pilot:
    trials: list[Trial]
    estimate: pricing.Cost | None  # the whole table at the pilot's average tokens per row
    cost: Decimal | None = None  # what these calls cost, at the synchronous price

    @property
    def answered(self) -> list[Trial]:
        return [t for t in self.trials if not t.error]

    @property
    def output_tokens_per_row(self) -> float | None:
        answered = self.answered
        return sum(t.output_tokens for t in answered) / len(answered) if answered else None


def run(job: Job, dataset: Dataset, builder: RequestBuilder, user) -> Pilot:
    """Send the first rows one by one with the job's settings and key, as `user`; never raises for a
    provider error. Raises gate.Refused, before any call, when the key or a budget does not allow it.
    """
    first = first_rows(dataset, builder, PILOT_ROWS)
    most = most_cost(job, first)
    reserved = most.synchronous if most else None
    with gate.spending(
        credential_id=job.credential_id, owner=user, model=job.model, cost=reserved
    ) as verdict:
        if verdict.needs_approval:
            raise gate.Refused(
                "Trying these rows costs more than a key's approval threshold allows; ask an admin."
            )
        spend = reserve(job, user, len(first), reserved)
    trials = try_rows(client_for(job.credential), job.endpoint, builder, first)
    return Pilot(trials=trials, estimate=estimate(job, dataset, trials), cost=settle(spend, trials))


def first_rows(dataset: Dataset, builder: RequestBuilder, count: int) -> list[tuple[int, tuple[str, str]]]:
    """The first `count` rows of the table, each as its number and its (system, user) texts."""
    with datasets.rows(dataset) as rows:
        return [(row, builder.texts(cells)) for row, cells in itertools.islice(rows, count)]


def most_cost(job: Job, first: list[tuple[int, tuple[str, str]]]) -> pricing.Cost | None:
    """The most these rows can cost with the job's model: exact prompts, every answer at its bound."""
    count = tokens.prompt_counter(job.model, job.endpoint)
    return pricing.cost(
        pricing.prices().get(job.model),
        sum(count(*texts) for _, texts in first),
        plans.answer_bound(job).tokens * len(first),
    )


def reserve(job: Job, user, rows: int, cost: Decimal | None) -> PilotRun:
    """The spend recorded at its most, inside the gate's block, before any call."""
    return PilotRun.objects.create(
        owner=user, credential_id=job.credential_id, model=job.model, rows=rows, cost=cost or 0
    )


def try_rows(client, endpoint: str, builder: RequestBuilder, first: list) -> list[Trial]:
    """Each row sent in turn; a row the provider refuses says why, and a refused key stops the rest."""
    trials = []
    # Should anything unforeseen stop the calls, the reservation stays at its most: the budgets then
    # count more than was spent, never less.
    for row, (system, user_text) in first:
        trial = Trial(row=row, prompt=user_text)
        try:
            body = client.complete(endpoint, builder.body_from_texts(system, user_text))
        except AuthError:
            trial.error = "The provider refused the key. An admin has to replace it."
            trials.append(trial)
            break  # every other row would be refused too
        except ProviderError as exc:
            trial.error = f"{explain(exc.code or '', exc.message)[0]} ({exc.message})"
        else:
            trial.answer = reconcile.answer_of(endpoint, body)
            trial.input_tokens, trial.output_tokens = reconcile.usage_of(body)
        trials.append(trial)
    return trials


def settle(spend: PilotRun, trials: list[Trial]) -> Decimal | None:
    """The spend brought down from its most to the usage the provider reported; what it cost."""
    used_in = sum(t.input_tokens for t in trials)
    used_out = sum(t.output_tokens for t in trials)
    actual = pricing.cost(pricing.prices().get(spend.model), used_in, used_out)
    PilotRun.objects.filter(pk=spend.pk).update(
        input_tokens=used_in, output_tokens=used_out, cost=actual.synchronous if actual else 0
    )
    return actual.synchronous if actual else None


def estimate(job: Job, dataset: Dataset, trials: list[Trial]) -> pricing.Cost | None:
    """The whole table with the job's model, at the trial's average prompt and answer tokens per row."""
    answered = [t for t in trials if not t.error]
    if not answered or not dataset.row_count:
        return None
    per_row_in = sum(t.input_tokens for t in answered) / len(answered)
    per_row_out = sum(t.output_tokens for t in answered) / len(answered)
    price = pricing.prices().get(job.model)
    return pricing.cost(price, round(per_row_in * dataset.row_count), round(per_row_out * dataset.row_count))
