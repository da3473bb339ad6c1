"""What the SQS endpoint remembers between requests: AWS's 60-second waits after
PurgeQueue and DeleteQueue, and FIFO receives to replay by ReceiveRequestAttemptId.

The waits live in the database (as rate-limit keys of the job system, `broker.limits`), so
every node behind a load balancer enforces them alike. Receive attempts are remembered by
the node that answered (5 minutes, bounded): a retry that reaches another node receives
afresh, which SQS's documentation allows for a retry whose attempt id is unknown.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from conveyor.broker.broker import Broker
from conveyor.models import Message

WAIT_SECONDS = 60
ATTEMPT_SECONDS = 300
MAX_ATTEMPTS = 10_000


def _key(kind: str, region: str, name: str) -> str:
    return f"sqs:{kind}:{region}:{name}"


@dataclass(slots=True)
class Cooldowns:
    """PurgeQueueInProgress and QueueDeletedRecently (both off when `relaxed`)."""

    relaxed: bool = False

    async def may_purge(self, broker: Broker, region: str, name: str) -> bool:
        """Take the queue's one purge of the last 60 seconds; False when it was taken."""
        if self.relaxed:
            return True
        grant = await broker.limits.take(_key("purge", region, name), 1, WAIT_SECONDS)
        return grant.granted > 0

    async def deleted(self, broker: Broker, region: str, name: str) -> None:
        """Remember that the queue was deleted now."""
        if not self.relaxed:
            await broker.limits.penalize(_key("deleted", region, name), WAIT_SECONDS)

    async def deleted_recently(self, broker: Broker, region: str, name: str) -> bool:
        """Whether a queue of this name was deleted less than 60 seconds ago."""
        if self.relaxed:
            return False
        # A penalized key grants nothing; an unpenalized one grants from a bucket so large
        # that asking never empties it.
        grant = await broker.limits.take(_key("deleted", region, name), 1_000_000, 1)
        return grant.granted == 0


@dataclass(slots=True)
class ReceiveAttempts:
    """The answers of recent FIFO receives, by (region, queue, ReceiveRequestAttemptId)."""

    _answers: OrderedDict[tuple[str, str, str], tuple[float, list[Message]]] = field(
        default_factory=OrderedDict)

    def get(self, region: str, queue: str, attempt: str) -> list[Message] | None:
        """The messages an earlier receive with this attempt id answered, if recent."""
        found = self._answers.get((region, queue, attempt))
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, region: str, queue: str, attempt: str,
            messages: list[Message]) -> None:
        """Remember an answer for 5 minutes (the oldest go first past 10,000)."""
        now = time.monotonic()
        while self._answers:
            oldest = next(iter(self._answers.values()))
            if oldest[0] >= now and len(self._answers) < MAX_ATTEMPTS:
                break
            self._answers.popitem(last=False)
        self._answers[(region, queue, attempt)] = (now + ATTEMPT_SECONDS, messages)

    def forget(self, region: str, queue: str, attempt: str) -> None:
        """Drop an answer that can no longer be replayed."""
        self._answers.pop((region, queue, attempt), None)


@dataclass(slots=True)
class EndpointState:
    """Everything the endpoint keeps across requests."""

    cooldowns: Cooldowns = field(default_factory=Cooldowns)
    attempts: ReceiveAttempts = field(default_factory=ReceiveAttempts)
