"""The simulator is not open to whoever reaches the server: its key is generated, not public, and
each key sees only its own files and batches, as an OpenAI project does."""

import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai
import pytest
from django.core.management import call_command

from jobs.models import ProviderCredential
from tests.conftest import ROOT
from tests.test_simulator import chat, jsonl

pytestmark = pytest.mark.django_db(transaction=True)

OTHER_KEY = "sk-sim-another-team-key"
ENDPOINT = "/v1/chat/completions"


@pytest.fixture
def other_sdk(sdk, settings):
    """A second key of the same simulator: another team's, another project."""
    settings.SIMULATOR_API_KEYS = ["sk-simulator", OTHER_KEY]
    return openai.OpenAI(base_url=str(sdk.base_url), api_key=OTHER_KEY, max_retries=0)


def _settings_of(data_dir, **env) -> dict[str, str]:
    """Settings as a fresh process with this environment reads them."""
    script = (
        "import django, json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'batchdash.settings'; "
        "django.setup(); "
        "from django.conf import settings as s; "
        "print(json.dumps({'keys': s.SIMULATOR_API_KEYS}))"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SIMULATOR_")}
    environment |= {"DATA_DIR": str(data_dir), **env}
    result = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_fresh_install_generates_its_own_private_simulator_key(tmp_path):
    first = _settings_of(tmp_path)["keys"]
    assert len(first) == 1 and first != ["sk-simulator"] and len(first[0]) > 40
    assert (tmp_path / "simulator_api_key").stat().st_mode & 0o777 == 0o600
    assert _settings_of(tmp_path)["keys"] == first  # kept across restarts
    assert _settings_of(tmp_path / "other")["keys"] != first  # and not shared between installs
    assert _settings_of(tmp_path, SIMULATOR_API_KEYS="sk-mine,sk-yours")["keys"] == ["sk-mine", "sk-yours"]


def test_the_built_in_simulator_credential_uses_the_generated_key(settings):
    settings.SIMULATOR_API_KEYS = ["sk-sim-generated-for-this-install"]
    call_command("ensure_setup", stdout=io.StringIO())
    credential = ProviderCredential.objects.get(kind=ProviderCredential.Kind.SIMULATOR)
    assert credential.api_key() == "sk-sim-generated-for-this-install"

    # An install from before holds the old public key: the next start moves it to the new one.
    credential.set_api_key("sk-simulator")
    credential.save()
    call_command("ensure_setup", stdout=io.StringIO())
    credential.refresh_from_db()
    assert credential.api_key() == "sk-sim-generated-for-this-install"


def test_the_old_public_key_no_longer_opens_the_simulator(simulator_url, settings):
    settings.SIMULATOR_API_KEYS = ["sk-sim-generated-for-this-install"]
    stranger = openai.OpenAI(base_url=simulator_url, api_key="sk-simulator", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.batches.list()
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{simulator_url}/files")  # noqa: S310 - the test's own server
    assert anonymous.value.code == 401


def test_another_key_neither_sees_nor_touches_a_projects_files_and_batches(sdk, other_sdk, settings):
    settings.SIMULATOR_SPEED = 1_000_000  # validation is over at once
    mine = sdk.files.create(file=("input.jsonl", io.BytesIO(jsonl(chat(1)))), purpose="batch")
    batch = sdk.batches.create(
        input_file_id=mine.id, endpoint="/v1/chat/completions", completion_window="24h"
    )

    assert [f.id for f in other_sdk.files.list()] == []
    assert [b.id for b in other_sdk.batches.list()] == []
    for attempt in (
        lambda: other_sdk.files.retrieve(mine.id),
        lambda: other_sdk.files.content(mine.id),
        lambda: other_sdk.files.delete(mine.id),
        lambda: other_sdk.batches.retrieve(batch.id),
        lambda: other_sdk.batches.cancel(batch.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    # A batch over another project's file fails validation, as OpenAI's "no access" does.
    theirs = other_sdk.batches.create(
        input_file_id=mine.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert "Cannot find file" in other_sdk.batches.retrieve(theirs.id).errors.data[0].message

    # The owner still has everything, untouched.
    assert sdk.batches.retrieve(batch.id).status != "cancelling"
    assert mine.id in [f.id for f in sdk.files.list()]
    assert [b.id for b in sdk.batches.list()] == [batch.id]
    assert sdk.files.content(mine.id).read() == jsonl(chat(1))


def test_a_finished_batchs_result_files_belong_to_its_project(sdk, other_sdk, settings):
    settings.SIMULATOR_SPEED = 1_000_000
    mine = sdk.files.create(file=("input.jsonl", io.BytesIO(jsonl(chat(1)))), purpose="batch")
    batch = sdk.batches.create(
        input_file_id=mine.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    time.sleep(0.2)
    done = sdk.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id
    assert sdk.files.content(done.output_file_id).read()
    with pytest.raises(openai.NotFoundError):
        other_sdk.files.content(done.output_file_id)
