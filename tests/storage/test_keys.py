"""Conformance: API keys (token hashes, and each key's SigV4 secret by key id)."""

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


async def test_key_secrets_by_id(storage: Storage, t0: int) -> None:
    assert await storage.api_key_insert(ApiKeyInsertParams(
        "AKID1", "sqs", "hash1", grants_to_json(GRANTS), t0, "sealed1:abc"))
    assert await storage.api_key_insert(ApiKeyInsertParams(
        "id2", "old", "hash2", grants_to_json(GRANTS), t0))  # made before secrets
    found = await storage.api_key_by_id("AKID1")
    assert found is not None and found[0].name == "sqs" and found[1] == "sealed1:abc"
    assert found[0].grants == GRANTS
    old = await storage.api_key_by_id("id2")
    assert old is not None and old[1] is None
    assert await storage.api_key_by_id("akid1") is None  # ids are exact
    # An id is never reused, even after its key is revoked.
    assert await storage.api_key_revoke("sqs", t0 + 1) == 1
    assert await storage.api_key_by_id("AKID1") is None
    assert not await storage.api_key_insert(ApiKeyInsertParams(
        "AKID1", "sqs", "hash3", grants_to_json(GRANTS), t0 + 2, "x"))
