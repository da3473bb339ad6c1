"""Rendering stored templates per locale (`conveyor.locales`), compiled once and cached.

A worker renders synchronously, so the templates an envelope needs are read before it is
rendered (`StoredCache.prepare`, one read per template name at most every
`refresh_seconds`, so a `PUT /v1/templates/{name}` reaches running workers within that
time). Each (locale, channel) is resolved and compiled on first use, then rendered from the
cache: the fallback chain costs one dict lookup per message.

Stored templates come from an API, so they run in Jinja's immutable sandbox (no attribute
tricks reach Python), bounded (`conveyor.sandbox.Sandbox`, and here the hooks of loops,
calls, filters and blocks): one notification's render gets `RENDER_SECONDS` of CPU and
`MAX_RENDERED` characters, and whatever stops it (a limit, `1/0`, a recursion) is an
`InvalidTemplate` naming the part and its line, which delivery records as the notification's
permanent failure and `POST /v1/templates/{name}/preview` answers with a 422. A part that
ran long before failing is refused at once after that (`StoredCache(remember=True)`, the
workers'): a hostile template costs a worker one budget, not one per notification of a
batch. Previews render in a worker thread, so even that budget is not the event loop's.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import BuiltinMethodType
from typing import TYPE_CHECKING, Any, cast

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import Context, LoopContext

from conveyor.errors import (
    InvalidInput,
    InvalidTemplate,
    RecipientNotFound,
    TemplateLocaleMissing,
    TemplateNotFound,
)
from conveyor.locales import LocalizedTemplate, check_locale
from conveyor.notify.people import check_data
from conveyor.notify.templates import Rendered, Variant, fast_form
from conveyor.recipients import ADDRESS_CHANNELS
from conveyor.sandbox import (
    MAX_DEPTH,
    MAX_RANGE,
    MAX_RENDERED,
    RENDER_SECONDS,
    RenderBudget,
    RenderLimit,
    Sandbox,
    checked,
    fits,
    format_size,
    measure,
    spend,
)

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["Compiled", "StoredCache", "preview_template"]

_MAX_PICKS = 10_000  # (locale, channel) pairs per template before the cache starts over
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
    see: each loop's iterable (`_Renderer.iterate`), literals (`measured`) and `~`
    (`joined`). Blocks' buffers are joined by `_Renderer.concat`."""

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


class _Renderer(Sandbox):
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


def _env(escape: bool) -> _Renderer:
    return _Renderer(undefined=jinja2.StrictUndefined, autoescape=escape,
                     keep_trailing_newline=False)


_TEXT, _HTML = _env(False), _env(True)


# compiled parts -----------------------------------------------------------------------
class _Part:
    """A part of a stored template, compiled (None: it does not), named as in its document
    (`locales.en.channels.push.text`); `refused`: why it fails at once, when it does, and
    the line."""

    __slots__ = ("label", "refused", "variant")

    def __init__(self, label: str, variant: Variant | None,
                 refused: tuple[str, int | None] | None = None) -> None:
        self.label, self.variant, self.refused = label, variant, refused

    def render(self, data: Mapping[str, Any], budget: RenderBudget) -> str:
        """Rendered within `budget`, its output counted before it is joined."""
        assert self.variant is not None
        out: list[str] = []
        most = MAX_RENDERED - budget.out  # counted here, not per piece: the hot path
        for piece in self.variant.generate(data):
            most -= len(piece)
            if most < 0:
                budget.output(MAX_RENDERED + 1)  # raises, naming the limit
            out.append(piece)
        budget.output(MAX_RENDERED - budget.out - most)
        return "".join(out)


_Picked = tuple[str, _Part | None, _Part, _Part | None]


def _compile(source: str | None, html: bool, label: str) -> _Part | None:
    if source is None:
        return None
    env = _HTML if html else _TEXT
    try:
        return _Part(label, fast_form(env, source, env.from_string(source), html))
    except Exception as exc:  # put before `lint` knew it, or past what Jinja compiles
        return _Part(label, None, (f"{label} does not compile: {_reason(exc)}", None))


def _line(exc: BaseException) -> int | None:
    """The template line `exc` was raised at (Jinja rewrites tracebacks to them)."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _reason(exc: BaseException) -> str:
    plain = isinstance(exc, (RenderLimit, jinja2.TemplateError, ArithmeticError, TypeError,
                             ValueError))
    text = str(exc).rstrip(".") if plain else f"{type(exc).__name__}: {exc}"
    return text[:300] or type(exc).__name__


class Compiled:
    """A stored template, each (locale, channel) resolved and compiled on first use.
    `remember`: a part whose render failed after a quarter of its budget is refused at once
    from then on (see the module docstring)."""

    def __init__(self, template: LocalizedTemplate, remember: bool = True) -> None:
        self.template = template
        self.remember = remember
        self._picks: dict[tuple[str | None, str | None], _Picked | None] = {}
        self._parts: dict[tuple[str, str | None], _Picked] = {}

    def pick(self, locale: str | None, channel: str | None) -> _Picked:
        """(the locale used, subject, text, html) for a recipient's locale on a channel;
        raises `TemplateLocaleMissing` when the chain finds none."""
        key = (locale, channel)
        try:
            found = self._picks[key]
        except KeyError:
            found = self._resolve(locale, channel)
            if len(self._picks) >= _MAX_PICKS:
                self._picks.clear()
            self._picks[key] = found
        if found is None:
            t = self.template
            raise TemplateLocaleMissing(
                f"Template {t.name!r} has no locale for {locale or 'no locale'} (tried "
                f"{', '.join(t.chain(locale)) or 'nothing'}; its locales are "
                f"{', '.join(sorted(t.locales))}"
                + ("; it has no default locale)." if t.default_locale is None else ")."),
                field="locale")
        return found

    def _resolve(self, locale: str | None, channel: str | None) -> _Picked | None:
        tag = self.template.resolve(locale)
        if tag is None:
            return None
        entry = self.template.locales[tag]
        parts = entry.for_channel(channel)
        # Channels without their own parts share the locale's compiled ones.
        own = channel if channel in entry.channels else None
        found = self._parts.get((tag, own))
        if found is None:
            over = entry.channels.get(own) if own is not None else None

            def part(name: str) -> _Part | None:
                where = f"locales.{tag}" + (f".channels.{own}" if over is not None and
                                            getattr(over, name) is not None else "")
                return _compile(getattr(parts, name), name == "html", f"{where}.{name}")

            text = part("text")
            assert text is not None  # a locale's text is required (checked at put)
            found = (tag, part("subject"), text, part("html"))
            self._parts[(tag, own)] = found
        return found

    def render(self, data: Mapping[str, Any], locale: str | None,
               channel: str | None) -> Rendered:
        """Render for a recipient's locale on a channel within one `RenderBudget`: a
        missing variable is `InvalidInput` (field `data`), any other failure
        `InvalidTemplate` naming the part and its line."""
        _, subject, text, html = self.pick(locale, channel)
        with RenderBudget() as budget:
            return Rendered(
                "" if subject is None else self._run(subject, data, budget).strip(),
                self._run(text, data, budget),
                None if html is None else self._run(html, data, budget))

    def _run(self, part: _Part, data: Mapping[str, Any], budget: RenderBudget) -> str:
        name = self.template.name
        if part.refused is not None:
            raise InvalidTemplate(f"Template {name!r} {part.refused[0]}.", field="locales",
                                  line=part.refused[1])
        try:
            return part.render(data, budget)
        except jinja2.UndefinedError as exc:  # the data's, not the template's
            raise InvalidInput(f"Template {name!r} failed: {exc}", field="data") from exc
        except Exception as exc:
            line = _line(exc)
            why = f"{part.label}{'' if line is None else f' line {line}'}: {_reason(exc)}"
        if self.remember and budget.used() > RENDER_SECONDS / 4:
            # Failing again for every notification of a batch would stall its lane.
            part.refused = (f"{why} (at an earlier render; refused until the template "
                            "changes)", line)
        raise InvalidTemplate(f"Template {name!r} {why}.", field="locales", line=line)


class StoredCache:
    """Compiled stored templates by name, read again at most every `refresh_seconds`
    (`remember`: as `Compiled`'s)."""

    def __init__(self, refresh_seconds: float = 5.0, remember: bool = True) -> None:
        self.refresh_seconds = refresh_seconds
        self.remember = remember
        self._entries: dict[str, tuple[float, Compiled | None]] = {}

    def find(self, name: str) -> Compiled | None:
        """What is cached for `name` (None: not stored, or not read yet)."""
        entry = self._entries.get(name)
        return None if entry is None else entry[1]

    def forget(self, name: str) -> None:
        """Drop `name` (it changed here): the next use reads it again."""
        self._entries.pop(name, None)

    def compiled(self, template: LocalizedTemplate) -> Compiled:
        """`template` compiled, reusing the cached form when nothing changed (compared
        whole: two puts can share a millisecond)."""
        entry = self._entries.get(template.name)
        if entry is not None and entry[1] is not None and entry[1].template == template:
            return entry[1]
        return Compiled(template, self.remember)

    async def fetch(self, broker: Broker, name: str, *, fresh: bool = False
                    ) -> Compiled | None:
        """The stored template `name`, compiled (read again when stale or `fresh`)."""
        entry = self._entries.get(name)
        now = time.monotonic()
        if entry is not None and not fresh and now - entry[0] < self.refresh_seconds:
            return entry[1]
        stored = await broker.templates.get(name)
        found = None if stored is None else self.compiled(stored)
        self._entries[name] = (now, found)
        return found

    async def prepare(self, broker: Broker, names: Iterable[str]) -> None:
        """Read the stale ones of `names` (before a batch is rendered)."""
        now = time.monotonic()
        for name in names:
            entry = self._entries.get(name)
            if entry is None or now - entry[0] >= self.refresh_seconds:
                try:
                    await self.fetch(broker, name)
                except InvalidInput:  # not a stored template's name: files only
                    self._entries[name] = (now, None)


# A preview reads the template every time, and a failure depends on its own data only.
_PREVIEWS = StoredCache(refresh_seconds=0.0, remember=False)


async def preview_template(broker: Broker, name: str, data: Mapping[str, Any], *,
                           recipient: str | None = None, locale: str | None = None,
                           channels: Sequence[str] | None = None) -> dict[str, Any]:
    """A stored template rendered per channel for a recipient (their locale, the channels
    they have addresses on) or for `locale`; reads, sends and writes nothing else.

    Raises `TemplateNotFound`, `RecipientNotFound`, `TemplateLocaleMissing` (no locale in
    the chain), `InvalidTemplate` (a render failed: a limit, `1/0`, ...) or `InvalidInput`
    (bad arguments, a variable missing from `data`)."""
    check_data(data)
    compiled = await _PREVIEWS.fetch(broker, name)
    if compiled is None:
        raise TemplateNotFound(f"No template {name!r}.")
    if recipient is not None:
        person = await broker.recipients.get(recipient)
        if person is None:
            raise RecipientNotFound(f"No recipient {recipient!r}.")
        locale = locale or person.locale
        if channels is None:
            channels = [c for c in ADDRESS_CHANNELS if person.addresses.get(c)]
    if locale is not None:
        check_locale(locale, "locale")
    if channels is None:
        channels = ADDRESS_CHANNELS
    if isinstance(channels, str) or len(channels) > 20 or not all(
            isinstance(c, str) and 1 <= len(c) <= 40 for c in channels):
        raise InvalidInput("channels must be at most 20 channel names.", field="channels")
    # In a worker thread: a render is bounded, but even its budget is not the event loop's
    # to spend (compiling a large part, on first use, is not bounded by it either).
    out = await asyncio.to_thread(_render_channels, compiled, data, locale,
                                  list(dict.fromkeys(channels)))
    return {"template": name, "recipient": recipient, "locale": locale, "channels": out}


def _render_channels(compiled: Compiled, data: Mapping[str, Any], locale: str | None,
                     channels: list[str]) -> dict[str, Any]:
    """Each channel's rendering; channels sharing their parts share one render."""
    out: dict[str, Any] = {}
    done: dict[int, dict[str, Any]] = {}
    for channel in channels:
        picked = compiled.pick(locale, channel)
        found = done.get(id(picked))
        if found is None:
            r = compiled.render(data, locale, channel)
            found = done[id(picked)] = {"locale": picked[0], "subject": r.subject,
                                        "text": r.text, "html": r.html}
        out[channel] = dict(found)
    return out
