"""Forms for uploading a table and describing a job; every message names the field at fault."""

import re

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.views.decorators.debug import sensitive_variables

from jobs import access, keys
from jobs.formats import prompts, schema
from jobs.formats.text import one_line
from jobs.models import Dataset, Job, ModelPrice, ProviderCredential

DEFAULT_MODEL = "gpt-4o-mini"
# Names of the models a batch can use: chat models (for chat completions and responses) and embeddings.
_CHAT_MODEL = re.compile(r"^(gpt-|o\d|chatgpt-)")
_EMBEDDING_MODEL = re.compile(r"^text-embedding-")


def is_embedding_model(model: str) -> bool:
    return bool(_EMBEDDING_MODEL.match(model))


# Offered when the key's provider does not list its models (an unreachable or refused key).
KNOWN_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "text-embedding-3-small",
    "text-embedding-3-large",
)


def offered_models(credential: ProviderCredential | None) -> list[str]:
    """The models to choose from: those the key's provider lists (chat and embeddings only), or, when it
    does not answer, the price table's and OpenAI's usual ones."""
    listed = keys.model_ids(credential) if credential else None
    if listed is None:
        listed = {*ModelPrice.objects.values_list("model", flat=True), *KNOWN_MODELS}
    return sorted(m for m in listed if _CHAT_MODEL.match(m) or _EMBEDDING_MODEL.match(m))


def _model_choices(models: list[str]) -> list:
    chat = [(m, m) for m in models if not is_embedding_model(m)]
    embeddings = [(m, m) for m in models if is_embedding_model(m)]
    return [("Chat completions and responses", chat), ("Embeddings", embeddings)]


FIELD_ROWS = 6
# A row number as the failures page sends it: ASCII digits only, as many as a table can have.
ROW_NUMBER = re.compile(r"[0-9]{1,10}")


def output_fields(data, endpoint: str | None) -> list[dict]:
    """The structured-output fields typed in the builder (field-N-name, -type, -description, -labels)."""
    typed = [
        {
            "name": data.get(f"field-{i}-name", ""),
            "type": data.get(f"field-{i}-type", "text"),
            "description": data.get(f"field-{i}-description", ""),
            "labels": data.get(f"field-{i}-labels", "").split(","),
        }
        for i in range(FIELD_ROWS)
    ]
    typed = [f for f in typed if f["name"].strip() or f["description"].strip()]
    if typed and endpoint == Job.Endpoint.EMBEDDINGS:
        raise schema.FieldError("Embeddings are numbers, not answers with fields: remove the fields.")
    return schema.clean_fields(typed)


def row_numbers(values: list[str]) -> list[int]:
    """The rows ticked on the failures page; a value that is no row number is refused by name.

    Checked by pattern rather than str.isdigit(), which also takes digits int() refuses, such as '²'.
    """
    for value in values:
        if not ROW_NUMBER.fullmatch(value):
            raise forms.ValidationError(f"“{value[:20]}” is not a row number: tick the rows in the list.")
    return [int(value) for value in values]


def _bootstrap(form: forms.BaseForm) -> None:
    """Bootstrap's classes on every control, and the invalid style where there are errors."""
    for name, field in form.fields.items():
        if isinstance(field.widget, forms.CheckboxInput):
            css = "form-check-input"
        elif isinstance(field.widget, forms.Select):
            css = "form-select"
        else:
            css = "form-control"
        if form.is_bound and name in form.errors:
            css += " is-invalid"
        field.widget.attrs["class"] = css


def _team_field(user) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=user.groups.all(),
        required=False,
        empty_label="Only me",
        label="Share with",
        help_text="Members of the team can see it and download its results; only you can change it.",
        widget=forms.Select(attrs={"class": "form-select"}),
    )


def too_large(size: int) -> str:
    return (
        f"This file is {filesizeformat(size)}; the largest file accepted is "
        f"{filesizeformat(settings.UPLOAD_MAX_BYTES)}. Split it into smaller files and upload each."
    )


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Your table",
        help_text="A CSV, TSV or Excel (.xlsx) file whose first row names the columns.",
        error_messages={
            "empty": "The file is empty. Export it again from your spreadsheet, then upload it.",
            "required": "Choose the file to upload.",
        },
    )

    def __init__(self, *args, user, refused_size: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.refused_size = refused_size  # stopped while it streamed (batchdash.uploads)
        if user.groups.exists():
            self.fields["team"] = _team_field(user)

    def clean(self):
        data = super().clean()
        if self.refused_size:
            self.errors.pop("file", None)
            self.add_error("file", too_large(self.refused_size))
        return data

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.UPLOAD_MAX_BYTES:
            raise forms.ValidationError(too_large(upload.size))
        if upload.size == 0:
            raise forms.ValidationError("The file is empty.")
        return upload


class ReadingForm(forms.Form):
    """How to read an uploaded text table, when the detected settings are not right."""

    ENCODINGS = [
        ("utf-8", "UTF-8 (most files)"),
        ("utf-8-sig", "UTF-8 with a byte-order mark"),
        ("utf-16", "UTF-16 (Excel's “Unicode text”)"),
        ("utf-16-le", "UTF-16, little-endian, without a byte-order mark"),
        ("utf-16-be", "UTF-16, big-endian, without a byte-order mark"),
        ("cp1252", "Windows Western (cp1252)"),
        ("latin-1", "Latin-1 (ISO-8859-1)"),
        ("cp1250", "Windows Central European (cp1250)"),
        ("mac_roman", "Mac Roman"),
        ("shift_jis", "Japanese (Shift JIS)"),
        ("gb18030", "Chinese (GB18030)"),
    ]
    DELIMITERS = [(",", "Comma ,"), (";", "Semicolon ;"), ("\t", "Tab"), ("|", "Pipe |")]

    encoding = forms.ChoiceField(label="Characters", choices=ENCODINGS)
    delimiter = forms.ChoiceField(label="Columns separated by", choices=DELIMITERS)
    long_rows = forms.ChoiceField(
        label="Rows with more cells than the header", choices=Dataset.long_rows.field.choices
    )
    short_rows = forms.ChoiceField(
        label="Rows with fewer cells than the header", choices=Dataset.short_rows.field.choices
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        encoding = self.initial.get("encoding")
        if encoding and encoding not in dict(self.ENCODINGS):
            self.fields["encoding"].choices = [(encoding, f"{encoding} (detected)"), *self.ENCODINGS]
        _bootstrap(self)


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
            "reuse_answers",
            "empty_rows",
            "id_column",
            "pilot_output_tokens",
            "team",
        ]
        labels = {
            "credential": "Provider",
            "system_prompt": "Instructions (system prompt)",
            "user_prompt": "Prompt for each row",
            "max_output_tokens": "Longest answer (tokens)",
            "resubmit_expired": "If the provider runs out of time, resend the unfinished rows by themselves",
            "empty_rows": "Empty rows",
            "reuse_answers": "Reuse earlier answers to identical requests",
        }
        help_texts = {
            "user_prompt": "Write {{ Column name }} where a row's value should go.",
            "temperature": "0 gives the most consistent answers; leave empty for the model's default.",
        }
        widgets = {
            "pilot_output_tokens": forms.HiddenInput,
            "system_prompt": forms.Textarea(attrs={"rows": 3, "data-prompt": "system"}),
            "user_prompt": forms.Textarea(attrs={"rows": 5, "data-prompt": "user"}),
        }

    def __init__(self, *args, columns: list[str], user, **kwargs):
        super().__init__(*args, **kwargs)
        self.columns = columns
        self.fields["id_column"] = forms.ChoiceField(
            label="Row ID",
            required=False,
            choices=[("", "Number the rows for me"), *((c, c) for c in columns)],
            help_text="A column whose values name each row, shown beside the answers. It must be unique.",
        )
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
        # A posted id that is no number a key can have is the field's invalid choice, not a 500 here.
        posted = str(self.data.get("credential") or self.initial.get("credential") or "")
        number = posted.isascii() and posted.isdigit() and len(posted) < 19
        chosen = credentials.filter(pk=int(posted)).first() if number else None
        self.models = offered_models(chosen or default)
        self.fields["model"] = forms.ChoiceField(
            label="Model",
            choices=_model_choices(self.models),
            initial=DEFAULT_MODEL if DEFAULT_MODEL in self.models else None,
            error_messages={
                "invalid_choice": "Choose a model from the list: “%(value)s” is not one this key offers."
            },
        )
        # A form posted without the choice (not from the page) gets the default rule.
        self.fields["empty_rows"].required = False
        self.fields["temperature"].widget.attrs.update(min=0, max=2, step=0.1)
        self.fields["max_output_tokens"].widget.attrs.update(min=1)
        _bootstrap(self)

    def _check_placeholders(self, field: str) -> str:
        text = self.cleaned_data.get(field) or ""
        unknown = prompts.unknown_placeholders(text, self.columns)
        if unknown:
            names = ", ".join(prompts.placeholder(name) for name in unknown)
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

    def clean_empty_rows(self) -> str:
        return self.cleaned_data.get("empty_rows") or Job.EmptyRows.ALL

    def clean_name(self) -> str:
        # The name is quoted in email subjects: one line, whatever was pasted.
        name = one_line(self.cleaned_data.get("name") or "")
        if not name:
            raise forms.ValidationError("Give the job a name.")
        return name

    def clean_temperature(self):
        value = self.cleaned_data.get("temperature")
        if value is not None and not 0 <= value <= 2:
            raise forms.ValidationError("Temperature must be between 0 and 2.")
        return value

    def clean(self):
        data = super().clean()
        model, endpoint = data.get("model"), data.get("endpoint")
        if model and endpoint and is_embedding_model(model) != (endpoint == Job.Endpoint.EMBEDDINGS):
            if endpoint == Job.Endpoint.EMBEDDINGS:
                message = f"{model} answers in words, not embeddings: choose an embeddings model."
            else:
                message = (
                    f"{model} makes embeddings, not answers: choose the Embeddings endpoint or a chat model."
                )
            self.add_error("model", message)
        try:
            self.instance.output_fields = output_fields(self.data, data.get("endpoint"))
        except schema.FieldError as exc:
            self.add_error(None, str(exc))
        return data

    @property
    def field_rows(self) -> list[dict]:
        """The structured-output builder's rows, as typed (or from the template), padded with empty ones."""
        rows = (
            [
                {
                    "name": f["name"],
                    "type": f["type"],
                    "description": f["description"],
                    "labels": ", ".join(f["labels"]),
                }
                for f in (self.initial.get("output_fields") or [])
            ]
            if not self.is_bound
            else [
                {
                    key: self.data.get(f"field-{i}-{key}", "")
                    for key in ("name", "type", "description", "labels")
                }
                for i in range(FIELD_ROWS)
            ]
        )
        rows = [r for r in rows if r["name"] or r["description"] or r["labels"]]
        rows += [{"name": "", "type": "text", "description": "", "labels": ""}] * (FIELD_ROWS - len(rows))
        return [r | {"index": i} for i, r in enumerate(rows[:FIELD_ROWS])]


class IdsField(forms.ModelMultipleChoiceField):
    """Objects chosen by id; an id the database cannot hold is refused by name, not a crash.

    Django checks each id alone (finding nothing for one out of range) but then queries them
    together, which SQLite could not do with a number beyond 64 bits (OverflowError, a 500).
    """

    def _check_values(self, value):
        for pk in value:
            text = str(pk)
            if not (text.isascii() and text.isdigit() and int(text) < 2**63):
                raise forms.ValidationError(
                    self.error_messages["invalid_pk_value"], code="invalid_pk_value", params={"pk": text[:40]}
                )
        return super()._check_values(value)


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
            "enqueued_token_limit": "Prompt tokens waiting at the provider at once, per model",
            "model_token_limits": "Other limits for particular models",
            "monthly_budget": "Monthly budget (US dollars)",
            "approval_above": "Approval needed above (US dollars per job)",
            "teams": "Teams that may use it",
        }
        help_texts = {
            "enqueued_token_limit": "The provider refuses batches beyond it; the rest wait their turn here.",
            "model_token_limits": 'Write them as {"gpt-4o": 5000000}; they replace the one above.',
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
            ["max_requests_per_batch", "max_bytes_per_batch", "enqueued_token_limit", "model_token_limits"],
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
        _bootstrap(self)

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
