"""The forms of the admins' own pages for people, teams and model prices (the Django admin stays for
edge cases): labels in words, and a password that is typed or generated and shown once."""

import secrets

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import Group
from django.core.validators import MaxValueValidator, MinValueValidator

from jobs.forms.common import IdsField, bootstrap
from jobs.models import ModelPrice, TeamBudget

User = get_user_model()

ROLES = [("member", "Member: runs jobs with the keys their teams may use"), ("admin", "Admin: everything")]


def generated_password() -> str:
    return secrets.token_urlsafe(12)


class _People(IdsField):
    def label_from_instance(self, user) -> str:
        name = user.get_full_name()
        label = f"{name} ({user.get_username()})" if name else user.get_username()
        return label if user.is_active else f"{label}, deactivated"


class PersonForm(forms.ModelForm):
    """A person: their name and email, admin or member, their teams, whether they can log in."""

    role = forms.ChoiceField(choices=ROLES, widget=forms.RadioSelect, initial="member")
    teams = IdsField(
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="They see what is shared with these teams, and use the keys kept for them.",
    )
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to generate one. It is shown once, for you to pass on.",
    )

    class Meta:
        model = User
        fields = ["first_name", "last_name", "username", "email", "is_active"]
        labels = {"is_active": "Can log in", "username": "Username (to log in)"}
        help_texts = {
            "username": "",
            "email": "Where their finished jobs are announced; admins also get approvals.",
            "is_active": "Untick to deactivate: their jobs and history stay.",
        }

    def __init__(self, *args, editor, **kwargs):
        super().__init__(*args, **kwargs)
        self.editor = editor
        if self.instance.pk:
            del self.fields["username"]  # the name they log in with stays
            self.fields["password"].help_text = "Leave empty to keep their password."
            self.initial |= {
                "role": "admin" if self.instance.is_staff else "member",
                "teams": list(self.instance.groups.all()),
            }
        else:
            del self.fields["is_active"]  # a new person can log in
        bootstrap(self)
        for name in ("role", "teams"):
            self.fields[name].widget.attrs["class"] = "form-check-input"

    def clean(self):
        data = super().clean()
        if self.instance.pk == self.editor.pk and (
            data.get("role") != "admin" or not data.get("is_active", True)
        ):
            raise forms.ValidationError(
                "You cannot take away your own admin role or log-in: ask another admin."
            )
        password = data.get("password")
        if password:
            try:
                password_validation.validate_password(password, self.instance)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return data

    def save(self, commit=True):
        """Saves the person; the password to show once, when one was set, else ""."""
        person = super().save(commit=False)
        person.is_staff = self.cleaned_data["role"] == "admin"
        password = self.cleaned_data.get("password") or ("" if person.pk else generated_password())
        if password:
            person.set_password(password)
        person.save()
        person.groups.set(self.cleaned_data["teams"])
        self.new_password = password
        return person


class TeamForm(forms.Form):
    """A team (a Django group): its name, its members, its monthly budget across every key."""

    name = forms.CharField(max_length=150)
    monthly_budget = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=12,
        decimal_places=2,
        label="Monthly budget (US dollars)",
        help_text="Across every key its jobs use; jobs that would go over it are refused. Empty: no limit.",
    )
    # Deactivated people are listed too: saving the team must not drop them from it unseen.
    members = _People(
        queryset=User.objects.order_by("-is_active", "username"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args, team: Group | None = None, **kwargs):
        self.team = team
        if team is not None:
            budget = TeamBudget.objects.filter(team=team).first()
            kwargs["initial"] = {
                "name": team.name,
                "monthly_budget": budget.monthly_budget if budget else None,
                "members": list(team.user_set.all()),
            }
        super().__init__(*args, **kwargs)
        bootstrap(self)
        self.fields["members"].widget.attrs["class"] = "form-check-input"

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        taken = Group.objects.filter(name__iexact=name)
        if self.team is not None:
            taken = taken.exclude(pk=self.team.pk)
        if not name:
            raise forms.ValidationError("Give the team a name.")
        if taken.exists():
            raise forms.ValidationError(f"There is already a team called “{name}”.")
        return name

    def save(self) -> Group:
        team = self.team or Group()
        team.name = self.cleaned_data["name"]
        team.save()
        team.user_set.set(self.cleaned_data["members"])
        budget = self.cleaned_data["monthly_budget"]
        if budget is None:
            TeamBudget.objects.filter(team=team).delete()
        else:
            TeamBudget.objects.update_or_create(team=team, defaults={"monthly_budget": budget})
        return team


class PriceForm(forms.ModelForm):
    """A model's list prices and bounds, and the day they were checked."""

    class Meta:
        model = ModelPrice
        fields = [
            "model",
            "input_per_million",
            "output_per_million",
            "batch_discount",
            "context_window",
            "max_output_tokens",
            "as_of",
        ]
        labels = {
            "model": "Model",
            "input_per_million": "Input per million tokens (US dollars)",
            "output_per_million": "Output per million tokens (US dollars)",
            "batch_discount": "Batch API share of the price",
            "context_window": "Context window (tokens)",
            "max_output_tokens": "Longest answer (tokens)",
            "as_of": "Checked on",
        }
        help_texts = {
            "model": "Exactly as the provider names it, e.g. gpt-4o-mini.",
            "batch_discount": "0.5 when the Batch API costs half the list price, as at OpenAI.",
        }
        widgets = {"as_of": forms.DateInput(attrs={"type": "date"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("input_per_million", "output_per_million", "batch_discount"):
            self.fields[name].validators.append(MinValueValidator(0))
        self.fields["batch_discount"].validators.append(MaxValueValidator(1))
        bootstrap(self)
