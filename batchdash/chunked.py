"""Request bodies sent with `Transfer-Encoding: chunked` and no Content-Length.

Clients such as the OpenAI Node SDK stream an upload (`fs.createReadStream`) without knowing its
length. Gunicorn decodes the chunks and says, with `wsgi.input_terminated`, that `wsgi.input` ends
where the body ends; but Django builds its request stream from CONTENT_LENGTH, which is missing,
so it reads such a body as empty: a file upload "has no file" and a JSON body is `{}`.

ChunkedBodyMiddleware reads such a body to its end, up to CHUNKED_BODY_MAX_BYTES, before any view
or other middleware looks at it, and hands Django a stream of the right length. A server that
cannot say where the body ends (no `wsgi.input_terminated`) gets a 411, as HTTP allows, rather
than a request silently read as empty.
"""

import tempfile

import orjson
from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse

READ_SIZE = 1 << 16


def is_chunked(environ) -> bool:
    encodings = environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    return "chunked" in encodings and not environ.get("CONTENT_LENGTH")


def _refusal(request: HttpRequest, status: int, message: str) -> HttpResponse:
    # Under the simulator every answer must be OpenAI's JSON envelope, which clients parse.
    if request.path.startswith("/simulator/"):
        body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
        return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class ChunkedBodyMiddleware:
    """Reads a chunked body to its end so that request.body, POST and FILES see all of it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_chunked(request.META):
            return self.get_response(request)
        if not request.META.get("wsgi.input_terminated"):
            return _refusal(request, 411, "A request body needs a Content-Length on this server.")
        limit = settings.CHUNKED_BODY_MAX_BYTES
        # Large uploads go to a temporary file, as Django does for multipart files.
        with tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE) as body:
            source = request.META["wsgi.input"]
            size = 0
            while chunk := source.read(READ_SIZE):
                size += len(chunk)
                if size > limit:
                    return _refusal(request, 413, f"The request body is over {limit} bytes.")
                body.write(chunk)
            body.seek(0)
            request.META["CONTENT_LENGTH"] = str(size)
            # Django made its stream from the missing CONTENT_LENGTH (so of length 0) when it
            # built the request; nothing has read it yet, so it can still be replaced.
            request._stream = LimitedStream(body, size)
            return self.get_response(request)
