"""The synchronous endpoints (chat completions, responses, embeddings, legacy completions,
moderations), the models, and OpenAI's 404 for every other path under the simulator's root.

Chat completions stream as server-sent events when asked; the other endpoints refuse `stream`
rather than answer a stream-reading client with one JSON body.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from simulator import answers, ratelimit, streaming, validation
from simulator.catalog import DEFAULT_MODERATION_MODEL, ENDPOINT_KINDS, MODELS
from simulator.views import ApiError, _json, api, refuse, request_json


def _synchronous(request: HttpRequest, endpoint: str) -> HttpResponse:
    body = request_json(request)
    if endpoint == "/v1/moderations":
        body.setdefault("model", DEFAULT_MODERATION_MODEL)
    model = body.get("model")
    if not model:
        raise ApiError(
            400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    refuse(validation.body_problem(endpoint, body))
    if MODELS.get(model, {}).get("kind") != ENDPOINT_KINDS[endpoint]:
        raise ApiError(
            404,
            f"The model '{model}' does not exist or you do not have access to it.",
            code="model_not_found",
        )
    stream = body.get("stream")
    if stream and endpoint != "/v1/chat/completions":
        # Only chat completions stream here; a silent JSON answer would leave a client's stream empty.
        raise ApiError(
            400,
            f"The simulator does not stream {endpoint}; send the request without 'stream'.",
            param="stream",
        )
    if body.get("stream_options") is not None and not stream:
        raise ApiError(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    try:
        response, used, out_tokens = answers.answer(endpoint, body)
    except answers.RequestFailed as failure:
        return _json(failure.body(), failure.status)
    try:
        limits = ratelimit.take(request.sim_project, used + out_tokens)
    except ratelimit.Limited as over:
        limit = getattr(settings, f"SIMULATOR_{over.which.upper()}_PER_MINUTE")
        raise ApiError(
            429,
            f"Rate limit reached for {model} on {over.which} per min (RPM/TPM): Limit {limit}. "
            f"Please try again in {over.wait * 1000:.0f}ms.",
            "requests" if over.which == "requests" else "tokens",
            code="rate_limit_exceeded",
            headers=over.headers,
        ) from None
    if stream:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = StreamingHttpResponse(
            streaming.chat_chunks(response, include_usage), content_type="text/event-stream; charset=utf-8"
        )
        events["Cache-Control"] = "no-cache"
        return _with(events, limits)
    return _with(_json(response), limits)


def _with(response: HttpResponse, headers: dict[str, str]) -> HttpResponse:
    for name, value in headers.items():
        response[name] = value
    return response


@api({"POST": "chat.completions"})
def chat_completions(request: HttpRequest) -> HttpResponse:
    return _synchronous(request, "/v1/chat/completions")


@api({"POST": "responses"})
def responses(request: HttpRequest) -> HttpResponse:
    return _synchronous(request, "/v1/responses")


@api({"POST": "embeddings"})
def embeddings(request: HttpRequest) -> HttpResponse:
    return _synchronous(request, "/v1/embeddings")


@api({"POST": "completions"})
def completions(request: HttpRequest) -> HttpResponse:
    return _synchronous(request, "/v1/completions")


@api({"POST": "moderations"})
def moderations(request: HttpRequest) -> HttpResponse:
    return _synchronous(request, "/v1/moderations")


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "simulator"}


@api({"GET": "models"})
def models(request: HttpRequest) -> HttpResponse:
    return _json({"object": "list", "data": [_model(name) for name in MODELS]})


@api({"GET": "models.retrieve"})
def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    if model_id not in MODELS:
        raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
    return _json(_model(model_id))


@api({method: "unknown" for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")})
def unknown(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Any other path under the root: OpenAI's JSON 404 rather than Django's HTML page."""
    raise ApiError(404, f"Invalid URL ({request.method} /v1/{rest})")
