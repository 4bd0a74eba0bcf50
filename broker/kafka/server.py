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

Limits (issue 11): at most `max.connections` connections and `max.connections.per.ip` from one
address (more are closed at accept); per connection at most `inflight_max` requests being handled or
waiting to be written, so produce and fetch waiters per connection are bounded; a frame is at most
`socket.request.max.bytes` and is walked by `precheck` before kio decodes it; Fetch responses are
capped by the broker's `fetch.max.bytes`.

Security (issue 11): a listener has a security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).
TLS is asyncio's (`ListenerSecurity.ssl_context`); with a verified client certificate the principal is
`User:<subject DN>` after `ssl.principal.mapping.rules`. On SASL listeners each connection runs the SASL
exchange (`broker.kafka.sasl.SaslState`) first: until it succeeds only ApiVersions, SaslHandshake and
SaslAuthenticate are served, each answered before the next frame is read, and anything else closes the
connection. Every request then carries a `RequestContext` with the principal and the authorizer.

Failures stay inside one connection: a malformed frame, an oversize frame, an unknown API, or a
handler that raises closes that connection with one log line; an unsupported ApiVersions version
gets UNSUPPORTED_VERSION with the full version list (KIP-511). Idle connections (nothing read and
nothing in flight for `connections.max.idle.ms`) are closed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode

from broker.api import BrokerCore
from broker.kafka.codec import (
    API_VERSIONS_KEY,
    ZERO_MS,
    DecodedRequest,
    RequestDecodeError,
    UnsupportedRequest,
    build,
    decode_request,
    encode_response,
    response_module,
)
from broker.kafka.fetch_sessions import FetchSessionCache
from broker.kafka.framing import FRAME_BYTES_MAX_DEFAULT, FrameBuffer, FrameError, FrameTooLarge
from broker.kafka.handlers import GroupHandler, KafkaHandlers, new_fetch_session_cache
from broker.kafka.sasl import AUTHENTICATE_KEY, HANDSHAKE_KEY, SaslState
from broker.kafka.session import Authorizer, RequestContext
from cluster.aio import wait_for
from cluster.security.acl import ANONYMOUS
from cluster.security.principal import MappingRule, apply_mapping_rules, subject_dn

__all__ = ["KafkaListener", "ListenerSecurity", "RequestContext", "start_kafka_listener"]

log = logging.getLogger("broker.kafka")

# Kafka's default connections.max.idle.ms (10 minutes).
IDLE_MS_DEFAULT = 600_000
# Requests of one connection being handled or waiting to be written; librdkafka pipelines up to
# max.in.flight (5 by default, 1,000,000 at most), so this caps memory, not normal clients.
INFLIGHT_MAX_DEFAULT = 64
READ_CHUNK_BYTES = 256 * 1024
# A TLS handshake that has not finished by then is dropped (asyncio's default is 60 s).
SSL_HANDSHAKE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ListenerSecurity:
    """How one Kafka listener authenticates: its name, protocol, TLS context and SASL mechanisms."""

    name: str = "PLAINTEXT"
    protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    mechanisms: tuple[str, ...] = ()
    mapping_rules: tuple[MappingRule, ...] = (MappingRule(None),)

    def __post_init__(self) -> None:
        assert self.protocol in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"), self.protocol
        assert (self.ssl_context is not None) == self.protocol.endswith("SSL"), "TLS iff an SSL protocol"

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")


PLAINTEXT = ListenerSecurity()


class _Connection:
    """One connection's authentication state."""

    def __init__(self, security: ListenerSecurity, handlers: KafkaHandlers, host: str, principal: str) -> None:
        self.host = host
        self.principal = principal
        self.sasl: SaslState | None = None
        self.close_after = False  # a failed SASL step: close once its answer is written
        if security.sasl:
            image = handlers.core.image
            self.sasl = SaslState(
                security.mechanisms,
                lambda user, mechanism: image().scram_credential(user, mechanism),
                lambda user: list(image().scram.get(user, {}).values()),
                lambda: secrets.token_urlsafe(24))

    @property
    def authenticated(self) -> bool:
        return self.sasl is None or self.sasl.authenticated


# Brook's defaults of max.connections / max.connections.per.ip (Kafka's are unlimited).
CONNECTIONS_MAX_DEFAULT = 10_000
CONNECTIONS_PER_IP_MAX_DEFAULT = 1_000
# Kafka's default fetch.max.bytes (55 MiB).
FETCH_BYTES_MAX_DEFAULT = 57_671_680


def accept_refusal(open_total: int, open_from_ip: int, total_max: int, per_ip_max: int) -> str | None:
    """Why a new connection must be refused (max.connections, max.connections.per.ip), or None."""
    if open_total >= total_max:
        return f"max.connections={total_max} reached"
    if open_from_ip >= per_ip_max:
        return f"max.connections.per.ip={per_ip_max} reached"
    return None


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

    def __init__(self, handlers: KafkaHandlers, frame_bytes_max: int, idle_ms: int, inflight_max: int,
                 security: ListenerSecurity = PLAINTEXT, authorizer: Authorizer | None = None,
                 connections_max: int = CONNECTIONS_MAX_DEFAULT,
                 connections_per_ip_max: int = CONNECTIONS_PER_IP_MAX_DEFAULT) -> None:
        if min(frame_bytes_max, idle_ms, inflight_max, connections_max, connections_per_ip_max) <= 0:
            raise ValueError("frame_bytes_max, idle_ms, inflight_max and the connection limits must be positive")
        self.handlers = handlers
        self.security = security
        self.authorizer = authorizer
        self.frame_bytes_max = frame_bytes_max
        self.idle_ms = idle_ms
        self.inflight_max = inflight_max
        self.connections_max = connections_max
        self.connections_per_ip_max = connections_per_ip_max
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._per_ip: dict[str, int] = {}
        self.refused_connections = 0
        self.host = ""
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._on_connection, host, port, limit=READ_CHUNK_BYTES,
                                                  ssl=self.security.ssl_context,
                                                  ssl_handshake_timeout=SSL_HANDSHAKE_TIMEOUT_S
                                                  if self.security.ssl_context is not None else None)
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]
        log.info("kafka listener %s (%s) on %s:%d", self.security.name, self.security.protocol, self.host,
                 self.port)

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
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if peer else "?"
        refusal = accept_refusal(len(self._connections), self._per_ip.get(ip, 0), self.connections_max,
                                 self.connections_per_ip_max)
        if refusal is not None:
            self.refused_connections += 1
            if self.refused_connections % 100 == 1:  # one line per burst, not per connection
                log.warning("kafka connection from %s refused: %s (%d refused so far)", ip, refusal,
                            self.refused_connections)
            writer.close()
            return
        self._connections.add(task)
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        try:
            principal = self._tls_principal(writer)
            if principal is None:
                log.warning("kafka connection %s closed: no ssl.principal.mapping.rules rule matches the "
                            "client certificate", peer)
                return
            connection = _Connection(self.security, self.handlers, str(peer[0]) if peer else "", principal)
            await self._serve(reader, writer, f"{peer[0]}:{peer[1]}" if peer else "?", connection)
        except asyncio.CancelledError:
            pass
        except Exception as e:  # the last guard: one connection's bug never reaches the server
            log.error("kafka connection %s failed: %s: %s", peer, type(e).__name__, e)
        finally:
            self._connections.discard(task)
            left = self._per_ip.get(ip, 1) - 1
            if left > 0:
                self._per_ip[ip] = left
            else:
                self._per_ip.pop(ip, None)
            writer.close()

    def _tls_principal(self, writer: asyncio.StreamWriter) -> str | None:
        """User:<mapped subject DN> of a verified client certificate, else User:ANONYMOUS.

        On SASL_SSL the SASL user is the principal (as in Kafka), whatever certificate the client sent."""
        if self.security.ssl_context is None or self.security.sasl:
            return ANONYMOUS
        cert = writer.get_extra_info("peercert")
        if not cert or not cert.get("subject"):
            return ANONYMOUS  # no certificate (ssl.client.auth=none/requested)
        name = apply_mapping_rules(self.security.mapping_rules, subject_dn(cert["subject"]))
        return None if name is None else f"User:{name}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str,
                     connection: _Connection) -> None:
        frames = FrameBuffer(self.frame_bytes_max)
        queue: asyncio.Queue[asyncio.Future[bytes | None] | _Close] = asyncio.Queue(maxsize=self.inflight_max)
        writer_task = asyncio.create_task(self._write_loop(queue, writer, peer))
        started: list[asyncio.Future[bytes | None]] = []
        idle_s = self.idle_ms / 1000
        last_activity = time.monotonic()
        try:
            while not writer_task.done():
                try:
                    data = await wait_for(reader.read(READ_CHUNK_BYTES), idle_s)
                except TimeoutError:
                    if started:
                        # A request was in flight during this period: the connection was not idle, and
                        # its response may still be on its way to the writer. Idle time starts now.
                        last_activity = time.monotonic()
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
                    item = self._start(frame, peer, connection)
                    if not isinstance(item, _Close):
                        started.append(item)
                        if len(started) > 4 * self.inflight_max:
                            started = [f for f in started if not f.done()]
                    await queue.put(item)
                    if connection.close_after and not isinstance(item, _Close):
                        item = _Close("SASL authentication failed")
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

    def _start(self, frame: bytes, peer: str, connection: _Connection) -> asyncio.Future[bytes | None] | _Close:
        """Decode one frame and start handling it; returns the future of its response bytes."""
        if connection.sasl is not None and connection.sasl.raw_tokens:
            return self._raw_token(frame, peer, connection)
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
        if not connection.authenticated:
            return self._start_unauthenticated(request, peer, connection)
        return asyncio.ensure_future(self._handle(request, peer, connection))

    def _raw_token(self, frame: bytes, peer: str, connection: _Connection) -> asyncio.Future[bytes | None] | _Close:
        """After SaslHandshake v0 the tokens come as raw frames and go back as raw size-prefixed bytes."""
        sasl = connection.sasl
        assert sasl is not None
        result = sasl.authenticate(frame)
        if result.close:
            log.warning("kafka connection %s closed: SASL %s failed: %s", peer, sasl.mechanism, result.message)
            return _Close(result.message)
        self._note_authenticated(connection, peer)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        future.set_result(struct.pack(">i", len(result.token)) + result.token)
        return future

    def _start_unauthenticated(self, request: DecodedRequest, peer: str,
                               connection: _Connection) -> asyncio.Future[bytes | None] | _Close:
        """Before SASL succeeds: ApiVersions, SaslHandshake and SaslAuthenticate only.

        The SASL steps are answered here, synchronously, so the next frame sees the new state. A
        failure is answered and then the connection is closed (`_Connection.close_after`).
        """
        sasl = connection.sasl
        assert sasl is not None
        if not sasl.allows_before_auth(request.api_key):
            log.warning("kafka connection %s closed: api_key=%d before SASL authentication", peer, request.api_key)
            return _Close("request before SASL authentication")
        if request.api_key == API_VERSIONS_KEY:
            return asyncio.ensure_future(self._handle(request, peer, connection))
        if request.api_key == HANDSHAKE_KEY:
            result = sasl.handshake(request.body.mechanism, request.api_version)
            mod = response_module(HANDSHAKE_KEY, request.api_version)
            response = build(mod.SaslHandshakeResponse, error_code=result.error, mechanisms=sasl.mechanisms)
        else:
            assert request.api_key == AUTHENTICATE_KEY
            result = sasl.authenticate(bytes(request.body.auth_bytes))
            mod = response_module(AUTHENTICATE_KEY, request.api_version)
            response = build(mod.SaslAuthenticateResponse, error_code=result.error,
                             error_message=result.message or None, auth_bytes=result.token, session_lifetime=ZERO_MS)
            if not result.close:
                self._note_authenticated(connection, peer)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        future.set_result(encode_response(request.api_key, request.api_version, request.correlation_id, response))
        if result.close:
            log.warning("kafka connection %s: SASL failed: %s", peer, result.message)
            connection.close_after = True
        return future

    @staticmethod
    def _note_authenticated(connection: _Connection, peer: str) -> None:
        sasl = connection.sasl
        if sasl is not None and sasl.authenticated:
            connection.principal = f"User:{sasl.user}"
            log.info("kafka connection %s authenticated as %s (%s)", peer, connection.principal, sasl.mechanism)

    async def _handle(self, request: DecodedRequest, peer: str, connection: _Connection) -> bytes | None:
        context = RequestContext(request.header.client_id or "", connection.host, connection.principal,
                                 self.authorizer, self.security.name)
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



def fetch_session_cache(core: BrokerCore) -> FetchSessionCache:
    """The broker's consumer fetch session cache, sized by max.incremental.fetch.session.cache.slots and
    min.incremental.fetch.session.eviction.ms (one per broker: every listener shares it)."""
    return new_fetch_session_cache(_config(core, "max.incremental.fetch.session.cache.slots", 1000),
                                   _config(core, "min.incremental.fetch.session.eviction.ms", 120_000))


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
    security: ListenerSecurity = PLAINTEXT,
    authorizer: Authorizer | None = None,
    connections_max: int | None = None,
    connections_per_ip_max: int | None = None,
    fetch_sessions: FetchSessionCache | None = None,
) -> KafkaListener:
    """Start the Kafka listener on host:port (port 0 picks a free port; see `.port`).

    `group_handlers` maps group API keys (8-16, 42, 47) to `async handler(request, api_version)`
    taking and returning kio dataclasses; `group_versions` gives each key's (min, max) version, and
    only those keys and versions are advertised. `frame_bytes_max` and `idle_ms` default to the core's
    `socket.request.max.bytes` and `connections.max.idle.ms` (Kafka's defaults when it has none).
    """
    handlers = KafkaHandlers(core, group_handlers, group_versions,
                             fetch_sessions=fetch_sessions or fetch_session_cache(core))
    handlers.fetch_bytes_max = _config(core, "fetch.max.bytes", FETCH_BYTES_MAX_DEFAULT)
    if frame_bytes_max is None:
        frame_bytes_max = _config(core, "socket.request.max.bytes", FRAME_BYTES_MAX_DEFAULT)
    if idle_ms is None:
        idle_ms = _config(core, "connections.max.idle.ms", IDLE_MS_DEFAULT)
    if connections_max is None:
        connections_max = _config(core, "max.connections", CONNECTIONS_MAX_DEFAULT)
    if connections_per_ip_max is None:
        connections_per_ip_max = _config(core, "max.connections.per.ip", CONNECTIONS_PER_IP_MAX_DEFAULT)
    listener = KafkaListener(handlers, frame_bytes_max, idle_ms, inflight_max, security, authorizer,
                             connections_max=connections_max, connections_per_ip_max=connections_per_ip_max)
    await listener.start(host, port)
    return listener
