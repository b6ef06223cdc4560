"""Forms for uploading a table and describing a job; every message names the field at fault."""

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from jobs import access, prompts
from jobs.models import Job

SUGGESTED_MODELS = {
    Job.Endpoint.CHAT: [
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "gpt-4.1",
        "gpt-5-mini",
        "gpt-5",
    ],
    Job.Endpoint.RESPONSES: ["gpt-4.1-mini", "gpt-4o-mini", "gpt-5-mini", "gpt-5"],
    Job.Endpoint.EMBEDDINGS: ["text-embedding-3-small", "text-embedding-3-large"],
}


def _team_field(user) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=user.groups.all(),
        required=False,
        empty_label="Only me",
        label="Share with",
        help_text="Members of the team can see it and download its results; only you can change it.",
        widget=forms.Select(attrs={"class": "form-select"}),
    )


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Your table",
        help_text="A CSV, TSV or Excel (.xlsx) file whose first row names the columns.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        if user.groups.exists():
            self.fields["team"] = _team_field(user)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.UPLOAD_MAX_BYTES:
            raise forms.ValidationError(
                f"This file is {filesizeformat(upload.size)}; the largest file accepted is "
                f"{filesizeformat(settings.UPLOAD_MAX_BYTES)}. Split it into smaller files and upload each."
            )
        if upload.size == 0:
            raise forms.ValidationError("The file is empty.")
        return upload


class JobForm(forms.ModelForm):
    """What to send for each row; placeholders are checked against the dataset's columns."""

    class Meta:
        model = Job
        fields = [
            "name",
            "credential",
            "endpoint",
            "model",
            "system_prompt",
            "user_prompt",
            "temperature",
            "max_output_tokens",
            "resubmit_expired",
            "team",
        ]
        labels = {
            "credential": "Provider",
            "system_prompt": "Instructions (system prompt)",
            "user_prompt": "Prompt for each row",
            "max_output_tokens": "Longest answer (tokens)",
            "resubmit_expired": "If the provider runs out of time, resend the unfinished rows by themselves",
        }
        help_texts = {
            "user_prompt": "Write {{ Column name }} where a row's value should go.",
            "temperature": "0 gives the most consistent answers; leave empty for the model's default.",
        }
        widgets = {
            "system_prompt": forms.Textarea(attrs={"rows": 3}),
            "user_prompt": forms.Textarea(attrs={"rows": 5}),
            "model": forms.TextInput(attrs={"list": "model-suggestions", "autocomplete": "off"}),
        }

    def __init__(self, *args, columns: list[str], user, **kwargs):
        super().__init__(*args, **kwargs)
        self.columns = columns
        if user.groups.exists():
            self.fields["team"] = _team_field(user)
        else:
            del self.fields["team"]
        credentials = access.usable_credentials(user)
        self.fields["credential"].queryset = credentials
        self.fields["credential"].empty_label = None
        self.fields["credential"].label_from_instance = lambda credential: credential.name
        default = credentials.filter(is_default=True).first() or credentials.first()
        if default and not self.is_bound:
            self.initial.setdefault("credential", default.pk)
        self.fields["temperature"].widget.attrs.update(min=0, max=2, step=0.1)
        self.fields["max_output_tokens"].widget.attrs.update(min=1)
        for name, field in self.fields.items():
            if isinstance(field.widget, forms.CheckboxInput):
                css = "form-check-input"
            elif isinstance(field.widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            if self.is_bound and name in self.errors:
                css += " is-invalid"
            field.widget.attrs["class"] = css

    def _check_placeholders(self, field: str) -> str:
        text = self.cleaned_data.get(field) or ""
        unknown = prompts.unknown_placeholders(text, self.columns)
        if unknown:
            names = ", ".join(f"{{{{ {name} }}}}" for name in unknown)
            raise forms.ValidationError(
                f"No column is called {names}. The columns are: {', '.join(self.columns)}."
            )
        return text

    def clean_system_prompt(self) -> str:
        return self._check_placeholders("system_prompt")

    def clean_user_prompt(self) -> str:
        text = self._check_placeholders("user_prompt")
        if not text.strip():
            raise forms.ValidationError("Write the prompt that each row should be sent with.")
        if not prompts.placeholders(text):
            raise forms.ValidationError(
                "The prompt uses no column, so every row would get the same answer. "
                "Add a column with {{ Column name }}."
            )
        return text

    def clean_temperature(self):
        value = self.cleaned_data.get("temperature")
        if value is not None and not 0 <= value <= 2:
            raise forms.ValidationError("Temperature must be between 0 and 2.")
        return value
