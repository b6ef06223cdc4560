"""The admins' key form: basics, spending, limits and advanced settings, in words; the key is write-only."""

from django import forms
from django.views.decorators.debug import sensitive_variables

from jobs.formats.text import one_line
from jobs.forms.common import IdsField, bootstrap
from jobs.models import ProviderCredential


class CredentialForm(forms.ModelForm):
    """A provider key: write-only, encrypted on save, shown back only as its last four characters."""

    base_url = forms.URLField(
        label="Server address (base URL)",
        required=False,
        assume_scheme="https",
        help_text="Leave empty for api.openai.com.",
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
            "api_version",
            "is_active",
            "is_default",
            "max_requests_per_batch",
            "max_bytes_per_batch",
            "poll_min_seconds",
            "poll_max_seconds",
            "enqueued_token_limit",
            "model_token_limits",
            "requests_per_minute",
            "tokens_per_minute",
            "monthly_budget",
            "approval_above",
            "reuse_scope",
            "teams",
        ]
        field_classes = {"teams": IdsField}
        labels = {
            "name": "Name",
            "kind": "Provider",
            "organization": "Organization ID",
            "project": "Project ID",
            "api_version": "API version",
            "is_active": "Active: members can choose it",
            "is_default": "Offered first on the new-job form",
            "max_requests_per_batch": "Most requests in one batch",
            "max_bytes_per_batch": "Largest batch file (bytes)",
            "poll_min_seconds": "Shortest wait between progress checks (seconds)",
            "poll_max_seconds": "Longest wait between progress checks (seconds)",
            # Labels of fields named after tokens of text, not secrets (bandit reads "token" as one).
            "enqueued_token_limit": "Prompt tokens waiting at the provider at once, per model",  # nosec B105
            "model_token_limits": "Other limits for particular models",  # nosec B105
            "requests_per_minute": "Requests per minute (normal API)",
            "tokens_per_minute": "Tokens per minute (normal API)",  # nosec B105
            "monthly_budget": "Monthly budget (US dollars)",
            "approval_above": "Approval needed above (US dollars per job)",
            "teams": "Teams that may use it",
        }
        help_texts = {
            "enqueued_token_limit": "The provider refuses batches beyond it; the rest wait their turn here.",  # nosec B105
            "model_token_limits": 'Write them as {"gpt-4o": 5000000}; they replace the one above.',  # nosec B105
        }
        widgets = {"model_token_limits": forms.Textarea(attrs={"rows": 2})}

    # The form's sections, in order; fields shown only for some providers are marked in the template.
    GROUPS = [
        (
            "Basics",
            [
                "name",
                "kind",
                "base_url",
                "api_key",
                "api_version",
                "organization",
                "project",
                "is_active",
                "is_default",
                "teams",
            ],
        ),
        ("Spending", ["monthly_budget", "approval_above"]),
        (
            "Limits",
            [
                "max_requests_per_batch",
                "max_bytes_per_batch",
                "enqueued_token_limit",
                "model_token_limits",
                "requests_per_minute",
                "tokens_per_minute",
            ],
        ),
        ("Advanced", ["poll_min_seconds", "poll_max_seconds"]),
    ]
    ONLY_FOR = {"api_version": "azure"}

    def groups(self) -> list[tuple[str, list]]:
        """(title, bound fields) for each section; each field carries the provider it is only for."""
        sections = []
        for title, names in self.GROUPS:
            fields = [self[name] for name in names]
            for field in fields:
                field.only_for = self.ONLY_FOR.get(field.name, "")
            sections.append((title, fields))
        return sections

    def clean_name(self) -> str:
        # The name is quoted in the subject of the email sent when the provider refuses the key.
        name = one_line(self.cleaned_data.get("name") or "")
        if not name:
            raise forms.ValidationError("Give the key a name.")
        return name

    def clean(self):
        data = super().clean()
        if not self.instance.pk and not data.get("api_key"):
            self.add_error("api_key", "Enter the API key for this provider.")
        return data

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Not sent (a script, a form drawn before the field existed): the key keeps what it has.
        self.fields["reuse_scope"].required = False
        bootstrap(self)

    def clean_reuse_scope(self) -> str:
        return self.cleaned_data.get("reuse_scope") or self.instance.reuse_scope

    def clean_model_token_limits(self):
        limits = self.cleaned_data.get("model_token_limits") or {}
        if not isinstance(limits, dict) or not all(isinstance(v, int) and v > 0 for v in limits.values()):
            raise forms.ValidationError('Write model names and token counts, like {"gpt-4o": 5000000}.')
        return limits

    @sensitive_variables("key")
    def save(self, commit=True):
        credential = super().save(commit=False)
        key = self.cleaned_data.get("api_key")
        # A new key for one the provider refused: the caller resumes its waiting jobs.
        self.resumes_jobs = bool(key) and credential.refused_at is not None
        if key:
            credential.set_api_key(key)
        if commit:
            credential.save()
            self.save_m2m()
        return credential
