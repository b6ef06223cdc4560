"""A row ID column with repeated values is refused on the form, from what the background row count
found, before Prepare; the check after Prepare stays as the backstop."""

import io

import pytest
from django.urls import reverse

from jobs import datasets
from jobs.formats import tables, uniques
from jobs.models import Job
from tests.conftest import make_dataset
from tests.test_templates import post_data

pytestmark = pytest.mark.django_db

ORDERS = b"Order,Customer,Note\nA-1,Zoe,\nA-2,Tom,\nA-3,Zoe,x\nA-4,Ana,\n"


def count(data: bytes, **bounds) -> dict:
    info = tables.inspect(io.BytesIO(data), "t.csv")
    ids = uniques.RowIds(info.columns, **bounds)
    tables.count_rows(io.BytesIO(data), info, row_ids=ids)
    return ids.results()


def test_the_count_finds_each_columns_first_repeated_value_and_its_rows():
    assert count(ORDERS) == {
        "Order": {"unique": True},
        "Customer": {"value": "Zoe", "rows": [1, 3]},
        "Note": {"value": "", "rows": [1, 2]},
    }


def test_past_its_memory_bound_the_count_says_how_far_a_column_was_checked():
    rows = b"".join(b"%d,%d\n" % (n, n % 3) for n in range(1, 101))
    found = count(b"Id,Group\n" + rows, limit=50)
    assert found == {"Id": {"unique_until": 51}, "Group": {"value": "1", "rows": [1, 4]}}


def test_past_its_memory_bound_the_column_of_longest_values_is_let_go_first():
    rows = b"".join(b"%d,some longer text %d\n" % (n, n) for n in range(1, 101))
    found = count(b"Id,Text\n" + rows, limit=150)
    assert found == {"Id": {"unique": True}, "Text": {"unique_until": 76}}


def test_a_repeated_value_with_control_characters_is_kept_as_one_line_of_text():
    found = count(b'Id,Code\n1,"a\nb"\n2,"a\nb"\n')
    assert found["Code"] == {"value": "a b", "rows": [1, 2]}


def test_a_column_of_long_texts_is_not_followed():
    text = "x" * 200
    found = count(f"Id,Text\n1,{text}1\n2,{text}2\n".encode(), longest=100)
    assert found["Text"] == {"unique_until": 0} and found["Id"] == {"unique": True}


@pytest.fixture
def counted(alice):
    dataset = make_dataset(alice, ORDERS, name="orders.csv")
    datasets.count_rows(dataset.pk)  # what the worker does in the background
    dataset.refresh_from_db()
    return dataset


def test_the_form_refuses_a_repeated_row_id_naming_the_column_the_value_and_its_rows(
    client, alice, simulator_credential, counted
):
    client.force_login(alice)
    data = post_data(simulator_credential, user_prompt="About {{ Order }}", id_column="Customer")
    response = client.post(reverse("jobs:new_job", args=[counted.code]), data)
    assert response.status_code == 200 and not Job.objects.exists()
    assert (
        "The column “Customer” cannot name the rows: its value “Zoe” is in row 1 and again in row 3."
        in response.content.decode()
    )
    empty = client.post(reverse("jobs:new_job", args=[counted.code]), data | {"id_column": "Note"})
    assert "The column “Note” cannot name the rows: it is empty in row 1 and again in row 2." in (
        empty.content.decode()
    )

    unique = client.post(reverse("jobs:new_job", args=[counted.code]), data | {"id_column": "Order"})
    assert unique.status_code == 302 and Job.objects.get().id_column == "Order"


def test_the_live_preview_says_it_as_soon_as_the_column_is_chosen(
    client, alice, simulator_credential, counted
):
    client.force_login(alice)
    data = post_data(simulator_credential, user_prompt="About {{ Order }}", id_column="Customer")
    fragment = client.post(reverse("jobs:preview", args=[counted.code]), data).content.decode()
    assert "its value “Zoe” is in row 1 and again in row 3" in fragment
