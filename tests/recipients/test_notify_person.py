"""Notify a person (`conveyor.notify.people`, `POST /v1/recipients/{id}/notify`), on both
backends, delivering email into a real SMTP server on loopback (aiosmtpd): fan-out by
preferences, suppression, critical categories, opt-in categories, a recorded skip when
nothing is left, and quiet hours that hold (not drop) until the window ends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.demo.loopback import SmtpSink
from conveyor.errors import InvalidInput, RecipientNotFound, TemplateNotFound
from conveyor.http.app import create_app
from conveyor.notify import Notifier, SmtpChannel
from conveyor.notify.people import PersonNotification, notify_recipient
from conveyor.recipients import Category, quiet_release_at
from tests.conftest import OpenBroker
from tests.notify.helpers import TEMPLATES, deliver_until, smtp_server

SUB = {"endpoint": "https://push.example/ann", "keys": {"p256dh": "P", "auth": "A"}}
NEWS = Category("news")


def _notifier(broker: Broker, port: int) -> Notifier:
    return Notifier(broker, channels={"email": SmtpChannel("127.0.0.1", port)},
                    templates=TEMPLATES)


async def _deliver_for(notifier: Notifier, seconds: float) -> None:
    """Run a delivery worker for a while (to show that it sends nothing)."""
    deliverer = notifier.deliverer()
    task = asyncio.create_task(deliverer.run())
    await asyncio.sleep(seconds)
    deliverer.stop()
    await task


async def test_fan_out_by_preferences_and_suppression(broker: Broker) -> None:
    await broker.recipients.put("ann", {
        "addresses": {"email": ["a1@example.com", "a2@example.com"], "fcm": ["tok-1"],
                      "push": [SUB]},
        "preferences": {"marketing": {"email": False}, "digest": {"email": True}}})
    await broker.ledger.suppress([("email", "a2@example.com", "hard bounce")])
    sink = SmtpSink()
    with smtp_server(sink) as port:
        notifier = _notifier(broker, port)
        got = await notify_recipient(notifier, PersonNotification(
            "ann", NEWS, "ping", {"n": 1}))
        by = {(p.channel, p.address): (p.status, p.reason) for p in got}
        assert by == {
            ("email", "a1@example.com"): ("queued", None),
            ("email", "a2@example.com"): ("skipped", "suppressed"),
            ("push", SUB["endpoint"]): ("skipped", "this notifier runs no push channel"),
            ("fcm", "tok-1"): ("skipped", "this notifier runs no fcm channel")}
        # Skips are recorded with their reason; the queued one goes out once.
        skip = await broker.ledger.get(got[1].delivery_id)
        assert skip is not None and (skip.status, skip.error) == ("skipped", "suppressed")
        await deliver_until(notifier, lambda: len(sink.messages) >= 1)
        # The same request again sends nothing (same delivery ids).
        again = await notify_recipient(notifier, PersonNotification(
            "ann", NEWS, "ping", {"n": 1}))
        assert [p.delivery_id for p in again] == [p.delivery_id for p in got]
        await _deliver_for(notifier, 0.5)
        assert [m[1] for m in sink.messages] == ["a1@example.com"]

        # Opted out of marketing by email: nothing left, one recorded skip says why.
        out = await notify_recipient(notifier, PersonNotification(
            "ann", Category("marketing"), "ping", {"n": 2}))
        assert ("email", "a1@example.com", "skipped", "opted out of marketing on email") in {
            (p.channel, p.address, p.status, p.reason) for p in out}
        last = out[-1]
        assert (last.channel, last.address, last.status, last.reason) == (
            "none", "ann", "skipped", "no address for any allowed channel")
        row = await broker.ledger.get(last.delivery_id)
        assert row is not None and row.error == "no address for any allowed channel"
        # A critical category ignores the opt-out (a suppressed address stays skipped).
        crit = await notify_recipient(notifier, PersonNotification(
            "ann", Category("marketing", critical=True), "ping", {"n": 3}))
        assert [(p.address, p.status) for p in crit if p.channel == "email"] == [
            ("a1@example.com", "queued"), ("a2@example.com", "skipped")]
        # Opt-in: only channels turned on; "digest" is on for email, "weekly" is not.
        weekly = await notify_recipient(notifier, PersonNotification(
            "ann", Category("weekly", opt_in=True), "ping", {"n": 4}, channels=["email"]))
        assert weekly[0].reason == "not opted in to weekly on email"
        assert weekly[-1].status == "skipped" and weekly[-1].channel == "none"
        digest = await notify_recipient(notifier, PersonNotification(
            "ann", Category("digest", opt_in=True), "ping", {"n": 5}, channels=["email"]))
        assert [p.status for p in digest] == ["queued", "skipped"]
        await deliver_until(notifier, lambda: len(sink.messages) >= 3)
        await _deliver_for(notifier, 0.3)
        assert len(sink.messages) == 3
        counts = (await broker.ledger.counts("email"))["email"]
        # skipped: a2 (news), a1+a2 (marketing), a2 (critical), a1+a2 (weekly), a2 (digest)
        assert (counts["sent"], counts["skipped"], counts["queued"]) == (3, 7, 0)


async def test_bad_requests_write_nothing(broker: Broker) -> None:
    await broker.recipients.put("ann", {"addresses": {"email": "a@example.com"}})
    notifier = _notifier(broker, 9)  # never connects: nothing gets that far
    for n, error in [
            (PersonNotification("bob", NEWS, "ping"), RecipientNotFound),
            (PersonNotification("ann", NEWS, "no-such-template"), TemplateNotFound),
            (PersonNotification("ann", Category(""), "ping"), InvalidInput),
            (PersonNotification("ann", NEWS, "ping", channels=["sms"]), InvalidInput),
            (PersonNotification("ann", NEWS, "ping", {"x": "y" * 70_000}), InvalidInput)]:
        with pytest.raises(error):
            await notify_recipient(notifier, n)
    assert await broker.ledger.counts() == {}


def _window_around(clock: ManualClock, zone: str) -> dict[str, str]:
    """Quiet hours from an hour before to an hour after the clock's wall time in `zone`."""
    from zoneinfo import ZoneInfo

    wall = datetime.fromtimestamp(clock() / 1000, UTC).astimezone(ZoneInfo(zone))
    return {"start": (wall - timedelta(hours=1)).strftime("%H:%M"),
            "end": (wall + timedelta(hours=1)).strftime("%H:%M")}


async def test_quiet_hours_hold_then_release(broker: Broker, clock: ManualClock) -> None:
    quiet = _window_around(clock, "America/New_York")
    ann = await broker.recipients.put("ann", {
        "timezone": "America/New_York", "addresses": {"email": "ann@example.com"},
        "quiet_hours": quiet})
    assert ann.quiet_hours is not None
    release = quiet_release_at(ann.quiet_hours, ann.zone, clock())
    assert release is not None and release > clock()
    sink = SmtpSink()
    with smtp_server(sink) as port:
        notifier = _notifier(broker, port)
        (held,) = await notify_recipient(notifier, PersonNotification(
            "ann", NEWS, "ping", {"n": 1}), clock())
        assert (held.status, held.release_at) == ("held", release)
        assert (await broker.ledger.counts("email"))["email"]["held"] == 1
        row = await broker.ledger.get(held.delivery_id)
        assert row is not None and row.status == "held"
        # A critical one goes now, inside the window.
        (now,) = await notify_recipient(notifier, PersonNotification(
            "ann", Category("security", critical=True), "ping", {"n": 2}), clock())
        assert now.status == "queued"
        await deliver_until(notifier, lambda: len(sink.messages) >= 1)
        await _deliver_for(notifier, 0.5)
        assert len(sink.messages) == 1  # the held one is still held, not dropped
        counts = (await broker.ledger.counts("email"))["email"]
        assert (counts["held"], counts["sent"]) == (1, 1)
        # A second before the end: still held. Just after (the delay is whole seconds,
        # rounded up): released and sent.
        clock.advance((release - clock()) / 1000 - 1)
        await _deliver_for(notifier, 0.3)
        assert len(sink.messages) == 1
        clock.advance(2)
        await deliver_until(notifier, lambda: len(sink.messages) >= 2)
        counts = (await broker.ledger.counts("email"))["email"]
        assert (counts["held"], counts["sent"]) == (0, 2)
        listed = await broker.recipients.notifications("ann")
        assert [d.status for d in listed] == ["sent", "sent"]


async def test_http_notify(broker: Broker, clock: ManualClock) -> None:
    # The delivery workers' file templates (`serve --templates`): names to accept.
    transport = httpx.ASGITransport(app=create_app(broker, file_templates=TEMPLATES))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        assert (await http.put("/v1/recipients/ann", json={
            "timezone": "Europe/Berlin", "addresses": {"email": ["ann@example.com"],
                                                       "apns": ["0a" * 32]},
            "preferences": {"news": {"apns": False}},
            "quiet_hours": _window_around(clock, "Europe/Berlin")})).status_code == 200
        got = await http.post("/v1/recipients/ann/notify", json={
            "category": "news", "template": "ping", "data": {"n": 1}})
        assert got.status_code == 202, got.text
        body = got.json()
        assert (body["queued"], body["held"], body["skipped"]) == (0, 1, 1)
        assert [(d["channel"], d["status"], d["reason"]) for d in body["deliveries"]] == [
            ("email", "held", None), ("apns", "skipped", "opted out of news on apns")]
        crit = (await http.post("/v1/recipients/ann/notify", json={
            "category": "news", "template": "ping", "critical": True})).json()
        assert (crit["queued"], crit["held"], crit["skipped"]) == (2, 0, 0)
        counts = (await http.get("/v1/notifications/counts")).json()["counts"]
        assert counts["email"]["held"] == 1 and counts["email"]["queued"] == 1
        assert counts["apns"]["queued"] == 1 and counts["apns"]["skipped"] == 1
        missing = await http.post("/v1/recipients/bob/notify", json={
            "category": "news", "template": "ping"})
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "recipient_not_found"
        bad = await http.post("/v1/recipients/ann/notify", json={
            "category": "", "template": "ping"})
        assert bad.status_code == 422
        assert (await http.put("/v1/recipients/nobody", json={})).status_code == 200
        empty = (await http.post("/v1/recipients/nobody/notify", json={
            "category": "news", "template": "ping"})).json()
        assert [(d["channel"], d["status"], d["reason"]) for d in empty["deliveries"]] == [
            ("none", "skipped", "no address on any channel")]
        listed = await http.get("/v1/notifications", params={"recipient": "ann"})
        assert listed.status_code == 200, listed.text
        states = [(n["channel"], n["status"]) for n in listed.json()["notifications"]]
        assert sorted(states) == [("apns", "queued"), ("apns", "skipped"),
                                  ("email", "held"), ("email", "queued")]
        assert (await http.get("/v1/notifications", params={
            "recipient": "ann", "limit": 0})).status_code == 422
        assert (await http.get("/v1/notifications")).status_code == 422
        after = (await http.get("/v1/notifications/counts")).json()["counts"]
        assert after["none"]["skipped"] == 1
        assert after["email"] == counts["email"]  # the bad requests wrote nothing



async def test_a_suppressed_only_address_is_one_skip(broker: Broker) -> None:
    """The address's own skip and the `none` row saying nothing is left were counted as
    two skips (an outside probe); the row is still listed, and counts alone."""
    transport = httpx.ASGITransport(app=create_app(broker, file_templates=TEMPLATES))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        for rid, addresses in (("ann", {"email": ["ann@example.com"]}),
                               ("bob", {"email": ["bob@example.com"], "fcm": ["tok-1"]}),
                               ("nobody", {})):
            assert (await http.put(f"/v1/recipients/{rid}", json={
                "addresses": addresses})).status_code == 200
        for address in ("ann@example.com", "bob@example.com"):
            assert (await http.post("/v1/suppressions", json={
                "channel": "email", "address": address})).status_code == 204
        await broker.ledger.suppress([("fcm", "tok-1", "gone")])
        for rid, skips, rows in (("ann", 1, 2), ("bob", 2, 3), ("nobody", 1, 1)):
            got = await http.post(f"/v1/recipients/{rid}/notify", json={
                "category": "news", "template": "ping"})
            body = got.json()
            assert (body["queued"], body["held"], body["skipped"]) == (0, 0, skips), body
            assert len(body["deliveries"]) == rows
            assert body["deliveries"][-1]["channel"] == "none"


async def test_the_same_notification_again_is_said_to_be_a_duplicate(
        broker: Broker) -> None:
    """Without an idempotency key the id comes from the content, so the same notification
    again sends nothing: the answer says `duplicate`, not `queued`."""
    transport = httpx.ASGITransport(app=create_app(broker, file_templates=TEMPLATES))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        assert (await http.put("/v1/recipients/ann", json={
            "addresses": {"email": ["ann@example.com"]}})).status_code == 200
        for body in ({"category": "news", "template": "ping", "data": {"n": 1}},
                     {"category": "news", "template": "ping", "idempotency_key": "k-1"}):
            first = (await http.post("/v1/recipients/ann/notify", json=body)).json()
            again = (await http.post("/v1/recipients/ann/notify", json=body)).json()
            assert (first["queued"], first["duplicate"]) == (1, 0)
            assert (again["queued"], again["duplicate"]) == (0, 1)
            [was], [now] = first["deliveries"], again["deliveries"]
            assert (now["delivery_id"], now["status"]) == (was["delivery_id"], "duplicate")
            assert "made before" in now["reason"]
        counts = (await http.get("/v1/notifications/counts")).json()["counts"]["email"]
        assert counts["queued"] == 2


async def test_a_critical_copy_of_a_held_one_goes_now(broker: Broker,
                                                     clock: ManualClock) -> None:
    """Without an idempotency key the id comes from the content: the same critical
    notification as one held for quiet hours is another one (it went nowhere before)."""
    transport = httpx.ASGITransport(app=create_app(broker, file_templates=TEMPLATES))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        assert (await http.put("/v1/recipients/ann", json={
            "timezone": "Europe/Berlin", "addresses": {"email": ["ann@example.com"]},
            "quiet_hours": _window_around(clock, "Europe/Berlin")})).status_code == 200
        same = {"category": "news", "template": "ping", "data": {"n": 1}}
        held = (await http.post("/v1/recipients/ann/notify", json=same)).json()
        crit = (await http.post("/v1/recipients/ann/notify",
                                json={**same, "critical": True})).json()
        assert (held["held"], crit["queued"]) == (1, 1)
        assert held["deliveries"][0]["delivery_id"] != crit["deliveries"][0]["delivery_id"]
        counts = (await http.get("/v1/notifications/counts")).json()["counts"]["email"]
        assert (counts["held"], counts["queued"]) == (1, 1)


@pytest.mark.parametrize(("now", "release"), [
    # Berlin springs forward at 01:00 UTC on 29 March 2026 (02:00 CET -> 03:00 CEST): from
    # 00:30 CET, quiet hours ending 02:30 end at the jump, 90 minutes later.
    (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
    # Berlin falls back at 01:00 UTC on 25 October 2026 (03:00 CEST -> 02:00 CET): from
    # 01:30 CEST they end at the first 02:30 (CEST), an hour later.
    (datetime(2026, 10, 24, 23, 30, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
])
async def test_quiet_hours_across_a_dst_change(open_broker: OpenBroker, now: datetime,
                                               release: datetime) -> None:
    """Held through a clock change with a fixed clock, then sent when the wall clock in
    Berlin reads 02:30 (the broker runs on that clock too: the hold is a delayed message)."""
    clock = ManualClock(int(now.timestamp() * 1000))
    broker = await open_broker(clock=clock)
    await broker.recipients.put("ann", {
        "timezone": "Europe/Berlin", "addresses": {"email": "ann@example.com"},
        "quiet_hours": {"start": "00:00", "end": "02:30"}})
    sink = SmtpSink()
    with smtp_server(sink) as port:
        notifier = _notifier(broker, port)
        (held,) = await notify_recipient(notifier, PersonNotification(
            "ann", NEWS, "ping", {"n": 1}), clock())
        expected = int(release.timestamp() * 1000)
        assert (held.status, held.release_at) == ("held", expected)
        clock.advance((expected - clock()) / 1000 - 1)
        await _deliver_for(notifier, 0.3)
        assert sink.messages == []
        clock.advance(2)
        await deliver_until(notifier, lambda: len(sink.messages) >= 1)


async def test_fan_out_to_phones(broker: Broker, tmp_path: Path) -> None:
    """A person's FCM and APNs tokens, delivered through the mobile channels to local FCM
    and APNs peers over HTTP/2 (TLS on loopback); a suppressed token is skipped."""
    from conveyor.demo.mobile_peers import apns_token, fcm_token
    from tests.support.mobile import mobile_peers

    android, iphone, tablet = fcm_token(1), apns_token(1), apns_token(2)
    await broker.recipients.put("ann", {
        "addresses": {"fcm": [android], "apns": [iphone, tablet]}})
    async with mobile_peers(tmp_path) as peers:
        notifier = Notifier(broker, channels={"fcm": peers.fcm_channel(),
                                              "apns": peers.apns_channel()},
                            templates=TEMPLATES)
        await broker.ledger.suppress([("apns", tablet, "BadDeviceToken earlier")])
        got = await notify_recipient(notifier, PersonNotification(
            "ann", NEWS, "welcome", {"name": "Ann", "code": 7}))
        assert [(p.channel, p.status) for p in got] == [
            ("fcm", "queued"), ("apns", "queued"), ("apns", "skipped")]
        await deliver_until(notifier, lambda: bool(peers.fcm.received and
                                                   peers.apns.received))
        assert peers.fcm.received == {android: 1}
        assert peers.apns.received == {iphone: 1}
        assert peers.fcm.messages[android]["notification"]["title"] == "Welcome, Ann"
    states = {(d.channel, d.status) for d in await broker.recipients.notifications("ann")}
    assert states == {("fcm", "sent"), ("apns", "sent"), ("apns", "skipped")}
