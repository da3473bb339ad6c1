"""The HTTP/2 connection pool against a real HTTP/2 TLS server on loopback: multiplexing
within a bound, large bodies under flow control, and failures it must report."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from conveyor.demo.h2server import H2Server, Request, Response, server_context
from conveyor.notify.http2 import H2Error, H2Pool, _ClientH2, unindexed
from tests.support.tls import self_signed


def echo(request: Request) -> Response:
    return 200, [("x-path", request.path)], request.body[::-1]


async def test_many_requests_share_a_bounded_pool(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = H2Server(echo, server_context(cert, key), max_streams=20)
    async with server:
        pool = H2Pool("127.0.0.1", server.port, size=3,
                      context=ssl.create_default_context(cafile=str(cert)))
        try:
            answers = await asyncio.gather(*(
                pool.request("POST", f"/n/{i}", [("content-type", "text/plain")],
                             str(i).encode()) for i in range(300)))
            assert [a[2] for a in answers] == [str(i)[::-1].encode() for i in range(300)]
            assert answers[7][0] == 200 and answers[7][1]["x-path"] == "/n/7"
            assert len(server._live) <= 3  # never more connections than the pool's size
            big = bytes(range(256)) * 1000  # 256 kB: past every default window
            status, _, body = await pool.request("POST", "/big", [], big)
            assert status == 200 and body == big[::-1]
        finally:
            await pool.close()


async def test_a_dropped_connection_fails_its_requests_retryably(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    hold: list[Request] = []

    def stall(request: Request) -> Response:
        hold.append(request)
        raise ConnectionAbortedError  # the server answers 500 ...

    server = H2Server(stall, server_context(cert, key))
    async with server:
        pool = H2Pool("127.0.0.1", server.port, context=ssl.create_default_context(
            cafile=str(cert)), timeout=0.5)
        try:
            status, _, _ = await pool.request("GET", "/", [])
            assert status == 500 and len(hold) == 1
            for conn in list(server._live):  # ... and now the connection goes away
                assert conn.transport is not None
                conn.transport.abort()
            await asyncio.sleep(0.05)
            status, _, _ = await pool.request("GET", "/", [])  # a new connection
            assert status == 500 and len(hold) == 2
        finally:
            await pool.close()
    with pytest.raises(H2Error) as refused:
        await H2Pool("127.0.0.1", server.port, context=ssl.create_default_context(
            cafile=str(cert))).request("GET", "/", [])
    assert refused.value.retryable


async def test_a_server_without_http2_is_a_permanent_error(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(["http/1.1"])
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0,
                                        ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(H2Error) as refused:
            await H2Pool("127.0.0.1", port, context=ssl.create_default_context(
                cafile=str(cert))).request("GET", "/", [])
        assert not refused.value.retryable
    finally:
        server.close()
        await server.wait_closed()


async def test_no_answer_in_time_is_a_retryable_error(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = server_context(cert, key)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)  # reads the preface, never answers
        await asyncio.sleep(2)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    pool = H2Pool("127.0.0.1", port, context=ssl.create_default_context(cafile=str(cert)),
                  timeout=0.3)
    try:
        with pytest.raises(H2Error, match="no response within"):
            await pool.request("GET", "/", [])
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()


async def test_finished_streams_are_forgotten_and_one_off_headers_stay_unindexed(
        tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = H2Server(echo, server_context(cert, key), max_streams=1000)
    async with server:
        pool = H2Pool("127.0.0.1", server.port, size=1,
                      context=ssl.create_default_context(cafile=str(cert)))
        try:
            for batch in range(12):  # 600 streams, 50 in flight at a time
                answers = await asyncio.gather(*(pool.request(
                    "POST", f"/n/{batch}/{i}",
                    [unindexed("authorization", "bearer SECRET"), ("x-kept", "same"),
                     unindexed("x-id", f"id-{batch}-{i}")], b"x") for i in range(50)))
                assert {a[0] for a in answers} == {200}
            (conn,) = pool._conns
            # h2 holds no more than a bounded number of streams, open or finished
            assert len(conn.h2.streams) <= _ClientH2._PRUNE_AT
            table = {k for k, _ in conn.h2.encoder.header_table.dynamic_entries}
            assert b"x-kept" in table  # what repeats is indexed ...
            assert b"authorization" not in table and b"x-id" not in table  # ... not these
        finally:
            await pool.close()
