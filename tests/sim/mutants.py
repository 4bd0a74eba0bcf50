"""Apply one of the chaos harness's mutants (tests/mutants/brook_mutants.py) inside this process.

The chaos servers apply a mutant through an import hook (`brook_mutants.install`); the simulator
runs the same production modules in-process, so it calls the same patch function on the imported
module and undoes it afterwards. The mutant definitions stay in one place.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

_HERE = Path(__file__).resolve().parent.parent / "mutants"


def mutants() -> dict[str, tuple[str, str, Any]]:
    """name -> (module, description, patch) from tests/mutants/brook_mutants.py."""
    if str(_HERE) not in sys.path:
        sys.path.insert(0, str(_HERE))
    import brook_mutants  # the harness's own module: its sitecustomize is never imported here
    return brook_mutants.MUTANTS


def _snapshot(module: ModuleType) -> dict[tuple[Any, str], Any]:
    """Every module global and every attribute of the module's own classes (what a patch replaces)."""
    saved: dict[tuple[Any, str], Any] = {(module, k): v for k, v in vars(module).items()}
    for value in vars(module).values():
        if isinstance(value, type) and value.__module__ == module.__name__:
            saved.update({(value, k): v for k, v in vars(value).items()})
    return saved


@contextmanager
def applied(name: str | None) -> Iterator[None]:
    """Run the body with mutant `name` patched in (nothing for None); restore everything after."""
    if not name:
        yield
        return
    table = mutants()
    if name not in table:
        raise SystemExit(f"unknown mutant {name!r} (one of {', '.join(table)})")
    module_name, _, patch = table[name]
    module = importlib.import_module(module_name)
    saved = _snapshot(module)
    patch(module)
    try:
        yield
    finally:
        for owner in {owner for owner, _ in saved}:
            for key in [k for k in vars(owner) if (owner, k) not in saved]:
                delattr(owner, key)  # an attribute the patch added
        for (owner, key), value in saved.items():
            if vars(owner).get(key, _MISSING) is not value:
                setattr(owner, key, value)


_MISSING = object()
