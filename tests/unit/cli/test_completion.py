"""Shell completion (argcomplete): `brook` answers the shell's completion protocol from its parser."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def complete(line: str, tmp_path: Path) -> list[str]:
    out = tmp_path / "completions"
    env = dict(os.environ, _ARGCOMPLETE="1", _ARGCOMPLETE_IFS="\n", COMP_LINE=line, COMP_POINT=str(len(line)),
               _ARGCOMPLETE_STDOUT_FILENAME=str(out), _ARGCOMPLETE_SUPPRESS_SPACE="0")
    proc = subprocess.run([sys.executable, "-m", "cluster.cli.main"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return out.read_text().split("\n")


@pytest.mark.timeout(120)
def test_commands_and_options_complete(tmp_path):
    assert "groups" in [c.strip() for c in complete("brook gr", tmp_path)]
    options = [c.strip() for c in complete("brook groups reset-offsets g --to-", tmp_path)]
    assert {"--to-datetime", "--to-earliest", "--to-latest", "--to-offset"} <= set(options), options


def test_the_entry_module_carries_the_global_completion_marker():
    head = (REPO / "cluster" / "cli" / "main.py").read_bytes()[:1024]
    assert b"PYTHON_ARGCOMPLETE_OK" in head
