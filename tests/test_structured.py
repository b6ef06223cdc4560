"""Structured output: fields described in the page become a strict JSON schema, and columns."""

import html

import orjson
import pytest
from django.urls import reverse

from jobs.formats.schema import FieldError, clean_fields, json_schema, values
from jobs.models import Job
from tests.conftest import make_dataset
from tests.test_pipeline import drive, read_csv

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = {
    "field-0-name": "sentiment",
    "field-0-type": "label",
    "field-0-labels": "positive, negative, neutral",
    "field-0-description": "How the reviewer feels",
    "field-1-name": "stars_guess",
    "field-1-type": "integer",
}


def job_data(credential, **extra):
    return (
        {
            "name": "Structured",
            "credential": credential.pk,
            "endpoint": "/v1/chat/completions",
            "model": "gpt-4o-mini",
            "user_prompt": "Review: {{ Review Text }}",
        }
        | FIELDS
        | extra
    )


def test_fields_become_a_strict_schema_in_every_request_and_columns_in_the_results(
    client, alice, simulator_credential, settings
):
    settings.SIMULATOR_SPEED = 1_000_000
    dataset = make_dataset(alice)
    client.force_login(alice)
    preview = client.post(reverse("jobs:preview", args=[dataset.code]), job_data(simulator_credential))
    text = html.unescape(preview.content.decode())
    assert '"response_format": {' in text and '"enum": [' in text and '"strict": true' in text

    response = client.post(reverse("jobs:new_job", args=[dataset.code]), job_data(simulator_credential))
    assert response.status_code == 302
    job = drive(Job.objects.get())
    assert [f["name"] for f in job.output_fields] == ["sentiment", "stars_guess"]
    table = read_csv(job.results_file)
    header = table[0]
    assert header[header.index("answer") + 1 : header.index("answer") + 3] == ["sentiment", "stars_guess"]
    sentiments = [row[header.index("sentiment")] for row in table[1:]]
    assert set(sentiments) <= {"positive", "negative", "neutral"} and all(sentiments)
    assert all(row[header.index("stars_guess")].lstrip("-").isdigit() for row in table[1:])
    lines = b"".join(client.get(reverse("jobs:download", args=[job.code, "jsonl"])).streaming_content)
    first = orjson.loads(lines.splitlines()[0])
    assert set(first["answer"]) == {"sentiment", "stars_guess"}


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"field-0-name": "how it feels"}, "cannot be a field name"),
        ({"field-0-labels": "positive"}, "at least two labels"),
        ({"field-1-name": "sentiment"}, "already a field called “sentiment”"),
        ({"endpoint": "/v1/embeddings"}, "Embeddings are numbers"),
    ],
)
def test_fields_that_cannot_work_are_explained(client, alice, simulator_credential, extra, message):
    dataset = make_dataset(alice)
    client.force_login(alice)
    response = client.post(
        reverse("jobs:new_job", args=[dataset.code]), job_data(simulator_credential, **extra)
    )
    assert response.status_code == 200
    assert message in html.unescape(response.content.decode())
    assert not Job.objects.exists()


def test_schema_and_values():
    fields = clean_fields([{"name": "ok", "type": "boolean", "labels": []}, {"name": "n", "type": "number"}])
    assert json_schema(fields) == {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "n": {"type": "number"}},
        "required": ["ok", "n"],
        "additionalProperties": False,
    }
    assert values('{"ok": true, "n": 2.5}', ["ok", "n"]) == ["yes", "2.5"]
    assert values("not json", ["ok"]) == [""]
    with pytest.raises(FieldError):
        clean_fields([{"name": "1st", "type": "text"}])
