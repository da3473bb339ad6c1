"""Rendering stored templates per locale (`conveyor.locales`), compiled once and cached.

A worker renders synchronously, so the templates an envelope needs are read before it is
rendered (`StoredCache.prepare`, one read per template name at most every
`refresh_seconds`, so a `PUT /v1/templates/{name}` reaches running workers within that
time). Each (locale, channel) is resolved and compiled on first use, then rendered from the
cache: the fallback chain costs one dict lookup per message.

Stored templates come from an API, so they run in Jinja's immutable sandbox (no attribute
tricks reach Python), bounded (`conveyor.sandbox.Sandbox`, and the hooks of loops, calls,
filters and blocks in `conveyor.notify.render_hooks`): one notification's render gets
`RENDER_SECONDS` of CPU and `MAX_RENDERED` characters, and whatever stops it (a limit,
`1/0`, a recursion) is an `InvalidTemplate` naming the part and its line, which delivery
records as the notification's permanent failure and `POST /v1/templates/{name}/preview`
answers with a 422. A part that ran long before failing is refused at once after that
(`StoredCache(remember=True)`, the workers'): a hostile template costs a worker one budget,
not one per notification of a batch. Previews render in a worker thread, so even that
budget is not the event loop's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jinja2

from conveyor.errors import (
    InvalidInput,
    InvalidTemplate,
    RecipientNotFound,
    TemplateLocaleMissing,
    TemplateNotFound,
)
from conveyor.locales import LocalizedTemplate, check_locale
from conveyor.notify.people import check_data
from conveyor.notify.render_hooks import HTML, TEXT
from conveyor.notify.templates import Rendered, Variant, fast_form
from conveyor.recipients import ADDRESS_CHANNELS
from conveyor.sandbox import MAX_RENDERED, RENDER_SECONDS, RenderBudget, RenderLimit

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["Compiled", "StoredCache", "preview_template"]

_MAX_PICKS = 10_000  # (locale, channel) pairs per template before the cache starts over


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
    env = HTML if html else TEXT
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
