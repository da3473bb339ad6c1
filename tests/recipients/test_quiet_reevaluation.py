"""Quiet-hour re-evaluation: when a recipient's quiet hours or time zone change
(`PUT /v1/recipients/{id}`), the messages held for the old window are released when the
new one allows, with a fixed clock, across Berlin's spring-forward night (both backends,
email into a real SMTP server on loopback)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from conveyor.clock import ManualClock
from conveyor.demo.loopback import SmtpSink
from conveyor.http.app import create_app
from conveyor.notify import Notifier, SmtpChannel
from conveyor.notify.people import PersonNotification, notify_recipient
from conveyor.recipients import Category
from tests.conftest import OpenBroker
from tests.notify.helpers import TEMPLATES, deliver_until, smtp_server


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


async def _deliver_for(notifier: Notifier, seconds: float) -> None:
    deliverer = notifier.deliverer()
    task = asyncio.create_task(deliverer.run())
    await asyncio.sleep(seconds)
    deliverer.stop()
    await task


# Berlin springs forward at 01:00 UTC on 29 March 2026 (02:00 CET -> 03:00 CEST). At 00:30
# CET (23:30 UTC) a message is held by quiet hours 00:00-07:00 until 07:00 CEST (05:00 UTC).
NOW = utc(2026, 3, 28, 23, 30)
OLD_RELEASE = utc(2026, 3, 29, 5, 0)


@pytest.mark.parametrize(("change", "release"), [
    # New quiet hours end at 02:30, a wall time the night skips: released at the jump.
    ({"timezone": "Europe/Berlin", "quiet_hours": {"start": "00:00", "end": "02:30"}},
     utc(2026, 3, 29, 1, 0)),
    # Longer quiet hours: held later, to 09:00 CEST.
    ({"timezone": "Europe/Berlin", "quiet_hours": {"start": "23:00", "end": "09:00"}},
     utc(2026, 3, 29, 7, 0)),
    # Moved to New York, where it is 19:30: outside the same window, released now.
    ({"timezone": "America/New_York", "quiet_hours": {"start": "00:00", "end": "07:00"}},
     NOW),
    # Quiet hours removed: released now.
    ({"timezone": "Europe/Berlin"}, NOW),
])
async def test_held_messages_follow_new_quiet_hours(open_broker: OpenBroker,
                                                    change: dict[str, Any],
                                                    release: int) -> None:
    clock = ManualClock(NOW)
    broker = await open_broker(clock=clock)
    addresses = {"email": "ann@example.com"}
    transport = httpx.ASGITransport(app=create_app(broker))
    sink = SmtpSink()
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        assert (await http.put("/v1/recipients/ann", json={
            "timezone": "Europe/Berlin", "addresses": addresses,
            "quiet_hours": {"start": "00:00", "end": "07:00"}})).status_code == 200
        with smtp_server(sink) as port:
            notifier = Notifier(broker, channels={"email": SmtpChannel("127.0.0.1", port)},
                                templates=TEMPLATES)
            (held,) = await notify_recipient(notifier, PersonNotification(
                "ann", Category("news"), "ping", {"n": 1}), clock())
            assert (held.status, held.release_at) == ("held", OLD_RELEASE)
            clock.advance(60)  # a minute later, the recipient changes their settings
            put = await http.put("/v1/recipients/ann", json={**change,
                                                             "addresses": addresses})
            assert put.status_code == 200, put.text
            due = max(release, clock())
            if due > clock():
                clock.advance((due - clock()) / 1000 - 1)
                await _deliver_for(notifier, 0.4)
                assert sink.messages == [], "released before the new window allows"
                clock.advance(1)
            await deliver_until(notifier, lambda: len(sink.messages) >= 1)
            row = await broker.ledger.get(held.delivery_id)
            assert row is not None and row.status == "sent"


async def test_an_unrelated_change_keeps_the_hold(open_broker: OpenBroker) -> None:
    clock = ManualClock(NOW)
    broker = await open_broker(clock=clock)
    doc = {"timezone": "Europe/Berlin", "addresses": {"email": "ann@example.com"},
           "quiet_hours": {"start": "00:00", "end": "07:00"}}
    await broker.recipients.put("ann", doc)
    sink = SmtpSink()
    with smtp_server(sink) as port:
        notifier = Notifier(broker, channels={"email": SmtpChannel("127.0.0.1", port)},
                            templates=TEMPLATES)
        await notify_recipient(notifier, PersonNotification(
            "ann", Category("news"), "ping", {"n": 1}), clock())
        await broker.recipients.put("ann", {**doc, "locale": "de"})
        clock.advance((OLD_RELEASE - clock()) / 1000 - 1)
        await _deliver_for(notifier, 0.4)
        assert sink.messages == []
        clock.advance(1)
        await deliver_until(notifier, lambda: len(sink.messages) >= 1)
