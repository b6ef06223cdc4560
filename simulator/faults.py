"""Fault knobs: make the simulator fail the way real providers do, on purpose.

Armed from Python (`arm(...)`) or the `simulator_fault` command and kept in the
database, so a fault armed by a test also hits a worker in another process.

Per call (op is e.g. "batches.create", "batches.retrieve", "files.create", "files.content", "*"):
- "http_error": answer `status` (with `retry_after` seconds, `code`, `message`) instead of working;
- "delay": sleep `seconds` before answering;
- "commit_then_error": do the work (create the batch or file), then answer `status` anyway;
- "commit_then_delay": do the work, then sleep `seconds` (past the client's timeout);
- "file_not_ready": batches.create answers 400 "Cannot find file" although the file exists.
Per batch (op "batches.create"; the next created batch gets it):
- "validation_failure": the batch fails validation (`code`, `message`, `line`);
- "token_limit": the batch fails with token_limit_exceeded;
- "expire": the batch expires when `fraction` of its requests are done;
- "stuck_finalizing": the batch never leaves finalizing;
- "drop_line": one request (`index`, default the last) is missing from both result files.
The `message` of "http_error" and "validation_failure" may hold `{key}`, replaced by the
caller's API key, as some providers echo the whole key in their errors.
Per row: a request whose text contains `[[simulate:<code>]]` fails with that error code
(rate_limit_exceeded 429, server_error 500, anything else 400), in the batch's error file.
"""

from django.db import transaction

from simulator.models import Fault

CALL_KINDS = {"http_error", "delay", "commit_then_error", "commit_then_delay", "file_not_ready"}
BATCH_KINDS = {"validation_failure", "token_limit", "expire", "stuck_finalizing", "drop_line"}


def arm(op: str, kind: str, times: int = 1, **params) -> Fault:
    if kind not in CALL_KINDS | BATCH_KINDS:
        raise ValueError(f"Unknown fault kind {kind!r}")
    return Fault.objects.create(op=op, kind=kind, remaining=times, params=params)


def clear() -> None:
    Fault.objects.all().delete()


def take(op: str, kinds: set[str] = CALL_KINDS) -> Fault | None:
    """Use up one armed fault for this call, if any; the oldest first."""
    with transaction.atomic():
        fault = (
            Fault.objects.select_for_update()
            .filter(op__in=[op, "*"], kind__in=kinds, remaining__gt=0)
            .order_by("id")
            .first()
        )
        if fault is None:
            return None
        fault.remaining -= 1
        if fault.remaining:
            fault.save(update_fields=["remaining"])
        else:
            fault.delete()
    return fault


def take_batch_faults() -> dict:
    """Every batch-level fault armed for the next batch, as {kind: params}."""
    found = {}
    while fault := take("batches.create", BATCH_KINDS):
        found[fault.kind] = fault.params
    return found
