"""Templated step configs: a step's settings may use the run's input and earlier outputs.

    {"url": "https://api.example.com/tickets/{{ input.ticket }}",
     "body": "{{ steps.fetch.output.body }}",
     "count": "{{ steps.count.output.n }}"}

A string that is exactly one ``{{ expression }}`` renders to the expression's own value
(a number, list or object); any other string renders to text. Dicts and lists are rendered
item by item. Templates are Jinja expressions run in an immutable sandbox with no globals,
a short list of filters and no way to define or assign anything; anything reaching for
Python internals is refused before it runs. Every filter, test, method call, operator,
comparison and loop has its inputs measured before it runs, and each render is metered
(RenderLimits: a deadline, a number of steps, a number of bytes), so no template can take
a worker's or the web process's memory or hold its CPU. Problems raise ``TemplateProblem``
(a permanent StepError) naming the setting.

``template_problems(definition)`` is the save-time check: syntax, unsafe names, and
references to steps that do not exist or do not run before the step that uses them.
"""

import contextvars
import copy
import itertools
import json
import math
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import (
    Callable,
    ItemsView,
    Iterator,
    KeysView,
    Mapping,
    Sequence,
    ValuesView,
)
from contextlib import contextmanager
from dataclasses import dataclass
from functools import update_wrapper
from typing import Any

from jinja2 import StrictUndefined, TemplateError, UndefinedError, nodes, pass_context
from jinja2 import filters as jinja_filters
from jinja2.compiler import CodeGenerator, Frame
from jinja2.compiler import operators as COMPARE_OPERATORS
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Context, LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import _PassArg, pass_environment

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
MAX_TEMPLATE_DEPTH = 40  # how deeply expressions and tags may nest inside one template
MAX_RENDERED_CHARS = MAX_JSON_BYTES  # one rendered value, and any value built on the way
MAX_RENDER_SECONDS = 5.0  # all the templates of one step config together
MAX_LOOP_NESTING = 2
MAX_INT_BITS = 4096
MAX_INDENT = 16  # tojson(indent=…)
MAX_ROUND_DIGITS = 100  # round(precision=…)
ROOT_NAMES = frozenset({"input", "steps", "secrets"})
TEMPLATE_MARKERS = ("{{", "{%", "{#")


@dataclass(frozen=True)
class RenderLimits:
    """What rendering all the templates of one config may spend."""

    seconds: float
    steps: int  # items walked, loop iterations, lookups and calls
    bytes: int  # memory taken by the values it builds, all together


RENDER_LIMITS = RenderLimits(seconds=MAX_RENDER_SECONDS, steps=20_000_000, bytes=64 * 2**20)
# Rendering for a page (the step detail) is a preview, in the web process for whoever opens
# it: it gets a fraction of the worker's limits, whatever the templates do.
PREVIEW_LIMITS = RenderLimits(seconds=0.5, steps=1_000_000, bytes=16 * 2**20)

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
#
# One rule, applied at every point where a template's values meet Python: before an operation
# runs, everything it is given is measured, and what it would build is estimated where it can
# grow; a value (or result) larger than MAX_RENDERED_CHARS is refused. Sizes count every
# repetition of a shared part ([text] * 500 is 500 texts), as printing, comparing or copying
# it would. Each render also has a meter (RenderLimits): a deadline, a number of steps (every
# guard, loop iteration and lookup takes one, measuring takes one per item walked) and a number
# of bytes for the values it builds. So no single operation, in Python or in C, does more than
# a bounded amount of work, and a render as a whole does a bounded amount in all.
#
# The guard points: every filter and test (wrapped where the environment is built, so one
# added later is guarded too), every method call, every binary operator, ``~``, every
# comparison and ``in``, every value written out, every ``for`` loop, and the conversion of
# a result to data. Filters and tests take the render's context, which also keeps Jinja from
# running them at compile time, outside any render.

_meter: contextvars.ContextVar["_Meter | None"] = contextvars.ContextVar(
    "template_meter", default=None
)


class _TooLarge(Exception):
    pass


class _TookTooLong(Exception):
    pass


class _TooMuchWork(Exception):
    pass


class _TooMuchMemory(Exception):
    pass


class _TooDeep(Exception):
    pass


class _Meter:
    """What one render may still spend."""

    __slots__ = ("bytes_left", "deadline", "limits", "rendered", "sizes", "steps_left")

    def __init__(self, limits: RenderLimits = RENDER_LIMITS) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        self.steps_left = limits.steps
        self.bytes_left = limits.bytes
        self.rendered = 0  # size of the rendered values so far, across one config
        # id -> (size, the value itself): the size of a large container measured once this
        # render. Holding the value keeps its id from being reused while the render runs.
        self.sizes: dict[int, tuple[int, Any]] = {}

    def spend(self, steps: int = 1) -> None:
        self.steps_left -= steps
        if self.steps_left < 0:
            raise _TooMuchWork
        if time.monotonic() > self.deadline:
            raise _TookTooLong

    def build(self, value: Any) -> None:
        """Charge a value just built; ``bytes`` counts its memory, and its items' once each
        (a shared part too: the budget errs high)."""
        size = sys.getsizeof(value)
        if isinstance(value, list | tuple | dict):
            items = (
                itertools.chain.from_iterable(value.items()) if isinstance(value, dict) else value
            )
            self.spend(len(value))
            size += sum(map(sys.getsizeof, items))
        self.take(size)

    def take(self, size: int) -> None:
        self.bytes_left -= size
        if self.bytes_left < 0:
            raise _TooMuchMemory


def _current() -> _Meter:
    """The running render's meter; outside a render (Jinja's compile-time checks), a fresh
    one, so the per-operation limits still hold."""
    return _meter.get() or _Meter()


@contextmanager
def _metered(limits: RenderLimits) -> Iterator[_Meter]:
    meter = _Meter(limits)
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)


_MEMO_FROM = 1024  # containers at least this large have their size remembered for the render


def _scalar_size(value: Any) -> int | None:
    if isinstance(value, str):
        return len(value) + 2
    if value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int):  # digits, and a sign
        return int(value.bit_length() * 0.30103) + 1 + (value < 0)
    if isinstance(value, float):
        return 24
    if isinstance(value, Undefined) or not isinstance(
        value, Mapping | list | tuple | KeysView | ValuesView | ItemsView
    ):
        return 1  # a generator, a method, the loop: no data of its own to copy or print
    return None


def _size(value: Any, limit: float = MAX_RENDERED_CHARS) -> int:
    """About how many characters ``value`` takes as JSON (for plain data, a little less than
    ``json.dumps`` writes), counting a shared part at each place it appears. Raises _TooLarge
    past ``limit``; walks at most ``limit`` items to find out, and charges the walk to the
    render's meter. No recursion: a value of any depth is safe to measure."""
    size = _scalar_size(value)
    if size is not None:
        if size > limit:
            raise _TooLarge
        return size
    meter = _current()
    known = meter.sizes
    memo = known.get(id(value))
    if memo is not None and memo[1] is value:
        if memo[0] > limit:
            raise _TooLarge
        return memo[0]
    total = 2
    walked = 1
    # One frame per open container: its remaining items, itself, the total before it.
    frames: list[tuple[Iterator[Any], Any, int]] = [(_children(value), value, 0)]
    try:
        while frames:
            children, container, before = frames[-1]
            for item in children:  # plain items in this loop; a container opens a frame
                walked += 1
                if walked % 4096 == 0:  # a long walk checks the deadline as it goes
                    meter.spend(4096)
                kind = type(item)
                if kind is str:
                    total += len(item) + 3  # quotes and a separator
                elif kind is int:
                    total += int(item.bit_length() * 0.30103) + 2 + (item < 0)
                else:
                    size = _scalar_size(item)
                    if size is None:
                        memo = known.get(id(item))
                        if memo is None or memo[1] is not item:
                            frames.append((_children(item), item, total))
                            total += 3
                            break
                        size = memo[0]
                    total += size + 1
                if total > limit:
                    raise _TooLarge
            else:
                frames.pop()
                if total - before >= _MEMO_FROM:
                    known[id(container)] = (total - before, container)
        if total > limit:
            raise _TooLarge
        return total
    finally:
        meter.spend(walked % 4096)


def _children(container: Any) -> Iterator[Any]:
    if isinstance(container, Mapping):
        return itertools.chain.from_iterable(container.items())
    return iter(container)


def _made(result: Any, *inputs: Any) -> Any:
    """A guarded operation's result: measured, and charged as built unless it is one of the
    values the operation was given."""
    if isinstance(result, int) and not isinstance(result, bool):
        if result.bit_length() > MAX_INT_BITS:
            raise _TooLarge
    _size(result)
    if not any(result is value for value in inputs):
        _current().build(result)
    return result


def _measured(value: Any) -> Any:
    _size(value)
    return value


def _text(value: Any) -> str:
    """``str(value)``, measured first: a list or object prints as Python shows it, at most
    a few times its measured size (escapes), and is checked once printed."""
    if isinstance(value, str):
        return value
    text = str(_measured(value))
    if len(text) > MAX_RENDERED_CHARS:
        raise _TooLarge
    _current().build(text)
    return text


def _guarded(function: Callable[..., Any], walks: bool = False) -> Callable[..., Any]:
    """A filter or test with the guard in front: every argument measured before it runs,
    its result measured and charged after. One that ``walks`` its value in Python, item by
    item (a key function for each, a loop over words), is charged a step per item first."""
    pass_arg = _PassArg.from_obj(function)

    def guarded(context: Context, *args: Any, **kwargs: Any) -> Any:
        meter = _current()
        meter.spend()
        for value in (*args, *kwargs.values()):
            _size(value)
        if walks and args and isinstance(args[0], str | list | tuple | Mapping):
            meter.spend(len(args[0]))
        if pass_arg is _PassArg.context:
            result = function(context, *args, **kwargs)
        elif pass_arg is _PassArg.eval_context:
            result = function(context.eval_ctx, *args, **kwargs)
        elif pass_arg is _PassArg.environment:
            result = function(context.environment, *args, **kwargs)
        else:
            result = function(*args, **kwargs)
        return _made(result, *args, *kwargs.values())

    update_wrapper(guarded, function)
    guarded.template_guard = True  # type: ignore[attr-defined]
    return pass_context(guarded)


class _CodeGenerator(CodeGenerator):
    """Routes ``a ~ b``, comparisons and the items of ``for`` loops through the environment's
    guards; Jinja writes them as plain Python otherwise."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop_iterables: list[nodes.Node | None] = []  # of the loops being written

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_text((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        self.write("(environment.measured(")
        self.visit(node.expr, frame)
        self.write(")")
        for operand in node.ops:
            self.visit(operand, frame)
        self.write(")")

    def visit_Operand(self, node: nodes.Operand, frame: Frame) -> None:
        self.write(f" {COMPARE_OPERATORS[node.op]} environment.measured(")
        self.visit(node.expr, frame)
        self.write(")")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        self._loop_iterables.append(node.iter)
        try:
            super().visit_For(node, frame)
        finally:
            self._loop_iterables.pop()

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        if self._loop_iterables and node is self._loop_iterables[-1]:
            self._loop_iterables[-1] = None  # the loop's own iterable, met once
            self.write("environment.iterate(")
            super().visit(node, *args, **kwargs)
            self.write(")")
            return None
        return super().visit(node, *args, **kwargs)


class _Sandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            finalize=_measured,
        )
        self.globals.clear()
        self.filters = {name: self.filters[name] for name in _SAFE_FILTERS}
        self.filters.update(
            tojson=_tojson,
            join=_join_filter,
            replace=_replace_filter,
            truncate=_truncate,
            sum=_sum,
            round=_round,
            list=_list,
            wordcount=_wordcount,
        )
        self.filters = {
            name: _guarded(function, walks=name in _WALKING_FILTERS)
            for name, function in self.filters.items()
        }
        self.tests = {name: _guarded(function) for name, function in self.tests.items()}

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Data first: ``output.items`` is the key "items" when there is one, not the method."""
        _current().spend()
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _current().spend()
        result = super().getitem(obj, argument)
        if isinstance(result, Undefined) and not _short_key(argument):
            # The error names the key it was given: a list, or a long text, is described
            # instead of printed whole.
            return self.undefined(obj=obj, name=f"(a {type(argument).__name__})")
        return _made(result, obj) if isinstance(argument, slice) else result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _current().spend()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        allowed = SAFE_METHODS.get(type(owner), frozenset())
        if owner is None or name not in allowed:
            what = f"'{name}'" if name else f"a {type(__obj).__name__} value"
            raise SecurityError(f"calling {what} is not allowed")
        # A dict's methods only look things up; every other owner is measured with the rest.
        for value in (*args, *kwargs.values(), *(() if isinstance(owner, Mapping) else (owner,))):
            _size(value)
        if isinstance(owner, str) and name == "join":
            return _made(_join(owner, args[0] if args else ()), owner)
        if isinstance(owner, str) and name == "replace":
            return _made(_replace(owner, *args, **kwargs), owner)
        if isinstance(owner, str) and name in SPLITTING_METHODS:
            _check_pieces(owner, args[0] if args else kwargs.get("sep"))
        return _made(super().call(__context, __obj, *args, **kwargs), owner)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _current().spend()
        if operator == "%" and isinstance(left, str):
            raise SecurityError("'%' formatting of text is not allowed; use ~ to join text")
        if operator == "*":
            _check_repeat(left, right)
        if operator == "**":
            _check_power(left, right)
        if operator == "+" and isinstance(left, str) and isinstance(right, str):
            if len(left) + len(right) > MAX_RENDERED_CHARS:
                raise _TooLarge
        if operator == "+" and isinstance(left, list | tuple):
            if _size(left) + _size(right) > MAX_RENDERED_CHARS:
                raise _TooLarge
        return _made(super().call_binop(context, operator, left, right), left, right)

    def concat_text(self, parts: Sequence[Any]) -> str:
        _current().spend()
        texts = []
        size = 0
        for part in parts:
            texts.append(_text(part))
            size += len(texts[-1])
            if size > MAX_RENDERED_CHARS:
                raise _TooLarge
        return _made("".join(texts))

    def measured(self, value: Any) -> Any:
        return _measured(value)

    def iterate(self, iterable: Any) -> Iterator[Any]:
        meter = _current()
        for item in iterable:
            meter.spend()
            yield item


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
    "lower",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "reverse",
    "select",
    "selectattr",
    "sort",
    "string",
    "title",
    "trim",
    "unique",
    "upper",
    "urlencode",
)
# Filters that run Python code for each item or word of their value.
_WALKING_FILTERS = frozenset(
    {"dictsort", "max", "min", "sort", "title", "unique", "urlencode", "wordcount"}
)
# str methods whose result is a list of pieces: more objects than characters can cost.
SPLITTING_METHODS = frozenset({"split", "rsplit", "splitlines"})


def _short_key(key: Any) -> bool:
    return isinstance(key, int | float | None) or (isinstance(key, str) and len(key) <= 200)


def _check_repeat(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(times, int) and times > 0:
            # each repetition: the text, or the items and a separator
            once = len(seq) if isinstance(seq, str) else _size(seq) - 1
            if once * times > MAX_RENDERED_CHARS:
                raise _TooLarge
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise _TooLarge


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1:
        if exponent > 0 and base.bit_length() * exponent > MAX_INT_BITS:
            raise _TooLarge


def _check_pieces(text: str, separator: Any) -> None:
    """A list of N pieces of text measures at least 3N (quotes and a separator each)."""
    if isinstance(separator, str) and separator:
        pieces = text.count(separator) + 1
    else:
        pieces = len(text) // 2 + 1  # runs of whitespace, or lines: at most every other char
    if len(text) + 3 * pieces > MAX_RENDERED_CHARS:
        raise _TooLarge


def _join(separator: str, items: Any) -> str:
    separator = _text(separator)
    meter = _current()
    texts: list[str] = []
    size = 0
    for item in items:
        meter.spend()
        texts.append(_text(item))
        size += len(texts[-1]) + (len(separator) if len(texts) > 1 else 0)
        if size > MAX_RENDERED_CHARS:
            raise _TooLarge
    return separator.join(texts)


def _join_filter(value: Any, d: str = "", attribute: Any = None) -> str:
    if attribute is not None:
        value = (_ENV.getitem(item, attribute) for item in value)
    return _join(d, value)


def _replace(text: str, old: str, new: str, count: int = -1) -> str:
    old, new = _text(old), _text(new)
    occurrences = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    if len(text) + occurrences * max(len(new) - len(old), 0) > MAX_RENDERED_CHARS:
        raise _TooLarge
    return text.replace(old, new, -1 if count is None else count)


def _replace_filter(value: Any, old: str, new: str, count: int | None = None) -> str:
    return _replace(_text(value), old, new, -1 if count is None else count)


def _truncate(value: Any, length: int = 255, end: str = "...") -> str:
    text = _text(value)
    return text if len(text) <= length else text[: max(length - len(_text(end)), 0)] + end


def _tojson(value: Any, indent: int | None = None) -> str:
    if indent is not None and (
        isinstance(indent, bool) or not isinstance(indent, int) or not 0 <= indent <= MAX_INDENT
    ):
        raise ValueError(f"tojson's indent must be a whole number from 0 to {MAX_INDENT}")
    data = _to_data(value)
    if indent is None:
        return _measured(json.dumps(data, ensure_ascii=False))
    # Indented JSON is written piece by piece, so its size is checked as it grows.
    meter = _current()
    chunks: list[str] = []
    size = 0
    for chunk in json.JSONEncoder(ensure_ascii=False, indent=indent).iterencode(data):
        meter.spend()
        size += len(chunk)
        if size > MAX_RENDERED_CHARS:
            raise _TooLarge
        chunks.append(chunk)
    return "".join(chunks)


@pass_environment
def _sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    """Jinja's ``sum``, in linear time: lists are extended, not re-copied for every item."""
    if attribute is not None:
        iterable = map(jinja_filters.make_attrgetter(environment, attribute), iterable)
    meter = _current()
    if isinstance(start, str):
        raise TypeError("sum cannot add up text; use join")
    if isinstance(start, list | tuple):
        # Each extension copies only the new items; the whole is measured as the result.
        total = list(start)
        for item in iterable:
            meter.spend()
            if not isinstance(item, list | tuple):
                raise TypeError(f"sum can only add lists to a list, not {type(item).__name__}")
            if len(total) + len(item) > MAX_RENDERED_CHARS:
                raise _TooLarge
            total.extend(item)
        return total if isinstance(start, list) else tuple(total)
    result = start
    for item in iterable:
        result = environment.call_binop(None, "+", result, item)
    return result


def _round(value: Any, precision: int = 0, method: str = "common") -> float:
    if isinstance(precision, bool) or not isinstance(precision, int):
        raise ValueError("round's precision must be a whole number")
    if abs(precision) > MAX_ROUND_DIGITS:
        raise ValueError(
            f"round's precision must be from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}"
        )
    return jinja_filters.do_round(value, precision, method)


def _list(value: Any) -> list[Any]:
    if isinstance(value, str) and len(value) * 4 > MAX_RENDERED_CHARS:
        raise _TooLarge  # one text per character: quotes and a separator each
    return list(value)


def _wordcount(value: Any) -> int:
    """Counts words without building the list of them."""
    return sum(1 for _ in _WORD.finditer(_text(value)))


_WORD = re.compile(r"\w+")

_ENV = _Sandbox()
FILTERS = tuple(sorted(_ENV.filters))  # what a template may use after |
TESTS = tuple(sorted(_ENV.tests))  # and after "is"


# --- static checks (save time, and before anything renders) ----------------------------------


def _cached(max_chars: int) -> Callable[[Callable[[str], Any]], Callable[[str], Any]]:
    """An LRU cache for a function of one template's source, bounded by the total length of
    the sources it holds rather than by their number: what it keeps (a parsed tree, compiled
    code) grows with the template, and one editor may save many large ones."""

    def decorate(function: Callable[[str], Any]) -> Callable[[str], Any]:
        entries: OrderedDict[str, Any] = OrderedDict()
        held = [0]
        lock = threading.Lock()

        def cached(source: str) -> Any:
            with lock:
                if source in entries:
                    entries.move_to_end(source)
                    return entries[source]
            result = function(source)
            with lock:
                if source not in entries and len(source) <= max_chars:
                    entries[source] = result
                    held[0] += len(source)
                    while held[0] > max_chars:
                        oldest, _ = entries.popitem(last=False)
                        held[0] -= len(oldest)
            return result

        return update_wrapper(cached, function)

    return decorate


@_cached(max_chars=1_000_000)
def _parsed(source: str) -> nodes.Template:
    return _ENV.parse(source)


@_cached(max_chars=1_000_000)
def static_problems(source: str) -> tuple[str, ...]:
    """Why this template may not run, without running it; empty when it may."""
    if len(source) > MAX_TEMPLATE_CHARS:
        return (
            f"The template is {len(source):,} characters long; "
            f"the limit is {MAX_TEMPLATE_CHARS:,}.",
        )
    too_deep = (
        f"The template nests too deeply (brackets, filters, operators or tags more than "
        f"{MAX_TEMPLATE_DEPTH} levels inside each other).",
    )
    try:
        if _token_depth(source) > MAX_TEMPLATE_DEPTH:
            return too_deep
        ast = _parsed(source)
    except TemplateError as exc:
        line = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        return (f"The template has a syntax error{line}: {exc.message}",)
    except (RecursionError, MemoryError):  # Jinja's parser recurses once per nested level
        return too_deep
    # Everything after this walks the tree recursively, Jinja's compiler included.
    if _tree_depth(ast) > MAX_TEMPLATE_DEPTH:
        return too_deep
    problems = _node_problems(ast)
    if problems:
        return tuple(problems)
    try:
        unknown = sorted(find_undeclared_variables(ast) - ROOT_NAMES)
        _ENV.compile(ast)  # unknown filters and tests are found here
    except TemplateError as exc:
        return (f"The template cannot be used: {exc.message}",)
    except (RecursionError, MemoryError):
        return too_deep
    except SyntaxError as exc:  # Python's own limits on the code Jinja writes for it
        return (f"The template cannot be used: {exc.msg}.",)
    if unknown:
        names = ", ".join(f"'{name}'" for name in unknown)
        return (
            f"The template uses {names}, which is not defined here. Templates can use "
            "input.… (the run's input), steps.<step id>.output.… (an earlier step's output) "
            "and secrets.NAME (a workspace secret, in HTTP and tool steps).",
        )
    return ()


_OPENING = frozenset("([{")
_CLOSING = frozenset(")]}")
_PREFIXES = frozenset({"not", "-", "+"})


def _token_depth(source: str) -> int:
    """How deeply brackets, blocks and prefix operators (``not not x``, ``- - x``) nest, from
    the tokens alone: Jinja's parser recurses for each of these levels, so they are counted
    before it runs. Jinja's lexer does not recurse."""
    depth = deepest = prefixes = 0
    after_block_begin = False
    for _, kind, value in _ENV.lexer.tokeniter(source, None):
        if kind == "whitespace":
            continue
        if kind == "operator" and value in _OPENING:
            depth += 1
        elif kind == "operator" and value in _CLOSING:
            depth -= 1
        elif after_block_begin and kind == "name" and value in ("if", "for"):
            depth += 1
        elif after_block_begin and kind == "name" and value in ("endif", "endfor"):
            depth -= 1
        prefixes = prefixes + 1 if value in _PREFIXES else 0
        after_block_begin = kind == "block_begin"
        deepest = max(deepest, depth + prefixes)
    return deepest


def _tree_depth(ast: nodes.Node) -> int:
    """How deeply the template's nodes nest, without recursion; stops past the limit."""
    deepest = 0
    stack = [(ast, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_TEMPLATE_DEPTH:
            break
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return deepest


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
                Issue(
                    path,
                    f"Setting '{setting}' of step '{step_id}': {problem}",
                    step_id=step_id,
                    advice=problem,
                )
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


def preview_step_config(step: StepDef, state: RunState) -> dict[str, Any]:
    """The same, for showing on a page: within PREVIEW_LIMITS, so the web process spends
    little on it whatever the templates do. Raises TemplateProblem."""
    return render_config(
        effective_config(step, state), context_for_state(state), limits=PREVIEW_LIMITS
    )


def render_config(
    config: Mapping[str, Any],
    context: Mapping[str, Any],
    *,
    limits: RenderLimits = RENDER_LIMITS,
) -> dict[str, Any]:
    """Render every templated string in a config; raises TemplateProblem. A config with
    no template (most steps) is only copied: the caller gets its own either way."""
    if next(template_strings(config), None) is None:
        return copy.deepcopy(dict(config))
    with _metered(limits):
        rendered = _render(dict(config), context, "")
    problem = json_problem(rendered, "The rendered settings")
    if problem:
        raise TemplateProblem("config", problem)
    return rendered


def render_value(value: Any, context: Mapping[str, Any], path: str = "value") -> Any:
    """Render one value (a string, or a dict or list of them)."""
    with _metered(RENDER_LIMITS):
        return _render(value, context, path)


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
            value, size = _rendered_data(_compiled_expression(expression)(context))
        else:
            value = _render_text(source, context)
            size = len(value) + 2
        # The rendered values of one config together: each is within the limit, and so is
        # their sum, so the config's own size check never has a giant to serialise.
        meter = _current()
        meter.rendered += size
        if meter.rendered > MAX_JSON_BYTES:
            raise TemplateProblem(
                "config",
                f"The rendered settings would be more than {MAX_JSON_BYTES:,} bytes of JSON; "
                f"the limit is {MAX_JSON_BYTES:,} bytes.",
            )
        return value
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
            path, f"Rendering took longer than {_current().limits.seconds:g} seconds."
        ) from None
    except _TooMuchWork:
        raise TemplateProblem(
            path,
            "Rendering it is too much work: together, the templates of these settings may "
            f"take at most {_current().limits.steps:,} steps (items read, loop turns, calls).",
        ) from None
    except _TooMuchMemory:
        raise TemplateProblem(
            path,
            "It needs too much memory to render: together, the templates of these settings "
            f"may build at most {_current().limits.bytes // 2**20} MiB of values.",
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
    meter = _current()
    chunks: list[str] = []
    size = 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > MAX_RENDERED_CHARS:
            raise _TooLarge
        meter.spend()
        meter.build(chunk)
        chunks.append(chunk)
    return "".join(chunks)


@_cached(max_chars=1_000_000)
def _compiled(source: str) -> Any:
    return _ENV.from_string(source)


@_cached(max_chars=1_000_000)
def _compiled_expression(expression: str) -> Any:
    return _ENV.compile_expression(expression, undefined_to_none=False)


def _to_data(value: Any) -> Any:
    """A rendered value as plain JSON data, within the size limit (a value that repeats a
    part is copied out in full: it is measured as it is copied); anything else (a method,
    an undefined) refused."""
    return _rendered_data(value)[0]


def _rendered_data(value: Any) -> tuple[Any, int]:
    """The same, and its size."""
    room = [MAX_RENDERED_CHARS]
    data = _data(value, 0, room, _current())
    return data, MAX_RENDERED_CHARS - room[0]


def _data(value: Any, depth: int, room: list[int], meter: _Meter) -> Any:
    if depth > MAX_JSON_DEPTH:
        raise _TooDeep
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    meter.spend()
    if value is None or isinstance(value, bool | int | str | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value} is not a JSON number")
        room[0] -= _scalar_size(value) or 0
        if room[0] < 0:
            raise _TooLarge
        return value
    if isinstance(value, Mapping):
        copied: Any = {
            _data(_key(key), depth + 1, room, meter): _data(item, depth + 1, room, meter)
            for key, item in value.items()
        }
    elif isinstance(value, list | tuple | KeysView | ValuesView | ItemsView | Iterator):
        copied = [_data(item, depth + 1, room, meter) for item in value]
    else:
        raise TypeError(f"the result is a {type(value).__name__}, not data")
    meter.take(sys.getsizeof(copied))  # its items are counted as they are copied
    return copied


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
