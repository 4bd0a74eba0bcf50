"""cluster/limits.py: the shared limits hold their relations, and a broken relation fails at import.

Goal: a change of one limit that breaks a relation (a fetch reply larger than a gRPC message...) is
caught before any process runs. Method: check the relation table against the module's values, then
against the same values with one limit moved past its bound (each relation must catch its own case),
then re-import the module's source with a broken value and expect `LimitRelationError`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from cluster import limits
from cluster.grpcutil import GRPC_MESSAGE_BYTES_MAX, channel_options, server_options

MiB = 1024 * 1024


def test_the_current_limits_hold_every_relation() -> None:
    assert limits.relation_violations(limits.current_values()) == []


@pytest.mark.parametrize(
    ("name", "value", "broken"),
    [
        ("GRPC_FETCH_BYTES_MAX", 63 * MiB, "GRPC_FETCH_BYTES_MAX + RECORD_BATCH_BYTES_DEFAULT"),
        ("GRPC_MESSAGE_BYTES_MAX", 32 * MiB, "GRPC_FETCH_BYTES_MAX + RECORD_BATCH_BYTES_DEFAULT"),
        ("REPLICA_FETCH_PARTITION_BYTES_MAX", 9 * MiB, "REPLICA_FETCH_PARTITION_BYTES_MAX <= REPLICA_FETCH_BYTES_MAX"),
        ("REPLICA_FETCH_BYTES_MAX", 33 * MiB, "REPLICA_FETCH_BYTES_MAX <= GRPC_FETCH_BYTES_MAX"),
        ("CLIENT_FETCH_BYTES_MAX", 33 * MiB, "CLIENT_FETCH_BYTES_MAX <= GRPC_FETCH_BYTES_MAX"),
        ("CLIENT_PRODUCE_BATCH_BYTES_MAX", 1_048_588, "CLIENT_PRODUCE_BATCH_BYTES_MAX < RECORD_BATCH_BYTES_DEFAULT"),
        ("OFFSETS_WRITE_BATCH_BYTES_MAX", 2 * MiB, "OFFSETS_WRITE_BATCH_BYTES_MAX < RECORD_BATCH_BYTES_DEFAULT"),
        ("RECORD_BATCH_BYTES_DEFAULT", 200 * MiB, "RECORD_BATCH_BYTES_DEFAULT <= KAFKA_REQUEST_BYTES_DEFAULT"),
        ("GRPC_MESSAGE_BYTES_MAX", 2**31, "4 MiB <= GRPC_MESSAGE_BYTES_MAX <= INT_MAX"),
    ],
)
def test_each_relation_catches_its_own_break(name: str, value: int, broken: str) -> None:
    values = dict(limits.current_values(), **{name: value})
    violations = limits.relation_violations(values)
    assert violations, f"{name}={value} broke no relation"
    assert any(v.startswith(broken) for v in violations), violations
    with pytest.raises(limits.LimitRelationError, match="limits break their relations"):
        limits.check_relations(values)


def test_importing_broken_limits_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = Path(limits.__file__).read_text()
    assert "GRPC_FETCH_BYTES_MAX = 32 * _MiB\n" in source
    broken = tmp_path / "broken_limits.py"
    broken.write_text(source.replace("GRPC_FETCH_BYTES_MAX = 32 * _MiB\n", "GRPC_FETCH_BYTES_MAX = 64 * _MiB\n"))
    spec = importlib.util.spec_from_file_location("broken_limits", broken)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "broken_limits", module)  # dataclasses look their module up
    with pytest.raises(Exception, match="GRPC_FETCH_BYTES_MAX") as raised:
        spec.loader.exec_module(module)
    assert type(raised.value).__name__ == "LimitRelationError"  # the copy's own class, not limits'


def test_current_values_are_the_named_limits() -> None:
    values = limits.current_values()
    assert values["GRPC_MESSAGE_BYTES_MAX"] == limits.GRPC_MESSAGE_BYTES_MAX
    assert values["LONG_MAX"] == 2**63 - 1 and values["INT_MIN"] == -(2**31)
    assert not any(name.startswith("_") for name in values)


def test_grpc_options_use_the_shared_message_limit() -> None:
    assert GRPC_MESSAGE_BYTES_MAX is limits.GRPC_MESSAGE_BYTES_MAX
    for options in (channel_options(), server_options()):
        assert ("grpc.max_receive_message_length", limits.GRPC_MESSAGE_BYTES_MAX) in options
        assert ("grpc.max_send_message_length", limits.GRPC_MESSAGE_BYTES_MAX) in options
