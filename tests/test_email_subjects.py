"""Email subjects quote names people typed; a name holding a newline once stopped the email
(Django's BadHeaderError). Names are made one line where they are typed, and every subject
is made one line again where it is sent, for names stored before.
"""

import pytest
from django.urls import reverse

from jobs import notify
from jobs.models import Batch, Job, ProviderCredential
from tests.conftest import make_dataset
from tests.test_pipeline import drive, new_job
from tests.test_templates import post_data

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_job_named_with_a_newline_finishes_and_its_owner_is_emailed(
    mailoutbox, alice, simulator_credential, settings
):
    settings.SIMULATOR_SPEED = 1_000_000
    job = drive(new_job(alice, simulator_credential, name="a\nb"))
    assert job.status == Job.Status.COMPLETED
    [mail] = mailoutbox
    assert mail.to == ["alice@example.com"]
    assert mail.subject == "Batchdash: “a b” has finished"


@pytest.fixture
def offline_key() -> ProviderCredential:
    key = ProviderCredential(
        name="k\r\nBcc: eve@example.com",
        kind=ProviderCredential.Kind.SIMULATOR,
        base_url="http://127.0.0.1:9",
    )
    key.set_api_key("sk-offline")
    key.save()
    return key


def test_every_subject_quoting_a_name_is_one_line(mailoutbox, alice, offline_key, django_user_model):
    django_user_model.objects.create_user("root", "root@example.com", is_staff=True)
    job = Job.objects.create(
        owner=alice, dataset=make_dataset(alice), credential=offline_key, name="x\r\ny\x0bz\x85", model="m"
    )
    notify.approval_needed(job)
    notify.part_slow(Batch(job=job, index=0, remote_status="in_progress"))
    notify.key_refused(offline_key)
    subjects = [mail.subject for mail in mailoutbox]
    assert subjects == [
        "Batchdash: “x y z” waits for your approval",
        "Batchdash: part 1 of “x y z” is slower than usual",
        "Batchdash: the provider refused the key “k Bcc: eve@example.com”",
    ]
    assert all(mail.bcc == [] for mail in mailoutbox)


def test_a_job_name_is_made_one_line_where_it_is_typed(client, alice, offline_key):
    dataset = make_dataset(alice)
    client.force_login(alice)
    url = reverse("jobs:new_job", args=[dataset.code])
    client.post(url, post_data(offline_key, name="Reviews\r\n  of\tJune\x07"))
    assert Job.objects.get().name == "Reviews of June"
    response = client.post(url, post_data(offline_key, name="\x07\x08"))
    assert "Give the job a name." in response.content.decode()


def test_a_key_name_is_made_one_line_where_it_is_typed(client, offline_key, django_user_model):
    root = django_user_model.objects.create_user("root", is_staff=True)
    client.force_login(root)
    data = {
        "name": "Main\nkey",
        "kind": "simulator",
        "base_url": "http://127.0.0.1:9",
        "max_requests_per_batch": "50000",
        "max_bytes_per_batch": "100000000",
        "poll_min_seconds": "1",
        "poll_max_seconds": "2",
        "model_token_limits": "{}",
        "enqueued_token_limit": "20000000",
    }
    response = client.post(reverse("jobs:key_edit", args=[offline_key.code]), data)
    assert response.status_code == 302, response.context["form"].errors
    offline_key.refresh_from_db()
    assert offline_key.name == "Main key"
    response = client.post(reverse("jobs:key_edit", args=[offline_key.code]), data | {"name": "\x07"})
    assert "Give the key a name." in response.content.decode()
