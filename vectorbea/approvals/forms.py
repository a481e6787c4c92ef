from typing import Any

from django import forms

from vectorbea.accounts.models import Role
from vectorbea.engine.limits import text_problem
from vectorbea.engine.waits import field_values

MAX_REASON = 5000


class DecisionForm(forms.Form):
    """Approve or deny one gate. A reason is required to deny; the approver's own fields
    (from the gate's `form`) are posted as field-<name> and typed by the engine's rule."""

    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("deny", "Deny")])
    gate = forms.CharField(max_length=80)
    reason = forms.CharField(required=False, max_length=MAX_REASON, strip=True)

    def __init__(self, spec: list[dict[str, Any]], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.values: dict[str, Any] = {}
        self.field_problems: dict[str, str] = {}

    @property
    def approving(self) -> bool:
        return self.cleaned_data.get("decision") == "approve"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("decision") == "deny" and not cleaned.get("reason"):
            self.add_error("reason", "Say why you deny it: the reason is recorded with the run.")
        submitted = {spec["name"]: self.data.get(f"field-{spec['name']}") for spec in self.spec}
        self.values, self.field_problems = field_values(
            self.spec, submitted, approving=cleaned.get("decision") == "approve"
        )
        for name, value in self.values.items():  # Postgres cannot store it in the event
            problem = text_problem(value)
            if problem:
                self.field_problems[name] = f"This {problem}"
        if self.field_problems:
            raise forms.ValidationError("Some fields need attention.")
        return cleaned


def form_fields(spec: list[dict[str, Any]], form: DecisionForm | None) -> list[dict[str, Any]]:
    """The approver's fields as the template shows them: prefilled, or as posted."""
    shown = []
    for field in spec:
        value = field.get("default")
        if form is not None and form.is_bound:
            value = form.data.get(f"field-{field['name']}", "")
        problem = form.field_problems.get(field["name"]) if form is not None else None
        shown.append({**field, "value": "" if value is None else value, "problem": problem})
    return shown


class ReassignForm(forms.Form):
    """Give a waiting gate to other approvers: workspace roles and/or members by name."""

    gate = forms.CharField(max_length=80)
    roles = forms.MultipleChoiceField(required=False, choices=Role.choices)
    users = forms.MultipleChoiceField(required=False, choices=())
    reason = forms.CharField(required=False, max_length=MAX_REASON, strip=True)

    def __init__(self, usernames: list[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["users"].choices = [(name, name) for name in usernames]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.errors and not cleaned.get("roles") and not cleaned.get("users"):
            raise forms.ValidationError("Choose at least one role or person to give it to.")
        return cleaned

    @property
    def approvers(self) -> dict[str, list[str]]:
        return {"roles": self.cleaned_data["roles"], "users": self.cleaned_data["users"]}


class EscalateForm(forms.Form):
    gate = forms.CharField(max_length=80)
    reason = forms.CharField(required=False, max_length=MAX_REASON, strip=True)
