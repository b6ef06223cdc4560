"""The model is chosen from what the key offers, never typed: a name no provider serves, or a model for
the wrong endpoint, is refused on the form and by the pilot, before any plan or spend."""

import pytest
from django.urls import reverse

from jobs.models import Job
from tests.conftest import make_dataset
from tests.test_pilot import form_data

pytestmark = pytest.mark.django_db


def test_the_form_offers_the_keys_models_grouped_by_endpoint_with_a_default(
    client, alice, simulator_credential
):
    dataset = make_dataset(alice)
    client.force_login(alice)
    page = client.get(reverse("jobs:new_job", args=[dataset.code])).content.decode()
    assert '<select name="model"' in page
    assert (
        '<optgroup label="Chat completions and responses">' in page
        and '<optgroup label="Embeddings">' in page
    )
    assert '<option value="gpt-4o-mini" selected>' in page
    assert '<option value="o4-mini">' in page  # listed by the simulator's /v1/models, not in the price table
    assert '<option value="text-embedding-3-small">' in page


@pytest.mark.parametrize("view", ["jobs:new_job", "jobs:pilot"])
def test_a_model_no_provider_serves_is_refused_before_anything_is_sent(
    client, alice, simulator_credential, view
):
    dataset = make_dataset(alice)
    client.force_login(alice)
    text = client.post(reverse(view, args=[dataset.code]), form_data(simulator_credential, model="ChatGPT"))
    assert "Choose a model from the list: “ChatGPT” is not one this key offers." in text.content.decode()
    assert not Job.objects.exists()


@pytest.mark.parametrize("view", ["jobs:new_job", "jobs:pilot"])
def test_a_chat_model_on_the_embeddings_endpoint_is_refused_with_what_to_do(
    client, alice, simulator_credential, view
):
    dataset = make_dataset(alice)
    client.force_login(alice)
    data = form_data(
        simulator_credential, endpoint="/v1/embeddings", model="gpt-4o-mini", max_output_tokens=""
    )
    text = client.post(reverse(view, args=[dataset.code]), data).content.decode()
    assert "gpt-4o-mini answers in words, not embeddings: choose an embeddings model." in text
    assert not Job.objects.exists()
