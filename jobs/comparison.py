"""Comparing models on the user's own rows before paying: the same first rows (5 by default, up to 50)
sent to up to three models at once through the synchronous API, with each row's answers side by side,
each model's cost and tokens, the whole table's cost through the Batch API per model (as the pilot
estimates it), and how often the models agree on labelled fields.

It is spend like the pilot, through the same steps: one reservation through the gate covers every
model's most possible cost before any call, kept as a PilotRun per model and settled to its usage after.
"""

import copy
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from jobs import pilot, pipeline
from jobs.formats import schema
from jobs.formats.agreement import Agreement, Rate, agreement
from jobs.formats.requestfiles import RequestBuilder
from jobs.models import Dataset, Job
from jobs.money import gate, pricing
from jobs.providers.client import client_for

MAX_MODELS = 3
MAX_ROWS = 50
DEFAULT_ROWS = 5


@dataclass
class ModelRun:
    model: str
    trials: list[pilot.Trial]
    cost: Decimal | None  # these calls, at the synchronous price
    estimate: pricing.Cost | None  # the whole table at these tokens per row
    with_majority: list[tuple[str, Rate]]  # (labelled field, how often it gave the majority's label)

    @property
    def answered(self) -> list[pilot.Trial]:
        return [t for t in self.trials if not t.error]

    def _average(self, attribute: str) -> float | None:
        answered = self.answered
        return sum(getattr(t, attribute) for t in answered) / len(answered) if answered else None

    @property
    def input_tokens_per_row(self) -> float | None:
        return self._average("input_tokens")

    @property
    def output_tokens_per_row(self) -> float | None:
        return self._average("output_tokens")


@dataclass
class Answer:
    model: str
    trial: pilot.Trial | None  # None: not sent (a refused key stopped that model's rows)
    values: list[tuple[str, str]]  # (structured field, its value), in the fields' order
    cost: Decimal | None  # this row, at the synchronous price


@dataclass
class Row:
    row: int
    prompt: str
    answers: list[Answer]
    disagree: bool


@dataclass
class Comparison:
    runs: list[ModelRun]
    rows: list[Row]
    fields: list[str]  # the structured fields' names, a column each
    labelled: dict[str, Agreement]  # the labelled fields' agreement

    @property
    def columns_per_model(self) -> int:
        """A column per structured field (or one for the answer), and one for tokens and cost."""
        return max(len(self.fields), 1) + 1


def run(job: Job, dataset: Dataset, user, models: list[str], rows: int) -> Comparison:
    """Send the first `rows` rows to each of `models` (the job's own first) with the job's settings and
    key, as `user`; never raises for a provider error. Raises gate.Refused, before any call, when the key
    or a budget does not allow all of it.
    """
    jobs = [_with_model(job, model) for model in models]
    builders = [RequestBuilder(pipeline.request_spec(j), dataset.columns) for j in jobs]
    # The texts depend on the prompts only, not on the model: one reading of the table serves all.
    first = pilot.first_rows(dataset, builders[0], rows)
    most = [pilot.most_cost(j, first) for j in jobs]
    unpriced = [j.model for j, cost in zip(jobs, most, strict=True) if cost is None]
    reserved = None if unpriced else sum(cost.synchronous for cost in most)
    with gate.spending(
        credential_id=job.credential_id,
        owner=user,
        model=unpriced[0] if unpriced else " and ".join(models),
        cost=reserved,
    ) as verdict:
        if verdict.needs_approval:
            raise gate.Refused(
                "Comparing these models on these rows costs more than a key's approval threshold allows: "
                "compare fewer rows or models, or ask an admin."
            )
        spends = [
            pilot.reserve(j, user, len(first), cost.synchronous if cost else None)
            for j, cost in zip(jobs, most, strict=True)
        ]
    client = client_for(job.credential)
    # A model at a time would keep people waiting three times as long: the models go side by side, each
    # its rows in turn as the pilot sends them, so no model gets more than the pilot's one call at a time.
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        tried = list(pool.map(lambda builder: pilot.try_rows(client, job.endpoint, builder, first), builders))
    costs = [pilot.settle(spend, trials) for spend, trials in zip(spends, tried, strict=True)]
    return _side_by_side(job, dataset, jobs, first, tried, costs)


def _with_model(job: Job, model: str) -> Job:
    other = copy.copy(job)
    other.model = model
    return other


def _side_by_side(job, dataset, jobs, first, tried, costs) -> Comparison:
    fields = [f["name"] for f in job.output_fields or []]
    prices = pricing.prices()
    by_row = [{t.row: t for t in trials} for trials in tried]
    rows = []
    for row, (_, user_text) in first:
        answers = []
        for j, trials in zip(jobs, by_row, strict=True):
            trial = trials.get(row)
            answered = trial is not None and not trial.error
            values = schema.values(trial.answer, fields) if answered and fields else [""] * len(fields)
            cost = (
                pricing.cost(prices.get(j.model), trial.input_tokens, trial.output_tokens) if trial else None
            )
            answers.append(
                Answer(
                    j.model, trial, list(zip(fields, values, strict=True)), cost.synchronous if cost else None
                )
            )
        rows.append(Row(row, user_text, answers, disagree=False))
    labelled = {}
    for index, field in enumerate(job.output_fields or []):
        if field["type"] == "label":
            given = {
                j.model: [r.answers[n].values[index][1] or None for r in rows] for n, j in enumerate(jobs)
            }
            labelled[field["name"]] = agreement(given)
    for figures in labelled.values():
        for index in figures.disagreements:
            rows[index].disagree = True
    runs = [
        ModelRun(
            model=j.model,
            trials=trials,
            cost=cost,
            estimate=pilot.estimate(j, dataset, trials),
            with_majority=[(name, figures.with_majority[j.model]) for name, figures in labelled.items()],
        )
        for j, trials, cost in zip(jobs, tried, costs, strict=True)
    ]
    return Comparison(runs=runs, rows=rows, fields=fields, labelled=labelled)
