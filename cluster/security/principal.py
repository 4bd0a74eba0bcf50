"""Principals as Kafka builds them (DefaultKafkaPrincipalBuilder): `User:<name>`.

- SASL: `User:` + the authenticated user name.
- SSL with a client certificate: `User:` + the certificate subject's distinguished name in RFC 2253
  form (`CN=alice,OU=eng,O=Example`), after `ssl.principal.mapping.rules` (Kafka's syntax:
  `RULE:pattern/replacement/[LU]`, comma-separated, `DEFAULT` = the DN unchanged).
- Otherwise `User:ANONYMOUS`.

Pure: the subject comes as Python's `ssl.SSLSocket.getpeercert()["subject"]` tuple.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MappingRule", "apply_mapping_rules", "parse_mapping_rules", "subject_dn"]

# OpenSSL long names -> RFC 2253 / RFC 4514 short names (as Java's X500Principal prints them).
_SHORT = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
_ESCAPE = re.compile(r'([,+"\\<>;])')


def _escape(value: str) -> str:
    value = _ESCAPE.sub(r"\\\1", value)
    if value.startswith((" ", "#")):
        value = "\\" + value
    if value.endswith(" ") and not value.endswith("\\ "):
        value = value[:-1] + "\\ "
    return value


def subject_dn(subject: Sequence[Sequence[tuple[str, str]]]) -> str:
    """RFC 2253 string of a certificate subject (most specific RDN first, as Kafka shows it)."""
    rdns = []
    for rdn in reversed(tuple(subject)):
        rdns.append("+".join(f"{_SHORT.get(k, k)}={_escape(v)}" for k, v in rdn))
    return ",".join(rdns)


@dataclass(frozen=True, slots=True)
class MappingRule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str = ""
    case: str = ""                   # "", "L" or "U"


_RULE = re.compile(r"RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?)")


def parse_mapping_rules(text: str) -> list[MappingRule]:
    """Kafka's `ssl.principal.mapping.rules`; raises ValueError on a malformed rule."""
    rules: list[MappingRule] = []
    rest = text.strip()
    while rest:
        if rest.startswith("DEFAULT"):
            rules.append(MappingRule(None))
            rest = rest[len("DEFAULT"):]
        else:
            m = _RULE.match(rest)
            if m is None:
                raise ValueError(f"malformed rule at {rest[:40]!r}: expected DEFAULT or RULE:pattern/replacement/[LU]")
            try:
                pattern = re.compile(m.group(1))
            except re.error as e:
                raise ValueError(f"bad pattern {m.group(1)!r}: {e}") from None
            replacement = re.sub(r"\$(\d)", r"\\\1", m.group(2))
            rules.append(MappingRule(pattern, replacement, m.group(3)))
            rest = rest[m.end():]
        rest = rest.lstrip()
        if rest.startswith(","):
            rest = rest[1:].lstrip()
        elif rest:
            raise ValueError(f"expected ',' between rules at {rest[:40]!r}")
    return rules or [MappingRule(None)]


def apply_mapping_rules(rules: Sequence[MappingRule], dn: str) -> str | None:
    """The first rule that matches the whole DN maps it; None when no rule matches (Kafka: an error)."""
    for rule in rules:
        if rule.pattern is None:
            return dn
        if rule.pattern.fullmatch(dn):
            name = rule.pattern.sub(rule.replacement, dn, count=1)
            return name.lower() if rule.case == "L" else name.upper() if rule.case == "U" else name
    return None
