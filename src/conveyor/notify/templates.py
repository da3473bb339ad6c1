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

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jinja2
import markupsafe
from jinja2 import nodes

from conveyor.errors import InvalidInput

__all__ = ["Rendered", "Templates"]


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
        out = [self.parts[0]]
        for name, text in zip(self.names, self.parts[1:]):
            try:
                value = data[name]
            except KeyError:
                raise jinja2.UndefinedError(f"{name!r} is undefined") from None
            out.append(str(markupsafe.escape(value)) if self.escape else str(value))
            out.append(text)
        return "".join(out)


def _simple(env: jinja2.Environment, template: jinja2.Template) -> _Simple | jinja2.Template:
    """The fast form of a template when it has one, else the template."""
    if env.loader is None or template.name is None:
        return template
    try:
        source = env.loader.get_source(env, template.name)[0]
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
    escape = bool(env.autoescape(template.name) if callable(env.autoescape)
                  else env.autoescape)
    return _Simple(parts, names, escape)


_Variant = _Simple | jinja2.Template


class Templates:
    """Named templates from a folder and/or a mapping (`{"welcome.txt": "Hi {{ name }}"}`)."""

    def __init__(self, folder: str | Path | None = None,
                 mapping: Mapping[str, str] | None = None) -> None:
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

    def has(self, name: str) -> bool:
        """Whether the template exists."""
        try:
            self._load(name)
        except InvalidInput:
            return False
        return True

    def render(self, name: str, data: Mapping[str, Any]) -> Rendered:
        """Render every variant of `name` with `data` (a missing variable is an error)."""
        subject, text, html = self._load(name)
        try:
            return Rendered("" if subject is None else subject.render(data).strip(),
                            text.render(data), None if html is None else html.render(data))
        except jinja2.TemplateError as exc:
            raise InvalidInput(f"Template {name!r} failed: {exc}", field="data") from exc
