"""Throughput with TLS + SCRAM + ACLs against plaintext, on the same machine (issue 11).

Run from the repository root: `python -m bench.security_bench` (also part of `make bench`). Two
single-node clusters (one combined controller+broker, RF=1) run one after the other:

  plaintext  a PLAINTEXT listener, no authorizer;
  secure     a SASL_SSL listener (TLS 1.2+, SCRAM-SHA-512), the StandardAuthorizer with a prefixed ACL
             for the benchmark user, and mutual TLS on gRPC.

In each, confluent-kafka (librdkafka) produces 100 B and 1 KiB records with acks=1 for a fixed time and
a Consumer reads them back; the report gives records/s and MB/s per cell and secure/plaintext ratios.
Each cell is capped by time and record count; every process is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from brookpb import admin_pb2 as apb
from cluster.cli._output import render_table
from cluster.cli.launcher import LocalCluster
from cluster.client import ControllerClient
from cluster.grpcutil import GrpcTls, configure_tls
from cluster.security.acl import AclOperation, AclPermission, PatternType, ResourceType
from cluster.security.certs import create_ca, issue

SIZES = (100, 1024)
CELL_SECONDS = 6.0
RECORDS_MAX = {100: 1_500_000, 1024: 300_000}
BASE = {"offsets.topic.replication.factor": "1", "default.replication.factor": "1", "min.insync.replicas": "1"}


def log(message: str) -> None:
    print(f"[security-bench] {message}", file=sys.stderr, flush=True)


def _admin(cluster: LocalCluster) -> ControllerClient:
    return ControllerClient(cluster.controller_bootstrap.split(","), timeout_s=10)


def _create(cluster: LocalCluster, topic: str) -> None:
    with _admin(cluster) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                client.create_topics([apb.CreateTopicRequest(name=topic, partitions=1, replication_factor=1)])
                parts = client.describe_topics([topic]).topics[0].partitions
                if parts and parts[0].leader >= 0:
                    return
            except Exception:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"topic {topic} has no leader")


def produce_consume(conf: dict[str, Any], topic: str, size: int, cell_s: float) -> tuple[float, float]:
    """(produce records/s, consume records/s) for `size`-byte values."""
    from confluent_kafka import Consumer, Producer

    p = Producer({**conf, "acks": "1", "linger.ms": 5, "queue.buffering.max.kbytes": 4096})
    value = b"x" * size
    sent = 0
    start = time.monotonic()
    while time.monotonic() - start < cell_s and sent < RECORDS_MAX[size]:
        try:
            p.produce(topic, value=value, partition=0)
            sent += 1
        except BufferError:
            p.poll(0.005)
        if sent % 1000 == 0:
            p.poll(0)
    if p.flush(60) != 0:
        raise RuntimeError("produce did not finish")
    produce_rate = sent / (time.monotonic() - start)
    c = Consumer({**conf, "group.id": f"bench-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "fetch.queue.backoff.ms": 10})
    from confluent_kafka import TopicPartition

    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    start = time.monotonic()
    while got < sent and time.monotonic() - start < cell_s * 3:
        for m in c.consume(10_000, 0.5):
            if not m.error():
                got += 1
    consume_rate = got / (time.monotonic() - start)
    c.close()
    return produce_rate, consume_rate


def run_mode(name: str, root: Path, cell_s: float) -> dict[int, tuple[float, float]]:
    overrides = dict(BASE)
    node_overrides: dict[int, dict[str, str]] = {}
    listener = "PLAINTEXT"
    conf: dict[str, Any] = {}
    if name == "secure":
        pki = root / "pki"
        ca = create_ca(pki)
        hosts = ["localhost", "127.0.0.1"]
        node, admin = issue(ca, pki, "broker-1", hosts=hosts), issue(ca, pki, "admin", hosts=hosts)
        overrides.update({"ssl.truststore.location": str(ca.cert_path), "sasl.enabled.mechanisms": "SCRAM-SHA-512",
                          "authorizer.class.name": "StandardAuthorizer", "super.users": "User:CN=admin",
                          "grpc.ssl.enabled": "true"})
        node_overrides[1] = {"ssl.keystore.location": str(node.key_path),
                             "ssl.keystore.certificate.location": str(node.cert_path)}
        listener = "SASL_SSL"
        configure_tls(GrpcTls.from_files(str(ca.cert_path), str(admin.cert_path), str(admin.key_path)))
        conf = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "bench",
                "sasl.password": "bench-secret", "ssl.ca.location": str(ca.cert_path)}
    cluster = LocalCluster(root / name, 1, 0, combined=True, overrides=overrides, node_overrides=node_overrides,
                           kafka_listener=listener)
    results: dict[int, tuple[float, float]] = {}
    try:
        cluster.start(timeout_s=90)
        conf["bootstrap.servers"] = cluster.kafka_bootstrap
        if name == "secure":
            with _admin(cluster) as client:
                client.upsert_scram_user("bench", "bench-secret", ("SCRAM-SHA-512",))
                client.create_acls([apb.AclEntry(
                    resource_type=int(ResourceType.TOPIC), resource_name="bench-", pattern_type=int(PatternType.PREFIXED),
                    principal="User:bench", host="*", operation=int(AclOperation.ALL),
                    permission=int(AclPermission.ALLOW))])
            time.sleep(1.0)  # the broker applies the user and the ACL
        for size in SIZES:
            topic = f"bench-{name}-{size}"
            _create(cluster, topic)
            results[size] = produce_consume(conf, topic, size, cell_s)
            log(f"{name} {size} B: produce {results[size][0]:,.0f} rec/s, consume {results[size][1]:,.0f} rec/s")
    finally:
        cluster.stop()
        configure_tls(None)
    return results


def report(plain: dict[int, tuple[float, float]], secure: dict[int, tuple[float, float]]) -> str:
    rows = []
    for size in SIZES:
        for i, what in enumerate(("produce", "consume")):
            p, s = plain[size][i], secure[size][i]
            rows.append([f"{what} {size} B", f"{p:,.0f}", f"{p * size / 1e6:.1f}", f"{s:,.0f}", f"{s * size / 1e6:.1f}",
                         f"{s / p:.2f}" if p else "-"])
    return render_table(["cell (librdkafka, acks=1, RF=1)", "plaintext rec/s", "MB/s", "TLS+SCRAM+ACL rec/s", "MB/s",
                         "ratio"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell-seconds", type=float, default=CELL_SECONDS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="brook-security-bench-") as tmp:
        plain = run_mode("plaintext", Path(tmp), args.cell_seconds)
        secure = run_mode("secure", Path(tmp), args.cell_seconds)
    print(report(plain, secure))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
