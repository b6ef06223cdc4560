"""What a user brings: an uploaded table, and the prompt with its settings (in a template or a job)."""

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models

from jobs.models.paths import _PrivatePath


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
    # A workbook's sheets in order, [{name, hidden}], to offer the others than the one read.
    sheets = models.JSONField(default=list, blank=True)
    columns = models.JSONField(default=list)
    preview = models.JSONField(default=list)
    problems = models.JSONField(default=list)
    problem_total = models.PositiveIntegerField(default=0)
    column_stats = models.JSONField(default=list)
    # What to do with a row that has more cells than the header, and with one that has fewer:
    # separate cases, since padding a short row is usually right and cutting a long one rarely is.
    long_rows = models.CharField(
        max_length=4,
        choices=[
            ("skip", "Skip the row and go on"),
            ("cut", "Keep the row's first cells, one per column, and leave out the rest"),
            ("stop", "Stop reading, so that I can fix the file"),
        ],
        default="skip",
    )
    short_rows = models.CharField(
        max_length=4,
        choices=[
            ("pad", "Keep the row; its missing cells are empty"),
            ("skip", "Skip the row and go on"),
            ("stop", "Stop reading, so that I can fix the file"),
        ],
        default="pad",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.COUNTING)
    count_progress = models.PositiveSmallIntegerField(default=0)
    row_count = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    # What the row count learned of each column's values as a row ID (jobs.formats.uniques):
    # {column: {"unique": true} | {"value", "rows"} of a repeat | {"unique_until": row}}.
    id_checks = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def sheet_position(self) -> int | None:
        """Where the sheet read stands among the workbook's sheets, from 1."""
        names = [sheet["name"] for sheet in self.sheets]
        return names.index(self.sheet) + 1 if self.sheet in names else None

    @property
    def sheet_hidden(self) -> bool:
        return any(sheet["name"] == self.sheet and sheet["hidden"] for sheet in self.sheets)

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

    class EmptyRows(models.TextChoices):
        ALL = "all", "Leave out rows where all the columns the prompt uses are empty"
        ANY = "any", "Leave out rows where any column the prompt uses is empty"
        SEND = "send", "Send every row, empty or not"

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
    # How the table is read into requests, kept with the prompt (a job has its own copy of each).
    id_column = models.CharField(max_length=255, blank=True)
    empty_rows = models.CharField(
        max_length=4, choices=PromptSettings.EmptyRows.choices, default=PromptSettings.EmptyRows.ALL
    )
    resubmit_expired = models.BooleanField(default=True)
    reuse_answers = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    # Everything a template holds and applying it restores (its team too, by id).
    SETTINGS = (*PromptSettings.SETTINGS, "id_column", "empty_rows", "resubmit_expired", "reuse_answers")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
