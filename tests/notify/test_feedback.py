"""Provider feedback into suppression, through the HTTP routes and the inbound SMTP address:
SES via SNS (signature verified against a certificate served over TLS on loopback),
SendGrid's signed event webhook, Postmark with basic auth, and RFC 3464 / RFC 5965 reports
mailed in. Hard bounces and complaints suppress, soft bounces count; bad or unsigned
payloads are refused with nothing changed. On both backends."""

from __future__ import annotations

import base64
import datetime
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from conveyor.broker.broker import Broker
from conveyor.demo.h2server import H2Server, Request, Response, server_context
from conveyor.http.app import create_app
from conveyor.ledger import NewDelivery
from conveyor.notify.feedback import FeedbackSettings, dsn, original_message_id
from tests.support.tls import self_signed

ARN = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"


class Sns:
    """An SNS topic's signing key, its certificate served over HTTPS, and a signer."""

    def __init__(self, port: int) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .sign(self.key, hashes.SHA256()))
        self.port = port
        self.gets: list[str] = []

    def handle(self, request: Request) -> Response:
        self.gets.append(request.path)
        if request.path == "/cert.pem":
            return 200, [], self.cert.public_bytes(serialization.Encoding.PEM)
        return 200, [], b"<ConfirmSubscriptionResponse/>"

    def message(self, kind: str, payload: Any, version: str = "1", **extra: Any
                ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "Type": kind, "MessageId": "m-1", "TopicArn": ARN,
            "Message": payload if isinstance(payload, str) else orjson.dumps(payload).decode(),
            "Timestamp": "2026-12-05T18:00:00.000Z", "SignatureVersion": version,
            "SigningCertURL": f"https://127.0.0.1:{self.port}/cert.pem", **extra}
        if kind != "Notification":
            msg.setdefault("Token", "t0k")
            msg.setdefault("SubscribeURL", f"https://127.0.0.1:{self.port}/confirm?t=1")
        names = (("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
                 if kind == "Notification" else
                 ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn",
                  "Type"))
        text = "".join(f"{n}\n{msg[n]}\n" for n in names if n in msg).encode()
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        msg["Signature"] = base64.b64encode(self.key.sign(text, padding.PKCS1v15(), digest)
                                            ).decode()
        return msg


def ses_bounce(kind: str, *addresses: str) -> dict[str, Any]:
    return {"notificationType": "Bounce", "bounce": {
        "bounceType": kind, "bounceSubType": "General", "bouncedRecipients": [
            {"emailAddress": a, "status": "5.1.1" if kind == "Permanent" else "4.4.7",
             "diagnosticCode": "smtp; 550 5.1.1 user unknown"} for a in addresses]},
        "mail": {"messageId": "x"}}


@pytest.fixture
async def sns_server(tmp_path: Path) -> AsyncIterator[tuple[Sns, str]]:
    cert, key = self_signed(tmp_path)
    server = H2Server(lambda r: sns.handle(r), server_context(cert, key))
    await server.start()
    sns = Sns(server.port)
    try:
        yield sns, str(cert)
    finally:
        await server.close()


def client(broker: Broker, settings: FeedbackSettings) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(
        app=create_app(broker, feedback=settings)), base_url="http://test")


async def test_ses_through_sns(broker: Broker, sns_server: tuple[Sns, str]) -> None:
    sns, ca = sns_server
    settings = FeedbackSettings(sns_topics=(ARN,), sns_cert_hosts=r"127\.0\.0\.1",
                                sns_ca_file=ca, soft_limit=3)
    async with client(broker, settings) as http:
        async def post(msg: dict[str, Any]) -> httpx.Response:
            return await http.post("/v1/feedback/ses", content=orjson.dumps(msg))

        confirm = await post(sns.message("SubscriptionConfirmation", "confirm it"))
        assert confirm.status_code == 200 and "/confirm?t=1" in sns.gets
        hard = await post(sns.message("Notification", ses_bounce("Permanent", "a@x.test")))
        assert hard.status_code == 200, hard.text
        assert hard.json() == {"events": 1, "hard": 1, "complaint": 0, "soft": 0,
                               "suppressed": 1}
        complaint = await post(sns.message("Notification", {
            "notificationType": "Complaint", "complaint": {
                "complainedRecipients": [{"emailAddress": "b@x.test"}],
                "complaintFeedbackType": "abuse"}}, version="2", Subject="c"))
        assert complaint.status_code == 200, complaint.text
        for n in range(3):  # soft bounces: the third suppresses
            soft = await post(sns.message("Notification", ses_bounce("Transient", "c@x.test")))
            assert soft.json()["suppressed"] == (1 if n == 2 else 0)
        assert sns.gets.count("/cert.pem") == 1  # the certificate is fetched once

        tampered = sns.message("Notification", ses_bounce("Permanent", "d@x.test"))
        tampered["Message"] = orjson.dumps(ses_bounce("Permanent", "e@x.test")).decode()
        unsigned = {k: v for k, v in sns.message("Notification", ses_bounce(
            "Permanent", "d@x.test")).items() if k != "Signature"}
        foreign = sns.message("Notification", ses_bounce("Permanent", "d@x.test"))
        foreign["SigningCertURL"] = "https://evil.example/cert.pem"
        other_topic = sns.message("Notification", ses_bounce("Permanent", "d@x.test"),
                                  TopicArn="arn:aws:sns:eu-west-1:1:other")
        for bad, status in ((tampered, 401), (unsigned, 401), (foreign, 401),
                            (other_topic, 403)):
            got = await post(bad)
            assert got.status_code == status, got.text
            assert got.json()["error"]["code"] == "feedback_refused"
        junk = await http.post("/v1/feedback/ses", content=b"not json")
        assert junk.status_code == 400
    listed = await broker.ledger.suppressed(
        "email", ["a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test"])
    assert listed == {"a@x.test", "b@x.test", "c@x.test"}


async def test_sendgrid_signed_events(broker: Broker) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    events = [{"email": "h@x.test", "event": "bounce", "type": "bounce", "reason": "550"},
              {"email": "s@x.test", "event": "bounce", "type": "blocked", "reason": "421"},
              {"email": "d@x.test", "event": "dropped", "reason": "Bounced Address"},
              {"email": "c@x.test", "event": "spamreport"},
              {"email": "ok@x.test", "event": "delivered"},
              {"email": "ok@x.test", "event": "deferred"}]
    body = orjson.dumps(events)

    def signed(stamp: str, content: bytes) -> dict[str, str]:
        sig = key.sign(stamp.encode() + content, ec.ECDSA(hashes.SHA256()))
        return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": stamp}

    async with client(broker, FeedbackSettings(sendgrid_key=public)) as http:
        now = str(int(time.time()))
        forged = await http.post("/v1/feedback/sendgrid", content=body.replace(
            b"h@x.test", b"z@x.test"), headers=signed(now, body))
        stale = await http.post("/v1/feedback/sendgrid", content=body,
                                headers=signed(str(int(time.time()) - 3600), body))
        missing = await http.post("/v1/feedback/sendgrid", content=body)
        assert [r.status_code for r in (forged, stale, missing)] == [401, 401, 401]
        assert await broker.ledger.suppressed("email", ["z@x.test", "h@x.test"]) == set()
        good = await http.post("/v1/feedback/sendgrid", content=body, headers=signed(now, body))
        assert good.status_code == 200, good.text
        assert good.json() == {"events": 4, "hard": 2, "complaint": 1, "soft": 1,
                               "suppressed": 3}
        unknown = await http.post("/v1/feedback/postmark", content=b"{}")
        assert unknown.status_code == 404  # not configured on this server
    assert await broker.ledger.suppressed("email", [e["email"] for e in events]) == {
        "h@x.test", "d@x.test", "c@x.test"}


async def test_postmark_with_basic_auth(broker: Broker) -> None:
    settings = FeedbackSettings(postmark_secret="s3cret", soft_limit=1)
    auth = {"Authorization": "Basic " + base64.b64encode(b"postmark:s3cret").decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(b"postmark:guess").decode()}
    hard = orjson.dumps({"RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1,
                         "Email": "p@x.test", "Description": "The server was unable to "
                         "deliver your message"})
    async with client(broker, settings) as http:
        for headers in (wrong, {}):
            refused = await http.post("/v1/feedback/postmark", content=hard, headers=headers)
            assert refused.status_code == 401
        assert await broker.ledger.suppressed("email", ["p@x.test"]) == set()
        assert (await http.post("/v1/feedback/postmark", content=hard,
                                headers=auth)).json()["suppressed"] == 1
        spam = orjson.dumps({"RecordType": "SpamComplaint", "Type": "SpamComplaint",
                             "Email": "q@x.test"})
        soft = orjson.dumps({"RecordType": "Bounce", "Type": "SoftBounce",
                             "Email": "r@x.test"})
        opened = orjson.dumps({"RecordType": "Open", "Email": "o@x.test"})
        for body in (spam, soft, opened):
            assert (await http.post("/v1/feedback/postmark", content=body,
                                    headers=auth)).status_code == 200
        bad = await http.post("/v1/feedback/postmark", content=b"[1]", headers=auth)
        assert bad.status_code == 400
    assert await broker.ledger.suppressed(
        "email", ["p@x.test", "q@x.test", "r@x.test", "o@x.test"]) == {
        "p@x.test", "q@x.test", "r@x.test"}  # soft_limit=1: one soft bounce suppresses


DSN_TEMPLATE = b"""From: MAILER-DAEMON@mx.example
To: bounces@conveyor.example
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.
--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example
Arrival-Date: Sat, 5 Dec 2026 18:00:00 +0000

Final-Recipient: rfc822; gone@x.test
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <gone@x.test>: Recipient address rejected

Final-Recipient: rfc822; full@x.test
Action: delayed
Status: 4.2.2
Diagnostic-Code: smtp; 452 4.2.2 Mailbox full

Final-Recipient: rfc822; fine@x.test
Action: delivered
Status: 2.0.0

--B
Content-Type: message/rfc822

Message-ID: <ID@conveyor.example>
Subject: hello

hi
--B--
"""


def dsn_for(delivery_id: str) -> bytes:
    """The DSN above, returning the message of a delivery id."""
    return DSN_TEMPLATE.replace(b"ID@conveyor.example", delivery_id.encode() +
                                b"@conveyor.example")


DSN = dsn_for("0" * 32)

ARF = b"""From: abuse@isp.example
To: bounces@conveyor.example
Subject: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

A complaint.
--F
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: isp/1.0
Version: 1
Original-Rcpt-To: angry@x.test

--F
Content-Type: text/rfc822-headers

Message-ID: <ID@conveyor.example>
Subject: hello

--F--
"""


def test_dsn_and_arf_parsing() -> None:
    events = dsn(DSN)
    assert [(e.address, e.kind) for e in events] == [("gone@x.test", "hard"),
                                                     ("full@x.test", "soft")]
    assert events[0].reason.startswith("5.1.1 smtp; 550 5.1.1")
    assert [(e.address, e.kind) for e in dsn(ARF)] == [("angry@x.test", "complaint")]
    assert dsn(b"Subject: hi\n\nplain mail") == []
    assert original_message_id(dsn_for("abc")) == "abc@conveyor.example"
    assert original_message_id(ARF) == "ID@conveyor.example"
    assert original_message_id(b"Subject: hi\n\nplain mail") is None


async def test_reports_mailed_to_the_inbound_address(broker: Broker) -> None:
    import aiosmtplib

    from conveyor.notify.inbound import BounceHandler, serve_bounces

    ids = {to: f"{n:032x}" for n, to in enumerate(("gone@x.test", "full@x.test",
                                                     "angry@x.test"), start=1)}
    await broker.ledger.record([NewDelivery(i, "email", to) for to, i in ids.items()])
    handler = BounceHandler(broker, FeedbackSettings(soft_limit=2))
    server = await serve_bounces(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    arf = ARF.replace(b"ID@conveyor.example", ids["angry@x.test"].encode() + b"@c.example")
    try:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as smtp:
            for raw in (dsn_for(ids["gone@x.test"]), arf, dsn_for(ids["full@x.test"]),
                        b"From: a@b\r\nSubject: hi\r\n\r\nnot a report\r\n",
                        dsn_for("f" * 32),  # forged: names no delivery of ours
                        dsn_for(ids["full@x.test"])):
                await smtp.sendmail("", ["bounces@conveyor.example"], raw)
    finally:
        server.close()
        await server.wait_closed()
    assert handler.reports == 4 and handler.ignored == 2
    # each report applied only to its own delivery's recipient: the DSN about gone@'s
    # message says nothing about full@, and the forged one nothing at all
    assert await broker.ledger.suppressed(
        "email", ["gone@x.test", "full@x.test", "fine@x.test", "angry@x.test"]) == {
        "gone@x.test", "angry@x.test", "full@x.test"}  # full@: its second soft bounce
    counted = await broker.ledger.suppressions("email", None, 10)
    assert {r.address: r.reason.split(":")[0] for r in counted} == {
        "gone@x.test": "dsn hard", "angry@x.test": "arf complaint",
        "full@x.test": "2 soft bounces; last dsn soft"}


def test_server_config_enables_feedback_from_env() -> None:
    from conveyor.config import from_env
    from conveyor.http.app import feedback_settings

    assert feedback_settings(from_env({})) is None
    settings = feedback_settings(from_env({
        "CONVEYOR_FEEDBACK_POSTMARK_SECRET": "pw", "CONVEYOR_FEEDBACK_SOFT_LIMIT": "5",
        "CONVEYOR_FEEDBACK_SNS_TOPICS": f"{ARN}, arn:aws:sns:us-east-1:1:b"}))
    assert settings is not None and settings.postmark_secret == "pw"
    assert settings.soft_limit == 5 and settings.sns_topics == (ARN, "arn:aws:sns:us-east-1:1:b")


async def test_cli_bounces_address(tmp_path: Path) -> None:
    import asyncio
    import json
    import os
    import sys

    import aiosmtplib

    from conveyor.broker.broker import Broker
    from conveyor.storage.factory import storage_from_url

    db = f"sqlite:///{tmp_path / 'b.db'}"
    async with Broker(storage_from_url(db), sweep_interval=None) as broker:
        await broker.ledger.record([NewDelivery("a" * 32, "email", "gone@x.test")])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "conveyor.cli.main", "notify", "bounces", "--listen",
        "127.0.0.1:0", "--seconds", "6", "--database", db, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert "listening on 127.0.0.1:" in first, first
    port = int(first.rsplit(":", 1)[1])
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as smtp:
        await smtp.sendmail("", ["bounces@conveyor.example"], dsn_for("a" * 32))
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out.decode().splitlines()[-1]) == {"reports": 1, "ignored": 0}
    async with Broker(storage_from_url(db), sweep_interval=None) as broker:
        assert await broker.ledger.suppressed("email", ["gone@x.test", "full@x.test"]) == {
            "gone@x.test"}
