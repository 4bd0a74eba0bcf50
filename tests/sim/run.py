"""Run the deterministic simulator: `python -m tests.sim.run --seed N` or `--seeds N`.

`make sim SEED=n` replays one seed with its full trace; `make sim SEEDS=N` runs seeds 1..N (on all
cores) and prints `N seeds, V violations` as its last line.

`--mutant NAME` runs with one deliberately broken build of tests/mutants/brook_mutants.py patched in
(the same patch function the chaos servers use). `--detect` runs seeds in order until the first
violation (at most --seeds) and prints "detected after K seeds"; `--mutant all --detect` (`make
sim-mutants`) does that for every mutant and the normal build and prints the table.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tests.sim import mutants
from tests.sim.checker import Checker
from tests.sim.cluster import Faults, SimCluster

SIMULATOR_ERROR = "simulator error: "


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
        return Outcome(seed, (f"{SIMULATOR_ERROR}{type(e).__name__}: {e}",), "", 0, 0, 0, ())


def run_many(seeds: range, workers: int, mutant: str | None = None) -> list[Outcome]:
    return list(iter_many(seeds, workers, mutant))


_WORKER_MUTANT: list[object] = []


def _worker_init(mutant: str | None) -> None:
    """A worker is a fresh interpreter (spawned): patch `mutant` in for its whole life (the context is
    kept referenced, so it is never collected and undone)."""
    if mutant:
        patched = mutants.applied(mutant)
        patched.__enter__()
        _WORKER_MUTANT.append(patched)


def iter_many(seeds: range, workers: int, mutant: str | None = None, chunksize: int = 16) -> Iterator[Outcome]:
    """Outcomes in seed order, with `mutant` applied (here and in every worker process).
    Stopping the iteration early stops the workers. Workers are spawned, not forked: a fork of a
    process that already used grpc (a pytest run) inherits grpc objects whose collection in the child
    crashed it (CI: "Fatal Python error: Segmentation fault ... Garbage-collecting" in grpc/aio)."""
    with mutants.applied(mutant):
        if workers <= 1:
            for s in seeds:
                yield run_seed(s)
            return
        import multiprocessing
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init,
                                                       initargs=(mutant,)) as pool:
            yield from pool.imap(_run_quiet, seeds, chunksize=chunksize)


@dataclass(frozen=True)
class Detection:
    mutant: str
    seeds_run: int            # seeds run until the first violation, or the whole budget
    seed: int | None          # the first seed with a violation
    violation: str
    seconds: float
    errors: int               # seeds on which the simulator itself failed (not counted as detection)


def detect(mutant: str | None, budget: int, first: int = 1, workers: int = 1) -> Detection:
    """Run seeds first, first+1, ... with `mutant` until one reports a violation, at most `budget`."""
    started = time.monotonic()
    run, errors = 0, 0
    for outcome in iter_many(range(first, first + budget), workers, mutant, chunksize=4):
        run += 1
        real = [v for v in outcome.violations if not v.startswith(SIMULATOR_ERROR)]
        errors += len(real) < len(outcome.violations)
        if real:
            return Detection(mutant or "", run, outcome.seed, real[0], time.monotonic() - started, errors)
    return Detection(mutant or "", run, None, "", time.monotonic() - started, errors)


def render_detections(rows: list[Detection], budget: int) -> str:
    lines = [f"simulator mutant table: seeds 1.., budget {budget} seeds (the CI budget), standard fault mix",
             f"{'mutant':32} {'detected':9} {'after seeds':>11} {'seed':>6} {'s':>6}  first violation"]
    for d in rows:
        name = d.mutant or "(normal build)"
        if d.mutant:
            verdict = "yes" if d.seed is not None else "NO"
        else:
            verdict = "ANOMALY" if d.seed is not None else "CLEAN"
        after = d.seeds_run if d.seed is not None else f">{d.seeds_run}"
        lines.append(f"{name:32} {verdict:9} {after!s:>11} {d.seed if d.seed is not None else '-'!s:>6} "
                     f"{d.seconds:6.1f}  {d.violation[:110]}" + (f"  ({d.errors} simulator errors)" if d.errors else ""))
    return "\n".join(lines)


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
    parser.add_argument("--mutant", help="apply this mutant of tests/mutants/brook_mutants.py ('all' with --detect)")
    parser.add_argument("--detect", action="store_true",
                        help="stop at the first violation and print how many seeds it took (--seeds is the budget)")
    parser.add_argument("--json", help="with --detect: also write the rows here")
    args = parser.parse_args(argv)
    if args.detect:
        names: list[str | None] = [*mutants.mutants(), None] if args.mutant == "all" else [args.mutant]
        rows = []
        for name in names:
            rows.append(detect(name, args.seeds, args.first, args.workers))
            print(render_detections(rows[-1:], args.seeds).splitlines()[-1], flush=True)
        print()
        print(render_detections(rows, args.seeds))
        if args.json:
            import json
            from dataclasses import asdict
            with open(args.json, "w") as f:
                json.dump([asdict(r) for r in rows], f, indent=2)
        ok = all((r.seed is not None) == bool(r.mutant) for r in rows)
        return 0 if ok else 1
    if args.seed is not None:
        with mutants.applied(args.mutant):
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
    for outcome in iter_many(seeds, args.workers, args.mutant):
        steps += outcome.steps
        if outcome.violations:
            failed += 1
            if failed <= 3:
                report_failure(outcome)
            else:
                print(f"seed {outcome.seed}: {outcome.violations[0]}")
    elapsed = time.monotonic() - started
    print(f"{elapsed:.1f} s, {len(seeds) / elapsed:.1f} seeds/s, {steps / len(seeds):.0f} steps/seed, "
          f"{args.workers} workers" + (f", mutant {args.mutant}" if args.mutant else ""))
    print(f"{len(seeds)} seeds, {failed} violations")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
