"""Notification channels as the broker knows them: which names a filter or a suppression
may use, and whether an address is one a channel sends to.

A channel is known when it is one of the kinds conveyor ships (the default `channel` of
each notification type in `conveyor.notify.models`) or when its queue `notify-<name>`
exists: a notifier makes it the first time it sends on a channel it named itself, so an
application's own channels (`Notifier(channels={"sms": ...})`) count once they were used.
The names are written out here because the broker sits below `conveyor.notify` (the
rooms' layers in `pyproject.toml`); `tests/broker/test_channels.py` keeps them equal.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from conveyor.errors import InvalidInput, QueueNotFound
from conveyor.recipients import ADDRESS_SHAPES, address_shaped

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["BUILTIN_CHANNELS", "CASELESS_CHANNELS", "MAX_ADDRESS", "QUEUE_PREFIX",
           "check_address", "check_channel", "check_line", "known_channels",
           "suppression_key"]

BUILTIN_CHANNELS = ("apns", "apprise", "email", "fcm", "push", "webhook")
"""The default channel of each notification type (`Email`, `WebPush`, `Fcm`, ...)."""
QUEUE_PREFIX = "notify-"
"""A channel's queue is `notify-<channel>` (`conveyor.notify.delivery.queue_name`)."""
MAX_ADDRESS = 2048
"""The longest address the ledger and a recipient keep."""
CASELESS_CHANNELS = frozenset({"email"})
"""Channels whose addresses the suppression list compares regardless of letter case
(`suppression_key`)."""
_DLQ_SUFFIX = "-dlq"  # `notify-<channel>-dlq` is a channel's dead letters, not a channel
_SHOWN = 20  # channels named in an error; an app with hundreds gets the first ones
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


async def known_channels(broker: Broker) -> list[str]:
    """The built-in channels and those a notifier made a queue for, sorted."""
    names = set(BUILTIN_CHANNELS)
    names.update(q.name[len(QUEUE_PREFIX):] for q in await broker.all_queues(QUEUE_PREFIX)
                 if _from_queue(q.name[len(QUEUE_PREFIX):]))
    return sorted(names)


def _from_queue(channel: str) -> bool:
    """Whether `notify-<channel>` names a channel: not a dead-letter queue, and not the
    empty name (a queue `notify-` made before creating it was refused)."""
    return bool(channel) and not channel.endswith(_DLQ_SUFFIX)


async def check_channel(broker: Broker, channel: Any) -> str:
    """Return `channel` if it is known, else raise `InvalidInput` (field `channel`) naming
    the known ones: a filter on a channel that cannot exist is a mistake, not an empty
    list."""
    if isinstance(channel, str) and (channel in BUILTIN_CHANNELS or (
            _from_queue(channel) and await _has_queue(broker, QUEUE_PREFIX + channel))):
        return channel
    known = await known_channels(broker)
    shown = ", ".join(known[:_SHOWN]) + (", ..." if len(known) > _SHOWN else "")
    raise InvalidInput(f"No channel {channel!r:.60}; the channels are {shown}.",
                       field="channel")


async def _has_queue(broker: Broker, name: str) -> bool:
    try:
        await broker.queue(name)  # a name no queue can have is QueueNotFound too
    except QueueNotFound:
        return False
    return True


def check_line(field: str, value: Any, most: int) -> str:
    """Return `value` if it is one line of 1 to `most` characters with no control
    characters and no white space at either end, else raise `InvalidInput` naming
    `field`."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field} must be a string of 1 to {most} characters, not "
                           f"{value!r:.60}.", field=field)
    if len(value) > most:
        raise InvalidInput(f"{field} must be at most {most:,} characters, not "
                           f"{len(value):,}.", field=field)
    if _CONTROL.search(value) or value.strip() != value:
        raise InvalidInput(f"{field} must not hold control characters or start or end "
                           f"with white space, as {value!r:.60} does.", field=field)
    return value


def check_address(channel: str, address: Any) -> str:
    """Return `address` if `channel` could send to it, else raise `InvalidInput` (field
    `address`): one line of text for every channel, and for email, push, fcm, apns and
    webhook the shape a recipient's address there has too (`recipients.address_shaped`,
    the one rule; a push subscription is known here by its endpoint)."""
    text = check_line("address", address, MAX_ADDRESS)
    if not address_shaped(channel, text):
        raise InvalidInput(f"On channel {channel}, address must be "
                           f"{ADDRESS_SHAPES[channel]}, not {text!r:.60}.", field="address")
    return text


def suppression_key(channel: str, address: str) -> str:
    """The address as the suppression list keeps and compares it: the one rule, used by
    `broker.ledger` when an address is added (by hand or from provider feedback), removed
    and looked up before a send. An email address is lower-cased, nothing else changed
    (`Dave@Example.COM` and `dave@example.com` are one person who unsubscribed once);
    every other channel's address (push endpoints, device tokens, URLs) is kept as given,
    letter case included.

    Rows written before this rule with upper case in an email address are not migrated;
    the ledger also looks them up and removes them by the spelling given, so such a row
    still stops (and is taken off by) the address as it was stored."""
    return address.lower() if channel in CASELESS_CHANNELS else address
