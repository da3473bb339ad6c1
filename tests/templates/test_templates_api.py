"""Templates through the broker (`broker.templates`) and the HTTP API, on both backends:
put, get, list, delete; a syntax error refused with its line and nothing stored; previews
for a recipient (their locale's fallback chain, their channels) that send and write
nothing."""

from __future__ import annotations

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.errors import InvalidInput, InvalidTemplate

WELCOME = {"default_locale": "en",
           "locales": {"en": {"subject": "Welcome, {{ name }}", "text": "Hello {{ name }}",
                              "html": "<p>Hello {{ name }}</p>",
                              "channels": {"push": {"text": "{{ name }}, hello"}}},
                       "pt": {"subject": "Bem-vindo, {{ name }}", "text": "Olá {{ name }}"},
                       "pt-BR": {"subject": "Bem-vindo, {{ name }}",
                                 "text": "Oi {{ name }}"}}}
SUB = {"endpoint": "https://push.example/ana", "keys": {"p256dh": "P", "auth": "A"}}


async def test_broker_put_get_list_delete(broker: Broker) -> None:
    stored = await broker.templates.put("welcome", WELCOME)
    assert stored.updated_at == broker.wall_now()
    got = await broker.templates.get("welcome")
    assert got == stored and got.resolve("pt-BR") == "pt-BR" and got.resolve("pt-PT") == "pt"
    await broker.templates.put("bye", {"locales": {"en": {"text": "Bye"}}})
    assert [t.name for t in await broker.templates.list()] == ["bye", "welcome"]
    assert [t.name for t in await broker.templates.list("bye", 1)] == ["welcome"]
    with pytest.raises(InvalidTemplate) as caught:
        await broker.templates.put("welcome", {"locales": {"en": {"text": "a\n{{ b"}}})
    assert caught.value.line == 2
    assert await broker.templates.get("welcome") == stored  # unchanged
    with pytest.raises(InvalidInput, match="path"):
        await broker.templates.put("welcome", {**WELCOME, "name": "other"})
    for limit in (0, 1001, True, "5"):
        with pytest.raises(InvalidInput):
            await broker.templates.list("", limit)  # type: ignore[arg-type]
    assert await broker.templates.delete("welcome")
    assert not await broker.templates.delete("welcome")
    with pytest.raises(InvalidInput):
        await broker.templates.get("no such/name")


async def test_http_routes(http: httpx.AsyncClient) -> None:
    put = await http.put("/v1/templates/welcome", json=WELCOME)
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["name"] == "welcome" and body["locales"]["en"]["channels"] == {
        "push": {"text": "{{ name }}, hello"}}
    got = await http.get("/v1/templates/welcome")
    assert got.status_code == 200 and got.json() == body
    # What GET answers can be put back as it is.
    assert (await http.put("/v1/templates/welcome", json=body)).status_code == 200
    strict = await http.put("/v1/templates/legal", json={
        "default_locale": None, "locales": {"de": {"text": "AGB"}}})
    assert strict.status_code == 200 and strict.json()["default_locale"] is None
    listed = await http.get("/v1/templates", params={"limit": 1})
    assert [t["name"] for t in listed.json()["templates"]] == ["legal"]
    assert listed.json()["next"] == "legal"
    rest = await http.get("/v1/templates", params={"after": "legal"})
    assert [t["name"] for t in rest.json()["templates"]] == ["welcome"]
    assert rest.json()["next"] is None
    bad = await http.put("/v1/templates/welcome", json={
        "locales": {"en": {"text": "ok", "html": "<p>\n\n{{ x + }}</p>"}}})
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["code"] == "invalid_template"
    assert "locales.en.html line 3" in bad.json()["error"]["message"]
    assert (await http.get("/v1/templates/welcome")).json() == got.json()  # unchanged
    missing = await http.get("/v1/templates/nope")
    assert (missing.status_code, missing.json()["error"]["code"]) == (
        404, "template_not_found")
    assert (await http.delete("/v1/templates/legal")).status_code == 204
    assert (await http.delete("/v1/templates/legal")).status_code == 404
    spec = (await http.get("/openapi.json")).json()
    assert {"/v1/templates/{name}", "/v1/templates", "/v1/templates/{name}/preview"} <= set(
        spec["paths"])


async def test_preview_for_a_recipient_writes_nothing(broker: Broker,
                                                      http: httpx.AsyncClient) -> None:
    await http.put("/v1/templates/welcome", json=WELCOME)
    await http.put("/v1/recipients/ana", json={
        "locale": "pt-BR", "addresses": {"email": ["ana@example.com"], "push": [SUB]}})
    await http.put("/v1/recipients/joao", json={
        "locale": "pt-PT", "addresses": {"fcm": ["tok"]}})
    await http.put("/v1/recipients/kim", json={"locale": "ko", "addresses": {
        "email": "kim@example.com"}})
    queues_before = [q.name for q in await broker.list_queues()]
    ana = await http.post("/v1/templates/welcome/preview",
                          json={"recipient": "ana", "data": {"name": "Ana"}})
    assert ana.status_code == 200, ana.text
    assert ana.json() == {"template": "welcome", "recipient": "ana", "locale": "pt-BR",
                          "channels": {
                              "email": {"locale": "pt-BR", "subject": "Bem-vindo, Ana",
                                        "text": "Oi Ana", "html": None},
                              "push": {"locale": "pt-BR", "subject": "Bem-vindo, Ana",
                                       "text": "Oi Ana", "html": None}}}
    joao = (await http.post("/v1/templates/welcome/preview",
                            json={"recipient": "joao", "data": {"name": "João"}})).json()
    assert joao["channels"] == {"fcm": {"locale": "pt", "subject": "Bem-vindo, João",
                                        "text": "Olá João", "html": None}}
    kim = (await http.post("/v1/templates/welcome/preview", json={
        "recipient": "kim", "data": {"name": "<Kim>"}})).json()["channels"]["email"]
    assert (kim["locale"], kim["text"], kim["html"]) == ("en", "Hello <Kim>",
                                                        "<p>Hello &lt;Kim&gt;</p>")
    # No recipient: a locale and channels of one's choosing (the push part is its own).
    push = await http.post("/v1/templates/welcome/preview", json={
        "locale": "fr", "channels": ["push"], "data": {"name": "Zoé"}})
    assert push.json()["channels"]["push"]["text"] == "Zoé, hello"
    # A strict template with no locale for the recipient: a clear error with its code.
    await http.put("/v1/templates/legal", json={"default_locale": None,
                                                "locales": {"de": {"text": "AGB"}}})
    none = await http.post("/v1/templates/legal/preview", json={"recipient": "ana"})
    assert none.status_code == 422
    assert none.json()["error"]["code"] == "template_locale_missing"
    assert "tried pt-BR, pt" in none.json()["error"]["message"]
    for body, status, code in [
            ({"recipient": "nobody"}, 404, "recipient_not_found"),
            ({"recipient": "ana", "data": {}}, 422, "invalid_input"),  # name undefined
            ({"locale": "not a locale"}, 422, "invalid_input"),
            ({"channels": ["x" * 41]}, 422, "invalid_input")]:
        answer = await http.post("/v1/templates/welcome/preview", json=body)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), body
    unknown = await http.post("/v1/templates/nope/preview", json={"recipient": "ana"})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (
        404, "template_not_found")
    # Nothing was sent or written: no ledger rows, no queues, no links.
    assert await broker.ledger.counts() == {}
    assert [q.name for q in await broker.list_queues()] == queues_before
    assert await broker.recipients.notifications("ana") == []


def test_permissions() -> None:
    """Templates belong to the notify queues: reading and previewing (a recipient's locale
    and addresses) need `receive` there, changing them `manage`."""
    from conveyor.http.auth import Need, required

    assert required("GET", "/v1/templates") == Need("receive", "notify-*")
    assert required("GET", "/v1/templates/welcome") == Need("receive", "notify-*")
    assert required("POST", "/v1/templates/welcome/preview") == Need("receive", "notify-*")
    assert required("PUT", "/v1/templates/welcome") == Need("manage", "notify-*")
    assert required("DELETE", "/v1/templates/welcome") == Need("manage", "notify-*")
