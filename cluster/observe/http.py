"""A small asyncio HTTP/1.1 server for the metrics, health and status endpoints.

GET and HEAD only, one request per connection (`Connection: close`), no request body. Everything a
client sends is bounded: the request head (`HEAD_BYTES_MAX`), the time to send it
(`HEAD_TIMEOUT_S`) and the number of open connections (`CONNECTIONS_MAX`; more are closed at once).
A malformed request gets 400 and a handler that raises gets 500 with one log line: a client never
stops the server. Handlers run on the node's event loop, so they read the node's state without locks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from cluster.aio import wait_for
from cluster.errors import BrookError

log = logging.getLogger("brook.http")

HEAD_BYTES_MAX = 8 * 1024
HEAD_TIMEOUT_S = 5.0
WRITE_TIMEOUT_S = 10.0
CONNECTIONS_MAX = 64
QUERY_FIELDS_MAX = 20

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error",
            503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


class RequestError(Exception):
    """The request head is not a valid HTTP/1.x request line."""


def parse_request_head(head: bytes) -> Request:
    """The method, path and query of a request head (request line + headers, CRLF-terminated)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as e:  # pragma: no cover - latin-1 decodes every byte
        raise RequestError("undecodable request") from e
    line = text.split("\r\n", 1)[0]
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise RequestError(f"bad request line {line[:80]!r}")
    method, target, _ = parts
    if not method.isalpha() or not method.isupper():
        raise RequestError(f"bad method {method[:20]!r}")
    try:
        url = urlsplit(target)
        return Request(method, url.path, parse_qs(url.query, max_num_fields=QUERY_FIELDS_MAX))
    except ValueError as e:  # too many query fields, a bad IPv6 literal
        raise RequestError(f"bad request target: {e}") from e


def render_response(response: Response, head_only: bool = False) -> bytes:
    reason = _REASONS.get(response.status, "Unknown")
    lines = [f"HTTP/1.1 {response.status} {reason}", f"Content-Type: {response.content_type}",
             f"Content-Length: {len(response.body)}", "Connection: close", "Cache-Control: no-store"]
    lines += [f"{k}: {v}" for k, v in response.headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


def text(status: int, body: str) -> Response:
    return Response(status, body.encode())


class HttpServer:
    """Serves `routes` (exact paths) on host:port; `port` is the bound port after `start()`."""

    def __init__(self, routes: Mapping[str, Handler]) -> None:
        self.routes = dict(routes)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        try:
            self._server = await asyncio.start_server(self._on_connection, host, port, limit=HEAD_BYTES_MAX)
        except OSError as e:
            raise BrookError(f"cannot listen on {host}:{port} (metrics.port): {e.strerror or e}") from e
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics/health/status HTTP endpoint on %s:%d", host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= CONNECTIONS_MAX:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (asyncio.CancelledError, ConnectionError, TimeoutError):
            pass
        except Exception as e:  # the last guard: one connection never reaches the server
            log.warning("http connection failed: %s: %s", type(e).__name__, e)
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except asyncio.IncompleteReadError:
            return
        except asyncio.LimitOverrunError:
            await self._write(writer, text(400, "request head too large\n"))
            return
        try:
            request = parse_request_head(head)
        except RequestError as e:
            await self._write(writer, text(400, f"{e}\n"))
            return
        await self._write(writer, await self.dispatch(request), head_only=request.method == "HEAD")

    async def dispatch(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"only GET and HEAD\n", headers={"Allow": "GET, HEAD"})
        handler = self.routes.get(request.path)
        if handler is None:
            return text(404, f"no such page: {request.path[:200]}; try {', '.join(sorted(self.routes))}\n")
        try:
            return await handler(request)
        except Exception as e:
            log.exception("http handler for %s failed", request.path)
            return text(500, f"{type(e).__name__}: {e}\n")

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, response: Response, head_only: bool = False) -> None:
        writer.write(render_response(response, head_only))
        await wait_for(writer.drain(), WRITE_TIMEOUT_S)
