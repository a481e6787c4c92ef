"""The tools an agent step may call, behind one small protocol (AgentTool), so that any
callable thing with a name, a description and a JSON Schema of its arguments can be one:
a workspace's Python tool (@tool), an HTTP API described in the step, and later a
published workflow.

A tool's `call(arguments, ctx)` returns its result, or a PendingCall whose slow part is
awaited on the worker's event loop (no thread, no database connection) and whose finish
returns the result. It raises StepError when the call fails; the agent gives the model
that error as the call's result. `ctx.idempotency_key` is the call's own key, the same
every time the call is made (a call in flight at a crash is made again with it).
"""

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from vectorbea.engine import ErrorClass, StepError
from vectorbea.steps.abandon import abandonable
from vectorbea.steps.registry import PendingCall, StepContext, call_outcome
from vectorbea.steps.tools import ANY_OBJECT, TOOL_INFO, TOOLS, call_tool
from vectorbea.steps.workspace_secrets import render_with_secrets

TOOL_NAME_PATTERN = "^[a-zA-Z0-9_-]{1,64}$"
BODY_METHODS = ("POST", "PUT", "PATCH")


class AgentTool(Protocol):
    name: str
    description: str
    parameters: dict[str, Any]
    needs_approval: bool

    def call(self, arguments: Mapping[str, Any], ctx: StepContext) -> Any: ...


@dataclass(frozen=True)
class PythonTool:
    """A workspace's Python tool (registered with @tool)."""

    name: str
    description: str
    parameters: dict[str, Any]
    needs_approval: bool = False

    def call(self, arguments: Mapping[str, Any], ctx: StepContext) -> Any:
        function = TOOLS[self.name]
        if inspect.iscoroutinefunction(function):  # awaited on the worker's event loop
            return PendingCall(
                lambda: call_tool(function, arguments, ctx),
                lambda answered: call_outcome(answered, ctx),
            )
        return abandonable(ctx, call_tool, function, arguments, ctx)


@dataclass(frozen=True)
class HttpTool:
    """An HTTP API described in the step: the HTTP step's request path (the SSRF guard,
    the workspace's secrets in its URL and headers, rendered only as it is called). The
    arguments go in the query string (GET, DELETE, HEAD) or as the JSON body."""

    name: str
    description: str
    parameters: dict[str, Any]
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    needs_approval: bool = False
    timeout_seconds: float = 30

    def call(self, arguments: Mapping[str, Any], ctx: StepContext) -> Any:
        from vectorbea.steps.http import rendered_request

        # Only the step's own settings are templates (secrets included); the model's
        # arguments are data, added after rendering.
        settings = {"url": self.url, "headers": dict(self.headers)}
        rendered, secret_values = render_with_secrets(settings, ctx, "http")
        config: dict[str, Any] = {
            **rendered,
            "method": self.method,
            "timeout_seconds": self.timeout_seconds,
        }
        if self.method in BODY_METHODS:
            config["body"] = dict(arguments)
            config["body_format"] = "json"
        elif arguments:
            url = config["url"]
            query = urlencode({k: _query_value(v) for k, v in arguments.items()})
            config["url"] = f"{url}{'&' if '?' in url else '?'}{query}"
        pending = rendered_request(config, ctx, secret_values)

        def finish(answered: Any) -> Any:
            response = pending.finish(answered)
            return {"status": response["status"], "body": response["body"]}

        return PendingCall(pending.call, finish)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def tools_of(config: Mapping[str, Any]) -> dict[str, AgentTool]:
    """The step's tools by name; StepError (permanent) for one that cannot be offered."""
    tools: dict[str, AgentTool] = {}
    for index, spec in enumerate(config.get("tools") or ()):
        problem = tool_problem(spec)
        if problem:
            raise StepError(ErrorClass.PERMANENT, f"tools[{index}]: {problem}")
        tool = _tool(spec)
        tools[tool.name] = tool
    return tools


def tool_problem(spec: Any) -> str | None:
    """What is wrong with one tool of an agent step's settings, or None."""
    if not isinstance(spec, Mapping):
        return "A tool must be an object."
    name = spec.get("name")
    if spec.get("type") == "python":
        if name not in TOOLS:
            return (
                f"No Python tool named {name!r} is registered (list its module in "
                "VECTORBEA_TOOL_MODULES)."
            )
        return None
    if spec.get("type") == "http":
        parameters = spec.get("parameters", ANY_OBJECT)
        try:
            Draft202012Validator.check_schema(parameters)
        except SchemaError as exc:
            return (
                f"The parameters of HTTP tool {name!r} are not a valid JSON Schema: {exc.message}"
            )
        if not isinstance(parameters, Mapping) or parameters.get("type", "object") != "object":
            return f"The parameters of HTTP tool {name!r} must be a JSON Schema of an object."
        url = str(spec.get("url") or "")
        if not url.lower().startswith(("http://", "https://")) and not url.startswith("{{"):
            return f"HTTP tool {name!r} needs an http or https URL; got {url!r}."
        return None
    return f"A tool's type must be 'python' or 'http'; got {spec.get('type')!r}."


def _tool(spec: Mapping[str, Any]) -> AgentTool:
    name = str(spec["name"])
    needs_approval = bool(spec.get("needs_approval", False))
    if spec["type"] == "python":
        info = TOOL_INFO.get(name)
        description = str(spec.get("description") or (info.description if info else ""))
        parameters = dict(info.parameters if info else ANY_OBJECT)
        return PythonTool(name, description, parameters, needs_approval)
    return HttpTool(
        name=name,
        description=str(spec.get("description") or ""),
        parameters=dict(spec.get("parameters") or ANY_OBJECT),
        method=str(spec.get("method") or "GET").upper(),
        url=str(spec["url"]),
        headers=dict(spec.get("headers") or {}),
        needs_approval=needs_approval,
        timeout_seconds=float(spec.get("timeout_seconds") or 30),
    )


def argument_problem(tool: AgentTool, arguments: Any) -> str | None:
    """Why these arguments cannot be given to the tool (not an object, or not valid
    against its schema), in words the model can act on; None when they can."""
    if not isinstance(arguments, Mapping):
        shown = str(arguments)[:200]
        return f"The arguments must be a JSON object; got {shown!r}."
    errors = sorted(
        Draft202012Validator(tool.parameters).iter_errors(dict(arguments)),
        key=lambda e: list(e.absolute_path),
    )
    if not errors:
        return None
    said = "; ".join(
        f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors[:5]
    )
    return f"The arguments do not match the tool's schema: {said}"
