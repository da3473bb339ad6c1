"""The suppression list compares email addresses regardless of letter case, on both
backends (`conveyor.broker.channels.suppression_key`): an address suppressed as
`dave@EXAMPLE.com` is skipped when a notification goes to `dave@example.com`, and taken off
the list in any case. It was compared as stored, domain included, so an unsubscribe was
missed for a letter's case. Other channels' addresses (push endpoints, tokens) keep their
case."""

from __future__ import annotations

from conveyor.broker.broker import Broker
from conveyor.notify import Notifier, SmtpChannel
from conveyor.notify.people import PersonNotification, notify_recipient
from conveyor.recipients import Category
from tests.notify.helpers import TEMPLATES


async def test_an_email_suppressed_in_one_case_is_found_in_another(broker: Broker) -> None:
    await broker.ledger.add_suppression("email", "Dave@EXAMPLE.com")
    assert await broker.ledger.suppressed(
        "email", ["dave@example.com", "DAVE@example.COM", "eve@example.com"]) == {
            "dave@example.com", "DAVE@example.COM"}  # spelled as asked
    listed = await broker.ledger.suppressions("email")
    assert [(s.channel, s.address) for s in listed] == [("email", "dave@example.com")]


async def test_spellings_of_one_email_are_one_row_keeping_the_first_reason(
        broker: Broker) -> None:
    await broker.ledger.suppress([("email", "a@example.com", "hard bounce"),
                                  ("email", "A@Example.COM", "complaint")])
    await broker.ledger.add_suppression("email", "a@EXAMPLE.com", "unsubscribed")
    listed = await broker.ledger.suppressions("email")
    assert [(s.address, s.reason) for s in listed] == [("a@example.com", "hard bounce")]


async def test_an_email_is_taken_off_the_list_in_any_case(broker: Broker) -> None:
    await broker.ledger.suppress([("email", "a@example.com", "hard bounce")])
    assert await broker.ledger.unsuppress("email", "A@Example.COM") is True
    assert await broker.ledger.suppressed("email", ["a@example.com"]) == set()
    assert await broker.ledger.unsuppress("email", "a@example.com") is False


async def test_other_channels_keep_letter_case(broker: Broker) -> None:
    endpoint = "https://push.example/sub/AbC"
    await broker.ledger.add_suppression("push", endpoint)
    await broker.ledger.suppress([("fcm", "Tok-1", "gone")])
    assert await broker.ledger.suppressed(
        "push", [endpoint, endpoint.lower(), "https://PUSH.example/sub/AbC"]) == {endpoint}
    assert await broker.ledger.suppressed("fcm", ["tok-1", "TOK-1", "Tok-1"]) == {"Tok-1"}
    assert await broker.ledger.unsuppress("push", endpoint.lower()) is False
    assert await broker.ledger.unsuppress("fcm", "tok-1") is False
    listed = await broker.ledger.suppressions()
    assert sorted((s.channel, s.address) for s in listed) == [
        ("fcm", "Tok-1"), ("push", endpoint)]


async def test_notifying_a_person_skips_an_email_suppressed_in_another_case(
        broker: Broker) -> None:
    await broker.recipients.put("dave", {"addresses": {"email": ["dave@example.com",
                                                                 "Dave@Work.example"]}})
    await broker.ledger.add_suppression("email", "dave@EXAMPLE.com")
    await broker.ledger.suppress([("email", "dave@work.EXAMPLE", "hard bounce")])
    # Nothing is delivered here: the SMTP channel's port is never dialled.
    notifier = Notifier(broker, channels={"email": SmtpChannel("127.0.0.1", 9)},
                        templates=TEMPLATES)
    got = await notify_recipient(notifier, PersonNotification(
        "dave", Category("news"), "ping", {"n": 1}))
    assert {(p.channel, p.address, p.status, p.reason) for p in got} == {
        ("email", "dave@example.com", "skipped", "suppressed"),
        ("email", "Dave@Work.example", "skipped", "suppressed"),
        ("none", "dave", "skipped", "no address for any allowed channel")}


async def test_a_row_stored_before_the_rule_still_stops_its_own_spelling(
        broker: Broker) -> None:
    """Rows written in their own case before email addresses were lower-cased: still a
    suppression for the address as it was stored, and removable as spelled."""
    await broker.storage.suppression_add_many([("email", "Old@Example.com", "bounce")],
                                              broker.now())
    assert await broker.ledger.suppressed("email", ["Old@Example.com", "x@example.com"]) \
        == {"Old@Example.com"}
    assert await broker.ledger.unsuppress("email", "Old@Example.com") is True
    assert await broker.ledger.suppressed("email", ["Old@Example.com"]) == set()
