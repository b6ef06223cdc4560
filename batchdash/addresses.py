"""Refuses an address no page can read: one with a NUL character in its path or query string.

PostgreSQL refuses a NUL in any text, so a query built from such a parameter fails deep inside
whichever view (ours or the Django admin's) reads it. Nobody types one; refusing the request as
it arrives keeps every page, present and future, from answering 500 for it.
"""

from urllib.parse import unquote

from django.shortcuts import render

SIMULATOR = "/simulator/"


class RefuseNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # The simulator answers as OpenAI does, in JSON, and refuses such ids itself.
        if request.path_info.startswith(SIMULATOR):
            return self.get_response(request)
        raw = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path_info or "\x00" in unquote(raw):
            return render(request, "400.html", status=400)
        return self.get_response(request)
