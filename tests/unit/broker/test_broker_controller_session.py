"""broker.controller_session: which metadata replies move the broker's image, and registration.

Method: a session over a scripted controller channel and a recording replica manager (no gRPC, no
processes). Metadata replies are built from records with the production codec.
"""

from __future__ import annotations

import asyncio

import pytest

from broker.controller_session import ControllerSession
from brookpb import controller_pb2 as cpb
from cluster import codec
from cluster.config import Config
from cluster.errors import BrookError, ErrorCode
from cluster.image import MetadataImage, image_to_records, replay_all
from cluster.records import ClusterRecord, FenceBroker, Record, RegisterBroker, TopicRecord, UnfenceBroker


class Replicas:
    def __init__(self) -> None:
        self.partitions: dict = {}
        self.applied: list[int] = []

    def apply_image(self, image: MetadataImage) -> None:
        self.applied.append(image.offset)


class Controllers:
    """Answers each call with the next scripted reply and records the requests."""

    def __init__(self, replies: list) -> None:
        self.replies = list(replies)
        self.requests: list = []

    async def call(self, service: str, method: str, request, timeout_s: float):
        self.requests.append((method, request))
        return self.replies.pop(0)


def config(tmp_path) -> Config:
    return Config.from_mapping({
        "process.roles": "broker", "node.id": "1", "log.dirs": str(tmp_path),
        "listeners": "PLAINTEXT://127.0.0.1:9092,GRPC://127.0.0.1:9192",
        "controller.quorum.bootstrap.servers": "127.0.0.1:9093"}, validate=False)


def session(tmp_path, replies=()) -> ControllerSession:
    return ControllerSession(config(tmp_path), Controllers(list(replies)), Replicas())  # type: ignore[arg-type]


BASE: list[Record] = [ClusterRecord("c"), RegisterBroker(1, 2, "inc", "127.0.0.1", 9092, 9192),
                      UnfenceBroker(1, 2)]


def reply(records: list[Record], offset: int, full: bool = False) -> cpb.BrokerHeartbeatResponse:
    out = cpb.BrokerHeartbeatResponse(full_image=full, metadata_offset=offset)
    out.records.extend(codec.record_to_pb(r) for r in records)
    return out


def at(records: list[Record]) -> MetadataImage:
    return replay_all(MetadataImage(), records)


# (case, image the broker holds (records), base offset of the reply, reply records, reply offset, full,
#  expected image offset after, reconciled?)
T = [TopicRecord("t", b"t" * 16)]
CASES = [
    ("delta-from-current-offset", BASE, 2, T, 3, False, 3, True),
    ("delta-from-an-older-offset-is-ignored", BASE + T, 2, T, 3, False, 3, False),
    ("empty-delta-is-ignored", BASE, 2, [], 2, False, 2, False),
    ("delta-offsets-disagree-asks-for-full-image", BASE, 2, T, 9, False, -1, False),
    ("full-image-newer-replaces", BASE, 2, image_to_records(at(BASE + T)), 3, True, 3, True),
    ("full-image-not-newer-is-ignored", BASE + T, 3, image_to_records(at(BASE)), 2, True, 3, False),
    ("full-image-at-start", [], -1, image_to_records(at(BASE)), 2, True, 2, True),
]


@pytest.mark.parametrize("case,held,base,records,offset,full,expected,reconciled", CASES, ids=[c[0] for c in CASES])
def test_apply_metadata(tmp_path, case, held, base, records, offset, full, expected, reconciled):
    s = session(tmp_path)
    if held:
        s.image = at(held)
    before = s.image.offset
    s.apply_metadata(base, reply(records, offset, full))
    assert s.image.offset == expected
    assert s.replicas.applied == ([expected] if reconciled else [])  # type: ignore[attr-defined]
    assert expected != before or not reconciled


def test_fenced_self_asks_for_a_heartbeat_now(tmp_path):
    s = session(tmp_path)
    s.broker_epoch = 2
    s.image = at(BASE)
    s.apply_metadata(2, reply([FenceBroker(1, 2)], 3))
    assert s._heartbeat_now.is_set()


def test_registration_keeps_the_cluster_id_and_refuses_another(tmp_path):
    ok = cpb.RegisterBrokerResponse(error_code=0, broker_epoch=7, cluster_id="cluster-a")
    first = session(tmp_path, [ok])
    asyncio.run(first.register())
    assert (first.broker_epoch, first.cluster_id, first.registered.is_set()) == (7, "cluster-a", True)

    refused = cpb.RegisterBrokerResponse(error_code=int(ErrorCode.inconsistent_cluster_id),
                                         error_message="broker belongs to cluster cluster-a")
    second = session(tmp_path, [refused])
    assert second.cluster_id == "cluster-a"  # read back from meta.properties
    with pytest.raises(BrookError, match="cluster-a"):
        asyncio.run(second.register())
    method, request = second.controllers.requests[0]  # type: ignore[attr-defined]
    assert method == "RegisterBroker" and request.cluster_id == "cluster-a" and request.grpc_port == 9192


def test_request_shutdown_wakes_the_heartbeat(tmp_path):
    s = session(tmp_path)
    s.request_shutdown()
    assert s.want_shutdown and s._heartbeat_now.is_set()
