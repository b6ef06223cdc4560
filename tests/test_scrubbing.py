"""A provider that echoes the key in use, whatever its shape, never gets it into our pages, audit
log, stored messages, logs or emails: the provider boundary takes it out by its exact value."""

import logging

import pytest
from django.urls import reverse

from jobs import tasks
from jobs.models import AuditEvent, Batch, Job, ProviderCredential, RowFailure
from jobs.providers.client import ProviderClient, scrub
from simulator import faults
from tests.conftest import make_dataset
from tests.test_key_pages import add_key
from tests.test_pilot import form_data
from tests.test_pipeline import drive, new_job, send

pytestmark = pytest.mark.django_db(transaction=True)

# A Groq-shaped key, which the old scrubbing (sk- only) let through.
KEY = "gsk_T3stK3yEchoedByTheProvider0123456789abcdXYZ"
# Distinctive enough that finding it means the key leaked, even cut short or re-encoded.
PART = "EchoedByTheProvider"


@pytest.fixture
def echoing(settings, simulator_url, caplog):
    """The simulator accepts KEY; a root admin with an email address; every log line captured."""
    settings.SIMULATOR_API_KEYS = ["sk-simulator", KEY]
    settings.SIMULATOR_SPEED = 1_000_000
    caplog.set_level(logging.DEBUG)
    return simulator_url


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_user("root", "root@example.com", "root-password-1", is_staff=True)


@pytest.fixture
def groq(echoing) -> ProviderCredential:
    credential = ProviderCredential(name="Groq", kind=ProviderCredential.Kind.COMPATIBLE, base_url=echoing)
    credential.set_api_key(KEY)
    credential.save()
    return credential


def assert_nowhere(*texts, caplog, mailoutbox):
    everything = list(texts) + [caplog.text] + [m.subject + m.body for m in mailoutbox]
    everything += [str(list(e.values())) for e in AuditEvent.objects.values()]
    everything += list(ProviderCredential.objects.values_list("refused_message", flat=True))
    everything += list(Job.objects.values_list("error", flat=True))
    everything += list(Batch.objects.values_list("error", flat=True))
    everything += list(RowFailure.objects.values_list("message", flat=True))
    leaks = [text for text in everything if PART in str(text)]
    assert leaks == []


@pytest.mark.parametrize("status", [400, 503])
def test_a_key_test_whose_error_echoes_the_key_shows_and_records_it_nowhere(
    client, root, echoing, caplog, mailoutbox, status
):
    client.force_login(root)
    credential = add_key(client, name="Groq", base_url=echoing, api_key=KEY)
    faults.arm("models", "http_error", status=status, message="Invalid API key: {key}. Check it.")

    flash = client.post(reverse("jobs:key_test", args=[credential.code]), follow=True).content.decode()

    assert "[redacted key]" in flash  # the message is there, without the key
    pages = [flash, client.get(reverse("jobs:keys")).content.decode()]
    pages.append(client.get(reverse("jobs:audit")).content.decode())
    pages.append(client.get(reverse("jobs:key_edit", args=[credential.code])).content.decode())
    assert_nowhere(*pages, caplog=caplog, mailoutbox=mailoutbox)


def test_a_key_refused_mid_job_with_the_key_in_the_message_leaks_it_nowhere(
    client, root, alice, groq, caplog, mailoutbox
):
    job = new_job(alice, groq)
    [batch_id] = send(job)
    faults.arm("files.create", "http_error", status=401, message="Incorrect API key provided: {key}.")

    tasks.submit_batch.apply(args=[batch_id])

    groq.refresh_from_db()
    assert groq.refused_at is not None and "[redacted key]" in groq.refused_message
    [mail] = mailoutbox
    assert "[redacted key]" in mail.body
    client.force_login(root)
    pages = [client.get(reverse("jobs:keys")).content.decode()]
    pages.append(client.get(reverse("jobs:key_edit", args=[groq.code])).content.decode())
    pages.append(client.get(reverse("jobs:job_detail", args=[job.code])).content.decode())
    assert_nowhere(*pages, caplog=caplog, mailoutbox=mailoutbox)


def test_a_batch_rejected_with_the_key_in_its_errors_leaks_it_nowhere(
    client, alice, groq, caplog, mailoutbox
):
    faults.arm("batches.create", "validation_failure", message="Key {key} may not use this model.")
    job = drive(new_job(alice, groq))
    assert job.status == Job.Status.FAILED
    assert any("[redacted key]" in m for m in RowFailure.objects.values_list("message", flat=True))
    client.force_login(alice)
    pages = [client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()]
    pages.append(client.get(reverse("jobs:failures", args=[job.code])).content.decode())
    with job.failures_file.open("rb") as fh:
        pages.append(fh.read().decode("utf-8"))
    assert_nowhere(*pages, caplog=caplog, mailoutbox=mailoutbox)


def test_a_pilot_row_whose_error_echoes_the_key_shows_it_nowhere(client, alice, groq, caplog, mailoutbox):
    faults.arm("chat.completions", "http_error", status=400, message="Bad request for key {key}", times=5)
    dataset = make_dataset(alice)
    client.force_login(alice)
    page = client.post(reverse("jobs:pilot", args=[dataset.code]), form_data(groq)).content.decode()
    assert "[redacted key]" in page
    assert_nowhere(page, caplog=caplog, mailoutbox=mailoutbox)


def test_the_key_is_taken_out_of_downloaded_files_even_across_chunks(groq, monkeypatch):
    from jobs.providers import client as provider_client

    chunks = [b'{"error": "bad key gsk_T3stK3yEcho', b"edByTheProvider0123456789abcdXYZ", b'"}\n']
    assert b"".join(provider_client._without(iter(chunks), KEY)) == b'{"error": "bad key [redacted key]"}\n'
    assert b"".join(provider_client._without(iter([b"plain"]), KEY)) == b"plain"
    assert ProviderClient(groq)._secret == KEY


@pytest.mark.parametrize(
    "text",
    [
        "Invalid API key: gsk_abcdefghijklmnop1234",
        "Incorrect key xai-AbCdEf0123456789AbCdEf",
        "Access denied for key 0123456789abcdef0123456789ABCDEF.",
        "Header was Authorization: Bearer eyJhbGciOi.payload.signature",
        "Token hf_AbCdEfGhIjKlMnOp was revoked",
        "Incorrect API key provided: sk-proj-ABCDEFwrongkey1234.",
        "Incorrect API key provided: sk-ab***cd.",
    ],
)
def test_common_key_shapes_are_scrubbed_whatever_the_provider(text):
    cleaned = scrub(text)
    assert "[redacted key]" in cleaned
    for secret in ("abcdefghijklmnop", "AbCdEf0123", "0123456789abcdef", "eyJhbGci", "hf_AbCd", "ABCDEF"):
        assert secret not in cleaned


def test_the_exact_key_is_scrubbed_whatever_its_shape():
    assert scrub("your key myCustomProviderKey_998877 is wrong", "myCustomProviderKey_998877") == (
        "your key [redacted key] is wrong"
    )
    # Ids that merely contain hexadecimal digits are kept: people quote them to support.
    assert scrub("No batch found with id 'batch_0123456789abcdef0123456789abcdef'") == (
        "No batch found with id 'batch_0123456789abcdef0123456789abcdef'"
    )


def test_a_password_in_the_base_url_is_not_repeated_by_the_key_test(client, root, mailoutbox, caplog):
    client.force_login(root)
    credential = add_key(client, name="Proxy", base_url="http://user:pa55-in-url@127.0.0.1:1/v1", api_key=KEY)
    page = client.post(reverse("jobs:key_test", args=[credential.code]), follow=True).content.decode()
    # The flash message and the audit log name the host only (the keys page lists the URL as
    # the admin entered it, for admins only).
    assert "Proxy: Could not reach 127.0.0.1:1: check the base URL" in page
    [event] = AuditEvent.objects.filter(action="key_test")
    assert event.detail.startswith("Could not reach 127.0.0.1:1:") and "pa55-in-url" not in event.detail
