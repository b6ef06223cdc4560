"""Comparing models on your own rows before paying: the same first rows sent to up to three models at
once, side by side, through the real SDK to the simulator; spend through the gate like the pilot."""

import json
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs import pipeline
from jobs.formats import schema
from jobs.formats.requestfiles import RequestBuilder
from jobs.models import AuditEvent, Job, ModelPrice, PilotRun
from jobs.money import pricing
from jobs.templatetags.money import dollars
from simulator import faults
from simulator.models import Fault
from tests.conftest import make_dataset
from tests.test_pilot import form_data

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"]
LABELS = ["positive", "negative", "neutral"]
LABELLED = {"field-0-name": "sentiment", "field-0-type": "label", "field-0-labels": ", ".join(LABELS)}


def priced(input_per_million="0.15", output_per_million="0.60"):
    for model in MODELS:
        ModelPrice.objects.update_or_create(
            model=model,
            defaults=dict(
                input_per_million=input_per_million,
                output_per_million=output_per_million,
                as_of=timezone.now().date(),
            ),
        )


def compare_data(credential, **fields):
    extra = {"second_model": MODELS[1], "third_model": MODELS[2], "compare_rows": "5"}
    return form_data(credential) | LABELLED | extra | fields


def simulator_labels(sdk, dataset, model: str) -> list[str]:
    """What the simulator answers `model` for each of the first rows, asked directly through the SDK."""
    job = Job(
        endpoint=Job.Endpoint.CHAT,
        model=model,
        user_prompt="Sentiment of: {{ Review Text }}",
        max_output_tokens=50,
        output_fields=schema.clean_fields([{"name": "sentiment", "type": "label", "labels": LABELS}]),
    )
    builder = RequestBuilder(pipeline.request_spec(job), dataset.columns)
    answers = [
        sdk.post("/chat/completions", body=builder.body(cells), cast_to=object)
        for cells in dataset.preview[:5]
    ]
    return [json.loads(a["choices"][0]["message"]["content"])["sentiment"] for a in answers]


def test_three_models_answer_the_same_rows_side_by_side_with_agreement_and_whole_table_costs(
    client, alice, simulator_credential, sdk
):
    priced()
    dataset = make_dataset(alice)
    dataset.row_count = 1000
    dataset.save()
    client.force_login(alice)

    response = client.post(reverse("jobs:compare", args=[dataset.code]), compare_data(simulator_credential))
    text = response.content.decode()

    assert text.count('data-testid="compare-row"') == 5
    # Each model's answer is read into the field's own column, for every row.
    labels = {model: simulator_labels(sdk, dataset, model) for model in MODELS}
    assert len({tuple(v) for v in labels.values()}) > 1, "the simulator gives every model the same labels"
    for model, given in labels.items():
        for row, label in enumerate(given, start=1):
            assert f'data-cell="{row}-{model}-sentiment">{label}<' in text
    # Each pair's agreement, on labels known from the simulator.
    for i, a in enumerate(MODELS):
        for b in MODELS[i + 1 :]:
            same = sum(x == y for x, y in zip(labels[a], labels[b], strict=True))
            assert f"{a} and {b} give the same sentiment on {same} of 5 rows" in text
    differ = sum(len({labels[m][row] for m in MODELS}) > 1 for row in range(5))
    assert text.count('data-disagree="yes"') == differ

    # A PilotRun per model, settled at its usage, an audit line each, and the whole table's cost through
    # the Batch API at the trial's tokens per row, as the pilot estimates it.
    runs = {run.model: run for run in PilotRun.objects.all()}
    assert sorted(runs) == sorted(MODELS)
    for model, run in runs.items():
        assert run.rows == 5 and run.owner == alice and run.output_tokens > 0 and run.cost > 0
        whole = pricing.cost(
            ModelPrice.objects.get(model=model),
            round(run.input_tokens / 5 * 1000),
            round(run.output_tokens / 5 * 1000),
        )
        assert f'data-testid="projected-{model}">{dollars(whole.batch)}<' in text
        event = AuditEvent.objects.get(
            action=AuditEvent.Action.PILOT, detail__startswith=f"5 rows of {model},"
        )
        assert event.cost == run.cost and event.credential == simulator_credential
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PILOT).count() == 3


def test_three_models_that_together_exceed_the_budget_are_refused_before_any_call(
    client, alice, simulator_credential
):
    # Each model's 5 rows cost at most about $1.05 (50 answer tokens at $4,000 a million): one fits in
    # $2.00, the three together do not.
    priced(input_per_million="1000", output_per_million="4000")
    simulator_credential.monthly_budget = Decimal("2.00")
    simulator_credential.save()
    armed = faults.arm("chat.completions", "http_error", status=500)
    dataset = make_dataset(alice)
    client.force_login(alice)

    text = client.post(reverse("jobs:compare", args=[dataset.code]), compare_data(simulator_credential))
    text = text.content.decode()

    assert "This is estimated at $3." in text and "has $2.00 left of its $2.00 monthly budget" in text
    assert not PilotRun.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PILOT).exists()
    assert Fault.objects.get(pk=armed.pk).remaining == 1  # the simulator was never called


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"compare_rows": "51"}, "Rows to try: At most 50 rows can be compared at once."),
        ({"compare_rows": "0"}, "Rows to try: Try at least 1 row."),
        ({"compare_rows": "many"}, "Rows to try: Enter a whole number."),
        (
            {"second_model": "text-embedding-3-small"},
            "Second model: text-embedding-3-small makes embeddings, not answers: choose the Embeddings",
        ),
        ({"third_model": "ChatGPT"}, "Third model: Choose a model from the list: “ChatGPT” is not one"),
        ({"second_model": "", "third_model": ""}, "Second model: Choose at least one model to compare"),
        ({"third_model": "gpt-4o-mini"}, "Third model: gpt-4o-mini is already in the comparison."),
    ],
)
def test_a_comparison_that_cannot_be_made_says_which_field_is_wrong_and_calls_nothing(
    client, alice, simulator_credential, fields, message
):
    priced()
    dataset = make_dataset(alice)
    client.force_login(alice)
    text = client.post(
        reverse("jobs:compare", args=[dataset.code]), compare_data(simulator_credential, **fields)
    )
    assert message in text.content.decode()
    assert not PilotRun.objects.exists()


def test_use_this_model_puts_it_in_the_jobs_form_and_asks_for_a_new_preview(
    client, alice, simulator_credential
):
    dataset = make_dataset(alice)
    client.force_login(alice)
    url = reverse("jobs:use_model", args=[dataset.code])

    response = client.post(url, form_data(simulator_credential) | {"use_model": "gpt-4o"})

    text = response.content.decode()
    assert '<option value="gpt-4o" selected>' in text and '<option value="gpt-4o-mini" selected>' not in text
    assert "model-chosen" in response.headers["HX-Trigger-After-Settle"]
    refused = client.post(url, form_data(simulator_credential) | {"use_model": "ChatGPT"}).content.decode()
    assert "Choose a model from the list: “ChatGPT” is not one this key offers." in refused


def test_a_refused_key_is_said_once_per_model_and_its_other_rows_are_not_sent(
    client, alice, simulator_credential
):
    priced()
    simulator_credential.set_api_key("sk-wrong")
    simulator_credential.save()
    dataset = make_dataset(alice)
    client.force_login(alice)
    text = client.post(reverse("jobs:compare", args=[dataset.code]), compare_data(simulator_credential))
    text = text.content.decode()
    assert text.count("The provider refused the key. An admin has to replace it.") == 3
    assert text.count("Not sent: the provider refused the key.") == 3 * 4
    assert all(run.cost == 0 for run in PilotRun.objects.all()) and PilotRun.objects.count() == 3
