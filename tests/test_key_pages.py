"""Admins manage provider keys in the app: add, test, replace, disable, delete; members cannot."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from jobs.models import Job, ProviderCredential
from tests.test_pipeline import new_job, send

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_user("root", "root@example.com", "root-password-1", is_staff=True)


def add_key(client, **fields) -> ProviderCredential:
    data = (
        dict(
            name="Team key",
            kind="compatible",
            api_key="sk-simulator",
            max_requests_per_batch=50000,
            max_bytes_per_batch=200000000,
            poll_min_seconds=30,
            poll_max_seconds=300,
            enqueued_token_limit=20000000,
            model_token_limits="{}",
            is_active="on",
        )
        | fields
    )
    response = client.post(reverse("jobs:key_new"), data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    return ProviderCredential.objects.get(name=data["name"])


def test_an_admin_adds_a_key_that_is_never_shown_again(client, root, simulator_url):
    client.force_login(root)
    credential = add_key(client, base_url=simulator_url)
    assert credential.api_key() == "sk-simulator"
    page = client.get(reverse("jobs:keys")).content.decode()
    assert "…ator" in page and "sk-simulator" not in page
    edit = client.get(reverse("jobs:key_edit", args=[credential.code])).content.decode()
    assert "sk-simulator" not in edit and credential.api_key_encrypted not in edit


@pytest.mark.parametrize(
    "base, key, expected",
    [
        ("{simulator}", "sk-simulator", "The key works"),
        ("{simulator}", "sk-wrong-key-9999", "refused this key"),
        ("http://127.0.0.1:1/v1", "sk-simulator", "Could not reach 127.0.0.1:1"),
        ("{server}/no-api-here/v1", "sk-simulator", "answers like an OpenAI API"),
    ],
)
def test_testing_a_key_says_what_is_wrong_in_words(
    client, root, simulator_url, live_server, base, key, expected
):
    client.force_login(root)
    credential = add_key(
        client, base_url=base.format(simulator=simulator_url, server=live_server.url), api_key=key
    )
    response = client.post(reverse("jobs:key_test", args=[credential.code]), follow=True)
    text = response.content.decode()
    assert expected in text
    assert key not in text


def test_a_refused_key_replaced_in_the_page_resumes_its_jobs(
    client, root, alice, simulator_credential, monkeypatch
):
    from jobs import pipeline, tasks

    resumed = []
    monkeypatch.setattr(tasks.resume_credential, "delay_on_commit", resumed.append)
    job = new_job(alice, simulator_credential)
    send(job)
    pipeline.key_refused(simulator_credential.pk, "Incorrect API key provided")
    client.force_login(root)
    page = client.get(reverse("jobs:key_edit", args=[simulator_credential.code])).content.decode()
    assert "The provider refused this key" in page
    data = {
        field: getattr(simulator_credential, field)
        for field in (
            "name",
            "kind",
            "base_url",
            "max_requests_per_batch",
            "max_bytes_per_batch",
            "poll_min_seconds",
            "poll_max_seconds",
            "enqueued_token_limit",
        )
    }
    client.post(
        reverse("jobs:key_edit", args=[simulator_credential.code]),
        data | {"api_key": "sk-simulator", "model_token_limits": "{}", "is_active": "on"},
    )
    assert resumed == [simulator_credential.pk]
    tasks.resume_credential(simulator_credential.pk)
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING


def test_a_key_in_use_is_disabled_not_deleted(client, root, alice, simulator_credential):
    new_job(alice, simulator_credential)
    client.force_login(root)
    response = client.post(reverse("jobs:key_delete", args=[simulator_credential.code]), follow=True)
    assert "disable it instead" in response.content.decode()
    assert ProviderCredential.objects.filter(pk=simulator_credential.pk).exists()
    client.post(reverse("jobs:key_toggle", args=[simulator_credential.code]))
    simulator_credential.refresh_from_db()
    assert not simulator_credential.is_active


def test_an_unused_key_can_be_deleted_and_kept_for_a_team(client, root, simulator_url):
    team = Group.objects.create(name="Research")
    client.force_login(root)
    credential = add_key(client, base_url=simulator_url, teams=[team.pk])
    assert list(credential.teams.all()) == [team]
    client.post(reverse("jobs:key_delete", args=[credential.code]))
    assert not ProviderCredential.objects.filter(pk=credential.pk).exists()


def test_members_cannot_reach_the_key_pages(client, alice, simulator_credential):
    client.force_login(alice)
    assert client.get(reverse("jobs:keys")).status_code == 403
    assert client.post(reverse("jobs:key_test", args=[simulator_credential.code])).status_code == 403
    assert client.post(reverse("jobs:key_delete", args=[simulator_credential.code])).status_code == 403


def test_a_keys_last_test_is_kept_and_shown_with_its_result_and_time(client, root, simulator_url):
    client.force_login(root)
    credential = add_key(client, base_url=simulator_url, api_key="sk-wrong-key-9999")
    assert "Never tested" in client.get(reverse("jobs:keys")).content.decode()
    client.post(reverse("jobs:key_test", args=[credential.code]))
    credential.refresh_from_db()
    assert credential.last_test_ok is False and "refused this key" in credential.last_test_message
    assert credential.last_tested_at is not None
    listing = client.get(reverse("jobs:keys")).content.decode()
    assert "Last test failed" in listing and "refused this key" in listing and "<time datetime=" in listing


def test_a_key_that_failed_its_last_test_is_not_offered_to_members_until_it_passes(
    client, root, alice, simulator_url
):
    from jobs.access import usable_credentials

    client.force_login(root)
    credential = add_key(client, base_url=simulator_url, api_key="sk-wrong-key-9999")
    assert list(usable_credentials(alice)) == [credential]  # not tested yet: offered
    client.post(reverse("jobs:key_test", args=[credential.code]))
    assert list(usable_credentials(alice)) == []
    assert list(usable_credentials(root)) == [credential]  # admins still see it, to fix it
    edit = reverse("jobs:key_edit", args=[credential.code])
    fields = client.get(edit).context["form"].initial
    form = {k: v for k, v in fields.items() if v is not None and k not in ("teams", "model_token_limits")}
    client.post(edit, form | {"api_key": "sk-simulator", "model_token_limits": "{}", "is_active": "on"})
    assert list(usable_credentials(alice)) == []  # a new key is not yet a tested one
    client.post(reverse("jobs:key_test", args=[credential.code]))
    assert list(usable_credentials(alice)) == [credential]
    assert "Last test passed" in client.get(reverse("jobs:keys")).content.decode()


def test_the_key_form_is_grouped_in_words_with_azure_fields_only_for_azure(client, root):
    client.force_login(root)
    page = client.get(reverse("jobs:key_new")).content.decode()
    legends = [part.split("</legend>")[0].split(">")[-1] for part in page.split("<legend")[1:]]
    assert legends == ["Basics", "Spending", "Limits", "Advanced"]
    assert "Prompt tokens waiting at the provider at once, per model" in page
    assert "Max requests per batch" not in page and "Poll min seconds" not in page
    azure = page.split('data-only-for="azure"')[1].split("</div>")[0]
    assert 'name="api_version"' in azure
    assert "key_form.js" in page and "<script>" not in page


def test_the_azure_api_version_appears_when_azure_is_chosen(page, live_server, django_user_model):
    from tests.conftest import screenshot
    from tests.test_browser import log_in

    log_in(page, live_server, django_user_model, "root")
    django_user_model.objects.filter(username="root").update(is_staff=True)
    page.goto(live_server.url + reverse("jobs:key_new"))
    version = page.get_by_label("API version")
    assert not version.is_visible()
    page.get_by_label("Provider", exact=True).select_option("azure")
    assert version.is_visible()
    screenshot(page, "key-form-azure")
    page.get_by_label("Provider", exact=True).select_option("openai")
    assert not version.is_visible()
