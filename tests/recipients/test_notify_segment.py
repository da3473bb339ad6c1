"""Notify many people in one call (`conveyor.notify.segment`), on both backends, into a
real SMTP server on loopback: a CI-sized recipient million (10% opted out of the
category on email, 20% inside their quiet hours, a suppressed address, a person with no
address), each group counted, the held ones released when their window ends on a test
clock, every other one delivered exactly once, and the same call again sends nothing."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.demo.loopback import SmtpSink
from conveyor.errors import InvalidInput
from conveyor.notify import Notifier, SmtpChannel
from conveyor.notify.people import PersonNotification
from conveyor.notify.segment import notify_people, notify_segment
from conveyor.recipients import Category, quiet_release_at
from tests.notify.helpers import TEMPLATES, deliver_until, smtp_server

NEWS = Category("news")
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC")
PEOPLE = 200


def _window_around(now_ms: int, zone: str, minutes: int) -> dict[str, str]:
    """Quiet hours from an hour before the wall time in `zone` to `minutes` after."""
    wall = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(ZoneInfo(zone))
    return {"start": (wall - timedelta(hours=1)).strftime("%H:%M"),
            "end": (wall + timedelta(minutes=minutes)).strftime("%H:%M")}


async def _people(broker: Broker, now_ms: int) -> None:
    """PEOPLE recipients: i % 10 == 0 opted out of news by email, i % 10 in (1, 2) inside
    quiet hours ending 10 to 40 minutes from now (in four time zones)."""
    lines = []
    for i in range(PEOPLE):
        zone = ZONES[i % len(ZONES)]
        doc: dict[str, object] = {"id": f"p{i:04d}", "timezone": zone,
                                  "addresses": {"email": [f"p{i}@example.com"]}}
        if i % 10 == 0:
            doc["preferences"] = {"news": {"email": False}}
        if i % 10 in (1, 2):
            doc["quiet_hours"] = _window_around(now_ms, zone, 10 + i % 4 * 10)
        lines.append(doc)
    lines.append({"id": "zz-nobody"})  # no address at all
    import orjson

    assert await broker.recipients.import_lines(
        [orjson.dumps(d).decode() for d in lines]) == PEOPLE + 1


async def test_a_segment_in_bulk(broker: Broker, clock: ManualClock) -> None:
    await _people(broker, clock())
    await broker.ledger.suppress([("email", "p5@example.com", "hard bounce")])
    sink = SmtpSink()
    with smtp_server(sink) as port:
        notifier = Notifier(broker, channels={"email": SmtpChannel("127.0.0.1", port)},
                            templates=TEMPLATES)
        counts = await notify_segment(notifier, NEWS, "ping", {"n": 1}, page=37,
                                      now_ms=clock())
        held, opted = PEOPLE // 10 * 2, PEOPLE // 10
        assert counts.people == PEOPLE + 1
        assert (counts.queued, counts.held) == (PEOPLE - held - opted - 1, held)
        # The opted-out, the suppressed one and the person with no address are left
        # with none: one `none` row each says so.
        assert counts.skipped == {"preference": opted, "suppressed": 1,
                                  "no address": opted + 2}
        assert set(counts.cpu) == {"fan_out", "suppression", "decide", "links", "enqueue",
                                   "skips"}
        ledger = (await broker.ledger.counts())
        assert ledger["email"]["queued"] == counts.queued
        assert ledger["email"]["held"] == held
        assert ledger["email"]["skipped"] == opted + 1
        assert ledger["none"]["skipped"] == opted + 2
        await deliver_until(notifier, lambda: len(sink.messages) >= counts.queued)
        assert (await broker.ledger.counts("email"))["email"]["held"] == held

        # The same call again (a retried request) records and sends nothing new.
        again = await notify_segment(notifier, NEWS, "ping", {"n": 1}, now_ms=clock())
        assert (again.queued, again.held) == (counts.queued, counts.held)
        assert await broker.ledger.counts() == {
            **ledger, "email": {**ledger["email"], "queued": 0, "sent": counts.queued}}

        # Each held one is released when its own window ends: the earliest first.
        first = min(quiet_release_at(r.quiet_hours, r.zone, clock())
                    for r in await broker.recipients.page(None, 1000)
                    if r.quiet_hours is not None)
        assert first is not None
        clock.advance((first - clock()) / 1000 + 1)
        await deliver_until(notifier, lambda: len(sink.messages) >= counts.queued + 10,
                            timeout=30)
        assert (await broker.ledger.counts("email"))["email"]["held"] == held - 10
        clock.advance(3600)
        await deliver_until(notifier,
                            lambda: len(sink.messages) >= counts.queued + held, timeout=30)
    got = Counter(m[1] for m in sink.messages)
    assert max(got.values()) == 1
    expected = {f"p{i}@example.com" for i in range(PEOPLE) if i % 10 != 0 and i != 5}
    assert set(got) == expected
    final = (await broker.ledger.counts("email"))["email"]
    assert (final["sent"], final["held"], final["queued"]) == (len(expected), 0, 0)
    listed = await broker.recipients.notifications("p0011")
    assert [d.status for d in listed] == ["sent"]


async def test_bad_requests_write_nothing(broker: Broker, clock: ManualClock) -> None:
    ann = await broker.recipients.put("ann", {"addresses": {"email": "ann@example.com"}})
    notifier = Notifier(broker, channels={"email": SmtpChannel("127.0.0.1", 9)},
                        templates=TEMPLATES)
    ok = PersonNotification("ann", NEWS, "ping")
    for people in ([(ann, ok), (ann, PersonNotification("bob", NEWS, "ping"))],
                   [(ann, ok), (ann, PersonNotification("ann", NEWS, "no-such"))],
                   [(ann, PersonNotification("ann", Category(""), "ping"))]):
        with pytest.raises(InvalidInput):
            await notify_people(notifier, people, clock())
    assert await broker.ledger.counts() == {}
    assert await broker.recipients.notifications("ann") == []
    with pytest.raises(InvalidInput):
        await broker.recipients.page(None, 0)
