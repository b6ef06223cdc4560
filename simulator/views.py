"""The simulator's HTTP API, shaped like OpenAI's so that the real SDK cannot tell the difference.

Every answer carries an x-request-id; every error uses OpenAI's envelope; a bearer key
from SIMULATOR_API_KEYS is required. Files and batches belong to the key that created
them (its project): another key gets 404 for them and does not see them in lists, as
with OpenAI's projects. Armed faults (simulator.faults) apply per call.
"""

import secrets
import time
from functools import wraps

import orjson
from django.conf import settings
from django.db import transaction
from django.http import FileResponse, HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt

from simulator import clock, faults, lifecycle, storage, validation
from simulator.models import SimBatch, SimFile, project_of

# The batch endpoints served. BatchCreateParams also lists /v1/images/generations, /v1/images/edits
# and /v1/videos, which no simulated model serves: they get OpenAI's answer for an endpoint it
# does not take, the list of those it does.
ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/completions", "/v1/moderations")
MAX_UPLOAD_BYTES = 200 * 1000 * 1000


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        param=None,
        code=None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.headers = headers or {}


def _json(data, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), status=status, content_type="application/json")


def _error(exc: ApiError) -> HttpResponse:
    response = _json(
        {"error": {"message": exc.message, "type": exc.kind, "param": exc.param, "code": exc.code}},
        exc.status,
    )
    for name, value in exc.headers.items():
        response[name] = value
    return response


def _masked(key: str) -> str:
    return f"{key[:3]}***{key[-2:]}" if len(key) > 6 else "***"


def _accepted(key: str) -> bool:
    """Whether the key is one of SIMULATOR_API_KEYS, compared in constant time: it guards data now."""
    return bool(key) and any(constant_time_compare(key, accepted) for accepted in settings.SIMULATOR_API_KEYS)


def _echo(message: str, key: str) -> str:
    """An armed fault's message with `{key}` replaced by the caller's key, as some providers echo it."""
    return message.replace("{key}", key)


def api(ops: dict[str, str]):
    """Method check, bearer auth, per-call faults, error envelope and x-request-id.

    `ops` names the operation of each allowed method, as faults are armed for it.
    """

    def decorate(view):
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            try:
                if request.method not in ops:
                    raise ApiError(405, f"Method {request.method} is not allowed here.")
                key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                if not _accepted(key):
                    raise ApiError(
                        401,
                        f"Incorrect API key provided: {_masked(key)}. You can find your API key at "
                        "https://platform.openai.com/account/api-keys.",
                        code="invalid_api_key",
                    )
                request.sim_project = project_of(key)
                request.sim_key = key
                fault = faults.take(ops[request.method])
                commit_then = None
                if fault and fault.kind == "http_error":
                    status = int(fault.params.get("status", 500))
                    headers = {}
                    if fault.params.get("retry_after") is not None:
                        headers["retry-after"] = str(fault.params["retry_after"])
                    raise ApiError(
                        status,
                        _echo(fault.params.get("message", "Simulated failure."), key),
                        "server_error"
                        if status >= 500
                        else "requests"
                        if status == 429
                        else "invalid_request_error",
                        code=fault.params.get("code"),
                        headers=headers,
                    )
                if fault and fault.kind == "delay":
                    time.sleep(float(fault.params.get("seconds", 1)))
                if fault and fault.kind in ("commit_then_error", "commit_then_delay", "file_not_ready"):
                    commit_then = fault
                if commit_then and commit_then.kind == "file_not_ready":
                    raise ApiError(
                        400,
                        f"Cannot find file {request_json(request).get('input_file_id')}, or "
                        "project proj_simulator does not have access to it.",
                        param="file_id",
                    )
                response = view(request, *args, **kwargs)
                if commit_then and commit_then.kind == "commit_then_delay":
                    time.sleep(float(commit_then.params.get("seconds", 5)))
                if commit_then and commit_then.kind == "commit_then_error":
                    raise ApiError(
                        int(commit_then.params.get("status", 500)),
                        "Simulated failure after the work was done.",
                        "server_error",
                    )
            except ApiError as exc:
                response = _error(exc)
            response["x-request-id"] = f"req_{secrets.token_hex(16)}"
            return response

        return wrapper

    return decorate


def refuse(problem: tuple[str, str, str] | None) -> None:
    """A problem found by simulator.validation, as (param, message, code), answered 400."""
    if problem:
        param, message, code = problem
        raise ApiError(400, message, param=param, code=code)


def request_json(request: HttpRequest) -> dict:
    try:
        data = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError:
        raise ApiError(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return data


def _start(ids: list[str], after: str | None, missing: str) -> int:
    """Where a page starts: just past `after`.

    An `after` that names no object (never made, or deleted since) is a 404, as for any unknown
    id: starting again at the first page would make an auto-paginating client repeat objects.
    """
    if not after:
        return 0
    if after not in ids:
        raise ApiError(404, missing, param="after")
    return ids.index(after) + 1


def _page(items: list, after: str | None, limit: int) -> dict:
    ids = [item["id"] for item in items]
    start = _start(ids, after, f"No such File object: {after}")
    data = items[start : start + limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": start + limit < len(items),
    }


def _limit(request: HttpRequest, default: int, maximum: int) -> int:
    try:
        limit = int(request.GET.get("limit", default))
    except ValueError:
        raise ApiError(400, "Invalid value for 'limit'.", param="limit", code="invalid_value") from None
    if not 1 <= limit <= maximum:
        raise ApiError(
            400, f"Invalid 'limit': must be between 1 and {maximum}.", param="limit", code="invalid_value"
        )
    return limit


# --- Files ---------------------------------------------------------------------------


@api({"GET": "files.list", "POST": "files.create"})
def files(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        listed = SimFile.objects.filter(project=request.sim_project)
        if request.GET.get("purpose"):
            refuse(validation.purpose_problem(request.GET["purpose"], listing=True))
            listed = listed.filter(purpose=request.GET["purpose"])
        ordered = (
            listed.order_by("created", "id")
            if request.GET.get("order") == "asc"
            else listed.order_by("-created", "-id")
        )
        items = [storage.present(f) for f in ordered]
        return _json(_page(items, request.GET.get("after"), _limit(request, 10_000, 10_000)))
    upload = request.FILES.get("file")
    purpose = request.POST.get("purpose")
    if upload is None:
        raise ApiError(
            400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
        )
    if not purpose:
        raise ApiError(
            400, "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
        )
    refuse(validation.purpose_problem(purpose, listing=False))
    if purpose == "batch" and not (upload.name or "").endswith(".jsonl"):
        raise ApiError(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
    if upload.size > MAX_UPLOAD_BYTES:
        raise ApiError(400, "File is too large.", param="file")
    saved = storage.save(upload, upload.name, purpose, _expires_after(request), project=request.sim_project)
    return _json(storage.present(saved))


def _expires_after(request: HttpRequest) -> int | None:
    """The upload's expires_after[anchor] and [seconds] form fields, checked as the API does."""
    seconds = request.POST.get("expires_after[seconds]")
    refuse(validation.expiry_problem(request.POST.get("expires_after[anchor]"), seconds))
    return int(seconds) if seconds else None


def _get_file(request: HttpRequest, file_id: str) -> SimFile:
    plausible = validation.plausible_id(file_id)
    sim_file = SimFile.objects.filter(pk=file_id, project=request.sim_project).first() if plausible else None
    if sim_file is None:
        raise ApiError(404, f"No such File object: {file_id}", param="id")
    return sim_file


@api({"GET": "files.retrieve", "DELETE": "files.delete"})
def file_detail(request: HttpRequest, file_id: str) -> HttpResponse:
    sim_file = _get_file(request, file_id)
    if request.method == "DELETE":
        storage.delete(file_id)
        return _json({"id": file_id, "object": "file", "deleted": True})
    return _json(storage.present(sim_file))


@api({"GET": "files.content"})
def file_content(request: HttpRequest, file_id: str) -> HttpResponse:
    _get_file(request, file_id)
    return FileResponse(storage.open(file_id), content_type="application/octet-stream")


# --- Batches ---------------------------------------------------------------------------


@api({"GET": "batches.list", "POST": "batches.create"})
def batches(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _list_batches(request)
    data = request_json(request)
    for name in ("input_file_id", "endpoint", "completion_window"):
        if data.get(name) is None:
            raise ApiError(
                400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
            )
    endpoint = data.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise ApiError(
            400,
            f"Invalid value: {validation.shown(endpoint)}. Supported values are: "
            + ", ".join(f"'{e}'" for e in ENDPOINTS)
            + ".",
            param="endpoint",
            code="invalid_value",
        )
    if data.get("completion_window") != "24h":
        raise ApiError(
            400,
            f"Invalid value for 'completion_window': {validation.shown(data.get('completion_window'))}. "
            "Supported values are: '24h'.",
            param="completion_window",
            code="invalid_value",
        )
    metadata = data.get("metadata")
    refuse(validation.metadata_problem(metadata))
    policy = data.get("output_expires_after")
    refuse(validation.output_ttl_problem(policy))
    output_ttl = policy["seconds"] if policy is not None else None
    input_file_id = data.get("input_file_id")
    if not input_file_id:
        raise ApiError(
            400,
            "Missing required parameter: 'input_file_id'.",
            param="input_file_id",
            code="missing_required_parameter",
        )
    if not validation.plausible_id(input_file_id):
        raise ApiError(
            400, "Invalid 'input_file_id': expected a file id.", param="input_file_id", code="invalid_value"
        )
    batch_faults = faults.take_batch_faults()
    if "validation_failure" in batch_faults:
        # The key is known only now: a message that echoes it is written out at create.
        params = batch_faults["validation_failure"]
        params["message"] = _echo(params.get("message", "Simulated validation failure."), request.sim_key)
    # OpenAI answers at once, `validating`; the file is checked afterwards (lifecycle.validate).
    batch = SimBatch.objects.create(
        id=storage.new_id("batch_", 32, "0123456789abcdef"),
        project=request.sim_project,
        endpoint=endpoint,
        input_file_id=input_file_id,
        metadata=metadata,
        created=clock.now(),
        total=storage.count_requests(input_file_id, request.sim_project),
        validated=False,
        faults=batch_faults,
        output_expires_after=output_ttl,
    )
    return _json(lifecycle.present(batch, just_created=True))


def _list_batches(request: HttpRequest) -> HttpResponse:
    limit = _limit(request, 20, 100)
    ordered = list(SimBatch.objects.filter(project=request.sim_project).order_by("-created", "-id"))
    after = request.GET.get("after")
    start = _start([b.id for b in ordered], after, f"No batch found with id '{after}'.")
    page = ordered[start : start + limit]
    data = [lifecycle.present(b) for b in page]
    return _json(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": start + limit < len(ordered),
        }
    )


def _get_batch(request: HttpRequest, batch_id: str) -> SimBatch:
    plausible = validation.plausible_id(batch_id)
    batch = SimBatch.objects.filter(pk=batch_id, project=request.sim_project).first() if plausible else None
    if batch is None:
        raise ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
    return batch


@api({"GET": "batches.retrieve"})
def batch_detail(request: HttpRequest, batch_id: str) -> HttpResponse:
    return _json(lifecycle.present(_get_batch(request, batch_id)))


@api({"POST": "batches.cancel"})
def batch_cancel(request: HttpRequest, batch_id: str) -> HttpResponse:
    with transaction.atomic():
        batch = lifecycle.settle(_get_batch(request, batch_id))
        status = lifecycle.present(batch)["status"]
        if status in ("completed", "failed", "expired"):
            raise ApiError(409, f"Cannot cancel a batch with status '{status}'.")
        if status not in ("cancelling", "cancelled"):
            SimBatch.objects.filter(pk=batch.pk, cancel_requested__isnull=True).update(
                cancel_requested=clock.now()
            )
            batch.refresh_from_db()
    return _json(lifecycle.present(batch))
