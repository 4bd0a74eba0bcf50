"""The Kafka listener: an asyncio server speaking the Kafka wire protocol over a `BrokerCore`.

Per connection, one reader loop and one writer task:

  - the reader cuts the byte stream into frames (`FrameBuffer`, bounded by `socket.request.max.bytes`),
    decodes each request and starts its handler as a task at once, in arrival order, then puts the
    task on a bounded queue (`inflight_max`); a full queue stops reading (back-pressure);
  - the writer awaits the queued tasks in order and writes each response, so responses leave in
    request order while requests run concurrently (a Fetch long poll does not hold up a Metadata).

Handlers start in arrival order and `BrokerCore.produce` is called for each partition in that order,
so pipelined Produce requests append in order as long as the core appends (or takes its per-partition
FIFO turn) before it first yields.

Failures stay inside one connection: a malformed frame, an oversize frame, an unknown API, or a
handler that raises closes that connection with one log line; an unsupported ApiVersions version
gets UNSUPPORTED_VERSION with the full version list (KIP-511). Idle connections (nothing read and
nothing in flight for `connections.max.idle.ms`) are closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode

from broker.api import BrokerCore
from broker.kafka.codec import (
    API_VERSIONS_KEY,
    DecodedRequest,
    RequestDecodeError,
    UnsupportedRequest,
    decode_request,
    encode_response,
)
from broker.kafka.framing import FRAME_BYTES_MAX_DEFAULT, FrameBuffer, FrameError, FrameTooLarge
from broker.kafka.handlers import GroupHandler, KafkaHandlers

__all__ = ["KafkaListener", "start_kafka_listener"]

log = logging.getLogger("broker.kafka")

# Kafka's default connections.max.idle.ms (10 minutes).
IDLE_MS_DEFAULT = 600_000
# Requests of one connection being handled or waiting to be written; librdkafka pipelines up to
# max.in.flight (5 by default, 1,000,000 at most), so this caps memory, not normal clients.
INFLIGHT_MAX_DEFAULT = 64
READ_CHUNK_BYTES = 256 * 1024


class _Close:
    """Queue marker: close the connection after the responses queued before it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _config(core: BrokerCore, name: str, default: int) -> int:
    try:
        value = core.server_config(name)
    except Exception:  # the core's config may not know the property: use Kafka's default
        return default
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


class KafkaListener:
    """A running listener. `port` is the bound port (useful with port 0); `close()` stops it."""

    def __init__(self, handlers: KafkaHandlers, frame_bytes_max: int, idle_ms: int, inflight_max: int) -> None:
        if frame_bytes_max <= 0 or idle_ms <= 0 or inflight_max <= 0:
            raise ValueError("frame_bytes_max, idle_ms and inflight_max must be positive")
        self.handlers = handlers
        self.frame_bytes_max = frame_bytes_max
        self.idle_ms = idle_ms
        self.inflight_max = inflight_max
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.host = ""
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._on_connection, host, port, limit=READ_CHUNK_BYTES)
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]
        log.info("kafka listener on %s:%d", self.host, self.port)

    async def close(self) -> None:
        """Stop accepting, close every connection (in-flight requests are cancelled), and wait."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> KafkaListener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ one connection

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            await self._serve(reader, writer, f"{peer[0]}:{peer[1]}" if peer else "?")
        except asyncio.CancelledError:
            pass
        except Exception as e:  # the last guard: one connection's bug never reaches the server
            log.error("kafka connection %s failed: %s: %s", peer, type(e).__name__, e)
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        frames = FrameBuffer(self.frame_bytes_max)
        queue: asyncio.Queue[asyncio.Future[bytes | None] | _Close] = asyncio.Queue(maxsize=self.inflight_max)
        writer_task = asyncio.create_task(self._write_loop(queue, writer, peer))
        started: list[asyncio.Future[bytes | None]] = []
        idle_s = self.idle_ms / 1000
        last_activity = time.monotonic()
        try:
            while not writer_task.done():
                try:
                    data = await asyncio.wait_for(reader.read(READ_CHUNK_BYTES), timeout=idle_s)
                except TimeoutError:
                    started = [f for f in started if not f.done()]
                    if not started and time.monotonic() - last_activity >= idle_s:
                        log.info("kafka connection %s closed: idle for %d ms", peer, self.idle_ms)
                        return
                    continue
                if not data:
                    return
                last_activity = time.monotonic()
                try:
                    frames.feed(data)
                except FrameTooLarge as e:
                    log.warning("kafka connection %s closed: %s", peer, e)
                    return
                except FrameError as e:
                    log.warning("kafka connection %s closed: %s", peer, e)
                    return
                while (frame := frames.next_frame()) is not None:
                    item = self._start(frame, peer)
                    if not isinstance(item, _Close):
                        started.append(item)
                        if len(started) > 4 * self.inflight_max:
                            started = [f for f in started if not f.done()]
                    await queue.put(item)
                    if isinstance(item, _Close):
                        await writer_task  # flush the responses before the close, then stop
                        return
        finally:
            if not writer_task.done():
                writer_task.cancel()
            for future in started:
                future.cancel()
            await asyncio.gather(writer_task, *started, return_exceptions=True)

    def _start(self, frame: bytes, peer: str) -> asyncio.Future[bytes | None] | _Close:
        """Decode one frame and start handling it; returns the future of its response bytes."""
        try:
            request = decode_request(frame, self.handlers.versions)
        except UnsupportedRequest as e:
            if e.api_key == API_VERSIONS_KEY:
                response = self.handlers.api_versions_response(0, error=ErrorCode.unsupported_version)
                future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
                future.set_result(encode_response(API_VERSIONS_KEY, 0, e.correlation_id, response))
                return future
            log.warning("kafka connection %s closed: %s", peer, e)
            return _Close(str(e))
        except RequestDecodeError as e:
            log.warning("kafka connection %s closed: %s", peer, e)
            return _Close(str(e))
        return asyncio.ensure_future(self._handle(request, peer))

    async def _handle(self, request: DecodedRequest, peer: str) -> bytes | None:
        context = RequestContext(request.header.client_id or "", peer.rsplit(":", 1)[0], self.handlers.listener or "")
        response = await self.handlers.handle(request.api_key, request.api_version, request.body, context)
        if response is None:
            return None
        return encode_response(request.api_key, request.api_version, request.correlation_id, response)

    async def _write_loop(self, queue: asyncio.Queue[Any], writer: asyncio.StreamWriter, peer: str) -> None:
        while True:
            item = await queue.get()
            if isinstance(item, _Close):
                return
            try:
                payload = await item
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.error("kafka connection %s closed: request failed: %s: %s", peer, type(e).__name__, e)
                writer.close()
                return
            if payload is not None:
                writer.write(payload)
                await writer.drain()


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who sent a request (the group coordinator shows it per member), and on which listener."""

    client_id: str
    client_host: str
    listener: str = ""


async def start_kafka_listener(
    core: BrokerCore,
    host: str,
    port: int,
    group_handlers: Mapping[int, GroupHandler] | None = None,
    group_versions: Mapping[int, tuple[int, int]] | None = None,
    *,
    frame_bytes_max: int | None = None,
    idle_ms: int | None = None,
    inflight_max: int = INFLIGHT_MAX_DEFAULT,
    listener: str | None = None,
) -> KafkaListener:
    """Start the Kafka listener on host:port (port 0 picks a free port; see `.port`).

    `group_handlers` maps group API keys (8-16, 42, 47) to `async handler(request, api_version)`
    taking and returning kio dataclasses; `group_versions` gives each key's (min, max) version, and
    only those keys and versions are advertised. `frame_bytes_max` and `idle_ms` default to the core's
    `socket.request.max.bytes` and `connections.max.idle.ms` (Kafka's defaults when it has none).
    `listener` is the Kafka listener's name: Metadata and FindCoordinator on this listener answer with
    every broker's address on the listener of that name.
    """
    handlers = KafkaHandlers(core, group_handlers, group_versions, listener)
    if frame_bytes_max is None:
        frame_bytes_max = _config(core, "socket.request.max.bytes", FRAME_BYTES_MAX_DEFAULT)
    if idle_ms is None:
        idle_ms = _config(core, "connections.max.idle.ms", IDLE_MS_DEFAULT)
    listener = KafkaListener(handlers, frame_bytes_max, idle_ms, inflight_max)
    await listener.start(host, port)
    return listener
