"""Python tools: how a team extends Vectorbea with its own functions.

    from vectorbea.steps.tools import tool

    @tool("lookup_customer")
    def lookup_customer(args, ctx):
        return {"name": "Ada"}

List the module in VECTORBEA_TOOL_MODULES; steps of kind "tool" call it by name with
`config.args`. The tool receives the StepContext (idempotency key, cancellation).

A tool that waits on the outside world can be `async def`: it is awaited on the worker
process's event loop, holding no thread while it waits (thousands at once). It must not use
the database (it runs on the loop, which has no connection) and must not block.
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


# An output validator: given an LLM step's parsed answer, the list of what is wrong with
# it (plain sentences; empty when it is fine). An LLM step names one in `validator`; a
# non-empty list fails the attempt as invalid_output and the model is asked to correct it.
ValidatorFunction = Callable[[Any], list[str]]
VALIDATORS: dict[str, ValidatorFunction] = {}


def validator(name: str) -> Callable[[ValidatorFunction], ValidatorFunction]:
    """Register an output validator, in a module listed in VECTORBEA_TOOL_MODULES:

    @validator("has_citations")
    def has_citations(value):
        return [] if value.get("sources") else ["Cite at least one source in 'sources'."]
    """

    def register(function: ValidatorFunction) -> ValidatorFunction:
        if name in VALIDATORS and VALIDATORS[name] is not function:
            raise ValueError(f"Validator {name!r} is registered twice")
        VALIDATORS[name] = function
        return function

    return register
