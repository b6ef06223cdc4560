"""Describing a job: the model offered by the key, the prompt checked against the table's columns,
structured-output fields and row numbers typed on the pages; every message names the field at fault."""

import re

from django import forms

from jobs import access, keys
from jobs.formats import prompts, schema, uniques
from jobs.formats.text import one_line
from jobs.forms.common import bootstrap, team_field
from jobs.models import Job, ModelPrice, ProviderCredential

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


def endpoint_problem(model: str | None, endpoint: str | None) -> str:
    """Why this model cannot answer on this endpoint, in words; empty when it can (or either is unknown)."""
    if not model or not endpoint or is_embedding_model(model) == (endpoint == Job.Endpoint.EMBEDDINGS):
        return ""
    if endpoint == Job.Endpoint.EMBEDDINGS:
        return f"{model} answers in words, not embeddings: choose an embeddings model."
    return f"{model} makes embeddings, not answers: choose the Embeddings endpoint or a chat model."


def model_choices(models: list[str]) -> list:
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

    def __init__(self, *args, columns: list[str], user, id_checks: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.columns = columns
        self.id_checks = id_checks or {}  # what the row count learned of each column (jobs.formats.uniques)
        self.fields["id_column"] = forms.ChoiceField(
            label="Row ID",
            required=False,
            choices=[("", "Number the rows for me"), *((c, c) for c in columns)],
            help_text="A column whose values name each row, shown beside the answers. It must be unique.",
        )
        if user.groups.exists():
            self.fields["team"] = team_field(user)
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
            choices=model_choices(self.models),
            initial=DEFAULT_MODEL if DEFAULT_MODEL in self.models else None,
            error_messages={
                "invalid_choice": "Choose a model from the list: “%(value)s” is not one this key offers."
            },
        )
        # A form posted without the choice (not from the page) gets the default rule.
        self.fields["empty_rows"].required = False
        self.fields["temperature"].widget.attrs.update(min=0, max=2, step=0.1)
        self.fields["max_output_tokens"].widget.attrs.update(min=1)
        bootstrap(self)

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

    def clean_id_column(self) -> str:
        column = self.cleaned_data.get("id_column") or ""
        refused = uniques.refusal(column, self.id_checks.get(column))
        if refused:
            raise forms.ValidationError(refused)
        return column

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
        problem = endpoint_problem(data.get("model"), data.get("endpoint"))
        if problem:
            self.add_error("model", problem)
        try:
            self.instance.output_fields = output_fields(self.data, data.get("endpoint"))
        except schema.FieldError as exc:
            self.add_error(None, str(exc))
        return data

    def shown_values(self) -> dict:
        """What the page shows in each field, as the page would post it (the builder's rows too)."""
        values = {name: self[name].value() for name in self.fields}
        for row in self.field_rows:
            values |= {
                f"field-{row['index']}-{key}": row[key] for key in ("name", "type", "description", "labels")
            }
        return {name: value for name, value in values.items() if value is not None}

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
