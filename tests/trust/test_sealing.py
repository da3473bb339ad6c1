"""API keys' secrets sealed at rest with CONVEYOR_KEYS_SECRET: the sealed form opens only
with the same value and for the same key id; through the CLI and a live server on both
backends, the database holds no usable token, boto3 signs with the key, and a server
without the value refuses the key with InvalidClientTokenId."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conveyor.errors import InvalidInput
from conveyor.sealing import PREFIX, Sealer, open_stored, stored_form
from conveyor.storage.factory import storage_from_url
from tests.http.server import conveyor_command, start_server

VALUE = "k" * 16 + "0123456789abcdefXYZ"
OTHER = "o" * 40


def test_seal_and_open() -> None:
    sealer = Sealer(VALUE)
    stored = stored_form("cvk_token", "id1", sealer)
    assert stored.startswith(PREFIX) and "cvk_token" not in stored
    assert stored != stored_form("cvk_token", "id1", sealer)  # a fresh nonce each time
    assert open_stored(stored, "id1", sealer) == "cvk_token"
    assert open_stored(stored, "id2", sealer) is None  # moved to another row
    assert open_stored(stored, "id1", Sealer(OTHER)) is None
    assert open_stored(stored, "id1", None) is None
    assert open_stored(PREFIX + "not base64!", "id1", sealer) is None
    assert open_stored("cvk_plain", "id1", sealer) == "cvk_plain"  # made before sealing
    assert open_stored(None, "id1", sealer) is None
    with pytest.raises(InvalidInput):
        Sealer("short")


async def stored_secrets(url: str) -> list[str]:
    storage: Any = storage_from_url(url)
    await storage.open()
    try:
        if url.startswith("sqlite"):
            return [str(r[0]) for r in await storage._run(
                lambda db: db.execute("SELECT secret FROM conveyor_api_keys").fetchall())]
        return [str(r[0]) for r in await storage.pool.fetch(
            "SELECT secret FROM conveyor_api_keys")]
    finally:
        await storage.close()


def list_queues(endpoint: str, key_id: str, secret: str) -> Any:
    client = boto3.session.Session().client(
        "sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key_id,
        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))
    try:
        return client.list_queues()
    finally:
        client.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.timeout(90)
def test_sealed_keys_through_cli_and_server(tmp_path: Path, database_url: str) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")},
           "CONVEYOR_KEYS_SECRET": VALUE}
    made = subprocess.run([*conveyor_command(), "keys", "create", "sealed", "--allow",
                           "manage", "--database", database_url], env=env,
                          capture_output=True, text=True, timeout=30)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    key_id = made.stderr.split("access key id ", 1)[1].split()[0]
    [stored] = asyncio.run(stored_secrets(database_url))
    assert stored.startswith(PREFIX) and token not in stored

    server = start_server(tmp_path, ["--database", database_url, "--sqs-port", "0"],
                          env={"CONVEYOR_KEYS_SECRET": VALUE})
    try:
        assert server.sqs_url is not None
        assert "QueueUrls" not in list_queues(server.sqs_url, key_id, token)
    finally:
        server.stop()
    blind = start_server(tmp_path, ["--database", database_url, "--sqs-port", "0"])
    try:
        assert blind.sqs_url is not None
        with pytest.raises(ClientError) as caught:
            list_queues(blind.sqs_url, key_id, token)
        assert caught.value.response["Error"]["Code"] == "InvalidClientTokenId"
        assert "CONVEYOR_KEYS_SECRET" in caught.value.response["Error"]["Message"]
    finally:
        blind.stop()
