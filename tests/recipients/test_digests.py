"""Digests (`conveyor.notify.digests`), on both backends, delivering email into a real SMTP
server on loopback: notifications with one digest key inside the window become one message
per address listing them; preferences per event; critical categories bypass; quiet hours
hold the digest message; malformed windows are a 400 that writes nothing."""

from __future__ import annotations

import asyncio
import email
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.demo.loopback import SmtpSink
from conveyor.digests import DigestSpec
from conveyor.errors import InvalidDigest
from conveyor.http.app import create_app
from conveyor.notify import Channel, Envelope, Notifier, SmtpChannel
from conveyor.notify.digests import DigestReleaser, release
from conveyor.notify.people import PersonNotification, notify_recipient
from conveyor.recipients import ADDRESS_CHANNELS, Category
from tests.notify.helpers import deliver_until, smtp_server

TEMPLATES = {
    "digest.subject": "{{ count }} updates",
    "digest.txt": "{{ count }} new:{% for e in events %} {{ e.text }}{% endfor %}\n",
    "ping.txt": "ping {{ n }}\n",
}
COMMENTS, LIKES = Category("comments"), Category("likes")
WINDOW = {"key": "activity", "window": "10m"}


def _sender(broker: Broker) -> Notifier:
    """What the HTTP server uses: every channel by name, nothing delivered."""
    return Notifier(broker, channels={c: Channel() for c in ADDRESS_CHANNELS},
                    templates=TEMPLATES)


def _email(broker: Broker, port: int) -> Notifier:
    return Notifier(broker, channels={"email": SmtpChannel("127.0.0.1", port)},
                    templates=TEMPLATES)


async def _deliver_for(notifier: Notifier, seconds: float) -> None:
    deliverer = notifier.deliverer()
    task = asyncio.create_task(deliverer.run())
    await asyncio.sleep(seconds)
    deliverer.stop()
    await task


def _texts(sink: SmtpSink) -> list[tuple[str, str, str]]:
    out = []
    for _, rcpt, data in sink.messages:
        msg = email.message_from_bytes(data)
        body = msg.get_payload(decode=True)
        assert isinstance(body, bytes)
        out.append((rcpt, str(msg["Subject"]), body.decode().strip()))
    return sorted(out)


async def test_a_burst_becomes_one_message_per_address(broker: Broker,
                                                       clock: ManualClock) -> None:
    await broker.recipients.put("ann", {
        "locale": "pt-BR",
        "addresses": {"email": ["ann@example.com", "ann@work.example"], "apns": "0a" * 32},
        "preferences": {"likes": {"apns": False}}})
    sender = _sender(broker)
    t0 = clock()
    for category, text in ((COMMENTS, "c1"), (LIKES, "l1"), (COMMENTS, "c2")):
        planned = await notify_recipient(sender, PersonNotification(
            "ann", category, "digest", {"text": text}, digest=WINDOW), clock())
        # Preferences per event: the like is skipped on apns, digested on email.
        assert {(p.channel, p.status) for p in planned} == (
            {("email", "digested"), ("apns", "skipped")} if category is LIKES else
            {("email", "digested"), ("apns", "digested")})
        assert {p.release_at for p in planned if p.status == "digested"} == {t0 + 600_000}
        clock.advance(1)
    # The same notification again joins nothing.
    await notify_recipient(sender, PersonNotification(
        "ann", COMMENTS, "digest", {"text": "c1"}, digest=WINDOW), clock())
    counts = await broker.ledger.counts()
    assert (counts["email"]["digested"], counts["apns"]["digested"],
            counts["apns"]["skipped"]) == (6, 2, 1)
    (pending,) = await broker.digests.pending("ann")
    assert (pending.key, pending.events, pending.state) == ("activity", 3, "open")
    listed = await broker.recipients.notifications("ann")
    assert sorted(d.status for d in listed).count("digested") == 8
    sink = SmtpSink()
    with smtp_server(sink) as port:
        notifier = _email(broker, port)
        await _deliver_for(notifier, 0.5)
        assert sink.messages == []  # the window is open
        clock.advance(600)
        await deliver_until(notifier, lambda: len(sink.messages) >= 2)
        await _deliver_for(notifier, 0.5)
    assert _texts(sink) == [("ann@example.com", "3 updates", "3 new: c1 l1 c2"),
                            ("ann@work.example", "3 updates", "3 new: c1 l1 c2")]
    assert await broker.digests.pending("ann") == []
    counts = await broker.ledger.counts()
    assert (counts["email"]["sent"], counts["email"]["digested"]) == (2, 6)
    # The APNs digest lists the two events it was allowed (no APNs worker runs here).
    (message,) = await broker.receive("notify-apns", 10)
    (item,) = Envelope.loads(message.body.text).items
    assert (item.to, item.data["count"], [e["text"] for e in item.data["events"]]) == (
        "0a" * 32, 2, ["c1", "c2"])
    assert item.extra["locale"] == "pt-BR"  # rendered in the recipient's locale chain
    # After the release, the next event opens a new window.
    later = await notify_recipient(sender, PersonNotification(
        "ann", COMMENTS, "digest", {"text": "c3"}, digest=WINDOW), clock())
    assert {(p.status, p.release_at) for p in later} == {("digested", clock() + 600_000)}


async def test_critical_bypasses_the_digest(broker: Broker, clock: ManualClock) -> None:
    await broker.recipients.put("ann", {"addresses": {"email": "ann@example.com"}})
    (p,) = await notify_recipient(_sender(broker), PersonNotification(
        "ann", Category("security", critical=True), "ping", {"n": 1}, digest=WINDOW),
        clock())
    assert p.status == "queued"
    assert await broker.digests.pending("ann") == []


def _quiet_from(clock: ManualClock, zone: str, after: timedelta, hours: int
                ) -> dict[str, str]:
    wall = datetime.fromtimestamp(clock() / 1000, UTC).astimezone(ZoneInfo(zone))
    start = wall + after
    return {"start": start.strftime("%H:%M"),
            "end": (start + timedelta(hours=hours)).strftime("%H:%M")}


async def test_quiet_hours_hold_the_digest_message(broker: Broker,
                                                   clock: ManualClock) -> None:
    """The window ends inside the recipient's quiet hours: the digest message is held
    until they end; and when the quiet hours are lifted it goes at once."""
    quiet = _quiet_from(clock, "Asia/Tokyo", timedelta(minutes=5), 2)
    await broker.recipients.put("ann", {"timezone": "Asia/Tokyo",
                                        "addresses": {"email": "ann@example.com"},
                                        "quiet_hours": quiet})
    sender = _sender(broker)
    for n in range(2):
        await notify_recipient(sender, PersonNotification(
            "ann", COMMENTS, "digest", {"text": f"c{n}"}, digest=WINDOW), clock())
    sink = SmtpSink()
    with smtp_server(sink) as port:
        notifier = _email(broker, port)
        clock.advance(601)
        await _deliver_for(notifier, 0.8)
        assert sink.messages == []
        counts = (await broker.ledger.counts("email"))["email"]
        assert (counts["held"], counts["digested"]) == (1, 2)
        assert await broker.digests.pending("ann") == []  # released, held as a message
        # The quiet hours are lifted (PUT without them): the held digest goes now.
        await broker.recipients.put("ann", {"timezone": "Asia/Tokyo",
                                            "addresses": {"email": "ann@example.com"}})
        await deliver_until(notifier, lambda: len(sink.messages) >= 1)
    assert _texts(sink) == [("ann@example.com", "2 updates", "2 new: c0 c1")]


@pytest.mark.parametrize(("digest", "field"), [
    ({"key": "activity", "window": "ten minutes"}, "digest.window"),
    ({"key": "activity", "window": -5}, "digest.window"),
    ({"key": "activity", "window": "8d"}, "digest.window"),
    ({"key": "activity", "window": "0s"}, "digest.window"),
    ({"key": "", "window": "10m"}, "digest.key"),
    ({"window": "10m"}, "digest"),
    ({"key": "a", "window": "1m", "extra": 1}, "digest"),
])
async def test_a_malformed_digest_is_a_400_that_writes_nothing(
        broker: Broker, digest: dict[str, Any], field: str) -> None:
    transport = httpx.ASGITransport(app=create_app(broker, file_templates=TEMPLATES))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        assert (await http.put("/v1/recipients/ann", json={
            "addresses": {"email": "ann@example.com"}})).status_code == 200
        got = await http.post("/v1/recipients/ann/notify", json={
            "category": "comments", "template": "digest", "data": {"text": "x"},
            "digest": digest})
        assert got.status_code == 400, got.text
        error = got.json()["error"]
        assert (error["code"], error["field"]) == ("invalid_digest", field)
        assert error["message"].endswith(".")
        ok = await http.post("/v1/recipients/ann/notify", json={
            "category": "comments", "template": "digest", "data": {"text": "x"},
            "digest": WINDOW})
        assert ok.status_code == 202 and ok.json()["digested"] == 1
    assert (await broker.ledger.counts())["email"]["digested"] == 1
    (only,) = await broker.digests.pending("ann")
    assert only.events == 1


async def test_python_api_checks_the_digest(broker: Broker) -> None:
    await broker.recipients.put("ann", {"addresses": {"email": "ann@example.com"}})
    with pytest.raises(InvalidDigest):
        await notify_recipient(_sender(broker), PersonNotification(
            "ann", COMMENTS, "digest", digest=DigestSpec("activity", 0)))
    assert await broker.ledger.counts() == {}
    assert await broker.digests.pending("ann") == []


@pytest.mark.parametrize("crash_after", ["claim", "enqueue"])
async def test_a_releaser_that_dies_is_taken_over_without_a_second_message(
        broker: Broker, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
        crash_after: str) -> None:
    """A releaser dies right after its claim, or after enqueueing the digest's messages but
    before forgetting the digest: when its lease lapses another releaser takes the digest
    over, and exactly one message goes out (the second release records nothing new and
    its envelope matches the first one's deduplication id). The real-process version is
    tests/recipients/test_digest_kill9.py."""
    await broker.recipients.put("ann", {"addresses": {"email": "ann@example.com"}})
    sender = _sender(broker)
    for n in range(2):
        await notify_recipient(sender, PersonNotification(
            "ann", COMMENTS, "digest", {"text": f"c{n}"}, digest=WINDOW), clock())
    clock.advance(600)
    (claimed,) = await broker.digests.claim(10, lease_seconds=5)
    if crash_after == "enqueue":
        async def die(digest: Any) -> bool:
            raise RuntimeError("killed")
        monkeypatch.setattr(broker.digests, "finish", die)
        with pytest.raises(RuntimeError):
            await release(broker, claimed)
        monkeypatch.undo()
    assert await DigestReleaser(broker, lease_seconds=5).run_once() == 0  # still leased
    clock.advance(5)
    again = DigestReleaser(broker, lease_seconds=5)
    assert await again.run_once() == 1
    assert await broker.digests.pending("ann") == []
    stats = await broker.queue_stats("notify-email")
    assert stats.visible + stats.delayed == 1
    counts = (await broker.ledger.counts("email"))["email"]
    assert (counts["queued"], counts["digested"]) == (1, 2)
    sink = SmtpSink()
    with smtp_server(sink) as port:
        notifier = _email(broker, port)
        await deliver_until(notifier, lambda: len(sink.messages) >= 1)
        await _deliver_for(notifier, 0.5)
    assert _texts(sink) == [("ann@example.com", "2 updates", "2 new: c0 c1")]
