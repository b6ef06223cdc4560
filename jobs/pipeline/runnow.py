"""Run now: a small job's part answered one request at a time through the normal (synchronous) API,
at the normal price, in minutes, instead of through the Batch API.

The owner's Run now passes the gate at the normal price and moves the part `queued → answering`. The
task (`answer_now`) sends its request lines in file order under the key's rate limits
(jobs.providers.pace), waits out the provider's 429s as its Retry-After says, and writes each answer
to the part's output file as a batch's output file has it (custom_id, response{status_code, body},
error): stage5_finish then reconciles it like any batch's, and everything after is the same. Progress
is the part's request counts, as a batch's, so the job page follows it unchanged.

Switch to Batch (and Cancel) stop it before its next row: the rows answered stay this part's, the
others become a new part that goes the batch way, through the gate at the batch price (or, cancelled,
are not sent).

A worker killed mid-run does not pay twice: every answer is written and flushed to the output file
before the next request goes, and a run starts by reading that file (cutting a line the kill left
half-written) and skipping the rows in it. Only the one request in flight when the worker died can
be sent twice. The sweeper starts a run again when the part has been still for a while; a run claims
the part with a conditional UPDATE of its attempt number, and an earlier run that is overtaken stops.
"""

import logging
import os
import random
import time
from decimal import Decimal

import orjson
from django.db import transaction
from django.db.models import F, Max, Sum
from django.utils import timezone

from jobs import rawfiles
from jobs.formats import reconcile
from jobs.models import Batch, Job
from jobs.money import gate, plans
from jobs.pipeline.common import (
    copy_requests,
    expected_rows,
    mark_not_sent,
    new_batch,
    refresh_job_counters,
    settle,
)
from jobs.providers import pace
from jobs.providers.client import PermanentError, RetryableError, client_for

log = logging.getLogger(__name__)

# A row that keeps failing for a passing reason (the provider busy, no connection) is tried this many
# times, then recorded failed (retryable, for the review page); a 429 is waited out this many times.
MAX_TRIES = 3
MAX_THROTTLES = 30


def run_now(job_id: int) -> int | None:
    """The owner's Run now: through the gate at the normal price, then the part is answered now. The
    part's id for the task, or None when the job was no longer planned. Raises gate.Refused.
    """
    job = Job.objects.select_related("owner", "credential").get(pk=job_id)
    if job.status != Job.Status.PLANNED:
        return None
    offer = plans.run_now_offer(job)
    if offer is None:
        raise gate.Refused("This table is too large to answer now at the key's rate limits; Send it instead.")
    cost = offer.cost.synchronous if offer.cost else None
    with gate.spending(
        credential_id=job.credential_id, owner=job.owner, model=job.model, cost=cost, job=job
    ) as verdict:
        if verdict.needs_approval:
            raise gate.Refused(
                "At the normal price this costs more than the key lets anyone spend without an admin's "
                "approval. Send it through the Batch API instead (at half the price), or ask an admin."
            )
        batch = job.batches.get(status=Batch.Status.QUEUED)
        if not batch.transition(Batch.Status.QUEUED, Batch.Status.ANSWERING, synchronous=True):
            return None
        job.transition(
            Job.Status.PLANNED,
            Job.Status.RUNNING,
            started_at=timezone.now(),
            decline_note="",
            estimated_cost=cost,
            **plans.kept_when_sent(job, job.input_tokens, job.rows_total, synchronous=True),
        )
    return batch.pk


def switch_to_batch(job_id: int) -> bool:
    """The owner's Switch to Batch: the rows not answered yet go through the Batch API, after passing
    the gate at the batch price (the job's commitment is then the answered rows at the normal price
    and the rest at the batch price). True if the running part was asked to stop. Raises gate.Refused.
    """
    job = Job.objects.select_related("owner").get(pk=job_id)
    batch = job.batches.filter(status=Batch.Status.ANSWERING, switch_requested_at=None).first()
    if batch is None or job.status != Job.Status.RUNNING:
        return False
    done = batch.requests_completed + batch.requests_failed
    answered, rest = _costs(job, batch, done)
    with gate.spending(
        credential_id=job.credential_id,
        owner=job.owner,
        model=job.model,
        cost=rest,
        job=job,
        commitment=None if rest is None or answered is None else answered + rest,
    ):
        return bool(
            Batch.objects.filter(pk=batch.pk, status=Batch.Status.ANSWERING, switch_requested_at=None).update(
                switch_requested_at=timezone.now(), updated_at=timezone.now()
            )
        )


def _costs(job: Job, batch: Batch, done: int) -> tuple[Decimal | None, Decimal | None]:
    """The most the first `done` rows cost at the normal price, and the rest at the batch price."""
    per_row = batch.input_tokens / max(batch.request_count, 1)
    answered = plans.estimate(job, round(per_row * done), done)
    rest = plans.estimate(job, round(per_row * (batch.request_count - done)), batch.request_count - done)
    return (answered.synchronous if answered else None), (rest.batch if rest else None)


def answer_now(batch_id: int) -> bool:
    """Answer an `answering` part's rows, from where an earlier run stopped. True when it moved on to
    `downloading`, so that the caller starts its finish (the reconcile every batch has).
    """
    batch = Batch.objects.select_related("job__credential").get(pk=batch_id)
    if batch.status != Batch.Status.ANSWERING:
        return False
    claim = batch.submit_attempts + 1
    if not Batch.objects.filter(pk=batch.pk, status=Batch.Status.ANSWERING, submit_attempts=claim - 1).update(
        submit_attempts=claim, updated_at=timezone.now()
    ):
        return False
    job = batch.job
    credential = job.credential
    if credential.refused_at:
        return False  # the key's jobs wait for an admin; the sweeper comes back once it is replaced
    if not batch.output_file.name:
        batch.output_file.name = batch.output_file.field.generate_filename(
            batch, f"{batch.token}-output_file.jsonl"
        )
        Batch.objects.filter(pk=batch.pk).update(output_file=batch.output_file.name)
    path = batch.output_file.path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    answered, completed, failed = _answered(path)
    client = client_for(credential)
    per_row = batch.input_tokens / max(batch.request_count, 1) + plans.answer_bound(job).tokens
    position, stop = 0, ""
    with rawfiles.lines(batch.input_file) as requests, open(path, "ab") as out:
        for line in requests:
            if line.isspace():
                continue
            request = orjson.loads(line)
            if request["custom_id"] in answered:
                position += 1
                continue
            stop = _stop_reason(batch.pk, job.pk, claim, completed, failed)
            if stop:
                break
            result = _ask(client, credential, batch.pk, job.endpoint, request, round(per_row))
            out.write(orjson.dumps(result) + b"\n")
            out.flush()
            os.fsync(out.fileno())
            ok = (result.get("response") or {}).get("status_code") == 200
            completed, failed = completed + ok, failed + (not ok)
            position += 1
        else:
            stop = _stop_reason(batch.pk, job.pk, claim, completed, failed)
    if stop == "overtaken":
        return False
    refresh_job_counters(job.pk)
    if position < batch.request_count and stop in ("switch", "cancel"):
        return _hand_over(batch, position, cancelled=stop == "cancel")
    return batch.transition(Batch.Status.ANSWERING, Batch.Status.DOWNLOADING, switch_requested_at=None)


def _answered(path: str) -> tuple[set[str], int, int]:
    """The custom ids an earlier run wrote, with its successes and failures; a last line left half
    written by a killed worker is cut off, and its row asked again."""
    answered, completed, failed = set(), 0, 0
    if not os.path.exists(path):
        return answered, 0, 0
    with open(path, "rb+") as fh:
        good = 0
        for line in fh:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                break
            if not line.endswith(b"\n"):
                break
            good += len(line)
            answered.add(record["custom_id"])
            ok = (record.get("response") or {}).get("status_code") == 200
            completed, failed = completed + ok, failed + (not ok)
        fh.truncate(good)
    return answered, completed, failed


def _stop_reason(batch_id: int, job_id: int, claim: int, completed: int, failed: int) -> str:
    """Record the progress and say whether to stop: "overtaken" (another run holds the part), "switch",
    "cancel", or "" to go on. One conditional UPDATE: the progress counts only while this run holds it.
    """
    if not Batch.objects.filter(pk=batch_id, status=Batch.Status.ANSWERING, submit_attempts=claim).update(
        requests_completed=completed, requests_failed=failed, updated_at=timezone.now()
    ):
        return "overtaken"
    refresh_job_counters(job_id)  # the job page's progress, as a batch's request counts give it
    switch, cancel = (
        Batch.objects.filter(pk=batch_id).values_list("switch_requested_at", "job__cancel_requested_at").get()
    )
    if cancel:
        return "cancel"
    return "switch" if switch else ""


def _ask(client, credential, batch_id: int, endpoint: str, request: dict, tokens: int) -> dict:
    """One row's request, sent under the key's pace, as the line of a batch's output file."""
    tries = throttles = 0
    while True:
        time.sleep(pace.reserve(credential, tokens))
        try:
            body = client.complete(endpoint, request["body"])
        except RetryableError as exc:
            if exc.status == 429 and throttles < MAX_THROTTLES:
                throttles += 1
                wait = exc.retry_after if exc.retry_after is not None else min(60, 2**throttles)
                # Kept on the part: the job page says how often and how long the provider slowed it.
                Batch.objects.filter(pk=batch_id).update(
                    throttled=F("throttled") + 1,
                    throttled_seconds=F("throttled_seconds") + wait,
                    updated_at=timezone.now(),
                )
                log.info("Run now of batch %s: 429, waiting %.2f s as asked", batch_id, wait)
                time.sleep(wait)
                continue
            tries += 1
            if exc.status != 429 and tries < MAX_TRIES:
                time.sleep(min(30, 2**tries) * random.uniform(0.5, 1))
                continue
            return _failure_line(request, exc)
        except PermanentError as exc:
            if exc.status in (401, 403):
                raise  # the key was refused: its jobs wait for an admin (the task reports it)
            return _failure_line(request, exc)
        used = sum(reconcile.usage_of(body))
        if used:
            pace.give_back(credential, tokens - used)
        return {
            "id": f"now_{request['custom_id']}",
            "custom_id": request["custom_id"],
            "response": {"status_code": 200, "body": body},
            "error": None,
        }


def _failure_line(request: dict, exc) -> dict:
    """A failed row as a batch's output file has it: the provider's answer, or our error without one."""
    error = {
        "code": exc.code or ("server_error" if (exc.status or 500) >= 500 else "http_error"),
        "message": exc.message,
    }
    line = {
        "id": f"now_{request['custom_id']}",
        "custom_id": request["custom_id"],
        "response": None,
        "error": error,
    }
    if exc.status:
        line |= {"response": {"status_code": exc.status, "body": {"error": error}}, "error": None}
    return line


def _hand_over(batch: Batch, answered: int, *, cancelled: bool) -> bool:
    """The rows after the first `answered` leave this part: a new part that goes the batch way, or,
    the job cancelled, is settled as not sent. True when this part moved on to `downloading`.
    """
    job = batch.job
    rows = expected_rows(batch)
    if answered == 0:
        # Nothing answered: the part itself goes the batch way, or is not sent.
        moved = batch.transition(
            Batch.Status.ANSWERING,
            Batch.Status.QUEUED,
            synchronous=False,
            switch_requested_at=None,
            output_file="",
        )
        if moved and cancelled:
            settle(batch, Batch.Status.QUEUED, mark_not_sent(batch))
        elif moved:
            _commit_batch_price(job, None)
        return False
    limits = dict(max_requests=len(rows), max_bytes=max(batch.input_bytes, 1))
    index = (job.batches.filter(attempt=batch.attempt).aggregate(top=Max("index"))["top"] or 0) + 1
    # Each written part is moved into storage while copy_requests' directory still holds it; the rest
    # first, as the part's own file is then replaced by the lines it keeps.
    remainder = [
        new_batch(job, part, attempt=batch.attempt, index=index + n)
        for n, part in enumerate(copy_requests([batch], rows[answered:], **limits))
    ]
    for kept in copy_requests([batch], rows[:answered], **limits):
        with kept.path.open("rb") as fh:
            rawfiles.save(batch.input_file, f"{job.code}-{batch.attempt}-{batch.index}-now.jsonl", fh)
    with transaction.atomic():
        moved = batch.transition(
            Batch.Status.ANSWERING,
            Batch.Status.DOWNLOADING,
            switch_requested_at=None,
            input_file=batch.input_file.name,
            last_row=kept.last_row,
            request_count=kept.request_count,
            input_bytes=kept.bytes,
            input_tokens=kept.input_tokens,
        )
        if not moved:
            return False
        Batch.objects.bulk_create(remainder)
        if not cancelled:
            _commit_batch_price(job, batch)
    if cancelled:
        for part in job.batches.filter(status=Batch.Status.QUEUED):
            settle(part, Batch.Status.QUEUED, mark_not_sent(part))
    refresh_job_counters(job.pk)
    return True


def _commit_batch_price(job: Job, answered: Batch | None) -> None:
    """What the job commits to after a switch: the answered rows at the normal price, the parts waiting
    at the batch price; the unused part of the Run now reservation is released for the budgets."""
    waiting = job.batches.filter(status=Batch.Status.QUEUED).aggregate(
        tokens=Sum("input_tokens", default=0), rows=Sum("request_count", default=0)
    )
    rest = plans.estimate(job, waiting["tokens"], waiting["rows"])
    now = plans.estimate(job, answered.input_tokens, answered.request_count) if answered else None
    cost = None if rest is None else rest.batch + (now.synchronous if now else 0)
    Job.objects.filter(pk=job.pk).update(estimated_cost=cost)
