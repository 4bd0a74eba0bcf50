"""The record format of `__transaction_state`: Kafka's TransactionLogKey and TransactionLogValue (pure).

From Kafka `transaction-coordinator/src/main/resources/common/message/TransactionLogKey.json` and
`TransactionLogValue.json`:

    key   version int16 (0) | transactional_id string
    value version int16 (0) | producer_id int64 | producer_epoch int16 | transaction_timeout_ms int32
          | transaction_status int8 | transaction_partitions [topic string, partition_ids [int32]] (nullable)
          | transaction_last_update_timestamp_ms int64 | transaction_start_timestamp_ms int64
    value version 1 is flexible (compact strings and arrays, tagged fields: previous_producer_id tag 0,
          next_producer_id tag 1, client_transaction_version tag 2); it is read, version 0 is written.

A null value is a tombstone (an expired transactional id). Brook writes version 0, which Kafka
writes for every transactional id of transaction version 1 clients.
"""

from __future__ import annotations

import struct

from broker.txn.state import TxnMetadata, TxnState

__all__ = ["RecordFormatError", "decode_key", "decode_value", "encode_key", "encode_value"]

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_VALUE_HEAD = struct.Struct(">qhib")  # producer id, epoch, timeout, status
_TIMES = struct.Struct(">qq")


class RecordFormatError(ValueError):
    """A key or value of `__transaction_state` does not match its schema."""


def _string(text: str) -> bytes:
    data = text.encode()
    return _I16.pack(len(data)) + data


def encode_key(transactional_id: str) -> bytes:
    return _I16.pack(0) + _string(transactional_id)


def decode_key(data: bytes) -> str:
    try:
        (version,) = _I16.unpack_from(data, 0)
        if version != 0:
            raise RecordFormatError(f"unknown transaction log key version {version}")
        (length,) = _I16.unpack_from(data, 2)
        if length < 0 or 4 + length > len(data):
            raise RecordFormatError("transactional id runs past the key")
        return data[4:4 + length].decode()
    except struct.error as e:
        raise RecordFormatError(str(e)) from e


def encode_value(meta: TxnMetadata) -> bytes:
    out = bytearray(_I16.pack(0))
    out += _VALUE_HEAD.pack(meta.producer_id, meta.producer_epoch, meta.timeout_ms, int(meta.state))
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(meta.partitions):
        by_topic.setdefault(topic, []).append(partition)
    out += _I32.pack(len(by_topic))
    for topic, partitions in by_topic.items():
        out += _string(topic) + _I32.pack(len(partitions))
        for partition in partitions:
            out += _I32.pack(partition)
    out += _TIMES.pack(meta.last_update_ms, meta.start_ms)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: struct.Struct) -> tuple[int, ...]:
        if self.pos + fmt.size > len(self.data):
            raise RecordFormatError("value is shorter than its schema")
        values = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return values

    def uvarint(self) -> int:
        result = shift = 0
        while True:
            if self.pos >= len(self.data) or shift > 63:
                raise RecordFormatError("bad varint")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7

    def raw(self, length: int) -> bytes:
        if length < 0 or self.pos + length > len(self.data):
            raise RecordFormatError("field runs past the value")
        out = self.data[self.pos:self.pos + length]
        self.pos += length
        return out

    def string(self, compact: bool) -> str:
        length = self.uvarint() - 1 if compact else self.take(_I16)[0]
        return self.raw(length).decode()

    def count(self, compact: bool) -> int:
        return self.uvarint() - 1 if compact else self.take(_I32)[0]

    def skip_tags(self) -> dict[int, bytes]:
        tags = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            tags[tag] = self.raw(self.uvarint())
        return tags


def decode_value(transactional_id: str, data: bytes) -> TxnMetadata:
    try:
        reader = _Reader(data)
        (version,) = reader.take(_I16)
        if version not in (0, 1):
            raise RecordFormatError(f"unknown transaction log value version {version}")
        compact = version >= 1
        producer_id, epoch, timeout_ms, status = reader.take(_VALUE_HEAD)
        partitions: set[tuple[str, int]] = set()
        topics = reader.count(compact)
        for _ in range(max(topics, 0)):
            topic = reader.string(compact)
            for _ in range(reader.count(compact)):
                partitions.add((topic, reader.take(_I32)[0]))
            if compact:
                reader.skip_tags()
        last_update_ms, start_ms = reader.take(_TIMES)
        prev_producer_id = -1
        if compact:
            tags = reader.skip_tags()
            if 0 in tags and len(tags[0]) == 8:
                prev_producer_id = _I64.unpack(tags[0])[0]
        state = TxnState(status)
    except (struct.error, UnicodeDecodeError) as e:
        raise RecordFormatError(str(e)) from e
    except ValueError as e:
        raise RecordFormatError(f"bad transaction status: {e}") from e
    return TxnMetadata(transactional_id, producer_id, epoch, timeout_ms, state, frozenset(partitions), start_ms,
                       last_update_ms, prev_producer_id=prev_producer_id)
