"""A table once uploaded is used again for a new job without uploading it again: the upload page lists
the earlier tables this person may see, and each goes straight to mapping, read as it was."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from jobs import datasets
from jobs.models import Dataset
from tests.conftest import make_dataset

pytestmark = pytest.mark.django_db


def test_the_upload_page_offers_earlier_tables_one_may_see_and_no_others(client, alice, bob):
    team = Group.objects.create(name="Research")
    alice.groups.add(team)
    bob.groups.add(team)
    own = make_dataset(alice, name="mine.csv")
    shared = make_dataset(bob, name="ours.csv")
    shared.team = team
    shared.save()
    private = make_dataset(bob, name="bobs secret.csv")
    broken = make_dataset(alice, b"", name="broken.csv")
    assert broken.status == Dataset.Status.INVALID

    client.force_login(alice)
    page = client.get(reverse("jobs:upload")).content.decode()
    assert "Or use a table you uploaded before" in page
    for offered in (own, shared):
        assert reverse("jobs:new_job", args=[offered.code]) in page
    assert "ours.csv" in page and " by bob<" in page
    for hidden in (private, broken):
        assert reverse("jobs:new_job", args=[hidden.code]) not in page


def test_an_earlier_table_goes_to_mapping_read_as_it_was(client, alice):
    dataset = make_dataset(alice, "name;note\nZoë;ab\nTom;cd\n".encode("cp1252"), name="notes.csv")
    datasets.count_rows(dataset.pk)
    client.force_login(alice)
    client.post(
        reverse("jobs:reading", args=[dataset.code]),
        {"encoding": "cp1252", "delimiter": ";", "long_rows": "stop", "short_rows": "skip"},
    )
    datasets.count_rows(dataset.pk)
    upload_page = client.get(reverse("jobs:upload")).content.decode()
    assert "2 rows" in upload_page
    page = client.get(reverse("jobs:new_job", args=[dataset.code]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Read as cp1252, columns separated by semicolons" in text and "Zoë" in text


def test_no_earlier_tables_no_list(client, alice):
    client.force_login(alice)
    assert "Or use a table you uploaded before" not in client.get(reverse("jobs:upload")).content.decode()
