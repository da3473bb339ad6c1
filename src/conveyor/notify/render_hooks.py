"""The render's hooks on Jinja's sandbox, for stored templates: `Renderer` and its two
environments (`TEXT`, and `HTML` with autoescaping), which `conveyor.notify.locales`
compiles every part with.

`conveyor.sandbox` holds the limits, the `RenderBudget` and the bounds on operators; the
hooks here add the rest: each loop step, call and filter counted against the render's
budget, calls nested at most `MAX_DEPTH` deep, filters and str methods that size their
result (`center`, `replace`, `join`, ...) refused before they run when it would be too big,
and literals, `~` and blocks measured before they are built.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import BuiltinMethodType
from typing import Any, cast

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import Context, LoopContext

from conveyor.sandbox import (
    MAX_DEPTH,
    MAX_RANGE,
    RenderBudget,
    RenderLimit,
    Sandbox,
    checked,
    fits,
    format_size,
    measure,
    spend,
)

__all__ = ["HTML", "TEXT", "Renderer"]

_SIZED_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "replace",
                            "translate", "to_bytes"})
_SIZED_FILTERS = frozenset({"center", "indent", "wordwrap", "replace", "urlize", "tojson",
                            "pprint", "batch", "slice", "join", "sum", "format"})
_UNSIZED = frozenset({"replace", "to_bytes", "batch", "slice", "sum", "format", "join"})


# the render's hooks -------------------------------------------------------------------
def _int(value: Any) -> int:
    return abs(value) if isinstance(value, int) else 0


def _precheck(name: str, value: Any, args: Sequence[Any], kw: Mapping[str, Any]) -> Any:
    """Refuse the filter or str method `name` on `value` before it runs when it would make
    too much: one step no budget could interrupt. Returns `value` (a list, for `join`)."""
    def arg(i: int, key: str, default: Any = None) -> Any:
        return args[i] if len(args) > i else kw.get(key, default)

    size = measure(value) if name not in _UNSIZED else 0
    if name in ("center", "ljust", "rjust", "zfill"):
        need = max(size, _int(arg(0, "width", 80)))
    elif name == "expandtabs":
        need = size * max(1, _int(arg(0, "tabsize", 8)))
    elif name == "indent":
        width = arg(0, "width", 4)
        need = size + _lines(value, size) * (
            len(width) if isinstance(width, str) else _int(width))
    elif name == "wordwrap":
        wrap = str(arg(2, "wrapstring") or "\n")
        need = size + (size // max(1, _int(arg(0, "width", 79))) + _lines(value, size)
                       ) * len(wrap)
    elif name == "replace":
        s: Any = value if isinstance(value, (str, bytes)) else str(value)
        old, new = (x if isinstance(x, (str, bytes)) else str(x)
                    for x in (arg(0, "old", ""), arg(1, "new", "")))
        count = s.count(old) if old else len(s) + 1
        most = arg(2, "count")
        count = min(count, most) if isinstance(most, int) and most >= 0 else count
        need = len(s) + count * max(0, len(new) - len(old))
    elif name == "translate":
        table = arg(0, "table", {})
        need = size * max((measure(v) for v in table.values()), default=1) \
            if isinstance(table, Mapping) else size
    elif name == "urlize":  # each link: its text twice, the tag, `target` and `rel`
        extra = sum(len(str(arg(i, k) or "")) for i, k in ((2, "target"), (3, "rel")))
        need = 2 * size + sum(str(value).count(c) for c in ".@:") * (64 + extra)
    elif name in ("tojson", "pprint"):
        indent = arg(0, "indent") if name == "tojson" else 1
        need = size * (1 + (len(indent) if isinstance(indent, str) else _int(indent)))
    elif name == "to_bytes":
        need = _int(arg(0, "length", 1))
    elif name in ("batch", "slice"):  # loops of their own, and a filler per group
        groups = _int(arg(0, "linecount" if name == "batch" else "slices"))
        if groups > MAX_RANGE:
            raise RenderLimit(f"{name} makes at most {MAX_RANGE:,} groups, not {groups:,}")
        need = groups * measure(arg(1, "fill_with"))
    elif name == "sum":  # lists would be added one to the next: quadratic
        if not isinstance(arg(1, "start", 0), (int, float)):
            raise RenderLimit("sum adds numbers: its start must be a number")
        need = 0
    elif name == "format":
        need = format_size(str(value), kw or tuple(args), braces=False)
    elif name == "join":  # the filter: the items, and the separator between each two
        value = list(value)
        need = measure(value) + len(str(arg(0, "d", ""))) * len(value)
    else:
        need = size
    fits(need, name)
    return value


def _lines(value: Any, size: int) -> int:
    return value.count("\n") + 1 if isinstance(value, str) else size


def _precheck_method(method: BuiltinMethodType, args: tuple[Any, ...],
                     kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """`_precheck` for a method of a str, bytes or int; returns its arguments."""
    name, target = method.__name__, method.__self__
    if name in ("format", "format_map"):
        values = args[0] if name == "format_map" and args else (*args, *kwargs.values())
        fits(format_size(str(target), values, braces=True), name)
    elif name == "join" and args:
        items = list(args[0])
        fits(measure(items) + measure(target) * len(items), "join")
        return (items, *args[1:])
    elif name in _SIZED_METHODS:
        _precheck(name, target, args, kwargs)
    return args


def _guard(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    """Filter `f`, counted, its result `checked`, `_precheck`ed when it sizes."""
    skip = 1 if getattr(f, "jinja_pass_arg", None) is not None else 0
    sized = name in _SIZED_FILTERS

    @functools.wraps(f)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = spend()
        if sized:
            value = _precheck(name, args[skip], args[skip + 1:], kwargs)
            args = (*args[:skip], value, *args[skip + 1:])
        return checked(f(*args, **kwargs), budget)

    return guarded


class _Steps:
    """A loop's iterable, each step counted (its `len` is the iterable's)."""

    __slots__ = ("budget", "items")

    def __init__(self, items: Any, budget: RenderBudget) -> None:
        self.items, self.budget = items, budget

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Any]:
        for item in self.items:
            self.budget.tick()
            yield item


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, sending through the sandbox what its own sandbox does not
    see: each loop's iterable (`Renderer.iterate`), literals (`measured`) and `~`
    (`joined`). Blocks' buffers are joined by `Renderer.concat`."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        iterable = node.iter  # for this compile only: `environment.iterate(...)`
        node.iter = nodes.Call(nodes.EnvironmentAttribute("iterate"), [iterable], [], None,
                               None, lineno=iterable.lineno)
        try:
            super().visit_For(node, frame)
        finally:
            node.iter = iterable

    def _measured(self, visit: Callable[[Any, Frame], None], node: nodes.Expr,
                  frame: Frame) -> None:
        self.write("environment.measured(")
        visit(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._measured(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._measured(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # a target: `{% for a, b in ... %}`
            return super().visit_Tuple(node, frame)
        self._measured(super().visit_Tuple, node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # Jinja's own choice of join, handed to the hook that sizes the parts first
        join = ("(markup_join if context.eval_ctx.volatile else str_join)"
                if frame.eval_ctx.volatile else
                "markup_join" if frame.eval_ctx.autoescape else "str_join")
        self.write(f"environment.joined({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class Renderer(Sandbox):
    """`Sandbox` with a render's hooks: loop steps, calls and filters counted, calls
    nested at most `MAX_DEPTH`, filters and methods that size their result refused before
    they run when it would be too big, blocks measured before they are joined."""

    code_generator_class = _CodeGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _guard(name, f) for name, f in self.filters.items()}

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """A call, counted and nested at most `MAX_DEPTH` deep."""
        budget = spend()
        budget.tick()
        if isinstance(obj, LoopContext) and args:  # a recursive loop's next level
            args = (self.iterate(args[0]), *args[1:])
        method = getattr(obj, "__wrapped__", obj)  # str.format, as the sandbox wraps it
        if isinstance(method, BuiltinMethodType) and isinstance(
                method.__self__, (str, bytes, int)):
            args = _precheck_method(method, args, kwargs)
        budget.depth += 1
        try:
            if budget.depth > MAX_DEPTH:
                raise RenderLimit(f"calls nest more than {MAX_DEPTH} deep")
            return checked(super().call(context, obj, *args, **kwargs))
        finally:
            budget.depth -= 1

    def iterate(self, iterable: Any) -> Any:
        """A loop's iterable, each step counted."""
        return _Steps(iterable, spend())

    def concat(self, parts: Iterable[str]) -> str:
        """A block's buffer joined (a macro's, `{% set %}`'s, `{% filter %}`'s), refused
        before it is when it would be too long."""
        items = list(parts)
        fits(sum(map(len, items)), "a block")
        return cast(str, checked("".join(items)))


def _env(escape: bool) -> Renderer:
    return Renderer(undefined=jinja2.StrictUndefined, autoescape=escape,
                    keep_trailing_newline=False)


TEXT, HTML = _env(False), _env(True)
