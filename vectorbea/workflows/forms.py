"""Forms of the workflow pages: name, import, and the run-input form built from a schema."""

import math
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from django import forms
from django.core import validators
from django.forms.fields import InvalidJSONInput, JSONString
from jsonschema import Draft202012Validator

from vectorbea.engine.graph import schema_advice
from vectorbea.engine.limits import BadJson, parse_json
from vectorbea.workflows.commands import MAX_IMPORT_BYTES, MAX_NAME_LENGTH
from vectorbea.workflows.panel import ordered_properties

INPUT_PREFIX = "input"


class NameForm(forms.Form):
    name = forms.CharField(
        max_length=MAX_NAME_LENGTH,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True}),
        help_text="Shown in the list, on runs and in the inbox.",
    )

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("Give the workflow a name.")
        return name


class ImportForm(forms.Form):
    file = forms.FileField(
        required=False, help_text="A .json file exported from Vectorbea (2 MB at most)."
    )
    text = forms.CharField(
        required=False,
        label="Or paste the JSON",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "code"}),
    )
    name = forms.CharField(
        required=False,
        max_length=MAX_NAME_LENGTH,
        help_text="Leave empty to use the name in the file.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            if upload.size > MAX_IMPORT_BYTES:
                raise forms.ValidationError("The file is larger than 2 MB.")
            data["json"] = upload.read()
        elif data.get("text", "").strip():
            data["json"] = data["text"]
        else:
            raise forms.ValidationError("Choose a file or paste the workflow's JSON.")
        return data


class JsonInputField(forms.JSONField):
    """A JSON value typed into a form, read like all untrusted JSON (parse_json): a deep,
    huge or unstorable value is a plain error on the field, never a crash."""

    def to_python(self, value: Any) -> Any:
        if self.disabled or not isinstance(value, str):
            return super().to_python(value)
        if value in self.empty_values:
            return None
        try:
            converted = parse_json(value, "The value")
        except BadJson as exc:
            raise forms.ValidationError(exc.message, code="invalid") from None
        return JSONString(converted) if isinstance(converted, str) else converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        if self.disabled or not isinstance(data, str):
            return super().bound_data(data, initial)
        try:
            return parse_json(data, "The value")
        except BadJson:
            return InvalidJSONInput(data)


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return value if ok else None


def _shown(value: float) -> str:
    return f"{value:g}"


def _number_field(prop: Mapping[str, Any], whole: bool, common: dict[str, Any]) -> forms.Field:
    """A number field that refuses what the schema refuses (type, minimum, maximum), in
    words, and tells the browser the same limits (min, max, step) as hints."""
    low, high = _number(prop.get("minimum")), _number(prop.get("maximum"))
    above, below = _number(prop.get("exclusiveMinimum")), _number(prop.get("exclusiveMaximum"))
    attrs: dict[str, Any] = {"step": "1" if whole else "any"}
    checks: list[Any] = []
    hints = []
    if low is not None:
        attrs["min"] = _shown(low)
        checks.append(validators.MinValueValidator(low, f"Enter {_shown(low)} or more."))
        hints.append(f"{_shown(low)} or more")
    if high is not None:
        attrs["max"] = _shown(high)
        checks.append(validators.MaxValueValidator(high, f"Enter {_shown(high)} or less."))
        hints.append(f"{_shown(high)} or less")
    if above is not None:
        checks.append(validators.MinValueValidator(above, f"Enter more than {_shown(above)}."))
        checks.append(_not_equal(above, f"Enter more than {_shown(above)}."))
        hints.append(f"more than {_shown(above)}")
    if below is not None:
        checks.append(validators.MaxValueValidator(below, f"Enter less than {_shown(below)}."))
        checks.append(_not_equal(below, f"Enter less than {_shown(below)}."))
        hints.append(f"less than {_shown(below)}")
    kind = "A whole number" if whole else "A number"
    hint = f"{kind}, {' and '.join(hints)}." if hints else f"{kind}."
    common = {**common, "help_text": " ".join(filter(None, [common["help_text"], hint]))}
    field_class = forms.IntegerField if whole else forms.FloatField
    invalid = "Enter a whole number." if whole else "Enter a number."
    return field_class(
        widget=forms.NumberInput(attrs=attrs),
        validators=checks,
        error_messages={"invalid": invalid},
        **common,
    )


def _not_equal(limit: float, message: str):
    def check(value: Any) -> None:
        if value == limit:
            raise forms.ValidationError(message)

    return check


def _iso(parse: Any, message: str):
    def check(value: str) -> None:
        try:
            parse(value.replace("Z", "+00:00"))
        except ValueError:
            raise forms.ValidationError(message) from None

    return check


# Formats of text a run form checks (and the input type that hints at them in a browser).
FORMATS: dict[str, tuple[str, Any]] = {
    "email": ("email", validators.EmailValidator("Enter an email address, like ada@example.com.")),
    "uri": (
        "url",
        validators.URLValidator(message="Enter a full address, like https://example.com."),
    ),
    "date": ("date", _iso(date.fromisoformat, "Enter a date, like 2026-12-31.")),
    "date-time": (
        "text",
        _iso(datetime.fromisoformat, "Enter a date and time, like 2026-12-31T09:30:00Z."),
    ),
}


def _text_field(prop: Mapping[str, Any], common: dict[str, Any]) -> forms.Field:
    checks: list[Any] = []
    shortest, longest = prop.get("minLength"), prop.get("maxLength")
    attrs: dict[str, Any] = {}
    if isinstance(shortest, int) and shortest > 0:
        message = f"Use at least {shortest} character{'s' if shortest != 1 else ''}."
        checks.append(validators.MinLengthValidator(shortest, message))
    if isinstance(longest, int) and longest >= 0:
        attrs["maxlength"] = longest
        checks.append(
            validators.MaxLengthValidator(longest, f"Use at most {longest:,} characters.")
        )
    if isinstance(prop.get("pattern"), str):
        hint = prop.get("x-pattern-hint")
        message = (
            f"{hint[:1].upper()}{hint[1:]}."
            if isinstance(hint, str)
            else (f"Match the pattern {prop['pattern']}.")
        )
        checks.append(validators.RegexValidator(prop["pattern"], message))
    input_type = "text"
    if prop.get("format") in FORMATS:
        input_type, check = FORMATS[prop["format"]]
        checks.append(check)
    long = (isinstance(longest, int) and longest > 200) or prop.get("format") == "textarea"
    if long:
        widget: forms.Widget = forms.Textarea(attrs={"rows": 4, **attrs})
    else:
        widget = forms.TextInput(attrs={**attrs, "type": input_type})
    return forms.CharField(widget=widget, strip=False, validators=checks, **common)


def _field_for(prop: Mapping[str, Any], label: str, required: bool) -> forms.Field:
    kind = prop.get("type")
    common: dict[str, Any] = {
        "label": label,
        "required": required and kind != "boolean",
        "help_text": prop.get("description", ""),
    }
    if "enum" in prop:
        choices = [("", "—")] + [(str(v), str(v)) for v in prop["enum"]]
        return forms.TypedChoiceField(choices=choices, coerce=_enum_coercer(prop), **common)
    if kind == "boolean":
        return forms.BooleanField(**common)
    if kind == "integer":
        return _number_field(prop, True, common)
    if kind == "number":
        return _number_field(prop, False, common)
    if kind in ("object", "array"):
        return JsonInputField(widget=forms.Textarea(attrs={"rows": 4}), **common)
    return _text_field(prop, common)


def _enum_coercer(prop: Mapping[str, Any]):
    values = {str(v): v for v in prop["enum"]}
    return lambda text: values.get(text, text)


class RunInputForm(forms.Form):
    """The form for starting a run, one field per property of the version's input schema."""

    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, schema: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = schema
        self.fields["idempotency_key"].initial = uuid.uuid4().hex
        required = set(schema.get("required") or ()) if isinstance(schema, Mapping) else set()
        self.input_names: dict[str, str] = {}
        for index, (name, prop) in enumerate(ordered_properties(schema)):
            key = f"{INPUT_PREFIX}_{index}"
            self.input_names[key] = name
            prop = prop if isinstance(prop, Mapping) else {}
            self.fields[key] = _field_for(prop, prop.get("title") or name, name in required)

    def run_input(self) -> dict[str, Any]:
        """The cleaned values as the run's input; optional fields left empty are left out."""
        result = {}
        cleaned = getattr(self, "cleaned_data", {})
        for key, name in self.input_names.items():
            value = cleaned.get(key)
            if value is None or value == "":
                continue
            result[name] = value
        return result

    def check_schema(self) -> None:
        """Check the cleaned input against the whole schema (what no field checks alone),
        each problem once, said as a form says it, on its field."""
        try:
            errors = list(Draft202012Validator(self.schema).iter_errors(self.run_input()))
        except Exception:  # a schema jsonschema cannot use: start_run says so
            return
        for error in errors:
            if error.validator == "required" and not error.path:
                for name in error.validator_value:
                    if name not in (error.instance or {}):
                        self.add_input_problem(f"input.{name}", "This field is required.")
                continue
            advice = schema_advice(error)
            path = "input" + "".join(f".{part}" for part in list(error.path)[:1])
            self.add_input_problem(path, f"{advice[:1].upper()}{advice[1:]}.")

    def add_input_problem(self, path: str, message: str) -> None:
        """Put a problem from input_problems() ("input.ticket") on its field."""
        name = path.removeprefix("input").removeprefix(".").split(".")[0].split("[")[0]
        for key, input_name in self.input_names.items():
            if input_name == name:
                if key not in self.errors:  # "required" again, after "This field is required."
                    self.add_error(key, message)
                return
        self.add_error(None, f"{path}: {message}" if path != "input" else message)
