"""Nothing a browser can forge: content type x Origin x Host -> status, against a live
`conveyor serve` without API keys (loopback, one allowed host), for the native API, the
dashboard's forms, the WebSocket stream and the SQS endpoint. Every refusal changes
nothing: each queue ends holding exactly the messages of the accepted requests. Then the
same rules with keys: Host no longer matters, Origin still does."""

from __future__ import annotations

import itertools
import json
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.server import ServerProcess, conveyor_command, start_server

ALLOWED = "conveyor.internal"
EVIL = "rebind.evil.example"
FORM = "application/x-www-form-urlencoded"
JSON_TYPES = ["application/json", "application/json; charset=utf-8", "text/plain", FORM,
              "multipart/form-data; boundary=x", None]
SQS_TYPES = ["application/x-amz-json-1.0", FORM, "text/plain", "application/json",
             "multipart/form-data; boundary=x", None]
ORIGINS = ["none", "same", "evil", "null", "other-port"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("forgery")
    started = start_server(directory, ["--database", f"sqlite:///{directory}/f.db",
                                       "--sqs-port", "0", "--allowed-host", ALLOWED])
    try:
        yield started
    finally:
        started.stop()


def hosts(url: str) -> list[str]:
    port = url.rsplit(":", 1)[1]
    return [f"127.0.0.1:{port}", f"localhost:{port}", f"{EVIL}:{port}", f"{ALLOWED}:{port}"]


def origin_of(kind: str, host: str) -> str | None:
    port = int(host.rsplit(":", 1)[1])
    return {"none": None, "same": f"http://{host}", "evil": "https://evil.example",
            "null": "null", "other-port": f"http://localhost:{port + 1}"}[kind]


def headers_of(host: str, origin: str | None, content_type: str | None,
               **extra: str) -> dict[str, str]:
    headers = {"host": host, **extra}
    if origin is not None:
        headers["origin"] = origin
    if content_type is not None:
        headers["content-type"] = content_type
    return headers


def expected(host: str, origin: str, accepted: bool, refused_type: int
             ) -> tuple[int, str | None]:
    """The status (and native error code) a request should get."""
    if host.startswith(EVIL):
        return 403, "host_not_allowed"
    if origin in ("evil", "null", "other-port"):
        return 403, "origin_not_allowed"
    return (0, None) if accepted else (refused_type, None)


def depth(http: httpx.Client, queue: str) -> int:
    visible: int = http.get(f"/v1/queues/{queue}").json()["stats"]["visible"]
    return visible


def test_native_api_matrix(server: ServerProcess) -> None:
    sent = 0
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.post("/v1/queues", json={"name": "native"}).status_code == 201
        body = json.dumps({"messages": [{"body": "x"}]})
        for host, origin, kind in itertools.product(hosts(server.url), ORIGINS, JSON_TYPES):
            answer = http.post("/v1/queues/native/messages", content=body, headers=headers_of(
                host, origin_of(origin, host), kind))
            json_type = kind is not None and kind.startswith("application/json")
            status, code = expected(host, origin, json_type, 415)
            case = (host, origin, kind, answer.text)
            if status == 0:
                assert answer.status_code == 201, case
                sent += 1
            else:
                assert answer.status_code == status, case
                assert answer.json()["error"]["code"] == (code or "unsupported_media_type")
        assert depth(http, "native") == sent == 3 * 2 * 2  # 3 hosts, 2 origins, 2 JSON types

        # No body, no type (purge): only the Host and Origin rules apply.
        for host, origin in itertools.product(hosts(server.url), ORIGINS):
            status, _ = expected(host, origin, True, 0)
            if status != 0:
                answer = http.post("/v1/queues/native/purge",
                                   headers=headers_of(host, origin_of(origin, host), None))
                assert answer.status_code == status, (host, origin)
        assert depth(http, "native") == sent
        assert http.post("/v1/queues/native/purge", headers={
            "host": hosts(server.url)[3], "origin": f"http://{hosts(server.url)[3]}"}
        ).status_code == 200
        assert depth(http, "native") == 0


def test_fetch_metadata(server: ServerProcess) -> None:
    """What browsers say about who started a request: another site's fetches are refused
    even without Origin (an image GET to /wq), navigations to pages are not."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        http.post("/v1/queues", json={"name": "wq"})
        http.post("/wq", json={"job": 1})
        for site, mode, method, path, status in (
                ("cross-site", "no-cors", "GET", "/wq", 403),
                ("cross-site", "navigate", "GET", "/wq", 403),
                ("same-site", "cors", "POST", "/v1/queues", 403),
                ("cross-site", "navigate", "GET", "/", 200),
                ("same-origin", "cors", "GET", "/v1/queues", 200),
                ("none", "navigate", "GET", "/v1/queues", 200)):
            answer = http.request(method, path, json={"name": "x"} if method == "POST" else None,
                                  headers={"sec-fetch-site": site, "sec-fetch-mode": mode})
            assert answer.status_code == status, (site, mode, path, answer.text)
            if status == 403:
                assert answer.json()["error"]["code"] == "cross_site_request"
        assert http.get("/wq").json()["messages"] != []  # the refused GETs took nothing


def test_dashboard_matrix(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        http.post("/v1/queues", json={"name": "board"})
        page = http.get("/")
        token = page.cookies["conveyor_csrf"]
        sent = 0
        for host, origin, kind in itertools.product(
                hosts(server.url), ORIGINS, [FORM, "text/plain", "application/json"]):
            # Even holding the session's token, a forged form does nothing.
            answer = http.post("/ui/queues/board/send", content=f"csrf_token={token}&body=x",
                               headers=headers_of(host, origin_of(origin, host), kind))
            status, code = expected(host, origin, kind == FORM, 403)
            case = (host, origin, kind, answer.text[:200])
            if status == 0:
                assert answer.status_code == 303, case
                sent += 1
            else:
                assert answer.status_code == status, case
                if code is not None:
                    assert answer.json()["error"]["code"] == code, case
        assert depth(http, "board") == sent == 3 * 2
        # A rebound name cannot read a page (and its token) either.
        assert http.get("/", headers={"host": EVIL}).status_code == 403
        assert http.get("/ui/queues/board", headers={"host": ALLOWED}).status_code == 200


def handshake(url: str, host: str, origin: str | None) -> tuple[int, str]:
    """A raw WebSocket handshake (so Host can be anything): the status and the body."""
    address, port = url.removeprefix("http://").rsplit(":", 1)
    lines = ["GET /v1/queues/stream-q/stream HTTP/1.1", f"Host: {host}",
             "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    with socket.create_connection((address, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            while length and len(body) < int(length.group(1)):
                body += sock.recv(4096)
        return status, body.decode(errors="replace")


def test_websocket_matrix(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        http.post("/v1/queues", json={"name": "stream-q"})
    for host, origin in itertools.product(hosts(server.url), ORIGINS):
        status, body = handshake(server.url, host, origin_of(origin, host))
        want, code = expected(host, origin, True, 0)
        assert status == (101 if want == 0 else want), (host, origin, status, body)
        if code is not None:
            assert json.loads(body)["error"]["code"] == code


def sqs_send(http: httpx.Client, url: str, queue_url: str, host: str, origin: str | None,
             kind: str | None) -> httpx.Response:
    if kind == FORM:
        body = f"Action=SendMessage&QueueUrl={queue_url}&MessageBody=x"
        extra: dict[str, str] = {}
    else:
        body = json.dumps({"QueueUrl": queue_url, "MessageBody": "x"})
        extra = {"x-amz-target": "AmazonSQS.SendMessage"}
    return http.post(url + "/", content=body, headers=headers_of(host, origin, kind, **extra))


def test_sqs_matrix(server: ServerProcess) -> None:
    assert server.sqs_url is not None
    with httpx.Client(timeout=10) as http:
        made = http.post(server.sqs_url + "/", content='{"QueueName": "sqs-forged"}', headers={
            "content-type": "application/x-amz-json-1.0",
            "x-amz-target": "AmazonSQS.CreateQueue"})
        queue_url = made.json()["QueueUrl"]
        sent = 0
        for host, origin, kind in itertools.product(hosts(server.sqs_url), ORIGINS, SQS_TYPES):
            answer = sqs_send(http, server.sqs_url, queue_url, host, origin_of(origin, host),
                              kind)
            sqs_type = kind in (FORM, "application/x-amz-json-1.0")
            status, _ = expected(host, origin, sqs_type, 403)
            case = (host, origin, kind, answer.text[:300])
            if status == 0:
                assert answer.status_code == 200, case
                sent += 1
                continue
            assert answer.status_code == status, case
            if not (kind or "").startswith("application/x-amz-json"):  # query protocol
                assert "<Code>AccessDenied</Code>" in answer.text, case
            else:
                assert answer.json()["__type"].endswith("AccessDenied"), case
        # A GET (what an image or a link sends) started by another site is refused too.
        forged_get = http.get(server.sqs_url + "/", params={
            "Action": "SendMessage", "QueueUrl": queue_url, "MessageBody": "x"},
            headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"})
        assert forged_get.status_code == 403
    with httpx.Client(base_url=server.url, timeout=10) as native:
        assert depth(native, "sqs-forged") == sent == 3 * 2 * 2


@pytest.mark.timeout(60)
def test_with_keys_host_is_free_but_origin_is_not(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/k.db"
    made = subprocess.run([*conveyor_command(), "keys", "create", "app", "--allow",
                           "send,receive,manage", "--database", database],
                          capture_output=True, text=True, timeout=30)
    token = made.stdout.strip()
    server = start_server(tmp_path, ["--database", database, "--no-sqs"])
    try:
        auth = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.post("/v1/queues", json={"name": "k"}, headers={
                **auth, "host": EVIL}).status_code == 201  # a rebound page has no key
            forged: Any = http.post("/v1/queues/k/purge", headers={
                **auth, "origin": "https://evil.example"})
            assert forged.status_code == 403
            assert forged.json()["error"]["code"] == "origin_not_allowed"
            assert http.post("/v1/queues/k/messages", content='{"messages": []}', headers={
                **auth, "content-type": "text/plain"}).status_code == 415
            # A dashboard login link followed from another site does not log in.
            for site, status in (("cross-site", 403), ("same-site", 403), ("none", 303)):
                login = http.get(f"/?api_key={token}", headers={
                    "sec-fetch-site": site, "sec-fetch-mode": "navigate"})
                assert login.status_code == status, site
                assert ("set-cookie" in login.headers) == (status == 303)
    finally:
        server.stop()


def test_host_and_origin_rules() -> None:
    from conveyor.forgery import host_refusal, is_loopback, origin_refusal, split_host

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "[::1]",
                                        "localhost", "LOCALHOST.", "app.localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.0.2.1", "localhost.evil.example",
                                            "127.0.0.1.nip.io", ""))
    assert split_host("[::1]:8600") == "::1" and split_host("Example.COM:80") == "example.com"
    for host in ("127.0.0.1:8600", "[::1]:8600", "localhost", "conveyor.internal:1",
                 "CONVEYOR.INTERNAL"):
        assert host_refusal(host, ("conveyor.internal",)) is None, host
    for host in ("evil.example", "127.0.0.1.nip.io:8600", "internal:1", "conveyor.internal.x"):
        refused = host_refusal(host, ("conveyor.internal",))
        assert refused is not None and refused.code == "host_not_allowed", host
    assert origin_refusal("http://[::1]:8600", "[::1]:8600", ()) is None
    assert origin_refusal("https://conveyor.internal", "127.0.0.1:8600",
                          ("conveyor.internal",)) is None  # behind a proxy that sets Host
    for origin in ("null", "", "file://", "http://127.0.0.1:8601", "http://evil.example"):
        assert origin_refusal(origin, "127.0.0.1:8600", ()) is not None, origin
