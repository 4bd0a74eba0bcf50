"""The layer rule: `cluster/*.py` at the package root is the shared model and never imports up.

Goal: the modules every other package builds on (records, image, codec, config, errors, grpcutil,
client, limits) import nothing from the layers above them, so arrows only point down. Method: parse
every `cluster/*.py` at the root, and every module of a model package under it (anything but
`cluster/cli/` and `cluster/chaos/`, the entry points and tooling), with `ast` and collect every
import, at module level or inside a function, in any form (`import x`, `import x.y`, `from x import y`,
`from x.y import z`, `from . import cli`, `from .chaos import z`); resolve relative ones against the
`cluster` package and fail on any that lands in a forbidden package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
FORBIDDEN = ("controller", "broker", "storage", "cluster.cli", "cluster.chaos")


def imported_modules(source: str, package: str = "cluster") -> list[tuple[int, str]]:
    """Every module an import statement in `source` names, as (line, dotted name), relative ones resolved.

    `from x import y` yields both `x` and `x.y` (y may be a submodule: `from cluster import cli`).
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*")
    return found


def forbidden(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in FORBIDDEN)


def violations(source: str, package: str = "cluster") -> list[str]:
    return [f"line {line}: {module}" for line, module in imported_modules(source, package) if forbidden(module)]


def model_modules() -> list[Path]:
    """`cluster/*.py`, plus any package of the shared model under it (everything but cli/ and chaos/)."""
    return sorted(
        path for path in CLUSTER.rglob("*.py")
        if path.relative_to(CLUSTER).parts[0] not in ("cli", "chaos", "__pycache__")
    )


def package_of(path: Path) -> str:
    """The package a module's relative imports resolve against (`cluster/config/x.py` -> cluster.config)."""
    return ".".join(path.relative_to(ROOT).parts[:-1])


def test_the_model_modules_are_found() -> None:
    names = {str(path.relative_to(CLUSTER)) for path in model_modules()}
    assert {"records.py", "image.py", "errors.py", "codec.py"} <= names
    assert not any(name.startswith(("cli/", "chaos/")) for name in names)


@pytest.mark.parametrize("path", model_modules(), ids=lambda p: str(p.relative_to(CLUSTER)))
def test_cluster_model_imports_no_upper_layer(path: Path) -> None:
    bad = violations(path.read_text(), package_of(path))
    assert not bad, f"{path.relative_to(ROOT)} imports an upper layer: {', '.join(bad)}"


@pytest.mark.parametrize(
    "source",
    [
        "import controller",
        "import broker.core",
        "import storage.batch as b",
        "from storage import batch",
        "from broker.kafka.server import start_kafka_listener",
        "from cluster.cli.launcher import LocalCluster",
        "from cluster import cli",
        "from cluster import chaos, errors",
        "from .cli import launcher",
        "from . import chaos",
        "def f():\n    from controller.quorum import Quorum\n",
        "if True:\n    import cluster.chaos.netns\n",
    ],
)
def test_every_import_form_is_caught(source: str) -> None:
    assert violations(source)


@pytest.mark.parametrize(
    "source",
    [
        "import cluster.errors",
        "from cluster.records import TopicRecord",
        "from cluster import codec",
        "from . import errors",
        "from brookpb import admin_pb2",
        "import controllers_like_name",  # a name that only starts with a forbidden one
        "from clusterx import cli",
    ],
)
def test_allowed_imports_pass(source: str) -> None:
    assert not violations(source)
