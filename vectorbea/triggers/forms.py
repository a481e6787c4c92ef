import json
from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings

from vectorbea.engine.limits import BadJson, parse_json
from vectorbea.triggers.models import Schedule
from vectorbea.triggers.schedules import (
    BadSchedule,
    check_cron,
    once_every,
    preview,
    schedule_input_problems,
    zone,
)
from vectorbea.workflows.models import Workflow

MAX_INPUT_BYTES = 256_000


class ScheduleForm(forms.Form):
    cron = forms.CharField(
        label="When (cron expression)",
        max_length=200,
        help_text=(
            "minute hour day-of-month month day-of-week, e.g. “0 9 * * 1-5” for 09:00 on "
            "weekdays or “*/15 * * * *” for every quarter hour. A sixth field, last, is seconds."
        ),
        error_messages={"required": "Say when it runs, as a cron expression like “0 9 * * *”."},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    timezone = forms.CharField(
        label="Time zone",
        max_length=64,
        initial="UTC",
        help_text="The cron times are read in this zone, e.g. Europe/Paris.",
        error_messages={"required": "Choose a time zone, e.g. UTC."},
        widget=forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off"}),
    )
    input = forms.CharField(
        label="Run input (JSON object)",
        required=False,
        initial="{}",
        help_text="Every run this schedule starts gets this input.",
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "class": "code"}),
    )
    enabled = forms.BooleanField(label="On", required=False, initial=True)

    def __init__(self, workflow: Workflow, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workflow = workflow
        minimum = settings.VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS
        self.fields["cron"].help_text += f" Runs may be at most {once_every(minimum)} here."

    @classmethod
    def of(cls, schedule: Schedule, data: Any = None) -> "ScheduleForm":
        initial = {
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "input": json.dumps(schedule.input, indent=2),
            "enabled": schedule.enabled,
        }
        return cls(schedule.workflow, data, initial=initial)

    def preview(self, now: datetime) -> tuple[list[datetime], str]:
        """The next times of the cron expression in the form (as typed, or as saved), or
        why it is refused: shown under the fields."""

        def value(name: str) -> str:
            if self.is_bound:
                return str(self.data.get(name) or "")
            return str(self.get_initial_for_field(self.fields[name], name) or "")

        return preview(value("cron"), value("timezone"), now)

    def clean_cron(self) -> str:
        cron = " ".join(self.cleaned_data["cron"].split())
        try:
            check_cron(cron)
        except BadSchedule as exc:
            raise forms.ValidationError(str(exc)) from None
        return cron

    def clean_timezone(self) -> str:
        name = self.cleaned_data["timezone"].strip()
        try:
            zone(name)
        except BadSchedule as exc:
            raise forms.ValidationError(str(exc)) from None
        return name

    def clean_input(self) -> dict[str, Any]:
        text = self.cleaned_data["input"].strip() or "{}"
        try:
            value = parse_json(text, "The input", max_bytes=MAX_INPUT_BYTES)
        except BadJson as exc:
            raise forms.ValidationError(exc.message) from None
        if not isinstance(value, dict):
            raise forms.ValidationError('The input must be a JSON object, like {"ticket": 1}.')
        problems = schedule_input_problems(self.workflow, value)
        if problems:
            raise forms.ValidationError(
                [f"{p.path}: {p.message}" for p in problems[:10]], code="input_schema"
            )
        return value

    def apply(self, schedule: Schedule) -> Schedule:
        for name in ("cron", "timezone", "input", "enabled"):
            setattr(schedule, name, self.cleaned_data[name])
        return schedule
