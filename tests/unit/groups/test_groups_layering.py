"""`broker/groups/` knows nothing of the Kafka wire format: no module there imports kio or broker.kafka.

The Kafka request/response adaptation lives in `broker/kafka/group_handlers.py`; the coordinator
offers typed operations. Checked on the source with `ast`, so a lazy import inside a function
counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

GROUPS = Path(__file__).resolve().parents[3] / "broker" / "groups"
FORBIDDEN = ("kio", "broker.kafka")


def imported_modules(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
    return names


def forbidden(names: set[str]) -> set[str]:
    return {n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)}


def test_the_check_sees_both_import_forms():
    assert forbidden(imported_modules("import kio.serial\nfrom broker.kafka.codec import build\n"
                                      "def f():\n    from kio.index import load_payload_module\n")) == {
        "kio.serial", "broker.kafka.codec", "kio.index"}
    assert forbidden(imported_modules("import kiosk\nfrom broker.kafkaesque import x\n")) == set()


def test_broker_groups_does_not_import_kio():
    files = sorted(GROUPS.glob("*.py"))
    assert len(files) >= 5  # coordinator, state, offsets, offsets_partition, api, ...
    offenders = {f.name: sorted(found) for f in files
                 if (found := forbidden(imported_modules(f.read_text(encoding="utf-8"))))}
    assert offenders == {}
