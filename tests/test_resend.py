"""Failed rows sent again with an edited prompt, and rows that failed too often to be resent as they are."""

from decimal import Decimal

import orjson
import pytest
from django.urls import reverse
from django.utils import timezone

from jobs import pipeline, rawfiles
from jobs.models import Job, ModelPrice
from tests.test_pipeline import drive, new_job, read_csv

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = (
    "Review Text,Reviewer\n"
    "fine,Zoë\n"
    "[[simulate:content_policy_violation]] rude,Bob\n"
    "[[simulate:invalid_request]] odd,Ana\n"
    "[[simulate:server_error]] flaky,Eve\n"
).encode()
# A prompt that no longer sends the text the provider refused.
EDITED = "Greet {{ Reviewer }}"


@pytest.fixture(autouse=True)
def fast(settings):
    settings.SIMULATOR_SPEED = 1_000_000


@pytest.fixture
def job(alice, simulator_credential):
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million=1, output_per_million=2, as_of=timezone.now().date()),
    )
    return drive(new_job(alice, simulator_credential, content=CONTENT, name="Mixed"))


def sent_bodies(job, attempt: int) -> dict[int, dict]:
    bodies = {}
    for batch in job.batches.filter(attempt=attempt):
        with rawfiles.lines(batch.input_file) as fh:
            for line in fh:
                request = orjson.loads(line)
                bodies[int(request["custom_id"].split("-")[1])] = request["body"]
    return bodies


def test_refused_rows_are_sent_again_with_an_edited_prompt_as_a_new_attempt(job):
    assert (job.rows_succeeded, job.rows_failed) == (1, 3)
    assert pipeline.resend_with_prompt(job.pk, [2, 3], system_prompt="Be kind.", user_prompt=EDITED) == 2
    bodies = sent_bodies(job, attempt=2)
    assert sorted(bodies) == [2, 3]
    assert bodies[2]["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Greet Bob"},
    ]
    job = drive(job)
    assert job.status == Job.Status.COMPLETED
    table = read_csv(job.results_file)
    assert len(table) == 5  # one line per row, whatever the attempts
    status = table[0].index("status")
    assert [line[status] for line in table[1:]] == ["succeeded", "succeeded", "succeeded", "failed"]
    assert (job.rows_succeeded, job.rows_failed) == (3, 1)
    # The row's exchange is the latest one, with the edited prompt.
    sent, answer = pipeline.row_exchange(job, 2)
    assert b"Greet Bob" in sent and answer


def test_an_edited_prompt_resend_sends_only_failed_rows_and_passes_the_gate(job, simulator_credential):
    assert pipeline.resend_with_prompt(job.pk, [1], system_prompt="", user_prompt=EDITED) == 0
    simulator_credential.monthly_budget = Decimal("0.00")
    simulator_credential.save()
    with pytest.raises(pipeline.RetryRefused, match="budget"):
        pipeline.resend_with_prompt(job.pk, [2], system_prompt="", user_prompt=EDITED)
    assert not job.batches.filter(attempt=2).exists()
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED


def test_an_edited_prompt_naming_an_unknown_column_is_refused_by_name(job):
    with pytest.raises(pipeline.RetryRefused, match="“Stars”"):
        pipeline.resend_with_prompt(job.pk, [2], system_prompt="", user_prompt="Rate {{ Stars }}")


def test_a_row_that_failed_three_times_is_not_offered_the_same_resend(job, client, alice):
    for _ in range(2):
        assert pipeline.retry_job(job.pk) == 1
        job = drive(job)
    assert job.row_failures.get(row=4).attempts == 3
    assert job.rows_retryable == 0
    assert pipeline.retry_job(job.pk) == 0
    assert pipeline.retry_job(job.pk, [4]) == 0

    client.force_login(alice)
    page = client.get(reverse("jobs:failures", args=[job.code])).content.decode()
    assert "Failed 3 times" in page
    assert "Send the ticked rows again" not in page
    assert "that can pass again" not in page
    assert "Edit the prompt" in page
    # The edited-prompt resend is still there for it.
    assert pipeline.resend_with_prompt(job.pk, [4], system_prompt="", user_prompt=EDITED) == 1


def test_the_resend_form_shows_the_rendered_prompt_of_the_first_ticked_row(job, client, alice):
    client.force_login(alice)
    url = reverse("jobs:resend", args=[job.code])
    page = client.get(url, {"row": ["3", "2"]}).content.decode()
    assert "2 rows" in page
    assert "[[simulate:content_policy_violation]] rude" in page  # row 2, with the job's prompt
    preview = client.post(
        reverse("jobs:resend_preview", args=[job.code]),
        {"row": ["3", "2"], "system_prompt": "", "user_prompt": EDITED},
    ).content.decode()
    assert "Greet Bob" in preview
    bad = client.post(
        reverse("jobs:resend_preview", args=[job.code]),
        {"row": "2", "system_prompt": "", "user_prompt": "{{ Nope }}"},
    ).content.decode()
    assert "“Nope”" in bad

    by_code = client.get(url, {"code": "invalid_request"}).content.decode()
    assert "1 row" in by_code and "odd" in by_code

    sending = {"step": "send", "system_prompt": "", "user_prompt": EDITED}
    response = client.post(url, {"code": "content_policy_violation"} | sending)
    assert response.status_code == 302
    assert sorted(sent_bodies(job, attempt=2)) == [2]
    nothing = client.post(url, sending, follow=True).content.decode()
    assert "Tick the rows" in nothing


def test_a_stranger_cannot_resend_someone_elses_rows(job, client, bob):
    client.force_login(bob)
    url = reverse("jobs:resend", args=[job.code])
    assert client.get(url, {"row": "2"}).status_code == 404
    assert client.post(url, {"row": "2", "step": "send", "user_prompt": EDITED}).status_code == 404


def test_a_row_resent_with_an_edited_prompt_is_sent_again_as_last_sent(job, settings):
    # The edited prompt still sends the text that makes the simulator fail as a server error.
    assert pipeline.resend_with_prompt(job.pk, [4], system_prompt="", user_prompt="Again: {{ Review Text }}")
    job = drive(job)
    assert job.row_failures.get(row=4).attempts == 2
    assert pipeline.retry_job(job.pk) == 1
    assert sent_bodies(job, attempt=3)[4]["messages"][-1]["content"].startswith("Again: ")
