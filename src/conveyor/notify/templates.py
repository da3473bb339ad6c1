"""Jinja2 templates with subject, text and html variants, compiled once and cached.

A template `welcome` is the set `welcome.subject`, `welcome.txt` and (optionally)
`welcome.html`, from a folder or a mapping of names to sources. Push and Apprise use the
`.txt` variant (and `.subject` as a title). HTML variants are autoescaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jinja2

from conveyor.errors import InvalidInput

__all__ = ["Rendered", "Templates"]


class Rendered(NamedTuple):
    """A rendered template: subject (may be empty), text, html (None when no variant)."""

    subject: str
    text: str
    html: str | None


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
        self._cache: dict[str, tuple[jinja2.Template | None, jinja2.Template,
                                     jinja2.Template | None]] = {}

    def _load(self, name: str) -> tuple[jinja2.Template | None, jinja2.Template,
                                        jinja2.Template | None]:
        found = self._cache.get(name)
        if found is None:
            def get(suffix: str) -> jinja2.Template | None:
                try:
                    return self._env.get_template(f"{name}.{suffix}")
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
