"""No request parameter, however malformed, makes a page answer 500.

Like the access walk (tests/test_access.py), this introspects the URL configuration, so
a view added later is walked too, and must declare here what it reads. Each route is
filled with real objects and requested as their owner and as an admin, so that the views
really run; then every query parameter, form field and JSON key the view reads is sent
malformed, one at a time, the others valid, with each method the view accepts; and each
path parameter is filled with malformed values its converter lets through.
"""

import json
from urllib.parse import quote, unquote

import orjson
import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import Resolver404, get_resolver, resolve

from jobs.models import Job, ModelPrice, PromptTemplate, ProviderCredential
from simulator.models import SimBatch, SimFile
from tests.test_access import walk
from tests.test_pipeline import drive, new_job

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = b"Review Text\nfine\n[[simulate:server_error]] flaky\n[[simulate:context_length_exceeded]] long\n"
# What people and scripts send by mistake or on purpose: not a code, a digit int() refuses,
# negative, empty, very long, a NUL, not a number, too big for the database, infinity, a list.
MALFORMED = [
    "not-a-uuid",
    "²",
    "-1",
    "",
    "x" * 5000,
    "\x00",
    "abc",
    "99999999999999999999999",
    "1e999",
    "NaN",
    ["1", "²"],
]
# The same in JSON bodies, plus the wrong types.
MALFORMED_JSON = [*MALFORMED, None, 0, -1, 1.5, 10**30, True, [], {}, [1], {"a": 1}, ["a", None]]
SIMULATOR_KEY = "Bearer sk-simulator"


def job_fields(w) -> dict:
    """The new-job form, valid, with the first structured-output field typed."""
    return {
        "name": "Walk",
        "credential": str(w.credential.pk),
        "endpoint": "/v1/chat/completions",
        "model": "gpt-4o-mini",
        "system_prompt": "Answer in one word.",
        "user_prompt": "Sentiment of: {{ Review Text }}",
        "temperature": "0.3",
        "max_output_tokens": "5",
        "resubmit_expired": "on",
        "reuse_answers": "on",
        "skip_empty_rows": "on",
        "id_column": "",
        "pilot_output_tokens": "",
        "team": "",
        "field-0-name": "sentiment",
        "field-0-type": "text",
        "field-0-description": "how it feels",
        "field-0-labels": "",
    }


def key_fields(w) -> dict:
    return {
        "name": "Simulator",
        "kind": "simulator",
        "base_url": w.credential.base_url,
        "api_key": "",
        "organization": "",
        "project": "",
        "api_version": "",
        "is_active": "on",
        "is_default": "on",
        "max_requests_per_batch": "50000",
        "max_bytes_per_batch": "100000000",
        "poll_min_seconds": "0.2",
        "poll_max_seconds": "1",
        "enqueued_token_limit": "20000000",
        "model_token_limits": "{}",
        "monthly_budget": "",
        "approval_above": "",
        "reuse_scope": "team",
        "teams": "",
    }


def person_fields(w) -> dict:
    return {
        "first_name": "Alice",
        "last_name": "",
        "email": w.owner.email,
        "role": "member",
        "teams": str(w.team.pk),
        "password": "",
    }


def price_fields() -> dict:
    return {
        "model": "gpt-4o-mini",
        "input_per_million": "0.15",
        "output_per_million": "0.6",
        "batch_discount": "0.5",
        "context_window": "128000",
        "max_output_tokens": "16384",
        "as_of": "2026-11-01",
    }


def jsonl():
    return SimpleUploadedFile("in.jsonl", b'{"custom_id": "a"}\n', content_type="application/jsonl")


def chat(**extra) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]} | extra


def reads(w) -> dict[str, dict]:
    """What each route reads, by method: form fields (POST), query parameters (GET), or a JSON body.

    A value that is a callable is made afresh for each request (an uploaded file is read once).
    """
    form = job_fields(w)
    return {
        "": {"GET": {"status": "completed", "q": "Walk", "page": "1"}},
        "jobs/<uuid:code>/": {},
        "jobs/<uuid:code>/progress/": {},
        "jobs/<uuid:code>/row/": {},
        "jobs/<uuid:code>/start/": {},
        "jobs/<uuid:code>/start-first/": {"POST": {"rows": "1"}},
        "jobs/<uuid:code>/run-now/": {},
        "jobs/<uuid:code>/switch-to-batch/": {},
        "jobs/<uuid:code>/approve/": {},
        "jobs/<uuid:code>/decline/": {"POST": {"note": "Try fewer rows."}},
        "jobs/<uuid:code>/discard/": {},
        "jobs/<uuid:code>/send-again/": {},
        "jobs/<uuid:code>/cancel/": {},
        "jobs/<uuid:code>/delete/": {},
        # Row 3 cannot be fixed by sending it again: resending it starts nothing.
        "jobs/<uuid:code>/retry/": {"POST": {"scope": "selected", "row": "3"}},
        "jobs/<uuid:code>/failures/": {"GET": {"code": "server_error", "page": "1"}},
        "jobs/<uuid:code>/resend/": {
            "GET": {"code": "", "row": "3"},
            "POST": {
                "code": "",
                "row": "3",
                "step": "send",
                "system_prompt": "",
                "user_prompt": "Again: {{ Review Text }}",
            },
        },
        "jobs/<uuid:code>/resend/preview/": {
            "POST": {"code": "", "row": "3", "system_prompt": "", "user_prompt": "Again: {{ Review Text }}"}
        },
        "jobs/<uuid:code>/results/": {"GET": {"q": "fine", "status": "failed", "page": "1"}},
        "jobs/<uuid:code>/rows/<int:row>/": {},
        "jobs/<uuid:code>/download/<str:kind>/": {},
        "upload/": {"POST": {"file": lambda: SimpleUploadedFile("t.csv", b"A\n1\n"), "team": ""}},
        "datasets/<uuid:code>/reading/": {
            "POST": {
                "encoding": "utf-8",
                "delimiter": ",",
                "long_rows": w.dataset.long_rows,
                "short_rows": w.dataset.short_rows,
                "sheet": "Sheet1",
            }
        },
        "datasets/<uuid:code>/count/": {},
        "datasets/<uuid:code>/new-job/": {
            "GET": {"template": str(w.template.code), "edit": str(w.job.code)},
            "POST": form | {"replaces": str(w.job.code)},
        },
        "datasets/<uuid:code>/preview/": {"POST": form},
        "datasets/<uuid:code>/pilot/": {"POST": form},
        "datasets/<uuid:code>/compare/": {
            "POST": form | {"second_model": "gpt-4o", "third_model": "", "compare_rows": "1"}
        },
        "datasets/<uuid:code>/use-model/": {"POST": form | {"use_model": "gpt-4o"}},
        "datasets/<uuid:code>/save-template/": {"POST": form | {"template_name": "Walked"}},
        "templates/": {},
        "templates/<uuid:code>/delete/": {},
        "keys/": {},
        "keys/new/": {"POST": key_fields(w) | {"name": "Another", "api_key": "sk-simulator"}},
        "keys/<uuid:code>/": {"POST": key_fields(w)},
        "keys/<uuid:code>/test/": {},
        "keys/<uuid:code>/toggle/": {},
        "keys/<uuid:code>/delete/": {},
        "people/": {"POST": person_fields(w) | {"username": "walked", "password": ""}},
        "people/<str:username>/": {"POST": person_fields(w) | {"is_active": "on"}},
        "teams/": {"POST": {"name": "Walked", "monthly_budget": "10", "members": str(w.owner.pk)}},
        "teams/<int:pk>/": {"POST": {"name": "Team", "monthly_budget": "", "members": str(w.owner.pk)}},
        "prices/": {},
        "prices/new/": {"POST": price_fields() | {"model": "walked-model"}},
        "prices/<int:pk>/": {"POST": price_fields()},
        "approvals/": {},
        "spend/": {},
        "audit/": {"GET": {"action": "download", "person": "alice", "page": "1"}},
        "health/": {},
        "metrics": {},
        "login/": {"GET": {"next": "/"}, "POST": {"username": "nobody", "password": "wrong", "next": "/"}},
        "logout/": {"POST": {"next": "/"}},
        "simulator/v1/files": {
            "GET": {"purpose": "batch", "order": "asc", "after": w.sim_file.id, "limit": "5"},
            "POST": {
                "file": jsonl,
                "purpose": "batch",
                "expires_after[anchor]": "created_at",
                "expires_after[seconds]": "3600",
            },
        },
        "simulator/v1/files/<str:file_id>": {},
        "simulator/v1/files/<str:file_id>/content": {},
        "simulator/v1/batches": {
            "GET": {"limit": "5", "after": w.sim_batch.id},
            "JSON": {
                "input_file_id": w.sim_file.id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
                "metadata": {"job": "walk"},
            },
        },
        "simulator/v1/batches/<str:batch_id>": {},
        "simulator/v1/batches/<str:batch_id>/cancel": {},
        "simulator/v1/chat/completions": {
            "JSON": chat(
                temperature=0, max_completion_tokens=5, max_tokens=5, response_format={"type": "text"}
            )
        },
        "simulator/v1/responses": {
            "JSON": {
                "model": "gpt-4o-mini",
                "input": "hi",
                "instructions": "Be brief.",
                "max_output_tokens": 5,
                "text": {"format": {"type": "text"}},
            }
        },
        "simulator/v1/embeddings": {
            "JSON": {"model": "text-embedding-3-small", "input": ["hi"], "dimensions": 8}
        },
        "simulator/v1/completions": {
            "JSON": {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 5, "temperature": 0}
        },
        "simulator/v1/moderations": {"JSON": {"model": "omni-moderation-latest", "input": "hi"}},
        "simulator/v1/models": {},
        "simulator/v1/models/<str:model_id>": {},
        # Every other path under the simulator answers OpenAI's 404 envelope.
        "simulator/v1/^(?P<rest>.*)$": {},
    }


class World:
    """The objects a walk fills routes with: Alice's finished job with failed rows, her template, a key."""

    def __init__(self, alice, credential):
        self.owner, self.credential = alice, credential
        self.job = drive(new_job(alice, credential, content=CONTENT, name="Walk"))
        self.team = Group.objects.create(name="Team")
        self.price, _ = ModelPrice.objects.get_or_create(
            model="gpt-4o-mini", defaults={"input_per_million": 1, "as_of": "2026-01-01"}
        )
        self.dataset = self.job.dataset
        self.template = PromptTemplate.objects.create(
            owner=alice, name="Walk", model="gpt-4o-mini", user_prompt="About {{ Review Text }}"
        )
        # The simulator's own file and batch (the job's were deleted when it finished).
        client = Client(HTTP_AUTHORIZATION=SIMULATOR_KEY)
        line = orjson.dumps(
            {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": chat()}
        )
        upload = SimpleUploadedFile("in.jsonl", line + b"\n")
        file_id = client.post("/simulator/v1/files", {"file": upload, "purpose": "batch"}).json()["id"]
        batch = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
        batch_id = client.post("/simulator/v1/batches", batch, content_type="application/json").json()["id"]
        self.sim_file, self.sim_batch = SimFile.objects.get(pk=file_id), SimBatch.objects.get(pk=batch_id)

    def path_values(self, route: str) -> dict[str, str]:
        """Real codes for a route; deleting takes a spare object, so the walk goes on with the others."""
        deleting = route.endswith("delete/")
        if route.startswith("jobs/"):
            job = self.job
            if deleting:
                job = Job.objects.create(
                    owner=self.owner, dataset=self.dataset, credential=self.credential, name="Spare"
                )
            code = job.code
        elif route.startswith("datasets/"):
            code = self.dataset.code
        elif route.startswith("templates/"):
            template = self.template
            if deleting:
                template = PromptTemplate.objects.create(owner=self.owner, name="Spare", model="m")
            code = template.code
        elif route.startswith("keys/"):
            key = self.credential
            if deleting:
                key = ProviderCredential(name="Spare", kind=ProviderCredential.Kind.SIMULATOR)
                key.set_api_key("sk-spare")
                key.save()
            code = key.code
        else:
            code = ""
        return {
            "code": str(code),
            "row": "2",
            "kind": "results",
            "file_id": self.sim_file.id,
            "batch_id": self.sim_batch.id,
            "model_id": "gpt-4o-mini",
            "rest": "no-such-endpoint",
            "username": self.owner.username,
            "pk": str(self.team.pk if route.startswith("teams/") else self.price.pk),
        }


def fill(route: str, values: dict[str, str]) -> str:
    import re

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: quote(values[m.group(1)], safe=""), route)


def resolves(path: str) -> bool:
    try:
        resolve(unquote(path))
    except Resolver404:
        return False
    return True


def requests(route: str, wanted: dict, values: dict):
    """(method, path, data, what is malformed) for each request the walk sends to a route."""
    path = fill(route, values)
    for method in ("GET", "POST", "DELETE"):
        yield method, path, None, "nothing"
    for name in values:
        if f"<{name}>" not in route and f":{name}>" not in route:
            continue
        for bad in MALFORMED[:-1]:
            bad_path = fill(route, values | {name: bad})
            if resolves(bad_path):
                for method in ("GET", "POST", "DELETE"):
                    yield method, bad_path, None, f"path {name}={bad[:20]!r}"
    for method, fields in wanted.items():
        yield method, path, dict(fields), "nothing"
        for name in fields:
            for bad in MALFORMED_JSON if method == "JSON" else MALFORMED:
                shown = bad[:20] if isinstance(bad, str) else bad
                yield method, path, dict(fields) | {name: bad}, f"{name}={shown!r}"
            yield method, path, {k: v for k, v in fields.items() if k != name}, f"{name} missing"


def send(client: Client, method: str, path: str, data: dict | None):
    headers = {"HTTP_AUTHORIZATION": SIMULATOR_KEY} if path.startswith("/simulator/") else {}
    data = {k: v() if callable(v) else v for k, v in (data or {}).items()}
    if method == "JSON":
        return client.post(path, json.dumps(data), content_type="application/json", **headers)
    return (
        client.generic(method, path, **headers)
        if method == "DELETE"
        else (client.get(path, data, **headers) if method == "GET" else client.post(path, data, **headers))
    )


@pytest.fixture
def walkable(settings, alice, simulator_credential):
    settings.SIMULATOR_SPEED = 1_000_000
    settings.RATE_LIMIT_UPLOADS = settings.RATE_LIMIT_SUBMITS = settings.RATE_LIMIT_KEY_TESTS = "100000/h"
    settings.AXES_FAILURE_LIMIT = 1_000_000  # the login form is walked too, with many wrong passwords
    return World(alice, simulator_credential)


# Several thousand requests, a few hundred more with every form route: on a shared, loaded machine the
# walk outgrew the suite's 300 s, which is meant to catch a hang, not a long walk.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("who", ["owner", "admin"])
def test_no_malformed_parameter_makes_any_page_answer_500(walkable, who, django_user_model, settings):
    assert not settings.DEBUG
    routes = sorted(r for r in set(walk(get_resolver().url_patterns)) if not r.startswith("admin/"))
    user = walkable.owner
    if who == "admin":
        user = django_user_model.objects.create_user("root", "root@example.com", is_staff=True)
    spec = reads(walkable)
    assert sorted(set(routes) - set(spec)) == [], "declare what these views read"
    client = Client(raise_request_exception=False)
    failures, sent = [], 0
    for route in routes:
        for method, path, data, what in requests(route, spec[route], walkable.path_values(route)):
            client.force_login(user)  # again: the logout route ends the session
            response = send(client, method, path, data)
            sent += 1
            body = b"".join(response.streaming_content) if response.streaming else response.content
            if response.status_code >= 500 or b"Traceback" in body:
                failures.append(f"{method} /{route} {what} answered {response.status_code}")
            # The valid request must be accepted, or the malformed ones never reach the code under test.
            if who == "admin" and what == "nothing" and data is not None and response.status_code >= 400:
                failures.append(f"{method} /{route} refused its valid request: {response.status_code}")
    assert failures == [], f"{len(failures)} of {sent}:\n" + "\n".join(failures)
    assert sent > 1000
