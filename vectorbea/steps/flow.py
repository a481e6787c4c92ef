"""Flow step kinds: transform, branch, delay and approval.

``transform`` and ``branch`` run on workers like any step. ``delay`` and ``approval`` are
moved by the engine itself (decide parks them and completes them): no worker ever runs
their handlers, which refuse if called.
"""

from collections.abc import Mapping
from typing import Any

from vectorbea.engine import (
    APPROVAL_KIND,
    APPROVAL_PORTS,
    DELAY_KIND,
    ErrorClass,
    StepError,
)
from vectorbea.engine.waits import (
    FIELD_TYPES,
    MAX_APPROVAL_TIMEOUT_SECONDS,
    MAX_DELAY_SECONDS,
    MAX_FIELDS,
    MAX_REQUIRED_APPROVALS,
    ON_TIMEOUT_CHOICES,
    WORKSPACE_ROLES,
)
from vectorbea.steps.registry import StepContext, StepKind, StepResult, register
from vectorbea.steps.templating import evaluate_condition, template_context

DEFAULT_ELSE_PORT = "else"
PORT_NAME = {
    "type": "string",
    "pattern": "^[A-Za-z_][A-Za-z0-9_-]{0,63}$",
    "x-pattern-hint": "use up to 64 letters, digits, '_' or '-', starting with a letter or '_'",
}


def run_transform(config: Mapping[str, Any], ctx: StepContext) -> Any:
    """The config was rendered before the handler was called: its output is the result."""
    return config.get("output")


def run_branch(config: Mapping[str, Any], ctx: StepContext) -> StepResult:
    """Evaluate the conditions in order; take the first true port (or every true port in
    mode "all"); take the default port when none is true."""
    context = template_context(ctx.run_input, ctx.outputs)
    take_all = config.get("mode", "first") == "all"
    taken: list[str] = []
    for index, condition in enumerate(config.get("conditions", [])):
        if evaluate_condition(condition["when"], context, f"conditions[{index}].when"):
            if condition["port"] not in taken:
                taken.append(condition["port"])
            if not take_all:
                break
    if not taken:
        taken = [config.get("default_port", DEFAULT_ELSE_PORT)]
    return StepResult(output={"taken": taken}, ports=tuple(taken))


def branch_ports(config: Mapping[str, Any]) -> tuple[str, ...]:
    ports = [condition["port"] for condition in config.get("conditions", [])]
    ports.append(config.get("default_port", DEFAULT_ELSE_PORT))
    return tuple(dict.fromkeys(ports))


def approval_ports(config: Mapping[str, Any]) -> tuple[str, ...]:
    return APPROVAL_PORTS


def run_by_the_engine(config: Mapping[str, Any], ctx: StepContext) -> Any:
    raise StepError(
        ErrorClass.PERMANENT,
        f"Step '{ctx.step_id}' is moved by the engine itself; no worker runs it.",
    )


APPROVERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "roles": {
            "type": "array",
            "items": {"enum": list(WORKSPACE_ROLES)},
            "uniqueItems": True,
            "title": "Roles",
        },
        "users": {
            "type": ["array", "string"],
            "items": {"type": "string", "minLength": 1},
            "title": "People (usernames)",
            "description": "Usernames, or a template such as {{ input.manager }}.",
        },
    },
    "additionalProperties": False,
}

TEMPLATE_HINT = (
    "Text, numbers, lists and objects; text may use templates such as {{ input.ticket }} "
    "or {{ steps.fetch.output.body }}."
)

register(
    StepKind(
        name="transform",
        label="Transform",
        config_schema={
            "type": "object",
            "title": "Transform",
            "description": "Shape data from the run's input and earlier steps into a new output.",
            "properties": {
                "output": {
                    "title": "Output",
                    "description": "The step's output. A text that is exactly one "
                    "{{ expression }} becomes that value (a number, list or object). "
                    + TEMPLATE_HINT,
                }
            },
            "required": ["output"],
            "additionalProperties": False,
        },
        handler=run_transform,
    )
)

register(
    StepKind(
        name="branch",
        label="Branch",
        config_schema={
            "type": "object",
            "title": "Branch",
            "description": "Send the run down one path (or several) depending on conditions.",
            "properties": {
                "conditions": {
                    "title": "Conditions",
                    "description": "Checked in order; each names the output it takes when true.",
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50,
                    "items": {
                        "type": "object",
                        "properties": {
                            "port": {
                                **PORT_NAME,
                                "title": "Output name",
                                "description": "The output (edge) taken when this is true, "
                                "e.g. urgent.",
                            },
                            "when": {
                                "type": "string",
                                "minLength": 1,
                                "title": "When",
                                "x-when-empty": "enter a condition",
                                "description": "A condition such as "
                                "{{ input.priority == 'high' }}. False, 0, empty, null and "
                                "the text 'false' count as not true.",
                            },
                        },
                        "required": ["port", "when"],
                        "additionalProperties": False,
                    },
                },
                "default_port": {
                    **PORT_NAME,
                    "title": "Otherwise",
                    "description": "The output taken when no condition is true.",
                    "default": DEFAULT_ELSE_PORT,
                },
                "mode": {
                    "title": "Take",
                    "description": "'first': only the first true condition's output; "
                    "'all': every true condition's output.",
                    "enum": ["first", "all"],
                    "default": "first",
                },
            },
            "required": ["conditions"],
            "additionalProperties": False,
        },
        handler=run_branch,
        ports=branch_ports,
        render_config=False,  # conditions are evaluated one by one, by the handler
    )
)

register(
    StepKind(
        name=DELAY_KIND,
        label="Delay",
        config_schema={
            "type": "object",
            "title": "Delay",
            "description": "Pause the run for a while, or until a moment. No worker is "
            "busy while it waits.",
            "properties": {
                "seconds": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": MAX_DELAY_SECONDS,
                    "title": "Wait (seconds)",
                    "description": "How long to wait, up to 30 days (2592000 seconds).",
                },
                "until": {
                    "type": "string",
                    "minLength": 1,
                    "title": "Wait until",
                    "description": "A date and time with a time zone, e.g. "
                    "2025-01-31T09:00:00Z; may be a template such as {{ input.send_at }}.",
                },
            },
            "oneOf": [{"required": ["seconds"]}, {"required": ["until"]}],
            "additionalProperties": False,
        },
        handler=run_by_the_engine,
    )
)

register(
    StepKind(
        name=APPROVAL_KIND,
        label="Approval",
        config_schema={
            "type": "object",
            "title": "Approval",
            "description": "Wait for a person to approve or deny before the run goes on.",
            "properties": {
                "title": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "title": "Title",
                    "description": "What the approver is asked, e.g. Send the refund?",
                },
                "instructions": {
                    "type": "string",
                    "maxLength": 10000,
                    "title": "Instructions",
                    "description": "What to check before deciding.",
                },
                "payload": {
                    "title": "Details",
                    "description": "What the approver sees. " + TEMPLATE_HINT,
                },
                "timeout_seconds": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": MAX_APPROVAL_TIMEOUT_SECONDS,
                    "title": "Timeout (seconds)",
                    "description": "Decide automatically after this long (see 'When nobody "
                    "decides'). Leave empty to wait for as long as it takes.",
                },
                "on_timeout": {
                    "enum": list(ON_TIMEOUT_CHOICES),
                    "default": "deny",
                    "title": "When nobody decides",
                    "description": "What happens when the timeout passes: deny, approve, or "
                    "escalate to other approvers (see 'Escalate to').",
                },
                "approvers": {
                    **APPROVERS_SCHEMA,
                    "title": "Who may decide",
                    "description": "Workspace roles and/or named people. Leave empty for "
                    "owners, admins and approvers.",
                },
                "required_approvals": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_REQUIRED_APPROVALS,
                    "default": 1,
                    "title": "Approvals needed",
                    "description": "How many different people must approve. Any one denial denies.",
                },
                "allow_self_approval": {
                    "type": "boolean",
                    "default": False,
                    "title": "The person who started the run may decide",
                    "description": "Off by default: someone else must decide.",
                },
                "fields": {
                    "type": "array",
                    "maxItems": MAX_FIELDS,
                    "title": "Fields for the approver",
                    "description": "What the approver fills in (e.g. an edited draft); the "
                    "values become the step's output 'fields'.",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {**PORT_NAME, "title": "Name"},
                            "label": {"type": "string", "maxLength": 200, "title": "Label"},
                            "type": {"enum": list(FIELD_TYPES), "default": "text"},
                            "required": {"type": "boolean", "default": False},
                            "default": {
                                "title": "Prefilled with",
                                "description": "May be a template such as "
                                "{{ steps.draft.output.text }}.",
                            },
                        },
                        "required": ["name"],
                        "additionalProperties": False,
                    },
                },
                "escalate": {
                    "type": "object",
                    "title": "Escalate to",
                    "description": "With 'When nobody decides' set to escalate: who decides "
                    "after the timeout, and until when.",
                    "properties": {
                        "approvers": APPROVERS_SCHEMA,
                        "timeout_seconds": {
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "maximum": MAX_APPROVAL_TIMEOUT_SECONDS,
                        },
                        "on_timeout": {"enum": ["deny", "approve"], "default": "deny"},
                    },
                    "required": ["approvers"],
                    "additionalProperties": False,
                },
            },
            "required": ["title"],
            "if": {"properties": {"on_timeout": {"const": "escalate"}}, "required": ["on_timeout"]},
            "then": {"required": ["escalate"]},
            "additionalProperties": False,
        },
        handler=run_by_the_engine,
        ports=approval_ports,
    )
)
