"""Property: random fence / unfence / re-register / shutdown / AlterPartition / election / rebalance
sequences on small random clusters keep the partition-state invariants, replaying every command."""

from __future__ import annotations

from ctl_helpers import apply, make_image
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cluster.errors import ErrorCode
from cluster.image import MetadataImage
from cluster.records import PartitionChange, PartitionRecord, Record
from controller.balance import rebalance_records
from controller.cluster_control import RegisterRequest, fence_stale_broker, heartbeat_records, register_broker
from controller.replication import (
    AlterPartitionItem,
    Election,
    alter_partition,
    elect_leaders,
    shutdown_complete,
)
from controller.topics import TopicRequest, create_topics


def _cluster(data) -> tuple[MetadataImage, set[str]]:
    n = data.draw(st.integers(2, 5), label="brokers")
    image = make_image(brokers=range(1, n + 1))
    requests = [TopicRequest(f"t{i}", data.draw(st.integers(1, 4)), data.draw(st.integers(1, n)))
                for i in range(data.draw(st.integers(1, 2)))]
    ids = iter(i.to_bytes(16, "big") for i in range(1, 100))
    records, outcomes = create_topics(image, requests, default_partitions=1, default_replication_factor=1,
                                      new_topic_id=lambda: next(ids), validate_config=lambda k, v: v)
    assert all(o.error == ErrorCode.none for o in outcomes)
    unclean_topics = {r.name for r in requests if data.draw(st.booleans(), label=f"unclean {r.name}")}
    return apply(image, records), unclean_topics


def _check_image(image: MetadataImage) -> None:
    for topic, index, p in image.iter_partitions():
        where = f"{topic.name}-{index} {p}"
        assert p.isr, where
        assert len(set(p.isr)) == len(p.isr), where
        assert set(p.isr) <= set(p.replicas), where
        if p.leader != -1:
            assert p.leader in p.isr, where
            assert p.leader in image.brokers and not image.brokers[p.leader].fenced, where
        fenced_members = [b for b in p.isr if b not in image.brokers or image.brokers[b].fenced]
        if fenced_members:  # a fenced broker stays in an ISR only as its last member, offline
            assert len(p.isr) == 1 and p.leader == -1, where
        if p.leader == -1:  # offline only while no ISR member could lead (active: unfenced, not shutting down)
            assert not any(image.brokers[b].active for b in p.isr), where


def _check_transition(before: MetadataImage, records: list[Record], after: MetadataImage, *,
                      unclean_allowed: set[str]) -> None:
    changes = [r for r in records if isinstance(r, PartitionChange)]
    keys = [(r.topic_id, r.partition) for r in changes]
    assert len(keys) == len(set(keys)), "at most one change per partition per command"
    assert not any(isinstance(r, PartitionRecord) for r in records)
    for r in changes:
        old = before.partition(r.topic_id, r.partition)
        new = after.partition(r.topic_id, r.partition)
        assert old is not None and new is not None
        assert (old.isr, old.leader) != (new.isr, new.leader), "no-op change record"
        if r.unclean:
            name = before.topics[r.topic_id].name
            assert name in unclean_allowed, "unclean election where it is not allowed"
            assert new.leader not in old.isr and new.isr == (new.leader,)
        elif new.leader not in (-1, old.leader):
            assert new.leader in old.isr, "clean election from outside the ISR"
    for topic, index, old in before.iter_partitions():
        new = after.partition(topic.topic_id, index)
        assert new is not None
        if new == old:
            continue
        assert new.partition_epoch == old.partition_epoch + 1
        assert new.leader_epoch == old.leader_epoch + (1 if new.leader != old.leader else 0)
        assert new.replicas == old.replicas
    assert after.unclean_elections == before.unclean_elections + sum(1 for r in changes if r.unclean)


OPS = st.sampled_from(["fence", "heartbeat", "heartbeat", "heartbeat", "shutdown", "register", "alter", "alter",
                       "alter-random", "catch-up", "catch-up", "elect", "elect", "rebalance"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_command_sequences_keep_the_invariants(data):
    image, unclean_topics = _cluster(data)
    brokers = sorted(image.brokers)

    def unclean_enabled(name: str) -> bool:
        return name in unclean_topics

    incarnation = 0
    for _ in range(data.draw(st.integers(10, 40), label="steps")):
        op = data.draw(OPS)
        broker = data.draw(st.sampled_from(brokers))
        allowed = set(unclean_topics)
        ready = None
        if op == "fence":
            records = fence_stale_broker(image, [broker], unclean_enabled=unclean_enabled)
        elif op in ("heartbeat", "shutdown"):
            reg = image.brokers[broker]
            offset = data.draw(st.sampled_from([image.offset, image.offset, image.offset, reg.broker_epoch - 1]))
            records, decision = heartbeat_records(image, broker, reg.broker_epoch, offset, op == "shutdown",
                                                  unclean_enabled=unclean_enabled)
            ready = decision.shutdown_ready if op == "shutdown" else None
        elif op == "register":
            incarnation += 1
            records, epoch = register_broker(image, RegisterRequest(broker, f"new-{incarnation}", "h", 1, 2),
                                             unclean_enabled=unclean_enabled)
            assert epoch == image.offset + len(records)
        elif op == "catch-up":  # every leader adds its live followers back, one AlterPartition per leader
            records = []
            for leader in brokers:
                items = [AlterPartitionItem(t.topic_id, i, p.leader_epoch, p.partition_epoch,
                                            tuple(dict.fromkeys(p.isr + tuple(
                                                b for b in p.replicas if image.brokers[b].active))))
                         for t, i, p in image.iter_partitions() if p.leader == leader]
                reg = image.brokers[leader]
                more, outcomes = alter_partition(image, leader, reg.broker_epoch, items)
                assert all(o.error == ErrorCode.none for o in outcomes) or reg.fenced
                records.extend(more)
        elif op.startswith("alter"):
            topic = data.draw(st.sampled_from(sorted(image.topics.values(), key=lambda t: t.name)))
            index = data.draw(st.sampled_from(sorted(topic.partitions)))
            p = topic.partitions[index]
            if op == "alter":  # a plausible request from the current leader: live replicas caught up
                live = [b for b in p.replicas if image.brokers[b].active] or list(p.replicas)
                if data.draw(st.booleans(), label="expand"):
                    new_isr = tuple(dict.fromkeys(p.isr + tuple(live)))
                else:
                    new_isr = tuple(data.draw(st.lists(st.sampled_from(live), unique=True, max_size=len(live))))
                broker = p.leader if p.leader != -1 else broker
                if broker not in new_isr:
                    new_isr = (broker, *new_isr)
                item = AlterPartitionItem(topic.topic_id, index, p.leader_epoch, p.partition_epoch, new_isr)
            else:
                new_isr = tuple(data.draw(st.lists(st.sampled_from(p.replicas), unique=True,
                                                   max_size=len(p.replicas))))
                item = AlterPartitionItem(topic.topic_id, index, data.draw(st.integers(0, 3)),
                                          data.draw(st.integers(0, 3)), new_isr)
            reg = image.brokers[broker]
            records, outcomes = alter_partition(image, broker, reg.broker_epoch, [item])
            after = apply(image, records)
            event(f"{op} -> {outcomes[0].error.name}")
            if outcomes[0].error == ErrorCode.none:
                assert outcomes[0].registration == after.partition(topic.topic_id, index)
                assert after.partition(topic.topic_id, index).isr == new_isr
        elif op == "elect":
            kind = data.draw(st.sampled_from(list(Election)))
            records, outcomes = elect_leaders(image, kind, None, unclean_enabled=unclean_enabled)
            if kind is Election.UNCLEAN:
                allowed = {t.name for t in image.topics.values()}
            assert all(o.error != ErrorCode.none or o.leader != -1 for o in outcomes)
            for o in outcomes:
                event(f"elect {kind.name} -> {o.error.name}")
        else:
            records = rebalance_records(image, data.draw(st.sampled_from([0, 10, 50])))
        after = apply(image, records)
        event(f"{op}: {'changes' if any(isinstance(r, PartitionChange) for r in records) else 'no change'}")
        if after.unclean_elections > image.unclean_elections:
            event("unclean election")
        if any(p.leader == -1 for _, _, p in after.iter_partitions()):
            event("offline partition")
        _check_transition(image, records, after, unclean_allowed=allowed)
        _check_image(after)
        if ready:
            assert shutdown_complete(after, broker)
        image = after
