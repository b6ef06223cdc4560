"""The pilot run: the first few rows sent at once through the synchronous API, to see real
answers before paying for every row. Costs a few requests at the normal price.
"""

import itertools
from dataclasses import dataclass

from jobs import datasets
from jobs.errors import explain
from jobs.formats import reconcile
from jobs.formats.requestfiles import RequestBuilder
from jobs.models import Dataset, Job
from jobs.money import pricing
from jobs.providers.client import AuthError, ProviderClient, ProviderError

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

    @property
    def answered(self) -> list[Trial]:
        return [t for t in self.trials if not t.error]

    @property
    def output_tokens_per_row(self) -> float | None:
        answered = self.answered
        return sum(t.output_tokens for t in answered) / len(answered) if answered else None


def run(job: Job, dataset: Dataset, builder: RequestBuilder) -> Pilot:
    """Send the first rows one by one with the job's settings and key; never raises for a provider error."""
    client = ProviderClient(job.credential)
    trials = []
    with datasets.rows(dataset) as rows:
        for row, cells in itertools.islice(rows, PILOT_ROWS):
            system, user = builder.texts(cells)
            trial = Trial(row=row, prompt=user)
            try:
                body = client.complete(job.endpoint, builder.body_from_texts(system, user))
            except AuthError:
                trial.error = "The provider refused the key. An admin has to replace it."
                trials.append(trial)
                break  # every other row would be refused too
            except ProviderError as exc:
                trial.error = f"{explain(exc.code or '', exc.message)[0]} ({exc.message})"
            else:
                trial.answer = reconcile.answer_of(job.endpoint, body)
                trial.input_tokens, trial.output_tokens = reconcile.usage_of(body)
            trials.append(trial)
    return Pilot(trials=trials, estimate=_estimate(job, dataset, trials))


def _estimate(job: Job, dataset: Dataset, trials: list[Trial]) -> pricing.Cost | None:
    answered = [t for t in trials if not t.error]
    if not answered or not dataset.row_count:
        return None
    per_row_in = sum(t.input_tokens for t in answered) / len(answered)
    per_row_out = sum(t.output_tokens for t in answered) / len(answered)
    price = pricing.prices().get(job.model)
    return pricing.cost(price, round(per_row_in * dataset.row_count), round(per_row_out * dataset.row_count))
