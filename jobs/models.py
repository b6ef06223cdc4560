"""Batchdash's tables: provider credentials, uploaded datasets, jobs and their provider batches.

Job and batch status are state machines kept here. Every transition that a worker
makes is a conditional UPDATE that tells the caller whether it won, so a task that
runs twice (redelivery, two workers, a restart) never does the work twice.
Pages read only these tables, never the provider.
"""

import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.deconstruct import deconstructible

from jobs import crypto


@deconstructible
class _PrivatePath:
    """Stored files get random names; the user's file name is only display metadata."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def __call__(self, instance, filename: str) -> str:
        suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
        return f"{self.prefix}/{uuid.uuid4().hex}.{suffix[:8]}"

    def __eq__(self, other) -> bool:
        return isinstance(other, _PrivatePath) and other.prefix == self.prefix


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
        """The decrypted key; only jobs.openai_client calls this."""
        return crypto.decrypt(self.api_key_encrypted)

    @property
    def masked_key(self) -> str:
        return f"…{self.key_last4}" if self.key_last4 else "(none)"

    def token_limit(self, model: str) -> int:
        return int(self.model_token_limits.get(model) or self.enqueued_token_limit)


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


class Dataset(models.Model):
    """An uploaded table, with what was learned from its head and the full row count."""

    class Status(models.TextChoices):
        COUNTING = "counting", "Counting rows"
        READY = "ready", "Ready"
        INVALID = "invalid", "Has a problem"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets")
    team = models.ForeignKey(Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="datasets")
    name = models.CharField(max_length=255)
    file = models.FileField(upload_to=_PrivatePath("datasets"))
    size_bytes = models.PositiveBigIntegerField(default=0)
    format = models.CharField(max_length=10, default="csv")
    encoding = models.CharField(max_length=40, blank=True)
    delimiter = models.CharField(max_length=4, blank=True)
    sheet = models.CharField(max_length=255, blank=True)
    columns = models.JSONField(default=list)
    preview = models.JSONField(default=list)
    problems = models.JSONField(default=list)
    problem_total = models.PositiveIntegerField(default=0)
    column_stats = models.JSONField(default=list)
    bad_rows = models.CharField(
        max_length=4,
        choices=[("skip", "Skip them and go on"), ("stop", "Stop, so that I can fix the file")],
        default="skip",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.COUNTING)
    count_progress = models.PositiveSmallIntegerField(default=0)
    row_count = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def delimiter_name(self) -> str:
        names = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes"}
        return names.get(self.delimiter, f"“{self.delimiter}”")


class PromptSettings(models.Model):
    """What is sent for each row: the prompts and the model's settings.

    Saved templates hold them to be reused; a job holds its own copy, made when it is
    created, so that later edits of a template never change a job.
    """

    class Endpoint(models.TextChoices):
        CHAT = "/v1/chat/completions", "Chat completions"
        RESPONSES = "/v1/responses", "Responses"
        EMBEDDINGS = "/v1/embeddings", "Embeddings"

    endpoint = models.CharField(max_length=40, choices=Endpoint.choices, default=Endpoint.CHAT)
    model = models.CharField(max_length=100)
    system_prompt = models.TextField(blank=True)
    user_prompt = models.TextField(blank=True)
    temperature = models.FloatField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Structured output: [{name, type, description, labels}], each a column of the results.
    output_fields = models.JSONField(default=list, blank=True)

    SETTINGS = (
        "endpoint",
        "model",
        "system_prompt",
        "user_prompt",
        "temperature",
        "max_output_tokens",
        "output_fields",
    )

    class Meta:
        abstract = True


class PromptTemplate(PromptSettings):
    """A named prompt and its settings, saved to reuse on other tables."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="templates")
    team = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="templates"
    )
    name = models.CharField(max_length=200)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Job(PromptSettings):
    """One user's run of a prompt template over a dataset; split into provider batches."""

    class Status(models.TextChoices):
        PREPARING = "preparing", "Preparing"
        PLANNED = "planned", "Ready to send"
        RUNNING = "running", "Running"
        NEEDS_ADMIN = "needs_admin", "Needs an admin"
        AWAITING_APPROVAL = "awaiting_approval", "Waiting for approval"
        FINISHING = "finishing", "Collecting results"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLING = "cancelling", "Cancelling"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
    CANCELLABLE = (
        Status.PREPARING,
        Status.PLANNED,
        Status.AWAITING_APPROVAL,
        Status.RUNNING,
        Status.NEEDS_ADMIN,
    )

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    team = models.ForeignKey(Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="jobs")
    credential = models.ForeignKey(ProviderCredential, on_delete=models.PROTECT, related_name="jobs")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PREPARING)

    resubmit_expired = models.BooleanField(
        default=True, help_text="Send again, in a follow-up batch, the rows of a batch that expired."
    )
    # The average answer length of the pilot run, if the user tried one: the plan's expected cost.
    pilot_output_tokens = models.FloatField(null=True, blank=True)
    id_column = models.CharField(
        max_length=255,
        blank=True,
        help_text="A column whose values name each row; empty to number the rows instead.",
    )
    skip_empty_rows = models.BooleanField(
        default=True, help_text="Do not send rows whose columns used by the prompt are all empty."
    )

    rows_total = models.PositiveIntegerField(default=0)
    rows_processed = models.PositiveIntegerField(default=0)
    rows_succeeded = models.PositiveIntegerField(default=0)
    rows_failed = models.PositiveIntegerField(default=0)
    # Failed rows worth sending again as they are, counted when the results are built.
    rows_retryable = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    # Prompt tokens as the provider reported them in its answers (what is billed).
    reported_input_tokens = models.PositiveBigIntegerField(default=0)
    # The plan's batch price when the job was prepared; None when the model has no price.
    estimated_cost = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    error = models.TextField(blank=True)

    results_file = models.FileField(upload_to=_PrivatePath("results"), blank=True)
    failures_file = models.FileField(upload_to=_PrivatePath("results"), blank=True)
    xlsx_file = models.FileField(upload_to=_PrivatePath("results"), blank=True)
    # Rows prepare left out (empty, or longer than the model accepts), as outcomes with the reason.
    skipped_file = models.FileField(upload_to=_PrivatePath("results"), blank=True)
    rows_skipped = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The job list, newest first, for a member and for an admin.
            models.Index(fields=["owner", "-created_at"], name="job_owner_recent"),
            models.Index(fields=["-created_at"], name="job_recent"),
            # The sweeper's query for jobs whose background step may have been lost.
            models.Index(
                fields=["status", "updated_at"],
                name="job_unfinished",
                condition=Q(status__in=["preparing", "finishing"]),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def is_moving(self) -> bool:
        """Work is under way without the user: the page keeps following it."""
        return self.status not in self.FINISHED and self.status not in (
            self.Status.PLANNED,
            self.Status.AWAITING_APPROVAL,
            self.Status.NEEDS_ADMIN,
        )

    @property
    def can_cancel(self) -> bool:
        return self.status in self.CANCELLABLE

    @property
    def percent_done(self) -> int:
        if self.status == self.Status.COMPLETED:
            return 100
        if not self.rows_total:
            return 0
        return min(100, int(100 * self.rows_processed / self.rows_total))

    @property
    def expected_finish(self):
        left = self.time_left
        return timezone.now() + left if left is not None else None

    @property
    def time_left(self) -> timedelta | None:
        """From the rate observed since the job was sent; None until there is a rate to go by."""
        if self.status != self.Status.RUNNING or not self.started_at or not self.rows_processed:
            return None
        remaining = self.rows_total - self.rows_processed
        if remaining <= 0:
            return None
        elapsed = (timezone.now() - self.started_at).total_seconds()
        return timedelta(seconds=elapsed * remaining / self.rows_processed)

    def transition(self, from_statuses, to_status: str, **fields) -> bool:
        """Move to `to_status` only if still in one of `from_statuses`; True if this caller won."""
        if isinstance(from_statuses, str):
            from_statuses = [from_statuses]
        won = Job.objects.filter(pk=self.pk, status__in=from_statuses).update(
            status=to_status, updated_at=timezone.now(), **fields
        )
        if won:
            self.refresh_from_db()
        return bool(won)


class Batch(models.Model):
    """One provider batch: a part of a job, from its request file to its reconciled outcomes.

    `status` is our own state machine; `remote_status` is what the provider said last.
    queued → submitting → running → downloading → done
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SUBMITTING = "submitting", "Submitting"
        RUNNING = "running", "At the provider"
        DOWNLOADING = "downloading", "Downloading results"
        DONE = "done", "Done"

    REMOTE_TERMINAL = ("completed", "failed", "expired", "cancelled")

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="batches")
    index = models.PositiveIntegerField()
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    # Our idempotency key: sent in the batch metadata and the upload's file name, so
    # that a retry after a crash finds what an earlier attempt already created.
    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    first_row = models.PositiveIntegerField()
    last_row = models.PositiveIntegerField()
    request_count = models.PositiveIntegerField()
    input_bytes = models.PositiveBigIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    input_file = models.FileField(upload_to=_PrivatePath("batches"))
    input_sha256 = models.CharField(max_length=64)

    remote_file_id = models.CharField(max_length=100, blank=True)
    remote_batch_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    remote_status = models.CharField(max_length=20, blank=True)
    remote_output_file_id = models.CharField(max_length=100, blank=True)
    remote_error_file_id = models.CharField(max_length=100, blank=True)
    remote_errors = models.JSONField(default=list, blank=True)
    remote_status_since = models.DateTimeField(null=True, blank=True)
    last_poll_ms = models.FloatField(null=True, blank=True)
    provider_files_deleted = models.BooleanField(default=False)
    # When the owner was told that this part is slower than usual (once per part).
    flagged_at = models.DateTimeField(null=True, blank=True)
    requests_completed = models.PositiveIntegerField(default=0)
    requests_failed = models.PositiveIntegerField(default=0)

    output_file = models.FileField(upload_to=_PrivatePath("batches"), blank=True)
    error_file = models.FileField(upload_to=_PrivatePath("batches"), blank=True)
    outcomes_file = models.FileField(upload_to=_PrivatePath("batches"), blank=True)
    rows_succeeded = models.PositiveIntegerField(default=0)
    rows_failed = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    reported_input_tokens = models.PositiveBigIntegerField(default=0)
    failure_codes = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    # Waiting in our queue: not sent before this time (after the provider's queue was full).
    not_before = models.DateTimeField(null=True, blank=True)
    requeues = models.PositiveIntegerField(default=0)
    submit_attempts = models.PositiveIntegerField(default=0)
    submit_started_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    poll_interval = models.FloatField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job", "attempt", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "attempt", "index"], name="batch_unique_part"),
        ]
        indexes = [
            # The scheduler's "which batches are due for a poll" query.
            models.Index(fields=["next_poll_at"], name="batch_due_poll", condition=Q(status="running")),
            # The sweeper's query for submissions and downloads whose message was lost.
            models.Index(
                fields=["status", "updated_at"],
                name="batch_in_flight",
                condition=Q(status__in=["queued", "submitting", "downloading"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job} part {self.index + 1}"

    @property
    def display_state(self) -> str:
        """What a user calls this part's state: queued, validating, in progress, …, done, failed."""
        if self.status == self.Status.RUNNING and self.remote_status:
            return self.remote_status.replace("_", " ")
        if self.status == self.Status.DONE and self.remote_status in ("failed", "expired", "cancelled"):
            return self.remote_status
        if self.status == self.Status.DONE and self.error:
            return "failed"
        return self.get_status_display().lower()

    @property
    def looks_stuck(self) -> bool:
        """In `validating` or `finalizing` far longer than usual: flagged for people, never resubmitted."""
        minutes = {
            "validating": settings.STUCK_VALIDATING_MINUTES,
            "finalizing": settings.STUCK_FINALIZING_MINUTES,
        }.get(self.remote_status)
        if self.status != self.Status.RUNNING or minutes is None or not self.remote_status_since:
            return False
        return timezone.now() - self.remote_status_since > timedelta(minutes=minutes)

    def transition(self, from_status: str, to_status: str, **fields) -> bool:
        """Conditional UPDATE: True if this caller moved the batch out of `from_status`."""
        won = Batch.objects.filter(pk=self.pk, status=from_status).update(
            status=to_status, updated_at=timezone.now(), **fields
        )
        if won:
            self.refresh_from_db()
        return bool(won)

    def schedule_next_poll(self, progressed: bool) -> None:
        """Back off while nothing changes; come back sooner when the batch is moving."""
        credential = self.job.credential
        if progressed or not self.poll_interval:
            interval = credential.poll_min_seconds
        else:
            interval = min(credential.poll_max_seconds, self.poll_interval * 1.5)
        self.poll_interval = interval
        self.next_poll_at = timezone.now() + timedelta(seconds=interval)


class RowFailure(models.Model):
    """A row whose latest attempt failed, kept for the review page (written with the results)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="row_failures")
    row = models.PositiveIntegerField()
    code = models.CharField(max_length=100)
    message = models.TextField()
    retryable = models.BooleanField()
    attempts = models.PositiveIntegerField()
    cells = models.JSONField()

    class Meta:
        ordering = ["job", "row"]
        constraints = [models.UniqueConstraint(fields=["job", "row"], name="row_failure_unique")]
        indexes = [models.Index(fields=["job", "code", "row"], name="row_failure_code")]

    def __str__(self) -> str:
        return f"{self.job} row {self.row}"


class AuditEvent(models.Model):
    """One thing a person did; kept when the job or key it names is deleted (see jobs.audit)."""

    class Action(models.TextChoices):
        UPLOAD = "upload", "Uploaded a table"
        PREPARE = "prepare", "Prepared a job"
        SUBMIT = "submit", "Sent a job"
        APPROVE = "approve", "Approved a job"
        CANCEL = "cancel", "Cancelled a job"
        RETRY = "retry", "Resent failed rows"
        DOWNLOAD = "download", "Downloaded results"
        DELETE = "delete", "Deleted a job"
        KEY_SAVE = "key_save", "Saved a provider key"
        KEY_TEST = "key_test", "Tested a provider key"
        KEY_TOGGLE = "key_toggle", "Enabled or disabled a provider key"
        KEY_DELETE = "key_delete", "Deleted a provider key"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    job_name = models.CharField(max_length=200, blank=True)
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    credential = models.ForeignKey(
        ProviderCredential, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cost = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    address = models.CharField(max_length=45, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["action", "-at"], name="audit_action")]

    def __str__(self) -> str:
        return f"{self.actor_name or 'system'} {self.action} {self.at:%Y-%m-%d %H:%M}"
