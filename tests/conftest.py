"""Shared fixtures: people, the simulator served over real HTTP, an SDK client for it."""

import pytest
from django.contrib.auth.models import User


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user("alice", "alice@example.com", "alice-password-1")


@pytest.fixture
def bob(db) -> User:
    return User.objects.create_user("bob", "bob@example.com", "bob-password-1")


@pytest.fixture
def simulator_url(live_server, settings) -> str:
    """Base URL of the simulator, served by the live test server over real HTTP."""
    settings.SIMULATOR_API_KEYS = ["sk-simulator"]
    return f"{live_server.url}/simulator/v1"


@pytest.fixture
def sdk(simulator_url):
    """The real openai SDK pointed at the simulator (tests only; the app goes through jobs.openai_client)."""
    import openai

    return openai.OpenAI(base_url=simulator_url, api_key="sk-simulator", max_retries=0)
