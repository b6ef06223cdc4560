"""What the app's forms share: Bootstrap's classes on every control, the team choice, ids that are ids."""

from django import forms


def bootstrap(form: forms.BaseForm) -> None:
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


def team_field(user) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=user.groups.all(),
        required=False,
        empty_label="Only me",
        label="Share with",
        help_text="Members of the team can see it and download its results; only you can change it.",
        widget=forms.Select(attrs={"class": "form-select"}),
    )


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
