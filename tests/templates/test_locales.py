"""Templates per locale, without a database: the fallback chain, the one parser (a syntax
error names the part and its line), the sandbox, and file templates' locale variants."""

from __future__ import annotations

import pytest

from conveyor.errors import InvalidInput, InvalidTemplate, TemplateLocaleMissing
from conveyor.locales import canonical_locale, locale_chain, parse_template, template_doc
from conveyor.notify.locales import Compiled
from conveyor.notify.templates import Templates

DOC = {"default_locale": "en",
       "locales": {"en": {"subject": "Hi {{ name }}", "text": "Hello {{ name }}",
                          "html": "<p>Hello {{ name }}</p>",
                          "channels": {"push": {"text": "{{ name }}, hello"}}},
                   "pt": {"subject": "Olá {{ name }}", "text": "Olá {{ name }}"},
                   "pt-BR": {"text": "Oi {{ name }}"}}}


def test_chain_and_canonical_case() -> None:
    assert canonical_locale("pt_br") == "pt-BR"
    assert canonical_locale("ZH-hant-tw") == "zh-Hant-TW"
    assert locale_chain("pt-BR", "en") == ["pt-BR", "pt", "en"]
    assert locale_chain("zh-Hant-TW", "en") == ["zh-Hant-TW", "zh-Hant", "zh", "en"]
    assert locale_chain("en-US", "en") == ["en-US", "en"]
    assert locale_chain(None, "en") == ["en"]
    assert locale_chain("fr", None) == ["fr"]


def test_resolve_falls_back_as_i18n_libraries_do() -> None:
    t = parse_template("welcome", DOC)
    assert [t.resolve(x) for x in ("pt-BR", "pt_br", "pt-PT", "pt", "fr", "en-GB", None)] == [
        "pt-BR", "pt-BR", "pt", "pt", "en", "en", "en"]
    c = Compiled(t)
    # pt-BR has only text: its subject is its own (none), not pt's: a locale is whole.
    assert c.render({"name": "Ana"}, "pt-BR", "email").text == "Oi Ana"
    r = c.render({"name": "Ana"}, "pt-PT", "email")
    assert (r.subject, r.text, r.html) == ("Olá Ana", "Olá Ana", None)
    # A channel's own parts replace only what they name.
    push = c.render({"name": "Bo"}, "de", "push")
    assert (push.subject, push.text, push.html) == ("Hi Bo", "Bo, hello", "<p>Hello Bo</p>")
    assert c.pick("de", "push")[0] == "en"
    # HTML is escaped, text is not.
    r = c.render({"name": "<b>"}, "en", "email")
    assert (r.text, r.html) == ("Hello <b>", "<p>Hello &lt;b&gt;</p>")
    with pytest.raises(InvalidInput, match="undefined"):
        c.render({}, "en", "email")


def test_no_default_locale_means_no_fallback() -> None:
    t = parse_template("legal", {"default_locale": None,
                                 "locales": {"de": {"text": "AGB"}, "fr": {"text": "CGV"}}})
    assert t.resolve("de-AT") == "de" and t.resolve("en") is None
    with pytest.raises(TemplateLocaleMissing) as caught:
        Compiled(t).render({}, "en-US", "email")
    assert caught.value.code == "template_locale_missing"
    assert "tried en-US, en" in caught.value.message and "no default locale" in \
        caught.value.message


@pytest.mark.parametrize(("doc", "field", "words"), [
    ({"locales": {"en": {"text": "Hi {{ name }"}}}, "locales", "locales.en.text line 1"),
    ({"locales": {"en": {"text": "a\nb\n{% if x %}never closed"}}}, "locales",
     "locales.en.text line 3"),
    ({"locales": {"en": {"text": "ok", "html": "{% for %}"}}}, "locales", "html line 1"),
    ({"locales": {"en": {"text": "ok", "channels": {"push": {"subject": "{{"}}}}},
     "locales", "channels.push.subject line 1"),
    ({"locales": {"en": {"subject": "no text"}}}, "locales", "text is required"),
    ({"locales": {}}, "locales", "1 to 200"),
    ({"locales": {"not a tag": {"text": "x"}}}, "locales", "language tag"),
    ({"locales": {"en": {"text": "x"}, "EN": {"text": "y"}}}, "locales", "twice"),
    ({"default_locale": "fr", "locales": {"en": {"text": "x"}}}, "default_locale",
     "no entry"),
    ({"default_locale": 5, "locales": {"en": {"text": "x"}}}, "default_locale", "tag"),
    ({"locales": {"en": {"text": 5}}}, "locales", "template text"),
    ({"locales": {"en": {"text": "x" * 300_000}}}, "locales", "at most"),
    ({"locales": {"en": {"text": "x", "footer": "y"}}}, "locales", "unknown part"),
    ({"locales": {"en": {"text": "x", "channels": {"push": {}}}}}, "locales",
     "overrides no part"),
    ({"locales": {"en": {"text": "x", "channels": {"push": {"channels": {}}}}}},
     "locales", "unknown part"),
    ({"locales": {"en": {"text": "x", "channels": {"bad name!": {"text": "y"}}}}},
     "locales", "not a channel"),
    ({"locales": {"en": {"text": "x"}}, "colour": "red"}, "colour", "Unknown template"),
    ({"locales": ["en"]}, "locales", "object"),
    ({"locales": {"en": None}}, "locales", "object"),
    ("text", "template", "JSON object"),
])
def test_bad_documents_name_the_field(doc: object, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_template("t", doc)
    assert caught.value.field == field
    assert words in caught.value.message


def test_syntax_errors_carry_the_line() -> None:
    with pytest.raises(InvalidTemplate) as caught:
        parse_template("t", {"locales": {"en": {"text": "one\ntwo\n{{ x + }}"}}})
    assert (caught.value.code, caught.value.line) == ("invalid_template", 3)
    for name in ("", "a b", "x" * 101, "../etc", None):
        with pytest.raises(InvalidInput) as bad:
            parse_template(name, DOC)
        assert bad.value.field == "name"


def test_round_trip() -> None:
    t = parse_template("welcome", DOC)
    again = parse_template("welcome", template_doc(t))  # GET's answer can be put back
    assert again == t


def test_stored_templates_run_in_a_sandbox() -> None:
    t = parse_template("evil", {"locales": {"en": {
        "text": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}}})
    with pytest.raises(InvalidInput, match=r"unsafe"):
        Compiled(t).render({}, "en", "email")


def test_file_templates_have_locale_variants() -> None:
    templates = Templates(mapping={
        "hi.txt": "Hello {{ n }}", "hi.subject": "Hi",
        "hi.pt.txt": "Olá {{ n }}", "hi.pt.subject": "Oi",
        "hi.pt-BR.txt": "Oi {{ n }}"})
    assert templates.render("hi", {"n": 1}, "pt-BR").text == "Oi 1"
    assert templates.render("hi", {"n": 1}, "pt-PT") == ("Oi", "Olá 1", None)
    assert templates.render("hi", {"n": 1}, "fr").text == "Hello 1"
    assert templates.render("hi", {"n": 1}).text == "Hello 1"
    assert templates.has("hi") and not templates.has("bye")
