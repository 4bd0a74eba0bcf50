"""The Java `.properties` subset Brook reads (`server.properties`)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from cluster.config.values import _q
from cluster.errors import ConfigError

# --------------------------------------------------------------------------------------------------
# .properties parsing

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Join continuation lines; yield (first physical line number, logical line without leading space)."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i
        line = lines[i].lstrip(" \t\f")
        i += 1
        if not line or line[0] in "#!":
            continue
        while _continues(line) and i < len(lines):
            line = line[:-1] + lines[i].lstrip(" \t\f")
            i += 1
        if _continues(line):  # a continuation on the last line: drop the backslash
            line = line[:-1]
        yield start + 1, line


def _continues(line: str) -> bool:
    n = len(line) - len(line.rstrip("\\"))
    return n % 2 == 1


def _unescape(text: str, where: str) -> list[tuple[str, bool]]:
    """-> [(char, was_escaped)]"""
    out: list[tuple[str, bool]] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out.append((c, False))
            i += 1
            continue
        if i + 1 >= len(text):
            i += 1
            continue
        n = text[i + 1]
        if n == "u":
            digits = text[i + 2 : i + 6]
            if not re.fullmatch(r"[0-9A-Fa-f]{4}", digits):
                raise ConfigError(f"{where}: bad unicode escape {_q(text[i : i + 6])}")
            out.append((chr(int(digits, 16)), True))
            i += 6
            continue
        out.append((_ESCAPES.get(n, n), True))
        i += 2
    return out


def _strip(chars: list[tuple[str, bool]]) -> str:
    lo, hi = 0, len(chars)
    while lo < hi and chars[lo][0] in " \t\f" and not chars[lo][1]:
        lo += 1
    while hi > lo and chars[hi - 1][0] in " \t\f" and not chars[hi - 1][1]:
        hi -= 1
    return "".join(c for c, _ in chars[lo:hi])


def _has_inner_space(chars: list[tuple[str, bool]]) -> bool:
    """An unescaped blank between non-blank characters (`a b=c`)."""
    marks = [c in " \t\f" and not esc for c, esc in chars]
    while marks and marks[0]:
        marks.pop(0)
    while marks and marks[-1]:
        marks.pop()
    return any(marks)


def _parse_properties_located(text: str, origin: str) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    for lineno, line in _logical_lines(text):
        where = f"{origin}:{lineno}"
        chars = _unescape(line, where)
        sep = next((i for i, (c, esc) in enumerate(chars) if c in "=:" and not esc), None)
        if sep is None:
            raise ConfigError(f"{where}: expected key=value, got {_q(line.strip())}")
        key_chars = chars[:sep]
        key = _strip(key_chars)
        if not key:
            raise ConfigError(f"{where}: missing key before {_q(chars[sep][0])}")
        if _has_inner_space(key_chars):
            raise ConfigError(f"{where}: expected key=value, got {_q(line.strip())}")
        value = _strip(chars[sep + 1 :])
        if key in out:
            raise ConfigError(f"{where}: duplicate key {_q(key)} (first set on line {out[key][1]})")
        out[key] = (value, lineno)
    return out


def parse_properties(text: str, origin: str) -> dict[str, str]:
    """Parse a Java .properties subset: `#`/`!` comments, `key=value` or `key: value`, surrounding
    whitespace trimmed, a trailing backslash continues the line, escapes `\\t \\n \\r \\f \\uXXXX \\x`.
    Errors are ConfigError("<origin>:<line>: ..."). A key set twice is an error."""
    return {k: v for k, (v, _) in _parse_properties_located(text, origin).items()}
