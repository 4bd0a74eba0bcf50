"""The nemesis, the report and the CLI parsing, without a cluster.

Method: a fake NodeControl records every action; a fake admin client answers DescribeTopics and
DescribeCluster from fixed protobufs; `time.sleep` in the nemesis is replaced by a virtual clock.
Goals: a seed replays the same fault timeline, each scenario targets what it names, the compose
commands are right, and the unavailability windows are computed from the acknowledgements.
"""

from __future__ import annotations

import random
import signal

import pytest

from brookpb import admin_pb2 as apb
from cluster.chaos import nemesis as nemesis_module
from cluster.chaos.history import History, Outcome, OutcomeKind, Send
from cluster.chaos.nemesis import ComposeControl, Fault, Nemesis
from cluster.chaos.report import Report, unavailability
from cluster.chaos.runner import main, parse_duration


class FakeControl:
    def __init__(self) -> None:
        self.controller_ids = [1, 2, 3]
        self.broker_ids = [101, 102, 103]
        self.actions: list[tuple[str, int, int]] = []
        self.down: set[int] = set()
        self.paused: set[int] = set()

    def kill(self, node_id: int, sig: int) -> None:
        self.actions.append(("kill", node_id, sig))
        self.down.add(node_id)
        self.paused.discard(node_id)  # as LocalControl and NetnsControl: a killed node is not paused

    def start(self, node_id: int) -> None:
        self.actions.append(("start", node_id, 0))
        self.down.discard(node_id)

    def pause(self, node_id: int) -> None:
        self.actions.append(("pause", node_id, 0))
        self.paused.add(node_id)

    def resume(self, node_id: int) -> None:
        self.actions.append(("resume", node_id, 0))
        self.paused.discard(node_id)

    def is_running(self, node_id: int) -> bool:
        return node_id not in self.down

    def incarnation(self, node_id: int) -> int:
        return 1

    def wait_healthy(self, timeout_s: float) -> None:
        pass


class FakeAdmin:
    """Partition p is led by broker 101 + p; controller 2 is active."""

    def describe_topics(self, names):  # noqa: ANN001, ANN201
        parts = [apb.PartitionInfo(partition=p, leader=101 + p, leader_epoch=1, replicas=[101, 102, 103],
                                   isr=[101, 102, 103]) for p in range(3)]
        return apb.DescribeTopicsResponse(topics=[apb.TopicInfo(name=names[0], partitions=parts)])

    def describe_cluster(self):  # noqa: ANN201
        return apb.DescribeClusterResponse(active_controller_id=2, brokers=[
            apb.BrokerInfo(broker_id=b, broker_epoch=10) for b in (101, 102, 103)])

    def elect_leaders(self, kind, partitions):  # noqa: ANN001, ANN201
        return apb.ElectLeadersResponse()  # nothing moves


@pytest.fixture
def virtual_time(monkeypatch):  # noqa: ANN001, ANN201
    now = [0.0]
    monkeypatch.setattr(nemesis_module.time, "sleep", lambda s: now.__setitem__(0, now[0] + max(0.0, s)))
    return now


def make_nemesis(seed: int, now: list[float]) -> tuple[Nemesis, FakeControl]:
    control = FakeControl()
    nemesis = Nemesis(control, FakeAdmin(), "t", random.Random(seed), lambda: now[0], session_timeout_s=3.0,
                      log=lambda _: None)
    return nemesis, control


def test_a_seed_replays_the_same_faults(virtual_time):  # noqa: ANN001
    runs = []
    for _ in range(2):
        virtual_time[0] = 0.0
        nemesis, control = make_nemesis(42, virtual_time)
        nemesis.run("random", 120.0, concurrency=1)
        runs.append((control.actions, [f.to_dict() for f in nemesis.timeline]))
    assert runs[0] == runs[1]
    assert len(runs[0][1]) >= 5
    virtual_time[0] = 0.0
    other, control = make_nemesis(43, virtual_time)
    other.run("random", 120.0, concurrency=1)
    assert control.actions != runs[0][0]


def test_scenarios_target_what_they_name(virtual_time):  # noqa: ANN001
    nemesis, control = make_nemesis(1, virtual_time)
    nemesis.kill_active_controller()
    assert control.actions == [("kill", 2, signal.SIGKILL), ("start", 2, 0)]
    control.actions.clear()
    nemesis.kill_leader()
    (_, leader, _), _ = control.actions
    assert leader == 101 + nemesis.timeline[-1].partition
    control.actions.clear()
    nemesis.kill_follower()
    assert control.actions[0][1] != 101 + nemesis.timeline[-1].partition
    control.actions.clear()
    nemesis.kill_two_replicas()
    killed = [n for a, n, _ in control.actions if a == "kill"]
    assert len(set(killed)) == 2 and 101 + nemesis.timeline[-1].partition in killed
    assert sorted(n for a, n, _ in control.actions if a == "start") == sorted(killed)
    control.actions.clear()
    before = virtual_time[0]
    nemesis.pause_leader()
    assert [a for a, _, _ in control.actions] == ["pause", "resume"]
    assert virtual_time[0] - before > 3.0  # paused longer than the session timeout
    control.actions.clear()
    nemesis.rolling_restart(deadline_s=1e9)
    assert [n for a, n, _ in control.actions if a == "kill"] == [1, 2, 3, 101, 102, 103]
    assert all(sig == signal.SIGTERM for a, _, sig in control.actions if a == "kill")


def test_heal_continues_paused_and_starts_stopped_nodes(virtual_time):  # noqa: ANN001
    nemesis, control = make_nemesis(1, virtual_time)
    control.paused = {102}
    control.down = {3}
    assert nemesis.heal()
    assert ("resume", 102, 0) in control.actions and ("start", 3, 0) in control.actions


def test_compose_commands():
    issued: list[list[str]] = []
    compose = ComposeControl("deploy/compose.yaml", runner=issued.append)
    compose.kill(101, signal.SIGKILL)
    compose.kill(2, signal.SIGTERM)
    compose.start(101)
    compose.pause(103)
    compose.resume(103)
    base = ["docker", "compose", "-f", "deploy/compose.yaml"]
    assert issued == [base + ["kill", "-s", "SIGKILL", "broker-1"], base + ["stop", "-t", "20", "controller-2"],
                      base + ["start", "broker-1"], base + ["pause", "broker-3"], base + ["unpause", "broker-3"]]
    assert compose.incarnation(101) == 2 and not compose.is_running(2)


def test_unavailability_windows():
    h = History()
    for i, t in enumerate([0.5, 1.0, 2.0, 2.5, 6.0]):
        h.send(Send(f"v{i}", 0, t))
        h.outcome(Outcome(f"v{i}", OutcomeKind.ok, t + 0.1, 0, i))
    faults = [Fault("kill-leader", [101], start_s=1.05, end_s=3.0, recovered_s=7.0)]
    (window,) = unavailability(h, faults)
    # The first ack of a send made after the fault: v2 (sent 2.0, acked 2.1).
    assert window.next_ack_s == pytest.approx(2.1 - 1.05)
    assert window.ack_gap_max_s == pytest.approx(6.1 - 2.6)


def test_report_exit_codes_and_text():
    report = Report(seed=7, scenario="kill-leader", duration_s=10, target="local", topic="t")
    assert report.exit_code == 0 and "PASS" in report.to_text() and "seed 7" in report.to_text()
    report.undrained = [1]
    assert report.exit_code == 3


def test_parse_duration():
    assert parse_duration("60s") == 60 and parse_duration("10m") == 600 and parse_duration("90") == 90
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_cli_usage_errors_exit_2(capsys):  # noqa: ANN001
    assert main(["run", "--scenario", "nope"]) == 2
    assert main(["run", "--duration", "forever"]) == 2
    assert main(["run", "--network", "none", "--subnet", "10.124.0"]) == 2  # only with network namespaces
    assert main(["run", "--network", "netns", "--subnet", "10.300.0"]) == 2
    assert "10.300.0" in capsys.readouterr().err


# choose_network: (requested, workload, explicit cluster, `make run` cluster running, why namespaces
# cannot be used or None) -> the mode the run uses.
NETWORK_TABLE = [
    ("auto", "default", False, False, None, "netns"),           # its own cluster, namespaces work: cuts on
    ("auto", "default", False, False, "need root", "none"),     # namespaces unavailable: says why
    ("auto", "default", False, True, None, "none"),             # drives the `make run` cluster
    ("auto", "default", True, False, None, "none"),             # --data-dir / --bootstrap-controller / compose
    ("auto", "txn", False, False, None, "none"),                # the txn workload has no netns mode yet
    ("none", "default", False, False, None, "none"),            # explicit choices are kept
    ("netns", "default", False, False, None, "netns"),
    ("netns", "default", False, False, "need root", "netns"),   # (and fail later with the reason)
]


@pytest.mark.parametrize(("requested", "workload", "explicit", "running", "unavailable", "expected"),
                         NETWORK_TABLE)
def test_choose_network(requested, workload, explicit, running, unavailable, expected):  # noqa: ANN001
    from cluster.chaos.runner import choose_network

    mode, note = choose_network(requested, workload=workload, explicit_cluster=explicit, running_cluster=running,
                                netns_unavailable=unavailable)
    assert mode == expected
    if requested == "auto":
        assert note.startswith(f"network: {'namespaces' if expected == 'netns' else 'none'}"), note
        if unavailable:
            assert unavailable in note  # the reason is printed, not swallowed
    else:
        assert note == ""


def test_parse_subnet():
    from cluster.chaos.netns import SUBNET, parse_subnet

    assert parse_subnet("10.124.0") == "10.124.0" and parse_subnet("10.124.0.0/24") == "10.124.0"
    assert parse_subnet(SUBNET) == SUBNET and parse_subnet("010.1.2") == "10.1.2"
    for bad in ("10.124", "10.124.0.1", "10.256.0", "a.b.c", "10.124.0/16", ""):
        with pytest.raises(ValueError):
            parse_subnet(bad)


# -- the overlapping random mix, leader churn, unclean elections, network cuts, the sweep (issue 15) ----

class LiveAdmin:
    """Leadership follows the fake processes: partition p has replicas rotated from 101 + p; its
    leader is the first replica neither killed nor paused, its ISR those replicas (the first replica
    alone when none is). Elections are recorded and answered with that leader."""

    def __init__(self, control: FakeControl) -> None:
        self.control = control
        self.elections: list[tuple[str, list[tuple[str, int]]]] = []

    def _alive(self, broker: int) -> bool:
        return broker not in self.control.down and broker not in self.control.paused

    def _partitions(self) -> list[apb.PartitionInfo]:
        out = []
        for p in range(3):
            replicas = [101 + (p + i) % 3 for i in range(3)]
            alive = [b for b in replicas if self._alive(b)]
            out.append(apb.PartitionInfo(partition=p, leader=alive[0] if alive else -1, leader_epoch=1,
                                         replicas=replicas, isr=alive or replicas[:1]))
        return out

    def describe_topics(self, names):  # noqa: ANN001, ANN201
        return apb.DescribeTopicsResponse(topics=[apb.TopicInfo(name=names[0], partitions=self._partitions())])

    def describe_cluster(self):  # noqa: ANN201
        active = next((c for c in (1, 2, 3) if c not in self.control.down and c not in self.control.paused), -1)
        return apb.DescribeClusterResponse(active_controller_id=active, brokers=[
            apb.BrokerInfo(broker_id=b, broker_epoch=10) for b in (101, 102, 103)])

    def elect_leaders(self, kind, partitions):  # noqa: ANN001, ANN201
        self.elections.append((kind, list(partitions)))
        return apb.ElectLeadersResponse(results=[apb.ElectionResult(topic="t", partition=p.partition,
                                                                        leader=p.leader)
                                                 for p in self._partitions() if p.leader >= 0])


class NetControl(FakeControl):
    def __init__(self) -> None:
        super().__init__()
        self.cuts: list[tuple[list[int], list[int]]] = []

    def isolate(self, a, b) -> None:  # noqa: ANN001
        self.cuts.append((list(a), list(b)))
        self.actions.append(("cut", a[0], 0))

    def heal_network(self) -> None:
        self.actions.append(("heal-network", 0, 0))


def live_nemesis(seed: int, now: list[float], control: FakeControl | None = None) -> tuple[Nemesis, FakeControl,
                                                                                            LiveAdmin]:
    """Recovery takes longer than any short wait: only a full wait (RECOVER_S_MAX) sees it."""
    control = control or FakeControl()
    admin = LiveAdmin(control)
    nemesis = Nemesis(control, admin, "t", random.Random(seed), lambda: now[0], session_timeout_s=3.0,
                      log=lambda _: None,
                      health=lambda timeout_s, _: timeout_s >= nemesis_module.RECOVER_S_MAX)
    return nemesis, control, admin


def test_leader_churn_kills_the_successor_right_after_it_takes_over(virtual_time):  # noqa: ANN001
    variants = set()
    for seed in range(30):
        nemesis, control, _ = live_nemesis(seed, virtual_time)
        nemesis.leader_churn()
        fault = nemesis.timeline[-1]
        variants.add(fault.kind)
        kills = [n for a, n, _ in control.actions if a == "kill"]
        partition = fault.partition
        replicas = [101 + (partition + i) % 3 for i in range(3)]
        assert kills[0] == replicas[0]            # the leader
        if fault.kind == "leader-churn/preferred-then-kill":
            assert kills[1:] in ([], [replicas[0]])  # the preferred leader, right after it took over again
        else:
            assert kills[1] == replicas[1]        # its successor (the next replica that leads)
        assert not control.down                   # everything restarted
    assert variants == {"leader-churn/kill-successor", "leader-churn/kill-successor-while-truncating",
                        "leader-churn/preferred-then-kill"}


def test_unclean_round_leaves_the_leader_alone_in_the_isr_then_elects_a_follower(virtual_time):  # noqa: ANN001
    nemesis, control, admin = live_nemesis(3, virtual_time)
    nemesis.unclean()
    fault = nemesis.timeline[-1]
    leader, *followers = fault.nodes
    kinds_in_order = [(a, n) for a, n, _ in control.actions]
    assert kinds_in_order[:2] == [("pause", f) for f in followers]
    assert ("kill", leader) in kinds_in_order
    assert kinds_in_order.index(("kill", leader)) < min(kinds_in_order.index(("resume", f)) for f in followers)
    assert admin.elections == [("unclean", [("t", -1)])]
    assert kinds_in_order[-1] == ("start", leader)
    assert set(nemesis.unclean_since) == {0, 1, 2}  # answered partitions: the checker's allowance starts here


class PartlyInSyncAdmin(LiveAdmin):
    """As LiveAdmin, but partitions 0 and 1 have lost a follower from the ISR (it is catching up) for
    the first `until_s` seconds, partition 2 for good."""

    def __init__(self, control: FakeControl, now: list[float], until_s: float) -> None:
        super().__init__(control)
        self.now, self.until_s = now, until_s

    def _partitions(self) -> list[apb.PartitionInfo]:
        out = super()._partitions()
        for p in out:
            if p.partition == 2 or self.now[0] < self.until_s:
                del p.isr[1:2]
        return out


def test_unclean_round_waits_for_a_partition_whose_isr_is_full(virtual_time):  # noqa: ANN001
    """A follower already out of the ISR may lack writes the leader and the other follower
    acknowledged; an unclean election of it could lose them legitimately (the checker excuses the
    partition), which would hide a leader that acknowledges alone (hw-no-min-insync)."""
    for seed in range(6):
        control = FakeControl()
        admin = PartlyInSyncAdmin(control, virtual_time, until_s=virtual_time[0] + 5.0)
        nemesis = Nemesis(control, admin, "t", random.Random(seed), lambda: virtual_time[0], session_timeout_s=3.0,
                          log=lambda _: None, health=lambda timeout_s, _: True)
        started_s = virtual_time[0]
        nemesis.unclean()
        fault = nemesis.timeline[-1]
        assert fault.partition in (0, 1), (seed, fault.partition)  # never 2, whose ISR never fills
        assert fault.start_s >= started_s + 5.0  # it waited for the ISR to fill
    # none fills within the wait: no unclean election at all
    control = FakeControl()
    admin = PartlyInSyncAdmin(control, virtual_time, until_s=virtual_time[0] + 1000.0)
    nemesis = Nemesis(control, admin, "t", random.Random(1), lambda: virtual_time[0], session_timeout_s=3.0,
                      log=lambda _: None, health=lambda timeout_s, _: True)
    nemesis.unclean()
    assert not admin.elections and not nemesis.unclean_since
    assert not any(f.kind == "unclean-election" for f in nemesis.timeline)


def test_random_mix_overlaps_rounds_and_cuts_the_network_only_with_namespaces(virtual_time):  # noqa: ANN001
    nemesis, control, _ = live_nemesis(1, virtual_time)
    nemesis.run("random", 1200.0, concurrency=1)
    kinds_seen = {f.kind.split("/")[0] for f in nemesis.timeline}
    assert any(f.overlapped for f in nemesis.timeline)
    assert not any(k.startswith("cut-") for k in kinds_seen)
    assert {"leader-churn", "unclean-election"} <= kinds_seen
    assert any(k.startswith("pause-") and k.endswith("-short") for k in kinds_seen)
    virtual_time[0] = 0.0
    nemesis, control, _ = live_nemesis(1, virtual_time, NetControl())
    nemesis.run("random", 1200.0, concurrency=1)
    assert any(f.kind.startswith("cut-") for f in nemesis.timeline)
    assert control.cuts and ("heal-network", 0, 0) in control.actions
    with pytest.raises(ValueError, match="network namespaces"):
        live_nemesis(5, virtual_time)[0].run("partition", 10.0)


def test_sweep_makes_each_broker_the_only_leader_and_reads_it(virtual_time):  # noqa: ANN001
    nemesis, control, _ = live_nemesis(1, virtual_time)
    read: list[tuple[int, set[int]]] = []
    assert nemesis.sweep(lambda b: read.append((b, set(control.paused))) or True) == [101, 102, 103]
    assert read == [(101, {102, 103}), (102, {101, 103}), (103, {101, 102})]
    assert not control.paused


# -- targeted rounds and concurrent rounds (issue 15: detection power) ---------------------------------

def test_lagging_follower_election_kills_the_leader_while_the_follower_is_out_of_the_isr(virtual_time):  # noqa: ANN001
    for seed in range(10):
        nemesis, control, _ = live_nemesis(seed, virtual_time)
        nemesis.lag_time_s = 5.0
        nemesis.lagging_follower_election()
        fault = nemesis.timeline[-1]
        replicas = [101 + (fault.partition + i) % 3 for i in range(3)]
        leader, lagging = replicas[0], replicas[1]  # the follower a careless election would take first
        assert control.actions == [("pause", lagging, 0), ("pause", leader, 0), ("resume", lagging, 0),
                                   ("kill", leader, signal.SIGKILL), ("start", leader, 0)], control.actions
        paused_for = fault.actions[1][0] - fault.actions[0][0]
        assert paused_for >= 5.0  # longer than the session and the lag time: out of the ISR
        assert not control.down


class RejoinAdmin(LiveAdmin):
    """As LiveAdmin, but a follower that was out of the ISR is back in it after three resumes, even
    while stopped (an ISR member is only dropped after the lag time)."""

    def __init__(self, control: FakeControl) -> None:
        super().__init__(control)
        self.resumes: dict[int, int] = {}

    def _alive(self, broker: int) -> bool:
        if broker in self.control.paused and self.resumes.get(broker, 0) >= 3:
            return True
        return super()._alive(broker)


def test_rejoin_round_kills_the_leader_when_the_stopped_follower_is_back_in_the_isr(virtual_time):  # noqa: ANN001
    control = FakeControl()
    admin = RejoinAdmin(control)
    resume = control.resume

    def counting_resume(node_id: int) -> None:
        admin.resumes[node_id] = admin.resumes.get(node_id, 0) + 1
        resume(node_id)
    control.resume = counting_resume  # type: ignore[method-assign]
    nemesis = Nemesis(control, admin, "t", random.Random(4), lambda: virtual_time[0], session_timeout_s=3.0,
                      log=lambda _: None, health=lambda timeout_s, _: True)
    nemesis.rejoin_while_leader_dies()
    fault = nemesis.timeline[-1]
    replicas = [101 + (fault.partition + i) % 3 for i in range(3)]
    leader, joiner = replicas[0], replicas[1]
    kill = control.actions.index(("kill", leader, signal.SIGKILL))
    before = [a for a in control.actions[:kill] if a[1] == joiner]
    assert before[-1] == ("pause", joiner, 0) and admin.resumes[joiner] >= 3  # stopped, back in the ISR
    assert control.actions[kill + 1] == ("resume", joiner, 0)
    assert control.actions[-1] == ("start", leader, 0) and not control.paused and not control.down


def test_stall_followers_kills_the_leader_while_both_followers_are_stopped(virtual_time):  # noqa: ANN001
    nemesis, control, _ = live_nemesis(5, virtual_time)
    nemesis.stall_followers()
    fault = nemesis.timeline[-1]
    leader, *followers = [101 + (fault.partition + i) % 3 for i in range(3)]
    assert fault.kind == "stall-followers" and sorted(fault.nodes) == [101, 102, 103]
    kill = control.actions.index(("kill", leader, signal.SIGKILL))
    for follower in followers:  # stopped before the kill, resumed only after it
        assert control.actions.index(("pause", follower, 0)) < kill < control.actions.index(("resume", follower, 0))
    stall_s = [a for a in nemesis.timeline[-1].actions if "SIGKILL" in a[1]][0][0] - fault.start_s
    assert stall_s < nemesis.session_timeout_s  # the followers stay registered and in the ISR
    assert control.actions[-1] == ("start", leader, 0) and not control.paused and not control.down


def test_concurrent_random_rounds_overlap(virtual_time):  # noqa: ANN001
    nemesis, control, _ = live_nemesis(8, virtual_time)
    nemesis.run("random", 600.0, concurrency=3)
    faults = [f for f in nemesis.timeline if f.end_s >= 0]
    assert any(a is not b and a.start_s < b.end_s and b.start_s < a.end_s for a in faults for b in faults)
    counts = nemesis.fault_actions()
    assert counts["SIGKILL"] > 0 and counts["SIGSTOP"] > 0 and counts["cut"] == 0
    assert not control.down and not control.paused  # every worker restored its victims


def test_an_exclusive_round_waits_for_running_rounds_and_blocks_new_ones():
    import threading

    nemesis, _ = make_nemesis(1, [0.0])
    log: list[str] = []
    shared_in, exclusive_waiting, release_shared = threading.Event(), threading.Event(), threading.Event()

    def shared(name: str, hold: threading.Event | None) -> None:
        with nemesis._round():
            log.append(f"{name} in")
            shared_in.set()
            if hold is not None:
                hold.wait(10)
            log.append(f"{name} out")

    def exclusive() -> None:
        exclusive_waiting.set()
        with nemesis._round(exclusive=True):
            log.append("exclusive in")
            log.append("exclusive out")

    first = threading.Thread(target=shared, args=("first", release_shared))
    first.start()
    assert shared_in.wait(10)
    alone = threading.Thread(target=exclusive)
    alone.start()
    assert exclusive_waiting.wait(10)
    while not nemesis._exclusive_waiting:  # the exclusive round is queued
        threading.Event().wait(0.01)
    later = threading.Thread(target=shared, args=("later", None))
    later.start()
    threading.Event().wait(0.2)
    assert log == ["first in"]  # neither the exclusive round nor a new shared one entered
    release_shared.set()
    for t in (first, alone, later):
        t.join(10)
    assert log == ["first in", "first out", "exclusive in", "exclusive out", "later in", "later out"]


def test_random_mix_tries_every_targeted_round_early(virtual_time):  # noqa: ANN001
    for seed in (1, 2, 3):
        virtual_time[0] = 0.0
        nemesis, _, _ = live_nemesis(seed, virtual_time)
        nemesis.run("random", 400.0, concurrency=1)
        kinds = [f.kind.split("/")[0] for f in nemesis.timeline]
        targeted = kinds[0::2]  # a worker's first round and every other one after it
        assert {targeted[0], targeted[1]} == {"unclean-election", "rejoin-while-leader-dies"}
        assert {"rejoin-while-leader-dies", "lagging-follower-election", "leader-churn"} <= set(targeted[:7])
        assert any(k.startswith("isr-") for k in targeted[:7])


class ReturnAdmin(LiveAdmin):
    """Partition 0 (replicas 101, 102, 103) is led by 102 until a preferred election moves it to 101;
    once 101 is killed, 102 leads again."""

    def __init__(self, control: FakeControl) -> None:
        super().__init__(control)
        self.preferred = False

    def _partitions(self) -> list[apb.PartitionInfo]:
        out = super()._partitions()
        leader = 101 if self.preferred and 101 not in self.control.down else 102
        out[0] = apb.PartitionInfo(partition=0, leader=leader, leader_epoch=1, replicas=[101, 102, 103],
                                   isr=[101, 102, 103])
        return out[:1]

    def elect_leaders(self, kind, partitions):  # noqa: ANN001, ANN201
        self.preferred = self.preferred or kind == "preferred"
        return super().elect_leaders(kind, partitions)


def test_divergent_return_kills_the_new_leader_once_the_third_replica_has_its_records(virtual_time):  # noqa: ANN001
    control = FakeControl()
    admin = ReturnAdmin(control)
    nemesis = Nemesis(control, admin, "t", random.Random(5), lambda: virtual_time[0], session_timeout_s=3.0,
                      log=lambda _: None, health=lambda timeout_s, _: True)
    # 103 follows 102 up to 100, truncates to 101's 50 and fetches 101's records up to 60, then (102
    # leading again) fetches from 102
    ends = {101: iter([50]), 103: iter([100, 100, 50, 60, 60, 60, 90])}
    asked: list[tuple[int, bool]] = []

    def log_end(broker: int, partition: int) -> int:
        assert partition == 0
        asked.append((broker, 102 in control.paused))
        return next(ends[broker])
    nemesis.log_end = log_end
    nemesis.divergent_return()
    fault = nemesis.timeline[-1]
    assert fault.partition == 0 and fault.nodes == [102, 101, 103]
    assert control.actions == [
        ("pause", 101, 0), ("pause", 102, 0), ("resume", 101, 0),  # 102 appended what 101 lacks; 101 elected
        ("pause", 103, 0), ("kill", 101, signal.SIGKILL), ("resume", 102, 0), ("resume", 103, 0),
        ("kill", 102, signal.SIGKILL), ("start", 102, 0), ("start", 101, 0)], control.actions
    assert admin.elections == [("preferred", [("t", 0)])]
    assert asked[:5] == [(103, True), (101, True), (103, True), (103, True), (103, True)]  # watched while 102 is stopped
    assert any("from 50 up to 60" in text for _, text in fault.actions)
    assert any("moved from 60 to 90" in text for _, text in fault.actions)
    times = {text.split(" ")[0] + " " + text.split(" ")[-1]: t for t, text in fault.actions}
    assert times["SIGCONT 102"] - times["SIGSTOP 102"] <= 3.0 * 0.65 + 0.2 + 0.01  # never fenced: it stays in the ISR
    assert not control.down and not control.paused


def test_divergent_return_with_namespaces_cuts_the_old_leader_from_the_brokers_instead(virtual_time):  # noqa: ANN001
    control = NetControl()
    admin = ReturnAdmin(control)
    nemesis = Nemesis(control, admin, "t", random.Random(5), lambda: virtual_time[0], session_timeout_s=3.0,
                      log=lambda _: None, health=lambda timeout_s, _: True)
    nemesis.divergent_return()
    fault = nemesis.timeline[-1]
    assert fault.kind == "divergent-return/cut"
    # 102 keeps its controller session and its clients: cut from 101, then from 103 as well
    assert control.cuts == [([102], [101]), ([102], [103])]
    assert ("pause", 102, 0) not in control.actions
    heal = control.actions.index(("heal-network", 0, 0))
    assert control.actions.index(("kill", 101, signal.SIGKILL)) < heal < control.actions.index(
        ("kill", 102, signal.SIGKILL))
    assert admin.elections == [("preferred", [("t", 0)])]
    assert not control.down and not control.paused


class ThreeEpochsAdmin(LiveAdmin):
    """Partition 0 (replicas 101 = A, 102 = X, 103 = F) as the controller would show the three-epochs
    round: X leads; a preferred election moves leadership to the first replica; a reassignment that
    keeps the replica set reorders them at once; a stopped F leading is fenced, and the first replica
    in order that is running leads instead."""

    def __init__(self, control: FakeControl) -> None:
        super().__init__(control)
        self.leader = 102
        self.replicas = [101, 102, 103]
        self.reassignments: list[list[int]] = []

    def _partitions(self) -> list[apb.PartitionInfo]:
        if self.leader == 103 and 103 in self.control.paused:
            self.leader = next(b for b in self.replicas if b not in self.control.paused)
        return [apb.PartitionInfo(partition=0, leader=self.leader, leader_epoch=1, replicas=self.replicas,
                                  isr=[101, 102, 103])]

    def elect_leaders(self, kind, partitions):  # noqa: ANN001, ANN201
        if kind == "preferred":
            self.leader = self.replicas[0]
        return super().elect_leaders(kind, partitions)

    def alter_partition_reassignments(self, items):  # noqa: ANN001, ANN201
        ((_, partition, target),) = items
        assert partition == 0 and sorted(target) == [101, 102, 103]  # the same replicas, reordered
        self.replicas = list(target)
        self.reassignments.append(list(target))
        return apb.AlterPartitionReassignmentsResponse(results=[apb.ReassignmentResult(topic="t", partition=0)])


class UncutControl(NetControl):
    def unisolate(self, a, b) -> None:  # noqa: ANN001
        self.actions.append(("uncut", a[0], 0))
        self.uncut = getattr(self, "uncut", []) + [(list(a), list(b))]


def three_epochs_nemesis(control: FakeControl, now: list[float], a_grows: bool = True,
                         f_tail: int = 100) -> tuple[Nemesis, ThreeEpochsAdmin]:
    admin = ThreeEpochsAdmin(control)
    nemesis = Nemesis(control, admin, "t", random.Random(5), lambda: now[0], session_timeout_s=3.0,
                      log=lambda _: None, health=lambda timeout_s, _: True)
    nemesis.lag_time_s = 5.0
    calls = {101: 0, 103: 0}

    def log_end(broker: int, partition: int) -> int:
        assert partition == 0
        if broker == 101 and admin.leader == 101 and len(admin.elections) == 1:  # A leading E1: 50, then 60
            calls[101] += 1
            return 60 if a_grows and calls[101] > 1 else 50
        if broker == 103 and admin.leader == 103:  # F leading: 100, then 110
            calls[103] += 1
            return 100 if calls[103] == 1 else 110
        return {101: 50, 102: 100, 103: f_tail}[broker]
    nemesis.log_end = log_end
    return nemesis, admin


def _times(fault: Fault, text: str) -> list[float]:
    return [t for t, a in fault.actions if a == text]


def test_three_epochs_with_namespaces_makes_each_leader_by_a_clean_election_without_following_the_last(virtual_time):  # noqa: ANN001, E501
    control = UncutControl()
    nemesis, admin = three_epochs_nemesis(control, virtual_time)
    nemesis.three_epochs()
    fault = nemesis.timeline[-1]
    assert fault.kind == "three-epochs/cut" and fault.partition == 0 and fault.nodes == [103, 101, 102]
    # A (101) cut from X (102) while X appends; F (103) cut from A before A leads; both cuts last until
    # A leads again, so neither ever fetches from the other
    assert control.cuts == [([101], [102]), ([103], [101])]
    assert control.actions == [("cut", 101, 0), ("cut", 103, 0), ("pause", 103, 0), ("uncut", 101, 0),
                               ("resume", 103, 0)], control.actions
    assert control.uncut == [([101], [102, 103])]
    # A by a preferred election, F by one after the reorder, A again when F is fenced; order restored
    assert admin.elections == [("preferred", [("t", 0)]), ("preferred", [("t", 0)])]
    assert admin.reassignments == [[103, 101, 102], [101, 102, 103]]
    assert not nemesis.unclean_since
    texts = [a for _, a in fault.actions]
    assert texts.index("reassign partition 0 to [103, 101, 102]") < texts.index("SIGSTOP node 103") < texts.index(
        "reassign partition 0 to [101, 102, 103]") < texts.index("heal the cut [101] from [102, 103]")
    assert any("appended from 50 up to 60" in a for a in texts)
    assert any("leads partition 0 from 100, appended up to 110" in a for a in texts)
    assert any("broker 101 leads partition 0 again" in a for a in texts)
    # F stops within the lag window it gave A at its election (A must still be in the ISR)
    (f_elected,) = [t for t, a in fault.actions if a == "  preferred election: 0->103"]
    assert _times(fault, "SIGSTOP node 103")[0] - f_elected < nemesis.lag_time_s
    assert not control.paused


def test_three_epochs_without_namespaces_stops_instead_each_node_for_less_than_a_session(virtual_time):  # noqa: ANN001
    control = FakeControl()
    nemesis, admin = three_epochs_nemesis(control, virtual_time)
    nemesis.three_epochs()
    fault = nemesis.timeline[-1]
    assert fault.kind == "three-epochs"
    assert control.actions == [
        ("pause", 101, 0),                                        # X appends what A lacks
        ("pause", 102, 0), ("pause", 103, 0), ("resume", 101, 0),  # A elected; F never fetches from it
        ("pause", 101, 0), ("resume", 103, 0),                    # reordered, F elected; A never fetches from it
        ("pause", 103, 0), ("resume", 101, 0),                    # F fenced: A leads again
        ("resume", 103, 0), ("resume", 102, 0)], control.actions
    assert admin.elections == [("preferred", [("t", 0)]), ("preferred", [("t", 0)])]
    assert admin.reassignments == [[103, 101, 102], [101, 102, 103]]
    for node, stop in ((101, 0), (103, 0), (101, 1)):  # A, F, A again: never fenced, so still in the ISR
        stopped, resumed = _times(fault, f"SIGSTOP node {node}")[stop], _times(fault, f"SIGCONT node {node}")[stop]
        assert resumed - stopped < nemesis.session_timeout_s, (node, stop)
    assert not control.paused


def test_three_epochs_ends_before_the_reorder_when_the_second_leader_took_nothing(virtual_time):  # noqa: ANN001
    control = UncutControl()
    nemesis, admin = three_epochs_nemesis(control, virtual_time, a_grows=False)
    nemesis.three_epochs()
    fault = nemesis.timeline[-1]
    assert admin.elections == [("preferred", [("t", 0)])] and not admin.reassignments
    assert control.actions == [("cut", 101, 0), ("cut", 103, 0), ("uncut", 101, 0)], control.actions
    assert any("took no record" in a for _, a in fault.actions)
    assert not control.paused


def test_three_epochs_ends_before_any_election_when_the_third_replica_holds_no_tail(virtual_time):  # noqa: ANN001
    control = FakeControl()
    nemesis, admin = three_epochs_nemesis(control, virtual_time, f_tail=50)
    nemesis.three_epochs()
    assert not admin.elections and not admin.reassignments
    assert control.actions == [("pause", 101, 0), ("pause", 102, 0), ("pause", 103, 0), ("resume", 101, 0),
                               ("resume", 103, 0), ("resume", 102, 0)], control.actions
    assert any("holds nothing beyond 101's log end 50" in a for _, a in nemesis.timeline[-1].actions)


def deck_first_pass(nemesis: Nemesis, seed: int) -> list:
    """The targeted deck's first pass, dealt with a deck RNG seeded `seed`."""
    nemesis._deck_rng = random.Random(seed)
    return [nemesis._next_targeted() for _ in range(len(nemesis._targeted_deck()))]


def test_three_epochs_is_the_fifth_card_of_the_deck_only_with_namespaces(virtual_time):  # noqa: ANN001
    for seed in (1, 2, 3):
        nemesis, _, _ = live_nemesis(seed, virtual_time, NetControl())
        first_pass = deck_first_pass(nemesis, seed)
        assert first_pass[3:5] == [nemesis.divergent_return, nemesis.three_epochs]
        assert first_pass.count(nemesis.three_epochs) == 1
        plain, _, _ = live_nemesis(seed, virtual_time)
        assert plain.three_epochs not in plain._targeted_deck()


def stale_follower_nemesis(control: FakeControl, now: list[float],
                           f_copies: bool = True) -> tuple[Nemesis, ThreeEpochsAdmin]:
    """Partition 0 led by 102 (L) with replicas [101 (X), 102, 103 (F)]: X ends at 100; F copies L's
    tail (120) unless `f_copies` is False; after X's election L truncates to X's 100."""
    admin = ThreeEpochsAdmin(control)
    nemesis = Nemesis(control, admin, "t", random.Random(5), lambda: now[0], session_timeout_s=3.0,
                      log=lambda _: None, health=lambda timeout_s, _: True)
    nemesis.lag_time_s = 5.0

    def log_end(broker: int, partition: int) -> int:
        assert partition == 0
        if broker == 103:
            return 120 if f_copies else 100
        if broker == 102:  # L: its tail until it follows X, then X's log
            return 100 if admin.leader == 101 else 120
        return 100
    nemesis.log_end = log_end
    return nemesis, admin


def test_stale_follower_cuts_the_follower_from_the_controllers_across_two_clean_elections(virtual_time):  # noqa: ANN001
    control = UncutControl()
    nemesis, admin = stale_follower_nemesis(control, virtual_time)
    nemesis.stale_follower()
    fault = nemesis.timeline[-1]
    assert fault.kind == "stale-follower/cut" and fault.partition == 0 and fault.nodes == [103, 102, 101]
    # F (103) cut from the controllers only (it keeps fetching from L); L (102) from X (101) only
    assert control.cuts == [([103], [1, 2, 3]), ([102], [101])]
    # X by a preferred election (X first), then L again (L first); the order restored at the end
    assert admin.elections == [("preferred", [("t", 0)]), ("preferred", [("t", 0)])]
    assert admin.reassignments == [[101, 102, 103], [102, 101, 103], [101, 102, 103]]
    assert admin.leader == 102 and not nemesis.unclean_since and not control.paused and not control.down
    texts = [a for _, a in fault.actions]
    elections = [i for i, a in enumerate(texts) if a.startswith("  preferred election")]
    assert texts[elections[0]] == "  preferred election: 0->101" and texts[elections[1]] == "  preferred election: 0->102"
    # L's cut from X is healed between the elections (L follows X and truncates its tail); F's cut
    # from the controllers only after L leads again, so F never learns either epoch before fetching
    assert elections[0] < texts.index("heal the cut [102] from [101]") < elections[1]
    assert elections[1] < texts.index("heal the cut [103] from [1, 2, 3]")
    assert control.uncut == [([102], [101]), ([103], [1, 2, 3])]
    assert any("broker 103 holds 102's tail up to 120 at least; broker 101 ends at 100" in a for a in texts)
    # L's tail is appended for less than the lag time, so X (which never gets it) stays in the ISR
    (cut_l,) = _times(fault, "cut [102] from [101]")
    assert [t for t, a in fault.actions if a == "  preferred election: 0->101"][0] - cut_l < nemesis.lag_time_s


def test_stale_follower_ends_before_any_election_when_the_follower_copied_no_tail(virtual_time):  # noqa: ANN001
    control = UncutControl()
    nemesis, admin = stale_follower_nemesis(control, virtual_time, f_copies=False)
    nemesis.stale_follower()
    assert not admin.elections and not admin.reassignments
    assert control.uncut == [([103], [1, 2, 3]), ([102], [101])]  # both cuts healed
    assert any("copied nothing of 102's tail" in a for _, a in nemesis.timeline[-1].actions)


def test_stale_follower_is_the_sixth_card_of_the_deck_only_with_namespaces(virtual_time):  # noqa: ANN001
    for seed in (1, 2, 3):
        nemesis, _, _ = live_nemesis(seed, virtual_time, NetControl())
        first_pass = deck_first_pass(nemesis, seed)
        assert first_pass[5] == nemesis.stale_follower and first_pass.count(nemesis.stale_follower) == 1
        plain, _, _ = live_nemesis(seed, virtual_time)
        assert plain.stale_follower not in plain._targeted_deck()


class ThrottleControl(UncutControl):
    def __init__(self) -> None:
        super().__init__()
        self.throttles: list[tuple[int, int, int]] = []

    def throttle(self, src, dst, rate_kbit) -> None:  # noqa: ANN001
        self.throttles.append((src, dst, rate_kbit))
        self.actions.append(("throttle", src, dst))

    def unthrottle(self, src) -> None:  # noqa: ANN001
        self.actions.append(("unthrottle", src, 0))


class EpochStartAdmin(LiveAdmin):
    """Partition 0 (replicas [101 = L, 102, 103]) led by L, as the controller would show the epoch-start
    round: once F is cut from L and L from P, L drops F from the ISR; a preferred election makes the
    first replica in order leader; P leading adds F to the ISR on its fourth poll (`joins`: the broken
    build; a correct one never does within the window); with P and L killed, F leads alone."""

    def __init__(self, control: FakeControl, joins: bool = True) -> None:
        super().__init__(control)
        self.replicas = [101, 102, 103]
        self.leader = 101
        self.joins = joins
        self.polls = 0
        self.reassignments: list[list[int]] = []

    def _roles(self) -> tuple[int, int] | None:
        cuts = self.control.cuts  # type: ignore[attr-defined]
        if len(cuts) < 2:
            return None
        return cuts[0][0][0], cuts[1][1][0]  # (F, P): F cut from L first, then L from P

    def _isr(self) -> list[int]:
        roles = self._roles()
        if roles is None:
            return [101, 102, 103]
        f, p = roles
        if 101 in self.control.down and p in self.control.down:
            self.leader = f
            return [f]
        if self.leader == p:
            self.polls += 1
            if self.joins and self.polls > 3:
                return sorted([101, p, f])
        return sorted([101, p])

    def _partitions(self) -> list[apb.PartitionInfo]:
        isr = self._isr()
        return [apb.PartitionInfo(partition=0, leader=self.leader, leader_epoch=1, replicas=self.replicas, isr=isr)]

    def elect_leaders(self, kind, partitions):  # noqa: ANN001, ANN201
        if kind == "preferred" and self.replicas[0] in self._isr():
            self.leader = self.replicas[0]
        return super().elect_leaders(kind, partitions)

    def alter_partition_reassignments(self, items):  # noqa: ANN001, ANN201
        ((_, partition, target),) = items
        assert partition == 0 and sorted(target) == [101, 102, 103]
        self.replicas = list(target)
        self.reassignments.append(list(target))
        return apb.AlterPartitionReassignmentsResponse(results=[apb.ReassignmentResult(topic="t", partition=0)])


def epoch_start_nemesis(now: list[float], joins: bool = True, p_copies: bool = True,
                        seed: int = 5) -> tuple[Nemesis, ThrottleControl, EpochStartAdmin]:
    control = ThrottleControl()
    admin = EpochStartAdmin(control, joins)
    nemesis = Nemesis(control, admin, "t", random.Random(seed), lambda: now[0], session_timeout_s=3.0,
                      log=lambda _: None, health=lambda timeout_s, _: True)
    nemesis.lag_time_s = 5.0

    def log_end(broker: int, partition: int) -> int:
        assert partition == 0
        roles = admin._roles()
        f = roles[0] if roles else [c for c in control.cuts if c[1] == [101]][0][0][0]
        if broker == f:
            return 100
        return 160 if broker == 101 else (150 if p_copies else 100)
    nemesis.log_end = log_end
    return nemesis, control, admin


def test_epoch_start_elects_the_cut_follower_and_kills_both_others_once_the_chasing_one_is_in_the_isr(virtual_time):  # noqa: ANN001, E501
    for seed in (5, 6):
        virtual_time[0] = 0.0
        nemesis, control, admin = epoch_start_nemesis(virtual_time, seed=seed)
        nemesis.epoch_start()
        fault = nemesis.timeline[-1]
        f, p, lead = fault.nodes
        assert fault.kind == "epoch-start/cut" and fault.partition == 0 and lead == 101 and {f, p} == {102, 103}
        # F cut from L; L from P; P's answers to F slowed; F cut from P once it is in the ISR
        assert control.cuts == [([f], [101]), ([101], [p]), ([f], [p])]
        assert control.throttles == [(p, f, nemesis_module.RATE_KBIT)]
        assert control.actions == [
            ("cut", f, 0), ("cut", 101, 0), ("throttle", p, f), ("cut", f, 0),
            ("kill", p, signal.SIGKILL), ("kill", 101, signal.SIGKILL),
            ("uncut", f, 0), ("uncut", 101, 0), ("uncut", f, 0), ("unthrottle", p, 0),
            *[("start", n, 0) for n in [a for k, a, _ in control.actions if k == "start"]]], control.actions
        assert sorted(a for k, a, _ in control.actions if k == "start") == sorted([p, 101])
        # P by a preferred election after the reorder [P, L, F]; the order restored at the end
        assert admin.elections == [("preferred", [("t", 0)])]
        assert admin.reassignments == [[p, 101, f], [101, 102, 103]]
        texts = [a for _, a in fault.actions]
        assert texts.index(f"rate-limit node {p} to node {f} ({nemesis_module.RATE_KBIT} kbit/s)") < texts.index(
            f"reassign partition 0 to {[p, 101, f]}") < texts.index(f"  preferred election: 0->{p}")
        assert any(f"broker {p} ends at 150 at least, broker {f} at 100" in a for a in texts)
        assert any(f"broker {f} is in the ISR of partition 0 with log end 100" in a for a in texts)
        assert any(f"broker {f} leads partition 0" == a for a in texts)
        # F is healed from P only after it leads alone (the rest of P's answer must never reach it)
        assert texts.index(f"broker {f} leads partition 0") < texts.index(f"heal the cut [{f}] from [{p}]")
        # L is cut from P within the lag time after F's cut (L must not drop P first), and the
        # election comes within the lag time after L's cut from P
        (cut_f,) = _times(fault, f"cut [{f}] from [101]")
        (cut_p,) = _times(fault, f"cut [101] from [{p}]")
        (elected,) = _times(fault, "preferred election of partitions [0]")
        assert 0.6 * 5.0 <= cut_p - cut_f <= 0.75 * 5.0 + 0.01
        assert elected - cut_p < 5.0
        assert not control.paused and not control.down and not nemesis.unclean_since


def test_epoch_start_restores_without_killing_when_the_follower_is_not_added(virtual_time):  # noqa: ANN001
    nemesis, control, admin = epoch_start_nemesis(virtual_time, joins=False)
    nemesis.epoch_start()
    fault = nemesis.timeline[-1]
    f, p, _ = fault.nodes
    assert not any(k == "kill" for k, _, _ in control.actions)
    assert control.actions == [("cut", f, 0), ("cut", 101, 0), ("throttle", p, f), ("uncut", f, 0), ("uncut", 101, 0),
                               ("unthrottle", p, 0)], control.actions
    assert admin.elections == [("preferred", [("t", 0)])]
    assert admin.reassignments == [[p, 101, f], [101, 102, 103]]
    assert any("was not added to the ISR" in a for _, a in fault.actions)


def test_epoch_start_ends_before_the_election_when_the_other_follower_copied_nothing_more(virtual_time):  # noqa: ANN001
    nemesis, control, admin = epoch_start_nemesis(virtual_time, p_copies=False)
    nemesis.epoch_start()
    fault = nemesis.timeline[-1]
    f, p, _ = fault.nodes
    assert control.actions == [("cut", f, 0), ("uncut", f, 0)], control.actions
    assert not admin.elections and not admin.reassignments and not control.throttles
    assert any(f"broker {p} holds nothing beyond {f}'s log end 100" in a for _, a in fault.actions)


def test_epoch_start_is_the_first_card_of_the_deck_only_with_rate_limits(virtual_time):  # noqa: ANN001
    for seed in (1, 2, 3):
        nemesis, _, _ = live_nemesis(seed, virtual_time, ThrottleControl())
        first_pass = deck_first_pass(nemesis, seed)
        assert first_pass[0] == nemesis.epoch_start and first_pass.count(nemesis.epoch_start) == 1
        assert set(first_pass[1:3]) == {nemesis.unclean, nemesis.rejoin_while_leader_dies}
        assert first_pass[4:7] == [nemesis.divergent_return, nemesis.three_epochs, nemesis.stale_follower]
        cut_only, _, _ = live_nemesis(seed, virtual_time, NetControl())
        assert cut_only.epoch_start not in cut_only._targeted_deck()
    with pytest.raises(ValueError, match="epoch-start needs network namespaces"):
        live_nemesis(1, virtual_time, NetControl())[0].run("epoch-start", 10.0)


def test_epoch_start_never_takes_a_partition_elected_uncleanly(virtual_time):  # noqa: ANN001
    nemesis, control, admin = epoch_start_nemesis(virtual_time)
    nemesis.unclean_since[0] = 1.0  # the only partition: the checker excuses what is lost on it
    nemesis.epoch_start()
    assert not any(f.kind.startswith("epoch-start") for f in nemesis.timeline)
    assert not admin.elections and not control.throttles and not control.cuts
