"""The authorization decision: Kafka's StandardAuthorizer rules as a table."""

from __future__ import annotations

import pytest

from cluster.security.acl import (
    AclBinding,
    AclBindingFilter,
    authorize,
    validate_binding,
)
from cluster.security.acl import (
    AclOperation as Op,
)
from cluster.security.acl import (
    AclPermission as Perm,
)
from cluster.security.acl import (
    PatternType as Pat,
)
from cluster.security.acl import (
    ResourceType as Res,
)

ALICE, BOB = "User:alice", "User:bob"


def acl(name="orders", op=Op.READ, perm=Perm.ALLOW, principal=ALICE, pattern=Pat.LITERAL, host="*", res=Res.TOPIC):
    return AclBinding(res, name, pattern, principal, host, op, perm)


CASES = [
    # (description, acls, principal, host, op, resource type, name, super users, allow if none, expected)
    ("no acls, default deny", [], ALICE, "h", Op.READ, Res.TOPIC, "orders", (), False, False),
    ("no acls, allow.everyone.if.no.acl.found", [], ALICE, "h", Op.READ, Res.TOPIC, "orders", (), True, True),
    ("super user bypasses a deny", [acl(perm=Perm.DENY)], ALICE, "h", Op.READ, Res.TOPIC, "orders", (ALICE,), False, True),
    ("literal allow", [acl()], ALICE, "h", Op.READ, Res.TOPIC, "orders", (), False, True),
    ("literal allow is for that name only", [acl()], ALICE, "h", Op.READ, Res.TOPIC, "orders2", (), False, False),
    ("acl of another principal: acls exist, so no fallback", [acl(principal=BOB)], ALICE, "h", Op.READ, Res.TOPIC,
     "orders", (), True, False),
    ("wildcard principal", [acl(principal="User:*")], ALICE, "h", Op.READ, Res.TOPIC, "orders", (), False, True),
    ("wildcard resource", [acl(name="*")], ALICE, "h", Op.READ, Res.TOPIC, "anything", (), False, True),
    ("prefixed", [acl(name="ord", pattern=Pat.PREFIXED)], ALICE, "h", Op.READ, Res.TOPIC, "orders", (), False, True),
    ("prefixed does not match a shorter name", [acl(name="orders-", pattern=Pat.PREFIXED)], ALICE, "h", Op.READ,
     Res.TOPIC, "orders", (), False, False),
    ("other operation", [acl(op=Op.WRITE)], ALICE, "h", Op.READ, Res.TOPIC, "orders", (), False, False),
    ("ALL allows READ", [acl(op=Op.ALL)], ALICE, "h", Op.READ, Res.TOPIC, "orders", (), False, True),
    ("deny beats allow", [acl(), acl(perm=Perm.DENY)], ALICE, "h", Op.READ, Res.TOPIC, "orders", (), False, False),
    ("prefixed deny beats literal allow", [acl(), acl(name="o", pattern=Pat.PREFIXED, perm=Perm.DENY)], ALICE, "h",
     Op.READ, Res.TOPIC, "orders", (), False, False),
    ("deny ALL denies WRITE", [acl(op=Op.WRITE), acl(op=Op.ALL, perm=Perm.DENY)], ALICE, "h", Op.WRITE, Res.TOPIC,
     "orders", (), False, False),
    ("deny of another host does not apply", [acl(), acl(perm=Perm.DENY, host="10.0.0.9")], ALICE, "10.0.0.1",
     Op.READ, Res.TOPIC, "orders", (), False, True),
    ("allow for another host does not apply", [acl(host="10.0.0.9")], ALICE, "10.0.0.1", Op.READ, Res.TOPIC,
     "orders", (), False, False),
    ("READ implies DESCRIBE", [acl()], ALICE, "h", Op.DESCRIBE, Res.TOPIC, "orders", (), False, True),
    ("WRITE implies DESCRIBE", [acl(op=Op.WRITE)], ALICE, "h", Op.DESCRIBE, Res.TOPIC, "orders", (), False, True),
    ("DESCRIBE does not imply READ", [acl(op=Op.DESCRIBE)], ALICE, "h", Op.READ, Res.TOPIC, "orders", (), False, False),
    ("deny READ does not deny DESCRIBE", [acl(op=Op.DESCRIBE), acl(perm=Perm.DENY)], ALICE, "h", Op.DESCRIBE,
     Res.TOPIC, "orders", (), False, True),
    ("ALTER_CONFIGS implies DESCRIBE_CONFIGS", [acl(op=Op.ALTER_CONFIGS)], ALICE, "h", Op.DESCRIBE_CONFIGS,
     Res.TOPIC, "orders", (), False, True),
    ("group acl does not cover a topic", [acl(res=Res.GROUP)], ALICE, "h", Op.READ, Res.TOPIC, "orders", (), False,
     False),
    ("group read", [acl(res=Res.GROUP, name="g1")], ALICE, "h", Op.READ, Res.GROUP, "g1", (), False, True),
    ("cluster create", [acl(res=Res.CLUSTER, name="kafka-cluster", op=Op.CREATE)], ALICE, "h", Op.CREATE,
     Res.CLUSTER, "kafka-cluster", (), False, True),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_authorize(case):
    _, acls, principal, host, op, res, name, supers, allow_none, expected = case
    got = authorize(acls, principal, host, op, res, name, super_users=frozenset(supers), allow_if_no_acl=allow_none)
    assert got is expected


def test_filter_match_and_literal():
    prefixed = acl(name="ord", pattern=Pat.PREFIXED)
    literal = acl()
    wildcard = acl(name="*")
    other = acl(name="payments")
    everything = [prefixed, literal, wildcard, other]
    match = AclBindingFilter(Res.TOPIC, "orders", Pat.MATCH)
    assert [a for a in everything if match.matches(a)] == [prefixed, literal, wildcard]
    exact = AclBindingFilter(Res.TOPIC, "orders", Pat.LITERAL)
    assert [a for a in everything if exact.matches(a)] == [literal]
    assert [a for a in everything if AclBindingFilter(principal=BOB).matches(a)] == []
    assert all(AclBindingFilter().matches(a) for a in everything)


@pytest.mark.parametrize("binding, fragment", [
    (acl(), ""),
    (acl(pattern=Pat.MATCH), "pattern type"),
    (acl(perm=Perm.ANY), "permission"),
    (acl(res=Res.GROUP, op=Op.WRITE), "does not apply"),
    (acl(res=Res.CLUSTER, name="x", op=Op.ALTER), "kafka-cluster"),
    (acl(principal="alice"), "Type:name"),
    (acl(host=""), "host"),
])
def test_validate_binding(binding, fragment):
    reason = validate_binding(binding)
    assert (reason == "") if not fragment else (fragment in reason)
