"""The simulator through the official OpenAI Node.js SDK, run with the machine's node.

The SDK is installed from the npm registry into tests/node (pinned by its package-lock.json) the
first time; each case of tests/node/conformance.mjs runs against the live test server on a fresh
database: the whole batch flow (a chunked `fs.createReadStream` upload, create, retrieve, list,
download, cancel), chat (with streaming and a forced tool call), responses, embeddings (base64,
the SDK's default), moderations and the error envelopes.
"""

import os
import shutil
import subprocess

import pytest

from simulator import faults
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)
NODE_DIR = ROOT / "tests" / "node"


@pytest.fixture(scope="session")
def node() -> str:
    """The machine's node, with the pinned SDK installed (`npm ci`) if it is not yet."""
    node, npm = shutil.which("node"), shutil.which("npm")
    # Failing, not skipping: a missing node would otherwise pass CI without these checks.
    assert node and npm, "the Node SDK conformance tests need node and npm on the PATH"
    if not (NODE_DIR / "node_modules" / "openai" / "package.json").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600)
    return node


@pytest.mark.parametrize(
    "case", ["batch_flow", "cancel", "embeddings", "chat", "responses", "moderations", "errors"]
)
def test_the_node_sdk(case, node, simulator_url, settings):
    # Fast enough that a batch finishes within a few of the script's polls.
    settings.SIMULATOR_SPEED = 5_000
    if case == "cancel":
        faults.arm("batches.create", "stuck_finalizing")
    env = dict(os.environ, OPENAI_BASE_URL=simulator_url, OPENAI_API_KEY=settings.SIMULATOR_API_KEYS[0])
    env.pop("OPENAI_ORG_ID", None)
    env.pop("OPENAI_PROJECT_ID", None)
    run = subprocess.run(
        [node, str(NODE_DIR / "conformance.mjs"), case],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().endswith(f"ok {case}")
