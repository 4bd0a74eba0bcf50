"""The chaos tester behind `brook chaos run` (see docs/CHAOS.md): workload, nemesis, checker, report."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """`brook chaos ...` (the CLI hands over the arguments after `chaos`)."""
    from cluster.chaos.runner import main as run_main

    return run_main(argv)
