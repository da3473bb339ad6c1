"""Health, readiness, OpenAPI, the offline Swagger UI, and errors outside the routes."""

from __future__ import annotations

import re
import socket
import time
from urllib.parse import urlsplit

import httpx

from tests.http.helpers import assert_error
from tests.http.server import ServerProcess

ROUTES = {
    ("post", "/v1/queues"), ("get", "/v1/queues"), ("get", "/v1/queues/{queue}"),
    ("patch", "/v1/queues/{queue}"), ("delete", "/v1/queues/{queue}"),
    ("post", "/v1/queues/{queue}/purge"), ("post", "/v1/queues/{queue}/messages"),
    ("get", "/v1/queues/{queue}/messages"), ("post", "/v1/queues/{queue}/messages/receive"),
    ("post", "/v1/queues/{queue}/messages/delete"),
    ("post", "/v1/queues/{queue}/messages/visibility"),
    ("post", "/v1/queues/{queue}/messages/retry"),
    ("post", "/v1/queues/{queue}/redrive"), ("get", "/v1/queues/{queue}/redrive"),
    ("get", "/v1/tasks/{task_id}"), ("post", "/v1/tasks/{task_id}/cancel"),
    ("get", "/healthz"), ("get", "/readyz"),
}


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["schema_version"] == ready.json()["known_version"]


def test_openapi_documents_every_route(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    found = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert found >= ROUTES  # other rooms (jobs, ...) add their own routes
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if (method, path) not in ROUTES:
                continue
            assert "200" in operation["responses"] or "201" in operation["responses"] or \
                "204" in operation["responses"], (method, path)
            success = next(r for s, r in operation["responses"].items() if s.startswith("2"))
            if not path.startswith("/v1") or "204" in operation["responses"]:
                continue
            assert "schema" in success["content"]["application/json"], (method, path)
            if method in ("post", "patch") and not path.endswith(("/purge", "/cancel")):
                assert "requestBody" in operation, (method, path)
    send = spec["paths"]["/v1/queues/{queue}/messages"]["post"]
    assert "422" in send["responses"]
    # OpenAPI has no WebSockets: the stream's protocol is in the description /api-docs shows
    description = spec["info"]["description"]
    assert "## WebSocket stream" in description and "/v1/queues/{queue}/stream" in description
    assert '{"type": "credit", "credits": N}' in description
    schemas = spec["components"]["schemas"]
    assert {"SendRequest", "SendMessageIn", "AttributeIn", "ReceiveResponse", "ErrorOut",
            "QueueOut", "MoveTaskOut"} <= set(schemas)
    assert send["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SendRequest"}


def test_swagger_ui_is_served_from_local_assets(client: httpx.Client) -> None:
    page = client.get("/api-docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(
        r"url: '([^']+)'", page.text)
    assert urls
    assert not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
    for url in urls:
        assert client.get(url).status_code == 200, url
    script = client.get("/api-docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in script.text


def test_unknown_route_and_method_use_the_error_shape(client: httpx.Client) -> None:
    assert_error(client.get("/v2/nothing"), 404, "not_found")
    assert_error(client.put("/v1/queues"), 405, "method_not_allowed")
    # Allow names every route of the path, not the first that matched (was PUT here;
    # /v1/jobs/{job_id} also matches this path)
    wrong = client.patch("/v1/jobs/counts")
    assert_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "DELETE, GET, HEAD, PUT"  # HEAD: as GET, no body
    assert client.delete("/v1/templates").headers["allow"] == "GET, HEAD"


def test_a_client_that_hangs_up_mid_body_is_no_server_error(server: ServerProcess,
                                                             queue: str) -> None:
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as raw:
        raw.sendall(f"POST /v1/queues/{queue}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                    '{"messages": [{"bo'.encode())
        time.sleep(0.2)  # the route is reading the body when the client goes
    deadline = time.monotonic() + 10
    while "client went away" not in server.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "client went away" in server.logs()
    assert "unhandled error" not in server.logs()
