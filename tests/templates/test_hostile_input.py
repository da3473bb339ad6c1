"""A careless or hostile client against the recipients and templates API, on both
backends: wrong types, huge strings, nulls, bodies that are not objects. Each gets a 4xx
with a machine-readable code and a sentence, and nothing changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.http.app import create_app
from tests.templates.test_templates_api import WELCOME

HUGE = "x" * 200_000
ANA = {"timezone": "America/Sao_Paulo", "locale": "pt-BR",
       "addresses": {"email": ["ana@example.com"]},
       "quiet_hours": {"start": "22:00", "end": "07:00"}}

RECIPIENT_BODIES: list[Any] = [
    None, [], "ana", 5, {"timezone": None}, {"timezone": 5}, {"timezone": HUGE},
    {"timezone": "Mars/Olympus"}, {"timezone": ""}, {"locale": None}, {"locale": []},
    {"locale": HUGE}, {"locale": "x"}, {"addresses": None}, {"addresses": "a@b.example"},
    {"addresses": {"email": 5}}, {"addresses": {"email": [None]}},
    {"addresses": {"email": [HUGE + "@b.example"]}},
    {"addresses": {"email": [f"a{i}@b.example" for i in range(21)]}},
    {"addresses": {"push": ["https://x"]}}, {"addresses": {"apns": [{"token": "t"}]}},
    {"preferences": None}, {"preferences": []}, {"preferences": {"news": None}},
    {"preferences": {"news": {"email": None}}}, {"preferences": {HUGE: {"email": False}}},
    {"quiet_hours": "22:00-07:00"}, {"quiet_hours": {"start": None, "end": None}},
    {"quiet_hours": {"start": 2200, "end": 700}},
    {"quiet_hours": {"start": "22:00", "end": "07:00", "tz": "UTC"}},
    {"quiet_hours": {"start": "25:00", "end": "07:00"}},
    {"quiet_hours": {"start": "22:00", "end": "7"}}, {"quiet_hours": []},
    {"id": 5}, {"unknown": 1},
]
NOTIFY_BODIES: list[Any] = [
    None, [], {}, {"category": None, "template": "welcome"},
    {"category": 5, "template": "welcome"}, {"category": HUGE, "template": "welcome"},
    {"category": "", "template": "welcome"}, {"category": "news", "template": None},
    {"category": "news", "template": HUGE}, {"category": "news", "template": ["welcome"]},
    {"category": "news", "template": "welcome", "data": []},
    {"category": "news", "template": "welcome", "data": "x"},
    {"category": "news", "template": "welcome", "data": {"x": HUGE}},
    {"category": "news", "template": "welcome", "channels": "email"},
    {"category": "news", "template": "welcome", "channels": [5]},
    {"category": "news", "template": "welcome", "channels": ["sms"]},
    {"category": "news", "template": "welcome", "critical": "maybe"},
    {"category": "news", "template": "welcome", "idempotency_key": 5},
    {"category": "news", "template": "welcome", "idempotency_key": HUGE},
    # JSON numbers past 64 bits (schemathesis found the 500): orjson cannot encode them
    {"category": "news", "template": "welcome", "data": {"n": 2 ** 64}},
    {"category": "news", "template": "welcome", "data": {"n": [-(2 ** 70)]},
     "digest": {"key": "k", "window": "10m"}},
]
TEMPLATE_BODIES: list[Any] = [
    None, [], "text", {}, {"locales": None}, {"locales": []}, {"locales": {}},
    {"locales": {"en": "Hello"}}, {"locales": {"en": None}}, {"locales": {"en": {}}},
    {"locales": {"en": {"text": None}}}, {"locales": {"en": {"text": 5}}},
    {"locales": {"en": {"text": HUGE * 2}}}, {"locales": {"en": {"text": "{{ x"}}},
    {"locales": {"en": {"text": "{% endfor %}"}}}, {"locales": {HUGE: {"text": "x"}}},
    {"locales": {"en": {"text": "x", "channels": None}}},
    {"locales": {"en": {"text": "x", "channels": {"push": "x"}}}},
    {"locales": {"en": {"text": "x", "channels": {"push": {"text": 5}}}}},
    {"locales": {"en": {"text": "x"}}, "default_locale": 5},
    {"locales": {"en": {"text": "x"}}, "default_locale": "de"},
    {"locales": {"en": {"text": "x"}}, "default_locale": []},
    {"locales": {"en": {"text": "x"}}, "name": "other"},
    {"locales": {"en": {"text": "x"}}, "extra": True},
]
PREVIEW_BODIES: list[Any] = [
    None, [], {"data": []}, {"data": None}, {"data": "x"}, {"recipient": 5},
    {"recipient": HUGE}, {"recipient": "nobody"}, {"locale": 5}, {"locale": HUGE},
    {"channels": "email"}, {"channels": [None]}, {"channels": ["x"] * 50},
    {"recipient": "ana"},  # the data lacks `name`
    {"recipient": "ana", "data": {"name": HUGE}},
    {"recipient": "ana", "data": {"name": "Ana", "n": 2 ** 64}},
]


@pytest.fixture
async def http(broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


def _refused(answer: httpx.Response, what: object) -> None:
    assert 400 <= answer.status_code < 500, (what, answer.status_code, answer.text[:300])
    error = answer.json()["error"]
    assert isinstance(error["code"], str) and error["code"], what
    assert isinstance(error["message"], str) and 0 < len(error["message"]) < 2000, what


async def test_careless_clients_get_a_4xx_with_a_code_and_change_nothing(
        broker: Broker, http: httpx.AsyncClient) -> None:
    assert (await http.put("/v1/recipients/ana", json=ANA)).status_code == 200
    assert (await http.put("/v1/templates/welcome", json=WELCOME)).status_code == 200
    person = (await http.get("/v1/recipients/ana")).json()
    template = (await http.get("/v1/templates/welcome")).json()
    for body in RECIPIENT_BODIES:
        _refused(await http.put("/v1/recipients/ana", json=body), body)
    for body in NOTIFY_BODIES:
        _refused(await http.post("/v1/recipients/ana/notify", json=body), body)
    for body in TEMPLATE_BODIES:
        _refused(await http.put("/v1/templates/welcome", json=body), body)
    for body in PREVIEW_BODIES:
        _refused(await http.post("/v1/templates/welcome/preview", json=body), body)
    for path in ("/v1/recipients/" + "a" * 300, "/v1/recipients/a%20b",
                 "/v1/templates/" + "a" * 300, "/v1/templates/a%20b"):
        _refused(await http.put(path, json={}), path)
        _refused(await http.get(path), path)
    for path, params in [("/v1/notifications", {}),
                         ("/v1/notifications", {"recipient": "ana", "limit": "many"}),
                         ("/v1/notifications", {"recipient": "ana", "limit": "0"}),
                         ("/v1/notifications", {"recipient": "a b"}),
                         ("/v1/templates", {"limit": "many"}),
                         ("/v1/templates", {"limit": "0"}),
                         ("/v1/templates", {"after": HUGE[:200]})]:
        _refused(await http.get(path, params=params), (path, params))
    for raw in (b"{", b'{"timezone": "UTC",}', b"\xff\xfe", b'{"locale": "\\ud800"}'):
        _refused(await http.put("/v1/recipients/ana", content=raw,
                                headers={"content-type": "application/json"}), raw)
        _refused(await http.put("/v1/templates/welcome", content=raw,
                                headers={"content-type": "application/json"}), raw)
    # Nothing changed, nothing was written.
    assert (await http.get("/v1/recipients/ana")).json() == person
    assert (await http.get("/v1/templates/welcome")).json() == template
    assert await broker.ledger.counts() == {}
    assert await broker.recipients.count() == 1
    assert [t.name for t in await broker.templates.list()] == ["welcome"]


@pytest.mark.parametrize("line", [
    "null", "5", '"s"', "[1]", '{"id": null}', '{"id": 5}', '{"id": "a", "timezone": null}',
    '{"id": "a", "addresses": {"email": null}}', '{"id": "a", "addresses": {"push": [null]}}',
    '{"id": "a", "addresses": {"push": {"endpoint": 5, "keys": {}}}}',
    '{"id": "a", "preferences": {"c": {"email": 1}}}', '{"id": "a", "preferences": []}',
    '{"id": "a", "quiet_hours": {"start": null, "end": "07:00"}}', '{"id": "a", "locale": 5}',
    '{"id": "a", "quiet_hours": "22:00"}', '{"id": "a"', f'{{"id": "{HUGE}"}}',
    {"id": None}, {"id": "a", "push": "[1]"}, {"id": "a", "preferences": "[]"},
    {"id": "a", "quiet_hours": "x"}, {"id": "a", "push": '{"endpoint": 5}'},
    {"id": "a", "preferences": '{"c": 5}'}, {"id": "a", "timezone": HUGE},
    {"id": "a", None: "extra cell"},  # what csv.DictReader makes of a row too long
], ids=lambda line: repr(line)[:40])
def test_import_lines_of_the_wrong_shape_are_invalid_input(line: Any) -> None:
    """A careless import file: every line of the wrong shape is `InvalidInput` (the CLI
    prints it with the line number), never a crash."""
    from conveyor.errors import InvalidInput
    from conveyor.recipients import parse_line

    with pytest.raises(InvalidInput):
        parse_line(line)
