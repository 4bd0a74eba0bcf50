"""Shared helpers for the Kafka listener tests: the fake core, sample requests, a raw wire client."""

from __future__ import annotations

import asyncio
import datetime
import importlib
import struct
import sys
from pathlib import Path
from typing import Any

from kio.schema.errors import ErrorCode

from broker.kafka.codec import build, decode_response, encode_request, request_class

try:
    from tests.compat.fake_core import FakeCore
except ImportError:  # plain `pytest` does not put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from tests.compat.fake_core import FakeCore

__all__ = ["FakeCore", "WireClient", "make_batch", "sample_request"]

_MS = datetime.timedelta(milliseconds=1)


def make_batch(count: int = 1, attributes: int = 0, magic: int = 2) -> bytes:
    """A syntactically valid-looking RecordBatch v2 with `count` (fake) records; CRC not computed."""
    records = b"\x00" * (10 * count)
    body = struct.pack(">bIhiqqqhii", magic, 0, attributes, count - 1, 0, 0, -1, -1, -1, count) + records
    # batchLength counts from partitionLeaderEpoch to the end.
    return struct.pack(">qii", 0, 4 + len(body), 0) + body


def _request_module(api_key: int, version: int) -> Any:
    return importlib.import_module(request_class(api_key, version).__module__)


def sample_request(api_key: int, version: int, topic: str = "t") -> Any:
    """A valid request of this API version, touching `topic` partition 0 where the API has partitions."""
    m = _request_module(api_key, version)
    cls = request_class(api_key, version)
    if api_key == 0:
        part = build(m.PartitionProduceData, index=0, records=make_batch(2))
        return build(cls, transactional_id=None, acks=-1, timeout=1000 * _MS,
                     topic_data=(build(m.TopicProduceData, name=topic, partition_data=(part,)),))
    if api_key == 1:
        part = build(m.FetchPartition, partition=0, fetch_offset=0, partition_max_bytes=1 << 20)
        return build(cls, max_wait=10 * _MS, min_bytes=0, max_bytes=1 << 20,
                     topics=(build(m.FetchTopic, topic=topic, partitions=(part,)),), forgotten_topics_data=())
    if api_key == 2:
        part = build(m.ListOffsetsPartition, partition_index=0, timestamp=-1)
        return build(cls, replica_id=-1, isolation_level=0, timeout=1000 * _MS,
                     topics=(build(m.ListOffsetsTopic, name=topic, partitions=(part,)),))
    if api_key == 3:
        t = build(m.MetadataRequestTopic, name=topic, topic_id=None)
        return build(cls, topics=(t,), allow_auto_topic_creation=True, include_cluster_authorized_operations=False,
                     include_topic_authorized_operations=False)
    if api_key == 18:
        return build(cls, client_software_name="brook-test", client_software_version="1.0")
    if api_key == 19:
        t = build(m.CreatableTopic, name=f"{topic}-created", num_partitions=2, replication_factor=1,
                  assignments=(), configs=(build(m.CreatableTopicConfig, name="retention.ms", value="1000"),))
        return build(cls, topics=(t,), timeout=1000 * _MS, validate_only=False)
    if api_key == 55:
        t = build(m.TopicData, topic_name="__cluster_metadata", partitions=(build(m.PartitionData, partition_index=0),))
        return build(cls, topics=(t,))
    if api_key == 37:
        t = build(m.CreatePartitionsTopic, name=topic, count=2, assignments=None)
        return build(cls, topics=(t,), timeout=1000 * _MS, validate_only=False)
    if api_key == 20:
        if version >= 6:
            return build(cls, topics=(build(m.DeleteTopicState, name=topic, topic_id=None),),
                         timeout=1000 * _MS)
        return build(cls, topic_names=(topic,), timeout=1000 * _MS)
    if api_key == 22:
        return build(cls, transactional_id=None, transaction_timeout=60000 * _MS, producer_id=-1, producer_epoch=-1)
    if api_key == 23:
        p = build(m.OffsetForLeaderPartition, partition=0, current_leader_epoch=-1, leader_epoch=0)
        return build(cls, replica_id=-1, topics=(build(m.OffsetForLeaderTopic, topic=topic, partitions=(p,)),))
    if api_key == 32:
        r = build(m.DescribeConfigsResource, resource_type=2, resource_name=topic, configuration_keys=None)
        return build(cls, resources=(r,), include_synonyms=False, include_documentation=False)
    if api_key == 33:
        r = build(m.AlterConfigsResource, resource_type=2, resource_name=topic,
                  configs=(build(m.AlterableConfig, name="retention.ms", value="5"),))
        return build(cls, resources=(r,), validate_only=False)
    if api_key == 43:
        tp = build(m.TopicPartitions, topic=topic, partitions=(0,))
        return build(cls, election_type=0, topic_partitions=(tp,), timeout=1000 * _MS)
    if api_key == 44:
        r = build(m.AlterConfigsResource, resource_type=2, resource_name=topic,
                  configs=(build(m.AlterableConfig, name="retention.ms", config_operation=0, value="7"),))
        return build(cls, resources=(r,), validate_only=False)
    if api_key == 45:
        p = build(m.ReassignablePartition, partition_index=0, replicas=(1,))  # where it is: a no-op
        extra = {"allow_replication_factor_change": True} if version >= 1 else {}
        return build(cls, timeout=1000 * _MS, topics=(build(m.ReassignableTopic, name=topic, partitions=(p,)),),
                     **extra)
    if api_key == 46:
        return build(cls, timeout=1000 * _MS, topics=(build(m.ListPartitionReassignmentsTopics, name=topic,
                                                            partition_indexes=(0,)),))
    if api_key == 64:
        return build(cls, broker_id=1)
    if api_key == 21:
        p = build(m.DeleteRecordsPartition, partition_index=0, offset=1)
        return build(cls, topics=(build(m.DeleteRecordsTopic, name=topic, partitions=(p,)),), timeout=1000 * _MS)
    if api_key == 35:
        return build(cls, topics=(build(m.DescribableLogDirTopic, topic=topic, partitions=(0,)),))
    if api_key == 61:
        return build(cls, topics=(build(m.TopicRequest, name=topic, partition_indexes=(0,)),))
    if api_key == 60:
        return build(cls, include_cluster_authorized_operations=False, endpoint_type=1, include_fenced_brokers=False)
    if api_key == 17:
        return build(cls, mechanism="SCRAM-SHA-512")
    if api_key == 36:
        return build(cls, auth_bytes=b"n,,n=alice,r=nonce")
    if api_key == 29:
        return build(cls, resource_type_filter=2, resource_name_filter=topic, pattern_type_filter=3,
                     principal_filter=None, host_filter=None, operation=1, permission_type=1)
    if api_key == 30:
        c = build(m.AclCreation, resource_type=2, resource_name=topic, resource_pattern_type=3,
                  principal="User:alice", host="*", operation=3, permission_type=3)
        return build(cls, creations=(c,))
    if api_key == 31:
        f = build(m.DeleteAclsFilter, resource_type_filter=2, resource_name_filter=topic, pattern_type_filter=3,
                  principal_filter=None, host_filter=None, operation=1, permission_type=1)
        return build(cls, filters=(f,))
    if api_key == 50:
        return build(cls, users=(build(m.UserName, name="alice"),))
    if api_key == 51:
        u = build(m.ScramCredentialUpsertion, name="alice", mechanism=2, iterations=4096, salt=b"salt",
                  salted_password=b"x" * 64)
        return build(cls, deletions=(), upsertions=(u,))
    raise KeyError(f"no sample for api_key {api_key}")


class WireClient:
    """A minimal Kafka client over asyncio streams: send kio requests, read kio responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.correlation_id = 0

    @classmethod
    async def connect(cls, port: int) -> WireClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: Any) -> int:
        self.correlation_id += 1
        self.writer.write(encode_request(request, self.correlation_id))
        await self.writer.drain()
        return self.correlation_id

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_frame(self, timeout: float = 5) -> bytes | None:
        """The next response frame's payload, or None when the broker closed the connection."""
        try:
            size = await asyncio.wait_for(self.reader.readexactly(4), timeout)
            return await asyncio.wait_for(self.reader.readexactly(int.from_bytes(size, "big")), timeout)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            return None

    async def read(self, api_key: int, version: int, timeout: float = 5) -> tuple[int, Any]:
        payload = await self.read_frame(timeout)
        assert payload is not None, "connection closed"
        return decode_response(payload, api_key, version)

    async def call(self, request: Any, timeout: float = 5) -> Any:
        correlation_id = await self.send(request)
        got, response = await self.read(int(request.__api_key__), int(request.__version__), timeout)
        assert got == correlation_id
        return response

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


def error_codes(obj: Any) -> list[ErrorCode]:
    """Every ErrorCode anywhere in a kio response (for assertions)."""
    found: list[ErrorCode] = []
    if isinstance(obj, ErrorCode):
        return [obj]
    if isinstance(obj, tuple):
        for item in obj:
            found += error_codes(item)
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            found += error_codes(getattr(obj, name))
    return found
