"""API keys as broker operations: create, list, revoke, and authenticate a token.

`ApiKeys(broker)` works on the broker's storage (`storage.base.KeyStorage`). Authentication
is cached for a few seconds per token, so a busy server does not read the keys table on
every request; a revocation takes effect within that time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from conveyor.errors import Conflict, InvalidInput
from conveyor.keys import (
    ApiKey,
    Grant,
    check_key_name,
    grants_to_json,
    hash_token,
    new_token,
)
from conveyor.storage.base import ApiKeyInsertParams

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

CACHE_SECONDS = 5.0
_CACHE_LIMIT = 10_000


class ApiKeys:
    """Keys of one broker's database."""

    def __init__(self, broker: Broker, *, cache_seconds: float | None = None) -> None:
        self._broker = broker
        self._storage = broker.storage
        self._cache_seconds = CACHE_SECONDS if cache_seconds is None else cache_seconds
        self._tokens: dict[str, tuple[float, ApiKey | None]] = {}
        self._active: tuple[float, int] | None = None

    async def create(self, name: str, grants: Sequence[Grant]) -> tuple[ApiKey, str]:
        """Make a key; returns it and its token (shown once: only its hash is kept)."""
        check_key_name(name)
        if not grants:
            raise InvalidInput("A key needs at least one grant.", field="allow")
        token = new_token()
        key_id = uuid.uuid4().hex
        if not await self._storage.api_key_insert(ApiKeyInsertParams(
                key_id, name, hash_token(token), grants_to_json(grants), self._broker.now())):
            raise Conflict(f"An active key named {name!r} exists; revoke it first.")
        self._active = None
        return ApiKey(key_id, name, tuple(grants), self._broker.wall_now()), token

    async def list(self) -> list[ApiKey]:
        """Every key, revoked ones too (never their tokens)."""
        return await self._storage.api_key_list()

    async def revoke(self, name: str) -> int:
        """Revoke the active key with this name (or id); how many were revoked."""
        count = await self._storage.api_key_revoke(name, self._broker.now())
        self._tokens.clear()
        self._active = None
        return count

    async def authenticate(self, token: str) -> ApiKey | None:
        """The active key of a token, or None."""
        now = time.monotonic()
        cached = self._tokens.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        key = await self._storage.api_key_by_hash(hash_token(token))
        if len(self._tokens) >= _CACHE_LIMIT:  # a flood of wrong tokens must not grow it
            self._tokens.clear()
        self._tokens[token] = (now + self._cache_seconds, key)
        return key

    async def storage_count(self) -> int:
        """How many keys were ever made (revoked ones too), read now."""
        return await self._storage.api_key_count()

    async def configured(self) -> bool:
        """True once any key was made, even if all are revoked since (cached like tokens):
        revoking the last key must not open a loopback server to everyone."""
        now = time.monotonic()
        if self._active is None or self._active[0] <= now:
            self._active = (now + self._cache_seconds,
                            await self._storage.api_key_count())
        return self._active[1] > 0
