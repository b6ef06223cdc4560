"""Malformed parameters that once answered 500 now get a plain answer naming what was wrong.

The walk in tests/test_parameter_walk.py finds such requests anywhere; these pin the ones
found, with the message each now gets.
"""

import pytest
from django.test import Client
from django.urls import reverse

from jobs.models import Job, PromptTemplate, ProviderCredential
from tests.conftest import make_dataset
from tests.test_templates import post_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    """A 500 is seen as a status, as a browser would see it, rather than raised into the test."""
    return Client(raise_request_exception=False)


@pytest.fixture
def credential() -> ProviderCredential:
    credential = ProviderCredential(
        name="Offline", kind=ProviderCredential.Kind.SIMULATOR, base_url="http://127.0.0.1:9"
    )
    credential.set_api_key("sk-offline")
    credential.save()
    return credential


@pytest.mark.parametrize("value", ["not-a-uuid", "²", "", "x" * 5000])
def test_a_template_code_that_is_not_one_answers_404_on_the_new_job_page(client, alice, value):
    dataset = make_dataset(alice)
    client.force_login(alice)
    response = client.get(reverse("jobs:new_job", args=[dataset.code]), {"template": value})
    assert response.status_code == (200 if value == "" else 404)


@pytest.mark.parametrize("endpoint", [None, "", "/v1/nothing"])
def test_saving_a_template_without_a_known_endpoint_names_the_field(client, alice, credential, endpoint):
    dataset = make_dataset(alice)
    client.force_login(alice)
    data = post_data(credential, template_name="Sentiment", endpoint=endpoint)
    if endpoint is None:
        del data["endpoint"]
    response = client.post(reverse("jobs:save_template", args=[dataset.code]), data)
    assert response.status_code == 200
    assert "Endpoint:" in response.content.decode()
    assert not PromptTemplate.objects.exists()


def test_saving_a_template_with_fields_embeddings_cannot_have_says_so(client, alice, credential):
    dataset = make_dataset(alice)
    client.force_login(alice)
    data = post_data(credential, template_name="E", endpoint="/v1/embeddings", model="text-embedding-3-small")
    data |= {"field-0-name": "sentiment"}
    response = client.post(reverse("jobs:save_template", args=[dataset.code]), data)
    assert "remove the fields" in response.content.decode()
    assert not PromptTemplate.objects.exists()


@pytest.mark.parametrize("rows", [["²"], ["2", "²"], ["-1"], ["1e3"], ["99999999999999999999999"]])
def test_resending_rows_that_are_not_row_numbers_says_so(client, alice, credential, rows):
    dataset = make_dataset(alice)
    job = Job.objects.create(owner=alice, dataset=dataset, credential=credential, name="J", model="m")
    client.force_login(alice)
    response = client.post(reverse("jobs:retry", args=[job.code]), {"scope": "selected", "row": rows})
    assert response.status_code == 302
    assert response["Location"] == reverse("jobs:failures", args=[job.code])
    page = client.get(response["Location"]).content.decode()
    assert "is not a row number" in page


@pytest.mark.parametrize("team", ["99999999999999999999999", "²", "-1"])
def test_a_team_id_the_database_cannot_hold_is_an_invalid_choice_on_the_key_form(
    client, django_user_model, team
):
    root = django_user_model.objects.create_user("root", is_staff=True)
    client.force_login(root)
    data = {
        "name": "Another",
        "kind": "simulator",
        "api_key": "sk-another",
        "max_requests_per_batch": "50000",
        "max_bytes_per_batch": "100000000",
        "poll_min_seconds": "1",
        "poll_max_seconds": "2",
        "model_token_limits": "{}",
        "teams": team,
    }
    response = client.post(reverse("jobs:key_new"), data)
    assert response.status_code == 200
    assert f"“{team}” is not a valid value." in response.content.decode()
    assert not ProviderCredential.objects.filter(name="Another").exists()


# PostgreSQL refuses NUL in text, and in JSON; SQLite stores it. Typed text is made one line
# (NUL becomes a space) where it is a name or a search, and refused where it is content.


def test_a_name_holding_nul_is_read_as_a_space(client, alice, credential):
    dataset = make_dataset(alice)
    client.force_login(alice)
    url = reverse("jobs:save_template", args=[dataset.code])
    response = client.post(url, post_data(credential, template_name="\x00"))
    assert "Give the template a name." in response.content.decode()
    client.post(url, post_data(credential, template_name="Sent\x00iment"))
    assert PromptTemplate.objects.get().name == "Sent iment"


def test_a_structured_field_whose_meaning_holds_nul_is_refused_by_name(client, alice, credential):
    dataset = make_dataset(alice)
    client.force_login(alice)
    data = post_data(credential, template_name="T") | {"field-0-name": "mood", "field-0-description": "a\x00"}
    response = client.post(reverse("jobs:save_template", args=[dataset.code]), data)
    assert "Field 1: the meaning or labels of “mood” hold a null character." in response.content.decode()
    response = client.post(reverse("jobs:new_job", args=[dataset.code]), data)
    assert response.status_code == 200 and not Job.objects.exists()


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_a_user_name_longer_than_any_is_a_failed_login_not_a_500(client, path):
    from axes.models import AccessAttempt

    response = client.post(path, {"username": "x" * 5000, "password": "wrong"})
    assert response.status_code == 200
    # django-axes keeps the name in a column of 255 characters, which PostgreSQL enforces.
    assert [len(a.username) for a in AccessAttempt.objects.all()] == [255]


def test_the_pilot_names_the_field_of_each_problem(client, alice, credential):
    dataset = make_dataset(alice)
    client.force_login(alice)
    data = post_data(credential, temperature="abc", endpoint="/v1/nothing")
    page = client.post(reverse("jobs:pilot", args=[dataset.code]), data).content.decode()
    assert "Temperature: Enter a number." in page
    assert "Endpoint: Select a valid choice." in page


@pytest.mark.parametrize("value", ["not-a-uuid", "²", "9" * 30])
def test_a_provider_that_is_not_a_key_id_is_an_invalid_choice_on_the_new_job_form(
    client, alice, credential, value
):
    dataset = make_dataset(alice)
    client.force_login(alice)
    response = client.post(
        reverse("jobs:new_job", args=[dataset.code]), post_data(credential) | {"credential": value}
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "address",
    [
        "/admin/jobs/job/?status__exact=%00",
        "/admin/jobs/job/?q=%00",
        "/admin/auth/user/?is_staff__exact=1%00",
        "/jobs/?q=a%00b",
        "/%00/",
    ],
)
def test_a_nul_anywhere_in_an_address_is_a_bad_request_not_a_crash(client, django_user_model, address):
    """PostgreSQL refuses a NUL in any text, so a query built from one answered 500 (the Django
    admin's list filters and search did); nobody types one, so the address is refused as it arrives."""
    root = django_user_model.objects.create_superuser("root", "root@example.com", "root-password-1")
    client.force_login(root)
    response = client.get(address)
    assert response.status_code == 400
    assert b"This address cannot be read" in response.content
