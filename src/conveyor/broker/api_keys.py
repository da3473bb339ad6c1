"""API keys as broker operations: create, list, revoke, and authenticate a token.

`ApiKeys(broker)` works on the broker's storage (`storage.base.KeyStorage`). Authentication
is cached for a few seconds per token (and per key id for the SQS endpoint's signatures),
so a busy server does not read the keys table on every request; a revocation takes effect
within that time.

A key's token is also its SigV4 secret on the SQS endpoint (the access key id is the
key's id), so the table keeps the token itself beside its hash (see
`migrations/*_api_key_secret.sql` for why no hash can check a signature), sealed when a
`Sealer` is given (`conveyor.sealing`).
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
    check_access_key_id,
    check_key_name,
    check_secret,
    grants_to_json,
    hash_token,
    new_token,
)
from conveyor.sealing import Sealer, open_stored, stored_form
from conveyor.storage.base import ApiKeyInsertParams

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

CACHE_SECONDS = 5.0
_CACHE_LIMIT = 10_000


class ApiKeys:
    """Keys of one broker's database."""

    def __init__(self, broker: Broker, *, cache_seconds: float | None = None,
                 sealer: Sealer | None = None) -> None:
        self._broker = broker
        self._sealer = sealer
        self._storage = broker.storage
        self._cache_seconds = CACHE_SECONDS if cache_seconds is None else cache_seconds
        self._tokens: dict[str, tuple[float, ApiKey | None]] = {}
        self._ids: dict[str, tuple[float, tuple[ApiKey, str | None] | None]] = {}
        self._active: tuple[float, int] | None = None

    async def create(self, name: str, grants: Sequence[Grant], *,
                     access_key_id: str | None = None, secret: str | None = None
                     ) -> tuple[ApiKey, str]:
        """Make a key; returns it and its token (shown once).

        `access_key_id` and `secret` bring an existing SQS key pair in as a key (the id
        becomes the key's id, the secret its token); by default both are new."""
        check_key_name(name)
        if not grants:
            raise InvalidInput("A key needs at least one grant.", field="allow")
        key_id = uuid.uuid4().hex if access_key_id is None else check_access_key_id(
            access_key_id)
        token = new_token() if secret is None else check_secret(secret)
        stored = stored_form(token, key_id, self._sealer)
        if not await self._storage.api_key_insert(ApiKeyInsertParams(
                key_id, name, hash_token(token), grants_to_json(grants), self._broker.now(),
                stored)):
            raise Conflict(f"An active key named {name!r} exists (or a key with id "
                           f"{key_id!r} was made before); revoke it or choose another.")
        self._active = None
        return ApiKey(key_id, name, tuple(grants), self._broker.wall_now()), token

    async def list(self) -> list[ApiKey]:
        """Every key, revoked ones too (never their tokens)."""
        return await self._storage.api_key_list()

    async def revoke(self, name: str) -> int:
        """Revoke the active key with this name (or id); how many were revoked."""
        count = await self._storage.api_key_revoke(name, self._broker.now())
        self._tokens.clear()
        self._ids.clear()
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

    async def signing_key(self, key_id: str) -> tuple[ApiKey, str | None] | None:
        """The active key with this id and its SigV4 secret, or None. The secret is None
        when the key was made before keys kept one, or sealed with a `CONVEYOR_KEYS_SECRET`
        this server does not have (`conveyor.sealing`)."""
        now = time.monotonic()
        cached = self._ids.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self._storage.api_key_by_id(key_id)
        if found is not None:
            found = found[0], open_stored(found[1], key_id, self._sealer)
        if len(self._ids) >= _CACHE_LIMIT:  # a flood of made-up ids must not grow it
            self._ids.clear()
        self._ids[key_id] = (now + self._cache_seconds, found)
        return found

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
