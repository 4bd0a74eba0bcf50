"""Controller and metadata at scale (issue 16, item 5): create, describe and fail over with 100,000
partitions in the cluster, and a broker catching up on them. A benchmark, not a CI test.

`python -m bench.metadata_bench [--partitions 100000] [--per-topic 10000]`

A 3-controller `LocalCluster` with one real broker (node 4) in a temp dir; every process is stopped by
PID at the end. The partitions are placed on three *fake* brokers (ids 101-103: this process registers
them and heartbeats for them over the ControllerService, taking every metadata record they are sent),
so the figures are the controllers' and the metadata path's, not the cost of 300,000 partition logs on
one machine. The real broker is stopped while the topics are created and started again at the end, so
it catches up on the whole image at once. Measured:

- CreateTopics of `--per-topic` partitions (RF=3) until `--partitions` are in the cluster: time each;
- DescribeTopics of every topic (the admin path): time and reply size;
- the full image a far-behind broker is sent: its size in bytes (it must fit one gRPC message);
- controller failover: SIGKILL of the active controller → another is active → a CreateTopics succeeds;
- broker catch-up: the real broker started → its Kafka Metadata shows the last topic created;
- controllers' RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

import grpc

from bench.cluster_bench import log
from brookpb import admin_pb2 as apb
from brookpb import controller_pb2 as cpb
from brookpb import controller_pb2_grpc
from cluster.cli._output import render_table
from cluster.client import ControllerClient
from cluster.grpcutil import sync_channel

FAKE_BROKERS = (201, 202, 203)
OVERRIDES = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "1",
    "auto.leader.rebalance.enable": "false",
    # The fake brokers heartbeat from this process; a generous session keeps them unfenced while the
    # controllers are busy with a 10,000-partition command.
    "broker.session.timeout.ms": "30000",
}


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def rss_mib(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status", encoding="ascii"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class FakeBrokers:
    """Registers broker ids and heartbeats for them (following NOT_CONTROLLER hints), keeping up with metadata."""

    def __init__(self, controllers: list[str], ids: tuple[int, ...]) -> None:
        self.controllers = controllers
        self.ids = ids
        self.epochs: dict[int, int] = {}
        self.offsets: dict[int, int] = dict.fromkeys(ids, -1)
        self.full_image_bytes = 0
        self.stop = threading.Event()
        self._target = controllers[0]
        self._stubs: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, name="fake-brokers", daemon=True)

    def _stub(self) -> Any:
        if self._target not in self._stubs:
            self._stubs[self._target] = controller_pb2_grpc.ControllerServiceStub(sync_channel(self._target))
        return self._stubs[self._target]

    def _call(self, method: str, request: Any, timeout_s: float = 20.0) -> Any:
        for _attempt in range(30):
            try:
                reply = getattr(self._stub(), method)(request, timeout=timeout_s)
            except grpc.RpcError:
                self._target = self.controllers[(self.controllers.index(self._target) + 1) % len(self.controllers)]
                time.sleep(0.1)
                continue
            if reply.error_code == 0 or not reply.leader_hint:
                return reply
            self._target = reply.leader_hint
        raise RuntimeError(f"{method}: no controller answered")

    def register(self) -> None:
        for broker_id in self.ids:
            reply = self._call("RegisterBroker", cpb.RegisterBrokerRequest(
                broker_id=broker_id, incarnation_id=uuid.uuid4().hex, host="127.0.0.1", kafka_port=1,
                grpc_port=1))
            assert reply.error_code == 0, reply
            self.epochs[broker_id] = reply.broker_epoch

    def heartbeat_once(self) -> None:
        for broker_id in self.ids:
            request = cpb.BrokerHeartbeatRequest(broker_id=broker_id, broker_epoch=self.epochs[broker_id],
                                                 metadata_offset=self.offsets[broker_id])
            reply = self._call("BrokerHeartbeat", request)
            if reply.error_code == 0:
                if reply.full_image:
                    self.full_image_bytes = max(self.full_image_bytes, reply.ByteSize())
                self.offsets[broker_id] = reply.metadata_offset
            elif reply.error_code in (77, 102):  # STALE_BROKER_EPOCH, BROKER_ID_NOT_REGISTERED
                self.register()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.heartbeat_once()
            except Exception as e:  # the bench reports what it measures; a lost heartbeat is retried
                log(f"fake heartbeat failed: {type(e).__name__}: {e}")
            self.stop.wait(1.0)


ELECTIONS: list[str] = []


class _Rows(list):
    """The result rows, each also logged as it is measured (a later failure keeps the earlier ones)."""

    def append(self, row: list[str]) -> None:
        log(" | ".join(str(x) for x in row))
        super().append(row)


def create_retrying(client: ControllerClient, name: str, partitions: int) -> Any:
    """CreateTopics, retried while the quorum elects a leader (each such wait is noted in ELECTIONS)."""
    from cluster.errors import BrookError

    deadline = time.monotonic() + 120
    while True:
        try:
            return client.create_topics([apb.CreateTopicRequest(name=name, partitions=partitions,
                                                                replication_factor=3)]).results[0]
        except BrookError as e:
            if time.monotonic() > deadline:
                raise
            ELECTIONS.append(f"{name}: {e}"[:120])
            log(f"retrying {name}: {e}"[:160])
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    from confluent_kafka.admin import AdminClient

    from cluster.cli.launcher import LocalCluster

    parser = argparse.ArgumentParser(prog="python -m bench.metadata_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--partitions", type=int, default=100_000)
    parser.add_argument("--per-topic", type=int, default=10_000)
    parser.add_argument("--data-dir", help="keep the nodes' data and logs here (default: a temp dir, removed)")
    args = parser.parse_args(argv)
    rows: list[list[str]] = _Rows()
    started = time.monotonic()
    with (tempfile.TemporaryDirectory(prefix="brook-metadata-") if args.data_dir is None
          else contextlib.nullcontext(args.data_dir)) as data_dir:
        log(f"starting 3 controllers + 1 broker in {data_dir} (load {load()})")
        with LocalCluster(data_dir, controllers=3, brokers=1, overrides=OVERRIDES) as c:
            broker = c.broker_ids[0]
            c.stop_node(broker)
            fakes = FakeBrokers(c.controller_bootstrap.split(","), FAKE_BROKERS)
            fakes.register()
            fakes.heartbeat_once()
            fakes.thread.start()
            time.sleep(2.0)
            topics: list[str] = []
            times: list[float] = []
            with ControllerClient(c.controller_bootstrap, timeout_s=120.0) as client:
                total = 0
                while total < args.partitions:
                    n = min(args.per_topic, args.partitions - total)
                    name = f"big-{len(topics):03d}"
                    t0 = time.monotonic()
                    result = create_retrying(client, name, n)
                    times.append(time.monotonic() - t0)
                    if result.error_code not in (0, 36):  # 36: created by an attempt that timed out
                        raise RuntimeError(f"creating {name}: {result.error_code} {result.error_message}")
                    topics.append(name)
                    total += n
                    log(f"{total:,} partitions ({times[-1]:.2f}s, load {load()})")
                rows.append([f"CreateTopics, {args.per_topic:,} partitions each, to {total:,}",
                             f"first {times[0]:.2f}s, last {times[-1]:.2f}s, max {max(times):.2f}s",
                             f"total {sum(times):.1f}s", f"load {load()}"])
                t0 = time.monotonic()
                described = client.describe_topics([])
                elapsed = time.monotonic() - t0
                count = sum(len(t.partitions) for t in described.topics)
                rows.append(["DescribeTopics (all)", f"{elapsed:.2f}s", f"{count:,} partitions, "
                             f"{described.ByteSize() / 2**20:.1f} MiB", f"load {load()}"])
            time.sleep(2.0)
            fakes.offsets[FAKE_BROKERS[0]] = -1  # far behind: the next heartbeat is answered with a full image
            time.sleep(2.5)
            rows.append(["full image sent to a far-behind broker", f"{fakes.full_image_bytes / 2**20:.1f} MiB", "",
                         ""])
            pids = c.pids
            rows.append(["controller RSS", ", ".join(f"{rss_mib(pids[i]):.0f}" for i in c.controller_ids) + " MiB",
                         "", ""])
            with ControllerClient(c.controller_bootstrap, timeout_s=5.0) as client:
                active = client.describe_cluster().active_controller_id
                killed = time.monotonic()
                c.kill(active, 9)
                elected = created = float("nan")
                while time.monotonic() - killed < 120:
                    try:
                        if elected != elected:
                            now_active = client.describe_cluster().active_controller_id
                            if now_active >= 0 and now_active != active:
                                elected = time.monotonic() - killed
                        reply = client.create_topics([apb.CreateTopicRequest(name=f"after-{uuid.uuid4().hex[:6]}",
                                                                             partitions=1, replication_factor=3)])
                        if reply.results[0].error_code == 0:
                            created = time.monotonic() - killed
                            break
                    except Exception:
                        pass
                    time.sleep(0.05)
                rows.append(["active controller SIGKILL →", f"another active {elected:.2f}s",
                             f"CreateTopics ok {created:.2f}s", f"load {load()}"])
                restarted = time.monotonic()
                c.start_node(active)
                caught_up = float("nan")
                while time.monotonic() - restarted < 300:
                    try:
                        status = client.quorum_status()
                    except Exception:
                        time.sleep(0.5)
                        continue
                    voter = next((v for v in status.voters if v.node_id == active), None)
                    if voter is not None and voter.connected and voter.lag == 0:
                        caught_up = time.monotonic() - restarted
                        break
                    time.sleep(0.2)
                rows.append(["killed controller restarted → lag 0", f"{caught_up:.2f}s", "", f"load {load()}"])
            log("starting the real broker")
            t0 = time.monotonic()
            c.start_node(broker)
            if os.environ.get("BROOK_BENCH_PROFILE"):  # py-spy record of the catching-up broker
                import subprocess

                subprocess.Popen(["py-spy", "record", "-d", "60", "-f", "raw", "-o", os.environ["BROOK_BENCH_PROFILE"],
                                  "-p", str(c.pids[broker])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            last = topics[-1]
            kafka = AdminClient({"bootstrap.servers": str(c.node(broker).kafka_address), "log_level": 0})
            seen = float("nan")
            while time.monotonic() - t0 < 300:
                try:
                    md = kafka.list_topics(last, timeout=5).topics.get(last)
                    if md is not None and md.error is None and len(md.partitions) == args.per_topic:
                        seen = time.monotonic() - t0
                        break
                except Exception:
                    pass
                time.sleep(0.2)
            rows.append(["broker start → Metadata shows the whole image", f"{seen:.2f}s",
                         f"broker RSS {rss_mib(c.pids[broker]):.0f} MiB", f"load {load()}"])
            fakes.stop.set()
            fakes.thread.join(timeout=30)
    rows.append(["CreateTopics retried for want of a leader", f"{len(ELECTIONS)} times", "", ""])
    print(render_table(["MEASURE", "RESULT", "", "LOAD"], rows))
    print(f"\ntotal {time.monotonic() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
