"""Web Push's keep-alive HTTP/1.1 pool against real servers on loopback: connections kept
and reused, the ways an answer can end, a server that drops an idle connection, and what
must fail (a silent server, a refused port, a request that would break its own lines)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from conveyor.notify.http1 import H1Error, H1Pool
from tests.support.tls import self_signed


class Server:
    """A raw HTTP/1.1 server: it answers by path, counts connections and requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.drop_next = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                line, *rest = head.split("\r\n")
                headers = {k.lower(): v for k, _, v in (h.partition(": ") for h in rest if h)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                path = line.split(" ")[1]
                self.requests.append((path, headers, body))
                if self.drop_next:  # an idle timeout firing as the request comes in
                    self.drop_next = False
                    return
                if path == "/silent":
                    await asyncio.sleep(5)
                elif path == "/chunked":
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                elif path == "/until-close":
                    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe end")
                    await writer.drain()
                    writer.close()
                    return
                elif path == "/early-hints":
                    writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                                 b"HTTP/1.1 201 Created\r\nLocation: /m/1\r\n"
                                 b"Content-Length: 0\r\n\r\n")
                else:
                    answer = body[::-1]
                    writer.write(b"HTTP/1.1 201 Created\r\nLocation: /m%s\r\n"
                                 b"Content-Length: %d\r\n\r\n%s"
                                 % (path.encode(), len(answer), answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def drop_idle(self) -> None:
        """Close every connection from the server's side, as a keep-alive timeout does."""
        for writer in self.writers:
            writer.close()
        self.writers = []


@asynccontextmanager
async def serving(context: ssl.SSLContext | None = None) -> AsyncIterator[tuple[Server, int]]:
    server = Server()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server, listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        server.drop_idle()


async def test_connections_are_kept_and_reused_within_the_limit() -> None:
    async with serving() as (server, port):
        pool = H1Pool(limit=4)
        try:
            answers = await asyncio.gather(*(pool.request(
                "POST", f"http://127.0.0.1:{port}/n/{i}", {"TTL": "60"}, str(i).encode())
                for i in range(200)))
            assert [a[3] for a in answers] == [str(i)[::-1].encode() for i in range(200)]
            status, reason, headers, _ = answers[7]
            assert (status, reason, headers["location"]) == (201, "Created", "/m/n/7")
            assert server.connections <= 4  # 200 requests, never more than the limit
            assert server.requests[0][1]["ttl"] == "60"
            assert server.requests[0][1]["user-agent"] == "conveyor"
            assert server.requests[0][1]["host"] == f"127.0.0.1:{port}"
        finally:
            await pool.close()


async def test_every_way_an_answer_ends() -> None:
    async with serving() as (server, port):
        pool = H1Pool()
        url = f"http://127.0.0.1:{port}"
        try:
            assert (await pool.request("POST", f"{url}/chunked", {}))[3] == b"abcde"
            assert (await pool.request("POST", f"{url}/until-close", {}))[3] == b"the end"
            status, _, headers, _ = await pool.request("POST", f"{url}/early-hints", {})
            assert status == 201 and headers["location"] == "/m/1"  # not the 103
            assert server.connections == 2  # the closed one was not reused
        finally:
            await pool.close()


async def test_an_idle_connection_the_server_dropped_is_replaced_not_failed() -> None:
    async with serving() as (server, port):
        pool = H1Pool()
        url = f"http://127.0.0.1:{port}/x"
        try:
            assert (await pool.request("POST", url, {}, b"1"))[0] == 201
            server.drop_next = True
            assert (await pool.request("POST", url, {}, b"2"))[3] == b"2"
            assert server.connections == 2 and len(server.requests) == 3
            server.drop_idle()  # closed while idle: the pool notices and connects anew
            await asyncio.sleep(0.05)
            assert (await pool.request("POST", url, {}, b"3"))[3] == b"3"
            assert server.connections == 3 and len(server.requests) == 4
            server.drop_next = True  # a new connection dropped: an error, not a resend
            with pytest.raises(H1Error):
                await H1Pool().request("POST", url, {}, b"4")
        finally:
            await pool.close()


async def test_what_must_fail() -> None:
    async with serving() as (server, port):
        pool = H1Pool(timeout=0.3)
        try:
            with pytest.raises(H1Error, match="no answer within"):
                await pool.request("POST", f"http://127.0.0.1:{port}/silent", {})
            assert len(server.requests) == 1  # a timeout is not sent again
            for bad in ({"Topic": "a\r\nX-Injected: 1"}, {"Bad\nName": "v"}):
                with pytest.raises(ValueError):
                    await pool.request("POST", f"http://127.0.0.1:{port}/x", bad)
            with pytest.raises(ValueError):
                await pool.request("POST", f"http://127.0.0.1:{port}/a b", {})
            with pytest.raises(ValueError):
                await pool.request("POST", "ftp://127.0.0.1/x", {})
            assert len(server.requests) == 1  # none of those left the client
        finally:
            await pool.close()
    with pytest.raises(H1Error, match="cannot connect"):
        await H1Pool().request("POST", f"http://127.0.0.1:{port}/x", {})


async def test_https_with_a_verified_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    async with serving(context) as (_server, port):
        trusted = H1Pool(context=ssl.create_default_context(cafile=str(cert)))
        try:
            assert (await trusted.request("POST", f"https://127.0.0.1:{port}/t", {}, b"ok")
                    )[3] == b"ko"
        finally:
            await trusted.close()
        with pytest.raises(H1Error, match="cannot connect"):  # the system's CAs: refused
            await H1Pool().request("POST", f"https://127.0.0.1:{port}/t", {})


async def test_a_cancelled_request_leaves_no_connection_for_the_next(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.notify import http1

    closed: list[object] = []
    close = http1._Connection.close

    def recording(conn: http1._Connection) -> None:
        closed.append(conn)
        close(conn)

    monkeypatch.setattr(http1._Connection, "close", recording)
    async with serving() as (server, port):
        pool = H1Pool()
        try:
            waiting = asyncio.create_task(
                pool.request("POST", f"http://127.0.0.1:{port}/silent", {}))
            await asyncio.sleep(0.1)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert len(closed) == 1  # closed at once, not left open for its late answer
            # the next request gets a new connection, not the one whose answer is due;
            # a URL's user:password never reaches the Host header
            answer = await pool.request("POST", f"http://u:p@127.0.0.1:{port}/x", {}, b"1")
            assert answer[3] == b"1" and server.connections == 2
            assert server.requests[-1][1]["host"] == f"127.0.0.1:{port}"
        finally:
            await pool.close()
