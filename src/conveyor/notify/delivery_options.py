"""How a delivery worker runs (`DeliveryOptions`): its lanes, batch sizes, leases,
retries and backoff, how long the ledger keeps rows, and the in-flight bound that is the
crash window (the delivery loop itself is `conveyor.notify.delivery`)."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.errors import InvalidInput

__all__ = ["DeliveryOptions"]


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """How a delivery worker runs (see `conveyor.notify.delivery`'s docstring)."""

    lanes: int = 4
    envelopes: int = 4
    visibility_timeout: int = 120
    wait_seconds: int = 1
    max_attempts: int = 8
    backoff_base: float = 5.0
    backoff_max: float = 900.0
    keep_seconds: int = 7 * 86_400
    heartbeat_seconds: float | None = None
    """How often the leases of envelopes in hand are extended (None: a third of
    `visibility_timeout`); see `conveyor.notify.leases`."""
    in_flight: int = 400
    """The most notifications of one channel a worker process has handed to the transport
    without a recorded outcome (each lane sends chunks of `in_flight // lanes`). It is the
    crash window: a `kill -9` leaves at most this many per channel in doubt, so at most
    this many extra copies per channel, and loses none."""
    hold_unknown: frozenset[str] = frozenset()
    """Channels whose in-doubt notifications are recorded `unknown` for an operator
    instead of resent with their idempotency handle (the default)."""

    release_digests: bool = True
    """Also release due digests (`conveyor.notify.digests.DigestReleaser`)."""

    def __post_init__(self) -> None:
        if self.lanes < 1 or self.in_flight < self.lanes:
            raise InvalidInput(f"in_flight ({self.in_flight}) must be at least lanes "
                               f"({self.lanes}), which must be at least 1.",
                               field="in_flight")

    @property
    def chunk(self) -> int:
        """The most notifications one lane hands to the transport at once."""
        return self.in_flight // self.lanes
