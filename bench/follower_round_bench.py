"""In-process micro-benchmark of the replica-fetch rounds beside many idle partitions (issue 16).

One process, one event loop, no sockets: three real ReplicaManagers over MemoryLog (the unit
harness, tests/unit/broker/broker_harness.py), the real FetcherManager/FetcherLoop of brokers 2 and 3
reaching broker 1's real BrokerServicer through protobuf bytes with the long poll kept. Broker 1
leads a hot partition `t-0` and N idle partitions (RF=3). acks=all produces of one batch to `t-0`,
one at a time: each needs a data round on both followers and the round after it that carries their
new position, so its latency is the cost of those rounds with N idle partitions in each follower's
session. Prints p50/p99 per N; `--profile FILE` writes a cProfile of the largest N.

    python -m bench.follower_round_bench [--partitions 0 --partitions 3000 --partitions 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "unit", "broker"))

from broker_harness import Cluster, InProcessStub, batch  # noqa: E402

import broker.fetcher  # noqa: E402
from broker.clock import system_monotonic_ms  # noqa: E402
from brookpb import broker_pb2 as bpb  # noqa: E402
from cluster.records import PartitionRecord, TopicRecord  # noqa: E402

IDLE, IDLE_ID = "idle", b"idle".ljust(16, b"\0")


class LongPollStub(InProcessStub):
    async def ReplicaFetch(self, request: Any, timeout: float | None = None) -> Any:
        wire = bpb.ReplicaFetchRequest.FromString(request.SerializeToString())
        reply = await self.cluster.nodes[self.leader_id].servicer.ReplicaFetch(wire, None)
        return bpb.ReplicaFetchResponse.FromString(reply.SerializeToString())


async def measure(n: int, count: int, profile: cProfile.Profile | None) -> tuple[float, float]:
    c = Cluster()
    for node in c.nodes.values():
        node.manager.monotonic_ms = system_monotonic_ms  # real time: the leader's poll really parks
    c.create(replicas=(1, 2, 3), leader=1)
    records: list[Any] = [TopicRecord(IDLE, IDLE_ID)]
    records += [PartitionRecord(IDLE_ID, i, (1, 2, 3), (1, 2, 3), 1) for i in range(n)]
    c.commit(records)

    class Loop(broker.fetcher.FetcherLoop):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.stub = LongPollStub(c, self.leader_id)

    original = broker.fetcher.FetcherLoop
    broker.fetcher.FetcherLoop = Loop  # type: ignore[misc]
    managers = []
    try:
        for b in (2, 3):
            fm = broker.fetcher.FetcherManager(c.nodes[b].manager, b, lambda b=b: c.image.brokers[b].broker_epoch)
            c.nodes[b].manager.fetcher_changed = fm.reconcile
            managers.append(fm)
        c.sync()
        for _ in range(3):  # settle: truncation, the first full rounds
            result = await c.nodes[1].manager.produce("t", 0, batch(1), -1, 60_000)
            assert result.error == 0, result
        await asyncio.sleep(0.5)
        latencies = []
        if profile is not None:
            profile.enable()
        for _ in range(count):
            t0 = time.perf_counter()
            result = await c.nodes[1].manager.produce("t", 0, batch(1), -1, 60_000)
            latencies.append((time.perf_counter() - t0) * 1000)
            assert result.error == 0, result
        if profile is not None:
            profile.disable()
    finally:
        broker.fetcher.FetcherLoop = original  # type: ignore[misc]
        for fm in managers:
            await fm.stop()
    latencies.sort()
    return latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.follower_round_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--partitions", type=int, action="append", default=[])
    parser.add_argument("--count", type=int, default=200, help="acks=all produces per row")
    parser.add_argument("--profile", help="write a cProfile of the largest row here")
    args = parser.parse_args(argv)
    counts = args.partitions or [0, 3000, 10000]
    for n in counts:
        profile = cProfile.Profile() if args.profile and n == max(counts) else None
        p50, p99 = asyncio.run(measure(n, args.count, profile))
        print(f"{n:>6} idle partitions: acks=all p50 {p50:.2f} ms, p99 {p99:.2f} ms "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
        if profile is not None:
            profile.dump_stats(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
