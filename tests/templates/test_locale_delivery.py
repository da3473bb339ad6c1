"""Notify people in their own language, on both backends, delivering email into a real
SMTP server on loopback (aiosmtpd): the worker renders a stored template in the first
locale of each recipient's fallback chain; a change to the template reaches the running
worker; a template with no locale for a person is a recorded skip with its reason."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.demo.loopback import SmtpSink
from conveyor.errors import TemplateNotFound
from conveyor.http.app import create_app
from conveyor.notify import Email, Notifier, SmtpChannel, Templates
from conveyor.notify.people import PersonNotification, notify_recipient
from conveyor.recipients import Category
from tests.notify.helpers import deliver_until, smtp_server
from tests.templates.test_templates_api import WELCOME

NEWS = Category("news")


def _parsed(sink: SmtpSink) -> dict[str, EmailMessage]:
    out = {}
    for _, rcpt, data in sink.messages:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        out[rcpt] = msg
    return out


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).strip()  # type: ignore[attr-defined]


async def test_each_person_gets_their_locale(broker: Broker) -> None:
    await broker.templates.put("welcome", WELCOME)
    for rid, locale in (("ana", "pt-BR"), ("joao", "pt_PT"), ("kim", "ko")):
        await broker.recipients.put(rid, {"locale": locale,
                                          "addresses": {"email": f"{rid}@example.com"}})
    sink = SmtpSink()
    with smtp_server(sink) as port:
        # refresh_seconds=0: every batch reads the template again (the default is 5 s).
        notifier = Notifier(broker, channels={"email": SmtpChannel("127.0.0.1", port)},
                            templates=Templates(refresh_seconds=0))
        for rid in ("ana", "joao", "kim"):
            planned = await notify_recipient(notifier, PersonNotification(
                rid, NEWS, "welcome", {"name": rid.title()}))
            assert [p.status for p in planned] == ["queued"]
        await deliver_until(notifier, lambda: len(sink.messages) >= 3)
        got = _parsed(sink)
        assert {r: (str(m["Subject"]), _text(m)) for r, m in got.items()} == {
            "ana@example.com": ("Bem-vindo, Ana", "Oi Ana"),
            "joao@example.com": ("Bem-vindo, Joao", "Olá Joao"),
            "kim@example.com": ("Welcome, Kim", "Hello Kim")}
        assert got["kim@example.com"].get_body(("html",)) is not None
        # A new version reaches the running worker; nothing is left half-done.
        changed = {**WELCOME, "locales": {**WELCOME["locales"],
                                          "pt-BR": {"text": "E aí, {{ name }}"}}}
        await broker.templates.put("welcome", changed)
        await notify_recipient(notifier, PersonNotification(
            "ana", NEWS, "welcome", {"name": "Ana"}, idempotency_key="second"))
        await deliver_until(notifier, lambda: len(sink.messages) >= 4)
        last = email.message_from_bytes(sink.messages[-1][2], policy=email.policy.default)
        assert isinstance(last, EmailMessage) and _text(last) == "E aí, Ana"
        assert last["Subject"] in (None, "")
        counts = (await broker.ledger.counts("email"))["email"]
        assert counts["sent"] == sum(counts.values()) == 4


async def test_no_locale_in_the_chain_is_a_recorded_skip(broker: Broker) -> None:
    await broker.templates.put("legal", {"default_locale": None,
                                         "locales": {"de": {"text": "AGB {{ v }}"}}})
    await broker.recipients.put("ana", {"locale": "pt-BR",
                                        "addresses": {"email": "ana@example.com"}})
    await broker.recipients.put("max", {"locale": "de-AT",
                                        "addresses": {"email": "max@example.com"}})
    notifier = Notifier(broker, channels={"email": SmtpChannel("127.0.0.1", 9)})
    planned = await notify_recipient(notifier, PersonNotification(
        "ana", NEWS, "legal", {"v": 2}))
    assert [(p.channel, p.address, p.status) for p in planned] == [
        ("none", "ana", "skipped")]
    reason = planned[0].reason or ""
    assert "no locale for pt-BR" in reason and "tried pt-BR, pt" in reason
    row = await broker.ledger.get(planned[0].delivery_id)
    assert row is not None and (row.status, row.error) == ("skipped", reason)
    # Max (de-AT) falls back to de: queued.
    ok = await notify_recipient(notifier, PersonNotification("max", NEWS, "legal", {"v": 2}))
    assert [p.status for p in ok] == ["queued"]
    counts = (await broker.ledger.counts("email"))["email"]
    assert counts["queued"] == sum(counts.values()) == 1
    # Neither stored nor a file: refused before anything is written.
    with pytest.raises(TemplateNotFound, match="No template"):
        await notify_recipient(notifier, PersonNotification("ana", NEWS, "nope"))
    # Through the HTTP API (which holds no file templates): the same recorded skip.
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        answer = await http.post("/v1/recipients/ana/notify", json={
            "category": "news", "template": "legal", "data": {"v": 3}})
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert (body["queued"], body["skipped"]) == (0, 1)
        assert "no locale for pt-BR" in body["deliveries"][0]["reason"]
        listed = (await http.get("/v1/notifications", params={"recipient": "ana"})).json()
        assert {n["status"] for n in listed["notifications"]} == {"skipped"}
        # A fallback added through this server counts at once for its next notify.
        fixed = await http.put("/v1/templates/legal", json={
            "default_locale": "de", "locales": {"de": {"text": "AGB {{ v }}"}}})
        assert fixed.status_code == 200
        again = await http.post("/v1/recipients/ana/notify", json={
            "category": "news", "template": "legal", "data": {"v": 4}})
        assert [d["status"] for d in again.json()["deliveries"]] == ["queued"]


async def test_python_api_locale_on_stored_and_file_templates(broker: Broker) -> None:
    """`Email(..., locale=...)`: a stored template (read by `asend` itself, never cached
    before) and a file template's `name.<locale>.txt` variants, rendered by the worker."""
    await broker.templates.put("welcome", WELCOME)
    sink = SmtpSink()
    with smtp_server(sink) as port:
        notifier = Notifier(broker, channels={"email": SmtpChannel("127.0.0.1", port)},
                            templates={"hi.txt": "Hello {{ n }}", "hi.subject": "Hi",
                                       "hi.pt.txt": "Olá {{ n }}", "hi.pt.subject": "Oi"})
        await notifier.asend_many([
            Email(to="a@example.com", template="welcome", data={"name": "A"},
                  locale="pt-BR"),
            Email(to="b@example.com", template="hi", data={"n": "B"}, locale="pt-BR"),
            Email(to="c@example.com", template="hi", data={"n": "C"})])
        await deliver_until(notifier, lambda: len(sink.messages) >= 3)
        got = {r: (str(m["Subject"]), _text(m)) for r, m in _parsed(sink).items()}
        assert got == {"a@example.com": ("Bem-vindo, A", "Oi A"),
                       "b@example.com": ("Oi", "Olá B"),
                       "c@example.com": ("Hi", "Hello C")}
