"""Identical requests are answered once: within a job, and across jobs in the key's scope."""

import re
from datetime import timedelta

import orjson
import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from jobs import pipeline, rawfiles
from jobs.formats.requestfiles import CHAT, EMBEDDINGS, RESPONSES, RequestBuilder, RequestSpec, fingerprint
from jobs.models import Job, ModelPrice, ProviderCredential, ReusableAnswer
from jobs.money import spend
from jobs.pipeline.common import request_spec
from tests.conftest import REVIEWS_CSV
from tests.test_pipeline import drive, new_job, read_csv

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def prices(db, settings):
    settings.SIMULATOR_SPEED = 1_000_000
    ModelPrice.objects.update_or_create(
        model="gpt-4o-mini",
        defaults=dict(input_per_million=1000, output_per_million=4000, as_of=timezone.now().date()),
    )


REPEATED_CSV = (
    b"Review Text,Stars\n"
    b"Too small,2\n"
    b"Would buy again!,5\n"
    b"Too small,1\n"
    b"Too small,3\n"
    b"Fell apart after a week,1\n"
)


def results_by_row(job: Job) -> list[dict]:
    table = read_csv(job.results_file)
    return [dict(zip(table[0], line, strict=True)) for line in table[1:]]


def page_text(client, job: Job) -> str:
    """The job page's text as it reads: tags dropped, white space collapsed."""
    html = client.get(reverse("jobs:job_detail", args=[job.code])).content.decode()
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def jsonl(job: Job) -> list[dict]:
    return [orjson.loads(line) for line in b"".join(pipeline.results_jsonl(job)).splitlines()]


def test_a_fingerprint_is_the_canonical_body_whatever_the_key_order_or_the_way_a_number_is_written():
    body = {"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": "Hi"}]}
    shuffled = {"messages": [{"content": "Hi", "role": "user"}], "temperature": 0.0, "model": "gpt-4o-mini"}
    assert fingerprint(CHAT, body) == fingerprint(CHAT, shuffled)
    assert fingerprint(CHAT, body) != fingerprint(CHAT, body | {"temperature": 0.5})
    assert fingerprint(CHAT, body) != fingerprint(RESPONSES, body)
    for endpoint in (CHAT, RESPONSES):
        spec = RequestSpec(
            endpoint, "gpt-4o", system_prompt="About {{ b }}", user_prompt="{{ a }}", temperature=1.0
        )
        builder = RequestBuilder(spec, ["a", "b"])
        cells = ['say "hi"\n', "shoes"]
        # The fast form prepare uses is the fingerprint of the very body sent.
        assert builder.fingerprint(*builder.texts(cells)) == fingerprint(endpoint, builder.body(cells))


@pytest.mark.parametrize("endpoint", [CHAT, RESPONSES, EMBEDDINGS])
@pytest.mark.parametrize("system", ["", "Be brief.", "About {{ b }}"])
def test_a_rows_text_key_from_its_texts_is_the_one_read_back_from_its_body_whatever_the_prompt_shape(
    endpoint, system
):
    spec = RequestSpec(endpoint, "gpt-4o", system_prompt=system, user_prompt="{{ a }}!", temperature=0)
    builder = RequestBuilder(spec, ["a", "b"])
    rows = [['say "hi"\n', "shoes"], ["ünïcödé \ud800", "\\u0000"], ["", "x"], ["", "y"]]
    texts = [builder.texts(cells) for cells in rows]
    users = [user for _, user in texts]
    systems = [system for system, _ in texts] if builder._system and not builder.fixed_system else None
    # As prepare takes them, in a block, and as the index takes them, from the body sent.
    keys = builder.text_keys(users, systems)
    assert keys == [builder.text_key(builder.body(cells)) for cells in rows]
    assert keys[0] != keys[1]
    # Rows whose requests differ only in their instructions differ too.
    assert (keys[2] != keys[3]) == ("{{ b }}" in system and endpoint != EMBEDDINGS)


def test_identical_rows_of_one_job_are_sent_once_and_each_gets_the_answer(alice, simulator_credential):
    job = drive(new_job(alice, simulator_credential, content=REPEATED_CSV, temperature=0))
    assert job.status == Job.Status.COMPLETED
    assert (job.rows_total, job.rows_copied, job.rows_succeeded) == (3, 2, 3)
    assert sum(b.request_count for b in job.batches.all()) == 3
    rows = results_by_row(job)
    first = rows[0]
    assert first["status"] == "succeeded" and first["answer"]
    for repeat in (rows[2], rows[3]):
        assert repeat["answer"] == first["answer"]
        assert repeat["status"] == "reused"
        assert repeat["error"] == "The same request as row 1 of this job, which was sent once."
        assert repeat["cost_usd"] == "0.000000"
    assert [r["status"] for r in jsonl(job)] == ["succeeded", "succeeded", "reused", "reused", "succeeded"]


def test_a_second_job_in_scope_takes_the_earlier_answers_sends_nothing_and_is_charged_nothing(
    alice, simulator_credential
):
    first = drive(new_job(alice, simulator_credential, temperature=0, name="October reviews"))
    assert ReusableAnswer.objects.filter(job=first).count() == 5
    second = new_job(alice, simulator_credential, temperature=0, name="November reviews")
    pipeline.prepare_job(second.pk)
    second.refresh_from_db()
    assert second.status == Job.Status.PLANNED
    assert (second.rows_reused, second.rows_total, second.batches.count()) == (5, 0, 0)
    assert second.reused_from == [["October reviews", 5]]
    assert second.reuse_saving > 0
    assert not second.estimated_cost  # the gate is asked only for what is sent
    second = drive(second)
    assert second.status == Job.Status.COMPLETED
    earlier = {r["Review Text"]: r["answer"] for r in results_by_row(first)}
    for row in results_by_row(second):
        assert row["status"] == "reused"
        assert row["answer"] == earlier[row["Review Text"]]
        assert "“October reviews”" in row["error"]
    # Spend shows the money saved by reuse beside the Batch API's saving.
    totals = spend.totals(spend.report(timezone.now() - timedelta(days=1)))
    assert totals["reused"] == second.reuse_saving > 0
    assert {r["reused_from"] for r in jsonl(second)} == {
        f"Answered before in “October reviews” (row {n}); not sent again." for n in range(1, 6)
    }


def test_index_entries_keep_the_text_key_of_the_request_they_answer(alice, simulator_credential):
    job = drive(new_job(alice, simulator_credential, temperature=0))
    builder = RequestBuilder(request_spec(job), job.dataset.columns)
    with rawfiles.lines(job.batches.get().input_file) as fh:
        requests = [orjson.loads(line) for line in fh]
    expected = {
        n: (fingerprint(r["url"], r["body"]), builder.text_key(r["body"])) for n, r in enumerate(requests, 1)
    }
    entries = ReusableAnswer.objects.filter(job=job).values_list("row", "fingerprint", "text_key")
    assert {row: (mark, value) for row, mark, value in entries} == expected


def test_an_entry_sharing_a_rows_text_key_but_not_its_fingerprint_answers_nothing(
    alice, simulator_credential
):
    first = drive(new_job(alice, simulator_credential, temperature=0))
    # Other requests whose keys happen to be the same (here made so): only the fingerprint says two
    # requests are the same.
    ReusableAnswer.objects.filter(job=first).update(fingerprint="0" * 32)
    job = new_job(alice, simulator_credential, temperature=0)
    pipeline.prepare_job(job.pk)
    job.refresh_from_db()
    assert (job.rows_reused, job.rows_total) == (0, 5)


def test_within_a_transaction_the_index_is_read_as_that_transaction_sees_it(alice, simulator_credential):
    first = drive(new_job(alice, simulator_credential, temperature=0))
    entries = ReusableAnswer.objects.filter(job=first)
    entries.update(text_key=F("text_key") + 1)  # what other connections see: no row's key
    with transaction.atomic():
        entries.update(text_key=F("text_key") - 1)
        job = new_job(alice, simulator_credential, temperature=0)
        pipeline.prepare_job(job.pk)
        job.refresh_from_db()
        assert job.rows_reused == 5


def test_only_the_rows_not_answered_before_are_sent_and_counted_by_the_gate(alice, simulator_credential):
    drive(new_job(alice, simulator_credential, temperature=0, content=REVIEWS_CSV))
    more = REVIEWS_CSV + b"Brand new review,4,Kim\n"
    everything = new_job(alice, simulator_credential, temperature=0, content=more, send_again=True)
    pipeline.prepare_job(everything.pk)
    job = new_job(alice, simulator_credential, temperature=0, content=more)
    pipeline.prepare_job(job.pk)
    job.refresh_from_db()
    everything.refresh_from_db()
    assert (job.rows_reused, job.rows_total, everything.rows_total) == (5, 1, 6)
    assert 0 < job.estimated_cost < everything.estimated_cost
    assert job.input_tokens < everything.input_tokens / 3


def test_a_team_b_job_never_reuses_a_team_a_answer_in_team_scope(alice, bob, simulator_credential):
    team_a, team_b = Group.objects.create(name="Team A"), Group.objects.create(name="Team B")
    alice.groups.add(team_a)
    bob.groups.add(team_b)
    drive(new_job(alice, simulator_credential, temperature=0, team=team_a))
    bobs = new_job(bob, simulator_credential, temperature=0, team=team_b)
    pipeline.prepare_job(bobs.pk)
    bobs.refresh_from_db()
    assert (bobs.rows_reused, bobs.rows_total) == (0, 5)
    # A teammate of Alice's takes them; and organisation-wide, so does Bob.
    carol = type(alice).objects.create_user("carol")
    carol.groups.add(team_a)
    carols = new_job(carol, simulator_credential, temperature=0)
    pipeline.prepare_job(carols.pk)
    assert Job.objects.get(pk=carols.pk).rows_reused == 5
    simulator_credential.reuse_scope = ProviderCredential.ReuseScope.ORGANISATION
    simulator_credential.save()
    again = new_job(bob, simulator_credential, temperature=0, team=team_b)
    pipeline.prepare_job(again.pk)
    assert Job.objects.get(pk=again.pk).rows_reused == 5


def test_a_key_with_reuse_off_sends_every_row(alice, simulator_credential):
    drive(new_job(alice, simulator_credential, temperature=0))
    simulator_credential.reuse_scope = ProviderCredential.ReuseScope.OFF
    simulator_credential.save()
    job = new_job(alice, simulator_credential, temperature=0, content=REPEATED_CSV)
    pipeline.prepare_job(job.pk)
    job.refresh_from_db()
    assert (job.rows_reused, job.rows_copied, job.rows_total) == (0, 0, 5)


def test_answers_above_temperature_0_are_reused_only_when_the_owner_ticks_it(alice, simulator_credential):
    drive(new_job(alice, simulator_credential, temperature=0.7))
    unticked = new_job(alice, simulator_credential, temperature=0.7, content=REPEATED_CSV)
    pipeline.prepare_job(unticked.pk)
    ticked = new_job(alice, simulator_credential, temperature=0.7, reuse_answers=True)
    pipeline.prepare_job(ticked.pk)
    default = new_job(alice, simulator_credential)  # the model's default temperature is above 0
    pipeline.prepare_job(default.pk)
    unticked, ticked, default = (Job.objects.get(pk=j.pk) for j in (unticked, ticked, default))
    assert (unticked.rows_reused, unticked.rows_copied, unticked.rows_total) == (0, 0, 5)
    assert (ticked.rows_reused, ticked.rows_total) == (5, 0)
    assert (default.rows_reused, default.rows_total) == (0, 5)


def test_the_plan_says_which_rows_were_answered_before_and_send_them_again_anyway_sends_every_row(
    alice, simulator_credential, client
):
    drive(new_job(alice, simulator_credential, temperature=0, name="October reviews"))
    more = REVIEWS_CSV + b"Brand new review,4,Kim\n"
    job = new_job(alice, simulator_credential, temperature=0, content=more, name="Again")
    pipeline.prepare_job(job.pk)
    job.refresh_from_db()
    client.force_login(alice)
    assert re.search(
        r"5 rows were answered before \(in ‘October reviews’\): not sent, \$[\d.]+ saved\.",
        page_text(client, job),
    )
    response = client.post(reverse("jobs:send_again", args=[job.code]))
    assert response.url == reverse("jobs:job_detail", args=[job.code])
    pipeline.prepare_job(job.pk)
    fresh = Job.objects.get(pk=job.pk)
    assert fresh.send_again and (fresh.rows_reused, fresh.rows_total, fresh.batches.count()) == (0, 6, 1)
    assert "answered before" not in page_text(client, fresh)


def test_index_entries_go_with_their_job_and_when_its_raw_files_pass_retention(
    alice, simulator_credential, settings
):
    kept = drive(new_job(alice, simulator_credential, temperature=0))
    gone = drive(new_job(alice, simulator_credential, temperature=0, send_again=True))
    assert ReusableAnswer.objects.filter(job=gone).count() == 5
    pipeline.delete_job(gone)
    assert not ReusableAnswer.objects.filter(job_id=gone.pk).exists()
    settings.RAW_FILE_RETENTION_DAYS = 1
    Job.objects.filter(pk=kept.pk).update(finished_at=kept.finished_at.replace(year=2000))
    pipeline.clean_up_files()
    assert not ReusableAnswer.objects.exists()


def test_a_failed_row_repeating_an_earlier_one_shares_its_failure_and_resending_it_resends_that_row(
    alice, simulator_credential
):
    busy = b"Review Text\n[[simulate:server_error]] busy\nfine\n[[simulate:server_error]] busy\n"
    job = drive(new_job(alice, simulator_credential, content=busy, temperature=0))
    rows = results_by_row(job)
    assert [r["status"] for r in rows] == ["failed", "succeeded", "failed"]
    assert rows[2]["error_code"] == rows[0]["error_code"] == "server_error"
    assert job.rows_retryable == 2
    assert pipeline.retry_job(job.pk, rows=[3]) == 1  # row 1's request, which answers row 3 too
    assert job.batches.get(attempt=2).first_row == 1


def test_entries_made_before_text_keys_get_theirs_from_their_request_files_and_those_without_files_go(
    alice, simulator_credential
):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    kept = drive(new_job(alice, simulator_credential, temperature=0))
    lost = drive(new_job(alice, simulator_credential, temperature=0, send_again=True))
    fields = ("row", "fingerprint", "text_key")
    before = set(ReusableAnswer.objects.filter(job=kept).values_list(*fields))
    assert len(before) == 5 and ReusableAnswer.objects.filter(job=lost).count() == 5
    lost.batches.get().input_file.delete(save=False)
    executor = MigrationExecutor(connection)
    executor.migrate([("jobs", "0030_run_now")])  # back to the entries without a text key
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes("jobs"))
    assert set(ReusableAnswer.objects.filter(job=kept).values_list(*fields)) == before
    assert not ReusableAnswer.objects.filter(job=lost).exists()
