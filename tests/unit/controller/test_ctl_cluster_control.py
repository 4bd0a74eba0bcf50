"""Registration, broker epochs, heartbeats and stale-broker fencing."""

from __future__ import annotations

import pytest
from ctl_helpers import apply, make_image, state

from cluster.errors import ErrorCode
from cluster.records import FenceBroker, RegisterBroker
from controller.cluster_control import (
    HeartbeatDecision,
    RegisterRequest,
    check_broker_epoch,
    fence_stale_broker,
    heartbeat_records,
    register_broker,
)


def no(_topic: str) -> bool:
    return False


def test_first_registration_epoch_is_the_record_offset():
    image = make_image(brokers=())
    records, epoch = register_broker(image, RegisterRequest(1, "inc-a", "h", 9092, 9192, "r1"))
    assert records == [RegisterBroker(1, image.offset + 1, "inc-a", "h", 9092, 9192, "r1")]
    assert epoch == image.offset + 1
    after = apply(image, records)
    assert after.brokers[1].broker_epoch == epoch and after.brokers[1].fenced


def test_retry_from_the_same_incarnation_changes_nothing():
    image = make_image()
    records, epoch = register_broker(image, RegisterRequest(1, "inc-1", "h", 1, 2))
    assert records == [] and epoch == image.brokers[1].broker_epoch


def test_new_incarnation_is_fenced_out_first_and_gets_a_new_epoch():
    image = make_image(topics={"t": [((1, 2, 3), (1, 2, 3), 1)], "u": [((1, 2), (1,), 1)]})
    old_epoch = image.brokers[1].broker_epoch
    records, epoch = register_broker(image, RegisterRequest(1, "inc-new", "h", 1, 2), unclean_enabled=no)
    assert records[0] == FenceBroker(1, old_epoch)
    assert isinstance(records[-1], RegisterBroker) and records[-1].broker_epoch == epoch
    assert epoch == image.offset + len(records) > old_epoch
    after = apply(image, records)
    assert after.brokers[1].broker_epoch == epoch and after.brokers[1].incarnation_id == "inc-new"
    assert state(after, "t") == ((2, 3), 2)
    assert state(after, "u") == ((1,), -1)
    assert check_broker_epoch(after, 1, old_epoch) == ErrorCode.stale_broker_epoch


# A broker that restarts (a crash, maybe a power loss that cut its unsynced tail) registers a new
# incarnation: in the same command, before its RegisterBroker, it leaves every ISR it shares with
# another member and every leadership, so it can be neither elected nor counted until it has fetched
# again and been added back (with its new broker epoch, KIP-903). (id, partition (replicas, isr,
# leader), expected (isr, leader) after broker 3 re-registers)
REREGISTER = [
    ("follower-in-isr", ((1, 2, 3), (1, 2, 3), 1), ((1, 2), 1)),
    ("joined-isr-just-before-the-crash", ((1, 2, 3), (1, 3), 1), ((1,), 1)),
    ("leader", ((3, 1, 2), (3, 1, 2), 3), ((1, 2), 1)),
    ("leader-with-one-other-member", ((3, 2, 1), (3, 2), 3), ((2,), 2)),
    ("outside-isr-untouched", ((1, 2, 3), (1, 2), 1), ((1, 2), 1)),
    # The last ISR member stays (the ISR is never empty) and the partition stays offline: Kafka
    # without KIP-966's ELR does the same; see docs/CHAOS.md, Limits.
    ("last-member-stays-offline", ((3, 1, 2), (3,), 3), ((3,), -1)),
]


@pytest.mark.parametrize(("p", "expected"), [c[1:] for c in REREGISTER], ids=[c[0] for c in REREGISTER])
def test_a_new_incarnation_leaves_every_shared_isr_before_it_registers(p, expected):
    image = make_image(topics={"t": [p]})
    records, epoch = register_broker(image, RegisterRequest(3, "inc-after-crash", "h", 1, 2), unclean_enabled=no)
    assert isinstance(records[-1], RegisterBroker) and records[-1].broker_epoch == epoch
    assert not any(isinstance(r, RegisterBroker) for r in records[:-1])
    after = apply(image, records)
    assert state(after, "t") == expected
    assert after.brokers[3].fenced  # and it is unfenced only by a heartbeat of the new incarnation


def test_reregistration_of_a_fenced_broker_has_only_the_register_record():
    image = make_image(fenced=(1,))
    records, epoch = register_broker(image, RegisterRequest(1, "inc-new", "h", 1, 2))
    assert records == [RegisterBroker(1, image.offset + 1, "inc-new", "h", 1, 2)] and epoch == image.offset + 1


@pytest.mark.parametrize(("broker", "delta", "expected"), [
    (1, 0, ErrorCode.none),
    (1, -1, ErrorCode.stale_broker_epoch),
    (1, 1, ErrorCode.stale_broker_epoch),
    (9, 0, ErrorCode.broker_id_not_registered),
    (3, 0, ErrorCode.none),  # fenced brokers still heartbeat
])
def test_check_broker_epoch(broker, delta, expected):
    image = make_image(fenced=(3,))
    epoch = image.brokers[broker].broker_epoch + delta if broker in image.brokers else 5
    assert check_broker_epoch(image, broker, epoch) == expected


# (id, fenced, shutting, metadata offset delta vs epoch, caught_up override, want_shutdown,
#  expect records?, decision)
HEARTBEAT = [
    ("fenced-behind", True, False, -1, None, False, False, HeartbeatDecision(True, False)),
    ("fenced-caught-up", True, False, 0, None, False, True, HeartbeatDecision(False, False)),
    ("fenced-override-false", True, False, 5, False, False, False, HeartbeatDecision(True, False)),
    ("fenced-override-true", True, False, -5, True, False, True, HeartbeatDecision(False, False)),
    ("active-steady", False, False, 0, None, False, False, HeartbeatDecision(False, False)),
    ("fenced-wants-shutdown", True, False, 0, None, True, False, HeartbeatDecision(True, True)),
    ("active-wants-shutdown", False, False, 0, None, True, True, HeartbeatDecision(False, True)),
    ("shutting-and-done", False, True, 0, None, True, False, HeartbeatDecision(False, True)),
]


@pytest.mark.parametrize(("fenced", "shutting", "delta", "override", "want", "has_records", "decision"),
                         [c[1:] for c in HEARTBEAT], ids=[c[0] for c in HEARTBEAT])
def test_heartbeat(fenced, shutting, delta, override, want, has_records, decision):
    # broker 1 leads t-0 with 2 in the ISR (moved away on shutdown), and leads u-0 alone.
    parts = {"t": [((1, 2), (1, 2), 1)], "u": [((1, 2), (1,), 1)]} if not shutting else {"u": [((1, 2), (1,), 1)]}
    image = make_image(fenced=(1,) if fenced else (), shutting=(1,) if shutting else (), topics=parts)
    epoch = image.brokers[1].broker_epoch
    records, got = heartbeat_records(image, 1, epoch, epoch + delta, want, registration_offset_caught_up=override,
                                     unclean_enabled=no)
    assert got == decision
    assert bool(records) == has_records
    apply(image, records)


def test_shutdown_becomes_ready_once_leadership_moved():
    image = make_image(topics={"t": [((1, 2), (1, 2), 1)]})
    epoch = image.brokers[1].broker_epoch
    records, decision = heartbeat_records(image, 1, epoch, image.offset, True)
    after = apply(image, records)
    assert state(after, "t") == ((2,), 2)
    # ready is computed on the image after this heartbeat's records
    assert decision == HeartbeatDecision(fenced=False, shutdown_ready=True)
    assert heartbeat_records(after, 1, epoch, after.offset, True) == ([], HeartbeatDecision(False, True))


def test_unfence_on_heartbeat_elects_offline_partitions():
    image = make_image(fenced=(1,), topics={"t": [((1, 2), (1,), -1)]})
    epoch = image.brokers[1].broker_epoch
    records, decision = heartbeat_records(image, 1, epoch, image.offset, False)
    after = apply(image, records)
    assert not decision.fenced and state(after, "t") == ((1,), 1)


def test_heartbeat_with_a_stale_epoch_changes_nothing():
    image = make_image(fenced=(1,))
    assert heartbeat_records(image, 1, 0, 100, False) == ([], HeartbeatDecision(True, True))


def test_fence_stale_broker_fences_one_at_a_time():
    image = make_image(brokers=(1, 2, 3), fenced=(1,), topics={"t": [((2, 3), (2, 3), 2)]})
    records = fence_stale_broker(image, [9, 1, 2, 3], unclean_enabled=no)
    assert records[0] == FenceBroker(2, image.brokers[2].broker_epoch)
    assert not any(isinstance(r, FenceBroker) and r.broker_id == 3 for r in records)
    after = apply(image, records)
    assert state(after, "t") == ((3,), 3)
    records = fence_stale_broker(after, [9, 1, 2, 3], unclean_enabled=no)
    after = apply(after, records)
    assert after.brokers[3].fenced and state(after, "t") == ((3,), -1)
    assert fence_stale_broker(after, [1, 2, 3], unclean_enabled=no) == []
