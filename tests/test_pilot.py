"""The pilot run sends the first rows through the synchronous API, for real answers before paying for all."""

import html

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs.formats import tokens
from jobs.models import ModelPrice
from simulator.models import SimBatch
from tests.conftest import make_dataset

pytestmark = pytest.mark.django_db(transaction=True)


def form_data(credential, **fields):
    return {
        "name": "Reviews",
        "credential": credential.pk,
        "endpoint": "/v1/chat/completions",
        "model": "gpt-4o-mini",
        "user_prompt": "Sentiment of: {{ Review Text }}",
        "max_output_tokens": "50",
    } | fields


def test_the_first_rows_come_back_with_real_answers_and_an_estimate(client, alice, simulator_credential):
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million="0.15", output_per_million="0.60", as_of=timezone.now().date()),
    )
    dataset = make_dataset(alice)
    dataset.row_count = 5
    dataset.save()
    client.force_login(alice)
    response = client.post(reverse("jobs:pilot", args=[dataset.code]), form_data(simulator_credential))
    text = response.content.decode()
    assert text.count('data-testid="pilot-trial"') == 5
    assert "Row 1: Sentiment of: Great shoes, very comfy" in text
    assert "answer tokens" in text
    assert "all 5 rows would cost about" in text
    assert not SimBatch.objects.exists()  # the synchronous API, not a batch


def test_a_row_the_model_refuses_shows_why_and_the_others_still_answer(client, alice, simulator_credential):
    dataset = make_dataset(alice, b"Review Text\nfine\n[[simulate:context_length_exceeded]] long\n")
    client.force_login(alice)
    text = client.post(reverse("jobs:pilot", args=[dataset.code]), form_data(simulator_credential)).content
    text = text.decode()
    assert "The text is longer than the model accepts" in text
    assert text.count('data-testid="pilot-trial"') == 2


def test_an_unfinished_form_is_pointed_out_instead(client, alice, simulator_credential):
    dataset = make_dataset(alice)
    client.force_login(alice)
    data = form_data(simulator_credential, user_prompt="About {{ Nope }}")
    text = client.post(reverse("jobs:pilot", args=[dataset.code]), data).content.decode()
    assert "Fix these first" in text and "No column is called" in text


def test_a_refused_key_is_said_once(client, alice, simulator_credential):
    simulator_credential.set_api_key("sk-wrong")
    simulator_credential.save()
    dataset = make_dataset(alice)
    client.force_login(alice)
    text = client.post(reverse("jobs:pilot", args=[dataset.code]), form_data(simulator_credential)).content
    assert text.decode().count("The provider refused the key") == 1


def test_the_live_preview_shows_the_exact_request_its_tokens_and_cost(client, alice, simulator_credential):
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million="0.15", output_per_million="0.60", as_of=timezone.now().date()),
    )
    dataset = make_dataset(alice)
    client.force_login(alice)
    data = form_data(simulator_credential, temperature="0.2", max_output_tokens="20")
    text = html.unescape(client.post(reverse("jobs:preview", args=[dataset.code]), data).content.decode())
    assert '"temperature": 0.2' in text and '"max_completion_tokens": 20' in text
    assert "Sentiment of: Great shoes, very comfy" in text
    count = tokens.prompt_counter("gpt-4o-mini", "/v1/chat/completions")
    expected = count("", "Sentiment of: Great shoes, very comfy")
    assert f"Row 1 · {expected} prompt tokens · less than $0.0001" in text
    unknown = client.post(reverse("jobs:preview", args=[dataset.code]), data | {"user_prompt": "{{ Nope }}"})
    assert "No column is called {{ Nope }}." in unknown.content.decode()


def test_the_pilots_answer_length_gives_the_plan_an_expected_cost(client, alice, simulator_credential):
    import re

    from jobs import pipeline
    from jobs.models import Job

    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million="1000", output_per_million="4000", as_of=timezone.now().date()),
    )
    dataset = make_dataset(alice)
    client.force_login(alice)
    pilot = client.post(reverse("jobs:pilot", args=[dataset.code]), form_data(simulator_credential)).content
    average = re.search(rb'name="pilot_output_tokens" value="([0-9.]+)"', pilot).group(1).decode()
    assert float(average) > 0

    data = form_data(simulator_credential) | {"pilot_output_tokens": average}
    client.post(reverse("jobs:new_job", args=[dataset.code]), data)
    job = Job.objects.get()
    assert job.pilot_output_tokens == pytest.approx(float(average))
    pipeline.prepare_job(job.pk)
    page = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    assert "With answers as long as in your trial of the first rows, expect about" in page
