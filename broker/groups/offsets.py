"""The record format of `__consumer_offsets`: Kafka's own key and value schemas, byte for byte.

Pure: bytes in, dataclasses out, and back. Every key starts with an int16 version that names its
type; every value starts with an int16 version of its own schema.

    key version 0, 1  OffsetCommitKey     group string, topic string, partition int32
    key version 2     GroupMetadataKey    group string
    key version 3+    other coordinators' records (transactions, share groups): skipped on load
    key version < 0   no such record: a RecordFormatError

    OffsetCommitValue v0  offset int64, metadata string, commitTimestamp int64
                      v1  offset, metadata, commitTimestamp, expireTimestamp int64
                      v2  offset, metadata, commitTimestamp
                      v3  offset, leaderEpoch int32, metadata, commitTimestamp      <- written
                      v4  as v3, flexible (compact strings, tagged fields)

    GroupMetadataValue v0  protocolType string, generation int32, protocol string?, leader string?,
                           members [memberId, clientId, clientHost, sessionTimeout int32,
                                    subscription bytes, assignment bytes]
                       v1  member + rebalanceTimeout int32 (before sessionTimeout)
                       v2  + currentStateTimestamp int64 (after leader)
                       v3  member + groupInstanceId string? (after memberId)              <- written
                       v4  as v3, flexible

A null value is a tombstone: the offset (or the group) was deleted.

From Kafka `group-coordinator/src/main/resources/common/message/OffsetCommitKey.json`,
`OffsetCommitValue.json`, `GroupMetadataKey.json`, `GroupMetadataValue.json`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "GROUP_METADATA_KEY_VERSION",
    "GROUP_METADATA_VALUE_VERSION",
    "OFFSET_COMMIT_KEY_VERSION",
    "OFFSET_COMMIT_VALUE_VERSION",
    "GroupKey",
    "GroupMetadataValue",
    "MemberMetadata",
    "OffsetKey",
    "OffsetValue",
    "RecordFormatError",
    "decode_group_value",
    "decode_key",
    "decode_offset_value",
    "encode_group_key",
    "encode_group_value",
    "encode_offset_key",
    "encode_offset_value",
]

OFFSET_COMMIT_KEY_VERSION = 1
GROUP_METADATA_KEY_VERSION = 2
OFFSET_COMMIT_VALUE_VERSION = 3
GROUP_METADATA_VALUE_VERSION = 3


class RecordFormatError(ValueError):
    """A key or value in `__consumer_offsets` does not match its schema."""


@dataclass(frozen=True, slots=True)
class OffsetKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupKey:
    group: str


@dataclass(frozen=True, slots=True)
class OffsetValue:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = -1
    expire_timestamp_ms: int = -1  # only in v1 values; never written by Brook


@dataclass(frozen=True, slots=True)
class MemberMetadata:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupMetadataValue:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp_ms: int
    members: tuple[MemberMetadata, ...] = ()


# -- writer -------------------------------------------------------------------------------------


class _Writer:
    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out = bytearray()

    def int16(self, v: int) -> None:
        self.out += struct.pack(">h", v)

    def int32(self, v: int) -> None:
        self.out += struct.pack(">i", v)

    def int64(self, v: int) -> None:
        self.out += struct.pack(">q", v)

    def string(self, v: str | None) -> None:
        if v is None:
            self.int16(-1)
            return
        data = v.encode()
        if len(data) > 0x7FFF:
            raise RecordFormatError("string longer than 32767 bytes")
        self.int16(len(data))
        self.out += data

    def bytes_(self, v: bytes) -> None:
        self.int32(len(v))
        self.out += v


def encode_offset_key(group: str, topic: str, partition: int) -> bytes:
    w = _Writer()
    w.int16(OFFSET_COMMIT_KEY_VERSION)
    w.string(group)
    w.string(topic)
    w.int32(partition)
    return bytes(w.out)


def encode_group_key(group: str) -> bytes:
    w = _Writer()
    w.int16(GROUP_METADATA_KEY_VERSION)
    w.string(group)
    return bytes(w.out)


def encode_offset_value(value: OffsetValue) -> bytes:
    """OffsetCommitValue v3 (Kafka's choice whenever no explicit expire timestamp is set)."""
    w = _Writer()
    w.int16(OFFSET_COMMIT_VALUE_VERSION)
    w.int64(value.offset)
    w.int32(value.leader_epoch)
    w.string(value.metadata)
    w.int64(value.commit_timestamp_ms)
    return bytes(w.out)


def encode_group_value(value: GroupMetadataValue) -> bytes:
    """GroupMetadataValue v3."""
    w = _Writer()
    w.int16(GROUP_METADATA_VALUE_VERSION)
    w.string(value.protocol_type)
    w.int32(value.generation)
    w.string(value.protocol)
    w.string(value.leader)
    w.int64(value.current_state_timestamp_ms)
    w.int32(len(value.members))
    for m in value.members:
        w.string(m.member_id)
        w.string(m.group_instance_id)
        w.string(m.client_id)
        w.string(m.client_host)
        w.int32(m.rebalance_timeout_ms)
        w.int32(m.session_timeout_ms)
        w.bytes_(m.subscription)
        w.bytes_(m.assignment)
    return bytes(w.out)


# -- reader -------------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("buf", "pos", "flexible")

    def __init__(self, buf: bytes, flexible: bool = False) -> None:
        self.buf = buf
        self.pos = 0
        self.flexible = flexible

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise RecordFormatError("record is truncated")
        chunk = self.buf[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int16(self) -> int:
        return struct.unpack(">h", self._take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def int64(self) -> int:
        return struct.unpack(">q", self._take(8))[0]

    def uvarint(self) -> int:
        result = shift = 0
        while True:
            byte = self._take(1)[0]
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7
            if shift > 35:
                raise RecordFormatError("varint too long")

    def length(self, wide: bool) -> int:
        if self.flexible:
            return self.uvarint() - 1
        return self.int32() if wide else self.int16()

    def nullable_string(self) -> str | None:
        n = self.length(wide=False)
        return None if n < 0 else self._take(n).decode("utf-8", "replace")

    def string(self) -> str:
        return self.nullable_string() or ""

    def bytes_(self) -> bytes:
        n = self.length(wide=True)
        return b"" if n < 0 else self._take(n)

    def array_length(self) -> int:
        return self.length(wide=True)

    def tagged_fields(self) -> None:
        if not self.flexible:
            return
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self._take(self.uvarint())


def decode_key(data: bytes) -> OffsetKey | GroupKey | None:
    """The typed key, or None for record types the group coordinator does not own."""
    r = _Reader(data)
    version = r.int16()
    if version < 0:
        raise RecordFormatError(f"unknown key version {version}")
    if version in (0, 1):
        return OffsetKey(r.string(), r.string(), r.int32())
    if version == 2:
        return GroupKey(r.string())
    return None


def decode_offset_value(data: bytes) -> OffsetValue:
    r = _Reader(data)
    version = r.int16()
    if version < 0 or version > 4:
        raise RecordFormatError(f"unknown OffsetCommitValue version {version}")
    r.flexible = version >= 4
    offset = r.int64()
    leader_epoch = r.int32() if version >= 3 else -1
    metadata = r.string()
    commit_timestamp = r.int64()
    expire_timestamp = r.int64() if version == 1 else -1
    r.tagged_fields()
    return OffsetValue(offset, leader_epoch, metadata, commit_timestamp, expire_timestamp)


def decode_group_value(data: bytes) -> GroupMetadataValue:
    r = _Reader(data)
    version = r.int16()
    if version < 0 or version > 4:
        raise RecordFormatError(f"unknown GroupMetadataValue version {version}")
    r.flexible = version >= 4
    protocol_type = r.string()
    generation = r.int32()
    protocol = r.nullable_string()
    leader = r.nullable_string()
    state_timestamp = r.int64() if version >= 2 else -1
    count = r.array_length()
    if count > len(data):
        raise RecordFormatError("member count larger than the record")
    members = []
    for _ in range(max(count, 0)):
        member_id = r.string()
        instance_id = r.nullable_string() if version >= 3 else None
        client_id = r.string()
        client_host = r.string()
        rebalance_timeout = r.int32() if version >= 1 else -1
        session_timeout = r.int32()
        if rebalance_timeout < 0:
            rebalance_timeout = session_timeout
        subscription = r.bytes_()
        assignment = r.bytes_()
        r.tagged_fields()
        members.append(MemberMetadata(member_id, instance_id, client_id, client_host, rebalance_timeout,
                                      session_timeout, subscription, assignment))
    r.tagged_fields()
    return GroupMetadataValue(protocol_type, generation, protocol, leader, state_timestamp, tuple(members))
