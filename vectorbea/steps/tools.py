"""Python tools: how a team extends Vectorbea with its own functions.

    from vectorbea.steps.tools import tool

    @tool("lookup_customer")
    def lookup_customer(args, ctx):
        return {"name": "Ada"}

List the module in VECTORBEA_TOOL_MODULES; steps of kind "tool" call it by name with
`config.args`. The tool receives the StepContext (idempotency key, cancellation).
"""

from collections.abc import Callable, Mapping
from typing import Any

from vectorbea.steps.registry import StepContext

ToolFunction = Callable[[Mapping[str, Any], StepContext], Any]
TOOLS: dict[str, ToolFunction] = {}


def tool(name: str) -> Callable[[ToolFunction], ToolFunction]:
    def register(function: ToolFunction) -> ToolFunction:
        if name in TOOLS and TOOLS[name] is not function:
            raise ValueError(f"Tool {name!r} is registered twice")
        TOOLS[name] = function
        return function

    return register
