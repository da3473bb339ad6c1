"""`conveyor.broker.channels`: which channels exist, and which addresses a channel takes;
the ledger's filters and `add_suppression` refuse the rest and write nothing."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from conveyor.broker.broker import Broker
from conveyor.broker.channels import (
    BUILTIN_CHANNELS,
    QUEUE_PREFIX,
    check_address,
    check_channel,
    known_channels,
)
from conveyor.errors import InvalidInput, InvalidQueueName
from conveyor.models import QueueAttributes, dumps_json
from conveyor.notify import models
from conveyor.notify.delivery import dlq_name, queue_name
from conveyor.storage.params import QueueRow


def test_the_builtin_channels_are_the_notification_types_defaults() -> None:
    kinds = typing.get_args(models.Notification)
    defaults = {next(f.default for f in dataclasses.fields(k) if f.name == "channel")
                for k in kinds}
    assert set(BUILTIN_CHANNELS) == defaults
    assert queue_name("sms") == QUEUE_PREFIX + "sms" and dlq_name("sms").endswith("-dlq")


@pytest.mark.parametrize(("channel", "address"), [
    ("email", "ann@example.com"), ("push", "https://fcm.googleapis.com/wp/abc"),
    ("fcm", "token-1"), ("apns", "0" * 64), ("webhook", "https://hook.example"),
    ("sms", "+4930123"), ("push", "https://127.0.0.1:8443/sub/1"),
    ("fcm", "dev00000001:APA91b" + "x" * 24), ("fcm", "a.b_c-d"), ("apns", "AbCdEf" * 6),
    ("webhook", "http://127.0.0.1:8080/hook"), ("webhook", "HTTPS://hook.example:443/in?a=1"),
])
def test_addresses_a_channel_takes(channel: str, address: str) -> None:
    assert check_address(channel, address) == address


@pytest.mark.parametrize(("channel", "address"), [
    ("email", "ann"), ("email", "ann@example"), ("email", "a b@example.com"),
    ("push", "http://push.example/1"), ("push", "push.example/1"),
    ("fcm", " token"), ("apns", "tok\nen"), ("sms", ""), ("sms", "x" * 2049),
    ("webhook", "https://hook.example/\u0085"), ("email", 5),
    # The shapes (an outside probe's): a URL without a host, a token with a space, an
    # APNs token that is no hex or an odd or implausible length, a file:// webhook.
    ("push", "https://"), ("push", "https:///sub/1"), ("push", "https://host:port/x"),
    ("push", "https://host/a b"), ("fcm", "tok en"), ("fcm", "tok/en"), ("fcm", "tök"),
    ("apns", "zz" * 32), ("apns", "0" * 63), ("apns", "0" * 30), ("apns", "0" * 202),
    ("webhook", "file:///etc/passwd"), ("webhook", "ftp://hook.example/x"),
    ("webhook", "https://"), ("webhook", "hook.example/in"), ("email", "ann @example.com"),
])
def test_addresses_a_channel_refuses(channel: str, address: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_address(channel, address)
    assert caught.value.field == "address"


async def test_the_ledger_refuses_unknown_channels_and_writes_nothing(
        broker: Broker) -> None:
    ledger = broker.ledger
    for call in (lambda: ledger.counts("fax"), lambda: ledger.resent("fax"),
                 lambda: ledger.suppressions("fax"),
                 lambda: broker.deliveries.series(60, 60, "fax"),
                 lambda: ledger.add_suppression("fax", "x")):
        with pytest.raises(InvalidInput) as caught:
            await call()
        assert caught.value.field == "channel"
        assert "No channel 'fax'; the channels are apns, apprise, email" in \
            caught.value.message
    with pytest.raises(InvalidInput) as caught:
        await ledger.add_suppression("email", "nobody")
    assert caught.value.field == "address"
    assert await ledger.suppressions() == []
    await broker.create_queue("notify-sms")
    assert await ledger.counts("sms") == {}
    await ledger.add_suppression("sms", "+4930123", "asked by phone")
    [kept] = await ledger.suppressions("sms")
    assert (kept.address, kept.reason) == ("+4930123", "asked by phone")


async def test_what_workers_report_is_kept_as_it_comes(broker: Broker) -> None:
    """`suppress` (a provider's bounce, a gone token) is not held to the API's checks: a
    provider's address need not be one conveyor would accept from a person."""
    await broker.ledger.suppress([("email", "ops@localhost", "hard bounce")])
    assert [s.address for s in await broker.ledger.suppressions("email")] == \
        ["ops@localhost"]


async def test_an_empty_channel_is_never_known(broker: Broker) -> None:
    """A queue `notify-` cannot be made (it would be the queue of a channel with no
    name), and one made before that rule names no channel: an empty name was accepted
    as a filter and a suppression's channel, and listed among the channels."""
    with pytest.raises(InvalidQueueName) as refused:
        await broker.create_queue(QUEUE_PREFIX)
    assert refused.value.field == "name" and "channel name" in refused.value.message
    assert await broker.list_queues() == []
    # As a database from before the rule may hold it (storage takes any name).
    await broker.storage.queue_create(
        QueueRow(broker.region, QUEUE_PREFIX, dumps_json(QueueAttributes().to_json()),
                 False), broker.now())
    assert [q.name for q in await broker.list_queues()] == [QUEUE_PREFIX]
    assert "" not in await known_channels(broker)
    for call in (lambda: check_channel(broker, ""),
                 lambda: broker.ledger.add_suppression("", "x"),
                 lambda: broker.ledger.suppressions("")):
        with pytest.raises(InvalidInput) as caught:
            await call()
        assert caught.value.field == "channel"
    assert await broker.ledger.suppressions() == []
    await broker.create_queue("notify-x")  # a name after the prefix is a channel
    assert "x" in await known_channels(broker)


async def test_removing_a_suppression_on_an_unknown_channel_is_invalid(
        broker: Broker) -> None:
    """As adding and listing are (it answered "not listed", a 404 on the wire)."""
    with pytest.raises(InvalidInput) as caught:
        await broker.ledger.unsuppress("fax", "x")
    assert caught.value.field == "channel" and "the channels are" in caught.value.message
