from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from vectorbea.engine.limits import BadJson, parse_json
from vectorbea.runs.listing import DEFAULT_SORT, STATUSES, Filters, day_start
from vectorbea.workflows.models import Workflow

SORT_CHOICES = [
    ("-updated", "Recently updated"),
    ("updated", "Least recently updated"),
    ("-started", "Newest first"),
    ("started", "Oldest first"),
]


class RunFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    # "Needs attention" is offered once, as the tab's filter ("attention"); the status's own
    # name still works in a link (see __init__).
    status = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Any status"),
            ("attention", "Needs attention"),
            *(choice for choice in STATUSES if choice[0] != "needs_attention"),
        ],
    )
    workflow = forms.ModelChoiceField(
        required=False, queryset=Workflow.objects.none(), empty_label="Any workflow"
    )
    started_by = forms.ModelChoiceField(
        required=False, queryset=get_user_model().objects.none(), empty_label="Anyone"
    )
    since = forms.DateField(
        required=False, label="Started from", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="Started until", widget=forms.DateInput(attrs={"type": "date"})
    )
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)

    def __init__(self, data, workspace) -> None:
        if data is not None and data.get("status") == "needs_attention":
            data = data.copy()
            data["status"] = "attention"
        super().__init__(data)
        self.fields["workflow"].queryset = (
            Workflow.objects.filter(workspace=workspace).only("id", "name").order_by("name")
        )
        self.fields["started_by"].queryset = (
            get_user_model().objects.filter(memberships__workspace=workspace).order_by("username")
        )
        self.fields["started_by"].label_from_instance = lambda user: user.username
        for name in ("status", "workflow", "started_by", "sort"):
            self.fields[name].widget.attrs["class"] = "select-compact"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            message = (
                f"The dates are the wrong way round: “from” ({since:%b %-d, %Y}) is after "
                f"“to” ({until:%b %-d, %Y}). Swap them to see the runs in between."
            )
            self.add_error("until", message)  # shown once, above the list
            cleaned.pop("since", None)  # and neither date filters it
        return cleaned

    def filters(self) -> Filters:
        """What the valid fields ask for; an invalid field is ignored (shown as an error)."""
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        if self.is_bound and not self.is_valid():
            data = {k: v for k, v in self.cleaned_data.items() if k not in self.errors}
        workflow = data.get("workflow")
        user = data.get("started_by")
        return Filters(
            status=data.get("status") or "",
            workflow=workflow.id if workflow else None,
            started_by=user.pk if user else None,
            since=day_start(data["since"]) if data.get("since") else None,
            until=day_start(data["until"]) if data.get("until") else None,
            q=(data.get("q") or "").strip(),
            sort=data.get("sort") or DEFAULT_SORT,
        )


# Answers to a step that needs attention (vectorbea.runs.commands.resolve_attention).


def json_value(text: str) -> Any:
    """`text` as JSON, read like all untrusted JSON, or a ValidationError that says what is
    wrong and where."""
    try:
        return parse_json(text, "This")
    except BadJson as exc:
        raise forms.ValidationError(exc.message) from None


class ResolveForm(forms.Form):
    step = forms.CharField(max_length=64, widget=forms.HiddenInput)
    note = forms.CharField(
        required=False,
        max_length=2000,
        label="Note",
        widget=forms.TextInput(attrs={"placeholder": "Why? Shown in the timeline"}),
    )


class RetryStepForm(ResolveForm):
    settings = forms.CharField(
        required=False,
        max_length=256_000,
        label="The step's settings (JSON)",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "json-input"}),
    )
    # The number of the newer version to move the run to (a checkbox on the page).
    version = forms.IntegerField(required=False, min_value=1)

    @property
    def settings_edited(self) -> bool:
        """Whether the person touched the settings (the page keeps them open)."""
        return self.is_bound and ("settings" in self.errors or "settings" in self.changed_data)

    def clean_settings(self) -> dict[str, Any] | None:
        text = self.cleaned_data["settings"].strip()
        if not text:
            return None
        settings = json_value(text)
        if not isinstance(settings, dict):
            raise forms.ValidationError("The settings must be a JSON object: { … }.")
        return settings


class SupplyOutputForm(ResolveForm):
    output = forms.CharField(
        max_length=1_000_000,
        label="The step's output (JSON)",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "json-input"}),
        error_messages={"required": "Give the step's output as JSON."},
    )

    def clean_output(self) -> Any:
        output = json_value(self.cleaned_data["output"])
        if output is None:
            raise forms.ValidationError("The output is null; give the value the step should have.")
        return output


RESOLVE_FORMS: dict[str, type[ResolveForm]] = {
    "retry": RetryStepForm,
    "supply_output": SupplyOutputForm,
    "skip": ResolveForm,
    "fail": ResolveForm,
}
