"""Django admin: provider credentials (write-only keys) and read-mostly views of the work."""

from django import forms
from django.contrib import admin
from django.views.decorators.debug import sensitive_variables

from jobs import tasks
from jobs.models import Batch, Dataset, Job, ModelPrice, ProviderCredential


class CredentialForm(forms.ModelForm):
    base_url = forms.URLField(
        required=False, assume_scheme="https", help_text="Leave empty for api.openai.com."
    )
    api_key = forms.CharField(
        label="API key",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.",
    )

    class Meta:
        model = ProviderCredential
        fields = [
            "name",
            "kind",
            "base_url",
            "api_key",
            "organization",
            "project",
            "is_active",
            "is_default",
            "max_requests_per_batch",
            "max_bytes_per_batch",
            "poll_min_seconds",
            "poll_max_seconds",
            "enqueued_token_limit",
            "model_token_limits",
            "teams",
        ]

    def clean(self):
        data = super().clean()
        if not self.instance.pk and not data.get("api_key"):
            self.add_error("api_key", "Enter the API key for this provider.")
        return data

    @sensitive_variables("key")
    def save(self, commit=True):
        credential = super().save(commit=False)
        key = self.cleaned_data.get("api_key")
        if key:
            credential.set_api_key(key)
        if commit:
            credential.save()
        return credential


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(admin.ModelAdmin):
    form = CredentialForm
    list_display = ["name", "kind", "base_url", "masked_key", "is_active", "is_default", "refused_at"]
    readonly_fields = ["masked_key", "refused_at", "refused_message"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and form.cleaned_data.get("api_key") and obj.refused_at:
            # A new key for one the provider refused: its waiting jobs go on.
            tasks.resume_credential.delay_on_commit(obj.pk)


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ["model", "input_per_million", "output_per_million", "batch_discount", "as_of"]
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
