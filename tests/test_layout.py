"""The repository's shape: state machines declared once and drawn in the README, small files, nothing
generated or secret in git."""

import re
import subprocess
from pathlib import Path

import pytest

from jobs import states
from jobs.models import Batch, Job

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_FOLDERS = ("data/", "data-ci/", "control/", "staticfiles/", "bench-data/", "test-artifacts/")
RUNTIME_NAMES = (".venv", "node_modules")
# Shapes of secrets: a Fernet key, an OpenAI-style key, a private key block.
SECRET_SHAPES = re.compile(
    rb"^[A-Za-z0-9_-]{43}=\s*$|\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}|-----BEGIN [A-Z ]*PRIVATE KEY-----", re.M
)


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def _mermaid_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```mermaid\n(.*?)```", text, re.S)]


def test_the_readme_draws_both_state_machines_as_they_are_declared():
    blocks = _mermaid_blocks((ROOT / "README.md").read_text())
    assert states.JOB.mermaid() in blocks
    assert states.BATCH.mermaid() in blocks


def test_the_models_take_their_statuses_from_the_declaration():
    assert Job.Status is states.JobStatus
    assert Batch.Status is states.BatchStatus
    for machine in (states.JOB, states.BATCH):
        for move in machine.moves:
            assert move.source in machine.states.values and move.target in machine.states.values


def test_a_move_that_is_not_declared_is_refused_before_touching_the_database():
    with pytest.raises(ValueError, match="no move from 'completed' to 'preparing'"):
        Job(pk=1, status="completed").transition(Job.Status.COMPLETED, Job.Status.PREPARING)
    with pytest.raises(ValueError):
        Batch(pk=1, status="done").transition(Batch.Status.DONE, Batch.Status.RUNNING)


def test_no_source_file_is_longer_than_500_lines():
    long = [
        f"{name}: {lines}"
        for name in _tracked()
        if name.endswith((".py", ".html", ".js", ".css")) and "/migrations/" not in name
        and not name.startswith("static/vendor/")
        for lines in [len((ROOT / name).read_text(errors="replace").splitlines())]
        if lines > 500
    ]
    assert long == []


def test_nothing_generated_or_secret_is_tracked():
    tracked = _tracked()
    assert [name for name in tracked if name.startswith(RUNTIME_FOLDERS)] == []
    assert [name for name in tracked if set(name.split("/")) & set(RUNTIME_NAMES)] == []
    assert [name for name in tracked if re.search(r"secret_key|encryption_key|\.sqlite3$|\.pem$", name)] == []
    looks_secret = [
        name
        for name in tracked
        # Tests hold made-up keys on purpose, to show that they never leak.
        if not name.startswith("tests/")
        and (ROOT / name).is_file()
        and SECRET_SHAPES.search((ROOT / name).read_bytes()[:1_000_000])
    ]
    assert looks_secret == []


def test_gitignore_covers_every_runtime_folder():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for folder in RUNTIME_FOLDERS:
        assert f"/{folder}" in ignored or folder in ignored, folder
