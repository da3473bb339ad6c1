"""Conformance: templates per locale (one row per template, its locales as one document)."""

from __future__ import annotations

from conveyor.locales import parse_template
from conveyor.storage.base import Storage

WELCOME = parse_template("welcome", {
    "default_locale": "en",
    "locales": {"en": {"subject": "Hi {{ name }}", "text": "Hello {{ name }}",
                       "html": "<p>Hello {{ name }}</p>",
                       "channels": {"push": {"text": "{{ name }}!"}}},
                "pt-BR": {"text": "Olá {{ name }}"}}})


async def test_put_get_replace_delete(storage: Storage, t0: int) -> None:
    assert await storage.template_get("welcome") is None
    assert await storage.template_put(WELCOME, t0) == t0
    got = await storage.template_get("welcome")
    assert got is not None and got.updated_at == t0
    assert (got.name, got.default_locale, got.locales) == (
        WELCOME.name, WELCOME.default_locale, WELCOME.locales)
    assert got.locales["en"].for_channel("push").text == "{{ name }}!"
    # Replacing is whole.
    strict = parse_template("welcome", {"default_locale": None,
                                        "locales": {"de": {"text": "Hallo"}}})
    assert await storage.template_put(strict, t0 + 7) == t0 + 7
    again = await storage.template_get("welcome")
    assert again is not None and (again.default_locale, list(again.locales),
                                  again.updated_at) == (None, ["de"], t0 + 7)
    assert await storage.template_delete("welcome")
    assert not await storage.template_delete("welcome")
    assert await storage.template_get("welcome") is None


async def test_list_pages_by_name_in_byte_order(storage: Storage, t0: int) -> None:
    names = ["b", "A", "a_1", "a-2", "Z9", "a"]
    for name in names:
        await storage.template_put(parse_template(name, {"locales": {"en": {"text": name}}}),
                                   t0)
    first = await storage.template_list("", 4)
    rest = await storage.template_list(first[-1].name, 4)
    assert [t.name for t in first + rest] == sorted(names)  # byte order: A Z9 a a-2 a_1 b
    assert [t.locales["en"].parts.text for t in rest] == [t.name for t in rest]
    assert await storage.template_list("b", 10) == []
