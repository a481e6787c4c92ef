"""Forms of the workflow pages: name, import, and the run-input form built from a schema."""

import uuid
from collections.abc import Mapping
from typing import Any

from django import forms
from django.forms.fields import InvalidJSONInput, JSONString

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
        return forms.IntegerField(**common)
    if kind == "number":
        return forms.FloatField(**common)
    if kind in ("object", "array"):
        return JsonInputField(widget=forms.Textarea(attrs={"rows": 4}), **common)
    long = prop.get("maxLength", 0) > 200 or prop.get("format") == "textarea"
    widget = forms.Textarea(attrs={"rows": 4}) if long else forms.TextInput()
    return forms.CharField(widget=widget, strip=False, **common)


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

    def add_input_problem(self, path: str, message: str) -> None:
        """Put a problem from input_problems() ("input.ticket") on its field."""
        name = path.removeprefix("input").removeprefix(".").split(".")[0].split("[")[0]
        for key, input_name in self.input_names.items():
            if input_name == name:
                if key not in self.errors:  # "required" again, after "This field is required."
                    self.add_error(key, message)
                return
        self.add_error(None, f"{path}: {message}" if path != "input" else message)
