"""gRPC settings shared by every server and client: raised message limits and keepalives on both ends.

gRPC's default receive limit is 4 MiB, below a replication response; keepalives must be set on both
ends or the server rejects the client's pings ("too_many_pings").
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from cluster.errors import ConfigError
from cluster.limits import GRPC_MESSAGE_BYTES_MAX

__all__ = [
    "GRPC_MESSAGE_BYTES_MAX",
    "GrpcTls",
    "add_port",
    "aio_channel",
    "channel_options",
    "configure_tls",
    "server_interceptors",
    "server_options",
    "sync_channel",
    "tls",
]

log = logging.getLogger("brook.grpc")


def channel_options(message_bytes_max: int = GRPC_MESSAGE_BYTES_MAX) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_send_message_length", message_bytes_max),
        ("grpc.max_receive_message_length", message_bytes_max),
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # Reconnect quickly after a peer restarts (the default backoff grows to 120 s).
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1_000),
        ("grpc.enable_retries", 0),
    ]


def server_options(message_bytes_max: int = GRPC_MESSAGE_BYTES_MAX) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_send_message_length", message_bytes_max),
        ("grpc.max_receive_message_length", message_bytes_max),
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.so_reuseport", 0),
    ]


# -- mutual TLS (grpc.ssl.enabled) ---------------------------------------------------------------------
#
# One process speaks gRPC with one identity (a node's certificate, or the CLI user's), so the TLS material
# is process-wide: the entry point (`brook server`, the CLI) calls `configure_tls` once, before it opens
# channels or ports; without it every channel and port is plaintext, as before.


@dataclass(frozen=True)
class GrpcTls:
    ca: bytes           # PEM CA certificates peers must chain to
    cert_chain: bytes   # this process's certificate chain (PEM)
    key: bytes          # its private key (PEM)
    super_users: frozenset[str] = frozenset()

    @classmethod
    def from_files(cls, ca: str, cert: str, key: str, super_users: frozenset[str] = frozenset()) -> GrpcTls:
        try:
            return cls(Path(ca).read_bytes(), Path(cert).read_bytes(), Path(key).read_bytes(), super_users)
        except OSError as e:
            raise ConfigError(f"cannot read TLS file {e.filename!r}: {e.strerror}") from None

    def common_name(self) -> str:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        cert = x509.load_pem_x509_certificate(self.cert_chain)
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else ""


_tls: GrpcTls | None = None


def configure_tls(tls: GrpcTls | None) -> None:
    global _tls
    _tls = tls


def tls() -> GrpcTls | None:
    return _tls


def _channel_credentials(t: GrpcTls) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=t.ca, private_key=t.key, certificate_chain=t.cert_chain)


def aio_channel(address: str) -> grpc.aio.Channel:
    """An asyncio channel to `address`: mutual TLS when configured, else plaintext."""
    if _tls is None:
        return grpc.aio.insecure_channel(address, options=channel_options())
    return grpc.aio.secure_channel(address, _channel_credentials(_tls), options=channel_options())


def sync_channel(address: str) -> grpc.Channel:
    if _tls is None:
        return grpc.insecure_channel(address, options=channel_options())
    return grpc.secure_channel(address, _channel_credentials(_tls), options=channel_options())


def add_port(server: grpc.aio.Server, address: str) -> int:
    """Bind `address`: with TLS, clients must present a certificate that chains to the CA."""
    if _tls is None:
        return server.add_insecure_port(address)
    credentials = grpc.ssl_server_credentials([(_tls.key, _tls.cert_chain)], root_certificates=_tls.ca,
                                              require_client_auth=True)
    return server.add_secure_port(address, credentials)


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    return [] if _tls is None else [IdentityInterceptor(_tls.super_users)]


@functools.lru_cache(maxsize=256)
def _subject(pem: bytes) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(pem)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return (str(names[0].value) if names else ""), cert.subject.rfc4514_string()


class IdentityInterceptor(grpc.aio.ServerInterceptor):
    """Checks every call against the peer certificate (`cluster.security.grpc_identity.check_call`): a
    unary call's request, and each request message of a bidirectional stream (ReplicaFetchStream)."""

    def __init__(self, super_users: frozenset[str]) -> None:
        self.super_users = super_users

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        from cluster.security.grpc_identity import check_call

        handler = await continuation(details)
        if handler is None:
            return handler
        method, super_users = details.method, self.super_users

        def identity(context: grpc.aio.ServicerContext) -> tuple[str, str]:
            pems = context.auth_context().get("x509_pem_cert") or [b""]
            return _subject(pems[0]) if pems[0] else ("", "")

        async def check(request: Any, context: grpc.aio.ServicerContext, cn: str, dn: str) -> None:
            reason = check_call(method, request, cn, dn, super_users)
            if reason is not None:
                log.warning("refused %s from %s: %s", method, context.peer(), reason)
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)

        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await check(request, context, *identity(context))
                return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(checked, request_deserializer=handler.request_deserializer,
                                                       response_serializer=handler.response_serializer)
        if handler.stream_stream is not None:
            inner_stream = handler.stream_stream

            async def checked_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                cn, dn = identity(context)

                async def checked_requests() -> Any:
                    async for request in requests:
                        await check(request, context, cn, dn)
                        yield request

                async for response in inner_stream(checked_requests(), context):
                    yield response

            return grpc.stream_stream_rpc_method_handler(checked_stream,
                                                         request_deserializer=handler.request_deserializer,
                                                         response_serializer=handler.response_serializer)
        return handler  # server-streaming (grpc.health.v1 Watch): unchanged
