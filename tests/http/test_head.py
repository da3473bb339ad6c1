"""HEAD on every GET route answers as GET would, without the body: in process (the app
over httpx's ASGI transport) and through `conveyor serve` on loopback (uvicorn must send
the GET's Content-Length and no body)."""

from __future__ import annotations

import httpx
import pytest

from conveyor.broker.broker import Broker
from tests.http.helpers import assert_error
from tests.http.server import ServerProcess


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/v1/queues", "/v1/queues/q",
                                  "/metrics", "/", "/api-docs", "/openapi.json",
                                  "/v1/queues/nope"])
async def test_head_is_get_without_the_body(http: httpx.AsyncClient, broker: Broker,
                                            path: str) -> None:
    await broker.create_queue("q")
    got = await http.get(path)
    head = await http.head(path)
    assert head.status_code == got.status_code, head.text
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    if "content-length" in got.headers and path != "/metrics":  # its figures move
        assert head.headers["content-length"] == got.headers["content-length"]


async def test_head_leaves_the_openapi_document_as_it_was(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert "head" not in paths["/healthz"] and "get" in paths["/healthz"]


async def test_head_where_no_get_is_a_405_naming_head(http: httpx.AsyncClient) -> None:
    # /v1/flows/ends would match /v1/flows/{flow_id} as a GET: HEAD is answered as that
    # GET is; a path with no GET at all says HEAD is not allowed.
    head = await http.head("/v1/limits/take")
    assert head.status_code == 405 and head.content == b""
    assert head.headers["allow"] == "POST"
    listed = await http.patch("/v1/queues")
    assert_error(listed, 405, "method_not_allowed")
    assert "HEAD" in listed.headers["allow"]


@pytest.mark.parametrize("path", ["/api-docs", "/openapi.json"])
async def test_a_wrong_method_on_a_page_outside_the_openapi_document_names_head(
        http: httpx.AsyncClient, path: str) -> None:
    """HEAD works there, and Allow said GET alone (Starlette's, with its bare "Method Not
    Allowed"): the router is asked for the routes the OpenAPI document leaves out."""
    for method in ("POST", "DELETE"):
        got = await http.request(method, path)
        error = assert_error(got, 405, "method_not_allowed")
        assert got.headers["allow"] == "GET, HEAD"
        assert error["message"] == f"{method} is not allowed on {path}; it takes GET, HEAD."
    assert (await http.head(path)).status_code == 200


async def test_head_on_a_leasing_get_is_a_405_and_leases_nothing(
        http: httpx.AsyncClient, broker: Broker) -> None:
    # GET /wq receives (leases); a HEAD there, a link checker's, would lease to nobody.
    assert (await http.post("/wq", json={"x": 1})).status_code == 201
    head = await http.head("/wq")
    assert head.status_code == 405 and head.content == b""
    assert "HEAD" not in head.headers["allow"] and "GET" in head.headers["allow"]
    assert (await broker.queue_stats("wq")).visible == 1
    assert len((await http.get("/wq")).json()) == 1


def test_head_through_a_real_server(client: httpx.Client, server: ServerProcess) -> None:
    for path in ("/healthz", "/v1/queues"):
        got = client.get(path)
        head = client.head(path)
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == got.headers["content-length"]
