"""Conformance: API keys (only token hashes are stored)."""

from __future__ import annotations

from conveyor.keys import grants_to_json, parse_grants
from conveyor.storage.base import ApiKeyInsertParams, Storage

GRANTS = parse_grants(["send,receive:orders-*"])


async def test_keys(storage: Storage, t0: int) -> None:
    assert await storage.api_key_count() == 0
    made = ApiKeyInsertParams("id1", "ci", "hash1", grants_to_json(GRANTS), t0)
    assert await storage.api_key_insert(made)
    # An active key holds its name.
    assert not await storage.api_key_insert(
        ApiKeyInsertParams("id2", "ci", "hash2", grants_to_json(GRANTS), t0))
    key = await storage.api_key_by_hash("hash1")
    assert key is not None and (key.id, key.name, key.grants, key.created_at) == (
        "id1", "ci", GRANTS, t0)
    assert await storage.api_key_by_hash("hash2") is None
    assert await storage.api_key_revoke("ci", t0 + 1) == 1
    assert await storage.api_key_by_hash("hash1") is None
    assert await storage.api_key_revoke("ci", t0 + 2) == 0
    assert await storage.api_key_insert(
        ApiKeyInsertParams("id3", "ci", "hash3", grants_to_json(GRANTS), t0 + 3))
    assert await storage.api_key_revoke("id3", t0 + 4) == 1  # by id too
    listed = await storage.api_key_list()
    assert sorted((k.id, k.revoked_at) for k in listed) == [("id1", t0 + 1), ("id3", t0 + 4)]
    assert await storage.api_key_count() == 2
