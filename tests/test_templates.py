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


def test_applying_a_template_restores_every_setting_it_holds_and_previews_its_requests(
    client, alice, simulator_credential
):
    team = Group.objects.create(name="Research")
    alice.groups.add(team)
    first = make_dataset(alice)
    client.force_login(alice)
    settings = {
        "template_name": "Everything",
        "model": "gpt-4o",
        "id_column": "Reviewer",
        "empty_rows": "any",
        "team": str(team.pk),
        "reuse_answers": "on",
        "field-0-name": "mood",
        "field-0-type": "label",
        "field-0-labels": "up, down",
    }
    client.post(reverse("jobs:save_template", args=[first.code]), post_data(simulator_credential, **settings))
    template = PromptTemplate.objects.get()
    assert (template.id_column, template.empty_rows, template.team, template.reuse_answers) == (
        "Reviewer",
        "any",
        team,
        True,
    )
    assert template.resubmit_expired is False  # not ticked when it was saved

    second = make_dataset(alice, name="more reviews.csv")
    page = client.get(reverse("jobs:new_job", args=[second.code]), {"template": template.code})
    form = page.context["form"]
    chosen = {name: form[name].value() for name in ("model", "id_column", "empty_rows", "team")}
    assert chosen == {"model": "gpt-4o", "id_column": "Reviewer", "empty_rows": "any", "team": team.pk}
    assert (form["reuse_answers"].value(), form["resubmit_expired"].value()) == (True, False)
    assert 'value="up, down"' in page.content.decode()
    # The preview shows the template's requests at once, not an empty form's.
    assert [p["user"] for p in page.context["previews"]][:1] == ["Sentiment of: Great shoes, very comfy"]


def test_a_template_whose_row_id_column_this_table_lacks_says_so(client, alice, simulator_credential):
    template = PromptTemplate.objects.create(
        owner=alice, name="Other", model="gpt-4o-mini", user_prompt="{{ Review Text }}", id_column="Order"
    )
    dataset = make_dataset(alice)
    client.force_login(alice)
    page = client.get(reverse("jobs:new_job", args=[dataset.code]), {"template": template.code})
    assert "row ID column “Order”, which this table does not have" in page.content.decode()


def test_deleting_a_template_asks_first_and_names_the_team_it_is_shared_with(client, alice):
    team = Group.objects.create(name="Research")
    alice.groups.add(team)
    template = PromptTemplate.objects.create(
        owner=alice, name="Ours", model="m", user_prompt="{{ a }}", team=team
    )
    client.force_login(alice)
    url = reverse("jobs:template_delete", args=[template.code])
    listing = client.get(reverse("jobs:templates")).content.decode()
    assert f'href="{url}"' in listing  # a link to the question, not a button that deletes at once

    question = client.get(url).content.decode()
    assert "Delete the template “Ours”?" in question
    assert "It is shared with the team Research" in question
    assert PromptTemplate.objects.filter(pk=template.pk).exists()

    client.post(url)
    assert not PromptTemplate.objects.exists()


def test_deleting_a_private_template_asks_without_naming_a_team(client, alice):
    template = PromptTemplate.objects.create(owner=alice, name="Mine", model="m", user_prompt="{{ a }}")
    client.force_login(alice)
    question = client.get(reverse("jobs:template_delete", args=[template.code])).content.decode()
    assert "Delete the template “Mine”?" in question
    assert "shared" not in question
