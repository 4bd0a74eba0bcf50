"""The nemesis: faults against a cluster's processes, in named scenarios, recorded in a timeline.

Faults act through a `NodeControl`:
    LocalControl    a `LocalCluster` this process started or adopted (`make run`'s): signals by
                    PID (SIGKILL, SIGTERM, SIGSTOP/SIGCONT) and restarts through the launcher.
    ComposeControl  `docker compose kill -s SIG | stop | start | pause | unpause` by service name.
                    Docker is not available where Brook is developed: only the command construction
                    is tested (tests/unit/chaos), never a run.

Scenarios (each repeats rounds until the duration is used up; every choice comes from one seeded
`random.Random`, over sorted candidates, so a seed replays the same decisions given the same cluster
state):
    kill-active-controller  SIGKILL the active controller, restart it after a few seconds
    kill-leader             SIGKILL the leader of a random partition of the workload topic, restart
    kill-follower           SIGKILL a follower of a random partition, restart
    kill-two-replicas       SIGKILL the leader and a follower of one partition (2 of 3), restart both
    pause-leader            SIGSTOP a partition leader for longer than broker.session.timeout.ms, SIGCONT
    rolling-restart         SIGTERM + restart every node one at a time, waiting for health in between
    leader-churn            SIGKILL a partition's leader, then its successor right after it takes over;
                            or restart the old leader and kill the successor while the old one truncates;
                            or move leadership back by a preferred election and kill the new leader
    pause                   SIGSTOP a leader, a follower or the active controller, shorter or longer
                            than broker.session.timeout.ms
    isr-controller          SIGKILL the active controller while an ISR shrink (a follower just died) or
                            an ISR expansion (a follower just restarted) is in flight
    unclean                 stop both followers of a partition until the ISR is the leader alone, kill the
                            leader, resume the followers, force an unclean election, restart the leader
                            (safe for acks=all with min.insync.replicas=2: no acknowledged write exists
                            only on the leader)
    lagging-election        a follower out of the ISR but eligible (unfenced, lagging) when the leader
                            dies: a correct election picks an ISR member, never it
    rejoin                  a follower catches up throttled (SIGSTOP/SIGCONT slices); the moment it is
                            back in the ISR while stopped, the leader dies and it is elected
    divergent-return        three leader epochs with diverging tails: the second replica leads and
                            appends what the stopped first one never gets, is stopped while a preferred
                            election makes the first one leader, which dies as soon as the third has
                            its records; the second one leads again (KAFKA-7415's schedule)
    three-epochs            three clean leaderships whose histories skip each other's epochs: the second
                            replica leads with a tail the first lacks; the first leads (preferred
                            election) without the third following it; the replicas are reordered and the
                            third leads (preferred) without the first following it; the third is fenced
                            and the first leads again, so the third needs two truncation rounds (KIP-279)
    stale-follower          (network namespaces) a follower cut from the controllers misses two
                            leadership changes (preferred elections: another replica leads without the
                            leader's tail, then the leader again, truncated) and fetches from its old
                            leader in the epoch it knew: a correct leader fences it (KIP-320)
    epoch-start             (network namespaces) a follower cut from the leader leaves the ISR with its log
                            end between the other follower's HW and log end; the other follower, cut from
                            the leader, leads by a preferred election and its answers to the first one are
                            rate-limited (tc): a correct leader adds it to the ISR only from its epoch
                            start on; the moment it is in the ISR the two others die (KAFKA-7128)
    partition               (a control with network namespaces) cut a leader from its followers or from
                            the controllers, one broker from every node, the active controller from the
                            other nodes, or one follower from its leader; shorter or longer than a session
    random                  a seeded mix of every round above plus SIGKILL/SIGTERM/SIGSTOP of any node;
                            rounds overlap: after a round the nemesis often does not wait for the cluster
                            to recover before the next one, and RANDOM_CONCURRENCY workers run rounds at
                            once (an unclean round runs alone); every other round of a worker is the
                            next of a shared deck of the targeted rounds (unclean and rejoin first;
                            with namespaces epoch-start before them), so
                            each is tried within the first minutes of every run (a rejoin drawn from
                            the deck runs alone, like unclean)

Every run ends (runner) with a heal, and then the replica sweep (`Nemesis.sweep`): each broker in
turn is made the only leader of every partition (the other brokers are stopped with SIGSTOP until the
controller fences them) and is read from offset 0, so a diverged or short copy is found.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from cluster.client import ControllerClient
from cluster.errors import BrookError

__all__ = [
    "SCENARIOS",
    "ComposeControl",
    "Fault",
    "LocalControl",
    "Nemesis",
    "NodeControl",
]

T = TypeVar("T")

SCENARIOS = (
    "kill-active-controller",
    "kill-leader",
    "kill-follower",
    "kill-two-replicas",
    "pause-leader",
    "rolling-restart",
    "leader-churn",
    "pause",
    "isr-controller",
    "unclean",
    "lagging-election",
    "rejoin",
    "divergent-return",
    "three-epochs",
    "stale-follower",
    "epoch-start",
    "stall-followers",
    "partition",
    "reassign-kill",
    "random",
)
# Bounds of one round (seconds): how long a killed node stays down, the pause beyond the session
# timeout, the quiet gap between rounds and how long to wait for the cluster to recover after one.
DOWN_S = (2.0, 5.0)
PAUSE_MARGIN_S = (1.5, 3.5)
GAP_S = (1.5, 3.0)
RECOVER_S_MAX = 45.0
ROUND_S_MIN = 4.0        # do not start a round with less time than this left
STOP_WAIT_S = 20.0       # SIGTERM: a broker's controlled shutdown, then the launcher's SIGKILL
ADMIN_TIMEOUT_S = 3.0
# The random mix: shorter down times and gaps, and how long (if at all) to wait for health after a round.
SHORT_DOWN_S = (0.3, 2.5)
RANDOM_GAP_S = (0.2, 1.5)
OVERLAP_WAIT_S = (0.0, 3.0)   # a "short" wait for health; the round overlaps the next when it expires
CUT_S = (1.0, 8.0)            # a network cut: shorter or longer than a session
POLL_S = 0.05                 # polling the controller for a leadership change
RANDOM_CONCURRENCY = 2        # the random mix: this many rounds run at once (faults overlap)
LAG_MARGIN_S = (0.5, 2.0)     # beyond replica.lag.time.max.ms: a paused follower has left the ISR
FLAP_S = ((0.15, 0.6), (0.02, 0.12))  # a throttled node: stopped for, then running for (mostly stopped)
STALL_S = (0.4, 1.2)          # followers stalled together: well under a session and replica.lag.time.max.ms
REJOIN_WAIT_S = 25.0          # how long a targeted round waits for a follower to rejoin the ISR
SWEEP_LEAD_S_MAX = 15.0       # beyond the session timeout: one broker leads every partition alone
TARGETED_EVERY = 2            # the random mix: every this-many rounds of a worker is a targeted one
RATE_KBIT = 64                # epoch-start: the new leader's answers to the chasing follower (8 KB/s)


class NodeControl(Protocol):
    controller_ids: list[int]
    broker_ids: list[int]

    def kill(self, node_id: int, sig: int) -> None: ...
    def start(self, node_id: int) -> None: ...
    def pause(self, node_id: int) -> None: ...
    def resume(self, node_id: int) -> None: ...
    def is_running(self, node_id: int) -> bool: ...
    def incarnation(self, node_id: int) -> int: ...
    def wait_healthy(self, timeout_s: float) -> None: ...


class NetworkControl(Protocol):
    """A control that can also cut the network between nodes (NetnsControl)."""

    def isolate(self, a: Sequence[int], b: Sequence[int]) -> None: ...
    def heal_network(self) -> None: ...


class LocalControl:
    """Faults on a LocalCluster started by this process (every node's Popen) or adopted from a running
    `make run` (an AdoptedProcess per node until a restart makes it this process's child)."""

    def __init__(self, cluster) -> None:  # noqa: ANN001 (cluster.cli.launcher.LocalCluster)
        self.cluster = cluster
        self.controller_ids: list[int] = list(cluster.controller_ids)
        self.broker_ids: list[int] = list(cluster.broker_ids)
        self.paused: set[int] = set()

    def kill(self, node_id: int, sig: int) -> None:
        if sig == signal.SIGTERM:
            self.cluster.stop_node(node_id, signal.SIGTERM, STOP_WAIT_S)
        else:
            self.cluster.kill(node_id, sig)
        self.paused.discard(node_id)

    def start(self, node_id: int) -> None:
        if not self.cluster.is_running(node_id):
            self.cluster.start_node(node_id)

    def pause(self, node_id: int) -> None:
        self.cluster.kill(node_id, signal.SIGSTOP)  # no wait for SIGSTOP/SIGCONT
        self.paused.add(node_id)

    def resume(self, node_id: int) -> None:
        if self.cluster.is_running(node_id):
            self.cluster.kill(node_id, signal.SIGCONT)
        self.paused.discard(node_id)

    def is_running(self, node_id: int) -> bool:
        return bool(self.cluster.is_running(node_id))

    def incarnation(self, node_id: int) -> int:
        return int(self.cluster.pids.get(node_id, 0))

    def wait_healthy(self, timeout_s: float) -> None:
        self.cluster.wait_healthy(timeout_s)


def compose_service(node_id: int) -> str:
    """deploy/compose.yaml's service names: controller-1..3 for nodes 1..3, broker-1..3 for 101..103."""
    return f"broker-{node_id - 100}" if node_id > 100 else f"controller-{node_id}"


class ComposeControl:
    """Faults through `docker compose` by service name (command construction only is tested here)."""

    def __init__(self, compose_file: str, controller_ids: Sequence[int] = (1, 2, 3),
                 broker_ids: Sequence[int] = (101, 102, 103), project: str | None = None,
                 runner: Callable[[list[str]], None] | None = None, health: Callable[[float], None] | None = None) -> None:
        self.compose_file = compose_file
        self.project = project
        self.controller_ids: list[int] = list(controller_ids)
        self.broker_ids: list[int] = list(broker_ids)
        self.starts: dict[int, int] = {}
        self.down: set[int] = set()
        self.paused: set[int] = set()
        self._run = runner or (lambda argv: subprocess.run(argv, check=True, timeout=60, capture_output=True))
        self._health = health

    def command(self, action: str, node_id: int, sig: int | None = None) -> list[str]:
        base = ["docker", "compose", "-f", self.compose_file] + (["-p", self.project] if self.project else [])
        service = compose_service(node_id)
        if action == "kill":
            return base + ["kill", "-s", signal.Signals(sig or signal.SIGKILL).name, service]
        if action == "stop":
            return base + ["stop", "-t", str(int(STOP_WAIT_S)), service]
        if action in ("start", "pause", "unpause"):
            return base + [action, service]
        raise ValueError(f"unknown compose action {action!r}")

    def kill(self, node_id: int, sig: int) -> None:
        self._run(self.command("stop", node_id) if sig == signal.SIGTERM else self.command("kill", node_id, sig))
        self.down.add(node_id)

    def start(self, node_id: int) -> None:
        self._run(self.command("start", node_id))
        self.down.discard(node_id)
        self.starts[node_id] = self.starts.get(node_id, 0) + 1

    def pause(self, node_id: int) -> None:
        self._run(self.command("pause", node_id))
        self.paused.add(node_id)

    def resume(self, node_id: int) -> None:
        self._run(self.command("unpause", node_id))
        self.paused.discard(node_id)

    def is_running(self, node_id: int) -> bool:
        return node_id not in self.down

    def incarnation(self, node_id: int) -> int:
        return self.starts.get(node_id, 0) + 1

    def wait_healthy(self, timeout_s: float) -> None:
        if self._health is not None:
            self._health(timeout_s)


@dataclass
class Fault:
    """One round of a scenario: what was done to which nodes, and when (seconds from the run start)."""

    kind: str
    nodes: list[int]
    start_s: float
    end_s: float = -1.0            # the last restore action (restart / SIGCONT) was done
    recovered_s: float = -1.0      # the cluster was healthy again (-1: not within RECOVER_S_MAX)
    partition: int = -1            # the partition whose leader/followers were targeted (-1: none)
    actions: list[tuple[float, str]] = field(default_factory=list)
    overlapped: bool = False       # the next round started without waiting for recovery

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "nodes": self.nodes, "partition": self.partition, "start_s": round(self.start_s, 3),
                "end_s": round(self.end_s, 3), "recovered_s": round(self.recovered_s, 3),
                "overlapped": self.overlapped,
                "actions": [[round(t, 3), a] for t, a in self.actions]}


class Nemesis:
    """Runs a scenario against `control`; `timeline` holds every fault; `heal` undoes all of them."""

    def __init__(self, control: NodeControl, admin: ControllerClient, topic: str, rng: random.Random,
                 clock: Callable[[], float], session_timeout_s: float, log: Callable[[str], None] = print,
                 health: Callable[[float, dict[int, int]], bool] | None = None,
                 epochs: Callable[[], dict[int, int]] | None = None) -> None:
        self.control = control
        self.admin = admin
        self.topic = topic
        self.clock = clock
        self.session_timeout_s = session_timeout_s
        self.log = log
        # health(timeout_s, epochs_before) -> True when healthy, restarted brokers re-registered with
        # an epoch above epochs_before (default: control.wait_healthy); epochs() -> broker epochs now.
        self.health = health
        self.epochs = epochs
        self.timeline: list[Fault] = []
        self._local = threading.local()  # per worker: its rng, its current fault (see run)
        self._main_rng = rng
        self._node_locks: dict[int, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._exclusive = threading.Condition()  # rounds that must run alone (unclean)
        self._running_rounds = 0
        self._exclusive_waiting = 0
        self.lag_time_s = 5.0  # replica.lag.time.max.ms of the cluster (runner sets it)
        self._stopping = threading.Event()  # set when run() is interrupted: workers start nothing more
        self.overlap = False  # set by the random scenario (see _end)
        # partition -> when the nemesis first forced an unclean election of it (History.unclean_since)
        self.unclean_since: dict[int, float] = {}
        # The random mix's targeted deck (see random_round), shared by its workers.
        self._deck: list[Callable[[], None]] = []
        self._deck_lock = threading.Lock()
        self._deck_passes = 0
        self._deck_rng = random.Random(0)

    # -- per-worker state (the random mix runs RANDOM_CONCURRENCY workers, see run) ------------------

    @property
    def rng(self) -> random.Random:
        return getattr(self._local, "rng", self._main_rng)

    @property
    def _current(self) -> Fault | None:
        return getattr(self._local, "current", None)

    @_current.setter
    def _current(self, fault: Fault | None) -> None:
        self._local.current = fault

    @property
    def _epochs_before(self) -> dict[int, int]:
        return getattr(self._local, "epochs_before", {})

    @_epochs_before.setter
    def _epochs_before(self, epochs: dict[int, int]) -> None:
        self._local.epochs_before = epochs

    @property
    def _current_restarted(self) -> set[int]:
        if not hasattr(self._local, "restarted"):
            self._local.restarted = set()
        return self._local.restarted

    @_current_restarted.setter
    def _current_restarted(self, nodes: set[int]) -> None:
        self._local.restarted = nodes

    def _node_lock(self, node_id: int) -> threading.Lock:
        with self._locks_guard:
            return self._node_locks.setdefault(node_id, threading.Lock())

    @contextmanager
    def _round(self, exclusive: bool = False) -> Iterator[None]:
        """A round of the concurrent mix: shared with other rounds, or (exclusive) alone."""
        with self._exclusive:
            if exclusive:
                self._exclusive_waiting += 1
                self._exclusive.wait_for(lambda: self._running_rounds == 0)
                self._exclusive_waiting -= 1
                self._running_rounds = -1
            else:
                self._exclusive.wait_for(lambda: self._running_rounds >= 0 and not self._exclusive_waiting)
                self._running_rounds += 1
        try:
            yield
        finally:
            with self._exclusive:
                self._running_rounds = 0 if exclusive else self._running_rounds - 1
                self._exclusive.notify_all()

    def fault_actions(self) -> dict[str, int]:
        """Fault actions of the run by kind (heal and sweep excluded): SIGKILL, SIGTERM, SIGSTOP (a
        pause), cut (a network partition), and forced elections."""
        counts = {"SIGKILL": 0, "SIGTERM": 0, "SIGSTOP": 0, "cut": 0, "election": 0}
        for fault in list(self.timeline):
            if fault.kind in ("heal", "sweep"):
                continue
            for _, text in fault.actions:
                if "FAILED" in text:
                    continue
                head = text.split(" ", 1)[0]
                if head in counts:
                    counts[head] += 1
                elif " election of " in text:
                    counts["election"] += 1
        return counts

    # -- primitives (each is recorded in the current fault) --------------------------------------

    def _act(self, text: str, action: Callable[[], None]) -> None:
        assert self._current is not None, "actions belong to a fault"
        try:
            action()
        except BrookError as e:  # e.g. the node had already exited on its own: record it, carry on
            text = f"{text} FAILED: {e.message.splitlines()[0]}"
        self._current.actions.append((self.clock(), text))
        self.log(f"[chaos {self.clock():7.2f}s] {text}")

    def _locked(self, node_id: int, action: Callable[[], None]) -> Callable[[], None]:
        """`action` on `node_id` under that node's lock: concurrent rounds never start a node twice."""
        def run() -> None:
            with self._node_lock(node_id):
                action()
        return run

    def _kill(self, node_id: int, sig: int) -> None:
        self._act(f"{signal.Signals(sig).name} node {node_id}",
                  self._locked(node_id, lambda: self.control.kill(node_id, sig)))

    def _start(self, node_id: int) -> None:
        if self._stopping.is_set():  # the run was interrupted: the cluster is being stopped
            return
        self._current_restarted.add(node_id)
        self._act(f"start node {node_id}", self._locked(node_id, lambda: self.control.start(node_id)))

    def _pause(self, node_id: int) -> None:
        self._act(f"SIGSTOP node {node_id}", self._locked(node_id, lambda: self.control.pause(node_id)))

    def _resume(self, node_id: int) -> None:
        self._act(f"SIGCONT node {node_id}", self._locked(node_id, lambda: self.control.resume(node_id)))

    def _sleep(self, bounds: tuple[float, float], base_s: float = 0.0) -> None:
        time.sleep(base_s + self.rng.uniform(*bounds))

    def _begin(self, kind: str, nodes: list[int], partition: int = -1) -> Fault:
        self._epochs_before = self.epochs() if self.epochs is not None else {}
        self._current_restarted = set()
        self._current = Fault(kind, nodes, self.clock(), partition=partition)
        self.timeline.append(self._current)
        return self._current

    def _end(self) -> None:
        """The round's restore actions are done: wait for recovery — in the overlapping (random) mix
        often briefly or not at all, so the next round hits a cluster that is still recovering."""
        assert self._current is not None
        self._current.end_s = self.clock()
        timeout_s = RECOVER_S_MAX
        if self.overlap:
            draw = self.rng.random()
            timeout_s = 0.0 if draw < 0.4 else self.rng.uniform(*OVERLAP_WAIT_S) if draw < 0.75 else RECOVER_S_MAX
        if self._recover(timeout_s):
            self._current.recovered_s = self.clock()
        elif timeout_s < RECOVER_S_MAX:
            self._current.overlapped = True
        self._current = None

    def _recover(self, timeout_s: float) -> bool:
        try:
            if self.health is not None:
                assert self._current is not None
                restarted = self._current_restarted
                return self.health(timeout_s, {b: e for b, e in self._epochs_before.items() if b in restarted})
            self.control.wait_healthy(timeout_s)
            return True
        except BrookError as e:
            self.log(f"[chaos {self.clock():7.2f}s] not healthy after {timeout_s:g}s: {e.message.splitlines()[0]}")
            return False

    # -- cluster state ----------------------------------------------------------------------------

    def _partitions(self) -> list[tuple[int, int, list[int], list[int]]]:
        """(partition, leader, replicas, isr) of the workload topic, sorted; [] when unknown."""
        try:
            reply = self.admin.describe_topics([self.topic])
        except BrookError:
            return []
        out = []
        for t in reply.topics:
            for p in t.partitions:
                out.append((p.partition, p.leader, sorted(p.replicas), sorted(p.isr)))
        return sorted(out)

    def _replica_order(self, partition: int) -> list[int]:
        """The partition's replicas in assignment order (elections go by it); [] when unknown."""
        try:
            reply = self.admin.describe_topics([self.topic])
        except BrookError:
            return []
        for t in reply.topics:
            for p in t.partitions:
                if p.partition == partition:
                    return list(p.replicas)
        return []

    def _isr_of(self, partition: int) -> set[int] | None:
        for p, _, _, isr in self._partitions():
            if p == partition:
                return set(isr)
        return None

    def _unfenced(self, broker: int) -> bool:
        try:
            return any(b.broker_id == broker and not b.fenced for b in self.admin.describe_cluster().brokers)
        except BrookError:
            return False

    def _active_controller(self) -> int:
        try:
            return int(self.admin.describe_cluster().active_controller_id)
        except BrookError:
            return -1

    def _pick_partition(self) -> tuple[int, int, list[int], list[int]] | None:
        led = [p for p in self._partitions() if p[1] >= 0]
        return self.rng.choice(led) if led else None

    # -- rounds -----------------------------------------------------------------------------------

    def kill_active_controller(self) -> None:
        active = self._active_controller()
        victim = active if active >= 0 else self.rng.choice(sorted(self.control.controller_ids))
        self._begin("kill-active-controller", [victim])
        self._kill(victim, signal.SIGKILL)
        self._sleep(DOWN_S)
        self._start(victim)
        self._end()

    def kill_leader(self, sig: int = signal.SIGKILL) -> None:
        picked = self._pick_partition()
        if picked is None:
            return self.kill_node(sig)
        partition, leader, _, _ = picked
        self._begin("kill-leader", [leader], partition)
        self._kill(leader, sig)
        self._sleep(DOWN_S)
        self._start(leader)
        self._end()

    def kill_follower(self) -> None:
        picked = self._pick_partition()
        if picked is None:
            return self.kill_node(signal.SIGKILL)
        partition, leader, replicas, _ = picked
        victim = self.rng.choice([r for r in replicas if r != leader])
        self._begin("kill-follower", [victim], partition)
        self._kill(victim, signal.SIGKILL)
        self._sleep(DOWN_S)
        self._start(victim)
        self._end()

    def kill_two_replicas(self) -> None:
        picked = self._pick_partition()
        if picked is None:
            return self.kill_node(signal.SIGKILL)
        partition, leader, replicas, _ = picked
        victims = [leader, self.rng.choice([r for r in replicas if r != leader])]
        self._begin("kill-two-replicas", victims, partition)
        for victim in victims:
            self._kill(victim, signal.SIGKILL)
        self._sleep(DOWN_S)
        for victim in self.rng.sample(victims, len(victims)):
            self._start(victim)
        self._end()

    def pause_leader(self) -> None:
        picked = self._pick_partition()
        if picked is None:
            return self.pause_node()
        partition, leader, _, _ = picked
        self._begin("pause-leader", [leader], partition)
        self._pause(leader)
        self._sleep(PAUSE_MARGIN_S, self.session_timeout_s)
        self._resume(leader)
        self._end()

    def kill_node(self, sig: int) -> None:
        victim = self.rng.choice(sorted([*self.control.controller_ids, *self.control.broker_ids]))
        self._begin(f"{signal.Signals(sig).name.lower()}-node", [victim])
        self._kill(victim, sig)
        self._sleep(DOWN_S)
        self._start(victim)
        self._end()

    def pause_node(self) -> None:
        victim = self.rng.choice(sorted([*self.control.controller_ids, *self.control.broker_ids]))
        self._begin("pause-node", [victim])
        self._pause(victim)
        self._sleep(PAUSE_MARGIN_S, self.session_timeout_s)
        self._resume(victim)
        self._end()

    def rolling_restart(self, deadline_s: float) -> None:
        for node_id in [*sorted(self.control.controller_ids), *sorted(self.control.broker_ids)]:
            if self.clock() > deadline_s:
                return
            self._begin("rolling-restart", [node_id])
            self._kill(node_id, signal.SIGTERM)
            self._start(node_id)
            self._end()

    # -- leader churn, pauses, ISR changes, elections, network cuts ------------------------------

    def _leader_of(self, partition: int) -> int:
        for p, leader, _, _ in self._partitions():
            if p == partition:
                return leader
        return -1

    def _wait_leader(self, partition: int, not_in: set[int], timeout_s: float) -> int:
        """Poll the controller until `partition` has a leader outside `not_in`; -1 after `timeout_s`."""
        deadline_s = self.clock() + timeout_s
        while self.clock() < deadline_s:
            leader = self._leader_of(partition)
            if leader >= 0 and leader not in not_in:
                return leader
            time.sleep(POLL_S)
        return -1

    def _wait_isr(self, partition: int, isr: set[int], timeout_s: float) -> bool:
        deadline_s = self.clock() + timeout_s
        while self.clock() < deadline_s:
            if any(p == partition and set(i) == isr for p, _, _, i in self._partitions()):
                return True
            time.sleep(POLL_S * 4)
        return False

    def _note(self, text: str) -> None:
        assert self._current is not None
        self._current.actions.append((self.clock(), text))
        self.log(f"[chaos {self.clock():7.2f}s] {text}")

    def _elect(self, kind: str, partitions: Sequence[int]) -> None:
        def elect() -> None:
            asked_s = self.clock()  # the election may take effect before the reply arrives
            reply = self.admin.elect_leaders(kind, [(self.topic, p) for p in partitions])
            done = [f"{r.partition}->{r.leader}" for r in reply.results if r.error_code == 0]
            if kind == "unclean":
                for r in reply.results:
                    if r.error_code == 0:
                        self.unclean_since.setdefault(r.partition, asked_s)
            self._note(f"  {kind} election: " + (", ".join(done) or "nothing moved"))
        self._act(f"{kind} election of partitions {list(partitions)}", elect)

    def leader_churn(self) -> None:
        """Kill a leader, then its successor as soon as it takes over (optionally while the old leader
        is back and truncating), or move leadership back by a preferred election and kill the mover."""
        picked = self._pick_partition()
        if picked is None:
            return self.kill_node(signal.SIGKILL)
        partition, leader, replicas, _ = picked
        variant = self.rng.choice(("kill-successor", "kill-successor-while-truncating", "preferred-then-kill"))
        self._begin(f"leader-churn/{variant}", [leader], partition)
        self._kill(leader, signal.SIGKILL)
        successor = self._wait_leader(partition, {leader}, self.session_timeout_s + 10.0)
        if successor < 0:
            self._note(f"no new leader of partition {partition} appeared")
            self._start(leader)
            return self._end()
        self._note(f"broker {successor} took over partition {partition}")
        self._current.nodes.append(successor)  # type: ignore[union-attr]
        if variant == "kill-successor":
            self._sleep((0.0, 0.5))
            self._kill(successor, signal.SIGKILL)
            self._sleep(SHORT_DOWN_S)
            for node in self.rng.sample([leader, successor], 2):
                self._start(node)
        elif variant == "kill-successor-while-truncating":
            self._sleep((0.0, 1.0))
            self._start(leader)  # comes back as a follower: registers, then truncates
            self._sleep((0.3, 3.0))
            self._kill(successor, signal.SIGKILL)
            self._sleep(SHORT_DOWN_S)
            self._start(successor)
        else:
            self._sleep((0.0, 1.0))
            self._start(leader)
            self._wait_isr(partition, set(replicas), 15.0)
            self._elect("preferred", [partition])
            mover = self._leader_of(partition)
            if mover >= 0 and self.rng.random() < 0.7:
                self._sleep((0.0, 0.3))
                self._kill(mover, signal.SIGKILL)
                self._sleep(SHORT_DOWN_S)
                self._start(mover)
        self._end()

    # -- reassignment under load ------------------------------------------------------------------

    def _reassign(self, partition: int, target: list[int]) -> None:
        def move() -> None:
            reply = self.admin.alter_partition_reassignments([(self.topic, partition, target)])
            errors = [r.error_message or str(r.error_code) for r in reply.results if r.error_code]
            if reply.error.code or errors:
                raise BrookError(reply.error.message or "; ".join(errors))
        self._act(f"reassign partition {partition} to {target}", move)

    def _wait_reassigned(self, partition: int, target: list[int], timeout_s: float) -> bool:
        """Poll until no move of `partition` is in progress and its replicas are `target`."""
        deadline_s = self.clock() + timeout_s
        while self.clock() < deadline_s:
            try:
                ongoing = self.admin.list_partition_reassignments({self.topic: [partition]}).reassignments
            except BrookError:
                ongoing = None
            if ongoing is not None and not ongoing and self._replica_order(partition) == target:
                return True
            time.sleep(POLL_S * 4)
        return False

    def reassign_kill(self) -> None:
        """A reassignment under load with a broker killed mid-move: drop a replica of a partition (it
        deletes its copy), move it back (it copies the whole log while the writers go on), and SIGKILL
        the leader, the joining replica or the other one while it catches up; then wait for the move."""
        picked = self._pick_partition()
        if picked is None:
            return self.kill_node(signal.SIGKILL)
        partition, leader, _, _ = picked
        original = self._replica_order(partition)
        if len(original) < 2:
            return self.kill_node(signal.SIGKILL)
        dropped = self.rng.choice([r for r in original if r != leader])
        self._begin("reassign-kill", [dropped], partition)
        shrunk = [r for r in original if r != dropped]
        self._reassign(partition, shrunk)
        if not self._wait_reassigned(partition, shrunk, RECOVER_S_MAX):
            self._note(f"partition {partition} did not reach {shrunk}")
        self._sleep((0.5, 2.0))  # the writers go on: the joining replica has more to copy
        self._reassign(partition, original)
        role = self.rng.choice(("leader", "joining", "other"))
        current_leader = self._leader_of(partition)
        victim = {"leader": current_leader, "joining": dropped}.get(role, -1)
        if victim < 0:
            victim = self.rng.choice([r for r in original if r not in (dropped, current_leader)] or [dropped])
        self._current.nodes.append(victim)  # type: ignore[union-attr]
        self._sleep((0.0, 1.0))  # mid-move
        self._note(f"killing the {role} broker {victim} while broker {dropped} catches up" if victim != dropped
                   else f"killing the joining broker {victim} while it catches up")
        self._kill(victim, signal.SIGKILL)
        self._sleep(DOWN_S)
        self._start(victim)
        if not self._wait_reassigned(partition, original, RECOVER_S_MAX):
            self._note(f"partition {partition} did not return to {original} in {RECOVER_S_MAX:g}s")
        self._end()

    def pause(self) -> None:
        """SIGSTOP a leader, a follower or the active controller: shorter or longer than a session."""
        target = self.rng.choice(("leader", "follower", "controller", "leader"))
        longer = self.rng.random() < 0.5
        picked = self._pick_partition()
        partition = -1
        if target == "controller" or picked is None:
            active = self._active_controller()
            victim = active if active >= 0 else self.rng.choice(sorted(self.control.controller_ids))
        else:
            partition, leader, replicas, _ = picked
            victim = leader if target == "leader" else self.rng.choice([r for r in replicas if r != leader])
        self._begin(f"pause-{target}-{'long' if longer else 'short'}", [victim], partition)
        self._pause(victim)
        if longer:
            self._sleep(PAUSE_MARGIN_S, self.session_timeout_s)
        else:
            self._sleep((0.2, max(0.3, self.session_timeout_s * 0.8)))
        self._resume(victim)
        self._end()

    def isr_change_controller_failover(self) -> None:
        """SIGKILL the active controller while an ISR change is in flight: a shrink (a follower was just
        killed) or an expansion (a killed follower was just restarted and is catching up)."""
        picked = self._pick_partition()
        if picked is None:
            return self.kill_active_controller()
        partition, leader, replicas, _ = picked
        follower = self.rng.choice([r for r in replicas if r != leader])
        shrink = self.rng.random() < 0.5
        self._begin(f"isr-{'shrink' if shrink else 'expand'}-controller-failover", [follower], partition)
        self._kill(follower, signal.SIGKILL)
        if shrink:
            self._sleep((-1.0, 1.5), self.session_timeout_s)
        else:
            self._sleep(DOWN_S)
            self._start(follower)
            self._sleep((0.3, 4.0))
        active = self._active_controller()
        victim = active if active >= 0 else self.rng.choice(sorted(self.control.controller_ids))
        self._current.nodes.append(victim)  # type: ignore[union-attr]
        self._kill(victim, signal.SIGKILL)
        self._sleep(SHORT_DOWN_S)
        for node in self.rng.sample([victim, follower], 2):
            if not self.control.is_running(node):
                self._start(node)
        self._end()

    def _full_isr_partition(self) -> tuple[int, int, list[int], list[int]] | None:
        """A led partition whose ISR holds all of its (2 or more) replicas, waiting up to REJOIN_WAIT_S
        for one (an overlapping round may still be recovering); None when none came."""
        return self._pick_within(lambda: [p for p in self._partitions()
                                          if p[1] >= 0 and len(p[2]) >= 2 and set(p[3]) == set(p[2])])

    def _pick_within(self, candidates: Callable[[], list[T]]) -> T | None:
        """A random one of `candidates()`, asked again until REJOIN_WAIT_S passed (an overlapping round
        may still be recovering); None when none came or the nemesis is stopping."""
        deadline_s = self.clock() + REJOIN_WAIT_S
        while True:
            found = candidates()
            if found:
                return self.rng.choice(found)
            if self.clock() >= deadline_s or self._stopping.is_set():
                return None
            time.sleep(POLL_S * 10)

    def unclean(self) -> None:
        """Both followers stopped until the ISR is the leader alone; kill the leader; resume the
        followers; force an unclean election; restart the leader. With min.insync.replicas=2 no write
        was acknowledged by the leader alone, so the unclean leader holds every acknowledged write.
        That needs a full ISR when both followers stop (they then hold everything acknowledged): a
        partition whose ISR already lacked a follower may have acknowledged writes that follower lacks,
        and an unclean election of it could legitimately lose them (the checker excuses the partition
        after an unclean election), which would also hide a leader that acknowledges alone."""
        picked = self._full_isr_partition()
        if picked is None:
            return self.pause_node()
        partition, leader, replicas, _ = picked
        followers = [r for r in replicas if r != leader]
        self._begin("unclean-election", [leader, *followers], partition)
        for f in followers:
            self._pause(f)
        alone = self._wait_isr(partition, {leader}, self.session_timeout_s + 12.0)
        self._note(f"ISR of partition {partition} is [{leader}]" if alone else "the ISR did not shrink")
        if alone:
            self._sleep((0.5, 2.0))  # the leader alone takes writes (it must refuse acks=all ones)
            self._kill(leader, signal.SIGKILL)
        for f in self.rng.sample(followers, len(followers)):
            self._resume(f)
        if alone:
            self._sleep((0.5, 1.0), self.session_timeout_s)
            self._elect("unclean", [-1])  # every offline partition of the topic
            self._sleep(SHORT_DOWN_S)
            self._start(leader)
        self._end()

    def _out_of_isr_s(self) -> float:
        """A pause after which a follower has certainly left the ISR (fenced, and lagging)."""
        return max(self.session_timeout_s, self.lag_time_s) + self.rng.uniform(*LAG_MARGIN_S)

    def lagging_follower_election(self) -> None:
        """A follower out of the ISR but alive, then the leader dies: the election must pick an ISR
        member, never the lagging follower (the first other replica in assignment order, the one a
        careless election would take). The follower leaves the ISR by a pause longer than the
        session and the lag time, and the leader is frozen (SIGSTOP, shorter than a session) as it
        comes back and killed once it is unfenced, so it cannot catch up; or, with network
        namespaces, by a cut from the leader alone (it stays registered) and the leader is killed
        while the cut lasts."""
        picked = self._pick_partition()
        if picked is None:
            return self.kill_node(signal.SIGKILL)
        partition, leader, _, _ = picked
        order = self._replica_order(partition)
        lagging = next((r for r in order if r != leader), -1)
        if lagging < 0:
            return self.kill_leader()
        cut = self.can_partition and self.rng.random() < 0.5
        self._begin(f"lagging-follower-election{'/cut' if cut else ''}", [lagging, leader], partition)
        if cut:
            control: NetworkControl = self.control  # type: ignore[assignment]
            self._act(f"cut [{lagging}] from [{leader}]", lambda: control.isolate([lagging], [leader]))
            deadline_s = self.clock() + self.lag_time_s + 6.0
            while self.clock() < deadline_s and lagging in (self._isr_of(partition) or {lagging}):
                time.sleep(POLL_S * 4)
            self._kill(leader, signal.SIGKILL)
            self._sleep((0.5, 2.0))
            self._heal_cut([lagging], [leader])
        else:
            self._pause(lagging)
            time.sleep(self._out_of_isr_s())
            # Freeze the leader (shorter than a session) before the follower is back, so it cannot
            # catch up; kill the leader once the follower is unfenced again (eligible, but lagging).
            self._pause(leader)
            self._resume(lagging)
            deadline_s = self.clock() + self.session_timeout_s * 0.6
            while self.clock() < deadline_s and not self._unfenced(lagging):
                time.sleep(POLL_S)
            self._kill(leader, signal.SIGKILL)
            self._sleep(SHORT_DOWN_S)
        self._start(leader)
        self._end()

    def rejoin_while_leader_dies(self) -> None:
        """A follower rejoins the ISR while the leader dies: the follower (the first other replica in
        assignment order, so the election picks it once it is in the ISR) leaves the ISR by a long
        pause, then catches up throttled (SIGSTOP/SIGCONT in short slices), so its ISR expansion is
        often in flight while it is stopped; the moment the controller shows it in the ISR while it
        is stopped, the leader is killed and the follower resumed a little later. A leader that
        acknowledged writes the rejoining follower lacks (the HW over the committed ISR only, not the
        maximal ISR) loses them when the follower is elected."""
        picked = self._pick_partition()
        if picked is None:
            return self.kill_node(signal.SIGKILL)
        partition, leader, _, _ = picked
        order = self._replica_order(partition)
        joiner = next((r for r in order if r != leader), -1)
        if joiner < 0:
            return self.kill_leader()
        self._begin("rejoin-while-leader-dies", [joiner, leader], partition)
        self._pause(joiner)
        time.sleep(self._out_of_isr_s())
        killed = False
        deadline_s = self.clock() + REJOIN_WAIT_S
        stopped_once = 0
        while self.clock() < deadline_s:
            if not self.control.is_running(joiner):
                break  # killed by a concurrent round
            self._locked(joiner, lambda: self.control.resume(joiner))()  # slices are not recorded one by one
            self._sleep(FLAP_S[1])
            self._locked(joiner, lambda: self.control.pause(joiner))()
            stopped_once += 1
            # Watch the ISR for the whole stop, not only at its end: the expansion must be seen (and the
            # leader killed) before the follower runs again and fetches what it lacks.
            stop_until_s = self.clock() + self.rng.uniform(*FLAP_S[0])
            back = joiner in (self._isr_of(partition) or set())
            while not back and self.clock() < stop_until_s:
                time.sleep(POLL_S)
                back = joiner in (self._isr_of(partition) or set())
            if back:
                self._note(f"broker {joiner} is in the ISR again (stopped; {stopped_once} throttle slices)")
                self._kill(leader, signal.SIGKILL)
                killed = True
                self._sleep((0.2, 1.0))
                break
        self._resume(joiner)
        if not killed:
            self._note(f"broker {joiner} did not rejoin the ISR within {REJOIN_WAIT_S:g}s")
        else:
            self._sleep(SHORT_DOWN_S)
            self._start(leader)
        self._end()

    # -- a returning leader's unreplicated tail (issue 10 loss path 1, KAFKA-7415) --------------------

    # (broker, partition) -> that broker's log end offset of the topic's partition, -1 when it does not
    # answer; the runner sets it (BrokerService.ReplicaStates). Without it the round sleeps instead of
    # watching the third replica.
    log_end: Callable[[int, int], int] | None = None

    def _return_partition(self) -> tuple[int, int, list[int]] | None:
        """(partition, leader, replica order) of a fully replicated partition led by its first or second
        replica, preferring the second (the round needs it leading); None when there is none."""
        candidates = []
        for partition, leader, replicas, isr in self._partitions():
            order = self._replica_order(partition)
            if len(order) >= 3 and leader in order[:2] and set(isr) == set(replicas):
                candidates.append((partition, leader, order))
        ready = [c for c in candidates if c[1] == c[2][1]]
        return self.rng.choice(ready or candidates) if candidates else None

    def _wait_return_partition(self) -> tuple[int, int, list[int]] | None:
        """`_return_partition`, waiting up to REJOIN_WAIT_S for one (an overlapping round may still be
        recovering)."""
        picked = self._return_partition()
        deadline_s = self.clock() + REJOIN_WAIT_S
        while picked is None and self.clock() < deadline_s and not self._stopping.is_set():
            time.sleep(POLL_S * 10)
            picked = self._return_partition()
        return picked

    def _second_replica_leads(self, partition: int, leader: int, order: list[int]) -> bool:
        """Make the second replica in assignment order lead `partition` with a full ISR, without a
        lasting change: if the first one leads, it is stopped beyond a session (fenced; the second is
        next in order), resumed, and back in the ISR. False (noted) when that did not happen."""
        first, second = order[0], order[1]
        if leader != second:
            self._pause(first)
            took = self._wait_leader(partition, {first}, self.session_timeout_s + 10.0)
            self._resume(first)
            if took != second or not self._wait_isr(partition, set(order), REJOIN_WAIT_S):
                self._note(f"broker {second} did not lead partition {partition} with a full ISR")
                return False
        if self._leader_of(partition) != second:
            self._note(f"leadership of partition {partition} moved away from {second}")
            return False
        return True

    def divergent_return(self) -> None:
        """Three leader epochs whose tails diverge (KAFKA-7415's schedule): X, the second replica in
        assignment order, leads epoch E0 and appends a tail that A (the first, preferred replica)
        never gets (A stopped for 1.2-2 s, shorter than a session, while the writers go on); X is
        stopped and A made leader (E1) by a preferred election, so the third replica C truncates X's
        tail and fetches A's first records; then C is stopped for 0.1-0.2 s (A takes records C lacks),
        A is SIGKILLed, X and C resumed; X never fetched from A and is still in the ISR, so it leads
        again (E2) when A's session expires, and is SIGKILLed the moment C's log end moves (C
        truncated, or fetched from X), so C leads (E3) with what its truncation kept.

        A correct X records E2 at its log end when elected, so C, asking where E1 ends, is told where
        its history departs (at A's epoch start) and keeps nothing of A's. A leader that does not
        record its new epoch knows nothing of E1 until its first append: C keeps A's records, X
        accepts its fetch (KIP-320 has nothing to compare) and C appends X's tail after them; leading
        with that log, C tells the restarted A that E1 ends past A's own records, which A keeps —
        a permanent divergence (prefix_mismatch, and the sweep reads A's values at offsets where the
        drain read C's). X stops for at most 0.65 of a session and 0.2 s more, and A leads for less
        than the lag time, so both stay in the ISR."""
        picked = self._wait_return_partition()
        if picked is None:
            return self.kill_leader()
        partition, leader, order = picked
        a, x, c = order[0], order[1], order[2]
        self._begin("divergent-return", [x, a, c], partition)
        if not self._second_replica_leads(partition, leader, order):
            return self._end()
        cut = self.can_partition
        if cut:
            # In network namespaces X is cut from the other brokers only: it keeps its controller
            # session and answers the writers (NOT_LEADER once A leads, so they move to A at once),
            # while its truncation request to A is dropped.
            control: NetworkControl = self.control  # type: ignore[assignment]
            self._current.kind += "/cut"  # type: ignore[union-attr]
            self._act(f"cut [{x}] from [{a}]", lambda: control.isolate([x], [a]))
            self._sleep((1.2, 2.0))  # X appends what A never gets; C keeps up with X
            self._act(f"cut [{x}] from [{c}]", lambda: control.isolate([x], [c]))
        else:
            self._pause(a)
            self._sleep((1.2, 2.0))
            self._pause(x)
        stopped_s = self.clock()
        before = self._log_end(c, partition)
        if not cut:
            self._resume(a)
        start = self._log_end(a, partition)  # where A's epoch will start (it cannot fetch from X)
        self._elect("preferred", [partition])
        if self._leader_of(partition) != a:
            self._note(f"broker {a} did not take partition {partition} over")
            if cut:
                self._heal_cut([x], [a, c])
            else:
                self._resume(x)
            return self._end()
        # C truncates X's tail away and fetches A's first records: then C is stopped a little while A
        # takes more, so A's copy of its epoch is longer than C's. A stopped X must resume within a
        # session (the writers only move to A on a metadata refresh); a cut one, within the lag time.
        deadline_s = stopped_s + (min(3.0, self.lag_time_s * 0.6) if cut else self.session_timeout_s * 0.65)
        grown = self._wait_log_end(c, partition, lambda end: start < end < before, deadline_s)
        if grown >= 0:
            self._note(f"broker {c} fetched {a}'s records from {start} up to {grown} (it held {before})")
        self._pause(c)
        self._sleep((0.1, 0.2))
        self._kill(a, signal.SIGKILL)
        if cut:
            self._heal_cut([x], [a, c])
        else:
            self._resume(x)
        self._resume(c)
        # X leads again (A's session expires); the moment C has fetched from it (or truncated), X dies
        # too, so C, the last ISR member, leads with what its truncation kept.
        held = self._log_end(c, partition)
        took = self._wait_leader(partition, {a}, self.session_timeout_s + 10.0)
        self._note(f"broker {took} leads partition {partition} again" if took >= 0
                   else f"no new leader of partition {partition} appeared")
        if took == x:
            moved = self._wait_log_end(c, partition, lambda end: end != held, self.clock() + 2.0)
            self._note(f"broker {c}'s log end moved from {held} to {moved}" if moved >= 0
                       else f"broker {c}'s log end stayed at {held}")
            self._kill(x, signal.SIGKILL)
            self._sleep(SHORT_DOWN_S)
            self._start(x)
        self._sleep(SHORT_DOWN_S)
        self._start(a)
        self._end()

    def _log_end(self, broker: int, partition: int) -> int:
        return self.log_end(broker, partition) if self.log_end is not None else -1

    def _wait_log_end(self, broker: int, partition: int, done: Callable[[int], bool], deadline_s: float) -> int:
        """Poll `broker`'s log end of `partition` until `done(it)` (returned) or `deadline_s` (-1). Without
        a log_end probe: sleep until the deadline."""
        if self.log_end is None:
            time.sleep(max(0.0, deadline_s - self.clock()))
            return -1
        while self.clock() < deadline_s:
            end = self.log_end(broker, partition)
            if end >= 0 and done(end):
                return end
            time.sleep(POLL_S)
        return -1

    # -- a follower that needs a second truncation round (issue 10 loss path 2, KIP-279) ---------------

    def _reorder(self, partition: int, order: list[int]) -> bool:
        """Reassign `partition` to the same replicas in another `order` (one immediate metadata change:
        nothing to copy), so a preferred election can pick order[0]; True when the order is now it."""
        self._reassign(partition, order)
        return self._replica_order(partition) == order

    def three_epochs(self) -> None:
        """Three leaderships whose histories skip each other's epochs, by clean elections only, so a
        follower of the last leader needs two OffsetsForLeaderEpoch rounds (KIP-279). On a fully
        replicated partition with replicas A, X, F in assignment order: X leads (E0) and appends a
        tail that F copies and A lacks; a preferred election makes A leader (E1) and A appends what F
        lacks (F never fetches from A); the replicas are reordered [F, A, X] (the same set: one
        immediate metadata change) and a preferred election makes F leader (E2) — A stays in the ISR,
        which only a preferred election allows, and never fetches from F; F is stopped beyond a
        session, so the controller fences it and elects the first live ISR member in the new order,
        A (E3), which never followed F; the original order is restored and F resumed. F, following A,
        asks where E2 ends; A answers that E1 (its largest epoch at or below E2) ends at its E1 log
        end; F, whose history skips E1, truncates to the end of its E0 (where its E2 starts) and must
        ask again, for E0, to learn that A's E0 ends where A's E1 starts, below F's copy of X's tail.
        X, which followed F during E2, needs the same two rounds.

        With `--network netns` A is cut from X, then F from A (iptables, brokers only: every broker
        keeps its controller session and its clients, and the old leader answers the writers
        NOT_LEADER, so they move at once). Without namespaces A is stopped while X appends, X and F
        while A leads, A while F leads (each shorter than a session; X stays stopped to the end), and
        the writers reach each new leader only on a metadata refresh: the round seldom gets past A's
        first records, and ends there when A took none (then one truncation round would do).

        Every election is clean (an ISR member; F is stopped within the lag window it gave A, so A is
        still in the ISR), so a correct build loses no acknowledged write: no acks=all write was
        acknowledged while a follower that never fetched was in the ISR."""
        picked = self._wait_return_partition()
        if picked is None:
            return self.kill_leader()
        partition, leader, order = picked
        a, x, f = order[0], order[1], order[2]
        cut = self.can_partition
        self._begin("three-epochs/cut" if cut else "three-epochs", [f, a, x], partition)
        if not self._second_replica_leads(partition, leader, order):
            return self._end()
        control: NetworkControl = self.control  # type: ignore[assignment]
        paused: list[int] = []  # stopped by this round and not resumed yet
        cuts: list[int] = []    # A's cuts from the other brokers
        reordered = [False]

        def pause(node: int) -> None:
            self._pause(node)
            paused.append(node)

        def resume(node: int) -> None:
            paused.remove(node)
            self._resume(node)

        def restore(why: str = "") -> None:
            if why:
                self._note(why)
            if reordered[0]:
                self._reorder(partition, order)
            if cuts:
                self._heal_cut([a], cuts)
            for node in sorted(paused, key=lambda n: n != f):  # F first: it follows A at once
                resume(node)
            self._end()

        # E0: X appends a tail that F copies and A lacks.
        if cut:
            self._act(f"cut [{a}] from [{x}]", lambda: control.isolate([a], [x]))
            cuts.append(x)
        else:
            pause(a)
        self._sleep((1.2, 2.0))
        tail_end = self._log_end(f, partition)
        # E1: A leads (preferred); F never fetches from it.
        if cut:
            self._act(f"cut [{f}] from [{a}]", lambda: control.isolate([f], [a]))
            cuts.append(f)
        else:
            pause(x)
            pause(f)
            resume(a)
        stopped_s = self.clock()
        start = self._log_end(a, partition)  # where A's epoch starts
        if 0 <= tail_end <= start:
            return restore(f"broker {f} holds nothing beyond {a}'s log end {start} (it ends at {tail_end})")
        if self._leader_of(partition) != x:
            return restore(f"leadership of partition {partition} moved away from {x}")
        self._elect("preferred", [partition])
        if self._leader_of(partition) != a:
            return restore(f"broker {a} did not take partition {partition} over")
        # A appends; with a stopped F, for less than a session (A gave F a lag window at its election).
        grown = self._wait_log_end(a, partition, lambda end: end > start,
                                   stopped_s + min(1.5, self.session_timeout_s * 0.5, self.lag_time_s * 0.3))
        if grown < 0:
            return restore(f"broker {a} took no record in its epoch (its log end stayed at {start}): "
                           "one truncation round would do")
        self._note(f"broker {a} appended from {start} up to {grown} at least; broker {f} holds {x}'s tail "
                   f"up to {tail_end}")
        # E2: F leads (preferred, after a reorder), A stays in the ISR and never fetches from F.
        reordered[0] = True
        if not self._reorder(partition, [f, a, x]):
            return restore(f"partition {partition} was not reordered to {[f, a, x]}")
        if not cut:
            pause(a)
            resume(f)
        a_left_s = self.clock()
        self._elect("preferred", [partition])
        if self._leader_of(partition) != f:
            return restore(f"broker {f} did not take partition {partition} over")
        f_start = self._log_end(f, partition)
        # F appends; F stops within the lag window it gave A (and a stopped A stays under a session).
        f_grown = self._wait_log_end(f, partition, lambda end: end > f_start,
                                     a_left_s + min(1.5, self.session_timeout_s * 0.5, self.lag_time_s * 0.3))
        self._note(f"broker {f} leads partition {partition} from {f_start}"
                   + (f", appended up to {f_grown} at least" if f_grown >= 0 else ", took no record seen"))
        # E3: F is fenced; A, the first live ISR member in the new order, leads.
        pause(f)
        if not cut:
            resume(a)
        took = self._wait_leader(partition, {f}, self.session_timeout_s + 10.0)
        if took != a:
            return restore(f"broker {a} did not lead partition {partition} again (leader {took})")
        a_end = self._log_end(a, partition)
        self._note(f"broker {a} leads partition {partition} again from {a_end}: broker {f} (epoch from "
                   f"{f_start} on {x}'s tail up to {tail_end}) truncates against it in two rounds if "
                   f"{start} < min({a_end}, {f_start})")
        restore()

    def stale_follower(self) -> None:
        """A follower that misses two leadership changes fetches from its old leader, leading again in a
        newer epoch, with the epoch it knew (KIP-320's fenced leader epoch; netns only). On a fully
        replicated partition led by L with the other replicas X and F: F is cut from the controllers
        (it keeps fetching from L, and learns no new epoch), L from X; L appends a tail (acks=1: X
        holds acks=all writes back) that F copies and X lacks, for less than the lag time so X stays
        in the ISR; the replicas are reordered [X, L, F] and a preferred election makes X leader (E+1,
        without L's tail); L's cut is healed, so L follows X and truncates its tail; the order is
        restored and a preferred election makes L leader again (E+2). F, still cut from the
        controllers, fetches from L in epoch E past where L's E now ends.

        A correct L answers FENCED_LEADER_EPOCH and F waits for metadata, which it gets once its cut is
        healed; it then truncates against L at E+2. A leader that serves a fetch whatever epoch the
        follower sends (the no-fetch-epoch-check mutant) answers it, and KIP-320 reports a divergence
        from "L at epoch E", against which F had finished truncating: the brokers' tripwire counts it
        (`truncation_incomplete`). Every election is clean (preferred, the new leader in the ISR), and
        L's tail was never acknowledged with acks=all (X, in the ISR, never had it)."""
        picked = self._wait_return_partition()
        if picked is None:
            return self.kill_leader()
        partition, leader, order = picked
        if not self.can_partition:
            return self.kill_leader()
        control: NetworkControl = self.control  # type: ignore[assignment]
        lead, x, f = leader, *[r for r in order if r != leader][:2]
        controllers = sorted(self.control.controller_ids)
        self._begin("stale-follower/cut", [f, lead, x], partition)
        cuts: list[tuple[list[int], list[int]]] = []
        reordered = [False]

        def cut(a: list[int], b: list[int]) -> None:
            self._act(f"cut {a} from {b}", lambda: control.isolate(a, b))
            cuts.append((a, b))

        def heal(a: list[int], b: list[int]) -> None:
            cuts.remove((a, b))
            self._heal_cut(a, b)

        def restore(why: str = "") -> None:
            if why:
                self._note(why)
            if reordered[0]:
                self._reorder(partition, order)
            for a, b in list(cuts):
                heal(a, b)
            self._end()

        cut([f], controllers)
        cut([lead], [x])
        started_s = self.clock()
        x_end = self._log_end(x, partition)
        grown = self._wait_log_end(f, partition, lambda end: end > x_end,
                                   started_s + min(1.5, self.session_timeout_s * 0.5, self.lag_time_s * 0.3))
        if grown < 0:
            return restore(f"broker {f} copied nothing of {lead}'s tail beyond {x}'s log end {x_end}")
        self._note(f"broker {f} holds {lead}'s tail up to {grown} at least; broker {x} ends at {x_end}")
        # E+1: X leads (preferred, after a reorder), without L's tail.
        reordered[0] = True
        if not self._reorder(partition, [x, lead, f]):
            return restore(f"partition {partition} was not reordered to {[x, lead, f]}")
        self._elect("preferred", [partition])
        if self._leader_of(partition) != x:
            return restore(f"broker {x} did not take partition {partition} over")
        x_start = self._log_end(x, partition)
        heal([lead], [x])
        # L follows X: it truncates its tail and fetches X's records.
        cut_back = self._wait_log_end(lead, partition, lambda end: end < grown,
                                      self.clock() + min(3.0, self.lag_time_s * 0.5))
        self._sleep((0.5, 0.8))
        self._note(f"broker {lead} follows {x} from {x_start}"
                   + (f" (its log end fell to {cut_back})" if cut_back >= 0 else " (no truncation seen)"))
        # E+2: L leads again (preferred, L first in order); F never heard of E+1 or E+2.
        if not self._reorder(partition, [lead, x, f]):
            return restore(f"partition {partition} was not reordered to {[lead, x, f]}")
        self._elect("preferred", [partition])
        if self._leader_of(partition) != lead:
            return restore(f"broker {lead} did not lead partition {partition} again")
        self._note(f"broker {lead} leads partition {partition} again; broker {f}, cut from the controllers, "
                   f"fetches from it in the old epoch at {grown} or later, past where that epoch now ends "
                   f"({x_start})")
        self._sleep((1.5, 2.5))
        restore()

    # -- a follower below the new leader's epoch start added to the ISR (issue 10 loss path 4, KAFKA-7128) --

    @property
    def can_throttle(self) -> bool:
        return hasattr(self.control, "throttle")

    def _preferred_led_partition(self) -> tuple[int, int, list[int]] | None:
        """(partition, leader, replica order) of a fully replicated partition (3 or more replicas) led by
        its first replica, waiting up to REJOIN_WAIT_S for one: the periodic preferred-leader
        rebalancing moves leadership to the first replica, so a round that needs the leader to stay
        put starts from there. Never a partition the nemesis forced an unclean election of: the checker
        excuses what an unclean election may lose on it, and a later loss looks the same."""
        def candidates() -> list[tuple[int, int, list[int]]]:
            found = []
            for partition, leader, replicas, isr in self._partitions():
                if partition in self.unclean_since:
                    continue
                order = self._replica_order(partition)
                if len(order) >= 3 and order[0] == leader and set(isr) == set(replicas):
                    found.append((partition, leader, order))
            return found
        return self._pick_within(candidates)

    def epoch_start(self) -> None:
        """A replica outside the ISR whose log ends between a new leader's (lagging) HW and its epoch
        start offset fetches from it (KAFKA-7128; network namespaces only: cuts and a tc rate limit).
        On a fully replicated partition led by L with the other replicas P and F:

        1. F is cut from L (iptables, both ways; F keeps its controller session). F stays in the ISR for
           the lag time, so L's HW stops at F's log end f0 and acks=all writes wait; L keeps appending
           (the writes in flight, the acks=1 writer) and P copies it beyond f0. P's HW, learnt from L's
           answers, is at most f0 too.
        2. 0.6-0.75 of the lag time after (the round ends if P holds nothing beyond f0), L is cut from P:
           P's log end S' (its last fetch reaching L) and its HW (<= f0) freeze.
        3. L drops F from the ISR (lag time), so its HW jumps to S' and it acknowledges (f0, S'):
           records F lacks. Once the controller shows the ISR {L, P} — before L drops P, one lag time
           after the cut — P's answers to F are rate-limited (tc, RATE_KBIT: a fetch answer of the
           tens of KB F lacks takes seconds; the 4 KB bucket lets the small OffsetsForLeaderEpoch
           answer through), the replicas are reordered [P, L, F] and a preferred election makes P
           leader (a clean one: P is in the ISR). Its epoch starts at its log end S >= S'; its HW
           stays <= f0, as L (cut) never fetches from it.
        4. F follows P: it truncates (nothing: f0 < S) and fetches at f0. A correct P adds F to the ISR
           only at max(HW, epoch start) = S; a P that checks the HW alone adds it at f0, while its
           answer with the records F lacks is still crawling over the slow link. The round watches
           the ISR for 0.9 of the lag time after the election (P drops the never-fetching L from the
           ISR after one lag time, and its HW then jumps past f0).
        5. The moment F is in the ISR, F is cut from P (the rest of that answer never arrives), P and
           L are SIGKILLed, and F, the only live ISR member, is elected once they are fenced. Then
           the cuts are healed, the rate limit removed, the order restored, P and L restarted: they
           truncate to F's log. A correct build added F only once it held everything up to S, which
           covers all L acknowledged: killing P and L then loses nothing. The broken one loses the
           acknowledged (f0, S'): the checker finds them replaced by other records where they were
           acknowledged and read (`acked_offset_mismatch`, `inconsistent_offset`, `lost_on_replica`,
           readers sent back: `non_monotonic`), or `lost` if no reader had read them yet.

        If F never joins within the window the round restores everything without killing."""
        if not self.can_partition or not self.can_throttle:
            return self.kill_leader()
        picked = self._preferred_led_partition()
        if picked is None:
            return self.kill_leader()
        partition, lead, order = picked
        others = [r for r in order if r != lead]
        p, f = self.rng.sample(others, 2)
        control = self.control
        self._begin("epoch-start/cut", [f, p, lead], partition)
        cuts: list[tuple[list[int], list[int]]] = []
        throttled: list[int] = []
        reordered = [False]
        killed: list[int] = []

        def cut(a: list[int], b: list[int]) -> None:
            self._act(f"cut {a} from {b}", lambda: control.isolate(a, b))  # type: ignore[attr-defined]
            cuts.append((a, b))

        def restore(why: str = "") -> None:
            if why:
                self._note(why)
            for a, b in list(cuts):
                cuts.remove((a, b))
                self._heal_cut(a, b)
            for node in list(throttled):
                throttled.remove(node)
                self._act(f"remove the rate limit of node {node}",
                          lambda: control.unthrottle(node))  # type: ignore[attr-defined]  # noqa: B023
            if reordered[0]:
                self._reorder(partition, order)
            for node in self.rng.sample(killed, len(killed)):
                self._start(node)
            self._end()

        # 1. F cut from L: L's HW stops at F's log end while F is in the ISR; P copies beyond it.
        cut([f], [lead])
        cut_s = self.clock()
        f_end = self._log_end(f, partition)
        time.sleep(max(0.0, cut_s + self.lag_time_s * self.rng.uniform(0.6, 0.75) - self.clock()))
        # 2. L cut from P: P's log end and HW freeze.
        p_end = self._log_end(p, partition)
        if self._leader_of(partition) != lead:
            return restore(f"leadership of partition {partition} moved away from {lead}")
        if self.log_end is not None and not (0 <= f_end < p_end):
            return restore(f"broker {p} holds nothing beyond {f}'s log end {f_end} (it ends at {p_end})")
        cut([lead], [p])
        lp_cut_s = self.clock()
        f_end = self._log_end(f, partition)
        self._note(f"broker {p} ends at {p_end} at least, broker {f} at {f_end}: {lead} acknowledges what lies "
                   f"between once it drops {f} from the ISR")
        # 3. L drops F (lag time) but not yet P: then P leads by a preferred election, its answers to F slow.
        if not self._wait_isr(partition, {lead, p}, max(0.0, lp_cut_s + self.lag_time_s - 1.0 - self.clock())):
            return restore(f"the ISR of partition {partition} did not become [{lead}, {p}] in time")
        self._act(f"rate-limit node {p} to node {f} ({RATE_KBIT} kbit/s)",
                  lambda: control.throttle(p, f, RATE_KBIT))  # type: ignore[attr-defined]
        throttled.append(p)
        reordered[0] = True
        if not self._reorder(partition, [p, lead, f]):
            return restore(f"partition {partition} was not reordered to {[p, lead, f]}")
        self._elect("preferred", [partition])
        elected_s = self.clock()
        if self._leader_of(partition) != p:
            return restore(f"broker {p} did not take partition {partition} over")
        start = self._log_end(p, partition)
        self._note(f"broker {p} leads partition {partition} from about {start} (its epoch start); its HW is at "
                   f"most {f}'s log end {f_end}, and {lead} never fetches from it")
        # 4. F fetches from P: is it added to the ISR below P's epoch start?
        joined = False
        while self.clock() < elected_s + self.lag_time_s * 0.9:
            isr = self._isr_of(partition)
            if isr is not None and f in isr:
                joined = True
                break
            time.sleep(POLL_S)
        if not joined:
            return restore(f"broker {f} was not added to the ISR of partition {partition} within "
                           f"{self.lag_time_s * 0.9:.1f} s of {p}'s election")
        # 5. F in the ISR: it never gets the rest of P's answer; P and L die, F is elected.
        cut([f], [p])
        f_now = self._log_end(f, partition)
        self._note(f"broker {f} is in the ISR of partition {partition} with log end {f_now} ({p}'s epoch started at "
                   f"about {start})")
        for node in (p, lead):
            self._kill(node, signal.SIGKILL)
            killed.append(node)
        took = self._wait_leader(partition, {p, lead}, self.session_timeout_s + 10.0)
        self._note(f"broker {took} leads partition {partition}" if took >= 0 else
                   f"no leader of partition {partition} outside {[p, lead]} appeared")
        restore()

    def stall_followers(self) -> None:
        """The followers of one partition stall together (a GC pause, a stalled disk: SIGSTOP) for less
        than a session and less than replica.lag.time.max.ms, so they stay in the ISR and unfenced, and
        the leader dies during the stall; the followers resume and one of them is elected. A correct
        leader acknowledged nothing the stalled followers lack (its HW could not move past them); a
        leader that acknowledges acks=all writes before they are replicated loses every write it
        acknowledged during the stall."""
        picked = self._pick_partition()
        if picked is None:
            return self.kill_node(signal.SIGKILL)
        partition, leader, replicas, _ = picked
        followers = [r for r in replicas if r != leader]
        if not followers:
            return self.kill_leader()
        self._begin("stall-followers", [*followers, leader], partition)
        for follower in followers:
            self._pause(follower)
        self._sleep(STALL_S)
        self._kill(leader, signal.SIGKILL)
        for follower in followers:
            self._resume(follower)
        self._sleep(SHORT_DOWN_S)
        self._start(leader)
        self._end()

    def _heal_cut(self, a: Sequence[int], b: Sequence[int]) -> None:
        control = self.control
        if hasattr(control, "unisolate"):
            self._act(f"heal the cut {list(a)} from {list(b)}", lambda: control.unisolate(a, b))  # type: ignore[attr-defined]
        else:
            self._act("heal the network", control.heal_network)  # type: ignore[attr-defined]

    def partition_network(self) -> None:
        """A network cut (NetworkControl only): shorter or longer than a session, then healed."""
        control: NetworkControl = self.control  # type: ignore[assignment]
        picked = self._pick_partition()
        brokers = sorted(self.control.broker_ids)
        controllers = sorted(self.control.controller_ids)
        kind = self.rng.choice(("leader-from-followers", "leader-from-controllers", "broker-from-all",
                                "controller-from-all", "follower-from-leader"))
        partition = -1
        if kind == "controller-from-all":
            active = self._active_controller()
            victim = active if active >= 0 else self.rng.choice(controllers)
            a, b = [victim], [n for n in controllers + brokers if n != victim]
        elif picked is None or kind == "broker-from-all":
            victim = self.rng.choice(brokers)
            a, b = [victim], [n for n in controllers + brokers if n != victim]
        else:
            partition, leader, replicas, _ = picked
            followers = [r for r in replicas if r != leader]
            if kind == "leader-from-followers":
                a, b = [leader], followers
            elif kind == "leader-from-controllers":
                a, b = [leader], controllers
            else:
                a, b = [self.rng.choice(followers)], [leader]
        self._begin(f"cut-{kind}", a, partition)
        self._act(f"cut {a} from {b}", lambda: control.isolate(a, b))
        self._sleep(CUT_S)
        self._heal_cut(a, b)
        self._end()

    @property
    def can_partition(self) -> bool:
        return hasattr(self.control, "isolate")

    def _targeted_deck(self) -> list[Callable[[], None]]:
        """The rounds built for one interleaving each (an unclean election after the ISR shrank to the
        leader, a follower rejoining while the leader dies, an election with a lagging follower, leader
        churn, a controller failover during an ISR change, a network cut)."""
        deck: list[Callable[[], None]] = [
            self.unclean, self.rejoin_while_leader_dies, self.rejoin_while_leader_dies,
            self.divergent_return, self.lagging_follower_election, self.leader_churn, self.isr_change_controller_failover,
        ]
        if self.can_partition:
            # three-epochs only with namespaces: without them its writers seldom reach the second
            # leader, and it ends there (after stopping two brokers) without building its history.
            deck += [self.partition_network, self.three_epochs, self.stale_follower]
            if self.can_throttle:
                deck.append(self.epoch_start)
        return deck

    def _next_targeted(self) -> Callable[[], None]:
        """The next round of the shared targeted deck (see random_round). The first pass starts with
        the two rounds whose interleavings nothing else produces (unclean, rejoin) in seeded order,
        then the others shuffled, divergent-return always fourth, three-epochs and stale-follower
        (namespaces only) fifth and sixth; with rate limits (namespaces) epoch-start comes before all of
        them (so each of those is one card later); every later pass is a fresh seeded shuffle of the
        whole deck."""
        with self._deck_lock:
            if not self._deck:
                deck = self._targeted_deck()
                if self._deck_passes == 0:
                    first, rest = deck[:2], deck[2:]
                    self._deck_rng.shuffle(first)
                    rest.remove(self.divergent_return)  # fourth: early in every run, whatever the seed
                    early = [self.divergent_return]
                    for card in (self.three_epochs, self.stale_follower):  # fifth and sixth, likewise
                        if card in rest:
                            rest.remove(card)
                            early.append(card)
                    self._deck_rng.shuffle(rest)
                    if self.epoch_start in rest:
                        # First, before any unclean election: it builds loss 4's state, which nothing else
                        # does, and needs a partition never elected uncleanly (the checker excuses what is
                        # lost on one after that, and `unclean` often elects every partition).
                        rest.remove(self.epoch_start)
                        deck = [self.epoch_start] + first + rest[:1] + early + rest[1:]
                    else:
                        deck = first + rest[:1] + early + rest[1:]
                else:
                    self._deck_rng.shuffle(deck)
                self._deck_passes += 1
                self._deck = deck[::-1]  # popped from the end
            return self._deck.pop()

    def random_round(self) -> None:
        """One round of the random mix. Every other round of a worker (its first included) is the next
        of a targeted deck shared by the workers, so each targeted interleaving is tried within the
        first minutes of every run instead of when the draw happens to pick it; the rounds in between
        are drawn from the whole mix (targeted rounds included)."""
        self._local.rounds = getattr(self._local, "rounds", 0) + 1
        if self._local.rounds % TARGETED_EVERY == 1 % TARGETED_EVERY:
            choice = self._next_targeted()
            # A rejoin from the deck runs alone too: its window (the ISR expansion in flight while the
            # follower is stopped) is milliseconds wide, and a concurrent kill of the leader or of the
            # follower mid-catch-up ends the round without trying it; drawn between, it overlaps.
            with self._round(exclusive=choice in (self.unclean, self.rejoin_while_leader_dies, self.divergent_return,
                                                  self.three_epochs, self.stale_follower, self.epoch_start)):
                choice()
            return
        choices: list[Callable[[], None]] = [
            self.kill_active_controller, self.kill_leader, self.kill_follower, self.kill_two_replicas,
            self.pause_leader, lambda: self.kill_leader(signal.SIGTERM), lambda: self.kill_node(signal.SIGKILL),
            lambda: self.kill_node(signal.SIGTERM), self.pause_node,
            self.leader_churn, self.leader_churn, self.pause, self.pause, self.isr_change_controller_failover,
            self.unclean, *[self.lagging_follower_election] * 3, *[self.rejoin_while_leader_dies] * 3,
        ]
        if self.can_partition:
            choices += [self.partition_network] * 5
        choice = self.rng.choice(choices)
        # A forced unclean election is only safe for acks=all writes when nothing else is failing at
        # the same time (a concurrent fault could leave only a lagging replica to elect): alone.
        with self._round(exclusive=choice == self.unclean):
            choice()

    def run(self, scenario: str, duration_s: float, concurrency: int | None = None) -> None:
        """Rounds of `scenario` with seeded gaps until `duration_s` (from now) is used up. The random
        mix runs `concurrency` (default RANDOM_CONCURRENCY) workers at once, each with its own
        random.Random drawn from the seeded one, so rounds overlap."""
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r} (one of {', '.join(SCENARIOS)})")
        deadline_s = self.clock() + duration_s
        rounds: dict[str, Callable[[], None]] = {
            "kill-active-controller": self.kill_active_controller,
            "kill-leader": self.kill_leader,
            "kill-follower": self.kill_follower,
            "kill-two-replicas": self.kill_two_replicas,
            "pause-leader": self.pause_leader,
            "rolling-restart": lambda: self.rolling_restart(deadline_s),
            "leader-churn": self.leader_churn,
            "pause": self.pause,
            "isr-controller": self.isr_change_controller_failover,
            "unclean": self.unclean,
            "lagging-election": self.lagging_follower_election,
            "rejoin": self.rejoin_while_leader_dies,
            "divergent-return": self.divergent_return,
            "three-epochs": self.three_epochs,
            "stale-follower": self.stale_follower,
            "epoch-start": self.epoch_start,
            "stall-followers": self.stall_followers,
            "partition": self.partition_network,
            "reassign-kill": self.reassign_kill,
            "random": self.random_round,
        }
        if scenario == "stale-follower" and not self.can_partition:
            raise ValueError("scenario stale-follower needs network namespaces (brook chaos run --network netns)")
        if scenario == "epoch-start" and not (self.can_partition and self.can_throttle):
            raise ValueError("scenario epoch-start needs network namespaces (brook chaos run --network netns)")
        if scenario == "partition" and not self.can_partition:
            raise ValueError("scenario partition needs network namespaces (brook chaos run --network netns)")
        self.overlap = scenario == "random"
        workers = max(1, concurrency if concurrency is not None else RANDOM_CONCURRENCY) if self.overlap else 1
        seeds = [self._main_rng.randrange(2 ** 62) for _ in range(workers)]
        self._deck_rng = random.Random(self._main_rng.randrange(2 ** 62))
        self._deck, self._deck_passes = [], 0

        def worker(index: int) -> None:
            if workers > 1:
                self._local.rng = random.Random(seeds[index])
            while deadline_s - self.clock() >= ROUND_S_MIN and not self._stopping.is_set():
                self._sleep(RANDOM_GAP_S if self.overlap else GAP_S)
                try:
                    rounds[scenario]()
                except (BrookError, OSError, subprocess.SubprocessError) as e:  # a node vanished under a concurrent round
                    if self._current is not None:
                        self._note(f"round aborted: {e}")
                        self._current = None
                    self.log(f"[chaos {self.clock():7.2f}s] round aborted: {e}")

        if workers == 1:
            worker(0)
        else:
            threads = [threading.Thread(target=worker, args=(i,), name=f"chaos-nemesis-{i}", daemon=True)
                       for i in range(workers)]
            for thread in threads:
                thread.start()
            try:
                for thread in threads:
                    thread.join()
            except BaseException:  # Ctrl-C: the workers stop after their round, restarting nothing
                self._stopping.set()
                raise
        self.overlap = False
        remaining_s = deadline_s - self.clock()
        if remaining_s > 0:
            time.sleep(remaining_s)

    def heal(self, timeout_s: float = RECOVER_S_MAX) -> bool:
        """Heal the network, SIGCONT every paused node, start every stopped one, wait until healthy."""
        self._begin("heal", [])
        if self.can_partition:
            self._act("heal the network", self.control.heal_network)  # type: ignore[attr-defined]
        for node_id in sorted(getattr(self.control, "paused", set())):
            self._resume(node_id)
        for node_id in [*sorted(self.control.controller_ids), *sorted(self.control.broker_ids)]:
            if not self.control.is_running(node_id):
                self._start(node_id)
        fault = self._current
        self._end()
        assert fault is not None
        return fault.recovered_s >= 0

    def sweep(self, read: Callable[[int], bool], timeout_s: float = RECOVER_S_MAX) -> list[int]:
        """The replica sweep, after the heal: for each broker in turn, SIGSTOP the others until the
        controller shows that broker leading every partition of the topic alone, `read(broker)` (from
        offset 0 to its end), SIGCONT the others and wait until healthy. Returns the brokers read."""
        read_ok: list[int] = []
        brokers = sorted(self.control.broker_ids)
        for broker in brokers:
            others = [b for b in brokers if b != broker]
            self._begin("sweep", [broker])
            for other in others:
                self._pause(other)
            deadline_s = self.clock() + self.session_timeout_s + SWEEP_LEAD_S_MAX
            leads = False
            while self.clock() < deadline_s and not leads:
                parts = self._partitions()
                leads = bool(parts) and all(leader == broker and isr == [broker] for _, leader, _, isr in parts)
                if not leads:
                    time.sleep(POLL_S * 4)
            if leads:
                self._note(f"broker {broker} leads every partition alone; reading it")
                if read(broker):
                    read_ok.append(broker)
                self._note(f"read broker {broker}'s copy")
            else:
                self._note(f"broker {broker} did not become the only leader: not read")
            for other in others:
                self._resume(other)
            fault = self._current
            self._end()
            assert fault is not None
            if fault.recovered_s < 0:
                break
        return read_ok
