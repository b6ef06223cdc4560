"""What admins set up: provider keys with their limits and budgets, model prices, team budgets."""

import uuid
from decimal import Decimal

from django.contrib.auth.models import Group
from django.db import models

from jobs.providers import crypto


class ProviderCredential(models.Model):
    """An API key for an OpenAI-compatible provider, entered by an admin.

    The key is stored encrypted and shown back only as its last four characters.
    The provider's batch limits and polling pace live here too, because they differ
    between OpenAI, Azure and other compatible servers.
    """

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        AZURE = "azure", "Azure OpenAI"
        COMPATIBLE = "compatible", "OpenAI-compatible server"
        SIMULATOR = "simulator", "Built-in simulator"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.OPENAI)
    base_url = models.URLField(blank=True, help_text="Leave empty for api.openai.com.")
    api_key_encrypted = models.TextField(editable=False)
    key_last4 = models.CharField(max_length=4, editable=False)
    organization = models.CharField(max_length=100, blank=True)
    project = models.CharField(max_length=100, blank=True)
    api_version = models.CharField(
        max_length=20, blank=True, help_text="Azure OpenAI only: the API version, e.g. 2024-10-21."
    )
    is_active = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False)
    # Set when the provider refused the key (401/403): its jobs wait until an admin replaces it.
    refused_at = models.DateTimeField(null=True, blank=True, editable=False)
    refused_message = models.TextField(blank=True, editable=False)
    # The admin's last test of the key (None: never tested). A key that failed it is not offered to
    # members until a test passes again, even after a new key is entered: only a test says it works.
    last_test_ok = models.BooleanField(null=True, editable=False)
    last_tested_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_test_message = models.TextField(blank=True, editable=False)
    teams = models.ManyToManyField(
        Group, blank=True, related_name="credentials", help_text="Leave empty to let everyone use it."
    )
    monthly_budget = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="US dollars per calendar month; jobs that would go over it are refused. Empty: no limit.",
    )
    approval_above = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Jobs estimated above this many dollars wait for an admin's approval. Empty: none wait.",
    )

    class ReuseScope(models.TextChoices):
        TEAM = "team", "Within the team: answers from jobs the owner can see"
        ORGANISATION = "organisation", "Organisation-wide: answers from any job"
        OFF = "off", "Off: every request is sent"

    # Which earlier answers to identical requests a job on this key may take instead of sending.
    reuse_scope = models.CharField(
        "Reuse of earlier answers",
        max_length=12,
        choices=ReuseScope.choices,
        default=ReuseScope.TEAM,
        help_text="A request identical to one already answered takes that answer instead of being sent "
        "(at temperature 0, for embeddings, and when the job's owner asks for it).",
    )
    max_requests_per_batch = models.PositiveIntegerField(default=50_000)
    max_bytes_per_batch = models.PositiveBigIntegerField(default=200 * 1000 * 1000)
    poll_min_seconds = models.FloatField(default=30.0)
    poll_max_seconds = models.FloatField(default=300.0)
    # The provider caps the prompt tokens of all batches waiting at once, per model.
    enqueued_token_limit = models.PositiveBigIntegerField(
        default=20_000_000,
        help_text="Prompt tokens that may wait at the provider at once, per model.",
    )
    model_token_limits = models.JSONField(
        default=dict,
        blank=True,
        help_text='Limits for particular models, overriding the one above: {"gpt-4o": 5000000}.',
    )
    # The provider's rate limits for the synchronous API (Run now paces itself by them). Empty: not known,
    # and Run now goes one request at a time, slowing down when the provider answers 429.
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute the provider allows this key. Empty: not known."
    )
    tokens_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tokens per minute the provider allows this key. Empty: not known."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.masked_key})"

    def set_api_key(self, raw_key: str) -> None:
        raw_key = raw_key.strip()
        self.api_key_encrypted = crypto.encrypt(raw_key)
        self.key_last4 = raw_key[-4:]

    def api_key(self) -> str:
        """The decrypted key; only jobs.providers.client calls this."""
        return crypto.decrypt(self.api_key_encrypted)

    @property
    def masked_key(self) -> str:
        return f"…{self.key_last4}" if self.key_last4 else "(none)"

    def token_limit(self, model: str) -> int:
        return int(self.model_token_limits.get(model) or self.enqueued_token_limit)


class KeyPace(models.Model):
    """When a key's next synchronous request and next tokens may go (jobs.providers.pace), shared by
    every worker process through the database. Kept apart from the key so that saving the key's form
    never puts back an old pace.
    """

    credential = models.OneToOneField(ProviderCredential, on_delete=models.CASCADE, related_name="pace")
    # Theoretical arrival times (unix seconds) of the generic cell rate algorithm, one per limit.
    requests_at = models.FloatField(default=0)
    tokens_at = models.FloatField(default=0)

    def __str__(self) -> str:
        return f"pace of {self.credential}"


class ModelPrice(models.Model):
    """A model's synchronous list price in US dollars per million tokens, kept by admins.

    Batch requests cost `batch_discount` times these (half, at OpenAI).
    """

    model = models.CharField(max_length=100, unique=True)
    input_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    output_per_million = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    batch_discount = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.5"))
    context_window = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most tokens a request may hold, prompt and answer together."
    )
    max_output_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="The longest answer the model can give, in tokens."
    )
    as_of = models.DateField(help_text="When these prices were checked.")

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return self.model


class TeamBudget(models.Model):
    """A team's monthly spending limit, across every key its jobs use."""

    team = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="budget")
    monthly_budget = models.DecimalField(max_digits=12, decimal_places=2, help_text="US dollars per month.")

    def __str__(self) -> str:
        return f"{self.team} (${self.monthly_budget}/month)"
