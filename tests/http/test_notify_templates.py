"""`POST /v1/recipients/{id}/notify` naming a template that is neither stored nor among
the server's file templates (the delivery workers', `serve --templates DIR`): 404
`template_not_found` when the notification is made, with nothing written, instead of a
failure at delivery. In process on both backends, and through `conveyor serve`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.http.app import create_app
from tests.http.helpers import assert_error
from tests.http.server import start_server

FILES = {"ping.txt": "Ping {{ n }}", "ping.subject": "Ping"}
NOTE = {"category": "news", "data": {"n": 1}}


@pytest.fixture
async def http(broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the workers' file templates, and a recipient with an address."""
    transport = httpx.ASGITransport(app=create_app(broker, file_templates=FILES))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        put = await client.put("/v1/recipients/ann", json={
            "addresses": {"email": ["ann@example.com"]}})
        assert put.status_code == 200, put.text
        yield client


async def _written(broker: Broker) -> tuple[dict[str, dict[str, int]], int]:
    """The ledger's counts and the recipient's notifications."""
    return await broker.ledger.counts(), len(await broker.recipients.notifications("ann"))


async def test_an_unknown_template_is_404_and_writes_nothing(http: httpx.AsyncClient,
                                                            broker: Broker) -> None:
    answer = await http.post("/v1/recipients/ann/notify", json={**NOTE, "template": "nope"})
    error = assert_error(answer, 404, "template_not_found")
    assert "'nope'" in error["message"]
    # Not a name a stored template may have (file names may): the same answer.
    odd = await http.post("/v1/recipients/ann/notify", json={**NOTE, "template": "a/b.c"})
    assert_error(odd, 404, "template_not_found")
    assert await _written(broker) == ({}, 0)


async def test_stored_and_file_templates_are_accepted(http: httpx.AsyncClient,
                                                      broker: Broker) -> None:
    for template in ("ping", "welcome"):
        if template == "welcome":
            stored = await http.put("/v1/templates/welcome", json={
                "locales": {"en": {"subject": "Hi", "text": "Hello {{ n }}"}}})
            assert stored.status_code == 200, stored.text
        answer = await http.post("/v1/recipients/ann/notify",
                                 json={**NOTE, "template": template})
        assert answer.status_code == 202, answer.text
        assert answer.json()["queued"] == 1
    assert (await broker.ledger.counts())["email"]["queued"] == 2


async def test_a_template_stored_elsewhere_since_a_miss_is_found(
        http: httpx.AsyncClient, broker: Broker) -> None:
    # The miss is cached (a few seconds); a refusal reads again first, so a template put
    # through another server process (or the Python API) is not refused meanwhile.
    missed = await http.post("/v1/recipients/ann/notify", json={**NOTE, "template": "late"})
    assert_error(missed, 404, "template_not_found")
    await broker.templates.put("late", {"locales": {"en": {"text": "Late {{ n }}"}}})
    answer = await http.post("/v1/recipients/ann/notify", json={**NOTE, "template": "late"})
    assert answer.status_code == 202, answer.text


def test_serve_takes_the_workers_template_folder(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    for name, source in FILES.items():
        (folder / name).write_text(source)
    server = start_server(tmp_path, ["--database", f"sqlite:///{tmp_path}/t.db", "--no-sqs",
                                     "--templates", str(folder)])
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.put("/v1/recipients/ann", json={
                "addresses": {"email": ["ann@example.com"]}}).status_code == 200
            ok = http.post("/v1/recipients/ann/notify", json={**NOTE, "template": "ping"})
            assert ok.status_code == 202, ok.text
            assert_error(http.post("/v1/recipients/ann/notify",
                                   json={**NOTE, "template": "nope"}),
                         404, "template_not_found")
    finally:
        assert server.stop() == 0, server.logs()
