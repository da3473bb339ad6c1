"""Rendering stored templates per locale (`conveyor.locales`), compiled once and cached.

A worker renders synchronously, so the templates an envelope needs are read before it is
rendered (`StoredCache.prepare`, one read per template name at most every
`refresh_seconds`, so a `PUT /v1/templates/{name}` reaches running workers within that
time). Each (locale, channel) is resolved and compiled on first use, then rendered from the
cache: the fallback chain costs one dict lookup per message. Stored templates come from an
API, so they run in Jinja's immutable sandbox (no attribute tricks reach Python).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from conveyor.errors import (
    InvalidInput,
    RecipientNotFound,
    TemplateLocaleMissing,
    TemplateNotFound,
)
from conveyor.locales import LocalizedTemplate, check_locale
from conveyor.notify.people import check_data
from conveyor.notify.templates import Rendered, Variant, fast_form
from conveyor.recipients import ADDRESS_CHANNELS

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["Compiled", "StoredCache", "preview_template"]

_MAX_PICKS = 10_000  # (locale, channel) pairs per template before the cache starts over


def _env(escape: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=escape,
                                         keep_trailing_newline=False)


_TEXT, _HTML = _env(False), _env(True)
_Picked = tuple[str, Variant | None, Variant, Variant | None]


def _compile(source: str | None, html: bool) -> Variant | None:
    if source is None:
        return None
    env = _HTML if html else _TEXT
    return fast_form(env, source, env.from_string(source), html)


class Compiled:
    """A stored template, each (locale, channel) resolved and compiled on first use."""

    def __init__(self, template: LocalizedTemplate) -> None:
        self.template = template
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
        parts = self.template.locales[tag].for_channel(channel)
        # Channels without their own parts share the locale's compiled ones.
        own = channel if channel in self.template.locales[tag].channels else None
        found = self._parts.get((tag, own))
        if found is None:
            text = _compile(parts.text, False)
            assert text is not None  # a locale's text is required (checked at put)
            found = (tag, _compile(parts.subject, False), text, _compile(parts.html, True))
            self._parts[(tag, own)] = found
        return found

    def render(self, data: Mapping[str, Any], locale: str | None,
               channel: str | None) -> Rendered:
        """Render for a recipient's locale on a channel (a missing variable is an error)."""
        _, subject, text, html = self.pick(locale, channel)
        try:
            return Rendered("" if subject is None else subject.render(data).strip(),
                            text.render(data), None if html is None else html.render(data))
        except jinja2.TemplateError as exc:
            raise InvalidInput(f"Template {self.template.name!r} failed: {exc}",
                               field="data") from exc


class StoredCache:
    """Compiled stored templates by name, read again at most every `refresh_seconds`."""

    def __init__(self, refresh_seconds: float = 5.0) -> None:
        self.refresh_seconds = refresh_seconds
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
        return Compiled(template)

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


_PREVIEWS = StoredCache(refresh_seconds=0.0)  # a preview reads the template every time


async def preview_template(broker: Broker, name: str, data: Mapping[str, Any], *,
                           recipient: str | None = None, locale: str | None = None,
                           channels: Sequence[str] | None = None) -> dict[str, Any]:
    """A stored template rendered per channel for a recipient (their locale, the channels
    they have addresses on) or for `locale`; reads, sends and writes nothing else.

    Raises `TemplateNotFound`, `RecipientNotFound`, `TemplateLocaleMissing` (no locale in
    the chain) or `InvalidInput` (bad arguments, a variable missing from `data`)."""
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
    out: dict[str, Any] = {}
    for channel in dict.fromkeys(channels):
        tag = compiled.pick(locale, channel)[0]
        r = compiled.render(data, locale, channel)
        out[channel] = {"locale": tag, "subject": r.subject, "text": r.text, "html": r.html}
    return {"template": name, "recipient": recipient, "locale": locale, "channels": out}
