"""Run the deterministic simulator: `python -m tests.sim.run --seed N` or `--seeds N`.

`make sim SEED=n` replays one seed with its full trace; `make sim SEEDS=N` runs seeds 1..N (on all
cores) and prints `N seeds, V violations` as its last line.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from dataclasses import dataclass

from tests.sim.checker import Checker
from tests.sim.cluster import Faults, SimCluster


@dataclass(frozen=True)
class Outcome:
    seed: int
    violations: tuple[str, ...]
    trace_hash: str
    steps: int
    acked: int
    task_errors: int
    trace: tuple[str, ...] = ()


def run_seed(seed: int, verbose: bool = False, keep_trace: bool = False, faults: Faults | None = None) -> Outcome:
    cluster = SimCluster(seed, faults, verbose=verbose)
    checker = Checker(cluster)
    cluster.run(checker)
    digest = hashlib.sha256()
    for line in cluster.sim.trace:
        digest.update(line.encode())
        digest.update(b"\n")
    for b in cluster.brokers.values():
        for key, log in sorted(b.logs.logs.items()):
            digest.update(repr((b.broker_id, key, log.log_end_offset, log.high_watermark)).encode())
            for _, batch in log._batches:  # noqa: SLF001
                digest.update(batch)
    failed = bool(cluster.violations)
    return Outcome(seed, tuple(cluster.violations), digest.hexdigest(), cluster.sim.steps,
                   len(cluster.state.acked), len(cluster.sim.task_errors),
                   tuple(cluster.sim.trace) if (keep_trace or failed) else ())


def _run_quiet(seed: int) -> Outcome:
    try:
        return run_seed(seed)
    except Exception as e:  # noqa: BLE001 - a simulator failure is reported with its seed, not lost
        return Outcome(seed, (f"simulator error: {type(e).__name__}: {e}",), "", 0, 0, 0, ())


def run_many(seeds: range, workers: int) -> list[Outcome]:
    if workers <= 1:
        return [run_seed(s) for s in seeds]
    import multiprocessing
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return list(pool.imap(_run_quiet, seeds, chunksize=16))


def report_failure(outcome: Outcome, out=sys.stdout) -> None:
    print(f"seed {outcome.seed}: {len(outcome.violations)} violation(s)", file=out)
    for v in outcome.violations:
        print(f"  {v}", file=out)
    print(f"  trace of seed {outcome.seed} (last 60 lines; `make sim SEED={outcome.seed}` for all):", file=out)
    for line in outcome.trace[-60:]:
        print(f"    {line}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim.run")
    parser.add_argument("--seed", type=int, help="replay one seed with its full trace")
    parser.add_argument("--seeds", type=int, default=100, help="run seeds first..first+N-1")
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if args.seed is not None:
        outcome = run_seed(args.seed, verbose=True)
        print(f"seed {args.seed}: {outcome.steps} steps, {outcome.acked} acknowledged writes, "
              f"trace {outcome.trace_hash[:16]}")
        for v in outcome.violations:
            print(f"VIOLATION {v}")
        print(f"1 seeds, {1 if outcome.violations else 0} violations")
        return 1 if outcome.violations else 0
    started = time.monotonic()
    seeds = range(args.first, args.first + args.seeds)
    failed = 0
    steps = 0
    for outcome in run_many(seeds, args.workers):
        steps += outcome.steps
        if outcome.violations:
            failed += 1
            if failed <= 3:
                report_failure(outcome)
            else:
                print(f"seed {outcome.seed}: {outcome.violations[0]}")
    elapsed = time.monotonic() - started
    print(f"{elapsed:.1f} s, {len(seeds) / elapsed:.1f} seeds/s, {steps / len(seeds):.0f} steps/seed, "
          f"{args.workers} workers")
    print(f"{len(seeds)} seeds, {failed} violations")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
