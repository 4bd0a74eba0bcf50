"""`make chaos-mutants`: run `brook chaos` against each mutant (and the normal build), print a table.

    python tests/mutants/table.py [--duration 300s] [--seed 35] [--budget 600] [--only NAME,...]
                                  [--network auto|none|netns] [--json PATH] [--sim-seeds 2000]

Each run is `brook chaos run --fresh --scenario random --duration D --seed S` (its own cluster, the
default settings, so `--network auto`: in network namespaces where they work, as root on Linux)
with PYTHONPATH pointing at this directory and BROOK_MUTANT naming the mutant, so
every server process of that cluster runs the broken build (see brook_mutants.py); the normal build
is the same command without them. A run is interrupted after --budget seconds (SIGINT: the tester
stops the cluster it started). The table: mutant, detected?, anomaly total, the first
anomaly's kind, seconds of faults and number of faults until its evidence, faults in the run.
The last column is the deterministic simulator's (tests/sim, `make sim-mutants`): the same mutant
patched into the simulated cluster, seeds 1.. run until the first violation, at most --sim-seeds
(the CI budget; 0 skips the column): "after K seeds", or ">N" when it found nothing.
The transaction mutants (TXN_MUTANTS) run with `--workload txn` and have no simulator column.
Exit code 0 when every mutant was detected (by both) and the normal build had no anomaly, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from brook_mutants import MUTANTS, TXN_MUTANTS  # noqa: E402

NORMAL = "(normal build)"


def run_one(mutant: str | None, duration: str, seed: int, budget_s: float, network: str,
            log_dir: Path) -> dict[str, object]:
    env = dict(os.environ)
    env.pop("BROOK_MUTANT", None)
    if mutant is not None:
        env["PYTHONPATH"] = str(HERE) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["BROOK_MUTANT"] = mutant
    name = mutant or "normal"
    report_path = log_dir / f"{name}.json"
    argv = [str(Path(sys.executable).with_name("brook")), "chaos", "run", "--fresh", "--scenario", "random",
            "--duration", duration, "--seed", str(seed), "--report", str(report_path), "--network", network]
    if network == "netns":  # (auto keeps --fresh: with it, auto takes namespaces wherever they work)
        argv.remove("--fresh")
    if mutant in TXN_MUTANTS:  # found by the transactional workload (not in the simulator)
        argv += ["--workload", "txn"]
    started = time.monotonic()
    with open(log_dir / f"{name}.log", "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT),
                                start_new_session=True)
        try:
            code = proc.wait(timeout=budget_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # the tester stops the cluster it started on its way out
            try:
                proc.wait(timeout=180)  # it flushes, then stops its cluster (the servers have their own sessions)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            code = -1
    row: dict[str, object] = {"mutant": mutant or NORMAL, "exit_code": code,
                              "wall_s": round(time.monotonic() - started, 1)}
    if report_path.exists():
        report = json.loads(report_path.read_text())
        totals = report.get("totals", {})
        row.update(anomalies=report.get("anomaly_total", 0), faults=totals.get("faults", 0),
                   first_kind=totals.get("first_anomaly_kind", ""), first_s=totals.get("first_anomaly_s", ""),
                   first_faults=totals.get("faults_to_first_anomaly", ""),
                   counts={k: v for k, v in report.get("anomalies", {}).items() if v})
    return row


def sim_detect(mutant: str | None, seeds: int, log_dir: Path) -> dict[str, object]:
    """The simulator's seeds-to-detection for `mutant` (`python -m tests.sim.run --detect`)."""
    path = log_dir / f"sim-{mutant or 'normal'}.json"
    argv = [sys.executable, "-m", "tests.sim.run", "--detect", "--seeds", str(seeds), "--workers", "2",
            "--json", str(path)] + (["--mutant", mutant] if mutant else [])
    with open(log_dir / f"sim-{mutant or 'normal'}.log", "wb") as out:
        subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT), check=False)
    if not path.exists():
        return {"sim": "error"}
    found = json.loads(path.read_text())[0]
    detected = found["seed"] is not None
    return {"sim": found["seeds_run"] if detected else f">{found['seeds_run']}", "sim_detected": detected,
            "sim_seed": found["seed"], "sim_violation": found["violation"]}


def render(rows: list[dict[str, object]], duration: str, seed: int) -> str:
    lines = [f"chaos mutant table: brook chaos run --scenario random --duration {duration} --seed {seed}",
             f"{'mutant':24} {'detected':9} {'anomalies':>9} {'first anomaly':24} {'after s':>8} "
             f"{'after faults':>12} {'faults':>6} {'wall s':>7} {'sim seeds':>9}  anomalies by kind"]
    for row in rows:
        has = "anomalies" in row
        detected = ("n/a" if not has else "yes" if row["anomalies"] else "no")
        if row["mutant"] == NORMAL:
            detected = "n/a" if not has else ("CLEAN" if not row["anomalies"] else "ANOMALY")
        lines.append(f"{row['mutant']:24} {detected:9} {row.get('anomalies', '-')!s:>9} "
                     f"{row.get('first_kind', '') or '-':24} {row.get('first_s', '') or '-'!s:>8} "
                     f"{row.get('first_faults', '') or '-'!s:>12} {row.get('faults', '-')!s:>6} "
                     f"{row['wall_s']!s:>7} {row.get('sim', '-')!s:>9}" + ("" if has else f"  (no report: exit {row['exit_code']})")
                     + (f"  {_kinds(row)}" if has and row["anomalies"] else ""))
    return "\n".join(lines)


def _kinds(row: dict[str, object]) -> str:
    counts = row.get("counts") or {}
    assert isinstance(counts, dict)
    return " ".join(f"{k}={v}" for k, v in sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", default="300s")
    parser.add_argument("--seed", type=int, default=35)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per run, everything included")
    parser.add_argument("--only", default="", help="comma-separated mutants (default: all), 'normal' for the build")
    parser.add_argument("--network", choices=("auto", "none", "netns"), default="auto",
                        help="brook chaos's --network (default: its default, auto: namespaces where they work)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--sim-seeds", type=int, default=2000,
                        help="simulator column: seeds to try per mutant (0: skip the simulator)")
    args = parser.parse_args(argv)
    names: list[str | None] = [*MUTANTS, *TXN_MUTANTS, None]
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = wanted - set(MUTANTS) - set(TXN_MUTANTS) - {"normal"}
        if unknown:
            parser.error(f"unknown mutants {sorted(unknown)} (one of {', '.join([*MUTANTS, *TXN_MUTANTS])}, normal)")
        names = [n for n in names if (n or "normal") in wanted]
    log_dir = Path(tempfile.mkdtemp(prefix="brook-chaos-mutants-"))
    print(f"logs and reports in {log_dir}", flush=True)
    rows = []
    for name in names:
        print(f"running {name or 'the normal build'} ...", flush=True)
        rows.append(run_one(name, args.duration, args.seed, args.budget, args.network, log_dir))
        if args.sim_seeds > 0 and name not in TXN_MUTANTS:
            rows[-1].update(sim_detect(name, args.sim_seeds, log_dir))
        print(render(rows[-1:], args.duration, args.seed).splitlines()[-1], flush=True)
    print()
    print(render(rows, args.duration, args.seed))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    ok = all(r.get("anomalies") for r in rows if r["mutant"] != NORMAL) and all(
        r.get("anomalies") == 0 for r in rows if r["mutant"] == NORMAL)
    if args.sim_seeds > 0:
        ok = ok and all(r.get("sim_detected") == (r["mutant"] != NORMAL) for r in rows if r["mutant"] not in TXN_MUTANTS)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
