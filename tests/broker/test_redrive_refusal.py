"""A redrive of a queue that is no queue's dead-letter queue is refused, not "moved 0";
the legitimate ones (a configured DLQ, dead letters whose source still exists, a
destination) still run; a destination that is empty, the queue itself, or a FIFO queue
for a standard queue's messages is refused. Both backends."""

from __future__ import annotations

import pytest

from conveyor.broker.broker import Broker
from conveyor.broker.redrive import FifoRedriveUnsupported, NotADeadLetterQueue
from conveyor.clock import ManualClock
from conveyor.errors import InvalidInput
from conveyor.models import Body, SendEntry
from tests.support.messages import send


async def _dead_letter(broker: Broker, clock: ManualClock, source: str, body: str) -> None:
    """Send `body` to `source` (max_receive_count 1) and receive it into its DLQ."""
    await send(broker, source, body)
    assert len(await broker.receive(source, visibility_timeout=1)) == 1
    clock.advance(1)
    assert await broker.receive(source) == []  # the second attempt dead-letters it


async def _work_with_a_dead_letter(broker: Broker, clock: ManualClock, body: str) -> None:
    """Queue `work` whose dead letters go to `dlq`, with one there (`body`)."""
    await broker.create_queue("dlq")
    await broker.create_queue("work", {"max_receive_count": 1, "dead_letter_queue": "dlq"})
    await _dead_letter(broker, clock, "work", body)


async def test_a_queue_no_queue_dead_letters_to_is_refused(broker: Broker) -> None:
    await broker.create_queue("plain")
    await send(broker, "plain", "a", "b")
    with pytest.raises(NotADeadLetterQueue) as caught:
        await broker.start_redrive("plain", wait=10)
    error = caught.value
    assert isinstance(error, InvalidInput)  # a 422 on the wire, InvalidParameterValue on SQS
    assert (error.code, error.field) == ("not_a_dead_letter_queue", "queue")
    assert "no queue's dead-letter queue" in error.message and "destination" in error.message
    # Nothing changed: no task recorded, the messages where they were.
    assert await broker.redrive.list("plain") == []
    assert (await broker.queue_stats("plain")).visible == 2


async def test_a_configured_dead_letter_queue_may_be_empty(broker: Broker) -> None:
    await broker.create_queue("dlq")
    await broker.create_queue("work", {"max_receive_count": 1, "dead_letter_queue": "dlq"})
    task = await broker.start_redrive("dlq", wait=10)
    assert (task.status, task.moved, task.to_move) == ("completed", 0, 0)


async def test_dead_letters_of_a_source_that_dropped_its_dlq_still_go_back(
        broker: Broker, clock: ManualClock) -> None:
    await _work_with_a_dead_letter(broker, clock, "poison")
    await broker.update_queue("work", {"max_receive_count": None, "dead_letter_queue": None})
    task = await broker.start_redrive("dlq", wait=10)
    assert (task.status, task.moved) == ("completed", 1)
    assert (await broker.queue_stats("work")).visible == 1


async def test_orphans_of_a_deleted_source_need_a_destination(broker: Broker,
                                                              clock: ManualClock) -> None:
    await _work_with_a_dead_letter(broker, clock, "orphan")
    await broker.delete_queue("work")
    with pytest.raises(NotADeadLetterQueue):
        await broker.start_redrive("dlq", wait=10)
    assert (await broker.queue_stats("dlq")).visible == 1
    await broker.create_queue("rescue")
    task = await broker.start_redrive("dlq", destination="rescue", wait=10)
    assert (task.status, task.moved) == ("completed", 1)
    assert (await broker.queue_stats("rescue")).visible == 1


async def test_a_destination_moves_any_queue(broker: Broker) -> None:
    """Copies a worker or a notifier sent to their own dead-letter queues name no source
    (`notify-<channel>-dlq`, `<queue>-dlq` of a queue without one): a destination takes
    them back."""
    await broker.create_queue("notify-email-dlq")
    await broker.create_queue("notify-email")
    await send(broker, "notify-email-dlq", "envelope")
    with pytest.raises(NotADeadLetterQueue):
        await broker.start_redrive("notify-email-dlq", wait=10)
    task = await broker.start_redrive("notify-email-dlq", destination="notify-email", wait=10)
    assert (task.status, task.moved) == ("completed", 1)


async def test_bad_input_is_named_before_the_refusal(broker: Broker) -> None:
    await broker.create_queue("plain")
    with pytest.raises(InvalidInput) as caught:
        await broker.start_redrive("plain", max_per_second=0)
    assert caught.value.field == "max_per_second"


# Destinations a redrive refuses (an outside tester's findings): an empty name, the queue
# itself, a FIFO queue for a standard queue's messages. Nothing is recorded or moved.


async def _nothing_happened(broker: Broker, queue: str, visible: int) -> None:
    assert await broker.redrive.list(queue) == []
    assert (await broker.queue_stats(queue)).visible == visible


async def test_an_empty_destination_is_refused_not_read_as_none(
        broker: Broker, clock: ManualClock) -> None:
    await _work_with_a_dead_letter(broker, clock, "poison")
    with pytest.raises(InvalidInput) as caught:
        await broker.start_redrive("dlq", destination="", wait=10)
    assert (caught.value.code, caught.value.field) == ("invalid_input", "destination")
    await _nothing_happened(broker, "dlq", 1)
    assert (await broker.queue_stats("work")).visible == 0


async def test_a_queue_cannot_be_redriven_onto_itself(broker: Broker,
                                                      clock: ManualClock) -> None:
    await _work_with_a_dead_letter(broker, clock, "poison")
    with pytest.raises(InvalidInput) as caught:
        await broker.start_redrive("dlq", destination="dlq", wait=10)
    assert (caught.value.code, caught.value.field) == ("invalid_input", "destination")
    assert "itself" in caught.value.message
    await _nothing_happened(broker, "dlq", 1)
    # Neither its receive count nor its source was reset: it still goes back there.
    [peeked] = await broker.peek("dlq")
    assert (peeked.receive_count, peeked.source_queue) == (1, "work")
    task = await broker.start_redrive("dlq", wait=10)
    assert (task.status, task.moved) == ("completed", 1)


async def test_a_standard_queue_is_not_redriven_into_a_fifo_queue(broker: Broker) -> None:
    await broker.create_queue("dlq")
    await broker.create_queue("f.fifo")
    await send(broker, "dlq", "a", "b")
    with pytest.raises(FifoRedriveUnsupported) as caught:
        await broker.start_redrive("dlq", destination="f.fifo", wait=10)
    error = caught.value
    assert isinstance(error, InvalidInput)  # a 422 on the wire
    assert (error.code, error.field) == ("fifo_redrive_unsupported", "destination")
    await _nothing_happened(broker, "dlq", 2)
    assert (await broker.queue_stats("f.fifo")).visible == 0


def _fifo(text: str, group: str) -> SendEntry:
    return SendEntry(Body.of(text), group_id=group, deduplication_id=text)


async def test_a_fifo_dead_letter_queue_goes_back_with_its_group_ids(
        broker: Broker, clock: ManualClock) -> None:
    """FIFO to FIFO keeps each message's group id: the moved messages are delivered, in
    their group's order, back to their source or to another FIFO queue."""
    await broker.create_queue("dlq.fifo")
    await broker.create_queue("work.fifo", {"max_receive_count": 1,
                                            "dead_letter_queue": "dlq.fifo"})
    await broker.send("work.fifo", [_fifo("a1", "a"), _fifo("a2", "a"), _fifo("b1", "b")])
    assert len(await broker.receive("work.fifo", 10, visibility_timeout=1)) == 3
    clock.advance(1)
    assert await broker.receive("work.fifo", 10) == []  # all three dead-lettered
    assert (await broker.queue_stats("dlq.fifo")).visible == 3

    task = await broker.start_redrive("dlq.fifo", wait=10)
    assert (task.status, task.moved) == ("completed", 3)
    got = await broker.receive("work.fifo", 10, visibility_timeout=1)
    assert [(m.body.text, m.group_id) for m in got] == [("a1", "a"), ("a2", "a"), ("b1", "b")]
    clock.advance(1)
    assert await broker.receive("work.fifo", 10) == []  # dead-lettered again

    await broker.create_queue("other.fifo")
    task = await broker.start_redrive("dlq.fifo", destination="other.fifo", wait=10)
    assert (task.status, task.moved) == ("completed", 3)
    got = await broker.receive("other.fifo", 10)
    assert [(m.body.text, m.group_id) for m in got] == [("a1", "a"), ("a2", "a"), ("b1", "b")]
