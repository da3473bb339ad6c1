"""Stored templates per locale: their JSON form, its one parser (syntax checked with the
line of the first error), and the fallback chain that picks a locale for a recipient.

```json
{"default_locale": "en",
 "locales": {"en": {"subject": "Hi {{ name }}", "text": "Hello {{ name }}",
                    "html": "<p>Hello {{ name }}</p>",
                    "channels": {"push": {"text": "{{ name }}, hello"}}},
             "pt": {"subject": "Olá {{ name }}", "text": "Olá {{ name }}"}}}
```
A locale holds `text` (required), `subject` and `html`; `channels` overrides parts for one
channel (a part not overridden is the locale's). A recipient's locale `pt-BR` picks `pt-BR`,
then `pt`, then the template's `default_locale` (`null`: no fallback to another language,
for texts that must be in the person's own). Locale tags compare case-insensitively and
`_` equals `-` (`pt_br` is `pt-BR`).

Pure data and pure functions, like `conveyor.recipients`: the broker checks with
`parse_template`, storage keeps `template_doc` and reads back with `template_from_doc`.

Stored templates come from an API, so they render bounded (`conveyor.sandbox`); at `PUT`,
`parse_template` also refuses what can never render (`conveyor.sandbox.lint`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2

from conveyor.errors import InvalidInput, InvalidTemplate
from conveyor.sandbox import LINT_SECONDS, SYNTAX, RenderBudget, lint

__all__ = ["MAX_PART", "LocaleParts", "LocalizedTemplate", "Parts", "canonical_locale",
           "check_locale", "check_name", "locale_chain", "parse_template", "stored_name",
           "template_doc", "template_from_doc"]

MAX_NAME = 100
MAX_LOCALES = 200
MAX_CHANNELS = 20
MAX_SUBJECT = 2000
MAX_PART = 256 * 1024
_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
_CHANNEL = re.compile(r"[A-Za-z0-9_-]{1,40}")
_LOCALE = re.compile(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{1,8})*")
_PART_NAMES = ("subject", "text", "html")


@dataclass(frozen=True, slots=True)
class Parts:
    """Template sources: `subject`, `text`, `html` (None: not given)."""

    subject: str | None = None
    text: str | None = None
    html: str | None = None

    def to_json(self) -> dict[str, str]:
        """The parts given."""
        return {k: v for k in _PART_NAMES if (v := getattr(self, k)) is not None}


@dataclass(frozen=True, slots=True)
class LocaleParts:
    """One locale's parts, and per channel the parts that override them."""

    parts: Parts
    channels: Mapping[str, Parts] = field(default_factory=dict)

    def for_channel(self, channel: str | None) -> Parts:
        """The parts `channel` renders: its overrides over the locale's own."""
        over = self.channels.get(channel) if channel is not None else None
        if over is None:
            return self.parts
        base = self.parts
        return Parts(base.subject if over.subject is None else over.subject,
                     base.text if over.text is None else over.text,
                     base.html if over.html is None else over.html)


@dataclass(frozen=True, slots=True)
class LocalizedTemplate:
    """A stored template (see the module docstring)."""

    name: str
    default_locale: str | None
    locales: Mapping[str, LocaleParts]
    updated_at: int = 0

    def resolve(self, locale: str | None) -> str | None:
        """The locale that renders for a recipient of `locale` (None: none does)."""
        for candidate in locale_chain(locale, self.default_locale):
            if candidate in self.locales:
                return candidate
        return None

    def chain(self, locale: str | None) -> list[str]:
        """What `resolve` tries, in order (for error messages)."""
        return locale_chain(locale, self.default_locale)


def canonical_locale(tag: str) -> str:
    """`pt_br` -> `pt-BR`, `zh-hant-tw` -> `zh-Hant-TW` (BCP 47 letter case)."""
    parts = tag.replace("_", "-").split("-")
    out = [parts[0].lower()]
    for p in parts[1:]:
        if len(p) == 2 and p.isalpha():
            out.append(p.upper())
        elif len(p) == 4 and p.isalpha():
            out.append(p.title())
        else:
            out.append(p.lower())
    return "-".join(out)


def locale_chain(locale: str | None, default: str | None) -> list[str]:
    """The locales to try for `locale`: itself, each shorter prefix, then `default`
    (`pt-BR` -> `pt-BR`, `pt`, `en`)."""
    out: list[str] = []
    if locale:
        parts = canonical_locale(locale).split("-")
        out = ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]
    if default is not None and default not in out:
        out.append(default)
    return out


# parsing ------------------------------------------------------------------------------
def check_name(name: Any) -> str:
    """A template name, or `InvalidInput`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput("A template name is 1 to 100 of A-Z a-z 0-9 _ -, not "
                           f"{name!r:.60}.", field="name")
    return name


def stored_name(name: str) -> bool:
    """Whether `name` can be a stored template's (file templates may have others)."""
    return bool(_NAME.fullmatch(name))


def check_locale(tag: Any, where: str = "locale") -> str:
    """A language tag in its canonical case, or `InvalidInput` naming `where`."""
    if not isinstance(tag, str) or len(tag) > 35 or not _LOCALE.fullmatch(tag):
        raise InvalidInput(f"{where} must be a language tag such as en or pt-BR, not "
                           f"{tag!r:.40}.", field=where.split(".")[0])
    return canonical_locale(tag)


def _source(value: Any, where: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(f"{where} must be template text of at most {limit:,} characters.",
                           field="locales")
    try:
        tree = SYNTAX.parse(value)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidTemplate(f"{where} line {exc.lineno}: {str(exc.message).rstrip('.')}.",
                              field="locales", line=exc.lineno) from None
    except RecursionError:  # (((((... a hundred thousand deep
        raise InvalidTemplate(f"{where} is nested too deeply to read.", field="locales") from None
    except ValueError as exc:  # the lexer's int() of a literal past Python's 4,300 digits
        raise InvalidTemplate(f"{where}: {str(exc).rstrip('.')}.", field="locales") from None
    found = lint(tree)
    if found is not None:
        raise InvalidTemplate(f"{where} line {found[0]}: {found[1]}.", field="locales",
                              line=found[0])
    return value


def _parts(value: Any, where: str, need_text: bool) -> Parts:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where} must be an object of subject, text, html.",
                           field="locales")
    unknown = sorted(str(k) for k in value if k not in (*_PART_NAMES, "channels"))
    if unknown or (not need_text and "channels" in value):
        bad = unknown[0] if unknown else "channels"
        raise InvalidInput(f"{where} has an unknown part {bad!r:.40}; the parts are "
                           "subject, text, html" + (", channels." if need_text else "."),
                           field="locales")
    parts = Parts(_source(value.get("subject"), f"{where}.subject", MAX_SUBJECT),
                  _source(value.get("text"), f"{where}.text", MAX_PART),
                  _source(value.get("html"), f"{where}.html", MAX_PART))
    if need_text and parts.text is None:
        raise InvalidInput(f"{where}.text is required.", field="locales")
    if not need_text and parts == Parts():
        raise InvalidInput(f"{where} overrides no part.", field="locales")
    return parts


def _locale(value: Any, where: str) -> LocaleParts:
    parts = _parts(value, where, True)
    channels = value.get("channels") or {}
    if not isinstance(channels, Mapping) or len(channels) > MAX_CHANNELS:
        raise InvalidInput(f"{where}.channels must be an object of at most "
                           f"{MAX_CHANNELS} channels.", field="locales")
    over: dict[str, Parts] = {}
    for channel, choice in channels.items():
        if not isinstance(channel, str) or not _CHANNEL.fullmatch(channel):
            raise InvalidInput(f"{where}.channels: {channel!r:.40} is not a channel "
                               "name.", field="locales")
        over[channel] = _parts(choice, f"{where}.channels.{channel}", False)
    return LocaleParts(parts, over)


def parse_template(name: Any, doc: Any, updated_at: int = 0) -> LocalizedTemplate:
    """A template from its JSON form (the body of `PUT /v1/templates/{name}`); raises
    `InvalidInput` naming the field (a syntax error: the part and its line)."""
    check_name(name)
    if not isinstance(doc, Mapping):
        raise InvalidInput("A template is a JSON object.", field="template")
    # `name` and `updated_at` are what GET answers: a document read can be put back.
    unknown = sorted(str(k) for k in doc
                     if k not in ("default_locale", "locales", "name", "updated_at"))
    if unknown:
        raise InvalidInput(f"Unknown template field {unknown[0]!r:.40}; the fields are "
                           "default_locale, locales.", field=unknown[0][:100])
    default = doc.get("default_locale", "en")
    default = None if default is None else check_locale(default, "default_locale")
    raw = doc.get("locales")
    if not isinstance(raw, Mapping) or not 1 <= len(raw) <= MAX_LOCALES:
        raise InvalidInput(f"locales must be an object of 1 to {MAX_LOCALES} locales, each "
                           '{"subject", "text", "html", "channels"}.', field="locales")
    locales: dict[str, LocaleParts] = {}
    with RenderBudget(LINT_SECONDS):  # one for the document: `_lint` gives up past it
        for tag, value in raw.items():
            key = check_locale(tag, "locales")
            if key in locales:
                raise InvalidInput(f"locales names {key} twice.", field="locales")
            locales[key] = _locale(value, f"locales.{key}")
    if default is not None and default not in locales:
        raise InvalidInput(f"default_locale {default} has no entry in locales (or set it "
                           "to null for no fallback).", field="default_locale")
    return LocalizedTemplate(name, default, locales, updated_at)


def template_doc(t: LocalizedTemplate) -> dict[str, Any]:
    """The JSON form (what `GET /v1/templates/{name}` answers, and what is stored)."""
    return {"name": t.name, "default_locale": t.default_locale, "locales": {
        tag: {**lp.parts.to_json(), **({"channels": {
            ch: p.to_json() for ch, p in lp.channels.items()}} if lp.channels else {})}
        for tag, lp in t.locales.items()}, "updated_at": t.updated_at}


def template_from_doc(doc: Mapping[str, Any], updated_at: int) -> LocalizedTemplate:
    """A stored template read back (checked when it was put, so not parsed again)."""
    def parts(p: Mapping[str, Any]) -> Parts:
        return Parts(p.get("subject"), p.get("text"), p.get("html"))
    return LocalizedTemplate(str(doc["name"]), doc.get("default_locale"), {
        tag: LocaleParts(parts(lp), {ch: parts(p) for ch, p in
                                     (lp.get("channels") or {}).items()})
        for tag, lp in doc["locales"].items()}, updated_at)
