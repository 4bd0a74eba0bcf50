"""`make bench-profile`: py-spy profiles of the brokers under one acks=all workload, as flame graphs.

Starts the `make bench` cluster (3 controllers + 3 brokers, RF=3, min.insync.replicas=2), creates a
one-partition topic, and while a librdkafka producer runs the workload, samples the partition's
leader and one follower with py-spy (`--native`: gRPC's and RocksDB's C/C++ frames are shown, not
folded into the Python frame that called them). For each process it writes the collapsed stacks
(`<name>.txt`) and a flame graph (`<name>.svg`) of the busy samples (a sample whose leaf is the
event loop's or gRPC's poller's epoll wait is idle and left out) and prints the top frames:
self time, and the Brook function nearest the leaf (what "our code" costs, C callees included).

Workloads: `paced` (500 single-record acks=all produces per second, linger.ms=0), `full` (100 B
records as fast as acks=all allows, the `make bench` producer settings) and `full-1k` (the same with
1 KiB records).
"""

from __future__ import annotations

import argparse
import collections
import html
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

from bench import workload as w
from bench.cluster_bench import OVERRIDES, log

IDLE_LEAVES = ("epoll_wait", "epoll_pwait", "select_epoll_poll", "EpollSelector.select", "futex", "pthread_cond")
OWN_PACKAGES = ("broker/", "storage/", "cluster/", "controller/")


def parse(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames:
            stacks.append((frames.split(";"), int(count)))
    return stacks


def is_idle(frames: list[str]) -> bool:
    return any(leaf in frames[-1] for leaf in IDLE_LEAVES)


def short(frame: str) -> str:
    """'func (path/to/file.py:12)' -> 'func (file.py)', keeping the package for Brook's files."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1].split("/", 1)[0]
    elif path.startswith("/"):
        path = path.rsplit("/", 1)[-1]
    return f"{name} ({path})" if path else name


def own_frame(frames: list[str]) -> str | None:
    for frame in reversed(frames):
        where = frame.partition(" (")[2]
        if "site-packages" not in where and any(where.startswith(p) or f"/{p}" in where for p in OWN_PACKAGES):
            return short(frame)
    return None


def summary(stacks: list[tuple[list[str], int]], top: int) -> str:
    total = sum(n for _, n in stacks)
    busy = [(f, n) for f, n in stacks if not is_idle(f)]
    busy_total = sum(n for _, n in busy) or 1
    leaf: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for frames, n in busy:
        leaf[short(frames[-1])] += n
        own[own_frame(frames) or "(no Brook frame: event loop, gRPC and asyncio internals)"] += n
    lines = [f"{total} samples, {busy_total} busy ({busy_total / max(total, 1):.0%}; idle = epoll waits)",
             "  self (leaf frame), % of busy:"]
    lines += [f"    {n / busy_total:6.1%}  {name}" for name, n in leaf.most_common(top)]
    lines += ["  nearest Brook frame (its C callees included), % of busy:"]
    lines += [f"    {n / busy_total:6.1%}  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def flame_svg(stacks: list[tuple[list[str], int]], title: str, width: int = 1200, row: int = 16) -> str:
    """A minimal flame graph (root at the bottom) of the busy samples; hover a box for its share."""
    root: dict = {"n": 0, "kids": {}}
    for frames, n in stacks:
        if is_idle(frames):
            continue
        node = root
        node["n"] += n
        for frame in frames:
            node = node["kids"].setdefault(short(frame), {"n": 0, "kids": {}})
            node["n"] += n
    total = root["n"] or 1
    depth_max = [0]
    boxes: list[tuple[float, int, float, str, int]] = []

    def walk(node: dict, x: float, depth: int) -> None:
        for name, kid in sorted(node["kids"].items()):
            w_px = kid["n"] / total * width
            if w_px >= 0.5:
                boxes.append((x, depth, w_px, name, kid["n"]))
                depth_max[0] = max(depth_max[0], depth)
                walk(kid, x, depth + 1)
            x += w_px

    walk(root, 0.0, 0)
    height = (depth_max[0] + 3) * row
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" '
           f'font-size="11">', f'<text x="4" y="13">{html.escape(title)} ({total} busy samples)</text>']
    for x, depth, w_px, name, n in boxes:
        y = height - (depth + 1) * row
        hue = 20 + zlib.crc32(name.encode()) % 40
        label = html.escape(name[: int(w_px / 7)]) if w_px > 21 else ""
        out.append(f'<g><title>{html.escape(name)}: {n} samples, {n / total:.1%}</title>'
                   f'<rect x="{x:.1f}" y="{y}" width="{w_px:.1f}" height="{row - 1}" fill="hsl({hue},90%,60%)"/>'
                   f'<text x="{x + 2:.1f}" y="{y + row - 4}">{label}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


def record(pid: int, seconds: float, out: Path, rate: int) -> subprocess.Popen:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate),
                             "--format", "raw", "--native", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main(argv: list[str] | None = None) -> int:
    from cluster.cli.launcher import LocalCluster

    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=("paced", "full", "full-1k"), default="paced")
    parser.add_argument("--seconds", type=float, default=15.0, help="sampling time")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--out", default="profiles", help="directory for the .txt and .svg files")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="brook-profile-") as data_dir:
        log(f"starting 3 controllers + 3 brokers in {data_dir}")
        with LocalCluster(data_dir, controllers=3, brokers=3, overrides=OVERRIDES) as c:
            bootstrap, topic = c.kafka_bootstrap, "profile"
            w.create_topic(bootstrap, topic, 1)
            leader = w.leader_of(bootstrap, topic, 0)
            follower = next(i for i in c.broker_ids if i != leader)
            targets = {f"{args.workload}-leader": c.pids[leader], f"{args.workload}-follower": c.pids[follower]}
            stop = threading.Event()
            run_s = args.seconds + 6

            def drive() -> None:
                if args.workload == "paced":
                    w.paced(bootstrap, topic, 500, run_s,
                            producer=w.warm_producer(bootstrap, topic, {"linger.ms": 0}))
                else:
                    w.produce(bootstrap, topic, 1024 if args.workload == "full-1k" else 100, run_s, 10_000_000)
                stop.set()

            driver = threading.Thread(target=drive, daemon=True)
            driver.start()
            time.sleep(3)
            log(f"sampling leader {leader} and follower {follower} for {args.seconds:g}s ({args.workload})")
            spies = {name: record(pid, args.seconds, out / f"{name}.txt", args.rate) for name, pid in targets.items()}
            for name, spy in spies.items():
                _, err = spy.communicate(timeout=args.seconds + 60)
                if spy.returncode != 0:
                    print(f"py-spy failed for {name}: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
                    return 1
            driver.join(timeout=run_s + 60)
    for name in targets:
        stacks = parse(out / f"{name}.txt")
        (out / f"{name}.svg").write_text(flame_svg(stacks, f"{name}: busy samples"))
        print(f"\n== {name} ({out / name}.svg)\n{summary(stacks, args.top)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
