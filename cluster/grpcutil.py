"""gRPC settings shared by every server and client: raised message limits and keepalives on both ends.

gRPC's default receive limit is 4 MiB, below a replication response; keepalives must be set on both
ends or the server rejects the client's pings ("too_many_pings").
"""

from __future__ import annotations

from typing import Any

from cluster.limits import GRPC_MESSAGE_BYTES_MAX

__all__ = ["GRPC_MESSAGE_BYTES_MAX", "channel_options", "server_options"]


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
