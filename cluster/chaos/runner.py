"""`brook chaos run`: a workload, a nemesis and the checker against a cluster, ending in a report.

    brook chaos run --scenario kill-leader|...|random --duration 60s --seed 7 [--target local|compose]
        [--data-dir .data/dev | --fresh] [--workload txn]

With --workload txn the transactional workload (txn_workload.TxnRun: transactional producers,
consume-transform-produce, read_committed readers, on two topics of its own) runs beside the default
one, is drained after it, and its anomalies (txn_check) join the report.

Target local drives the cluster `make run` (`brook dev`) runs under --data-dir (LocalCluster.adopt:
its nodes by PID; killed nodes are restarted as this process's children and every node is left
running at the end); when none runs there, or with --fresh, it starts its own 3+3 cluster in a temp
dir with CHAOS_OVERRIDES and stops it at the end.

A run: (adopt or start the cluster) → create a fresh topic (3 partitions, RF 3,
min.insync.replicas=2) → start the invariant sampler, the writers and the readers → the nemesis
runs the scenario for --duration → heal (SIGCONT/restart everything, wait healthy) → stop the
writers (flush), let the readers catch up → drain every partition from offset 0 → compare replica
prefixes → the replica sweep (each broker in turn leads every partition alone and is read from offset
0) → compare replica prefixes again → check → report. Exit code: 0 no anomaly; 1 an anomaly; 2 a usage error; 3 the run could
not be fully checked (no drain, cluster never healthy).

Every choice the tester makes comes from one `random.Random(seed)`; the seed is printed first.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from brookpb import admin_pb2 as apb
from cluster.chaos.checker import check
from cluster.chaos.history import History, ReplicaSample
from cluster.chaos.nemesis import (
    RANDOM_CONCURRENCY,
    SCENARIOS,
    ComposeControl,
    LocalControl,
    Nemesis,
    NodeControl,
)
from cluster.chaos.report import Report, unavailability
from cluster.chaos.sampler import CONVERGE_S_MAX, Sampler, check_prefixes, read_replica_samples
from cluster.chaos.workload import DRAIN_S_MAX, Workload, WorkloadConfig, drain
from cluster.chaos.workload import READER_CATCH_UP_S_MAX as READER_CATCH_UP_S
from cluster.client import BrokerClient, ControllerClient, kafka_address
from cluster.errors import BrookError, ErrorCode

__all__ = ["CHAOS_OVERRIDES", "main", "parse_duration", "run"]

# The self-started cluster: short failure detection so faults resolve within a round, RF 3 and
# min.insync.replicas=2 so acks=all means "on two replicas", no unclean elections (the default, spelled
# out), and periodic preferred-leader rebalancing so leadership also moves back while faults happen.
SESSION_TIMEOUT_MS = 3000
CHAOS_OVERRIDES = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "unclean.leader.election.enable": "false",
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
    "replica.lag.time.max.ms": "5000",
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.replication.factor": "3",
    "offsets.topic.num.partitions": "3",
    "auto.leader.rebalance.enable": "true",
    "leader.imbalance.check.interval.seconds": "15",
    # The transactional workload (--workload txn): a small __transaction_state, timeouts checked often.
    "transaction.state.log.num.partitions": "3",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
}
PARTITIONS = 3
REPLICATION_FACTOR = 3
MIN_INSYNC = 2
RATE_PER_S = 2000.0
START_S_MAX = 90.0
READY_S_MAX = 45.0
HEAL_S_MAX = 60.0
BROKEN_WAIT_S = 5.0    # reader catch-up / convergence bound (x3: the drain) after a failed heal
DURATION_S_MAX = 24 * 3600.0
DEFAULT_COMPOSE_FILE = "deploy/compose.yaml"
DEFAULT_DATA_DIR = ".data/dev"  # where `make run` keeps its cluster


def parse_duration(text: str) -> float:
    """'60s', '10m', '1h', '90' (seconds), '1.5m' -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if not match:
        raise ValueError(f"bad duration {text!r}: expected e.g. 60s, 10m, 1h")
    value = float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    if not 0 < value <= DURATION_S_MAX:
        raise ValueError(f"duration {text!r} out of range (0, {DURATION_S_MAX:g}s]")
    return value


def _brokers(admin: ControllerClient) -> tuple[str, dict[int, str]]:
    """(Kafka bootstrap, broker id -> gRPC address) from DescribeCluster."""
    reply = admin.describe_cluster()
    kafka = ",".join(a for a in (kafka_address(b) for b in sorted(reply.brokers, key=lambda b: b.broker_id)) if a)
    return kafka, {b.broker_id: f"{b.host}:{b.grpc_port}" for b in reply.brokers}


def _log_end_probe(broker_grpc: Mapping[int, str], topic: str) -> Callable[[int, int], int]:
    """Nemesis.log_end: one broker's log end offset of a partition of `topic` (ReplicaStates), -1 when
    it does not answer within half a second."""
    def log_end(broker: int, partition: int) -> int:
        address = broker_grpc.get(broker)
        if address is None:
            return -1
        try:
            with BrokerClient(address, 0.5) as client:
                reply = client.replica_states()
        except BrookError:
            return -1
        return next((r.log_end_offset for r in reply.replicas if r.topic == topic and r.partition == partition), -1)
    return log_end


def wait_ready(admin: ControllerClient, topic: str, brokers: Sequence[int], timeout_s: float,
               epochs_before: Mapping[int, int] | None = None) -> bool:
    """Healthy for the workload: an active controller with every voter connected, every broker
    unfenced (and re-registered, with an epoch above `epochs_before`, when it was restarted), every
    partition of `topic` led with its full ISR. Returns False after `timeout_s`."""
    deadline_s = time.monotonic() + timeout_s
    epochs_before = epochs_before or {}
    while True:
        try:
            cluster = admin.describe_cluster()
            unfenced = {b.broker_id for b in cluster.brokers
                        if not b.fenced and b.broker_epoch > epochs_before.get(b.broker_id, -1)}
            parts = [p for t in admin.describe_topics([topic]).topics for p in t.partitions]
            if cluster.active_controller_id >= 0 and set(brokers) <= unfenced and parts and all(
                    p.leader >= 0 and set(p.isr) == set(p.replicas) for p in parts):
                quorum = admin.quorum_status()
                if quorum.voters and all(v.connected for v in quorum.voters):
                    return True
        except BrookError:
            pass
        if time.monotonic() >= deadline_s:
            return False
        time.sleep(0.25)


def broker_epochs(admin: ControllerClient) -> dict[int, int]:
    try:
        return {b.broker_id: b.broker_epoch for b in admin.describe_cluster().brokers}
    except BrookError:
        return {}


def create_topic(admin: ControllerClient, topic: str) -> None:
    request = apb.CreateTopicRequest(name=topic, partitions=PARTITIONS, replication_factor=REPLICATION_FACTOR,
                                     configs={"min.insync.replicas": str(MIN_INSYNC)})
    reply = admin.create_topics([request])
    for result in reply.results:
        if result.error_code:
            raise BrookError(f"could not create topic {topic}: {result.error_message}", ErrorCode(result.error_code))


def run(scenario: str, duration_s: float, seed: int, target: str = "local", cluster=None,  # noqa: ANN001
        *, bootstrap_controller: str | None = None, compose_file: str = DEFAULT_COMPOSE_FILE,
        rate_per_s: float = RATE_PER_S, session_timeout_s: float | None = None,
        data_dir: str | os.PathLike[str] | None = None, log: Callable[[str], None] = print,
        sweep: bool = True, network: str = "none", concurrency: int | None = None,
        subnet: str | None = None, workload: str = "default") -> Report:
    """One chaos run (see the module doc). `cluster`: a started LocalCluster to use. Else, for target
    local: the cluster running under `data_dir` (adopted, left running), or when there is none (or
    `data_dir` is None) one started in a temp dir. Raises BrookError when the cluster cannot be set up."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r} (one of {', '.join(SCENARIOS)})")
    log(f"[chaos] seed {seed}: scenario {scenario}, {duration_s:g}s, target {target}")
    rng = random.Random(seed)
    own_dir: str | None = None
    adopted = False
    if network == "netns" and workload != "default":
        raise ValueError("the transactional workload does not run with --network netns yet")
    if network == "netns":
        return _run_netns(scenario, duration_s, seed, rng, rate_per_s, log, sweep, concurrency, subnet)
    if target == "local" and cluster is None and data_dir is not None:
        cluster = _adopt(data_dir, bootstrap_controller, log)
        adopted = cluster is not None
    if target == "local" and cluster is None:
        if bootstrap_controller:
            raise BrookError("--target local with --bootstrap-controller: the faults need the nodes' processes, "
                             "and no cluster runs under --data-dir; start it (`make run`), or omit "
                             "--bootstrap-controller to let the tester start its own cluster",
                             ErrorCode.invalid_request)
        from cluster.cli.launcher import LocalCluster

        own_dir = tempfile.mkdtemp(prefix=f"brook-chaos-{seed}-")
        cluster = LocalCluster(own_dir, 3, 3, overrides=CHAOS_OVERRIDES)
        log(f"[chaos] starting a 3-controller, 3-broker cluster in {own_dir}")
        cluster.start(wait=True, timeout_s=START_S_MAX)
        session_timeout_s = SESSION_TIMEOUT_MS / 1000.0
    report: Report | None = None
    try:
        report = _run(scenario, duration_s, seed, target, cluster, rng, bootstrap_controller, compose_file,
                      rate_per_s, session_timeout_s, log, sweep, concurrency=concurrency, workload_kind=workload)
        return report
    finally:
        if adopted:
            _leave_running(cluster, log)
        if own_dir is not None:
            cluster.stop()
            if report is not None and report.exit_code == 0 and not report.warnings:
                shutil.rmtree(own_dir, ignore_errors=True)
            else:
                log(f"[chaos] kept the cluster's data and logs in {own_dir}")


def _run_netns(scenario: str, duration_s: float, seed: int, rng: random.Random, rate_per_s: float,
               log: Callable[[str], None], sweep: bool, concurrency: int | None = None,
               subnet: str | None = None) -> Report:
    """A run against its own cluster in network namespaces (cluster.chaos.network): the nemesis may
    also cut the network. This process moves into the cluster's client namespace for the run.
    `subnet`: the bridge's /24 (default BROOK_CHAOS_SUBNET, else netns.SUBNET)."""
    from cluster.chaos import network

    netns = network.netns_module()
    reason = netns.unavailable()
    if reason is not None:
        raise BrookError(f"--network netns: {reason}", ErrorCode.invalid_request)
    own_dir = tempfile.mkdtemp(prefix=f"brook-chaos-netns-{seed}-")
    subnet = netns.parse_subnet(subnet or os.environ.get(netns.SUBNET_ENV) or netns.SUBNET)
    cluster = netns.NetnsCluster(own_dir, subnet=subnet,
                                 overrides={**netns.FAST_FAILURE_DETECTION, **CHAOS_OVERRIDES})
    log(f"[chaos] starting a 3-controller, 3-broker cluster in network namespaces ({cluster.tag}, "
        f"{subnet}.0/24) in {own_dir}")
    report: Report | None = None
    previous = -1
    try:
        cluster.start(timeout_s=START_S_MAX)
        previous = network.enter(cluster.client_ns)
        report = _run(scenario, duration_s, seed, "local", cluster, rng, None, DEFAULT_COMPOSE_FILE, rate_per_s,
                      SESSION_TIMEOUT_MS / 1000.0, log, sweep, control=network.NetnsControl(cluster),
                      concurrency=concurrency)
        return report
    finally:
        if previous >= 0:  # first: closing the cluster kills every process left in its namespaces
            network.leave(previous)
        cluster.close()
        if report is not None and report.exit_code == 0 and not report.warnings:
            shutil.rmtree(own_dir, ignore_errors=True)
        else:
            log(f"[chaos] kept the cluster's data and logs in {own_dir}")


def _adopt(data_dir: str | os.PathLike[str], bootstrap_controller: str | None,
           log: Callable[[str], None]):  # noqa: ANN202 (a LocalCluster or None)
    """The cluster running under `data_dir` (`make run`), or None (logged) when none runs there."""
    from cluster.cli.launcher import LocalCluster

    cluster = LocalCluster.adopt(data_dir)  # LaunchError (a BrookError) when it is only partly running
    if cluster is None:
        log(f"[chaos] no cluster is running under {Path(data_dir).resolve()}; starting its own")
        return None
    if bootstrap_controller and {a.strip() for a in bootstrap_controller.split(",") if a.strip()} != set(
            cluster.controller_bootstrap.split(",")):
        raise BrookError(f"--bootstrap-controller {bootstrap_controller} is not the cluster running under "
                         f"{cluster.data_dir} ({cluster.controller_bootstrap}): the faults need its processes",
                         ErrorCode.invalid_request)
    log(f"[chaos] driving the cluster running under {cluster.data_dir}: "
        + ", ".join(f"node {i} pid {pid}" for i, pid in sorted(cluster.pids.items()))
        + "; every node is left running at the end")
    return cluster


def _leave_running(cluster, log: Callable[[str], None]) -> None:  # noqa: ANN001
    """An adopted cluster is left as found: SIGCONT every node, start each one that is not running (the
    heal does this already; this covers a run that ended early). Started nodes keep running after exit."""
    for node_id in cluster.controller_ids + cluster.broker_ids:
        try:
            if cluster.is_running(node_id):
                cluster.send_signal(node_id, signal.SIGCONT)
            else:
                log(f"[chaos] starting node {node_id} again (pid {cluster.start_node(node_id)})")
        except (BrookError, OSError) as e:
            log(f"[chaos] could not leave node {node_id} running: {e}")


def _session_timeout_s(admin: ControllerClient) -> float:
    """broker.session.timeout.ms of the cluster (the cluster-wide broker config), else Brook's default."""
    return _broker_config_s(admin, "broker.session.timeout.ms", 9.0)


def _broker_config_s(admin: ControllerClient, name: str, default_s: float) -> float:
    """A cluster-wide broker config in milliseconds, as seconds; `default_s` when unknown."""
    try:
        reply = admin.describe_configs([(4, "")])
        for result in reply.results:
            for entry in result.entries:
                if entry.name == name:
                    return int(entry.value) / 1000.0
    except (BrookError, ValueError):
        pass
    return default_s


def _run(scenario: str, duration_s: float, seed: int, target: str, cluster, rng: random.Random,  # noqa: ANN001
         bootstrap_controller: str | None, compose_file: str, rate_per_s: float,
         session_timeout_s: float | None, log: Callable[[str], None], sweep: bool = True,
         control: NodeControl | None = None, concurrency: int | None = None,
         workload_kind: str = "default") -> Report:
    started = time.monotonic()

    def clock() -> float:
        return time.monotonic() - started

    controllers = cluster.controller_bootstrap if cluster is not None else bootstrap_controller
    if not controllers:
        raise BrookError("--target compose needs --bootstrap-controller (the published controller ports)",
                         ErrorCode.invalid_request)
    admin = ControllerClient(controllers, timeout_s=3.0)
    kafka, broker_grpc = _brokers(admin)
    broker_ids = sorted(broker_grpc)
    if session_timeout_s is None:
        session_timeout_s = _session_timeout_s(admin)
    run_id = f"chaos{seed}-{rng.randrange(16 ** 6):06x}"
    topic = run_id
    report = Report(seed, scenario, duration_s, target, topic)
    create_topic(admin, topic)
    if not wait_ready(admin, topic, broker_ids, READY_S_MAX):
        raise BrookError(f"topic {topic} not fully replicated within {READY_S_MAX:g}s", ErrorCode.request_timed_out)

    if control is not None:
        pass
    elif cluster is not None:
        control = LocalControl(cluster)
    else:
        control = ComposeControl(compose_file, broker_ids=broker_ids)  # health: the nemesis's own
    history = History(partitions=tuple(range(PARTITIONS)))
    sampler = Sampler(history, broker_grpc, controllers, topic, control.incarnation, clock)
    nemesis = Nemesis(control, admin, topic, rng, clock, session_timeout_s, log,
                      health=lambda timeout_s, epochs: wait_ready(admin, topic, broker_ids, timeout_s, epochs),
                      epochs=lambda: broker_epochs(admin))
    nemesis.lag_time_s = _broker_config_s(admin, "replica.lag.time.max.ms", 30.0)
    nemesis.log_end = _log_end_probe(broker_grpc, topic)
    config = WorkloadConfig(kafka, topic, run_id, rate_per_s=rate_per_s, debug_dir=tempfile.gettempdir())
    workload = Workload(config, history, clock)
    txn = None
    if workload_kind == "txn":  # the transactional workload runs beside the default one
        from cluster.chaos.txn_workload import TxnRun
        txn = TxnRun(kafka, run_id, seed, PARTITIONS, clock, log, lambda name: create_topic(admin, name),
                     lambda name: wait_ready(admin, name, broker_ids, READY_S_MAX), config.client_errors)
    sampler.start()
    workload.start()
    if txn is not None:
        txn.start()
    healed = False
    try:
        _wait_reading(workload, log)
        log(f"[chaos {clock():7.2f}s] workload running on {topic}; faults start")
        fault_start_s = clock()
        history.fault_start_s = fault_start_s
        nemesis.run(scenario, duration_s, concurrency)
        report.crashed = _crashed(cluster)
        log(f"[chaos {clock():7.2f}s] faults done; healing")
        healed = nemesis.heal(HEAL_S_MAX)
        if not healed:
            report.problems.append(f"the cluster was not healthy within {HEAL_S_MAX:g}s of the heal")
    finally:
        workload.stop_writers()
        if txn is not None:
            txn.stop()
        # A cluster that did not heal (a broken build) gets short bounds from here on, so the run
        # still ends with a report within a few minutes.
        workload.stop_readers(READER_CATCH_UP_S if healed else BROKEN_WAIT_S)
        sampler.stop()
    report.warnings += [stall.describe() for stall in workload.stalls]
    report.reader_stalls = [asdict(stall) for stall in workload.stalls]
    unread = workload.group_missing()
    if unread:
        report.warnings.append(f"liveness: the consumer group had not read {unread} acknowledged values "
                               f"{READER_CATCH_UP_S:g}s after the writers stopped (its last read was at "
                               f"{workload.last_read_s:.2f}s)")
    log(f"[chaos {clock():7.2f}s] draining {topic} from offset 0")
    report.undrained = drain(kafka, topic, range(PARTITIONS), history, clock, run_id,
                             timeout_s=DRAIN_S_MAX if healed else BROKEN_WAIT_S * 3)
    if txn is not None:
        txn.drain(healed)
    prefix_anomalies, problems = check_prefixes(broker_grpc, topic, REPLICATION_FACTOR, log,
                                                converge_s=CONVERGE_S_MAX if healed else BROKEN_WAIT_S,
                                                batches=history.idempotent_batches)
    report.problems += problems
    swept: list[int] = []
    if sweep and report.problems:  # not healthy or not converged: a sweep would only time out
        report.problems.append("the replica sweep was skipped (the cluster was not healthy and converged)")
    elif sweep:
        swept = _sweep(nemesis, kafka, topic, history, clock, run_id, log)
        if swept != broker_ids:
            report.problems.append(f"the replica sweep read brokers {swept} of {broker_ids}")
    if swept:
        more, problems = check_prefixes(broker_grpc, topic, REPLICATION_FACTOR, log,
                                        batches=history.idempotent_batches)
        prefix_anomalies += more
        report.problems += problems
    history.final_replica_samples = final_replica_samples(broker_grpc, control.incarnation, clock)
    admin.close()
    history.unclean_since = dict(nemesis.unclean_since)
    report.result = check(history, prefix_anomalies)
    report.timeline = nemesis.timeline
    report.windows = unavailability(history, [f for f in nemesis.timeline if f.kind not in ("heal", "sweep")])
    report.client_errors = dict(config.client_errors)
    report.totals = {"faults": sum(1 for f in nemesis.timeline if f.kind not in ("heal", "sweep")),
                     "fault_phase_s": round(duration_s, 1), "run_s": round(clock(), 1),
                     "sends": len(history.sends), "acks_ok": sum(1 for o in history.outcomes if o.kind.value == "ok"),
                     "group_reads": sum(1 for r in history.reads if r.reader != "drain"),
                     "drain_reads": sum(1 for r in history.reads if r.reader == "drain"),
                     "rebalances": len(history.assignments), "replica_samples": len(history.replica_samples),
                     "partition_samples": len(history.partition_samples), "sampler_errors": sampler.errors,
                     "fault_start_s": round(fault_start_s, 2), "group_last_read_s": round(workload.last_read_s, 2),
                     "group_unread_acked": unread, "readers_recreated": len(workload.stalls),
                     "swept_brokers": len(swept),
                     "sweep_reads": sum(1 for r in history.reads if r.reader.startswith("sweep-"))}
    report.totals.update({f"fault_actions_{kind}": count for kind, count in nemesis.fault_actions().items()})
    if txn is not None:
        txn.add_to(report)
    report.totals.update(detection(report, fault_start_s, fault_start_s + duration_s))
    return report


# Anomalies whose evidence time is the acknowledgement of a write that a later fault destroyed.
_LOSS_KINDS = frozenset({"lost", "lost_on_replica", "acked_offset_mismatch"})


def final_replica_samples(brokers: Mapping[int, str], incarnation: Callable[[int], int],
                          clock: Callable[[], float]) -> list[ReplicaSample]:
    """Every answering broker's replica states once more, after the drain and the sweep (for the
    tripwire counts, which the sampler, stopped before them, would miss)."""
    out: list[ReplicaSample] = []
    for broker_id, address in sorted(brokers.items()):
        try:
            with BrokerClient(address, 3.0) as client:
                out += read_replica_samples(broker_id, client, incarnation, clock)
        except BrookError:
            continue
    return out


def detection(report: Report, fault_start_s: float, fault_end_s: float) -> dict[str, float | str]:
    """When the first anomaly's evidence happened, in seconds after the faults started, and how many
    faults had started by then (a loss counts the fault after its acknowledgement); {} when none.
    An anomaly only found at the end (prefix comparison) counts the whole fault phase."""
    anomalies = report.result.anomalies
    if not anomalies:
        return {}
    timed = [a for a in anomalies if a.time_s >= 0]
    first = min(timed, key=lambda a: a.time_s) if timed else None
    at_s = first.time_s if first is not None else fault_end_s
    faults = [f for f in report.timeline if f.kind not in ("heal", "sweep")]
    count = sum(1 for f in faults if f.start_s <= at_s)
    if first is not None and first.kind in _LOSS_KINDS:
        count = min(len(faults), count + 1)
    return {"first_anomaly_s": round(max(0.0, at_s - fault_start_s), 1), "faults_to_first_anomaly": count,
            "first_anomaly_kind": first.kind if first is not None else anomalies[0].kind}


def _sweep(nemesis: Nemesis, kafka: str, topic: str, history: History, clock: Callable[[], float], run_id: str,
           log: Callable[[str], None]) -> list[int]:
    """The replica sweep (Nemesis.sweep): each broker in turn leads every partition alone and is read
    from offset 0 to its end by a group-less consumer ("sweep-<broker>"); the checker then requires
    every acknowledged write at its offset in every copy (lost_on_replica)."""
    log(f"[chaos {clock():7.2f}s] replica sweep: each broker in turn leads every partition alone and is read")

    def read(broker: int) -> bool:
        return not drain(kafka, topic, range(PARTITIONS), history, clock, run_id, reader=f"sweep-{broker}")

    return nemesis.sweep(read, HEAL_S_MAX)


def _wait_reading(workload: Workload, log: Callable[[str], None], timeout_s: float = READY_S_MAX) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not workload.reads_started() and time.monotonic() < deadline_s:
        time.sleep(0.2)
    if not workload.reads_started():
        log("[chaos] warning: the consumer group read nothing before the faults started")


def _crashed(cluster) -> list[str]:  # noqa: ANN001
    """Nodes of a LocalCluster that are not running although every round restores its victims."""
    if cluster is None:
        return []
    def exit_code(i: int) -> object:
        if hasattr(cluster, "exit_code"):
            return cluster.exit_code(i)
        proc = cluster.node(i).proc
        return None if proc is None else proc.poll()

    return [f"node {i} (exit code {exit_code(i)}, log {cluster.node(i).log_path})"
            for i in cluster.controller_ids + cluster.broker_ids if not cluster.is_running(i)]


NETWORKS = ("auto", "none", "netns")


def choose_network(requested: str, *, workload: str, explicit_cluster: bool, running_cluster: bool,
                   netns_unavailable: str | None) -> tuple[str, str]:
    """The network mode of a run ("none" or "netns") and a line saying why, for `--network requested`.

    `auto` takes namespaces whenever the run may start its own cluster there, because only then can
    the nemesis cut links (the `partition`, `divergent-return` and `three-epochs` rounds; docs/CHAOS.md
    "Detection power" lists what a run without them cannot find). `explicit_cluster`: --data-dir,
    --bootstrap-controller or --target compose named a cluster to drive; `running_cluster`: one runs
    under the default data dir (`make run`), which a plain run drives; `netns_unavailable`: the
    reason namespaces cannot be used here, or None.
    """
    if requested != "auto":
        return requested, ""
    if workload != "default":
        return "none", "network: none (the transactional workload does not run in namespaces yet)"
    if explicit_cluster:
        return "none", "network: none (the cluster to drive is given; only its own cluster can be cut)"
    if running_cluster:
        return "none", ("network: none (driving the cluster `make run` runs; --fresh starts one in network "
                        "namespaces, so that the nemesis also cuts links)")
    if netns_unavailable is not None:
        return "none", (f"network: none, so no network partitions ({netns_unavailable}); docs/CHAOS.md "
                        "\"Detection power\" says what a run without them cannot find")
    return "netns", "network: namespaces (auto), so the nemesis also cuts links; --network none to run without"


def _resolve_network(args: argparse.Namespace) -> tuple[str, str]:
    """choose_network for parsed arguments: probes the default data dir and the namespaces only for auto."""
    if args.network != "auto":
        return args.network, ""
    explicit = args.data_dir is not None or args.target != "local" or bool(args.bootstrap_controller)
    running = False
    if not explicit and not args.fresh and args.workload == "default":
        from cluster.cli.launcher import LocalCluster

        try:
            running = LocalCluster.adopt(DEFAULT_DATA_DIR) is not None
        except BrookError:
            running = True  # partly running: the run itself reports it
    unavailable = None
    if not explicit and not running and args.workload == "default":
        from cluster.chaos import network

        unavailable = network.netns_module().unavailable()
    return choose_network(args.network, workload=args.workload, explicit_cluster=explicit,
                          running_cluster=running, netns_unavailable=unavailable)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brook chaos", description="Chaos-test a Brook cluster.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("run", help="run a workload under faults and check the history")
    p.add_argument("--scenario", default="random", choices=SCENARIOS)
    p.add_argument("--duration", default="60s", help="how long faults are injected (e.g. 60s, 10m)")
    p.add_argument("--seed", type=int, default=None, help="seed of every choice (default: random, printed)")
    p.add_argument("--target", default="local", choices=("local", "compose"))
    p.add_argument("--data-dir", default=None,
                   help=f"local: drive the cluster `make run` runs there (default: {DEFAULT_DATA_DIR}); "
                        "when none runs there, start one in a temp dir")
    p.add_argument("--fresh", action="store_true",
                   help="local: always start a new cluster in a temp dir (never drive a running one)")
    p.add_argument("--bootstrap-controller", default=os.environ.get("BROOK_BOOTSTRAP_CONTROLLER"),
                   help="controllers of the cluster under test (compose; local: must be the --data-dir "
                        "cluster's, if given)")
    p.add_argument("--compose-file", default=DEFAULT_COMPOSE_FILE)
    p.add_argument("--rate", type=float, default=RATE_PER_S, help="writes per second, all writers together")
    p.add_argument("--network", choices=NETWORKS, default="auto",
                   help="netns: start its own cluster in network namespaces so the nemesis also cuts the "
                        "network (needs root, iproute2, iptables); none: no cuts; auto (default): netns when "
                        "the tester starts its own cluster and namespaces work here, else none (it says why)")
    p.add_argument("--subnet", default=None,
                   help="netns: the cluster bridge's /24, e.g. 10.124.0 (default: $BROOK_CHAOS_SUBNET, else "
                        "10.123.0); give parallel netns runs different ones")
    p.add_argument("--no-sweep", action="store_true", help="skip the replica sweep at the end")
    p.add_argument("--workload", choices=("default", "txn"), default="default",
                   help="txn: also run the transactional workload (transactions, consume-transform-produce, "
                        "read_committed readers) and its checker")
    p.add_argument("--concurrency", type=int, default=None,
                   help=f"random: rounds running at once (default {RANDOM_CONCURRENCY})")
    p.add_argument("--output", "-o", choices=("table", "json"), default="table")
    p.add_argument("--report", metavar="PATH", help="also write the JSON report here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        duration_s = parse_duration(args.duration)
        if args.concurrency is not None and not 1 <= args.concurrency <= 8:
            raise ValueError("--concurrency must be between 1 and 8")
        if args.fresh and args.data_dir is not None:
            raise ValueError("--fresh starts a cluster in a temp dir: it does not take --data-dir")
        args.network, network_note = _resolve_network(args)
        if args.network == "netns" and args.workload == "txn":
            raise ValueError("--workload txn does not run with --network netns yet")
        if args.network == "netns" and (args.data_dir is not None or args.target != "local"
                                        or args.bootstrap_controller):
            raise ValueError("--network netns starts its own cluster: it takes neither --data-dir, "
                             "--bootstrap-controller nor --target compose")
        if args.subnet is not None:
            if args.network != "netns":
                raise ValueError("--subnet is the network namespaces' bridge: it needs --network netns")
            from cluster.chaos.netns import parse_subnet

            args.subnet = parse_subnet(args.subnet)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    except ValueError as e:
        print(f"brook: error: {e}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2 ** 31)
    print(f"brook chaos: seed {seed}", flush=True)
    if network_note:
        print(f"[chaos] {network_note}", file=sys.stderr, flush=True)
    try:
        report = run(args.scenario, duration_s, seed, args.target, bootstrap_controller=args.bootstrap_controller,
                     compose_file=args.compose_file, rate_per_s=args.rate,
                     data_dir=None if args.fresh else (args.data_dir or DEFAULT_DATA_DIR),
                     sweep=not args.no_sweep, network=args.network, concurrency=args.concurrency,
                     subnet=args.subnet, workload=args.workload,
                     log=lambda line: print(line, file=sys.stderr, flush=True))
    except BrookError as e:
        print(f"brook: error: {e.message.splitlines()[0]} (seed {seed})", file=sys.stderr)
        return 3
    print(report.to_json() if args.output == "json" else report.to_text())
    if args.report:
        Path(args.report).write_text(report.to_json() + "\n", encoding="utf-8")
    return report.exit_code
