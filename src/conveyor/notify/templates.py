"""Jinja2 templates with subject, text and html variants, compiled once and cached.

A template `welcome` is the set `welcome.subject`, `welcome.txt` and (optionally)
`welcome.html`, from a folder or a mapping of names to sources. Push and Apprise use the
`.txt` variant (and `.subject` as a title). HTML variants are autoescaped.

A variant that is only text and `{{ name }}` substitutions (most notification templates)
is rendered by joining strings, without Jinja's per-render context: that took ~50 us per
variant here, a third of an email's whole cost in the million run. Anything else (filters,
tags, attribute access) goes through Jinja; both raise on a missing variable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import jinja2
import markupsafe
from jinja2 import nodes

from conveyor.errors import InvalidInput
from conveyor.locales import locale_chain

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["Rendered", "Templates", "Variant", "fast_form"]


class Rendered(NamedTuple):
    """A rendered template: subject (may be empty), text, html (None when no variant)."""

    subject: str
    text: str
    html: str | None


class _Simple:
    """A variant made only of text and `{{ name }}`: literal parts and variable names
    alternate (`parts[0]`, `names[0]`, `parts[1]`, ...)."""

    __slots__ = ("escape", "names", "parts")

    def __init__(self, parts: list[str], names: list[str], escape: bool) -> None:
        self.parts, self.names, self.escape = parts, names, escape

    def render(self, data: Mapping[str, Any]) -> str:
        return "".join(self.generate(data))

    def generate(self, data: Mapping[str, Any]) -> list[str]:
        """The pieces `render` joins (as Jinja's `Template.generate`: a stored template's
        output is counted before it is joined)."""
        out = [self.parts[0]]
        for name, text in zip(self.names, self.parts[1:]):
            try:
                value = data[name]
            except KeyError:
                raise jinja2.UndefinedError(f"{name!r} is undefined") from None
            out.append(str(markupsafe.escape(value)) if self.escape else str(value))
            out.append(text)
        return out


def fast_form(env: jinja2.Environment, source: str, template: jinja2.Template,
              escape: bool) -> _Simple | jinja2.Template:
    """The fast form of `template` (compiled from `source`) when it has one, else it."""
    try:
        body = env.parse(source).body
    except jinja2.TemplateError:
        return template
    parts, names = [""], []
    for node in body:
        if not isinstance(node, nodes.Output):
            return template
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                parts[-1] += child.data
            elif isinstance(child, nodes.Name) and child.ctx == "load":
                names.append(child.name)
                parts.append("")
            else:
                return template
    return _Simple(parts, names, escape)


def _simple(env: jinja2.Environment, template: jinja2.Template) -> _Simple | jinja2.Template:
    """The fast form of a template of the loader when it has one, else the template."""
    if env.loader is None or template.name is None:
        return template
    try:
        source = env.loader.get_source(env, template.name)[0]
    except jinja2.TemplateError:
        return template
    escape = bool(env.autoescape(template.name) if callable(env.autoescape)
                  else env.autoescape)
    return fast_form(env, source, template, escape)


_Variant = _Simple | jinja2.Template
Variant = _Variant
"""A compiled part: the fast form or a Jinja template (both have `render(data)`)."""


class Templates:
    """Named templates from a folder and/or a mapping (`{"welcome.txt": "Hi {{ name }}"}`),
    and those stored in the database (`PUT /v1/templates/{name}`), which win.

    A file template's locale variants are `welcome.pt-BR.txt`, `welcome.pt.txt`, ... beside
    `welcome.txt` (the fallback): `pt-BR` tries them in that order."""

    def __init__(self, folder: str | Path | None = None,
                 mapping: Mapping[str, str] | None = None, *,
                 refresh_seconds: float = 5.0) -> None:
        # Imported here: conveyor.notify.locales builds on this module's fast form.
        from conveyor.notify.locales import StoredCache

        loaders: list[jinja2.BaseLoader] = []
        if mapping:
            loaders.append(jinja2.DictLoader(dict(mapping)))
        if folder is not None:
            loaders.append(jinja2.FileSystemLoader(str(folder)))
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(["html"]), keep_trailing_newline=False,
            auto_reload=False)
        self._cache: dict[str, tuple[_Variant | None, _Variant, _Variant | None]] = {}
        self._picked: dict[tuple[str, str | None],
                           tuple[_Variant | None, _Variant, _Variant | None]] = {}
        self.stored = StoredCache(refresh_seconds)
        """Stored templates this process has read (`prepare` reads them)."""

    def _load(self, name: str) -> tuple[_Variant | None, _Variant, _Variant | None]:
        found = self._cache.get(name)
        if found is None:
            def get(suffix: str) -> _Variant | None:
                try:
                    return _simple(self._env, self._env.get_template(f"{name}.{suffix}"))
                except jinja2.TemplateNotFound:
                    return None
            text = get("txt")
            if text is None:
                raise InvalidInput(f"Template {name!r} has no {name}.txt variant.",
                                   field="template")
            found = (get("subject"), text, get("html"))
            self._cache[name] = found
        return found

    def _pick(self, name: str, locale: str | None
              ) -> tuple[_Variant | None, _Variant, _Variant | None]:
        """A file template's variants for a locale: the first of its chain that exists,
        else the plain ones."""
        key = (name, locale)
        found = self._picked.get(key)
        if found is None:
            for tag in locale_chain(locale, None):
                try:
                    found = self._load(f"{name}.{tag}")
                    break
                except InvalidInput:
                    continue
            if found is None:
                found = self._load(name)
            if len(self._picked) >= 10_000:  # bounded: locales come from recipients
                self._picked.clear()
            self._picked[key] = found
        return found

    def has(self, name: str) -> bool:
        """Whether the template exists (stored ones: among those read)."""
        if self.stored.find(name) is not None:
            return True
        try:
            self._load(name)
        except InvalidInput:
            return False
        return True

    async def prepare(self, broker: Broker, names: Iterable[str]) -> None:
        """Read the stored templates among `names` that are not cached or are stale
        (before rendering; `render` itself never waits)."""
        await self.stored.prepare(broker, names)

    def render(self, name: str, data: Mapping[str, Any], locale: str | None = None,
               channel: str | None = None) -> Rendered:
        """Render every variant of `name` with `data` (a missing variable is an error),
        in the first locale of `locale`'s fallback chain that the template has, with
        `channel`'s own parts if a stored template has them."""
        stored = self.stored.find(name)
        if stored is not None:
            return stored.render(data, locale, channel)
        subject, text, html = self._pick(name, locale) if locale else self._load(name)
        try:
            return Rendered("" if subject is None else subject.render(data).strip(),
                            text.render(data), None if html is None else html.render(data))
        except jinja2.TemplateError as exc:
            raise InvalidInput(f"Template {name!r} failed: {exc}", field="data") from exc
