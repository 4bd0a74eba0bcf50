"""`__transaction_state` records (broker/txn/records.py): Kafka's TransactionLogKey/Value bytes."""

from __future__ import annotations

import struct

import pytest

from broker.txn import records
from broker.txn.state import TxnMetadata, TxnState


def test_key_is_version_0_and_the_id():
    assert records.encode_key("tx") == b"\x00\x00\x00\x02tx"
    assert records.decode_key(b"\x00\x00\x00\x02tx") == "tx"


def test_value_v0_layout_byte_for_byte():
    meta = TxnMetadata("tx", 5, 2, 60000, TxnState.ONGOING, frozenset({("b", 1), ("a", 0), ("a", 3)}), 111, 222)
    expected = (struct.pack(">hqhib", 0, 5, 2, 60000, 1) + struct.pack(">i", 2)
                + b"\x00\x01a" + struct.pack(">iii", 2, 0, 3) + b"\x00\x01b" + struct.pack(">ii", 1, 1)
                + struct.pack(">qq", 222, 111))
    assert records.encode_value(meta) == expected
    assert records.decode_value("tx", expected) == meta


def test_value_v1_flexible_is_read_with_its_tagged_previous_producer_id():
    body = (struct.pack(">hqhib", 1, 9, 0, 1000, 4) + bytes([2]) + bytes([2]) + b"t" + bytes([2])
            + struct.pack(">i", 7) + bytes([0]) + struct.pack(">qq", 5, -1)
            + bytes([1, 0, 8]) + struct.pack(">q", 3))
    meta = records.decode_value("x", body)
    assert (meta.producer_id, meta.state, meta.partitions, meta.prev_producer_id) == (
        9, TxnState.COMPLETE_COMMIT, frozenset({("t", 7)}), 3)


@pytest.mark.parametrize("bad", [b"", b"\x00\x05", b"\x00\x00" + b"\x00" * 5, struct.pack(">hqhib", 0, 1, 1, 1, 9)
                                 + struct.pack(">i", 0) + struct.pack(">qq", 0, 0)])
def test_bad_values_are_format_errors(bad):
    with pytest.raises(records.RecordFormatError):
        records.decode_value("x", bad)


@pytest.mark.parametrize("bad", [b"", b"\x00\x01\x00\x01a", b"\x00\x00\x00\x09ab"])
def test_bad_keys_are_format_errors(bad):
    with pytest.raises(records.RecordFormatError):
        records.decode_key(bad)
