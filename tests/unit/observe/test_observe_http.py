"""The metrics/health/status HTTP server: request parsing (table) and hostile clients against a real
server on loopback (oversize heads, garbage, slow clients, too many connections, a failing handler)."""

from __future__ import annotations

import asyncio

import pytest

from cluster.errors import BrookError
from cluster.observe import http
from cluster.observe.http import HttpServer, Request, RequestError, Response, parse_request_head, text


@pytest.mark.parametrize("head, method, path, query", [
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/metrics", {}),
    (b"HEAD /healthz/ready HTTP/1.0\r\n\r\n", "HEAD", "/healthz/ready", {}),
    (b"GET /ui?nodes=a:1,b:2&interval_ms=700 HTTP/1.1\r\n\r\n", "GET", "/ui", {"nodes": ["a:1,b:2"], "interval_ms": ["700"]}),
    (b"POST /metrics HTTP/1.1\r\n\r\n", "POST", "/metrics", {}),
])
def test_parse_request_head(head, method, path, query):
    request = parse_request_head(head)
    assert (request.method, request.path, dict(request.query)) == (method, path, query)


@pytest.mark.parametrize("head", [
    b"\r\n\r\n", b"GET\r\n\r\n", b"GET /metrics\r\n\r\n", b"GET metrics HTTP/1.1\r\n\r\n",
    b"GET /metrics SPDY/3\r\n\r\n", b"get /metrics HTTP/1.1\r\n\r\n", b"G3T /metrics HTTP/1.1\r\n\r\n",
    b"GET  /metrics HTTP/1.1\r\n\r\n", b"GET /ui?" + b"&".join(b"a%d=1" % i for i in range(30)) + b" HTTP/1.1\r\n\r\n",
    b"GET //[::1 HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello
])
def test_bad_request_lines_are_refused(head):
    with pytest.raises(RequestError):
        parse_request_head(head)


async def _boom(request: Request) -> Response:
    raise RuntimeError("handler bug")


async def _hello(request: Request) -> Response:
    return text(200, "hello\n")


async def _exchange(port: int, data: bytes, close_write: bool = False) -> bytes:
    """Send `data`, read to EOF; b"" when the server closed without answering (a reset included)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if close_write:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


def _status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply else 0


@pytest.mark.timeout(60)
def test_hostile_clients_get_errors_and_the_server_keeps_serving(monkeypatch):
    monkeypatch.setattr(http, "HEAD_TIMEOUT_S", 0.3)
    monkeypatch.setattr(http, "CONNECTIONS_MAX", 4)

    async def scenario() -> None:
        server = HttpServer({"/hello": _hello, "/boom": _boom})
        await server.start("127.0.0.1", 0)
        port = server.port
        try:
            ok = await _exchange(port, b"GET /hello HTTP/1.1\r\n\r\n")
            assert _status(ok) == 200 and ok.endswith(b"hello\n") and b"Content-Length: 6" in ok
            assert _status(await _exchange(port, b"GET /nope HTTP/1.1\r\n\r\n")) == 404
            assert _status(await _exchange(port, b"POST /hello HTTP/1.1\r\n\r\n")) == 405
            assert _status(await _exchange(port, b"GET /boom HTTP/1.1\r\n\r\n")) == 500
            assert _status(await _exchange(port, b"\x00\xff garbage\r\n\r\n")) == 400
            assert _status(await _exchange(port, b"GET /" + b"a" * (http.HEAD_BYTES_MAX + 10))) == 400
            head = await _exchange(port, b"HEAD /hello HTTP/1.1\r\n\r\n")
            assert _status(head) == 200 and not head.endswith(b"hello\n")
            assert await _exchange(port, b"GET /hello HTTP/1.1\r\n", close_write=True) == b""  # incomplete head
            # Slow clients that never finish their head are cut off after HEAD_TIMEOUT_S...
            slow = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
            # ... and beyond CONNECTIONS_MAX a connection is closed at once.
            extra = await _exchange(port, b"GET /hello HTTP/1.1\r\n\r\n")
            assert extra == b""
            for reader, writer in slow:
                assert await asyncio.wait_for(reader.read(), 10) == b""
                writer.close()
            await asyncio.sleep(0.05)
            assert _status(await _exchange(port, b"GET /hello HTTP/1.1\r\n\r\n")) == 200
        finally:
            await server.close()

    asyncio.run(scenario())


def test_a_port_in_use_is_a_one_line_error():
    async def scenario() -> None:
        first = HttpServer({})
        await first.start("127.0.0.1", 0)
        try:
            with pytest.raises(BrookError, match=r"cannot listen on 127\.0\.0\.1:\d+ \(metrics\.port\)"):
                await HttpServer({}).start("127.0.0.1", first.port)
        finally:
            await first.close()

    asyncio.run(scenario())
