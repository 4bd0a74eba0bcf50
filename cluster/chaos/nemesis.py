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
    random                  a seeded mix of the above plus SIGKILL/SIGTERM/SIGSTOP of any node
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

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

SCENARIOS = (
    "kill-active-controller",
    "kill-leader",
    "kill-follower",
    "kill-two-replicas",
    "pause-leader",
    "rolling-restart",
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

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "nodes": self.nodes, "partition": self.partition, "start_s": round(self.start_s, 3),
                "end_s": round(self.end_s, 3), "recovered_s": round(self.recovered_s, 3),
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
        self.rng = rng
        self.clock = clock
        self.session_timeout_s = session_timeout_s
        self.log = log
        # health(timeout_s, epochs_before) -> True when healthy, restarted brokers re-registered with
        # an epoch above epochs_before (default: control.wait_healthy); epochs() -> broker epochs now.
        self.health = health
        self.epochs = epochs
        self._epochs_before: dict[int, int] = {}
        self._current_restarted: set[int] = set()
        self.timeline: list[Fault] = []
        self._current: Fault | None = None

    # -- primitives (each is recorded in the current fault) --------------------------------------

    def _act(self, text: str, action: Callable[[], None]) -> None:
        assert self._current is not None, "actions belong to a fault"
        try:
            action()
        except BrookError as e:  # e.g. the node had already exited on its own: record it, carry on
            text = f"{text} FAILED: {e.message.splitlines()[0]}"
        self._current.actions.append((self.clock(), text))
        self.log(f"[chaos {self.clock():7.2f}s] {text}")

    def _kill(self, node_id: int, sig: int) -> None:
        self._act(f"{signal.Signals(sig).name} node {node_id}", lambda: self.control.kill(node_id, sig))

    def _start(self, node_id: int) -> None:
        self._current_restarted.add(node_id)
        self._act(f"start node {node_id}", lambda: self.control.start(node_id))

    def _pause(self, node_id: int) -> None:
        self._act(f"SIGSTOP node {node_id}", lambda: self.control.pause(node_id))

    def _resume(self, node_id: int) -> None:
        self._act(f"SIGCONT node {node_id}", lambda: self.control.resume(node_id))

    def _sleep(self, bounds: tuple[float, float], base_s: float = 0.0) -> None:
        time.sleep(base_s + self.rng.uniform(*bounds))

    def _begin(self, kind: str, nodes: list[int], partition: int = -1) -> Fault:
        self._epochs_before = self.epochs() if self.epochs is not None else {}
        self._current_restarted = set()
        self._current = Fault(kind, nodes, self.clock(), partition=partition)
        self.timeline.append(self._current)
        return self._current

    def _end(self) -> None:
        assert self._current is not None
        self._current.end_s = self.clock()
        if self._recover(RECOVER_S_MAX):
            self._current.recovered_s = self.clock()
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

    def random_round(self) -> None:
        choices: list[Callable[[], None]] = [
            self.kill_active_controller, self.kill_leader, self.kill_follower, self.kill_two_replicas,
            self.pause_leader, lambda: self.kill_leader(signal.SIGTERM), lambda: self.kill_node(signal.SIGKILL),
            lambda: self.kill_node(signal.SIGTERM), self.pause_node,
        ]
        self.rng.choice(choices)()

    def run(self, scenario: str, duration_s: float) -> None:
        """Rounds of `scenario` with seeded gaps until `duration_s` (from now) is used up."""
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
            "random": self.random_round,
        }
        while deadline_s - self.clock() >= ROUND_S_MIN:
            self._sleep(GAP_S)
            rounds[scenario]()
        remaining_s = deadline_s - self.clock()
        if remaining_s > 0:
            time.sleep(remaining_s)

    def heal(self, timeout_s: float = RECOVER_S_MAX) -> bool:
        """SIGCONT every paused node, start every stopped one, wait until healthy."""
        self._begin("heal", [])
        for node_id in sorted(getattr(self.control, "paused", set())):
            self._resume(node_id)
        for node_id in [*sorted(self.control.controller_ids), *sorted(self.control.broker_ids)]:
            if not self.control.is_running(node_id):
                self._start(node_id)
        fault = self._current
        self._end()
        assert fault is not None
        return fault.recovered_s >= 0
