"""The built-in step kinds that need no outside service: no-op and Python tools."""

import inspect
from collections.abc import Mapping
from typing import Any

from vectorbea.engine import ErrorClass, StepError
from vectorbea.steps.abandon import abandonable
from vectorbea.steps.registry import PendingCall, StepContext, StepKind, call_outcome, register
from vectorbea.steps.tools import TOOLS, call_tool
from vectorbea.steps.workspace_secrets import render_with_secrets


def run_noop(config: Mapping[str, Any], ctx: StepContext) -> Any:
    return config.get("output", {})


def run_tool(config: Mapping[str, Any], ctx: StepContext) -> Any:
    config, _values = render_with_secrets(config, ctx, "tool")
    function = TOOLS.get(config["tool"])
    if function is None:
        raise StepError(
            ErrorClass.PERMANENT, f"No Python tool named {config['tool']!r} is registered"
        )
    args = config.get("args", {})
    if inspect.iscoroutinefunction(function):  # awaited on the worker's event loop
        return PendingCall(
            lambda: call_tool(function, args, ctx), lambda answered: call_outcome(answered, ctx)
        )
    # On a thread of its own, so that the step's timeout (and a cancel) stops the wait.
    return abandonable(ctx, call_tool, function, args, ctx)


register(
    StepKind(
        name="noop",
        label="No-op",
        config_schema={
            "type": "object",
            "properties": {"output": {"description": "Returned as the step's output"}},
            "additionalProperties": False,
        },
        handler=run_noop,
    )
)
register(
    StepKind(
        name="tool",
        label="Python tool",
        config_schema={
            "type": "object",
            "properties": {
                "tool": {"type": "string", "minLength": 1, "title": "Tool name"},
                "args": {"type": "object", "title": "Arguments"},
            },
            "required": ["tool"],
            "additionalProperties": False,
        },
        handler=run_tool,
        # Rendered by run_tool itself, as it calls the tool: its arguments may hold secrets.
        render_config=False,
    )
)
