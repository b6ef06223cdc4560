"""The audit log: one row per thing a person did, kept when what it names is deleted."""

from django.conf import settings
from django.db import models

from jobs.models.inputs import Dataset
from jobs.models.keys import ProviderCredential
from jobs.models.work import Job


class AuditEvent(models.Model):
    """One thing a person did; kept when the job or key it names is deleted (see jobs.audit)."""

    class Action(models.TextChoices):
        UPLOAD = "upload", "Uploaded a table"
        PILOT = "pilot", "Tried the first rows"
        PREPARE = "prepare", "Prepared a job"
        SUBMIT = "submit", "Sent a job"
        APPROVE = "approve", "Approved a job"
        DECLINE = "decline", "Declined a job"
        CANCEL = "cancel", "Cancelled a job"
        RETRY = "retry", "Resent failed rows"
        DOWNLOAD = "download", "Downloaded results"
        DELETE = "delete", "Deleted a job"
        KEY_SAVE = "key_save", "Saved a provider key"
        KEY_TEST = "key_test", "Tested a provider key"
        KEY_TOGGLE = "key_toggle", "Enabled or disabled a provider key"
        KEY_DELETE = "key_delete", "Deleted a provider key"
        PERSON_SAVE = "person_save", "Added or changed a person"
        TEAM_SAVE = "team_save", "Created or changed a team"
        PRICE_SAVE = "price_save", "Saved a model's prices"

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
