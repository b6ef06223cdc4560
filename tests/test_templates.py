"""Saved templates: name a prompt and its settings, reuse it on another table; jobs keep their copy."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from jobs.models import Job, PromptTemplate
from tests.conftest import make_dataset

pytestmark = pytest.mark.django_db


def post_data(credential, **fields):
    return {
        "name": "Reviews",
        "credential": credential.pk,
        "endpoint": "/v1/chat/completions",
        "model": "gpt-4o-mini",
        "system_prompt": "Answer in one word.",
        "user_prompt": "Sentiment of: {{ Review Text }}",
        "temperature": "0.3",
        "max_output_tokens": "5",
    } | fields


def test_a_template_is_saved_and_fills_the_form_for_another_table(client, alice, simulator_credential):
    first = make_dataset(alice)
    client.force_login(alice)
    saved = client.post(
        reverse("jobs:save_template", args=[first.code]),
        post_data(simulator_credential, template_name="Sentiment"),
    )
    assert "Saved “Sentiment”" in saved.content.decode()
    template = PromptTemplate.objects.get()
    assert (template.user_prompt, template.temperature, template.max_output_tokens) == (
        "Sentiment of: {{ Review Text }}",
        0.3,
        5,
    )
    again = client.post(
        reverse("jobs:save_template", args=[first.code]),
        post_data(simulator_credential, template_name="Sentiment", temperature="0"),
    )
    assert "Updated “Sentiment”" in again.content.decode()
    assert PromptTemplate.objects.get().temperature == 0

    second = make_dataset(alice, name="more reviews.csv")
    page = client.get(
        reverse("jobs:new_job", args=[second.code]), {"template": template.code}
    ).content.decode()
    assert "Sentiment of: {{ Review Text }}" in page
    assert "Answer in one word." in page


def test_a_template_whose_columns_are_missing_is_pointed_out(client, alice, simulator_credential):
    client.force_login(alice)
    template = PromptTemplate.objects.create(
        owner=alice, name="Other", model="gpt-4o-mini", user_prompt="About {{ Product }}"
    )
    dataset = make_dataset(alice)
    data = post_data(simulator_credential) | {
        field: getattr(template, field) or "" for field in PromptTemplate.SETTINGS
    }
    response = client.post(reverse("jobs:new_job", args=[dataset.code]), data)
    assert response.status_code == 200
    assert "No column is called {{ Product }}" in response.content.decode()
    assert not Job.objects.exists()


def test_saving_needs_a_name_and_a_valid_prompt(client, alice, simulator_credential):
    dataset = make_dataset(alice)
    client.force_login(alice)
    url = reverse("jobs:save_template", args=[dataset.code])
    text = client.post(url, post_data(simulator_credential, template_name="")).content.decode()
    assert "Give the template a name." in text
    text = client.post(url, post_data(simulator_credential, template_name="x", user_prompt="{{ Nope }}"))
    assert "No column is called" in text.content.decode()
    assert not PromptTemplate.objects.exists()


def test_templates_are_private_unless_shared_with_a_team(client, alice, bob, simulator_credential):
    team = Group.objects.create(name="Research")
    alice.groups.add(team)
    private = PromptTemplate.objects.create(owner=alice, name="Mine", model="m", user_prompt="{{ a }}")
    shared = PromptTemplate.objects.create(
        owner=alice, name="Ours", model="m", user_prompt="{{ a }}", team=team
    )
    bob_dataset = make_dataset(bob)
    client.force_login(bob)
    assert "Mine" not in client.get(reverse("jobs:templates")).content.decode()
    url = reverse("jobs:new_job", args=[bob_dataset.code])
    assert client.get(url, {"template": private.code}).status_code == 404
    assert client.post(reverse("jobs:template_delete", args=[private.code])).status_code == 404
    bob.groups.add(team)
    assert client.get(url, {"template": shared.code}).status_code == 200
    assert client.post(reverse("jobs:template_delete", args=[shared.code])).status_code == 403


def test_a_job_keeps_its_copy_when_the_template_changes(client, alice, simulator_credential):
    dataset = make_dataset(alice)
    client.force_login(alice)
    client.post(
        reverse("jobs:save_template", args=[dataset.code]), post_data(simulator_credential, template_name="T")
    )
    client.post(reverse("jobs:new_job", args=[dataset.code]), post_data(simulator_credential))
    PromptTemplate.objects.update(user_prompt="Changed {{ Review Text }}")
    client.post(reverse("jobs:template_delete", args=[PromptTemplate.objects.get().code]))
    assert Job.objects.get().user_prompt == "Sentiment of: {{ Review Text }}"


def test_a_template_keeps_the_structured_output_fields(client, alice, simulator_credential):
    dataset = make_dataset(alice)
    client.force_login(alice)
    fields = {"field-0-name": "sentiment", "field-0-type": "label", "field-0-labels": "good, bad"}
    client.post(
        reverse("jobs:save_template", args=[dataset.code]),
        post_data(simulator_credential, template_name="Labels") | fields,
    )
    template = PromptTemplate.objects.get()
    assert template.output_fields[0]["labels"] == ["good", "bad"]
    page = client.get(reverse("jobs:new_job", args=[dataset.code]), {"template": template.code})
    assert 'value="good, bad"' in page.content.decode()


def test_a_column_named_with_braces_gets_a_button_whose_placeholder_works(
    client, alice, simulator_credential
):
    dataset = make_dataset(alice, b"{{x}},plain\nhello,world\n")
    client.force_login(alice)
    page = client.get(reverse("jobs:new_job", args=[dataset.code])).content.decode()
    assert 'data-placeholder="{{ &quot;{{x}}&quot; }}"' in page

    response = client.post(
        reverse("jobs:new_job", args=[dataset.code]),
        post_data(simulator_credential, user_prompt='Say {{ "{{x}}" }} and {{ plain }}'),
    )
    assert response.status_code == 302
    job = Job.objects.get(dataset=dataset)
    assert job.user_prompt == 'Say {{ "{{x}}" }} and {{ plain }}'
    preview = client.post(
        reverse("jobs:preview", args=[dataset.code]),
        post_data(simulator_credential, user_prompt='Say {{ "{{x}}" }} and {{ plain }}'),
    ).content.decode()
    assert "Say hello and world" in preview
