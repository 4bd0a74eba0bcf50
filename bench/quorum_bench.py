"""Controller quorum benchmark: metadata commit latency of a 3-voter pysyncobj quorum.

Run from the repository root: `python -m bench.quorum_bench [--commits N]`. Three `Quorum`s run in
this process on loopback (each on its own pysyncobj thread, journals in a temporary directory); the
benchmark waits for a leader, then submits N empty metadata commands one after another through the
leader (each waits for commit and apply) and prints p50 / p99 / max latency and commits per second.
Used to measure what making journal entries and term/vote durable before acknowledging them
(controller/durable_journal.py) costs.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time

from controller.quorum import Quorum, QuorumSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(commits: int, journal_sync: bool = True) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    voters = [(node_id, f"127.0.0.1:{_free_port()}") for node_id in (1, 2, 3)]
    with tempfile.TemporaryDirectory(prefix="brook-quorum-bench-") as root:
        quorums = [Quorum(QuorumSettings(node_id, voters, "bench-secret", f"{root}/c{node_id}",
                                         journal_sync=journal_sync), loop)
                   for node_id, _ in voters]
        try:
            deadline = time.monotonic() + 30
            leader = None
            while leader is None and time.monotonic() < deadline:
                leader = next((q for q in quorums if q.is_leader()), None)
                await asyncio.sleep(0.05)
            if leader is None:
                raise SystemExit("no quorum leader within 30 s")
            for _ in range(20):  # warm up connections
                await leader.submit([], leader.state.image.offset)
            latencies_ms = []
            started = time.perf_counter()
            for _ in range(commits):
                t0 = time.perf_counter()
                result = await leader.submit([], leader.state.image.offset)
                latencies_ms.append((time.perf_counter() - t0) * 1000)
                assert result.status == "ok", result
            elapsed = time.perf_counter() - started
            syncs = sum(getattr(getattr(q, "journal", None), "syncs", 0) for q in quorums)
        finally:
            for q in quorums:
                q.close()
    latencies_ms.sort()
    return {
        "p50_ms": statistics.median(latencies_ms),
        "p99_ms": latencies_ms[int(len(latencies_ms) * 0.99) - 1],
        "max_ms": latencies_ms[-1],
        "commits_per_s": commits / elapsed,
        "journal_syncs": syncs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quorum_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--compare", type=int, default=0, metavar="ROUNDS",
                        help="alternate runs without and with journal sync, ROUNDS of each")
    args = parser.parse_args(argv)
    modes = [False, True] * args.compare if args.compare else [True]
    for journal_sync in modes:
        result = asyncio.run(run(args.commits, journal_sync))
        print(f"journal sync {'on ' if journal_sync else 'off'}: {args.commits} commits: "
              f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, max {result['max_ms']:.2f} ms, "
              f"{result['commits_per_s']:.0f} commits/s, {result['journal_syncs']:.0f} journal syncs (all voters)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
