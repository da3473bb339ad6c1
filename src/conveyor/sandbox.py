"""Bounds on rendering a stored template: a template comes from an API, so it renders in
Jinja's immutable sandbox and each render spends a `RenderBudget` (CPU, characters out and
built, call depth); a step no budget could interrupt (`7 ** 20000000`, `'x' * 10**9`,
`range(10**9)`) is refused before it runs. Here are the limits, `Sandbox` (which bounds
operators) and `lint`, which `conveyor.locales.parse_template` runs at `PUT` to refuse what
can never render; the renderer (`conveyor.notify.render_hooks`) adds the hooks of loops,
calls, filters and blocks.
"""

from __future__ import annotations

import functools
import gc
import re
import time
from collections.abc import Callable, ItemsView, Iterable, KeysView, Mapping, ValuesView
from contextvars import ContextVar, Token
from string import Formatter
from typing import Any, cast

from jinja2 import nodes
from jinja2.runtime import Context, str_join
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

__all__ = ["GC_SECONDS", "LINT_SECONDS", "MAX_DEPTH", "MAX_RANGE", "MAX_RENDERED", "RENDER_SECONDS",
           "SYNTAX", "RenderBudget", "RenderLimit", "Sandbox", "checked", "fits",
           "format_size", "lint", "measure", "spend"]


# limits -------------------------------------------------------------------------------
RENDER_SECONDS = 0.1
"""CPU seconds one notification's render may take (subject, text and html together). A
stored template renders in well under a millisecond, a digest of a thousand events in a
few; past a tenth of a second it loops by design or by mistake. The rendering thread's CPU
time, not wall time: a busy host does not fail a sound template; nor does a garbage
collection that happens to run in the render's thread (`GC_SECONDS`)."""
GC_SECONDS = 20 * RENDER_SECONDS
"""CPU seconds of garbage collection in a render's thread not charged to its budget: a full
collection of a big process's heap takes most of a second (0.7 s in the test suite's), and
is the process's, not the template's; past this much, a render that provokes collections
pays for them."""
MAX_RENDERED = 2 * 1_048_576
"""Characters one render may put out, and the most one value may hold: 20 times the 102 KB
past which Gmail clips an email, twice the 1 MiB a webhook sends; no notification comes
near it (a digest of 2,000 events of 1 KB fits)."""
MAX_BUILT = 8 * MAX_RENDERED
"""Characters one render may make on the way (values, the buffers of blocks and macros):
the bound on its memory, as `MAX_RENDERED` is on what it returns."""
MAX_INT_BITS = 1024
"""Bits of a number arithmetic may make: counts, amounts and ids fit in 64; past a float's
range a number only burns CPU (`7 ** 20000000`) or fails printing (4,300 digits)."""
MAX_DEPTH = 50
"""Calls nested in one another (macros, `caller()`, recursive loops): a macro calling
itself stops here with a message, long before Python's recursion limit."""
LINT_SECONDS = 0.05
"""CPU seconds `parse_template` may spend evaluating one document's constant expressions."""
_CONTAINERS = (list, tuple, set, frozenset, KeysView, ValuesView, ItemsView)
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?")


class RenderLimit(Exception):
    """A render went past a limit (the message says which). `spent`: it ran out of its
    budget (CPU, characters), rather than having one step refused."""

    def __init__(self, message: str, spent: bool = False) -> None:
        super().__init__(message)
        self.spent = spent


_BUDGET: ContextVar[RenderBudget | None] = ContextVar("conveyor_render_budget", default=None)


class RenderBudget:
    """What one render may spend (the limits above); `with` makes it the one the sandbox's
    hooks charge (`spend`), in this thread."""

    __slots__ = ("_collecting", "_deadline", "_forgiven", "_next", "_ticks", "_token", "built",
                 "depth", "out", "seconds")

    def __init__(self, seconds: float = RENDER_SECONDS) -> None:
        self.seconds = seconds
        self.built = self.out = self.depth = self._ticks = self._next = 0
        self._deadline = self._collecting = self._forgiven = 0.0
        self._token: Token[RenderBudget | None] | None = None

    def __enter__(self) -> RenderBudget:
        self._deadline = time.thread_time() + self.seconds
        self._token = _BUDGET.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _BUDGET.reset(self._token)

    def used(self) -> float:
        """CPU seconds charged since `with` (collections within `GC_SECONDS` are not)."""
        return time.thread_time() - self._deadline + self.seconds

    def collection(self, started: bool) -> None:
        """A garbage collection starts or ends in this thread: its time moves the deadline,
        up to `GC_SECONDS` in all."""
        now = time.thread_time()
        if started:
            self._collecting = now
        elif self._collecting:
            spent = min(now - self._collecting, GC_SECONDS - self._forgiven)
            self._forgiven += spent
            self._deadline += spent
            self._collecting = 0.0

    def tick(self, weight: int = 1) -> None:
        """Count a step; every 64 (or at one big step) look at the clock, a syscall."""
        self._ticks += weight
        if self._ticks >= self._next:
            self._next = self._ticks + 64
            if time.thread_time() > self._deadline:
                raise RenderLimit(f"it ran past its {self.seconds:g} s of CPU", spent=True)

    def build(self, chars: int) -> None:
        """Count `chars` characters made."""
        self.built += chars
        if self.built > MAX_BUILT:
            raise RenderLimit(f"it made more than {MAX_BUILT:,} characters", spent=True)
        self.tick(1 + chars // 4096)

    def output(self, chars: int) -> None:
        """Count `chars` characters put out."""
        self.out += chars
        if self.out > MAX_RENDERED:
            raise RenderLimit(f"its output passed {MAX_RENDERED:,} characters", spent=True)
        self.tick()


def _collecting(phase: str, info: dict[str, int]) -> None:
    # gc calls back in the thread whose allocation set the collection off, so in its context.
    budget = _BUDGET.get()
    if budget is not None:
        budget.collection(phase == "start")


gc.callbacks.append(_collecting)


def spend() -> RenderBudget:
    """The current render's budget (`RenderLimit` outside one)."""
    budget = _BUDGET.get()
    if budget is None:  # Jinja folding a constant while compiling: left to the render
        raise RenderLimit("not within a render budget")
    return budget


def measure(value: Any, limit: int = MAX_RENDERED) -> int:
    """About how many characters `value` prints as: containers whole, an item once per
    place it appears (`[s] * 9` is nine `s`), indented by its depth as `pprint` puts it;
    `RenderLimit` past `limit` or 100 levels."""
    memo: dict[tuple[int, int], int] = {}

    def walk(v: Any, depth: int) -> int:
        if isinstance(v, (str, bytes)):
            return len(v) + depth
        if isinstance(v, int):
            return v.bit_length() // 3 + depth + 1
        if isinstance(v, Namespace):  # prints its attributes
            v = object.__getattribute__(v, "_Namespace__attrs")
        if isinstance(v, Mapping):
            items: Iterable[Any] = [*v.keys(), *v.values()]
        elif isinstance(v, _CONTAINERS):
            items = v
        else:  # None, floats, ranges, generators, macros: a short repr
            return 24 + depth
        key = (id(v), depth)
        if key in memo:
            return memo[key]
        if depth > 100:
            raise RenderLimit("a value nests more than 100 levels deep")
        total = 2 + depth
        for item in items:
            total += walk(item, depth + 1) + 2
            if total > limit:
                raise RenderLimit(f"a value would print as more than {limit:,} characters")
        memo[key] = total
        return total

    return walk(value, 0)


def fits(need: int, what: str) -> None:
    """`RenderLimit` when `what` would make more than `MAX_RENDERED` characters."""
    if need > MAX_RENDERED:
        raise RenderLimit(f"{what} would make about {need:,} characters; the most is "
                          f"{MAX_RENDERED:,}")


def checked(value: Any, budget: RenderBudget | None = None) -> Any:
    """`value`, made by the template, measured and counted against `budget` (the
    current one when None)."""
    budget = budget or spend()
    size = 0
    if isinstance(value, str):
        size = len(value)
    elif isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise RenderLimit(f"a number of {value.bit_length():,} bits; the most is "
                              f"{MAX_INT_BITS:,}")
    elif isinstance(value, (Mapping, Namespace, *_CONTAINERS)):
        size = measure(value)
    fits(size, "a value")
    budget.build(size)
    return value


def format_size(fmt: str, values: Any, braces: bool) -> int:
    """About how long `fmt % values` (`braces`: `fmt.format(...)`) comes out: its widest
    width and all its values, once per field."""
    fields, widest, given = _fields(fmt, braces) if len(fmt) < 1000 else \
        _fields.__wrapped__(fmt, braces)
    if given:  # a width taken from the values
        flat = values.values() if isinstance(values, Mapping) else values
        widest = max([widest] + [abs(v) for v in (
            flat if isinstance(flat, Iterable) else [flat]) if isinstance(v, int)])
    return len(fmt) + fields * (widest + measure(values))


@functools.lru_cache(maxsize=256)  # format strings are mostly a template's constants
def _fields(fmt: str, braces: bool) -> tuple[int, int, bool]:
    """(fields, widest width written, whether a width comes from the values)."""
    if braces:
        specs = [spec or "" for _, name, spec, _ in Formatter().parse(fmt) if name is not None]
    else:
        specs = _PERCENT.findall(fmt)
    widths = [int(n) if len(n) < 10 else 10 ** 10 for f in specs for n in re.findall(r"\d+", f)]
    return len(specs), max(widths, default=0), any("*" in f or "{" in f for f in specs)


def _range(*args: int) -> range:
    """Jinja's sandboxed `range`, refusing with a message past `MAX_RANGE` numbers."""
    numbers = range(*args)
    try:
        count = len(numbers)
    except OverflowError:
        count = MAX_RANGE + 1
    if count > MAX_RANGE:
        raise RenderLimit(f"range makes at most {MAX_RANGE:,} numbers")
    return numbers


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with bounded operators: `**`, `*`, `%` are refused before
    they run when their result would be too big, every result is `checked`, and `range` is
    capped. Its hooks `measured` and `joined` are for literals and `~`."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _range
        # Placeholder text: of no use in a notification, and its counts are unbounded.
        self.globals.pop("lipsum", None)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """An operator, refused before it runs when its result would be too big."""
        spend().tick()
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and \
                right > 0 and abs(left) > 1 and (abs(left).bit_length() - 1) * right >= \
                MAX_INT_BITS:
            raise RenderLimit(f"** would make a number of at least "
                              f"{(abs(left).bit_length() - 1) * right:,} bits; the most is "
                              f"{MAX_INT_BITS:,}")
        if operator == "*" and isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                raise RenderLimit(f"* would make a number past {MAX_INT_BITS:,} bits")
        elif operator == "*":
            seq, times = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(times, int) and isinstance(seq, (str, bytes, list, tuple)):
                fits(measure(seq) * times, "*")
        if operator == "%" and isinstance(left, str):
            fits(format_size(left, right, braces=False), "% formatting")
        return checked(super().call_binop(context, operator, left, right))

    def measured(self, value: Any) -> Any:
        """A literal list, tuple or dict, `checked`."""
        return checked(value)

    def joined(self, join: Callable[[Iterable[Any]], str], values: tuple[Any, ...]) -> str:
        """`a ~ b ~ c`, refused before joining when it would be too long."""
        fits(sum(measure(v) for v in values), "~")
        return cast(str, checked(join(values)))


SYNTAX = Sandbox()
"""Reads sources at `PUT`, knowing the filters and tests renders have."""


# checked at PUT -----------------------------------------------------------------------
class _NotConstant(Exception):
    pass


def lint(tree: nodes.Template) -> tuple[int, str] | None:
    """(line, reason) of the first thing in a parsed template that can never render: an
    unknown filter or test, another template named (stored ones stand alone), a constant
    expression that fails (`1/0`, `7 ** 20000000`, `range(10 ** 9)`). None when it finds
    none within `parse_template`'s `RenderBudget` (which proves nothing)."""
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        kind, known = ("filter", SYNTAX.filters) if isinstance(node, nodes.Filter) else (
            "test", SYNTAX.tests)
        if node.name not in known:
            return node.lineno, f"there is no {kind} named {node.name!r}"
    for other in tree.find_all((nodes.Extends, nodes.Include, nodes.Import,
                                nodes.FromImport)):
        return other.lineno, "a stored template cannot use another template"
    memo: dict[int, Any] = {}
    for expr in tree.find_all(nodes.Expr):
        try:
            _constant(expr, memo)
        except _NotConstant:
            continue
        except RenderLimit as exc:
            return None if exc.spent else (expr.lineno, str(exc))
        except Exception as exc:  # what it would raise at every render
            return expr.lineno, str(exc).rstrip(".") or type(exc).__name__
    return None


def _constant(node: nodes.Node, memo: dict[int, Any]) -> Any:
    """The value of a constant expression of operators, literals and `range`, evaluated as
    a render would (filters are left to renders, which check their arguments)."""
    if id(node) in memo:
        if memo[id(node)] is _NotConstant:
            raise _NotConstant
        return memo[id(node)]
    memo[id(node)] = _NotConstant
    env = SYNTAX
    value: Any
    if isinstance(node, nodes.Const):
        value = node.value
    elif isinstance(node, nodes.Tuple) and node.ctx == "load":
        value = env.measured(tuple(_constant(n, memo) for n in node.items))
    elif isinstance(node, nodes.List):
        value = env.measured([_constant(n, memo) for n in node.items])
    elif isinstance(node, nodes.BinExpr) and node.operator in env.binop_table:
        value = env.call_binop(cast(Context, None), node.operator,
                               _constant(node.left, memo), _constant(node.right, memo))
    elif isinstance(node, nodes.UnaryExpr) and node.operator in env.unop_table:
        value = env.unop_table[node.operator](_constant(node.node, memo))
    elif isinstance(node, nodes.Concat):
        value = env.joined(str_join, tuple(_constant(n, memo) for n in node.nodes))
    elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and \
            node.node.name == "range" and not (node.kwargs or node.dyn_args or node.dyn_kwargs):
        value = _range(*(_constant(n, memo) for n in node.args))
    else:
        raise _NotConstant
    memo[id(node)] = value
    return value
