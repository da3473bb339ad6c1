"""The delivery view through the real delivery path: email into an aiosmtpd server on
loopback that answers 451/452 then 250, or 550 5.1.1; each notification's timeline holds
its attempts and the server's replies, and the counts over time add up (both backends)."""

from __future__ import annotations

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.demo.loopback import SmtpSink
from conveyor.errors import InvalidInput
from conveyor.notify import Email
from conveyor.notify.outcomes import BODY_EXCERPT, http_result
from tests.notify.helpers import deliver_until, smtp_server
from tests.notify.test_smtp import notifier_for


async def test_timelines_and_counts_from_a_real_smtp_server(broker: Broker,
                                                            clock: ManualClock) -> None:
    sink = SmtpSink(faults={
        "slow@example.com": ["451 4.3.0 try again later", "452 4.2.2 mailbox full"],
        "gone@example.com": ["550 5.1.1 no such user"]})
    with smtp_server(sink) as port:
        notifier = notifier_for(broker, port)
        slow, gone, fine = await notifier.asend_many([
            Email(to=f"{who}@example.com", template="ping", data={"n": i})
            for i, who in enumerate(("slow", "gone", "fine"))])
        await deliver_until(notifier, lambda: sink.received["slow@example.com"] >= 1,
                            clock_step=lambda: clock.advance(2.0))
        # the bounced address is suppressed now: the next one to it is never sent
        again = await notifier.asend(Email(to="gone@example.com", template="ping",
                                           data={"n": 9}))
        messages = await broker.receive("notify-email", 10, 30, 0)
        await notifier.deliverer().process("email", notifier.channels["email"], messages)

    _, slow_line = await broker.deliveries.timeline(slow)  # type: ignore[misc]
    assert [(e.state, e.attempt) for e in slow_line] == [
        ("queued", 0), ("sending", 1), ("retrying", 1), ("sending", 2), ("retrying", 2),
        ("sending", 3), ("sent", 3)]
    assert slow_line[2].detail == "451 4.3.0 try again later"
    assert slow_line[4].detail == "452 4.2.2 mailbox full"
    assert slow_line[-1].provider_id  # the queue id from "250 2.0.0 Ok: queued as ..."
    assert [e.at for e in slow_line] == sorted(e.at for e in slow_line)

    _, gone_line = await broker.deliveries.timeline(gone)  # type: ignore[misc]
    assert [e.state for e in gone_line] == ["queued", "sending", "failed"]
    assert gone_line[-1].detail == "550 5.1.1 no such user"
    _, again_line = await broker.deliveries.timeline(again)  # type: ignore[misc]
    assert [e.state for e in again_line][-1] == "suppressed"
    _, fine_line = await broker.deliveries.timeline(fine)  # type: ignore[misc]
    assert [e.state for e in fine_line] == ["queued", "sending", "sent"]
    assert await broker.deliveries.timeline("unknown-id") is None

    series = await broker.deliveries.series(10, 60)
    totals = series.totals["email"]
    assert totals["queued"] == 4 and totals["sent"] == 2
    assert totals["failed"] == 2  # the bounce and the suppressed one
    # every failed attempt counts under retrying, the last of a bounce too (recorded so
    # until its dead letter is written)
    assert totals["retrying"] == 3
    assert sum(series.counts["email"]["sent"]) == 2 and len(series.at) == 360


async def test_series_refuses_bad_windows(broker: Broker) -> None:
    for args, field in (((15, 60), "bucket"), ((0, 60), "bucket"), ((10, 0), "minutes"),
                        ((10, 1440), "bucket"), ((60, 60, ""), "channel")):
        with pytest.raises(InvalidInput) as caught:
            await broker.deliveries.series(*args)  # type: ignore[arg-type]
        assert caught.value.field == field


def test_http_answers_keep_an_excerpt_of_the_body() -> None:
    gone = http_result(410, "Gone", body=b'{"error": "push subscription\n has expired"}',
                       gone_statuses=frozenset({410}))
    assert gone.detail == 'HTTP 410 Gone: {"error": "push subscription has expired"}'
    assert gone.gone and gone.outcome == "permanent"
    long = http_result(503, "Service Unavailable", "7", body="x" * 5000)
    assert long.detail == "HTTP 503 Service Unavailable: " + "x" * BODY_EXCERPT
    assert long.retry_after == 7.0
    assert http_result(400, "Bad Request", body="  ").detail == "HTTP 400 Bad Request"
    assert http_result(201, "Created", body=b"ignored", provider_id="m-1").provider_id == "m-1"
