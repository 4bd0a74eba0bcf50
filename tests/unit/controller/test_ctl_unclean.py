"""The unclean-election choice (issue 10 fix 7): the live replica with the longest log wins.

Goal: the choice and the reported loss are pure functions of what the live replicas said about their
logs (last epoch, log end offset), checked in tables; and the controller asks the live replicas
before an unclean election (bounded wait), checked with a fake broker answer.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from ctl_helpers import make_image, tid

from cluster.config import Config
from cluster.records import FenceBroker
from controller import replication
from controller.replication import NO_LEADER, LogEnd, choose_unclean_leader, unclean_loss

# (id, candidates in replica order, log ends, expected leader)
CHOICE = [
    ("nothing-known-replica-order", (2, 3), {}, 2),
    ("longer-log-same-epoch", (2, 3), {2: LogEnd(4, 10), 3: LogEnd(4, 12)}, 3),
    ("later-epoch-beats-longer-log", (2, 3), {2: LogEnd(5, 8), 3: LogEnd(4, 12)}, 2),
    ("tie-goes-to-replica-order", (3, 2), {2: LogEnd(4, 10), 3: LogEnd(4, 10)}, 3),
    ("unknown-counts-as-shortest", (2, 3), {3: LogEnd(0, 0)}, 3),
    ("bare-offsets-from-heartbeats", (2, 3), {2: 7, 3: 9}, 3),
    # soak 201: 101 probed (epoch 11, 29562), 103 only in a heartbeat (29608, epoch unknown)
    ("heartbeat-offset-beats-shorter-probed-log", (101, 103), {101: LogEnd(11, 29562), 103: 29608}, 103),
    ("probed-log-beats-shorter-heartbeat-offset", (101, 103), {101: LogEnd(11, 29608), 103: 29562}, 101),
    ("unknown-still-shortest-beside-a-bare-offset", (2, 3), {3: 5}, 3),
    ("no-candidate", (), {2: LogEnd(4, 10)}, NO_LEADER),
]


@pytest.mark.parametrize(("candidates", "ends", "leader"), [c[1:] for c in CHOICE], ids=[c[0] for c in CHOICE])
def test_choose_unclean_leader(candidates, ends, leader):
    assert choose_unclean_leader(candidates, ends) == leader


# (id, leader, log ends, expected loss)
LOSS = [
    ("leader-longest", 3, {2: LogEnd(4, 10), 3: LogEnd(4, 12)}, None),
    ("another-longer", 2, {2: LogEnd(5, 10), 3: LogEnd(4, 12)}, (10, 12)),
    ("leader-unknown", 2, {3: LogEnd(4, 12)}, None),
    ("nothing-known", 2, None, None),
]


@pytest.mark.parametrize(("leader", "ends", "loss"), [c[1:] for c in LOSS], ids=[c[0] for c in LOSS])
def test_unclean_loss(leader, ends, loss):
    assert unclean_loss(leader, ends) == loss


def test_builder_elects_the_longest_log_among_live_replicas():
    image = make_image(fenced=(1,), topics={"t": [((1, 2, 3), (1,), -1)]})
    current = image.partition(tid("t"), 0)
    change = replication.build_partition_change(
        tid("t"), 0, current, is_acceptable=lambda b: b in (2, 3), election=replication.Election.UNCLEAN,
        log_end_offsets={2: LogEnd(3, 50), 3: LogEnd(4, 20)})
    assert change is not None and (change.leader, change.isr, change.unclean) == (3, (3,), True)


class _FakeQuorum:
    def __init__(self, image) -> None:
        self.state = SimpleNamespace(image=image)
        self.settings = SimpleNamespace(node_id=1)

    def add_state_listener(self, listener) -> None:
        pass

    def add_change_listener(self, listener) -> None:
        pass


def test_controller_asks_the_live_replicas_before_an_unclean_election():
    """Fencing the last ISR member of a topic with unclean election: the controller asks brokers 2
    and 3 where their logs end and the longer one (3) is chosen, though 2 comes first."""
    from controller.service import ControllerRuntime

    image = make_image(topics={"t": [((1, 2, 3), (1,), 1)]})
    asked: list[str] = []

    async def replica_states(address: str, timeout_s: float):
        asked.append(address)
        broker_id = 2 if address.endswith(":9102") else 3
        leo = {2: 10, 3: 14}[broker_id]
        return SimpleNamespace(replicas=[SimpleNamespace(topic_id=tid("t"), partition=0, last_epoch=0,
                                                         log_end_offset=leo)])

    async def body() -> None:
        rt = ControllerRuntime(Config.from_mapping({}, validate=False), _FakeQuorum(image), "127.0.0.1:1")
        rt.replica_states = replica_states

        def compute(img):
            records = replication.fence_broker_records(img, 1, unclean_enabled=lambda topic: True,
                                                       log_end_offsets=rt.log_end_offsets)
            return records, None

        before, _ = compute(image)
        assert [r.leader for r in before if not isinstance(r, FenceBroker)] == [2]  # replica order
        await rt.probe_before_unclean(compute)
        after, _ = compute(image)
        assert sorted(asked) == sorted(image.brokers[b].grpc_address for b in (2, 3))
        assert [(r.leader, r.unclean) for r in after if not isinstance(r, FenceBroker)] == [(3, True)]

    asyncio.run(body())
