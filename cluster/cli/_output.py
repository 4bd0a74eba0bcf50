"""Rendering for the CLI: aligned tables, key/value blocks and JSON. Pure: returns strings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["render_json", "render_kv", "render_table"]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces; a header line; no trailing spaces."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        assert len(row) == len(headers), f"row has {len(row)} cells, table has {len(headers)} columns"
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = []
    for row in [list(headers), *cells]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def render_kv(pairs: Sequence[tuple[str, Any]]) -> str:
    """`Key:   value` lines with the values aligned."""
    width = max((len(k) for k, _ in pairs), default=0) + 1
    return "\n".join(f"{(k + ':').ljust(width)}  {_cell(v)}".rstrip() for k, v in pairs)


def render_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False)
