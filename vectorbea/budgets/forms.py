"""Forms for Settings → Limits, and the writes they lead to.

Every value is checked here with a message that says what to type; blank means "no limit"
where the model allows it. A save writes the settings and one `LimitsChange` row (what
changed, as display strings, and who changed it) in one transaction, or nothing at all.
"""

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.db import transaction

from vectorbea.accounts.models import Workspace
from vectorbea.budgets.models import LimitsChange, OverBudget, WorkflowLimits, WorkspaceLimits
from vectorbea.workflows.models import Workflow

MAX_USD = Decimal(1_000_000)
USD_DECIMALS = 6
SMALLEST_USD = Decimal(1).scaleb(-USD_DECIMALS)
NO_LIMIT = "no limit"
OVER_BUDGET_SHORT = {OverBudget.PAUSE: "Pause (needs attention)", OverBudget.FAIL: "Fail the run"}
WHOLE_NUMBER = re.compile(r"^-?\d+$")
MAX_CHARS = 40  # longer is no amount or count anyone means
NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)$")


# --- display -------------------------------------------------------------------------------


def money_text(value: Decimal | None) -> str:
    """$1,250.00, $0.50, $0.0035; None: "no limit"."""
    if value is None:
        return NO_LIMIT
    value = Decimal(value)
    if value == value.quantize(Decimal("0.01")):
        return f"${value:,.2f}"
    return f"${value.normalize():,f}"


def plain_number(value: Decimal | int | None) -> str:
    """A value as typed back into a form: 50, 0.5, 1000; blank for None."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)


def decimal_places(value: Decimal) -> int:
    """1.50 -> 1, 2.000 -> 0, 0.0000001 -> 7."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


# --- fields --------------------------------------------------------------------------------


class UsdField(forms.Field):
    """An amount in US dollars, 0 to $1,000,000 with at most 6 decimals; blank: None.
    Accepts "$1,250.50" as well as "1250.5"."""

    widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"})

    def __init__(self, *, noun: str, blank_means: str = "no limit", **kwargs: Any) -> None:
        self.noun = noun
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.error_messages["invalid"] = (
            f"Enter {noun} in dollars, like 25 or 0.50, or leave it blank for {blank_means}."
        )

    def prepare_value(self, value: Any) -> Any:
        return plain_number(value) if isinstance(value, Decimal) else value

    def to_python(self, value: Any) -> Decimal | None:
        text = str(value or "").strip().replace(",", "").replace(" ", "")
        if text.upper().endswith("USD"):
            text = text[:-3]
        if text.startswith("-$"):
            text = "-" + text[2:]
        text = text.removeprefix("$")
        if not text:
            return None
        if not NUMBER.match(text) or len(text) > MAX_CHARS:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        amount = Decimal(text)
        return Decimal(0) if amount == 0 else amount

    def validate(self, value: Decimal | None) -> None:
        super().validate(value)
        if value is None:
            return
        noun = self.noun[0].upper() + self.noun[1:]
        if value < 0:
            raise forms.ValidationError(f"{noun} can’t be negative.", code="negative")
        if value > MAX_USD:
            raise forms.ValidationError(f"{noun} can be at most $1,000,000.", code="max_value")
        if decimal_places(value) > USD_DECIMALS:
            raise forms.ValidationError(
                f"Use at most {USD_DECIMALS} decimal places for {self.noun} (the smallest "
                f"amount is ${SMALLEST_USD:f}).",
                code="max_decimal_places",
            )

    def clean(self, value: Any) -> Decimal | None:
        amount = super().clean(value)
        return None if amount is None else amount.quantize(SMALLEST_USD)


class CountField(forms.Field):
    """A whole number from `low` to `high`, commas allowed; blank: None (or required)."""

    widget = forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"})

    def __init__(self, *, noun: str, low: int, high: int, unit: str = "", **kwargs: Any):
        self.noun, self.low, self.high, self.unit = noun, low, high, unit
        super().__init__(**kwargs)
        span = f"from {low:,} to {high:,}{unit}"
        noun_first = noun[0].upper() + noun[1:]
        self.error_messages["required"] = f"Enter {noun}, {span}."
        if self.required:
            self.error_messages["invalid"] = f"Enter {noun} as a whole number {span}."
            self.range_message = f"{noun_first} must be {span}."
        else:
            self.error_messages["invalid"] = (
                f"Enter {noun} as a whole number {span}, or leave it blank for no limit."
            )
            self.range_message = f"{noun_first} must be {span}; leave it blank for no limit."

    def to_python(self, value: Any) -> int | None:
        text = str(value or "").strip().replace(",", "").replace(" ", "").replace("_", "")
        text = text.removesuffix("%")
        if not text:
            return None
        if len(text) > MAX_CHARS and WHOLE_NUMBER.match(text):  # int() refuses 4,300+ digits
            code = "negative" if text.startswith("-") else "max_value"
            raise forms.ValidationError(self.range_message, code=code)
        if WHOLE_NUMBER.match(text):
            return int(text)
        if NUMBER.match(text) and decimal_places(Decimal(text)) == 0:
            return int(Decimal(text))
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")

    def validate(self, value: int | None) -> None:
        super().validate(value)
        if value is not None and value < 0:
            noun = self.noun[0].upper() + self.noun[1:]
            raise forms.ValidationError(
                f"{noun} can’t be negative: enter a number from {self.low:,} to {self.high:,}.",
                code="negative",
            )
        if value is not None and not self.low <= value <= self.high:
            code = "min_value" if value < self.low else "max_value"
            raise forms.ValidationError(self.range_message, code=code)


# --- the workspace's limits ----------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    name: str
    label: str
    section: str


SECTIONS = {
    "budgets": "Budgets",
    "guards": "Runaway guards",
    "rates": "Rate limits",
    "concurrency": "Concurrency",
}

SETTINGS = [
    Setting("run_cap_usd", "Budget per run", "budgets"),
    Setting("daily_cap_usd", "Daily cap", "budgets"),
    Setting("monthly_cap_usd", "Monthly cap", "budgets"),
    Setting("soft_threshold_percent", "Warn at", "budgets"),
    Setting("over_budget", "When a budget or cap is reached", "budgets"),
    Setting("max_steps_per_run", "Steps per run", "guards"),
    Setting("max_attempts_per_step", "Attempts per step", "guards"),
    Setting("requests_per_minute", "Requests per minute, per provider", "rates"),
    Setting("tokens_per_minute", "Tokens per minute, per provider", "rates"),
    Setting("max_concurrent_runs", "Runs at once in the workspace", "concurrency"),
    Setting("max_concurrent_runs_per_workflow", "Runs at once per workflow", "concurrency"),
]
FIELDS = [setting.name for setting in SETTINGS]
LABELS = {setting.name: setting.label for setting in SETTINGS}
WORKFLOW_CAP_LABEL = "Budget per run"


def display(name: str, value: Any) -> str:
    """A setting's value as the page and the history show it."""
    if name == "over_budget":
        return OVER_BUDGET_SHORT.get(value, str(value))
    if value is None:
        return NO_LIMIT
    if name.endswith("_usd"):
        return money_text(value)
    if name == "soft_threshold_percent":
        return f"{value} % of a cap"
    return f"{value:,}"


class LimitsForm(forms.Form):
    run_cap_usd = UsdField(
        label="Budget per run (USD)",
        noun="the budget per run",
        help_text="What one run may spend on LLM calls. Blank: no limit. A workflow can "
        "have its own, below.",
    )
    daily_cap_usd = UsdField(
        label="Daily cap (USD)",
        noun="the daily cap",
        help_text="All runs together, per day (UTC). Blank: no cap.",
    )
    monthly_cap_usd = UsdField(
        label="Monthly cap (USD)",
        noun="the monthly cap",
        help_text="All runs together, per calendar month (UTC). Blank: no cap.",
    )
    soft_threshold_percent = CountField(
        label="Warn at (% of a cap)",
        noun="the warning threshold",
        low=1,
        high=99,
        unit=" %",
        help_text="Owners and admins get an email when spending reaches this share of a "
        "budget or cap.",
    )
    over_budget = forms.ChoiceField(
        label="When a run reaches a budget or cap",
        choices=OverBudget.choices,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose what happens to a run that reaches a budget or cap.",
            "invalid_choice": "Choose to pause the run or to fail it.",
        },
    )
    max_steps_per_run = CountField(
        label="Max steps per run",
        noun="the maximum steps per run",
        low=1,
        high=100_000,
        help_text="A run that has run this many steps fails: it is probably looping.",
    )
    max_attempts_per_step = CountField(
        label="Max attempts per step",
        noun="the maximum attempts per step",
        low=1,
        high=100,
        help_text="Across all retries of one step, whatever its retry policy says.",
    )
    requests_per_minute = CountField(
        label="Requests per minute",
        noun="the requests per minute",
        low=1,
        high=100_000,
        required=False,
        help_text="Calls to each LLM provider from this workspace. Blank: no limit.",
    )
    tokens_per_minute = CountField(
        label="Tokens per minute",
        noun="the tokens per minute",
        low=1,
        high=100_000_000,
        required=False,
        help_text="Tokens sent to and received from each provider. Blank: no limit.",
    )
    max_concurrent_runs = CountField(
        label="Runs at once, whole workspace",
        noun="the number of runs at once in the workspace",
        low=1,
        high=10_000,
        required=False,
        help_text="More runs wait in the queue until one finishes. Blank: no limit.",
    )
    max_concurrent_runs_per_workflow = CountField(
        label="Runs at once, per workflow",
        noun="the number of runs at once per workflow",
        low=1,
        high=10_000,
        required=False,
        help_text="The same, for the runs of any one workflow. Blank: no limit.",
    )
    # The newest history entry when the form was shown: a save refuses to undo a change
    # someone else saved in between.
    revision = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_revision(self) -> int | None:
        text = self.cleaned_data["revision"]
        return int(text) if text.isdigit() and len(text) < 19 else None

    def sections(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [
            (title, [self[s.name] for s in SETTINGS if s.section == key])
            for key, title in SECTIONS.items()
        ]


def limits_of(workspace: Workspace) -> WorkspaceLimits:
    """The workspace's limits, or the defaults (unsaved) when none were ever saved."""
    return WorkspaceLimits.objects.filter(workspace=workspace).first() or WorkspaceLimits(
        workspace=workspace
    )


def revision_of(workspace: Workspace) -> int:
    last = (
        LimitsChange.objects.filter(workspace=workspace, workflow__isnull=True)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    return last or 0


def initial_for(limits: WorkspaceLimits, revision: int) -> dict[str, Any]:
    return {name: getattr(limits, name) for name in FIELDS} | {"revision": revision}


class LimitsChanged(Exception):
    """Someone saved a change to the same settings after the form was shown."""

    def __init__(self, change: LimitsChange) -> None:
        super().__init__(f"Limits changed by change #{change.id}")
        self.change = change


def save_limits(
    workspace: Workspace, data: dict[str, Any], actor: Any, revision: int | None = None
) -> LimitsChange | None:
    """Write the changed settings and their history entry; None when nothing changed.
    Raises LimitsChanged when `revision` is given and a later change touched these settings."""
    with transaction.atomic():
        limits, _ = WorkspaceLimits.objects.select_for_update().get_or_create(workspace=workspace)
        if revision is not None:
            later = LimitsChange.objects.filter(
                workspace=workspace, workflow__isnull=True, id__gt=revision
            ).order_by("-id")
            conflict = next((c for c in later if set(c.changes) & set(FIELDS)), None)
            if conflict is not None:
                raise LimitsChanged(conflict)
        changes: dict[str, list[str]] = {}
        for name in FIELDS:
            old, new = getattr(limits, name), data[name]
            if old != new:
                changes[name] = [display(name, old), display(name, new)]
                setattr(limits, name, new)
        if not changes:
            return None
        limits.save(update_fields=[*changes, "updated_at"])
        return LimitsChange.objects.create(workspace=workspace, actor=actor, changes=changes)


# --- a workflow's own budget ---------------------------------------------------------------


class WorkflowCapForm(forms.Form):
    run_cap_usd = UsdField(
        label="Budget per run (USD)",
        noun="the workflow’s budget per run",
        blank_means="the workspace’s budget",
    )


def save_workflow_cap(workflow: Workflow, cap: Decimal | None, actor: Any) -> LimitsChange | None:
    """Set (or with None, clear) a workflow's own budget per run, with its history entry."""
    with transaction.atomic():
        limits = WorkflowLimits.objects.select_for_update().filter(workflow=workflow).first()
        if limits is None and cap is None:
            return None  # it has none to clear
        if limits is None:
            limits, _ = WorkflowLimits.objects.select_for_update().get_or_create(workflow=workflow)
        old = limits.run_cap_usd
        if old == cap:
            return None
        limits.run_cap_usd = cap
        limits.save(update_fields=["run_cap_usd", "updated_at"])
        return LimitsChange.objects.create(
            workspace_id=workflow.workspace_id,
            workflow=workflow,
            actor=actor,
            changes={"run_cap_usd": [workflow_cap_text(old), workflow_cap_text(cap)]},
        )


def workflow_cap_text(value: Decimal | None) -> str:
    return "the workspace’s budget" if value is None else money_text(value)


# --- the kill switch -----------------------------------------------------------------------


class StopForm(forms.Form):
    reason = forms.CharField(
        label="Why",
        max_length=500,
        help_text="Everyone in the workspace sees this in the banner, e.g. “A loop is "
        "burning tokens”.",
        error_messages={
            "required": "Say why you are stopping everything: the others see it in the banner.",
            "max_length": "Keep the reason under 500 characters.",
        },
    )
    confirm = forms.BooleanField(
        label="I understand: every run in progress is paused, and no run starts or continues "
        "until someone allows runs again.",
        error_messages={"required": "Tick the box to confirm that you want to stop every run."},
    )

    def clean_reason(self) -> str:
        reason = " ".join(self.cleaned_data["reason"].split())
        if not reason:
            raise forms.ValidationError(self.fields["reason"].error_messages["required"])
        return reason
