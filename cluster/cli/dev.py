"""`brook dev`: run a local cluster in the foreground until Ctrl-C or SIGTERM (`make run`)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

EXIT_OK, EXIT_ERROR = 0, 1
DEFAULT_DATA_DIR = ".data/dev"


def add_parser(commands: Any, positive: Any) -> None:
    p = commands.add_parser(
        "dev", help="run a local cluster (N controllers + M brokers) until Ctrl-C",
        description="Start controllers and brokers as local processes on 127.0.0.1 with all data under "
                    "--data-dir, wait until healthy, print how to connect, and stop every process on "
                    "Ctrl-C or SIGTERM. Restarting on the same --data-dir reuses its ports, secret and data.")
    p.set_defaults(handler=dev)
    p.add_argument("--controllers", type=positive, default=3, help="controllers (or combined nodes); default 3")
    p.add_argument("--brokers", type=positive, default=3, help="brokers; default 3 (ignored with --combined)")
    p.add_argument("--combined", action="store_true", help="--controllers nodes with process.roles=broker,controller")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help=f"default: {DEFAULT_DATA_DIR}")
    p.add_argument("--base-port", type=positive, help="use consecutive ports from here (default: free ports)")
    p.add_argument("--insecure", action="store_true",
                   help="no controller.quorum.secret (controller.quorum.insecure.dev=true); loopback only")
    p.add_argument("--secure", action="store_true",
                   help="SASL_SSL + SCRAM and ACLs on the Kafka listener, mutual TLS on gRPC (PKI under <data-dir>/tls)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="a property for every node (repeatable)")
    p.add_argument("--wait-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for the cluster to become healthy (default 60)")


def connect_text(cluster: Any, active: Any) -> str:
    """What `brook dev` prints once the cluster is healthy."""
    kafka = cluster.kafka_bootstrap
    controllers = cluster.controller_bootstrap
    active_text = f"{active.active_controller_id} ({active.active_controller})"
    nodes = []
    for spec in cluster.iter_nodes():
        addresses = [f"{name} {addr}" for name, addr in (
            ("controller", spec.controller_address), ("raft", spec.raft_address),
            ("kafka", spec.kafka_address), ("grpc", spec.grpc_address),
            ("metrics", f"{spec.metrics_url}/metrics" if spec.metrics_url else None)) if addr]
        nodes.append(f"  node {spec.node_id:<4} {','.join(spec.roles):<18} pid {cluster.pids.get(spec.node_id, '-'):<8} "
                     f"{'  '.join(addresses)}")
    return "\n".join([
        f"Brook is running: {len(cluster.controller_ids)} controllers, {len(cluster.broker_ids)} brokers"
        + (" (combined)" if cluster.combined else "") + f", data in {cluster.data_dir}",
        *nodes,
        "",
        f"Kafka bootstrap servers:  {kafka}",
        f"Controller bootstrap:     {controllers}",
        f"Active controller:        {active_text}",
        f"Status page:              {status_page_url(cluster)}",
        "",
        "Use the CLI from another shell:",
        f"  export BROOK_BOOTSTRAP_CONTROLLER={controllers}",
        "  brook cluster describe",
        "  brook topics create demo --partitions 3 --replication-factor " + str(min(3, len(cluster.broker_ids))),
        "  seq 5 | brook produce demo && brook consume demo --print-offset",
        "Or any Kafka client:",
        f"  kcat -b {kafka} -L",
        f"  python -c \"from confluent_kafka import Producer; p = Producer({{'bootstrap.servers': '{kafka}'}}); "
        "p.produce('demo', b'hello'); p.flush()\"",
        "",
        "Logs: <data-dir>/node-<id>/server.log. Press Ctrl-C to stop every node.",
    ])


def status_page_url(cluster: Any) -> str:
    """The first node's /ui, told to poll every node (so it shows nodes that are down too)."""
    urls = [spec.metrics_url for spec in cluster.iter_nodes() if spec.metrics_url]
    if not urls:
        return "(no metrics.port)"
    hosts = ",".join(u.removeprefix("http://") for u in urls)
    return f"{urls[0]}/ui?nodes={hosts}"


class _Stop(Exception):
    pass


def dev(ctx: Any) -> int:
    from cluster.cli.launcher import LocalCluster

    args = ctx.args
    if args.wait_timeout <= 0:
        raise argparse.ArgumentTypeError("--wait-timeout must be positive")
    cluster = LocalCluster(args.data_dir, args.controllers, args.brokers, combined=args.combined,
                           base_port=args.base_port, insecure=args.insecure, overrides=args.override)

    def on_term(signum: int, frame: Any) -> None:
        raise _Stop()

    secure = None
    if args.secure:
        from cluster.cli.secure_dev import prepare_secure

        secure = prepare_secure(cluster)
    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        cluster.prepare()
        print(f"Starting {len(cluster.nodes)} nodes under {cluster.data_dir} ...", flush=True)
        cluster.start(wait=False)
        active = cluster.wait_healthy(args.wait_timeout)
        print(connect_text(cluster, active), flush=True)
        if secure is not None:
            from cluster.cli.secure_dev import create_admin_user
            from cluster.client import ControllerClient

            with ControllerClient(cluster.controller_bootstrap.split(","), timeout_s=10) as controller:
                create_admin_user(secure, controller)
            print("\n".join(["", *secure.client_text(cluster.kafka_bootstrap)]), flush=True)
        _supervise(cluster)
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        # A second Ctrl-C or SIGTERM must not cut the stop short: it ends with SIGKILL within ~20 s anyway.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop(cluster)
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    return EXIT_OK


def _supervise(cluster: Any) -> None:
    """Wait for Ctrl-C; report (once) any node that exits on its own. Nodes are not restarted."""
    reported: set[int] = set()
    while True:
        time.sleep(0.5)
        for node_id in sorted(cluster.nodes):
            code = cluster.exit_code(node_id)
            if code is not None and node_id not in reported:
                reported.add(node_id)
                print(f"brook dev: node {node_id} exited with code {code}; see {cluster.node(node_id).log_path}",
                      file=sys.stderr, flush=True)


def _stop(cluster: Any) -> None:
    running = cluster.pids
    if not running:
        return
    print(f"\nStopping {len(running)} nodes (pids {' '.join(str(p) for p in running.values())}) ...",
          file=sys.stderr, flush=True)
    codes = cluster.stop()
    killed = [str(i) for i, code in codes.items() if code == -signal.SIGKILL and i in running]
    note = f"; killed after the grace period: {', '.join(killed)}" if killed else ""
    print(f"Stopped{note}.", file=sys.stderr, flush=True)
