"""Comparing models on the first rows: up to two more models from the key's list, on the job's
endpoint, and how many rows; every message names the field at fault."""

from django import forms

from jobs.comparison import DEFAULT_ROWS, MAX_ROWS
from jobs.forms.common import bootstrap
from jobs.forms.jobs import JobForm, endpoint_problem, model_choices

INVALID_MODEL = "Choose a model from the list: “%(value)s” is not one this key offers."


class ComparisonForm(forms.Form):
    """The models to compare the job form's own with, and the rows; `job_form` must be valid."""

    second_model = forms.ChoiceField(label="Second model", required=False)
    third_model = forms.ChoiceField(label="Third model", required=False)
    compare_rows = forms.IntegerField(
        label="Rows to try",
        initial=DEFAULT_ROWS,
        min_value=1,
        max_value=MAX_ROWS,
        error_messages={
            "invalid": "Enter a whole number.",
            "max_value": f"At most {MAX_ROWS} rows can be compared at once.",
            "min_value": "Try at least 1 row.",
        },
    )

    def __init__(self, *args, job_form: JobForm, **kwargs):
        super().__init__(*args, **kwargs)
        self.job_form = job_form
        choices = [("", "None"), *model_choices(job_form.models)]
        for name in ("second_model", "third_model"):
            self.fields[name].choices = choices
            self.fields[name].error_messages["invalid_choice"] = INVALID_MODEL
        bootstrap(self)
        self.fields["compare_rows"].widget.attrs.update(min=1, max=MAX_ROWS)

    def clean(self):
        data = super().clean()
        job_data = self.job_form.cleaned_data if self.job_form.is_bound else {}
        models = [job_data.get("model")]
        for name in ("second_model", "third_model"):
            model = data.get(name)
            if not model:
                continue
            problem = endpoint_problem(model, job_data.get("endpoint"))
            if problem:
                self.add_error(name, problem)
            elif model in models:
                self.add_error(name, f"{model} is already in the comparison.")
            else:
                models.append(model)
        if len(models) < 2 and not self.errors:
            self.add_error("second_model", "Choose at least one model to compare the job's model with.")
        data["models"] = models
        return data
