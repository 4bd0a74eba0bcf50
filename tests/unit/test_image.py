"""Metadata records, replay and the protobuf codec: tables of cases and a round-trip property."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster import codec
from cluster.image import MetadataImage, ReplayError, image_from_records, image_to_records, replay_all
from cluster.records import (
    LEADER_UNCHANGED,
    BrokerShutdown,
    ClusterRecord,
    ConfigRecord,
    ControllerRegistration,
    FenceBroker,
    PartitionChange,
    PartitionRecord,
    ProducerIds,
    RegisterBroker,
    RemoveTopic,
    TopicRecord,
    UnfenceBroker,
)

T1 = b"\x01" * 16


def base_image() -> MetadataImage:
    return replay_all(MetadataImage(), [
        ClusterRecord("c1"),
        RegisterBroker(1, 1, "i1", "h", 9092, 9192),
        RegisterBroker(2, 2, "i2", "h", 9093, 9193),
        UnfenceBroker(1, 1),
        UnfenceBroker(2, 2),
        TopicRecord("t", T1),
        PartitionRecord(T1, 0, (1, 2), (1, 2), 1),
    ])


def test_offsets_advance_one_per_record() -> None:
    image = base_image()
    assert image.offset == 6
    assert replay_all(image, []).offset == 6


@pytest.mark.parametrize("change, leader, leader_epoch, isr, partition_epoch", [
    (PartitionChange(T1, 0, isr=(1,)), 1, 0, (1,), 1),
    (PartitionChange(T1, 0, leader=2), 2, 1, (1, 2), 1),
    (PartitionChange(T1, 0, isr=(2,), leader=2), 2, 1, (2,), 1),
    (PartitionChange(T1, 0, leader=-1), -1, 1, (1, 2), 1),
    (PartitionChange(T1, 0, leader=LEADER_UNCHANGED), 1, 0, (1, 2), 1),
])
def test_partition_change_merge(change, leader, leader_epoch, isr, partition_epoch) -> None:
    p = replay_all(base_image(), [change]).partition(T1, 0)
    assert (p.leader, p.leader_epoch, p.isr, p.partition_epoch) == (leader, leader_epoch, isr, partition_epoch)


@pytest.mark.parametrize("record", [
    FenceBroker(3, 1),                       # unknown broker
    FenceBroker(1, 99),                      # stale epoch
    PartitionChange(b"\x02" * 16, 0, isr=(1,)),   # unknown topic
    PartitionChange(T1, 5, isr=(1,)),        # unknown partition
    TopicRecord("t", b"\x03" * 16),          # duplicate name
    RemoveTopic(b"\x04" * 16),
    ProducerIds(1, 1, 0),                    # producer ids must grow
])
def test_replay_rejects_misfits(record) -> None:
    with pytest.raises(ReplayError):
        replay_all(base_image(), [record])


def test_images_are_immutable_copies() -> None:
    before = base_image()
    after = replay_all(before, [FenceBroker(1, 1), PartitionChange(T1, 0, isr=(2,), leader=2)])
    assert before.brokers[1].fenced is False and after.brokers[1].fenced is True
    assert before.partition(T1, 0).leader == 1 and after.partition(T1, 0).leader == 2


def test_remove_topic_drops_its_configs() -> None:
    image = replay_all(base_image(), [ConfigRecord(2, "t", "retention.ms", "5")])
    assert image.config(2, "t") == {"retention.ms": "5"}
    image = replay_all(image, [RemoveTopic(T1)])
    assert image.topic_by_name("t") is None and image.config(2, "t") == {}


def test_snapshot_round_trip_rebuilds_the_same_image() -> None:
    image = replay_all(base_image(), [
        BrokerShutdown(2, 2), ConfigRecord(4, "", "auto.leader.rebalance.enable", "false"),
        ProducerIds(1, 1, 2000), ControllerRegistration(1, "h:1", "h:2"),
        PartitionChange(T1, 0, isr=(1,), leader=1, unclean=True),
    ])
    data = codec.encode_snapshot(image.offset, image_to_records(image), ["r1"])
    offset, records, ids = codec.decode_snapshot(data)
    assert image_from_records(records, offset) == image and ids == ["r1"]


ints = st.integers(min_value=-1, max_value=2**31 - 1)
replica_lists = st.lists(st.integers(min_value=0, max_value=1000), max_size=5).map(tuple)
records = st.one_of(
    st.builds(ClusterRecord, st.text(max_size=10)),
    st.builds(RegisterBroker, ints, ints, st.text(max_size=5), st.text(max_size=5), ints, ints, st.text(max_size=3)),
    st.builds(FenceBroker, ints, ints),
    st.builds(TopicRecord, st.text(max_size=8), st.binary(min_size=16, max_size=16)),
    st.builds(PartitionRecord, st.binary(min_size=16, max_size=16), ints, replica_lists, replica_lists, ints, ints, ints),
    st.builds(PartitionChange, st.binary(min_size=16, max_size=16), ints, st.none() | replica_lists,
              st.integers(min_value=-2, max_value=10), st.booleans(), st.none() | replica_lists),
    st.builds(ConfigRecord, st.sampled_from([2, 4]), st.text(max_size=5), st.text(max_size=5),
              st.none() | st.text(max_size=5)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(records, max_size=10), st.text(max_size=8), st.integers(min_value=-1, max_value=2**40))
def test_command_codec_round_trip(rs, request_id, base_offset) -> None:
    assert codec.decode_command(codec.encode_command(request_id, base_offset, rs)) == (request_id, base_offset, rs)


def test_garbage_command_is_a_decode_error() -> None:
    with pytest.raises(codec.DecodeError):
        codec.decode_command(b"\xff\xff\xff\x0f garbage")
