"""The simulator's state: files, batches and armed faults, in the database so that it
survives restarts and is shared by every process that serves it."""

import hashlib

from django.db import models


def project_of(api_key: str) -> str:
    """The project a key belongs to: a digest of it, so that the keys themselves are not stored."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


class SimFile(models.Model):
    id = models.CharField(primary_key=True, max_length=40)
    # Files and batches belong to the key that created them, as OpenAI's belong to a project:
    # another key gets 404 for them and does not see them in lists.
    project = models.CharField(max_length=32, db_index=True, default="")
    filename = models.CharField(max_length=255)
    purpose = models.CharField(max_length=40)
    bytes = models.PositiveBigIntegerField()
    created = models.FloatField()
    expires_at = models.PositiveBigIntegerField(null=True)
    path = models.CharField(max_length=255)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return self.id


class SimBatch(models.Model):
    """A batch whose progress is computed from the time elapsed since `created`."""

    id = models.CharField(primary_key=True, max_length=40)
    project = models.CharField(max_length=32, db_index=True, default="")
    endpoint = models.CharField(max_length=40)
    input_file_id = models.CharField(max_length=40)
    completion_window = models.CharField(max_length=10, default="24h")
    metadata = models.JSONField(null=True)
    model = models.CharField(max_length=100, blank=True)
    created = models.FloatField()
    total = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    # 0-based positions of the requests that will fail, decided when the batch is created.
    failing = models.JSONField(default=list)
    errors = models.JSONField(null=True)
    faults = models.JSONField(default=dict)
    # Whether the input file has been checked (errors, model, input_tokens and failing set):
    # OpenAI answers the create call first and validates afterwards (simulator.lifecycle).
    validated = models.BooleanField(default=True)
    cancel_requested = models.FloatField(null=True)
    # Set once the batch has reached its end and its files exist.
    final = models.JSONField(null=True)
    # Seconds the output and error files live (output_expires_after); None keeps the default.
    output_expires_after = models.PositiveIntegerField(null=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return self.id


class Fault(models.Model):
    """A failure armed by a test or an operator, used up by the next matching calls."""

    op = models.CharField(max_length=40)
    kind = models.CharField(max_length=40)
    params = models.JSONField(default=dict)
    remaining = models.PositiveIntegerField(default=1)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} on {self.op} ({self.remaining} left)"


class RatePace(models.Model):
    """A key's place under the simulator's rate limits (simulator.ratelimit), shared by its processes."""

    project = models.CharField(primary_key=True, max_length=32)
    requests_at = models.FloatField(default=0)
    tokens_at = models.FloatField(default=0)

    def __str__(self) -> str:
        return f"pace of {self.project}"
