"""Python tools: how a team extends Vectorbea with its own functions.

    from vectorbea.steps.tools import tool

    @tool("lookup_customer")
    def lookup_customer(args, ctx):
        return {"name": "Ada"}

List the module in VECTORBEA_TOOL_MODULES; steps of kind "tool" call it by name with
`config.args`. The tool receives the StepContext (idempotency key, cancellation).

An agent step may offer a tool to its model, which sees its description and the JSON
Schema of its arguments: declared, or derived from keyword-only parameters' annotations:

    @tool("lookup_order", description="Find an order by its number.")
    def lookup_order(args, ctx, *, order_id: int, verbose: bool = False):
        ...

Without either, the model is told the arguments are any object.

A tool that waits on the outside world can be `async def`: it is awaited on the worker
process's event loop, holding no thread while it waits (thousands at once). It must not use
the database (it runs on the loop, which has no connection) and must not block.
"""

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vectorbea.steps.registry import StepContext

ToolFunction = Callable[..., Any]
TOOLS: dict[str, ToolFunction] = {}


@dataclass(frozen=True)
class ToolInfo:
    """What a model is told about a Python tool."""

    description: str
    parameters: dict[str, Any]  # a JSON Schema of an object


TOOL_INFO: dict[str, ToolInfo] = {}
ANY_OBJECT: dict[str, Any] = {"type": "object"}
JSON_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}


def tool(
    name: str, *, schema: dict[str, Any] | None = None, description: str | None = None
) -> Callable[[ToolFunction], ToolFunction]:
    def register(function: ToolFunction) -> ToolFunction:
        if name in TOOLS and TOOLS[name] is not function:
            raise ValueError(f"Tool {name!r} is registered twice")
        TOOLS[name] = function
        said = description if description is not None else inspect.getdoc(function) or ""
        TOOL_INFO[name] = ToolInfo(said.strip(), schema or derived_schema(function))
        return function

    return register


def derived_schema(function: ToolFunction) -> dict[str, Any]:
    """The JSON Schema of a tool's keyword-only parameters (a parameter without a default
    is required); any object when it takes none."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        kind = JSON_TYPES.get(parameter.annotation)
        properties[parameter.name] = {"type": kind} if kind else {}
        if parameter.default is inspect.Parameter.empty:
            required.append(parameter.name)
    if not properties:
        return dict(ANY_OBJECT)
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def call_tool(function: ToolFunction, args: Mapping[str, Any], ctx: StepContext) -> Any:
    """Call a tool with its arguments: as `(args, ctx)`, and those of them it names as
    keyword-only parameters too."""
    named = {
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    return function(args, ctx, **{key: value for key, value in args.items() if key in named})


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
