"""Templated step configs: a step's settings may use the run's input and earlier outputs.

    {"url": "https://api.example.com/tickets/{{ input.ticket }}",
     "body": "{{ steps.fetch.output.body }}",
     "count": "{{ steps.count.output.n }}"}

A string that is exactly one ``{{ expression }}`` renders to the expression's own value
(a number, list or object); any other string renders to text. Dicts and lists are rendered
item by item. Templates are Jinja expressions run in an immutable sandbox with no globals,
a short list of filters, no way to define or assign anything, and guards on every operation
that could grow a value without bound; anything reaching for Python internals is refused
before it runs. Problems raise ``TemplateProblem`` (a permanent StepError) naming the setting.

``template_problems(definition)`` is the save-time check: syntax, unsafe names, and
references to steps that do not exist or do not run before the step that uses them.
"""

import contextvars
import copy
import json
import math
import re
import time
from collections.abc import ItemsView, Iterator, KeysView, Mapping, Sequence, ValuesView
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, UndefinedError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from vectorbea.engine import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    ErrorClass,
    Issue,
    RunState,
    StepDef,
    StepError,
    json_depth,
    json_problem,
)

MAX_TEMPLATE_CHARS = 100_000  # one templated setting, before rendering
MAX_RENDERED_CHARS = MAX_JSON_BYTES  # one rendered string, and any value built on the way
MAX_RENDER_SECONDS = 5.0  # all the templates of one step config together
MAX_LOOP_NESTING = 2
MAX_INT_BITS = 4096
ROOT_NAMES = frozenset({"input", "steps", "secrets"})
TEMPLATE_MARKERS = ("{{", "{%", "{#")

# Tags that define or assign things, or load other templates: none is needed to shape data,
# and each could be used to build a value without bound or reach outside the sandbox.
FORBIDDEN_NODES: dict[type[nodes.Node], str] = {
    nodes.Macro: "{% macro %}",
    nodes.CallBlock: "{% call %}",
    nodes.Assign: "{% set %}",
    nodes.AssignBlock: "{% set %}",
    nodes.With: "{% with %}",
    nodes.FilterBlock: "{% filter %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from … import %}",
    nodes.Extends: "{% extends %}",
    nodes.Block: "{% block %}",
    nodes.Scope: "{% scope %}",
    nodes.ExprStmt: "{% do %}",
    nodes.EvalContextModifier: "{% autoescape %}",
}
# Attribute names of Python's frames, code and generators: never data.
INTERNAL_NAMES = frozenset(
    {
        "mro",
        "func_globals",
        "func_code",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "f_code",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "cr_code",
        "ag_frame",
        "ag_code",
        "tb_frame",
        "tb_next",
    }
)
# Methods a template may call, per type of the object they belong to. Nothing that pads,
# formats or repeats text (center, ljust, zfill, format…); join and replace are guarded.
SAFE_METHODS: dict[type, frozenset[str]] = {
    str: frozenset(
        {
            "lower",
            "upper",
            "strip",
            "lstrip",
            "rstrip",
            "title",
            "capitalize",
            "casefold",
            "swapcase",
            "startswith",
            "endswith",
            "split",
            "rsplit",
            "splitlines",
            "partition",
            "rpartition",
            "removeprefix",
            "removesuffix",
            "count",
            "find",
            "rfind",
            "index",
            "rindex",
            "isdigit",
            "isdecimal",
            "isnumeric",
            "isalpha",
            "isalnum",
            "isspace",
            "islower",
            "isupper",
            "istitle",
            "replace",
            "join",
        }
    ),
    dict: frozenset({"get", "keys", "values", "items"}),
    list: frozenset({"count", "index"}),
    tuple: frozenset({"count", "index"}),
    LoopContext: frozenset({"cycle", "changed"}),
}


class TemplateProblem(StepError):
    """A templated setting that cannot be rendered: never worth retrying."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(ErrorClass.PERMANENT, f"Setting '{path}': {problem}")
        self.path = path
        self.problem = problem


# --- the sandbox ------------------------------------------------------------------------------

_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("template_deadline")


class _TooLarge(Exception):
    pass


class _TookTooLong(Exception):
    pass


class _TooDeep(Exception):
    pass


def _tick() -> None:
    if time.monotonic() > _deadline.get(math.inf):
        raise _TookTooLong


def _check_size(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_RENDERED_CHARS:
        raise _TooLarge
    return value


class _CodeGenerator(CodeGenerator):
    """Routes ``a ~ b`` through the environment, so concatenation is size-checked too."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_text((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Sandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.globals.clear()
        self.filters = {name: self.filters[name] for name in _SAFE_FILTERS}
        self.filters.update(
            tojson=_tojson, join=_join_filter, replace=_replace_filter, truncate=_truncate
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Data first: ``output.items`` is the key "items" when there is one, not the method."""
        _tick()
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        allowed = SAFE_METHODS.get(type(owner), frozenset())
        if owner is None or name not in allowed:
            what = f"'{name}'" if name else f"a {type(__obj).__name__} value"
            raise SecurityError(f"calling {what} is not allowed")
        if isinstance(owner, str) and name == "join":
            return _join(owner, args[0] if args else ())
        if isinstance(owner, str) and name == "replace":
            return _replace(owner, *args, **kwargs)
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "%" and isinstance(left, str):
            raise SecurityError("'%' formatting of text is not allowed; use ~ to join text")
        if operator == "*":
            _check_repeat(left, right)
        if operator == "**":
            _check_power(left, right)
        if operator == "+" and isinstance(left, str | list | tuple):
            if hasattr(right, "__len__") and len(left) + len(right) > MAX_RENDERED_CHARS:
                raise _TooLarge
        result = super().call_binop(context, operator, left, right)
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
            raise _TooLarge
        return _check_size(result)

    def concat_text(self, parts: Sequence[Any]) -> str:
        _tick()
        texts = [str(part) for part in parts]
        if sum(len(text) for text in texts) > MAX_RENDERED_CHARS:
            raise _TooLarge
        return "".join(texts)


_SAFE_FILTERS = (
    "abs",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "first",
    "float",
    "int",
    "items",
    "last",
    "length",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "reverse",
    "round",
    "select",
    "selectattr",
    "sort",
    "string",
    "sum",
    "title",
    "trim",
    "unique",
    "upper",
    "urlencode",
    "wordcount",
)


def _check_repeat(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(times, int):
            if len(seq) * max(times, 0) > MAX_RENDERED_CHARS:
                raise _TooLarge
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise _TooLarge


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1:
        if exponent > 0 and base.bit_length() * exponent > MAX_INT_BITS:
            raise _TooLarge


def _join(separator: str, items: Any) -> str:
    texts = [str(item) for item in items]
    size = sum(len(text) for text in texts) + len(separator) * max(len(texts) - 1, 0)
    if size > MAX_RENDERED_CHARS:
        raise _TooLarge
    return separator.join(texts)


def _join_filter(value: Any, d: str = "", attribute: Any = None) -> str:
    if attribute is not None:
        value = [_ENV.getitem(item, attribute) for item in value]
    return _join(str(d), value)


def _replace(text: str, old: str, new: str, count: int = -1) -> str:
    old, new = str(old), str(new)
    occurrences = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    if len(text) + occurrences * max(len(new) - len(old), 0) > MAX_RENDERED_CHARS:
        raise _TooLarge
    return text.replace(old, new, -1 if count is None else count)


def _replace_filter(value: Any, old: str, new: str, count: int | None = None) -> str:
    return _replace(str(value), old, new, -1 if count is None else count)


def _truncate(value: Any, length: int = 255, end: str = "...") -> str:
    text = str(value)
    return text if len(text) <= length else text[: max(length - len(end), 0)] + end


def _tojson(value: Any, indent: int | None = None) -> str:
    text = json.dumps(_to_data(value), ensure_ascii=False, indent=indent)
    return _check_size(text)


_ENV = _Sandbox()


# --- static checks (save time, and before anything renders) ----------------------------------


@lru_cache(maxsize=4096)
def _parsed(source: str) -> nodes.Template:
    return _ENV.parse(source)


@lru_cache(maxsize=4096)
def static_problems(source: str) -> tuple[str, ...]:
    """Why this template may not run, without running it; empty when it may."""
    if len(source) > MAX_TEMPLATE_CHARS:
        return (
            f"The template is {len(source):,} characters long; "
            f"the limit is {MAX_TEMPLATE_CHARS:,}.",
        )
    try:
        ast = _parsed(source)
    except TemplateError as exc:
        line = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        return (f"The template has a syntax error{line}: {exc.message}",)
    problems = _node_problems(ast)
    if problems:
        return tuple(problems)
    try:
        unknown = sorted(find_undeclared_variables(ast) - ROOT_NAMES)
        _ENV.compile(ast)  # unknown filters and tests are found here
    except TemplateError as exc:
        return (f"The template cannot be used: {exc.message}",)
    if unknown:
        names = ", ".join(f"'{name}'" for name in unknown)
        return (
            f"The template uses {names}, which is not defined here. Templates can use "
            "input.… (the run's input), steps.<step id>.output.… (an earlier step's output) "
            "and secrets.NAME (a workspace secret, in HTTP and tool steps).",
        )
    return ()


def _node_problems(ast: nodes.Template) -> list[str]:
    problems: list[str] = []
    for node in ast.find_all(nodes.Node):
        forbidden = FORBIDDEN_NODES.get(type(node))
        if forbidden:
            problems.append(f"{forbidden} is not allowed in a template.")
        name = _accessed_name(node)
        if name is not None and (name.startswith("_") or name in INTERNAL_NAMES):
            problems.append(f"Access to '{name}' is not allowed (it is not data).")
        if isinstance(node, nodes.Name) and node.name == "self":
            problems.append("'self' is not defined here.")
    if _loop_nesting(ast) > MAX_LOOP_NESTING:
        problems.append(f"Loops may be nested at most {MAX_LOOP_NESTING} deep.")
    return list(dict.fromkeys(problems))


def _accessed_name(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return node.arg.value if isinstance(node.arg.value, str) else None
    if isinstance(node, nodes.Name):
        return node.name
    return None


def _loop_nesting(node: nodes.Node) -> int:
    inner = max((_loop_nesting(child) for child in node.iter_child_nodes()), default=0)
    return inner + 1 if isinstance(node, nodes.For) else inner


def step_references(source: str) -> set[str]:
    """The step ids a template reads as ``steps.<id>`` or ``steps['<id>']``."""
    found: set[str] = set()
    for node in _parsed(source).find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node.node, nodes.Name) and node.node.name == "steps":
            name = _accessed_name(node)
            if name is not None:
                found.add(name)
    return found


def is_template(value: Any) -> bool:
    return isinstance(value, str) and any(marker in value for marker in TEMPLATE_MARKERS)


def template_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, source) of every templated string in a config, outermost first."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, at, depth = stack.pop(0)
        if depth > MAX_JSON_DEPTH:
            continue
        if isinstance(item, Mapping):
            stack.extend((child, _join_path(at, key), depth + 1) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, f"{at}[{index}]", depth + 1) for index, child in enumerate(item))
        elif is_template(item):
            yield at, item


def template_problems(definition: Mapping[str, Any]) -> list[Issue]:
    """Save-time check of every template in every step config: syntax, unsafe names, and
    references to steps that do not exist or do not run before the step using them.
    Never raises on junk; pass it to validate_definition(..., checks=[template_problems])."""
    raw_steps = definition.get("steps") if isinstance(definition, Mapping) else None
    if not isinstance(raw_steps, list):
        return []
    steps = {
        raw["id"]: (index, raw)
        for index, raw in enumerate(raw_steps)
        if isinstance(raw, Mapping) and isinstance(raw.get("id"), str)
    }
    ancestors = _ancestors(steps, definition.get("edges"))
    issues: list[Issue] = []
    for step_id, (index, raw) in steps.items():
        base = f"steps[{index}].config"
        for path, source in template_strings(raw.get("config"), base):
            setting = path[len(base) :].lstrip(".") or "config"
            problems = list(static_problems(source))
            if not problems:
                problems = _reference_problems(source, step_id, steps, ancestors[step_id])
            issues += [
                Issue(path, f"Setting '{setting}' of step '{step_id}': {problem}", step_id=step_id)
                for problem in problems
            ]
    return issues


def _reference_problems(
    source: str, step_id: str, steps: Mapping[str, Any], ancestors: set[str]
) -> list[str]:
    problems = []
    for ref in sorted(step_references(source)):
        if ref == step_id:
            problems.append("A step cannot use its own output.")
        elif ref not in steps:
            problems.append(f"It uses steps.{ref}, but there is no step '{ref}'.")
        elif ref not in ancestors:
            problems.append(
                f"It uses the output of step '{ref}', which does not run before this step. "
                f"Connect '{ref}' to this step (directly or through other steps)."
            )
    return problems


def _ancestors(steps: Mapping[str, Any], raw_edges: Any) -> dict[str, set[str]]:
    parents: dict[str, set[str]] = {step_id: set() for step_id in steps}
    for edge in raw_edges if isinstance(raw_edges, list) else ():
        if not isinstance(edge, Mapping):
            continue
        source, target = edge.get("source"), edge.get("target")
        if isinstance(source, str) and source in steps and target in parents:
            parents[target].add(source)
    result: dict[str, set[str]] = {}
    for step_id in steps:
        seen: set[str] = set()
        stack = list(parents[step_id])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(parents[current])
        result[step_id] = seen
    return result


# --- rendering ------------------------------------------------------------------------------


def template_context(run_input: Mapping[str, Any] | None, outputs: Mapping[str, Any]) -> dict:
    """What templates see: the run input, the outputs of completed steps, and secrets as
    their own text (never their values: see the secrets section below)."""
    return {
        "input": dict(run_input or {}),
        "steps": {step_id: {"output": output} for step_id, output in outputs.items()},
        "secrets": SECRET_PLACEHOLDERS,
    }


def context_for_state(state: RunState) -> dict:
    outputs = {key: step.output for key, step in state.steps.items() if step.status == "completed"}
    return template_context(state.input, outputs)


def effective_config(step: StepDef, state: RunState) -> dict[str, Any]:
    """The settings a step runs with: the ones a person gave it when retrying it (kept in
    the run's state), else the definition's."""
    override = state.step(step.id).config
    return dict(override) if override is not None else step.config


def render_step_config(step: StepDef, state: RunState) -> dict[str, Any]:
    """A step's config rendered against the run so far: the engine's ConfigRenderer."""
    return render_config(effective_config(step, state), context_for_state(state))


def render_config(config: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Render every templated string in a config; raises TemplateProblem. A config with
    no template (most steps) is only copied: the caller gets its own either way."""
    if next(template_strings(config), None) is None:
        return copy.deepcopy(dict(config))
    token = _deadline.set(time.monotonic() + MAX_RENDER_SECONDS)
    try:
        rendered = _render(dict(config), context, "")
    finally:
        _deadline.reset(token)
    problem = json_problem(rendered, "The rendered settings")
    if problem:
        raise TemplateProblem("config", problem)
    return rendered


def render_value(value: Any, context: Mapping[str, Any], path: str = "value") -> Any:
    """Render one value (a string, or a dict or list of them)."""
    token = _deadline.set(time.monotonic() + MAX_RENDER_SECONDS)
    try:
        return _render(value, context, path)
    finally:
        _deadline.reset(token)


def evaluate_condition(source: Any, context: Mapping[str, Any], path: str) -> bool:
    """A branch condition: true unless it renders to false, 0, null, empty or "false"."""
    value = render_value(source, context, path)
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none", "null")
    return bool(value)


def _render(value: Any, context: Mapping[str, Any], path: str) -> Any:
    if json_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise TemplateProblem(path or "config", f"nested more than {MAX_JSON_DEPTH} levels")
    return _render_item(value, context, path)


def _render_item(value: Any, context: Mapping[str, Any], path: str) -> Any:
    if isinstance(value, Mapping):
        return {
            key: _render_item(item, context, _join_path(path, key)) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_render_item(item, context, f"{path}[{i}]") for i, item in enumerate(value)]
    if not is_template(value):
        return value
    return _render_string(value, context, path or "value")


def _render_string(source: str, context: Mapping[str, Any], path: str) -> Any:
    problems = static_problems(source)
    if problems:
        raise TemplateProblem(path, " ".join(problems))
    try:
        expression = _single_expression(source)
        if expression is not None:
            return _to_data(_compiled_expression(expression)(context))
        return _render_text(source, context)
    except TemplateProblem:
        raise
    except _TooLarge:
        raise TemplateProblem(
            path, f"The result would be larger than {MAX_RENDERED_CHARS:,} characters."
        ) from None
    except _TooDeep:
        raise TemplateProblem(
            path, f"The result is nested more than {MAX_JSON_DEPTH} levels deep."
        ) from None
    except _TookTooLong:
        raise TemplateProblem(
            path, f"Rendering took longer than {MAX_RENDER_SECONDS:g} seconds."
        ) from None
    except SecurityError as exc:
        raise TemplateProblem(path, f"The template tried something unsafe: {exc}") from None
    except UndefinedError as exc:
        raise TemplateProblem(
            path,
            f"It refers to something that does not exist ({exc.message}). Templates can use "
            "input.… and the outputs of steps that completed before this one.",
        ) from None
    except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        raise TemplateProblem(path, f"It could not be rendered: {_describe(exc)}") from None
    except (MemoryError, RecursionError):
        raise TemplateProblem(path, "It needs too much memory to render.") from None
    except Exception as exc:  # whatever a template does, it must not crash a worker
        raise TemplateProblem(path, f"It could not be rendered: {_describe(exc)}") from None


_SINGLE_EXPRESSION = re.compile(r"\A\s*\{\{(?P<expression>.*)\}\}\s*\Z", re.DOTALL)


def _single_expression(source: str) -> str | None:
    """The expression when ``source`` is exactly one ``{{ … }}``; None otherwise."""
    match = _SINGLE_EXPRESSION.match(source)
    if match is None:
        return None
    body = _parsed(source).body
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    parts = [node for node in body[0].nodes if not isinstance(node, nodes.TemplateData)]
    data = [node for node in body[0].nodes if isinstance(node, nodes.TemplateData)]
    if len(parts) != 1 or any(node.data.strip() for node in data):
        return None
    return match.group("expression")


def _render_text(source: str, context: Mapping[str, Any]) -> str:
    template = _compiled(source)
    chunks: list[str] = []
    size = 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > MAX_RENDERED_CHARS:
            raise _TooLarge
        chunks.append(chunk)
    return "".join(chunks)


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Any:
    return _ENV.from_string(source)


@lru_cache(maxsize=1024)
def _compiled_expression(expression: str) -> Any:
    return _ENV.compile_expression(expression, undefined_to_none=False)


def _to_data(value: Any, depth: int = 0) -> Any:
    """A rendered value as plain JSON data; anything else (a method, an undefined) refused."""
    if depth > MAX_JSON_DEPTH:
        raise _TooDeep
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a JSON number")
        return value
    if isinstance(value, Mapping):
        return {_key(key): _to_data(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | KeysView | ValuesView | ItemsView | Iterator):
        items = []
        for item in value:
            _tick()
            items.append(_to_data(item, depth + 1))
            if len(items) > MAX_RENDERED_CHARS:
                raise _TooLarge
        return items
    raise TypeError(f"the result is a {type(value).__name__}, not data")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool | int | float) or key is None:
        return json.dumps(key)
    raise TypeError(f"an object key is a {type(key).__name__}, not text")


def _describe(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message).splitlines()[0][:300]


def _join_path(base: str, key: Any) -> str:
    key = str(key)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{base}.{key}" if base else key
    return f"{base}[{json.dumps(key)}]"


# --- secrets ----------------------------------------------------------------------------------
# ``{{ secrets.NAME }}`` stands for a workspace secret. The ordinary render (the executor's,
# the step page's) never sees a value: there it renders as its own text. Only the step kinds
# that take secrets render with the values, when they call out (vectorbea.steps.
# workspace_secrets). A secret is used whole, so its value goes out exactly as stored and
# is recognised wherever it is echoed back.

SECRET_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


class _SecretPlaceholders(Mapping[str, str]):
    """Any name, as the text of its own template."""

    def __getitem__(self, name: str) -> str:
        if not isinstance(name, str):
            raise KeyError(name)
        return "{{ secrets." + name + " }}"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


SECRET_PLACEHOLDERS = _SecretPlaceholders()


def secret_uses(source: str) -> tuple[set[str], list[str]]:
    """The secret names a template uses, and what is wrong with how it uses them: a
    secret is allowed only whole, as ``{{ secrets.NAME }}``, with no filter, test or
    operation on it. A template that does not parse uses none (static_problems says why)."""
    if "secrets" not in source:
        return set(), []
    try:
        ast = _parsed(source)
    except TemplateError:
        return set(), []
    whole: set[int] = set()
    names: set[str] = set()
    problems: list[str] = []
    for output in ast.find_all(nodes.Output):
        for child in output.nodes:
            if not isinstance(child, nodes.Getattr | nodes.Getitem):
                continue
            if not (isinstance(child.node, nodes.Name) and child.node.name == "secrets"):
                continue
            name = _accessed_name(child)
            if name is None:
                continue
            whole.add(id(child.node))
            if SECRET_NAME.fullmatch(name):
                names.add(name)
            else:
                problems.append(
                    f"'{name}' cannot be a secret's name: names are letters, digits and _, "
                    "starting with a letter."
                )
    if any(node.name == "secrets" and id(node) not in whole for node in ast.find_all(nodes.Name)):
        problems.append(
            "Use a secret whole, as {{ secrets.NAME }}: filters, tests and operations on a "
            "secret are not allowed."
        )
    return names, problems
