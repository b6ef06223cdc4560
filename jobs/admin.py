"""Django admin: provider credentials (write-only keys) and read-mostly views of the work."""

from django.contrib import admin

from jobs import tasks
from jobs.forms.keys import CredentialForm
from jobs.models import AuditEvent, Batch, Dataset, Job, ModelPrice, ProviderCredential, TeamBudget


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(admin.ModelAdmin):
    form = CredentialForm
    list_display = ["name", "kind", "base_url", "masked_key", "is_active", "is_default", "refused_at"]
    readonly_fields = ["masked_key", "refused_at", "refused_message"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if form.resumes_jobs:
            tasks.resume_credential.delay_on_commit(obj.pk)


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = [
        "model",
        "input_per_million",
        "output_per_million",
        "batch_discount",
        "context_window",
        "max_output_tokens",
        "as_of",
    ]
    search_fields = ["model"]


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "status", "row_count", "created_at"]
    list_filter = ["status"]
    readonly_fields = ["code", "owner", "file", "columns", "preview", "problems"]


class BatchInline(admin.TabularInline):
    model = Batch
    extra = 0
    can_delete = False
    fields = [
        "index",
        "attempt",
        "status",
        "remote_status",
        "remote_batch_id",
        "request_count",
        "input_tokens",
        "requeues",
        "rows_succeeded",
        "rows_failed",
        "error",
    ]
    readonly_fields = fields


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "owner",
        "model",
        "status",
        "rows_total",
        "rows_succeeded",
        "rows_failed",
        "created_at",
    ]
    list_filter = ["status", "model"]
    search_fields = ["name"]
    inlines = [BatchInline]
    readonly_fields = ["code", "owner", "dataset", "credential"]


@admin.register(TeamBudget)
class TeamBudgetAdmin(admin.ModelAdmin):
    list_display = ["team", "monthly_budget"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read only: the log is written by the app, never edited."""

    list_display = ["at", "actor_name", "action", "job_name", "credential", "cost", "detail"]
    list_filter = ["action"]
    search_fields = ["actor_name", "job_name", "detail"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
