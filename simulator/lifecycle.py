"""A batch's life, computed from the time since it was created; nothing runs in the background.

validating → in_progress (counts rising) → finalizing → completed, or failed (validation),
expired (the 24 h window, with partial output) and cancelling → cancelled. Time runs
SIMULATOR_SPEED times faster than the wall clock. As OpenAI does, the create call answers
at once and the input file is checked afterwards: here when the batch is first seen past its
validating phase (`validate`). When a batch is first seen at its end, its output and error
files are written once, and the result is stored.
"""

import math
import random
import tempfile
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.core.files import File
from django.db.models import Q

from simulator import answers, clock, storage, validation
from simulator.models import SimBatch, SimFile

# Simulated seconds: realistic for a small batch at SIMULATOR_SPEED=1.
VALIDATING_S = 30.0
PER_REQUEST_S = 0.25
FINALIZING_S = 20.0
CANCELLING_S = 10.0
WINDOW_S = 24 * 3600.0
SHUFFLE_WINDOW = 2000
TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class State:
    status: str
    done: int
    stamps: dict[str, float]


def _phases(batch: SimBatch) -> tuple[float, float, float]:
    validating = VALIDATING_S + batch.total * 0.001
    processing = batch.total * PER_REQUEST_S
    finalizing = math.inf if "stuck_finalizing" in batch.faults else FINALIZING_S + batch.total * 0.001
    return validating, processing, finalizing


def state(batch: SimBatch, now: float | None = None) -> State:
    """Where the batch is at `now`, from its timeline; the stored end state wins once set."""
    speed = settings.SIMULATOR_SPEED
    elapsed = ((clock.now() if now is None else now) - batch.created) * speed
    validating, processing, finalizing = _phases(batch)
    if batch.errors:
        end, end_status = validating, "failed"
    else:
        expire_at = WINDOW_S
        if "expire" in batch.faults:
            expire_at = validating + float(batch.faults["expire"].get("fraction", 0.5)) * processing
        if validating + processing > expire_at:
            end, end_status = expire_at, "expired"
        else:
            end, end_status = validating + processing + finalizing, "completed"
    cancel_at = (batch.cancel_requested - batch.created) * speed if batch.cancel_requested else math.inf
    if cancel_at < end:
        end, end_status = cancel_at + CANCELLING_S, "cancelled"
    stamps: dict[str, float] = {}
    if elapsed >= validating and validating < cancel_at and not batch.errors:
        stamps["in_progress_at"] = validating
    stop = min(elapsed, cancel_at, end)
    # The small epsilon keeps 9.999… requests (float arithmetic) from counting as 9.
    done = (
        max(0, min(batch.total, int((stop - validating) / PER_REQUEST_S + 1e-9))) if not batch.errors else 0
    )
    if elapsed >= end:
        status = end_status
        stamps[f"{end_status}_at"] = end
    elif elapsed >= cancel_at:
        status = "cancelling"
    elif elapsed < validating:
        status = "validating"
    elif elapsed < validating + processing:
        status = "in_progress"
    else:
        status = "finalizing"
    if status in ("finalizing", "completed"):
        stamps["finalizing_at"] = validating + processing
    if status in ("cancelling", "cancelled"):
        stamps["cancelling_at"] = cancel_at
    real = {key: batch.created + value / speed for key, value in stamps.items()}
    return State(status, done, real)


def _token_limit_error(model: str) -> dict:
    return {
        "code": "token_limit_exceeded",
        "line": None,
        "param": None,
        "message": f"Enqueued token limit reached for {model} in organization org-simulator. "
        f"Limit: {settings.SIMULATOR_ENQUEUED_TOKEN_LIMIT:,} enqueued tokens. Please try "
        "again once some in_progress batches have been completed.",
    }


# The longest a batch can live, in simulated seconds: it expires at the end of its window, and
# finalizing (20 s and a millisecond a request, 50,000 at most) or cancelling follows.
_LONGEST_LIFE_S = WINDOW_S + FINALIZING_S + validation.MAX_REQUESTS * 0.001 + CANCELLING_S


def _over_token_limit(batch: SimBatch, checked: validation.Checked) -> bool:
    """Whether the batch's tokens, with those of the project's earlier batches of the same model
    still enqueued when its validation ends, pass the budget. Each key has its own budget, so
    that one key's batches never hold up another's."""
    if not checked.model:
        return False
    at = batch.created + _phases(batch)[0] / settings.SIMULATOR_SPEED
    # Only a batch stuck finalizing lives longer than this: those created before it have ended by `at`.
    horizon = at - _LONGEST_LIFE_S / settings.SIMULATOR_SPEED
    earlier = (
        SimBatch.objects.filter(
            Q(created__gt=horizon) | Q(faults__has_key="stuck_finalizing"),
            project=batch.project,
            model=checked.model,
            validated=True,
            errors__isnull=True,
            created__lte=batch.created,
        )
        .exclude(pk=batch.pk)
        .defer("failing", "metadata")  # lists as long as the batch, which the timeline never reads
    )
    in_flight = sum(
        other.input_tokens
        for other in earlier
        if (other.created, other.id) < (batch.created, batch.id)
        and state(other, now=at).status not in TERMINAL
    )
    return in_flight + checked.input_tokens > settings.SIMULATOR_ENQUEUED_TOKEN_LIMIT


def _check(batch: SimBatch) -> None:
    """Check the batch's input file and store what was found, once (the first check stored wins)."""
    sim_file = SimFile.objects.filter(pk=batch.input_file_id, project=batch.project).first()
    if sim_file is None:
        checked = validation.Checked(
            errors=[
                {
                    "code": "invalid_request",
                    "line": None,
                    "param": "file_id",
                    "message": f"Cannot find file {batch.input_file_id}, or organization "
                    "org-simulator does not have access to it.",
                }
            ]
        )
    else:
        with storage.open(batch.input_file_id) as source:
            checked = validation.check_file(source, batch.endpoint)
    errors = checked.errors
    if not errors and "validation_failure" in batch.faults:
        params = batch.faults["validation_failure"]
        errors = [
            {
                "code": params.get("code", "invalid_request"),
                "line": params.get("line"),
                "param": params.get("param"),
                "message": params.get("message", "Simulated validation failure."),
            }
        ]
    if not errors and ("token_limit" in batch.faults or _over_token_limit(batch, checked)):
        errors = [_token_limit_error(checked.model)]
    SimBatch.objects.filter(pk=batch.pk, validated=False).update(
        validated=True,
        model=checked.model,
        input_tokens=checked.input_tokens,
        failing=checked.failing,
        errors=errors or None,
    )


def validate(batch: SimBatch) -> SimBatch:
    """Check the batch's file once its validating phase is over (or it ended sooner, cancelled).

    The project's earlier batches waiting for their check are checked first, in the order they
    were created: their tokens count against this one's enqueued-token budget. Checking one of
    them before its own phase is over shows nowhere: its errors appear only once it has ended.
    """
    if batch.validated:
        return batch
    current = state(batch)
    elapsed = (clock.now() - batch.created) * settings.SIMULATOR_SPEED
    if elapsed < _phases(batch)[0] and current.status not in TERMINAL:
        return batch
    waiting = SimBatch.objects.filter(
        project=batch.project, validated=False, created__lte=batch.created
    ).order_by("created", "id")
    for other in waiting:
        # Another reader may have checked it since the list was read: a check takes seconds.
        unchecked = SimBatch.objects.filter(pk=other.pk, validated=False).exists()
        if unchecked and (other.created, other.id) <= (batch.created, batch.id):
            _check(other)
    batch.refresh_from_db()
    return batch


def _result_lines(batch: SimBatch, done: int, end_status: str):
    """(is_success, line bytes, input tokens, output tokens) for every request of the batch."""
    dropped = (
        batch.faults.get("drop_line", {}).get("index", batch.total - 1)
        if "drop_line" in batch.faults
        else None
    )
    with storage.open(batch.input_file_id) as source:
        index = -1
        for raw in source:
            if not raw.strip():
                continue
            index += 1
            record = orjson.loads(raw)
            if index == dropped:
                continue
            line = {
                "id": f"batch_req_{batch.id[6:22]}{index:06d}",
                "custom_id": record["custom_id"],
                "response": None,
                "error": None,
            }
            if index >= done:
                code = "batch_expired" if end_status == "expired" else "batch_cancelled"
                message = (
                    "This request could not be executed before the completion window expired."
                    if end_status == "expired"
                    else "This request was not executed because the batch was cancelled."
                )
                line["error"] = {"code": code, "message": message}
                yield False, orjson.dumps(line), 0, 0
                continue
            request_id = f"req_{answers._seed(batch.id, index).hex()[:32]}"
            try:
                body, tokens_in, tokens_out = answers.answer(batch.endpoint, record["body"])
                line["response"] = {"status_code": 200, "request_id": request_id, "body": body}
                yield True, orjson.dumps(line), tokens_in, tokens_out
            except answers.RequestFailed as failure:
                line["response"] = {
                    "status_code": failure.status,
                    "request_id": request_id,
                    "body": failure.body(),
                }
                yield False, orjson.dumps(line), 0, 0


def _write_shuffled(lines: list[bytes], rng: random.Random, handle) -> None:
    rng.shuffle(lines)
    handle.write(b"\n".join(lines) + b"\n")
    lines.clear()


def _finalize(batch: SimBatch, current: State) -> dict:
    """Write the output and error files of a batch that has reached its end; returns its final state."""
    final = {
        "status": current.status,
        "stamps": current.stamps,
        "output_file_id": None,
        "error_file_id": None,
        "completed": 0,
        "failed": 0,
        "usage": None,
    }
    # A file that failed its check had no request taken, even when the batch was cancelled first.
    if current.status == "failed" or batch.errors:
        return final
    rng = random.Random(batch.id)
    usage_in = usage_out = 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pending: dict[bool, list[bytes]] = {True: [], False: []}
        for ok, line, tokens_in, tokens_out in _result_lines(batch, current.done, current.status):
            final["completed" if ok else "failed"] += 1
            usage_in += tokens_in
            usage_out += tokens_out
            pending[ok].append(line)
            if len(pending[ok]) >= SHUFFLE_WINDOW:
                _write_shuffled(pending[ok], rng, out if ok else err)
        for ok, handle in ((True, out), (False, err)):
            if pending[ok]:
                _write_shuffled(pending[ok], rng, handle)
        for ok, handle, key in ((True, out, "output_file_id"), (False, err, "error_file_id")):
            if handle.tell():
                handle.seek(0)
                kind = "output" if ok else "error"
                final[key] = storage.save(
                    File(handle),
                    f"batch_{batch.id}_{kind}.jsonl",
                    "batch_output",
                    # The batch's output_expires_after, anchored at the file's creation as OpenAI does.
                    batch.output_expires_after,
                    project=batch.project,
                ).id
    final["usage"] = {
        "input_tokens": usage_in,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage_out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage_in + usage_out,
    }
    return final


def settle(batch: SimBatch) -> SimBatch:
    """Bring a batch up to date: at its end, write its files exactly once."""
    if batch.final:
        return batch
    batch = validate(batch)
    current = state(batch)
    if current.status not in TERMINAL:
        return batch
    final = _finalize(batch, current)
    # Two readers may finish the same batch at once; the first stored result wins and the
    # other one's files are removed.
    won = SimBatch.objects.filter(pk=batch.pk, final__isnull=True).update(final=final)
    if not won:
        for key in ("output_file_id", "error_file_id"):
            if final[key]:
                storage.delete(final[key])
    batch.refresh_from_db()
    return batch


def present(batch: SimBatch, *, just_created: bool = False) -> dict:
    """The Batch object as the API returns it; `just_created`: as the create call answers, at once,
    whatever the speed of simulated time (it neither checks the file nor moves the batch on)."""
    batch = batch if just_created else settle(batch)
    if batch.final:
        status, stamps = batch.final["status"], batch.final["stamps"]
        completed, failed = batch.final["completed"], batch.final["failed"]
        output_id, error_id, usage = (
            batch.final["output_file_id"],
            batch.final["error_file_id"],
            batch.final["usage"],
        )
    else:
        current = state(batch, now=batch.created if just_created else None)
        status, stamps = current.status, current.stamps
        failed = sum(1 for index in batch.failing if index < current.done)
        completed, output_id, error_id, usage = current.done - failed, None, None, None
    created = int(batch.created)
    body = {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "model": batch.model or None,
        "errors": {"object": "list", "data": batch.errors} if batch.errors and status == "failed" else None,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": status,
        "output_file_id": output_id,
        "error_file_id": error_id,
        "created_at": created,
        "expires_at": created + int(WINDOW_S),
        "request_counts": {
            "total": 0 if status == "failed" else batch.total,
            "completed": completed,
            "failed": failed,
        },
        "usage": usage,
        # OpenAI answers {} for a batch created without metadata; clients read it as an object.
        "metadata": batch.metadata or {},
    }
    if status == "validating":
        body["request_counts"]["total"] = 0
    for key in (
        "in_progress_at",
        "finalizing_at",
        "completed_at",
        "failed_at",
        "expired_at",
        "cancelling_at",
        "cancelled_at",
    ):
        body[key] = int(stamps[key]) if key in stamps else None
    return body
